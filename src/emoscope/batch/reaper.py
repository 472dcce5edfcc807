"""Ends the processes of a Ray instance that a batch driver started, when the driver ends however
it ends (kill -9 included). Ray's own processes follow a dead driver within seconds, but its two
agents (dashboard and runtime-env, ~90 MB each) wait a minute for their web servers to close
(measured: 60 s after the driver's kill -9, Ray 2.60). Linux only (it reads /proc).

The driver starts this file as a script of its own (stdlib only, so it does not load emoscope)
in a session of its own, and writes "pid start-time" lines for its descendants to its stdin. When
that pipe closes, the script sends SIGTERM to those that still run (the same processes: their
start time matches, so a reused pid is left alone) and to every process of the same Ray session
(named in their command lines: a worker that started after the driver's last word), then SIGKILL
after `GRACE_S`."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time

GRACE_S = 3.0
RAY_SESSION = re.compile(r"session_\d{4}-\d\d-\d\d_[\d-]+_\d+_\d+")


def command_line(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode("utf-8", "replace")
    except OSError:
        return ""


def started(pid: int) -> str | None:
    """The process's start time (clock ticks since boot, /proc/PID/stat field 22), or None when
    it has ended or is a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return None if fields[0] == "Z" else fields[19]


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (children, their children, ...)."""
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/task/{p}/children") as f:
                kids = [int(k) for k in f.read().split()]
        except OSError:
            kids = []
        found += kids
        todo += kids
    return found


class Reaper:
    """The driver's side: started before Ray, it tells the reaper about the driver's descendants
    every `every_s` seconds from a daemon thread; nothing to do at exit."""

    def __init__(self, every_s: float = 1.0):
        self.sent: set[int] = set()
        self.proc = None
        if sys.platform.startswith("linux"):
            self.proc = subprocess.Popen([sys.executable, "-S", os.path.abspath(__file__)], stdin=subprocess.PIPE,
                                         text=True, start_new_session=True, stdout=subprocess.DEVNULL)
            threading.Thread(target=self._loop, args=(every_s,), daemon=True, name="emoscope-reaper").start()

    def _loop(self, every_s: float) -> None:
        while self.proc.poll() is None:
            self.watch()
            time.sleep(every_s)

    def watch(self) -> None:
        if self.proc is None:
            return
        lines = []
        for pid in descendants(os.getpid()):
            start = started(pid)
            if pid != self.proc.pid and pid not in self.sent and start is not None:
                self.sent.add(pid)
                lines.append(f"{pid} {start}\n")
        try:
            self.proc.stdin.write("".join(lines))
            self.proc.stdin.flush()
        except OSError:  # the reaper is gone: nothing to tell it
            pass


def main() -> None:
    watched, sessions = set(), set()
    for line in sys.stdin:  # until the driver has ended, however it ended
        pid, start = line.split()
        watched.add((int(pid), start))
        sessions.update(RAY_SESSION.findall(command_line(int(pid))))
    me = os.getpid()
    for pid in (int(p) for p in os.listdir("/proc") if p.isdigit() and int(p) != me):
        if sessions and any(s in command_line(pid) for s in sessions) and started(pid) is not None:
            watched.add((pid, started(pid)))
    for sig, wait in ((signal.SIGTERM, GRACE_S), (signal.SIGKILL, 0.0)):
        live = [pid for pid, start in watched if started(pid) == start]
        for pid in live:
            try:
                os.kill(pid, sig)
            except OSError:
                pass
        deadline = time.monotonic() + wait
        while live and time.monotonic() < deadline:
            time.sleep(0.1)
            live = [pid for pid in live if started(pid) is not None]
        if not live:
            return


if __name__ == "__main__":
    main()
