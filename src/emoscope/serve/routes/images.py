"""POST /v1/analyze: the faces in one uploaded image."""

from __future__ import annotations

import asyncio
import base64
import time
from contextlib import contextmanager

import cv2
from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool

from ...images import ImageDecodeError, decode_image, probe_image
from ...media import sniff_image
from ..uploads import UploadError, client_of, uploaded

router = APIRouter()


def busy(what: str) -> UploadError:
    return UploadError(503, f"the server is busy {what}; try again in a moment", headers={"Retry-After": "1"})


@contextmanager
def decoded_for_analysis(state, data: bytes, deadline: float):
    """Check the upload (sniff, header, decode size) at once; decode it, scaled to
    `decode_max_side`, in one of the few decode slots; then wait for an analyzer. Yields the
    analyzer, the BGR image and the original (width, height). The decode's memory stays reserved
    from the budget until the analysis ends, so decoded images waiting for an analyzer count
    too; the slots (one per analyzer) keep a burst from decoding dozens of images at once, which
    starved the event loop (health checks, 503s) of CPU. Every wait ends by `deadline` (a
    `time.monotonic()` value) with a 503, so a request that has had its answer leaves no thread
    waiting behind it."""
    s = state.settings
    if sniff_image(data[:16]) is None:
        raise UploadError(415, "not a supported image (JPEG, PNG, GIF, BMP, TIFF or WebP, judged by content)")
    try:
        info = probe_image(data, s.max_pixels)
        with state.budget.reserve(info.decode_bytes(s.decode_max_side), left(deadline)):
            if not state.decode_slots.acquire(timeout=left(deadline)):
                raise busy("decoding other images")
            try:
                img = decode_image(data, "bgr", s.max_pixels, s.decode_max_side)
            finally:
                state.decode_slots.release()
            with state.analyzers.use(left(deadline)) as worker:
                if worker is None:
                    raise busy("analysing other images")
                yield worker, img, (info.width, info.height)
    except ImageDecodeError as exc:
        raise UploadError(422, f"cannot decode the image: {exc}") from exc


def left(deadline: float) -> float:
    """Seconds until `deadline` (never negative)."""
    return max(0.0, deadline - time.monotonic())


def check_mesh(state, mesh: bool) -> None:
    if mesh and not state.settings.mesh:
        raise UploadError(400, "this server does not measure the face mesh; start it with `emoscope serve --mesh`")


def analyze_image(state, data: bytes, annotate: bool, deadline: float, mesh: bool = False) -> dict:
    """Analyse on a pooled analyzer; boxes (and mesh points) in the upload's own pixels."""
    with decoded_for_analysis(state, data, deadline) as (worker, img, (width, height)):
        t0 = time.perf_counter()
        faces = worker.analyze(img, mesh=mesh)
    scale = width / img.shape[1] if img.shape[1] else 1.0
    out = {"width": width, "height": height, "faces": [f.scaled(scale).to_dict() for f in faces],
           "elapsed_ms": round((time.perf_counter() - t0) * 1000, 1)}
    if annotate:
        from ...analyze import draw_faces
        ok, jpg = cv2.imencode(".jpg", draw_faces(img, faces), [cv2.IMWRITE_JPEG_QUALITY, 85])
        out["annotated_jpeg_base64"] = base64.b64encode(jpg.tobytes()).decode()
    return out


@router.post("/v1/analyze")
async def analyze(request: Request, annotate: bool = False, mesh: bool = False) -> dict:
    state = request.app.state
    check_mesh(state, mesh)
    # a full line (or the client's full share of it) is answered 503 before the upload is read
    with state.admission.enter(client_of(request)):
        async with uploaded(request, state.settings.max_image_bytes) as data:
            return await analyzed_in_time(state, lambda st, d, ann, deadline: analyze_image(st, d, ann, deadline, mesh),
                                          data, annotate)


async def analyzed_in_time(state, fn, data: bytes, *args):
    """`fn(state, data, *args, deadline)` in a worker thread, answered 503 when it takes longer
    than the request timeout; its waits end by the same deadline, so its thread follows soon."""
    timeout = state.settings.request_timeout_s
    deadline = time.monotonic() + timeout
    try:
        return await asyncio.wait_for(run_in_threadpool(fn, state, data, *args, deadline), timeout)
    except asyncio.TimeoutError as exc:
        raise UploadError(503, "analysis timed out; try a smaller image", headers={"Retry-After": "1"}) from exc
