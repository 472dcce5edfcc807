"""`emoscope serve`: REST + WebSocket API and the web page, hardened for uploads from strangers.

Every malformed input gets a 4xx JSON error: uploads are size-capped while they stream, content is
sniffed from its bytes, pixel counts are checked from the header before decoding, and videos must
open in OpenCV before a job is queued. The routes live in `serve/routes/` (images, videos, stream,
meta); this module builds the app and its shared state."""

from __future__ import annotations

import os
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException

from ..analyze import Analyzer
from .jobs import JobQueue
from .pool import AnalyzerPool
from .routes import images, meta, stream, videos
from .settings import Settings


def create_app(settings: Settings | None = None) -> FastAPI:
    """The app, with `settings`, the analyzer pool and the video jobs in `app.state`."""
    settings = settings or Settings()
    threads = settings.threads or max(1, (os.cpu_count() or 1) // settings.workers)
    analyzers = AnalyzerPool(lambda: Analyzer(settings.model, detector_model=settings.detector_model, threads=threads,
                                              detect_max_side=settings.detect_max_side), settings.workers)
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

    for router in (meta.router, images.router, videos.router, stream.router):
        app.include_router(router)
    app.mount("/static", StaticFiles(directory=str(meta.STATIC)), name="static")
    return app
