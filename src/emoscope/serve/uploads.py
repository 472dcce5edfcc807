"""Reading uploads from strangers: size-capped while they stream, multipart or raw, and one
error type whose status and message become the JSON error body."""

from __future__ import annotations

from fastapi import Request
from starlette.exceptions import HTTPException


class UploadError(HTTPException):
    """A client error (4xx) or an overload (503) with a message in the user's terms."""


async def read_capped(request: Request, cap: int) -> bytes:
    """The request body, refusing (413) anything over `cap` bytes, whatever Content-Length claims."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > cap:
        raise UploadError(413, f"upload is {int(declared):,} bytes; the limit is {cap:,}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > cap:
            raise UploadError(413, f"upload exceeds the {cap:,}-byte limit")
        chunks.append(chunk)
    return b"".join(chunks)


async def upload_bytes(request: Request, cap: int) -> bytes:
    """The uploaded file: multipart field `file` (or `image`/`video`), or the raw body."""
    body = await read_capped(request, cap)
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
        raise UploadError(400, f"malformed multipart body: {exc}") from exc
    for name in ("file", "image", "video"):
        item = form.get(name)
        if item is not None and hasattr(item, "read"):
            data = await item.read()
            if not data:
                raise UploadError(400, f"multipart field '{name}' is empty")
            return data
    raise UploadError(422, f"multipart body has no file field named 'file' (got: {', '.join(form.keys()) or 'none'})")
