"""Readers in every layout (folder, zip, CSV, Oheix, class folders) with broken files in them."""

import os

import numpy as np
import pytest

from conftest import face_like, jpeg_bytes, synthetic_split_folders, write_tree, write_zip
from emoscope.data import DatasetError, load_dataset, stratified_holdout


def kaggle_files(n=6):
    files = {}
    for ci, c in enumerate(["angry", "happy", "surprise"]):
        for i in range(n):
            files[f"fer2013/train/{c}/Training_{ci}{i}.jpg"] = jpeg_bytes(face_like(ci, i))
            files[f"fer2013/test/{c}/PublicTest_{ci}{i}.jpg"] = jpeg_bytes(face_like(ci, 50 + i))
            files[f"fer2013/test/{c}/PrivateTest_{ci}{i}.jpg"] = jpeg_bytes(face_like(ci, 90 + i))
    return files


def broken_files(prefix):
    good = jpeg_bytes(face_like(0, 1))
    return {
        f"{prefix}/notes.txt": b"this is not an image",
        f"{prefix}/truncated.jpg": good[: len(good) // 2],
        f"{prefix}/empty.jpg": b"",
    }


@pytest.mark.parametrize("as_zip", [False, True])
def test_kaggle_layout_with_broken_files(tmp_path, as_zip, capsys):
    files = kaggle_files()
    files.update(broken_files("fer2013/train/happy"))
    src = write_zip(str(tmp_path / "fer.zip"), files) if as_zip else write_tree(str(tmp_path / "fer"), files)
    ds = load_dataset(src)
    assert ds.layout == "fer2013-kaggle"
    counts = ds.counts()
    assert counts["train"]["angry"] == 6 and counts["train"]["happy"] == 6 and counts["train"]["fear"] == 0
    assert sum(counts["val"].values()) == 18 and sum(counts["test"].values()) == 18
    assert all(i.split("/")[-1].startswith("PublicTest_") for i in ds.split("val").ids)
    assert all(i.split("/")[-1].startswith("PrivateTest_") for i in ds.split("test").ids)
    reasons = {s.id.split("/")[-1]: s.reason for s in ds.skipped}
    assert set(reasons) == {"notes.txt", "truncated.jpg", "empty.jpg"}
    assert "not an image" in reasons["notes.txt"]
    assert "truncated" in reasons["truncated.jpg"]
    assert "skipped 3 file(s)" in capsys.readouterr().err
    assert ds.images.shape[1:] == (48, 48) and ds.images.dtype == np.uint8


def test_labels_follow_files(tmp_path):
    ds = load_dataset(write_tree(str(tmp_path / "d"), kaggle_files()))
    for sid, lab in zip(ds.ids, ds.labels):
        assert sid.split("/")[-2] == ds.classes[lab]


def test_fer_csv(tmp_path):
    rows = ["emotion,pixels,Usage"]
    usages = ["Training", "PublicTest", "PrivateTest"]
    for i in range(12):
        rows.append(f"{i % 7},{' '.join(map(str, face_like(i % 7, i).ravel()))},{usages[i % 3]}")
    rows.append("3,1 2 3,Training")                       # wrong pixel count
    rows.append(f"9,{' '.join(['0'] * 2304)},Training")    # bad code
    path = tmp_path / "fer2013.csv"
    path.write_text("\n".join(rows) + "\n")
    for src in (str(path), write_zip(str(tmp_path / "csv.zip"), {"fer2013/fer2013.csv": path.read_bytes()})):
        ds = load_dataset(src)
        assert ds.layout == "fer2013-csv" and len(ds) == 12
        assert {k: sum(v.values()) for k, v in ds.counts().items()} == {"train": 4, "val": 4, "test": 4}
        # CSV codes are angry, disgust, fear, happy, sad, surprise, neutral; ours are alphabetical
        assert ds.classes[ds.labels[4]] == "sad" and ds.classes[ds.labels[6]] == "neutral"
        assert len(ds.skipped) == 2 and any("1 pixels" in s.reason or "3 pixels" in s.reason for s in ds.skipped)
        first = np.array(rows[1].split(",")[1].split(), dtype=np.uint8).reshape(48, 48)
        assert np.array_equal(ds.images[0], first)


def test_oheix_layout_with_aliases(tmp_path):
    files = {}
    for split in ("train", "validation"):
        for ci, c in enumerate(["anger", "happiness", "Surprised", "contempt"]):
            for i in range(3):
                files[f"images/{split}/{c}/{i}.jpg"] = jpeg_bytes(face_like(ci, i))
    ds = load_dataset(write_zip(str(tmp_path / "oheix.zip"), files))
    assert ds.layout == "oheix"
    assert ds.classes[-1] == "contempt" and ds.classes[:7] == ["angry", "disgust", "fear", "happy", "neutral", "sad",
                                                                "surprise"]
    assert ds.counts()["val"]["happy"] == 3 and ds.counts()["train"]["contempt"] == 3


def test_class_folders_mixed_modes_and_sizes(tmp_path):
    rgb = (np.random.default_rng(0).random((60, 40, 3)) * 255).astype(np.uint8)
    sixteen = (np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) * 16)
    from PIL import Image
    import io
    buf = io.BytesIO()
    Image.fromarray(sixteen).save(buf, "PNG")
    files = {
        "faces/man/a.jpg": jpeg_bytes(rgb), "faces/man/b.png": jpeg_bytes(rgb, "RGBA", "PNG"),
        "faces/woman/c.png": jpeg_bytes(rgb, "P", "PNG"), "faces/woman/d.png": buf.getvalue(),
        "faces/woman/e.jpg": jpeg_bytes(rgb, "L"),
    }
    root = write_tree(str(tmp_path / "g"), files)
    ds = load_dataset(root, size=32, color="rgb")
    assert ds.layout == "class-folders" and ds.classes == ["man", "woman"]
    assert ds.images.shape == (5, 32, 32, 3) and set(ds.splits) == {"train"}
    assert set(ds.orig_modes) >= {"RGB", "RGBA", "P", "L"}
    assert [tuple(s) for s in ds.orig_sizes][:1] == [(40, 60)]
    gray = load_dataset(root, size=32, color="gray")
    assert gray.images.shape == (5, 32, 32)


def test_unknown_class_is_skipped_and_named(tmp_path, capsys):
    files = {f"d/{c}/{i}.png": jpeg_bytes(face_like(0, i), fmt="PNG") for c in ("happy", "sad", "banana") for i in range(2)}
    ds = load_dataset(write_tree(str(tmp_path / "x"), files))
    assert len(ds) == 4
    assert "'banana'" in capsys.readouterr().err
    assert sum("unknown class" in s.reason for s in ds.skipped) == 2


def test_empty_and_missing_sources(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="empty"):
        load_dataset(str(tmp_path / "empty"))
    with pytest.raises(DatasetError, match="no such file"):
        load_dataset(str(tmp_path / "nope"))
    write_tree(str(tmp_path / "bad"), {"c/x.txt": b"hello"})
    with pytest.raises(DatasetError, match="no readable images"):
        load_dataset(str(tmp_path / "bad"))


def test_cache_hit_and_invalidation(tmp_path):
    root = write_tree(str(tmp_path / "d"), synthetic_split_folders(3))
    a = load_dataset(root)
    cache_files = os.listdir(os.path.join(os.environ["EMOSCOPE_CACHE"], "datasets"))
    b = load_dataset(root)
    assert np.array_equal(a.images, b.images) and list(a.ids) == list(b.ids)
    write_tree(root, {"train/happy/new.png": jpeg_bytes(face_like(1, 99), fmt="PNG")})
    c = load_dataset(root)
    assert len(c) == len(a) + 1
    assert len(os.listdir(os.path.join(os.environ["EMOSCOPE_CACHE"], "datasets"))) == len(cache_files) + 1


def test_stratified_holdout_is_deterministic_and_stratified():
    labels = np.repeat(np.arange(4), [100, 50, 20, 10])
    a = stratified_holdout(labels, 0.1, seed=1)
    assert np.array_equal(a, stratified_holdout(labels, 0.1, seed=1))
    assert not np.array_equal(a, stratified_holdout(labels, 0.1, seed=2))
    assert np.bincount(labels[a]).tolist() == [10, 5, 2, 1]
    half = stratified_holdout(labels, 0.5, seed=0)
    assert np.bincount(labels[half]).tolist() == [50, 25, 10, 5]


def test_with_validation_and_exclude(tmp_path):
    ds = load_dataset(write_tree(str(tmp_path / "d"), synthetic_split_folders(10, splits=("x",))))
    assert set(ds.splits) == {"train"}
    v = ds.with_validation(0.2, seed=0)
    assert (v.splits == "val").sum() == 6 and (v.splits == "train").sum() == 24
    dropped = ds.exclude([ds.ids[0], ds.ids[5]])
    assert len(dropped) == len(ds) - 2 and ds.ids[0] not in set(dropped.ids)
    t = v.with_holdout("test", 0.2, seed=1)
    test_id, train_id = t.ids[t.splits == "test"][0], t.ids[t.splits == "train"][0]
    kept = t.exclude([test_id, train_id])  # the exclusion list never shrinks a test split
    assert test_id in set(kept.ids) and train_id not in set(kept.ids) and len(kept) == len(t) - 1
