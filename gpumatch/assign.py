"""Counterpart assignment within islands (Wilson & Naylor 2018, eqs 26-27; section 6.1).

Input contract
--------------
Islands in CSR form, ``n_isl`` of them:

* ``island_ptr_a`` (n_isl + 1), ``members_a``: island k holds the catalogue-A rows
  ``members_a[island_ptr_a[k]:island_ptr_a[k+1]]`` (global row numbers; each row at most once);
  likewise ``island_ptr_b``, ``members_b`` for catalogue B;
* the pairs that may match, one entry per pair: ``pair_island``, ``pair_a``, ``pair_b``
  (global rows, members of that island) and ``log_r = ln r_ab`` with
  ``r_ab = N_c G_ab c_ab / (N_a f_a N_b f_b)``, the ratio of the hypothesis terms "a and b
  are counterparts" and "both unmatched".  Pairs not listed (or with ``log_r = -inf``) have
  ``r = 0``: they cannot match.

Dividing every hypothesis of eq 26 by the all-unmatched one, the evidence ratio is
``K = sum over partial matchings M of prod_{(a,b) in M} r_ab`` (the empty matching gives 1).
Per island this module returns ``ln K``, the most probable hypothesis (a maximum-weight
matching on ``ln r > 0``) with its probability, per pair the marginal probability
``P(a~b) = r_ab dK/dr_ab / K``, and per source the probability of no counterpart.

Method
------
Sources without any possible pair are unmatched with probability 1 and leave the problem.
Of the rest, the side with fewer sources is the *small* side (A on a tie), ``s`` sources.

* ``s == 0``: nothing can match (status ``NO_PAIRS``).
* ``s <= max_small_side``: exact, by the subset dynamic programme of
  :mod:`gpumatch.assign_dp` (states = subsets of the small side, the large side's sources
  swept one by one, forward pass for K and the best hypothesis, backward pass for the
  marginals), whatever the size of the large side (status ``EXACT``).  Executed by NumPy
  or by the CUDA kernel ``kernels/assign_dp.cu``: the best hypotheses are identical and the
  floats agree to 1e-12 (``ln K`` to 1e-12 absolute, i.e. K relative).
* ``s > max_small_side`` (or an island whose programme alone would need more scratch memory
  than ``workspace_bytes``): the Bethe (loopy belief propagation) approximation for ``ln K``
  and the marginals, and the exact best hypothesis by a linear assignment solver
  (:mod:`gpumatch.assign_bethe`), on the host for every backend; status ``APPROX_BETHE``,
  or ``APPROX_NOT_CONVERGED`` when BP did not reach its tolerance.  No island is dropped.

Ties in the best hypothesis (exact path) follow the programme's fixed rule, see
:mod:`gpumatch.assign_dp` (large side = rows, small side = columns, both numbered by the
order of the members in the CSR input, skipping sources without pairs): the lowest bitmask
of matched small-side sources wins; then, from the last large-side source backwards, each is
left unmatched if an optimal hypothesis allows it, else given the lowest-numbered small-side
source.  E.g. one A source with two equally good B candidates takes the first one; a pair
with r = 1 (ln r = 0) is never part of the best hypothesis.

Acceptance (section 6.1) is :func:`accept`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .assign_bethe import bethe, best_matching
from .assign_dp import DEFAULT_WORKSPACE_BYTES, dp_bucket_cupy, dp_bucket_numpy
from .assign_dp import workspace_bytes as workspace_need
from .backend import get_backend, to_host

EXACT, NO_PAIRS, APPROX_BETHE, APPROX_NOT_CONVERGED = 0, 1, 2, 3
STATUS_NAMES = {EXACT: "exact", NO_PAIRS: "no_pairs", APPROX_BETHE: "approx_bethe",
                APPROX_NOT_CONVERGED: "approx_not_converged"}
MAX_SMALL_SIDE_LIMIT = 24


@dataclass
class AssignmentResult:
    """Per-island, per-pair and per-source outputs of :func:`evaluate_islands` (NumPy arrays).

    Per island (n_isl):
      log_evidence     ln K (K = evidence / all-unmatched evidence, >= 1, so ln K >= 0);
      best_log_weight  ln prod r of the most probable hypothesis (0 for "all unmatched");
      best_prob        its probability exp(best_log_weight - ln K), clipped to <= 1;
      n_best_matches   number of pairs in it;
      status           EXACT / NO_PAIRS / APPROX_BETHE / APPROX_NOT_CONVERGED (STATUS_NAMES);
      small_is_a       True where catalogue A was the small side of the programme.
    Per pair (input order, n_pairs):
      pair_prob        marginal P(a~b) (0 for log_r = -inf);
      pair_in_best     the pair belongs to the most probable hypothesis.
    Per source (CSR order of members_a / members_b):
      p_none_a, p_none_b  probability of having no counterpart in the island;
      best_b, best_a      counterpart (global row of the other catalogue) in the most probable
                          hypothesis, or -1.
    The input pair arrays (pair_island, pair_a, pair_b) are kept for :func:`accept`.
    """

    log_evidence: np.ndarray
    best_log_weight: np.ndarray
    best_prob: np.ndarray
    n_best_matches: np.ndarray
    status: np.ndarray
    small_is_a: np.ndarray
    pair_prob: np.ndarray
    pair_in_best: np.ndarray
    p_none_a: np.ndarray
    best_b: np.ndarray
    p_none_b: np.ndarray
    best_a: np.ndarray
    pair_island: np.ndarray
    pair_a: np.ndarray
    pair_b: np.ndarray

    @property
    def approximate(self) -> np.ndarray:
        """Islands evaluated by the Bethe approximation (boolean, n_isl)."""
        return self.status >= APPROX_BETHE


def _csr(ptr, members, side):
    ptr = np.asarray(to_host(ptr), dtype=np.int64)
    members = np.asarray(to_host(members), dtype=np.int64)
    if ptr.ndim != 1 or len(ptr) < 1 or ptr[0] != 0 or ptr[-1] != len(members) or np.any(np.diff(ptr) < 0):
        raise ValueError(f"island_ptr_{side} must start at 0, be non-decreasing and end at "
                         f"len(members_{side}) = {len(members)}")
    u, cnt = np.unique(members, return_counts=True)
    if np.any(cnt > 1):
        raise ValueError(f"members_{side}: row {int(u[cnt > 1][0])} is listed more than once "
                         "(each source belongs to at most one island)")
    return ptr, members


def _locate(rows, pair_island, members, isl_of_member, side):
    """Position in ``members`` of each pair's row, checked to be in the pair's island."""
    order = np.argsort(members, kind="stable")
    pos = np.searchsorted(members[order], rows)
    pos = np.minimum(pos, len(members) - 1) if len(members) else pos
    found = len(members) > 0
    if found:
        pos = order[pos]
        ok = (members[pos] == rows) & (isl_of_member[pos] == pair_island)
    else:
        ok = np.zeros(len(rows), dtype=bool)
    if not np.all(ok):
        p = int(np.flatnonzero(~ok)[0])
        raise ValueError(f"pair {p}: {side.upper()} row {int(rows[p])} is not a member of "
                         f"island {int(pair_island[p])}")
    return pos


def _local_index(eff, ptr, isl):
    """Rank of each effective member among the effective members of its island."""
    csum = np.concatenate([[0], np.cumsum(eff)])
    return csum[:-1] - csum[ptr[isl]], csum[ptr[1:]] - csum[ptr[:-1]]


def evaluate_islands(island_ptr_a, members_a, island_ptr_b, members_b,
                     pair_island, pair_a, pair_b, log_r, backend=None,
                     max_small_side: int = 20,
                     workspace_bytes: int = DEFAULT_WORKSPACE_BYTES) -> AssignmentResult:
    """Evidence, most probable hypothesis and match probabilities of every island.

    Parameters follow the module's input contract (arrays may be NumPy or CuPy).
    backend : 'auto' | 'numpy' | 'cupy' or a Backend -- executor of the exact programme.
    max_small_side : islands whose small side (sources with at least one possible pair)
        is larger are evaluated approximately and flagged (0..24; time ~ 3 l s 2^s,
        memory ~ 9 l 2^s bytes per island with l large-side sources).
    workspace_bytes : scratch budget (bytes) of the exact programme per chunk of islands
        (chunking never changes the result); an island that alone needs more is evaluated
        approximately and flagged, like one with too wide a small side.
    Returns an :class:`AssignmentResult` of host NumPy arrays.
    """
    be = get_backend(backend)
    if not 0 <= int(max_small_side) <= MAX_SMALL_SIDE_LIMIT:
        raise ValueError(f"max_small_side must be in 0..{MAX_SMALL_SIDE_LIMIT}, got {max_small_side}")
    ptr_a, mem_a = _csr(island_ptr_a, members_a, "a")
    ptr_b, mem_b = _csr(island_ptr_b, members_b, "b")
    n_isl = len(ptr_a) - 1
    if len(ptr_b) - 1 != n_isl:
        raise ValueError(f"island_ptr_a describes {n_isl} islands but island_ptr_b {len(ptr_b) - 1}")
    p_isl, p_a, p_b = (np.asarray(to_host(x), dtype=np.int64) for x in (pair_island, pair_a, pair_b))
    w = np.asarray(to_host(log_r), dtype=np.float64)
    n_pairs = len(w)
    if not (len(p_isl) == len(p_a) == len(p_b) == n_pairs):
        raise ValueError("pair_island, pair_a, pair_b and log_r must have the same length")
    bad = np.isnan(w) | (w == np.inf)
    if bad.any():
        p = int(np.flatnonzero(bad)[0])
        raise ValueError(f"log_r[{p}] = {w[p]}: log pair weights must be finite or -inf "
                         "(+inf means 'unmatched' is impossible, e.g. a zero field density "
                         "upstream; give such pairs a large finite weight instead)")
    if n_pairs and (p_isl.min() < 0 or p_isl.max() >= n_isl):
        raise ValueError(f"pair_island must be in 0..{n_isl - 1}")
    isl_a = np.repeat(np.arange(n_isl), np.diff(ptr_a))
    isl_b = np.repeat(np.arange(n_isl), np.diff(ptr_b))
    pos_a = _locate(p_a, p_isl, mem_a, isl_a, "a")
    pos_b = _locate(p_b, p_isl, mem_b, isl_b, "b")
    key = pos_a * max(len(mem_b), 1) + pos_b
    u, cnt = np.unique(key, return_counts=True)
    if np.any(cnt > 1):
        p = int(np.flatnonzero(key == u[cnt > 1][0])[0])
        raise ValueError(f"pair ({int(p_a[p])}, {int(p_b[p])}) is listed more than once")

    fin = w > -np.inf
    eff_a = np.bincount(pos_a[fin], minlength=len(mem_a)) > 0
    eff_b = np.bincount(pos_b[fin], minlength=len(mem_b)) > 0
    loc_a, na = _local_index(eff_a, ptr_a, isl_a)
    loc_b, nb = _local_index(eff_b, ptr_b, isl_b)
    small_is_a = na <= nb
    s_isl = np.minimum(na, nb)
    l_isl = np.maximum(na, nb)
    exact_ok = (s_isl <= max_small_side) & (workspace_need(np.minimum(s_isl, MAX_SMALL_SIDE_LIMIT), l_isl)
                                            <= workspace_bytes)
    status = np.where(s_isl == 0, NO_PAIRS, np.where(exact_ok, EXACT, APPROX_BETHE)).astype(np.int8)

    out = dict(
        log_evidence=np.zeros(n_isl), best_log_weight=np.zeros(n_isl),
        pair_prob=np.zeros(n_pairs), pair_in_best=np.zeros(n_pairs, dtype=bool),
        p_none_a=np.ones(len(mem_a)), p_none_b=np.ones(len(mem_b)))
    run = dp_bucket_cupy if be.is_gpu else dp_bucket_numpy
    # Orientation: a pair's row is its large-side source, its column its small-side source.
    sa = small_is_a[p_isl]
    row_loc = np.where(sa, loc_b[pos_b], loc_a[pos_a])
    col_loc = np.where(sa, loc_a[pos_a], loc_b[pos_b])
    for s in np.unique(s_isl[status == EXACT]):
        _run_bucket(int(s), run, workspace_bytes, s_isl, status, small_is_a, l_isl,
                    fin & (s_isl[p_isl] == s), p_isl, row_loc, col_loc, w,
                    (isl_a, eff_a, loc_a), (isl_b, eff_b, loc_b), out)
    for k in np.flatnonzero(status == APPROX_BETHE):
        _run_bethe(int(k), fin & (p_isl == k), pos_a, pos_b, loc_a, loc_b, na[k], nb[k], w,
                   status, out)

    logK, bestw, in_best = out["log_evidence"], out["best_log_weight"], out["pair_in_best"]
    best_b = np.full(len(mem_a), -1, dtype=np.int64)
    best_a = np.full(len(mem_b), -1, dtype=np.int64)
    best_b[pos_a[in_best]] = p_b[in_best]
    best_a[pos_b[in_best]] = p_a[in_best]
    return AssignmentResult(
        log_evidence=logK, best_log_weight=bestw,
        best_prob=np.minimum(np.exp(bestw - logK), 1.0),
        n_best_matches=np.bincount(p_isl[in_best], minlength=n_isl),
        status=status, small_is_a=small_is_a,
        pair_prob=out["pair_prob"], pair_in_best=in_best,
        p_none_a=out["p_none_a"], best_b=best_b, p_none_b=out["p_none_b"], best_a=best_a,
        pair_island=p_isl, pair_a=p_a, pair_b=p_b)


def evaluate_island_set(islands, log_r, **kwargs) -> AssignmentResult:
    """:func:`evaluate_islands` on a :class:`gpumatch.islands.IslandSet` (its CSR members
    ``a_ptr/a_rows``, ``b_ptr/b_rows`` and pairs ``ia, ib`` grouped by ``pair_ptr/pair_idx``);
    ``log_r`` has one ln r per pair of the set, and the result's pairs are in that order."""
    pair_ptr = np.asarray(to_host(islands.pair_ptr), dtype=np.int64)
    pair_idx = np.asarray(to_host(islands.pair_idx), dtype=np.int64)
    n_pairs = len(np.asarray(to_host(islands.ia)))
    pair_island = np.full(n_pairs, -1, dtype=np.int64)
    pair_island[pair_idx] = np.repeat(np.arange(len(pair_ptr) - 1), np.diff(pair_ptr))
    return evaluate_islands(islands.a_ptr, islands.a_rows, islands.b_ptr, islands.b_rows,
                            pair_island, islands.ia, islands.ib, log_r, **kwargs)


def _run_bucket(s, run, budget, s_isl, status, small_is_a, l_isl, psel, p_isl, row_loc, col_loc,
                w, side_a, side_b, out):
    """Build the bucket of islands with small side ``s``, run the programme, scatter back."""
    isl = np.flatnonzero((s_isl == s) & (status == EXACT))
    isl = isl[np.argsort(-l_isl[isl], kind="stable")]       # longest first: balanced warps
    bpos = np.full(len(s_isl), -1, dtype=np.int64)
    bpos[isl] = np.arange(len(isl))
    row_ptr = np.concatenate([[0], np.cumsum(l_isl[isl])])
    p = np.flatnonzero(psel)
    rows = row_ptr[bpos[p_isl[p]]] + row_loc[p]
    W = np.full((row_ptr[-1], s), -np.inf)
    W[rows, col_loc[p]] = w[p]
    res = run(s, row_ptr, W, budget)
    out["log_evidence"][isl] = res.logK
    out["best_log_weight"][isl] = res.bestw
    out["pair_prob"][p] = res.marg[rows, col_loc[p]]
    out["pair_in_best"][p] = res.best_choice[rows] == col_loc[p]
    for (isl_m, eff, loc), key, small in ((side_a, "p_none_a", True), (side_b, "p_none_b", False)):
        m = np.flatnonzero(eff & (bpos[isl_m] >= 0))
        k = isl_m[m]
        as_col = small_is_a[k] == small
        bk = bpos[k]
        out[key][m] = np.where(as_col, res.pnone_col[bk, np.where(as_col, loc[m], 0)],
                               res.pnone_row[np.where(as_col, 0, row_ptr[bk] + loc[m])])


def _run_bethe(k, psel, pos_a, pos_b, loc_a, loc_b, na, nb, w, status, out):
    """Approximate one oversize island (Bethe evidence and marginals, exact best matching)."""
    p = np.flatnonzero(psel)
    ea, eb = loc_a[pos_a[p]], loc_b[pos_b[p]]
    logK, marg, pa, pb, converged, _ = bethe(ea, eb, w[p], int(na), int(nb))
    chosen = best_matching(ea, eb, w[p], int(na), int(nb))
    out["log_evidence"][k] = logK
    out["best_log_weight"][k] = w[p][chosen].sum()
    out["pair_prob"][p] = marg
    out["pair_in_best"][p] = chosen
    ma = np.unique(pos_a[p])            # effective members, in CSR (= local index) order
    mb = np.unique(pos_b[p])
    out["p_none_a"][ma] = pa
    out["p_none_b"][mb] = pb
    if not converged:
        status[k] = APPROX_NOT_CONVERGED


def accept(result: AssignmentResult, threshold: float | None = None, by: str = "hypothesis",
           include_approximate: bool = True) -> np.ndarray:
    """Accepted counterpart pairs (boolean mask over the input pairs), section 6.1.

    * ``threshold=None``: the pairs of the most probable hypothesis of every island,
      whatever its probability (the paper's first option).
    * ``by="hypothesis"``: the pairs of the most probable hypothesis of the islands where
      that hypothesis has probability ``> threshold`` (the paper uses p > 0.5: more
      likely than all other hypotheses together; or p > 0.8).
    * ``by="pair"``: the pairs whose marginal probability is ``>= threshold``;
      ``threshold`` must exceed 0.5 so that no source gets two counterparts.
    ``include_approximate=False`` rejects every pair of approximately evaluated islands.
    """
    if by not in ("hypothesis", "pair"):
        raise ValueError(f"by must be 'hypothesis' or 'pair', got {by!r}")
    if threshold is None:
        ok = result.pair_in_best.copy()
    elif by == "hypothesis":
        if not 0.0 <= threshold < 1.0:
            raise ValueError(f"threshold must be in [0, 1), got {threshold}")
        ok = result.pair_in_best & (result.best_prob[result.pair_island] > threshold)
    else:
        if not 0.5 < threshold <= 1.0:
            raise ValueError(f"threshold for by='pair' must be in (0.5, 1], got {threshold}")
        ok = result.pair_prob >= threshold
    if not include_approximate:
        ok &= ~result.approximate[result.pair_island]
    return ok
