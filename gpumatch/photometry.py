"""Densities and photometric likelihoods c and f (Wilson & Naylor 2018, eqs 32-35, section 6.2).

Everything here is estimated from the two catalogues and their :class:`~gpumatch.islands.IslandSet`
(the island pairs hold every pair inside R_0.997, so every "within R_Y" set for
Y <= 0.997 is a subset of them; no new pair search is needed except for the area grid).
Units: densities per arcsec^2, magnitudes in mag, c per mag^2, f per mag, areas arcsec^2.
Only sources inside the coverage count; sources in edge-flagged islands are left out
of the fits (their neighbourhoods are truncated) but counted in the densities.
Membership "within R_Y" is the islands' own test (:meth:`IslandSet.within`); areas
(unmasked fractions, background counts) use the Gaussian ``R_Y^2 = k_Y sigma^2`` of the
pair's combined variance, also when perturbation models decided the islands.

Densities -- physical by construction
-------------------------------------
* Totals: ``N_x_total = n_x(inside) / area``.
* Counterpart density ``N_c`` from a one-sided positional mixture fit (Naylor et al.
  2013 without photometry) on the catalogue with fewer sources (the query side q, the
  other side o): around each query source the o sources are a uniform background of
  density ``N_o_total`` (every other o source, including other query sources'
  counterparts) plus, with probability p, one counterpart distributed as the pair AUF
  G.  Relative to "no counterpart" the likelihood of source i is
  ``L_i(p) = 1 + p (T_i / N_o_total - Y_cut)``, ``T_i = sum_j G_ij`` over its island
  pairs (inside R_Ycut, which holds a fraction Y_cut of G); edge sources are left out.
  ``sum_i ln L_i`` is concave in p.  The estimate is the posterior mean of p under a
  uniform prior on ``[0, p_max]``, ``p_max = min(1, n_o / n_q)`` (MAP by bisection on
  the derivative, then a 129-point quadrature over MAP +- 8 sd), and ``N_c = p N_q_total``
  with its posterior sd in ``diagnostics['N_c_sd']``.  Hence
  ``0 <= N_c <= min(N_a_total, N_b_total)`` whatever the data.  Sources with large
  errors in a crowded field carry little information and weigh little; when none carry
  any (all X-ray errors 4" among 0.8 infrared sources per arcsec^2) the posterior is
  wide, the estimate stays inside the range and ``N_c_sd`` says how little is known.
* Field (unmatched) densities, ``field_density='complement'`` (default):
  ``N_a = N_a_total - N_c``, ``N_b = N_b_total - N_c`` -- every source is either one
  of a counterpart pair or unmatched, so both are >= 0.  ``field_density='masked'``
  uses the paper's masked estimate below (clipped to [0, N_x_total]) where it exists.
* The paper's masked estimate (section 6.2), computed and reported in
  ``diagnostics``: a source x is *field-like* when no source y of the other
  catalogue lies within the pair's R_0.9.  The unmasked area depends on x's own
  variance s^2 (the radius is ``sqrt(k_0.9 (s^2 + sigma_y^2))``), so it is measured on
  an equal-area grid of the coverage: each grid point P gets
  ``t(P) = min_y (d^2 / k_0.9 - sigma_y^2)`` and the unmasked fraction for variance
  s^2 is ``phi(s^2) = mean_P [t(P) > s^2]``.  For sources of one variance this is
  exactly "area minus the union of the R_0.9 circles".  Field-like sources get
  Horvitz-Thompson weights ``1 / phi(sigma_x^2)``; variances with ``phi < phi_min``
  (crowded: essentially no unmasked area) are unmeasurable, and the field fraction
  measured on the measurable sources is applied to all.

Field magnitude distributions f
-------------------------------
f_x is the weighted histogram of the field-like sources' magnitudes (weights as
above).  When fewer than ``min_field_sources`` effective sources remain (crowded
fields), f_x falls back to the posterior weights of the positional mixture: a query
source is unmatched with probability ``(1 - p) / L_i``; an o source is unmatched with
probability ``1 - min(1, sum_i p G_ij / (N_o_total L_i))``.  Both are non-negative.

Counterpart distribution c (eqs 32, 33, 35, then a mixture fit)
---------------------------------------------------------------
First the paper's recursion.  For direction gamma -> phi (gamma sources, phi neighbours),
take every gamma source (inside, not at an edge, finite magnitude) whose expected number
of background phi neighbours inside R_0.63,
``lambda_i = pi k_0.63 N_phi (sigma_i^2 + <sigma_phi^2>)``, is at most ``lambda_max`` --
beyond that eq 32's factor ``exp(A N F)`` amplifies noise beyond use (the failure mode
of the unregularised recursion in crowded fields).  The brightest finite-magnitude phi
source within the pair's R_0.63 defines b.  Eq 32 integrated over magnitude reads
``S(m) = E(m) (1 - U(m))``: the fraction S(m) of the slice's sources with nothing
brighter than m equals the chance E(m) = ``mean_i exp(-Lambda_i(m))`` of no background
source brighter than m times the chance of no counterpart brighter than m,
``U(m) = Z_c C(m)``.  So ``U = 1 - S / E`` exactly per magnitude bin, with per-source
background ``Lambda_i(m)`` built from the phi catalogue's own magnitude and variance
distribution.  The background is the whole phi catalogue (every phi source except i's own
counterpart), which equals the paper's ``N_phi f_phi`` when counterparts are a small
part of phi and stays right when they are not.  U is then made physical: clipped to
[0, 1], fitted non-decreasing from U = 0 (isotonic regression, pool-adjacent-violators)
and held to the unbiased end value ``1 - S_end / E_end`` (an isotonic fit alone is biased
upwards at its end), so ``Z_c c = dU >= 0``.  Slices are shrunk towards the pooled
(all-slice) U with weight ``shrink`` pseudo-sources.  The joint counts per bin are
``n_gamma(m_gamma) dU(m_phi | m_gamma) / 0.63`` (eq 35 with p_gamma the distribution of
gamma sources that have counterparts).  Both directions estimate the same joint (eq 35);
each is normalised and they are averaged with weights ``SNR^2 = total^2 / var``, the
variance of each direction's total from a delete-one-block jackknife over ~25
equal-count sky blocks (so the correlated noise of one large-error source sitting in
many neighbourhoods counts).  With no usable direction c is ``f_a f_b`` (photometry
uninformative) and the steps below are skipped.

The recursion's shape is noisy where the background dominates: every neighbour inside
R_0.63 counts alike, so in faint bins (many background sources, few or no counterparts)
the per-bin excess is noise, and non-negativity (clip, isotonic fit) turns that noise
into a positive tail.  On the simulated calibration field of the tests (seed 3, 600 A
sources, 0.1 B sources per arcsec^2) 15 % of c's mass lay at Ks > 15 against 2.7 % for
the true counterparts (+0.7 mag on their mean Ks), eta ~ 0 for chance pairs there, and
18 of 49 false matches had Ks > 15.  Shrinkage towards ``f_a f_b`` was not the cause
(weight ``1 / (1 + SNR^2)`` < 1 % there); the estimate itself was.

``c_model='mixture'`` (default) therefore replaces the recursion's shape by the maximum-
likelihood c of the one-sided positional + photometric mixture (Naylor et al. 2013 with
magnitudes; :class:`_PairTable`): around each usable query source the o sources are
background of the o catalogue's own magnitude distribution, plus with probability p one
counterpart at offset density G with magnitudes drawn from c.  Every pair weighs by its
positional likelihood ratio G / B (B the background density of its o-magnitude bin), so
a faint chance neighbour of a source with a close counterpart carries ~ no weight.  c is
a mixture of K 2-D Gaussians in (m_a, m_b) restricted to the bins (K <= ``c_components``
by BIC, components added while the BIC falls), fitted by EM started from the
recursion's estimate (:func:`_mixture_c`); the smooth family fixes c's tails from its
bulk, so a bin where positions show no counterpart excess gets ~ 0.  (A free 2-D
histogram in place of the Gaussians -- the non-parametric MLE -- overfits: chance pairs
with a large G / B claim their own bins and its tail is as heavy as the recursion's.)
On the same field: 3.4 % of c's mass at Ks > 15, +0.08 mag, no false match at Ks > 15
(27 false matches in all instead of 49).  Limits: c is as flexible as ``c_components``
Gaussians (clipped to the bins) allow; the binned moment update is approximate (Sheppard);
the model is one-sided (each query source has at most one counterpart).
``c_model='recursion'`` keeps the recursion's shape (as does a fit that cannot start: no
usable pairs).  The fit is reported in
``diagnostics['c_mixture']`` (K, p, BIC per K); N_c stays the positional estimate.

The result is shrunk towards ``f_a f_b`` (eta = 0) by ``1 / (1 + SNR^2)`` (the
recursion's SNR: how clearly counterparts are detected at all).  Finally c and f are
floored:
``c <- (1 - floor) c + floor f_a f_b``, ``f <- (1 - floor) f + floor / range``, so
every likelihood ratio is finite.  The paper's N_c (sum of the joint counts over the
area) is reported in ``diagnostics`` for comparison only.

Missing magnitudes (NaN)
------------------------
Sources without a magnitude count in every density and in the positional fits; f and
c are built from finite magnitudes only; a neighbour without a magnitude is never "the
brightest" (treated as fainter than every detection) and the background in eq 32 is
the finite-magnitude part of the catalogue.  In the look-ups a missing magnitude is
marginalised: ``f_x(NaN) = 1``, ``c(NaN, m_b) = c_b(m_b)`` (c integrated over m_a),
``c(m_a, NaN) = c_a(m_a)``, ``c(NaN, NaN) = 1``.  Magnitudes outside the bins take the
nearest edge bin.  ``use_photometry=False`` switches photometry off: c = f = 1 and
only the densities are estimated.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .catalogue import Catalogue, radec_to_xyz
from .islands import IslandSet, host_sep_arcsec, k_of
from .sky import pairs as sky_pairs

Y_FIELD = 0.9
Y_BRIGHT = 0.63


@dataclass
class Photometry:
    """Densities (per arcsec^2) and magnitude distributions of a two-catalogue match.

    ``N_a``, ``N_b``: unmatched (field) densities; ``N_c``: counterpart density;
    ``N_a_total``, ``N_b_total``: all sources.  ``bins_a``, ``bins_b``: magnitude bin
    edges (mag); ``c`` (len(bins_a)-1, len(bins_b)-1) per mag^2 with
    ``sum(c * da[:, None] * db) = 1``; ``f_a``, ``f_b`` per mag, each integrating to 1.
    With ``use_photometry=False`` the bins and distributions are None and every
    look-up returns 1.
    """

    N_a: float
    N_b: float
    N_c: float
    N_a_total: float
    N_b_total: float
    area_arcsec2: float
    use_photometry: bool = True
    band_a: str | None = None
    band_b: str | None = None
    bins_a: np.ndarray | None = None
    bins_b: np.ndarray | None = None
    c: np.ndarray | None = None
    f_a: np.ndarray | None = None
    f_b: np.ndarray | None = None
    diagnostics: dict = field(default_factory=dict)

    @property
    def c_a_marginal(self) -> np.ndarray:
        """Counterparts' A-magnitude distribution (per mag): c integrated over m_b."""
        return self.c @ np.diff(self.bins_b)

    @property
    def c_b_marginal(self) -> np.ndarray:
        """Counterparts' B-magnitude distribution (per mag): c integrated over m_a."""
        return np.diff(self.bins_a) @ self.c

    def f_a_of(self, mag) -> np.ndarray:
        """f_a at the given A magnitudes (per mag); NaN -> 1 (marginalised)."""
        return self._lookup1(self.f_a, self.bins_a, mag)

    def f_b_of(self, mag) -> np.ndarray:
        """f_b at the given B magnitudes (per mag); NaN -> 1 (marginalised)."""
        return self._lookup1(self.f_b, self.bins_b, mag)

    def c_ab(self, mag_a, mag_b) -> np.ndarray:
        """c(m_a, m_b) per mag^2 (broadcast); a missing magnitude is integrated out."""
        ma, mb = np.broadcast_arrays(np.asarray(mag_a, dtype=np.float64),
                                     np.asarray(mag_b, dtype=np.float64))
        if not self.use_photometry:
            return np.ones(ma.shape)
        fa, fb = np.isfinite(ma), np.isfinite(mb)
        ka, kb = _bin_index(self.bins_a, ma), _bin_index(self.bins_b, mb)
        return np.where(fa & fb, self.c[ka, kb],
                        np.where(fa, self.c_a_marginal[ka], np.where(fb, self.c_b_marginal[kb], 1.0)))

    def _lookup1(self, f, bins, mag):
        m = np.asarray(mag, dtype=np.float64)
        if not self.use_photometry:
            return np.ones(m.shape)
        return np.where(np.isfinite(m), f[_bin_index(bins, m)], 1.0)


def _bin_index(edges, m):
    """Bin of each magnitude, clamped to the edge bins (NaN maps to 0; masked by callers)."""
    k = np.searchsorted(edges, np.where(np.isfinite(m), m, edges[0]), side="right") - 1
    return np.clip(k, 0, len(edges) - 2)


def default_bins(mags, min_width: float = 0.1, max_width: float = 1.0) -> np.ndarray:
    """Bin edges (mag) over the finite magnitudes: Freedman-Diaconis width clipped to
    [min_width, max_width], edges on multiples of the width."""
    m = np.asarray(mags, dtype=np.float64)
    m = m[np.isfinite(m)]
    if m.size == 0:
        return np.array([0.0, 1.0])
    q75, q25 = np.percentile(m, [75, 25])
    w = 2.0 * (q75 - q25) / max(m.size, 1) ** (1 / 3)
    w = float(np.clip(w if w > 0 else max_width, min_width, max_width))
    lo, hi = np.floor(m.min() / w) * w, np.ceil(m.max() / w) * w
    if hi <= m.max():
        hi += w
    return np.arange(round((hi - lo) / w) + 1) * w + lo


# -- the estimator ---------------------------------------------------------------------
def estimate_photometry(cat_a: Catalogue, cat_b: Catalogue, islands: IslandSet,
                        band_a: str | None = None, band_b: str | None = None, *,
                        use_photometry: bool = True, bins_a=None, bins_b=None,
                        field_density: str = "complement", y_field: float = Y_FIELD,
                        y_bright: float = Y_BRIGHT, lambda_max: float = 3.0, shrink: float = 2.0,
                        min_field_sources: int = 30, phi_min: float = 0.02, floor: float = 1e-3,
                        n_area: int = 200_000, c_model: str = "mixture", c_components: int = 3,
                        c_max_iter: int = 150, c_tol: float = 0.01, backend=None) -> Photometry:
    """Estimate N_a, N_b, N_c and (optionally) c, f_a, f_b; see the module docstring.

    ``band_a``/``band_b``: magnitude columns of ``cat_a.mags``/``cat_b.mags`` (photometry
    is off when either is None or ``use_photometry`` is False).  ``bins_a``/``bins_b``:
    bin edges in mag (default :func:`default_bins`).  ``lambda_max``: largest expected
    background count inside R_0.63 for a source to enter eq 32.  ``n_area``: grid points
    for the unmasked areas.  ``c_model``: 'mixture' (default; c from the positional +
    photometric mixture fit, Gaussian-mixture shape) or 'recursion' (the eq 32/33 shape);
    ``c_components``: most Gaussians in c; ``c_max_iter``, ``c_tol``: iterations per fit and
    the change of the total log-likelihood taken as converged.  ``backend`` runs the
    area-grid pair searches.
    """
    if field_density not in ("complement", "masked"):
        raise ValueError("field_density must be 'complement' or 'masked'")
    if c_model not in ("mixture", "recursion"):
        raise ValueError("c_model must be 'mixture' or 'recursion'")
    if not 0 < y_bright < y_field <= islands.y_cut:
        raise ValueError(f"need 0 < y_bright < y_field <= y_cut ({islands.y_cut})")
    cov = islands.coverage
    area = float(cov.area_arcsec2())
    in_a = np.asarray(cov.contains(cat_a.ra, cat_a.dec), dtype=bool)
    in_b = np.asarray(cov.contains(cat_b.ra, cat_b.dec), dtype=bool)
    na_in, nb_in = int(in_a.sum()), int(in_b.sum())
    Na_tot, Nb_tot = na_in / area, nb_in / area

    mix = _MixtureFit(islands, in_a, in_b, Na_tot, Nb_tot)
    n_q_tot = Na_tot if mix.query == "a" else Nb_tot
    N_c = mix.p * n_q_tot
    diag = {"query_side": mix.query, "p_query": mix.p, "p_query_sd": mix.p_sd, "p_query_map": mix.p_map,
            "n_query_fit": mix.n_fit, "N_c_sd": mix.p_sd * n_q_tot}

    # The paper's masked field sample (section 6.2), with proper unmasked areas.
    sides = {}
    for side in ("a", "b"):
        fs = _FieldSample(islands, side, in_a if side == "a" else in_b, y_field, phi_min, n_area,
                          cat_b if side == "a" else cat_a, backend)
        n_tot = Na_tot if side == "a" else Nb_tot
        sides[side] = fs
        diag[f"N_{side}_masked"] = None if fs.field_fraction is None else fs.field_fraction * n_tot
        diag[f"unmasked_fraction_{side}"] = fs.unmasked_fraction
        diag[f"n_field_like_{side}"] = fs.n_field_like

    N_a, N_b = Na_tot - N_c, Nb_tot - N_c
    if field_density == "masked":
        if diag["N_a_masked"] is not None:
            N_a = float(np.clip(diag["N_a_masked"], 0.0, Na_tot))
        if diag["N_b_masked"] is not None:
            N_b = float(np.clip(diag["N_b_masked"], 0.0, Nb_tot))
    N_a, N_b = max(N_a, 0.0), max(N_b, 0.0)
    result = Photometry(N_a=float(N_a), N_b=float(N_b), N_c=float(N_c), N_a_total=Na_tot,
                        N_b_total=Nb_tot, area_arcsec2=area, use_photometry=False, diagnostics=diag)
    if not use_photometry or band_a is None or band_b is None:
        return result

    mag_a = np.asarray(cat_a.mags[band_a], dtype=np.float64)
    mag_b = np.asarray(cat_b.mags[band_b], dtype=np.float64)
    ea = np.asarray(default_bins(mag_a[in_a]) if bins_a is None else bins_a, dtype=np.float64)
    eb = np.asarray(default_bins(mag_b[in_b]) if bins_b is None else bins_b, dtype=np.float64)
    for e, nm in ((ea, "bins_a"), (eb, "bins_b")):
        if e.ndim != 1 or len(e) < 2 or not np.all(np.diff(e) > 0):
            raise ValueError(f"{nm} must be increasing bin edges (at least 2)")

    f = {}
    for side, mags, edges, inside in (("a", mag_a, ea, in_a), ("b", mag_b, eb, in_b)):
        w, how = sides[side].weights(min_field_sources)
        if w is None:
            w, how = mix.field_weights(side), "posterior"
        w = np.where(inside & np.isfinite(mags), w, 0.0)
        f[side] = _floored_pdf(_hist(mags, w, edges), edges, floor)
        diag[f"f_{side}_method"] = how

    # c from both directions (eq 32: gamma = A, phi = B; eq 33: the other way round),
    # each normalised, weighted by its signal-to-noise ratio squared.
    kb = k_of(y_bright)
    joints, weights, n_est = [], [], []
    for g in ("a", "b"):
        J, var, info = _counterpart_joint(islands, g, cat_a, cat_b, mag_a, mag_b, ea, eb, in_a, in_b,
                                          area, kb, y_bright, lambda_max, shrink)
        diag[f"c_from_{g}"] = info
        if J is not None and J.sum() > 0 and np.isfinite(var) and var > 0:
            joints.append(J / J.sum())
            weights.append(J.sum() ** 2 / var)
            n_est.append(J.sum())
    widths = np.diff(ea)[:, None] * np.diff(eb)[None, :]
    ff = f["a"][:, None] * f["b"][None, :]
    snr2 = float(np.sum(weights)) if weights else 0.0
    diag["c_snr2"] = snr2
    diag["N_c_recursion"] = float(np.dot(weights, n_est) / snr2 / area) if weights else None
    diag["N_c_recursion_physical"] = diag["N_c_recursion"] is None or \
        diag["N_c_recursion"] <= min(Na_tot, Nb_tot)
    c = ff.copy()  # no usable counterpart signal (e.g. infinite variance both ways): c = f_a f_b, eta = 0
    if weights and snr2 > 0:
        est = np.tensordot(np.asarray(weights) / snr2, np.asarray(joints), axes=1) / widths
        keep = snr2 / (snr2 + 1.0)  # shrink towards f_a f_b (eta = 0) when the estimate is noise
        c = keep * ((1.0 - floor) * est + floor * ff) + (1.0 - keep) * ff
        if c_model == "mixture":
            c_mix, diag["c_mixture"] = _mixture_c(islands, mix.query, mag_a, mag_b, ea, eb, in_a, in_b,
                                                  area, est, mix.p, c_components, c_max_iter, c_tol)
            if c_mix is not None:
                est = c_mix
                c = keep * ((1.0 - floor) * est + floor * ff) + (1.0 - keep) * ff
    c /= (c * widths).sum()
    result.use_photometry = True
    result.band_a, result.band_b = band_a, band_b
    result.bins_a, result.bins_b = ea, eb
    result.c, result.f_a, result.f_b = c, f["a"], f["b"]
    return result


class _MixtureFit:
    """One-sided positional mixture: p = fraction of query sources with a counterpart."""

    def __init__(self, isl: IslandSet, in_a, in_b, Na_tot, Nb_tot):
        self.query = "a" if in_a.sum() <= in_b.sum() else "b"
        q_rows, o_rows = (isl.ia, isl.ib) if self.query == "a" else (isl.ib, isl.ia)
        in_q, in_o = (in_a, in_b) if self.query == "a" else (in_b, in_a)
        edge_q = isl.edge_a if self.query == "a" else isl.edge_b
        n_q = len(in_q)
        self.N_o = Na_tot if self.query == "b" else Nb_tot
        self.q_rows, self.o_rows, self.n_o_rows = q_rows, o_rows, len(in_o)
        self.T = np.bincount(q_rows, weights=isl.G_per_arcsec2, minlength=n_q)
        use = in_q & ~edge_q
        self.n_fit = int(use.sum())
        p_max = min(1.0, in_o.sum() / max(in_q.sum(), 1))
        self.y = isl.y_cut
        x = self.T[use] / self.N_o - self.y if self.N_o > 0 else np.zeros(0)
        self.p, self.p_sd, self.p_map = _posterior_p(x, p_max)
        self.G = isl.G_per_arcsec2

    def L(self):
        """Per query row: likelihood ratio L_i(p) (with counterpart vs none)."""
        if self.N_o <= 0:
            return np.ones_like(self.T)
        return 1.0 + self.p * (self.T / self.N_o - self.y)

    def field_weights(self, side) -> np.ndarray:
        """Posterior probability that each source of ``side`` is unmatched."""
        L = self.L()
        if side == self.query:
            return (1.0 - self.p) / L
        if self.N_o <= 0:
            return np.ones(self.n_o_rows)
        post = self.p * self.G / (self.N_o * L[self.q_rows])
        return 1.0 - np.minimum(1.0, np.bincount(self.o_rows, weights=post, minlength=self.n_o_rows))


def _posterior_p(x: np.ndarray, p_max: float, n_grid: int = 129) -> tuple[float, float, float]:
    """(posterior mean, sd, MAP) of p on [0, p_max] for ``ln L = sum ln(1 + p x)`` (x > -1)
    under a uniform prior.  The MAP comes from bisection on the (decreasing) derivative;
    the mean and sd from a trapezoid rule over MAP +- 8 posterior sd (from the curvature),
    clipped to [0, p_max]."""
    if x.size == 0 or p_max <= 0:
        return 0.0, float(p_max) / np.sqrt(12.0), 0.0

    def d1(p):
        return float(np.sum(x / (1.0 + p * x)))

    if d1(0.0) <= 0:
        p_map = 0.0
    elif d1(p_max) >= 0:
        p_map = float(p_max)
    else:
        lo, hi = 0.0, float(p_max)
        for _ in range(200):
            mid = 0.5 * (lo + hi)
            lo, hi = (mid, hi) if d1(mid) > 0 else (lo, mid)
            if hi - lo <= 1e-13 * p_max:
                break
        p_map = 0.5 * (lo + hi)
    curv = float(np.sum((x / (1.0 + p_map * x)) ** 2))
    sd0 = 1.0 / np.sqrt(curv) if curv > 0 else np.inf
    a, b = max(0.0, p_map - 8.0 * sd0), min(float(p_max), p_map + 8.0 * sd0)
    if not b > a:
        return p_map, 0.0, p_map
    grid = np.linspace(a, b, n_grid)
    ll = np.array([np.sum(np.log1p(p * x)) for p in grid])
    w = np.exp(ll - ll.max())
    norm = np.trapezoid(w, grid)
    mean = float(np.trapezoid(w * grid, grid) / norm)
    sd = float(np.sqrt(max(np.trapezoid(w * (grid - mean) ** 2, grid) / norm, 0.0)))
    return min(max(mean, 0.0), float(p_max)), sd, p_map


class _FieldSample:
    """Paper section 6.2 for one catalogue ('a' or 'b'): field-like sources (no source of
    the other catalogue inside the pair's R_y) and the unmasked-area function phi(s^2)."""

    def __init__(self, isl: IslandSet, side, inside, y, phi_min, n_area, other: Catalogue, backend):
        k = k_of(y)
        near = isl.within(y)
        rows = isl.ia[near] if side == "a" else isl.ib[near]
        s2_self = isl.sigma2_a if side == "a" else isl.sigma2_b
        s2_other = isl.sigma2_b if side == "a" else isl.sigma2_a
        field_like = inside & (np.bincount(rows, minlength=len(inside)) == 0)
        self.n_field_like = int(field_like.sum())
        # Largest variance worth measuring: where a Poisson field would leave phi_min / 10.
        dens = len(s2_other) / isl.coverage.area_arcsec2()
        s2_cap = -np.log(phi_min / 10.0) / (np.pi * k * max(dens, 1e-300)) - float(np.mean(s2_other))
        self.s2_cap = float(min(s2_cap, s2_self.max())) if len(s2_self) else 0.0
        gra, gdec = isl.coverage.grid(n_area)
        t = np.full(len(gra), np.inf)
        if len(s2_self) and self.s2_cap < s2_self.min():
            t[:] = -np.inf  # every variance is unmeasurable: no unmasked area worth a search
        elif len(gra) and len(s2_other):
            pr = sky_pairs(gra, gdec, other.ra, other.dec, np.sqrt(k * self.s2_cap) * (1 + 1e-7),
                           np.sqrt(k * s2_other) * (1 + 1e-7), backend=backend)
            d = host_sep_arcsec(radec_to_xyz(gra, gdec), radec_to_xyz(other.ra, other.dec), pr.i, pr.j)
            np.minimum.at(t, pr.i, d * d / k - s2_other[pr.j])
        self.t_sorted = np.sort(t)
        phi = self.phi(s2_self)
        measurable = inside & (phi >= phi_min)
        self.unmasked_fraction = float(self.phi(np.median(s2_self[inside]))) if inside.any() else None
        # Horvitz-Thompson weights of the field-like measurable sources.
        self.ht = np.where(field_like & measurable, 1.0 / np.where(measurable, phi, 1.0), 0.0) \
            if measurable.any() else None
        self.field_fraction = None if self.ht is None else float(self.ht.sum() / measurable.sum())

    def phi(self, s2) -> np.ndarray:
        """Unmasked fraction of the coverage for a source of variance s2 (arcsec^2); 0 above
        ``s2_cap`` (not searched: unmeasurable)."""
        s2 = np.asarray(s2, dtype=np.float64)
        n = len(self.t_sorted)
        if n == 0:
            return np.zeros(s2.shape)
        frac = (n - np.searchsorted(self.t_sorted, s2, side="right")) / n
        return np.where(s2 <= self.s2_cap, frac, 0.0)

    def weights(self, min_eff: int):
        """(HT weights per row, 'mask') or (None, reason) when too few effective sources."""
        if self.ht is None:
            return None, "no measurable area"
        w = self.ht
        s1, s2 = w.sum(), (w * w).sum()
        n_eff = s1 * s1 / s2 if s2 > 0 else 0.0
        return (w, "mask") if n_eff >= min_eff else (None, f"n_eff {n_eff:.1f}")


def _hist(m, w, edges):
    ok = np.isfinite(m) & (w > 0)
    idx = _bin_index(edges, m[ok])
    return np.bincount(idx, weights=w[ok], minlength=len(edges) - 1)


def _floored_pdf(counts, edges, floor):
    """Normalised density per mag with a uniform floor of weight ``floor``."""
    width = np.diff(edges)
    total = counts.sum()
    pdf = counts / width / total if total > 0 else np.full(len(width), 1.0 / (edges[-1] - edges[0]))
    pdf = (1.0 - floor) * pdf + floor / (edges[-1] - edges[0])
    return pdf / (pdf * width).sum()


def _isotonic(y: np.ndarray) -> np.ndarray:
    """Least-squares non-decreasing fit (pool adjacent violators)."""
    vals, wts, lens = [], [], []
    for v in y:
        vals.append(float(v)), wts.append(1.0), lens.append(1)
        while len(vals) > 1 and vals[-2] > vals[-1]:
            w = wts[-2] + wts[-1]
            vals[-2] = (vals[-2] * wts[-2] + vals[-1] * wts[-1]) / w
            wts[-2], lens[-2] = w, lens[-2] + lens[-1]
            vals.pop(), wts.pop(), lens.pop()
    return np.repeat(vals, lens)


def _physical_U(S, E):
    """U = 1 - S/E made physical: non-decreasing from U_0 = 0 to the unbiased end value
    ``U_end = clip(1 - S_end/E_end, 0, 1)``.  The isotonic fit alone would bias the end
    upwards (its last value is the largest suffix mean of a noisy plateau), so it is
    clipped to [0, U_end] -- the isotonic fit under those bounds -- and ends at U_end."""
    U = np.clip(1.0 - S / E, 0.0, 1.0)
    U[0] = 0.0
    out = np.clip(_isotonic(U), 0.0, U[-1])
    out[-1] = U[-1]
    return out


class _PairTable:
    """The one-sided positional + photometric mixture behind c, on the magnitude bins.

    Query side q (the side of the positional fit), other side o.  Usable query sources:
    inside, not at an edge, finite magnitude.  Around each, the finite-magnitude o sources
    are a Poisson background of density ``B(l) = n_o(l) / (area dm_l)`` per arcsec^2 per
    mag in o-bin l (the whole o catalogue: every o source except i's own counterpart is
    unrelated to i), and with probability p one of them is i's counterpart, at offset
    density G and with magnitudes drawn from c.  Relative to "every neighbour is
    background", source i in q-bin k has likelihood

        L_i = U[k] / dm_k + p (1 - Y) c_q(k) + p sum_l c[k, l] H_il,

    ``U[k]`` the mass of unmatched query sources in bin k (``sum U = 1 - p``), ``c_q`` the
    q-marginal of c, Y = ``isl.y_cut`` (the counterpart may lie beyond the pairs) and
    ``H_il = sum_j G_ij / B(l)`` (mag) over i's island pairs j in o-bin l.  Entries are
    stored per (source, o-bin) that has pairs.
    """

    def __init__(self, isl: IslandSet, query, mag_a, mag_b, ea, eb, in_a, in_b, area):
        if query == "a":
            rq, ro, mq, mo, eq, eo, in_q, in_o, edge_q = (isl.ia, isl.ib, mag_a, mag_b, ea, eb, in_a, in_b,
                                                         isl.edge_a)
        else:
            rq, ro, mq, mo, eq, eo, in_q, in_o, edge_q = (isl.ib, isl.ia, mag_b, mag_a, eb, ea, in_b, in_a,
                                                         isl.edge_b)
        self.query, self.eq, self.eo = query, eq, eo
        self.kq, self.ko = len(eq) - 1, len(eo) - 1
        self.dq, self.do = np.diff(eq), np.diff(eo)
        self.widths = self.dq[:, None] * self.do[None, :]
        self.y_out = 1.0 - float(isl.y_cut)
        use_q = in_q & ~edge_q & np.isfinite(mq)
        fin_o = in_o & np.isfinite(mo)
        q_idx = np.flatnonzero(use_q)
        self.n = len(q_idx)
        self.k_src = _bin_index(eq, mq[q_idx])
        self.hist_q = np.bincount(self.k_src, minlength=self.kq) / max(self.n, 1)
        n_o_bin = np.bincount(_bin_index(eo, mo[fin_o]), minlength=self.ko).astype(np.float64)
        G = np.asarray(isl.G_per_arcsec2, dtype=np.float64)
        ok = use_q[rq] & fin_o[ro] & (G > 0) & np.isfinite(G)
        pos = np.full(len(use_q), -1, dtype=np.int64)
        pos[q_idx] = np.arange(self.n)
        src = pos[rq[ok]]
        lo = _bin_index(eo, mo[ro[ok]])
        h = G[ok] * area * self.do[lo] / n_o_bin[lo]  # G / B(l); n_o_bin >= 1: the pair's own o source
        uniq, inv = np.unique(src * self.ko + lo, return_inverse=True)
        self.H = np.bincount(inv.ravel(), weights=h, minlength=len(uniq))
        self.src = uniq // self.ko
        self.cell = self.k_src[self.src] * self.ko + uniq % self.ko
        self.n_pairs = int(ok.sum())

    def step(self, c, p, U):
        """One EM step from (c per mag^2 (kq, ko), p, U): returns the mean log-likelihood at
        the input and the updated (U, p, R), R the counterpart mass per cell (sums to p)."""
        cq = c @ self.do
        t = p * c.ravel()[self.cell] * self.H
        base = U[self.k_src] / self.dq[self.k_src]
        out = p * self.y_out * cq[self.k_src]
        L = base + out + np.bincount(self.src, weights=t, minlength=self.n)
        ll = float(np.mean(np.log(L)))
        U_new = np.bincount(self.k_src, weights=base / L, minlength=self.kq) / self.n
        R = np.bincount(self.cell, weights=t / L[self.src], minlength=self.kq * self.ko)
        R = R.reshape(self.kq, self.ko)
        # a counterpart beyond the pairs has an unseen o magnitude: spread it as c[k, :]
        share = np.divide(c * self.do, cq[:, None], out=np.zeros_like(c), where=cq[:, None] > 0)
        R = (R + np.bincount(self.k_src, weights=out / L, minlength=self.kq)[:, None] * share) / self.n
        return ll, U_new, float(R.sum()), R


class _GaussMix2:
    """Mixture of 2-D Gaussians in (m_q, m_o) (mag), restricted to the bin grid.

    Cell masses are exact in m_o (normal CDF of the conditional m_o | m_q) and use an
    ``s``-point midpoint rule in m_q.  Fitted to cell weights (EM on binned data): the
    moments of the cell centres with Sheppard's correction (the within-cell variance
    ``dm^2 / 12`` subtracted) and variances floored at a quarter of the median bin width
    squared (:meth:`_floored`), so no component collapses onto one cell or pair."""

    def __init__(self, eq, eo, s: int = 4):
        self.eq, self.eo = eq, eo
        t = (np.arange(s) + 0.5) / s
        self.xq = (eq[:-1, None] + np.diff(eq)[:, None] * t[None, :])  # (kq, s) sub-points
        self.wq = np.diff(eq) / s
        cq, co = 0.5 * (eq[1:] + eq[:-1]), 0.5 * (eo[1:] + eo[:-1])
        self.X = np.stack(np.meshgrid(cq, co, indexing="ij"), axis=-1).reshape(-1, 2)
        dq, do = np.meshgrid(np.diff(eq), np.diff(eo), indexing="ij")
        self.shep = np.stack([dq.ravel() ** 2, do.ravel() ** 2], axis=1) / 12.0
        self.floor2 = (0.25 * np.median(np.diff(eq))) ** 2, (0.25 * np.median(np.diff(eo))) ** 2
        self.pis, self.mus, self.covs = np.ones(1), [np.zeros(2)], [np.eye(2)]

    @property
    def n_components(self) -> int:
        return len(self.pis)

    def component_masses(self) -> np.ndarray:
        """(K, kq, ko): each component's (untruncated) probability in each cell."""
        from scipy.special import ndtr

        out = []
        for mu, cv in zip(self.mus, self.covs):
            vq = cv[0, 0]
            beta = cv[0, 1] / vq
            sc = np.sqrt(cv[1, 1] - cv[0, 1] * beta)
            wq = np.exp(-0.5 * (self.xq - mu[0]) ** 2 / vq) / np.sqrt(2 * np.pi * vq) * self.wq[:, None]
            mc = mu[1] + beta * (self.xq - mu[0])                       # (kq, s)
            cdf = ndtr((self.eo[None, None, :] - mc[..., None]) / sc)   # (kq, s, ko + 1)
            out.append(np.einsum("ks,ksl->kl", wq, np.diff(cdf, axis=-1)))
        return np.asarray(out)

    def density(self, M=None):
        """c per mag^2 on the grid, normalised over it (None when no mass lies on it)."""
        M = self.component_masses() if M is None else M
        mass = np.tensordot(self.pis, M, axes=1)
        tot = float(mass.sum())
        if not (tot > 1e-300 and np.isfinite(tot)):
            return None
        return mass / tot / (np.diff(self.eq)[:, None] * np.diff(self.eo)[None, :])

    def update(self, R, M=None):
        """One EM update of weights, means and covariances from cell weights R (kq, ko)."""
        M = self.component_masses() if M is None else M
        comp = self.pis[:, None] * M.reshape(len(self.pis), -1)
        tot = comp.sum(0)
        g = np.divide(comp, tot, out=np.zeros_like(comp), where=tot > 0)
        wk = g * R.ravel()[None, :]
        Nk = wk.sum(1)
        keep = Nk > 1e-12 * max(Nk.sum(), 1e-300)
        for k in np.flatnonzero(keep):
            mu = wk[k] @ self.X / Nk[k]
            d = self.X - mu
            self.mus[k] = mu
            grouped = (d * wk[k][:, None]).T @ d / Nk[k]
            self.covs[k] = self._floored(grouped - np.diag(wk[k] @ self.shep / Nk[k]))
        self.pis = Nk[keep] / Nk[keep].sum()
        self.mus = [m for m, k in zip(self.mus, keep) if k]
        self.covs = [c for c, k in zip(self.covs, keep) if k]

    def _floored(self, cov):
        """Covariance with var_q >= floor_q^2 and the conditional var(m_o | m_q) >= floor_o^2
        (floors a quarter of the median bin widths): a component narrower than a bin is not
        resolved by binned data, and Sheppard's subtraction can leave a grouped variance
        below zero."""
        fq, fo = self.floor2
        vq, vo, cqo = max(cov[0, 0], fq), max(cov[1, 1], fo), cov[0, 1]
        lim = np.sqrt(max(vq * (vo - fo), 0.0))
        cqo = float(np.clip(cqo, -lim, lim))
        return np.array([[vq, cqo], [cqo, vo]])

    def start(self, R):
        """One component with the weighted moments of cell weights R (kq, ko)."""
        w = R.ravel() / R.sum()
        mu = w @ self.X
        d = self.X - mu
        self.pis, self.mus = np.ones(1), [mu]
        self.covs = [self._floored((d * w[:, None]).T @ d - np.diag(w @ self.shep))]
        return self

    def copy(self):
        """A copy sharing the grid, with its own weights, means and covariances."""
        out = _GaussMix2.__new__(_GaussMix2)
        out.__dict__.update(self.__dict__)
        out.pis = self.pis.copy()
        out.mus = [m.copy() for m in self.mus]
        out.covs = [c.copy() for c in self.covs]
        return out

    def split(self):
        """A copy with one more component: the heaviest component split in two along its
        major axis, moment-preserving (each half the weight, means mu +- sqrt(lambda) v / 2,
        covariance Sigma - lambda v v^T / 4), so the fit starts close to this one."""
        k = int(np.argmax(self.pis))
        lam, vec = np.linalg.eigh(self.covs[k])
        v, a = vec[:, -1], 0.5 * np.sqrt(lam[-1])
        cov = self.covs[k] - a * a * np.outer(v, v)
        out = self.copy()
        out.pis = np.r_[np.delete(self.pis, k), self.pis[k] / 2, self.pis[k] / 2]
        rest = [i for i in range(len(self.pis)) if i != k]
        out.mus = [self.mus[i].copy() for i in rest] + [self.mus[k] - a * v, self.mus[k] + a * v]
        out.covs = [self.covs[i].copy() for i in rest] + [cov, cov.copy()]
        return out


def _fit_mixture(tab: _PairTable, gm: _GaussMix2, p_init, max_iter: int, tol: float, patience: int = 2):
    """Fit the :class:`_PairTable` mixture with c the Gaussian mixture ``gm`` (its start,
    updated in place).

    Each iteration is an EM step for (U, p) and the posterior counterpart mass per cell
    R, then a binned-data moment update of the Gaussians (:meth:`_GaussMix2.update`; its
    Sheppard term is an approximation, so the likelihood is not strictly monotone).  The
    fit stops once the total log-likelihood ``n * mean ln L`` has changed by less than
    ``tol`` ``patience`` times in a row, or after ``max_iter`` iterations, and returns its
    last state (no data-dependent choice among states: a rounding difference cannot pick
    another one)."""
    M = gm.component_masses()
    c = gm.density(M)
    if c is None:
        return None
    p = float(np.clip(p_init, 1e-3, 1.0 - 1e-3))
    U = (1.0 - p) * tab.hist_q
    ll_old, calm, it, converged = -np.inf, 0, 0, False
    for it in range(1, max_iter + 1):
        ll, U_new, p_new, R = tab.step(c, p, U)
        calm = calm + 1 if tab.n * abs(ll - ll_old) < tol else 0
        if calm >= patience:
            converged = True
            break
        if not p_new > 0:
            return None
        gm.update(R, M)
        M = gm.component_masses()
        c_new = gm.density(M)
        if c_new is None:
            return None
        ll_old, c, p, U = ll, c_new, p_new, U_new
    return {"c": c, "ll": ll, "p": p, "R": R, "gm": gm, "K": gm.n_components, "iterations": it,
            "converged": converged}


def _mixture_c(isl: IslandSet, query, mag_a, mag_b, ea, eb, in_a, in_b, area, c_start, p_start,
               k_max: int, max_iter: int, tol: float):
    """Maximum-likelihood c of the positional + photometric mixture (:class:`_PairTable`)
    with c a mixture of K <= ``k_max`` 2-D Gaussians chosen by BIC, fitted by EM.

    Why: eq 32 counts every neighbour inside R_0.63 alike, so where the background
    dominates (faint o magnitudes) its per-bin excess is noise, and non-negativity turns
    that noise into a positive tail.  Here each pair weighs by its positional likelihood
    ratio G / B, the counterpart fraction p is fitted jointly, and the smooth family fixes
    c's tails from its bulk, so a bin where the positions show no excess gets ~ 0.  (A free
    2-D histogram in place of the Gaussian mixture is the non-parametric MLE; it overfits:
    chance pairs with a large G / B claim their own bins.)  BIC ``-2 ln L + (6K - 1) ln n``
    picks K (n usable query sources).  K = 1 starts from the moments of ``c_start`` (per
    mag^2, (a, b) orientation: eq 32's estimate) and ``p_start``; each larger K from the
    previous fit with its heaviest component split (:meth:`_GaussMix2.split`); components
    are added until the BIC stops falling.

    Returns (c per mag^2 normalised over the grid in (a, b) orientation, or None when no
    fit succeeds; info for the diagnostics).
    """
    tab = _PairTable(isl, query, mag_a, mag_b, ea, eb, in_a, in_b, area)
    info = {"query_side": query, "n_sources": tab.n, "n_pairs": tab.n_pairs, "fits": []}
    if tab.n == 0 or len(tab.H) == 0:
        return None, info
    c0 = c_start if query == "a" else c_start.T
    best = last = None
    for _ in range(max(int(k_max), 1)):
        if last is None:
            gm, p0 = _GaussMix2(tab.eq, tab.eo).start(c0 * tab.widths), p_start
        else:
            gm, p0 = last["gm"].split(), last["p"]
        fit = _fit_mixture(tab, gm, p0, max_iter, tol)
        if fit is None:
            break
        fit["bic"] = -2.0 * tab.n * fit["ll"] + (6 * fit["K"] - 1) * np.log(tab.n)
        info["fits"].append({k: fit[k] for k in ("K", "bic", "ll", "p", "iterations", "converged")})
        if best is not None and fit["bic"] >= best["bic"]:
            break  # one more component does not pay: stop adding
        best = last = fit
    if best is None:
        return None, info
    info.update(K=best["K"], p=best["p"], converged=best["converged"])
    return (best["c"] if query == "a" else best["c"].T), info


def _counterpart_joint(isl: IslandSet, g, cat_a, cat_b, mag_a, mag_b, ea, eb, in_a, in_b, area, kb,
                       yb, lambda_max, shrink):
    """(joint counterpart counts (len(ea)-1, len(eb)-1), variance of their sum, info) from
    direction gamma = g (eq 32 for 'a', eq 33 for 'b')."""
    cat_g = cat_a if g == "a" else cat_b
    ra_g, dec_g = cat_g.ra, cat_g.dec
    if g == "a":
        mg, mp, eg, ep, in_g, in_p = mag_a, mag_b, ea, eb, in_a, in_b
        rg, rp, s2g, s2p, edge_g = isl.ia, isl.ib, isl.sigma2_a, isl.sigma2_b, isl.edge_a
    else:
        mg, mp, eg, ep, in_g, in_p = mag_b, mag_a, eb, ea, in_b, in_a
        rg, rp, s2g, s2p, edge_g = isl.ib, isl.ia, isl.sigma2_b, isl.sigma2_a, isl.edge_b
    kp = len(ep) - 1
    fin_p = in_p & np.isfinite(mp)
    info = {"n_usable": 0, "n_pairs_est": None, "lambda_max": lambda_max}
    if fin_p.sum() == 0:
        return None, 0.0, info
    # Background: the phi catalogue's finite-magnitude sources, by bin: density and variance.
    N_p = fin_p.sum() / area
    bin_p = _bin_index(ep, mp[fin_p])
    P = np.concatenate([[0.0], np.cumsum(np.bincount(bin_p, minlength=kp))]) / fin_p.sum()
    W = np.concatenate([[0.0], np.cumsum(np.bincount(bin_p, weights=s2p[fin_p], minlength=kp))]) / fin_p.sum()
    lam = np.pi * kb * N_p * (s2g + W[-1])
    use = in_g & ~edge_g & np.isfinite(mg) & (lam <= lambda_max)
    info["n_usable"] = int(use.sum())
    if use.sum() == 0:
        return None, 0.0, info
    # Brightest finite-magnitude phi neighbour inside the pair's R_yb (bin kp = none).
    near = isl.within(yb)
    rg_n, rp_n = rg[near], rp[near]
    ok = use[rg_n] & fin_p[rp_n]
    bright = np.full(len(mg), kp, dtype=np.int64)
    np.minimum.at(bright, rg_n[ok], _bin_index(ep, mp[rp_n[ok]]))
    idx = np.flatnonzero(use)
    slice_g = _bin_index(eg, mg[idx])
    kg = len(eg) - 1
    c_bg = np.pi * kb * N_p
    # first[a, k]: slice-a sources whose brightest neighbour is in bin k (k = kp: none);
    # Esum[a, k]: sum over slice a of exp(-Lambda_i(bin k)), the background survival.
    first = np.zeros((kg, kp + 1))
    np.add.at(first, (slice_g, bright[idx]), 1.0)
    n_slice = first.sum(axis=1)
    Esum = _slice_survival(slice_g, s2g[idx], P, W, c_bg, kg)
    # S_k = 1 - (fraction whose brightest is in a bin < k); U = 1 - S / E, made physical.
    cum_first = np.concatenate([np.zeros((kg, 1)), np.cumsum(first, axis=1)[:, :kp]], axis=1)
    U_pool = _physical_U(1.0 - cum_first.sum(0) / n_slice.sum(), Esum.sum(0) / n_slice.sum())
    U = np.tile(U_pool, (kg, 1))
    for a in np.flatnonzero(n_slice):
        Ua = _physical_U(1.0 - cum_first[a] / n_slice[a], Esum[a] / n_slice[a])
        U[a] = (n_slice[a] * Ua + shrink * U_pool) / (n_slice[a] + shrink)
    dU = np.diff(U, axis=1)  # (kg, kp): Z_c c(m_phi | m_gamma) per bin mass
    n_g = np.bincount(_bin_index(eg, mg[in_g & np.isfinite(mg)]), minlength=kg).astype(np.float64)
    J = n_g[:, None] * dU / yb
    var = _jackknife_var(ra_g[idx], dec_g[idx], slice_g, bright[idx] == kp,
                         np.exp(-c_bg * (s2g[idx] + W[-1])), n_g, kg, yb)
    info["n_pairs_est"] = float(J.sum())
    info["rel_error"] = float(np.sqrt(var) / J.sum()) if J.sum() > 0 else None
    info["Z_c_pooled"] = float(U_pool[-1] / yb)
    return (J if g == "a" else J.T), var, info


def _slice_survival(slice_g, s2, P, W, c_bg, kg, chunk: int = 1 << 16):
    """Esum[a, k] = sum over sources i of slice a of exp(-c_bg (s2_i P_k + W_k)).
    Sources sharing (slice, variance) are evaluated once; rows in chunks (memory)."""
    order = np.lexsort((s2, slice_g))
    sl, v = slice_g[order], s2[order]
    new = np.ones(len(sl), dtype=bool)
    new[1:] = (sl[1:] != sl[:-1]) | (v[1:] != v[:-1])
    first = np.flatnonzero(new)
    count = np.diff(np.append(first, len(sl))).astype(np.float64)
    sl, v = sl[first], v[first]
    out = np.zeros((kg, len(P)))
    for lo in range(0, len(v), chunk):
        rows = slice(lo, lo + chunk)
        e = np.exp(-c_bg * (v[rows, None] * P[None, :] + W[None, :])) * count[rows, None]
        starts = np.flatnonzero(np.r_[True, sl[rows][1:] != sl[rows][:-1]])
        np.add.at(out, sl[rows][starts], np.add.reduceat(e, starts, axis=0))
    return out


def _jackknife_var(ra, dec, slice_g, none, e_end, n_g, kg, yb, n_blocks: int = 25) -> float:
    """Delete-one-block jackknife variance of the estimated number of counterpart pairs
    ``sum_a n_g(a) (1 - none_a / E_a) / yb`` over equal-count sky blocks of the usable
    gamma sources; blocks span many R_0.63, so the noise shared through one phi source
    near many gamma sources is counted.  Returns total^2 (SNR 1) when too few sources."""
    n = len(ra)
    nb = int(min(n_blocks, n // 4))
    if nb < 2:
        return float(np.inf)
    ns = max(1, int(round(np.sqrt(nb))))
    dra = np.mod(ra - ra[0] + 180.0, 360.0)
    strip = np.empty(n, dtype=np.int64)
    strip[np.argsort(dec, kind="stable")] = np.arange(n) * ns // n
    block = np.empty(n, dtype=np.int64)
    per = -(-nb // ns)
    for s_ in range(ns):
        rows = np.flatnonzero(strip == s_)
        rank = np.arange(len(rows)) * per // max(len(rows), 1)
        block[rows[np.argsort(dra[rows], kind="stable")]] = s_ * per + rank
    nblk = ns * per
    key = block * kg + slice_g
    cnt = np.bincount(key, minlength=nblk * kg).reshape(nblk, kg)
    non = np.bincount(key, weights=none.astype(np.float64), minlength=nblk * kg).reshape(nblk, kg)
    ee = np.bincount(key, weights=e_end, minlength=nblk * kg).reshape(nblk, kg)
    c_rest, n_rest, e_rest = cnt.sum(0) - cnt, non.sum(0) - non, ee.sum(0) - ee
    with np.errstate(divide="ignore", invalid="ignore"):
        u = np.clip(1.0 - n_rest / e_rest, 0.0, 1.0)
        u_pool = np.clip(1.0 - n_rest.sum(1) / e_rest.sum(1), 0.0, 1.0)
    u = np.where(c_rest > 0, u, u_pool[:, None])
    theta = (u * n_g[None, :]).sum(1) / yb
    theta = theta[cnt.sum(1) > 0]
    m = len(theta)
    return float((m - 1) / m * np.sum((theta - theta.mean()) ** 2)) if m > 1 else float(np.inf)
