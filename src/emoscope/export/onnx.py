"""Export a trained run to a self-describing ONNX file: logits [N, classes] with metadata that
lets anyone preprocess correctly without our code (classes, input size, colour, mean/std, face crop,
temperature, valence thresholds; `emoscope.contract`). An ensemble (`emoscope ensemble`) is one graph
whose output is the mean of its members' logits. Files exported before may join a run's model as
more members (`join`), for when their run folders are not at hand: one graph again, each network
weighing the same, calibrated afresh on the run's validation data."""

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
from ..models.checkpoint import LogitMean, Resized, load_run_model, predict_logits


def export_onnx(run: str, out: str, temperature: float | None = None, opset: int = 18,
                crop: dict | None = None, use_ema: bool = True, extra_meta: dict | None = None,
                int8: str | None = None, class_bias: bool = True, bias_objective: str = "balanced",
                bias_cap: float | None = None, join: list[str] | None = None, fp16_weights: bool = False) -> dict:
    """Write `out` (.onnx). If `temperature` is None it is fitted on the validation splits of all
    the run's sources together. The valence thresholds are fitted on the validation photos of its
    detector-cropped (real-face) sources, when it has any. With `class_bias`, per-class logit offsets
    are fitted on the primary source's validation part to maximise its balanced accuracy, or its
    macro-F1 with `bias_objective="macro_f1"`, each within +-`bias_cap` logits when given (applied
    before the valence fit): for the FER+ recipe that part is thousands of people, while web_faces
    val's rarer classes are one or two people each, and offsets fitted to them did not carry over
    to other people (`experiments/class_bias.py`, folds by person). `crop` overrides keys of the run's crop rule.
    With `int8`, also write a statically quantised copy there, calibrated on validation images.
    With `join`, emoscope ONNX files (over the same classes, colour and crop) whose networks join the
    run's as members of one ensemble (`join_graphs`); it reads the smallest input size among them.
    With `fp16_weights`, `out` stores its weights as fp16 once the int8 copy is made from it
    (`store_weights_fp16`).

    Returns a report: path, size, max |torch - onnxruntime| on validation images, temperature.
    """
    import onnx
    import onnxruntime as ort

    model, cfg, classes = load_run_model(run, use_ema)
    cfg = asdict(TrainConfig.from_dict(cfg))
    names = model.names if isinstance(model, LogitMean) else [cfg["model"]]
    members = [JoinedFile(path, cfg, classes, opset) for path in join or []]
    size = min([cfg["img_size"]] + [m.size for m in members])
    if size != cfg["img_size"]:
        model, cfg["img_size"] = Resized(model, cfg["img_size"], size).eval(), size
    vals = [s.data.split("val") for s in run_sources(cfg)]
    val = Dataset.concat(vals)
    torch_logits = predict_logits(model, val.images, channels_last=False, bf16=False)
    x = normalize_u8(val.images)
    if members:  # the joined graph's logits: each network weighs the same
        counts = [len(names)] + [len(m.names) for m in members]
        joined = sum(n * m.logits(x, size) for n, m in zip(counts[1:], members))
        torch_logits = (counts[0] * torch_logits + joined) / sum(counts)
        names = names + [n for m in members for n in m.names]
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
    training_data = [cfg["data"]] + [s["data"] for s in cfg["sources"]]
    extra = {"architecture": " + ".join(names), "producer": "emoscope", "holdout": {k: cfg[k] for k in HOLDOUT_KEYS},
             "training_data": training_data}
    if members:
        proto = join_graphs([proto] + [m.proto for m in members], counts, [size] + [m.size for m in members])
        extra["training_data"] = list(dict.fromkeys(training_data + [d for m in members for d in m.training_data]))
        extra["joined"] = [os.path.basename(m.path) for m in members]
    if valence:
        extra["valence"] = valence
    meta = ModelMeta(classes, (size, size), cfg["color"], NORM_MEAN, NORM_STD, CropRule.from_dict({**cfg["crop"], **(crop or {})}),
                     float(temperature), extra={**extra, **(extra_meta or {})}, class_bias=bias)
    write_props(proto, meta.to_props())
    onnx.checker.check_model(proto)
    onnx.save(proto, out)
    sess = ort.InferenceSession(out, providers=["CPUExecutionProvider"])
    ort_logits = sess.run(None, {"input": x[:512]})[0]
    diff = float(np.abs(ort_logits - torch_logits[:512]).max())
    report = {"path": out, "bytes": os.path.getsize(out), "max_abs_diff": diff, "temperature": float(temperature),
              "class_bias": bias, "valence": valence, "crop": asdict(meta.crop), "opset": opset, "classes": classes}
    if int8:
        report["int8"] = quantize_int8(out, int8, np.ascontiguousarray(x[:1024]))
    if fp16_weights:
        store_weights_fp16(out)
        sess = ort.InferenceSession(out, providers=["CPUExecutionProvider"])
        report["fp16_weights"] = {"bytes": os.path.getsize(out), "max_abs_diff": float(
            np.abs(sess.run(None, {"input": x[:512]})[0] - ort_logits).max())}
    return report


def store_weights_fp16(path: str) -> None:
    """Rewrite an fp32 ONNX file with its float weights stored as fp16, each cast back to fp32 in
    the graph: half the size on disk, and the same fp32 arithmetic once loaded (onnxruntime folds
    the casts into constants when it opens the file); the weights lose what fp16 cannot hold
    (about 3 significant digits)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    proto = onnx.load(path)
    graph = proto.graph
    weights, casts = [], []
    for w in graph.initializer:
        if w.data_type == TensorProto.FLOAT and int(np.prod(w.dims)) > 1:
            half = numpy_helper.from_array(numpy_helper.to_array(w).astype(np.float16), f"{w.name}/fp16")
            casts.append(helper.make_node("Cast", [half.name], [w.name], to=TensorProto.FLOAT))
            w = half
        weights.append(w)
    nodes = casts + list(graph.node)
    del graph.initializer[:], graph.node[:]
    graph.initializer.extend(weights)
    graph.node.extend(nodes)
    onnx.checker.check_model(proto)
    onnx.save(proto, path)


class JoinedFile:
    """An emoscope ONNX file joining a run's model (`export_onnx(join=...)`): its graph, the networks
    it holds, its input size, checked against the run's classes, colour and crop and the export's
    opset before any work is done."""

    def __init__(self, path: str, cfg: dict, classes: list[str], opset: int):
        import onnx
        from ..runtime.classifier import read_metadata
        from ..runtime.session import cpu_session
        self.path = path
        self.session = cpu_session(path)
        meta = read_metadata(self.session, path)
        if meta.output != "logits":
            raise ValueError(f"{path}: its output is {meta.output}, not logits, so its networks cannot join an ensemble")
        for what, theirs, ours in (("classes", meta.classes, classes), ("colour", meta.color, cfg["color"]),
                                   ("crop rule", meta.crop, CropRule.from_dict(cfg["crop"]))):
            if theirs != ours:
                raise ValueError(f"{path} cannot join the run: its {what} ({theirs}) and the run's ({ours}) differ")
        self.size = meta.input_size[0]
        self.names = str(meta.extra.get("architecture", "network")).split(" + ")
        self.training_data = list(meta.extra.get("training_data", []))
        self.proto = onnx.load(path)
        if [(o.domain or "ai.onnx", o.version) for o in self.proto.opset_import] != [("ai.onnx", opset)]:
            raise ValueError(f"{path} cannot join the run: it is not written for ONNX opset {opset} alone (export it "
                             "with that --opset, and join float files, not their int8 copies)")

    def logits(self, x: np.ndarray, size: int) -> np.ndarray:
        """Its logits for normalised images of `size` px, enlarged to its own size as its graph
        will be fed in the joined file (bilinear, half-pixel centres, as `Resized`)."""
        t = torch.from_numpy(x)
        if size != self.size:
            t = torch.nn.functional.interpolate(t, size=(self.size, self.size), mode="bilinear", align_corners=False)
        name = self.session.get_inputs()[0].name
        return np.concatenate([self.session.run(None, {name: t[i:i + 512].numpy()})[0] for i in range(0, len(t), 512)])


def join_graphs(protos: list, counts: list[int], sizes: list[int]):
    """One ONNX graph reading the first graph's input (`sizes[0]` px) through every graph, a larger
    one's input enlarged in the graph (Resize, linear, half-pixel centres), and giving the mean of
    their logits weighted by `counts` (the networks each holds, so that each network weighs the same).
    The graphs share one ONNX opset (`JoinedFile` checks the files)."""
    import onnx
    from onnx import compose, helper, numpy_helper
    graph_input, graph_output = protos[0].graph.input[0], protos[0].graph.output[0]
    nodes, weights, parts = [], [], []
    for i, (proto, count, size) in enumerate(zip(protos, counts, sizes)):
        part = compose.add_prefix(proto, f"m{i}/")
        feed = graph_input.name
        if size != sizes[0]:
            weights.append(numpy_helper.from_array(np.array([1, 1, size / sizes[0], size / sizes[0]], np.float32),
                                                   f"m{i}/scales"))
            feed = f"m{i}/enlarged"
            nodes.append(helper.make_node("Resize", [graph_input.name, "", f"m{i}/scales"], [feed], mode="linear",
                                          coordinate_transformation_mode="half_pixel"))
        own_input = part.graph.input[0].name
        for node in part.graph.node:
            node.input[:] = [feed if name == own_input else name for name in node.input]
        nodes.extend(part.graph.node)
        weights.extend(part.graph.initializer)
        weights.append(numpy_helper.from_array(np.array(count / sum(counts), np.float32), f"m{i}/weight"))
        nodes.append(helper.make_node("Mul", [part.graph.output[0].name, f"m{i}/weight"], [f"m{i}/weighted"]))
        parts.append(f"m{i}/weighted")
    nodes.append(helper.make_node("Sum", parts, [graph_output.name]))
    graph = helper.make_graph(nodes, "emoscope-ensemble", [graph_input], [graph_output], weights)
    joined = helper.make_model(graph, opset_imports=protos[0].opset_import, ir_version=protos[0].ir_version)
    onnx.checker.check_model(joined)
    return joined


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

