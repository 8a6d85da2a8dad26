"""Grid-hashed neighbour search on the sphere (NumPy reference, CuPy executor).

The sky is cut into declination zones of height ``h >= r_max`` and each zone into
RA cells whose width is at least the largest RA extent of an ``r_max`` circle in
that zone (``arcsin(sin r / cos|dec|_max)``), so every neighbour of a point lies in
its own cell or the next one in RA, in its own zone or the next one in Dec.
Zones that reach within ``r_max`` of a pole are one cell; RA cells wrap at 0/360.
Catalogue B is sorted by (cell key, row); a query's candidate ranges are found by
``searchsorted`` on the sorted keys (no dense cell table, so any radius works).

The exact test is on unit vectors computed once on the host: a pair is kept when
``|x_a - x_b|^2 <= c_a^2 + c_b^2`` with chord radii ``c = 2 sin(r/2)``:

* one radius ``r``: ``c_a = chord(r)``, ``c_b = 0``;
* a per-source radius for A: ``c_a = chord(r_a)``;
* a per-pair quadrature radius ``sqrt(r_a^2 + r_b^2)`` (the notebook's
  ``sqrt(sigma_X^2 + sigma_IR^2)``): ``c_a = chord(r_a)``, ``c_b = chord(r_b)``.
  In chord space the sum differs from the quadrature of angles by a relative
  ``< r^2/12`` (1e-12 at 10 arcsec), far below any catalogue's precision.

Results are index pairs sorted by (i, j) with separations in arcsec.  The CuPy
path runs the count/scan/write kernels of ``kernels/sky_pairs.cu`` and gives the
same pairs in the same order and bit-identical squared chords.  Queries are
processed in chunks bounded by a candidate budget, which never changes the result.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .backend import Backend, get_backend, load_kernel, to_host
from .catalogue import ARCSEC_PER_RAD, radec_to_xyz

NR = 9  # ranges per query: 3 zones x 3 RA cells
DEFAULT_CANDIDATE_BUDGET = 8_000_000  # candidate pairs examined per chunk (memory bound)


def chord2_from_arcsec(r_arcsec) -> np.ndarray:
    """Squared chord length of an angle in arcsec (host, float64)."""
    c = 2.0 * np.sin(0.5 * np.asarray(r_arcsec, dtype=np.float64) / ARCSEC_PER_RAD)
    return c * c


def sep_arcsec_from_chord2(d2, xp=np):
    """Angular separation in arcsec from squared chord length."""
    return 2.0 * xp.arcsin(xp.minimum(xp.sqrt(d2) * 0.5, 1.0)) * ARCSEC_PER_RAD


@dataclass
class Pairs:
    """Neighbour pairs: ``i`` rows of A (or query numbers), ``j`` rows of B, ``sep_arcsec``."""

    i: np.ndarray
    j: np.ndarray
    sep_arcsec: np.ndarray

    def __len__(self):
        return len(self.i)


class SkyIndex:
    """Zones-and-cells index of catalogue B for searches up to ``max_radius_arcsec``.

    Parameters
    ----------
    ra_deg, dec_deg : arrays of B's positions in degrees.
    max_radius_arcsec : the largest search radius any query will use (arcsec).
    backend : 'auto' | 'numpy' | 'cupy' or a :class:`Backend`.
    xyz : optional precomputed (n, 3) unit vectors (host float64).
    """

    def __init__(self, ra_deg, dec_deg, max_radius_arcsec: float, backend=None, xyz=None):
        self.backend: Backend = get_backend(backend)
        xp = self.backend.xp
        ra = np.mod(np.asarray(ra_deg, dtype=np.float64), 360.0)
        dec = np.asarray(dec_deg, dtype=np.float64)
        self.n = len(ra)
        r_deg = float(max_radius_arcsec) / 3600.0
        if not np.isfinite(r_deg) or r_deg <= 0:
            raise ValueError(f"search radius must be positive and finite, got {max_radius_arcsec} arcsec")
        self.max_radius_arcsec = float(max_radius_arcsec)
        # Zone height: at least the radius (1 ppm margin), at most 180 deg.
        self.h = min(180.0, r_deg * (1 + 1e-6))
        self.nz = int(np.ceil(180.0 / self.h))
        lo = -90.0 + self.h * np.arange(self.nz)
        hi = np.minimum(lo + self.h, 90.0)
        maxabs = np.maximum(np.abs(lo), np.abs(hi))
        near_pole = maxabs + r_deg * (1 + 1e-6) >= 90.0
        with np.errstate(invalid="ignore", divide="ignore"):
            s = np.sin(np.radians(r_deg)) / np.cos(np.radians(np.where(near_pole, 0.0, maxabs)))
            width = np.degrees(np.arcsin(np.minimum(s, 1.0))) * (1 + 1e-6)
        ncell = np.where(near_pole | (width >= 120.0), 1, np.floor(360.0 / width)).astype(np.int64)
        ncell = np.maximum(ncell, 1)
        self.ncell = ncell
        self.cell_w = 360.0 / ncell.astype(np.float64)
        self.offset = np.concatenate([[0], np.cumsum(ncell)]).astype(np.int64)
        # Device copies of the small per-zone tables.
        self._ncell = xp.asarray(self.ncell)
        self._cell_w = xp.asarray(self.cell_w)
        self._offset = xp.asarray(self.offset)
        keys = self._keys(xp.asarray(ra), xp.asarray(dec))
        order = xp.argsort(keys, kind="stable")  # ties stay in row order: deterministic
        self.order = order
        self.keys_sorted = keys[order]
        host_xyz = radec_to_xyz(ra, dec) if xyz is None else np.asarray(xyz, dtype=np.float64)
        self.xyz_sorted = xp.ascontiguousarray(xp.asarray(host_xyz)[order])

    # -- grid arithmetic (same elementwise IEEE operations on both backends) ----
    def _zone(self, dec):
        xp = self.backend.xp
        z = xp.floor((dec + 90.0) / self.h).astype(xp.int64)
        return xp.clip(z, 0, self.nz - 1)

    def _cell_in_zone(self, ra, z):
        xp = self.backend.xp
        c = xp.floor(ra / self._cell_w[z]).astype(xp.int64)
        return xp.clip(c, 0, self._ncell[z] - 1)

    def _keys(self, ra, dec):
        z = self._zone(dec)
        return self._offset[z] + self._cell_in_zone(ra, z)

    def query_ranges(self, ra, dec):
        """(nq, 9, 2) int64 [start, end) ranges of sorted-B positions to scan per query."""
        xp = self.backend.xp
        nq = ra.shape[0]
        zq = self._zone(dec)
        lo = xp.zeros((nq, 3, 3), dtype=xp.int64)
        hi = xp.zeros((nq, 3, 3), dtype=xp.int64)
        for k, dz in enumerate((-1, 0, 1)):
            z = zq + dz
            valid = (z >= 0) & (z < self.nz)
            zc = xp.clip(z, 0, self.nz - 1)
            n = self._ncell[zc]
            base = self._offset[zc]
            whole = n <= 3
            c = self._cell_in_zone(ra, zc)
            for m, dc in enumerate((-1, 0, 1)):
                cell = xp.mod(c + dc, n)
                lo_k = xp.where(whole, base if m == 0 else 0, base + cell)
                hi_k = xp.where(whole, base + n if m == 0 else 0, base + cell + 1)
                lo[:, k, m] = xp.where(valid, lo_k, 0)
                hi[:, k, m] = xp.where(valid, hi_k, 0)
        starts = xp.searchsorted(self.keys_sorted, lo.reshape(-1), side="left")
        ends = xp.searchsorted(self.keys_sorted, hi.reshape(-1), side="left")
        return xp.stack([starts, ends], axis=1).reshape(nq, NR, 2).astype(xp.int64)

    # -- search ---------------------------------------------------------------
    def query(self, ra_deg, dec_deg, radius_arcsec, radius_b_arcsec=None, xyz=None,
              candidate_budget: int = DEFAULT_CANDIDATE_BUDGET, progress=None) -> Pairs:
        """All (query i, B row j) with separation within the radius; sorted by (i, j).

        ``radius_arcsec``: a scalar or one value per query (arcsec).
        ``radius_b_arcsec``: optional per-B-row term; the radius of a pair is then
        ``sqrt(r_i^2 + r_b_j^2)`` (quadrature).  Every pair radius must be <=
        ``max_radius_arcsec`` of the index (checked).
        ``progress``: optional callable(n_queries_done) for progress bars.
        """
        xp = self.backend.xp
        ra = np.mod(np.asarray(ra_deg, dtype=np.float64), 360.0)
        dec = np.asarray(dec_deg, dtype=np.float64)
        nq = len(ra)
        r_q = np.broadcast_to(np.asarray(radius_arcsec, dtype=np.float64), (nq,))
        r_b = None if radius_b_arcsec is None else \
            np.broadcast_to(np.asarray(radius_b_arcsec, dtype=np.float64), (self.n,))
        worst = (r_q.max() if nq else 0.0) ** 2 + ((r_b.max() ** 2) if (r_b is not None and self.n) else 0.0)
        if np.sqrt(worst) > self.max_radius_arcsec * (1 + 1e-9):
            raise ValueError(f"a pair radius of {np.sqrt(worst):.6g} arcsec exceeds the index's "
                             f"max_radius_arcsec={self.max_radius_arcsec:.6g}")
        if nq == 0 or self.n == 0:
            e = np.zeros(0, dtype=np.int64)
            return Pairs(e, e.copy(), np.zeros(0))
        qthr2 = xp.asarray(chord2_from_arcsec(r_q))
        bthr2 = xp.zeros(self.n) if r_b is None else xp.asarray(chord2_from_arcsec(r_b))[self.order]
        qxyz_all = radec_to_xyz(ra, dec) if xyz is None else np.asarray(xyz, dtype=np.float64)
        ranges = self.query_ranges(xp.asarray(ra), xp.asarray(dec))
        ncand = (ranges[:, :, 1] - ranges[:, :, 0]).sum(axis=1)
        bounds = _chunk_bounds(to_host(xp.cumsum(ncand)), candidate_budget)
        out_i, out_j, out_d2 = [], [], []
        expand = self._expand_cupy if self.backend.is_gpu else _expand_numpy
        for a, b in zip(bounds[:-1], bounds[1:]):
            qi, jpos, d2 = expand(ranges[a:b], xp.asarray(qxyz_all[a:b]), self.xyz_sorted,
                                  qthr2[a:b], bthr2)
            out_i.append(qi + a)
            out_j.append(self.order[jpos])
            out_d2.append(d2)
            if progress is not None:
                progress(int(b - a))
        qi = xp.concatenate(out_i)
        jj = xp.concatenate(out_j)
        d2 = xp.concatenate(out_d2)
        o = xp.lexsort(xp.stack([jj, qi]))  # by i, then j (pairs are unique)
        qi, jj, d2 = qi[o], jj[o], d2[o]
        sep = sep_arcsec_from_chord2(d2, xp)
        return Pairs(to_host(qi), to_host(jj), to_host(sep))

    def _expand_cupy(self, ranges, qxyz, bxyz, qthr2, bthr2):
        import cupy

        nq = ranges.shape[0]
        ranges = cupy.ascontiguousarray(ranges)
        qxyz = cupy.ascontiguousarray(qxyz)
        counts = cupy.empty(nq, dtype=cupy.int64)
        threads = 256
        blocks = (nq + threads - 1) // threads
        load_kernel("sky_pairs.cu", "sky_count")(
            (blocks,), (threads,), (ranges, qxyz, bxyz, qthr2, bthr2, np.int64(nq), counts))
        offsets = cupy.cumsum(counts) - counts
        total = int(counts.sum()) if nq else 0
        out_q = cupy.empty(total, dtype=cupy.int64)
        out_j = cupy.empty(total, dtype=cupy.int64)
        out_d2 = cupy.empty(total, dtype=cupy.float64)
        if total:
            load_kernel("sky_pairs.cu", "sky_write")(
                (blocks,), (threads,),
                (ranges, qxyz, bxyz, qthr2, bthr2, np.int64(nq), offsets, out_q, out_j, out_d2))
        return out_q, out_j, out_d2


def _chunk_bounds(cum_cand: np.ndarray, budget: int) -> np.ndarray:
    """Query boundaries so that each chunk examines at most ~budget candidates (>= 1 query)."""
    nq = len(cum_cand)
    bounds = [0]
    while bounds[-1] < nq:
        a = bounds[-1]
        base = cum_cand[a - 1] if a > 0 else 0
        b = int(np.searchsorted(cum_cand, base + budget, side="right"))
        bounds.append(max(b, a + 1))
    return np.asarray(bounds, dtype=np.int64)


def _expand_numpy(ranges, qxyz, bxyz, qthr2, bthr2):
    """NumPy twin of kernels/sky_pairs.cu: candidates in range order, same arithmetic order."""
    nq = ranges.shape[0]
    starts = ranges[:, :, 0].reshape(-1)
    lens = (ranges[:, :, 1] - ranges[:, :, 0]).reshape(-1)
    total = int(lens.sum())
    seg = np.repeat(np.arange(nq * NR, dtype=np.int64), lens)
    first = np.cumsum(lens) - lens
    jpos = starts[seg] + (np.arange(total, dtype=np.int64) - first[seg])
    qi = seg // NR
    dx = qxyz[qi, 0] - bxyz[jpos, 0]
    dy = qxyz[qi, 1] - bxyz[jpos, 1]
    dz = qxyz[qi, 2] - bxyz[jpos, 2]
    d2 = dx * dx + dy * dy + dz * dz
    keep = d2 <= qthr2[qi] + bthr2[jpos]
    return qi[keep], jpos[keep], d2[keep]


def pairs(ra_a, dec_a, ra_b, dec_b, radius_arcsec, radius_b_arcsec=None, backend=None,
          candidate_budget: int = DEFAULT_CANDIDATE_BUDGET, progress=None) -> Pairs:
    """All pairs (i in A, j in B) within the radius, sorted by (i, j).

    ``radius_arcsec`` is a scalar or per-A array (arcsec); ``radius_b_arcsec`` an
    optional per-B array combined in quadrature (see module docstring).
    """
    r_a = np.asarray(radius_arcsec, dtype=np.float64)
    rmax2 = (float(r_a.max()) if r_a.size else 0.0) ** 2
    if radius_b_arcsec is not None and np.size(radius_b_arcsec):
        rmax2 += float(np.max(radius_b_arcsec)) ** 2
    rmax = max(np.sqrt(rmax2), 1e-6)
    index = SkyIndex(ra_b, dec_b, rmax, backend=backend)
    return index.query(ra_a, dec_a, radius_arcsec, radius_b_arcsec,
                       candidate_budget=candidate_budget, progress=progress)
