"""Video jobs: POST /v1/videos queues an upload, GET reports progress and results."""

from __future__ import annotations

import io
import os
import tempfile

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import PlainTextResponse

from ...analyze.video import VideoReader
from ..media import sniff_video
from ..uploads import UploadError, upload_bytes

router = APIRouter()


def probe_video(path: str) -> int | None:
    """The number of frames the container declares when its first frame decodes, else None."""
    try:
        reader = VideoReader(path, max_frames=1)
    except ValueError:
        return None
    frames = reader.frame_count
    decoded = any(True for _ in reader)
    return frames if decoded else None


def save_upload(data: bytes) -> str:
    """The upload in a private temporary file (deleted when its job ends)."""
    fd, path = tempfile.mkstemp(prefix="emoscope-upload-", suffix=".video")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    return path


@router.post("/v1/videos", status_code=202)
async def submit_video(request: Request) -> dict:
    settings, jobs = request.app.state.settings, request.app.state.jobs
    if jobs.pending() >= settings.max_queued_videos:
        raise UploadError(429, "too many video jobs in progress; try again later")
    data = await upload_bytes(request, settings.max_video_bytes)
    if sniff_video(data[:16]) is None:
        raise UploadError(415, "not a supported video (MP4/MOV, AVI, MKV/WebM or Y4M, judged by content)")
    path = await run_in_threadpool(save_upload, data)
    frames = await run_in_threadpool(probe_video, path)
    if frames is None:
        os.remove(path)
        raise UploadError(422, "the video cannot be decoded")
    job = jobs.submit(path, frames)
    return {"id": job.id, "status": job.status, "status_url": f"/v1/videos/{job.id}"}


def get_job(request: Request, job_id: str):
    job = request.app.state.jobs.jobs.get(job_id)
    if job is None:
        raise UploadError(404, f"no video job {job_id!r}")
    return job


@router.get("/v1/videos/{job_id}")
def video_status(request: Request, job_id: str) -> dict:
    return get_job(request, job_id).public()


@router.get("/v1/videos/{job_id}/timeline.csv", response_class=PlainTextResponse)
def video_timeline(request: Request, job_id: str):
    job = get_job(request, job_id)
    if job.status != "done":
        raise UploadError(409, f"job is {job.status}; the timeline exists when it is done")
    buf = io.StringIO()
    job.timeline.to_csv(buf, index=False)
    return PlainTextResponse(buf.getvalue(), media_type="text/csv")
