"""Many photos and videos at once: `emoscope batch` (a local process pool or Ray Data, resumable
Parquet output) and `emoscope campaign` (many viewers of one ad aggregated second by second).
Stage: runtime → analyze → batch (torch-free; Ray only with --engine ray)."""

PHOTOS_PER_UNIT = 32     # photos a worker analyses per unit of work (a video is always a unit alone)
SOURCES_PER_PART = 2000  # sources per committed Parquet part (what a crash can cost at most) ...
FLUSH_SECONDS = 30.0     # ... or this many seconds of results, whichever comes first
