"""Video jobs: POST /v1/videos queues an upload, GET reports progress and results."""

from __future__ import annotations

import io
import os
import tempfile

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import PlainTextResponse

from ...analyze.video import VideoReader
from ..jobs import Job, JobsFull
from ...media import sniff_video
from ..uploads import UploadError, client_of, uploaded

router = APIRouter()


def probe_video(path: str, settings) -> int:
    """The number of frames a saved upload declares, once its container opens within the frame
    size cap, its length is within the caps and its first frame decodes; else UploadError."""
    try:
        reader = VideoReader(path, max_frames=1, max_pixels=settings.max_video_pixels)
    except ValueError as exc:  # VideoReader names the frame size when it is over the cap
        too_big = "pixel limit" in str(exc)
        raise UploadError(413 if too_big else 422, str(exc) if too_big else "the video cannot be opened") from None
    seconds = reader.frame_count / reader.fps if reader.frame_count else 0.0
    if reader.frame_count > settings.max_video_frames * settings.video_every or seconds > settings.max_video_seconds:
        reader.close()
        raise UploadError(413, f"the video is {seconds:,.0f} s ({reader.frame_count:,} frames) long; the limit is "
                               f"{settings.max_video_seconds:,.0f} s and {settings.max_video_frames:,} analysed frames")
    try:
        decoded = any(True for _ in reader)
    except ValueError:
        decoded = False
    if not decoded:
        raise UploadError(422, "the video cannot be decoded")
    return reader.frame_count


def save_upload(data: bytes) -> str:
    """The upload in a private temporary file (deleted when its job ends)."""
    fd, path = tempfile.mkstemp(prefix="emoscope-upload-", suffix=".video")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    return path


@router.post("/v1/videos", status_code=202)
async def submit_video(request: Request) -> dict:
    settings, jobs = request.app.state.settings, request.app.state.jobs
    try:
        jobs.reserve(client_of(request))  # the slot is taken before the upload is read: no race past the limit
    except JobsFull:
        raise UploadError(429, "too many video jobs in progress; try again later", headers={"Retry-After": "5"})
    path = None
    try:
        async with uploaded(request, settings.max_video_bytes) as data:
            if sniff_video(data[:16]) is None:
                raise UploadError(415, "not a supported video (MP4/MOV, AVI, MKV/WebM or Y4M, judged by content)")
            path = await run_in_threadpool(save_upload, data)
            del data
        frames = await run_in_threadpool(probe_video, path, settings)
    except BaseException:
        jobs.release(client_of(request))
        if path:
            os.remove(path)
        raise
    job = jobs.submit(path, frames, client=client_of(request))
    return {"id": job.id, "status": job.status, "status_url": f"/v1/videos/{job.id}"}


def get_job(request: Request, job_id: str, kind: type = Job, what: str = "video job"):
    """The job `job_id` of type `kind`, else 404."""
    job = request.app.state.jobs.get(job_id)
    if type(job) is not kind:
        raise UploadError(404, f"no {what} {job_id!r} (finished ones are kept "
                               f"{request.app.state.settings.result_ttl_s:g} s)")
    return job


@router.get("/v1/videos/{job_id}")
def video_status(request: Request, job_id: str) -> dict:
    return get_job(request, job_id).public()


@router.delete("/v1/videos/{job_id}")
def cancel_video(request: Request, job_id: str) -> dict:
    """Stop a queued or running job and delete its upload and results."""
    if not request.app.state.jobs.cancel(job_id):
        raise UploadError(404, f"no video job {job_id!r}")
    return {"id": job_id, "status": "cancelled"}


@router.get("/v1/videos/{job_id}/timeline.csv", response_class=PlainTextResponse)
def video_timeline(request: Request, job_id: str):
    job = get_job(request, job_id)
    if job.status != "done":
        raise UploadError(409, f"job is {job.status}; the timeline exists when it is done")
    buf = io.StringIO()
    job.timeline.to_csv(buf, index=False)
    return PlainTextResponse(buf.getvalue(), media_type="text/csv")
