"""Analysis of photos, folders, videos and cameras on top of the runtime (torch-free)."""

from .analyzer import Analyzer, to_bgr
from .annotate import draw_faces
from .face import Face
from .timeline import Timeline
from .tracking import Tracker

__all__ = ["Analyzer", "Face", "Timeline", "Tracker", "draw_faces", "to_bgr"]
