"""Per-candidate counterpart probabilities P_i and the no-counterpart probability P_0.

For one X-ray source with candidates i (all IR sources within ``candidate_nsigma``
quadrature sigmas) the hypotheses are H_i "candidate i is the counterpart" and
H_0 "none of them is" (the counterpart is fainter than the IR catalogue's
limit or absent).  Field stars form a Poisson process of surface density rho
(per arcsec^2), the counterpart lies at separation phi with the 2-D Gaussian
density ``p(phi) = exp(-phi^2 / (2 sigma^2)) / (2 pi sigma^2)`` (per arcsec^2,
``sigma^2 = sigma_X^2 + sigma_IR^2`` in arcsec^2), and a fraction ``f_lim`` of X-ray
sources have a counterpart in the IR catalogue.  The Poisson factors of the
field stars cancel between hypotheses, leaving (Naylor, Broos & Feigelson 2013;
the notebook's section 5 / Mauerhan et al. 2009 form)::

    T_i = f(K_i) p(phi_i) / rho(K_i)                       (dimensionless)
    P_i = T_i / (sum_j T_j + 1 - f_lim),   P_0 = (1 - f_lim) / (sum_j T_j + 1 - f_lim)

``f`` and ``rho`` are either the fraction of X-ray sources whose counterpart lies
in the candidate's magnitude class and the IR density of that class (the
Bayesian, "binned" form: the ratio of the counterpart and field magnitude
distributions at K_i), or the notebook's cumulative ``f(<=K_i)`` and
``rho(<=K_i)`` ("cumulative").  Both are per-arcsec^2 quantities, as is p(phi),
so T_i is a pure number (the notebook's p(phi) per square radian made every
T_i ~4e10 too large).
"""
from __future__ import annotations

import numpy as np

from .stats import shrunk_density


def p_phi(sep_arcsec, sigma_arcsec) -> np.ndarray:
    """2-D Gaussian separation density (per arcsec^2) at ``sep`` for per-axis ``sigma`` (arcsec)."""
    s2 = np.asarray(sigma_arcsec, dtype=np.float64) ** 2
    d = np.asarray(sep_arcsec, dtype=np.float64)
    return np.exp(-0.5 * d * d / s2) / (2.0 * np.pi * s2)


def normalise(src, T, n_sources: int, f_lim: float):
    """P_i per candidate and (P_0, sum T) per source.

    ``src`` (m,) source number of each candidate (any order), ``T`` (m,) weights.
    Sums run on the host in array order (``np.bincount``), so both backends give
    the same bits.  A source without candidates has P_0 = 1; where the
    denominator is 0 (f_lim = 1 and every T_i = 0) P_0 = 1 and P_i = 0.
    """
    src = np.asarray(src, dtype=np.int64)
    T = np.asarray(T, dtype=np.float64)
    s = np.bincount(src, weights=T, minlength=n_sources)
    denom = s + (1.0 - f_lim)
    ok = denom > 0
    inv = np.where(ok, 1.0 / np.where(ok, denom, 1.0), 0.0)
    p0 = np.where(ok, (1.0 - f_lim) * inv, 1.0)
    return T * inv[src], p0, s


def em_class_fractions(src, cls, ratio, n_sources: int, considered, f0_class,
                       tol: float = 1e-9, max_iter: int = 500):
    """Maximum-likelihood fractions of X-ray sources with a counterpart in each magnitude class.

    The likelihood of source s is ``(1 - F) + F sum_i q_c(i) p(phi_i) / rho_c(i)`` (per
    source, up to factors common to all hypotheses) with ``F = sum_c f_c`` and
    ``q_c = f_c / F``.  Expectation-maximisation: with P_i, P_0 from the current
    ``f_c`` (:func:`normalise`), ``f_c <- sum of P_i over candidates in class c / n``,
    summed over the ``n`` considered sources.  The plain EM map converges slowly
    when the data say little, so it is accelerated with SQUAREM (Varadhan & Roland
    2008, scheme S3), falling back to the plain double step whenever the
    extrapolation leaves the simplex or lowers the likelihood.  The start
    ``f0_class`` (the null-trial excess) only sets where it begins.

    ``src`` (m,) source of each candidate, ``cls`` (m,) its class, ``ratio`` (m,)
    ``p(phi) / rho_class`` (dimensionless), ``considered`` (n_sources,) bool.
    Returns (f_class, EM-map evaluations, converged).
    """
    src = np.asarray(src, dtype=np.int64)
    cls = np.asarray(cls, dtype=np.int64)
    ratio = np.asarray(ratio, dtype=np.float64)
    considered = np.asarray(considered, dtype=bool)
    ncls = len(f0_class)
    use = considered[src]
    n = max(int(np.sum(considered)), 1)

    def step(f):
        P, _, _ = normalise(src, f[cls] * ratio, n_sources, float(f.sum()))
        return np.bincount(cls[use], weights=P[use], minlength=ncls) / n

    def loglik(f):
        s = np.bincount(src, weights=f[cls] * ratio, minlength=n_sources)[considered]
        return float(np.sum(np.log((1.0 - f.sum()) + s)))

    f = np.clip(np.asarray(f0_class, dtype=np.float64), 0.0, None)
    if not f.sum() > 0:  # no excess at all: start from the field's magnitude mix at F = 0.05
        f = 0.05 * np.bincount(cls, minlength=ncls) / max(len(cls), 1)
    if f.sum() >= 1.0:
        f = f * (0.99 / f.sum())
    evals = 0
    for _ in range(max_iter):
        f1 = step(f)
        f2 = step(f1)
        evals += 2
        r = f1 - f
        v = f2 - f1 - r
        nv = np.linalg.norm(v)
        new = f2
        if nv > 0:
            alpha = min(-1.0, -np.linalg.norm(r) / nv)
            fx = f - 2.0 * alpha * r + alpha * alpha * v
            if np.all(fx >= 0) and fx.sum() < 1.0:
                fx = step(fx)
                evals += 1
                if loglik(fx) >= loglik(f2):
                    new = fx
        done = np.max(np.abs(new - f)) < tol
        f = new
        if done:
            return f, evals, True
    return f, evals, False


def local_rho(counts, area, n_ir_class, rho_mean: float, prior_count: float,
              src, cls, per_class: bool = True):
    """Local IR surface densities (per arcsec^2) of each X-ray source and of each candidate's class.

    ``counts`` (n_sources, n_classes): IR sources of each magnitude class counted
    about each X-ray source (in the annulus of area ``area`` (n_sources,) arcsec^2
    that lies on the footprint); ``n_ir_class`` the catalogue's IR sources per class,
    ``rho_mean`` all of them over the surveyed area (per arcsec^2); ``src``, ``cls``
    (m,) the source and class of each candidate.  Two shrinkage steps
    (:func:`.stats.shrunk_density`, ``n0 = prior_count`` pseudo-sources each):

    1. all classes: ``rho_i = (n_i + n0) / (A_i + n0 / rho_mean)`` -- the local
       density where the annulus holds many sources, the global one where it holds
       few or lies off the footprint;
    2. per class (``per_class=True``): prior mean ``q_c rho_i`` with ``q_c`` the
       class's global fraction of IR sources (the global magnitude distribution
       scaled to the local density), ``rho_ci = (n_ci + n0) / (A_i + n0 / (q_c rho_i))``.
       Well-populated classes (usually the faint ones, where crowding changes the
       completeness) follow their own local counts; sparse ones (bright) the scaled
       global shape.  ``per_class=False``: ``rho_ci = q_c rho_i`` (one local factor
       for all classes; exact when the magnitude distribution has the same shape
       everywhere -- a pure power law shifted by extinction does).

    Returns ``(rho_i (n_sources,), rho_ci (m,))``; every value is positive for a
    class that holds IR sources (the only classes candidates can have).
    """
    counts = np.asarray(counts, dtype=np.float64)
    n_ir_class = np.asarray(n_ir_class, dtype=np.float64)
    q = n_ir_class / n_ir_class.sum()
    rho_i = shrunk_density(counts.sum(axis=1), area, rho_mean, prior_count)
    src = np.asarray(src, dtype=np.int64)
    cls = np.asarray(cls, dtype=np.int64)
    prior = q[cls] * rho_i[src]
    if not per_class:
        return rho_i, prior
    return rho_i, shrunk_density(counts[src, cls], np.asarray(area, dtype=np.float64)[src], prior,
                                 prior_count)
