"""`run_batch`: analyse many photos and videos into a resumable Parquet output folder, on the local
engine or Ray Data, with a progress bar and a final summary."""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass, field

from ..runtime import ExpressionClassifier
from . import FLUSH_SECONDS, PHOTOS_PER_UNIT, SOURCES_PER_PART
from .engines import make_units, run_local, run_ray
from .store import BatchStore, decode_results


@dataclass
class BatchJob:
    """What to analyse and how. `analyzer_options` are `Analyzer` keyword arguments."""
    out: str
    analyzer_options: dict = field(default_factory=dict)
    every: int = 1
    engine: str = "local"              # local | ray
    workers: int | None = None         # local: all cores; ray: the cluster's CPUs / threads
    address: str | None = None         # ray: 'auto', 'ray://host:10001'; none starts Ray here
    photos_per_unit: int = PHOTOS_PER_UNIT
    sources_per_part: int = SOURCES_PER_PART
    flush_seconds: float = FLUSH_SECONDS
    retry_failed: bool = True          # sources recorded as failed are analysed again

    def settings(self) -> dict:
        """What the rows depend on: a folder is only resumed with the same settings."""
        return {"analyzer_options": self.analyzer_options, "every": self.every}


def check_settings(job: BatchJob) -> None:
    """Record the job's settings in a new folder; refuse to mix results made with other settings."""
    path = os.path.join(job.out, "job.json")
    if os.path.exists(path):
        with open(path) as f:
            before = json.load(f)
        if before != job.settings():
            raise ValueError(f"{job.out} holds results made with other settings ({before}); "
                             f"use another --out or the same options")
        return
    os.makedirs(job.out, exist_ok=True)
    with open(path + ".tmp", "w") as f:
        json.dump(job.settings(), f, indent=1)
    os.replace(path + ".tmp", path)


def open_store(job: BatchJob) -> BatchStore:
    """The job's output, once the models it needs are found: a missing model is reported here, in
    plain words, before any worker starts."""
    from ..runtime.assets import LANDMARKER, yunet_model
    opts = job.analyzer_options
    if opts.get("detector", "yunet") == "yunet":
        yunet_model(opts.get("detector_model"))
    if opts.get("mesh"):
        LANDMARKER.find(opts.get("mesh_model"))
    classes = ExpressionClassifier(opts.get("model")).classes
    gender = ExpressionClassifier("gender").classes if opts.get("gender") else None
    return BatchStore(job.out, classes, gender, bool(opts.get("mesh")))


def source_key(path: str) -> str:
    """A source as the manifest records it: its resolved real path, so the same file named from
    another folder, relatively or through a link is the same source."""
    return os.path.realpath(path) if "://" not in path else path


def run_batch(sources: list[str], job: BatchJob, missing: list[str] = (), progress: bool = True) -> dict:
    """Analyse the sources not yet recorded in `job.out` (and, with `job.retry_failed`, those
    recorded as failed); `missing` inputs are recorded as failed. Returns the summary printed at
    the end."""
    BatchStore.lock(job.out).close()  # a second job refuses before it touches anything
    check_settings(job)
    store = open_store(job)
    try:
        return _run(store, [source_key(s) for s in sources], job, [source_key(m) for m in missing], progress)
    finally:
        store.close()


def _run(store: BatchStore, sources: list[str], job: BatchJob, missing: list[str], progress: bool) -> dict:
    manifest = store.manifest()  # read once: a large job's manifest has millions of rows
    recorded = set(manifest["source"])
    failed_before = set(manifest.loc[manifest["status"] == "failed", "source"])
    retry = failed_before & (set(sources) | set(missing)) if job.retry_failed else set()
    retried = store.forget_failed(retry) if retry else 0
    recorded -= retry
    pending = [s for s in dict.fromkeys(sources) if s not in recorded]
    lost = [m for m in dict.fromkeys(missing) if m not in recorded]
    if lost:
        store.write([{"source": m, "kind": "unknown", "status": "failed", "faces": 0, "frames": 0, "duration_s": 0.0,
                      "reason": "no such file, folder or matching glob", "seconds": 0.0, "worker": "",
                      "worker_rss_mb": 0.0, "face_rows": [], "person_rows": []} for m in lost])
    workers = job.workers or ((os.cpu_count() or 1) if job.engine == "local" else None)
    units = make_units(pending, job.photos_per_unit, workers or os.cpu_count() or 1)
    threads = max(1, job.analyzer_options.get("threads") or 1)
    if job.engine not in ("local", "ray"):
        raise ValueError(f"engine must be 'local' or 'ray', not {job.engine!r}")
    if not units:
        stream = iter(())
    elif job.engine == "local":
        stream = run_local(units, job.analyzer_options, job.every, workers)
    else:
        stream = run_ray(units, job.analyzer_options, job.every, workers, threads, job.address)

    from tqdm import tqdm
    counts = {"done": 0, "failed": 0, "faces": 0, "frames": 0}
    bar = tqdm(total=len(pending), unit="source", desc=f"batch ({job.engine})", file=sys.stderr,
               disable=not progress or None, dynamic_ncols=True)
    t0 = last = time.monotonic()
    buffer: list[dict] = []
    try:
        for df in stream:
            results = decode_results(df)
            buffer += results
            for r in results:
                counts[r["status"]] += 1
                counts["faces"] += r["faces"]
                counts["frames"] += r["frames"] if r["kind"] == "video" else 0
            bar.update(len(results))
            bar.set_postfix(faces=counts["faces"], failed=counts["failed"], refresh=False)
            if len(buffer) >= job.sources_per_part or time.monotonic() - last >= job.flush_seconds:
                store.write(buffer)
                buffer, last = [], time.monotonic()
    finally:
        if buffer:  # complete results are kept even when the job is interrupted
            store.write(buffer)
        bar.close()
    wall = time.monotonic() - t0
    still_failed = len(failed_before - set(pending) - set(lost)) if not job.retry_failed else 0
    return {"sources": len(sources) + len(lost), "already_recorded": len(sources) - len(pending),
            "done": counts["done"], "failed": counts["failed"] + len(lost), "failed_before": still_failed,
            "retried": retried, "faces": counts["faces"],
            "video_frames": counts["frames"], "wall_s": round(wall, 2),
            "sources_per_s": round((counts["done"] + counts["failed"]) / wall, 2) if wall > 0 else 0.0,
            "frames_per_s": round(counts["frames"] / wall, 1) if wall > 0 else 0.0,
            "engine": job.engine, "out": job.out, "discarded_partial_files": store.discarded}


def summary_line(s: dict) -> str:
    earlier = f", {s['failed_before']:,} failed in an earlier run (kept)" if s.get("failed_before") else ""
    retried = f", {s['retried']:,} failed before and tried again" if s.get("retried") else ""
    return (f"batch ({s['engine']}): {s['sources']:,} sources ({s['already_recorded']:,} already recorded{retried}), "
            f"{s['done']:,} done, {s['failed']:,} failed{earlier}, {s['faces']:,} faces, {s['video_frames']:,} video frames "
            f"in {s['wall_s']:.1f} s ({s['sources_per_s']:.1f} sources/s, {s['frames_per_s']:.1f} frames/s) "
            f"-> {s['out']}")

