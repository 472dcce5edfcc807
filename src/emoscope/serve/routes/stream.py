"""WS /v1/stream: a live camera, one frame at a time, tracked across frames."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from fastapi.concurrency import run_in_threadpool

from ...analyze import Tracker
from ...images import ImageDecodeError, decode_image
from ..media import sniff_image

router = APIRouter()


@router.websocket("/v1/stream")
async def stream(ws: WebSocket):
    """Client sends JPEG/PNG frames; the server answers with the faces of the newest frame.
    Frames that arrive while one is being analysed replace each other (only the latest waits)."""
    settings, analyzers = ws.app.state.settings, ws.app.state.analyzers
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
