"""POST /v1/analyze: the faces in one uploaded image."""

from __future__ import annotations

import asyncio
import base64
import time

import cv2
from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool

from ...images import ImageDecodeError, decode_image, probe_image
from ..media import sniff_image
from ..uploads import UploadError, upload_bytes

router = APIRouter()


def decode_upload(state, data: bytes):
    """Sniff, read the header, reserve the decode's memory from the budget, decode (scaled to
    `decode_max_side`). Returns the BGR image and the original (width, height)."""
    s = state.settings
    if sniff_image(data[:16]) is None:
        raise UploadError(415, "not a supported image (JPEG, PNG, GIF, BMP, TIFF or WebP, judged by content)")
    try:
        info = probe_image(data, s.max_pixels)
        with state.budget.reserve(info.decode_bytes(s.decode_max_side), s.request_timeout_s):
            img = decode_image(data, "bgr", s.max_pixels, s.decode_max_side)
    except ImageDecodeError as exc:
        raise UploadError(422, f"cannot decode the image: {exc}") from exc
    return img, (info.width, info.height)


def analyze_image(state, data: bytes, annotate: bool) -> dict:
    """Decode within the memory budget and analyse on a pooled analyzer; boxes in the upload's
    own pixels."""
    img, (width, height) = decode_upload(state, data)
    t0 = time.perf_counter()
    with state.analyzers.use() as worker:
        faces = worker.analyze(img)
    scale = width / img.shape[1] if img.shape[1] else 1.0
    out = {"width": width, "height": height, "faces": [f.scaled(scale).to_dict() for f in faces],
           "elapsed_ms": round((time.perf_counter() - t0) * 1000, 1)}
    if annotate:
        from ...analyze import draw_faces
        ok, jpg = cv2.imencode(".jpg", draw_faces(img, faces), [cv2.IMWRITE_JPEG_QUALITY, 85])
        out["annotated_jpeg_base64"] = base64.b64encode(jpg.tobytes()).decode()
    return out


@router.post("/v1/analyze")
async def analyze(request: Request, annotate: bool = False) -> dict:
    state = request.app.state
    with state.admission.enter():  # a full line is answered 503 before the upload is read
        data = await upload_bytes(request, state.settings.max_image_bytes)
        try:
            return await asyncio.wait_for(run_in_threadpool(analyze_image, state, data, annotate),
                                          state.settings.request_timeout_s)
        except asyncio.TimeoutError as exc:
            raise UploadError(503, "analysis timed out; try a smaller image", headers={"Retry-After": "1"}) from exc
