"""Reading uploads from strangers: size-capped while they stream, multipart or raw, and one
error type whose status and message become the JSON error body."""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager

from fastapi import Request
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect


class UploadError(HTTPException):
    """A client error (4xx) or an overload (503) with a message in the user's terms."""


MIN_UPLOAD_RATE = 64 * 1024  # bytes/s a client must sustain beyond the first `timeout` seconds


async def read_capped(request: Request, cap: int, timeout: float | None = None) -> bytes:
    """The request body, refusing (413) anything over `cap` bytes, whatever Content-Length claims,
    and (408) a client that sends nothing for `timeout` seconds or trickles: the body must arrive
    within `timeout` seconds plus its size at `MIN_UPLOAD_RATE`."""
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
        chunks.append(chunk)
    return b"".join(chunks)


class UploadBudget:
    """Bytes that upload bodies may hold in memory at once, counted from the event loop only. A
    request reserves its declared size (the cap when it declares none; twice that for multipart,
    whose file part is a second copy) before its body is read, and a request that does not fit
    is answered 503 at once."""

    def __init__(self, total: int):
        self.total = total
        self.used = 0

    @asynccontextmanager
    async def hold(self, nbytes: int):
        if self.used + nbytes > self.total:
            raise UploadError(503, "the server is receiving too many uploads; try again in a moment",
                              headers={"Retry-After": "1"})
        self.used += nbytes
        try:
            yield
        finally:
            self.used -= nbytes


@asynccontextmanager
async def uploaded(request: Request, cap: int):
    """The uploaded file's bytes (`upload_bytes`), its memory held against the server's upload
    budget until the block ends."""
    declared = request.headers.get("content-length", "")
    size = min(int(declared), cap) if declared.isdigit() else cap
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        size *= 2
    async with request.app.state.upload_budget.hold(size):
        yield await upload_bytes(request, cap)


async def upload_bytes(request: Request, cap: int) -> bytes:
    """The uploaded file: multipart field `file` (or `image`/`video`), or the raw body."""
    body = await read_capped(request, cap, request.app.state.settings.body_timeout_s)
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
