"""Scaling past one machine: sky partitions with margins, scheduled by Dask.

The sky is cut into adaptive partitions that hold about the same number of
catalogue-B sources (declination bands at quantiles of B's declinations, each
band cut in RA at quantiles of its own sources) -- the equal-count idea behind
HATS/LSDB's adaptive HEALPix tiling, without a HEALPix dependency.  Every
source of A belongs to the *core* of exactly one partition; a partition's task
gets the A sources of its core and the B sources of its core plus a *margin*
wide enough to hold every neighbour within the largest search radius (in RA the
margin is widened by 1/cos Dec; a band within the radius of a pole takes all RA).
Each task runs the same single-machine code (:func:`gpumatch.sky.pairs`) and
returns global row numbers, so the union of the tasks' pairs, sorted by (i, j),
is exactly the single-machine result.

The tasks are ``dask.delayed`` calls: pass a ``distributed.Client`` (a cluster of
machines, each with its own GPU or CPU backend) or a scheduler name ('threads',
'processes', 'synchronous').  Dask is an optional dependency (``pip install
'gpumatch[dask]'``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .sky import Pairs, pairs


@dataclass
class SkyPartition:
    """One partition: core RA range [ra_lo, ra_hi) and Dec range [dec_lo, dec_hi), in deg."""

    ra_lo: float
    ra_hi: float
    dec_lo: float
    dec_hi: float

    def core(self, ra, dec) -> np.ndarray:
        """Boolean mask of the positions in this partition's core (half-open ranges)."""
        in_dec = (dec >= self.dec_lo) & ((dec < self.dec_hi) | ((self.dec_hi >= 90.0) & (dec <= 90.0)))
        return in_dec & (ra >= self.ra_lo) & (ra < self.ra_hi)

    def with_margin(self, ra, dec, margin_deg: float) -> np.ndarray:
        """Mask of the positions within the core widened by ``margin_deg`` (a superset of all neighbours)."""
        lo, hi = self.dec_lo - margin_deg, self.dec_hi + margin_deg
        in_dec = (dec >= lo) & (dec <= hi)
        edge = max(abs(lo), abs(hi))
        if edge >= 90.0 or self.ra_hi - self.ra_lo >= 360.0:
            return in_dec
        s = np.sin(np.radians(margin_deg)) / np.cos(np.radians(edge))
        if s >= 1.0:
            return in_dec
        w = np.degrees(np.arcsin(s)) * (1 + 1e-9) + 1e-12
        if self.ra_hi - self.ra_lo + 2 * w >= 360.0:
            return in_dec
        a, b = self.ra_lo - w, self.ra_hi + w
        in_ra = ((ra >= a) & (ra <= b)) | (ra >= a + 360.0) | (ra <= b - 360.0)
        return in_dec & in_ra


def plan_partitions(ra_b, dec_b, n_partitions: int) -> list[SkyPartition]:
    """About ``n_partitions`` equal-count partitions of the whole sphere from B's positions (deg)."""
    ra_b = np.mod(np.asarray(ra_b, dtype=np.float64), 360.0)
    dec_b = np.asarray(dec_b, dtype=np.float64)
    n_partitions = max(int(n_partitions), 1)
    n_bands = max(int(round(np.sqrt(n_partitions))), 1)
    per_band = max(int(round(n_partitions / n_bands)), 1)
    if len(dec_b) == 0:
        return [SkyPartition(0.0, 360.0, -90.0, 90.0)]
    cuts = np.quantile(dec_b, np.linspace(0, 1, n_bands + 1)[1:-1]) if n_bands > 1 else np.array([])
    dec_edges = np.unique(np.concatenate([[-90.0], cuts, [90.0]]))
    parts = []
    for d0, d1 in zip(dec_edges[:-1], dec_edges[1:]):
        sel = (dec_b >= d0) & (dec_b < d1)
        ra_in = ra_b[sel]
        ra_cuts = np.quantile(ra_in, np.linspace(0, 1, per_band + 1)[1:-1]) if (per_band > 1 and len(ra_in)) \
            else np.array([])
        ra_edges = np.unique(np.concatenate([[0.0], ra_cuts, [360.0]]))
        parts += [SkyPartition(float(a), float(b), float(d0), float(d1)) for a, b in zip(ra_edges[:-1], ra_edges[1:])]
    return parts


def _pairs_task(ia, ra_a, dec_a, r_a, jb, ra_b, dec_b, r_b, backend):
    """One partition's work: local pairs mapped back to global rows."""
    p = pairs(ra_a, dec_a, ra_b, dec_b, r_a, r_b, backend=backend)
    return ia[p.i], jb[p.j], p.sep_arcsec


def partitioned_pairs(ra_a, dec_a, ra_b, dec_b, radius_arcsec, radius_b_arcsec=None, n_partitions: int = 16,
                      scheduler="threads", backend=None) -> Pairs:
    """All pairs within the radius (as :func:`gpumatch.sky.pairs`), computed per sky partition with Dask.

    ``scheduler``: a ``distributed.Client`` or a Dask scheduler name.  The result is
    identical to the single-machine search: same pairs, same (i, j) order, same separations.
    """
    import dask

    ra_a = np.mod(np.asarray(ra_a, dtype=np.float64), 360.0)
    dec_a = np.asarray(dec_a, dtype=np.float64)
    ra_b = np.mod(np.asarray(ra_b, dtype=np.float64), 360.0)
    dec_b = np.asarray(dec_b, dtype=np.float64)
    r_a = np.broadcast_to(np.asarray(radius_arcsec, dtype=np.float64), ra_a.shape)
    r_b = None if radius_b_arcsec is None else \
        np.broadcast_to(np.asarray(radius_b_arcsec, dtype=np.float64), ra_b.shape)
    r_max = (r_a.max() if len(r_a) else 0.0) ** 2 + ((r_b.max() ** 2) if (r_b is not None and len(r_b)) else 0.0)
    # the sky search's own reach includes the chord-space slack; pad the margin generously (1e-6 relative)
    margin_deg = np.sqrt(r_max) / 3600.0 * (1 + 1e-6) + 1e-9
    tasks = []
    for part in plan_partitions(ra_b, dec_b, n_partitions):
        ia = np.flatnonzero(part.core(ra_a, dec_a))
        if len(ia) == 0:
            continue
        jb = np.flatnonzero(part.with_margin(ra_b, dec_b, margin_deg))
        if len(jb) == 0:
            continue
        tasks.append(dask.delayed(_pairs_task)(ia, ra_a[ia], dec_a[ia], r_a[ia], jb, ra_b[jb], dec_b[jb],
                                               None if r_b is None else r_b[jb], backend))
    if isinstance(scheduler, str) or scheduler is None:
        results = dask.compute(*tasks, scheduler=scheduler)
    else:  # a distributed.Client
        results = scheduler.gather(scheduler.compute(tasks))
    if not results:
        e = np.zeros(0, dtype=np.int64)
        return Pairs(e, e.copy(), np.zeros(0))
    i = np.concatenate([r[0] for r in results])
    j = np.concatenate([r[1] for r in results])
    sep = np.concatenate([r[2] for r in results])
    o = np.lexsort((j, i))
    return Pairs(i[o], j[o], sep[o])
