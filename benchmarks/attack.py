"""`emoscope serve` under the attacks its hardening answers, on loopback, with its defaults:
1. memory: 8 concurrent 6300x6300 16-bit PNGs (about 75 KB each) and 4 videos whose container
   declares 16000x16000 frames: every request answered, the server's RSS growth reported;
2. a burst of 70 concurrent large many-face photos: /health latency p50/p99 during the burst, how
   fast a request that cannot be queued gets 503, and how long until a normal request is served
   at its normal speed after the burst;
3. 1,000 idle sockets from one address: /health and a normal photo while they are open, and how
   many the server still holds;
4. two progressive-JPEG "scan bombs" (a flat 7900x5000 image whose last scan is repeated
   thousands of times): their answer time, /health and a normal photo meanwhile;
5. 32 concurrent 15 MB photo uploads: the answers and the server's RSS peak;
6. 60 WebSockets sending one 14 MB frame each: GET /v1/model latency meanwhile and the RSS peak;
and, from a second address (127.0.0.2) while the first keeps working (round 4, N1-N11):
7. 32 photo heads declaring 1,000 bytes and a video head declaring 64 MB, none sending a body:
   the other address's photos and a video upload meanwhile;
8. four campaign uploads trickling a byte every 5 s: the other address's video upload meanwhile,
   and how the trickles end;
9. a burst of 52 one-frame video jobs: whether the other address's finished result survives;
10. 32 WebSockets sending a 10-byte frame every 2 s: how many are admitted and how they end, and
   a new camera from the other address;
11. campaigns with offsets -10,000,000, inf and nan and a recording with a 256-character name:
   the answers, and a video job right after.
All along, a camera client sends one frame a second over a WebSocket (`--camera-seconds`, 60 by
default; 600 for the ten-minute check): how long it stayed connected and how many answers it got.
Each attack reports "health_ms" (max /health latency during it) and "photo_s" (a normal photo's
answer time during it). Every loop is bounded in count and time and the server is stopped at the end.
Usage: python benchmarks/attack.py [--serve-args '--workers 2'] [--camera-seconds 600]
"""

import argparse
import collections
import io
import json
import logging
import os
import socket
import statistics
import struct
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
from PIL import Image

from bench_serve import SHARED, request, rss_mb, serving

ATTACKER = "127.0.0.2"  # a second loopback address: the attacks of round 4 come from another client


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


def scan_bomb(repeats: int = 3000) -> bytes:
    """A flat 7900x5000 progressive JPEG whose last scan is repeated `repeats` times: a few MB
    that once took minutes to decode."""
    buf = io.BytesIO()
    Image.new("L", (7900, 5000), 128).save(buf, "JPEG", progressive=True, quality=50)
    data = buf.getvalue()
    last = data.rindex(b"\xff\xda")
    return data[:last] + data[last:-2] * repeats + b"\xff\xd9"


class Watch:
    """While its block runs: /health latency, a normal photo's answer time (unless `photo` is
    None), `also`'s latency (another GET path) and the server's RSS, sampled in the background."""

    def __init__(self, url: str, pid: int, photo: bytes | None, also: str | None = None):
        self.url, self.pid, self.photo, self.also = url, pid, photo, also
        self.health, self.photos, self.also_s, self.rss = [], [], [], [rss_mb(pid)]

    def __enter__(self):
        self.stop = threading.Event()
        probes = [self._health, self._rss] + ([self._photo] if self.photo else []) + ([self._also] if self.also else [])
        self.threads = [threading.Thread(target=self._loop, args=(f,), daemon=True) for f in probes]
        for t in self.threads:
            t.start()
        return self

    def _loop(self, fn):
        while not self.stop.is_set():
            fn()

    def _health(self):
        self.health.append(request(self.url + "/health", timeout=10)[0])
        time.sleep(0.02)

    def _photo(self):
        self.photos.append(request(self.url + "/v1/analyze", self.photo, timeout=30))
        time.sleep(0.2)

    def _also(self):
        self.also_s.append(request(self.url + self.also, timeout=30)[0])
        time.sleep(0.05)

    def _rss(self):
        self.rss.append(rss_mb(self.pid))
        time.sleep(0.05)

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join(35)

    def report(self) -> dict:
        ok = [s for s, c in self.photos if c == 200]
        return {"health_ms": round(1000 * max(self.health), 1) if self.health else None,
                "photo_s": round(max(ok), 3) if ok else None,
                "photo_codes": sorted({c for _, c in self.photos}), "rss_peak_mb": round(max(self.rss), 1)}


def ws_url(url: str) -> str:
    return url.replace("http://", "ws://") + "/v1/stream"


def camera(url: str, photo: bytes, seconds: float, out: dict) -> None:
    """One frame a second for `seconds`; records how long the socket lived and the answers."""
    from websockets.sync.client import connect
    t0, answers = time.monotonic(), 0
    try:
        with connect(ws_url(url), max_size=None, open_timeout=10) as ws:
            while time.monotonic() - t0 < seconds:
                ws.send(photo)
                if "faces" in json.loads(ws.recv(timeout=30)):
                    answers += 1
                time.sleep(max(0.0, t0 + answers + 1 - time.monotonic()))
            out["camera_closed_by"] = "client"
    except Exception as exc:  # the benchmark reports how the stream ended, whatever it was
        out["camera_closed_by"] = f"server or network ({type(exc).__name__})"
    out.update({"camera_connected_s": round(time.monotonic() - t0, 1), "camera_answers": answers})


def idle_sockets(url: str, count: int = 1000) -> tuple[list[socket.socket], int]:
    port = int(url.rsplit(":", 1)[1])
    socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(count)]
    return socks, port


def still_open(socks: list[socket.socket]) -> int:
    n = 0
    for s in socks:
        s.settimeout(0.02)
        try:
            n += s.recv(1) != b""
        except socket.timeout:
            n += 1
        except OSError:
            pass
        s.close()
    return n


def ws_big_frames(url: str, frame: bytes, count: int) -> list:
    """`count` WebSockets, each sending one large frame; their answers' status (or the close)."""
    from websockets.sync.client import connect

    def one(_):
        try:
            with connect(ws_url(url), max_size=None, open_timeout=30) as ws:
                ws.send(frame)
                return json.loads(ws.recv(timeout=60)).get("status", 200)
        except Exception as exc:  # the benchmark counts how each socket ended
            return type(exc).__name__
    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(one, range(count)))


def post_from(url: str, path: str, body: bytes, content_type: str, source: str = ATTACKER,
              timeout: float = 60) -> tuple[float, int, bytes]:
    """POST from the `source` address; (seconds, status, body), status 0 when the connection failed."""
    import http.client
    host, port = url.rsplit("/", 1)[1].split(":")
    t = time.perf_counter()
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout, source_address=(source, 0))
    try:
        conn.request("POST", path, body, {"Content-Type": content_type})
        r = conn.getresponse()
        return time.perf_counter() - t, r.status, r.read()
    except OSError:
        return time.perf_counter() - t, 0, b""
    finally:
        conn.close()


def heads(url: str, n: int, start: bytes, source: str = ATTACKER) -> list[socket.socket]:
    """`n` connections from `source` that each send the start of a request and then nothing more."""
    port = int(url.rsplit(":", 1)[1])
    socks = []
    for _ in range(n):
        sock = socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(source, 0))
        sock.sendall(start)
        socks.append(sock)
    return socks


def answer_of(sock: socket.socket, wait: float = 0.5) -> str:
    """The status line the server sent on `sock` (or how the connection ended)."""
    sock.settimeout(wait)
    try:
        data = sock.recv(200)
        return data.split(b"\r\n", 1)[0].decode("latin-1") if data else "closed"
    except socket.timeout:
        return "open"
    except OSError as exc:
        return type(exc).__name__


def one_frame_video(path: str, photo: bytes) -> bytes:
    """An MJPEG AVI of one frame: the photo."""
    frame = cv2.imdecode(np.frombuffer(photo, np.uint8), cv2.IMREAD_COLOR)
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"MJPG"), 30, (frame.shape[1], frame.shape[0]))
    writer.write(frame)
    writer.release()
    return open(path, "rb").read()


def multipart(parts: list[tuple[str, str | None, bytes]]) -> tuple[bytes, str]:
    """A multipart/form-data body of (field, filename or None, data); (body, content type)."""
    out = io.BytesIO()
    for field, filename, data in parts:
        name = f'; filename="{filename}"' if filename else ""
        out.write(f'--b0undary\r\nContent-Disposition: form-data; name="{field}"{name}\r\n\r\n'.encode())
        out.write(data + b"\r\n")
    out.write(b"--b0undary--\r\n")
    return out.getvalue(), "multipart/form-data; boundary=b0undary"


def video_job(url: str, video: bytes, source: str = "127.0.0.1", wait_s: float = 0) -> dict:
    """Submit a video job from `source`; its status code, answer time and, with `wait_s`, its final state."""
    s, code, body = post_from(url, "/v1/videos", video, "video/x-msvideo", source)
    out = {"code": code, "answer_s": round(s, 3)}
    if code == 202 and wait_s:
        status_url = json.loads(body)["status_url"]
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            with urllib.request.urlopen(url + status_url, timeout=10) as r:
                state = json.loads(r.read())["status"]
            if state in ("done", "failed", "cancelled"):
                break
            time.sleep(0.1)
        out.update({"status": state, "status_url": status_url})
    return out


def round4(url: str, pid: int, photo: bytes, clip: bytes) -> dict:
    """The attacks of round 4 (N1-N11), each from the second address while the first works."""
    from websockets.sync.client import connect
    result = {}
    port = int(url.rsplit(":", 1)[1])

    # 7. (N1) heads that declare bodies and send none
    with Watch(url, pid, photo) as w:
        held = heads(url, 32, b"POST /v1/analyze HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\n"
                              b"Content-Length: 1000\r\n\r\n")
        held += heads(url, 1, b"POST /v1/videos HTTP/1.1\r\nHost: x\r\nContent-Type: video/mp4\r\n"
                              b"Content-Length: 67108864\r\n\r\n")
        time.sleep(0.5)
        video = video_job(url, clip, wait_s=60)
        time.sleep(3)
    result["n1_heads_without_body"] = {"heads": len(held), "other_client_video": video, **w.report(),
                                       "heads_ended": dict(collections.Counter(answer_of(h) for h in held))}
    for h in held:
        h.close()

    # 8. (N3) campaign uploads trickling a byte every 5 s
    trickles = heads(url, 4, b"POST /v1/campaigns HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; "
                             b"boundary=b\r\nContent-Length: 100000\r\n\r\n--b\r\n")
    t0 = time.monotonic()
    with Watch(url, pid, photo) as w:
        time.sleep(0.5)
        video = video_job(url, clip, wait_s=60)
        ended, sent = {}, t0
        while len(ended) < len(trickles) and time.monotonic() - t0 < 30:
            trickle = time.monotonic() - sent >= 5
            sent = time.monotonic() if trickle else sent
            for i, sock in enumerate(trickles):
                if i not in ended:
                    state = answer_of(sock, 0.05)
                    if state == "open" and trickle:
                        try:
                            sock.sendall(b"x")
                        except OSError:
                            state = "closed"
                    if state != "open":
                        ended[i] = (state, round(time.monotonic() - t0, 1))
            time.sleep(0.5)
    result["n3_trickled_campaigns"] = {"other_client_video": video, "trickles_ended": sorted(ended.values()),
                                       "still_open_after_30_s": len(trickles) - len(ended), **w.report()}
    for sock in trickles:
        sock.close()

    # 9. (N9) a burst of one-frame jobs against another client's finished result
    tiny = one_frame_video(os.path.join(tempfile.mkdtemp(), "one.avi"), photo)
    mine = video_job(url, clip, wait_s=120)
    with ThreadPoolExecutor(8) as pool:
        burst = list(pool.map(lambda _: post_from(url, "/v1/videos", tiny, "video/x-msvideo")[1], range(52)))
    time.sleep(5)
    survived = request(url + mine["status_url"])[1] if mine.get("status_url") else None
    result["n9_job_burst"] = {"burst_codes": dict(collections.Counter(map(str, burst))),
                              "other_client_result_after": survived}

    # 10. (N11) WebSockets holding stream slots with 10-byte frames
    def squatter(_):
        sock = socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(ATTACKER, 0))
        try:
            with connect(ws_url(url), sock=sock, open_timeout=10) as ws:
                for _ in range(10):
                    ws.send(b"0123456789")
                    ws.recv(timeout=10)
                    time.sleep(2)
                return "held 20 s"
        except Exception as exc:  # the benchmark counts how each socket ended
            return getattr(getattr(exc, "rcvd", None), "code", None) or type(exc).__name__
    with ThreadPoolExecutor(32) as pool:
        squatters = [pool.submit(squatter, i) for i in range(32)]
        time.sleep(2)
        t = time.perf_counter()
        try:
            with connect(ws_url(url), open_timeout=10) as ws:
                ws.send(photo)
                new_camera = {"answered": "faces" in json.loads(ws.recv(timeout=30)),
                              "answer_s": round(time.perf_counter() - t, 3)}
        except Exception as exc:  # reported as the outcome
            new_camera = {"answered": False, "error": type(exc).__name__}
        ends = [f.result() for f in squatters]
    result["n11_stream_squatters"] = {"sockets": 32, "ended": dict(collections.Counter(map(str, ends))),
                                      "other_client_camera": new_camera}

    # 11. (N4, N6) campaign inputs that once stalled the worker or answered 500
    answers = {}
    for label, offsets in (("offset_-1e7", b"recording,offset_s\nrec.avi,-10000000\n"),
                           ("offset_inf", b"recording,offset_s\nrec.avi,inf\n"),
                           ("offset_nan", b"recording,offset_s\nrec.avi,nan\n")):
        body, kind = multipart([("recordings", "rec.avi", tiny), ("offsets", "offsets.csv", offsets)])
        s, code, _ = post_from(url, "/v1/campaigns", body, kind)
        answers[label] = {"code": code, "answer_s": round(s, 3)}
    body, kind = multipart([("recordings", "r" * 252 + ".avi", tiny)])
    s, code, reply = post_from(url, "/v1/campaigns", body, kind)
    answers["name_256_chars"] = {"code": code, "answer_s": round(s, 3)}
    if code == 202:
        urllib.request.urlopen(urllib.request.Request(url + json.loads(reply)["status_url"], method="DELETE"))
    result["n4_n6_campaign_inputs"] = {**answers, "video_job_after": video_job(url, clip, wait_s=60)}
    return result


def main() -> None:
    # the WebSocket client library logs every connection the server closes under attack; the
    # benchmark counts them in its results instead
    logging.getLogger("websockets").setLevel(logging.CRITICAL)
    p = argparse.ArgumentParser()
    p.add_argument("--serve-args", default="", help="extra `emoscope serve` options")
    p.add_argument("--camera-seconds", type=float, default=60.0,
                   help="how long the camera client streams one frame a second during the attacks")
    args = p.parse_args()
    result = {}
    with serving(args.serve_args) as (url, pid):
        photo = open(os.path.join(SHARED, "samples", "facerec_two_people.jpg"), "rb").read()
        request(url + "/v1/analyze", photo)
        start = rss_mb(pid)
        cam: dict = {}
        cam_thread = threading.Thread(target=camera, args=(url, photo, args.camera_seconds, cam), daemon=True)
        cam_thread.start()

        # 1. memory: decompression-bomb-sized PNGs and videos declaring huge frames, all at once
        bomb = png16(6300)
        video = huge_frame_avi(os.path.join(tempfile.mkdtemp(), "huge.avi"))
        with Watch(url, pid, None) as w:
            with ThreadPoolExecutor(12) as pool:
                pngs = [pool.submit(request, url + "/v1/analyze", bomb) for _ in range(8)]
                vids = [pool.submit(request, url + "/v1/videos", video) for _ in range(4)]
                codes = [f.result()[1] for f in pngs], [f.result()[1] for f in vids]
        peak = w.rss
        result.update({"bomb_png_bytes": len(bomb), "bomb_png_codes": codes[0], "huge_video_codes": codes[1],
                       "rss_start_mb": round(start, 1), "rss_peak_mb": round(max(peak), 1),
                       "rss_growth_mb": round(max(peak) - start, 1)})

        # 2. a burst of 70 large many-face photos, with /health probed all along
        big = many_faces_photo()
        normal = statistics.median(request(url + "/v1/analyze", photo)[0] for _ in range(5))
        t0 = time.perf_counter()
        with Watch(url, pid, None) as w:
            with ThreadPoolExecutor(70) as pool:
                burst = list(pool.map(lambda _: request(url + "/v1/analyze", big), range(70)))
            burst_s = time.perf_counter() - t0
        health = w.health
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

        # 3. a crowd of idle sockets from one address
        with Watch(url, pid, photo) as w:
            socks, _ = idle_sockets(url)
            time.sleep(3)
        result["idle_sockets"] = {"opened": len(socks), "still_open": still_open(socks), **w.report()}

        # 4. two scan bombs at once
        bomb_jpeg = scan_bomb()
        with Watch(url, pid, photo) as w:
            with ThreadPoolExecutor(2) as pool:
                answers = list(pool.map(lambda _: request(url + "/v1/analyze", bomb_jpeg, timeout=600), range(2)))
        result["scan_bomb"] = {"bytes": len(bomb_jpeg), "codes": [c for _, c in answers],
                               "answer_s": round(max(s for s, _ in answers), 3), **w.report()}

        # 5. 32 concurrent 15 MB photo uploads
        padded = photo + b"\x00" * (15 * 2**20 - len(photo) - 1024)
        with Watch(url, pid, photo) as w:
            with ThreadPoolExecutor(32) as pool:
                answers = list(pool.map(lambda _: request(url + "/v1/analyze", padded, timeout=120), range(32)))
        result["upload_bodies"] = {"codes": {str(c): sum(1 for _, k in answers if k == c)
                                             for c in sorted({k for _, k in answers})}, **w.report()}

        # 6. WebSockets with one large frame each
        big_frame = photo + b"\x00" * (14 * 2**20)
        with Watch(url, pid, photo, also="/v1/model") as w:
            outcomes = ws_big_frames(url, big_frame, 60)
        model_times = w.also_s
        result["ws_large_frames"] = {"sockets": 60, "outcomes": {str(o): outcomes.count(o) for o in set(outcomes)},
                                     "model_max_s": round(max(model_times), 3) if model_times else None, **w.report()}
        clip = one_frame_video(os.path.join(tempfile.mkdtemp(), "clip.avi"), photo)
        result["round4"] = round4(url, pid, photo, clip)
        cam_thread.join(args.camera_seconds + 60)
        result["camera"] = cam
        result["rss_end_mb"] = round(rss_mb(pid), 1)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
