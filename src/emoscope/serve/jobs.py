"""Video and campaign jobs: one worker thread; a slot is reserved atomically before an upload is
read; uploaded media is deleted when a job ends (or after `retention_s`); finished results expire
after `result_ttl_s`; a job can be cancelled at any time."""

from __future__ import annotations

import base64
import os
import shutil
import threading
import time
import re
import uuid
import warnings
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import cv2

from .uploads import ClientCounts


class JobsFull(Exception):
    """No video slot is free."""


class Cancelled(Exception):
    """The job was cancelled while it ran."""


@dataclass
class Job:
    id: str
    path: str
    status: str = "queued"          # queued | running | done | failed | cancelled
    frames_done: int = 0
    frames_total: int = 0
    error: str | None = None
    warnings: list[str] = field(default_factory=list)
    timeline: object = None         # emoscope Timeline when done
    created: float = field(default_factory=time.time)
    finished: float | None = None
    cancel: threading.Event = field(default_factory=threading.Event)
    client: str = ""                # the address that sent it: result retention is shared out by client

    def work(self, analyzer, queue: "JobQueue", progress) -> None:
        """Analyse the uploaded video into `timeline`."""
        self.timeline = analyzer.analyze_video(self.path, queue.every, max_frames=queue.max_frames, progress=False,
                                               on_frame=progress)

    def discard(self) -> None:
        """Drop what the job keeps after it ends (a video job: its results in memory)."""
        self.timeline = None

    def public(self, with_results: bool = True) -> dict:
        d = {"id": self.id, "status": self.status, "frames_done": self.frames_done, "frames_total": self.frames_total,
             "progress": round(self.frames_done / self.frames_total, 4) if self.frames_total else None,
             "warnings": self.warnings}
        if self.error:
            d["error"] = self.error
        if with_results and self.status == "done":
            tl = self.timeline
            summary = tl.summary()
            if len(summary):
                summary["thumbnail"] = [jpeg_data_uri(t) if t is not None else None for t in summary["thumbnail"]]
            d["summary"] = summary.to_dict(orient="records")
            d["timeline"] = tl.to_dict(orient="records")
            d["classes"] = tl.classes
        return d


@dataclass
class CampaignJob(Job):
    """An ad test: the recordings (uploaded into the folder `path`, `recordings` maps each file to
    the name it was uploaded as) analysed one after the other, then the campaign report written
    into `report_dir`, which lives until the job expires or is deleted."""

    recordings: dict[str, str] = field(default_factory=dict)
    stimulus: str | None = None
    groups: dict | None = None
    offsets: dict | None = None
    title: str = "Campaign"
    report_dir: str = ""

    def work(self, analyzer, queue: "JobQueue", progress) -> None:
        import pandas as pd

        from ..batch.campaign import write_report
        from ..batch.worker import failure_reason, video_rows
        faces, manifest, done_before = [], [], 0
        for path, name in self.recordings.items():
            t0 = time.perf_counter()
            try:
                rows, _, frames, duration = video_rows(analyzer, path, queue.every, name, max_frames=queue.max_frames,
                                                       on_frame=lambda index, *_: progress(done_before + index))
                status, reason = "done", ""
            except Cancelled:
                raise
            except Exception as exc:  # one broken recording is reported, the others analysed
                rows, frames, duration, status, reason = [], 0, 0.0, "failed", failure_reason(exc)
            faces += rows
            manifest.append({"source": name, "kind": "video", "status": status, "reason": reason, "faces": len(rows),
                             "frames": frames, "duration_s": duration, "seconds": time.perf_counter() - t0})
            done_before += frames
        os.makedirs(self.report_dir, exist_ok=True)
        empty = ["source", "kind", "frame", "time_s", "track", "x", "y", "w", "h", "score", *analyzer.classes, "label",
                 "valence_score"]  # the columns of a campaign in which no face was found
        write_report(pd.DataFrame(faces) if faces else pd.DataFrame(columns=empty), pd.DataFrame(manifest),
                     self.report_dir, self.groups, self.title, self.offsets, self.stimulus)

    def discard(self) -> None:
        shutil.rmtree(self.report_dir, ignore_errors=True)

    def public(self, with_results: bool = True) -> dict:
        d = Job.public(self, with_results=False)
        d["recordings"] = sorted(self.recordings.values())
        if self.status == "done":
            d["report_url"] = f"/v1/campaigns/{self.id}/files/report.html"
            d["files"] = sorted(n for n in os.listdir(self.report_dir) if CAMPAIGN_FILE.fullmatch(n))
        return d


CAMPAIGN_FILE = re.compile(r"[a-z][a-z0-9_\-]*\.(html|pdf|csv|png|mp4)")


class JobQueue:
    """At most `max_jobs` video jobs queued or running (slots reserved before the upload is read);
    each analyses at most `max_frames` frames; results live `result_ttl_s` after the job ends."""

    def __init__(self, analyzers, every: int = 1, retention_s: float = 0.0, max_jobs: int = 4,
                 max_frames: int | None = None, result_ttl_s: float = 600.0, keep_results: int = 50,
                 keep_per_client: int = 10, max_jobs_per_client: int = 2):
        self.analyzers = analyzers
        self.every = every
        self.retention_s = retention_s
        self.max_jobs = max_jobs
        self.max_frames = max_frames
        self.result_ttl_s = result_ttl_s
        self.keep_results = keep_results
        self.keep_per_client = keep_per_client
        self.max_jobs_per_client = max_jobs_per_client
        self.reserved_by = ClientCounts()
        self.jobs: OrderedDict[str, Job] = OrderedDict()
        self.reserved = 0
        self._lock = threading.Lock()
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="emoscope-video")

    def pending(self) -> int:
        """Jobs queued or running, and slots reserved for uploads being read."""
        with self._lock:
            return self.reserved + sum(j.status in ("queued", "running") for j in self.jobs.values())

    def reserve(self, client: str = "") -> None:
        """Take a slot for an upload about to be read (raises JobsFull, also when `client` already
        has `max_jobs_per_client` slots: one client cannot hold them all); `submit` or `release` it."""
        self.expire()
        with self._lock:
            busy = self.reserved + sum(j.status in ("queued", "running") for j in self.jobs.values())
            mine = self.reserved_by.get(client, 0) + sum(j.status in ("queued", "running") and j.client == client
                                                           for j in self.jobs.values())
            if busy >= self.max_jobs or mine >= self.max_jobs_per_client:
                raise JobsFull
            self.reserved += 1
            self.reserved_by.add(client)

    def release(self, client: str = "") -> None:
        with self._lock:
            self._unreserve(client)

    def _unreserve(self, client: str) -> None:
        self.reserved -= 1
        self.reserved_by.remove(client)

    def submit(self, path: str, frames_total: int = 0, job: Job | None = None, client: str = "") -> Job:
        """Queue a job (a video job on `path`, or the given `job`) in a reserved slot, for `client`."""
        job = job or Job(uuid.uuid4().hex, path, frames_total=frames_total)
        job.client = client
        with self._lock:
            self._unreserve(client)
            self.jobs[job.id] = job
        self.pool.submit(self._run, job)
        return job

    def get(self, job_id: str) -> Job | None:
        self.expire()
        return self.jobs.get(job_id)

    def expire(self) -> None:
        """Forget finished jobs whose results are older than `result_ttl_s`, each client's oldest
        finished ones beyond `keep_per_client`, and past `keep_results` in all, the oldest of
        whichever client keeps the most: one client's burst of jobs never evicts another's."""
        now = time.time()
        with self._lock:
            finished = [k for k, j in self.jobs.items() if j.finished]
            gone = {k for k in finished if now - self.jobs[k].finished > self.result_ttl_s}
            by_client: dict[str, list[str]] = {}
            for k in finished:
                if k not in gone:
                    by_client.setdefault(self.jobs[k].client, []).append(k)
            for keys in by_client.values():
                while len(keys) > self.keep_per_client:
                    gone.add(keys.pop(0))
            while sum(map(len, by_client.values())) > self.keep_results:
                gone.add(max(by_client.values(), key=len).pop(0))
            dropped = [self.jobs.pop(k) for k in gone]
        for job in dropped:
            job.discard()

    def cancel(self, job_id: str) -> bool:
        """Stop a queued or running job and drop it with its results and media."""
        with self._lock:
            job = self.jobs.pop(job_id, None)
        if job is None:
            return False
        job.cancel.set()
        if job.status != "running":  # a running job removes its media and results itself when it stops
            _remove(job.path)
            job.discard()
        return True

    def _run(self, job: Job) -> None:
        if job.cancel.is_set():
            return
        job.status = "running"

        def progress(index, *_):
            if job.cancel.is_set():
                raise Cancelled
            job.frames_done = index + 1

        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                with self.analyzers.use() as analyzer:
                    job.work(analyzer, self, progress)
            job.warnings = [str(w.message).replace(job.path, "upload") for w in caught]
            job.status = "done"
        except Cancelled:
            job.status = "cancelled"
            job.discard()
        except Exception as exc:  # a damaged video must fail its job, not the server
            job.status, job.error = "failed", f"the video could not be analysed: {exc}".replace(job.path, "upload")
        finally:
            job.finished = time.time()
            if job.cancel.is_set():  # deleted while it ran (even while its report was written): keep nothing
                job.discard()
            self._discard_media(job)

    def _discard_media(self, job: Job) -> None:
        if self.retention_s > 0 and not job.cancel.is_set():
            timer = threading.Timer(self.retention_s, _remove, (job.path,))
            timer.daemon = True
            timer.start()
        else:
            _remove(job.path)

    def shutdown(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
        for job in self.jobs.values():
            job.cancel.set()
            _remove(job.path)
            job.discard()


def jpeg_data_uri(bgr) -> str:
    """A small BGR image as a `data:image/jpeg;base64,...` URI for the web page."""
    ok, jpg = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, 85])
    return "data:image/jpeg;base64," + base64.b64encode(jpg.tobytes()).decode()


def _remove(path: str) -> None:
    """Delete an uploaded file, or a folder of uploads."""
    if os.path.isdir(path):
        shutil.rmtree(path, ignore_errors=True)
        return
    try:
        os.remove(path)
    except FileNotFoundError:
        pass
