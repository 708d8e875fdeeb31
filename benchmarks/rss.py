"""Resident memory of the current process, for the benchmarks' worker subprocesses (Linux).

Why not ``resource.getrusage(RUSAGE_SELF).ru_maxrss``: Linux carries the parent's peak across
``exec`` into the child's ``ru_maxrss``, so a worker started by a parent that holds a million
leads reports the parent's peak, whatever the worker does. ``VmHWM`` in ``/proc/self/status``
is the high-water mark of this process's own memory, and writing ``5`` to
``/proc/self/clear_refs`` resets it to the current RSS, so a measurement can leave out what
was resident before it started (the input data, imports).
"""

from __future__ import annotations

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
