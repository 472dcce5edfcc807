"""Limits below the routes: a header-count check and a Host check as ASGI middleware, the API key
kept out of every log line, and an HTTP protocol that closes connections whose request headers do
not arrive in time (uvicorn has no such timeout of its own; slow headers and idle connections
would otherwise be held forever)."""

from __future__ import annotations

import json
import logging
import re

from uvicorn.protocols.http.h11_impl import H11Protocol

MAX_HEADERS = 100
KEY_IN_QUERY = re.compile(r"(api_key=)[^&\s\"]*", re.IGNORECASE)


class RequestGuard:
    """ASGI middleware: requests with more than `MAX_HEADERS` headers get 431, and a Host not in
    `allowed_hosts` (when given) gets 400, both as JSON errors (WebSockets are closed instead);
    HEAD is answered wherever GET is, with GET's headers and no body."""

    def __init__(self, app, allowed_hosts: list[str]):
        self.app = app
        self.allowed_hosts = {h.lower() for h in allowed_hosts}

    async def __call__(self, scope, receive, send):
        if scope["type"] in ("http", "websocket"):
            problem = None
            if len(scope["headers"]) > MAX_HEADERS:
                problem = (431, f"more than {MAX_HEADERS} request headers")
            elif self.allowed_hosts:
                host = dict(scope["headers"]).get(b"host", b"").decode("latin-1").rsplit(":", 1)[0].lower()
                if host not in self.allowed_hosts:
                    problem = (400, "this server does not answer to that Host")
            if problem:
                if scope["type"] == "websocket":
                    await send({"type": "websocket.close", "code": 4400})
                    return
                body = json.dumps({"error": problem[1], "status": problem[0]}).encode()
                await send({"type": "http.response.start", "status": problem[0],
                            "headers": [(b"content-type", b"application/json"),
                                        (b"content-length", str(len(body)).encode())]})
                await send({"type": "http.response.body", "body": body})
                return
        if scope["type"] == "http" and scope["method"] == "HEAD":
            async def headers_only(message):
                if message["type"] == "http.response.body":
                    message = {**message, "body": b""}
                await send(message)
            await self.app({**scope, "method": "GET"}, receive, headers_only)
            return
        await self.app(scope, receive, send)


class RedactKey(logging.Filter):
    """Replaces the value of any `api_key=` in a log record with ***."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args:
            record.args = tuple(KEY_IN_QUERY.sub(r"\1***", a) if isinstance(a, str) else a for a in record.args)
        if isinstance(record.msg, str):
            record.msg = KEY_IN_QUERY.sub(r"\1***", record.msg)
        return True


def redact_keys_in_logs() -> None:
    """Install `RedactKey` on uvicorn's loggers (once)."""
    for name in ("uvicorn.access", "uvicorn.error", "uvicorn"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactKey) for f in logger.filters):
            logger.addFilter(RedactKey())


class HeaderTimeoutH11(H11Protocol):
    """uvicorn's h11 protocol, closing a connection that has not sent a complete request head
    within `header_timeout` seconds of opening or of its last response (slow headers, idle
    sockets). Set the timeout on the class before serving."""

    header_timeout = 10.0

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._arm()

    def _arm(self) -> None:
        self._head_timer = self.loop.call_later(self.header_timeout, self._head_timed_out)

    def _disarm(self) -> None:
        timer = getattr(self, "_head_timer", None)
        if timer is not None:
            timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        if self.cycle is None or self.cycle.response_complete:  # still waiting for a request head
            self.transport.close()

    def handle_events(self) -> None:
        super().handle_events()
        if self.cycle is not None and not self.cycle.response_complete:
            self._disarm()  # a request is in progress: the body timeout takes over

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._disarm()
        if not self.transport.is_closing():
            self._arm()

    def connection_lost(self, exc) -> None:
        self._disarm()
        super().connection_lost(exc)
