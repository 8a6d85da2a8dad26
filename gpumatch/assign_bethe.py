"""Approximate assignment for islands too wide for the exact programme (host, NumPy/SciPy).

Used for islands whose smaller side exceeds ``max_small_side``; such islands are flagged
in the result, never dropped.

* **Evidence and marginals: the Bethe approximation**, from loopy belief propagation on the
  matching model (one binary variable per pair, an "at most one" constraint per source).
  With messages ``mu[a->b] = r_ab / (1 + sum_{b' != b} mu[b'->a])`` (and the mirror image),
  iterated in log space with damping, the pair beliefs are
  ``P(a~b) = mu[a->b] / (1 + sum_{a'} mu[a'->b])`` (averaged with the mirror formula) and
  ``ln K`` is minus the Bethe free energy
  ``sum p ln r - sum_sources [sum p ln p + p0 ln p0] + sum_pairs [p ln p + (1-p) ln(1-p)]``.
  It is exact on islands whose pair graph is a forest (one X-ray source with many
  candidates, chains); on loopy islands it is an approximation (for permanents the Bethe
  value is a lower bound of K, so probabilities derived from it can be slightly high).
* **Most probable hypothesis: exact**, as a maximum-weight matching on ``ln r > 0`` solved by
  :func:`scipy.optimize.linear_sum_assignment` on the (n_a, n_b) matrix ``max(ln r, 0)``;
  assigned pairs with ``ln r <= 0`` are dropped (they weigh the same as leaving both
  unmatched).  Among equal-weight optima, the one SciPy's solver returns is kept.
"""
from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

BP_MAX_ITER = 500
BP_TOL = 1e-10
BP_DAMPING = 0.5


def _seg_lse_excl(x, seg, nseg):
    """For each element e of segment seg[e]: ln(1 + sum_{e' in seg, e' != e} exp(x[e'])),
    without cancellation (the segment's largest term is excluded by a separate sum)."""
    n = len(x)
    idx = np.arange(n)
    M = np.zeros(nseg)                       # the 1 of "1 + sum" is a term exp(0)
    np.maximum.at(M, seg, x)
    # first index of a maximal element of each segment (if larger than the 0 term)
    ismax = (x == M[seg]) & (x > 0)
    first = np.full(nseg, n)
    np.minimum.at(first, seg[ismax], idx[ismax])
    is_top = first[seg] == idx
    tot = np.exp(-M) + np.bincount(seg, np.exp(x - M[seg]), minlength=nseg)
    # excluding a non-top element: tot - its term >= tot / 2, so no cancellation
    excl = np.log(np.maximum(tot[seg] - np.exp(x - M[seg]), 0.0)) + M[seg]
    # excluding the top element: sum the rest directly around their own maximum
    y = np.where(is_top, -np.inf, x)
    M2 = np.zeros(nseg)
    np.maximum.at(M2, seg, y)
    tot2 = np.exp(-M2) + np.bincount(seg, np.exp(y - M2[seg]), minlength=nseg)
    return np.where(is_top, np.log(tot2[seg]) + M2[seg], excl)


def _seg_lse1(x, seg, nseg):
    """ln(1 + sum over each segment of exp(x))."""
    M = np.zeros(nseg)
    np.maximum.at(M, seg, x)
    return np.log(np.exp(-M) + np.bincount(seg, np.exp(x - M[seg]), minlength=nseg)) + M


def bethe(ea, eb, w, na, nb, max_iter=BP_MAX_ITER, tol=BP_TOL, damping=BP_DAMPING):
    """Loopy BP / Bethe approximation for one island (or several disjoint ones).

    ea, eb : (E,) local source numbers of each pair (0..na-1, 0..nb-1); w : (E,) ln r (finite).
    Returns (logK, marg (E,), pnone_a (na,), pnone_b (nb,), converged, iterations).
    """
    ea = np.asarray(ea, dtype=np.int64)
    eb = np.asarray(eb, dtype=np.int64)
    w = np.asarray(w, dtype=np.float64)
    la = w.copy()   # ln mu[a->b]
    lb = w.copy()   # ln mu[b->a]
    converged, it = False, 0
    for it in range(1, max_iter + 1):
        new_la = w - _seg_lse_excl(lb, ea, na)
        new_lb = w - _seg_lse_excl(la, eb, nb)
        delta = max(np.max(np.abs(new_la - la), initial=0.0), np.max(np.abs(new_lb - lb), initial=0.0))
        la = damping * la + (1.0 - damping) * new_la
        lb = damping * lb + (1.0 - damping) * new_lb
        if delta < tol:
            converged = True
            break
    Za = _seg_lse1(lb, ea, na)   # ln(1 + sum_b mu[b->a])
    Zb = _seg_lse1(la, eb, nb)
    marg = 0.5 * (np.exp(la - Zb[eb]) + np.exp(lb - Za[ea]))
    pa = np.clip(1.0 - np.bincount(ea, marg, minlength=na), 0.0, 1.0)
    pb = np.clip(1.0 - np.bincount(eb, marg, minlength=nb), 0.0, 1.0)

    def xlogx(p):
        return np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0)

    energy = np.sum(marg * w)
    node = xlogx(marg).sum() * 2 + xlogx(pa).sum() + xlogx(pb).sum()
    edge = (xlogx(marg) + xlogx(1.0 - marg)).sum()
    logK = energy - node + edge
    return logK, marg, pa, pb, converged, it


def best_matching(ea, eb, w, na, nb):
    """Exact maximum-weight matching on ln r > 0: boolean (E,) mask of the chosen pairs."""
    ea = np.asarray(ea, dtype=np.int64)
    eb = np.asarray(eb, dtype=np.int64)
    gain = np.zeros((na, nb))
    pos = w > 0
    gain[ea[pos], eb[pos]] = w[pos]
    rows, cols = linear_sum_assignment(gain, maximize=True)
    chosen = np.zeros((na, nb), dtype=bool)
    keep = gain[rows, cols] > 0
    chosen[rows[keep], cols[keep]] = True
    return chosen[ea, eb] & pos
