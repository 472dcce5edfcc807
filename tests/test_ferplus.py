"""FER+ votes: the reader (join, majority rule, soft targets), training on soft targets, balanced
accuracy choosing checkpoints and class offsets, and `evaluate --labels ferplus`."""

import csv
import os

import numpy as np
import pytest

from conftest import face_like, jpeg_bytes, write_tree
from emoscope.data.ferplus import VOTE_COLUMNS, VotesError, majority_labels, soft_targets, votes_for
from emoscope.labels import EXPRESSIONS

CLASSES = list(EXPRESSIONS)


def votes(**counts) -> list[int]:
    return [counts.get(c, 0) for c in VOTE_COLUMNS]


def write_votes(path, rows: dict[str, list[int]], fer_rows: dict[str, int] | None = None) -> str:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["file", "fer_row", *VOTE_COLUMNS, "match_rms", "duplicate"])
        for i, (name, v) in enumerate(rows.items()):
            w.writerow([name, (fer_rows or {}).get(name, i), *v, 0.05, 0])
    return str(path)


def test_majority_rule_drops_single_votes_and_non_faces():
    v = np.array([
        votes(happiness=6, neutral=3, surprise=1),          # happy: 6 of 9 once the single vote goes
        votes(neutral=4, sadness=4, anger=1, fear=1),        # 4 of 8: no majority
        votes(anger=3, disgust=2, neutral=1, fear=1, sadness=1, surprise=1, happiness=1),  # 3 of 5 kept: angry
        votes(unknown=6, neutral=4),                         # not a face to label
        votes(NF=10),
        votes(contempt=7, neutral=3),                        # a class the 7-class model lacks
        votes(fear=1, surprise=1, neutral=1, sadness=1, anger=1, disgust=1, happiness=1, unknown=3),
    ])
    got = majority_labels(v, CLASSES)
    assert [CLASSES[i] if i >= 0 else None for i in got] == ["happy", None, "angry", None, None, None, None]
    eight = CLASSES + ["contempt"]
    assert eight[majority_labels(v, eight)[5]] == "contempt"


def test_soft_targets_are_vote_distributions_over_the_classes():
    v = np.array([votes(happiness=6, neutral=3, surprise=1), votes(unknown=6, neutral=4),
                  votes(contempt=5, anger=5), votes(neutral=1, fear=1, sadness=1)])
    targets, usable = soft_targets(v, CLASSES)
    assert targets.dtype == np.float32 and np.allclose(targets[usable].sum(1), 1)
    assert targets[0][CLASSES.index("happy")] == pytest.approx(6 / 9)
    assert targets[0][CLASSES.index("surprise")] == 0  # single vote dropped
    assert usable.tolist() == [True, False, True, True]  # only row 1 is mostly "unknown"
    assert targets[2][CLASSES.index("angry")] == pytest.approx(1.0)  # contempt folded out
    assert targets[3][CLASSES.index("fear")] == pytest.approx(1 / 3)  # all single: kept as they are


def test_votes_join_by_file_and_by_csv_row(tmp_path):
    path = write_votes(tmp_path / "v.csv", {"fer2013/train/happy/a.jpg": votes(happiness=10),
                                            "fer2013/train/sad/b.jpg": votes(sadness=9, neutral=1)},
                       {"fer2013/train/happy/a.jpg": 5, "fer2013/train/sad/b.jpg": 7})
    got = votes_for(np.array(["fer2013/train/sad/b.jpg", "fer2013/train/x/missing.jpg", "fer2013.csv:7"]), path)
    assert got[0][VOTE_COLUMNS.index("sadness")] == 9 and (got[1] == -1).all()
    assert got[2][VOTE_COLUMNS.index("happiness")] == 10  # CSV line 7 is data row 5
    with pytest.raises(VotesError, match="no image of the dataset"):
        votes_for(np.array(["other/c.jpg"]), path)
    (tmp_path / "bad.csv").write_text("file,neutral\nx,1\n")
    with pytest.raises(VotesError, match="not a FER\\+ votes file"):
        votes_for(np.array(["x"]), str(tmp_path / "bad.csv"))


@pytest.fixture(scope="module")
def fer_like(tmp_path_factory):
    """A FER2013-like tree (train, PublicTest_ and PrivateTest_ files) and FER+ votes that relabel
    it: the votes follow the pictures' real pattern, the folder names are half wrong."""
    root = tmp_path_factory.mktemp("ferplus")
    classes = ("angry", "happy", "neutral")
    files, rows = {}, {}
    for part, prefix, n in (("train", "train_", 60), ("test", "PublicTest_", 20), ("test", "PrivateTest_", 20)):
        for ci, c in enumerate(classes):
            for i in range(n):
                folder = classes[(ci + i) % 3] if i % 2 else c  # FER2013's own label: half wrong
                name = f"fer/{part}/{folder}/{prefix}{c}{i}.png"
                files[name] = jpeg_bytes(face_like(ci, hash((part, prefix, ci, i)) % 100_000), fmt="PNG")
                vote_name = {"angry": "anger", "happy": "happiness", "neutral": "neutral"}[c]
                rows[name] = votes(**{vote_name: 8, "neutral" if c != "neutral" else "surprise": 2})
    rows[next(iter(rows))] = votes(NF=9, neutral=1)
    data = write_tree(str(root / "fer"), {k.split("/", 1)[1]: v for k, v in files.items()})
    vote_file = write_votes(root / "fer-votes.csv", {k.split("/", 1)[1]: v for k, v in rows.items()})
    return data, vote_file


def test_dataset_with_votes_relabels_every_split(fer_like):
    from emoscope.data import load_dataset
    data, vote_file = fer_like
    ds = load_dataset(data, verbose=False)
    relabelled = ds.with_votes(vote_file)
    assert len(relabelled) == len(ds) - 1  # the NF image
    truth = np.array([next(c for c in ("angry", "happy", "neutral") if f"_{c}" in i) for i in relabelled.ids])
    assert (np.array(relabelled.classes)[relabelled.labels] == truth).all()
    assert relabelled.soft.shape == (len(relabelled), len(relabelled.classes))
    assert relabelled.split("val").labels.size == 60 and relabelled.split("test").labels.size == 60
    assert np.allclose(relabelled.targets(), relabelled.soft)


@pytest.mark.slow
def test_training_on_votes_and_balanced_choices(fer_like, tmp_path):
    """Soft targets reach the loss; best.pt is the epoch of the best val_bal; export fits class
    offsets on validation and `evaluate --labels ferplus` scores by the majority rule."""
    import torch
    from emoscope.evaluate.evaluator import evaluate
    from emoscope.export.onnx import export_onnx
    from emoscope.train import TrainConfig
    from emoscope.train.trainer import Trainer
    data, vote_file = fer_like
    cfg = TrainConfig(data=data, votes=vote_file, out=str(tmp_path / "run"), model="cnn_small", epochs=3,
                      batch_size=32, threads=2, monitor="val_bal", ema=0.0)
    tr = Trainer(cfg, progress=False)
    assert torch.allclose(tr.train_targets, torch.from_numpy(tr.train_set.soft))
    assert tr.train_targets.max() < 1  # two voters disagreed on every image
    history = tr.fit()
    best = int(np.argmax([h["val_bal"] for h in history]))
    assert torch.load(os.path.join(cfg.out, "best.pt"), weights_only=False)["epoch"] == best
    assert {"val_bal", "val_bal_fer"} <= set(history[-1])
    report = export_onnx(cfg.out, str(tmp_path / "m.onnx"))
    assert len(report["class_bias"]) == len(tr.classes) == 7
    r = evaluate(str(tmp_path / "m.onnx"), data, "test", labels="ferplus", votes=vote_file)
    own = evaluate(str(tmp_path / "m.onnx"), data, "test")
    assert r["n"] == 60 and own["n"] == 60 and r["label_source"] == "ferplus"
    assert r["accuracy"] > own["accuracy"]  # the votes follow the pictures; the folders are half wrong
    assert r["class_bias"] == pytest.approx(report["class_bias"], abs=1e-3)
    assert r["balanced_accuracy"] == pytest.approx(
        np.mean([m["recall"] for m in r["per_class"].values() if m["support"]]))


def test_balanced_accuracy_counts_classes_with_enough_support():
    from emoscope.metrics import balanced_accuracy
    y = np.array([0] * 20 + [1] * 20 + [2] * 2)
    pred = np.array([0] * 20 + [1] * 10 + [0] * 10 + [0, 0])
    assert balanced_accuracy(y, pred, 3) == pytest.approx((1 + 0.5 + 0) / 3)
    assert balanced_accuracy(y, pred, 3, min_support=10) == pytest.approx(0.75)


def test_class_bias_recovers_an_under_predicted_class():
    from emoscope.evaluate.calibration import fit_class_bias
    from emoscope.metrics import balanced_accuracy
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1, 2], [300, 300, 60])
    logits = rng.normal(0, 1, (len(labels), 3))
    logits[np.arange(len(labels)), labels] += 1.5
    logits[:, 2] -= 1.5  # the rare class is rarely predicted
    groups = np.zeros(len(labels), int)
    bias = fit_class_bias(logits, labels, 1.0, groups)
    before = balanced_accuracy(labels, logits.argmax(1), 3)
    after = balanced_accuracy(labels, (logits + bias).argmax(1), 3)
    assert bias[2] - min(bias[:2]) > 0.5 and after > before + 0.05, (bias, before, after)
    flat = np.zeros((30, 3))
    assert fit_class_bias(flat, np.zeros(30, int), 1.0, np.zeros(30, int)) == [0.0, 0.0, 0.0]


def test_class_offsets_for_macro_f1_stay_within_their_cap():
    from emoscope.evaluate.calibration import fit_class_bias
    from emoscope.metrics import summary
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 600)
    logits = rng.normal(size=(600, 3))
    logits[np.arange(600), labels] += 1.0
    logits[:, 0] += 1.5  # a model that says class 0 far too often
    groups = np.zeros(600, int)
    bias = np.array(fit_class_bias(logits, labels, 1.0, groups, objective="macro_f1", cap=1.0))
    assert np.abs(bias).max() <= 1.0 and bias[0] < 0
    assert summary(labels, (logits + bias).argmax(1), 3)["macro_f1"] > summary(labels, logits.argmax(1), 3)["macro_f1"]
    with pytest.raises(ValueError, match="objective"):
        fit_class_bias(logits, labels, 1.0, groups, objective="accuracy")


def test_fer2013_own_label_joins_the_soft_targets_as_extra_votes():
    from emoscope.data.ferplus import VOTE_COLUMNS, soft_targets
    classes = ["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"]
    votes = np.zeros((1, len(VOTE_COLUMNS)), np.int64)
    votes[0, VOTE_COLUMNS.index("neutral")] = 7
    votes[0, VOTE_COLUMNS.index("sadness")] = 3
    plain, usable = soft_targets(votes, classes)
    blended, _ = soft_targets(votes, classes, np.array([classes.index("sad")]), own_votes=3)
    assert usable[0] and plain[0, classes.index("sad")] == pytest.approx(0.3)
    assert blended[0, classes.index("sad")] == pytest.approx(6 / 13) and blended[0].sum() == pytest.approx(1)


def test_a_lower_neutral_share_shrinks_neutral_in_the_soft_targets_only():
    classes = ["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"]
    votes = np.zeros((2, len(VOTE_COLUMNS)), np.int64)
    votes[0, VOTE_COLUMNS.index("neutral")] = 6
    votes[0, VOTE_COLUMNS.index("anger")] = 4
    votes[1, VOTE_COLUMNS.index("neutral")] = 10
    targets, usable = soft_targets(votes, classes, neutral_weight=0.5)
    assert usable.all()
    assert targets[0, classes.index("angry")] == pytest.approx(4 / 7)
    assert targets[0, classes.index("neutral")] == pytest.approx(3 / 7)
    assert targets[1, classes.index("neutral")] == pytest.approx(1.0)
    assert (majority_labels(votes, classes) == classes.index("neutral")).all()
    with pytest.raises(ValueError, match="more than nothing"):
        soft_targets(votes, classes, neutral_weight=0)
