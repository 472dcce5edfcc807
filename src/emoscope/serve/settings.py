"""The service's settings, stated once: `emoscope serve` makes a command-line flag of each field
(its help, and its name and unit where they differ, in the field's metadata). Importing this
module needs neither FastAPI nor uvicorn."""

from __future__ import annotations

import argparse
import os
from dataclasses import MISSING, dataclass, field, fields

from ..runtime.detector import DETECT_MAX_SIDE

MB = 2**20


def setting(default=MISSING, help: str = "", flag: str | None = None, unit: float = 1, factory=MISSING):
    """A Settings field with its command-line flag's help (and name and unit, e.g. MB for bytes).
    `flag=""` keeps a field off the command line."""
    return field(default=default, default_factory=factory, metadata={"help": help, "flag": flag, "unit": unit})


@dataclass
class Settings:
    model: str | None = setting(None, "expression ONNX (default: the embedded model)")
    detector_model: str | None = setting(None, "YuNet ONNX path (else $EMOSCOPE_YUNET_MODEL, cache, download)")
    mesh: bool = setting(False, "load the face landmarker so that requests may ask for the face mesh (?mesh=true): "
                         "landmarks, blendshapes, head pose, gaze, attention")
    mesh_model: str | None = setting(None, "face_landmarker.task (else $EMOSCOPE_LANDMARKER_MODEL, cache, download)")
    threads: int = setting(0, "threads per analyzer (0: the cores shared out among workers)")
    workers: int = setting(2, "analyzers working in parallel, each serving one request")
    detect_max_side: int = setting(DETECT_MAX_SIDE, "detector input's longer side; 320 is about 3x faster but "
                                   "may miss faces under about 5%% of the frame")
    max_image_bytes: int = setting(15 * MB, "image upload limit in MB", "--max-upload-mb", MB)
    max_video_bytes: int = setting(100 * MB, "video upload limit in MB", "--max-video-mb", MB)
    max_pixels: int = setting(40_000_000, "largest image accepted, in pixels (judged from the header)")
    decode_budget_mb: float = setting(384.0, "memory all image decodes may hold at once, in MB (each reserves "
                                      "what its header says it needs; one that needs more is refused with 413)")
    decode_max_side: int = setting(2560, "images are scaled on decode so the longer side is at most this "
                                   "(JPEG decodes at that size directly)")
    upload_budget_mb: float = setting(128.0, "memory all upload bodies being received may hold at once, in MB "
                                      "(charged by the bytes received, never the declared length; one client at most half of it, or one "
                                      "video; a chunk that does not fit gets 503)")
    max_faces: int = setting(100, "faces analysed per image or frame (the surest first)")
    max_queued_requests: int = setting(30, "image requests waiting for an analyzer; one more gets 503 at once "
                                       "(with the workers, at most 32 inside: under the 40 threads that serve "
                                       "blocking work, so status requests always find one)")
    request_timeout_s: float = setting(30.0, "seconds one image analysis may take before the answer is 503")
    retention_s: float = setting(0.0, "seconds to keep an uploaded video after its job (0: delete at once)",
                                 "--retention")
    video_every: int = setting(1, "analyse every N-th frame of uploaded videos")
    max_queued_videos: int = setting(4, "video jobs queued or running at once; more get 429")
    max_jobs_per_client: int = setting(2, "video and campaign jobs one address may have queued or running (or "
                                       "uploading) at once; more get 429")
    max_video_frames: int = setting(18_000, "frames analysed per video job (10 minutes at 30 FPS); longer "
                                    "videos are refused")
    max_video_seconds: float = setting(600.0, "duration of an uploaded video, in seconds; longer ones are refused")
    max_campaign_recordings: int = setting(30, "recordings one campaign upload may hold")
    max_campaign_bytes: int = setting(600 * MB, "size of one campaign upload (ad, recordings, files) in MB; its "
                                      "files are spooled to disk, not held in memory", "--max-campaign-mb", MB)
    campaign_upload_timeout_s: float = setting(600.0, "seconds a campaign upload may take")
    max_video_pixels: int = setting(3840 * 2160, "largest video frame, in pixels (checked when the file is opened)")
    result_ttl_s: float = setting(600.0, "seconds a finished video job's results are kept in memory")
    db: str | None = setting(None, "the studies database: a SQLAlchemy URL such as postgresql://user:pw@host/db, or "
                             "sqlite:///path.db (default: a SQLite file in the user's data folder)")
    max_study_viewers: int = setting(100, "study viewers connected at once (each sends at most one frame at a time); "
                                     "one more is closed with code 1013")
    study_max_fps: float = setting(10.0, "camera frames per second a study viewer may send; faster ones are dropped")
    study_max_frame_bytes: int = setting(256 * 1024, "largest study camera frame in KB (the page sends about 20 KB); "
                                         "a larger one closes the viewer's socket with 1009",
                                         "--study-max-frame-kb", 1024)
    header_timeout_s: float = setting(10.0, "seconds a client has to send a request's headers (idle connections "
                                      "are closed after this too)")
    body_timeout_s: float = setting(10.0, "seconds the server waits for each piece of a request body")
    stream_idle_timeout_s: float = setting(60.0, "seconds a live-camera WebSocket may stay silent (no frame from "
                                           "the client) before the server closes it; pings keep it alive otherwise")
    max_stream_frame_bytes: int = setting(4 * MB, "largest live-camera frame in MB (a 1080p JPEG is under 1 MB); "
                                          "a larger one closes the stream with code 1009", "--max-stream-frame-mb", MB)
    max_streams: int = setting(32, "live-camera WebSockets open at once; one more is closed with code 1013")
    max_streams_per_client: int = setting(4, "live-camera WebSockets from one address; one more is closed with 1013")
    max_connections: int = setting(1000, "open connections in all; past it the oldest idle one is closed")
    max_connections_per_client: int = setting(64, "open connections from one address; past it that client's "
                                               "oldest idle connection is closed")
    keepalive_timeout_s: float = setting(5.0, "seconds an idle keep-alive connection stays open")
    max_header_kb: int = setting(32, "largest request head (request line and headers), in KB")
    allowed_hosts: list[str] = setting(help="Host names the server answers to (default: any)", flag="--allowed-hosts",
                                       factory=list)
    forwarded_allow_ips: list[str] = setting(help="proxy addresses whose X-Forwarded-* headers are trusted "
                                             "(default: none)", flag="--forwarded-allow-ips", factory=list)
    # from the environment only: a key on the command line would show in every process listing
    api_key: str | None = setting(help="X-API-Key required on /v1/*", flag="",
                                  factory=lambda: os.environ.get("EMOSCOPE_API_KEY") or None)
    cors_origins: list[str] = setting(help="allowed CORS origins (closed by default)", flag="--cors", factory=list)


def add_settings_arguments(p: argparse.ArgumentParser) -> None:
    """One flag per Settings field, with its default and help."""
    for f in fields(Settings):
        if f.metadata["flag"] == "":
            continue
        default = f.default if f.default is not MISSING else None
        flag, unit, help_ = f.metadata["flag"] or "--" + f.name.replace("_", "-"), f.metadata["unit"], f.metadata["help"]
        if f.default_factory is list:
            p.add_argument(flag, dest=f.name, nargs="*", default=None, help=help_)
            continue
        if isinstance(default, bool):
            p.add_argument(flag, dest=f.name, action="store_true", default=None, help=help_)
            continue
        kind = {int: int, float: float}.get(type(default), str)
        if unit != 1:
            kind, default = float, default / unit
        shown = (f" (default {default:,})" if isinstance(default, int) else f" (default {default:g})"
                 if isinstance(default, float) else "")
        p.add_argument(flag, dest=f.name, type=kind, default=None, help=help_ + shown)


def settings_from_args(args: argparse.Namespace) -> Settings:
    """Settings with every flag given on the command line applied."""
    given = {}
    for f in fields(Settings):
        value = getattr(args, f.name, None)
        if value is not None:
            given[f.name] = int(value * f.metadata["unit"]) if f.metadata["unit"] != 1 else value
    return Settings(**given)
