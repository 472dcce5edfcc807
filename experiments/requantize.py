"""Make an expression model's int8 copy again from its fp32 file, as `emoscope export --int8` would
(`emoscope.export.onnx.quantize_int8`: static QDQ, per-channel 7-bit weights, calibrated on the
first 1,024 validation images of the recipe, FER+ PublicTest's), for files whose run folders are
gone. The fp32 file's metadata is carried over; fit the int8 file's blendshape expert again after.

Usage: python experiments/requantize.py FP32.onnx INT8.onnx RECIPE.json
"""

from __future__ import annotations

import sys
from dataclasses import asdict

import numpy as np

from emoscope.contract import normalize_u8
from emoscope.data.dataset import run_sources
from emoscope.export.onnx import CALIBRATION_IMAGES, quantize_int8
from emoscope.runtime import ExpressionClassifier
from emoscope.train.config import TrainConfig


def main() -> None:
    fp32, int8, recipe = sys.argv[1:4]
    cfg = asdict(TrainConfig.load(recipe))
    cfg["img_size"] = ExpressionClassifier(fp32).meta.input_size[0]
    primary_val = run_sources(cfg)[0].data.split("val")
    print(quantize_int8(fp32, int8, np.ascontiguousarray(normalize_u8(primary_val.images[:CALIBRATION_IMAGES]))))


if __name__ == "__main__":
    main()
