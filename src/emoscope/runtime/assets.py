"""Find model files: the embedded expression model, and the downloadable ones (YuNet, the MediaPipe face
landmarker): path -> environment variable -> cache -> download checked against its SHA-256."""

from __future__ import annotations

import hashlib
import os
import urllib.request
from dataclasses import dataclass
from importlib import resources



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


@dataclass(frozen=True)
class Downloadable:
    """A model file found like this: a given path, then an environment variable, then the user
    cache, then a download checked against its SHA-256."""

    name: str     # in messages
    url: str
    sha256: str
    file: str     # its name in the cache
    env: str      # the environment variable that may name it
    offline: str  # how else to provide it, for the error message

    def find(self, path: str | None = None, download: bool = True) -> str:
        if path:
            if not os.path.isfile(path):
                raise ModelNotFoundError(f"{self.name} model {path!r} does not exist")
            return path
        env = os.environ.get(self.env)
        if env:
            if not os.path.isfile(env):
                raise ModelNotFoundError(f"{self.env}={env!r} does not exist")
            return env
        cached = os.path.join(cache_dir(), "models", self.file)
        if os.path.isfile(cached) and sha256(cached) == self.sha256:
            return cached
        if not download:
            raise ModelNotFoundError(f"{self.name} is not in the cache ({cached}) and downloading is off")
        os.makedirs(os.path.dirname(cached), exist_ok=True)
        tmp = cached + f".part{os.getpid()}"
        try:
            with urllib.request.urlopen(self.url, timeout=30) as r, open(tmp, "wb") as f:
                f.write(r.read())
        except OSError as exc:
            raise ModelNotFoundError(
                f"could not download the {self.name} from {self.url} ({exc}). Offline? Put the file at {cached}, "
                f"set {self.env}, or {self.offline}.") from exc
        digest = sha256(tmp)
        if digest != self.sha256:
            os.remove(tmp)
            raise ModelNotFoundError(f"downloaded {self.name} has sha256 {digest}, expected {self.sha256}; not used")
        os.replace(tmp, cached)
        return cached


YUNET = Downloadable(
    "YuNet face detector",
    "https://github.com/opencv/opencv_zoo/raw/main/models/face_detection_yunet/face_detection_yunet_2023mar.onnx",
    "ebafce4e3c118d6554634be5c27ab333b4c047a9a8c3faf1d7cf93101c22f0f0", "face_detection_yunet_2023mar.onnx",
    "EMOSCOPE_YUNET_MODEL", "pass detector_model=PATH (--detector-model PATH); or use detector='full-frame' for "
    "images that are already face crops")
# MediaPipe Face Landmarker (Apache-2.0), the published float16/1 bundle
LANDMARKER = Downloadable(
    "MediaPipe face landmarker",
    "https://storage.googleapis.com/mediapipe-models/face_landmarker/face_landmarker/float16/1/face_landmarker.task",
    "64184e229b263107bc2b804c6625db1341ff2bb731874b0bcc2fe6544e0bc9ff", "face_landmarker.task",
    "EMOSCOPE_LANDMARKER_MODEL", "pass mesh_model=PATH (--mesh-model PATH)")


def yunet_model(path: str | None = None, download: bool = True) -> str:
    """Locate YuNet: explicit path -> $EMOSCOPE_YUNET_MODEL -> user cache -> download (checksummed)."""
    return YUNET.find(path, download)
