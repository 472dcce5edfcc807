"""Draw results on images: a box coloured by valence, the label with its probability, and a small
bar per class."""

from __future__ import annotations

import cv2
import numpy as np

from .face import Face

VALENCE_BGR = {"positive": (80, 200, 60), "negative": (60, 60, 230), "neutral": (200, 200, 200)}
CLASS_COLORS_RGB = {
    "angry": (214, 39, 40), "disgust": (140, 86, 75), "fear": (148, 103, 189), "happy": (255, 187, 30),
    "neutral": (160, 160, 160), "sad": (31, 119, 180), "surprise": (44, 160, 44), "contempt": (227, 119, 194),
}


def draw_faces(image: np.ndarray, faces: list[Face], bars: bool = True, fps: float | None = None) -> np.ndarray:
    """Return a copy of a BGR image with every face annotated."""
    out = image.copy()
    h_img, w_img = out.shape[:2]
    scale = max(0.4, min(1.2, max(h_img, w_img) / 1000))
    thick = max(1, int(round(2 * scale)))
    for f in faces:
        x, y, w, h = f.box
        color = VALENCE_BGR[f.valence]
        cv2.rectangle(out, (x, y), (x + w, y + h), color, thick)
        tag = f"{f.label} {f.confidence:.0%}" + (f" #{f.track_id}" if f.track_id is not None else "")
        if f.gender:
            tag += f" {max(f.gender, key=f.gender.get)}"
        (tw, th), base = cv2.getTextSize(tag, cv2.FONT_HERSHEY_SIMPLEX, 0.6 * scale, thick)
        ty = y - 4 if y - th - 8 > 0 else y + h + th + 6
        cv2.rectangle(out, (x, ty - th - 4), (x + tw + 6, ty + base - 2), color, -1)
        cv2.putText(out, tag, (x + 3, ty - 2), cv2.FONT_HERSHEY_SIMPLEX, 0.6 * scale, (20, 20, 20), thick, cv2.LINE_AA)
        if bars:
            _draw_bars(out, f, x + w + 6 if x + w + 120 * scale < w_img else max(0, x - int(126 * scale)), y, scale)
    if fps is not None:
        cv2.putText(out, f"{fps:.0f} FPS", (10, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (0, 255, 255), 2, cv2.LINE_AA)
    return out


def _draw_bars(img: np.ndarray, f: Face, x0: int, y0: int, scale: float) -> None:
    row, width = int(14 * scale) + 2, int(70 * scale)
    for i, (name, p) in enumerate(sorted(f.probs.items(), key=lambda kv: -kv[1])):
        y = y0 + i * row
        if y + row > img.shape[0]:
            break
        r, g, b = CLASS_COLORS_RGB.get(name, (128, 128, 128))
        cv2.rectangle(img, (x0, y), (x0 + width, y + row - 3), (40, 40, 40), -1)
        cv2.rectangle(img, (x0, y), (x0 + int(width * p), y + row - 3), (b, g, r), -1)
        cv2.putText(img, name[:8], (x0 + width + 3, y + row - 4), cv2.FONT_HERSHEY_SIMPLEX, 0.4 * scale,
                    (255, 255, 255), 1, cv2.LINE_AA)
