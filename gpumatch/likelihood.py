"""Photometric and astrometric likelihood ratios of a pair (Wilson & Naylor 2018, eqs 37-38).

Both are base-10 logarithms, as the paper defines them:

* ``eta = log10( c(m_a, m_b) / (f_a(m_a) f_b(m_b)) )``                       (eq 37)
* ``xi  = log10( N_c G / (N_a N_b) )``                                        (eq 38)

with c per mag^2, f per mag, G per arcsec^2 and the densities per arcsec^2, so both
are dimensionless.  ``eta + xi`` is log10 of the pair weight
``r_ab = N_c G c / (N_a f_a N_b f_b)`` of the assignment step (the ratio of the
"a and b matched" to the "both unmatched" hypothesis); :func:`ln_pair_weight` gives it
as a natural log, the form :mod:`gpumatch.assign` takes.  ``eta + xi = 0`` is even odds.

Missing magnitudes follow :class:`gpumatch.photometry.Photometry` (marginalised, so
``eta = log10(c_b(m_b) / f_b(m_b))`` when m_a is missing and 0 when both are); with
photometry off ``eta = 0``.  ``N_c = 0`` or ``G = 0`` gives ``xi = -inf`` (the pair is
impossible); a zero field density gives ``+inf`` (the unmatched hypothesis is).
"""
from __future__ import annotations

import numpy as np

from .backend import array_module
from .photometry import Photometry

LN10 = float(np.log(10.0))


def eta(phot: Photometry, mag_a, mag_b) -> np.ndarray:
    """Photometric likelihood ratio (eq 37), log10, for magnitudes in mag (broadcast)."""
    c = phot.c_ab(mag_a, mag_b)
    fa = phot.f_a_of(mag_a)
    fb = phot.f_b_of(mag_b)
    with np.errstate(divide="ignore"):
        return np.log10(c) - np.log10(fa) - np.log10(fb)


def xi(G_per_arcsec2, N_c: float, N_a: float, N_b: float):
    """Astrometric likelihood ratio (eq 38), log10; G and densities per arcsec^2.
    Works on NumPy or CuPy arrays (returns the same kind)."""
    xp = array_module(G_per_arcsec2)
    G = xp.asarray(G_per_arcsec2, dtype=xp.float64)
    with np.errstate(divide="ignore"):
        const = np.log10(float(N_c)) - np.log10(float(N_a)) - np.log10(float(N_b))
        return xp.log10(G) + const


def ln_pair_weight(phot: Photometry, G_per_arcsec2, mag_a, mag_b) -> np.ndarray:
    """``ln r_ab = ln(10) (eta + xi)`` for each pair (host arrays)."""
    x = np.asarray(xi(np.asarray(G_per_arcsec2, dtype=np.float64), phot.N_c, phot.N_a, phot.N_b))
    return LN10 * (eta(phot, mag_a, mag_b) + x)


def pair_ratios(phot: Photometry, islands, mag_a=None, mag_b=None) -> tuple[np.ndarray, np.ndarray]:
    """(eta, xi) for every overlap pair of an :class:`~gpumatch.islands.IslandSet`;
    ``mag_a``/``mag_b`` are the full per-row magnitude arrays (None: photometry off)."""
    x = np.asarray(xi(islands.G_per_arcsec2, phot.N_c, phot.N_a, phot.N_b))
    if mag_a is None or mag_b is None or not phot.use_photometry:
        return np.zeros(len(x)), x
    return eta(phot, np.asarray(mag_a)[islands.ia], np.asarray(mag_b)[islands.ib]), x
