"""`emoscope serve`."""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--model", help="expression ONNX (default: embedded)")
    p.add_argument("--detector-model", help="YuNet ONNX path")
    p.add_argument("--workers", type=int, default=2, help="analyzers working in parallel (default 2)")
    p.add_argument("--threads", type=int, default=0, help="threads per analyzer (0: cores / workers)")
    p.add_argument("--detect-max-side", type=int, default=640,
                   help="detector input's longer side (default 640); 320 is ~3x faster but may miss faces "
                        "under ~5%% of the frame")
    p.add_argument("--retention", type=float, default=0.0, help="seconds to keep uploaded videos after a job (0)")
    p.add_argument("--cors", nargs="*", default=[], help="allowed CORS origins (closed by default)")
    p.add_argument("--max-upload-mb", type=float, default=15.0, help="image upload limit")
    p.add_argument("--max-video-mb", type=float, default=100.0, help="video upload limit")


def run(args) -> int:
    import uvicorn

    from .app import Settings, create_app
    settings = Settings(model=args.model, detector_model=args.detector_model, threads=args.threads,
                        workers=args.workers, detect_max_side=args.detect_max_side,
                        retention_s=args.retention, cors_origins=args.cors,
                        max_image_bytes=int(args.max_upload_mb * 2**20), max_video_bytes=int(args.max_video_mb * 2**20))
    uvicorn.run(create_app(settings), host=args.host, port=args.port, timeout_keep_alive=5)
    return 0
