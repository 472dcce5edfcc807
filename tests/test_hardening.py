"""The service against hostile clients: memory bounded by the decode budget, 503 at once when the
line is full, video job limits (atomic slots, caps, cancel, expiry), clean error bodies, HEAD,
WebSocket key and origin, and, on a real server on loopback, header/body/idle timeouts, header
limits, a disconnecting client and the key kept out of the logs."""

import contextlib
import io
import json
import os
import socket
import struct
import sys
import time
import urllib.request
import zlib
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from starlette.websockets import WebSocketDisconnect

from conftest import REPO, serve_process, shared_path
from emoscope.serve.app import create_app
from emoscope.serve.settings import Settings

INTERNALS = ("PngImagePlugin", "MAX_TEXT_CHUNK", "decompression bomb DOS", "Traceback", "PIL.", "cv2.error",
             "pydantic", "{'type'")


def make_client(**kw):
    return TestClient(create_app(Settings(detector_model=shared_path("models", "face_detection_yunet.onnx"),
                                          threads=1, **kw)))


sys.path.insert(0, os.path.join(REPO, "benchmarks"))
from attack import huge_frame_avi, png16, still_open  # noqa: E402  (the attack benchmark's own hostile files)


def png_with_text(size: int) -> bytes:
    """A valid 8x8 PNG carrying a compressed text chunk that inflates to `size` bytes."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    raw = b"".join(b"\x00" + b"\x00" * 8 for _ in range(8))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 8, 8, 8, 0, 0, 0, 0))
            + chunk(b"zTXt", b"comment\x00\x00" + zlib.compress(b"a" * size, 9))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


@pytest.fixture(scope="module")
def photo():
    with open(shared_path("samples", "facerec_two_people.jpg"), "rb") as f:
        return f.read()


@pytest.fixture(scope="module")
def clip():
    with open(shared_path("samples", "facerec_short_hamilton_clip.mp4"), "rb") as f:
        return f.read()


def assert_clean(r, status_range=(400, 500)):
    assert status_range[0] <= r.status_code < status_range[1], (r.status_code, r.text[:300])
    body = r.json()
    assert set(body) == {"error", "status"} and body["status"] == r.status_code, body
    assert not any(s in body["error"] for s in INTERNALS), body["error"]
    return body


@pytest.mark.slow
def test_decode_budget_refuses_what_it_cannot_hold_and_bounds_the_rest(photo):
    with make_client(decode_budget_mb=64, max_pixels=50_000_000) as c:
        # 6300 x 6300 16-bit: 75 KB on the wire, ~280 MB to decode: more than the whole budget
        body = assert_clean(c.post("/v1/analyze", content=png16(6300)))
        assert body["status"] == 413 and "MB" in body["error"]
        # 2000 x 2000 16-bit fits (~28 MB): eight at once are answered, one or two decoding at a time
        small16 = png16(2000)
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda _: c.post("/v1/analyze", content=small16), range(8)))
        assert all(r.status_code == 200 and r.json()["faces"] == [] for r in answers), [r.text for r in answers]
        assert c.app.state.budget.used == 0
        assert c.post("/v1/analyze", content=photo).status_code == 200


@pytest.mark.slow
def test_large_jpeg_is_decoded_small_and_boxes_stay_in_its_pixels(photo):
    img = cv2.imdecode(np.frombuffer(photo, np.uint8), cv2.IMREAD_COLOR)
    big = cv2.resize(img, (img.shape[1] * 4, img.shape[0] * 4))
    ok, jpg = cv2.imencode(".jpg", big)
    with make_client(decode_max_side=1000) as c:
        small = c.post("/v1/analyze", content=photo).json()
        r = c.post("/v1/analyze", content=jpg.tobytes()).json()
    assert (r["width"], r["height"]) == (big.shape[1], big.shape[0]) and len(r["faces"]) == 2
    for f, g in zip(sorted(r["faces"], key=lambda f: f["box"][0]), sorted(small["faces"], key=lambda f: f["box"][0])):
        assert abs(f["box"][0] - 4 * g["box"][0]) < 40 and abs(f["box"][2] - 4 * g["box"][2]) < 40


def test_full_line_gets_503_at_once_and_health_stays_fast(photo):
    with make_client(workers=1, max_queued_requests=0) as c:
        state = c.app.state
        state.admission.inside = state.admission.limit  # the line is full
        t = time.perf_counter()
        r = c.post("/v1/analyze", content=photo)
        assert time.perf_counter() - t < 1.0 and r.headers["retry-after"] == "1"
        assert_clean(r, (503, 504))
        t = time.perf_counter()
        assert c.get("/health").json()["status"] == "ok" and time.perf_counter() - t < 0.5
        state.admission.inside = 0
        assert c.post("/v1/analyze", content=photo).status_code == 200


def test_faces_per_image_are_capped(photo):
    with make_client(max_faces=1) as c:
        assert len(c.post("/v1/analyze", content=photo).json()["faces"]) == 1


def test_error_bodies_are_one_shape_and_head_works(photo):
    with make_client() as c:
        assert_clean(c.post("/v1/analyze?annotate=maybe", content=photo))
        assert_clean(c.get("/v1/nothing-here"))
        assert_clean(c.put("/v1/analyze", content=photo))
        body = assert_clean(c.post("/v1/analyze", content=png_with_text(20_000_000)))
        assert "metadata" in body["error"] or "damaged" in body["error"]
        for path in ("/health", "/v1/model", "/"):
            r = c.head(path)
            assert r.status_code == 200 and r.content == b"" and int(r.headers["content-length"]) > 0
        assert c.get("/v1/model").json()["valence"]["thresholds"]["negative"] > 0


@pytest.mark.slow
def test_video_slots_are_reserved_atomically(clip):
    with make_client(max_queued_videos=2, max_jobs_per_client=10) as c:  # one test client: the total counts
        with ThreadPoolExecutor(10) as pool:
            answers = list(pool.map(lambda _: c.post("/v1/videos", content=clip), range(10)))
        codes = sorted(r.status_code for r in answers)
        assert codes.count(202) == 2 and codes.count(429) == 8, codes
        assert all(r.headers.get("retry-after") for r in answers if r.status_code == 429)
        for r in answers:
            if r.status_code == 202:
                assert c.delete(f"/v1/videos/{r.json()['id']}").json()["status"] == "cancelled"


@pytest.mark.slow
def test_video_cancel_expiry_and_caps(clip, tmp_path):
    with make_client(result_ttl_s=1.0) as c:
        job_id = c.post("/v1/videos", content=clip).json()["id"]
        job = c.app.state.jobs.get(job_id)
        assert c.delete(f"/v1/videos/{job_id}").status_code == 200
        assert c.get(f"/v1/videos/{job_id}").status_code == 404 and c.delete(f"/v1/videos/{job_id}").status_code == 404
        deadline = time.time() + 30
        while os.path.exists(job.path) and time.time() < deadline:
            time.sleep(0.1)
        assert not os.path.exists(job.path) and job.cancel.is_set()
        # a finished job's results expire
        short = _short_clip(clip, tmp_path)
        job_id = c.post("/v1/videos", content=short).json()["id"]
        deadline = time.time() + 60
        while c.get(f"/v1/videos/{job_id}").json()["status"] not in ("done", "failed") and time.time() < deadline:
            time.sleep(0.2)
        time.sleep(1.2)
        assert c.get(f"/v1/videos/{job_id}").status_code == 404
    with make_client(max_video_seconds=2) as c:
        assert "limit" in assert_clean(c.post("/v1/videos", content=clip))["error"]
    with make_client(max_video_pixels=640 * 300) as c:
        assert assert_clean(c.post("/v1/videos", content=clip))["status"] == 413
    with make_client() as c:  # a 10 KB file whose frames claim 16000 x 16000: refused before decoding
        body = assert_clean(c.post("/v1/videos", content=huge_frame_avi(str(tmp_path / "huge.avi"))))
        assert body["status"] == 413 and "16000x16000" in body["error"]
        assert c.app.state.jobs.pending() == 0


def _short_clip(clip: bytes, tmp_path) -> bytes:
    src = tmp_path / "clip.mp4"
    src.write_bytes(clip)
    cap = cv2.VideoCapture(str(src))
    out = str(tmp_path / "short.avi")
    w = cv2.VideoWriter(out, cv2.VideoWriter_fourcc(*"MJPG"), 30, (640, 360))
    for _ in range(15):
        ok, f = cap.read()
        w.write(f)
    w.release()
    cap.release()
    with open(out, "rb") as f:
        return f.read()


def test_websocket_key_header_and_origin(photo, monkeypatch):
    monkeypatch.setenv("EMOSCOPE_API_KEY", "k3y-for-ws")
    with make_client() as c:
        with c.websocket_connect("/v1/stream", headers={"x-api-key": "k3y-for-ws"}) as ws:
            ws.send_bytes(photo)
            assert len(ws.receive_json()["faces"]) == 2
        with c.websocket_connect("/v1/stream?api_key=k3y-for-ws", headers={"origin": "http://testserver"}) as ws:
            ws.send_bytes(photo)
            assert "faces" in ws.receive_json()
        for kw, code in (({}, 4401), ({"headers": {"x-api-key": "wrong"}}, 4401),
                         ({"headers": {"x-api-key": "k3y-for-ws", "origin": "https://evil.example"}}, 4403)):
            with pytest.raises(WebSocketDisconnect) as err:
                with c.websocket_connect("/v1/stream", **kw) as ws:
                    ws.receive_json()
            assert err.value.code == code


def hostile_requests(photo: bytes) -> list[tuple[str, str, str, dict]]:
    """More hostile inputs beside test_serve's corpus: (name, method, path, request options)."""
    gif = io.BytesIO()
    Image.new("P", (2, 2)).save(gif, "GIF")
    huge_gif = bytearray(gif.getvalue())
    huge_gif[6:10] = struct.pack("<HH", 65535, 65535)  # logical screen 65535 x 65535
    tiff = io.BytesIO()
    Image.new("L", (2, 2)).save(tiff, "TIFF")
    return [
        ("gif claiming 65535x65535", "POST", "/v1/analyze", {"content": bytes(huge_gif)}),
        ("tiff of two pixels then junk", "POST", "/v1/analyze", {"content": tiff.getvalue()[:40] + os.urandom(64)}),
        ("png text chunk bomb", "POST", "/v1/analyze", {"content": png_with_text(50_000_000)}),
        ("annotate not a boolean", "POST", "/v1/analyze?annotate=perhaps", {"content": photo}),
        ("annotate given twice", "POST", "/v1/analyze?annotate=yes&annotate=nope", {"content": photo}),
        ("path traversal", "GET", "/static/../../etc/passwd", {}),
        ("unknown verb path", "GET", "/v1/analyze/../../health/../x", {}),
        ("very long path", "GET", "/v1/" + "a" * 6000, {}),
        ("unicode job id", "GET", "/v1/videos/%E2%98%83%F0%9F%92%A3", {}),
        ("delete unknown job", "DELETE", "/v1/videos/0123456789abcdef", {}),
        ("timeline of unknown job", "GET", "/v1/videos/x/timeline.csv", {}),
        ("video as multipart text", "POST", "/v1/videos", {"data": {"file": "not a video"}}),
        ("video json body", "POST", "/v1/videos", {"content": b'{"video": 1}'}),
        ("image to the video endpoint", "POST", "/v1/videos", {"content": photo}),
        ("delete on analyze", "DELETE", "/v1/analyze", {}),
        ("post to health", "POST", "/health", {"content": b"x"}),
    ]


def test_hostile_requests_get_clean_4xx(photo):
    with make_client() as c:
        cases = hostile_requests(photo)
        for name, method, path, kw in cases:
            r = c.request(method, path, **kw)
            assert 400 <= r.status_code < 500, (name, r.status_code, r.text[:200])
            assert_clean(r)
        assert c.get("/health").json()["status"] == "ok"


def test_allowed_hosts(photo):
    with make_client(allowed_hosts=["emoscope.local"]) as c:
        assert_clean(c.get("/health"))
        assert c.get("/health", headers={"host": "emoscope.local"}).status_code == 200


# -- a real server on loopback ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def server(tmp_path_factory):
    log = tmp_path_factory.mktemp("server") / "server.log"
    args = ["--workers", "1", "--threads", "1", "--detector-model", shared_path("models", "face_detection_yunet.onnx"),
            "--header-timeout-s", "1", "--body-timeout-s", "1", "--keepalive-timeout-s", "1", "--max-header-kb", "16",
            "--stream-idle-timeout-s", "3", "--max-connections-per-client", "40"]
    with serve_process(*args, env=dict(os.environ, EMOSCOPE_API_KEY="s3cret-key-42"), log=str(log)) as (_, port):
        yield port, log


def raw(port: int, data: bytes, wait: float = 3.0) -> bytes:
    """Send bytes as they are; what the server answered before it closed (a reset counts as
    closing: the server may hang up on a request mid-send)."""
    chunks = []
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as s:
        try:
            s.sendall(data)
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
        except (socket.timeout, ConnectionResetError, BrokenPipeError):
            pass
    return b"".join(chunks)


@pytest.mark.slow
def test_idle_connections_and_slow_headers_are_closed(server):
    port, _ = server
    socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(300)]
    socks[0].sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")  # headers that never end
    time.sleep(2.5)
    closed = 0
    for s in socks:
        s.settimeout(2)
        try:
            closed += s.recv(1024) == b""
        except (socket.timeout, ConnectionResetError):
            closed += isinstance(sys.exc_info()[1], ConnectionResetError)
        s.close()
    assert closed == 300
    assert b"200 OK" in raw(port, b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")


@pytest.mark.slow
def test_slow_body_gets_408(server, photo):
    port, _ = server
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"POST /v1/analyze HTTP/1.1\r\nHost: x\r\nX-API-Key: s3cret-key-42\r\n"
                  b"Content-Length: 5000\r\n\r\n")
        t = time.perf_counter()
        answer = b""
        for i in range(20):
            try:
                s.sendall(photo[i:i + 1])
            except OSError:
                break
            s.settimeout(0.6)
            try:
                answer += s.recv(4096)
            except socket.timeout:
                continue
            if answer:
                break
        assert b"408" in answer.split(b"\r\n")[0] and time.perf_counter() - t < 5


@pytest.mark.slow
def test_header_limits(server):
    port, _ = server
    big = raw(port, b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 8_000_000 + b"\r\n\r\n")
    assert big == b"" or not big.startswith(b"HTTP/1.1 200")
    many = b"".join(b"X-%d: a\r\n" % i for i in range(200))
    answer = raw(port, b"GET /health HTTP/1.1\r\nHost: x\r\n" + many + b"Connection: close\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 431") and b'"status":431' in answer.replace(b" ", b"")


@pytest.mark.slow
def test_key_never_logged_and_disconnects_are_one_line(server, photo):
    port, log = server
    key = "s3cret-key-42"
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/analyze?api_key={key}", data=photo,
                                 headers={"X-API-Key": key}, method="POST")
    assert urllib.request.urlopen(req, timeout=60).status == 200
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/model?api_key={key}", headers={"X-API-Key": key})
    assert urllib.request.urlopen(req, timeout=60).status == 200
    from websockets.sync.client import connect
    with connect(f"ws://127.0.0.1:{port}/v1/stream?api_key={key}") as ws:
        ws.send(photo)
        ws.recv(timeout=60)
    with connect(f"ws://127.0.0.1:{port}/v1/stream", additional_headers={"X-API-Key": key}) as ws:
        ws.send(photo)
        ws.recv(timeout=60)
    # a client that hangs up half-way through its upload
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(b"POST /v1/analyze HTTP/1.1\r\nHost: x\r\nX-API-Key: " + key.encode()
                  + b"\r\nContent-Length: 100000\r\n\r\n" + photo[:1000])
    time.sleep(1.5)
    text = log.read_text()
    assert key not in text and "api_key=***" in text
    assert "Traceback" not in text


@pytest.mark.slow
def test_websocket_outlives_the_header_timeout_and_closes_when_silent(server, photo):
    """The head timeout (1 s here) no longer cuts a live camera: a frame every 0.5 s for 4 s gets
    every answer; then 3 s of silence closes the stream with 1001 and a reason."""
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect
    port, _ = server
    with connect(f"ws://127.0.0.1:{port}/v1/stream", additional_headers={"X-API-Key": "s3cret-key-42"}) as ws:
        answers = []
        for _ in range(8):
            ws.send(photo)
            answers.append(json.loads(ws.recv(timeout=30)))
            time.sleep(0.5)
        assert len(answers) == 8 and all("faces" in a for a in answers)
        t = time.monotonic()
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)
        assert closed.value.rcvd.code == 1001 and "no frame" in closed.value.rcvd.reason
        assert 2.0 < time.monotonic() - t < 6


@pytest.mark.slow
def test_idle_sockets_never_lock_out_requests(server):
    """1,000 idle sockets from one address: the oldest idle ones are closed as new ones arrive
    (40 per client here), and /health answers at once throughout."""
    port, _ = server
    socks = []
    for i in range(1000):
        socks.append(socket.create_connection(("127.0.0.1", port)))
        if i % 250 == 249:
            t = time.perf_counter()
            answer = raw(port, b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert answer.startswith(b"HTTP/1.1 200") and time.perf_counter() - t < 1
    assert still_open(socks) <= 40


def test_scan_bomb_jpeg_is_refused_before_decoding(photo):
    from emoscope.images import MAX_JPEG_SCANS, ImageDecodeError, probe_image
    bomb = photo[:-2] + b"\xff\xda\x00\x08\x01\x01\x00\x00\x3f\x00" * (MAX_JPEG_SCANS + 1) + b"\xff\xd9"
    with pytest.raises(ImageDecodeError, match="scans"):
        probe_image(bomb)
    probe_image(photo)
    with make_client() as c:
        r = c.post("/v1/analyze", content=bomb)
        assert r.status_code == 422 and "scans" in r.json()["error"]


def test_upload_bodies_count_against_a_budget(photo):
    with make_client(upload_budget_mb=1.0) as c:
        big = b"\xff\xd8\xff" + b"\x00" * 1_500_000
        r = c.post("/v1/analyze", content=big)
        assert r.status_code == 503 and r.json()["status"] == 503 and r.headers["retry-after"] == "1"
        assert c.post("/v1/analyze", content=photo).status_code == 200
        assert c.app.state.upload_budget.used == 0


def test_websocket_frames_go_through_admission(photo):
    with make_client(max_queued_requests=0, workers=1) as c:
        with c.websocket_connect("/v1/stream") as ws:
            ws.send_bytes(photo)
            assert "faces" in ws.receive_json()
            c.app.state.admission.inside = c.app.state.admission.limit  # the line is full
            ws.send_bytes(photo)
            busy = ws.receive_json()
            assert busy["status"] == 503 and "busy" in busy["error"]
            c.app.state.admission.inside = 0
    with make_client(max_streams=1) as c:
        with c.websocket_connect("/v1/stream") as first:
            with pytest.raises(WebSocketDisconnect) as refused:
                with c.websocket_connect("/v1/stream") as second:
                    second.receive_json()
            assert refused.value.code == 1013
            first.send_bytes(photo)
            assert "faces" in first.receive_json()


def test_slot_waits_end_at_the_deadline(photo):
    """A request whose time is up leaves no thread waiting for a decode slot or an analyzer."""
    from emoscope.serve.routes.images import analyze_image
    from emoscope.serve.uploads import UploadError
    with make_client(workers=1) as c:
        state = c.app.state
        assert state.decode_slots.acquire()
        t = time.monotonic()
        with pytest.raises(UploadError) as busy:
            analyze_image(state, photo, False, time.monotonic() + 0.3)
        assert busy.value.status_code == 503 and time.monotonic() - t < 1.5
        state.decode_slots.release()
        with state.analyzers.use():
            with pytest.raises(UploadError) as busy:
                analyze_image(state, photo, False, time.monotonic() + 0.3)
            assert busy.value.status_code == 503
        assert analyze_image(state, photo, False, time.monotonic() + 30)["faces"]


@pytest.mark.slow
def test_request_heads_without_a_body_reserve_nothing(server, photo):
    """N1: heads that declare a 64 MB body and send none used to reserve the whole upload budget
    (every upload 503); the budget is now charged by the bytes that arrive."""
    port, _ = server
    heads = open_requests(port, 4, b"POST /v1/videos HTTP/1.1\r\nHost: x\r\nX-API-Key: s3cret-key-42\r\n"
                                   b"Content-Length: 67108864\r\nContent-Type: video/mp4\r\n\r\n")
    try:
        time.sleep(0.2)
        req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/analyze", data=photo, method="POST",
                                     headers={"X-API-Key": "s3cret-key-42", "Content-Type": "image/jpeg"})
        with urllib.request.urlopen(req, timeout=10) as r:
            assert r.status == 200 and len(json.loads(r.read())["faces"]) == 2
    finally:
        for s in heads:
            s.close()


def test_photo_heads_from_one_client_leave_room_for_another(server, photo):
    """N1 (photos): 31 heads of `POST /v1/analyze` declaring 1,000 bytes and sending none filled
    the whole line (31 places), so every other client's photo got 503 until the body timeout.
    One address now holds at most half the line."""
    import http.client
    port, _ = server
    heads = open_requests(port, 31, b"POST /v1/analyze HTTP/1.1\r\nHost: x\r\nX-API-Key: s3cret-key-42\r\n"
                                    b"Content-Type: image/jpeg\r\nContent-Length: 1000\r\n\r\n")
    try:
        time.sleep(0.2)
        other = http.client.HTTPConnection("127.0.0.1", port, timeout=10, source_address=("127.0.0.2", 0))
        other.request("POST", "/v1/analyze", photo, {"X-API-Key": "s3cret-key-42", "Content-Type": "image/jpeg"})
        r = other.getresponse()
        assert r.status == 200 and len(json.loads(r.read())["faces"]) == 2
        other.close()
        answers = [raw_answer(s) for s in heads]
        assert sum(b" 503 " in a for a in answers) >= 15, answers  # past the client's share: refused at once
    finally:
        for s in heads:
            s.close()


def test_the_line_counts_each_clients_share():
    from emoscope.serve.admission import Admission
    from emoscope.serve.uploads import UploadError
    line = Admission(4)
    with line.enter("a"), line.enter("a"):
        with pytest.raises(UploadError) as busy:
            with line.enter("a"):
                pass
        assert busy.value.status_code == 503
        with line.enter("b"), line.enter("b"):
            assert line.inside == 4
            with pytest.raises(UploadError):
                with line.enter("c"):  # the whole line is full
                    pass
    assert line.inside == 0 and line.by_client == {}


def test_the_upload_budget_counts_bytes_received_with_a_share_per_client():
    from emoscope.serve.uploads import UploadBudget, UploadError
    budget = UploadBudget(100, per_client=60)
    with budget.account("a") as a, budget.account("b") as b:
        a.add(50)
        b.add(40)
        with pytest.raises(UploadError) as too_much:
            a.add(20)                       # over a's share, though the budget has room
        assert too_much.value.status_code == 503
        with budget.account("c") as c:
            with pytest.raises(UploadError):
                c.add(20)                   # over the whole budget
            c.add(10)
            assert budget.used == 100
        assert budget.used == 90 and "c" not in budget.by_client
    assert budget.used == 0 and budget.by_client == {}


def test_a_campaign_deleted_while_its_report_is_written_leaves_nothing(tmp_path):
    """N5: DELETE while the report was being written left the job's report folder (with the
    stimulus copy and the PDF) behind for good."""
    import contextlib
    import threading
    from emoscope.serve.jobs import CampaignJob, JobQueue

    writing, go_on = threading.Event(), threading.Event()

    class SlowReport(CampaignJob):
        def work(self, analyzer, queue, progress) -> None:
            os.makedirs(self.report_dir)
            open(os.path.join(self.report_dir, "report.pdf"), "wb").write(b"%PDF")
            writing.set()
            go_on.wait(10)  # the report is being written when the DELETE comes

    class Pool:
        @contextlib.contextmanager
        def use(self, timeout=None):
            yield object()

    queue = JobQueue(Pool())
    upload = tmp_path / "upload"
    upload.mkdir()
    job = SlowReport("j1", str(upload), report_dir=str(tmp_path / "report"))
    queue.reserve()
    queue.submit(job.path, job=job)
    assert writing.wait(10)
    assert queue.cancel("j1")
    go_on.set()
    queue.pool.shutdown(wait=True)
    assert not (tmp_path / "report").exists() and not upload.exists()


def test_one_client_cannot_hold_every_live_stream(photo):
    """N11: 32 sockets sending a 10-byte frame every 20 s locked out every new camera. Now one
    address holds at most 4 live streams, and 3 frames in a row that are no picture end a stream."""
    settings = Settings(detector_model=shared_path("models", "face_detection_yunet.onnx"), threads=1)
    with TestClient(create_app(settings)) as c:
        with contextlib.ExitStack() as stack:
            held = [stack.enter_context(c.websocket_connect("/v1/stream")) for _ in range(4)]
            with c.websocket_connect("/v1/stream") as fifth:
                assert fifth.receive()["code"] == 1013
            held[0].send_bytes(photo)
            assert "faces" in held[0].receive_json()  # the held ones still work
        with c.websocket_connect("/v1/stream") as ws:
            for _ in range(3):
                ws.send_bytes(b"0123456789")
                assert ws.receive_json()["status"] == 415
            assert ws.receive()["code"] == 1003


def test_one_clients_burst_of_jobs_never_evicts_anothers_results(tmp_path):
    """N9: 52 one-frame jobs in 6 s made another client's finished job answer 404."""
    from emoscope.media import sniff_video
    from emoscope.serve.jobs import Job, JobQueue
    queue = JobQueue(analyzers=None, keep_results=20, keep_per_client=5)
    mine = Job("mine", str(tmp_path / "m"), status="done", finished=time.time(), client="10.0.0.1")
    queue.jobs["mine"] = mine
    for i in range(52):
        queue.jobs[f"x{i}"] = Job(f"x{i}", str(tmp_path / f"x{i}"), status="done", finished=time.time(),
                                  client="10.0.0.2")
        queue.expire()
    assert queue.get("mine") is mine
    assert sum(j.client == "10.0.0.2" for j in queue.jobs.values()) == 5
    # an AVIF photo is a still picture, not an MP4 video
    assert sniff_video(b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00") is None
    assert sniff_video(b"\x00\x00\x00\x1cftypisom\x00\x00\x02\x00") == "video/mp4"


@pytest.mark.slow
def test_trickled_campaign_uploads_cannot_hold_the_job_slots(server, clip):
    """N3: four campaign uploads trickling a byte every 5 s held every job slot (429 for every
    video) for up to 600 s. Now one address holds at most half the slots, and an upload that
    stalls for the body timeout (1 s here) is cut."""
    port, _ = server
    trickles = open_requests(port, 4, b"POST /v1/campaigns HTTP/1.1\r\nHost: x\r\nX-API-Key: s3cret-key-42\r\n"
                                      b"Content-Type: multipart/form-data; boundary=b\r\nContent-Length: 100000\r\n"
                                      b"\r\n--b\r\n")

    def post_video() -> int:
        req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/videos", data=clip, method="POST",
                                     headers={"X-API-Key": "s3cret-key-42", "Content-Type": "video/mp4"})
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                job = json.loads(r.read())
            urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{port}{job['status_url']}",
                                                          method="DELETE", headers={"X-API-Key": "s3cret-key-42"}))
            return r.status
        except urllib.error.HTTPError as exc:
            return exc.code
        except urllib.error.URLError:  # refused before the body was sent (the answer was 429)
            return 0

    try:
        deadline = time.time() + 8
        codes = [post_video()]
        while codes[-1] != 202 and time.time() < deadline:
            codes.append(post_video())
        assert codes[-1] == 202, codes
        answers = [raw_answer(s) for s in trickles]
        assert sum(b"429" in a for a in answers) == 2 and sum(b"408" in a for a in answers) == 2, answers
    finally:
        for s in trickles:
            s.close()


def open_requests(port: int, n: int, start: bytes) -> list[socket.socket]:
    """`n` connections that each send the start of a request and then nothing more."""
    socks = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(start)
        socks.append(s)
    return socks


def raw_answer(s: socket.socket) -> bytes:
    s.settimeout(3)
    try:
        return s.recv(4096)
    except (socket.timeout, ConnectionResetError):
        return b""
