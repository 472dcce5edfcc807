"""`emoscope serve` under the attacks its hardening answers, on loopback, with its defaults:
1. memory: 8 concurrent 6300x6300 16-bit PNGs (about 75 KB each) and 4 videos whose container
   declares 16000x16000 frames: every request answered, the server's RSS growth reported;
2. a burst of 70 concurrent large many-face photos: /health latency p50/p99 during the burst, how
   fast a request that cannot be queued gets 503, and how long until a normal request is served
   at its normal speed after the burst.
Every loop is bounded in count and time and the server is stopped at the end.
Usage: python benchmarks/attack.py [--serve-args '--workers 2']
"""

import argparse
import io
import json
import os
import statistics
import struct
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
from PIL import Image

from bench_serve import SHARED, request, rss_mb, serving


def png16(side: int) -> bytes:
    """A side x side 16-bit grayscale PNG of zeros: a few KB on the wire, 2 bytes a pixel decoded."""
    buf = io.BytesIO()
    Image.fromarray(np.zeros((side, side), np.uint16)).save(buf, "PNG")
    return buf.getvalue()


def huge_frame_avi(path: str) -> bytes:
    """A small MJPEG AVI whose frames claim 16000x16000 pixels: a 64x64 JPEG with its frame
    header (SOF0) patched to 16000x16000, in a container declaring the same, written by hand."""
    frame = bytearray(cv2.imencode(".jpg", np.zeros((64, 64, 3), np.uint8))[1].tobytes())
    sof = frame.index(b"\xff\xc0")
    frame[sof + 5:sof + 9] = struct.pack(">HH", 16000, 16000)
    frame = bytes(frame)

    def chunk(fourcc: bytes, data: bytes) -> bytes:
        return fourcc + struct.pack("<I", len(data)) + data + (b"\x00" if len(data) % 2 else b"")

    def lst(kind: bytes, data: bytes) -> bytes:
        return b"LIST" + struct.pack("<I", len(data) + 4) + kind + data
    avih = struct.pack("<10I4I", 33333, 0, 0, 0x10, 1, 0, 1, 0, 16000, 16000, 0, 0, 0, 0)
    strh = b"vids" + b"MJPG" + struct.pack("<IHHIIIIIIIIhhhh", 0, 0, 0, 0, 1, 30, 0, 1, 0, 0, 0, 0, 0, 16000, 16000)
    strf = struct.pack("<IiiHH4sIiiII", 40, 16000, 16000, 1, 24, b"MJPG", 16000 * 16000 * 3, 0, 0, 0, 0)
    hdrl = lst(b"hdrl", chunk(b"avih", avih) + lst(b"strl", chunk(b"strh", strh) + chunk(b"strf", strf)))
    movi = lst(b"movi", chunk(b"00dc", frame))
    body = b"AVI " + hdrl + movi
    data = b"RIFF" + struct.pack("<I", len(body)) + body
    with open(path, "wb") as f:
        f.write(data)
    return data


def many_faces_photo() -> bytes:
    """A 2560x1440 JPEG tiled with 40 copies of the two-person sample photo (80 faces)."""
    img = cv2.imread(os.path.join(SHARED, "samples", "facerec_two_people.jpg"))
    tile = cv2.resize(img, (320, 180))
    grid = np.vstack([np.hstack([tile] * 8)] * 8)[:1440, :2560]
    return cv2.imencode(".jpg", grid, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--serve-args", default="", help="extra `emoscope serve` options")
    args = p.parse_args()
    result = {}
    with serving(args.serve_args) as (url, pid):
        photo = open(os.path.join(SHARED, "samples", "facerec_two_people.jpg"), "rb").read()
        request(url + "/v1/analyze", photo)
        start = rss_mb(pid)

        # 1. memory: decompression-bomb-sized PNGs and videos declaring huge frames, all at once
        bomb = png16(6300)
        video = huge_frame_avi(os.path.join(tempfile.mkdtemp(), "huge.avi"))
        peak = [start]
        done = threading.Event()

        def watch():
            while not done.is_set():
                peak.append(rss_mb(pid))
                time.sleep(0.05)
        threading.Thread(target=watch, daemon=True).start()
        with ThreadPoolExecutor(12) as pool:
            pngs = [pool.submit(request, url + "/v1/analyze", bomb) for _ in range(8)]
            vids = [pool.submit(request, url + "/v1/videos", video) for _ in range(4)]
            codes = [f.result()[1] for f in pngs], [f.result()[1] for f in vids]
        done.set()
        result.update({"bomb_png_bytes": len(bomb), "bomb_png_codes": codes[0], "huge_video_codes": codes[1],
                       "rss_start_mb": round(start, 1), "rss_peak_mb": round(max(peak), 1),
                       "rss_growth_mb": round(max(peak) - start, 1)})

        # 2. a burst of 70 large many-face photos, with /health probed all along
        big = many_faces_photo()
        normal = statistics.median(request(url + "/v1/analyze", photo)[0] for _ in range(5))
        health, stop = [], threading.Event()

        def probe():
            while not stop.is_set():
                health.append(request(url + "/health", timeout=10)[0])
                time.sleep(0.02)
        prober = threading.Thread(target=probe, daemon=True)
        prober.start()
        t0 = time.perf_counter()
        with ThreadPoolExecutor(70) as pool:
            burst = list(pool.map(lambda _: request(url + "/v1/analyze", big), range(70)))
        burst_s = time.perf_counter() - t0
        stop.set()
        prober.join()
        rejected = [s for s, c in burst if c == 503]
        t1 = time.perf_counter()
        recovered = None
        while time.perf_counter() - t1 < 30:
            s, c = request(url + "/v1/analyze", photo)
            if c == 200 and s < 2 * normal + 0.05:
                recovered = time.perf_counter() - t1
                break
        result.update({"burst_requests": 70, "burst_codes": {str(c): sum(1 for _, k in burst if k == c)
                                                             for c in sorted({k for _, k in burst})},
                       "burst_seconds": round(burst_s, 2),
                       "health_during_burst_p50_ms": round(1000 * float(np.percentile(health, 50)), 1),
                       "health_during_burst_p99_ms": round(1000 * float(np.percentile(health, 99)), 1),
                       "health_probes": len(health),
                       "rejected_503_max_s": round(max(rejected), 3) if rejected else None,
                       "normal_request_s": round(normal, 3),
                       "normal_again_after_s": round(recovered, 2) if recovered is not None else None,
                       "rss_after_mb": round(rss_mb(pid), 1)})
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
