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
    from .guards import HeaderTimeoutH11
    settings = settings_from_args(args)
    HeaderTimeoutH11.header_timeout = settings.header_timeout_s
    uvicorn.run(create_app(settings), host=args.host, port=args.port, http=HeaderTimeoutH11,
                h11_max_incomplete_event_size=settings.max_header_kb * 1024,
                timeout_keep_alive=int(settings.keepalive_timeout_s), limit_concurrency=1000,
                proxy_headers=bool(settings.forwarded_allow_ips),
                forwarded_allow_ips=",".join(settings.forwarded_allow_ips) or None)
    return 0
