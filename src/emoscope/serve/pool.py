"""The analyzers a server runs side by side, handed to requests strictly in arrival order."""

from __future__ import annotations

import threading
from collections import deque
from contextlib import contextmanager


class AnalyzerPool:
    """`size` analyzers; each serves one request at a time (the detector keeps per-size state).
    A freed analyzer is handed straight to the longest-waiting request, so no late arrival can
    overtake the queue (with queue.Queue, woken waiters lose races and go to the back)."""

    def __init__(self, make, size: int):
        if size < 1:
            raise ValueError(f"need at least one worker, got {size}")
        self.free = [make() for _ in range(size)]
        self.first = self.free[0]
        self.classes = self.first.classes
        self._lock = threading.Lock()
        self._waiting: deque[list] = deque()  # [event, analyzer handed over]

    def idle(self) -> int:
        return len(self.free)

    @contextmanager
    def use(self, timeout: float | None = None):
        """An analyzer for the block, or None when none came free within `timeout` seconds."""
        with self._lock:
            if self.free and not self._waiting:
                analyzer = self.free.pop()
                slot = None
            else:
                slot = [threading.Event(), None]
                self._waiting.append(slot)
        if slot is not None and not slot[0].wait(timeout):
            with self._lock:
                if slot[1] is None:  # still waiting: leave the line
                    self._waiting.remove(slot)
            if slot[1] is None:
                yield None
                return
        analyzer = analyzer if slot is None else slot[1]
        try:
            yield analyzer
        finally:
            with self._lock:
                if self._waiting:
                    nxt = self._waiting.popleft()
                    nxt[1] = analyzer
                    nxt[0].set()
                else:
                    self.free.append(analyzer)
