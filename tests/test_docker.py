"""The Docker image, really built and run: docker/build-image.sh builds the Dockerfile with
Debian's podman (on a local Debian base, YuNet from the shared folder); the image's filesystem is
mounted and the server started in it with chroot (the OCI runtime cannot set resource limits on
these machines); /health and /v1/analyze must answer, and the image size is reported."""

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.request

import pytest

from conftest import REPO, shared_path

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not (shutil.which("podman") and shutil.which("debootstrap") and os.geteuid() == 0),
                                 reason="needs root, podman and debootstrap (.ci/run installs Debian's packages)")]
IMAGE = "localhost/emoscope-test"
SIZE_TARGET_MB = 650


@pytest.fixture(scope="module")
def image():
    yunet = shared_path("models", "face_detection_yunet.onnx")
    r = subprocess.run([os.path.join(REPO, "docker", "build-image.sh"), IMAGE, yunet], capture_output=True, text=True,
                       timeout=3000)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    mount = subprocess.run(["podman", "image", "mount", IMAGE], capture_output=True, text=True, check=True).stdout.strip()
    yield mount
    subprocess.run(["podman", "image", "unmount", IMAGE], capture_output=True)


def test_image_serves_and_stays_small(image, samples):
    info = json.loads(subprocess.run(["podman", "image", "inspect", IMAGE], capture_output=True, text=True,
                                     check=True).stdout)[0]
    size_mb = info["Size"] / 1e6
    config = info["Config"]
    assert config["User"] == "emoscope" and "8000/tcp" in config.get("ExposedPorts", {})
    assert not os.path.exists(os.path.join(image, "opt", "venv", "lib", "python3.11", "site-packages", "torch"))
    assert not os.path.exists(os.path.join(image, "opt", "venv", "bin", "pip"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {"PATH": "/opt/venv/bin:/usr/bin:/bin", "HOME": "/home/emoscope", "EMOSCOPE_CACHE": "/opt/emoscope-cache",
           "PYTHONDONTWRITEBYTECODE": "1"}
    proc = subprocess.Popen([shutil.which("chroot"), "--userspec=10001:10001", image, "emoscope", "serve", "--host", "127.0.0.1",
                             "--port", str(port), "--workers", "1"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 90
        while time.time() < deadline and proc.poll() is None:
            try:
                health = json.load(urllib.request.urlopen(url + "/health", timeout=2))
                break
            except OSError:
                time.sleep(0.5)
        assert proc.poll() is None and health["status"] == "ok"
        with open(os.path.join(samples, "facerec_two_people.jpg"), "rb") as f:
            req = urllib.request.Request(url + "/v1/analyze", data=f.read(), method="POST")
        faces = json.load(urllib.request.urlopen(req, timeout=60))["faces"]
        assert len(faces) == 2
    finally:
        proc.terminate()
        out = proc.communicate(timeout=10)[0]
    print(f"image size: {size_mb:.0f} MB (target {SIZE_TARGET_MB} MB)")
    assert "Traceback" not in out, out[-2000:]
    assert size_mb <= SIZE_TARGET_MB, f"the image is {size_mb:.0f} MB"
