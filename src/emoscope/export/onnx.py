"""Export a trained run to a self-describing ONNX file: logits [N, classes] with metadata that
lets anyone preprocess correctly without our code (classes, input size, colour, mean/std, face crop,
temperature)."""

from __future__ import annotations

import json
import os

import numpy as np
import torch

from ..data import load_dataset
from ..data.dataset import HOLDOUT_KEYS
from ..evaluate.calibration import fit_temperature
from ..train.config import TrainConfig
from ..train.trainer import NORM_MEAN, NORM_STD, holdout_splits, load_run_model, predict_logits

# How a detected face box becomes the model input: grow the box by `margin` of its size on every
# side, make it square around its centre, resize to input_size, and (gray models trained on FER2013,
# whose faces are mostly histogram-equalised) equalise the histogram.
DEFAULT_CROP = {"margin": 0.1, "square": True, "equalize": False}


def export_onnx(run: str, out: str, temperature: float | None = None, opset: int = 18,
                crop: dict | None = None, use_ema: bool = True, extra_meta: dict | None = None,
                int8: str | None = None) -> dict:
    """Write `out` (.onnx). If `temperature` is None it is fitted on the run's validation split.
    With `int8`, also write a statically quantised copy there, calibrated on validation images.

    Returns a report: path, size, max |torch - onnxruntime| on validation images, temperature.
    """
    import onnx
    import onnxruntime as ort

    model, cfg, classes = load_run_model(run, use_ema)
    size = cfg["img_size"]
    ds = holdout_splits(load_dataset(cfg["data"], size, cfg["color"], verbose=False), TrainConfig.from_dict(cfg))
    val = ds.split("val")
    torch_logits = predict_logits(model, val.images, channels_last=False, bf16=False)
    if temperature is None:
        temperature = fit_temperature(torch_logits, val.labels)
    in_chans = 1 if cfg["color"] == "gray" else 3
    dummy = torch.zeros(2, in_chans, size, size)
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    torch.onnx.export(model, (dummy,), out, input_names=["input"], output_names=["logits"], opset_version=opset,
                      dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}}, dynamo=False)
    proto = onnx.load(out)
    meta = {
        "classes": json.dumps(classes), "input_size": json.dumps([size, size]), "color": cfg["color"],
        "mean": json.dumps(NORM_MEAN), "std": json.dumps(NORM_STD), "crop": json.dumps(crop or DEFAULT_CROP),
        "temperature": json.dumps(round(float(temperature), 4)), "output": "logits",
        "architecture": cfg["model"], "producer": "emoscope",
        "holdout": json.dumps({k: cfg[k] for k in HOLDOUT_KEYS if k in cfg}),
    }
    meta.update({k: v if isinstance(v, str) else json.dumps(v) for k, v in (extra_meta or {}).items()})
    del proto.metadata_props[:]
    for k, v in meta.items():
        proto.metadata_props.add(key=k, value=v)
    onnx.checker.check_model(proto)
    onnx.save(proto, out)
    sess = ort.InferenceSession(out, providers=["CPUExecutionProvider"])
    x = ((val.images.astype(np.float32) / 255.0 - NORM_MEAN) / NORM_STD)
    x = x[:, None] if x.ndim == 3 else x.transpose(0, 3, 1, 2)
    ort_logits = sess.run(None, {"input": x[:512]})[0]
    diff = float(np.abs(ort_logits - torch_logits[:512]).max())
    report = {"path": out, "bytes": os.path.getsize(out), "max_abs_diff": diff, "temperature": float(temperature),
              "opset": opset, "classes": classes}
    if int8:
        report["int8"] = quantize_int8(out, int8, np.ascontiguousarray(x[:1024]))
    return report


def quantize_int8(src: str, dst: str, calibration: np.ndarray) -> dict:
    """Static int8 quantisation (QDQ, per-channel weights) calibrated on normalised images
    (N, C, H, W float32); the metadata is carried over unchanged."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.batches = iter([{"input": calibration[i:i + 64]} for i in range(0, len(calibration), 64)])

        def get_next(self):
            return next(self.batches, None)

    pre = dst + ".pre.onnx"
    quant_pre_process(src, pre)
    quantize_static(pre, dst, Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    os.remove(pre)
    meta = {p.key: p.value for p in onnx.load(src).metadata_props}
    proto = onnx.load(dst)
    del proto.metadata_props[:]
    for k, v in meta.items():
        proto.metadata_props.add(key=k, value=v)
    onnx.save(proto, dst)
    return {"path": dst, "bytes": os.path.getsize(dst)}
