"""Analysis of photos, folders, videos and cameras on top of the runtime (torch-free)."""

from .analyzer import Analyzer, to_bgr
from .annotate import draw_faces
from .face import Face
from .tracking import Tracker


def __getattr__(name: str):
    # Timeline needs pandas (~70 MB resident); load it only when a timeline is asked for.
    if name == "Timeline":
        from .timeline import Timeline
        return Timeline
    raise AttributeError(f"module 'emoscope.analyze' has no attribute {name!r}")

__all__ = ["Analyzer", "Face", "Timeline", "Tracker", "draw_faces", "to_bgr"]
