"""Decode any image file people hand us into a uint8 array (torch-free, shared by both sides).

PIL does the decoding because it notices truncated files, honours EXIF orientation and reads
16-bit and palette modes; the result is plain NumPy in OpenCV's BGR order (or grayscale).
"""

from __future__ import annotations

import io
import re
import os
import warnings
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image, ImageOps

from .media import sniff_image

DEFAULT_MAX_PIXELS = 50_000_000
MAX_IMAGE_FILE_BYTES = 512 * 2**20  # an image file larger than this is refused before it is read
# A progressive JPEG decodes its image once per scan. Encoders write about 10 scans; a "scan
# bomb" repeats its smallest scan thousands of times and took 432 s to decode at 14 MB.
MAX_JPEG_SCANS = 100


class ImageDecodeError(ValueError):
    """The bytes are not an image we can read (not an image, truncated, too large, ...)."""


@dataclass(frozen=True)
class ImageInfo:
    """What an image file's header says, before any pixel is decoded."""

    width: int
    height: int
    bands: int
    bytes_per_sample: int
    format: str

    def decode_bytes(self, max_side: int | None = None) -> int:
        """Peak memory of `decode_image` on this file (the decoder's buffer, the conversion to
        uint8 and the BGR result), at the size it will be decoded at."""
        scale = draft_scale(self, max_side)
        pixels = (self.width // scale) * (self.height // scale)
        return pixels * (self.bands * self.bytes_per_sample * 2 + 3)


def draft_scale(info: ImageInfo, max_side: int | None) -> int:
    """The factor (1, 2, 4 or 8) by which JPEG's decoder can shrink the image while keeping its
    longer side at least `max_side`; other formats decode at full size."""
    if info.format != "JPEG" or not max_side:
        return 1
    scale = 1
    while scale < 8 and max(info.width, info.height) // (scale * 2) >= max_side:
        scale *= 2
    return scale


def _clean_message(exc: BaseException) -> str:
    """The decoder's complaint in a user's words, without library internals."""
    msg = str(exc) or type(exc).__name__
    low = msg.lower()
    if "cannot identify image file" in low:
        return "not an image file"
    if isinstance(exc, (Image.DecompressionBombError, Image.DecompressionBombWarning)) or "decompression bomb" in low:
        return "the image is too large to decode safely"
    if "too large" in low or "chunk" in low:
        return "the image's metadata is too large"
    if "truncated" in low or "broken data stream" in low or "premature end" in low:
        return "the image is truncated or damaged"
    return "the image is damaged or in an unsupported variant of its format"


EXIF_ORIENTATION = 0x0112


def probe_image(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> ImageInfo:
    """Read an image's header only: its size (upright: after the EXIF orientation, as decoding
    turns it), bands and sample depth. Raises ImageDecodeError."""
    if not data:
        raise ImageDecodeError("empty file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own limit decides, with the size
            img = Image.open(io.BytesIO(data))
            w, h = img.size
            mode = img.mode
            fmt = img.format or ""
            try:
                turned = img.getexif().get(EXIF_ORIENTATION, 1) in (5, 6, 7, 8)
            except Exception:  # a broken EXIF block: the decode ignores it too
                turned = False
    except Image.DecompressionBombError as exc:  # past Pillow's own hard limit: say the size all the same
        found = re.search(r"\((\d+) pixels\)", str(exc))
        raise ImageDecodeError(f"image has {int(found.group(1)):,} pixels, over the {max_pixels:,}-pixel limit"
                               if found else _clean_message(exc)) from exc
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombWarning) as exc:
        raise ImageDecodeError(_clean_message(exc)) from exc
    if turned:  # the size the photo has once turned upright, as every decode returns it
        w, h = h, w
    if w < 1 or h < 1:
        raise ImageDecodeError(f"the image claims to be {w}x{h} pixels")
    if w * h > max_pixels:
        raise ImageDecodeError(f"image is {w}x{h}, over the {max_pixels:,}-pixel limit")
    if fmt == "JPEG":
        scans = data.count(b"\xff\xda")  # start-of-scan markers (0xFF is escaped inside scan data)
        if scans > MAX_JPEG_SCANS:
            raise ImageDecodeError(f"the JPEG has {scans:,} scans, over the limit of {MAX_JPEG_SCANS} "
                                   f"(re-save it as an ordinary JPEG)")
    depth = 2 if mode.startswith("I;16") else 4 if mode in ("I", "F") else 1
    return ImageInfo(w, h, Image.getmodebands(mode), depth, fmt)


WIDE_MODES = ("I;16", "I;16B", "I;16L", "I", "F")


def to_8bit(img: Image.Image) -> Image.Image:
    """A 16-bit, 32-bit or float single-band image as 8-bit 'L' (a 16-bit range maps 0..65535
    onto 0..255), converted a band of rows at a time so the peak stays near one copy of the image."""
    arr = np.asarray(img)
    hi = arr.max() if arr.size else 0
    out = np.empty(arr.shape, np.uint8)
    for i in range(0, arr.shape[0], 256):
        rows = np.clip(arr[i:i + 256], 0, 65535)
        out[i:i + 256] = np.minimum(rows // 257 if hi > 255 else rows, 255)
    del arr
    return Image.fromarray(out, "L")


def pil_to_array(img: Image.Image, color: str = "bgr") -> np.ndarray:
    """Convert a PIL image of any mode to uint8 gray (H, W) or BGR/RGB (H, W, 3)."""
    if img.mode in WIDE_MODES:
        img = to_8bit(img)
    if color == "gray":
        return np.asarray(img.convert("L"), dtype=np.uint8)
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        base = Image.new("RGB", img.size, (255, 255, 255))  # transparent pixels become white
        rgba = img.convert("RGBA")
        base.paste(rgba, mask=rgba.getchannel("A"))
        img = base
    rgb = np.asarray(img if img.mode == "RGB" else img.convert("RGB"), dtype=np.uint8)
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR) if color == "bgr" else rgb


def open_image(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS, max_side: int | None = None) -> Image.Image:
    """Fully decode image bytes into an upright PIL image, its longer side at most `max_side`
    (JPEG is decoded at the smaller size directly). Raises ImageDecodeError."""
    info = probe_image(data, max_pixels)  # our own pixel limit, from the header
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            scale = draft_scale(info, max_side)
            if scale > 1:
                img.draft(img.mode if img.mode in ("RGB", "L") else "RGB", (info.width // scale, info.height // scale))
            img.load()
            ImageOps.exif_transpose(img, in_place=True)
            if max_side and max(img.size) > max_side:
                if img.mode in WIDE_MODES:  # Pillow cannot shrink these modes
                    img = to_8bit(img)
                img.thumbnail((max_side, max_side), Image.Resampling.BILINEAR)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError,
            Image.DecompressionBombWarning) as exc:
        raise ImageDecodeError(_clean_message(exc)) from exc
    return img


def decode_image(data: bytes, color: str = "bgr", max_pixels: int = DEFAULT_MAX_PIXELS,
                 max_side: int | None = None) -> np.ndarray:
    """Decode image bytes to uint8; `color` is 'bgr', 'rgb' or 'gray'; the longer side is at most
    `max_side` when given. Raises ImageDecodeError."""
    return pil_to_array(open_image(data, max_pixels, max_side), color)


def read_image(path: str, color: str = "bgr", max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Read and decode an image file from disk. Its size and its first bytes are checked before
    the whole file is read, so a huge or mislabelled file costs no memory."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size > MAX_IMAGE_FILE_BYTES:
            raise ImageDecodeError(f"the file is {size / 2**20:,.0f} MB, over the "
                                   f"{MAX_IMAGE_FILE_BYTES / 2**20:,.0f} MB limit for an image")
        head = f.read(16)
        if sniff_image(head) is None:
            raise ImageDecodeError("not an image file (JPEG, PNG, GIF, BMP, TIFF or WebP, judged by content)")
        return decode_image(head + f.read(), color, max_pixels)
