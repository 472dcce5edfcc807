"""How much memory this process has used (for workers' manifests and the benchmarks)."""

from __future__ import annotations

import resource


def peak_rss_mb() -> float:
    """This process's peak resident memory in MB. On Linux from /proc (`VmHWM`, the peak of this
    program's own memory): `getrusage`'s `ru_maxrss` survives `exec`, so a worker or a benchmark
    child would report its parent's peak whenever that is higher."""
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 1024
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
