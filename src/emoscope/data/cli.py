"""`emoscope data inspect` and `emoscope data audit`."""

from __future__ import annotations

import argparse
import json
import os
import sys

from ..contract import IMG_SIZE


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", help="dataset folder, .zip or .csv (layout auto-detected)")
    p.add_argument("--size", type=int, default=IMG_SIZE, help=f"side to which images are resized (default {IMG_SIZE})")
    p.add_argument("--color", default="gray", choices=["gray", "rgb"])
    p.add_argument("--no-cache", action="store_true", help="decode again instead of using the cache")


def add_inspect_arguments(p: argparse.ArgumentParser) -> None:
    _common(p)
    p.add_argument("--out", help="report folder (default: emoscope-inspect/<name>)")
    p.add_argument("--per-class", type=int, default=8, help="samples per class in the grid")
    p.add_argument("--json", action="store_true", help="print the statistics as JSON")


def add_audit_arguments(p: argparse.ArgumentParser) -> None:
    _common(p)
    p.add_argument("--out", help="output folder (default: emoscope-audit/<name>)")
    p.add_argument("--phash-bits", type=int, default=2, help="max differing bits for near duplicates")
    p.add_argument("--detector-model", help="YuNet ONNX path for the non-face check "
                   "(else $EMOSCOPE_YUNET_MODEL / cache / download)")
    p.add_argument("--no-face-check", action="store_true", help="skip the non-face check")
    p.add_argument("--exclude-non-faces", action="store_true", help="also put likely non-faces in exclude.txt")


def add_split_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", help="dataset folder or .zip (every sample is split, whatever its folders say)")
    p.add_argument("--out", required=True, help="split file to write (id,split lines)")
    p.add_argument("--val", type=float, default=0.15, help="share of each class for val (default 0.15)")
    p.add_argument("--test", type=float, default=0.15, help="share of each class for test (default 0.15)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--group", default="", help="regular expression whose first group, matched in each file name "
                   "(without extension), names a group kept in one split, e.g. the person: '^(.*?)_?[0-9]*$'")


def run_split(args) -> int:
    from .dataset import load_dataset, write_split_file
    counts = write_split_file(load_dataset(args.path, 8, "gray"), args.out, args.val, args.test, args.seed,
                              args.group)
    print(json.dumps({"split_file": args.out, "counts": counts}, indent=1))
    return 0


def _load(args):
    from .dataset import load_dataset
    from .readers import DatasetError
    try:
        return load_dataset(args.path, args.size, args.color, cache=not args.no_cache)
    except (DatasetError, ValueError) as exc:
        raise SystemExit(f"emoscope data: {exc}")


def _name(path: str) -> str:
    return os.path.splitext(os.path.basename(os.path.normpath(path)))[0]


def run_inspect(args) -> int:
    from .inspect import inspect_report
    ds = _load(args)
    st, html = inspect_report(ds, args.out or os.path.join("emoscope-inspect", _name(args.path)), args.per_class)
    st["report"] = html
    if args.json:
        print(json.dumps(st, indent=1))
    else:
        print(f"{st['layout']}: {st['total']:,} images; splits {st['splits']}; imbalance {st['imbalance_ratio']}")
        for s, c in st["counts"].items():
            print(f"  {s:<6}" + "  ".join(f"{k} {v:,}" for k, v in c.items()))
        print(f"report: {html}")
    return 0


def run_audit(args) -> int:
    from .audit import audit, write_findings
    ds = _load(args)
    model = None
    if not args.no_face_check:
        from ..runtime.assets import ModelNotFoundError, yunet_model
        try:
            model = yunet_model(args.detector_model)
        except ModelNotFoundError as exc:
            print(f"warning: non-face check skipped: {exc}", file=sys.stderr)
    findings, summary = audit(ds, args.phash_bits, detector_model=model, exclude_non_faces=args.exclude_non_faces)
    csv_path, excl = write_findings(findings, args.out or os.path.join("emoscope-audit", _name(args.path)))
    print(json.dumps({"summary": summary, "findings": csv_path, "exclude": excl}, indent=1))
    return 0
