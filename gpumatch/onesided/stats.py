"""Small statistics of the one-sided method: magnitude classes, trial statistics, monotone fits.

Magnitude classes
-----------------
Ks values are sorted into ``nb`` left-inclusive bins ``[edges[k], edges[k+1])``
(mag) plus three classes that are counted apart, never dropped:
``nb`` = brighter than the first edge, ``nb + 1`` = at or fainter than the last
edge, ``nb + 2`` = Ks missing.  :data:`ORDER` puts them in increasing magnitude
for cumulative sums, treating "missing" as fainter than everything.
"""
from __future__ import annotations

import numpy as np

BELOW, ABOVE, MISSING = 0, 1, 2  # offsets after the nb bins


def class_index(ks, edges) -> np.ndarray:
    """Class of each magnitude: bin number, or nb (below), nb+1 (at/above), nb+2 (missing)."""
    ks = np.asarray(ks, dtype=np.float64)
    edges = np.asarray(edges, dtype=np.float64)
    nb = len(edges) - 1
    k = np.searchsorted(edges, ks, side="right") - 1  # left-inclusive bins
    out = np.where(k < 0, nb + BELOW, np.where(k >= nb, nb + ABOVE, k))
    return np.where(np.isfinite(ks), out, nb + MISSING).astype(np.int64)


def class_order(nb: int) -> np.ndarray:
    """Class numbers in increasing magnitude: below, bins 0..nb-1, above, missing."""
    return np.concatenate([[nb + BELOW], np.arange(nb), [nb + ABOVE, nb + MISSING]]).astype(np.int64)


def class_labels(edges) -> tuple[list, np.ndarray, np.ndarray, list]:
    """(labels, ks_lo, ks_hi, kinds) for the nb + 3 classes in class-number order."""
    edges = np.asarray(edges, dtype=np.float64)
    nb = len(edges) - 1
    labels = [f"{edges[k]:.1f}-{edges[k + 1]:.1f}" for k in range(nb)]
    labels += [f"Ks < {edges[0]:g}", f"Ks >= {edges[-1]:g}", "Ks missing"]
    lo = np.concatenate([edges[:-1], [-np.inf, edges[-1], np.nan]])
    hi = np.concatenate([edges[1:], [edges[0], np.inf, np.nan]])
    kinds = ["bin"] * nb + ["below", "above", "missing"]
    return labels, lo, hi, kinds


def trial_stats(trials: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation (ddof=1, as the notebook's text says) over axis 0."""
    trials = np.asarray(trials, dtype=np.float64)
    mean = trials.mean(axis=0)
    std = trials.std(axis=0, ddof=1) if trials.shape[0] > 1 else np.full(trials.shape[1:], np.nan)
    return mean, std


def significance(n_real, rand_mean, rand_std, n_trials: int) -> np.ndarray:
    """Excess significance that stays honest for small counts (dimensionless, ~N(0,1) under the null).

    ``z = [2 sqrt(n + 3/8) - 2 sqrt(mu + 3/8)] / sqrt(max(1, v / (mu + 3/8)) (1 + 1/T))``

    with ``n`` the real count, ``mu`` and ``v = rand_std^2`` the trials' mean and
    variance and ``T`` the number of trials.  The Anscombe transform makes a
    Poisson count's variance ~1 (and < 1 for tiny means, so the floor of 1 is
    conservative); ``v / (mu + 3/8)`` takes over when the trials scatter more than
    Poisson; ``1 + 1/T`` adds the uncertainty of the trial mean.  For large counts
    ``z ~ (n - mu) / sqrt(max(mu, v) (1 + 1/T))``.  The notebook's
    ``excess / rand_std`` is reported next to it as ``significance_notebook``; it
    is unusable in bins with a handful of matches (e.g. one real match over a
    trial mean of 0.03 reads as 5.4 sigma).
    """
    n = np.asarray(n_real, dtype=np.float64)
    mu = np.asarray(rand_mean, dtype=np.float64)
    v = np.asarray(rand_std, dtype=np.float64) ** 2
    v = np.where(np.isfinite(v), v, 0.0)
    scale = np.maximum(1.0, v / (mu + 0.375)) * (1.0 + 1.0 / max(int(n_trials), 1))
    return (2.0 * np.sqrt(n + 0.375) - 2.0 * np.sqrt(mu + 0.375)) / np.sqrt(scale)


def significance_notebook(excess, rand_std) -> np.ndarray:
    """The notebook's ``excess / rand_std`` (NaN where the trials do not scatter)."""
    excess = np.asarray(excess, dtype=np.float64)
    s = np.asarray(rand_std, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(s > 0, excess / np.where(s > 0, s, 1.0), np.nan)


def isotonic_increasing(y, w=None) -> np.ndarray:
    """Least-squares non-decreasing fit to ``y`` (pool-adjacent-violators), weights ``w``."""
    y = np.asarray(y, dtype=np.float64)
    w = np.ones_like(y) if w is None else np.asarray(w, dtype=np.float64)
    vals, wts, sizes = [], [], []
    for yi, wi in zip(y, w):
        vals.append(yi)
        wts.append(wi)
        sizes.append(1)
        while len(vals) > 1 and vals[-2] > vals[-1]:
            v2, w2, s2 = vals.pop(), wts.pop(), sizes.pop()
            wsum = wts[-1] + w2
            vals[-1] = (vals[-1] * wts[-1] + v2 * w2) / wsum
            wts[-1] = wsum
            sizes[-1] += s2
    return np.repeat(np.asarray(vals), sizes)


def shrunk_density(n, area, prior_density, prior_count: float) -> np.ndarray:
    """Surface density from ``n`` sources in ``area``, shrunk towards ``prior_density``.

    The posterior mean of a Poisson rate under a Gamma prior of mean
    ``prior_density`` (per arcsec^2) and shape ``prior_count`` (pseudo-sources)::

        rho = (n + n0) / (area + n0 / prior_density)

    Many counts (``n >> n0``): ``n / area``; few counts or little area: the prior;
    no area at all (a position off the footprint): exactly the prior.  Positive
    whenever ``prior_density > 0`` and ``n0 > 0``, and its relative noise is at
    most ``sqrt(n) / (n + n0) <= 1 / (2 sqrt(n0))``.  ``n`` counts, ``area`` arcsec^2,
    result per arcsec^2; arrays broadcast.
    """
    n = np.asarray(n, dtype=np.float64)
    area = np.asarray(area, dtype=np.float64)
    prior = np.asarray(prior_density, dtype=np.float64)
    n0 = float(prior_count)
    if not n0 > 0:
        raise ValueError(f"prior_count must be positive, got {prior_count}")
    return (n + n0) / (np.maximum(area, 0.0) + n0 / prior)
