"""Find model files: the embedded expression model, and YuNet (path -> env -> cache -> download)."""

from __future__ import annotations

import hashlib
import os
import urllib.request
from importlib import resources

YUNET_URL = ("https://github.com/opencv/opencv_zoo/raw/main/models/face_detection_yunet/"
             "face_detection_yunet_2023mar.onnx")
YUNET_SHA256 = "ebafce4e3c118d6554634be5c27ab333b4c047a9a8c3faf1d7cf93101c22f0f0"
YUNET_FILE = "face_detection_yunet_2023mar.onnx"


class ModelNotFoundError(FileNotFoundError):
    """A model file could not be found or fetched; the message says how to provide it."""


def cache_dir() -> str:
    return os.environ.get("EMOSCOPE_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "emoscope")


def embedded_model(name: str = "expression") -> str:
    """Path of a model shipped inside the package (expression.onnx, gender.onnx)."""
    path = resources.files("emoscope") / "assets" / f"{name}.onnx"
    if not path.is_file():
        raise ModelNotFoundError(f"the package ships no '{name}.onnx' model (looked in {path})")
    return str(path)


def sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def yunet_model(path: str | None = None, download: bool = True) -> str:
    """Locate YuNet: explicit path -> $EMOSCOPE_YUNET_MODEL -> user cache -> download (checksummed)."""
    if path:
        if not os.path.isfile(path):
            raise ModelNotFoundError(f"YuNet model {path!r} does not exist")
        return path
    env = os.environ.get("EMOSCOPE_YUNET_MODEL")
    if env:
        if not os.path.isfile(env):
            raise ModelNotFoundError(f"EMOSCOPE_YUNET_MODEL={env!r} does not exist")
        return env
    cached = os.path.join(cache_dir(), "models", YUNET_FILE)
    if os.path.isfile(cached) and sha256(cached) == YUNET_SHA256:
        return cached
    if not download:
        raise ModelNotFoundError(f"YuNet is not in the cache ({cached}) and downloading is off")
    os.makedirs(os.path.dirname(cached), exist_ok=True)
    tmp = cached + ".part"
    try:
        with urllib.request.urlopen(YUNET_URL, timeout=30) as r, open(tmp, "wb") as f:
            f.write(r.read())
    except OSError as exc:
        raise ModelNotFoundError(
            f"could not download the YuNet face detector from {YUNET_URL} ({exc}). Offline? Put the file "
            f"at {cached}, set EMOSCOPE_YUNET_MODEL, or pass detector_model=PATH (--detector-model PATH); "
            f"or use detector='full-frame' for images that are already face crops.") from exc
    digest = sha256(tmp)
    if digest != YUNET_SHA256:
        os.remove(tmp)
        raise ModelNotFoundError(f"downloaded YuNet has sha256 {digest}, expected {YUNET_SHA256}; not used")
    os.replace(tmp, cached)
    return cached
