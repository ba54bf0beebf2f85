#!/usr/bin/env python3
"""Summarises the folded stacks of `slaw bench --host-profile` (bench/host_profile.sh).

For each thread with at least 2 % of the samples: its share, the crates its samples pass
through (inclusive: a sample counts once for each crate on its stack) and the functions where
its samples end (self time), with closures and generic arguments folded away.

Usage: host_profile_summary.py FILE.folded [--top N]
"""
import collections
import re
import sys


def crate_of(frame: str) -> str:
    """The crate of a demangled Rust symbol, or the library-ish name of anything else."""
    f = frame.lstrip("<").replace("&", "").replace("mut ", "").strip()
    m = re.match(r"([A-Za-z_][A-Za-z0-9_]*)::", f)
    if m:
        return m.group(1)
    return f.split("(")[0][:40] or "?"


def short(frame: str) -> str:
    """A frame without generic arguments, hashes and closure suffixes."""
    s = re.sub(r"::h[0-9a-f]{16}$", "", frame)
    depth, out = 0, []
    for ch in s:
        if ch == "<":
            depth += 1
            continue
        if ch == ">":
            depth = max(0, depth - 1)
            continue
        if depth == 0:
            out.append(ch)
    s = "".join(out)
    s = re.sub(r"::\{\{closure\}\}", "", s)
    return s[:140]


def main() -> None:
    path = sys.argv[1]
    top = int(sys.argv[sys.argv.index("--top") + 1]) if "--top" in sys.argv else 25
    threads = collections.Counter()
    crates = collections.defaultdict(collections.Counter)
    leaves = collections.defaultdict(collections.Counter)
    funcs = collections.defaultdict(collections.Counter)
    for line in open(path):
        stack, _, count = line.rstrip("\n").rpartition(" ")
        if not stack:
            continue
        n = int(count)
        frames = stack.split(";")
        thread = re.sub(r"[-_]?\d+$", "", frames[0]) or frames[0]
        threads[thread] += n
        rest = frames[1:]
        for c in {crate_of(f) for f in rest}:
            crates[thread][c] += n
        for f in {short(f) for f in rest}:
            funcs[thread][f] += n
        if rest:
            leaves[thread][short(rest[-1])] += n
    total = sum(threads.values())
    print(f"{total} samples (~1 per ms of CPU time)")
    for thread, n in threads.most_common():
        if n < 0.02 * total:
            continue
        print(f"\n== thread {thread}: {n} samples, {100 * n / total:.1f} % of all")
        print("  crates on the stack (inclusive):")
        for c, k in crates[thread].most_common(14):
            print(f"    {100 * k / n:5.1f} %  {c}")
        print("  functions on the stack (inclusive):")
        for f, k in funcs[thread].most_common(top):
            print(f"    {100 * k / n:5.1f} %  {f}")
        print("  where samples end (self):")
        for f, k in leaves[thread].most_common(top):
            print(f"    {100 * k / n:5.1f} %  {f}")


if __name__ == "__main__":
    main()
