"""Many photos and videos at once: `emoscope batch` (a local process pool or Ray Data, resumable
Parquet output) and `emoscope campaign` (many viewers of one ad aggregated second by second).
Stage: runtime → analyze → batch (torch-free; Ray only with --engine ray)."""

PHOTOS_PER_UNIT = 128    # at most this many photos per unit of work (a video is always a unit alone);
                         # each unit costs Ray Data some scheduling (units of 32 ran at 0.56 of the
                         # local rate, 128 at 0.86, before two units were queued per actor)
UNITS_PER_WORKER = 4     # ... and fewer, so that each worker gets at least this many units
SOURCES_PER_PART = 2000  # sources per committed Parquet part (what a crash can cost at most) ...
FLUSH_SECONDS = 30.0     # ... or this many seconds of results, whichever comes first
