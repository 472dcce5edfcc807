"""Trust no upload: sniff what the bytes are (never the file name or the client's content type)."""

from __future__ import annotations

IMAGE_SIGNATURES = (
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"BM", "image/bmp"),
    (b"II*\x00", "image/tiff"),
    (b"MM\x00*", "image/tiff"),
)


def sniff_image(head: bytes) -> str | None:
    for sig, kind in IMAGE_SIGNATURES:
        if head.startswith(sig):
            return kind
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    return None


# ISO base media files whose major brand is a still picture (AVIF, HEIF/HEIC): not videos
STILL_BRANDS = (b"avif", b"avis", b"heic", b"heix", b"heim", b"heis", b"hevc", b"mif1", b"msf1")


def sniff_video(head: bytes) -> str | None:
    if head[4:8] == b"ftyp":
        return None if head[8:12] in STILL_BRANDS else "video/mp4"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "video/x-msvideo"
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return "video/x-matroska"
    if head[:9] == b"YUV4MPEG2":
        return "video/x-y4m"
    return None
