"""How far a synthetic head turn turns the face as the face landmarker sees it: web_faces val faces
(the classifier's crop, 96 px gray) turned by the cylinder model of the training augmentation and
the robustness suite (`emoscope.train.augment.head_turn`) and by the face mesh
(`emoscope.data.turn.turn_face`, for a few depths of its turning axis), each asked for 15, 30 and
45 degrees either way. Per method and angle: the change in the landmarker's yaw (its reading of
the turned face minus that of the original; a natural turn moves it by the angle asked for) and
the share of turned faces it still finds (presence >= 0.5). Faces within 15 degrees of frontal
whose mesh the landmarker is sure of (presence >= 0.9) only. Writes
experiments/results/turn/naturalness.{json,png} (the png: one face under each turn).

Usage: python experiments/turn_naturalness.py [--faces 100]
"""

from __future__ import annotations

import argparse
import json
import os

import cv2
import numpy as np
import torch

from emoscope.contract import CropRule
from emoscope.data.dataset import load_dataset
from emoscope.data.turn import HEAD_DEPTH, face_meshes, turn_face
from emoscope.runtime.landmarker import Landmarker
from emoscope.train.augment import head_turn

SHARED = os.environ.get("EMOSCOPE_SHARED", os.path.join(os.path.dirname(__file__), "..", "..", "shared"))
SPLIT = os.path.join(os.path.dirname(__file__), "..", "configs", "splits", "web-faces.csv")
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "turn")
ANGLES = (-45, -30, -15, 15, 30, 45)
DEPTHS = (0.35, HEAD_DEPTH, 0.75)
SIDE = 96


def cylinder(images: np.ndarray, yaw: float) -> np.ndarray:
    x = torch.from_numpy(images.astype(np.float32) / 255).unsqueeze(1)
    y = head_turn(x, torch.full((len(images),), float(yaw)), torch.zeros(len(images)))
    return (y[:, 0].clamp(0, 1) * 255).round().to(torch.uint8).numpy()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--faces", type=int, default=100)
    args = p.parse_args()
    ds = load_dataset(os.path.join(SHARED, "datasets", "web_faces.zip"), SIDE, "gray", faces=CropRule(),
                      verbose=False).with_split_file(SPLIT).split("val")
    landmarker = Landmarker(threads=2)
    meshes, presence = face_meshes(ds.images, landmarker)
    yaw0 = np.array([landmarker_yaw(landmarker, im)[0] for im in ds.images])
    usable = np.flatnonzero((presence >= 0.9) & (np.abs(yaw0) < 15))
    pick = np.random.default_rng(0).permutation(usable)[:args.faces]
    methods = {"cylinder": lambda ims, a: cylinder(ims, a)}
    for depth in DEPTHS:
        methods[f"mesh, axis {depth} face widths behind"] = (
            lambda ims, a, d=depth: np.stack([turn_face(im, meshes[i], a, d) for im, i in zip(ims, pick)]))
    rows, strip = [], []
    for name, method in methods.items():
        faces = []
        for angle in ANGLES:
            turned = method(ds.images[pick], angle)
            read = np.array([landmarker_yaw(landmarker, im) for im in turned])
            found = read[:, 1] >= 0.5
            change = read[found, 0] - yaw0[pick][found]
            rows.append({"method": name, "asked_deg": angle, "faces": int(len(pick)),
                         "found_share": round(float(found.mean()), 3),
                         "mean_change_deg": round(float(change.mean()), 1) if found.any() else None,
                         "change_over_asked": round(float(change.mean() / angle), 2) if found.any() else None})
            faces.append(turned[0])
            print(json.dumps(rows[-1]), flush=True)
        strip.append(np.hstack(faces))
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "naturalness.json"), "w") as f:
        json.dump({"faces": int(len(pick)), "side_px": SIDE, "angles": ANGLES, "rows": rows}, f, indent=1)
    cv2.imwrite(os.path.join(OUT, "naturalness.png"), np.vstack(strip))


def landmarker_yaw(landmarker: Landmarker, crop: np.ndarray) -> tuple[float, float]:
    """The landmarker's yaw and presence for one 96 px gray crop (measured as `face_meshes` does)."""
    mesh, presence = face_meshes(crop[None], landmarker)
    from emoscope.mesh import head_pose
    return head_pose(mesh[0])["yaw"], float(presence[0])


if __name__ == "__main__":
    main()
