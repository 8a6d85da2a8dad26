"""Compile a kernel header's ``__host__ __device__`` per-thread functions with g++
and call them from ctypes, so kernel logic is tested on the CPU in CI.

Usage: ``lib = build(header, c_source, tmp_path)``; ``c_source`` is plain C++ that
includes the header and defines ``extern "C"`` functions looping over thread indices.
"""
import ctypes
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from gpumatch.backend import kernel_dir


def build(c_source: str, tmp_path: Path, name: str = "hostkernel"):
    gxx = shutil.which("g++")
    if gxx is None:
        pytest.skip("g++ not available to compile kernel headers")
    src = tmp_path / f"{name}.cpp"
    lib = tmp_path / f"lib{name}.so"
    src.write_text('#define GPUMATCH_HD\n#include <cmath>\n' + c_source)
    # -ffp-contract=off mirrors nvcc --fmad=false
    subprocess.run([gxx, "-O2", "-ffp-contract=off", "-shared", "-fPIC", f"-I{kernel_dir()}",
                    "-o", str(lib), str(src)], check=True, capture_output=True, text=True)
    return ctypes.CDLL(str(lib))


def ptr(a: np.ndarray):
    return a.ctypes.data_as(ctypes.c_void_p)
