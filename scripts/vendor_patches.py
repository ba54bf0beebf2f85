#!/usr/bin/env python3
"""The vendored crates are the crates.io releases plus the patches in vendor/patches/.

vendor/<crate>/ is what Cargo builds (through [patch.crates-io] in Cargo.toml); each change to
it is kept as vendor/patches/<crate>.diff so that it can be read and reviewed on its own
(vendor/README.md says what each change is and why).

  python3 scripts/vendor_patches.py check   # CI: crates.io release + patch == vendor/<crate>
  python3 scripts/vendor_patches.py diff    # after editing vendor/<crate>: rewrite its patch

Each release is downloaded from static.crates.io and checked against the SHA-256 below.
"""
import filecmp
import hashlib
import io
import os
import subprocess
import sys
import tarfile
import tempfile
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENDOR = os.path.join(ROOT, "vendor")
# (crate, version, SHA-256 of the .crate file as crates.io serves it)
CRATES = [
    ("cubecl-cuda", "0.10.0", "b6b0a69ff45688d322ad8e92c8bf645167b9ca490fa8fa087fc6adac8c5e46be"),
    ("burn-ndarray", "0.21.0", "dceb9692e292782bab7ad0259e8e8f5ee80ba2b0329a78f0ba589a26a9633dd6"),
]
# Files of the release that are not vendored (packaging metadata).
SKIP = {".cargo_vcs_info.json", "Cargo.lock", ".cargo-ok"}


def pristine(crate, version, sha256, into):
    """Downloads, checks and unpacks the release into `into`; returns its folder."""
    url = f"https://static.crates.io/crates/{crate}/{crate}-{version}.crate"
    data = urllib.request.urlopen(url, timeout=60).read()
    got = hashlib.sha256(data).hexdigest()
    if got != sha256:
        sys.exit(f"{crate} {version}: SHA-256 {got} is not the pinned {sha256}")
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        tar.extractall(into, filter="data")
    folder = os.path.join(into, f"{crate}-{version}")
    for name in SKIP:
        path = os.path.join(folder, name)
        if os.path.exists(path):
            os.remove(path)
    return folder


def differences(a, b):
    """Files that differ between two trees, or exist in one only."""
    out = []
    cmp = filecmp.dircmp(a, b, ignore=list(SKIP))
    stack = [("", cmp)]
    while stack:
        prefix, c = stack.pop()
        out += [prefix + n for n in c.left_only + c.right_only + c.diff_files + c.funny_files]
        # dircmp compares contents shallowly by stat: compare the bytes of the same-named files.
        for n in c.same_files:
            if not filecmp.cmp(os.path.join(c.left, n), os.path.join(c.right, n), shallow=False):
                out.append(prefix + n)
        stack += [(prefix + n + "/", sub) for n, sub in c.subdirs.items()]
    return sorted(out)


def check():
    bad = 0
    with tempfile.TemporaryDirectory() as tmp:
        for crate, version, sha in CRATES:
            folder = pristine(crate, version, sha, tmp)
            patch = os.path.join(VENDOR, "patches", f"{crate}.diff")
            r = subprocess.run(["git", "apply", "-p1", patch], cwd=folder, capture_output=True,
                               text=True)
            if r.returncode != 0:
                print(f"{crate}: vendor/patches/{crate}.diff does not apply to the release:\n{r.stderr}")
                bad += 1
                continue
            diff = differences(folder, os.path.join(VENDOR, crate))
            if diff:
                print(f"{crate}: vendor/{crate} is not release {version} + its patch; differs in: "
                      + ", ".join(diff) + f"\n  (after an edit, run: python3 scripts/vendor_patches.py diff)")
                bad += 1
            else:
                lines = sum(1 for l in open(patch) if l[:1] in "+-" and l[:3] not in ("+++", "---"))
                print(f"{crate} {version}: vendor/{crate} = the crates.io release + "
                      f"vendor/patches/{crate}.diff ({lines} changed lines)")
    sys.exit(1 if bad else 0)


def write_diffs():
    with tempfile.TemporaryDirectory() as tmp:
        for crate, version, sha in CRATES:
            folder = pristine(crate, version, sha, tmp)
            os.rename(folder, os.path.join(tmp, "a"))
            os.symlink(os.path.join(VENDOR, crate), os.path.join(tmp, "b"))
            r = subprocess.run(["diff", "-ruN"] + sum((["-x", s] for s in SKIP), []) + ["a/", "b/"],
                               cwd=tmp, capture_output=True, text=True)
            if r.returncode > 1:
                sys.exit(r.stderr)
            # Dates make every regeneration a change: drop them from the headers.
            text = "".join(l.split("\t")[0] + "\n" if l.startswith(("--- ", "+++ ")) else l
                           for l in r.stdout.splitlines(keepends=True))
            path = os.path.join(VENDOR, "patches", f"{crate}.diff")
            open(path, "w").write(text)
            print(f"wrote {os.path.relpath(path, ROOT)}")
            os.remove(os.path.join(tmp, "b"))
            subprocess.run(["rm", "-rf", os.path.join(tmp, "a")], check=True)


if __name__ == "__main__":
    mode = sys.argv[1] if len(sys.argv) > 1 else "check"
    if mode == "check":
        check()
    elif mode == "diff":
        write_diffs()
    else:
        sys.exit(__doc__)
