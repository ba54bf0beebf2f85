#!/usr/bin/env python3
"""The device's measured bf16 matmul peak (8192³ through cuBLAS, random data, median of 20
after 5 warm-ups), the denominator of MFU in docs/PERFORMANCE.md. Prints one JSON line."""
import json
import torch

n = 8192
a = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
b = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
for _ in range(5):
    a @ b
torch.cuda.synchronize()
times = []
for _ in range(20):
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    a @ b
    end.record()
    torch.cuda.synchronize()
    times.append(start.elapsed_time(end) / 1e3)
times.sort()
t = times[len(times) // 2]
print(json.dumps({"device": torch.cuda.get_device_name(), "bf16_matmul_tflops": 2 * n ** 3 / t / 1e12}))
