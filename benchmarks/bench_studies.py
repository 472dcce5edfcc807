"""Concurrent study viewers on one `emoscope serve` (loopback): N simulated viewers each join a
study and send camera frames at 5 per second for a while (320 x 240 JPEGs of one face, as the
viewer page sends them), every frame stamped with the ad's time; the latency of a frame is from
sending it to the server's answer, which comes after the frame is analysed and stored. Rounds of
growing N; the answer is the largest N whose p95 latency stays under 1 s with no frame refused.
Usage: python benchmarks/bench_studies.py [--viewers 10,20,30,40,50] [--seconds 20] [--db URL]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request

import cv2
import numpy as np

SHARED = os.environ.get("EMOSCOPE_SHARED", os.path.join(os.path.dirname(__file__), "..", "..", "shared"))
FPS = 5


def webcam_jpeg() -> bytes:
    """A 320 x 240 frame with one face filling a third of it, as a laptop camera shows a viewer."""
    photo = cv2.imread(os.path.join(SHARED, "samples", "facerec_obama.jpg"))
    frame = np.full((240, 320, 3), 60, np.uint8)
    small = cv2.resize(photo, (192, 240))
    frame[:, 64:256] = small
    return cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 75])[1].tobytes()


def start_server(db: str) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "emoscope.cli", "serve", "--port", str(port), "--db", db,
                             "--detector-model", os.path.join(SHARED, "models", "face_detection_yunet.onnx"),
                             # every simulated viewer comes from 127.0.0.1: lift the per-address cap
                             "--max-connections-per-client", "1000"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            urllib.request.urlopen(url + "/health", timeout=1)
            return proc, url
        except OSError:
            time.sleep(0.3)
    raise RuntimeError("the server did not start")


def post(url: str, data: bytes | None = None, headers: dict | None = None) -> dict:
    req = urllib.request.Request(url, data=data, method="POST", headers=headers or {})
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read())


async def viewer(url: str, token: str, jpeg: bytes, seconds: float, latencies: list, problems: list) -> None:
    import websockets
    join = await asyncio.to_thread(post, f"{url}/p/{token}/viewers", json.dumps({"consent": True}).encode(),
                                   {"Content-Type": "application/json"})
    ws_url = url.replace("http", "ws") + f"/p/{token}/ws?viewer={join['viewer']}&key={join['key']}"
    async with websockets.connect(ws_url, max_size=2**20, ping_interval=None) as ws:  # the client shares the CPU
        start = time.perf_counter()
        n = 0
        while time.perf_counter() - start < seconds:
            t = n / FPS
            sent = time.perf_counter()
            await ws.send(struct.pack("<d", t) + jpeg)
            answer = json.loads(await ws.recv())
            latencies.append(time.perf_counter() - sent)
            if "error" in answer:
                problems.append(answer["error"])
            n += 1
            await asyncio.sleep(max(0.0, start + n / FPS - time.perf_counter()))


async def round_of(url: str, token: str, jpeg: bytes, viewers: int, seconds: float) -> dict:
    import websockets
    latencies, problems = [], []
    started = time.perf_counter()
    outcomes = await asyncio.gather(*[viewer(url, token, jpeg, seconds, latencies, problems) for _ in range(viewers)],
                                    return_exceptions=True)
    dropped = sum(isinstance(o, websockets.exceptions.ConnectionClosed) for o in outcomes)
    for o in outcomes:
        if isinstance(o, BaseException) and not isinstance(o, websockets.exceptions.ConnectionClosed):
            raise o
    lat = np.array(latencies)
    wall = time.perf_counter() - started
    return {"viewers": viewers, "frames": len(lat), "frames_per_s": round(len(lat) / wall, 1),
            "wanted_frames_per_s": viewers * FPS, "p50_ms": round(float(np.percentile(lat, 50)) * 1000, 1),
            "p95_ms": round(float(np.percentile(lat, 95)) * 1000, 1), "refused": len(problems),
            "connections_dropped": dropped}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--viewers", default="10,20,40,60,80")
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--db", help="database URL (default: a fresh SQLite file)")
    args = p.parse_args()
    db = args.db or f"sqlite:///{tempfile.mkdtemp()}/bench.db"
    proc, url = start_server(db)
    try:
        ad = open(os.path.join(SHARED, "samples", "facerec_short_hamilton_clip.mp4"), "rb").read()
        study = post(f"{url}/v1/studies?name=bench", ad)
        token = study["participant_url"].rsplit("/", 1)[1]
        jpeg = webcam_jpeg()
        best = 0
        for n in (int(v) for v in args.viewers.split(",")):
            r = asyncio.run(round_of(url, token, jpeg, n, args.seconds))
            r["ok"] = (r["p95_ms"] < 1000 and r["refused"] == 0 and r["connections_dropped"] == 0
                       and r["frames_per_s"] >= 0.95 * r["wanted_frames_per_s"])
            best = n if r["ok"] else best
            print(json.dumps(r), flush=True)
        print(json.dumps({"db": db.split(":")[0], "most_viewers_with_p95_under_1s": best, "cpus": os.cpu_count()}))
    finally:
        proc.terminate()
        proc.wait(10)


if __name__ == "__main__":
    main()
