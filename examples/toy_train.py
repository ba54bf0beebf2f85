#!/usr/bin/env python3
"""A stand-in for a training script, in pure Python: what slaw's command trainer runs in
sweeps/command-toy.yaml and in its tests, in a fraction of a second per trial.

Nothing is trained. The "validation loss" of an MLP of the given width and depth on
Fashion-MNIST-sized inputs follows a Chinchilla-style law L(N, D) = E + A/N^alpha + B/D^beta, with
a penalty for a learning rate away from an optimum that falls with N, and a little seeded noise;
the curve is reported at log-spaced steps through slaw_report, with some ordinary output in
between (kept as the trial's log). A learning rate 30x above the optimum diverges (NaN loss).
"""

import argparse
import math
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from slaw_report import report  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--width", type=int, required=True)
    p.add_argument("--depth", type=int, default=2)
    p.add_argument("--lr", type=float, required=True)
    p.add_argument("--epochs", type=float, required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--examples-per-epoch", type=int, default=8000)
    p.add_argument("--points", type=int, default=8)
    args = p.parse_args()

    w, depth = args.width, args.depth
    weights = 784 * w + (depth - 1) * w * w + w * 10
    params = weights + depth * w + 10
    # 2 FLOPs per multiply-add forward, x3 for forward and backward.
    report(params=params, flops_per_example=6 * weights)
    print(f"toy MLP 784-{w}x{depth}-10: {params} parameters, lr {args.lr}, {args.epochs} epochs")

    rng = random.Random(args.seed * 1000003 + w * 31 + depth)
    steps = max(1, math.ceil(args.epochs * args.examples_per_epoch / args.batch_size))
    lr_opt = 0.02 * (params / 1e4) ** -0.3
    penalty = 1.0 + 0.08 * math.log2(args.lr / lr_opt) ** 2
    diverges = args.lr > 30 * lr_opt
    marks = sorted({max(1, round(steps ** (i / args.points))) for i in range(1, args.points + 1)})
    for step in marks:
        seen = step * args.batch_size
        loss = (0.3 + 20.0 / params**0.35 + 10.0 / seen**0.3) * penalty
        loss *= 1.0 + 0.003 * rng.gauss(0.0, 1.0)
        lr_now = args.lr * 0.5 * (1.0 + math.cos(math.pi * step / steps))
        if diverges and step > marks[0]:
            loss = float("nan")
        report(step=step, examples=seen, train_loss=loss * 0.97, lr=lr_now)
        report(step=step, val_loss=loss, val_accuracy=1.0 / (1.0 + loss), noise_scale=0.003)
        print(f"step {step}/{steps}: val loss {loss:.4f}")


if __name__ == "__main__":
    main()
