"""Faces turned in 3D from their face mesh (emoscope.data.turn): the turn the landmarker reads back,
the head turn beside the robustness suite, and the training augmentation made from it."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

from conftest import shared_path, synthetic_split_folders, write_tree
from emoscope.data.turn import face_meshes, turn_face, turned_points

pytest.importorskip("onnx")
pytest.importorskip("tflite")
pytest.importorskip("scipy")


@pytest.fixture(scope="module")
def landmarker():
    from emoscope.runtime.landmarker import Landmarker
    return Landmarker(shared_path("models", "face_landmarker.task"), threads=2)


@pytest.fixture(scope="module")
def face_crop():
    """The sample portrait cut as the classifier cuts it (margin 0.1, square), 96 px gray."""
    from emoscope.contract import crop_face
    from emoscope.runtime.detector import YuNetDetector
    img = cv2.imread(shared_path("samples", "facerec_obama.jpg"))
    d = YuNetDetector(shared_path("models", "face_detection_yunet.onnx")).detect(img)[0]
    return crop_face(img, d.box, (96, 96), "gray")


def test_a_turn_is_a_rigid_rotation_of_the_points():
    """Turning moves the points as a rigid body (their 3-D distances stay), and by nothing at 0 degrees."""
    rng = np.random.default_rng(0)
    pts = np.c_[rng.uniform(20, 80, (468, 2)), rng.normal(0, 8, 468)]
    xy0, _ = turned_points(pts, 0)
    assert np.allclose(xy0, pts[:, :2])
    xy, z = turned_points(pts, 25)
    moved = np.c_[xy, z]
    pick = rng.choice(468, (200, 2))
    before = np.linalg.norm(pts[pick[:, 0]] - pts[pick[:, 1]], axis=1)
    after = np.linalg.norm(moved[pick[:, 0]] - moved[pick[:, 1]], axis=1)
    assert np.allclose(before, after)


def test_the_landmarker_reads_the_turn_that_was_asked(landmarker, face_crop):
    """The portrait turned 20 degrees either way reads more or less yaw by most of that (55-90% on
    the three sample faces), with the sign asked for; turned by 0 it is the same picture."""
    from emoscope.mesh import head_pose
    meshes, presence = face_meshes(face_crop[None], landmarker)
    assert presence[0] > 0.9
    yaw0 = head_pose(meshes[0])["yaw"]
    assert np.abs(turn_face(face_crop, meshes[0], 0).astype(int) - face_crop).mean() < 1.0
    for asked in (-20, 20):
        turned = turn_face(face_crop, meshes[0], asked)
        assert turned.shape == face_crop.shape and turned.dtype == np.uint8
        m, p = face_meshes(turned[None], landmarker)
        change = head_pose(m[0])["yaw"] - yaw0
        assert p[0] > 0.5 and 0.5 < change / asked < 1.3, (asked, change)


def test_faces_without_a_mesh_stay_as_they_are(face_crop):
    from emoscope.evaluate.robustness import mesh_turned
    images = np.stack([face_crop, face_crop])
    meshes = np.zeros((2, 478, 3), np.float32)
    assert np.array_equal(mesh_turned(images, meshes, np.zeros(2), 1.0), images)


def test_evaluate_robustness_reports_the_mesh_turn(tmp_path):
    import emoscope
    model = os.path.join(os.path.dirname(emoscope.__file__), "assets", "expression-int8.onnx")
    data = write_tree(str(tmp_path / "data"), synthetic_split_folders(n_per_class=2))
    r = subprocess.run([sys.executable, "-m", "emoscope.cli", "evaluate", "--model", model, "--data", data,
                        "--split", "test", "--robustness", "--mesh-model", shared_path("models", "face_landmarker.task"),
                        "--out", str(tmp_path / "eval")], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    turn = json.loads(r.stdout)["robustness"]["mesh_turn"]
    assert [row["degradation"] for row in turn["rows"]] == ["mesh turn"] * 3 and 0 <= turn["faces_turned"] <= 1
    assert "Head turn from the face mesh" in (tmp_path / "eval" / "report.html").read_text()


def test_training_turns_faces_from_their_meshes(tmp_path, monkeypatch, face_crop):
    """`mesh_turn`: the training set's meshes are measured once into the cache, and chosen faces
    that have one are turned from it in the training batches (none that have not)."""
    from emoscope.data import turn
    from emoscope.train import TrainConfig
    from emoscope.train.trainer import Trainer
    monkeypatch.setenv("EMOSCOPE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("EMOSCOPE_LANDMARKER_MODEL", shared_path("models", "face_landmarker.task"))
    flat = np.full_like(face_crop, 128)  # no face: the landmarker finds no mesh there
    files = {}
    for split in ("train", "val"):
        for label in ("happy", "sad"):
            for i in range(4):
                img = cv2.flip(face_crop, 1) if i % 2 else face_crop
                files[f"{split}/{label}/{i}.png"] = cv2.imencode(".png", flat if i == 3 else img)[1].tobytes()
    data = write_tree(str(tmp_path / "data"), files)
    turned = []
    real_turn = turn.turn_face
    monkeypatch.setattr(turn, "turn_face", lambda image, points, yaw, *a: turned.append(yaw) or real_turn(image, points, yaw))
    cfg = TrainConfig(data=data, out=str(tmp_path / "run"), model="cnn_small", epochs=2, batch_size=8, threads=2,
                      img_size=48)
    cfg.augment.mesh_turn, cfg.augment.mesh_yaw = 1.0, 30.0
    Trainer(cfg, progress=False).fit()
    assert len(os.listdir(tmp_path / "cache" / "meshes")) == 1
    assert len(turned) == 2 * 6 and all(abs(y) <= 30 for y in turned)  # 2 epochs x the 6 training faces with a mesh
