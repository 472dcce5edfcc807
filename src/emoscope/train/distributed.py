"""torchrun support: join the process group that torchrun's environment describes."""

from __future__ import annotations

import os

import torch
import torch.distributed as dist


def maybe_init_distributed() -> bool:
    """Init DDP when launched by torchrun (WORLD_SIZE > 1): NCCL on GPUs, gloo on CPUs."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or dist.is_initialized():
        return False
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend)
    return True
