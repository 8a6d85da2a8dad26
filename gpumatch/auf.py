"""Astrometric uncertainty functions (AUFs) and their convolution G for pairs of sources.

A source's AUF is its centroid error (a circular Gaussian of variance ``sigma^2``,
arcsec^2: the catalogue's circular-equivalent error) convolved with a perturbation
term: the offset of the measured position caused by unresolved fainter sources
inside the PSF (Wilson & Naylor 2017, 2018; macauff).  For a candidate pair, the
probability density of the separation under the hypothesis that both are the same
object is ``G = h_a * h_b`` (W&N 2018 eqs 14-19), in Hankel space
``H_a(rho) H_b(rho) exp(-2 pi^2 rho^2 (sigma_a^2 + sigma_b^2))``.

* Perturbation off on both sides: ``G`` is an exact Gaussian of variance
  ``sigma2 = sigma_a^2 + sigma_b^2`` -- :func:`gaussian_pdf`, :func:`gaussian_cdf`,
  :func:`gaussian_radius` (closed form, no tables).
* Perturbation on for a side: :class:`PerturbationModel` (per catalogue) gives, per
  cell of (magnitude, local density), the Hankel transform of the simulated offset
  distribution; :func:`pair_auf` / :func:`pair_radius` evaluate G, its CDF and R_Y per
  pair through :mod:`gpumatch.hankel`.

Perturbation model (macauff's algorithm, own implementation)
-------------------------------------------------------------
For each cell (central magnitude ``m``, local density ``N_loc`` of sources brighter than
``m_norm`` per arcsec^2) and each of ``n_real`` realisations: for magnitude steps
``[m + s dm, m + (s+1) dm)`` down to ``m + delta_mag_max``, a Poisson number of
contaminants with mean ``D(m_s) dm pi R^2 N_loc / N_model(<m_norm)`` (``D``: differential
counts per arcsec^2 per mag, from :mod:`gpumatch.counts`; ``R = 1.185 FWHM``, the
Rayleigh radius) is placed uniformly in the circle of radius ``R`` with magnitudes
uniform in the step.  The offset of the blend's measured position is computed with two
centroid models -- the flux-weighted centre of light (infinite SNR / aperture regime)
and a least-squares Gaussian PSF fit (background-limited regime, after Plewa & Sari
2018; see kernels/auf_perturb.cuh) -- and their offset distributions are mixed with the
weight ``h = 1 - sqrt(1 - min(1, a^2 SNR^2))`` of the flux-weighted model, where
``SNR = F / sqrt(c F + b + (a F)^2)`` and ``F = 10^(-0.4 m)`` (macauff's noise model;
:func:`fit_snr_params` fits ``a, b, c`` to magnitude errors).  The offsets are histogrammed
into ``n_bins`` annuli of ``[0, R]``; realisations without any contaminant form an exact
delta function at 0.  In Hankel space a cell is ``zero_mass + sum_k mass_k T_k(rho)``
with ``T_k`` the exact transform of a uniform annulus (no quadrature error).
The fraction of realisations with a contaminant brighter than ``dm_cut`` mag below the
central source is the cell's contamination fraction; the same split gives the
per-pair posterior probability of contamination (:func:`pair_contamination`).

The Monte Carlo runs as one CUDA thread per realisation on CuPy
(kernels/auf_perturb.cu) and vectorised over realisations on NumPy
(:func:`simulate_offsets_numpy`); both use the same counter-based random numbers and
the same arithmetic, so the offsets, histograms and models are bit-identical.

Pair evaluation
---------------
Pairs with a perturbation on either side are grouped by factor-2 bands of ``sigma2``
(band = binary exponent of ``sigma2``, exact), each band with its own small
:class:`~gpumatch.hankel.HankelGrid` (``for_sigma2`` of the band, ``r_extra`` = the PSF
radii of the perturbed sides), cached.  Within a band, pairs are processed in chunks of
bounded memory: the per-pair Hankel vector ``H_a[cell_a] H_b[cell_b] exp(...)`` is
formed and G and the CDF at the pair's own separation are interpolated (cubic Hermite)
between the two bracketing r nodes (accuracy: ~1e-8 of the peak of G; the CDF to
~1e-8 absolute).  Beyond the grid (``sep >= r_max``, where the Gaussian part is below
1e-13 of its peak) G = 0 and CDF = 1.
Backends: one code path over ``xp``; floats agree to ~1e-15 of the peak (BLAS/reduction
order), discrete results (cells, histograms) exactly.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

import numpy as np

from .backend import Backend, array_module, get_backend, load_kernel, to_host
from .counts import fit_power_law
from .hankel import TWO_PI, HankelGrid, annulus_matrix

FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))
RAYLEIGH_PER_FWHM = 1.185
LN10 = math.log(10.0)

# counter-based RNG and the Monte Carlo layout (must match kernels/auf_perturb.cuh)
MAXC = 256
NSTEP_MAX = 1024
J_MAX = 256
ATTEMPTS = 32
_GAMMA = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_TWO_M53 = 2.0 ** -53


# -- closed form (perturbation off) -------------------------------------------------------
def gaussian_pdf(sep_arcsec, sigma2_arcsec2):
    """G with no perturbation: ``exp(-s^2 / (2 sigma2)) / (2 pi sigma2)`` per arcsec^2.

    ``sigma2 = sigma_a^2 + sigma_b^2`` (circular-equivalent variances, arcsec^2)."""
    xp = array_module(sep_arcsec, sigma2_arcsec2)
    s = xp.asarray(sep_arcsec, dtype=xp.float64)
    v = xp.asarray(sigma2_arcsec2, dtype=xp.float64)
    return xp.exp(-0.5 * s * s / v) / (TWO_PI * v)


def gaussian_cdf(sep_arcsec, sigma2_arcsec2):
    """Probability that a counterpart lies within ``sep``: ``1 - exp(-s^2 / (2 sigma2))``."""
    xp = array_module(sep_arcsec, sigma2_arcsec2)
    s = xp.asarray(sep_arcsec, dtype=xp.float64)
    v = xp.asarray(sigma2_arcsec2, dtype=xp.float64)
    return -xp.expm1(-0.5 * s * s / v)


def gaussian_radius(Y, sigma2_arcsec2):
    """R_Y (arcsec) of the Gaussian G: ``sqrt(-2 ln(1 - Y) sigma2)``."""
    xp = array_module(Y, sigma2_arcsec2)
    y = xp.asarray(Y, dtype=xp.float64)
    v = xp.asarray(sigma2_arcsec2, dtype=xp.float64)
    return xp.sqrt(-2.0 * xp.log1p(-y) * v)


# -- SNR weighting of the two centroid models -----------------------------------------------
def snr_of_mag(mag, snr_params):
    """Macauff's noise model: ``SNR = F / sqrt(c F + b + (a F)^2)``, ``F = 10^(-0.4 mag)``."""
    a, b, c = snr_params
    f = 10.0 ** (-0.4 * np.asarray(mag, dtype=np.float64))
    return f / np.sqrt(c * f + b + (a * f) ** 2)


def fw_weight_of_mag(mag, snr_params):
    """Weight of the flux-weighted model: ``1 - sqrt(1 - min(1, a^2 SNR^2))`` (PSF fit: 1 - it)."""
    a = snr_params[0]
    snr = snr_of_mag(mag, snr_params)
    return 1.0 - np.sqrt(1.0 - np.minimum(1.0, (a * snr) ** 2))


def fit_snr_params(mags, mag_errs) -> tuple:
    """Fit ``(a, b, c)`` of :func:`snr_of_mag` to magnitudes and their 1-sigma errors (mag).

    ``SNR = 2.5 / (ln 10 sigma_m)``; ``1/SNR^2 = a^2 + c/F + b/F^2`` is fitted by
    non-negative least squares in relative terms."""
    from scipy.optimize import nnls

    m = np.asarray(mags, dtype=np.float64)
    e = np.asarray(mag_errs, dtype=np.float64)
    ok = np.isfinite(m) & np.isfinite(e) & (e > 0)
    if ok.sum() < 3:
        raise ValueError("need at least three finite magnitude errors to fit the SNR model")
    snr2 = (2.5 / (LN10 * e[ok])) ** 2
    f = 10.0 ** (-0.4 * m[ok])
    # snr2 * (a^2 + c/F + b/F^2) = 1, scaled so all terms are O(1)
    fs = np.median(f)
    basis = np.stack([np.ones_like(f), fs / f, (fs / f) ** 2], axis=1) * snr2[:, None]
    coef, _ = nnls(basis, np.ones_like(f))
    a2, c, b = coef[0], coef[1] * fs, coef[2] * fs * fs
    return (float(math.sqrt(a2)), float(b), float(c))


# -- counter-based random numbers and deterministic exp (NumPy twin of the kernel) ----------
def _mix64(z):
    z = z ^ (z >> np.uint64(30))
    z = z * _M1
    z = z ^ (z >> np.uint64(27))
    z = z * _M2
    return z ^ (z >> np.uint64(31))


def _uniform(key, i, s: int, j: int, a: int, d: int):
    """Uniform [0, 1) doubles for realisations ``i`` (uint64 array); see auf_perturb.cuh."""
    c = (((i * np.uint64(NSTEP_MAX) + np.uint64(s)) * np.uint64(J_MAX) + np.uint64(j))
         * np.uint64(ATTEMPTS) + np.uint64(a)) * np.uint64(4) + np.uint64(d)
    return (_mix64(np.uint64(key) + c * _GAMMA) >> np.uint64(11)).astype(np.float64) * _TWO_M53


def exp_neg(x):
    """``exp(-x)`` for ``x >= 0`` with +,-,*,/ and exact frexp/ldexp (the kernel's auf_exp_neg).

    ``y = x 2^-n <= 1/16``; ``1 - y p / k`` Horner steps for k = 12..1; ``n`` squarings."""
    x = np.asarray(x, dtype=np.float64)
    _, e = np.frexp(x * 16.0)
    n = np.maximum(e, 0)
    y = np.ldexp(x, -n)
    p = np.ones_like(x)
    for k in range(12, 0, -1):
        np.multiply(y, p, out=p)
        np.divide(p, float(k), out=p)
        np.subtract(1.0, p, out=p)
    for t in range(int(n.max()) if n.size else 0):
        np.multiply(p, p, out=p, where=n > t)
    return p


def cell_keys(seed: int, n_cells: int) -> np.ndarray:
    """Per-cell uint64 RNG keys from an integer seed."""
    base = _mix64(np.array([np.uint64(seed % 2**64)], dtype=np.uint64))[0]
    return _mix64(base + (np.arange(n_cells, dtype=np.uint64) + np.uint64(1)) * _GAMMA)


@dataclass(frozen=True)
class MCParams:
    """Scalars of the Monte Carlo (AufParams in the kernel); lengths in arcsec."""

    n_steps: int
    kp: int
    max_iter: int
    radius: float
    kflux: float
    inv4s2: float
    fcut: float
    tol2: float


def simulate_offsets_numpy(keys, cdf, step_flux, p: MCParams, n_real: int,
                           chunk: int = 1 << 16) -> dict:
    """Monte Carlo offsets for every cell (NumPy reference of the CUDA kernel).

    ``keys`` (n_cells) uint64, ``cdf`` (n_cells, n_steps, kp) Poisson CDFs, ``step_flux``
    (n_steps).  Returns (n_cells, n_real) arrays: ``off_fw``, ``off_psf`` (arcsec),
    ``n_cont`` (int32), ``contaminated`` (int32), ``flux`` (total relative flux).
    Vectorised over all (cell, realisation) pairs, ``chunk`` at a time (memory bound);
    each realisation's arithmetic is that of the kernel's thread, in the same order."""
    keys = np.asarray(keys, dtype=np.uint64)
    cdf = np.asarray(cdf, dtype=np.float64)
    step_flux = np.asarray(step_flux, dtype=np.float64)
    n_cells = len(keys)
    total = n_cells * n_real
    out = {k: np.zeros(total) for k in ("off_fw", "off_psf", "flux")}
    out.update({k: np.zeros(total, dtype=np.int32) for k in ("n_cont", "contaminated")})
    for g0 in range(0, total, chunk):
        g = np.arange(g0, min(g0 + chunk, total), dtype=np.int64)
        cell = g // n_real
        res = _simulate_numpy(keys[cell], (g - cell * n_real).astype(np.uint64), cdf, cell,
                              step_flux, p)
        for k, v in res.items():
            out[k][g0:g0 + len(g)] = v
    return {k: v.reshape(n_cells, n_real) for k, v in out.items()}


def _positions(key, ia, s: int, j: int, radius: float):
    """Uniform points in the circle by rejection from the square (kernel order)."""
    n = len(ia)
    x = np.zeros(n)
    y = np.zeros(n)
    pending = np.arange(n)
    for a in range(ATTEMPTS):
        if pending.size == 0:
            break
        xa = 2.0 * _uniform(key[pending], ia[pending], s, j, a, 0) - 1.0
        ya = 2.0 * _uniform(key[pending], ia[pending], s, j, a, 1) - 1.0
        x[pending] = xa
        y[pending] = ya
        pending = pending[~(xa * xa + ya * ya <= 1.0)]
    x[pending] = x[pending] * 0.5
    y[pending] = y[pending] * 0.5
    return x * radius, y * radius


def _simulate_numpy(key, i, cdf, cell, step_flux, p: MCParams) -> dict:
    """Realisations ``i`` of cells ``cell`` (sorted; arrays of equal length, ``key = keys[cell]``)."""
    n = len(i)
    sx = np.zeros(n)
    sy = np.zeros(n)
    sf = np.zeros(n)
    nc = np.zeros(n, dtype=np.int64)
    ntot = np.zeros(n, dtype=np.int64)
    flag = np.zeros(n, dtype=bool)
    cap = 16
    cx, cy, cf = np.zeros((n, cap)), np.zeros((n, cap)), np.zeros((n, cap))
    cells, starts = np.unique(cell, return_index=True)  # ``cell`` is sorted
    bounds = np.append(starts, n)
    for s in range(p.n_steps):
        u = _uniform(key, i, s, 0, 0, 3)
        k = np.empty(n, dtype=np.int64)
        for c, b0, b1 in zip(cells, bounds[:-1], bounds[1:]):
            # number of leading CDF entries <= u: the kernel's while loop (CDFs are monotone)
            k[b0:b1] = np.searchsorted(cdf[c, s, :p.kp - 1], u[b0:b1], side="right")
        for j in range(int(k.max())):
            act = np.flatnonzero(k > j)
            x, y = _positions(key[act], i[act], s, j, p.radius)
            f = step_flux[s] * exp_neg(p.kflux * _uniform(key[act], i[act], s, j, 0, 2))
            sx[act] = sx[act] + f * x
            sy[act] = sy[act] + f * y
            sf[act] = sf[act] + f
            flag[act] |= f > p.fcut
            slot = nc[act]
            keep = slot < MAXC
            if keep.any() and slot[keep].max() >= cap:
                grow = min(MAXC, 2 * cap) - cap
                cx, cy, cf = (np.concatenate([a_, np.zeros((n, grow))], axis=1) for a_ in (cx, cy, cf))
                cap += grow
            rows = act[keep]
            cx[rows, slot[keep]] = x[keep]
            cy[rows, slot[keep]] = y[keep]
            cf[rows, slot[keep]] = f[keep]
            nc[rows] += 1
            ntot[act] += 1
    xf = sx / (1.0 + sf)
    yf = sy / (1.0 + sf)
    x, y = _psf_fit_numpy(cx, cy, cf, nc, p)
    return {"off_fw": np.sqrt(xf * xf + yf * yf), "off_psf": np.sqrt(x * x + y * y),
            "n_cont": ntot.astype(np.int32), "contaminated": flag.astype(np.int32), "flux": sf}


def _psf_fit_numpy(cx, cy, cf, nc, p: MCParams):
    """Mean-shift maximisation of the PSF cross-correlation (kernel order of operations).

    Realisations are bucketed by their number of stored contaminants (power-of-two widths);
    sums over contaminants are sequential (cumsum) as in the kernel, and padding columns
    have zero flux, adding exact zeros."""
    n = len(nc)
    x = np.zeros(n)
    y = np.zeros(n)
    width = np.where(nc > 0, 1 << np.ceil(np.log2(np.maximum(nc, 1))).astype(np.int64), 0)
    for wk in np.unique(width[width > 0]):
        active = np.flatnonzero(width == wk)
        X, Y, F = cx[active, :wk], cy[active, :wk], cf[active, :wk]
        for _ in range(p.max_iter):
            if active.size == 0:
                break
            xa, ya = x[active], y[active]
            dx = xa[:, None] - X
            dy = ya[:, None] - Y
            w = F * exp_neg((dx * dx + dy * dy) * p.inv4s2)
            w0 = exp_neg((xa * xa + ya * ya) * p.inv4s2)
            den = np.cumsum(np.concatenate([w0[:, None], w], axis=1), axis=1)[:, -1]
            nx = np.cumsum(w * X, axis=1)[:, -1]
            ny = np.cumsum(w * Y, axis=1)[:, -1]
            xn = nx / den
            yn = ny / den
            d2 = (xn - xa) * (xn - xa) + (yn - ya) * (yn - ya)
            x[active] = xn
            y[active] = yn
            going = ~(d2 <= p.tol2)
            active, X, Y, F = active[going], X[going], Y[going], F[going]
    return x, y


def simulate_offsets(keys, cdf, step_flux, p: MCParams, n_real: int, backend=None) -> dict:
    """Monte Carlo offsets on the chosen backend (CUDA kernel on CuPy); arrays on that backend."""
    be = get_backend(backend)
    if not be.is_gpu:
        return simulate_offsets_numpy(keys, cdf, step_flux, p, n_real)
    xp = be.xp
    n_cells = len(keys)
    n = n_cells * n_real
    out = {k: xp.zeros((n_cells, n_real)) for k in ("off_fw", "off_psf", "flux")}
    out.update({k: xp.zeros((n_cells, n_real), dtype=xp.int32) for k in ("n_cont", "contaminated")})
    if n == 0:
        return out
    kern = load_kernel("auf_perturb.cu", "auf_simulate")
    block = 128
    kern(((n + block - 1) // block,), (block,), (
        xp.asarray(keys, dtype=xp.uint64), xp.ascontiguousarray(xp.asarray(cdf, dtype=xp.float64)),
        xp.asarray(step_flux, dtype=xp.float64),
        np.int32(p.n_steps), np.int32(p.kp), np.int32(p.max_iter), np.float64(p.radius),
        np.float64(p.kflux), np.float64(p.inv4s2), np.float64(p.fcut), np.float64(p.tol2),
        np.int64(n_cells), np.int64(n_real),
        out["off_fw"], out["off_psf"], out["n_cont"], out["contaminated"], out["flux"]))
    return out


def poisson_cdf_table(lam: np.ndarray, tail: float = 1e-15) -> np.ndarray:
    """(..., kp) CDFs P(X <= k) of Poisson means ``lam`` (host float64).

    ``kp`` is the smallest width with ``P(X >= kp - 1) < tail`` for the largest mean; draws
    are capped at ``kp - 1`` contaminants per step (probability < tail)."""
    lam = np.asarray(lam, dtype=np.float64)
    lmax = float(lam.max()) if lam.size else 0.0
    if lmax > 100.0:
        raise ValueError(f"a magnitude step expects {lmax:.1f} contaminants per PSF circle; "
                         "use a smaller dm_step")
    pmf = [np.exp(-lam)]
    total = pmf[0].copy()
    while (1.0 - total).max(initial=0.0) >= tail and len(pmf) < J_MAX - 2:
        pmf.append(pmf[-1] * lam / len(pmf))
        total = total + pmf[-1]
    pmf.append(np.zeros_like(lam))  # unused last column: draws are capped at kp - 1
    return np.cumsum(np.stack(pmf, axis=-1), axis=-1)


# -- the per-catalogue perturbation model -------------------------------------------------------
@dataclass
class PerturbationModel:
    """Simulated perturbation offsets on a grid of (magnitude, local density) cells.

    Cells: magnitude bins ``mag0 + [i, i+1) mag_bin`` (mag) times bins of the natural log
    of the local density ``logn0 + [j, j+1) dlogn`` (density per arcsec^2 of sources
    brighter than ``m_norm`` around each source); only cells that hold sources are
    simulated (``cell_mag``, ``cell_density`` are their centres).  Per cell:
    ``zero_mass`` (probability of no contaminant at all: exact zero offset), ``masses``
    (n_cells, n_bins) probabilities of offsets in annuli ``edges`` (arcsec),
    ``frac_contaminated`` (P of a contaminant within ``dm_cut`` mag of the central source),
    ``masses_cont`` (offset distribution given contamination, normalised),
    ``mean_flux`` (mean total relative flux of contaminants), ``fw_weight``.
    """

    psf_fwhm: float
    psf_radius: float
    mag0: float
    mag_bin: float
    n_mag: int
    logn0: float
    dlogn: float
    n_dens: int
    cell_index: np.ndarray      # (n_mag, n_dens) -> simulated cell (nearest populated)
    cell_mag: np.ndarray
    cell_density: np.ndarray
    edges: np.ndarray
    zero_mass: np.ndarray
    masses: np.ndarray
    frac_contaminated: np.ndarray
    masses_cont: np.ndarray
    mean_flux: np.ndarray
    mean_offset: np.ndarray
    fw_weight: np.ndarray
    meta: dict = field(default_factory=dict)
    source_cells: np.ndarray | None = field(default=None, repr=False)
    _tables: dict = field(default_factory=dict, repr=False)

    @property
    def n_cells(self) -> int:
        return len(self.cell_mag)

    @property
    def max_offset(self) -> float:
        """Largest possible perturbation offset (arcsec): the PSF circle radius."""
        return float(self.psf_radius)

    # -- building ---------------------------------------------------------------------------
    @classmethod
    def build(cls, mags, local_density, counts, psf_fwhm_arcsec: float, *,
              psf_radius_arcsec: float | None = None, m_norm: float | None = None,
              snr_params=None, fw_weight: float | None = None, mag_bin: float = 0.25,
              dlogn: float = 0.2, n_real: int = 10000, dm_step: float = 0.1,
              delta_mag_max: float = 7.5, dm_cut: float = 2.5, n_bins: int = 400,
              max_iter: int = 1000, seed: int = 0, backend=None) -> "PerturbationModel":
        """Simulate the cells populated by sources with ``mags`` (mag, NaN = no perturbation)
        and ``local_density`` (per arcsec^2, counted to ``m_norm``, default
        ``counts.m_complete``).

        ``counts``: differential counts (:mod:`gpumatch.counts`); ``psf_fwhm_arcsec``: PSF
        FWHM; ``snr_params`` (a, b, c) set the SNR weight of the two centroid models, else the
        constant ``fw_weight`` (default 1: flux-weighted only).  ``n_real`` realisations per
        cell, magnitude steps of ``dm_step`` down to ``delta_mag_max`` below the central
        source; ``seed`` fixes every random number (recorded in ``meta``).
        """
        be = get_backend(backend)
        m = np.asarray(to_host(mags), dtype=np.float64)
        dens = np.asarray(to_host(local_density), dtype=np.float64)
        ok = np.isfinite(m) & np.isfinite(dens) & (dens > 0)
        if not ok.any():
            raise ValueError("no source has a finite magnitude and a positive local density")
        radius = RAYLEIGH_PER_FWHM * psf_fwhm_arcsec if psf_radius_arcsec is None \
            else float(psf_radius_arcsec)
        sig_psf = psf_fwhm_arcsec / FWHM_PER_SIGMA
        mag0 = math.floor(m[ok].min() / mag_bin) * mag_bin
        n_mag = max(int(math.floor((m[ok].max() - mag0) / mag_bin)) + 1, 1)
        ln = np.log(dens[ok])
        logn0 = math.floor(ln.min() / dlogn) * dlogn
        n_dens = max(int(math.floor((ln.max() - logn0) / dlogn)) + 1, 1)
        im = np.clip(np.floor((m[ok] - mag0) / mag_bin), 0, n_mag - 1).astype(np.int64)
        il = np.clip(np.floor((ln - logn0) / dlogn), 0, n_dens - 1).astype(np.int64)
        flat = np.unique(im * n_dens + il)
        pim, pil = flat // n_dens, flat % n_dens
        gm, gl = np.meshgrid(np.arange(n_mag), np.arange(n_dens), indexing="ij")
        d2 = (gm[..., None] - pim) ** 2 + (gl[..., None] - pil) ** 2
        cell_index = np.argmin(d2, axis=-1).astype(np.int64)  # ties -> lowest cell
        cell_mag = mag0 + (pim + 0.5) * mag_bin
        cell_dens = np.exp(logn0 + (pil + 0.5) * dlogn)

        m_norm = counts.m_complete if m_norm is None else m_norm
        n_model = float(np.asarray(counts.cumulative(m_norm)))
        n_steps = max(int(math.ceil(delta_mag_max / dm_step - 1e-9)), 1)
        if n_steps > NSTEP_MAX:
            raise ValueError(f"{n_steps} magnitude steps exceed {NSTEP_MAX}: raise dm_step")
        s_mid = (np.arange(n_steps) + 0.5) * dm_step
        lam = (np.asarray(counts.differential(cell_mag[:, None] + s_mid[None, :])) * dm_step
               * math.pi * radius ** 2 * (cell_dens / n_model)[:, None])
        cdf = poisson_cdf_table(lam)
        params = MCParams(n_steps=n_steps, kp=cdf.shape[-1], max_iter=int(max_iter), radius=radius,
                          kflux=0.4 * LN10 * dm_step, inv4s2=1.0 / (4.0 * sig_psf ** 2),
                          fcut=10.0 ** (-0.4 * dm_cut), tol2=(1e-7 * radius) ** 2)
        step_flux = 10.0 ** (-0.4 * dm_step * np.arange(n_steps))
        keys = cell_keys(seed, len(cell_mag))
        sim = simulate_offsets(keys, cdf, step_flux, params, n_real, backend=be)
        if snr_params is not None:
            w = fw_weight_of_mag(cell_mag, snr_params)
        else:
            w = np.full(len(cell_mag), 1.0 if fw_weight is None else float(fw_weight))
        hist = _histograms(sim, radius, n_bins, be.xp)
        edges = np.arange(n_bins + 1) * (radius / n_bins)
        n_flag = np.maximum(hist["n_flag"], 1)
        wc = w[:, None]
        mean_off = w * hist["sum_fw"] / n_real + (1 - w) * hist["sum_psf"] / n_real
        meta = dict(seed=int(seed), n_real=int(n_real), dm_step=dm_step, delta_mag_max=delta_mag_max,
                    dm_cut=dm_cut, n_bins=n_bins, max_iter=int(max_iter), m_norm=float(m_norm),
                    n_model_per_arcsec2=n_model, psf_sigma=sig_psf, snr_params=snr_params,
                    counts=repr(counts), backend=be.name,
                    truncated_psf_realisations=int(hist["n_trunc"].sum()))
        return cls(psf_fwhm=float(psf_fwhm_arcsec), psf_radius=radius, mag0=mag0, mag_bin=mag_bin,
                   n_mag=n_mag, logn0=logn0, dlogn=dlogn, n_dens=n_dens, cell_index=cell_index,
                   cell_mag=cell_mag, cell_density=cell_dens, edges=edges,
                   zero_mass=hist["n_zero"] / n_real,
                   masses=(wc * hist["fw"] + (1 - wc) * hist["psf"]) / n_real,
                   frac_contaminated=hist["n_flag"] / n_real,
                   masses_cont=(wc * hist["fw_flag"] + (1 - wc) * hist["psf_flag"]) / n_flag[:, None],
                   mean_flux=hist["sum_flux"] / n_real, mean_offset=mean_off, fw_weight=w, meta=meta)

    @classmethod
    def from_catalogue(cls, cat, band: str, psf_fwhm_arcsec: float, *, counts=None,
                       area_arcsec2: float | None = None, density_radius_arcsec: float | None = None,
                       mag_err=None, backend=None, **build_kw) -> "PerturbationModel":
        """Counts, local densities and SNR weights from the catalogue itself, then :meth:`build`.

        ``counts``: default a power law fitted to ``cat.mags[band]`` over ``area_arcsec2``
        (default: the convex hull of the positions).  Local densities count sources brighter
        than ``counts.m_complete`` within ``density_radius_arcsec`` (default: the radius
        holding ~100 such sources on average, at least 15").  ``mag_err``: per-source
        magnitude errors (mag) to fit the SNR weights (default: a column ``e_<band>`` or
        ``<band>_err`` of ``cat.extra`` when present; without any, ``fw_weight`` applies).
        The sources' cells are kept in ``model.source_cells``; ``meta`` records ``m_norm``
        and ``density_radius_arcsec``.
        """
        mags = np.asarray(cat.mags[band], dtype=np.float64)
        if area_arcsec2 is None:
            area_arcsec2 = footprint_area_arcsec2(cat.ra, cat.dec)
        if counts is None:
            counts = fit_power_law(mags, area_arcsec2)
        m_norm = build_kw.pop("m_norm", None) or counts.m_complete
        n_bright = np.sum(np.isfinite(mags) & (mags <= m_norm))
        if density_radius_arcsec is None:
            density_radius_arcsec = max(15.0, math.sqrt(100.0 * area_arcsec2 / (math.pi * max(n_bright, 1))))
        dens = local_density(cat.ra, cat.dec, mags, m_norm, density_radius_arcsec, backend=backend)
        snr_params = build_kw.pop("snr_params", None)
        if mag_err is None and cat.extra is not None:
            for col in (f"e_{band}", f"{band}_err"):
                if col in cat.extra.columns:
                    mag_err = cat.extra[col].to_numpy(dtype=np.float64)
                    break
        if snr_params is None and mag_err is not None:
            snr_params = fit_snr_params(mags, mag_err)
        model = cls.build(mags, dens, counts, psf_fwhm_arcsec, m_norm=m_norm, snr_params=snr_params,
                          backend=backend, **build_kw)
        model.meta.update(band=band, area_arcsec2=float(area_arcsec2),
                          density_radius_arcsec=float(density_radius_arcsec))
        model.source_cells = model.cell_of(mags, dens)
        return model

    # -- per-source lookups --------------------------------------------------------------------
    def cell_of(self, mags, local_density) -> np.ndarray:
        """Cell of each source (int64, host): its (magnitude, ln density) bin, clipped to the
        grid, mapped to the nearest simulated cell; -1 (no perturbation) for a NaN magnitude."""
        m = np.asarray(to_host(mags), dtype=np.float64)
        d = np.asarray(to_host(local_density), dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            ln = np.log(np.where(d > 0, d, np.nan))
        im = np.clip(np.nan_to_num((m - self.mag0) / self.mag_bin, nan=0.0), 0, self.n_mag - 1)
        il = np.clip(np.nan_to_num((ln - self.logn0) / self.dlogn, nan=0.0, neginf=0.0), 0,
                     self.n_dens - 1)
        cells = self.cell_index[np.floor(im).astype(np.int64), np.floor(il).astype(np.int64)]
        return np.where(np.isfinite(m), cells, -1)

    def contamination(self, cells):
        """(fraction contaminated, mean relative contaminant flux) per source (0 for cell -1)."""
        c = np.asarray(to_host(cells), dtype=np.int64)
        frac = np.append(self.frac_contaminated, 0.0)
        flux = np.append(self.mean_flux, 0.0)
        return frac[c], flux[c]  # index -1 picks the appended zero

    def radial_pdf(self):
        """(edges arcsec, density per arcsec^2 (n_cells, n_bins), zero_mass): the offset PDF."""
        area = math.pi * (self.edges[1:] ** 2 - self.edges[:-1] ** 2)
        return self.edges, self.masses / area, self.zero_mass

    def default_grid(self, backend=None) -> HankelGrid:
        """A grid for centroid sigmas from sigma_psf/8 to 4 sigma_psf plus this perturbation."""
        s = self.psf_fwhm / FWHM_PER_SIGMA
        return _cached_grid((s / 8) ** 2, (4 * s) ** 2, self.max_offset, get_backend(backend).name)

    def hankel_table(self, grid: HankelGrid, part: str = "all"):
        """(n_cells + 1, n_rho) Hankel transforms on ``grid`` (backend arrays); the last row is
        the delta function (1) used for cell -1.  ``part``: 'all' or 'cont' (given contamination)."""
        key = (id(grid), part)
        hit = self._tables.get(key)
        if hit is not None and hit[0] is grid:
            return hit[1]
        t = annulus_matrix(self.edges, grid.rho_host)
        if part == "all":
            h = self.zero_mass[:, None] + self.masses @ t
        elif part == "cont":
            h = self.masses_cont @ t
        else:
            raise ValueError("part must be 'all' or 'cont'")
        table = grid.backend.xp.asarray(np.vstack([h, np.ones((1, grid.n_rho))]))
        self._tables[key] = (grid, table)
        return table

    def hankel(self, cell_ids, grid: HankelGrid | None = None):
        """Hankel-space perturbation (n, n_rho) for sources in cells ``cell_ids`` (-1: delta)."""
        grid = self.default_grid() if grid is None else grid
        table = self.hankel_table(grid)
        xp = grid.backend.xp
        c = xp.asarray(cell_ids, dtype=xp.int64)
        return table[xp.where(c < 0, self.n_cells, c)]


def _histograms(sim: dict, radius: float, n_bins: int, xp) -> dict:
    """Per-cell offset histograms and sums (host arrays), identical on both backends: the
    float sums run on the host (a device reduction would sum in another order)."""
    n_cells, n_real = sim["off_fw"].shape
    bw = radius / n_bins
    has = sim["n_cont"] > 0
    flag = sim["contaminated"] > 0
    base = (xp.arange(n_cells, dtype=xp.int64) * n_bins)[:, None]
    out = {}
    for name in ("fw", "psf"):
        off = sim["off_" + name]
        b = xp.minimum(xp.floor(off / bw).astype(xp.int64), n_bins - 1) + base
        for suffix, sel in (("", has), ("_flag", flag)):
            cnt = xp.bincount(b[sel], minlength=n_cells * n_bins)
            out[name + suffix] = to_host(cnt).reshape(n_cells, n_bins).astype(np.float64)
        out["sum_" + name] = np.sum(to_host(off), axis=1)
    out["n_zero"] = to_host(xp.sum(~has, axis=1)).astype(np.float64)
    out["n_flag"] = to_host(xp.sum(flag, axis=1)).astype(np.float64)
    out["n_trunc"] = to_host(xp.sum(sim["n_cont"] > MAXC, axis=1))
    out["sum_flux"] = np.sum(to_host(sim["flux"]), axis=1)
    return out


def local_density(ra_deg, dec_deg, mags, mag_limit: float, radius_arcsec: float,
                  backend=None) -> np.ndarray:
    """Sources per arcsec^2 brighter than ``mag_limit`` within ``radius_arcsec`` of each source
    (the source itself included when bright enough); no correction at the field's edges."""
    from .sky import pairs

    m = np.asarray(mags, dtype=np.float64)
    bright = np.flatnonzero(np.isfinite(m) & (m <= mag_limit))
    ra = np.asarray(ra_deg, dtype=np.float64)
    dec = np.asarray(dec_deg, dtype=np.float64)
    p = pairs(ra, dec, ra[bright], dec[bright], radius_arcsec, backend=backend)
    n = np.bincount(np.asarray(to_host(p.i), dtype=np.int64), minlength=len(ra))
    return n / (math.pi * radius_arcsec ** 2)


def footprint_area_arcsec2(ra_deg, dec_deg) -> float:
    """Area (arcsec^2) of the convex hull of the positions in the gnomonic projection about
    their mean direction (fields smaller than a hemisphere)."""
    from scipy.spatial import ConvexHull

    from .catalogue import ARCSEC_PER_RAD, radec_to_xyz

    xyz = radec_to_xyz(ra_deg, dec_deg)
    c = xyz.mean(axis=0)
    c /= np.linalg.norm(c)
    e1 = np.cross([0.0, 0.0, 1.0], c)
    if np.linalg.norm(e1) < 1e-12:
        e1 = np.array([1.0, 0.0, 0.0])
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(c, e1)
    z = xyz @ c
    pts = np.stack([xyz @ e1 / z, xyz @ e2 / z], axis=1) * ARCSEC_PER_RAD
    return float(ConvexHull(pts).volume)


# -- pairs ----------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=256)
def _cached_grid(sigma2_lo: float, sigma2_hi: float, r_extra: float, backend_name: str) -> HankelGrid:
    return HankelGrid.for_sigma2(sigma2_lo, sigma2_hi, r_extra, backend=backend_name)


def _resolve_backend(backend, *arrays) -> Backend:
    if backend is not None:
        return get_backend(backend)
    return get_backend("cupy" if array_module(*arrays) is not np else "numpy")


def _chunk_rows(grid: HankelGrid) -> int:
    budget = (1 << 30) if grid.backend.is_gpu else (48 << 20)
    return max(256, budget // (8 * grid.n_rho * 12))


class _PairSetup:
    """Which pairs take the Hankel path, their band grids and the per-cell tables."""

    def __init__(self, sigma2, cells_models, grid, be: Backend):
        self.be = be
        s2 = np.asarray(to_host(sigma2), dtype=np.float64)
        self.n = s2.size
        self.sides = []
        on = np.zeros(self.n, dtype=bool)
        r_extra = 0.0
        for cells, model in cells_models:
            if model is None:
                self.sides.append(None)
                continue
            if cells is None:
                raise ValueError("a perturbation model needs the per-pair cells of its side")
            c = np.broadcast_to(np.asarray(to_host(cells), dtype=np.int64), (self.n,))
            on |= c >= 0
            r_extra += model.max_offset
            self.sides.append((np.where(c < 0, model.n_cells, c), model))
        self.idx = np.flatnonzero(on)
        self.groups = []
        if self.idx.size == 0:
            return
        s2h = s2[self.idx]
        if grid is not None:
            bad = (s2h < grid.sigma2_min * (1 - 1e-12)) | \
                (R_SIGMAS_CHECK * np.sqrt(s2h) + r_extra > grid.r_max * (1 + 1e-12))
            if bad.any():
                raise ValueError(f"grid {grid} does not cover sigma2 in [{s2h[bad].min():.4g}, "
                                 f"{s2h[bad].max():.4g}] arcsec^2 with perturbations up to "
                                 f"{r_extra:.4g} arcsec; build it with HankelGrid.for_sigma2")
            self.groups.append((grid, self.idx))
            return
        _, e = np.frexp(s2h)  # sigma2 in [2^(e-1), 2^e)
        for ek in np.unique(e):
            g = _cached_grid(math.ldexp(1.0, int(ek) - 1), math.ldexp(1.0, int(ek)), r_extra, be.name)
            self.groups.append((g, self.idx[e == ek]))

    def tables(self, grid, part_a="all", part_b="all"):
        out = []
        for side, part in zip(self.sides, (part_a, part_b)):
            if side is None:
                out.append(None)
            else:
                out.append(side[1].hankel_table(grid, part))
        return out

    def chunks(self):
        """Yield ``(grid, tables, rows, rows_on_device)`` over the Hankel-path pairs, grid by grid,
        in row chunks of bounded memory."""
        xp = self.be.xp
        for grd, idx in self.groups:
            tabs = self.tables(grd)
            step = _chunk_rows(grd)
            for k in range(0, idx.size, step):
                rows = idx[k:k + step]
                yield grd, tabs, rows, xp.asarray(rows)

    def weights(self, grid, rows, s2_dev, tables):
        """``a = 2 pi w_rho H_a H_b exp(-2 pi^2 rho^2 sigma2)`` for the pairs ``rows`` (host)."""
        xp = self.be.xp
        a = grid.gaussian(s2_dev[xp.asarray(rows)]) * (TWO_PI * grid.w_rho)
        for side, table in zip(self.sides, tables):
            if side is not None:
                a = a * table[xp.asarray(side[0][rows])]
        return a


R_SIGMAS_CHECK = 8.0


def _pair_inputs(sep, sigma2, be: Backend):
    xp = be.xp
    sep = xp.asarray(sep, dtype=xp.float64)
    s2 = xp.broadcast_to(xp.asarray(sigma2, dtype=xp.float64), sep.shape)
    return sep, xp.ascontiguousarray(s2)


def pair_auf(sep_arcsec, sigma2_arcsec2, cell_a=None, model_a=None, cell_b=None, model_b=None,
             grid: HankelGrid | None = None, backend=None):
    """(G per arcsec^2, CDF at the separation) for arrays of pairs.

    ``sep_arcsec``: separations; ``sigma2_arcsec2``: ``sigma_a^2 + sigma_b^2`` (circular
    equivalents); ``cell_*``: per-pair cells of each side (:meth:`PerturbationModel.cell_of`
    of the pair's source; -1 = no perturbation) with that catalogue's ``model_*`` (None = off).
    Closed form where both sides are off; otherwise the Hankel path (module docstring).
    ``grid``: one grid for all Hankel pairs (must cover their sigma2; default: per-band grids).
    Arrays are returned on ``backend`` (default: the backend of ``sep_arcsec``).
    """
    be = _resolve_backend(backend if grid is None else grid.backend, sep_arcsec)
    sep, s2 = _pair_inputs(sep_arcsec, sigma2_arcsec2, be)
    g = gaussian_pdf(sep, s2)
    c = gaussian_cdf(sep, s2)
    setup = _PairSetup(s2, [(cell_a, model_a), (cell_b, model_b)], grid, be)
    for grd, tabs, rows, rd in setup.chunks():
        g[rd], c[rd] = grd.interp_a(setup.weights(grd, rows, s2, tabs), sep[rd])
    return g, c


def pair_radius(Y, sigma2_arcsec2, cell_a=None, model_a=None, cell_b=None, model_b=None,
                grid: HankelGrid | None = None, backend=None):
    """R_Y (arcsec) per pair: the radius enclosing probability ``Y`` of G (closed form where
    both perturbations are off, batched bisection on the Hankel path otherwise)."""
    be = _resolve_backend(backend if grid is None else grid.backend, sigma2_arcsec2, Y)
    xp = be.xp
    s2 = xp.atleast_1d(xp.asarray(sigma2_arcsec2, dtype=xp.float64))
    y = xp.ascontiguousarray(xp.broadcast_to(xp.asarray(Y, dtype=xp.float64), s2.shape))
    rad = gaussian_radius(y, s2)
    setup = _PairSetup(s2, [(cell_a, model_a), (cell_b, model_b)], grid, be)
    for grd, tabs, rows, rd in setup.chunks():
        rad[rd] = grd.radius_a(setup.weights(grd, rows, s2, tabs), y[rd])
    return rad


def pair_contamination(sep_arcsec, sigma2_arcsec2, cell_a=None, model_a=None, cell_b=None,
                       model_b=None, grid: HankelGrid | None = None, backend=None):
    """Posterior probability that each side of a pair is contaminated, given the separation.

    ``P(a contaminated | r) = F_a G(r | a contaminated) / G(r)`` (macauff's P(omega | r)),
    with ``F_a`` the cell's contamination fraction; 0 where a side is off.  Returns
    ``(p_a, p_b)`` arrays on the backend."""
    be = _resolve_backend(backend if grid is None else grid.backend, sep_arcsec)
    sep, s2 = _pair_inputs(sep_arcsec, sigma2_arcsec2, be)
    xp = be.xp
    out = [xp.zeros(sep.shape), xp.zeros(sep.shape)]
    setup = _PairSetup(s2, [(cell_a, model_a), (cell_b, model_b)], grid, be)
    for grd, full, rows, rd in setup.chunks():
        g, _ = grd.interp_a(setup.weights(grd, rows, s2, full), sep[rd])
        for side_no in (0, 1):
            side = setup.sides[side_no]
            if side is None:
                continue
            parts = ["all", "all"]
            parts[side_no] = "cont"
            gc, _ = grd.interp_a(setup.weights(grd, rows, s2, setup.tables(grd, *parts)), sep[rd])
            frac = xp.asarray(np.append(side[1].frac_contaminated, 0.0)[side[0][rows]])
            p = xp.where(g > 0, frac * gc / xp.where(g > 0, g, 1.0), 0.0)
            out[side_no][rd] = xp.clip(p, 0.0, 1.0)
    return out[0], out[1]


__all__ = [
    "gaussian_pdf", "gaussian_cdf", "gaussian_radius", "PerturbationModel", "pair_auf",
    "pair_radius", "pair_contamination", "local_density", "footprint_area_arcsec2",
    "simulate_offsets", "simulate_offsets_numpy", "poisson_cdf_table", "fit_snr_params",
    "snr_of_mag", "fw_weight_of_mag", "exp_neg", "cell_keys", "MCParams",
]
