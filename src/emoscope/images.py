"""Decode any image file people hand us into a uint8 array (torch-free, shared by both sides).

PIL does the decoding because it notices truncated files, honours EXIF orientation and reads
16-bit and palette modes; the result is plain NumPy in OpenCV's BGR order (or grayscale).
"""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image, ImageOps

DEFAULT_MAX_PIXELS = 50_000_000


class ImageDecodeError(ValueError):
    """The bytes are not an image we can read (not an image, truncated, too large, ...)."""


def pil_to_array(img: Image.Image, color: str = "bgr") -> np.ndarray:
    """Convert a PIL image of any mode to uint8 gray (H, W) or BGR/RGB (H, W, 3)."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        hi = arr.max() if arr.size else 0.0
        scale = 255.0 / 65535.0 if hi > 255 else 1.0
        img = Image.fromarray(np.clip(arr * scale, 0, 255).astype(np.uint8), "L")
    if color == "gray":
        return np.asarray(img.convert("L"), dtype=np.uint8)
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        base = Image.new("RGB", img.size, (255, 255, 255))  # transparent pixels become white
        rgba = img.convert("RGBA")
        base.paste(rgba, mask=rgba.getchannel("A"))
        img = base
    rgb = np.asarray(img.convert("RGB"), dtype=np.uint8)
    return rgb[..., ::-1].copy() if color == "bgr" else rgb


def open_image(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Fully decode image bytes into an upright PIL image. Raises ImageDecodeError."""
    if not data:
        raise ImageDecodeError("empty file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            w, h = img.size
            if w * h > max_pixels:
                raise ImageDecodeError(f"image is {w}x{h}, over the {max_pixels:,}-pixel limit")
            img.load()
            img = ImageOps.exif_transpose(img)
    except ImageDecodeError:
        raise
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError,
            Image.DecompressionBombWarning) as exc:
        msg = str(exc) or type(exc).__name__
        if "cannot identify image file" in msg:
            msg = "not an image file"
        raise ImageDecodeError(msg) from exc
    return img


def decode_image(data: bytes, color: str = "bgr", max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode image bytes to uint8; `color` is 'bgr', 'rgb' or 'gray'. Raises ImageDecodeError."""
    return pil_to_array(open_image(data, max_pixels), color)


def read_image(path: str, color: str = "bgr", max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Read and decode an image file from disk."""
    with open(path, "rb") as f:
        return decode_image(f.read(), color, max_pixels)
