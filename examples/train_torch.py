#!/usr/bin/env python3
"""Train an MLP on Fashion-MNIST with PyTorch and report to slaw: the example of slaw's command
trainer (sweeps/torch-command.yaml), and a template for your own script.

    python3 examples/train_torch.py --width 256 --depth 2 --lr 0.002 --epochs 2

Data: the IDX files (train-images-idx3-ubyte.gz, ...) in --data or $SLAW_DATA when they hold the
60 000-image train split; otherwise the 10 000-image t10k split vendored in the repository
(data/fashion-mnist), so that it runs with no download. A fixed, seeded split holds out
--validation images. The whole data set lives on the device; every step draws a batch from a
seeded permutation. AdamW with linear warm-up and cosine decay to zero at the last step.

Reports (through slaw_report, to $SLAW_METRICS): params and training FLOPs per example once
(2 FLOPs per multiply-add, x3 for the backward pass: 6 x the weights of the linear layers), then
at log-spaced steps the mean training loss since the previous point, validation loss and
accuracy, the learning rate, and two metrics slaw does not know (grad_norm,
examples_per_second), which it stores as they are. A non-finite loss ends the run (slaw records
the trial as diverged).
"""

import argparse
import gzip
import math
import os
import struct
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from slaw_report import report  # noqa: E402

VENDORED = os.path.join(HERE, "..", "data", "fashion-mnist")


def read_idx(path):
    """An IDX file (gzip) as a uint8 tensor."""
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = struct.unpack(">" + "I" * ndim, data[4 : 4 + 4 * ndim])
    return torch.frombuffer(bytearray(data[4 + 4 * ndim :]), dtype=torch.uint8).reshape(dims)


def load(data_dir):
    """Images and labels of the train split in data_dir if it has one, else of t10k."""
    for directory, prefix in ((data_dir, "train"), (VENDORED, "t10k")):
        if not directory:
            continue
        images = os.path.join(directory, f"{prefix}-images-idx3-ubyte.gz")
        labels = os.path.join(directory, f"{prefix}-labels-idx1-ubyte.gz")
        if os.path.exists(images) and os.path.exists(labels):
            return prefix, read_idx(images), read_idx(labels)
    sys.exit(f"no Fashion-MNIST files in {data_dir!r} nor in {VENDORED!r}")


class MLP(nn.Module):
    def __init__(self, width, depth, inputs=784, classes=10):
        super().__init__()
        dims = [inputs] + [width] * depth
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims, dims[1:]))
        self.out = nn.Linear(width, classes)

    def forward(self, x):
        for layer in self.hidden:
            x = F.gelu(layer(x))
        return self.out(x)


def schedule(step, steps, warmup):
    """Learning-rate multiplier: linear warm-up, then cosine decay to 0 at the last step."""
    if step <= warmup:
        return step / max(1, warmup)
    progress = (step - warmup) / max(1, steps - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def eval_steps(steps, points):
    """Log-spaced evaluation steps ending at the last step (as slaw's own trainer does)."""
    return sorted({min(steps, max(1, round(steps ** (i / points)))) for i in range(1, points + 1)})


@torch.no_grad()
def evaluate(model, x, y, batch=4096):
    model.eval()
    loss, correct = 0.0, 0
    for i in range(0, len(x), batch):
        logits = model(x[i : i + batch])
        loss += F.cross_entropy(logits, y[i : i + batch], reduction="sum").item()
        correct += (logits.argmax(1) == y[i : i + batch]).sum().item()
    model.train()
    return loss / len(x), correct / len(x)


def main():
    p = argparse.ArgumentParser(description="PyTorch MLP on Fashion-MNIST, reporting to slaw")
    p.add_argument("--width", type=int, required=True)
    p.add_argument("--depth", type=int, default=2)
    p.add_argument("--lr", type=float, required=True)
    p.add_argument("--epochs", type=float, required=True)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--warmup", type=float, default=0.05, help="fraction of the steps")
    p.add_argument("--validation", type=int, default=None, help="held-out images")
    p.add_argument("--points", type=int, default=8, help="evaluations")
    p.add_argument("--data", default=os.environ.get("SLAW_DATA"))
    p.add_argument("--device", default=os.environ.get("SLAW_DEVICE"))
    args = p.parse_args()

    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    split, images, labels = load(args.data)
    validation = args.validation or (10_000 if split == "train" else 2_000)
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(0))
    x = ((images.float() / 255.0 - 0.2860) / 0.3530).reshape(len(images), -1)
    x, y = x[order].to(device), labels[order].long().to(device)
    x_val, y_val, x_train, y_train = x[:validation], y[:validation], x[validation:], y[validation:]
    n = len(x_train)

    torch.manual_seed(args.seed)
    model = MLP(args.width, args.depth).to(device)
    params = sum(q.numel() for q in model.parameters())
    weights = sum(m.weight.numel() for m in model.modules() if isinstance(m, nn.Linear))
    report(params=params, flops_per_example=6 * weights)
    print(f"MLP 784-{args.width}x{args.depth}-10 on {device}: {params} parameters; "
          f"Fashion-MNIST {split}: {n} training, {validation} validation images", flush=True)

    steps = max(1, math.ceil(args.epochs * n / args.batch_size))
    warmup = round(args.warmup * steps)
    marks = set(eval_steps(steps, args.points))
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.999), eps=1e-8,
                            weight_decay=args.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: schedule(s + 1, steps, warmup))
    g = torch.Generator(device=device).manual_seed(args.seed)
    perm, cursor = torch.randperm(n, device=device, generator=g), 0
    loss_sum = torch.zeros((), device=device)
    since, seen, start = 0, 0, time.time()
    for step in range(1, steps + 1):
        if cursor + args.batch_size > n:
            perm, cursor = torch.randperm(n, device=device, generator=g), 0
        idx = perm[cursor : cursor + args.batch_size]
        cursor += args.batch_size
        loss = F.cross_entropy(model(x_train[idx]), y_train[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = None
        if step in marks:
            grad_norm = torch.linalg.vector_norm(
                torch.stack([q.grad.norm() for q in model.parameters() if q.grad is not None]))
        lr_now = opt.param_groups[0]["lr"]
        opt.step()
        sched.step()
        loss_sum += loss.detach()
        since += 1
        seen += len(idx)
        if step in marks:
            train_loss = (loss_sum / since).item()
            loss_sum.zero_()
            since = 0
            if not math.isfinite(train_loss):
                report(step=step, examples=seen, train_loss=train_loss, lr=lr_now)
                print(f"step {step}: loss is {train_loss}, stopping", flush=True)
                return
            val_loss, val_acc = evaluate(model, x_val, y_val)
            elapsed = time.time() - start
            report(step=step, examples=seen, train_loss=train_loss, val_loss=val_loss,
                   val_accuracy=val_acc, lr=lr_now, grad_norm=grad_norm,
                   examples_per_second=seen / max(elapsed, 1e-9))
            print(f"step {step}/{steps}: train {train_loss:.4f} val {val_loss:.4f} "
                  f"acc {val_acc:.4f} ({elapsed:.1f} s)", flush=True)


if __name__ == "__main__":
    main()
