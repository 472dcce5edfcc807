"""`emoscope models` and `emoscope export`."""

from __future__ import annotations

import json


def run_models(args) -> int:
    from ..models import count_flops, count_params, create_model, list_models
    print(f"{'model':<16}{'params':>12}{'MACs':>14}")
    for name in list_models():
        m = create_model(name, 7, args.in_chans)
        print(f"{name:<16}{count_params(m):>12,}{count_flops(m, args.in_chans, args.size):>14,}")
    return 0


def run_export(args) -> int:
    from .onnx import export_onnx
    crop = {"margin": args.margin, "square": True, "equalize": args.equalize}
    report = export_onnx(args.run, args.out, temperature=args.temperature, opset=args.opset, crop=crop,
                         use_ema=not args.no_ema)
    print(json.dumps(report, indent=1))
    return 0
