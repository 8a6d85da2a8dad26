"""Hankel (Fourier-Bessel) transforms of circularly symmetric distributions as matrix products.

Conventions (Wilson & Naylor 2018; macauff), lengths in arcsec, frequencies in 1/arcsec:

    H(rho)  = 2 pi int_0^inf r   h(rho) J0(2 pi r rho) dr        (forward)
    h(r)    = 2 pi int_0^inf rho H(rho) J0(2 pi r rho) drho      (inverse)
    CDF(r)  = 2 pi r int_0^inf H(rho) J1(2 pi r rho) drho        (mass inside radius r)

``h`` is a density per arcsec^2 (it integrates to 1 over the plane), ``H(0) = 1``.  A
Gaussian centroid error of variance ``sigma2`` (arcsec^2, circular) is
``exp(-2 pi^2 rho^2 sigma2)`` in Hankel space and a delta function (no perturbation)
is 1, so the convolution of two AUFs is ``inverse(H_a * H_b * exp(-2 pi^2 rho^2 sigma2))``.

Grids (:class:`HankelGrid`)
---------------------------
* ``r``: uniform, ``r_i = i dr`` for ``i = 0 .. n_r-1``, ``dr = r_max / (n_r - 1)``.
* ``rho``: the ``n_rho`` Gauss-Legendre nodes of ``[0, rho_max]`` with their weights.
  The inverse transform and the CDF are Gauss-Legendre quadratures: spectrally
  accurate for the smooth (Gaussian-damped) integrands met here, so a few hundred
  nodes do what a uniform Riemann sum needs ~10^4 for (macauff's 10k x 10k tables).
* Tables ``J0[i, j] = J0(2 pi r_i rho_j)`` and ``J1[i, j]``, computed once on the host
  (SciPy) and shipped to the backend, so both backends use bit-identical tables.

Sizing (:meth:`HankelGrid.for_sigma2`), for centroid variances ``sigma2`` in
``[s_lo^2, s_hi^2]`` and perturbation offsets up to ``r_extra``:

* ``r_max = 8 s_hi + r_extra``   (the Gaussian is < 1.3e-14 of its peak beyond);
* ``rho_max = 1.3 / s_lo``       (``exp(-2 pi^2 rho_max^2 s_lo^2) < 3e-15``);
* ``n_rho = ceil(1.6 r_max rho_max) + 40`` -- Gauss-Legendre resolves the oscillation of
  ``J0(2 pi r rho)`` up to ``r_max`` (about pi/2 nodes per unit of ``r_max rho_max``);
* ``dr = s_lo / 32`` (cubic Hermite interpolation between nodes, see below).

Measured accuracy on such a grid (tests/test_hankel.py): the inverse transform of
``exp(-2 pi^2 rho^2 sigma2)`` reproduces the closed-form Gaussian to < 1e-8 relative
at every node where the Gaussian exceeds 1e-6 of its peak (r < 5.26 sigma; below
that level the absolute error, ~1e-14 of the peak, dominates) and to < 1e-12 of
the peak everywhere; forward (of Gaussians sampled on the r nodes) -> product ->
inverse meets the same 1e-6.  A single grid for sigma from 0.1" to 4" has
n_r = 10241, n_rho = 706 (two 58 MB tables, built in ~1 s);
:func:`gpumatch.auf.pair_auf` instead uses one small grid per factor-2 band of
``sigma2`` (364 x 64 without perturbation, a few times more rows with it).

Values between nodes
--------------------
``pdf``/``cdf``/``radius`` at arbitrary radii use cubic Hermite interpolation on the
node values and their exact derivatives (``h'`` from the J1 table,
``CDF' = 2 pi r h``): the error is < ``dr^4 max|f''''| / 384``, below 1e-8 of the
peak at ``dr = sigma/32`` (measured 7e-9).  Each pair needs only the two table rows that bracket its
radius, so the per-pair cost is a few dot products of length ``n_rho`` (gathered
rows), not a product with the whole table.

Backends: one code path over ``xp``.  The forward/inverse transforms are GEMMs
(cuBLAS on CuPy); sums are ordered differently by the two BLAS libraries, so
values agree to ~1e-15 of the peak, not bit for bit.  ``radius`` brackets the root
on the node grid by bisection and then solves the Hermite cubic by bisection: a
branch can only differ between backends when the CDF at a node is within rounding
(~1e-15) of ``Y``, and because the interpolant is continuous across nodes both
branches give the same radius to ~1e-13 -- no discrete output depends on them.
"""
from __future__ import annotations

import functools
import math

import numpy as np
from scipy import special

from .backend import Backend, get_backend

TWO_PI = 2.0 * math.pi
RHO_MAX_SIGMA = 1.3      # rho_max * sigma_lo
R_MAX_SIGMAS = 8.0       # r_max = 8 sigma_hi + r_extra
DR_PER_SIGMA = 1.0 / 32  # dr = sigma_lo / 32
NRHO_SLOPE = 1.6         # n_rho = ceil(1.6 r_max rho_max) + 40
NRHO_EXTRA = 40
N_TRAP_CORR = 5          # end corrections of the forward (trapezoid) rule


@functools.lru_cache(maxsize=None)
def _end_corrections(m: int) -> tuple:
    """Weights a_1..a_m added to the trapezoid rule at r = dr .. m dr for odd integrands.

    For odd g (g = 2 pi r h(r) J0 with h even), Euler-Maclaurin gives
    ``int_0^inf g = T + sum_k B_2k h^2k / (2k)! g^(2k-1)(0)``; the odd derivatives at 0
    are matched by ``h sum_i a_i g(i h)`` to order ``h^(2m+1)``.
    """
    bern = [1 / 6, -1 / 30, 1 / 42, -1 / 30, 5 / 66, -691 / 2730, 7 / 6]
    a = np.array([[float(i) ** (2 * k + 1) for i in range(1, m + 1)] for k in range(m)])
    rhs = np.array([bern[k] / (2 * k + 2) for k in range(m)])  # B/(2k+2)! * (2k+1)!
    return tuple(np.linalg.solve(a, rhs))


class HankelGrid:
    """Fixed r / rho grids with precomputed J0 and J1 tables (see the module docstring).

    Parameters: ``r_max_arcsec`` (last r node), ``n_r`` (>= 8 nodes, uniform from 0),
    ``rho_max_per_arcsec`` and ``n_rho`` (Gauss-Legendre nodes on [0, rho_max]),
    ``backend`` (name or :class:`Backend`; default auto).
    """

    def __init__(self, r_max_arcsec: float, n_r: int, rho_max_per_arcsec: float, n_rho: int,
                 backend=None):
        if n_r < 8 or n_rho < 2 or not (r_max_arcsec > 0) or not (rho_max_per_arcsec > 0):
            raise ValueError("HankelGrid needs n_r >= 8, n_rho >= 2 and positive r_max, rho_max")
        self.backend: Backend = get_backend(backend)
        xp = self.backend.xp
        self.r_max = float(r_max_arcsec)
        self.n_r = int(n_r)
        self.rho_max = float(rho_max_per_arcsec)
        self.n_rho = int(n_rho)
        self.dr = self.r_max / (self.n_r - 1)
        r = np.arange(self.n_r, dtype=np.float64) * self.dr
        x, w = special.roots_legendre(self.n_rho)
        rho = 0.5 * self.rho_max * (x + 1.0)
        w_rho = 0.5 * self.rho_max * w
        arg = TWO_PI * np.outer(r, rho)
        j0 = special.j0(arg)
        j1 = special.j1(arg)
        # forward weights: trapezoid in r with end corrections, times 2 pi r
        wr = np.full(self.n_r, self.dr)
        wr[0] = 0.5 * self.dr
        wr[1:1 + N_TRAP_CORR] += self.dr * np.asarray(_end_corrections(N_TRAP_CORR))
        self.r_host, self.rho_host, self.w_rho_host = r, rho, w_rho
        self.r = xp.asarray(r)
        self.rho = xp.asarray(rho)
        self.w_rho = xp.asarray(w_rho)
        self.j0 = xp.asarray(j0)
        self.j1 = xp.asarray(j1)
        self._fwd_w = xp.asarray(TWO_PI * r * wr)       # (n_r,)
        self._inv_w = xp.asarray(TWO_PI * rho * w_rho)  # (n_rho,)
        self._rho2 = xp.asarray(-2.0 * math.pi ** 2 * rho * rho)

    # -- construction ----------------------------------------------------------------
    @classmethod
    def for_sigma2(cls, sigma2_min: float, sigma2_max: float, r_extra_arcsec: float = 0.0,
                   backend=None) -> "HankelGrid":
        """A grid accurate for centroid variances in [sigma2_min, sigma2_max] (arcsec^2)
        convolved with perturbations reaching ``r_extra_arcsec`` (sizing rule above)."""
        s_lo = math.sqrt(float(sigma2_min))
        s_hi = math.sqrt(float(sigma2_max))
        if not (0 < s_lo <= s_hi) or not math.isfinite(s_hi):
            raise ValueError(f"bad sigma2 range [{sigma2_min}, {sigma2_max}]")
        r_max = R_MAX_SIGMAS * s_hi + max(float(r_extra_arcsec), 0.0)
        rho_max = RHO_MAX_SIGMA / s_lo
        n_rho = int(math.ceil(NRHO_SLOPE * r_max * rho_max)) + NRHO_EXTRA
        n_r = max(int(math.ceil(r_max / (DR_PER_SIGMA * s_lo))) + 1, 8)
        return cls(r_max, n_r, rho_max, n_rho, backend)

    @property
    def sigma2_min(self) -> float:
        """Smallest centroid variance (arcsec^2) this grid's rho_max resolves."""
        return (RHO_MAX_SIGMA / self.rho_max) ** 2

    def __repr__(self):
        return (f"HankelGrid(r_max={self.r_max:.4g} arcsec, n_r={self.n_r}, "
                f"rho_max={self.rho_max:.4g}/arcsec, n_rho={self.n_rho}, {self.backend.name})")

    # -- transforms (GEMMs) -------------------------------------------------------------
    def _xp(self):
        return self.backend.xp

    def forward(self, h):
        """(n_batch, n_r) densities per arcsec^2 sampled at the r nodes -> (n_batch, n_rho).

        Trapezoid rule in r with 5 Euler-Maclaurin end corrections (absolute error < 1e-9
        for a Gaussian with sigma >= 32 dr);
        exact Hankel transforms of binned (histogram) data: :meth:`forward_binned`.
        """
        xp = self._xp()
        h = xp.asarray(h, dtype=xp.float64)
        return (h * self._fwd_w) @ self.j0

    def forward_binned(self, masses, edges_arcsec):
        """Exact transform of probability ``masses`` (n_batch, n_bins) spread uniformly over
        the annuli ``[edges[k], edges[k+1])`` (arcsec) -> (n_batch, n_rho)."""
        xp = self._xp()
        t = xp.asarray(annulus_matrix(np.asarray(edges_arcsec, dtype=np.float64), self.rho_host))
        return xp.asarray(masses, dtype=xp.float64) @ t

    def inverse(self, H):
        """(n_batch, n_rho) Hankel-space values -> (n_batch, n_r) densities per arcsec^2."""
        xp = self._xp()
        H = xp.asarray(H, dtype=xp.float64)
        return (H * self._inv_w) @ self.j0.T

    def gaussian(self, sigma2):
        """``exp(-2 pi^2 rho^2 sigma2)``: (n_rho,) for a scalar, (n, n_rho) for (n,) sigma2."""
        xp = self._xp()
        s2 = xp.asarray(sigma2, dtype=xp.float64)
        return xp.exp(s2[..., None] * self._rho2)

    def convolve(self, H_a, H_b, sigma2):
        """G on the r nodes: inverse(H_a * H_b * exp(-2 pi^2 rho^2 sigma2)), per arcsec^2."""
        return self.inverse(self.product(H_a, H_b, sigma2))

    def product(self, H_a, H_b, sigma2):
        """Hankel-space G: ``H_a * H_b * exp(-2 pi^2 rho^2 sigma2)`` (broadcast over rows)."""
        xp = self._xp()
        return xp.asarray(H_a) * xp.asarray(H_b) * self.gaussian(sigma2)

    def cdf_nodes(self, Hc):
        """(n_batch, n_rho) -> (n_batch, n_r): probability inside each r node."""
        xp = self._xp()
        Hc = xp.asarray(Hc, dtype=xp.float64)
        return ((Hc * (TWO_PI * self.w_rho)) @ self.j1.T) * self.r

    # -- per-row evaluation at arbitrary radii ----------------------------------------------
    def _node_values(self, a, idx):
        """Density, its r-derivative and the CDF at node ``idx`` per row.

        ``a = 2 pi w_rho Hc`` (rows, n_rho); gathers rows ``idx`` of J0 and J1.
        """
        xp = self._xp()
        j0 = self.j0[idx]
        j1 = self.j1[idx]
        r = self.r[idx]
        f = xp.sum(a * self.rho * j0, axis=1)
        fp = -TWO_PI * xp.sum(a * (self.rho * self.rho) * j1, axis=1)
        c = r * xp.sum(a * j1, axis=1)
        return f, fp, c

    def weights(self, Hc):
        """``a = 2 pi w_rho Hc``: the per-row vectors :meth:`interp_a` and :meth:`radius_a` take."""
        xp = self._xp()
        return xp.atleast_2d(xp.asarray(Hc, dtype=xp.float64)) * (TWO_PI * self.w_rho)

    def interp_a(self, a, r_arcsec):
        """(pdf, cdf) of each row at that row's radius, from ``a = weights(Hc)``.

        Cubic Hermite between the bracketing nodes; radii at or beyond ``r_max`` give
        pdf 0 and cdf 1; rounding below 0 (or above 1 for the cdf) is clipped."""
        xp = self._xp()
        r = xp.broadcast_to(xp.asarray(r_arcsec, dtype=xp.float64), (a.shape[0],))
        idx = xp.clip(xp.floor(r / self.dr), 0, self.n_r - 2).astype(xp.int64)
        t = r / self.dr - idx
        f0, fp0, c0 = self._node_values(a, idx)
        f1, fp1, c1 = self._node_values(a, idx + 1)
        r0 = self.r[idx]
        pdf = hermite(t, f0, fp0 * self.dr, f1, fp1 * self.dr)
        cdf = hermite(t, c0, TWO_PI * r0 * f0 * self.dr, c1, TWO_PI * (r0 + self.dr) * f1 * self.dr)
        beyond = r >= self.r_max
        pdf = xp.where(beyond, 0.0, xp.maximum(pdf, 0.0))
        cdf = xp.where(beyond, 1.0, xp.clip(cdf, 0.0, 1.0))
        return pdf, cdf

    def pdf(self, Hc, r_arcsec):
        """Density (per arcsec^2) of each row of Hankel-space ``Hc`` at its radius (arcsec).

        Radii at or beyond ``r_max`` give 0; tiny negative rounding is clipped to 0."""
        return self.interp_a(self.weights(Hc), r_arcsec)[0]

    def cdf(self, Hc, r_arcsec):
        """Probability inside radius ``r_arcsec`` (per row, or one radius for all rows)."""
        return self.interp_a(self.weights(Hc), r_arcsec)[1]

    def radius(self, Hc, Y):
        """R_Y per row: the radius (arcsec) inside which the probability is ``Y``.

        Bisection on the node index (the CDF at node ``i`` from row ``i`` of the J1 table),
        then bisection on the Hermite cubic inside the bracketing interval.  Rows whose CDF
        never reaches ``Y`` on the grid get ``r_max``.
        """
        return self.radius_a(self.weights(Hc), Y)

    def radius_a(self, a, Y):
        """:meth:`radius` from ``a = weights(Hc)``."""
        xp = self._xp()
        n = a.shape[0]
        Y = xp.broadcast_to(xp.asarray(Y, dtype=xp.float64), (n,))
        lo = xp.zeros(n, dtype=xp.int64)
        hi = xp.full(n, self.n_r - 1, dtype=xp.int64)
        for _ in range(int(math.ceil(math.log2(self.n_r - 1)))):
            mid = (lo + hi) // 2
            c = self.r[mid] * xp.sum(a * self.j1[mid], axis=1)
            below = c < Y
            lo = xp.where(below, mid, lo)
            hi = xp.where(below, hi, mid)
        f0, fp0, c0 = self._node_values(a, lo)
        f1, fp1, c1 = self._node_values(a, lo + 1)
        r0 = self.r[lo]
        d0 = TWO_PI * r0 * f0 * self.dr
        d1 = TWO_PI * (r0 + self.dr) * f1 * self.dr
        tl = xp.zeros(n)
        th = xp.ones(n)
        for _ in range(54):
            tm = 0.5 * (tl + th)
            below = hermite(tm, c0, d0, c1, d1) < Y
            tl = xp.where(below, tm, tl)
            th = xp.where(below, th, tm)
        rad = r0 + 0.5 * (tl + th) * self.dr
        never = self.r_max * xp.sum(a * self.j1[-1], axis=1) < Y
        return xp.where(never, self.r_max, rad)


def hermite(t, p0, m0, p1, m1):
    """Cubic Hermite interpolant on [0, 1]: values p0, p1 and (scaled) slopes m0, m1."""
    t2 = t * t
    t3 = t2 * t
    return ((2 * t3 - 3 * t2 + 1) * p0 + (t3 - 2 * t2 + t) * m0
            + (-2 * t3 + 3 * t2) * p1 + (t3 - t2) * m1)


def annulus_matrix(edges_arcsec: np.ndarray, rho: np.ndarray) -> np.ndarray:
    """(n_bins, n_rho) Hankel transforms of unit masses uniform over annuli [e_k, e_k+1).

    ``T_k(rho) = [b J1(2 pi rho b) - a J1(2 pi rho a)] / (pi rho (b^2 - a^2))`` (-> 1 as
    rho -> 0).  Host (NumPy/SciPy), float64.
    """
    e = np.asarray(edges_arcsec, dtype=np.float64)
    rho = np.asarray(rho, dtype=np.float64)
    safe = np.where(rho > 0, rho, 1.0)
    ej = e[:, None] * special.j1(TWO_PI * e[:, None] * safe[None, :])  # (n_edges, n_rho)
    area = math.pi * (e[1:] ** 2 - e[:-1] ** 2)
    t = (ej[1:] - ej[:-1]) / (area[:, None] * safe[None, :])
    return np.where(rho[None, :] > 0, t, 1.0)


__all__ = ["HankelGrid", "annulus_matrix", "hermite"]
