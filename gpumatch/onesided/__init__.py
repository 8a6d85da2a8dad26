"""One-sided counterpart probabilities (the notebook's method; Mauerhan et al. 2009,
Naylor et al. 2013): quadrature match, shifted null trials, f(K), rho(K), P_i, P_0.

:func:`run_onesided` (in :mod:`.core`) is the science core; filters are applied by
the caller (:mod:`gpumatch.filters`).
"""
from .core import NOTEBOOK_SWEEP_RADII, PRESETS, OneSidedOptions, OneSidedResult, run_onesided

__all__ = ["NOTEBOOK_SWEEP_RADII", "PRESETS", "OneSidedOptions", "OneSidedResult", "run_onesided"]
