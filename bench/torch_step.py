#!/usr/bin/env python3
"""PyTorch reference for `slaw bench`: the same ViT (or MLP) training step, timed the same way.

The model is built layer for layer as slaw-train builds it (crates/slaw-train/src/model.rs):
patch embedding Linear(p²·C → d) on pre-cut patches, learned position embedding, pre-norm
blocks (LayerNorm → fused qkv Linear → softmax(QKᵀ/√dh)·V → out Linear; LayerNorm → Linear
d→4d → exact GELU → Linear 4d→d), final LayerNorm, mean pooling, Linear head. Loss: log-softmax
against one-hot targets. AdamW (β 0.9/0.999, ε 1e-8, no weight decay), global-norm clipping to
1.0, warm-up + cosine learning rate set every step. Batches are gathered each step from a
device-resident data set with a seeded permutation, as slaw does; the loss is read back every
10 steps (slaw reads it every 10–50). Prints one JSON line.

    python3 bench/torch_step.py --width 128 --depth 4 --heads 4 --image 32 --batch 256 \
        --steps 200 --mode f32|bf16|bf16-compile [--device cuda|cpu] [--threads 2]
"""
import argparse
import json
import math
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


FUSED_ATTENTION = False


class Block(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.out = nn.Linear(d, d)
        self.norm2 = nn.LayerNorm(d)
        self.fc1 = nn.Linear(d, 4 * d)
        self.fc2 = nn.Linear(4 * d, d)

    def attn(self, x):
        b, t, d = x.shape
        h, dh = self.heads, d // self.heads
        q, k, v = self.qkv(x).chunk(3, dim=2)
        q, k, v = (z.reshape(b, t, h, dh).transpose(1, 2) for z in (q, k, v))
        if FUSED_ATTENTION:
            # PyTorch's fused attention (flash / cuDNN / memory-efficient kernels): measures
            # what a fused attention would save over the two products and the softmax.
            y = F.scaled_dot_product_attention(q, k, v)
        else:
            scores = (q @ k.transpose(2, 3)) * (1.0 / math.sqrt(dh))
            y = torch.softmax(scores, dim=3) @ v
        return self.out(y.transpose(1, 2).reshape(b, t, d))

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.fc2(F.gelu(self.fc1(self.norm2(x))))


class Vit(nn.Module):
    def __init__(self, patch_dim, tokens, d, depth, heads, classes):
        super().__init__()
        self.patch_embedding = nn.Linear(patch_dim, d)
        self.position_embedding = nn.Parameter(torch.randn(1, tokens, d) * 0.02)
        self.blocks = nn.ModuleList([Block(d, heads) for _ in range(depth)])
        self.final_norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, classes)

    def forward(self, x):
        x = self.patch_embedding(x) + self.position_embedding
        for b in self.blocks:
            x = b(x)
        return self.head(self.final_norm(x).mean(dim=1))


class Mlp(nn.Module):
    def __init__(self, features, width, depth, classes):
        super().__init__()
        dims = [features] + [width] * depth
        self.hidden = nn.ModuleList([nn.Linear(a, b) for a, b in zip(dims, dims[1:])])
        self.head = nn.Linear(width, classes)

    def forward(self, x):
        for layer in self.hidden:
            x = F.gelu(layer(x))
        return self.head(x)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="vit")
    ap.add_argument("--width", type=int, required=True)
    ap.add_argument("--depth", type=int, required=True)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--patch", type=int, default=4)
    ap.add_argument("--image", type=int, default=32)
    ap.add_argument("--batch", type=int, required=True)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=30)
    ap.add_argument("--mode", default="f32", choices=["f32", "bf16", "bf16-compile"])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--peak-flops", type=float, default=None)
    ap.add_argument("--no-clip", action="store_true", help="skip global-norm gradient clipping")
    ap.add_argument("--attention", default="math", choices=["math", "sdpa"],
                    help="sdpa: F.scaled_dot_product_attention instead of products and softmax")
    a = ap.parse_args()
    global FUSED_ATTENTION
    FUSED_ATTENTION = a.attention == "sdpa"
    if a.threads:
        torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    dev = torch.device(a.device)
    classes, n = 10, a.batch * 16
    tokens = (a.image // a.patch) ** 2
    if a.model == "vit":
        patch_dim = a.patch * a.patch
        model = Vit(patch_dim, tokens, a.width, a.depth, a.heads, classes)
        x_all = torch.randn(n, tokens, patch_dim)
        d = a.width
        flops = 2 * tokens * (patch_dim * d + a.depth * (12 * d * d)) + 4 * a.depth * tokens * tokens * d + 2 * d * classes
    else:
        features = a.image * a.image
        model = Mlp(features, a.width, a.depth, classes)
        x_all = torch.randn(n, features)
        tokens = 1
        flops = 2 * (features * a.width + (a.depth - 1) * a.width * a.width + a.width * classes)
    train_flops_per_step = 3 * flops * a.batch
    y_all = F.one_hot(torch.randint(0, classes, (n,)), classes).float()
    model = model.to(dev)
    x_all, y_all = x_all.to(dev), y_all.to(dev)
    params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)

    def step_fn(x, y):
        with torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=a.mode != "f32"):
            logits = model(x)
        loss = -(F.log_softmax(logits.float(), dim=1) * y).sum(dim=1).mean()
        loss.backward()
        if not a.no_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss.detach()

    if a.mode == "bf16-compile":
        step_fn = torch.compile(step_fn)
    gen = torch.Generator(device="cpu").manual_seed(0)
    perm, cursor = torch.randperm(n, generator=gen), 0
    warm = max(1, round(0.05 * a.steps))

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()

    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    acc, t0 = None, None
    for s in range(a.steps):
        if s == a.warmup:
            sync()
            t0 = time.perf_counter()
        if cursor + a.batch > n:
            perm, cursor = torch.randperm(n, generator=gen), 0
        idx = perm[cursor:cursor + a.batch].to(dev, non_blocking=True)
        cursor += a.batch
        lr = 1e-3 * (s + 1) / warm if s < warm else 1e-3 * 0.5 * (1 + math.cos(math.pi * (s - warm) / max(1, a.steps - warm)))
        for g in opt.param_groups:
            g["lr"] = lr
        loss = step_fn(x_all.index_select(0, idx), y_all.index_select(0, idx))
        acc = loss if acc is None else acc + loss
        if (s + 1) % 10 == 0:
            float(acc)
            acc = None
    sync()
    seconds = (time.perf_counter() - t0) / (a.steps - a.warmup)
    out = {
        "framework": f"torch {torch.__version__}", "mode": a.mode, "attention": a.attention, "device": str(dev),
        "model": a.model, "width": a.width, "depth": a.depth, "heads": a.heads, "patch": a.patch,
        "image": a.image, "tokens": tokens, "batch": a.batch, "params": params,
        "timed_steps": a.steps - a.warmup, "grad_clip": not a.no_clip, "ms_per_step": seconds * 1e3,
        "examples_per_second": a.batch / seconds, "train_flops_per_step": train_flops_per_step,
        "achieved_tflops": train_flops_per_step / seconds / 1e12,
        "mfu": (train_flops_per_step / seconds / a.peak_flops) if a.peak_flops else None,
        "peak_memory_mib": (torch.cuda.max_memory_allocated() / 2**20) if dev.type == "cuda" else None,
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
