"""Shared fixtures. Tests needing ../shared find it through EMOSCOPE_SHARED (default ../shared
next to the repository) and skip with a reason when it is absent."""

from __future__ import annotations

import contextlib
import io
import os
import socket
import subprocess
import sys
import time
import urllib.request
import zipfile

import numpy as np
import pytest
from PIL import Image

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.environ.get("EMOSCOPE_SHARED", os.path.join(REPO, "..", "shared"))


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Each test session gets its own dataset/model cache, so tests never see a user's cache."""
    cache = os.environ.get("EMOSCOPE_TEST_CACHE") or str(tmp_path_factory.getbasetemp() / "cache")
    monkeypatch.setenv("EMOSCOPE_CACHE", cache)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path_factory.getbasetemp() / "data"))  # the default studies database


def shared_path(*parts: str) -> str:
    path = os.path.join(SHARED, *parts)
    if not os.path.exists(path):
        pytest.skip(f"{path} not found: set EMOSCOPE_SHARED to the shared data folder")
    return path


@pytest.fixture
def yunet() -> str:
    return shared_path("models", "face_detection_yunet.onnx")


@pytest.fixture
def samples() -> str:
    return shared_path("samples")


def face_like(label: int, seed: int, size: int = 48) -> np.ndarray:
    """A synthetic 'face' whose pattern depends on the label, so small models can learn it."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    freq = 2 + label * 1.5
    img = 128 + 80 * np.sin(2 * np.pi * freq * (xx if label % 2 else yy) + rng.uniform(0, 6.28))
    img += rng.normal(0, 12, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def jpeg_bytes(arr: np.ndarray, mode: str | None = None, fmt: str = "JPEG") -> bytes:
    buf = io.BytesIO()
    img = Image.fromarray(arr)
    if mode:
        img = img.convert(mode)
    img.save(buf, fmt)
    return buf.getvalue()


def write_tree(root: str, files: dict[str, bytes]) -> str:
    for rel, data in files.items():
        path = os.path.join(root, *rel.split("/"))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
    return root


def write_zip(path: str, files: dict[str, bytes]) -> str:
    with zipfile.ZipFile(path, "w") as z:
        for rel, data in files.items():
            z.writestr(rel, data)
    return path


def synthetic_split_folders(n_per_class: int = 20, classes=("angry", "happy", "sad"), splits=("train", "test"),
                            size: int = 48) -> dict[str, bytes]:
    files = {}
    for s in splits:
        for ci, c in enumerate(classes):
            for i in range(n_per_class):
                files[f"{s}/{c}/{s}_{c}_{i}.png"] = jpeg_bytes(face_like(ci, 100_000 * splits.index(s) + 1000 * ci + i, size), fmt="PNG")
    return files


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, seconds: float = 60) -> None:
    """Wait until a server at `url` answers /health (at most `seconds`)."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            urllib.request.urlopen(url + "/health", timeout=1)
            return
        except OSError:
            time.sleep(0.3)


@contextlib.contextmanager
def serve_process(*args: str, env: dict | None = None, log: str | None = None):
    """`emoscope serve` on a free loopback port in a child process, ready when /health answers;
    yields its URL and port, stops it afterwards. Output goes to `log` (else nowhere)."""
    port = free_port()
    out = open(log, "w") if log else subprocess.DEVNULL
    proc = subprocess.Popen([sys.executable, "-m", "emoscope.cli", "serve", "--port", str(port), *args], cwd=REPO,
                            env=env, stdout=out, stderr=subprocess.STDOUT if log else subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    wait_healthy(url)
    try:
        yield url, port
    finally:
        proc.terminate()
        proc.wait(10)
        if log:
            out.close()


def int8_weight_range(path: str) -> tuple[int, int]:
    """The smallest and largest stored value of an int8 ONNX file's int8 weights."""
    import onnx
    from onnx import TensorProto, numpy_helper
    values = [numpy_helper.to_array(w) for w in onnx.load(path).graph.initializer if w.data_type == TensorProto.INT8]
    return int(min(v.min() for v in values)), int(max(v.max() for v in values))
