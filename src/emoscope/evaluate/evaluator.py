"""`evaluate`: score a run folder (torch) or any conforming ONNX file on a dataset split, the way
an outside scorer would: each whole image resized to the model's input size and normalised by its
metadata, optionally averaged with its mirror image. Writes metrics.json and an HTML report."""

from __future__ import annotations

import json
import os
import time

import numpy as np
import pandas as pd

from ..contract import CropRule, is_onnx_path
from ..data import load_dataset
from ..data.dataset import HOLDOUT_KEYS, Dataset, training_view
from ..metrics import softmax
from ..report import png_tag, write_html
from . import plots
from .calibration import fit_temperature, reliability
from .metrics_report import intervals_note, label_mapping, score, with_interval


class Scorer:
    """Logits for uint8 images, from an ONNX file or a training run."""

    def __init__(self, model: str, tta: str = "none", threads: int = 0):
        self.path, self.tta = model, tta
        self.history = None
        if is_onnx_path(model):
            from ..runtime import ExpressionClassifier
            self.clf = ExpressionClassifier(model, threads, flip_tta=tta == "flip")
            meta = self.clf.meta
            self.classes, self.size, self.color = meta.classes, meta.input_size[0], meta.color
            self.temperature = meta.temperature
            self.class_bias = meta.class_bias
            self.holdout = meta.extra.get("holdout", {})
            self.data_hint = None
            self.margin = meta.crop.margin
        else:
            from ..models.checkpoint import load_run_model
            self.model, cfg, self.classes = load_run_model(model)
            self.size, self.color, self.temperature, self.class_bias = cfg["img_size"], cfg["color"], None, None
            self.holdout = {k: cfg[k] for k in HOLDOUT_KEYS if k in cfg}
            self.data_hint = cfg["data"]
            self.margin = CropRule.from_dict(cfg.get("crop")).margin
            hist = os.path.join(model, "history.json") if os.path.isdir(model) else None
            if hist and os.path.exists(hist):
                with open(hist) as f:
                    self.history = json.load(f)

    def logits(self, images: np.ndarray) -> np.ndarray:
        if hasattr(self, "clf"):
            return self.clf.logits(images)
        from ..models.checkpoint import predict_logits
        return predict_logits(self.model, images, channels_last=False, bf16=False, flip=self.tta == "flip")

    def splits(self, ds: Dataset) -> Dataset:
        return training_view(ds, **{"val_split": 0.0, **(self.holdout or {})})


LABEL_SOURCES = ("own", "ferplus")
VOTES_FILE = "fer2013-ferplus-votes.csv"  # looked for beside FER2013 when no votes file is given


def evaluate(model: str, data: str | None, split: str = "test", tta: str = "none", out: str | None = None,
             threads: int = 0, split_file: str | None = None, labels: str = "own", votes: str | None = None,
             robust: bool = False, mesh_model: str | None = None) -> dict:
    """Model-only scores of `model` on a split of `data`: the run's own splits, or those of
    `split_file` when given. `labels="ferplus"` scores FER2013 images by FER+'s majority rule
    (`votes`: the votes file, default `fer2013-ferplus-votes.csv` beside the data). `robust`
    adds the robustness suite (`evaluate.robustness`): the split under each degradation, and the
    mesh head turn where a face landmarker is found (`mesh_model`, else the usual places; never
    downloaded here)."""
    if labels not in LABEL_SOURCES:
        raise ValueError(f"labels must be one of {', '.join(LABEL_SOURCES)}, not {labels!r}")
    label_source = labels
    scorer = Scorer(model, tta, threads)
    data = data or scorer.data_hint
    if not data:
        raise ValueError("give --data: the ONNX file does not say which dataset it was trained on")
    ds = load_dataset(data, scorer.size, scorer.color, verbose=False)
    if labels == "ferplus":
        votes = votes or os.path.join(os.path.dirname(os.path.abspath(data)), VOTES_FILE)
        ds = ds.with_votes(votes)
    ds = ds.with_split_file(split_file) if split_file else scorer.splits(ds)
    available = sorted(set(ds.splits.tolist()))
    part = ds if split == "all" else ds.split(split)
    if len(part) == 0:
        raise ValueError(f"{data} has no '{split}' split (has: {', '.join(available)}; or use --split all)")
    mapping, missing = label_mapping(scorer.classes, ds.classes)
    keep = np.isin(part.labels, list(mapping))
    excluded = {c: int((part.labels == ds.classes.index(c)).sum()) for c in missing}
    part = part.select(keep)
    labels = np.array([mapping[j] for j in part.labels], np.int64)
    t0 = time.perf_counter()
    logits = scorer.logits(part.images)
    seconds = time.perf_counter() - t0
    temperature = scorer.temperature
    if temperature is None:  # a run folder: fit T on its validation split, as export does
        val = ds.split("val").select(np.isin(ds.split("val").labels, list(mapping)))
        temperature = fit_temperature(scorer.logits(val.images), np.array([mapping[j] for j in val.labels]))
    probs = softmax(logits, temperature, scorer.class_bias)
    result = score(probs, labels, scorer.classes)
    result.update({"_labels": labels, "_predicted": probs.argmax(1)})  # per image, for a paired comparison
    result["ece_uncalibrated"] = reliability(softmax(logits, 1.0), labels)["ece"]
    result.update({"model": model, "data": data, "split": split, "label_source": label_source, "tta": tta,
                   "temperature": temperature, "class_bias": scorer.class_bias,
                   "images_per_second": round(len(labels) / seconds, 1), "excluded_classes": excluded,
                   "classes": scorer.classes})
    if robust:
        from .robustness import robustness
        meshes, why = part_meshes(part.images, scorer.margin, mesh_model)
        result["robustness"] = robustness(scorer.logits, part.images, labels, scorer.classes, temperature,
                                          scorer.class_bias, meshes)
        if why:
            result["robustness"]["mesh_turn"] = why
    if out:
        write_report(result, part.images, labels, probs, scorer, out)
    return result


def part_meshes(images: np.ndarray, margin: float, mesh_model: str | None) -> tuple[tuple | None, str | None]:
    """Each face's mesh and presence (`emoscope.data.turn.face_meshes`), or None and why not."""
    from ..data.turn import face_meshes
    from ..runtime.assets import LANDMARKER, ModelNotFoundError
    from ..runtime.landmarker import Landmarker
    try:
        landmarker = Landmarker(LANDMARKER.find(mesh_model, download=False), threads=2)
    except ModelNotFoundError as exc:
        return None, f"not measured: {exc}"
    return face_meshes(images, landmarker, margin), None


def write_report(result: dict, images, labels, probs, scorer: Scorer, out: str) -> None:
    os.makedirs(out, exist_ok=True)
    classes = scorer.classes
    public = {k: v for k, v in result.items() if not k.startswith("_")}
    with open(os.path.join(out, "metrics.json"), "w") as f:
        json.dump(public, f, indent=1)
    figs = [("Confusion matrix", plots.confusion(np.array(result["confusion_matrix"]), classes,
                                                 os.path.join(out, "confusion.png"))),
            ("ROC (one-vs-rest)", plots.roc(result["_roc"], os.path.join(out, "roc.png"))),
            ("Calibration", plots.reliability(result["_reliability"], os.path.join(out, "reliability.png"),
                                              result["temperature"])),
            ("Most confident mistakes", plots.mistakes(images, labels, probs, classes, os.path.join(out, "mistakes.png")))]
    if scorer.history:
        figs.insert(0, ("Training curves", plots.training_curves(scorer.history, os.path.join(out, "training.png"))))
    rows = "".join(f"<tr><th>{c}</th><td>{m['precision']:.3f}</td><td>{m['recall']:.3f}</td><td>{m['f1']:.3f}</td>"
                   f"<td>{m['auc']:.3f}</td><td>{m['support']}</td></tr>" for c, m in result["per_class"].items())
    head = (f"<p>Model <code>{result['model']}</code> on <code>{result['data']}</code>, split "
            f"<b>{result['split']}</b> ({result['n']:,} images), labels {result['label_source']}, TTA {result['tta']}.</p>"
            f"<table><tr><th>accuracy</th><th>balanced acc.</th><th>top-2</th><th>macro-F1</th><th>weighted F1</th>"
            f"<th>macro AUC</th><th>ECE (T={result['temperature']:.3f})</th><th>ECE (T=1)</th><th>images/s</th></tr>"
            f"<tr><td>{with_interval(result, 'accuracy')}</td><td>{with_interval(result, 'balanced_accuracy')}</td>"
            f"<td>{result['top2_accuracy']:.4f}</td><td>{with_interval(result, 'macro_f1')}</td>"
            f"<td>{result['weighted_f1']:.4f}</td>"
            f"<td>{result['macro_auc']:.4f}</td><td>{result['ece']:.4f}</td><td>{result['ece_uncalibrated']:.4f}</td>"
            f"<td>{result['images_per_second']:,}</td></tr></table><p>{intervals_note()}</p>"
            + (f"<p>Excluded (model lacks the class): {result['excluded_classes']}</p>" if result["excluded_classes"] else "")
            + "<table><tr><th>class</th><th>precision</th><th>recall</th><th>F1</th><th>AUC</th><th>support</th></tr>"
            + rows + "</table>")
    sections = [("Metrics", head)] + [(title, png_tag(p, title)) for title, p in figs]
    if "robustness" in result:
        rob = result["robustness"]
        table = pd.DataFrame(rob["rows"]).pivot(index="degradation", columns="strength", values="macro_f1")
        table.columns = [f"macro-F1 at strength {c:.2f}" for c in table.columns]
        sections.append(("Robustness suite (macro-F1 under each degradation; clean "
                         f"{result['macro_f1']:.3f}, mean over the suite {rob['mean']['macro_f1']:.3f})",
                         table.reset_index().to_html(index=False, float_format=lambda v: f"{v:.3f}", border=0)))
        turn = rob.get("mesh_turn")
        if isinstance(turn, dict):
            cells = "".join(f"<td>{r['macro_f1']:.3f}</td>" for r in turn["rows"])
            sections.append(("Head turn from the face mesh (beside the suite)",
                             "<table><tr><th>strength</th>" + "".join(f"<th>{r['strength']:.2f}</th>" for r in turn["rows"])
                             + f"</tr><tr><td>macro-F1</td>{cells}</tr></table><p>Faces turned (the landmarker found "
                             f"their mesh): {turn['faces_turned']:.0%}; the rest are scored as they are.</p>"))
        elif turn:
            sections.append(("Head turn from the face mesh", f"<p>{turn}</p>"))
    write_html(os.path.join(out, "report.html"), "emoscope evaluation", sections)
