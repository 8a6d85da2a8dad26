"""What every benchmark records with its timings: the machine, the commit and the library versions."""
from __future__ import annotations

import os
import platform
import socket
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def git_state() -> tuple[str, bool | None]:
    """(HEAD commit, dirty) -- dirty means tracked changes outside bench/results."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".",
                                 ":(exclude)bench/results"], cwd=ROOT, capture_output=True, text=True,
                                check=True).stdout.strip()
        return head, bool(status)
    except Exception:
        return "unknown", None


def commit() -> dict:
    head, dirty = git_state()
    return {"commit": head, "dirty": dirty}


def versions() -> dict:
    out = {"python": platform.python_version()}
    for mod in ("gpumatch", "numpy", "scipy", "pandas", "astropy", "sklearn", "cupy"):
        try:
            out[mod] = __import__(mod).__version__
        except Exception:
            out[mod] = None
    return out


def machine_info() -> dict:
    """Host, CPU model and count, memory (GiB), load average, GPU (name, memory), commit, versions."""
    from gpumatch.backend import gpu_info

    cpu = platform.processor() or platform.machine()
    mem_gib = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem_gib = round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return {"host": socket.gethostname(), "platform": platform.platform(), "cpu": cpu,
            "cpu_count": os.cpu_count(), "memory_gib": mem_gib,
            "load_average_1_5_15": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
            "gpu": gpu_info(), **commit(), "versions": versions()}
