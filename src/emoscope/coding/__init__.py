"""Codings: emoscope's reading of a video as segments a human coder's tools open (ELAN `.eaf`,
BORIS events), human codings read back (ELAN, BORIS, plain CSV), and the agreement between them
(`emoscope agree`). Reads the per-frame research table (`emoscope.analyze.frames`); pandas, NumPy
and the standard library, plus scikit-learn and `krippendorff` for the statistics (the
`research` extra)."""

from .segments import CODING_FORMATS, CodingError, frames_segments, read_coding, read_frames, write_codings

__all__ = ["CODING_FORMATS", "CodingError", "frames_segments", "read_coding", "read_frames", "write_codings"]
