"""Grid-hashed neighbour search on the sphere (NumPy reference, CuPy executor).

Grid (the "zones" scheme of Gray, Szalay et al. 2006, with cells):

* Declination zones of height ``h = k * reach`` with ``k >= 1``, where ``reach``
  is the largest search radius plus a safety margin (all angles in degrees).
  ``k`` is chosen from the density of catalogue B (see :func:`zone_factor_for`):
  tall zones mean fewer ranges per query, short ones fewer candidates.
* Each zone is cut into RA cells of width ``~reach / 16 / cos(dec)`` (deg of RA);
  cell widths only quantise the RA window, they never decide a result.
* A B source's key is ``offset[zone] + cell``; B is sorted by (key, row).  The
  zone tables cover only B's declination extent plus one empty zone either side.

A query at (ra, dec) scans every zone that meets ``[dec - reach, dec + reach]``
(at most 3, as ``h > reach``) and, in each, the cells that meet its RA window
``[ra - da, ra + da]``, where ``da = arcsin(sin(reach) / cos(|dec|max))`` of its
own zone is the RA half-width of a circle of radius ``reach`` (every point within
``reach`` of the query lies in that window).  The cells in a window are
consecutive keys, so each zone gives one range of sorted-B positions plus, when
the window crosses RA = 0/360, a second "wrap" range: ``NR = 6`` ranges per
query, most of them empty.  Zones whose circles can reach a pole, or windows
wider than the zone, are scanned whole.  Ranges are found by ``searchsorted`` on
the sorted keys; queries are processed in blocks sorted by their own key, which
makes those look-ups nearly sequential (and B reads local) without changing any
result.  Margins (relative 1e-6 and 1e-10 deg absolute) keep every window a
superset under float rounding, so the windows are a pure speed device.

The exact test is on unit vectors computed once on the host: a pair is kept when
``|x_a - x_b|^2 <= c_a^2 + c_b^2`` with chord radii ``c = 2 sin(r/2)``:

* one radius ``r``: ``c_a = chord(r)``, ``c_b = 0``;
* a per-source radius for A: ``c_a = chord(r_a)``;
* a per-pair quadrature radius ``sqrt(r_a^2 + r_b^2)`` (the notebook's
  ``sqrt(sigma_X^2 + sigma_IR^2)``): ``c_a = chord(r_a)``, ``c_b = chord(r_b)``.
  In chord space the sum exceeds the chord of the quadrature angle by a relative
  ``< r^2/12`` (1e-12 at 10 arcsec), far below any catalogue's precision; the
  index's reach includes that slack, so its ``max_radius_arcsec`` is simply the
  largest quadrature radius.

Results are index pairs sorted by (i, j) with separations in arcsec.  The CuPy
path runs the count/scan/write kernels of ``kernels/sky_pairs.cu`` and gives the
same pairs in the same order and bit-identical squared chords (separations are
converted from them on the host, so they are bit-identical too).  Queries are
processed in blocks and chunks bounded by a candidate budget (memory bound),
which never changes the result.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .backend import Backend, get_backend, load_kernel, to_host
from .catalogue import ARCSEC_PER_RAD, radec_to_xyz

NZONES = 3  # zones a query can meet (zone height > reach)
NR = 2 * NZONES  # ranges per query: per zone, the RA window and its wrap-around piece
REL_MARGIN = 1e-6  # relative safety margin on angles
ABS_MARGIN_DEG = 1e-10  # absolute margin (deg); float rounding of RA/Dec sums is ~1e-13 deg
MAX_ZONES = 1 << 19  # zone tables stay small (a few MB); tiny radii get taller zones
MIN_ZONE_DEG = 180.0 / MAX_ZONES
MIN_CELL_DEG = 2.5e-7  # keeps cell numbers (< 2^51 in all) and RA quotients exact enough
CELLS_PER_REACH = 16  # RA cells per reach (window quantisation: ~1/32 extra candidates; few key ties)
WHOLE_ZONE_DA_DEG = 60.0  # RA half-windows wider than this scan the whole zone
MAX_ZONE_FACTOR = 16.0
# Cost ratio (one range vs one candidate) of the NumPy executor, for the choice of k.
RANGE_COST = 2.0
QUERY_BLOCK = {"numpy": 1 << 17, "cupy": 1 << 22}  # queries whose ranges are held at once
DEFAULT_CANDIDATE_BUDGET = {"numpy": 2_000_000, "cupy": 64_000_000}  # candidates per chunk


def chord2_from_arcsec(r_arcsec) -> np.ndarray:
    """Squared chord length (unit sphere) of an angle in arcsec (host, float64)."""
    c = 2.0 * np.sin(0.5 * np.asarray(r_arcsec, dtype=np.float64) / ARCSEC_PER_RAD)
    return c * c


def arcsec_from_chord2(c2) -> np.ndarray:
    """Angle in arcsec whose squared chord is ``c2`` (host, float64; inverse of the above)."""
    return 2.0 * np.arcsin(np.minimum(np.sqrt(np.asarray(c2, dtype=np.float64)) * 0.5, 1.0)) \
        * ARCSEC_PER_RAD


def sep_arcsec_from_chord2(d2, xp=np):
    """Angular separation in arcsec from squared chord length (on the array's backend)."""
    return 2.0 * xp.arcsin(xp.minimum(xp.sqrt(d2) * 0.5, 1.0)) * ARCSEC_PER_RAD


@dataclass
class Pairs:
    """Neighbour pairs: ``i`` rows of A (or query numbers), ``j`` rows of B, ``sep_arcsec``."""

    i: np.ndarray
    j: np.ndarray
    sep_arcsec: np.ndarray

    def __len__(self):
        return len(self.i)


def zone_factor_for(ra_deg, dec_deg, reach_deg: float) -> float:
    """Zone height in units of ``reach`` that minimises the expected work (>= 1).

    Per query the executor pays ~``1 + 2/k`` ranges and ~``2 (k + 2) rho reach^2``
    candidates (rho: B sources per deg^2), so ``k = sqrt(RANGE_COST / (rho reach^2))``.
    rho is estimated from a fixed stride sample of at most 65,536 sources binned
    in cells of ``32 reach``: the mean number of sample companions in a source's own
    cell, minus itself, is ``rho s^2`` for a Poisson field.  Deterministic; it only
    affects speed, never results.
    """
    ra = np.asarray(ra_deg, dtype=np.float64)
    dec = np.asarray(dec_deg, dtype=np.float64)
    n = len(ra)
    if n < 2:
        return MAX_ZONE_FACTOR
    step = -(-n // 65536)
    ra, dec = ra[::step], dec[::step]
    s = min(max(32.0 * reach_deg, MIN_ZONE_DEG), 1.0)  # coarse cell side (deg)
    row = np.floor((dec + 90.0) / s)
    cos_c = np.maximum(np.cos(np.radians(np.clip(-90.0 + (row + 0.5) * s, -90.0, 90.0))), 1e-12)
    col = np.floor(ra * cos_c / s)
    counts = np.unique(row.astype(np.int64) * (1 << 32) + col.astype(np.int64), return_counts=True)[1]
    lam = max(float(np.dot(counts, counts)) / len(ra) - 1.0, 0.0) * step  # rho s^2, all of B
    rho_r2 = lam * (reach_deg / s) ** 2
    if rho_r2 <= 0:
        return MAX_ZONE_FACTOR
    return float(np.clip(np.sqrt(RANGE_COST / rho_r2), 1.0, MAX_ZONE_FACTOR))


class _Grid:
    """Zone and cell tables for one reach (host NumPy tables, plus copies on ``xp``).

    ``h`` zone height (deg).  Zones are numbered from the south pole; the tables hold
    the ``nz`` zones from ``z0`` on that cover ``[dec_min, dec_max]`` (B's extent) plus
    one empty zone either side, and every declination is clipped into them.  A query
    clipped into an empty edge zone scans only that zone (its circle cannot reach B,
    which lies more than a zone height away), so clipping never loses a pair.  Per
    zone: ``ncell`` cells of ``cell_w`` deg of RA, key ``offset`` of the first cell,
    RA half-window ``da`` (deg) of a query in that zone and ``whole`` (scan whole
    zones instead of windows).
    """

    def __init__(self, reach_deg: float, zone_factor: float, xp, dec_min=-90.0, dec_max=90.0):
        self.xp = xp
        self.reach = reach_deg
        k = max(float(zone_factor), 1.0 + REL_MARGIN)
        self.h = min(180.0, max(k * reach_deg, MIN_ZONE_DEG))
        nz_sky = int(np.ceil(180.0 / self.h))
        self.z0 = max(int(np.floor((dec_min + 90.0) / self.h)) - 1, 0)
        self.nz = min(int(np.floor((dec_max + 90.0) / self.h)) + 1, nz_sky - 1) - self.z0 + 1
        lo = -90.0 + self.h * (self.z0 + np.arange(self.nz))
        hi = np.minimum(lo + self.h, 90.0)
        maxabs = np.minimum(np.maximum(np.abs(lo), np.abs(hi)) + 1e-9, 90.0)
        mid = np.abs(np.clip(0.5 * (lo + hi), -90.0, 90.0))
        target = max(reach_deg / CELLS_PER_REACH, MIN_CELL_DEG) / np.maximum(np.cos(np.radians(mid)), 1e-300)
        ncell = np.maximum(np.floor(360.0 / np.minimum(target, 360.0)), 1.0).astype(np.int64)
        reaches_pole = maxabs + reach_deg >= 90.0
        with np.errstate(invalid="ignore", divide="ignore"):
            s = np.sin(np.radians(reach_deg)) / np.cos(np.radians(np.where(reaches_pole, 0.0, maxabs)))
            da = np.degrees(np.arcsin(np.minimum(s, 1.0))) * (1.0 + REL_MARGIN) + ABS_MARGIN_DEG
        whole = reaches_pole | (s >= 1.0) | (da >= WHOLE_ZONE_DA_DEG)
        self.ncell = ncell
        self.cell_w = 360.0 / ncell.astype(np.float64)
        self.offset = np.concatenate([[0], np.cumsum(ncell)[:-1]]).astype(np.int64)
        self.da = np.where(whole, 0.0, da)
        self.whole = whole
        self._t = {name: xp.asarray(getattr(self, name))
                   for name in ("ncell", "cell_w", "offset", "da", "whole")}

    def zone(self, dec):
        """Zone number (int64) of declinations ``dec`` (deg), clipped to the sky."""
        xp = self.xp
        return xp.clip(xp.floor((dec + 90.0) / self.h).astype(xp.int64) - self.z0, 0, self.nz - 1)

    def keys(self, ra, dec):
        """Cell keys (int64) of positions in deg, RA in [0, 360]."""
        z = self.zone(dec)
        c = self.xp.floor(ra / self._t["cell_w"][z]).astype(self.xp.int64)
        return self._t["offset"][z] + self.xp.clip(c, 0, self._t["ncell"][z] - 1)

    def windows(self, z, ra, da, whole):
        """Key ranges of RA windows ``[ra - da, ra + da]`` (deg) in zones ``z``.

        ``whole`` marks windows to widen to the whole zone.  Returns ``lo, hi`` (the
        main [lo, hi) key range per window) and ``wrap, wlo, whi``: the windows
        (indices) that cross RA = 0/360 and the key ranges of their wrapped pieces.
        """
        xp, t = self.xp, self._t
        n, base, w = t["ncell"][z], t["offset"][z], t["cell_w"][z]
        clo = xp.floor((ra - da) / w).astype(xp.int64)
        chi = xp.floor((ra + da) / w).astype(xp.int64)
        whole = whole | (chi - clo + 1 >= n)
        lo = xp.where(whole, base, base + xp.maximum(clo, 0))
        hi = xp.where(whole, base + n, base + xp.minimum(chi, n - 1) + 1)
        wrap = xp.flatnonzero(~whole & ((clo < 0) | (chi >= n)))
        c, n, base = clo[wrap], n[wrap], base[wrap]
        below = c < 0  # else the window passes 360: its piece starts at cell 0
        wlo = xp.where(below, base + c + n, base)
        whi = xp.where(below, base + n, base + chi[wrap] - n + 1)
        return lo, hi, wrap, wlo, whi


class SkyIndex:
    """Zones-and-cells index of catalogue B for searches up to ``max_radius_arcsec``.

    Parameters
    ----------
    ra_deg, dec_deg : arrays of B's positions in degrees.
    max_radius_arcsec : the largest search radius any query will use (arcsec).
    backend : 'auto' | 'numpy' | 'cupy' or a :class:`Backend`.
    xyz : optional precomputed (n, 3) unit vectors (host float64) of the same positions.
    zone_factor : zone height in units of the radius (>= 1); default: chosen from
        B's density by :func:`zone_factor_for`.  Affects speed only.
    """

    def __init__(self, ra_deg, dec_deg, max_radius_arcsec: float, backend=None, xyz=None,
                 zone_factor: float | None = None):
        self.backend: Backend = get_backend(backend)
        xp = self.backend.xp
        ra, dec = _positions(ra_deg, dec_deg, "index")
        self.n = len(ra)
        r_deg = float(max_radius_arcsec) / 3600.0
        if not np.isfinite(r_deg) or r_deg <= 0:
            raise ValueError(f"search radius must be positive and finite, got {max_radius_arcsec} arcsec")
        self.max_radius_arcsec = float(max_radius_arcsec)
        # Largest squared chord searched: chord^2(r) plus the slack a quadrature pair
        # radius needs in chord space (c_a^2 + c_b^2 exceeds chord^2(sqrt(r_a^2 + r_b^2))
        # by at most r^4/24 rad^4; r^2/4 relative covers it at every r).
        self.chord2_max = min(float(chord2_from_arcsec(self.max_radius_arcsec))
                              * (1.0 + np.radians(r_deg) ** 2 / 4.0), 4.0)
        self.reach_deg = float(arcsec_from_chord2(self.chord2_max)) / 3600.0 * (1.0 + REL_MARGIN) \
            + ABS_MARGIN_DEG
        if zone_factor is None:
            zone_factor = zone_factor_for(ra, dec, self.reach_deg)
        extent = (float(dec.min()), float(dec.max())) if self.n else (0.0, 0.0)
        self.grid = _Grid(self.reach_deg, zone_factor, xp, *extent)
        self.order, self.keys_sorted = _sort_keys(self.grid.keys(xp.asarray(ra), xp.asarray(dec)), xp)
        if xyz is None:  # elementwise, so the same numbers as radec_to_xyz(ra, dec)[order]
            o = to_host(self.order)
            self.xyz_sorted = xp.asarray(radec_to_xyz(ra[o], dec[o]))
        else:
            self.xyz_sorted = xp.ascontiguousarray(xp.asarray(np.asarray(xyz, dtype=np.float64))[self.order])

    def query_ranges(self, ra, dec):
        """(nq, NR, 2) int64 [start, end) ranges of sorted-B positions each query scans.

        ``ra`` (in [0, 360]) and ``dec`` in deg, arrays on the index's backend.  Range
        slots ``2 s`` and ``2 s + 1`` hold the RA window and its wrap piece in the zone
        below (s = 0), the query's own zone (s = 1) and the zone above (s = 2); a zone
        the query's circle does not meet gives empty ranges.  The look-ups are fastest
        (nearly sequential) when the queries come sorted by their grid key.
        """
        xp, g = self.backend.xp, self.grid
        out = xp.zeros((ra.shape[0], NR, 2), dtype=xp.int64)
        zq = g.zone(dec)
        da = g._t["da"][zq]
        whole = g._t["whole"][zq]
        for s, dz in enumerate((-1, 0, 1)):
            if dz == 0:
                rows, sub = slice(None), (lambda a: a)
            else:  # only the queries whose circle reaches that zone
                rows = xp.flatnonzero(g.zone(dec + dz * g.reach) != zq)
                if rows.size == 0:
                    continue
                sub = (lambda a, rows=rows: a[rows])
            lo, hi, wrap, wlo, whi = g.windows(sub(zq) + dz, sub(ra), sub(da), sub(whole))
            out[rows, 2 * s, 0] = xp.searchsorted(self.keys_sorted, lo)
            out[rows, 2 * s, 1] = xp.searchsorted(self.keys_sorted, hi)
            if wrap.size:
                wrows = wrap if dz == 0 else rows[wrap]
                out[wrows, 2 * s + 1, 0] = xp.searchsorted(self.keys_sorted, wlo)
                out[wrows, 2 * s + 1, 1] = xp.searchsorted(self.keys_sorted, whi)
        return out

    # -- search ---------------------------------------------------------------
    def query(self, ra_deg, dec_deg, radius_arcsec, radius_b_arcsec=None, xyz=None,
              candidate_budget: int | None = None, progress=None) -> Pairs:
        """All (query i, B row j) within the radius; sorted by (i, j).

        ``radius_arcsec``: a scalar or one value per query (arcsec, >= 0).
        ``radius_b_arcsec``: optional per-B-row term (arcsec, >= 0); the pair's
        radius is then ``sqrt(r_i^2 + r_b_j^2)`` (quadrature, in chord space).  The
        largest pair radius must not exceed ``max_radius_arcsec`` (checked).
        ``xyz``: optional (nq, 3) host unit vectors of the queries.
        ``candidate_budget``: candidate pairs examined at once (memory bound; the
        result does not depend on it).  ``progress``: optional callable(n_done).
        """
        xp = self.backend.xp
        ra, dec = _positions(ra_deg, dec_deg, "query")
        nq = len(ra)
        r_q = _radii(radius_arcsec, nq, "radius_arcsec")
        r_b = None if radius_b_arcsec is None else _radii(radius_b_arcsec, self.n, "radius_b_arcsec")
        uniform = nq > 0 and (np.ndim(radius_arcsec) == 0 or bool(np.all(r_q == r_q[0])))
        qthr2 = chord2_from_arcsec(r_q[:1] if uniform else r_q)  # (1,) when one radius for all
        bthr2 = None if r_b is None else chord2_from_arcsec(r_b)
        worst = (qthr2.max() if nq else 0.0) + (bthr2.max() if (bthr2 is not None and self.n) else 0.0)
        if worst > self.chord2_max:
            raise ValueError(f"a pair radius of {arcsec_from_chord2(worst):.9g} arcsec exceeds the "
                             f"index's max_radius_arcsec={self.max_radius_arcsec:.9g}")
        if nq == 0 or self.n == 0:
            e = np.zeros(0, dtype=np.int64)
            return Pairs(e, e.copy(), np.zeros(0))
        qxyz = radec_to_xyz(ra, dec) if xyz is None else np.asarray(xyz, dtype=np.float64)
        if bthr2 is not None:
            bthr2 = xp.asarray(bthr2)[self.order]
        elif self.backend.is_gpu:
            bthr2 = xp.zeros(self.n)  # the kernel always adds the B term (+0.0 is exact)
        budget = candidate_budget or DEFAULT_CANDIDATE_BUDGET[self.backend.name]
        step = QUERY_BLOCK[self.backend.name]
        out_i, out_j, out_d2 = [], [], []
        for a in range(0, nq, step):
            b = min(a + step, nq)
            qi, jj, d2 = self._query_block(ra[a:b], dec[a:b], qxyz[a:b],
                                           qthr2 if uniform else qthr2[a:b], bthr2,
                                           budget, progress)
            out_i.append(qi + a)
            out_j.append(jj)
            out_d2.append(d2)
        d2 = to_host(xp.concatenate(out_d2))  # separations on the host: identical on both backends
        return Pairs(to_host(xp.concatenate(out_i)), to_host(xp.concatenate(out_j)),
                     sep_arcsec_from_chord2(d2))

    def _query_block(self, ra, dec, qxyz, qthr2, bthr2, budget, progress):
        """Pairs of one block of queries (host inputs), as (i, j, d2) sorted by (i, j)."""
        xp = self.backend.xp
        ra_x, dec_x = xp.asarray(ra), xp.asarray(dec)
        perm = xp.argsort(self.grid.keys(ra_x, dec_x))  # processing order only
        ranges = self.query_ranges(ra_x[perm], dec_x[perm])
        qxyz_p = xp.asarray(qxyz)[perm]
        qthr2_p = xp.asarray(qthr2)
        if qthr2.shape[0] > 1:
            qthr2_p = qthr2_p[perm]
        ncand = (ranges[:, :, 1] - ranges[:, :, 0]).sum(axis=1)
        bounds = _chunk_bounds(to_host(xp.cumsum(ncand)), budget)
        expand = self._expand_cupy if self.backend.is_gpu else _expand_numpy
        out_q, out_j, out_d2 = [], [], []
        for a, b in zip(bounds[:-1], bounds[1:]):
            t = qthr2_p if qthr2_p.shape[0] == 1 else qthr2_p[a:b]
            q, jpos, d2 = expand(ranges[a:b], qxyz_p[a:b], self.xyz_sorted, t, bthr2)
            out_q.append(perm[q + a])
            out_j.append(self.order[jpos])
            out_d2.append(d2)
            if progress is not None:
                progress(int(b - a))
        qi, jj, d2 = xp.concatenate(out_q), xp.concatenate(out_j), xp.concatenate(out_d2)
        o = _pair_order(qi, jj, len(ra), self.n, xp)
        return qi[o], jj[o], d2[o]

    def _expand_cupy(self, ranges, qxyz, bxyz, qthr2, bthr2):
        """CuPy executor of :func:`_expand_numpy`: count, exclusive scan, write kernels."""
        import cupy

        nq = ranges.shape[0]
        if qthr2.shape[0] != nq:
            qthr2 = cupy.broadcast_to(qthr2, (nq,))
        ranges = cupy.ascontiguousarray(ranges, dtype=cupy.int64)
        qxyz = cupy.ascontiguousarray(qxyz, dtype=cupy.float64)
        qthr2 = cupy.ascontiguousarray(qthr2, dtype=cupy.float64)
        bthr2 = cupy.ascontiguousarray(bthr2, dtype=cupy.float64)
        bxyz = cupy.ascontiguousarray(bxyz, dtype=cupy.float64)
        counts = cupy.empty(nq, dtype=cupy.int64)
        threads = 256
        blocks = (nq + threads - 1) // threads
        args = (ranges, qxyz, bxyz, qthr2, bthr2, np.int64(nq))
        load_kernel("sky_pairs.cu", "sky_count")((blocks,), (threads,), args + (counts,))
        offsets = cupy.cumsum(counts) - counts
        total = int(counts.sum())
        out_q = cupy.empty(total, dtype=cupy.int64)
        out_j = cupy.empty(total, dtype=cupy.int64)
        out_d2 = cupy.empty(total, dtype=cupy.float64)
        if total:
            load_kernel("sky_pairs.cu", "sky_write")(
                (blocks,), (threads,), args + (offsets, out_q, out_j, out_d2))
        return out_q, out_j, out_d2


def _positions(ra_deg, dec_deg, what: str):
    """Host float64 (RA wrapped to [0, 360], Dec) in deg, checked finite with |Dec| <= 90."""
    ra = np.asarray(ra_deg, dtype=np.float64).reshape(-1)
    dec = np.asarray(dec_deg, dtype=np.float64).reshape(-1)
    if ra.shape != dec.shape:
        raise ValueError(f"{what} positions: {len(ra)} RA values but {len(dec)} Dec values")
    if not len(ra):
        return ra, dec
    if not (np.isfinite(ra).all() and np.isfinite(dec).all() and np.abs(dec).max() <= 90.0):
        raise ValueError(f"{what} positions must be finite with |Dec| <= 90 deg")
    return (ra if ra.min() >= 0.0 and ra.max() < 360.0 else np.mod(ra, 360.0)), dec


def _radii(r, n: int, name: str) -> np.ndarray:
    """Radii (arcsec) broadcast to ``n``, checked finite and non-negative."""
    r = np.asarray(r, dtype=np.float64)
    if r.ndim > 1 or (r.ndim == 1 and len(r) != n):
        raise ValueError(f"{name} must be a scalar or have one value per source ({n}), got shape {r.shape}")
    r = np.broadcast_to(r, (n,))
    if n and not (np.all(np.isfinite(r)) and r.min() >= 0):
        raise ValueError(f"{name} must be finite and >= 0 arcsec")
    return r


def _sort_keys(keys, xp):
    """(order, keys[order]): ``argsort(keys)`` with equal keys in index order (as a stable
    sort gives), from a fast unstable sort plus a re-sort of the tied entries only."""
    order = xp.argsort(keys)
    ks = keys[order]
    tie = ks[1:] == ks[:-1]
    if not bool(tie.any()):
        return order, ks
    in_tie = xp.zeros(ks.shape[0], dtype=bool)
    in_tie[1:] |= tie
    in_tie[:-1] |= tie
    pos = xp.flatnonzero(in_tie)  # runs of equal keys, contiguous in ks
    sub = order[pos]
    order[pos] = sub[xp.lexsort(xp.stack([sub, ks[pos]]))]
    return order, ks


def _pair_order(qi, jj, nq: int, nb: int, xp):
    """Permutation that sorts pairs by (i, j); pairs are unique, so any sort gives it."""
    if nq * nb < 2**62:
        return xp.argsort(qi * nb + jj)
    return xp.lexsort(xp.stack([jj, qi]))


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


def _expand_numpy(ranges, qxyz, bxyz, qthr2, bthr2=None):
    """NumPy twin of kernels/sky_pairs.cuh: the kept pairs of every query, in kernel order.

    ``ranges`` (nq, NR, 2) int64 [start, end) positions in sorted B; ``qxyz`` (nq, 3)
    and ``bxyz`` (nb, 3) float64 unit vectors; ``qthr2`` (nq) or (1,) and ``bthr2``
    (nb) or None: squared chord radii.  Returns (q, jpos, d2): query number, sorted-B
    position, squared chord, ordered by query, then range, then position -- the
    same arithmetic (``dx*dx + dy*dy + dz*dz <= qthr2 + bthr2``) as the kernel.
    """
    nq = ranges.shape[0]
    starts = ranges[:, :, 0].reshape(-1)
    lens = (ranges[:, :, 1] - ranges[:, :, 0]).reshape(-1)
    total = int(lens.sum())
    per_q = lens.reshape(nq, -1).sum(axis=1)
    q = np.repeat(np.arange(nq, dtype=np.int64), per_q)
    jpos = np.arange(total, dtype=np.int64)
    jpos += np.repeat(starts - (np.cumsum(lens) - lens), lens)
    a = np.repeat(qxyz, per_q, axis=0)
    b = np.take(bxyz, jpos, axis=0)
    a -= b
    d2 = a[:, 0] * a[:, 0] + a[:, 1] * a[:, 1] + a[:, 2] * a[:, 2]
    thr = qthr2[0] if len(qthr2) == 1 else np.take(qthr2, q)
    if bthr2 is not None:
        thr = thr + np.take(bthr2, jpos)
    keep = np.flatnonzero(d2 <= thr)
    return q[keep], jpos[keep], d2[keep]


def pairs(ra_a, dec_a, ra_b, dec_b, radius_arcsec, radius_b_arcsec=None, backend=None,
          candidate_budget: int | None = None, progress=None) -> Pairs:
    """All pairs (i in A, j in B) within the radius, sorted by (i, j).

    Positions in deg; ``radius_arcsec`` is a scalar or per-A array (arcsec);
    ``radius_b_arcsec`` an optional per-B array combined in quadrature (see the
    module docstring).
    """
    r_a = _radii(radius_arcsec, len(np.atleast_1d(ra_a)), "radius_arcsec")
    rmax2 = float(r_a.max()) ** 2 if r_a.size else 0.0
    if radius_b_arcsec is not None and len(np.atleast_1d(ra_b)):
        rmax2 += float(_radii(radius_b_arcsec, len(np.atleast_1d(ra_b)), "radius_b_arcsec").max()) ** 2
    rmax = max(np.sqrt(rmax2), 1e-6)
    index = SkyIndex(ra_b, dec_b, rmax, backend=backend)
    return index.query(ra_a, dec_a, radius_arcsec, radius_b_arcsec,
                       candidate_budget=candidate_budget, progress=progress)
