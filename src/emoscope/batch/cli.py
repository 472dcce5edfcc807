"""`emoscope batch` and `emoscope campaign`."""

from __future__ import annotations

import argparse
import json
import os
import sys

from ..analyze.cli import add_common, analyzer_options, every_arg
from . import FLUSH_SECONDS, SOURCES_PER_PART


def add_engine_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, help="output folder; running again with it resumes")
    p.add_argument("--engine", default="local", choices=["local", "ray"],
                   help="local: a process pool on this machine; ray: Ray Data (pip install 'emoscope[ray]')")
    p.add_argument("--address", help="ray: the cluster to attach to ('auto', 'ray://head:10001'); "
                                     "without it a local Ray instance starts")
    p.add_argument("--workers", type=int, help="worker processes / Ray actors (default: all cores; ray: "
                                               "the cluster's CPUs divided by --threads, autoscaled from 1)")
    p.add_argument("--every", type=every_arg, default=1, help="analyse every N-th video frame")
    p.add_argument("--commit-every", type=int, default=SOURCES_PER_PART, metavar="N",
                   help=f"commit results to the output every N sources (and every {FLUSH_SECONDS:.0f} s; "
                        f"default {SOURCES_PER_PART}): what a crash can cost")
    p.add_argument("--keep-failed", action="store_true",
                   help="leave sources recorded as failed alone (by default a re-run tries them again)")
    add_common(p)
    p.set_defaults(threads=1)  # one ONNX Runtime thread per worker: the workers use the cores


def add_batch_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("inputs", nargs="+", help="images, videos, folders (recursive), glob patterns, or .txt/.csv "
                                              "files listing paths")
    add_engine_arguments(p)


def make_job(args):
    try:
        from .job import BatchJob
    except ImportError as exc:
        raise RuntimeError(f"batch output is Parquet ({exc}): pip install 'emoscope[batch]'") from None
    if args.commit_every < 1:
        from ..cli import CLIError
        raise CLIError("--commit-every must be at least 1", 2)
    return BatchJob(args.out, analyzer_options(args), args.every, args.engine, args.workers, args.address,
                    sources_per_part=args.commit_every, retry_failed=not args.keep_failed)


def expand_sources(inputs: list[str], what: str = "photos or videos") -> tuple[list[str], list[str]]:
    """The files of `inputs` and the inputs that matched nothing; nothing at all is an error."""
    from ..analyze.inputs import expand_inputs
    from ..cli import CLIError
    missing: list[str] = []
    sources = expand_inputs(inputs, missing=missing)
    if not sources:
        raise CLIError(f"nothing to analyse: no {what} found in {', '.join(inputs)}")
    return sources, missing


def run_sources(sources: list[str], missing: list[str], job) -> dict:
    """Run the batch job over the sources; prints and returns its summary."""
    from .job import run_batch, summary_line
    summary = run_batch(sources, job, missing)
    print(summary_line(summary), file=sys.stderr)
    return summary


def run_batch_cli(args) -> int:
    from ..cli import writable_folder
    sources, missing = expand_sources(args.inputs)
    writable_folder(args.out)
    try:
        summary = run_sources(sources, missing, make_job(args))
    except (ValueError, RuntimeError) as exc:  # the --out folder cannot take this command (usage)
        print(f"emoscope batch: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(summary, indent=1))
    nothing_done = summary["done"] == 0 and summary["already_recorded"] == 0
    return 1 if nothing_done and summary["failed"] else 0


def add_campaign_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("videos", nargs="+", help="recordings of viewers watching the same stimulus: files, folders, "
                                              "globs or list files")
    p.add_argument("--groups", help="CSV with columns video,group (video: path, file name or stem) to compare groups")
    p.add_argument("--title", default="Campaign", help="report title (e.g. the ad's name)")
    p.add_argument("--stimulus", help="the ad (a video): the report covers its length, cuts longer recordings at its "
                                      "end, embeds it with a playhead synced to the charts and shows a still at each "
                                      "moment")
    p.add_argument("--offsets", help="CSV with columns video,offset_s: where the ad starts in each recording, in "
                                     "seconds (default 0: every recording starts with the ad)")
    add_engine_arguments(p)


def run_campaign(args) -> int:
    from ..cli import writable_folder
    from .campaign import check_stimulus, read_groups, read_offsets, write_campaign
    try:
        groups = read_groups(args.groups) if args.groups else None
        offsets = read_offsets(args.offsets) if args.offsets else None
        if args.stimulus:
            check_stimulus(args.stimulus)  # before any recording is analysed
        sources, missing = expand_sources(args.videos, "recordings")
        writable_folder(args.out)
        job = make_job(args)
        job.out = os.path.join(args.out, "batch")
        run_sources(sources, missing, job)
        report = write_campaign(job.out, args.out, groups, args.title, offsets, args.stimulus)
    except (ValueError, RuntimeError) as exc:  # a file named by an option cannot be used (usage)
        print(f"emoscope campaign: {exc}", file=sys.stderr)
        return 2
    print(f"campaign report: {report}", file=sys.stderr)
    return 0
