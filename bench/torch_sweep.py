#!/usr/bin/env python3
"""The baseline slaw must beat: a sequential PyTorch loop over a sweep's grid, one trial after
another on one GPU, as its users run it today.

It trains exactly the trials of `slaw plan --json SWEEP.yaml` (same ViT or MLP as
bench/torch_step.py, same batch, steps, AdamW, warm-up + cosine, clipping, evaluation points)
on the same Fashion-MNIST t10k files (data/fashion-mnist, the split sizes of the sweep), and
reports the wall time of the whole grid and every trial's final validation loss as JSON.

    target/release/slaw plan --json bench/sweep-gpu.yaml > plan.json
    python3 bench/torch_sweep.py plan.json [--device cuda] > torch_sweep.json
"""
import argparse
import gzip
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(__file__))
from torch_step import Mlp, Vit  # noqa: E402

MEAN, STD = 0.2860, 0.3530


def load_t10k(root):
    with gzip.open(os.path.join(root, "t10k-images-idx3-ubyte.gz")) as f:
        images = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)
    with gzip.open(os.path.join(root, "t10k-labels-idx1-ubyte.gz")) as f:
        labels = np.frombuffer(f.read(), np.uint8, offset=8)
    return (images.astype(np.float32) / 255.0 - MEAN) / STD, labels.astype(np.int64)


def patches(x, p):
    n, h, w = x.shape
    return x.reshape(n, h // p, p, w // p, p).transpose(0, 1, 3, 2, 4).reshape(n, (h // p) * (w // p), p * p)


def eval_steps(points, spacing, total):
    steps = set()
    for i in range(1, points + 1):
        frac = i / points
        s = round(frac * total) if spacing == "linear" else round(total ** frac)
        steps.add(min(max(s, 1), total))
    steps.add(total)
    return sorted(steps)


def run_trial(t, images, labels, dev, mixed=False):
    c = t["config"]
    data, model_cfg, optim = c["data"], c["model"], c["optim"]
    rng = np.random.default_rng(data["split_seed"])
    order = rng.permutation(len(labels))
    val_idx, train_idx = order[:data["validation"]], order[data["validation"]:]
    if data.get("train_limit"):
        train_idx = train_idx[:data["train_limit"]]
    torch.manual_seed(c["seed"])
    if model_cfg["family"] == "vit":
        p = model_cfg["patch"]
        x = patches(images, p)
        pooled_tokens = x.shape[1]
        if model_cfg["pool"] != "mean":
            raise SystemExit("bench/torch_sweep.py builds mean-pooled ViTs only")
        model = Vit(p * p, pooled_tokens, model_cfg["width"], model_cfg["depth"], model_cfg["heads"], 10)
    else:
        x = images.reshape(len(images), -1)
        model = Mlp(x.shape[1], model_cfg["width"], model_cfg["depth"], 10)
    model = model.to(dev)
    xt = torch.from_numpy(x[train_idx]).to(dev)
    yt = F.one_hot(torch.from_numpy(labels[train_idx]), 10).float().to(dev)
    xv = torch.from_numpy(x[val_idx]).to(dev)
    yv = torch.from_numpy(labels[val_idx]).to(dev)
    o = optim["optimizer"]
    opt = torch.optim.AdamW(model.parameters(), lr=optim["lr"], betas=(o["beta1"], o["beta2"]),
                            eps=o["eps"], weight_decay=optim["weight_decay"])
    total, batch = t["steps"], c["batch_size"]
    warm = min(total, round(optim["warmup"] * total))
    evals = eval_steps(c["eval"]["points"], c["eval"]["spacing"], total)
    gen = torch.Generator().manual_seed(c["seed"])
    n, perm, cursor = len(train_idx), None, len(train_idx)
    val_loss, acc = None, None
    for s in range(total):
        idx = []
        while len(idx) < batch:
            if cursor == n:
                perm, cursor = torch.randperm(n, generator=gen), 0
            take = min(batch - len(idx), n - cursor)
            idx.extend(perm[cursor:cursor + take].tolist())
            cursor += take
        idx = torch.tensor(idx, device=dev)
        if s < warm:
            lr = optim["lr"] * (s + 1) / warm
        else:
            lr = optim["lr"] * 0.5 * (1 + math.cos(math.pi * min(1.0, (s - warm) / max(1, total - warm))))
        for g in opt.param_groups:
            g["lr"] = lr
        with torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=mixed):
            logits = model(xt.index_select(0, idx))
        loss = -(F.log_softmax(logits.float(), dim=1) * yt.index_select(0, idx)).sum(dim=1).mean()
        loss.backward()
        if optim.get("grad_clip"):
            torch.nn.utils.clip_grad_norm_(model.parameters(), optim["grad_clip"])
        opt.step()
        opt.zero_grad(set_to_none=True)
        acc = loss.detach() if acc is None else acc + loss.detach()
        if (s + 1) % 10 == 0:
            float(acc)
            acc = None
        if s + 1 in evals:
            with torch.no_grad(), torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=mixed):
                out = model(xv).float()
                val_loss = float(F.cross_entropy(out, yv))
                if not math.isfinite(val_loss):
                    return None
    return val_loss


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("plan")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--precision", default="f32", choices=["f32", "bf16-mixed"],
                    help="bf16-mixed: the forward under torch.autocast(bfloat16), as slaw's bf16-mixed")
    ap.add_argument("--data", default=os.path.join(os.path.dirname(__file__), "..", "data", "fashion-mnist"))
    a = ap.parse_args()
    plan = json.load(open(a.plan))
    images, labels = load_t10k(a.data)
    dev = torch.device(a.device)
    start = time.perf_counter()
    results = []
    for t in plan["trials"]:
        t0 = time.perf_counter()
        loss = run_trial(t, images, labels, dev, a.precision == "bf16-mixed")
        results.append({"key": t["key"], "size": t["size"], "epochs": t["epochs"], "lr": t["lr"],
                        "val_loss": loss, "seconds": time.perf_counter() - t0})
        print(json.dumps(results[-1]), file=sys.stderr)
    wall = time.perf_counter() - start
    print(json.dumps({"framework": f"torch {torch.__version__}", "precision": a.precision, "trials": len(results),
                      "wall_seconds": wall, "results": results}))


if __name__ == "__main__":
    main()
