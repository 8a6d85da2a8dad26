"""Shared fixtures: every backend-dependent test takes the ``backend`` fixture,
which runs it on NumPy always and on CuPy where a GPU is usable (skipped with the
reason otherwise)."""
import os

import numpy as np
import pytest

from gpumatch.backend import _cupy_status, get_backend

os.environ.setdefault("GPUMATCH_PROGRESS", "0")


@pytest.fixture(params=["numpy", pytest.param("cupy", marks=pytest.mark.gpu)])
def backend(request):
    if request.param == "cupy":
        ok, why = _cupy_status()
        if not ok:
            pytest.skip(f"CuPy backend not testable here: {why}")
    return get_backend(request.param)


@pytest.fixture
def gpu_backend():
    """The CuPy backend, for tests that compare it with NumPy (skipped without a GPU)."""
    ok, why = _cupy_status()
    if not ok:
        pytest.skip(f"CuPy backend not testable here: {why}")
    return get_backend("cupy")


@pytest.fixture
def rng():
    return np.random.default_rng(20241121)
