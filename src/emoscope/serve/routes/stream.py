"""WS /v1/stream: a live camera, one frame at a time, tracked across frames."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from ...analyze import Tracker
from ...analyze.analyzer import CLASSIFY_EVERY, DETECT_EVERY
from ..uploads import UploadError
from .images import analyzed_in_time, decoded_for_analysis

router = APIRouter()
UNUSABLE = (400, 413, 415, 422)  # a frame's answer statuses that say it was no usable picture
MAX_UNUSABLE_FRAMES = 3


def refusal(ws: WebSocket, settings) -> int | None:
    """Why a WebSocket may not open, as a close code: 4401 without the right key (the `X-API-Key`
    header, or `?api_key=` for browsers, which cannot set headers on a WebSocket), 4403 from a
    page of another origin (same origin or `--cors` origins only: no DNS rebinding)."""
    key = ws.headers.get("x-api-key") or ws.query_params.get("api_key")
    if settings.api_key and key != settings.api_key:
        return 4401
    origin = ws.headers.get("origin")
    host = ws.headers.get("host", "")
    if origin and origin not in (f"http://{host}", f"https://{host}", *settings.cors_origins):
        return 4403
    return None


@router.websocket("/v1/stream")
async def stream(ws: WebSocket):
    """Client sends JPEG/PNG frames; the server answers with the faces of the newest frame.
    Frames that arrive while one is being analysed replace each other (only the latest waits)."""
    state = ws.app.state
    settings = state.settings
    refused = refusal(ws, settings)
    mesh = ws.query_params.get("mesh", "").lower() in ("1", "true", "yes")
    if mesh and not settings.mesh:
        refused = 4400
    if refused:
        await ws.close(code=refused)
        return
    client = await state.streams.accept(ws, "live streams")
    if client is None:
        return
    try:
        await serve_stream(ws, state, settings, client, mesh)
    finally:
        state.streams.leave(client)


async def serve_stream(ws: WebSocket, state, settings, client: str, mesh: bool = False) -> None:
    """The accepted stream: frames in, faces out, until the client closes it or stays silent
    for `stream_idle_timeout_s` (close code 1001). Each frame is admitted like an image request
    (a full line answers that frame with a 503 error) and has the same timeout."""
    # frames arrive at camera rate minus the dropped ones
    tracker = Tracker(max_gap=10, detect_every=DETECT_EVERY, classify_every=CLASSIFY_EVERY)
    latest: dict = {}
    ready = asyncio.Event()
    counters = {"received": 0, "dropped": 0, "unusable": 0}

    async def receive():
        while True:
            try:
                msg = await asyncio.wait_for(ws.receive(), settings.stream_idle_timeout_s)
            except asyncio.TimeoutError:
                latest["idle"] = True
                ready.set()
                return
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

    def process(_state, data: bytes, index: int, deadline: float) -> dict:
        with decoded_for_analysis(state, data, deadline) as (worker, img, (width, height)):
            faces = worker.track_frame(img, tracker, index, mesh)
        scale = width / img.shape[1]
        return {"frame": index, "width": width, "height": height, "faces": [f.scaled(scale).to_dict() for f in faces]}

    async def answer(index: int, data: bytes) -> dict:
        if len(data) > settings.max_stream_frame_bytes:  # a test client bypasses the protocol's own limit
            return {"frame": index, "error": f"frame is over the {settings.max_stream_frame_bytes:,}-byte limit",
                    "status": 413}
        try:
            with state.admission.enter(client):
                return await analyzed_in_time(state, process, data, index)
        except UploadError as exc:
            return {"frame": index, "error": exc.detail, "status": exc.status_code}

    receiver = asyncio.create_task(receive())
    try:
        while True:
            await ready.wait()
            ready.clear()
            if latest.get("closed"):
                break
            if latest.get("idle"):
                await ws.close(code=1001, reason=f"no frame for {settings.stream_idle_timeout_s:g} s")
                break
            item = latest.pop("frame", None)
            if item is None:
                continue
            result = await answer(*item)
            result["dropped"] = counters["dropped"]
            await ws.send_json(result)
            # frames that are not pictures keep a socket open at no cost: a few in a row end it
            counters["unusable"] = counters["unusable"] + 1 if result.get("status") in UNUSABLE else 0
            if counters["unusable"] >= MAX_UNUSABLE_FRAMES:
                await ws.close(code=1003, reason=f"{MAX_UNUSABLE_FRAMES} frames in a row were not pictures")
                break
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        receiver.cancel()
