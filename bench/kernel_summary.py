#!/usr/bin/env python3
"""Per-step GPU kernel time from two Nsight Compute CSV logs of the same program that differ only
in the number of timed steps (bench/kernel_profile.sh): (B - A) / steps, in total and by kernel
family. Prints a text table and one JSON line.

    python3 bench/kernel_summary.py run-A.csv run-B.csv STEPS [--label NAME]
"""
import argparse
import collections
import csv
import json
import re


def family(name):
    n = name.lower()
    rules = [
        ("matmul", r"gemm|matmul|cutlass|sm90_xmma|ampere_sgemm|sgemm|cublas|mma"),
        ("reduce", r"reduce|sum|mean|norm|softmax|max_|argmax"),
        ("fused elementwise", r"fuse|elemwise|elementwise"),
        ("gather/select/index", r"select|gather|index|scatter"),
        ("copy/layout", r"copy|into_contiguous|transpose|permute|cat|layout|fill"),
    ]
    for fam, pat in rules:
        if re.search(pat, n):
            return fam
    return "other"


def load(path):
    """Kernel name → (count, total ns) over the log."""
    per = collections.defaultdict(lambda: [0, 0.0])
    with open(path, newline="") as f:
        lines = [l for l in f if l.startswith('"')]
    for row in csv.DictReader(lines):
        if row.get("Metric Name") != "gpu__time_duration.sum":
            continue
        try:
            ns = float(row["Metric Value"].replace(",", ""))
        except ValueError:
            continue
        name = re.sub(r"\(.*", "", row["Kernel Name"])[:90]
        per[name][0] += 1
        per[name][1] += ns
    return per


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("steps", type=int)
    ap.add_argument("--label", default="")
    args = ap.parse_args()
    a, b = load(args.a), load(args.b)
    diff = {}
    for name in set(a) | set(b):
        ca, ta = a.get(name, [0, 0.0])
        cb, tb = b.get(name, [0, 0.0])
        diff[name] = ((cb - ca) / args.steps, (tb - ta) / args.steps / 1e6)
    total_ms = sum(t for _, t in diff.values())
    launches = sum(c for c, _ in diff.values())
    fams = collections.defaultdict(lambda: [0.0, 0.0])
    for name, (c, t) in diff.items():
        fams[family(name)][0] += c
        fams[family(name)][1] += t
    print(f"## {args.label}: {launches:.0f} kernels per step, {total_ms:.2f} ms of GPU time per step")
    for fam, (c, t) in sorted(fams.items(), key=lambda kv: -kv[1][1]):
        print(f"   {fam:22s} {c:7.1f} launches {t:8.3f} ms")
    for name, (c, t) in sorted(diff.items(), key=lambda kv: -kv[1][1])[:15]:
        print(f"   {t:8.3f} ms {c:6.1f}x  {name}")
    print(json.dumps({"label": args.label, "kernels_per_step": launches, "gpu_ms_per_step": total_ms,
                      "families": {k: {"launches": v[0], "ms": v[1]} for k, v in fams.items()},
                      "top": [[n, c, t] for n, (c, t) in sorted(diff.items(), key=lambda kv: -kv[1][1])[:25]]}))


if __name__ == "__main__":
    main()
