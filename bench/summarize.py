#!/usr/bin/env python3
"""Turns the JSON lines of bench/run_gpu.sh into the Markdown tables of docs/PERFORMANCE.md."""
import json
import os
import sys

out = sys.argv[1] if len(sys.argv) > 1 else "/tmp/slaw-bench"


def lines(name):
    path = os.path.join(out, name)
    if not os.path.exists(path):
        return []
    return [json.loads(l) for l in open(path) if l.strip().startswith("{")]


def one(name):
    rows = lines(name)
    return rows[-1] if rows else None


peak = one("peak.json")
if peak:
    print(f"device: {peak['device']}; measured bf16 matmul peak {peak['bf16_matmul_tflops']:.0f} TFLOP/s (MFU denominator)\n")

for title, rows in [("per training step (GPU)", lines("step.jsonl")), ("per training step (CPU, 2 cores)", lines("cpu.jsonl"))]:
    if not rows:
        continue
    print(f"| {title} | framework | mode | ms/step | examples/s | TFLOP/s | MFU | vs torch f32 | peak MiB |")
    print("|---|---|---|---|---|---|---|---|---|")
    # The reference is torch eager f32 with the same clipping setting.
    ref = {(r["config"], r.get("grad_clip", True)): r["ms_per_step"] for r in rows
           if r["framework"].startswith("torch") and r.get("mode", "f32") == "f32"}
    for r in rows:
        mode = r.get("mode") or r.get("precision")
        if not r.get("grad_clip", True):
            mode += ", no clipping"
        base = ref.get((r["config"], r.get("grad_clip", True)))
        ratio = f"{r['ms_per_step'] / base:.2f}×" if base else "–"
        mfu = f"{100 * r['mfu']:.1f} %" if r.get("mfu") else "–"
        mem = f"{r['peak_memory_mib']:.0f}" if r.get("peak_memory_mib") else "–"
        cfg = f"{r['config']} (d {r['width']}, L {r['depth']}, {r['batch']}×{r['tokens']})"
        print(f"| {cfg} | {r['framework']} | {mode} | {r['ms_per_step']:.2f} | {r['examples_per_second']:.0f} | {r['achieved_tflops']:.2f} | {mfu} | {ratio} | {mem} |")
    print()

s, t = one("slaw-sweep.json"), one("torch-sweep.json")
if s or t:
    print("| sweep (24 trials, one GPU) | wall time | trials completed | ratio |")
    print("|---|---|---|---|")
    if t:
        print(f"| sequential PyTorch loop ({t['framework']}) | {t['wall_seconds']:.1f} s | {sum(r['val_loss'] is not None for r in t['results'])}/{t['trials']} | 1.00 |")
    if s:
        ratio = f"{s['wall_seconds'] / t['wall_seconds']:.2f}" if t else "–"
        print(f"| slaw, packed | {s['wall_seconds']:.1f} s | {s['completed']}/{s['trials']} ({s['with_curves']} with curves) | {ratio} |")
    if s and t:
        tl = {r["key"]: r["val_loss"] for r in t["results"]}
        gaps = [abs(r["val_loss"] - tl[r["key"]]) for r in s["results"] if r["val_loss"] is not None and tl.get(r["key"]) is not None]
        if gaps:
            print(f"\nfinal validation loss, slaw vs torch on the same trials: mean |Δ| {sum(gaps)/len(gaps):.4f}, max {max(gaps):.4f} over {len(gaps)} trials")
    print()

b = one("bf16.json")
if b:
    print(f"bf16-mixed vs f32 (ViT d128 L4, 4 epochs, 2 seeds): f32 {b['f32']}, bf16-mixed {b['bf16_mixed']}, "
          f"relative gaps {b['relative_gap_mixed']}, within 3 %: {b['mixed_within_3_percent']}"
          + (f"; pure bf16 {b['bf16_pure']}, gaps {b['relative_gap_pure']}" if b.get("bf16_pure") else ""))
