"""Islands: groups of sources that may be counterparts of one another (Wilson & Naylor 2018, 6.1).

Contract
--------
A pair (A row i, B row j) *overlaps* when its separation lies inside the radius that
holds a fraction ``y_cut`` (default 0.997) of the pair's AUF convolution G, i.e. when
``CDF_G(sep) <= y_cut``.  Islands are the connected components of the bipartite
overlap graph; a source with no overlap is an island of its own.

* Candidates come from the grid-hashed search of :mod:`gpumatch.sky`.  For Gaussian
  AUFs (no perturbation model) ``R_Y^2 = k_Y sigma^2`` with ``k_Y = -2 ln(1 - Y)`` and
  ``sigma^2 = sigma_a^2 + sigma_b^2``, so the search uses the per-pair quadrature
  radius ``sqrt(k_Y sigma_a^2 + k_Y sigma_b^2)`` (1e-7 wider) and the kept set is
  decided by the radius test ``sep^2 <= k_Y sigma^2`` -- no transcendental function
  touches the decision.  With perturbation models the search radius is the catalogue-
  wide ``max_sep_arcsec`` and the decision is ``cdf <= y_cut`` with the CDF from
  :func:`gpumatch.auf.pair_auf` (tie rule: on the GPU a CDF within ``TIE_TOL`` = 1e-12
  of the cut is re-evaluated with NumPy, whose value decides); the default search radius is then the Gaussian one
  plus both models' ``max_offset`` (a perturbation moves a position by at most that).
* ``max_sep_arcsec`` (optional, arcsec) is also an absolute cap, as in macauff: pairs
  farther apart are never candidates.  Default: the largest possible ``R_Y`` given the
  largest variances of both catalogues.
* Separations used for decisions are recomputed on the host from the host unit vectors
  with the kernel's operation order, so the pair set and every decision are identical
  on both backends; G and the CDF are evaluated on the chosen backend (1e-12 relative).
* Position variances are circularised: ``sigma^2 = (s_aa + s_dd) / 2`` arcsec^2.
* Node numbering: A rows are nodes 0..n_a-1, B rows are nodes n_a..n_a+n_b-1.  An
  island's canonical key is its smallest node; islands are numbered 0.. in the order
  of that key, so labels are identical on both backends (GPU: hook + pointer-jumping
  kernel ``kernels/islands_cc.cu``; NumPy: ``scipy.sparse.csgraph``).
* Edge of field: a source whose distance to the coverage edge is less than its own
  largest possible ``R_Y`` (``R_Y(sigma_x^2 + max sigma_other^2)``, plus the
  perturbation offsets; at most ``max_sep_arcsec``), or that lies
  outside the coverage, flags its island (``island_edge``); nothing is dropped.

Units: positions in degrees, separations and radii in arcsec, variances in arcsec^2,
G in arcsec^-2, areas in arcsec^2.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import pandas as pd

from .backend import get_backend, load_kernel, to_host
from .catalogue import ARCSEC_PER_DEG, ARCSEC_PER_RAD, Catalogue, radec_to_xyz
from .sky import pairs as sky_pairs

DEFAULT_Y_CUT = 0.997
SEARCH_MARGIN = 1e-7  # relative widening of the candidate search over the exact radius
TIE_TOL = 1e-12  # |CDF - Y| below which a GPU-evaluated CDF is re-decided on the host


def k_of(y: float) -> float:
    """``k_Y = -2 ln(1 - Y)``: for a circular Gaussian of variance s^2, ``R_Y^2 = k_Y s^2``."""
    y = float(y)
    if not 0.0 < y < 1.0:
        raise ValueError(f"a CDF fraction must lie in (0, 1), got {y}")
    return -2.0 * np.log1p(-y)


def sigma2_of(cat: Catalogue) -> np.ndarray:
    """Circularised position variance (s_aa + s_dd) / 2 in arcsec^2, shape (n,)."""
    if cat.cov is None:
        raise ValueError(f"catalogue {cat.name!r} has no position errors: islands need an AUF")
    return 0.5 * (cat.cov[:, 0] + cat.cov[:, 1])


# -- coverage -------------------------------------------------------------------
class Coverage:
    """The sky region both catalogues cover.  Subclasses give ``contains``,
    ``near_edge``, ``area_arcsec2`` and ``grid`` (equal-area sample points)."""

    def contains(self, ra, dec) -> np.ndarray:
        raise NotImplementedError

    def near_edge(self, ra, dec, radius_arcsec) -> np.ndarray:
        raise NotImplementedError

    def area_arcsec2(self) -> float:
        raise NotImplementedError

    def grid(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError


@dataclass
class SkyBox(Coverage):
    """RA/Dec limits in degrees.  ``ra_min > ra_max`` means the box crosses RA 0;
    ``ra_min = 0, ra_max = 360`` is a full band in RA (no RA edges)."""

    ra_min: float
    ra_max: float
    dec_min: float
    dec_max: float

    def __post_init__(self):
        if not -90.0 <= self.dec_min < self.dec_max <= 90.0:
            raise ValueError(f"bad Dec limits [{self.dec_min}, {self.dec_max}] deg")
        self.full_ra = (self.ra_max - self.ra_min) >= 360.0
        self.ra_min = float(np.mod(self.ra_min, 360.0)) if not self.full_ra else 0.0
        self.ra_max = float(np.mod(self.ra_max, 360.0)) if not self.full_ra else 360.0
        self.width_deg = 360.0 if self.full_ra else float(np.mod(self.ra_max - self.ra_min, 360.0))

    def _dra(self, ra):
        """RA offset east of ra_min in [0, 360) deg."""
        return np.mod(np.asarray(ra, dtype=np.float64) - self.ra_min, 360.0)

    def contains(self, ra, dec):
        dec = np.asarray(dec, dtype=np.float64)
        ok = (dec >= self.dec_min) & (dec <= self.dec_max)
        return ok if self.full_ra else ok & (self._dra(ra) <= self.width_deg)

    def edge_distance_arcsec(self, ra, dec) -> np.ndarray:
        """Angular distance (arcsec) to the nearest edge; negative outside.  The RA
        edges are taken as whole meridian great circles, so near the corners the
        distance is underestimated (conservative for edge flags)."""
        dec = np.asarray(dec, dtype=np.float64)
        d = np.minimum(dec - self.dec_min, self.dec_max - dec) * ARCSEC_PER_DEG
        if not self.full_ra:
            cd = np.cos(np.radians(dec))
            dra = self._dra(ra)
            west = np.radians(np.minimum(dra, 90.0))
            east = np.radians(np.minimum(np.maximum(self.width_deg - dra, -90.0), 90.0))
            d_w = np.arcsin(np.clip(cd * np.sin(west), -1, 1)) * ARCSEC_PER_RAD
            d_e = np.arcsin(np.clip(cd * np.sin(east), -1, 1)) * ARCSEC_PER_RAD
            inside_ra = dra <= self.width_deg
            d_ra = np.where(inside_ra, np.minimum(d_w, d_e), -np.abs(d_e))
            d = np.minimum(d, d_ra)
        return d

    def near_edge(self, ra, dec, radius_arcsec):
        return self.edge_distance_arcsec(ra, dec) < np.asarray(radius_arcsec, dtype=np.float64)

    def area_arcsec2(self) -> float:
        s = np.sin(np.radians(self.dec_max)) - np.sin(np.radians(self.dec_min))
        return float(np.radians(self.width_deg) * s * ARCSEC_PER_RAD**2)

    def grid(self, n: int):
        """About n equal-area cell centres (uniform in RA and in sin Dec)."""
        s0, s1 = np.sin(np.radians(self.dec_min)), np.sin(np.radians(self.dec_max))
        h_rad = np.radians(self.dec_max - self.dec_min)
        w_rad = np.radians(self.width_deg) * np.cos(np.radians(0.5 * (self.dec_min + self.dec_max)))
        ndec = max(1, int(round(np.sqrt(n * h_rad / max(w_rad, 1e-300)))))
        nra = max(1, int(round(n / ndec)))
        ra = self.ra_min + (np.arange(nra) + 0.5) * (self.width_deg / nra)
        dec = np.degrees(np.arcsin(s0 + (np.arange(ndec) + 0.5) * ((s1 - s0) / ndec)))
        rr, dd = np.meshgrid(np.mod(ra, 360.0), dec)
        return rr.ravel(), dd.ravel()

    def intersect(self, other: "SkyBox") -> "SkyBox":
        """The overlap of two boxes (the larger piece when two RA pieces overlap)."""
        d0, d1 = max(self.dec_min, other.dec_min), min(self.dec_max, other.dec_max)
        if d1 <= d0:
            raise ValueError("the coverage boxes do not overlap in Dec")
        if self.full_ra or other.full_ra:
            lo, w = (other.ra_min, other.width_deg) if self.full_ra else (self.ra_min, self.width_deg)
            return SkyBox(lo, lo + w, d0, d1) if w < 360.0 else SkyBox(0.0, 360.0, d0, d1)
        s = float(np.mod(other.ra_min - self.ra_min, 360.0))
        best = (0.0, 0.0)
        for start in (s, s - 360.0):
            lo, hi = max(0.0, start), min(self.width_deg, start + other.width_deg)
            if hi - lo > best[1] - best[0]:
                best = (lo, hi)
        if best[1] <= best[0]:
            raise ValueError("the coverage boxes do not overlap in RA")
        return SkyBox(self.ra_min + best[0], self.ra_min + best[1], d0, d1)

    @classmethod
    def around(cls, *ra_dec_pairs, pad_arcsec: float = 0.0) -> "SkyBox":
        """The smallest box holding all given (ra, dec) arrays, RA wrap handled by
        cutting the circle at the largest empty RA gap; padded by ``pad_arcsec``."""
        ra = np.concatenate([np.mod(np.asarray(r, dtype=np.float64), 360.0) for r, _ in ra_dec_pairs])
        dec = np.concatenate([np.asarray(d, dtype=np.float64) for _, d in ra_dec_pairs])
        pad = pad_arcsec / ARCSEC_PER_DEG
        d0, d1 = max(-90.0, dec.min() - pad), min(90.0, dec.max() + pad)
        rs = np.sort(ra)
        gaps = np.diff(np.concatenate([rs, [rs[0] + 360.0]]))
        g = int(np.argmax(gaps))
        lo, hi = rs[(g + 1) % len(rs)], rs[g]
        cmax = np.cos(np.radians(max(abs(d0), abs(d1))))
        pad_ra = pad / max(cmax, 1e-12)
        width = np.mod(hi - lo, 360.0) + 2 * pad_ra
        if width >= 360.0 or gaps[g] <= 2 * pad_ra:
            return cls(0.0, 360.0, d0, d1)
        if d1 <= d0:
            d1 = min(90.0, d0 + 1e-9)
        return cls(lo - pad_ra, hi + pad_ra, d0, d1)


@dataclass
class CoverageFunction(Coverage):
    """Coverage given by a function ``contains(ra_deg, dec_deg) -> bool array`` inside
    the bounding ``box``.  Near-edge tests probe ``n_probe`` points on the circle of
    the given radius (and on the half-radius circle); the area is the covered fraction
    of an equal-area grid of ``n_area`` points in the box times the box area."""

    contains_fn: Callable
    box: SkyBox
    n_probe: int = 16
    n_area: int = 1_000_000
    _area: float | None = field(default=None, repr=False)

    def contains(self, ra, dec):
        return np.asarray(self.contains_fn(ra, dec), dtype=bool) & self.box.contains(ra, dec)

    def near_edge(self, ra, dec, radius_arcsec):
        ra = np.asarray(ra, dtype=np.float64)
        dec = np.asarray(dec, dtype=np.float64)
        r = np.broadcast_to(np.asarray(radius_arcsec, dtype=np.float64), ra.shape) / ARCSEC_PER_DEG
        out = ~self.contains(ra, dec)
        cd = np.maximum(np.cos(np.radians(dec)), 1e-12)
        for frac in (0.5, 1.0):
            for t in np.arange(self.n_probe) * (2 * np.pi / self.n_probe):
                pr = ra + frac * r * np.sin(t) / cd
                pd_ = np.clip(dec + frac * r * np.cos(t), -90.0, 90.0)
                out |= ~self.contains(np.mod(pr, 360.0), pd_)
        return out

    def area_arcsec2(self) -> float:
        if self._area is None:
            ra, dec = self.box.grid(self.n_area)
            self._area = float(self.box.area_arcsec2() * self.contains(ra, dec).mean())
        return self._area

    def grid(self, n: int):
        frac = self.area_arcsec2() / self.box.area_arcsec2()
        ra, dec = self.box.grid(int(np.ceil(n / max(frac, 1e-6))))
        keep = self.contains(ra, dec)
        return ra[keep], dec[keep]


def default_coverage(ra_a, dec_a, ra_b, dec_b) -> SkyBox:
    """The overlap of the two catalogues' :meth:`SkyBox.around` boxes; the box around
    both when they do not overlap (or a catalogue is empty or a single point)."""
    boxes = [SkyBox.around((r, d)) for r, d in ((ra_a, dec_a), (ra_b, dec_b)) if len(r)]
    if len(boxes) == 2:
        try:
            inter = boxes[0].intersect(boxes[1])
            if inter.area_arcsec2() > 0:
                return inter
        except ValueError:
            pass
    pts = [(r, d) for r, d in ((ra_a, dec_a), (ra_b, dec_b)) if len(r)]
    if not pts:
        raise ValueError("both catalogues are empty: no coverage can be inferred")
    return SkyBox.around(*pts)


# -- connected components ---------------------------------------------------------
def connected_components(n_nodes: int, u, v, backend=None):
    """Component label of every node: the smallest node index of its component.

    ``u``, ``v``: edge ends (int64 node numbers, host or device arrays).  Returns an
    int64 array (n_nodes,) on the backend.  NumPy: scipy.sparse.csgraph; CuPy: the
    hook/jump kernels of ``kernels/islands_cc.cu``.  Both give the same labels.
    """
    be = get_backend(backend)
    if be.is_gpu:
        return _components_cupy(n_nodes, be.xp.asarray(u, dtype=be.xp.int64),
                                be.xp.asarray(v, dtype=be.xp.int64))
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components as cc

    u = np.asarray(to_host(u), dtype=np.int64)
    v = np.asarray(to_host(v), dtype=np.int64)
    graph = coo_matrix((np.ones(len(u), dtype=np.int8), (u, v)), shape=(n_nodes, n_nodes)).tocsr()
    _, comp = cc(graph, directed=False)
    _, first = np.unique(comp, return_index=True)  # first node of each component = its minimum
    return first[comp].astype(np.int64)


def _components_cupy(n_nodes: int, u, v):
    import cupy

    label = cupy.arange(n_nodes, dtype=cupy.int64)
    ne = int(u.shape[0])
    if ne == 0 or n_nodes == 0:
        return label
    u, v = cupy.ascontiguousarray(u), cupy.ascontiguousarray(v)
    hook = load_kernel("islands_cc.cu", "cc_hook")
    jump = load_kernel("islands_cc.cu", "cc_jump")
    changed = cupy.zeros(1, dtype=cupy.int32)
    threads = 256
    eb, nb = (ne + threads - 1) // threads, (n_nodes + threads - 1) // threads
    while True:
        changed.fill(0)
        hook((eb,), (threads,), (u, v, np.int64(ne), label, changed))
        jump((nb,), (threads,), (np.int64(n_nodes), label))
        if int(changed.get()[0]) == 0:
            return label


# -- the island set ----------------------------------------------------------------
@dataclass
class IslandSet:
    """Overlap pairs and islands of a two-catalogue match.

    Pairs (all length n_pairs, sorted by (ia, ib)): ``ia``, ``ib`` rows,
    ``sep_arcsec``, ``sigma2_arcsec2`` (sigma_a^2 + sigma_b^2), ``G_per_arcsec2``
    (AUF convolution at the separation), ``cdf`` (its integral within the separation).
    Sources: ``label_a`` (n_a,), ``label_b`` (n_b,) island numbers; ``edge_a``,
    ``edge_b`` near-edge flags; ``sigma2_a``, ``sigma2_b`` variances (arcsec^2).
    Islands (length n_islands): ``island_n_a``, ``island_n_b``, ``island_edge``,
    ``island_key`` (smallest node).  CSR lookups: ``a_ptr``/``a_rows`` (sorted A rows
    per island), ``b_ptr``/``b_rows``, ``pair_ptr``/``pair_idx`` (indices into the pair
    arrays, ascending, per island).
    """

    n_a: int
    n_b: int
    ia: np.ndarray
    ib: np.ndarray
    sep_arcsec: np.ndarray
    sigma2_arcsec2: np.ndarray
    G_per_arcsec2: np.ndarray
    cdf: np.ndarray
    label_a: np.ndarray
    label_b: np.ndarray
    island_key: np.ndarray
    island_n_a: np.ndarray
    island_n_b: np.ndarray
    island_edge: np.ndarray
    a_ptr: np.ndarray
    a_rows: np.ndarray
    b_ptr: np.ndarray
    b_rows: np.ndarray
    pair_ptr: np.ndarray
    pair_idx: np.ndarray
    edge_a: np.ndarray
    edge_b: np.ndarray
    sigma2_a: np.ndarray
    sigma2_b: np.ndarray
    y_cut: float
    max_sep_arcsec: float
    gaussian: bool
    coverage: Any = None
    backend: str = "numpy"
    perturbation: dict | None = field(default=None, repr=False)
    meta: dict = field(default_factory=dict)

    @property
    def n_islands(self) -> int:
        return len(self.island_key)

    @property
    def n_pairs(self) -> int:
        return len(self.ia)

    def members(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(A rows, B rows) of island k, each ascending."""
        return (self.a_rows[self.a_ptr[k]:self.a_ptr[k + 1]],
                self.b_rows[self.b_ptr[k]:self.b_ptr[k + 1]])

    def pairs_of(self, k: int) -> np.ndarray:
        """Indices into the pair arrays of island k's overlaps, ascending."""
        return self.pair_idx[self.pair_ptr[k]:self.pair_ptr[k + 1]]

    def within(self, y: float) -> np.ndarray:
        """Boolean mask over pairs: separation inside the pair's R_y (y <= y_cut).
        Gaussian: the radius test ``sep^2 <= k_y sigma^2``; else ``cdf <= y`` (tie rule
        as for the cut)."""
        if y > self.y_cut:
            raise ValueError(f"only pairs inside R_{self.y_cut} are stored; R_{y} needs a new search")
        if self.gaussian:
            return self.sep_arcsec * self.sep_arcsec <= k_of(y) * self.sigma2_arcsec2
        return _cdf_test(self.cdf, y, self.sep_arcsec, self.sigma2_arcsec2, self.ia, self.ib,
                         self.perturbation, get_backend(self.backend))

    def table(self) -> pd.DataFrame:
        """One row per island: island, key (smallest node), n_a, n_b, edge."""
        return pd.DataFrame({"island": np.arange(self.n_islands), "key": self.island_key,
                             "n_a": self.island_n_a, "n_b": self.island_n_b,
                             "edge": self.island_edge})

    def size_stats(self) -> dict:
        """Counts of islands by (n_a, n_b), maxima, and totals (plain Python types)."""
        na, nb = self.island_n_a, self.island_n_b
        combo, counts = np.unique(np.stack([na, nb], axis=1), axis=0, return_counts=True) \
            if self.n_islands else (np.zeros((0, 2), dtype=np.int64), np.zeros(0, dtype=np.int64))
        total = na + nb
        return {
            "n_islands": int(self.n_islands),
            "n_pairs": int(self.n_pairs),
            "n_edge_islands": int(self.island_edge.sum()),
            "n_edge_sources_a": int(self.edge_a.sum()),
            "n_edge_sources_b": int(self.edge_b.sum()),
            "n_lonely_a": int(((na == 1) & (nb == 0)).sum()),
            "n_lonely_b": int(((na == 0) & (nb == 1)).sum()),
            "max_n_a": int(na.max()) if self.n_islands else 0,
            "max_n_b": int(nb.max()) if self.n_islands else 0,
            "max_size": int(total.max()) if self.n_islands else 0,
            "by_size": {f"{int(a)}x{int(b)}": int(c) for (a, b), c in zip(combo, counts)},
        }


def build_islands(cat_a: Catalogue, cat_b: Catalogue, *, y_cut: float = DEFAULT_Y_CUT,
                  max_sep_arcsec: float | None = None, coverage: Coverage | None = None,
                  perturbation: dict | None = None, backend=None,
                  candidate_budget: int | None = None) -> IslandSet:
    """Overlap pairs and islands of catalogues A and B (see the module docstring).

    ``coverage``: a :class:`Coverage`; default the overlap of the two catalogues'
    :meth:`SkyBox.around` boxes (pass the real coverage whenever it is known: a sparse
    catalogue's box under-covers, and positions scattered by large errors over-cover).
    ``perturbation``: optional dict of per-source AUF perturbation inputs passed through
    to :func:`gpumatch.auf.pair_auf` -- keys ``cell_a`` (n_a,), ``model_a``, ``cell_b``
    (n_b,), ``model_b``, ``grid`` (cells are per source; the pairs' cells are gathered
    here).
    """
    return find_islands(cat_a.ra, cat_a.dec, sigma2_of(cat_a), cat_b.ra, cat_b.dec, sigma2_of(cat_b),
                        y_cut=y_cut, max_sep_arcsec=max_sep_arcsec, coverage=coverage,
                        perturbation=perturbation, backend=backend, xyz_a=cat_a.xyz, xyz_b=cat_b.xyz,
                        candidate_budget=candidate_budget)


def find_islands(ra_a, dec_a, sigma2_a, ra_b, dec_b, sigma2_b, *, y_cut: float = DEFAULT_Y_CUT,
                 max_sep_arcsec: float | None = None, coverage: Coverage | None = None,
                 perturbation: dict | None = None, backend=None, xyz_a=None, xyz_b=None,
                 candidate_budget: int | None = None) -> IslandSet:
    """Array form of :func:`build_islands`: positions in deg, variances in arcsec^2."""
    be = get_backend(backend)
    s2a = np.asarray(sigma2_a, dtype=np.float64)
    s2b = np.asarray(sigma2_b, dtype=np.float64)
    na, nb = len(s2a), len(s2b)
    if not (np.all(np.isfinite(s2a)) and np.all(s2a > 0) and np.all(np.isfinite(s2b)) and np.all(s2b > 0)):
        raise ValueError("position variances must be finite and positive")
    k = k_of(y_cut)
    gaussian = perturbation is None
    # A perturbation moves a position by at most its model's max_offset (the PSF radius),
    # so R_Y of a perturbed pair is at most the Gaussian R_Y plus both max offsets.
    pad = 0.0 if gaussian else sum(float(getattr(perturbation.get(f"model_{s}"), "max_offset", 0.0))
                                   for s in ("a", "b"))
    r_max = float(np.sqrt(k * ((s2a.max() if na else 0.0) + (s2b.max() if nb else 0.0)))) + pad
    cap = r_max if max_sep_arcsec is None else float(max_sep_arcsec)
    xyz_a = radec_to_xyz(ra_a, dec_a) if xyz_a is None else np.asarray(xyz_a, dtype=np.float64)
    xyz_b = radec_to_xyz(ra_b, dec_b) if xyz_b is None else np.asarray(xyz_b, dtype=np.float64)
    cov = coverage if coverage is not None else default_coverage(ra_a, dec_a, ra_b, dec_b)

    # Candidate search (device), then every decision on host-recomputed separations.
    kw = {} if candidate_budget is None else {"candidate_budget": candidate_budget}
    if na and nb:
        if gaussian and cap >= r_max:
            p = sky_pairs(ra_a, dec_a, ra_b, dec_b, np.sqrt(k * s2a) * (1 + SEARCH_MARGIN),
                          np.sqrt(k * s2b) * (1 + SEARCH_MARGIN), backend=be, **kw)
        else:
            p = sky_pairs(ra_a, dec_a, ra_b, dec_b, cap * (1 + SEARCH_MARGIN), backend=be, **kw)
        ia, ib = p.i, p.j
    else:
        ia = ib = np.zeros(0, dtype=np.int64)
    sep = host_sep_arcsec(xyz_a, xyz_b, ia, ib)
    s2 = s2a[ia] + s2b[ib]
    G, cdf = _pair_auf(sep, s2, ia, ib, perturbation, be)
    keep = sep <= cap
    keep &= (sep * sep <= k * s2) if gaussian else _cdf_test(cdf, y_cut, sep, s2, ia, ib, perturbation, be)
    ia, ib, sep, s2, G, cdf = ia[keep], ib[keep], sep[keep], s2[keep], G[keep], cdf[keep]

    # Components over nodes (A: 0..na-1, B: na..), canonical numbering by smallest node.
    xp = be.xp
    n_nodes = na + nb
    root = connected_components(n_nodes, xp.asarray(ia), xp.asarray(ib + na), backend=be)
    is_root = root == xp.arange(n_nodes, dtype=xp.int64)
    number = xp.cumsum(is_root.astype(xp.int64)) - 1
    label = to_host(number[root]).astype(np.int64)
    key = to_host(xp.flatnonzero(is_root)).astype(np.int64)
    n_isl = len(key)
    label_a, label_b = label[:na], label[na:]

    # Edge flags: a source within its largest possible R_Y of the edge (or outside).
    r_edge_a = np.minimum(np.sqrt(k * (s2a + (s2b.max() if nb else 0.0))) + pad, cap)
    r_edge_b = np.minimum(np.sqrt(k * (s2b + (s2a.max() if na else 0.0))) + pad, cap)
    edge_a = np.asarray(cov.near_edge(ra_a, dec_a, r_edge_a), dtype=bool) if na else np.zeros(0, bool)
    edge_b = np.asarray(cov.near_edge(ra_b, dec_b, r_edge_b), dtype=bool) if nb else np.zeros(0, bool)
    island_edge = np.zeros(n_isl, dtype=bool)
    island_edge[label_a[edge_a]] = True
    island_edge[label_b[edge_b]] = True

    a_ptr, a_rows = _csr(label_a, n_isl)
    b_ptr, b_rows = _csr(label_b, n_isl)
    pair_ptr, pair_idx = _csr(label_a[ia], n_isl)
    return IslandSet(
        n_a=na, n_b=nb, ia=ia, ib=ib, sep_arcsec=sep, sigma2_arcsec2=s2, G_per_arcsec2=G, cdf=cdf,
        label_a=label_a, label_b=label_b, island_key=key,
        island_n_a=np.diff(a_ptr), island_n_b=np.diff(b_ptr), island_edge=island_edge,
        a_ptr=a_ptr, a_rows=a_rows, b_ptr=b_ptr, b_rows=b_rows, pair_ptr=pair_ptr, pair_idx=pair_idx,
        edge_a=edge_a, edge_b=edge_b, sigma2_a=s2a, sigma2_b=s2b, y_cut=float(y_cut),
        max_sep_arcsec=cap, gaussian=gaussian, coverage=cov, backend=be.name, perturbation=perturbation,
        meta={"k_y": k, "search": "quadrature" if (gaussian and cap >= r_max) else "fixed"})


def host_sep_arcsec(xyz_a, xyz_b, ia, ib) -> np.ndarray:
    """Separations (arcsec) from host unit vectors, d2 summed in the kernel's order."""
    dx = xyz_a[ia, 0] - xyz_b[ib, 0]
    dy = xyz_a[ia, 1] - xyz_b[ib, 1]
    dz = xyz_a[ia, 2] - xyz_b[ib, 2]
    d2 = dx * dx + dy * dy + dz * dz
    return 2.0 * np.arcsin(np.minimum(np.sqrt(d2) * 0.5, 1.0)) * ARCSEC_PER_RAD


def _cdf_test(cdf, y, sep, s2, ia, ib, perturbation, be) -> np.ndarray:
    """``cdf <= y`` with the tie rule: on the GPU, pairs whose CDF lies within TIE_TOL of
    y (where GEMM summation order could flip the answer) are decided on a NumPy
    re-evaluation, so both backends take the same decision."""
    keep = cdf <= y
    if be.is_gpu:
        near = np.flatnonzero(np.abs(cdf - y) <= TIE_TOL)
        if near.size:
            _, host_cdf = _pair_auf(sep[near], s2[near], ia[near], ib[near], perturbation,
                                    get_backend("numpy"))
            keep[near] = host_cdf <= y
    return keep


def _pair_auf(sep, s2, ia, ib, perturbation, be):
    """(G per arcsec^2, CDF) of each pair, on the backend, returned on the host."""
    from . import auf

    kw = {}
    if perturbation is not None:
        kw = dict(perturbation)
        for side, rows in (("a", ia), ("b", ib)):
            cells = kw.get(f"cell_{side}")
            if cells is not None:
                kw[f"cell_{side}"] = np.asarray(cells)[rows]
    if len(sep) == 0:
        return np.zeros(0), np.zeros(0)
    G, cdf = auf.pair_auf(be.xp.asarray(sep), be.xp.asarray(s2), backend=be, **kw)
    return np.asarray(to_host(G), dtype=np.float64), np.asarray(to_host(cdf), dtype=np.float64)


def _csr(label: np.ndarray, n_groups: int) -> tuple[np.ndarray, np.ndarray]:
    """(ptr (n_groups+1,), idx) grouping positions 0..len-1 by label, ascending within groups."""
    order = np.argsort(label, kind="stable").astype(np.int64)
    ptr = np.zeros(n_groups + 1, dtype=np.int64)
    np.cumsum(np.bincount(label, minlength=n_groups), out=ptr[1:])
    return ptr, order
