"""`emoscope average`: the mean of the weights of runs fine-tuned from one starting point (a "model
soup", Wortsman et al. 2022). Fine-tunes of one network stay in one basin of the loss, so their mean
is a network of the same size and speed that usually generalises better than each of them; runs
from different starts average to nonsense, which the export's validation numbers would show.
Gray runs average with colour runs started from them: each gray network is first spread over R, G
and B by luma (`gray_to_rgb`), so the mean reads colour. The result is a run folder with a best.pt (the EMA weights where the runs have them) that
`emoscope export`, `evaluate` and `init` read like any other."""

from __future__ import annotations

import json
import os

import torch

from ..models.checkpoint import run_checkpoint
from .trainer import gray_to_rgb

MUST_MATCH = ("model", "model_kwargs", "img_size")


def average_runs(runs: list[str], out: str) -> str:
    """Write the mean of the runs' weights to `out`/best.pt (with the first run's config and the
    list of runs); returns its path."""
    if len(runs) < 2:
        raise ValueError("give at least two runs to average")
    cks = [torch.load(run_checkpoint(r), map_location="cpu", weights_only=False) for r in runs]
    first = cks[0]
    for run, ck in zip(runs[1:], cks[1:]):
        if ck["classes"] != first["classes"]:
            raise ValueError(f"{run}: its classes differ from those of {runs[0]}")
        for key in MUST_MATCH:
            if ck["config"].get(key) != first["config"].get(key):
                raise ValueError(f"{run}: its {key} ({ck['config'].get(key)}) differs from that of {runs[0]} "
                                 f"({first['config'].get(key)})")
    colours = [ck["config"].get("color", "gray") for ck in cks]
    if len(set(colours)) > 1 and set(colours) != {"gray", "rgb"}:
        raise ValueError(f"runs over {' and '.join(sorted(set(colours)))} input cannot be averaged")
    states = [ck["ema"] if ck.get("ema") is not None else ck["model"] for ck in cks]
    if len(set(colours)) > 1:
        target = states[colours.index("rgb")]
        states = [gray_to_rgb(s, target) if c == "gray" else s for s, c in zip(states, colours)]
        first = cks[colours.index("rgb")]
    mean = {}
    for name, ref in states[0].items():
        if ref.is_floating_point():
            mean[name] = (sum(s[name].double() for s in states) / len(states)).to(ref.dtype)
        else:  # integer buffers (BatchNorm's batch counts) are not weights
            mean[name] = ref.clone()
    config = dict(first["config"], out=out)
    sources = [os.path.abspath(r) for r in runs]
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, "best.pt")
    tmp = path + ".tmp"
    torch.save({"epoch": None, "model": mean, "ema": None, "config": config, "classes": first["classes"],
                "history": [], "averaged": sources}, tmp)
    os.replace(tmp, path)
    with open(os.path.join(out, "summary.json"), "w") as f:
        json.dump({"averaged": sources, "model": config["model"]}, f, indent=1)
    return path
