"""Dataset cache: a cold decode of FER2013 vs a cached second load (target: under 2 s).

Each load runs in a fresh process, so nothing is shared through memory.
Usage: python benchmarks/bench_dataset.py [PATH]
"""

import json
import os
import subprocess
import sys
import tempfile

SHARED = os.environ.get("EMOSCOPE_SHARED", os.path.join(os.path.dirname(__file__), "..", "..", "shared"))
PATH = sys.argv[1] if len(sys.argv) > 1 else os.path.join(SHARED, "datasets", "fer2013.zip")
CODE = ("import time; t = time.perf_counter(); from emoscope.data import load_dataset; "
        "ds = load_dataset({path!r}, verbose=False); print(len(ds), time.perf_counter() - t)")


def timed_load(cache: str) -> tuple[int, float]:
    env = dict(os.environ, EMOSCOPE_CACHE=cache)
    out = subprocess.run([sys.executable, "-c", CODE.format(path=PATH)], env=env, capture_output=True, text=True,
                         check=True).stdout.split()
    return int(out[0]), float(out[1])


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as cache:
        n, cold = timed_load(cache)
        warm = min(timed_load(cache)[1] for _ in range(3))
    print(json.dumps({"dataset": os.path.basename(PATH), "images": n, "cold_load_s": round(cold, 2),
                      "cached_load_s": round(warm, 3), "speedup": round(cold / warm, 1)}))
