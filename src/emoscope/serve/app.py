"""`emoscope serve`: REST + WebSocket API and the web page, hardened for uploads from strangers.

Every malformed input gets a 4xx JSON error: uploads are size-capped while they stream, content is
sniffed from its bytes, pixel counts are checked from the header before decoding, and videos must
open in OpenCV before a job is queued."""

from __future__ import annotations

import asyncio
import base64
import io
import os
import tempfile
import threading
import time
from collections import deque
from contextlib import asynccontextmanager, contextmanager
from dataclasses import asdict, dataclass, field
from importlib import resources

import cv2
import numpy as np
from fastapi import FastAPI, Request, WebSocket, WebSocketDisconnect
from fastapi.concurrency import run_in_threadpool
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException

from ..analyze import Analyzer, Tracker, to_bgr
from ..analyze.video import VideoReader
from ..images import ImageDecodeError, decode_image
from ..labels import VALENCE
from .jobs import JobQueue
from .settings import Settings
from .media import sniff_image, sniff_video


class AnalyzerPool:
    """`size` analyzers; each serves one request at a time (the detector keeps per-size state).
    A freed analyzer is handed straight to the longest-waiting request, so no late arrival can
    overtake the queue (with queue.Queue, woken waiters lose races and go to the back)."""

    def __init__(self, make, size: int):
        if size < 1:
            raise ValueError(f"need at least one worker, got {size}")
        self.free = [make() for _ in range(size)]
        self.first = self.free[0]
        self.classes = self.first.classes
        self._lock = threading.Lock()
        self._waiting: deque[list] = deque()  # [event, analyzer handed over]

    def idle(self) -> int:
        return len(self.free)

    @contextmanager
    def use(self):
        with self._lock:
            if self.free and not self._waiting:
                analyzer = self.free.pop()
                slot = None
            else:
                slot = [threading.Event(), None]
                self._waiting.append(slot)
        if slot is not None:
            slot[0].wait()
            analyzer = slot[1]
        try:
            yield analyzer
        finally:
            with self._lock:
                if self._waiting:
                    nxt = self._waiting.popleft()
                    nxt[1] = analyzer
                    nxt[0].set()
                else:
                    self.free.append(analyzer)


class UploadError(HTTPException):
    pass


async def read_capped(request: Request, cap: int) -> bytes:
    """The request body, refusing (413) anything over `cap` bytes, whatever Content-Length claims."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > cap:
        raise UploadError(413, f"upload is {int(declared):,} bytes; the limit is {cap:,}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > cap:
            raise UploadError(413, f"upload exceeds the {cap:,}-byte limit")
        chunks.append(chunk)
    return b"".join(chunks)


async def upload_bytes(request: Request, cap: int) -> bytes:
    """The uploaded file: multipart field `file` (or `image`/`video`), or the raw body."""
    body = await read_capped(request, cap)
    ctype = request.headers.get("content-type", "")
    if not ctype.startswith("multipart/form-data"):
        if not body:
            raise UploadError(400, "empty body: send the file as the body or as multipart field 'file'")
        return body

    async def replay():
        return {"type": "http.request", "body": body, "more_body": False}

    try:
        form = await Request(request.scope, replay).form(max_files=1, max_fields=10)
    except Exception as exc:  # malformed multipart of any kind is the client's error
        raise UploadError(400, f"malformed multipart body: {exc}") from exc
    for name in ("file", "image", "video"):
        item = form.get(name)
        if item is not None and hasattr(item, "read"):
            data = await item.read()
            if not data:
                raise UploadError(400, f"multipart field '{name}' is empty")
            return data
    raise UploadError(422, f"multipart body has no file field named 'file' (got: {', '.join(form.keys()) or 'none'})")


def probe_video(path: str) -> int | None:
    """The number of frames the container declares when its first frame decodes, else None."""
    try:
        reader = VideoReader(path, max_frames=1)
    except ValueError:
        return None
    frames = reader.frame_count
    decoded = any(True for _ in reader)
    return frames if decoded else None


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    threads = settings.threads or max(1, (os.cpu_count() or 1) // settings.workers)
    analyzers = AnalyzerPool(lambda: Analyzer(settings.model, detector_model=settings.detector_model, threads=threads,
                                              detect_max_side=settings.detect_max_side), settings.workers)
    analyzer = analyzers.first
    jobs = JobQueue(analyzers, settings.video_every, settings.retention_s)
    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        yield
        jobs.shutdown()  # queued uploads are deleted, never left behind

    app = FastAPI(title="emoscope", version="0.1.0", lifespan=lifespan,
                  description="Facial expression recognition: faces, expressions, valence, video timelines.")
    app.state.settings, app.state.analyzers, app.state.jobs = settings, analyzers, jobs
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["GET", "POST"],
                           allow_headers=["*"])

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException):
        return JSONResponse({"error": exc.detail, "status": exc.status_code}, status_code=exc.status_code)

    @app.middleware("http")
    async def api_key_check(request: Request, call_next):
        if settings.api_key and request.url.path.startswith("/v1/"):
            if request.headers.get("x-api-key") != settings.api_key:
                return JSONResponse({"error": "missing or wrong X-API-Key", "status": 401}, status_code=401)
        return await call_next(request)

    def analyze_image(data: bytes, annotate: bool) -> dict:
        if sniff_image(data[:16]) is None:
            raise UploadError(415, "not a supported image (JPEG, PNG, GIF, BMP, TIFF or WebP, judged by content)")
        try:
            img = decode_image(data, "bgr", settings.max_pixels)
        except ImageDecodeError as exc:
            raise UploadError(422, f"cannot decode the image: {exc}") from exc
        t0 = time.perf_counter()
        with analyzers.use() as worker:
            faces = worker.analyze(img)
        out = {"width": img.shape[1], "height": img.shape[0], "faces": [f.to_dict() for f in faces],
               "elapsed_ms": round((time.perf_counter() - t0) * 1000, 1)}
        if annotate:
            from ..analyze import draw_faces
            ok, jpg = cv2.imencode(".jpg", draw_faces(img, faces), [cv2.IMWRITE_JPEG_QUALITY, 85])
            out["annotated_jpeg_base64"] = base64.b64encode(jpg.tobytes()).decode()
        return out

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok", "video_jobs_pending": jobs.pending()}

    @app.get("/v1/model")
    def model_info() -> dict:
        meta = analyzer.classifier.meta
        return {"classes": analyzer.classes, "input_size": list(meta.input_size), "color": meta.color,
                "crop": asdict(meta.crop), "temperature": meta.temperature,
                "architecture": meta.extra.get("architecture"), "metrics": meta.extra.get("metrics", {}),
                "card": "docs/model-card.md",
                "valence": {"weights": VALENCE, "thresholds": analyzer.valence_rule.to_dict()}}

    @app.post("/v1/analyze")
    async def analyze(request: Request, annotate: bool = False) -> dict:
        data = await upload_bytes(request, settings.max_image_bytes)
        try:
            return await asyncio.wait_for(run_in_threadpool(analyze_image, data, annotate), settings.request_timeout_s)
        except asyncio.TimeoutError as exc:
            raise UploadError(503, "analysis timed out; try a smaller image") from exc

    @app.post("/v1/videos", status_code=202)
    async def submit_video(request: Request) -> dict:
        if jobs.pending() >= settings.max_queued_videos:
            raise UploadError(429, "too many video jobs in progress; try again later")
        data = await upload_bytes(request, settings.max_video_bytes)
        kind = sniff_video(data[:16])
        if kind is None:
            raise UploadError(415, "not a supported video (MP4/MOV, AVI, MKV/WebM or Y4M, judged by content)")
        fd, path = tempfile.mkstemp(prefix="emoscope-upload-", suffix=".video")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        frames = await run_in_threadpool(probe_video, path)
        if frames is None:
            os.remove(path)
            raise UploadError(422, "the video cannot be decoded")
        job = jobs.submit(path, frames)
        return {"id": job.id, "status": job.status, "status_url": f"/v1/videos/{job.id}"}

    def get_job(job_id: str):
        job = jobs.jobs.get(job_id)
        if job is None:
            raise UploadError(404, f"no video job {job_id!r}")
        return job

    @app.get("/v1/videos/{job_id}")
    def video_status(job_id: str) -> dict:
        return get_job(job_id).public()

    @app.get("/v1/videos/{job_id}/timeline.csv", response_class=PlainTextResponse)
    def video_timeline(job_id: str):
        job = get_job(job_id)
        if job.status != "done":
            raise UploadError(409, f"job is {job.status}; the timeline exists when it is done")
        buf = io.StringIO()
        job.timeline.to_csv(buf, index=False)
        return PlainTextResponse(buf.getvalue(), media_type="text/csv")

    @app.websocket("/v1/stream")
    async def stream(ws: WebSocket):
        """Client sends JPEG/PNG frames; the server answers with the faces of the newest frame.
        Frames that arrive while one is being analysed replace each other (only the latest waits)."""
        if settings.api_key and ws.query_params.get("api_key") != settings.api_key:
            await ws.close(code=4401)
            return
        await ws.accept()
        tracker = Tracker(max_gap=10)  # frames arrive at camera rate minus the dropped ones
        latest: dict = {}
        ready = asyncio.Event()
        counters = {"received": 0, "dropped": 0}

        async def receive():
            while True:
                msg = await ws.receive()
                if msg["type"] == "websocket.disconnect":
                    latest["closed"] = True
                    ready.set()
                    return
                data = msg.get("bytes")
                if data is None:
                    await ws.send_json({"error": "send frames as binary JPEG or PNG messages"})
                    continue
                counters["received"] += 1
                if "frame" in latest:
                    counters["dropped"] += 1
                latest["frame"] = (counters["received"] - 1, data)
                ready.set()

        def process(index: int, data: bytes) -> dict:
            if len(data) > settings.max_image_bytes or sniff_image(data[:16]) is None:
                return {"frame": index, "error": "not a supported image frame"}
            try:
                img = decode_image(data, "bgr", settings.max_pixels)
            except ImageDecodeError as exc:
                return {"frame": index, "error": f"cannot decode frame: {exc}"}
            with analyzers.use() as worker:
                faces = worker.track_frame(img, tracker, index)
            return {"frame": index, "width": img.shape[1], "height": img.shape[0],
                    "faces": [f.to_dict() for f in faces]}

        receiver = asyncio.create_task(receive())
        try:
            while True:
                await ready.wait()
                ready.clear()
                if latest.get("closed"):
                    break
                item = latest.pop("frame", None)
                if item is None:
                    continue
                result = await run_in_threadpool(process, *item)
                result["dropped"] = counters["dropped"]
                await ws.send_json(result)
        except (WebSocketDisconnect, RuntimeError):
            pass
        finally:
            receiver.cancel()

    static = resources.files("emoscope") / "serve" / "static"

    @app.get("/", response_class=HTMLResponse)
    def index() -> str:
        return (static / "index.html").read_text(encoding="utf-8")

    app.mount("/static", StaticFiles(directory=str(static)), name="static")
    return app
