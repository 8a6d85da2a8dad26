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


def common_parser(description: str, quick_help: str, gpu_help: str = "require the CuPy backend"):
    """ArgumentParser with the options every GPU-check benchmark takes: --quick, --gpu, --out, --repeat."""
    import argparse

    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--quick", action="store_true", help=quick_help)
    ap.add_argument("--gpu", action="store_true", help=gpu_help)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results"), help="output folder")
    ap.add_argument("--repeat", type=int, default=None, help="timed repeats (best is reported)")
    return ap


def use_gpu(opt) -> bool:
    """CuPy is timed when --gpu is given (a clear error if it cannot be used) or a GPU is usable."""
    from gpumatch.backend import get_backend, gpu_available

    if opt.gpu:
        get_backend("cupy")
        return True
    return gpu_available()


class Recorder:
    """Collects log lines and a JSON report; ``save()`` writes ``<out>/<tag>.json`` and ``.log``."""

    def __init__(self, name: str, opt, gpu: bool, **fields):
        import json

        self._json = json
        self.tag = f"bench_{name}{'_quick' if opt.quick else ''}_{'gpu' if gpu else 'cpu'}"
        self.out = Path(opt.out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.lines: list[str] = []
        self.report = {"benchmark": name, "quick": opt.quick, "machine": machine_info(), **fields,
                       "workloads": {}}
        self.log(f"machine: {json.dumps(self.report['machine'])}")

    def log(self, msg: str):
        print(msg, flush=True)
        self.lines.append(msg)

    def save(self):
        (self.out / f"{self.tag}.json").write_text(self._json.dumps(self.report, indent=2, default=str))
        (self.out / f"{self.tag}.log").write_text("\n".join(self.lines) + "\n")
        self.log(f"wrote {self.out / self.tag}.json and .log")
