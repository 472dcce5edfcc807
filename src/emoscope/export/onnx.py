"""Export a trained run to a self-describing ONNX file: logits [N, classes] with metadata that
lets anyone preprocess correctly without our code (classes, input size, colour, mean/std, face crop,
temperature)."""

from __future__ import annotations

import os

import numpy as np
import torch

from ..contract import NORM_MEAN, NORM_STD, CropRule, ModelMeta, normalize_u8
from ..data import load_dataset
from ..data.dataset import HOLDOUT_KEYS
from ..evaluate.calibration import fit_temperature
from ..train.config import TrainConfig
from ..train.trainer import holdout_splits, load_run_model, predict_logits


def export_onnx(run: str, out: str, temperature: float | None = None, opset: int = 18,
                crop: CropRule | None = None, use_ema: bool = True, extra_meta: dict | None = None,
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
    meta = ModelMeta(classes, (size, size), cfg["color"], NORM_MEAN, NORM_STD, crop or CropRule(), float(temperature),
                     extra={"architecture": cfg["model"], "producer": "emoscope",
                            "holdout": {k: cfg[k] for k in HOLDOUT_KEYS if k in cfg}, **(extra_meta or {})})
    set_props(proto, meta.to_props())
    onnx.checker.check_model(proto)
    onnx.save(proto, out)
    sess = ort.InferenceSession(out, providers=["CPUExecutionProvider"])
    x = normalize_u8(val.images)
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
    proto = onnx.load(dst)
    set_props(proto, {p.key: p.value for p in onnx.load(src).metadata_props})
    onnx.save(proto, dst)
    return {"path": dst, "bytes": os.path.getsize(dst)}


def set_props(proto, props: dict[str, str]) -> None:
    """Replace an ONNX model's metadata_props."""
    del proto.metadata_props[:]
    for k, v in props.items():
        proto.metadata_props.add(key=k, value=v)
