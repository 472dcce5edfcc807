"""Faces turned in 3D from their face mesh: a head turn that turns the face itself.

The 468 surface points of MediaPipe's face mesh (`emoscope.mesh`) are rotated about a vertical axis
behind the face (`HEAD_DEPTH` face widths behind the points' mean depth) and the image is warped
triangle by triangle: a Delaunay triangulation of the points and of anchors on the crop's border
(which stay put, so hair and background bend smoothly), nearer triangles drawn over farther ones,
so the far cheek narrows and the near side widens as in a real turn. On 100 web_faces val faces
(96 px, `experiments/turn_naturalness.py`, results in `experiments/results/turn/`) the face
landmarker reads 93-100% of the turn asked for (15, 30, 45 degrees either way), against 54-75% for
the cylinder model of `emoscope.train.augment.head_turn`, which mostly slides the face sideways;
turned 45 degrees, it still finds 47-59% of the faces (the cylinder's 10-44%). The axis depth
(0.55) is the one of the three measured (0.35, 0.55, 0.75) whose reading is nearest the turn asked.

Meshes of small training crops (FER2013's 48 px faces) are measured on a copy upscaled to
`MESH_SIDE` pixels (`face_meshes`). NumPy, OpenCV and SciPy's triangulation; no torch.
"""

from __future__ import annotations

import cv2
import numpy as np

HEAD_DEPTH = 0.55     # the turning axis, in face widths behind the face points' mean depth
SURFACE_POINTS = 468  # the mesh's face surface (the ten iris points after it are left out)
BORDER_ANCHORS = 6    # fixed points per side of the crop
MESH_SIDE = 192       # small crops are measured upscaled to this side


def turned_points(points: np.ndarray, yaw: float, depth: float = HEAD_DEPTH) -> tuple[np.ndarray, np.ndarray]:
    """The face points (N, 3: x, y in pixels, z depth in the same units, smaller is nearer) turned
    by `yaw` degrees, with the sign of `emoscope.mesh.head_pose`'s yaw: their new (x, y) and depth."""
    p = np.asarray(points, np.float64)
    width = np.ptp(p[:, 0])
    cx, cz = p[:, 0].mean(), p[:, 2].mean() + depth * width
    t = np.radians(-yaw)
    x = cx + (p[:, 0] - cx) * np.cos(t) + (p[:, 2] - cz) * np.sin(t)
    z = cz - (p[:, 0] - cx) * np.sin(t) + (p[:, 2] - cz) * np.cos(t)
    return np.c_[x, p[:, 1]], z


def _border(w: int, h: int) -> np.ndarray:
    k = np.linspace(0, 1, BORDER_ANCHORS + 1)[:-1]
    return np.concatenate([np.c_[k * (w - 1), np.zeros_like(k)], np.c_[np.full_like(k, w - 1), k * (h - 1)],
                           np.c_[(1 - k) * (w - 1), np.full_like(k, h - 1)], np.c_[np.zeros_like(k), (1 - k) * (h - 1)]])


def turn_face(image: np.ndarray, points: np.ndarray, yaw: float, depth: float = HEAD_DEPTH) -> np.ndarray:
    """`image` (gray or BGR) with its face turned by `yaw` degrees, from the face's mesh points in
    the image's pixels (478 or 468 rows of x, y, z)."""
    from scipy.spatial import Delaunay
    h, w = image.shape[:2]
    face = np.asarray(points, np.float64)[:SURFACE_POINTS]
    moved, depth_of = turned_points(face, yaw, depth)
    border = _border(w, h)
    src = np.r_[np.clip(face[:, :2], 0, [w - 1, h - 1]), border]
    dst = np.r_[moved, border]
    z = np.r_[depth_of, np.full(len(border), depth_of.max() + np.ptp(face[:, 0]))]  # the border lies behind
    tris = Delaunay(src).simplices
    tris = tris[np.argsort(-z[tris].mean(1))]  # far triangles first: nearer ones are drawn over them
    owner = np.full((h, w), -1, np.int32)
    for i, tri in enumerate(np.round(dst[tris] * 16).astype(np.int32)):
        cv2.fillConvexPoly(owner, tri, i, cv2.LINE_8, 4)
    # per triangle, the affine map from the turned image back to the source: [x y 1] @ A = source
    corners = np.concatenate([dst[tris], np.ones((len(tris), 3, 1))], 2)
    ok = np.abs(np.linalg.det(corners)) > 1e-9  # triangles turned edge-on map nowhere
    maps = np.zeros((len(tris), 3, 2))
    maps[ok] = np.linalg.solve(corners[ok], src[tris][ok])
    ys, xs = np.nonzero((owner >= 0) & ok[owner])
    map_x, map_y = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    a = maps[owner[ys, xs]]
    map_x[ys, xs] = xs * a[:, 0, 0] + ys * a[:, 1, 0] + a[:, 2, 0]
    map_y[ys, xs] = xs * a[:, 0, 1] + ys * a[:, 1, 1] + a[:, 2, 1]
    return cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def cached_face_meshes(images: np.ndarray, margin: float = 0.1, model: str | None = None,
                       progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """`face_meshes` of a whole training set, measured once and kept in the cache (keyed by the
    images' bytes and the margin). Needs the face landmarker (`model`, else the usual places)."""
    import hashlib
    import os

    from ..runtime.assets import LANDMARKER, cache_dir
    from ..runtime.landmarker import Landmarker
    digest = hashlib.sha256(np.ascontiguousarray(images).data)
    digest.update(f"{images.shape} {margin}".encode())
    path = os.path.join(cache_dir(), "meshes", f"{digest.hexdigest()[:24]}.npz")
    if os.path.isfile(path):
        with np.load(path) as f:
            return f["meshes"].astype(np.float32), f["presence"]
    landmarker = Landmarker(LANDMARKER.find(model), threads=2)
    parts, chunk = [], 512
    steps = range(0, len(images), chunk)
    if progress:
        import sys

        from tqdm import tqdm
        steps = tqdm(steps, desc="face meshes", unit="chunk", file=sys.stderr, leave=False)
    for i in steps:
        parts.append(face_meshes(images[i:i + chunk], landmarker, margin))
    meshes, presence = np.concatenate([m for m, _ in parts]), np.concatenate([p for _, p in parts])
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}.npz"
    np.savez(tmp, meshes=meshes.astype(np.float16), presence=presence)
    os.replace(tmp, path)
    return meshes, presence


def face_meshes(images: np.ndarray, landmarker, margin: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """The face mesh of each square face crop (N, H, W[, 3] uint8, gray or RGB as datasets hold them,
    cut with `margin` of the face box on each side, as `emoscope.contract.crop_face` cuts them), in
    the crop's pixels, and the landmarker's presence for each; crops smaller than `MESH_SIDE` are
    measured upscaled."""
    n, h, w = images.shape[:3]
    scale = max(1.0, MESH_SIDE / max(h, w))
    side_h, side_w = int(round(h * scale)), int(round(w * scale))
    inner = 1 / (1 + 2 * margin)
    box = (side_w * (1 - inner) / 2, side_h * (1 - inner) / 2, side_w * inner, side_h * inner)
    meshes = np.zeros((n, 478, 3), np.float32)
    presence = np.zeros(n, np.float32)
    for i, im in enumerate(images):
        big = cv2.resize(im, (side_w, side_h), interpolation=cv2.INTER_CUBIC) if scale > 1 else im
        m = landmarker.measure(cv2.cvtColor(big, cv2.COLOR_GRAY2BGR if big.ndim == 2 else cv2.COLOR_RGB2BGR), box)
        meshes[i], presence[i] = m.mesh / scale, m.presence
    return meshes, presence
