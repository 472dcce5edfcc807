"""Peak memory of `emoscope analyze VIDEO --mesh` (every frame, the research table with all 478
mesh points per face) against the video's length: the table is written in parts, so the peak
should stay flat as the video grows. Videos are the 4-tile synthetic clip of bench_inference (8 or
more faces at 1280x720, 30 FPS), made at each length asked for; every N-th frame is analysed to
keep the run short (the table's rows grow with the analysed frames, which is what is measured).
Usage: python benchmarks/bench_memory.py [--minutes 1,2,10] [--every 10]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_inference import LANDMARKER, YUNET, write_tiled_video  # noqa: E402


def peak_of_analysis(video: str, out: str, every: int) -> dict:
    """Run the CLI in a child process; its peak RSS from the kernel's own accounting."""
    t = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "emoscope.cli", "analyze", video, "--mesh", "--every", str(every),
                        "--out", out, "--detector-model", YUNET, "--mesh-model", LANDMARKER, "--format", "csv"],
                       capture_output=True, text=True)
    if r.returncode:
        raise RuntimeError(r.stderr[-2000:])
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    summary = json.loads(r.stdout)["video_results"][0]
    return {"seconds": round(time.perf_counter() - t, 1), "peak_rss_mb": round(peak / 1024),
            "analysed_frames": summary["frames"], "face_rows": summary["rows"],
            "frames_csv_mb": round(os.path.getsize(summary["frame_table"]) / 2**20, 1)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", default="1,2,10")
    p.add_argument("--every", type=int, default=10)
    p.add_argument("--single", action="store_true", help=argparse.SUPPRESS)  # one length, in its own process
    args = p.parse_args()
    if args.single:  # a fresh process per length: the kernel's peak of children is per process
        with tempfile.TemporaryDirectory() as tmp:
            video = write_tiled_video(os.path.join(tmp, "tiles.avi"), int(float(args.minutes) * 60 * 30))
            r = peak_of_analysis(video, os.path.join(tmp, "out"), args.every)
        print(json.dumps({"minutes": float(args.minutes), "every": args.every, **r}), flush=True)
        return
    for minutes in args.minutes.split(","):
        subprocess.run([sys.executable, __file__, "--single", "--minutes", minutes, "--every", str(args.every)],
                       check=True)


if __name__ == "__main__":
    main()
