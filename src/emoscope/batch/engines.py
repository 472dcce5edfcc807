"""Engines that run `SourceWorker` over units of work and stream back its result rows: a local
process pool (no extra dependency) or Ray Data (an existing cluster, or a local Ray instance)."""

from __future__ import annotations

import json
import math
import multiprocessing as mp
import os
import sys
import threading
import time
from collections import deque
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Iterator

import pandas as pd

from ..analyze.inputs import is_video
from . import UNITS_PER_WORKER
from .reaper import Reaper
from .worker import SourceWorker

MAX_POOL_RESTARTS = 3  # local engine: a worker killed (OOM, kill -9) restarts the pool this often
ENV_FOR_WORKERS = ("EMOSCOPE_YUNET_MODEL", "EMOSCOPE_CACHE")  # handed to Ray workers started here


def make_units(sources: list[str], photos_per_unit: int, workers: int) -> list[list[str]]:
    """Units of work: each video alone (its frames are tracked in order by one worker), first,
    as they take longest; then the photos in groups of at most `photos_per_unit`, smaller when
    that would leave a worker fewer than UNITS_PER_WORKER units."""
    videos = [[s] for s in sources if is_video(s)]
    photos = [s for s in sources if not is_video(s)]
    size = max(1, min(photos_per_unit, math.ceil(len(photos) / (UNITS_PER_WORKER * workers))))
    return videos + [photos[i:i + size] for i in range(0, len(photos), size)]


def unit_batch(unit: list[str]) -> pd.DataFrame:
    return pd.DataFrame({"unit": [json.dumps(unit)]})


_worker: SourceWorker | None = None


def _start_worker(analyzer_options: dict, every: int, driver: int) -> None:
    global _worker
    exit_with_driver(driver)
    _worker = SourceWorker(analyzer_options, every)


def exit_with_driver(driver: int, interval: float = 0.5) -> None:
    """End this worker process soon after the driver process `driver` dies (even by `kill -9`,
    which gives the pool no chance to stop its workers): a daemon thread polls for it."""
    def watch():
        while True:
            time.sleep(interval)
            if os.getppid() != driver:
                os._exit(1)
    threading.Thread(target=watch, name="driver-watch", daemon=True).start()


def _run_unit(unit: list[str]) -> pd.DataFrame:
    return _worker(unit_batch(unit))


def run_local(units: list[list[str]], analyzer_options: dict, every: int, workers: int) -> Iterator[pd.DataFrame]:
    """A pool of `workers` processes, each with its own analyzer; at most two units in flight per
    worker. If a worker dies, the pool restarts and the units in flight run again."""
    pending, restarts = deque(units), 0
    while pending:
        pool = ProcessPoolExecutor(workers, mp.get_context("spawn"), _start_worker,
                                   (analyzer_options, every, os.getpid()))
        inflight: dict = {}
        try:
            while pending or inflight:
                while pending and len(inflight) < 2 * workers:
                    unit = pending.popleft()
                    inflight[pool.submit(_run_unit, unit)] = unit
                done, _ = wait(inflight, return_when=FIRST_COMPLETED)
                for fut in done:
                    result = fut.result()
                    del inflight[fut]
                    yield result
        except BrokenProcessPool:
            restarts += 1
            if restarts > MAX_POOL_RESTARTS:
                raise RuntimeError(f"worker processes died {restarts} times; run the same command again to "
                                   f"resume") from None
            print(f"warning: a worker process died; restarting the pool and running its "
                  f"{len(inflight)} unit(s) again", file=sys.stderr)
            pending.extendleft(reversed(list(inflight.values())))
        finally:
            pool.shutdown(wait=False, cancel_futures=True)


def run_ray(units: list[list[str]], analyzer_options: dict, every: int, workers: int | None, threads: int,
            address: str | None) -> Iterator[pd.DataFrame]:
    """Ray Data: the units as a dataset, `map_batches` with `SourceWorker` as the callable class
    of an autoscaling actor pool (1 to `workers` actors, `threads` CPUs each: one analyzer per
    actor, built once). Attaches to `address` ('auto', 'ray://host:10001') or starts Ray here."""
    try:
        import ray
        import ray.data
    except ImportError as exc:
        raise RuntimeError("--engine ray needs Ray Data: pip install 'emoscope[ray]'") from exc
    if not ray.is_initialized():
        if address is None and not os.environ.get("RAY_ADDRESS"):
            Reaper()  # a Ray of our own: its processes end with this driver, however it ends
        env = {k: os.environ[k] for k in ENV_FOR_WORKERS if k in os.environ}
        ray.init(address=address, include_dashboard=False, runtime_env={"env_vars": env} if env else None,
                 logging_level="warning")
    ray.data.DataContext.get_current().enable_progress_bars = False  # the job's own bar reports progress
    if workers is None:
        workers = max(1, int(ray.cluster_resources().get("CPU", 1) // threads))
    ds = ray.data.from_items([{"unit": json.dumps(u)} for u in units], override_num_blocks=min(len(units), 5000))
    # two units queued per actor: with Ray Data's default of one, an actor idles between units
    # until the executor hands it the next (measured: 0.82 of the local engine's rate, then 0.99)
    pool = ray.data.ActorPoolStrategy(min_size=1, max_size=workers, initial_size=workers,
                                      max_tasks_in_flight_per_actor=2)
    ds = ds.map_batches(SourceWorker, fn_constructor_args=(analyzer_options, every), batch_size=1,
                        batch_format="pandas", compute=pool, num_cpus=threads)
    yield from ds.iter_batches(batch_size=None, batch_format="pandas")
