"""emoscope: facial expression recognition you can train, measure and deploy.

`emoscope.Analyzer` is the inference API (ONNX Runtime + OpenCV, no torch). Training lives in
`emoscope.data`, `emoscope.models`, `emoscope.train`, `emoscope.evaluate`, `emoscope.export`.
"""

import os

__version__ = "0.1.0"

# libav's own complaints about damaged videos ("moov atom not found") went straight to the
# terminal; emoscope reports every unreadable file itself, in plain words. Read by OpenCV when
# its FFmpeg backend starts, so it must be set before the first video is opened.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")


def __getattr__(name: str):
    # Lazy so that `import emoscope` stays cheap and never pulls heavy modules by accident.
    if name in ("Analyzer", "Face", "Timeline"):
        from . import analyze
        return getattr(analyze, name)
    raise AttributeError(f"module 'emoscope' has no attribute {name!r}")


__all__ = ["Analyzer", "Face", "Timeline", "__version__"]
