"""Ad tests from the web page: POST /v1/campaigns takes the ad, the recordings and optional groups
and offsets files as one multipart upload and queues a campaign job (in the video job slots, with
their size caps, TTL and DELETE); GET reports progress, then the report and its files."""

from __future__ import annotations

import asyncio
import os
import re
import tempfile
import uuid

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse

from ...media import sniff_video
from ..jobs import CAMPAIGN_FILE, CampaignJob, JobsFull
from ..uploads import UploadError, client_of, paced
from .videos import get_job, probe_video

router = APIRouter()
SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")
TEXT_FIELDS = ("title",)
CSV_FIELDS = ("groups", "offsets")


MAX_NAME = 100  # characters of a saved upload's name: far under any file system's limit


def safe_name(name: str, taken: set[str]) -> str:
    """A file name without folders or odd characters, at most MAX_NAME characters, made unique
    among `taken`."""
    base = SAFE_NAME.sub("_", os.path.basename(name or "recording")).strip("._") or "recording"
    stem, ext = os.path.splitext(base)
    ext = ext[:10]
    stem = stem[:MAX_NAME - len(ext) - 6]  # room for the "-N" that makes it unique
    base = stem + ext
    out, n = base, 1
    while out in taken:
        n += 1
        out = f"{stem}-{n}{ext}"
    taken.add(out)
    return out


def save_part(item, folder: str, name: str, cap: int) -> str:
    """Copy an uploaded file (spooled by the form parser) into `folder`, refusing one over `cap`
    bytes or one that is not a video."""
    item.file.seek(0)
    head = item.file.read(16)
    if sniff_video(head) is None:
        raise UploadError(415, f"{item.filename or name} is not a supported video (MP4/MOV, AVI, MKV/WebM or Y4M)")
    path = os.path.join(folder, name)
    size = len(head)
    with open(path, "wb") as f:
        f.write(head)
        while chunk := item.file.read(1 << 20):
            size += len(chunk)
            if size > cap:
                raise UploadError(413, f"{item.filename or name} is over the {cap:,}-byte limit for a video")
            f.write(chunk)
    return path


def parse_csv(item, field: str) -> dict:
    """The groups or offsets file of a campaign, read like `emoscope campaign` reads it."""
    from ...batch.campaign import read_groups, read_offsets
    with tempfile.NamedTemporaryFile("wb", suffix=".csv", delete=False) as f:
        item.file.seek(0)
        f.write(item.file.read(1 << 20))
    try:
        return (read_groups if field == "groups" else read_offsets)(f.name)
    except ValueError as exc:
        raise UploadError(400, f"{field}: {str(exc).replace(f.name, item.filename or field + '.csv')}") from None
    finally:
        os.remove(f.name)


def build_job(form, settings) -> CampaignJob:
    """Save the uploads and check them (each recording must open and be within the video caps)."""
    recordings = [v for k, v in form.multi_items() if k == "recordings" and hasattr(v, "file")]
    if not recordings:
        raise UploadError(400, "send the viewers' recordings as multipart fields named 'recordings'")
    if len(recordings) > settings.max_campaign_recordings:
        raise UploadError(413, f"{len(recordings)} recordings; the limit is {settings.max_campaign_recordings}")
    job_id = uuid.uuid4().hex
    folder = tempfile.mkdtemp(prefix="emoscope-campaign-")
    job = CampaignJob(job_id, folder, report_dir=os.path.join(tempfile.gettempdir(), f"emoscope-report-{job_id}"))
    try:
        taken: set[str] = set()
        for item in recordings:
            name = safe_name(item.filename, taken)
            path = save_part(item, folder, name, settings.max_video_bytes)
            job.frames_total += probe_video(path, settings)
            job.recordings[path] = name
        stimulus = form.get("stimulus")
        if stimulus is not None and hasattr(stimulus, "file"):
            # named among the recordings' names: a recording called stimulus-ad.avi is never overwritten
            job.stimulus = save_part(stimulus, folder, safe_name("stimulus-" + (stimulus.filename or "ad"), taken),
                                     settings.max_video_bytes)
            probe_video(job.stimulus, settings)
        for field in CSV_FIELDS:
            item = form.get(field)
            if item is not None and hasattr(item, "file"):
                setattr(job, field, parse_csv(item, field))
        title = form.get("title")
        if isinstance(title, str) and title.strip():
            job.title = title.strip()[:200]
    except BaseException:
        import shutil
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return job


@router.post("/v1/campaigns", status_code=202)
async def submit_campaign(request: Request) -> dict:
    settings, jobs = request.app.state.settings, request.app.state.jobs
    declared = request.headers.get("content-length", "")
    if not declared.isdigit():
        raise UploadError(411, "send the campaign with a Content-Length (a multipart upload from a form has one)")
    if int(declared) > settings.max_campaign_bytes:
        raise UploadError(413, f"the campaign is {int(declared):,} bytes; the limit is {settings.max_campaign_bytes:,}")
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise UploadError(415, "send the campaign as multipart/form-data (fields recordings, stimulus, groups, "
                               "offsets, title)")
    try:
        jobs.reserve(client_of(request))  # the slot is taken before the upload is read: no race past the limit
    except JobsFull:
        raise UploadError(429, "too many jobs in progress; try again later", headers={"Retry-After": "5"})
    try:
        try:
            form = await asyncio.wait_for(paced(request, settings.body_timeout_s).form(
                max_files=settings.max_campaign_recordings + 3, max_fields=10), settings.campaign_upload_timeout_s)
        except asyncio.TimeoutError:
            raise UploadError(408, "the campaign upload took too long") from None
        except UploadError:
            raise
        except Exception as exc:  # malformed multipart of any kind is the client's error
            raise UploadError(400, "malformed multipart body (boundary, headers or parts)") from exc
        try:
            job = await run_in_threadpool(build_job, form, settings)
        finally:
            await form.close()
    except BaseException:
        jobs.release(client_of(request))
        raise
    jobs.submit(job.path, job=job, client=client_of(request))
    return {"id": job.id, "status": job.status, "status_url": f"/v1/campaigns/{job.id}"}


def get_campaign(request: Request, job_id: str) -> CampaignJob:
    return get_job(request, job_id, CampaignJob, "campaign")


@router.get("/v1/campaigns/{job_id}")
def campaign_status(request: Request, job_id: str) -> dict:
    return get_campaign(request, job_id).public()


@router.get("/v1/campaigns/{job_id}/files/{name}")
def campaign_file(request: Request, job_id: str, name: str):
    """The report (report.html), its PDF, CSV tables, charts and the re-encoded ad."""
    job = get_campaign(request, job_id)
    if job.status != "done":
        raise UploadError(409, f"the campaign is {job.status}; its files exist when it is done")
    path = os.path.join(job.report_dir, name)
    if not CAMPAIGN_FILE.fullmatch(name) or not os.path.isfile(path):
        raise UploadError(404, f"the campaign has no file {name!r}")
    return FileResponse(path)


@router.delete("/v1/campaigns/{job_id}")
def cancel_campaign(request: Request, job_id: str) -> dict:
    """Stop a queued or running campaign and delete its uploads, report and files."""
    get_campaign(request, job_id)
    request.app.state.jobs.cancel(job_id)
    return {"id": job_id, "status": "cancelled"}
