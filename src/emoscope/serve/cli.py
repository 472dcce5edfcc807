"""`emoscope serve`: the flags are made from `Settings` (serve/settings.py), where each default
is stated once."""

from __future__ import annotations

import argparse
import ctypes
import sys

from .settings import add_settings_arguments, settings_from_args


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    add_settings_arguments(p)


def release_freed_memory() -> None:
    """Make glibc give freed memory back: by default it raises its mmap threshold after large
    frees and keeps memory in one arena per thread, so a few large image decodes in the worker
    threads left the server holding a gigabyte afterwards. With a fixed 1 MB threshold every
    image buffer is its own mapping, returned when freed, and two arenas bound what small
    allocations can scatter. No effect off glibc."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return
    M_MMAP_THRESHOLD, M_ARENA_MAX = -3, -8
    mallopt(M_MMAP_THRESHOLD, 1 << 20)
    mallopt(M_ARENA_MAX, 2)


def run(args) -> int:
    import uvicorn

    release_freed_memory()  # before any worker thread starts
    # the event loop (health checks, 503s) waits at most 1 ms, not 5, for the GIL held by a
    # worker thread's Python code
    sys.setswitchinterval(0.001)

    from .app import create_app
    from .guards import HeaderTimeoutH11
    settings = settings_from_args(args)
    HeaderTimeoutH11.header_timeout = settings.header_timeout_s
    HeaderTimeoutH11.max_connections = settings.max_connections
    HeaderTimeoutH11.max_per_client = settings.max_connections_per_client
    uvicorn.run(create_app(settings), host=args.host, port=args.port, http=HeaderTimeoutH11,
                h11_max_incomplete_event_size=settings.max_header_kb * 1024,
                timeout_keep_alive=int(settings.keepalive_timeout_s),
                ws_max_size=settings.max_stream_frame_bytes, ws_max_queue=2, ws_ping_interval=20.0, ws_ping_timeout=20.0,
                ws_per_message_deflate=False,  # JPEG frames do not compress; inflating them cost the event loop
                proxy_headers=bool(settings.forwarded_allow_ips),
                forwarded_allow_ips=",".join(settings.forwarded_allow_ips) or None)
    return 0
