"""Export a trained run to a self-describing ONNX file: logits [N, classes] with metadata that
lets anyone preprocess correctly without our code (classes, input size, colour, mean/std, face crop,
temperature, valence thresholds; `emoscope.contract`). An ensemble (`emoscope ensemble`) is one graph
whose output is the mean of its members' logits. Files exported before may join a run's model as
more members (`join`), for when their run folders are not at hand: one graph again, each network
weighing the same, calibrated afresh on the run's validation data; or join one another with no run,
calibrated on a recipe's validation data, each keeping some of its networks (`FILE.onnx:0,2`)."""

from __future__ import annotations

import os
import re
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

CALIBRATION_IMAGES = 1024  # the int8 copy's calibration: the first validation images (the primary source's)


def export_onnx(run: str | None, out: str, temperature: float | None = None, opset: int = 18,
                crop: dict | None = None, use_ema: bool = True, extra_meta: dict | None = None,
                int8: str | None = None, class_bias: bool = True, bias_objective: str = "balanced",
                bias_cap: float | None = None, join: list[str] | None = None, fp16_weights: bool = False,
                config: str | None = None) -> dict:
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
    A file named `FILE.onnx:0,2` brings only those of its networks (`select_networks`). With no
    `run`, the joined files alone make the model, calibrated on the validation data of the training
    recipe `config` (a file records its networks, not its recipe).
    With `fp16_weights`, `out` stores its weights as fp16 once the int8 copy is made from it
    (`store_weights_fp16`).

    Returns a report: path, size, max |logits - the file's| on validation images (torch's for a run,
    the joined files' own), temperature.
    """
    import onnx
    import onnxruntime as ort

    if run is not None:
        model, cfg, classes = load_run_model(run, use_ema)
        cfg = asdict(TrainConfig.from_dict(cfg))
        names = model.names if isinstance(model, LogitMean) else [cfg["model"]]
    elif join and config:  # a file records its networks, not its recipe: the recipe's validation data
        if not os.path.isfile(config):
            raise ValueError(f"the recipe {config} does not exist")
        model, cfg, names = None, asdict(TrainConfig.load(config)), []
        classes = JoinedFile.classes_of(join[0])
    else:
        raise ValueError("give a run folder, or files to --join and the --config of the recipe whose validation data "
                         "calibrates them")
    members = [JoinedFile(path, cfg, classes, opset) for path in join or []]
    size = min([cfg["img_size"]] * (model is not None) + [m.size for m in members])
    if model is not None and size != cfg["img_size"]:
        model = Resized(model, cfg["img_size"], size).eval()
    cfg["img_size"] = size
    vals = [s.data.split("val") for s in run_sources(cfg)]
    val = Dataset.concat(vals)
    x = normalize_u8(val.images)
    counts = [len(names)] * (model is not None) + [len(m.names) for m in members]
    parts = [predict_logits(model, val.images, channels_last=False, bf16=False)] if model is not None else []
    parts += [m.logits(x, size) for m in members]
    # the file's logits (torch's for a run, onnxruntime's for joined files): each network weighs the same
    val_logits = sum(n * part for n, part in zip(counts, parts)) / sum(counts)
    names = names + [n for m in members for n in m.names]
    if temperature is None:
        temperature = fit_temperature(val_logits, val.labels)
    source_of = np.concatenate([np.full(len(v), i) for i, v in enumerate(vals)])
    primary = source_of == 0
    bias = fit_class_bias(val_logits[primary], val.labels[primary], temperature, source_of[primary],
                          objective=bias_objective, cap=bias_cap) if class_bias else None
    valence = None
    real = np.concatenate([np.full(len(v), i > 0 and bool(cfg["sources"][i - 1].get("faces")))
                           for i, v in enumerate(vals)])
    if real.any():
        valence = fit_valence(softmax(val_logits[real], temperature, bias), val.labels[real], classes).to_dict()
    in_chans = 1 if cfg["color"] == "gray" else 3
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    protos = []
    if model is not None:
        torch.onnx.export(model, (torch.zeros(2, in_chans, size, size),), out, input_names=["input"],
                          output_names=["logits"], opset_version=opset, dynamo=False,
                          dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
        protos.append(onnx.load(out))
    training_data = [cfg["data"]] + [s["data"] for s in cfg["sources"]]
    extra = {"architecture": " + ".join(names), "producer": "emoscope", "holdout": {k: cfg[k] for k in HOLDOUT_KEYS},
             "training_data": training_data}
    if members:
        protos += [m.proto for m in members]
        proto = join_graphs(protos, counts, [size] * (model is not None) + [m.size for m in members])
        extra["training_data"] = list(dict.fromkeys(training_data + [d for m in members for d in m.training_data]))
        extra["joined"] = [m.name for m in members]
    else:
        proto = protos[0]
    if valence:
        extra["valence"] = valence
    meta = ModelMeta(classes, (size, size), cfg["color"], NORM_MEAN, NORM_STD, CropRule.from_dict({**cfg["crop"], **(crop or {})}),
                     float(temperature), extra={**extra, **(extra_meta or {})}, class_bias=bias)
    write_props(proto, meta.to_props())
    onnx.checker.check_model(proto)
    onnx.save(proto, out)
    sess = ort.InferenceSession(out, providers=["CPUExecutionProvider"])
    ort_logits = sess.run(None, {"input": x[:512]})[0]
    diff = float(np.abs(ort_logits - val_logits[:512]).max())
    report = {"path": out, "bytes": os.path.getsize(out), "max_abs_diff": diff, "temperature": float(temperature),
              "class_bias": bias, "valence": valence, "crop": asdict(meta.crop), "opset": opset, "classes": classes}
    if int8:
        report["int8"] = quantize_int8(out, int8, np.ascontiguousarray(x[:CALIBRATION_IMAGES]))
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
    """An emoscope ONNX file joining a run's model or other files (`export_onnx(join=...)`): its
    graph, the networks it holds, its input size, checked against the run's classes, colour and crop
    and the export's opset before any work is done. `FILE.onnx:0,2` keeps only its networks 0 and 2
    (in the order of its `architecture`)."""

    def __init__(self, spec: str, cfg: dict, classes: list[str], opset: int):
        import onnx
        from ..runtime.classifier import read_metadata
        self.name = os.path.basename(spec)
        path, keep = self.parse(spec)
        self.path = path
        self.session = self.open(path)
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
        if keep is not None:
            if not keep or max(keep) >= len(self.names) or len(set(keep)) < len(keep):
                raise ValueError(f"{spec}: it holds networks 0 to {len(self.names) - 1} ({' + '.join(self.names)}); "
                                 "name each to keep once")
            self.proto = select_networks(self.proto, keep, len(self.names), path)
            self.names = [self.names[i] for i in keep]
            self.session = self.open(self.proto.SerializeToString())

    @staticmethod
    def parse(spec: str) -> tuple[str, list[int] | None]:
        """`FILE.onnx:0,2` -> (FILE.onnx, [0, 2]); a plain path keeps every network (None)."""
        path, _, keep = spec.rpartition(":")
        if path and re.fullmatch(r"\d+(,\d+)*", keep):
            return path, [int(i) for i in keep.split(",")]
        return spec, None

    @staticmethod
    def open(source):
        """An onnxruntime CPU session on a file's path or a graph's bytes."""
        from ..runtime.session import cpu_session
        if isinstance(source, bytes):
            import onnxruntime as ort
            return ort.InferenceSession(source, providers=["CPUExecutionProvider"])
        return cpu_session(source)

    @classmethod
    def classes_of(cls, spec: str) -> list[str]:
        """The classes a file reads, for joining files with no run."""
        from ..runtime.classifier import read_metadata
        path = cls.parse(spec)[0]
        return read_metadata(cls.open(path), path).classes

    def logits(self, x: np.ndarray, size: int) -> np.ndarray:
        """Its logits for normalised images of `size` px, enlarged to its own size as its graph
        will be fed in the joined file (bilinear, half-pixel centres, as `Resized`)."""
        t = torch.from_numpy(x)
        if size != self.size:
            t = torch.nn.functional.interpolate(t, size=(self.size, self.size), mode="bilinear", align_corners=False)
        name = self.session.get_inputs()[0].name
        return np.concatenate([self.session.run(None, {name: t[i:i + 512].numpy()})[0] for i in range(0, len(t), 512)])


def network_logits(graph) -> list[str]:
    """The tensors holding each network's logits in an emoscope graph, in the order of its
    `architecture`: followed back from the output through the two ways emoscope averages networks,
    a joined file's sum of weighted parts (`join_graphs`) and an ensemble's mean of its members'
    stacked logits (`LogitMean`); a network's own graph ends in neither."""
    producer = {name: node for node in graph.node for name in node.output}
    scalars = {w.name for w in graph.initializer if not w.dims}

    def walk(name: str) -> list[str]:
        node = producer.get(name)
        if node is not None and node.op_type == "Sum":
            return [t for part in node.input for t in walk(part)]
        if node is not None and node.op_type == "Mul" and node.input[1] in scalars and node.input[1].endswith("/weight"):
            return walk(node.input[0])
        stacked = producer.get(node.input[0]) if node is not None and node.op_type == "ReduceMean" else None
        if stacked is not None and stacked.op_type == "Concat" and all(
                producer.get(i) is not None and producer[i].op_type == "Unsqueeze" for i in stacked.input):
            return [t for i in stacked.input for t in walk(producer[i].input[0])]
        return [name]
    return walk(graph.output[0].name)


def select_networks(proto, keep: list[int], networks: int, path: str):
    """A graph of only the networks `keep` (indices in the order of `network_logits`) of an emoscope
    file holding `networks`, whose output is the mean of their logits (each weighing the same)."""
    import onnx
    from onnx import helper, numpy_helper
    outputs = network_logits(proto.graph)
    if len(outputs) != networks:
        raise ValueError(f"{path}: its graph does not show its {networks} networks apart, so none can be picked")
    producer = {name: node for node in proto.graph.node for name in node.output}
    needed, todo = set(), [outputs[i] for i in keep]
    while todo:  # every tensor the kept networks' logits are computed from
        name = todo.pop()
        if name not in needed:
            needed.add(name)
            todo.extend(producer[name].input if name in producer else [])
    nodes = [n for n in proto.graph.node if any(o in needed for o in n.output)]
    weights = [w for w in proto.graph.initializer if w.name in needed]
    weights.append(numpy_helper.from_array(np.array(1 / len(keep), np.float32), "selected/weight"))
    for i in keep:
        nodes.append(helper.make_node("Mul", [outputs[i], "selected/weight"], [f"selected/{i}"]))
    nodes.append(helper.make_node("Sum", [f"selected/{i}" for i in keep], [proto.graph.output[0].name]))
    graph = helper.make_graph(nodes, proto.graph.name, list(proto.graph.input), list(proto.graph.output), weights)
    selected = helper.make_model(graph, opset_imports=proto.opset_import, ir_version=proto.ir_version)
    onnx.checker.check_model(selected)
    return selected


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
    (N, C, H, W float32); the metadata is carried over unchanged. The weights use 7 of the 8 bits
    (`reduce_range`): on x86 CPUs without VNNI (AVX2 only, e.g. AMD Zen 2 and 3) onnxruntime's
    int8 kernels add pairs of uint8 x int8 products in 16 bits, which full-range weights overflow;
    the shipped three-network file lost 0.7 points of FER+ PrivateTest accuracy there (85.8%
    against 86.6% in fp32) and reads 86.9% with 7-bit weights."""
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
    quantize_static(pre, dst, Reader(), quant_format=QuantFormat.QDQ, per_channel=True, reduce_range=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    os.remove(pre)
    proto = onnx.load(dst)
    write_props(proto, {p.key: p.value for p in onnx.load(src).metadata_props})
    onnx.save(proto, dst)
    return {"path": dst, "bytes": os.path.getsize(dst)}

