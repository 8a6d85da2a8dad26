"""Exact per-island counterpart assignment: the subset dynamic programme (two executors).

A *bucket* is a set of islands with the same number ``s`` of small-side sources
(columns).  Island ``k`` owns the rows ``row_ptr[k]:row_ptr[k+1]`` (its large-side
sources, ``l_k >= 1`` of them) of ``W``, shape ``(R, s)``: ``W[r, i] = ln r`` of the pair
(row r, column i), ``-inf`` where the pair cannot match.

Rows are swept one by one and the state is the set ``m`` of columns already used
(a bitmask, ``2**s`` states):

* forward  ``F_{j+1}[m] = LSE(F_j[m], F_j[m ^ b_i] + W[j, i] for i in m)``, ``F_0 = [0, -inf, ...]``;
* backward ``G_j[m] = LSE(G_{j+1}[m], G_{j+1}[m | b_i] + W[j, i] for i not in m)``, ``G_l = 0``;
* ``ln K = G_0[0]``; the marginal of pair (j, i), ``r d ln K / d r``, is
  ``sum_{m without i} exp(F_j[m] + W[j, i] + G_{j+1}[m | b_i] - ln K)``;
* row j unmatched: ``sum_m exp(F_j[m] + G_{j+1}[m] - ln K)``; column i unmatched:
  ``sum_{m without i} exp(F_l[m] - ln K)`` -- computed directly, not as ``1 - sum``, so they
  keep their relative precision when close to 0.

``LSE`` of the terms ``t_0`` (the unmatched term) and ``t_{1+i}`` (increasing column ``i``):
``M`` = the first maximal term, result ``M + log1p(sum over the other terms of exp(t - M))``
summed in that order, ``-inf`` when all terms are ``-inf``.

The most probable hypothesis comes from the max-product twin ``V`` of ``F`` (additions and
comparisons only, so bit-identical on every backend).  Ties are broken by a fixed rule:
at each (row, state) the first strictly larger term wins (row unmatched first, then the
lowest column); the final state is the lowest bitmask with the largest ``V``; the rows'
choices are then backtracked.  In words: among hypotheses of equal weight, the one whose set
of matched columns has the lowest bitmask (column t = bit t) is chosen; within that, going
from the last row backwards, each row is left unmatched if an optimal hypothesis allows it,
else matched to the lowest-numbered column that one allows.

Cost per island: time ``~ 3 l s 2**s``, memory ``l 2**s`` doubles + ``l 2**s`` bytes.

Executors: :func:`dp_bucket_numpy` (vectorised over the islands of a bucket; islands are
processed longest first so the islands still active at step ``j`` are a prefix) and
:func:`dp_bucket_cupy` (``kernels/assign_dp.cu``: one thread per island for small ``s``, one
block per island sharing the states for ``s >= BLOCK_MIN_S``).  Both return the same
:class:`BucketResult`; the scratch of a chunk of islands is bounded by a byte budget.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .backend import load_kernel

NEG = -np.inf
#: Scratch budget (bytes) for one chunk of islands in either executor.
DEFAULT_WORKSPACE_BYTES = 1 << 30
#: Buckets with at least this many small-side sources run one CUDA block per island.
BLOCK_MIN_S = 7


@dataclass
class BucketResult:
    """Outputs of the programme for a bucket (host arrays, island-major rows).

    logK, bestw : (n_isl,) -- ln K and ln prod r of the most probable hypothesis.
    best_choice : (R,) int32 -- column matched to each row in that hypothesis, or -1.
    marg : (R, s) -- pair marginals P(row ~ column) (0 where W is -inf).
    pnone_row : (R,), pnone_col : (n_isl, s) -- probabilities of having no counterpart.
    """

    logK: np.ndarray
    bestw: np.ndarray
    best_choice: np.ndarray
    marg: np.ndarray
    pnone_row: np.ndarray
    pnone_col: np.ndarray


def workspace_bytes(s: int, rows: np.ndarray) -> np.ndarray:
    """Scratch bytes of each island with ``rows`` rows and ``s`` columns (G, choice, F, V)."""
    S = 1 << s
    return np.asarray(rows, dtype=np.int64) * S * 9 + 32 * S


def chunks(s: int, row_ptr: np.ndarray, budget: int = DEFAULT_WORKSPACE_BYTES):
    """Split a bucket's islands into consecutive chunks whose scratch fits ``budget``
    (a single island larger than the budget forms its own chunk)."""
    need = np.cumsum(workspace_bytes(s, np.diff(row_ptr)))
    n = len(need)
    start, base = 0, 0
    while start < n:
        stop = int(np.searchsorted(need, base + budget, side="right"))
        stop = max(stop, start + 1)
        yield start, stop
        base = int(need[stop - 1])
        start = stop


def _halves(X, i):
    """Views of the states without and with column i's bit, aligned (m, m | b_i), each of
    shape (n, 2**s >> (i + 1), 2**i) in ascending mask order."""
    n, S = X.shape
    v = X.reshape(n, S >> (i + 1), 2, 1 << i)
    return v[:, :, 0, :], v[:, :, 1, :]


def _terms(X, i, fwd):
    """(source, target) state views of column i: forward m ^ b_i -> m (i in m), backward
    m | b_i -> m (i not in m)."""
    lo, hi = _halves(X, i)
    return (lo, hi) if fwd else (hi, lo)


def _lse_step(X, Wj, fwd):
    """One LSE sweep step over a batch of islands (rows of X): every state's terms are
    X[m] (unmatched) and, column by column, X[source] + Wj[:, i]; see the module doc."""
    M, am = _max_step(X, Wj, fwd)
    dead = M == NEG
    Ms = np.where(dead, 0.0, M)
    acc = np.where(am != -1, np.exp(X - Ms), 0.0)
    for i in range(Wj.shape[1]):
        src, _ = _terms(X, i, fwd)
        _, Mt = _terms(Ms, i, fwd)
        _, At = _terms(am, i, fwd)
        _, acct = _terms(acc, i, fwd)
        e = np.exp(src + Wj[:, i, None, None] - Mt)
        acct += np.where(At == i, 0.0, e)
    return np.where(dead, NEG, Ms + np.log1p(acc))


def _max_step(V, Wj, fwd=True):
    """Max-product step with choices (-1 = unmatched): the first strictly larger term wins."""
    out = V.copy()
    ch = np.full(V.shape, -1, dtype=np.int8)
    for i in range(Wj.shape[1]):
        src, _ = _terms(V, i, fwd)
        _, Ot = _terms(out, i, fwd)
        _, Ct = _terms(ch, i, fwd)
        t = src + Wj[:, i, None, None]
        better = t > Ot
        np.copyto(Ot, t, where=better)
        np.copyto(Ct, np.int8(i), where=better)
    return out, ch


def _dp_chunk_numpy(s: int, row_ptr: np.ndarray, W: np.ndarray) -> BucketResult:
    """NumPy executor for one chunk (islands in any order; rows island-major)."""
    S = 1 << s
    n = len(row_ptr) - 1
    lens = np.diff(row_ptr)
    order = np.argsort(-lens, kind="stable")
    lsorted = lens[order]
    lmax = int(lsorted[0])
    active = np.searchsorted(-lsorted, -np.arange(lmax + 1), side="left")  # islands with l > j
    rows = [row_ptr[order[: active[j]]] + j for j in range(lmax)]

    # Backward sweep, keeping G_{j+1} (rows of the islands active at step j) for the forward one.
    Gnext = [None] * lmax
    G = np.zeros((0, S))
    for j in range(lmax - 1, -1, -1):
        G = np.concatenate([G, np.zeros((active[j] - G.shape[0], S))])
        Gnext[j] = G
        G = _lse_step(G, W[rows[j]], fwd=False)
    logK = G[:, 0]

    marg = np.zeros(W.shape)
    pnone_row = np.empty(W.shape[0])
    pnone_col = np.empty((n, s))
    best_choice = np.empty(W.shape[0], dtype=np.int32)
    bestw = np.empty(n)
    mbest = np.empty(n, dtype=np.int64)
    F = np.full((n, S), NEG)
    F[:, 0] = 0.0
    V = F.copy()
    choices = []
    for j in range(lmax):
        a = active[j]
        Wj = W[rows[j]]
        F, V, Gn, lk = F[:a], V[:a], Gnext[j], logK[:a, None, None]
        for i in range(s):
            e = np.exp(_halves(F, i)[0] + Wj[:, i, None, None] + _halves(Gn, i)[1] - lk)
            marg[rows[j], i] = np.where(Wj[:, i] == NEG, 0.0, e.sum(axis=(1, 2)))
        pnone_row[rows[j]] = np.exp(F + Gn - lk[:, :, 0]).sum(axis=1)
        F = _lse_step(F, Wj, fwd=True)
        V, ch = _max_step(V, Wj)
        choices.append(ch)
        done = slice(active[j + 1], a)  # islands whose last row was j
        for i in range(s):
            e = np.exp(_halves(F[done], i)[0] - logK[done, None, None])
            pnone_col[order[done], i] = e.sum(axis=(1, 2))
        mbest[done] = np.argmax(V[done], axis=1)
        bestw[done] = V[done][np.arange(a - active[j + 1]), mbest[done]]

    for j in range(lmax - 1, -1, -1):
        a = active[j]
        c = choices[j][np.arange(a), mbest[:a]]
        best_choice[rows[j]] = c
        mbest[:a] ^= np.where(c >= 0, np.int64(1) << np.maximum(c, 0).astype(np.int64), 0)

    inv = np.empty_like(order)
    inv[order] = np.arange(n)
    return BucketResult(logK=logK[inv], bestw=bestw[inv], best_choice=best_choice, marg=marg,
                        pnone_row=pnone_row, pnone_col=pnone_col)


def _concat(parts: list[BucketResult]) -> BucketResult:
    if len(parts) == 1:
        return parts[0]
    return BucketResult(*(np.concatenate([getattr(p, f) for p in parts])
                          for f in BucketResult.__dataclass_fields__))


def dp_bucket_numpy(s: int, row_ptr, W, budget: int = DEFAULT_WORKSPACE_BYTES) -> BucketResult:
    """Run the programme on every island of a bucket with NumPy (chunked by ``budget``)."""
    row_ptr = np.asarray(row_ptr, dtype=np.int64)
    W = np.asarray(W, dtype=np.float64).reshape(-1, s)
    parts = []
    with np.errstate(divide="ignore", invalid="ignore", over="ignore", under="ignore"):
        for a, b in chunks(s, row_ptr, budget):
            r0, r1 = row_ptr[a], row_ptr[b]
            parts.append(_dp_chunk_numpy(s, row_ptr[a:b + 1] - r0, W[r0:r1]))
    return _concat(parts)


def dp_bucket_cupy(s: int, row_ptr, W, budget: int = DEFAULT_WORKSPACE_BYTES,
                   block_min_s: int = BLOCK_MIN_S) -> BucketResult:
    """Run the programme on every island of a bucket with the CUDA kernels (chunked by
    ``budget``): one thread per island when ``s < block_min_s``, else one block per island.
    For balanced warps, pass islands sorted by number of rows."""
    import cupy

    row_ptr = np.asarray(row_ptr, dtype=np.int64)
    W = np.asarray(W, dtype=np.float64).reshape(-1, s)
    S = 1 << s
    per_block = s >= block_min_s
    kernel = load_kernel("assign_dp.cu", "assign_dp_block" if per_block else "assign_dp")
    parts = []
    for a, b in chunks(s, row_ptr, budget):
        r0, r1 = int(row_ptr[a]), int(row_ptr[b])
        n, R = b - a, r1 - r0
        rp = cupy.asarray(row_ptr[a:b + 1] - r0)
        Wd = cupy.asarray(np.ascontiguousarray(W[r0:r1]))
        G = cupy.empty(R * S, dtype=cupy.float64)
        choice = cupy.empty(R * S, dtype=cupy.int8)
        FV = cupy.empty(4 * n * S, dtype=cupy.float64)
        out = BucketResult(logK=cupy.empty(n), bestw=cupy.empty(n),
                           best_choice=cupy.empty(R, dtype=cupy.int32), marg=cupy.empty((R, s)),
                           pnone_row=cupy.empty(R), pnone_col=cupy.empty((n, s)))
        if per_block:
            grid, block = (n,), (min(256, S),)
        else:
            grid, block = ((n + 127) // 128,), (128,)
        kernel(grid, block, (np.int32(s), np.int64(n), rp, Wd, G, choice, FV, out.logK, out.bestw,
                             out.best_choice, out.marg, out.pnone_row, out.pnone_col))
        del G, choice, FV
        parts.append(BucketResult(*(cupy.asnumpy(getattr(out, f))
                                    for f in BucketResult.__dataclass_fields__)))
    return _concat(parts)
