"""`emoscope study`: create, list, report, close, import into and delete ad-test studies."""

from __future__ import annotations

import argparse
import json
import os
import sys


def add_db(p: argparse.ArgumentParser) -> None:
    p.add_argument("--db", help="the studies database: a SQLAlchemy URL (postgresql://user:pw@host/db or "
                                "sqlite:///file.db; default: a SQLite file in your data folder)")


def add_create_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ad", required=True, help="the ad: a video file (MP4, WebM, ...; up to 100 MB)")
    p.add_argument("--name", required=True, help="the study's name (shown to viewers)")
    p.add_argument("--question", action="append", default=[], metavar="NAME[:CHOICE,CHOICE...]",
                   help="a question for viewers before the ad, e.g. 'age band:18-24,25-34,35+' or 'group:a,b' "
                        "(a question named group splits the report's group comparison); repeat for more")
    p.add_argument("--retention-days", type=int, default=90, help="days the results are kept (default 90)")
    p.add_argument("--url", default="http://127.0.0.1:8000",
                   help="the server viewers reach (for the printed participant_url; default http://127.0.0.1:8000)")
    add_db(p)


def add_id_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("id", help="the study's id (emoscope study list)")
    add_db(p)


def add_report_arguments(p: argparse.ArgumentParser) -> None:
    add_id_arguments(p)
    p.add_argument("--out", required=True, help="folder for report.html, report.pdf and the CSVs")


def add_list_arguments(p: argparse.ArgumentParser) -> None:
    add_db(p)


def add_import_arguments(p: argparse.ArgumentParser) -> None:
    add_id_arguments(p)
    p.add_argument("recordings", nargs="+", help="recordings of viewers watching the ad (files, folders, globs)")
    p.add_argument("--offsets", help="CSV of video,offset_s: where the ad starts in each recording (default 0)")
    p.add_argument("--fps", type=float, default=5.0, help="frames per second analysed (default 5, as the page sends)")
    p.add_argument("--detector-model", help="YuNet ONNX path (else $EMOSCOPE_YUNET_MODEL, cache, download)")


def parse_question(text: str) -> dict:
    name, _, choices = text.partition(":")
    return {"name": name.strip(), "choices": [c.strip() for c in choices.split(",") if c.strip()]}


def open_store(args):
    from ..cli import CLIError
    from .store import StudyError, StudyStore
    try:
        return StudyStore(args.db)
    except StudyError as exc:
        raise CLIError(str(exc)) from None


def guarded(fn):
    """A study verb whose StudyError is one plain line and exit 1."""
    def run(args) -> int:
        from ..cli import CLIError
        from .store import StudyError
        try:
            return fn(args)
        except StudyError as exc:
            raise CLIError(str(exc)) from None
    return run


@guarded
def run_create(args) -> int:
    from ..cli import CLIError
    if not os.path.isfile(args.ad):
        raise CLIError(f"the ad {args.ad} does not exist", 2)
    with open(args.ad, "rb") as f:
        ad = f.read()
    study = open_store(args).create_study(args.name, ad, os.path.basename(args.ad),
                                          [parse_question(q) for q in args.question], args.retention_days)
    print(json.dumps({"id": study["id"], "name": study["name"],
                      "participant_url": f"{args.url.rstrip('/')}/p/{study['token']}",
                      "ad_seconds": round(study["ad_seconds"], 2), "retention_days": study["retention_days"]}))
    return 0


@guarded
def run_list(args) -> int:
    print(json.dumps(open_store(args).list_studies()))
    return 0


@guarded
def run_report(args) -> int:
    from ..cli import writable_folder
    from .report import write_study_report
    store = open_store(args)
    store.get_study(args.id)
    writable_folder(args.out)
    path = write_study_report(store, args.id, args.out)
    print(json.dumps({"id": args.id, "report": path, "pdf": os.path.join(args.out, "report.pdf"),
                      "viewers": store.get_study(args.id)["viewers"]}))
    return 0


@guarded
def run_close(args) -> int:
    import tempfile
    from .report import close_study
    store = open_store(args)
    with tempfile.TemporaryDirectory() as out:
        close_study(store, args.id, out)
    print(json.dumps({"id": args.id, "status": "closed"}))
    return 0


@guarded
def run_delete(args) -> int:
    open_store(args).delete_study(args.id)
    print(json.dumps({"id": args.id, "status": "deleted"}))
    return 0


@guarded
def run_import(args) -> int:
    """Recordings made outside the browser (`emoscope campaign`'s kind) as viewers of the study."""
    from ..analyze import Analyzer
    from ..batch.campaign import offset_of, read_offsets
    from ..batch.cli import expand_sources
    from ..cli import CLIError
    from .store import import_recording
    store = open_store(args)
    study = store.get_study(args.id)
    offsets = read_offsets(args.offsets) if args.offsets else None
    sources, _ = expand_sources(args.recordings, "recordings")
    analyzer = Analyzer(detector_model=args.detector_model)
    imported = []
    for path in sources:
        try:
            imported.append(import_recording(store, study, analyzer, path, offset_of(path, offsets), args.fps))
        except ValueError as exc:
            print(f"warning: skipped {path}: {exc}", file=sys.stderr)
    if not imported:
        raise CLIError("no recording could be imported")
    print(json.dumps({"id": study["id"], "imported": imported}))
    return 0
