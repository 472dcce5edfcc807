"""`emoscope serve`: the flags are made from `Settings` (serve/settings.py), where each default
is stated once."""

from __future__ import annotations

import argparse

from .settings import add_settings_arguments, settings_from_args


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    add_settings_arguments(p)


def run(args) -> int:
    import uvicorn

    from .app import create_app
    uvicorn.run(create_app(settings_from_args(args)), host=args.host, port=args.port, timeout_keep_alive=5)
    return 0
