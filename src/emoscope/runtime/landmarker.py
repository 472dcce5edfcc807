"""The face landmarker: MediaPipe's landmark and blendshape models (Apache-2.0) on onnxruntime.

The models come from MediaPipe's `face_landmarker.task` bundle, found like YuNet (a path,
$EMOSCOPE_LANDMARKER_MODEL, the cache, or a download checked against its SHA-256). The first use
of a bundle converts its two TFLite models to ONNX (`tflite_onnx`, needs the `mesh` extra) into
the cache, keyed by the bundle's checksum; after that only onnxruntime runs. What goes in and
comes out is stated in `emoscope.mesh`."""

from __future__ import annotations

import os
import zipfile

import cv2
import numpy as np

from .. import mesh as contract
from .assets import LANDMARKER, ModelNotFoundError, cache_dir, sha256
from .session import cpu_session
from .tflite_onnx import CONVERTER_VERSION, convert

LANDMARKS_FILE, BLENDSHAPES_FILE = "face_landmarks_detector.tflite", "face_blendshapes.tflite"


def converted_models(task: str) -> tuple[str, str]:
    """The ONNX landmark and blendshape models of a `.task` bundle, converted once into the cache."""
    folder = os.path.join(cache_dir(), "models", f"face_landmarker-{sha256(task)[:16]}-v{CONVERTER_VERSION}")
    paths = os.path.join(folder, "landmarks.onnx"), os.path.join(folder, "blendshapes.onnx")
    if all(os.path.isfile(p) for p in paths):
        return paths
    try:
        import onnx  # noqa: F401  (the converter's two dependencies, the `mesh` extra)
        import tflite  # noqa: F401
    except ImportError:  # pragma: no cover - depends on the install
        raise ModelNotFoundError("the face landmarker's models are converted to ONNX on first use, which needs "
                                 "the mesh extra: pip install 'emoscope[mesh]'") from None
    try:
        with zipfile.ZipFile(task) as z:
            models = {name: z.read(name) for name in (LANDMARKS_FILE, BLENDSHAPES_FILE)}
    except (zipfile.BadZipFile, KeyError, OSError):
        raise ModelNotFoundError(f"{task} is not a MediaPipe face landmarker bundle (a zip holding "
                                 f"{LANDMARKS_FILE} and {BLENDSHAPES_FILE})") from None
    os.makedirs(folder, exist_ok=True)
    for path, name, channels_first in ((paths[0], LANDMARKS_FILE, True), (paths[1], BLENDSHAPES_FILE, False)):
        proto = convert(models[name], channels_first=channels_first)
        tmp = f"{path}.tmp{os.getpid()}"
        with open(tmp, "wb") as f:
            f.write(proto.SerializeToString())
        os.replace(tmp, path)
    return paths


class Landmarker:
    """478 landmarks, 52 blendshapes and the measures derived from them, for a face given by its
    box (and YuNet's eye points, which level the crop). `threads` caps onnxruntime's threads."""

    def __init__(self, model_path: str | None = None, threads: int = 1):
        self.task = LANDMARKER.find(model_path)
        landmarks, blendshapes = converted_models(self.task)
        self.landmarks = cpu_session(landmarks, threads)
        self.blendshapes = cpu_session(blendshapes, threads)

    def crop(self, image: np.ndarray, box, eyes: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, float]:
        """The model input (1, 256, 256, 3) RGB in [0, 1] from a BGR image, with its matrix and side."""
        m, side = contract.roi_matrix(box, eyes)
        size = contract.LANDMARK_INPUT
        patch = cv2.warpAffine(image, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        rgb = cv2.cvtColor(patch, cv2.COLOR_BGR2RGB) if patch.ndim == 3 else cv2.cvtColor(patch, cv2.COLOR_GRAY2RGB)
        return (rgb[None].astype(np.float32) / 255.0), m, side

    def measure(self, image: np.ndarray, box, eyes: np.ndarray | None = None) -> contract.FaceMesh:
        x, m, side = self.crop(image, box, eyes)
        points, presence = self.landmarks.run(["output0", "output1"], {"input": x})
        mesh = contract.to_image(points.reshape(contract.N_LANDMARKS, 3), m, side)
        subset = mesh[list(contract.BLENDSHAPE_LANDMARKS), :2][None].astype(np.float32)
        scores = self.blendshapes.run(None, {"input": subset})[0].reshape(-1)
        blend = {name: float(v) for name, v in zip(contract.BLENDSHAPES, scores)}
        pose = contract.head_pose(mesh)
        gaze = contract.gaze(mesh, pose)
        open_eyes = contract.eyes_open(blend)
        return contract.FaceMesh(mesh, float(1 / (1 + np.exp(-float(presence.reshape(-1)[0])))), blend, pose, gaze,
                                 open_eyes, contract.attending(gaze, open_eyes))
