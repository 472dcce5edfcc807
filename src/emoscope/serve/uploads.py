"""Reading uploads from strangers: size-capped while they stream, multipart or raw, and one
error type whose status and message become the JSON error body."""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager, contextmanager

from fastapi import Request
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect


class UploadError(HTTPException):
    """A client error (4xx) or an overload (503) with a message in the user's terms."""


MIN_UPLOAD_RATE = 64 * 1024  # bytes/s a client must sustain beyond the first `timeout` seconds


async def read_capped(request: Request, cap: int, timeout: float | None = None, account=None) -> bytes:
    """The request body, refusing (413) anything over `cap` bytes, whatever Content-Length claims,
    and (408) a client that sends nothing for `timeout` seconds or trickles: the body must arrive
    within `timeout` seconds plus its size at `MIN_UPLOAD_RATE`. Each chunk received is charged to
    `account` (an `UploadBudget` account) when given."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > cap:
        raise UploadError(413, f"upload is {int(declared):,} bytes; the limit is {cap:,}")
    chunks, size = [], 0
    stream = request.stream().__aiter__()
    loop = asyncio.get_running_loop()
    start = loop.time()
    while True:
        wait = None
        if timeout is not None:
            wait = min(timeout, start + timeout + size / MIN_UPLOAD_RATE - loop.time())
        try:
            if wait is not None and wait <= 0:
                raise asyncio.TimeoutError
            chunk = await asyncio.wait_for(stream.__anext__(), wait)
        except StopAsyncIteration:
            break
        except asyncio.TimeoutError:
            raise UploadError(408, "the upload was too slow (stalled, or slower than "
                                   f"{MIN_UPLOAD_RATE // 1024} KB/s)") from None
        except ClientDisconnect:
            raise UploadError(400, "the client disconnected during the upload") from None
        size += len(chunk)
        if size > cap:
            raise UploadError(413, f"upload exceeds the {cap:,}-byte limit")
        if account is not None:
            account.add(len(chunk))
        chunks.append(chunk)
    return b"".join(chunks)


class UploadBudget:
    """Bytes that upload bodies hold in memory at once, counted from the event loop only, as they
    arrive: a request is charged for the bytes it has sent, never for what its Content-Length
    claims (heads with a large declared length and no body used to shut every upload out). One
    client may hold at most `per_client` of it. A chunk that does not fit ends its upload with 503;
    the others go on."""

    def __init__(self, total: int, per_client: int | None = None):
        self.total = total
        self.per_client = per_client or total
        self.used = 0
        self.by_client = ClientCounts()

    @contextmanager
    def account(self, client: str):
        acc = _Account(self, client)
        try:
            yield acc
        finally:
            self.used -= acc.held
            self.by_client.remove(client, acc.held)


class _Account:
    def __init__(self, budget: UploadBudget, client: str):
        self.budget, self.client, self.held = budget, client, 0

    def add(self, n: int) -> None:
        b = self.budget
        if b.used + n > b.total or b.by_client.get(self.client, 0) + n > b.per_client:
            raise UploadError(503, "the server is receiving too many uploads; try again in a moment",
                              headers={"Retry-After": "1"})
        b.used += n
        b.by_client.add(self.client, n)
        self.held += n


def paced(request: Request, timeout: float) -> Request:
    """The same request, whose body must keep coming: each piece within `timeout` seconds, and
    all of it within `timeout` plus its size at MIN_UPLOAD_RATE (408 otherwise). A client that
    trickles a byte every few seconds can no longer hold a job slot for the whole upload time."""
    loop = asyncio.get_running_loop()
    start, received = loop.time(), [0]

    async def receive():
        wait = min(timeout, start + timeout + received[0] / MIN_UPLOAD_RATE - loop.time())
        try:
            if wait <= 0:
                raise asyncio.TimeoutError
            message = await asyncio.wait_for(request.receive(), wait)
        except asyncio.TimeoutError:
            raise UploadError(408, "the upload was too slow (stalled, or slower than "
                                   f"{MIN_UPLOAD_RATE // 1024} KB/s)") from None
        received[0] += len(message.get("body", b""))
        return message

    return Request(request.scope, receive)


def client_of(request) -> str:
    """The address a request or WebSocket comes from (what per-client shares are counted by)."""
    return request.client.host if request.client else "?"


class ClientCounts(dict):
    """What each client address holds (bytes, places, slots), forgetting a client at zero so the
    map is only as large as the clients holding something."""

    def add(self, client: str, n: int = 1) -> None:
        self[client] = self.get(client, 0) + n

    def remove(self, client: str, n: int = 1) -> None:
        left = self.get(client, 0) - n
        if left > 0:
            self[client] = left
        else:
            self.pop(client, None)


@asynccontextmanager
async def uploaded(request: Request, cap: int):
    """The uploaded file's bytes (`upload_bytes`), charged to the server's upload budget as they
    arrive and held against it until the block ends."""
    with request.app.state.upload_budget.account(client_of(request)) as account:
        yield await upload_bytes(request, cap, account)


async def upload_bytes(request: Request, cap: int, account=None) -> bytes:
    """The uploaded file: multipart field `file` (or `image`/`video`), or the raw body. The form
    parser spools a multipart file part to disk, so memory holds one copy of the body."""
    body = await read_capped(request, cap, request.app.state.settings.body_timeout_s, account)
    ctype = request.headers.get("content-type", "")
    if not ctype.startswith("multipart/form-data"):
        if not body:
            raise UploadError(400, "empty body: send the file as the body or as multipart field 'file'")
        return body

    async def replay():
        return {"type": "http.request", "body": body, "more_body": False}

    try:
        form = await Request(request.scope, replay).form(max_files=1, max_fields=10)
    except Exception as exc:  # malformed multipart of any kind is the client's error
        raise UploadError(400, "malformed multipart body (boundary, headers or parts)") from exc
    del body
    for name in ("file", "image", "video"):
        item = form.get(name)
        if item is not None and hasattr(item, "read"):
            data = await item.read()
            if not data:
                raise UploadError(400, f"multipart field '{name}' is empty")
            return data
    raise UploadError(422, f"multipart body has no file field named 'file' (got: {', '.join(form.keys()) or 'none'})")
