"""`emoscope serve`: REST + WebSocket API and the web page, hardened for uploads from strangers.

Every malformed input gets a 4xx JSON error: uploads are size-capped while they stream, content is
sniffed from its bytes, pixel counts are checked from the header before decoding, and videos must
open in OpenCV before a job is queued. The routes live in `serve/routes/` (images, videos, stream,
meta); this module builds the app and its shared state."""

from __future__ import annotations

import os
import threading
from contextlib import asynccontextmanager

import cv2
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException

from ..analyze import Analyzer
from .admission import Admission, MemoryBudget, SocketSlots
from .guards import RequestGuard, redact_keys_in_logs
from .jobs import JobQueue
from .pool import AnalyzerPool
from .routes import campaigns, images, meta, stream, studies, videos
from .settings import Settings
from .uploads import UploadBudget, UploadError

# Starlette's own errors (unknown path, wrong method) in the same words as ours
HTTP_MESSAGES = {404: "no such endpoint (see /docs)", 405: "this endpoint does not take that method (see /docs)"}


def open_studies(url: str | None):
    """The studies database (`StudyStore`), or None and why: the rest of the API works without it."""
    from ..studies.store import StudyError, StudyStore
    try:
        return StudyStore(url), None
    except StudyError as exc:
        print(f"warning: studies are off: {exc}", flush=True)
        return None, str(exc)


def serve_docs_offline(app: FastAPI) -> None:
    """/docs with Swagger UI's files as the `fastapi-offline` package ships them, served by this
    server: the page works offline and loads nothing from a CDN."""
    from importlib import resources

    from fastapi.openapi.docs import get_swagger_ui_html
    app.mount("/docs-assets", StaticFiles(directory=str(resources.files("fastapi_offline") / "static")),
              name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    def docs():
        return get_swagger_ui_html(openapi_url=app.openapi_url, title="emoscope API",
                                   swagger_js_url="/docs-assets/swagger-ui-bundle.js",
                                   swagger_css_url="/docs-assets/swagger-ui.css",
                                   swagger_favicon_url="/favicon.ico")


def create_app(settings: Settings | None = None) -> FastAPI:
    """The app, with `settings`, the analyzer pool and the video jobs in `app.state`."""
    settings = settings or Settings()
    threads = settings.threads or max(1, (os.cpu_count() or 1) // settings.workers)
    cv2.setNumThreads(threads)  # OpenCV's pool (resizes, colour conversions) is process-wide: share it out too
    analyzers = AnalyzerPool(lambda: Analyzer(settings.model, detector_model=settings.detector_model, threads=threads,
                                              detect_max_side=settings.detect_max_side, max_faces=settings.max_faces,
                                              mesh=settings.mesh, mesh_model=settings.mesh_model),
                             settings.workers)
    jobs = JobQueue(analyzers, settings.video_every, settings.retention_s, settings.max_queued_videos,
                    settings.max_video_frames, settings.result_ttl_s, max_jobs_per_client=settings.max_jobs_per_client)
    redact_keys_in_logs()

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        yield
        jobs.shutdown()  # queued uploads are deleted, never left behind

    app = FastAPI(title="emoscope", version="0.1.0", lifespan=lifespan, docs_url=None, redoc_url=None,
                  description="Facial expression recognition: faces, expressions, valence, video timelines.")
    serve_docs_offline(app)
    app.state.settings, app.state.analyzers, app.state.jobs = settings, analyzers, jobs
    app.state.admission = Admission(settings.workers + settings.max_queued_requests)
    app.state.budget = MemoryBudget(int(settings.decode_budget_mb * 2**20))
    app.state.decode_slots = threading.BoundedSemaphore(settings.workers)  # image decodes at once
    app.state.upload_budget = UploadBudget(int(settings.upload_budget_mb * 2**20),
                                           max(int(settings.upload_budget_mb * 2**20) // 2, settings.max_video_bytes))
    app.state.streams = SocketSlots(settings.max_streams, settings.max_streams_per_client)  # live cameras
    app.state.study_streams = SocketSlots(settings.max_study_viewers, settings.max_study_viewers)  # study viewers
    # (viewers of a panel may share an office's address: no cap per address beyond the total)
    app.state.studies, app.state.studies_error = open_studies(settings.db)
    app.state.reports = studies.ReportCache()
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins,
                           allow_methods=["GET", "HEAD", "POST", "DELETE"], allow_headers=["*"])
    app.add_middleware(RequestGuard, allowed_hosts=settings.allowed_hosts)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException):
        detail = exc.detail if isinstance(exc, UploadError) else HTTP_MESSAGES.get(exc.status_code, exc.detail)
        return JSONResponse({"error": detail, "status": exc.status_code}, status_code=exc.status_code,
                            headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def bad_parameters(request: Request, exc: RequestValidationError):
        problems = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', ())[1:]) or 'request'}: {e.get('msg', 'invalid')}"
                             for e in exc.errors())
        return JSONResponse({"error": f"invalid request parameters ({problems})", "status": 422}, status_code=422)

    @app.middleware("http")
    async def api_key_check(request: Request, call_next):
        if settings.api_key and request.url.path.startswith("/v1/"):
            if request.headers.get("x-api-key") != settings.api_key:
                return JSONResponse({"error": "missing or wrong X-API-Key", "status": 401}, status_code=401)
        return await call_next(request)

    for router in (meta.router, images.router, videos.router, campaigns.router, stream.router, studies.router):
        app.include_router(router)
    app.mount("/static", StaticFiles(directory=str(meta.STATIC)), name="static")
    return app
