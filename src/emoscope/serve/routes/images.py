"""POST /v1/analyze: the faces in one uploaded image."""

from __future__ import annotations

import asyncio
import base64
import time

import cv2
from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool

from ...images import ImageDecodeError, decode_image
from ..media import sniff_image
from ..uploads import UploadError, upload_bytes

router = APIRouter()


def analyze_image(state, data: bytes, annotate: bool) -> dict:
    """Sniff, decode (pixel-capped) and analyse one image on a pooled analyzer."""
    if sniff_image(data[:16]) is None:
        raise UploadError(415, "not a supported image (JPEG, PNG, GIF, BMP, TIFF or WebP, judged by content)")
    try:
        img = decode_image(data, "bgr", state.settings.max_pixels)
    except ImageDecodeError as exc:
        raise UploadError(422, f"cannot decode the image: {exc}") from exc
    t0 = time.perf_counter()
    with state.analyzers.use() as worker:
        faces = worker.analyze(img)
    out = {"width": img.shape[1], "height": img.shape[0], "faces": [f.to_dict() for f in faces],
           "elapsed_ms": round((time.perf_counter() - t0) * 1000, 1)}
    if annotate:
        from ...analyze import draw_faces
        ok, jpg = cv2.imencode(".jpg", draw_faces(img, faces), [cv2.IMWRITE_JPEG_QUALITY, 85])
        out["annotated_jpeg_base64"] = base64.b64encode(jpg.tobytes()).decode()
    return out


@router.post("/v1/analyze")
async def analyze(request: Request, annotate: bool = False) -> dict:
    state = request.app.state
    data = await upload_bytes(request, state.settings.max_image_bytes)
    try:
        return await asyncio.wait_for(run_in_threadpool(analyze_image, state, data, annotate),
                                      state.settings.request_timeout_s)
    except asyncio.TimeoutError as exc:
        raise UploadError(503, "analysis timed out; try a smaller image") from exc
