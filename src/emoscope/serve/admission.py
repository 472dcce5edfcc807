"""Bounds on what concurrent requests may take: a place in line for an analyzer (a request that
finds the line full is answered 503 at once) and the memory image decodes may hold together."""

from __future__ import annotations

import threading
from contextlib import contextmanager

from .uploads import ClientCounts, UploadError


class Admission:
    """At most `limit` image requests inside the server (being analysed, waiting for an analyzer
    or for their body), and at most `per_client` of them from one address, so that one client's
    requests (bodies that never come included) cannot fill the line for everyone. Used from the
    event loop only, so plain counters are exact."""

    def __init__(self, limit: int, per_client: int | None = None):
        self.limit = limit
        self.per_client = per_client or max(1, limit // 2)
        self.inside = 0
        self.by_client = ClientCounts()

    @contextmanager
    def enter(self, client: str):
        if self.inside >= self.limit or self.by_client.get(client, 0) >= self.per_client:
            raise UploadError(503, "the server is busy; try again in a moment", headers={"Retry-After": "1"})
        self.inside += 1
        self.by_client.add(client)
        try:
            yield
        finally:
            self.inside -= 1
            self.by_client.remove(client)


class SocketSlots:
    """Open WebSockets of one kind: at most `total` in all and `per_client` from one address, so
    one client holding sockets open cannot shut everyone else out. Event loop only."""

    def __init__(self, total: int, per_client: int):
        self.total, self.per_client = total, per_client
        self.open = 0
        self.by_client = ClientCounts()

    def refusal(self, client: str) -> str | None:
        """Why a new socket from `client` cannot open, or None (then it holds a slot until `leave`)."""
        if self.open >= self.total:
            return "too many open at once; try again in a minute"
        if self.by_client.get(client, 0) >= self.per_client:
            return f"at most {self.per_client} from one address"
        self.open += 1
        self.by_client.add(client)
        return None

    async def accept(self, ws, what: str) -> str | None:
        """Accept a WebSocket and hold a slot for it: the client's address, or None when there is
        no slot (the socket is then closed with 1013 and the reason)."""
        from .uploads import client_of
        await ws.accept()
        client = client_of(ws)
        full = self.refusal(client)
        if full:
            await ws.close(code=1013, reason=f"{what}: {full}")
            return None
        return client

    def leave(self, client: str) -> None:
        self.open -= 1
        self.by_client.remove(client)


class MemoryBudget:
    """Bytes that image decodes may hold at once. A decode reserves what its header says it needs;
    one that needs more than the whole budget is refused (413); others wait their turn for at
    most `timeout` seconds (then 503)."""

    def __init__(self, total: int):
        self.total = total
        self.used = 0
        self._cond = threading.Condition()

    @contextmanager
    def reserve(self, nbytes: int, timeout: float):
        if nbytes > self.total:
            raise UploadError(413, f"the image needs {nbytes / 2**20:,.0f} MB to decode, more than the server's "
                                   f"{self.total / 2**20:,.0f} MB; send a smaller image")
        with self._cond:
            if not self._cond.wait_for(lambda: self.used + nbytes <= self.total, timeout):
                raise UploadError(503, "the server is busy decoding other images; try again in a moment",
                                  headers={"Retry-After": "1"})
            self.used += nbytes
        try:
            yield
        finally:
            with self._cond:
                self.used -= nbytes
                self._cond.notify_all()
