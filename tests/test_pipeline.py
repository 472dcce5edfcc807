"""Real-face data and end-to-end evaluation: the seeded split file, photos cut to their detected
face as the runtime does, and `evaluate --pipeline` agreeing with `Analyzer.analyze`."""

import json
import os
import re

import numpy as np
import pytest

from conftest import REPO, face_like, jpeg_bytes, shared_path, write_tree
from emoscope.contract import CropRule
from emoscope.data.dataset import (file_groups, load_dataset, read_split_file, seeded_split, split_file_grouping,
                                  write_split_file)


def test_seeded_split_is_deterministic_stratified_and_grouped():
    labels = np.repeat(np.arange(4), [100, 60, 30, 10])
    a, b = seeded_split(labels, 0.15, 0.15, seed=0), seeded_split(labels, 0.15, 0.15, seed=0)
    assert (a == b).all() and not (a == seeded_split(labels, 0.15, 0.15, seed=1)).all()
    assert [(a[labels == c] == "test").sum() for c in range(4)] == [15, 9, 4, 2]
    groups = np.array([f"p{i // 5}" for i in range(len(labels))])  # persons with 5 photos each
    g = seeded_split(labels, 0.15, 0.15, seed=0, groups=groups)
    for person in np.unique(groups):
        assert len(set(g[groups == person])) == 1  # a person never straddles two splits
    share = {s: (g == s).mean() for s in ("train", "val", "test")}
    assert abs(share["test"] - 0.15) < 0.05 and abs(share["val"] - 0.15) < 0.05
    assert (g == seeded_split(labels, 0.15, 0.15, seed=0, groups=groups)).all()


def test_split_file_round_trip(tmp_path):
    files = {f"{c}/{name}_{i:04d}.png": jpeg_bytes(face_like(ci, 50 * ci + i), fmt="PNG")
             for ci, c in enumerate(("happy", "neutral")) for name in ("Ann", "Bob", "Cy", "Di") for i in range(5)}
    ds = load_dataset(write_tree(str(tmp_path / "photos"), files))
    path = str(tmp_path / "split.csv")
    write_split_file(ds, path, 0.25, 0.25, seed=0, group="^(.*?)_?[0-9]*$")
    with open(path) as f:
        assert "seed 0" in f.readline()
    assert split_file_grouping(path) == "^(.*?)_?[0-9]*$"  # the rule, read back from the first line
    assert file_groups(["happy/Ann_0003.png", "x/Bob.jpg", "Cy_12"], split_file_grouping(path)).tolist() == \
        ["Ann", "Bob", "Cy"]
    assigned = read_split_file(path)
    assert len(assigned) == 40
    by_person = {}
    for sid, split in assigned.items():
        by_person.setdefault(re.sub(r"_\d+\.png$", "", sid.split("/")[-1]), set()).add(split)
    assert all(len(s) == 1 for s in by_person.values())
    split_ds = ds.with_split_file(path)
    assert sorted(set(split_ds.splits.tolist())) == ["test", "train", "val"]
    write_split_file(ds, path, 0.25, 0.25, seed=0)
    assert split_file_grouping(path) is None  # split photo by photo
    with open(path, "a") as f:
        f.write("happy/x.png,holdout\n")
    with pytest.raises(ValueError, match="holdout"):
        read_split_file(path)


@pytest.mark.slow
def test_web_faces_split_file_is_reproduced_by_its_rule():
    """configs/splits/web-faces.csv is exactly what its first line's rule writes."""
    data = shared_path("datasets", "web_faces.zip")
    committed = os.path.join(REPO, "configs", "splits", "web-faces.csv")
    with open(committed) as f:
        rule = f.readline()
    seed, group = int(re.search(r"seed (\d+)", rule).group(1)), split_file_grouping(committed)
    val, test = (float(re.search(fr"{k} ([0-9.]+)", rule).group(1)) for k in ("val", "test"))
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "s.csv")
        write_split_file(load_dataset(data, 8, "gray"), out, val, test, seed, group)
        assert read_split_file(out) == read_split_file(committed)
    counts = {s: list(read_split_file(committed).values()).count(s) for s in ("train", "val", "test")}
    assert min(counts["val"], counts["test"]) >= 0.15 * 7581


@pytest.fixture
def photo_set(tmp_path, samples):
    """Five photos in class folders: real faces from the samples, and one with no face."""
    def raw(name):
        with open(os.path.join(samples, name), "rb") as f:
            return f.read()
    noise = np.random.default_rng(0).integers(0, 255, (120, 160, 3), dtype=np.uint8)
    files = {"neutral/obama.jpg": raw("facerec_obama.jpg"), "happy/astronaut.png": raw("skimage_astronaut.png"),
             "neutral/two_people.jpg": raw("facerec_two_people.jpg"), "sad/noise.png": jpeg_bytes(noise, fmt="PNG"),
             "contempt/obama_again.jpg": raw("facerec_obama.jpg")}
    return write_tree(str(tmp_path / "photos"), files)


def test_face_crops_match_the_runtime(photo_set, yunet):
    from emoscope.analyze import Analyzer
    from emoscope.images import read_image
    ds = load_dataset(photo_set, 48, "gray", faces=CropRule(), detector_model=yunet)
    assert "sad/noise.png" in {s.id for s in ds.skipped} and len(ds) == 4
    assert [s.reason for s in ds.skipped if s.id == "sad/noise.png"] == ["no face found"]
    analyzer = Analyzer(detector_model=yunet)
    bgr = read_image(os.path.join(photo_set, "neutral", "obama.jpg"))
    det = max(analyzer.detector.detect(bgr), key=lambda d: d.box[2] * d.box[3])
    expected = analyzer.classifier.crop(bgr, det.box)  # the shipped model's crop rule, equalised
    rule = analyzer.classifier.meta.crop
    ds_eq = load_dataset(photo_set, 48, "gray", faces=rule, detector_model=yunet)
    got = ds_eq.images[list(ds_eq.ids).index("neutral/obama.jpg")]
    assert np.abs(got.astype(int) - expected.astype(int)).max() <= 1


def test_pipeline_evaluation_agrees_with_the_analyzer(photo_set, yunet, tmp_path):
    from emoscope.analyze import Analyzer
    from emoscope.evaluate.pipeline import evaluate_pipeline, largest_face, pipeline_predictions
    from emoscope.images import read_image
    analyzer = Analyzer(detector_model=yunet)
    ids = ["happy/astronaut.png", "neutral/obama.jpg", "neutral/two_people.jpg", "sad/noise.png"]
    pred = pipeline_predictions(analyzer, photo_set, ids, progress=False)
    for i, sid in enumerate(ids):
        face = largest_face(analyzer.analyze(read_image(os.path.join(photo_set, *sid.split("/")))))
        if face is None:
            assert sid == "sad/noise.png" and np.isnan(pred["probs"][i]).all() and pred["valence"][i] == "no face"
        else:
            assert np.allclose(pred["probs"][i], [face.probs[c] for c in analyzer.classes])
            assert pred["valence"][i] == face.valence and pred["boxes"][i] == face.box
    r = evaluate_pipeline(None, photo_set, "all", out=str(tmp_path / "eval"), detector_model=yunet, progress=False)
    assert r["n"] == 4 and r["no_face"] == 1 and r["excluded_classes"] == {"contempt": 1}
    top = [analyzer.classes[int(np.argmax(p))] if not np.isnan(p).any() else None for p in pred["probs"]]
    truth = ["happy", "neutral", "neutral", "sad"]
    assert r["accuracy"] == pytest.approx(np.mean([t == p for t, p in zip(truth, top)]))
    assert r["per_class_recall"]["sad"] == 0.0  # no face found: wrong
    assert r["confusion_matrix"][analyzer.classes.index("sad")][-1] == 1
    with open(tmp_path / "eval" / "metrics.json") as f:
        assert json.load(f)["no_face_photos"] == ["sad/noise.png"]
    report = (tmp_path / "eval" / "report.html").read_text()
    assert "macro-F1" in report and "95% bootstrap intervals" in report


def test_pipeline_macro_f1_counts_photos_without_a_face_as_misses():
    from emoscope.evaluate.pipeline import pipeline_metrics
    classes = ["happy", "neutral"]
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [np.nan, np.nan], [0.3, 0.7]])
    labels = np.array([0, 1, 0, 0])
    m = pipeline_metrics(probs, labels, ["positive", "neutral", "neutral", "neutral"], classes)
    # happy: tp 1, predicted 1, true 3 -> F1 0.5; neutral: tp 1, predicted 2, true 1 -> F1 2/3
    assert m["macro_f1"] == pytest.approx((0.5 + 2 / 3) / 2)
    iv = m["intervals"]  # bootstrap ranges around each headline number, the missed face a miss in every draw
    assert iv["macro_f1"][0] <= m["macro_f1"] <= iv["macro_f1"][1] and iv["accuracy"][0] <= 0.5 <= iv["accuracy"][1]
    assert m["intervals_resampled"] == "the photos"
    # the first three photos show one person (2 of 3 read right), drawn together: a draw's accuracy is
    # 2/3 (that person twice), 1/2 (both people) or 0 (the other person, read wrong, twice)
    grouped = pipeline_metrics(probs, labels, ["neutral"] * 4, classes, np.array(["a", "a", "a", "b"]), "rule")
    assert grouped["macro_f1"] == m["macro_f1"] and grouped["intervals_resampled"].startswith("the 2 groups")
    assert grouped["intervals"]["accuracy"] == [0.0, 0.6667] and grouped["_groups"].tolist() == ["a", "a", "a", "b"]


def test_evaluate_against_a_second_model_pairs_the_two(photo_set, yunet, tmp_path, capsys):
    """`--against`: the second model is scored on the same photos (end to end, and model-only), and
    the differences are the two scores' differences with an interval around each; a model reading
    other classes is refused in plain words."""
    import emoscope
    from conftest import synthetic_split_folders
    from emoscope.cli import main
    assets = os.path.join(os.path.dirname(emoscope.__file__), "assets")
    int8, fp32 = (os.path.join(assets, f) for f in ("expression-int8.onnx", "expression.onnx"))
    model_only = write_tree(str(tmp_path / "faces"), synthetic_split_folders(n_per_class=4))
    for args in (["--pipeline", "--data", photo_set, "--split", "all", "--detector-model", yunet,
                  "--out", str(tmp_path / "eval")],
                 ["--data", model_only, "--split", "test"]):
        assert main(["evaluate", "--model", int8, "--against", fp32, *args]) == 0
        out = json.loads(capsys.readouterr().out)
        against = out["against"]
        assert against["model"] == fp32
        for m in ("accuracy", "balanced_accuracy", "macro_f1"):
            d = against["difference"][m]
            assert d["difference"] == pytest.approx(out[m] - against[m], abs=2e-4)
            assert d["interval"][0] <= d["difference"] <= d["interval"][1]
    with open(tmp_path / "eval" / "metrics.json") as f:
        assert not {"_labels", "_predicted", "against"} & set(json.load(f))
    from emoscope.evaluate.cli import compared
    seven = {"classes": ["angry", "happy"], "_labels": np.array([0, 1])}
    with pytest.raises(ValueError, match="reads other classes than --model"):
        compared(seven, {**seven, "classes": ["happy", "angry"]}, "other.onnx")
    with pytest.raises(ValueError, match="scored on other images"):
        compared(seven, {**seven, "_labels": np.array([1, 1])}, "other.onnx")
    gender = os.path.join(assets, "gender.onnx")
    for command in (["--model", int8, "--against", gender], ["--model", gender]):
        with pytest.raises(SystemExit, match="none of the data's classes .* is one the model reads"):
            main(["evaluate", *command, "--data", model_only])
