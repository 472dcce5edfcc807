"""Many photos and videos at once: `emoscope batch` (a local process pool or Ray Data, resumable
Parquet output) and `emoscope campaign` (many viewers of one ad aggregated second by second).
Stage: runtime → analyze → batch (torch-free; Ray only with --engine ray)."""

PHOTOS_PER_UNIT = 128    # at most this many photos per unit of work (a video is always a unit alone);
                         # Ray pays ~30 ms a unit, so units of 32 cost it a third of its speed
UNITS_PER_WORKER = 4     # ... and fewer, so that each worker gets at least this many units
SOURCES_PER_PART = 2000  # sources per committed Parquet part (what a crash can cost at most) ...
FLUSH_SECONDS = 30.0     # ... or this many seconds of results, whichever comes first
