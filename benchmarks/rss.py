"""Resident memory of the current process, for the benchmarks' worker subprocesses (Linux).

Why not ``resource.getrusage(RUSAGE_SELF).ru_maxrss``: Linux carries the parent's peak across
``exec`` into the child's ``ru_maxrss``, so a worker started by a parent that holds a million
leads reports the parent's peak, whatever the worker does. ``VmHWM`` in ``/proc/self/status``
is the high-water mark of this process's own memory, and writing ``5`` to
``/proc/self/clear_refs`` resets it to the current RSS, so a measurement can leave out what
was resident before it started (the input data, imports).
"""

from __future__ import annotations

import contextlib
from pathlib import Path

STATUS = Path("/proc/self/status")
CLEAR_REFS = Path("/proc/self/clear_refs")


def _status_mib(field: str) -> float:
    for line in STATUS.read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024  # the kernel writes kB
    raise RuntimeError(f"{field} not found in {STATUS}")


def current_mib() -> float:
    """Resident memory now (VmRSS)."""
    return _status_mib("VmRSS")


def peak_mib() -> float:
    """Highest resident memory since the start or the last ``reset_peak`` (VmHWM)."""
    return _status_mib("VmHWM")


def reset_peak() -> bool:
    """Make the high-water mark the current RSS; False where the kernel does not allow it."""
    try:
        CLEAR_REFS.write_text("5")
    except OSError:
        return False
    return True


class TreePeaks:
    """Peak resident memory of named process trees (a process and all its descendants),
    sampled every ``interval`` seconds in a thread: for the components of an Airflow stack,
    whose supervisors fork task and trigger runners.

    ``with TreePeaks({"scheduler": pid, ...}) as peaks: ...`` then ``peaks.mib``.
    """

    def __init__(self, pids: dict[str, int], interval: float = 0.5) -> None:
        import threading

        self.pids = pids
        self.interval = interval
        self.mib: dict[str, float] = dict.fromkeys(pids, 0.0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample_until_stopped, daemon=True)

    def _tree_mib(self, pid: int) -> float:
        import psutil

        try:
            root = psutil.Process(pid)
            tree = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return 0.0
        total = 0
        for process in tree:
            with contextlib.suppress(psutil.NoSuchProcess):  # ended since the listing
                total += process.memory_info().rss
        return total / 2**20

    def _sample_until_stopped(self) -> None:
        while not self._stop.is_set():
            for name, pid in self.pids.items():
                self.mib[name] = max(self.mib[name], self._tree_mib(pid))
            self._stop.wait(self.interval)

    def __enter__(self) -> TreePeaks:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
