"""Several trained runs as one run folder that `emoscope export`, `evaluate` and teachers read like
any other.

- `average_runs` (`emoscope average`): the mean of the weights of runs fine-tuned from one starting
  point (a "model soup", Wortsman et al. 2022). Fine-tunes of one network stay in one basin of the
  loss, so their mean is a network of the same size and speed that usually generalises better than
  each of them; runs from different starts average to nonsense, which the export's validation
  numbers would show. Gray runs average with colour runs started from them: each gray network is
  first spread over R, G and B by luma (`gray_to_rgb`), so the mean reads colour.
- `ensemble_runs` (`emoscope ensemble`): any runs over the same classes and crop kept whole, their
  logits averaged (`models.checkpoint.LogitMean`). Runs from different starts, and networks trained
  at other input sizes, may join: the ensemble reads the input size of its config's run (below),
  and a member trained at another size gets its input resized in the graph (`Resized`: a whole
  factor smaller, or any size larger). It costs the sum of the members' time per face.
"""

from __future__ import annotations

import json
import os

import torch

from ..models.checkpoint import check_resizable, checkpoint_state, gray_to_rgb, run_checkpoint

SOUP_MUST_MATCH = ("model", "model_kwargs", "img_size")
ENSEMBLE_MUST_MATCH = ("crop",)


def _load(runs: list[str], must_match: tuple[str, ...], what: str) -> tuple[list[dict], list[str], str]:
    """The runs' checkpoints, checked to agree on classes and `must_match`; their colours and the
    colour of the result (rgb when any is)."""
    if len(runs) < 2:
        raise ValueError(f"give at least 2 runs to {what}")
    cks = [torch.load(run_checkpoint(r), map_location="cpu", weights_only=False) for r in runs]
    for run, ck in zip(runs, cks):
        if ck.get("ensemble"):
            raise ValueError(f"{run} is an ensemble already; give its runs instead")
    first = cks[0]
    for run, ck in zip(runs[1:], cks[1:]):
        if ck["classes"] != first["classes"]:
            raise ValueError(f"{run}: its classes differ from those of {runs[0]}")
        for key in must_match:
            if ck["config"].get(key) != first["config"].get(key):
                raise ValueError(f"{run}: its {key} ({ck['config'].get(key)}) differs from that of {runs[0]} "
                                 f"({first['config'].get(key)})")
    colours = [ck["config"].get("color", "gray") for ck in cks]
    if len(set(colours)) > 1 and set(colours) != {"gray", "rgb"}:
        raise ValueError(f"runs over {' and '.join(sorted(set(colours)))} input cannot be combined")
    return cks, colours, "rgb" if "rgb" in colours else colours[0]


def _write(out: str, ck: dict, runs: list[str], key: str) -> str:
    """`out`/best.pt and a summary.json naming the runs; returns the checkpoint's path."""
    sources = [os.path.abspath(r) for r in runs]
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, "best.pt")
    tmp = path + ".tmp"
    torch.save({"epoch": None, "ema": None, "history": [], key: sources, **ck}, tmp)
    os.replace(tmp, path)
    with open(os.path.join(out, "summary.json"), "w") as f:
        json.dump({key: sources, "model": ck["config"]["model"]}, f, indent=1)
    return path


def average_runs(runs: list[str], out: str) -> str:
    """Write the mean of the runs' weights to `out`/best.pt (with a colour run's config, else the
    first's, and the list of runs); returns its path."""
    cks, colours, colour = _load(runs, SOUP_MUST_MATCH, "average")
    states = [checkpoint_state(ck) for ck in cks]
    first = cks[colours.index(colour)]
    if len(set(colours)) > 1:
        target = states[colours.index("rgb")]
        states = [gray_to_rgb(s, target) if c == "gray" else s for s, c in zip(states, colours)]
    mean = {}
    for name, ref in states[0].items():
        if ref.is_floating_point():
            mean[name] = (sum(s[name].double() for s in states) / len(states)).to(ref.dtype)
        else:  # integer buffers (BatchNorm's batch counts) are not weights
            mean[name] = ref.clone()
    return _write(out, {"model": mean, "config": dict(first["config"], out=out), "classes": first["classes"]},
                  runs, "averaged")


def ensemble_runs(runs: list[str], out: str) -> str:
    """Write the runs, whole, as one ensemble to `out`/best.pt: each member's config and weights; the
    ensemble's own config is a colour member's (else the first's), which sets the input size and the
    validation data that export fits the temperature and offsets on. Returns its path."""
    cks, colours, colour = _load(runs, ENSEMBLE_MUST_MATCH, "ensemble")
    first = cks[colours.index(colour)]
    for run, ck in zip(runs, cks):
        try:
            check_resizable(ck["config"]["img_size"], first["config"]["img_size"])
        except ValueError as exc:
            raise ValueError(f"{run}: {exc}; give the run of the smaller size first (the others then read "
                             f"its input enlarged)") from None
    members = [{"config": ck["config"], "state": checkpoint_state(ck)} for ck in cks]
    return _write(out, {"model": None, "ensemble": members, "config": dict(first["config"], out=out),
                        "classes": first["classes"]}, runs, "ensembled")
