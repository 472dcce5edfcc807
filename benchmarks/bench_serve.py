"""Load test of `emoscope serve` on loopback: bounded concurrent clients POST a 640x480 JPEG with
one face; reports throughput, p50/p99 latency, errors, and the server's RSS before and after each
round (growth across rounds would be a leak).
Usage: python benchmarks/bench_serve.py [--clients 32] [--requests 50] [--rounds 3] [--serve-args '--workers 2']
"""

import argparse
import contextlib
import json
import os
import shlex
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import cv2

SHARED = os.environ.get("EMOSCOPE_SHARED", os.path.join(os.path.dirname(__file__), "..", "..", "shared"))


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def request(url: str, body: bytes | None = None, timeout: float = 60) -> tuple[float, int]:
    """POST `body` (GET without one); (seconds, status), status 0 when the connection failed."""
    t = time.perf_counter()
    req = urllib.request.Request(url, data=body, method="POST" if body is not None else "GET")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            r.read()
            code = r.status
    except urllib.error.HTTPError as e:
        code = e.code
    except OSError:
        code = 0
    return time.perf_counter() - t, code


@contextlib.contextmanager
def serving(serve_args: str = ""):
    """`emoscope serve` on a free loopback port, ready when /health answers; yields (url, pid)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    yunet = os.environ.get("EMOSCOPE_YUNET_MODEL") or os.path.join(SHARED, "models", "face_detection_yunet.onnx")
    server = subprocess.Popen([sys.executable, "-m", "emoscope.cli", "serve", "--port", str(port), "--detector-model",
                               yunet, *shlex.split(serve_args)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                urllib.request.urlopen(url + "/health", timeout=1)
                break
            except OSError:
                time.sleep(0.3)
        yield url, server.pid
    finally:
        server.terminate()
        server.wait(10)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--clients", type=int, default=32)
    p.add_argument("--requests", type=int, default=50, help="per client per round")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--serve-args", default="", help="extra `emoscope serve` options, e.g. '--workers 1'")
    args = p.parse_args()
    img = cv2.imread(os.path.join(SHARED, "samples", "facerec_obama.jpg"))
    img = cv2.resize(img, (int(img.shape[1] * 480 / img.shape[0]), 480))[:, :640]
    body = cv2.imencode(".jpg", cv2.copyMakeBorder(img, 0, 0, 0, 640 - img.shape[1], cv2.BORDER_CONSTANT))[1].tobytes()
    with serving(args.serve_args) as (url, pid):
        request(url + "/v1/analyze", body)
        results = []
        for r in range(args.rounds):
            before = rss_mb(pid)
            t = time.perf_counter()
            with ThreadPoolExecutor(args.clients) as pool:
                out = list(pool.map(lambda _: request(url + "/v1/analyze", body), range(args.clients * args.requests)))
            wall = time.perf_counter() - t
            lat = sorted(x[0] for x in out)
            errors = sum(code != 200 for _, code in out)
            row = {"round": r + 1, "requests": len(out), "errors": errors, "throughput_rps": round(len(out) / wall, 1),
                   "p50_ms": round(1000 * statistics.median(lat), 1),
                   "p99_ms": round(1000 * lat[int(0.99 * (len(lat) - 1))], 1),
                   "rss_before_mb": round(before, 1), "rss_after_mb": round(rss_mb(pid), 1)}
            results.append(row)
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
