"""Differential source counts: a power law fitted to a catalogue, extrapolated below its limit.

The perturbation term of the AUF needs the density of sources fainter than each
central source, including those too faint to be in the catalogue.  Without an
external model (no web service here), the counts come from the catalogue itself:

    dN/dm = 10 ** (log10_norm + slope * (m - m_ref))   sources per arcsec^2 per mag

fitted by weighted least squares to log10 of the histogram of magnitudes over the
well-populated range brighter than the completeness turnover (the most populated
bin minus ``turnover_margin`` mag, as macauff does), and used unchanged fainter
than that.  Any object with ``differential(m)`` and ``cumulative(m)`` methods
(same units) can stand in for :class:`PowerLawCounts`; :class:`CallableCounts`
wraps a user function.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

LN10 = math.log(10.0)


@dataclass(frozen=True)
class PowerLawCounts:
    """``dN/dm = 10**(log10_norm + slope (m - m_ref))`` per arcsec^2 per mag.

    ``m_complete``: the magnitude to which the catalogue is taken as complete (the
    fit's faint end), used as the default normalising magnitude of local densities.
    """

    log10_norm: float
    slope: float
    m_ref: float
    m_complete: float

    def differential(self, m):
        """Sources per arcsec^2 per mag at magnitude ``m``."""
        return 10.0 ** (self.log10_norm + self.slope * (np.asarray(m, dtype=np.float64) - self.m_ref))

    def cumulative(self, m):
        """Sources per arcsec^2 brighter than ``m`` (integral from -inf; needs slope > 0)."""
        if not self.slope > 0:
            raise ValueError("cumulative counts of a power law need a positive slope")
        return self.differential(m) / (self.slope * LN10)


@dataclass(frozen=True)
class CallableCounts:
    """User-supplied differential counts ``fn(m)`` (per arcsec^2 per mag).

    ``cumulative(m)`` integrates ``fn`` from ``m_bright`` (trapezoid rule, 0.001 mag).
    """

    fn: Callable
    m_bright: float
    m_complete: float

    def differential(self, m):
        """Sources per arcsec^2 per mag at magnitude ``m``."""
        return np.asarray(self.fn(np.asarray(m, dtype=np.float64)), dtype=np.float64)

    def cumulative(self, m):
        """Sources per arcsec^2 between ``m_bright`` and ``m`` (trapezoid rule, <= 0.001 mag steps)."""
        from scipy.integrate import trapezoid

        m = np.atleast_1d(np.asarray(m, dtype=np.float64))
        out = np.zeros_like(m)
        for k, mk in enumerate(m):
            if mk > self.m_bright:
                grid = np.linspace(self.m_bright, mk, max(int(math.ceil((mk - self.m_bright) / 1e-3)), 1) + 1)
                out[k] = trapezoid(self.differential(grid), grid)
        return out if out.size > 1 else float(out[0])


def fit_power_law(mags, area_arcsec2: float, bin_width: float = 0.25, m_bright: float | None = None,
                  m_faint: float | None = None, min_count: int = 5,
                  turnover_margin: float = 0.5) -> PowerLawCounts:
    """Fit ``log10 dN/dm`` (per arcsec^2 per mag) to a catalogue's magnitudes.

    ``mags``: magnitudes (NaN ignored); ``area_arcsec2``: the catalogue's area.
    Fit range: ``[m_bright, m_faint]`` (defaults: the brightest bin with at least
    ``min_count`` sources, and the centre of the most populated bin minus
    ``turnover_margin``).  Bins with fewer than ``min_count`` sources are left out;
    each bin is weighted by its Poisson precision (sigma of log10 N = 1/(ln10 sqrt N)).
    """
    m = np.asarray(mags, dtype=np.float64)
    m = m[np.isfinite(m)]
    if m.size < 3 * min_count or not area_arcsec2 > 0:
        raise ValueError(f"too few magnitudes ({m.size}) or bad area to fit source counts")
    lo = math.floor(m.min() / bin_width) * bin_width
    edges = np.arange(lo, m.max() + bin_width * 1.0001, bin_width)
    hist, edges = np.histogram(m, bins=edges)
    mid = 0.5 * (edges[1:] + edges[:-1])
    if m_faint is None:
        m_faint = mid[int(np.argmax(hist))] - turnover_margin
    ok = (hist >= min_count) & (mid <= m_faint)
    if m_bright is not None:
        ok &= mid >= m_bright
    if ok.sum() < 2:
        raise ValueError("fewer than two usable magnitude bins to fit source counts")
    y = np.log10(hist[ok] / (bin_width * area_arcsec2))
    wt = np.sqrt(hist[ok]) * LN10   # 1 / sigma(log10 N)
    m_ref = float(np.round(np.average(mid[ok]), 3))
    a = np.stack([np.ones(ok.sum()), mid[ok] - m_ref], axis=1)
    coef, *_ = np.linalg.lstsq(a * wt[:, None], y * wt, rcond=None)
    return PowerLawCounts(float(coef[0]), float(coef[1]), m_ref, float(m_faint))


__all__ = ["PowerLawCounts", "CallableCounts", "fit_power_law"]
