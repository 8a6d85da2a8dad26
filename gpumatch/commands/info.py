"""``gpumatch info``: versions, the backend that would be used, GPU name and memory."""
from __future__ import annotations

import platform


def register(sub):
    p = sub.add_parser("info", help="print versions, the chosen backend and the GPU (if any)",
                       description="Print gpumatch, Python and library versions, the backend "
                                   "'auto' resolves to here, and the GPU's name and memory.")
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    import numpy
    import scipy

    import gpumatch
    from gpumatch.backend import get_backend, gpu_info, kernel_dir

    print(f"gpumatch {gpumatch.__version__}")
    print(f"python   {platform.python_version()} ({platform.machine()})")
    print(f"numpy    {numpy.__version__}")
    print(f"scipy    {scipy.__version__}")
    try:
        import astropy

        print(f"astropy  {astropy.__version__}")
    except ImportError:
        print("astropy  not installed")
    backend = get_backend(getattr(args, "backend", None))
    print(f"backend  {backend.describe()}")
    info = gpu_info()
    if info:
        print(f"gpu      {info['name']}, {info['memory_gib']} GiB, compute {info['compute_capability']}, "
              f"CuPy {info['cupy']}")
    else:
        print("gpu      none usable")
    print(f"kernels  {kernel_dir()}")
    return 0
