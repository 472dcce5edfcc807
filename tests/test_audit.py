"""The audit finds what was planted: corrupt files, exact/near duplicates, leakage, blanks, non-faces."""

import csv
import os

import cv2
import numpy as np
import pytest

from conftest import face_like, jpeg_bytes, synthetic_split_folders, write_tree
from emoscope.data import load_dataset
from emoscope.data.audit import audit, near_pairs, phash, write_findings


@pytest.mark.slow
def test_audit_finds_planted_problems(tmp_path, yunet, samples):
    files = synthetic_split_folders(8, splits=("train", "test"))
    dup = files["train/happy/train_happy_0.png"]
    files["train/happy/copy_of_0.png"] = dup                                  # exact duplicate within train
    files["test/sad/leaked.png"] = files["train/angry/train_angry_3.png"]      # exact train/test leak, other label
    near = face_like(2, 100_000 + 2000 + 5).astype(np.int16) + 3               # brightness-shifted copy of a test image
    files["train/sad/near.png"] = jpeg_bytes(np.clip(near, 0, 255).astype(np.uint8), fmt="PNG")
    files["train/angry/blank.png"] = jpeg_bytes(np.full((48, 48), 200, np.uint8), fmt="PNG")
    files["train/angry/broken.jpg"] = b"\xff\xd8\xff\xe0 not really"
    obama = cv2.imread(os.path.join(samples, "facerec_obama.jpg"), cv2.IMREAD_GRAYSCALE)
    files["train/happy/real_face.png"] = jpeg_bytes(cv2.resize(obama[91:420, 371:612], (48, 48)), fmt="PNG")
    ds = load_dataset(write_tree(str(tmp_path / "d"), files))
    findings, summary = audit(ds, detector_model=yunet)
    by_kind = {}
    for f in findings:
        by_kind.setdefault(f.kind, []).append(f)
    assert [f.id for f in by_kind["unreadable"]] == ["train/angry/broken.jpg"]
    assert {f.id for f in by_kind["exact_duplicate"]} == {"train/happy/copy_of_0.png"} or \
        {f.id for f in by_kind["exact_duplicate"]} == {"train/happy/train_happy_0.png"}
    leak = by_kind["cross_split_exact_duplicate"]
    assert len(leak) == 1 and leak[0].split == "train" and "label conflict" in leak[0].detail
    assert any(f.id == "train/sad/near.png" for f in by_kind["cross_split_near_duplicate"])
    assert [f.id for f in by_kind["blank"]] == ["train/angry/blank.png"]
    non_face_ids = {f.id for f in by_kind.get("non_face", [])}
    assert "train/happy/real_face.png" not in non_face_ids
    assert len(non_face_ids) >= 40  # the sine-wave 'faces' are not faces
    csv_path, excl = write_findings(findings, str(tmp_path / "out"))
    rows = list(csv.DictReader(open(csv_path)))
    assert len(rows) == len(findings)
    excluded = {line.strip() for line in open(excl) if not line.startswith("#")}
    assert "train/angry/blank.png" in excluded and "train/sad/near.png" in excluded
    assert not any(i.startswith("test/") for i in excluded)  # evaluation copies are never dropped
    assert summary["blank"] == 1 and summary["images"] == len(ds)


def test_phash_near_pairs():
    a = face_like(1, 1)
    imgs = np.stack([a, np.clip(a.astype(int) + 4, 0, 255).astype(np.uint8), face_like(3, 2)])
    pairs = near_pairs(phash(imgs), 2)
    assert [(i, j) for i, j, _ in pairs] == [(0, 1)]
