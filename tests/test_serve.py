"""The service: happy paths, a corpus of malformed inputs (all 4xx, never 5xx), jobs, WebSocket."""

import io
import os
import re
import struct
import time
import zlib

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from emoscope.serve.app import create_app
from emoscope.serve.settings import Settings


@pytest.fixture(scope="module")
def client(request):
    from conftest import shared_path
    app = create_app(Settings(detector_model=shared_path("models", "face_detection_yunet.onnx"), threads=1,
                              max_image_bytes=2 * 1024 * 1024, max_video_bytes=3 * 1024 * 1024, max_pixels=4_000_000))
    with TestClient(app) as c:
        yield c


@pytest.fixture(scope="module")
def photo(samples=None):
    from conftest import shared_path
    return open(shared_path("samples", "facerec_two_people.jpg"), "rb").read()


def png_header_only(w: int, h: int) -> bytes:
    """A PNG whose header claims w x h pixels, followed by a tiny (wrong) image data chunk."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 10)) + chunk(b"IEND", b"")


def png_bomb() -> bytes:
    """3000 x 3000 of zeros: compresses to a few KB, 9M pixels once decoded (over the 4M test cap)."""
    raw = b"".join(b"\x00" + b"\x00" * 3000 for _ in range(3000))
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 3000, 3000, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def test_health_model_docs_and_page(client):
    assert client.get("/health").json()["status"] == "ok"
    m = client.get("/v1/model").json()
    assert len(m["classes"]) == 7 and m["input_size"] == [48, 48]
    expert = m["expression_from_blendshapes"]  # the shipped model carries its --mesh reading
    assert expert["weight"] > 0 and expert["fitted"]["balanced_fused"] > expert["fitted"]["balanced_image"]
    assert client.get("/docs").status_code == 200 and client.get("/openapi.json").status_code == 200
    page = client.get("/")
    assert page.status_code == 200 and "getUserMedia" in client.get("/static/app.js").text
    # the page's model link: the same facts as a page a person reads, shares as percentages
    readable = client.get("/model")
    assert readable.status_code == 200 and 'href="/model"' in page.text
    for words in ("balanced accuracy", "macro-F1", "neutral between", "48×48 px", "%</td>"):
        assert words in readable.text, words
    assert "NaN" not in readable.text and "contempt" not in readable.text
    assert re.search(r"\d+% \(\d+–\d+%\)", readable.text)  # macro-F1 with its bootstrap interval
    assert "web faces test pipeline: the 480 groups of photos" in readable.text  # drawn by person, and says so


def test_analyze_multipart_and_raw(client, photo):
    r = client.post("/v1/analyze", files={"file": ("x.bin", photo, "application/octet-stream")})
    assert r.status_code == 200, r.text
    assert len(r.json()["faces"]) == 2
    r = client.post("/v1/analyze?annotate=true", content=photo, headers={"content-type": "image/jpeg"})
    assert r.status_code == 200 and len(r.json()["annotated_jpeg_base64"]) > 1000


@pytest.mark.slow
def test_parallel_requests_share_the_analyzer_pool(client, photo):
    """Two analyzers serve 12 concurrent requests; every answer equals the serial one."""
    from concurrent.futures import ThreadPoolExecutor
    post = lambda _: client.post("/v1/analyze", content=photo, headers={"content-type": "image/jpeg"})
    serial = post(0).json()["faces"]
    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(post, range(12)))
    assert all(r.status_code == 200 for r in answers)
    for r in answers:
        faces = r.json()["faces"]
        assert [f["box"] for f in faces] == [f["box"] for f in serial]
        assert [f["label"] for f in faces] == [f["label"] for f in serial]
    assert client.app.state.settings.workers == 2 and client.app.state.analyzers.idle() == 2


def malformed_corpus(photo: bytes) -> list[tuple[str, dict]]:
    jpeg_trunc = photo[: len(photo) // 3]
    text = b"hello, I am definitely a photo"
    small = io.BytesIO()
    Image.new("RGB", (4, 4)).save(small, "GIF")
    cases = [
        ("empty raw body", {"content": b""}),
        ("text raw body", {"content": text, "headers": {"content-type": "image/jpeg"}}),
        ("html body", {"content": b"<html><body>hi</body></html>"}),
        ("json body", {"content": b'{"image": "abc"}', "headers": {"content-type": "application/json"}}),
        ("truncated jpeg raw", {"content": jpeg_trunc}),
        ("truncated jpeg multipart", {"files": {"file": ("a.jpg", jpeg_trunc, "image/jpeg")}}),
        ("jpeg magic only", {"content": b"\xff\xd8\xff"}),
        ("jpeg magic plus junk", {"content": b"\xff\xd8\xff" + os.urandom(2000)}),
        ("png magic plus junk", {"content": b"\x89PNG\r\n\x1a\n" + os.urandom(500)}),
        ("png 30000x30000 header", {"content": png_header_only(30000, 30000)}),
        ("png 1x1000000000 header", {"content": png_header_only(1, 1_000_000_000)}),
        ("png 0x0 header", {"content": png_header_only(0, 0)}),
        ("png bomb", {"content": png_bomb()}),
        ("png bomb multipart", {"files": {"file": ("b.png", png_bomb(), "image/png")}}),
        ("gif tiny header broken", {"content": small.getvalue()[:20]}),
        ("bmp magic junk", {"content": b"BM" + os.urandom(100)}),
        ("tiff magic junk", {"content": b"II*\x00" + os.urandom(100)}),
        ("webp riff junk", {"content": b"RIFF\x00\x00\x00\x00WEBP" + os.urandom(50)}),
        ("zip file", {"content": b"PK\x03\x04" + os.urandom(100)}),
        ("pdf file", {"content": b"%PDF-1.4 " + os.urandom(100)}),
        ("wrong multipart field", {"files": {"picture": ("a.jpg", photo, "image/jpeg")}}),
        ("multipart empty file", {"files": {"file": ("a.jpg", b"", "image/jpeg")}}),
        ("multipart text only", {"data": {"file": "not a file"}}),
        ("broken multipart boundary", {"content": b"--xyz\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\nabc",
                                       "headers": {"content-type": "multipart/form-data; boundary=abc"}}),
        ("multipart no boundary", {"content": b"whatever", "headers": {"content-type": "multipart/form-data"}}),
        ("too large raw", {"content": b"\xff\xd8\xff" + b"\x00" * (3 * 1024 * 1024)}),
        ("too large multipart", {"files": {"file": ("big.jpg", b"\xff\xd8\xff" + b"\x00" * (3 * 1024 * 1024), "image/jpeg")}}),
        ("lying content-length", {"content": photo, "headers": {"content-length": "999999999"}}),
        ("video sent as image", {"content": b"\x00\x00\x00\x18ftypmp42" + os.urandom(100)}),
        ("random bytes", {"content": os.urandom(4096)}),
        ("utf16 text", {"content": "not an image".encode("utf-16")}),
        ("null bytes", {"content": b"\x00" * 1000}),
    ]
    return cases


def test_malformed_images_get_4xx_json(client, photo):
    corpus = malformed_corpus(photo)
    assert len(corpus) >= 30
    for name, kw in corpus:
        try:
            r = client.post("/v1/analyze", **kw)
        except Exception as exc:  # the client refusing to send a lie is fine; a server crash is not
            assert "content-length" in name.lower() or "Content-Length" in str(exc), (name, exc)
            continue
        assert 400 <= r.status_code < 500, (name, r.status_code, r.text[:200])
        assert "error" in r.json(), name
    assert client.get("/health").status_code == 200


def test_malformed_videos_get_4xx(client, photo):
    cases = [b"", b"not a video", photo, b"\x00\x00\x00\x18ftypmp42" + os.urandom(4000),
             b"RIFF\x00\x00\x00\x00AVI " + os.urandom(1000), b"\x1a\x45\xdf\xa3" + os.urandom(1000)]
    for data in cases:
        r = client.post("/v1/videos", content=data)
        assert 400 <= r.status_code < 500, (data[:12], r.status_code, r.text)
    assert client.get("/v1/videos/doesnotexist").status_code == 404
    assert client.get("/v1/videos/doesnotexist/timeline.csv").status_code == 404


@pytest.mark.slow
def test_video_job_lifecycle_deletes_upload(client, samples):
    data = open(os.path.join(samples, "facerec_short_hamilton_clip.mp4"), "rb").read()
    r = client.post("/v1/videos", files={"file": ("clip.mp4", data, "video/mp4")})
    assert r.status_code == 202, r.text
    job_id = r.json()["id"]
    job = client.app.state.jobs.jobs[job_id]
    deadline = time.time() + 240
    while time.time() < deadline:
        st = client.get(f"/v1/videos/{job_id}").json()
        if st["status"] in ("done", "failed"):
            break
        time.sleep(0.5)
    assert st["status"] == "done", st.get("error")
    assert len(st["timeline"]) > 0 and len(st["summary"]) >= 1
    assert not os.path.exists(job.path)  # retention 0: media gone when the job ends
    csv = client.get(f"/v1/videos/{job_id}/timeline.csv")
    assert csv.status_code == 200 and csv.text.startswith("frame,time,track")


def test_websocket_stream_and_bad_frames(client, photo):
    with client.websocket_connect("/v1/stream") as ws:
        ws.send_text("hello")
        assert "error" in ws.receive_json()
        ws.send_bytes(b"garbage")
        assert "error" in ws.receive_json()
        for _ in range(3):
            ws.send_bytes(photo)
        got = [ws.receive_json()]
        while got[-1]["frame"] < 3 and len(got) < 3:
            got.append(ws.receive_json())
        faces = [m for m in got if "faces" in m]
        assert faces and len(faces[-1]["faces"]) == 2
        assert all(f["track_id"] for f in faces[-1]["faces"])
        assert got[-1]["frame"] == 3 or got[-1]["dropped"] >= 1  # behind: older frames dropped, newest answered


def test_api_key(samples, photo, monkeypatch):
    from conftest import shared_path
    monkeypatch.setenv("EMOSCOPE_API_KEY", "s3cret")
    app = create_app(Settings(detector_model=shared_path("models", "face_detection_yunet.onnx"), threads=1))
    with TestClient(app) as c:
        assert c.post("/v1/analyze", content=photo).status_code == 401
        assert c.post("/v1/analyze", content=photo, headers={"x-api-key": "s3cret"}).status_code == 200
        assert c.get("/health").status_code == 200
        r = c.get("/", headers={"origin": "https://evil.example"})
        assert "access-control-allow-origin" not in r.headers  # CORS closed by default


def clip_bytes(tmp_path, name: str, start: int, frames: int) -> bytes:
    """A short MJPEG AVI cut from the sample clip."""
    import cv2
    from conftest import shared_path
    cap = cv2.VideoCapture(shared_path("samples", "facerec_short_hamilton_clip.mp4"))
    cap.set(cv2.CAP_PROP_POS_FRAMES, start)
    path = str(tmp_path / name)
    out = None
    for _ in range(frames):
        ok, frame = cap.read()
        if not ok:
            break
        out = out or cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"MJPG"), 30, (frame.shape[1], frame.shape[0]))
        out.write(frame)
    out.release()
    return open(path, "rb").read()


@pytest.mark.slow
def test_campaign_job_from_upload_to_report(client, tmp_path, photo):
    """The ad, two recordings, a groups file: a job that reports progress, then a report with its
    files; bad uploads get 4xx; DELETE removes the report."""
    ad = clip_bytes(tmp_path, "ad.avi", 0, 60)
    files = [("recordings", ("viewer 1.avi", ad, "video/x-msvideo")),
             ("recordings", ("../viewer2.avi", clip_bytes(tmp_path, "v2.avi", 0, 75), "video/x-msvideo")),
             ("stimulus", ("ad.avi", ad, "video/x-msvideo")),
             ("groups", ("groups.csv", b"video,group\nviewer_1,a\nviewer2,b\nnobody,c\n", "text/csv"))]
    r = client.post("/v1/campaigns", files=files, data={"title": "Spring ad"})
    assert r.status_code == 202, r.text
    url = r.json()["status_url"]
    for _ in range(600):
        st = client.get(url).json()
        if st["status"] in ("done", "failed"):
            break
        time.sleep(0.1)
    assert st["status"] == "done", st.get("error")
    assert st["recordings"] == ["viewer2.avi", "viewer_1.avi"] and st["frames_total"] == 135
    assert {"report.html", "report.pdf", "per_second.csv", "stimulus.mp4"} <= set(st["files"])
    report = client.get(st["report_url"])
    assert report.status_code == 200 and "Spring ad" in report.text and "nobody" in report.text
    per_second = client.get(url + "/files/per_second.csv").text.splitlines()
    assert per_second[0].startswith("second,") and len(per_second) == 1 + 2  # the ad's 2 seconds
    assert client.get(url + "/files/..%2Fetc%2Fpasswd").status_code == 404
    assert client.get(url + "/files/job.json").status_code == 404
    report_dir = client.app.state.jobs.get(st["id"]).report_dir
    assert client.delete(url).status_code == 200 and not os.path.exists(report_dir)
    assert client.get(url).status_code == 404
    # malformed campaigns: no recordings, a photo as a recording, a binary groups file, no multipart
    assert client.post("/v1/campaigns", files=[("title", (None, "x"))]).status_code == 400
    bad = client.post("/v1/campaigns", files=[("recordings", ("a.jpg", photo, "image/jpeg"))])
    assert bad.status_code == 415 and "not a supported video" in bad.json()["error"]
    bad = client.post("/v1/campaigns", files=[("recordings", ("v.avi", ad, "video/x-msvideo")),
                                              ("groups", ("g.csv", bytes(range(256)), "text/csv"))])
    assert bad.status_code == 400 and "text CSV" in bad.json()["error"]
    assert client.post("/v1/campaigns", content=b"x" * 10).status_code == 415
    assert client.app.state.jobs.pending() == 0


def test_exif_turned_photos_come_back_upright_with_their_boxes(client):
    """A phone photo stored sideways with EXIF orientation 6: the answer's size and boxes are
    those of the upright photo, as the decode turns it."""
    from conftest import shared_path
    upright = Image.open(shared_path("samples", "facerec_obama.jpg")).convert("RGB")
    sideways = upright.transpose(Image.Transpose.ROTATE_90)  # what orientation 6 turns back by 270
    exif = Image.Exif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    sideways.save(buf, "JPEG", exif=exif.tobytes())
    plain = io.BytesIO()
    upright.save(plain, "JPEG")
    a = client.post("/v1/analyze", files={"file": ("turned.jpg", buf.getvalue(), "image/jpeg")}).json()
    b = client.post("/v1/analyze", files={"file": ("upright.jpg", plain.getvalue(), "image/jpeg")}).json()
    assert (a["width"], a["height"]) == upright.size == (b["width"], b["height"])
    assert len(a["faces"]) == len(b["faces"]) == 1
    assert max(abs(p - q) for p, q in zip(a["faces"][0]["box"], b["faces"][0]["box"])) <= 4


def test_campaign_names_and_offsets_that_once_broke_the_server():
    from emoscope.batch.campaign import offset_seconds
    from emoscope.serve.routes.campaigns import MAX_NAME, safe_name
    taken: set[str] = set()
    long = safe_name("x" * 300 + ".mp4", taken)
    assert len(long) <= MAX_NAME and long.endswith(".mp4")
    assert len(safe_name("x" * 300 + ".mp4", taken)) <= MAX_NAME and len(taken) == 2  # still unique
    recording = safe_name("stimulus-ad.avi", taken)
    stimulus = safe_name("stimulus-" + "ad.avi", taken)
    assert recording != stimulus
    for bad in ("inf", "nan", "-10000000", "1e12"):
        with pytest.raises(ValueError):
            offset_seconds(bad)
    assert offset_seconds("2.5") == 2.5
