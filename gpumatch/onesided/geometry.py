"""Sky geometry for the shifted (null) trials and the surveyed area.

Shifts
------
A *rigid* null trial moves a whole catalogue by a small rotation of the sphere.
The rotation is defined at a reference point ``c`` (the X-ray catalogue's mean
direction): it carries ``c`` along the great circle by an offset of ``dx`` arcsec
east and ``dy`` arcsec north (geodesic length ``r = hypot(dx, dy)``).  Because
it is a rotation it keeps every separation within each catalogue; shifting the
infrared catalogue by ``R`` gives exactly the same pairs as shifting the X-ray
queries by ``R^-1 = R^T``, so all trials search one IR index.  A *jitter* trial
moves each X-ray source independently by its own offset in its own tangent plane.

Offsets are drawn area-uniformly in the annulus ``r_min <= r <= r_max`` with a
uniform direction (``r = sqrt(u (r_max^2 - r_min^2) + r_min^2)``): never from a
disk, whose small shifts would keep true counterparts in the null sample.

Area
----
:class:`CoverageGrid` measures the area the IR catalogue covers (arcsec^2) from
occupied cells of a gnomonic grid about the catalogue's mean direction, so gaps
and non-rectangular mosaics are not counted as surveyed sky, and tells for any
position whether it lies on that footprint (used for the null trials' edge
correction and to decide which X-ray sources are considered).
:func:`annulus_footprint_area` uses the same weights to give, per position, the
area (arcsec^2) of an annulus about it that lies on the footprint: the
denominator of a local surface density that is not biased low at the edges.
"""
from __future__ import annotations

import numpy as np

from ..catalogue import ARCSEC_PER_RAD

MAX_GRID_CELLS = 50_000_000  # dense footprint grid limit (400 MB of float64 weights)


def unit(v) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64)
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def mean_direction(xyz) -> np.ndarray:
    """Unit vector of the summed unit vectors (the catalogue's centre)."""
    s = np.asarray(xyz, dtype=np.float64).sum(axis=0)
    if not np.linalg.norm(s) > 0:
        raise ValueError("positions have no mean direction (they cancel on the sphere)")
    return unit(s)


def east_north(xyz) -> tuple[np.ndarray, np.ndarray]:
    """Unit east and north vectors (n, 3) of the tangent planes at ``xyz`` (n, 3).

    At the poles, east is taken along +y (RA = 90 deg) to stay defined.
    """
    xyz = np.atleast_2d(np.asarray(xyz, dtype=np.float64))
    x, y = xyz[:, 0], xyz[:, 1]
    rho = np.hypot(x, y)
    polar = rho == 0
    safe = np.where(polar, 1.0, rho)
    e = np.stack([np.where(polar, 0.0, -y / safe), np.where(polar, 1.0, x / safe), np.zeros_like(x)],
                 axis=1)
    n = np.cross(xyz, e)
    return e, n


def offset_points(xyz, dx_arcsec, dy_arcsec) -> np.ndarray:
    """Move points along great circles by (dx east, dy north) arcsec in their own tangent planes.

    ``xyz`` (n, 3); ``dx_arcsec``, ``dy_arcsec`` scalars or (n,).  Returns (n, 3) unit vectors:
    ``p' = cos(r) p + sin(r) t`` with ``t`` the unit tangent toward the offset.
    """
    xyz = np.atleast_2d(np.asarray(xyz, dtype=np.float64))
    dx = np.broadcast_to(np.asarray(dx_arcsec, dtype=np.float64), (len(xyz),))
    dy = np.broadcast_to(np.asarray(dy_arcsec, dtype=np.float64), (len(xyz),))
    r = np.hypot(dx, dy)
    e, n = east_north(xyz)
    with np.errstate(invalid="ignore", divide="ignore"):
        t = (dx[:, None] * e + dy[:, None] * n) / np.where(r > 0, r, 1.0)[:, None]
    ang = (r / ARCSEC_PER_RAD)[:, None]
    return unit(np.cos(ang) * xyz + np.sin(ang) * t)


def rotation_for_offset(center, dx_arcsec: float, dy_arcsec: float) -> np.ndarray:
    """3x3 rotation carrying ``center`` by (dx east, dy north) arcsec along a great circle."""
    c = unit(np.asarray(center, dtype=np.float64).reshape(3))
    r = float(np.hypot(dx_arcsec, dy_arcsec))
    if r == 0.0:
        return np.eye(3)
    e, n = east_north(c[None, :])
    t = (dx_arcsec * e[0] + dy_arcsec * n[0]) / r
    a = unit(np.cross(c, t))  # rotation axis
    ang = r / ARCSEC_PER_RAD
    k = np.array([[0.0, -a[2], a[1]], [a[2], 0.0, -a[0]], [-a[1], a[0], 0.0]])
    return np.eye(3) + np.sin(ang) * k + (1.0 - np.cos(ang)) * (k @ k)  # Rodrigues


def xyz_to_radec(xyz) -> tuple[np.ndarray, np.ndarray]:
    """RA in [0, 360) and Dec in deg from (n, 3) unit vectors."""
    xyz = np.asarray(xyz, dtype=np.float64)
    ra = np.mod(np.degrees(np.arctan2(xyz[:, 1], xyz[:, 0])), 360.0)
    ra[ra >= 360.0] = 0.0
    dec = np.degrees(np.arctan2(xyz[:, 2], np.hypot(xyz[:, 0], xyz[:, 1])))
    return ra, dec


def annulus_offsets(rng: np.random.Generator, shape, r_min: float, r_max: float):
    """Offsets (dx, dy, r) in arcsec, area-uniform in the annulus [r_min, r_max], uniform direction."""
    if not 0 <= r_min <= r_max:
        raise ValueError(f"annulus needs 0 <= r_min <= r_max, got {r_min}, {r_max}")
    u = rng.uniform(0.0, 1.0, shape)
    r = np.sqrt(u * (r_max**2 - r_min**2) + r_min**2)
    phi = rng.uniform(0.0, 2.0 * np.pi, shape)
    return r * np.cos(phi), r * np.sin(phi), r


def gnomonic(xyz, center) -> tuple[np.ndarray, np.ndarray]:
    """Gnomonic (tangent-plane) coordinates (radians) of ``xyz`` about ``center``."""
    c = unit(np.asarray(center, dtype=np.float64).reshape(3))
    e, n = east_north(c[None, :])
    cos_t = xyz @ c
    if np.any(cos_t <= np.cos(np.radians(80.0))):
        raise ValueError("catalogue spans more than 80 deg from its centre: the gnomonic coverage "
                         "grid does not apply; give the area explicitly (area_arcsec2)")
    return (xyz @ e[0]) / cos_t, (xyz @ n[0]) / cos_t


class CoverageGrid:
    """Footprint of a catalogue as occupied cells of a gnomonic grid, with its area.

    Gnomonic projection about the points' mean direction; square cells of side
    ``s`` (tangent-plane radians) sized so that about ``per_cell`` points fall in a
    cell at the mean density (first guess from the bounding box, refined once
    from the measured area).  A cell whose 8 neighbours are all occupied is
    *interior* and has weight 1; a *boundary* cell has weight ``n_cell / nbar``,
    an unbiased estimate of the fraction of it inside the footprint (a cell half
    outside holds about half the points; not capped at 1, which would bias it
    low), with ``nbar`` the mean count of the interior cells within 2 cells (else
    of all interior cells).  Empty interior cells are rare (Poisson
    ``exp(-per_cell)``); gaps larger than a cell are excluded from the footprint.
    With ``per_cell = 10`` the trial edge correction built on these weights was
    within 0.7 % of the true off-field fraction on simulated fields (20: 2.3 %,
    5: 0.2 % but holes in sparse regions).

    ``area_arcsec2`` = sum of weight x ``s^2 cos^3(theta)`` (the gnomonic Jacobian)
    over occupied cells.  ``weight(xyz)`` is the weight of the cell each position
    falls in (0 outside): the probability that the position is inside the footprint.
    """

    def __init__(self, xyz, per_cell: float = 10.0):
        xyz = np.asarray(xyz, dtype=np.float64)
        n = len(xyz)
        if n < 2:
            raise ValueError("need at least 2 points to measure a coverage area; give area_arcsec2")
        self.center = mean_direction(xyz)
        self.per_cell = float(per_cell)
        x, y = gnomonic(xyz, self.center)
        bbox = (x.max() - x.min()) * (y.max() - y.min())
        if not bbox > 0:
            raise ValueError("points are collinear or coincident: cannot measure a coverage area; "
                             "give area_arcsec2")
        s = np.sqrt(per_cell * bbox / n)
        self._build(x, y, s)  # first guess of the density from the bounding box ...
        self._build(x, y, np.sqrt(per_cell * (self.area_arcsec2 / ARCSEC_PER_RAD**2) / n))  # ... refined

    def _build(self, x, y, s):
        self.s = s
        ix = np.floor(x / s).astype(np.int64)
        iy = np.floor(y / s).astype(np.int64)
        self.ix0, self.iy0 = int(ix.min()) - 3, int(iy.min()) - 3
        self.nx = int(ix.max()) - self.ix0 + 4
        self.ny = int(iy.max()) - self.iy0 + 4
        if self.nx * self.ny > MAX_GRID_CELLS:
            raise ValueError(f"footprint grid of {self.nx} x {self.ny} cells is too large (sparse points over "
                             f"a wide area); give area_arcsec2 and footprint='none'")
        counts = np.bincount((ix - self.ix0) * self.ny + (iy - self.iy0),
                             minlength=self.nx * self.ny).reshape(self.nx, self.ny)
        occ = counts > 0

        def shifted(a, dx, dy):  # a[i + dx, j + dy], zero outside
            out = np.zeros_like(a)
            out[max(-dx, 0):self.nx - max(dx, 0), max(-dy, 0):self.ny - max(dy, 0)] = \
                a[max(dx, 0):self.nx - max(-dx, 0), max(dy, 0):self.ny - max(-dy, 0)]
            return out

        interior = occ.copy()
        for dx in (-1, 0, 1):
            for dy in (-1, 0, 1):
                if dx or dy:
                    interior &= shifted(occ, dx, dy)
        weight = occ.astype(np.float64)
        if interior.any():
            nsum = np.zeros(counts.shape)
            ncnt = np.zeros(counts.shape)
            cint = np.where(interior, counts, 0).astype(np.float64)
            for dx in range(-2, 3):
                for dy in range(-2, 3):
                    nsum += shifted(cint, dx, dy)
                    ncnt += shifted(interior, dx, dy)
            nbar = np.where(ncnt > 0, nsum / np.maximum(ncnt, 1), counts[interior].mean())
            weight = np.where(interior, 1.0, np.where(occ, counts / nbar, 0.0))
        self.cell_weight = weight
        cx, cy = np.nonzero(occ)
        xc = (self.ix0 + cx + 0.5) * s
        yc = (self.iy0 + cy + 0.5) * s
        jac = (1.0 + xc * xc + yc * yc) ** -1.5
        self.area_arcsec2 = float(np.sum(weight[cx, cy] * s * s * jac)) * ARCSEC_PER_RAD**2
        self.n_cells, self.n_interior = int(occ.sum()), int(interior.sum())

    @property
    def cell_arcsec(self) -> float:
        return self.s * ARCSEC_PER_RAD

    @property
    def method(self) -> str:
        m = (f"occupied cells of a gnomonic grid ({self.cell_arcsec:.4g} arcsec cells, ~{self.per_cell:g} "
             f"IR sources per cell; {self.n_interior} interior cells count whole, "
             f"{self.n_cells - self.n_interior} boundary cells by count / mean nearby interior count)")
        if self.n_interior == 0:
            m += "; no interior cell: every occupied cell counted whole (area unreliable)"
        return m

    def weight(self, xyz) -> np.ndarray:
        """Footprint weight of the cell holding each position (n, 3); 0 off the footprint."""
        xyz = np.asarray(xyz, dtype=np.float64)
        e, n = east_north(self.center[None, :])
        cos_t = xyz @ self.center
        ok = cos_t > 1e-3
        safe = np.where(ok, cos_t, 1.0)
        ix = np.floor((xyz @ e[0]) / safe / self.s).astype(np.int64) - self.ix0
        iy = np.floor((xyz @ n[0]) / safe / self.s).astype(np.int64) - self.iy0
        ok &= (ix >= 0) & (ix < self.nx) & (iy >= 0) & (iy < self.ny)
        return np.where(ok, self.cell_weight[np.where(ok, ix, 0), np.where(ok, iy, 0)], 0.0)


def sunflower_disk(m: int) -> tuple[np.ndarray, np.ndarray]:
    """``m`` points spread evenly over the unit disk (Vogel's sunflower spiral).

    Returns ``(u, theta)``: point k lies at radius ``sqrt(u_k)`` and angle ``theta_k``
    (rad), with ``u_k = (k + 1/2) / m`` -- equal-area rings, golden-angle turns -- so
    the mean of a function over the points approximates its mean over the disk
    (error ~1/m for a straight edge through it, no random noise).
    """
    k = np.arange(int(m), dtype=np.float64)
    return (k + 0.5) / m, k * np.pi * (3.0 - np.sqrt(5.0))


def annulus_footprint_area(grid: "CoverageGrid | None", xyz, r_in_arcsec, r_out_arcsec,
                           n_samples: int = 256, chunk_points: int = 1 << 20) -> np.ndarray:
    """Area (arcsec^2) of the annulus ``r_in <= r <= r_out`` about each position that lies on the footprint.

    ``xyz`` (n, 3) unit vectors; ``r_in_arcsec`` scalar or (n,), ``r_out_arcsec`` scalar
    (both arcsec, ``0 <= r_in < r_out``).  The annulus area ``pi (r_out^2 - r_in^2)``
    (flat-sky: the spherical correction is ~r^2/12 rad^2, 1e-8 at 1 arcmin) times the
    mean :meth:`CoverageGrid.weight` over ``n_samples`` sunflower points mapped
    area-uniformly onto the annulus (``r^2 = r_in^2 + u (r_out^2 - r_in^2)``), each
    moved along its great circle from the position (:func:`offset_points`).  The
    weights are 1 on interior cells, 0 off the footprint and the estimated fraction
    inside on boundary cells, so the result is the on-footprint area without the
    ~0.5 or ~0.25 bias of the full annulus at an edge or a corner.  ``grid=None``
    (no footprint): the full annulus area.  Work is done in chunks of at most
    ``chunk_points`` sample points (memory bound).
    """
    xyz = np.atleast_2d(np.asarray(xyz, dtype=np.float64))
    n = len(xyz)
    r_in = np.broadcast_to(np.asarray(r_in_arcsec, dtype=np.float64), (n,))
    r_out = float(r_out_arcsec)
    if not (np.isfinite(r_out) and r_out > 0) or np.any((r_in < 0) | (r_in >= r_out)):
        raise ValueError(f"annulus needs 0 <= r_in < r_out, got r_out={r_out}, r_in in "
                         f"[{r_in.min() if n else 0}, {r_in.max() if n else 0}]")
    full = np.pi * (r_out * r_out - r_in * r_in)
    if grid is None or n == 0:
        return full.copy()
    u, th = sunflower_disk(n_samples)
    m = len(u)
    frac = np.empty(n)
    step = max(1, int(chunk_points) // m)
    for a in range(0, n, step):
        b = min(a + step, n)
        ri = r_in[a:b, None]
        r = np.sqrt(ri * ri + u[None, :] * (r_out * r_out - ri * ri))  # (chunk, m) arcsec
        pts = offset_points(np.repeat(xyz[a:b], m, axis=0), (r * np.cos(th)).ravel(), (r * np.sin(th)).ravel())
        frac[a:b] = grid.weight(pts).reshape(b - a, m).mean(axis=1)
    return full * frac
