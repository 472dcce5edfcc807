"""Limits below the routes: a header-count check and a Host check as ASGI middleware, the API key
kept out of every log line, and an HTTP protocol that closes connections whose request headers do
not arrive in time (uvicorn has no such timeout of its own; slow headers and idle connections
would otherwise be held forever) and caps open connections per client and in all."""

from __future__ import annotations

import json
import logging
import re
from collections import OrderedDict

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
    """uvicorn's h11 protocol, with two bounds of its own:

    - a connection that has not sent a complete request head within `header_timeout` seconds of
      opening or of its last response is closed (slow headers, idle sockets); a connection that
      upgrades to a WebSocket leaves this clock (the stream has its own idle timeout and pings);
    - at most `max_connections` connections in all and `max_per_client` from one address: a
      connection past either cap closes the oldest idle one (waiting for a request head) of
      that client or of all, so a crowd of idle sockets never locks out real requests (uvicorn's
      `limit_concurrency` counts idle connections and answered every request 503 instead). When
      nothing is idle, the new connection gets a 503 JSON answer and is closed.

    Set the class attributes before serving."""

    header_timeout = 10.0
    max_connections = 1000
    max_per_client = 64
    open_by_client: dict = {}       # address -> set of open protocols (event loop only)
    idle: OrderedDict = OrderedDict()  # protocols waiting for a request head, oldest first

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        peer = transport.get_extra_info("peername")
        self._client = peer[0] if isinstance(peer, (tuple, list)) and peer else "?"
        mine = self.open_by_client.setdefault(self._client, set())
        total = sum(len(v) for v in self.open_by_client.values())
        if len(mine) >= self.max_per_client or total >= self.max_connections:
            victim = next((p for p in self.idle if p in mine), None) if len(mine) >= self.max_per_client \
                else next(iter(self.idle), None)
            if victim is None:
                body = b'{"error": "too many open connections; try again in a moment", "status": 503}'
                transport.write(b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n"
                                b"connection: close\r\ncontent-length: " + str(len(body)).encode() + b"\r\n\r\n"
                                + body)
                transport.close()
                return
            victim._forget()
            victim.transport.close()
        mine.add(self)
        self._arm()

    def _forget(self) -> None:
        """Leave the connection counts (closed, or handed over to a WebSocket)."""
        self._disarm()
        mine = self.open_by_client.get(getattr(self, "_client", None))
        if mine is not None:
            mine.discard(self)
            if not mine:
                del self.open_by_client[self._client]

    def _arm(self) -> None:
        self._head_timer = self.loop.call_later(self.header_timeout, self._head_timed_out)
        self.idle[self] = None

    def _disarm(self) -> None:
        timer = getattr(self, "_head_timer", None)
        if timer is not None:
            timer.cancel()
            self._head_timer = None
        self.idle.pop(self, None)

    def _head_timed_out(self) -> None:
        if self.cycle is None or self.cycle.response_complete:  # still waiting for a request head
            self._forget()
            self.transport.close()

    def handle_events(self) -> None:
        super().handle_events()
        if self.cycle is not None and not self.cycle.response_complete:
            self._disarm()  # a request is in progress: the body timeout takes over

    def handle_websocket_upgrade(self, event) -> None:
        self._forget()  # the WebSocket protocol owns the connection from here on
        super().handle_websocket_upgrade(event)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._disarm()
        if not self.transport.is_closing():
            self._arm()

    def connection_lost(self, exc) -> None:
        self._forget()
        super().connection_lost(exc)
