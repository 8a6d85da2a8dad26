"""Array backend selection (NumPy or CuPy) and CUDA kernel loading.

The backend is chosen once per call site: ``get_backend("auto"|"numpy"|"cupy")``.
``auto`` (the default, overridable by the ``GPUMATCH_BACKEND`` environment variable)
picks CuPy when a CUDA device is usable and NumPy otherwise.  A forced ``cupy``
without a usable GPU raises :class:`BackendError` with the reason.

Kernels live in ``kernels/*.cu`` at the top of the source tree; in an installed
wheel the same files are the package data of ``gpumatch._kernels``.  They are
compiled by CuPy's ``RawModule`` once per (file, options) and cached.
``--fmad=false`` is the default compile option: it forbids fused multiply-add
contraction so that float arithmetic in a kernel rounds exactly like the NumPy
reference written with the same operation order.
"""
from __future__ import annotations

import functools
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

BACKENDS = ("auto", "numpy", "cupy")
ENV_VAR = "GPUMATCH_BACKEND"
DEFAULT_NVCC_OPTIONS = ("--std=c++14", "--fmad=false")


class BackendError(RuntimeError):
    """A requested backend cannot be used here."""


@dataclass(frozen=True)
class Backend:
    """The chosen executor: ``name`` is 'numpy' or 'cupy'; ``xp`` the array module."""

    name: str
    xp: Any = field(repr=False)
    reason: str = ""

    @property
    def is_gpu(self) -> bool:
        return self.name == "cupy"

    def asarray(self, a, dtype=None):
        """Copy/move ``a`` to this backend's memory."""
        return self.xp.asarray(a, dtype=dtype)

    def to_host(self, a):
        """Return ``a`` as a NumPy array (no copy when already on the host)."""
        return to_host(a)

    def describe(self) -> str:
        return f"{self.name} ({self.reason})" if self.reason else self.name


def to_host(a):
    """NumPy view/copy of a NumPy or CuPy array (scalars pass through)."""
    if hasattr(a, "get") and type(a).__module__.startswith("cupy"):
        return a.get()
    return np.asarray(a) if not np.isscalar(a) else a


def array_module(*arrays):
    """The array namespace (numpy or cupy) of the given arrays."""
    for a in arrays:
        if type(a).__module__.startswith("cupy"):
            import cupy

            return cupy
    return np


@functools.lru_cache(maxsize=1)
def _cupy_status() -> tuple[bool, str]:
    """(usable, reason) for CuPy with at least one CUDA device."""
    try:
        import cupy
    except Exception as exc:  # ImportError, or a broken CUDA install
        return False, f"CuPy not importable: {exc.__class__.__name__}: {exc}"
    try:
        n = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:
        return False, f"no CUDA device: {exc}"
    if n < 1:
        return False, "no CUDA device"
    try:
        cupy.asarray([1.0]).sum().get()  # a real round trip proves the driver works
    except Exception as exc:
        return False, f"CUDA device unusable: {exc}"
    return True, f"CuPy {cupy.__version__}, {n} CUDA device(s)"


def gpu_available() -> bool:
    return _cupy_status()[0]


def get_backend(name: str | None = None) -> Backend:
    """Resolve a backend name ('auto', 'numpy', 'cupy'; None reads GPUMATCH_BACKEND)."""
    if isinstance(name, Backend):
        return name
    requested = (name or os.environ.get(ENV_VAR) or "auto").strip().lower()
    if requested not in BACKENDS:
        raise BackendError(f"unknown backend {requested!r}: choose one of {', '.join(BACKENDS)}")
    if requested == "numpy":
        return Backend("numpy", np, "forced")
    ok, why = _cupy_status()
    if requested == "cupy":
        if not ok:
            raise BackendError(f"backend 'cupy' was requested but cannot be used: {why}")
        import cupy

        return Backend("cupy", cupy, "forced; " + why)
    if ok:
        import cupy

        return Backend("cupy", cupy, "auto: " + why)
    return Backend("numpy", np, "auto: " + why)


def gpu_info() -> dict | None:
    """Name, memory (GiB) and compute capability of device 0, or None without a GPU."""
    if not gpu_available():
        return None
    import cupy

    props = cupy.cuda.runtime.getDeviceProperties(0)
    name = props["name"]
    name = name.decode() if isinstance(name, bytes) else name
    return {
        "name": name,
        "memory_gib": round(props["totalGlobalMem"] / 2**30, 2),
        "compute_capability": f"{props['major']}.{props['minor']}",
        "cuda_runtime": cupy.cuda.runtime.runtimeGetVersion(),
        "cupy": cupy.__version__,
    }


def kernel_dir() -> Path:
    """Folder holding the ``*.cu`` sources: the installed package data, else the checkout."""
    try:
        from importlib.resources import files

        p = Path(str(files("gpumatch._kernels")))
        if any(p.glob("*.cu")):
            return p
    except Exception:
        pass
    p = Path(__file__).resolve().parent.parent / "kernels"
    if any(p.glob("*.cu")):
        return p
    raise FileNotFoundError("gpumatch CUDA kernel sources (kernels/*.cu) not found")


def kernel_source(filename: str) -> str:
    return (kernel_dir() / filename).read_text()


def _compile_options(kdir: Path, options: tuple[str, ...]) -> tuple[str, ...]:
    """``options`` plus the include path and a digest of the ``*.cuh`` headers: CuPy's
    on-disk kernel cache is keyed by the ``.cu`` text and the options only, so without the
    digest an edited header would keep loading the stale compiled kernel."""
    digest = hashlib.sha256()
    for h in sorted(kdir.glob("*.cuh")):
        digest.update(h.name.encode() + b"\0" + h.read_bytes())
    return tuple(options) + (f"-I{kdir}", f"-DGPUMATCH_HEADERS_SHA256={digest.hexdigest()[:16]}")


@functools.lru_cache(maxsize=None)
def _module(filename: str, options: tuple[str, ...]):
    import cupy

    kdir = kernel_dir()
    return cupy.RawModule(
        code=(kdir / filename).read_text(),
        options=_compile_options(kdir, options),
        name_expressions=None,
    )


def load_kernel(filename: str, name: str, options: tuple[str, ...] = DEFAULT_NVCC_OPTIONS):
    """Compiled CUDA function ``name`` from ``kernels/filename`` (compiled once, cached)."""
    return _module(filename, tuple(options)).get_function(name)
