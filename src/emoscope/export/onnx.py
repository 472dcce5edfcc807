"""Export a trained run to a self-describing ONNX file: logits [N, classes] with metadata that
lets anyone preprocess correctly without our code (classes, input size, colour, mean/std, face crop,
temperature, valence thresholds; `emoscope.contract`). An ensemble (`emoscope ensemble`) is one graph
whose output is the mean of its members' logits."""

from __future__ import annotations

import os
from dataclasses import asdict

import numpy as np
import torch

from ..contract import NORM_MEAN, NORM_STD, CropRule, ModelMeta, normalize_u8, write_props
from ..data import Dataset
from ..data.dataset import HOLDOUT_KEYS, run_sources
from ..evaluate.calibration import fit_class_bias, fit_temperature, fit_valence
from ..metrics import softmax
from ..train.config import TrainConfig
from ..models.checkpoint import LogitMean, load_run_model, predict_logits


def export_onnx(run: str, out: str, temperature: float | None = None, opset: int = 18,
                crop: dict | None = None, use_ema: bool = True, extra_meta: dict | None = None,
                int8: str | None = None, class_bias: bool = True, bias_objective: str = "balanced",
                bias_cap: float | None = None) -> dict:
    """Write `out` (.onnx). If `temperature` is None it is fitted on the validation splits of all
    the run's sources together. The valence thresholds are fitted on the validation photos of its
    detector-cropped (real-face) sources, when it has any. With `class_bias`, per-class logit offsets
    are fitted on the primary source's validation part to maximise its balanced accuracy, or its
    macro-F1 with `bias_objective="macro_f1"`, each within +-`bias_cap` logits when given (applied
    before the valence fit): for the FER+ recipe that part is thousands of people, while web_faces
    val's rarer classes are one or two people each, and offsets fitted to them did not carry over
    to other people (`experiments/class_bias.py`, folds by person). `crop` overrides keys of the run's crop rule.
    With `int8`, also write a statically quantised copy there, calibrated on validation images.

    Returns a report: path, size, max |torch - onnxruntime| on validation images, temperature.
    """
    import onnx
    import onnxruntime as ort

    model, cfg, classes = load_run_model(run, use_ema)
    cfg = asdict(TrainConfig.from_dict(cfg))
    size = cfg["img_size"]
    vals = [s.data.split("val") for s in run_sources(cfg)]
    val = Dataset.concat(vals)
    torch_logits = predict_logits(model, val.images, channels_last=False, bf16=False)
    if temperature is None:
        temperature = fit_temperature(torch_logits, val.labels)
    source_of = np.concatenate([np.full(len(v), i) for i, v in enumerate(vals)])
    primary = source_of == 0
    bias = fit_class_bias(torch_logits[primary], val.labels[primary], temperature, source_of[primary],
                          objective=bias_objective, cap=bias_cap) if class_bias else None
    valence = None
    real = np.concatenate([np.full(len(v), i > 0 and bool(cfg["sources"][i - 1].get("faces")))
                           for i, v in enumerate(vals)])
    if real.any():
        valence = fit_valence(softmax(torch_logits[real], temperature, bias), val.labels[real], classes).to_dict()
    in_chans = 1 if cfg["color"] == "gray" else 3
    dummy = torch.zeros(2, in_chans, size, size)
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    torch.onnx.export(model, (dummy,), out, input_names=["input"], output_names=["logits"], opset_version=opset,
                      dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}}, dynamo=False)
    proto = onnx.load(out)
    architecture = " + ".join(model.names) if isinstance(model, LogitMean) else cfg["model"]
    extra = {"architecture": architecture, "producer": "emoscope", "holdout": {k: cfg[k] for k in HOLDOUT_KEYS},
             "training_data": [cfg["data"]] + [s["data"] for s in cfg["sources"]]}
    if valence:
        extra["valence"] = valence
    meta = ModelMeta(classes, (size, size), cfg["color"], NORM_MEAN, NORM_STD, CropRule.from_dict({**cfg["crop"], **(crop or {})}),
                     float(temperature), extra={**extra, **(extra_meta or {})}, class_bias=bias)
    write_props(proto, meta.to_props())
    onnx.checker.check_model(proto)
    onnx.save(proto, out)
    sess = ort.InferenceSession(out, providers=["CPUExecutionProvider"])
    x = normalize_u8(val.images)
    ort_logits = sess.run(None, {"input": x[:512]})[0]
    diff = float(np.abs(ort_logits - torch_logits[:512]).max())
    report = {"path": out, "bytes": os.path.getsize(out), "max_abs_diff": diff, "temperature": float(temperature),
              "class_bias": bias, "valence": valence, "crop": asdict(meta.crop), "opset": opset, "classes": classes}
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
    write_props(proto, {p.key: p.value for p in onnx.load(src).metadata_props})
    onnx.save(proto, dst)
    return {"path": dst, "bytes": os.path.getsize(dst)}

