"""Reading a video once: its frame rate and size from the container, and its frames decoded in a
background thread (a bounded queue), so decoding overlaps detection and classification."""

from __future__ import annotations

import queue
import threading
import warnings

import cv2
import numpy as np

DEFAULT_MAX_FRAME_PIXELS = 3840 * 2160  # 4K: larger frames are refused when the container is opened


def check_every(every, name: str = "every") -> int:
    """A frame step (`every`, `detect_every`, `classify_every`: every N-th frame) as a positive
    int, or an error naming it."""
    if isinstance(every, bool) or not isinstance(every, (int, np.integer)) or every < 1:
        raise ValueError(f"{name} must be a whole number of frames, 1 or more, not {every!r}")
    return int(every)


class VideoReader:
    """A video file, URL or camera index, opened once. Iterating yields (frame index, BGR frame)
    for every `every`-th frame (the others are skipped without decoding), up to `max_frames`
    frames read. Frames are decoded `prefetch` ahead in a thread. `max_pixels` refuses frames
    larger than that before any is decoded."""

    def __init__(self, source, every: int = 1, max_frames: int | None = None, prefetch: int = 4,
                 max_pixels: int | None = DEFAULT_MAX_FRAME_PIXELS):
        self.source = source
        self.every = check_every(every)
        self.max_frames = max_frames
        self.prefetch = prefetch
        self.max_pixels = max_pixels
        self.is_camera = str(source).isdigit()
        level = cv2.utils.logging.getLogLevel()
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)  # our error says it in plain words
        try:
            self.cap = cv2.VideoCapture(int(source) if self.is_camera else str(source))
        finally:
            cv2.utils.logging.setLogLevel(level)
        if not self.cap.isOpened():
            raise ValueError(f"cannot open video {source!r}")
        fps = self.cap.get(cv2.CAP_PROP_FPS) or 0.0
        self.fps = fps if 0 < fps < 1000 else 30.0  # cameras and streams often declare nothing usable
        self.frame_count = int(self.cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        self.width = int(self.cap.get(cv2.CAP_PROP_FRAME_WIDTH) or 0)
        self.height = int(self.cap.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0)
        if max_pixels and self.width * self.height > max_pixels:
            self.cap.release()
            raise ValueError(f"video frames are {self.width}x{self.height}, over the {max_pixels:,}-pixel limit")
        self.frames_read = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _produce(self, q: queue.Queue) -> None:
        try:
            index = 0
            while not self._stop.is_set() and (self.max_frames is None or index < self.max_frames):
                wanted = index % self.every == 0
                ok, frame = self.cap.read() if wanted else (self.cap.grab(), None)
                if not ok:
                    break
                index += 1
                self.frames_read = index
                if wanted:
                    if self.max_pixels and frame.shape[0] * frame.shape[1] > self.max_pixels:
                        raise ValueError(f"a frame of {frame.shape[1]}x{frame.shape[0]} is over the "
                                         f"{self.max_pixels:,}-pixel limit")
                    self._put(q, (index - 1, frame))
        except Exception as exc:  # handed to the consumer, raised there
            self._put(q, exc)
        self._put(q, None)

    def _put(self, q: queue.Queue, item) -> None:
        """Wait for room in the queue unless the reader is being closed."""
        while not self._stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def __iter__(self):
        q: queue.Queue = queue.Queue(maxsize=self.prefetch)
        self._thread = threading.Thread(target=self._produce, args=(q,), daemon=True, name="emoscope-decode")
        self._thread.start()
        try:
            while True:
                item = q.get()
                if item is None:
                    break
                if isinstance(item, Exception):
                    raise item
                yield item
        finally:
            self.close()
        if self.truncated:
            warnings.warn(f"{self.source}: video ended after {self.frames_read} of {self.frame_count} frames "
                          f"(truncated or damaged); results cover the frames that could be read",
                          RuntimeWarning, stacklevel=2)

    @property
    def truncated(self) -> bool:
        """The container promised more frames than could be read (and no limit stopped reading)."""
        limited = self.max_frames is not None and self.frames_read >= self.max_frames
        return bool(self.frame_count and not self.is_camera and not limited
                    and self.frames_read < self.frame_count - 1)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        self.cap.release()

    def __enter__(self) -> "VideoReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
