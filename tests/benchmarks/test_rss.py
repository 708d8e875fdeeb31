"""benchmarks/rss.py: the peak memory of a process tree, children included."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

from benchmarks.rss import TreePeaks

# A parent that starts a child holding 200 MiB for a second, as a triggerer supervisor starts
# its trigger runner.
PARENT = textwrap.dedent(
    """
    import subprocess, sys
    child = "b = bytearray(200 * 2**20); import time; time.sleep(1.5)"
    subprocess.run([sys.executable, "-c", child], check=True)
    """
)


def test_the_peak_counts_the_memory_of_child_processes():
    parent = subprocess.Popen([sys.executable, "-c", PARENT])
    with TreePeaks({"parent": parent.pid}, interval=0.1) as peaks:
        parent.wait(timeout=30)
        time.sleep(0.2)
    assert peaks.mib["parent"] >= 200
    assert peaks.mib["parent"] < 400


def test_a_process_that_is_gone_counts_nothing():
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    with TreePeaks({"gone": gone.pid}, interval=0.05) as peaks:
        time.sleep(0.2)
    assert peaks.mib == {"gone": 0.0}
