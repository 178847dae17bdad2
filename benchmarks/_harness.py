"""Shared benchmark helpers: run a command, measure wall time and peak RSS.

Peak RSS is sampled over the whole process tree (the Python driver plus the
JVM it launches), every 0.2 s, because the driver JVM is where Spark's driver
memory lives.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]


def portable(text: object) -> str:
    """``text`` with this machine's paths made relative: inside the checkout to the
    repository root, beside it (``../shared``) to ``../``. Results files are read
    on other machines."""
    return str(text).replace(str(REPO) + "/", "").replace(str(REPO.parent) + "/", "../")


def tree_rss(proc: psutil.Process) -> int:
    """Resident bytes of a process and all its descendants (0 if it is gone)."""
    try:
        procs = [proc, *proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    total = 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.NoSuchProcess:
            continue
    return total


def run_measured(
    cmd: Sequence[str], env: dict[str, str] | None = None, timeout: float = 3600
) -> dict[str, float]:
    """Run ``cmd``; return seconds and peak tree RSS in MB. Raises on failure."""
    start = time.monotonic()
    proc = subprocess.Popen(
        list(cmd),
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    ps, peak = psutil.Process(proc.pid), 0
    while proc.poll() is None:
        peak = max(peak, tree_rss(ps))
        if time.monotonic() - start > timeout:
            proc.kill()
            raise TimeoutError(f"{cmd[0]} ran past {timeout} s")
        time.sleep(0.2)
    out, err = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}: {err[-2000:]}")
    return {
        "seconds": round(time.monotonic() - start, 2),
        "peak_rss_mb": round(peak / 2**20, 1),
        "stdout_tail": out[-300:],
    }


def machine() -> dict[str, object]:
    """What the figures were measured on (the machine is often shared)."""
    return {
        "cpus": os.cpu_count(),
        "loadavg_1m_at_end": round(os.getloadavg()[0], 2),
        "mem_total_gb": round(psutil.virtual_memory().total / 2**30, 1),
    }
