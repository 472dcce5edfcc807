"""Training throughput (images/s) of every registered model at 48x48 gray, batch 128, with the
batched augmentation, in fp32 and with bf16 autocast + channels_last. Same process, same data.
Usage: python benchmarks/bench_train.py [--steps N] [--models a,b]
"""

import argparse
import json
import time

import torch
import torch.nn.functional as F

from emoscope.models import count_flops, count_params, create_model, list_models
from emoscope.train.augment import augment
from emoscope.train.config import AugmentConfig
from emoscope.models.checkpoint import normalize


def throughput(name: str, fast: bool, steps: int, batch: int = 128) -> float:
    torch.manual_seed(0)
    model = create_model(name)
    if fast:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True)
    x8 = torch.randint(0, 256, (batch, 1, 48, 48), dtype=torch.uint8)
    y = torch.randint(0, 7, (batch,))
    aug = AugmentConfig()
    t0 = None
    for i in range(steps + 2):
        if i == 2:
            t0 = time.perf_counter()
        x = normalize(augment(x8.float() / 255, aug))
        if fast:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=fast):
            out = model(x)
        loss = F.cross_entropy(out.float(), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return steps * batch / (time.perf_counter() - t0)


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--models", default=",".join(list_models()))
    args = p.parse_args()
    torch.set_num_threads(2)
    rows = []
    for name in args.models.split(","):
        m = create_model(name)
        fp32 = throughput(name, False, args.steps)
        fast = throughput(name, True, args.steps)
        rows.append({"model": name, "params": count_params(m), "macs": count_flops(m), "fp32_img_s": round(fp32, 1),
                     "bf16_cl_img_s": round(fast, 1), "speedup": round(fast / fp32, 2)})
        print(json.dumps(rows[-1]), flush=True)
    print("\n| model | params | MACs | fp32 img/s | bf16 + channels_last img/s | speed-up |\n|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['params'] / 1e6:.2f}M | {r['macs'] / 1e6:.0f}M | {r['fp32_img_s']} | "
              f"{r['bf16_cl_img_s']} | {r['speedup']}x |")
