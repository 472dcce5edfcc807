"""Ad-test studies over HTTP. The analyst's side (/v1/studies, behind the API key when one is
set): create a study by uploading the ad, read it with its viewer counts, its report and files,
close it, delete it. The viewers' side (/p/<token>, no key: the link is the credential, scoped to
one study): the page, the ad, joining with consent and answers (each viewer gets a secret key of
their own), a WebSocket of camera frames stamped with the ad's time, finishing and withdrawing.
Every piece of state is in the database (`emoscope.studies`): servers sharing one are
interchangeable."""

from __future__ import annotations

import asyncio
import json
import os
import struct
import tempfile
import threading
import time

from fastapi import APIRouter, Request, WebSocket, WebSocketDisconnect
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, HTMLResponse, Response

from ...media import sniff_video
from ...studies.store import StudyError
from ..jobs import JobsFull
from ..uploads import UploadError, client_of, uploaded
from .images import analyzed_in_time, decoded_for_analysis
from .meta import STATIC

router = APIRouter()
REPORT_FILES = {"report.pdf": "application/pdf", "per_second.csv": "text/csv", "viewers_all.csv": "text/csv",
                "frames.csv": "text/csv", "frames.parquet": "application/vnd.apache.parquet", "peaks.csv": "text/csv"}
CHECK_TIME = -1.0  # a frame stamped before the ad: the camera check, answered and never stored


def store_of(state):
    if state.studies is None:
        raise UploadError(503, f"the studies database cannot be opened: {state.studies_error}")
    return state.studies


def study_error(exc: StudyError) -> UploadError:
    return UploadError(404 if str(exc).startswith("no study") else 422, str(exc))


# -- the analyst's side ---------------------------------------------------------------------------
@router.post("/v1/studies", status_code=201)
async def create_study(request: Request, name: str, questions: str = "[]", retention_days: int = 90,
                       ad_name: str = "ad.mp4") -> dict:
    """Body: the ad (raw, or multipart field 'file'); query: name, questions (JSON), retention_days."""
    store = store_of(request.app.state)
    async with uploaded(request, request.app.state.settings.max_video_bytes) as data:
        kind = sniff_video(data[:16])
        if kind is None:
            raise UploadError(415, "the ad is not a supported video (MP4/MOV, AVI, MKV/WebM, judged by content)")
        try:
            study = await run_in_threadpool(store.create_study, name, data, ad_name, questions, retention_days,
                                            "video/webm" if "webm" in str(kind).lower() else "video/mp4")
        except StudyError as exc:
            raise study_error(exc) from None
    return public_study(request, study)


def public_study(request: Request, study: dict) -> dict:
    base = str(request.base_url).rstrip("/")
    out = {k: v for k, v in study.items() if k != "token"}
    out["participant_url"] = f"{base}/p/{study['token']}"
    out["report_url"] = f"/v1/studies/{study['id']}/report"
    return out


@router.get("/v1/studies")
def list_studies(request: Request) -> dict:
    return {"studies": store_of(request.app.state).list_studies()}


@router.get("/v1/studies/{study_id}")
def get_study(request: Request, study_id: str) -> dict:
    try:
        study = store_of(request.app.state).get_study(study_id)
    except StudyError as exc:
        raise study_error(exc) from None
    out = public_study(request, study)
    out["viewer_table"] = json.loads(store_of(request.app.state).viewer_table(study_id).to_json(orient="records"))
    return out


class ReportCache:
    """Reports written on request into a private folder, rewritten when the study's data changed
    (its viewers and frames are the version). One report is written at a time."""

    def __init__(self):
        self._root: str | None = None  # made on first use: a read-only server never needs it
        self.lock = threading.Lock()
        self.versions: dict[str, tuple] = {}

    @property
    def root(self) -> str:
        if self._root is None:
            self._root = tempfile.mkdtemp(prefix="emoscope-studies-")
        return self._root

    def folder(self, store, study_id: str) -> str:
        from ...studies.report import write_study_report
        study = store.get_study(study_id)
        table = store.viewer_table(study_id)
        version = (study["status"], tuple(table["frames"]), tuple(table["status"]))
        out = os.path.join(self.root, study_id)
        with self.lock:
            if self.versions.get(study_id) != version or not os.path.exists(os.path.join(out, "report.html")):
                write_study_report(store, study_id, out)
                self.versions[study_id] = version
        return out


@router.post("/v1/studies/{study_id}/recordings", status_code=201)
async def import_recording(request: Request, study_id: str, offset_s: float = 0.0, name: str = "recording") -> dict:
    """A recording made outside the browser (the Ad test tab's kind), analysed and stored as a
    viewer of the study. Body: the video; query: offset_s, where the ad starts in it. Takes one of
    the video job slots while it runs."""
    from ...studies.store import import_recording as store_recording
    from .videos import probe_video, save_upload
    state = request.app.state
    store = store_of(state)
    try:
        study = store.get_study(study_id)
    except StudyError as exc:
        raise study_error(exc) from None
    try:
        state.jobs.reserve(client_of(request))
    except JobsFull:
        raise UploadError(429, "too many video jobs in progress; try again later", headers={"Retry-After": "5"})
    path = None
    try:
        async with uploaded(request, state.settings.max_video_bytes) as data:
            if sniff_video(data[:16]) is None:
                raise UploadError(415, "not a supported video (MP4/MOV, AVI, MKV/WebM or Y4M, judged by content)")
            path = await run_in_threadpool(save_upload, data)
            del data
        await run_in_threadpool(probe_video, path, state.settings)

        def analyse() -> dict:
            with state.analyzers.use(state.settings.request_timeout_s) as worker:
                if worker is None:
                    raise UploadError(503, "the analyzers are busy; try again in a moment", headers={"Retry-After": "5"})
                return store_recording(store, study, worker, path, offset_s)
        try:
            result = await run_in_threadpool(analyse)
        except ValueError as exc:
            raise UploadError(422, str(exc)) from None
    finally:
        state.jobs.release(client_of(request))
        if path:
            os.remove(path)
    return {**result, "recording": os.path.basename(name)[:200]}


@router.get("/v1/studies/{study_id}/report")
async def study_report(request: Request, study_id: str):
    state = request.app.state
    try:
        folder = await run_in_threadpool(state.reports.folder, store_of(state), study_id)
    except StudyError as exc:
        raise study_error(exc) from None
    with open(os.path.join(folder, "report.html"), encoding="utf-8") as f:
        text = f.read()
    # the report's own links (stills are inline; the ad and files) resolve under this URL
    text = text.replace("src='stimulus.mp4'", f"src='/v1/studies/{study_id}/files/stimulus.mp4'")
    return HTMLResponse(text)


@router.get("/v1/studies/{study_id}/files/{name}")
async def study_file(request: Request, study_id: str, name: str):
    state = request.app.state
    if name not in REPORT_FILES and name != "stimulus.mp4":
        raise UploadError(404, f"no report file {name!r} (files: {', '.join(REPORT_FILES)})")
    try:
        folder = await run_in_threadpool(state.reports.folder, store_of(state), study_id)
    except StudyError as exc:
        raise study_error(exc) from None
    path = os.path.join(folder, name)
    if not os.path.exists(path):
        raise UploadError(404, f"{name} was not written for this study (no chart without a viewer's face)")
    return FileResponse(path, media_type=REPORT_FILES.get(name, "video/mp4"), filename=name)


@router.post("/v1/studies/{study_id}/close")
async def close_study(request: Request, study_id: str) -> dict:
    from ...studies.report import close_study as close
    state = request.app.state
    store = store_of(state)
    try:
        await run_in_threadpool(close, store, study_id, os.path.join(state.reports.root, study_id))
        return public_study(request, store.get_study(study_id))
    except StudyError as exc:
        raise study_error(exc) from None


@router.delete("/v1/studies/{study_id}")
def delete_study(request: Request, study_id: str) -> dict:
    try:
        store_of(request.app.state).delete_study(study_id)
    except StudyError as exc:
        raise study_error(exc) from None
    return {"id": study_id, "status": "deleted"}


# -- the viewers' side ----------------------------------------------------------------------------
def study_for(request_or_ws, token: str) -> dict:
    study = store_of(request_or_ws.app.state).study_by_token(token)
    if study is None:
        raise UploadError(404, "this study link is not valid (it may have been deleted)")
    return study


@router.get("/p/{token}", response_class=HTMLResponse)
def viewer_page(request: Request, token: str):
    study_for(request, token)
    return FileResponse(os.path.join(STATIC, "viewer.html"), media_type="text/html",
                        headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"})


@router.get("/p/{token}/info")
def viewer_info(request: Request, token: str) -> dict:
    study = study_for(request, token)
    return {"name": study["name"], "questions": study["questions"], "retention_days": study["retention_days"],
            "ad_seconds": study["ad_seconds"], "open": study["closed_at"] is None,
            "max_fps": request.app.state.settings.study_max_fps}


@router.get("/p/{token}/ad")
async def viewer_ad(request: Request, token: str):
    study = study_for(request, token)
    data, _, mime = await run_in_threadpool(store_of(request.app.state).ad, study["id"])
    return Response(data, media_type=mime, headers={"Cache-Control": "private, max-age=3600"})


@router.post("/p/{token}/viewers", status_code=201)
async def join(request: Request, token: str) -> dict:
    """Consent given, answers in the JSON body: a new viewer with a key of their own."""
    study = study_for(request, token)
    try:
        body = json.loads((await request.body())[:16_384] or b"{}")
    except ValueError:
        raise UploadError(400, "send the answers as a JSON object") from None
    if not isinstance(body, dict) or body.get("consent") is not True:
        raise UploadError(422, "consent is needed to take part")
    try:
        viewer, key = await run_in_threadpool(store_of(request.app.state).add_viewer, study["id"],
                                              body.get("answers") or {}, study["questions"])
    except StudyError as exc:
        raise UploadError(409 if "closed" in str(exc) else 422, str(exc)) from None
    return {"viewer": viewer, "key": key}


def viewer_of(request: Request, token: str, viewer: int, key: str) -> dict:
    study = study_for(request, token)
    if not store_of(request.app.state).viewer(study["id"], viewer, key):
        raise UploadError(403, "this viewer key does not belong to this study's viewer")
    return study


@router.post("/p/{token}/viewers/{viewer}/done")
def finish(request: Request, token: str, viewer: int, key: str) -> dict:
    viewer_of(request, token, viewer, key)
    store_of(request.app.state).finish_viewer(viewer)
    return {"viewer": viewer, "status": "completed"}


@router.delete("/p/{token}/viewers/{viewer}")
def withdraw(request: Request, token: str, viewer: int, key: str) -> dict:
    viewer_of(request, token, viewer, key)
    store_of(request.app.state).withdraw(viewer)
    return {"viewer": viewer, "status": "withdrawn", "deleted": True}


def frame_message(data: bytes, limit: int) -> tuple[float, bytes]:
    """A viewer's binary frame: 8 bytes of the ad's time (little-endian float64), then a JPEG."""
    if len(data) > limit:
        raise ValueError(f"frame over the {limit:,}-byte limit")
    if len(data) < 9:
        raise ValueError("a frame is 8 bytes of the ad's time, then a JPEG")
    (ad_time,) = struct.unpack("<d", data[:8])
    if not (ad_time == CHECK_TIME or 0 <= ad_time <= 86_400):
        raise ValueError("the ad's time must be 0 or more (or -1 for the camera check)")
    return ad_time, data[8:]


def check_advice(face, width: int, height: int) -> str | None:
    """Plain advice for the camera check, or None when the face is fit to read."""
    if face is None:
        return "No face found: sit in front of the camera, in the picture."
    x, y, w, h = face.box
    cx, cy = (x + w / 2) / width, (y + h / 2) / height
    if not (0.25 < cx < 0.75 and 0.2 < cy < 0.8):
        return "Move so that your face is in the middle of the picture."
    if face.readable is False:
        words = face.unreadable or ""
        if "dark" in words or "contrast" in words:
            return "It is too dark: turn on a light in front of you (not behind you)."
        if "turned" in words or "tilted" in words:
            return "Look straight at the screen."
        if "small" in words:
            return "Come a little closer to the camera."
        return "Hold still and face the screen."
    return None


@router.websocket("/p/{token}/ws")
async def viewer_stream(ws: WebSocket, token: str):
    """Frames in (binary: ad time + JPEG), one small JSON answer per analysed frame out, one frame
    at a time per viewer. Frames over the size limit close the socket (1009); frames faster than
    the rate limit are dropped; viewers past `max_study_viewers` are turned away (1013)."""
    state = ws.app.state
    settings = state.settings
    try:
        study = study_for(ws, token)
    except UploadError:
        await ws.close(code=4404)
        return
    viewer, key = ws.query_params.get("viewer"), ws.query_params.get("key", "")
    store = store_of(state)
    if not viewer or not viewer.isdigit() or not await run_in_threadpool(store.viewer, study["id"], viewer, key):
        await ws.close(code=4403)
        return
    client = await state.study_streams.accept(ws, "viewers")
    if client is None:
        return
    viewer_id, gap, last = int(viewer), 1.0 / settings.study_max_fps, 0.0
    counters = {"stored": 0, "dropped": 0}

    def analyse(_state, data: bytes, ad_time: float, deadline: float) -> dict:
        with decoded_for_analysis(state, data, deadline) as (worker, img, (width, height)):
            faces = worker.analyze(img)
        face = max(faces, key=lambda f: f.box[2] * f.box[3]) if faces else None
        if ad_time == CHECK_TIME:
            scale = width / img.shape[1]
            return {"check": True, "face": face is not None, "readable": bool(face and face.readable),
                    "advice": check_advice(face.scaled(scale) if face else None, width, height)}
        store.add_frames(study["id"], viewer_id, [{"ad_time": ad_time, "face": face}])
        counters["stored"] += 1
        return {"t": ad_time, "face": face is not None, "readable": bool(face and face.readable)}

    try:
        while True:
            msg = await asyncio.wait_for(ws.receive(), settings.stream_idle_timeout_s)
            if msg["type"] == "websocket.disconnect":
                break
            data = msg.get("bytes")
            if data is None:
                await ws.send_json({"error": "send frames as binary messages: 8 bytes of ad time, then a JPEG"})
                continue
            try:
                ad_time, jpeg = frame_message(data, settings.study_max_frame_bytes)
            except ValueError as exc:
                code = 1009 if "limit" in str(exc) else 1003
                await ws.close(code=code, reason=str(exc)[:120])
                break
            now = time.monotonic()
            if now - last < gap * 0.8:  # faster than the study's frame rate: dropped
                counters["dropped"] += 1
                continue
            last = now
            try:  # one frame at a time per viewer, viewers bounded: no admission queue of their own
                answer = await analyzed_in_time(state, analyse, jpeg, ad_time)
            except UploadError as exc:
                answer = {"t": ad_time, "error": exc.detail, "status": exc.status_code}
            answer["dropped"] = counters["dropped"]
            await ws.send_json(answer)
    except (asyncio.TimeoutError, WebSocketDisconnect, RuntimeError):
        pass
    finally:
        state.study_streams.leave(client)
