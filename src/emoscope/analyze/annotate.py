"""Draw results on images: a box coloured by expression (`emoscope.presentation`, as every page and
chart), the label with its probability and valence mark, and a small
bar per class (a face the fit flag finds unreadable: a dark grey box that says so), placed where they cover no other face; optionally the face mesh and a timecode.
`AnnotatedVideo` writes annotated frames as H.264 that browsers play (the `video` extra)."""

from __future__ import annotations

import cv2
import numpy as np

from ..presentation import UNREADABLE_COLOR, VALENCE_MARK, bgr, expression_color
from .face import Face



def _overlaps(a, b) -> bool:
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


def _free_spot(candidates, taken, width: int, height: int):
    """The first candidate rectangle (x, y, w, h) inside the image that overlaps nothing taken."""
    inside = [c for c in candidates if c[0] >= 0 and c[1] >= 0 and c[0] + c[2] <= width and c[1] + c[3] <= height]
    return next((c for c in inside if not any(_overlaps(c, t) for t in taken)), None)


def timecode(seconds: float) -> str:
    """h:mm:ss.mmm"""
    ms = int(round(seconds * 1000))
    return f"{ms // 3_600_000}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d}.{ms % 1000:03d}"


def draw_faces(image: np.ndarray, faces: list[Face], bars: bool = True, fps: float | None = None,
               mesh: bool = False, stamp: str | None = None) -> np.ndarray:
    """Return a copy of a BGR image with every face annotated. Labels and bars go where they
    cover no face and no other label (above, below or inside the box; bars right or left of it,
    left out when there is no room). With `mesh`, the face-mesh points are drawn; `stamp` (e.g. a
    timecode and frame number) is burned into the bottom-left corner."""
    out = image.copy()
    h_img, w_img = out.shape[:2]
    scale = max(0.4, min(1.2, max(h_img, w_img) / 1000))
    thick = max(1, int(round(2 * scale)))
    taken = [tuple(f.box) for f in faces]
    for f in faces:
        x, y, w, h = f.box
        readable = f.readable is not False
        color = bgr(expression_color(f.label) if readable else UNREADABLE_COLOR)  # as on the web page
        cv2.rectangle(out, (x, y), (x + w, y + h), color, thick)
        if mesh and f.mesh is not None:
            for px, py in f.mesh[:, :2].astype(int):
                cv2.circle(out, (int(px), int(py)), 1, (255, 230, 120), -1)
        tag = (f"{f.label} {f.confidence:.0%} {VALENCE_MARK[f.valence]}" if readable else "unreadable") + (
            f" #{f.track_id}" if f.track_id is not None else "")
        if f.gender:
            tag += f" {max(f.gender, key=f.gender.get)}"
        (tw, th), base = cv2.getTextSize(tag, cv2.FONT_HERSHEY_SIMPLEX, 0.6 * scale, thick)
        lw, lh = tw + 6, th + base + 4
        others = [t for t in taken if t != tuple(f.box)]
        spot = _free_spot([(x, y - lh - 2, lw, lh), (x, y + h + 2, lw, lh), (x + 2, y + 2, lw, lh)], others,
                          w_img, h_img) or (max(0, min(x, w_img - lw)), max(0, y - lh - 2), lw, lh)
        taken.append(spot)
        lx, ly = spot[0], spot[1]
        cv2.rectangle(out, (lx, ly), (lx + lw, ly + lh), color, -1)
        cv2.putText(out, tag, (lx + 3, ly + th + 2), cv2.FONT_HERSHEY_SIMPLEX, 0.6 * scale, (20, 20, 20), thick,
                    cv2.LINE_AA)
        if bars and readable:
            bw, bh = int(126 * scale), (int(14 * scale) + 2) * len(f.probs)
            side = _free_spot([(x + w + 6, y, bw, bh), (x - bw - 6, y, bw, bh)], [t for t in taken if t != tuple(f.box)],
                              w_img, h_img)
            if side is not None:
                taken.append(side)
                _draw_bars(out, f, side[0], side[1], scale)
    if fps is not None:
        cv2.putText(out, f"{fps:.0f} FPS", (10, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (0, 255, 255), 2, cv2.LINE_AA)
    if stamp:
        (tw, th), base = cv2.getTextSize(stamp, cv2.FONT_HERSHEY_SIMPLEX, 0.55 * scale + 0.1, thick)
        cv2.rectangle(out, (4, h_img - th - base - 10), (tw + 14, h_img - 4), (0, 0, 0), -1)
        cv2.putText(out, stamp, (9, h_img - base - 7), cv2.FONT_HERSHEY_SIMPLEX, 0.55 * scale + 0.1, (255, 255, 255),
                    thick, cv2.LINE_AA)
    return out


class AnnotatedVideo:
    """Frames written as H.264 in MP4 (yuv420p, which browsers play) through PyAV's FFmpeg (the
    `video` extra), with the sound of `audio_from` (the source video) copied in when it has any;
    else as MPEG-4 Part 2 through OpenCV, silent, which browsers do not play (`codec` says which).
    Odd frame sizes are padded by one pixel."""

    def __init__(self, path: str, fps: float, audio_from: str | None = None):
        self.path, self.fps, self.audio_from = path, fps, audio_from
        self.container = self.stream = self.writer = None
        self.source = self.audio_in = self.audio_out = None
        try:
            import av
            self.av = av
            self.codec = "h264"
        except ImportError:
            self.av = None
            self.codec = "mpeg4"

    def write(self, frame: np.ndarray) -> None:
        h, w = frame.shape[:2]
        if h % 2 or w % 2:
            frame = cv2.copyMakeBorder(frame, 0, h % 2, 0, w % 2, cv2.BORDER_REPLICATE)
        if self.av is None:
            if self.writer is None:
                self.writer = cv2.VideoWriter(self.path, cv2.VideoWriter_fourcc(*"mp4v"), self.fps,
                                              (frame.shape[1], frame.shape[0]))
            self.writer.write(frame)
            return
        if self.container is None:
            from fractions import Fraction
            self.container = self.av.open(self.path, "w")
            self.stream = self.container.add_stream("libx264", rate=Fraction(self.fps).limit_denominator(1001))
            self.stream.width, self.stream.height = frame.shape[1], frame.shape[0]
            self.stream.pix_fmt = "yuv420p"
            self.stream.options = {"preset": "veryfast", "crf": "23", "movflags": "+faststart"}
            self._add_audio()
        for packet in self.stream.encode(self.av.VideoFrame.from_ndarray(frame, format="bgr24")):
            self.container.mux(packet)

    def _add_audio(self) -> None:
        """An audio stream copied from the source as it is (no re-encoding), when it has one that
        MP4 can hold."""
        if not self.audio_from:
            return
        try:
            self.source = self.av.open(self.audio_from)
            self.audio_in = next((s for s in self.source.streams if s.type == "audio"), None)
            if self.audio_in is not None and self.audio_in.codec_context.name in ("aac", "mp3", "alac", "opus"):
                self.audio_out = self.container.add_stream_from_template(self.audio_in)
        except (self.av.FFmpegError, OSError, ValueError):  # no sound is no reason to lose the video
            self.audio_out = None

    def close(self) -> None:
        if self.writer is not None:
            self.writer.release()
        if self.container is not None:
            for packet in self.stream.encode():
                self.container.mux(packet)
            if self.audio_out is not None:
                for packet in self.source.demux(self.audio_in):
                    if packet.dts is None:
                        continue
                    packet.stream = self.audio_out
                    self.container.mux(packet)
            self.container.close()
        if self.source is not None:
            self.source.close()


def _draw_bars(img: np.ndarray, f: Face, x0: int, y0: int, scale: float) -> None:
    row, width = int(14 * scale) + 2, int(70 * scale)
    for i, (name, p) in enumerate(sorted(f.probs.items(), key=lambda kv: -kv[1])):
        y = y0 + i * row
        if y + row > img.shape[0]:
            break
        b, g, r = bgr(expression_color(name))
        cv2.rectangle(img, (x0, y), (x0 + width, y + row - 3), (40, 40, 40), -1)
        cv2.rectangle(img, (x0, y), (x0 + int(width * p), y + row - 3), (b, g, r), -1)
        cv2.putText(img, name[:8], (x0 + width + 3, y + row - 4), cv2.FONT_HERSHEY_SIMPLEX, 0.4 * scale,
                    (255, 255, 255), 1, cv2.LINE_AA)
