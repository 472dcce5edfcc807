"""Video analysis jobs: one worker thread, bounded queue, uploaded media deleted when a job ends
(or after `retention_s`), results kept in memory for `keep_results` jobs."""

from __future__ import annotations

import base64
import os
import threading
import time
import uuid
import warnings
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import cv2


@dataclass
class Job:
    id: str
    path: str
    status: str = "queued"          # queued | running | done | failed
    frames_done: int = 0
    frames_total: int = 0
    error: str | None = None
    warnings: list[str] = field(default_factory=list)
    timeline: object = None         # emoscope Timeline when done
    created: float = field(default_factory=time.time)

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


class JobQueue:
    def __init__(self, analyzers, every: int = 1, retention_s: float = 0.0, max_queued: int = 8,
                 keep_results: int = 50):
        self.analyzers = analyzers
        self.every = every
        self.retention_s = retention_s
        self.max_queued = max_queued
        self.keep_results = keep_results
        self.jobs: OrderedDict[str, Job] = OrderedDict()
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="emoscope-video")

    def pending(self) -> int:
        return sum(j.status in ("queued", "running") for j in self.jobs.values())

    def submit(self, path: str, frames_total: int = 0) -> Job:
        job = Job(uuid.uuid4().hex, path, frames_total=frames_total)
        self.jobs[job.id] = job
        while len(self.jobs) > self.keep_results:
            old_id, old = next(iter(self.jobs.items()))
            if old.status in ("queued", "running"):
                break
            self.jobs.pop(old_id)
        self.pool.submit(self._run, job)
        return job

    def _run(self, job: Job) -> None:
        job.status = "running"

        def progress(index, *_):
            job.frames_done = index + 1

        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                with self.analyzers.use() as analyzer:
                    job.timeline = analyzer.analyze_video(job.path, self.every, progress=False, on_frame=progress)
            job.warnings = [str(w.message).replace(job.path, "upload") for w in caught]
            job.status = "done"
        except Exception as exc:  # a damaged video must fail its job, not the server
            job.status, job.error = "failed", f"{type(exc).__name__}: {exc}".replace(job.path, "upload")
        finally:
            self._discard_media(job)

    def _discard_media(self, job: Job) -> None:
        if self.retention_s > 0:
            timer = threading.Timer(self.retention_s, _remove, (job.path,))
            timer.daemon = True
            timer.start()
        else:
            _remove(job.path)

    def shutdown(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
        for job in self.jobs.values():
            _remove(job.path)


def jpeg_data_uri(bgr) -> str:
    """A small BGR image as a `data:image/jpeg;base64,...` URI for the web page."""
    ok, jpg = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, 85])
    return "data:image/jpeg;base64," + base64.b64encode(jpg.tobytes()).decode()


def _remove(path: str) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        pass
