"""The notebook's one-sided counterpart method, done right and fast.

``run_onesided(xray, ir, options)`` takes two already-filtered catalogues (sparse
X-ray with position errors; dense IR with a Ks magnitude) and does, in order:

1. **Quadrature match** -- pairs with ``phi <= sqrt(sigma_X^2 + sigma_IR^2)``
   (arcsec), counted per Ks bin (left-inclusive, default 6.0-17.5 by 0.5 mag);
   IR sources with Ks missing, brighter than the first edge, or at/fainter than
   the last edge are counted in their own rows, never dropped.
2. **Null trials** -- ``n_trials`` shifted copies (seeded, recorded in ``shifts``).
   Every trial and every shift-sweep trial is one block of queries in ONE search
   of one IR index: shifting the IR catalogue by a rotation R gives the same
   pairs as shifting the X-ray positions by R^-1, so the 'ir' target applies the
   inverse offset to the queries and the 'xray' target the offset itself (see
   :mod:`.geometry`).  Offsets are area-uniform in an annulus [r_min, r_max]
   (default r_min = 5 x the largest quadrature radius, r_max = 2 r_min), never a
   disk.  Counts per (trial, Ks class) come from a single ``bincount``.  Per bin:
   ``n_real``, ``rand_mean``, ``rand_std`` (ddof=1), ``excess``, ``significance``.
3. **Edge correction** (``edge_correction=True``) -- a shifted X-ray position can
   fall off the IR footprint and then finds no chance match, so raw trial counts
   underestimate the chance rate near edges (on a 6-arcmin field with 10-20"
   shifts, ~5 %, a quarter of the counterpart signal).  Each trial's counts are
   scaled by ``sum_i w(real_i) / sum_i w(trial_i)``, with ``w`` the footprint weight
   of :class:`.geometry.CoverageGrid` (IR-only information, so the counterparts
   around the real positions do not bias it).  What remains is a blur of ~1/6 of
   a grid cell along the edges parallel to the shift, ~2 s / (6 L) of the chance
   rate for cell side s and field size L (0.8 % in the example).
4. **f(K), rho(K)** -- ``f`` is the fraction of the X-ray sources *considered*
   (those on the IR footprint grid, or with a real match) with a counterpart in
   the IR catalogue at Ks <= K; per magnitude class it is the counterpart
   magnitude distribution.  Three estimators, all reported in ``f_table``:

   * ``'excess'`` (default, the shift method's purpose): cumulative real minus mean cumulative null-trial matches (pairs),
     divided by the number of X-ray sources considered and by the completeness of
     the quadrature radius, ``1 - exp(-1/2) = 0.393`` for a 2-D Gaussian (the radius
     is one per-axis sigma of the pair's separation); then made non-decreasing by
     a least-squares isotonic fit and clipped to [0, 1].  Pairs are counted, not
     "X-ray sources with a match": a source with a counterpart AND a chance match
     would count once, which biases the excess low.
   * ``'em'``: the maximum-likelihood per-class fractions given all
     candidates within ``candidate_nsigma`` -- the excess refined by EM over the
     same model that gives P_i (:func:`.probability.em_class_fractions`).  The
     excess uses only the pairs inside one sigma and inherits the Poisson noise of
     their chance matches; on simulated crowded fields (1,200 X-ray sources, 0.12
     IR per arcsec^2) its f_lim scattered by 0.044 about the truth (bias +0.025),
     the ML estimate by 0.017 (bias 0.001).  The excess stays in the tables as
     the model-free check; 'em' is the option to choose for the best-calibrated P_i.
   * ``'raw'``: X-ray sources with at least one real match at Ks <= K over those
     considered (the notebook's numerator with the right denominator; it still
     counts chance matches).

   ``rho(K)`` = IR sources per arcsec^2 brighter than K, over the footprint area of
   :class:`.geometry.CoverageGrid`.
5. **P_i, P_0** (:mod:`.probability`) for all candidates within
   ``candidate_nsigma`` (default 5) quadrature sigmas.  ``weight_form='binned'``
   (default) uses per-class f and rho (the Bayesian ratio of counterpart and
   field magnitude distributions); ``'cumulative'`` the notebook's f(<=K)/rho(<=K),
   interpolated within a class in proportion to the IR counts (``lookup='exact'``)
   or at the nearest grid magnitude (``lookup='nearest'``, the notebook).
   ``f_lim`` is f over all classes (including Ks missing and out of range).
   A candidate with Ks missing is a member of the 'Ks missing' class: binned, it
   gets that class's own f and rho (estimated from its own excess like any bin);
   cumulative, it is treated as fainter than every magnitude (f = f_lim,
   rho = all IR sources).  Its Ks is never 0.  The binned form is the Bayesian
   posterior (:mod:`.probability`); the cumulative ratio is not a likelihood ratio
   and over-weights faint candidates: on simulated crowded fields its mean
   (1 - P_0) came out ~0.6 for a true counterpart fraction of 0.375 (binned:
   within 0.02), so it is offered only to reproduce the notebook.
6. **Local rho** (``rho_mode='local'``; default ``'global'``, items 4-5).  One
   global rho(K) per class makes P_i over-confident where the field is denser than
   average and under-confident where it is sparser (towards the Galactic Centre
   extinction and crowding change the IR density several-fold across a field).
   With 'local', each X-ray source's candidates use the IR density about that
   source: IR sources of each class counted in the annulus ``r_in < r <= R``
   (``R = rho_local_radius_arcsec``, default 60; ``r_in`` = the source's candidate
   radius ``candidate_nsigma sqrt(sigma_X^2 + max sigma_IR^2)``, at most R/2, so its
   own counterpart is never counted; other sources' counterparts are, as they are
   chance matches for this one, and as the global rho counts them) by one batched
   :meth:`SkyIndex.query`, divided by the annulus area that lies on the IR
   footprint (:func:`.geometry.annulus_footprint_area`; at an edge the full annulus
   would bias the density low by up to 1/2, at a corner 3/4).  The rule
   (:func:`.probability.local_rho`) shrinks twice with ``n0 =
   rho_local_prior_count`` (default 10) pseudo-sources: the all-class density
   towards the global one, ``rho_i = (n_i + n0) / (A_i + n0 / rho_mean)``, then
   each class towards the global magnitude distribution scaled to it,
   ``rho_ci = (n_ci + n0) / (A_i + n0 / (q_c rho_i))`` with ``q_c`` the class's
   global fraction -- always positive, the global value off the footprint, own
   counts where a class is well populated.  f(K), the null trials and the edge
   correction are unchanged (f is a fraction of X-ray sources); ``f_mode='em'``
   fits f with the local rho; the cumulative form scales its global rho(<= K) by
   ``rho_i / rho_mean``.  Measured on a simulated field of two halves at 0.05 and
   0.2 IR per arcsec^2 (1,500 X-ray sources each, f_mode='em', 10 seeds), ECE of the
   best-match P_i (10 bins) computed within each half and averaged: 0.029-0.046
   global (the sparse half under-confident by 0.02-0.05, the dense half
   over-confident by 0.02-0.05), 0.022-0.039 local (signed errors -0.01 to +0.04).
   Pooled over both halves the two global errors cancel in the same P bins (0.014-
   0.021 global, 0.017-0.031 local), so the pooled ECE cannot show the problem.  The
   true density of each half in place of the local estimate gave 0.020-0.027: what
   is left is mostly the blur of the R-wide band along the density step, where the
   sparse side is over-dense and the dense side under-dense.  On uniform fields
   'local' and 'global' agree (ECE within 0.01, mean(1 - P_0) within 0.005).  Cost:
   one more search of ~n_x rho pi R^2 pairs (batched to bound memory; ~1 s for
   4,000 X-ray sources at 0.125 per arcsec^2 with NumPy), plus the area sampling.

All heavy work is the sky search (NumPy or CuPy executor of :class:`SkyIndex`,
bit-identical pairs); everything after it is host NumPy over those pairs, so both
backends give identical counts and best matches and equal probabilities.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..backend import get_backend
from ..catalogue import Catalogue
from ..progress import bar
from ..sky import SkyIndex
from . import stats
from .geometry import (CoverageGrid, annulus_footprint_area, annulus_offsets, mean_direction,
                       offset_points, rotation_for_offset, xyz_to_radec)
from .probability import em_class_fractions, local_rho, normalise, p_phi

COMPLETENESS_1SIGMA = 1.0 - np.exp(-0.5)  # P(r <= sigma) for a 2-D Gaussian of per-axis sigma
NOTEBOOK_SWEEP_RADII = tuple(float(r) for r in np.linspace(0.0, 20.0, 9))  # arcsec
PRESETS = {
    "default": {},
    # The notebook's choices (not its arithmetic errors): remove the red side of the
    # colour test, candidates inside the 1-sigma quadrature radius, f from raw real
    # matches, cumulative f/rho looked up at the nearest grid magnitude.
    "notebook": dict(colour_remove="red", candidate_nsigma=1.0, f_mode="raw",
                     weight_form="cumulative", lookup="nearest"),
}
CHOICES = dict(shift_mode=("annulus", "jitter"), shift_target=("ir", "xray"),
               f_mode=("em", "excess", "raw"), weight_form=("binned", "cumulative"),
               lookup=("exact", "nearest"), colour_remove=("blue", "red"), footprint=("grid", "none"),
               rho_mode=("global", "local"))
LOCAL_PAIR_BUDGET = 4_000_000  # expected (X-ray, IR) pairs per batch of the local-density search


@dataclass
class OneSidedOptions:
    """Options of :func:`run_onesided` (angles in arcsec, magnitudes in mag).

    preset : 'default' | 'notebook'.  Constructing with ``preset='notebook'`` sets
        the preset's values on every field still at its default (use
        :meth:`from_preset` to override preset values explicitly).
    sigma_ir_arcsec : IR per-axis position error (used unless ``sigma_ir_from_catalogue``).
    sigma_ir_from_catalogue : take per-source IR errors from the IR catalogue's covariance.
    ks_band : magnitude band of the IR catalogue used for binning and f/rho.
    ks_bins : (first edge, last edge, step) of the left-inclusive Ks bins.
    n_trials : number of null (shifted) trials (>= 2).
    shift_mode : 'annulus' (one rigid offset per trial) | 'jitter' (an independent
        offset per X-ray source, X-ray target only); offsets area-uniform in the annulus.
    shift_target : 'ir' | 'xray' -- the catalogue the recorded offsets move.
    shift_r_min_arcsec, shift_r_max_arcsec : annulus radii; None = ``shift_r_min_factor``
        x the largest quadrature radius, and 2 x r_min.
    shifts_arcsec : explicit ((dx, dy), ...) offsets per trial (east, north), overriding
        the random draws (n_trials is then their number).
    sweep_radii_arcsec, sweep_trials : shift-radius sweep (the notebook: 9 radii 0-20
        arcsec, 10 trials each); each trial is one offset of exactly that length.
    candidate_nsigma : candidate radius for P_i in quadrature sigmas.
    f_mode : 'excess' (default, as the issue specifies) | 'em' (maximum likelihood from the excess start; more accurate in tests) | 'raw' (module docstring, item 4);
    f_completeness : divide the excess by the quadrature radius' completeness 1 - exp(-1/2).
    weight_form : 'binned' | 'cumulative';  lookup : 'exact' | 'nearest' (cumulative only).
    edge_correction : scale trial counts for positions shifted off the IR footprint.
    footprint : 'grid' -- the IR footprint is a :class:`.geometry.CoverageGrid` (area,
        edge correction, X-ray sources considered = those on it); 'none' -- every X-ray
        source is considered, no edge correction, ``area_arcsec2`` required.
    area_arcsec2 : surveyed IR area; None = measured by the footprint grid.
    coverage_per_cell : IR sources per footprint grid cell at the mean density.
    rho_mode : 'global' (default, the notebook) -- rho(K) of a candidate's class is the
        IR density over the whole surveyed area; 'local' -- the density about its
        X-ray source (module docstring, item 6).
    rho_local_radius_arcsec : outer radius R (arcsec) of the annulus the local density
        is counted in.  The trade-off: a circle holding N = rho pi R^2 IR sources
        gives the all-class density to ~1/sqrt(N) (at 0.05 per arcsec^2, R = 60"
        holds ~570: 4 %; R = 20": 63, 13 %), but it averages the density over ~R, so
        structure smaller than R (extinction lanes, clusters) is smoothed away.  The
        per-class densities are noisier (``rho_local_prior_count``).
    rho_local_prior_count : pseudo-sources n0 by which local densities are shrunk
        towards the global (all classes) and the scaled global (per class) values
        (:func:`.probability.local_rho`); larger = smoother, closer to 'global'.
    rho_local_per_class : True -- per-class local counts, shrunk towards the global
        magnitude distribution scaled to the local density; False -- one local factor
        for all classes (the global magnitude distribution everywhere).
    thresholds : P_best thresholds for the summary table.
    colour_remove : side of the IR colour test the caller's filter removes (recorded;
        filters are applied by the caller).
    seed : seed of the random offsets.
    """

    preset: str = "default"
    sigma_ir_arcsec: float = 0.1
    sigma_ir_from_catalogue: bool = False
    ks_band: str = "Ks"
    ks_bins: tuple = (6.0, 17.5, 0.5)
    n_trials: int = 30
    shift_mode: str = "annulus"
    shift_target: str = "ir"
    shift_r_min_arcsec: float | None = None
    shift_r_max_arcsec: float | None = None
    shift_r_min_factor: float = 5.0
    shifts_arcsec: tuple | None = None
    sweep_radii_arcsec: tuple = NOTEBOOK_SWEEP_RADII
    sweep_trials: int = 10
    candidate_nsigma: float = 5.0
    f_mode: str = "excess"
    f_completeness: bool = True
    weight_form: str = "binned"
    lookup: str = "exact"
    edge_correction: bool = True
    footprint: str = "grid"
    area_arcsec2: float | None = None
    coverage_per_cell: float = 10.0
    thresholds: tuple = (0.9, 0.5, 0.1)
    rho_mode: str = "global"
    rho_local_radius_arcsec: float = 60.0
    rho_local_prior_count: float = 10.0
    rho_local_per_class: bool = True
    colour_remove: str = "blue"
    seed: int = 20240917
    _preset_applied: bool = field(default=False, repr=False, compare=False)

    def __post_init__(self):
        if self.preset not in PRESETS:
            raise ValueError(f"unknown preset {self.preset!r}: choose one of {', '.join(PRESETS)}")
        if not self._preset_applied:
            defaults = {f.name: f.default for f in dataclasses.fields(self)}
            for k, v in PRESETS[self.preset].items():
                if getattr(self, k) == defaults[k]:
                    setattr(self, k, v)
            self._preset_applied = True
        self.validate()

    @classmethod
    def from_preset(cls, preset: str = "default", **overrides) -> "OneSidedOptions":
        """Options of a preset with explicit ``overrides`` winning over its values."""
        if preset not in PRESETS:
            raise ValueError(f"unknown preset {preset!r}: choose one of {', '.join(PRESETS)}")
        return cls(**{**PRESETS[preset], **overrides, "preset": preset, "_preset_applied": True})

    def validate(self):
        for k, allowed in CHOICES.items():
            if getattr(self, k) not in allowed:
                raise ValueError(f"OneSidedOptions.{k} must be one of {allowed}, got {getattr(self, k)!r}")
        lo, hi, step = (float(v) for v in self.ks_bins)
        if not (step > 0 and hi > lo and abs((hi - lo) / step - round((hi - lo) / step)) < 1e-9):
            raise ValueError(f"ks_bins (lo, hi, step) must have hi > lo and a step dividing hi - lo, "
                             f"got {self.ks_bins}")
        if self.shifts_arcsec is None and int(self.n_trials) < 2:
            raise ValueError("n_trials must be >= 2 (the trial scatter needs two)")
        if self.shifts_arcsec is not None:
            s = np.asarray(self.shifts_arcsec, dtype=np.float64)
            if s.ndim != 2 or s.shape[1] != 2 or s.shape[0] < 2 or not np.isfinite(s).all():
                raise ValueError("shifts_arcsec must be >= 2 finite (dx, dy) pairs in arcsec")
            if self.shift_mode == "jitter":
                raise ValueError("shifts_arcsec gives rigid offsets; it cannot be used with shift_mode='jitter'")
        if self.shift_mode == "jitter" and self.shift_target == "ir":
            raise ValueError("shift_mode='jitter' moves each X-ray source by its own offset; "
                             "use shift_target='xray' (per-source IR jitter would need one index per trial)")
        for k in ("sigma_ir_arcsec", "candidate_nsigma", "shift_r_min_factor", "coverage_per_cell",
                  "rho_local_radius_arcsec", "rho_local_prior_count"):
            v = getattr(self, k)
            if not (np.isfinite(v) and v > 0):
                raise ValueError(f"OneSidedOptions.{k} must be positive, got {v!r}")
        rmin, rmax = self.shift_r_min_arcsec, self.shift_r_max_arcsec
        if rmin is not None and rmax is not None and not 0 <= rmin <= rmax:
            raise ValueError(f"need 0 <= shift_r_min_arcsec <= shift_r_max_arcsec, got {rmin}, {rmax}")
        if self.area_arcsec2 is not None and not self.area_arcsec2 > 0:
            raise ValueError(f"area_arcsec2 must be positive, got {self.area_arcsec2}")
        if self.footprint == "none" and self.area_arcsec2 is None:
            raise ValueError("footprint='none' needs area_arcsec2 (the area cannot be measured)")
        if any(r < 0 for r in self.sweep_radii_arcsec):
            raise ValueError("sweep_radii_arcsec must be >= 0")
        if len(self.sweep_radii_arcsec) and int(self.sweep_trials) < 1:
            raise ValueError("sweep_trials must be >= 1")

    @property
    def edges(self) -> np.ndarray:
        """Ks bin edges (mag)."""
        lo, hi, step = (float(v) for v in self.ks_bins)
        return lo + step * np.arange(int(round((hi - lo) / step)) + 1)

    def to_dict(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if not f.name.startswith("_")}
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in d.items()}


@dataclass
class OneSidedResult:
    """Everything :func:`run_onesided` measured.  Angles arcsec, densities per arcsec^2.

    counts : one row per Ks class: ``label, kind ('bin'|'below'|'above'|'missing'),
        ks_lo, ks_hi, n_real, rand_mean, rand_std (ddof=1), excess, significance,
        significance_notebook, n_ir`` (bins first, then the three extra classes).
    trial_counts : (n_trials, n_classes) float, edge-corrected null counts, columns as
        the rows of ``counts``;  trial_counts_raw : the integer counts before scaling.
    shifts : ``trial, dx_arcsec, dy_arcsec, r_arcsec, edge_scale`` (offset of the shift
        target; jitter: dx, dy NaN and r the mean offset).
    sweep : ``shift_arcsec, n_unique_mean, n_unique_std, n_trials`` (X-ray sources with
        >= 1 quadrature match); ``meta['sweep_real']`` is the unshifted value;
        sweep_counts : (n_radii, sweep_trials) the per-trial values.
    candidates : ``index_x, id_x, index_ir, id_ir, sep_arcsec, sigma_arcsec, ks, ks_class,
        p_phi_per_arcsec2, f_k, rho_k_per_arcsec2, T, P, P0``.
    best : one row per input X-ray source: ``index_x, id_x, ra, dec, sigma_x_arcsec,
        n_candidates, index_ir (-1 if none), id_ir, ks, sep_arcsec, P_best, P0, P_sum,
        norm_residual (1 - P0 - sum P), rho_local_per_arcsec2, n_ir_local,
        area_local_arcsec2, considered (on the IR footprint: counted in f), reason``.
        The three local columns (rho_mode='local'; NaN with 'global') are the all-class
        local density used (shrunk, per arcsec^2), the IR sources counted in the
        annulus and its on-footprint area (arcsec^2).
    thresholds : ``threshold, n, fraction, fraction_with_candidates`` (P_best >= threshold).
    f_table : cumulative f(< K) and rho(< K), one row per bin edge K (the first row also
        holds the 'Ks < first edge' class) plus 'all detected Ks' and 'all (incl. Ks
        missing)': ``label, ks, f_raw, f_excess, f_excess_unclipped, f_em (NaN unless
        f_mode='em'), f_used, rho_per_arcsec2, n_ir_cum``.
    class_table : per Ks class (rows as ``counts``): ``label, kind, ks_lo, ks_hi, n_ir,
        rho_per_arcsec2, f_raw, f_excess, f_em, f_used, f_over_rho_arcsec2`` (the binned
        weight T_i / p(phi_i), arcsec^2).
    meta : options, seed, backend, area and its method, counts of sources, f_lim, radii,
        timings, ``rho_mode`` and, with 'local', ``rho_local_radius_arcsec``,
        ``rho_local_prior_count``, ``rho_local_per_class``, ``rho_local_area_method``,
        ``rho_local_inner_radius_arcsec_max`` and the min / median / max of
        ``rho_i / rho_mean`` over the considered X-ray sources.  ``index_x``/``index_ir``
        are the catalogues' ``row`` values (input rows).
    """

    counts: pd.DataFrame
    trial_counts: np.ndarray
    shifts: pd.DataFrame
    sweep: pd.DataFrame
    candidates: pd.DataFrame
    best: pd.DataFrame
    thresholds: pd.DataFrame
    f_table: pd.DataFrame
    class_table: pd.DataFrame
    meta: dict
    trial_counts_raw: np.ndarray = None
    sweep_counts: np.ndarray = None


# -- helpers -------------------------------------------------------------------------
def _progress(progress, total: int, desc: str):
    """(callback, bar or None) from a callable, a bool or None (auto)."""
    if callable(progress):
        return progress, None
    b = bar(total=total, desc=desc, unit="query", enabled=progress)
    return b.update, b


def _ids(ids: np.ndarray, idx: np.ndarray):
    """``ids[idx]`` with missing (idx < 0) as <NA>/None, keeping integer ids integer."""
    idx = np.asarray(idx, dtype=np.int64)
    ok = idx >= 0
    if np.issubdtype(np.asarray(ids).dtype, np.integer):
        out = pd.array(np.where(ok, ids[np.where(ok, idx, 0)], 0), dtype="Int64")
        out[~ok] = pd.NA
        return out
    out = np.empty(len(idx), dtype=object)
    out[ok] = np.asarray(ids, dtype=object)[idx[ok]]
    out[~ok] = None
    return out


def _local_counts(ir: Catalogue, xray: Catalogue, cls_ir, ncls: int, r_in, r_out: float,
                  rho_mean: float, be) -> np.ndarray:
    """IR sources per (X-ray source, Ks class) in the annulus ``r_in < sep <= r_out`` (arcsec).

    One :class:`SkyIndex` of the IR catalogue with reach ``r_out``; the X-ray positions
    are queried in batches of ~``LOCAL_PAIR_BUDGET`` expected pairs (one batch on
    most fields; the pairs of a whole crowded catalogue -- ~10^4 per source at 1 per
    arcsec^2 and 1 arcmin -- would not fit in memory at once), and each batch is
    reduced to counts by one ``bincount``.  Returns an (n_x, ncls) int64 array.
    """
    n_x = len(xray)
    out = np.zeros(n_x * ncls, dtype=np.int64)
    index = SkyIndex(ir.ra, ir.dec, r_out * (1.0 + 1e-6), backend=be, xyz=ir.xyz)
    per = max(1, int(LOCAL_PAIR_BUDGET // max(rho_mean * np.pi * r_out * r_out, 1.0)))
    xyz = xray.xyz
    for a in range(0, n_x, per):
        b = min(a + per, n_x)
        pr = index.query(xray.ra[a:b], xray.dec[a:b], r_out, xyz=xyz[a:b])
        keep = pr.sep_arcsec > r_in[a + pr.i]
        out[a * ncls:b * ncls] += np.bincount(pr.i[keep] * ncls + cls_ir[pr.j[keep]], minlength=(b - a) * ncls)
    return out.reshape(n_x, ncls)


def _sigma_ir(ir: Catalogue, opt: OneSidedOptions) -> np.ndarray:
    if opt.sigma_ir_from_catalogue:
        if ir.cov is None:
            raise ValueError(f"sigma_ir_from_catalogue=True but IR catalogue {ir.name!r} has no position errors")
        s = ir.sigma_arcsec
        if not np.all(np.isfinite(s) & (s > 0)):
            raise ValueError(f"IR catalogue {ir.name!r} has non-positive or missing position errors")
        return s
    return np.full(len(ir), float(opt.sigma_ir_arcsec))


def _class_increments(f_cum_ordered: np.ndarray, order: np.ndarray) -> np.ndarray:
    """Per-class fractions (class-number order) from a cumulative sequence in magnitude order."""
    out = np.empty(len(order))
    out[order] = np.diff(np.concatenate([[0.0], f_cum_ordered]))
    return out


def _first_per_group(group_sorted: np.ndarray) -> np.ndarray:
    """Mask of the first element of each run in a sorted array."""
    m = np.ones(len(group_sorted), dtype=bool)
    m[1:] = group_sorted[1:] != group_sorted[:-1]
    return m


def _trial_offsets(opt: OneSidedOptions, rng, n_x: int, r_min: float, r_max: float):
    """Null-trial offsets: rigid (T,) arrays or jitter (T, n_x) arrays (dx, dy, r)."""
    if opt.shifts_arcsec is not None:
        s = np.asarray(opt.shifts_arcsec, dtype=np.float64)
        return s[:, 0], s[:, 1], np.hypot(s[:, 0], s[:, 1])
    shape = (int(opt.n_trials),) if opt.shift_mode == "annulus" else (int(opt.n_trials), n_x)
    return annulus_offsets(rng, shape, r_min, r_max)


def _sweep_offsets(opt: OneSidedOptions, rng, n_x: int):
    """Sweep offsets of exact lengths: (n_radii, n_per) or (n_radii, n_per, n_x) arrays."""
    radii = np.asarray(opt.sweep_radii_arcsec, dtype=np.float64)
    shape = (len(radii), int(opt.sweep_trials)) + ((n_x,) if opt.shift_mode == "jitter" else ())
    phi = rng.uniform(0.0, 2.0 * np.pi, shape)
    r = radii.reshape((-1,) + (1,) * (len(shape) - 1))
    return r * np.cos(phi), r * np.sin(phi)


def _shifted(xyz, center, dx, dy, opt: OneSidedOptions) -> np.ndarray:
    """Query positions of one trial: X-ray positions moved by the offset (or its inverse)."""
    if np.ndim(dx) == 0:  # rigid rotation
        rot = rotation_for_offset(center, float(dx), float(dy))
        # 'xray' target: q = R x.  'ir' target: IR moved by R <=> queries moved by R^T.
        return xyz @ (rot.T if opt.shift_target == "xray" else rot)
    return offset_points(xyz, dx, dy)


# -- main ----------------------------------------------------------------------------
def run_onesided(xray: Catalogue, ir: Catalogue, options: OneSidedOptions | None = None,
                 backend=None, progress=None) -> OneSidedResult:
    """Run the one-sided method (module docstring) on filtered catalogues.

    ``xray`` needs position errors (``cov``); ``ir`` needs the ``options.ks_band``
    magnitude (NaN = missing).  ``backend``: 'auto' | 'numpy' | 'cupy' | Backend for
    the sky searches.  ``progress``: None (auto), bool, or callable(n_queries_done)
    for the trial search.
    """
    opt = options or OneSidedOptions()
    opt.validate()
    be = get_backend(backend)
    t_start = time.perf_counter()
    timings = {}
    if xray.cov is None:
        raise ValueError(f"X-ray catalogue {xray.name!r} has no position errors (needed for the "
                         f"quadrature radius)")
    if opt.ks_band not in ir.mags:
        raise KeyError(f"IR catalogue {ir.name!r} has no {opt.ks_band!r} magnitude "
                       f"(bands: {sorted(ir.mags)})")
    n_x, n_ir = len(xray), len(ir)
    if n_x == 0 or n_ir == 0:
        raise ValueError("both catalogues must be non-empty")
    sx = xray.sigma_arcsec
    if not np.all(np.isfinite(sx) & (sx > 0)):
        raise ValueError(f"X-ray catalogue {xray.name!r} has non-positive or missing position errors")
    sir = _sigma_ir(ir, opt)
    ks = ir.mags[opt.ks_band]
    edges = opt.edges
    nb = len(edges) - 1
    ncls = nb + 3
    cls_ir = stats.class_index(ks, edges)
    order = stats.class_order(nb)  # classes in increasing magnitude
    pos_of_class = np.empty(ncls, dtype=np.int64)
    pos_of_class[order] = np.arange(ncls)

    quad_max = float(np.sqrt(sx.max() ** 2 + sir.max() ** 2))
    r_min = opt.shift_r_min_arcsec if opt.shift_r_min_arcsec is not None else opt.shift_r_min_factor * quad_max
    r_max = opt.shift_r_max_arcsec if opt.shift_r_max_arcsec is not None else 2.0 * r_min
    r_max = max(r_max, r_min)

    # -- footprint and surveyed area ------------------------------------------------------
    t = time.perf_counter()
    grid = CoverageGrid(ir.xyz, opt.coverage_per_cell) if opt.footprint == "grid" else None
    if opt.area_arcsec2 is not None:
        area_as2, area_method = float(opt.area_arcsec2), "given (options.area_arcsec2)"
    else:
        area_as2, area_method = grid.area_arcsec2, grid.method
    rho_mean = n_ir / area_as2
    timings["area_s"] = time.perf_counter() - t

    # -- offsets (seeded: null trials first, then the sweep) ------------------------------
    rng = np.random.default_rng(opt.seed)
    tdx, tdy, tr = _trial_offsets(opt, rng, n_x, r_min, r_max)
    n_trials = len(tdx)
    sdx, sdy = _sweep_offsets(opt, rng, n_x)
    n_rad, n_per = sdx.shape[:2]

    # -- query positions: group 0 real, 1..T null trials, then the sweep ---------------
    t = time.perf_counter()
    xyz_x = xray.xyz
    center = mean_direction(xyz_x)
    blocks = [xyz_x]
    blocks += [_shifted(xyz_x, center, tdx[k], tdy[k], opt) for k in range(n_trials)]
    blocks += [_shifted(xyz_x, center, sdx[a, b], sdy[a, b], opt) for a in range(n_rad) for b in range(n_per)]
    n_groups = len(blocks)
    q_xyz = np.concatenate(blocks)
    del blocks
    q_ra, q_dec = xyz_to_radec(q_xyz)
    timings["queries_s"] = time.perf_counter() - t

    # -- one search pass: all trials' quadrature matches --------------------------------
    t = time.perf_counter()
    index = SkyIndex(ir.ra, ir.dec, quad_max * (1.0 + 1e-6), backend=be, xyz=ir.xyz)  # margin: chord sums
    cb, pbar = _progress(progress, len(q_ra), "one-sided trials")
    try:
        pr = index.query(q_ra, q_dec, np.tile(sx, n_groups), sir, xyz=q_xyz, progress=cb)
    finally:
        if pbar is not None:
            pbar.close()
    del index
    timings["trial_search_s"] = time.perf_counter() - t

    t = time.perf_counter()
    grp = pr.i // n_x
    cls_p = cls_ir[pr.j]
    counts = np.bincount(grp * ncls + cls_p, minlength=n_groups * ncls).reshape(n_groups, ncls)
    uq = np.unique(pr.i)  # matched (group, source) pairs
    n_unique = np.bincount(uq // n_x, minlength=n_groups)
    real_pairs = grp == 0
    rsrc, rcls = pr.i[real_pairs], cls_p[real_pairs]

    # -- footprint weights: X-ray sources considered, edge correction of the trials -------
    if grid is not None:
        w = grid.weight(q_xyz[:(1 + (n_trials if opt.edge_correction else 0)) * n_x]).reshape(-1, n_x)
        inside = (w[0] > 0) | (np.bincount(rsrc, minlength=n_x) > 0)
    else:
        w = np.ones((1, n_x))
        inside = np.ones(n_x, dtype=bool)
    n_cons = int(inside.sum())
    if n_cons == 0:
        raise ValueError("no X-ray source lies on the IR catalogue's footprint")
    if opt.edge_correction and grid is not None:
        wsum = w.sum(axis=1)
        scale = np.where(wsum[1:] > 0, wsum[0] / np.where(wsum[1:] > 0, wsum[1:], 1.0), 1.0)
    else:
        scale = np.ones(n_trials)
    del q_xyz, q_ra, q_dec

    # -- counts table -------------------------------------------------------------------
    real = counts[0].astype(np.float64)
    trials_raw = counts[1:1 + n_trials]
    trials = trials_raw * scale[:, None]
    rand_mean, rand_std = stats.trial_stats(trials)
    excess = real - rand_mean
    labels, ks_lo, ks_hi, kinds = stats.class_labels(edges)
    n_ir_class = np.bincount(cls_ir, minlength=ncls)
    counts_df = pd.DataFrame({
        "label": labels, "kind": kinds, "ks_lo": ks_lo, "ks_hi": ks_hi,
        "n_real": counts[0].astype(np.int64), "rand_mean": rand_mean, "rand_std": rand_std,
        "excess": excess, "significance": stats.significance(real, rand_mean, rand_std, n_trials),
        "significance_notebook": stats.significance_notebook(excess, rand_std),
        "n_ir": n_ir_class})

    # -- f(K) and rho(K) ----------------------------------------------------------------
    comp = COMPLETENESS_1SIGMA if opt.f_completeness else 1.0
    cum_exc = np.cumsum(excess[order]) / (n_cons * comp)
    f_exc = np.clip(stats.isotonic_increasing(cum_exc), 0.0, 1.0)
    first_pos = np.full(n_x, ncls, dtype=np.int64)  # magnitude-order position of each source's
    np.minimum.at(first_pos, rsrc, pos_of_class[rcls])  # brightest real match (ncls: none)
    f_raw = np.cumsum(np.bincount(first_pos, minlength=ncls + 1)[:ncls]) / n_cons
    rho_class = n_ir_class / area_as2
    n_ir_cum = np.cumsum(n_ir_class[order])
    rho_cum = n_ir_cum / area_as2
    f_exc_class = _class_increments(f_exc, order)
    f_raw_class = _class_increments(f_raw, order)
    timings["statistics_s"] = time.perf_counter() - t

    # -- candidates ------------------------------------------------------------------------
    t = time.perf_counter()
    k = opt.candidate_nsigma
    cand_radius_max = k * quad_max
    index2 = SkyIndex(ir.ra, ir.dec, cand_radius_max * (1.0 + 1e-6), backend=be, xyz=ir.xyz)
    pcand = index2.query(xray.ra, xray.dec, k * sx, k * sir, xyz=xyz_x)
    del index2
    ci, cj, csep = pcand.i, pcand.j, pcand.sep_arcsec
    csig = np.sqrt(sx[ci] ** 2 + sir[cj] ** 2)
    pphi = p_phi(csep, csig)
    ccls = cls_ir[cj]
    cks = ks[cj]
    timings["candidate_search_s"] = time.perf_counter() - t

    # -- local IR densities about each X-ray source (rho_mode='local') ---------------------
    loc_n, loc_area, loc_rho = (np.full(n_x, np.nan) for _ in range(3))
    local_meta = dict(rho_mode=opt.rho_mode)
    if opt.rho_mode == "local":
        t = time.perf_counter()
        r_loc = float(opt.rho_local_radius_arcsec)
        r_in = np.minimum(k * np.sqrt(sx ** 2 + sir.max() ** 2), 0.5 * r_loc)
        loc_counts = _local_counts(ir, xray, cls_ir, ncls, r_in, r_loc, rho_mean, be)
        loc_area = annulus_footprint_area(grid, xyz_x, r_in, r_loc)
        loc_n = loc_counts.sum(axis=1).astype(np.float64)
        local_meta.update(
            rho_local_radius_arcsec=r_loc, rho_local_prior_count=float(opt.rho_local_prior_count),
            rho_local_per_class=bool(opt.rho_local_per_class),
            rho_local_area_method=("annulus (candidate radius, capped at R/2, to R) x mean footprint "
                                   "weight over 256 sunflower points" if grid is not None else
                                   "full annulus area (footprint='none': no edge correction)"),
            rho_local_inner_radius_arcsec_max=float(r_in.max()))
        timings["local_density_s"] = time.perf_counter() - t

    # -- f used for the weights, then P_i and P_0 -------------------------------------------
    t = time.perf_counter()
    em_info = {}
    f_em_class = np.full(ncls, np.nan)
    if opt.rho_mode == "local":
        loc_rho, rho_bin = local_rho(loc_counts, loc_area, n_ir_class, rho_mean, opt.rho_local_prior_count,
                                     ci, ccls, per_class=opt.rho_local_per_class)
        q = loc_rho[inside] / rho_mean
        local_meta.update(rho_local_over_mean_min=float(q.min()),
                          rho_local_over_mean_median=float(np.median(q)),
                          rho_local_over_mean_max=float(q.max()))
    else:
        rho_bin = rho_class[ccls]
    if opt.f_mode == "em":
        f_em_class, n_it, conv = em_class_fractions(ci, ccls, pphi / rho_bin, n_x, inside, f_exc_class)
        em_info = dict(em_iterations=n_it, em_converged=conv)
    df_class = {"excess": f_exc_class, "raw": f_raw_class, "em": f_em_class}[opt.f_mode]
    f_cum = np.cumsum(df_class[order])
    f_lim = float(f_cum[-1])
    if opt.weight_form == "binned":
        f_k, rho_k = df_class[ccls], rho_bin
    else:
        f_k, rho_k = _cumulative_lookup(opt, cks, ccls, edges, ks, f_cum, df_class, n_ir_class,
                                        n_ir_cum, pos_of_class, area_as2, n_ir)
        if opt.rho_mode == "local":  # the global cumulative rho(<= K) scaled to the local density
            rho_k = rho_k * (loc_rho[ci] / rho_mean)
    T = f_k * pphi / rho_k
    P, P0_src, _ = normalise(ci, T, n_x, f_lim)
    timings["probabilities_s"] = time.perf_counter() - t

    cand_df = pd.DataFrame({
        "index_x": xray.row[ci], "id_x": _ids(xray.ids, ci), "index_ir": ir.row[cj],
        "id_ir": _ids(ir.ids, cj), "sep_arcsec": csep, "sigma_arcsec": csig, "ks": cks,
        "ks_class": np.asarray(labels, dtype=object)[ccls], "p_phi_per_arcsec2": pphi,
        "f_k": f_k, "rho_k_per_arcsec2": rho_k, "T": T, "P": P, "P0": P0_src[ci]})

    best_df = _best_table(xray, ir, ci, cj, csep, cks, P, P0_src, sx, inside, k, loc_rho, loc_n, loc_area)
    thr = [float(v) for v in opt.thresholds]
    pb = best_df["P_best"].to_numpy(dtype=np.float64)
    n_with = int(np.sum(best_df["n_candidates"].to_numpy() > 0))
    n_thr = [int(np.sum(pb >= v)) for v in thr]
    thresholds = pd.DataFrame({"threshold": thr, "n": n_thr, "fraction": [n / n_x for n in n_thr],
                               "fraction_with_candidates": [n / n_with if n_with else np.nan for n in n_thr]})

    # -- tables of f, rho, shifts, sweep ------------------------------------------------
    ord_labels = [f"Ks < {edges[0]:g}"] + [f"Ks < {e:g}" for e in edges[1:]] + \
        ["all detected Ks", "all (incl. Ks missing)"]
    ord_ks = np.concatenate([edges, [np.inf, np.nan]])
    f_table = pd.DataFrame({"label": ord_labels, "ks": ord_ks, "f_raw": f_raw, "f_excess": f_exc,
                            "f_excess_unclipped": cum_exc, "f_em": np.cumsum(f_em_class[order]),
                            "f_used": f_cum, "rho_per_arcsec2": rho_cum, "n_ir_cum": n_ir_cum})
    with np.errstate(invalid="ignore", divide="ignore"):
        f_over_rho = np.where(rho_class > 0, df_class / np.where(rho_class > 0, rho_class, 1.0), np.nan)
    class_table = pd.DataFrame({"label": labels, "kind": kinds, "ks_lo": ks_lo, "ks_hi": ks_hi,
                                "n_ir": n_ir_class, "rho_per_arcsec2": rho_class, "f_raw": f_raw_class,
                                "f_excess": f_exc_class, "f_em": f_em_class, "f_used": df_class,
                                "f_over_rho_arcsec2": f_over_rho})
    if opt.shift_mode == "annulus":
        shifts = pd.DataFrame({"trial": np.arange(1, n_trials + 1), "dx_arcsec": tdx, "dy_arcsec": tdy,
                               "r_arcsec": tr, "edge_scale": scale})
    else:
        shifts = pd.DataFrame({"trial": np.arange(1, n_trials + 1), "dx_arcsec": np.nan,
                               "dy_arcsec": np.nan, "r_arcsec": tr.mean(axis=1), "edge_scale": scale})
    sweep_counts = n_unique[1 + n_trials:].reshape(n_rad, n_per) if n_rad else np.zeros((0, n_per))
    sweep = pd.DataFrame({
        "shift_arcsec": np.asarray(opt.sweep_radii_arcsec, dtype=np.float64),
        "n_unique_mean": sweep_counts.mean(axis=1) if n_per else np.nan,
        "n_unique_std": sweep_counts.std(axis=1, ddof=1) if n_per > 1 else np.nan,
        "n_trials": np.full(n_rad, n_per, dtype=np.int64)})

    timings["total_s"] = time.perf_counter() - t_start
    meta = dict(
        options=opt.to_dict(), preset=opt.preset, seed=opt.seed, backend=be.name,
        backend_detail=be.describe(), n_xray=n_x, n_xray_considered=n_cons, n_ir=n_ir,
        n_ir_ks_missing=int(n_ir_class[nb + stats.MISSING]), ks_band=opt.ks_band,
        area_arcsec2=area_as2, area_method=area_method,
        footprint_cell_arcsec=grid.cell_arcsec if grid is not None else np.nan,
        rho_mean_per_arcsec2=rho_mean, footprint=opt.footprint,
        quadrature_radius_max_arcsec=quad_max, candidate_radius_max_arcsec=cand_radius_max,
        shift_r_min_arcsec=float(r_min), shift_r_max_arcsec=float(r_max), shift_mode=opt.shift_mode,
        shift_target=opt.shift_target, n_trials=n_trials, f_mode=opt.f_mode,
        excess_completeness=comp, f_lim=f_lim, f_at_last_edge=float(f_cum[nb]), **em_info,
        weight_form=opt.weight_form, lookup=opt.lookup, edge_correction=opt.edge_correction, **local_meta,
        sweep_real=int(n_unique[0]), n_real_pairs=int(real_pairs.sum()),
        n_trial_pairs=int(len(pr) - real_pairs.sum()), n_candidates=int(len(ci)),
        n_queries=int(n_groups * n_x), timings=timings)
    return OneSidedResult(counts=counts_df, trial_counts=trials, shifts=shifts, sweep=sweep,
                          candidates=cand_df, best=best_df, thresholds=thresholds, f_table=f_table,
                          class_table=class_table, meta=meta, trial_counts_raw=trials_raw,
                          sweep_counts=sweep_counts)


def _cumulative_lookup(opt, cks, ccls, edges, ks, f_cum, df_class, n_ir_class, n_ir_cum,
                       pos_of_class, area_as2, n_ir):
    """The notebook's cumulative f(<=K) and rho(<=K) at each candidate's Ks.

    'exact': rho counts the IR sources with Ks <= K_i; f is f up to the class below
    plus the class's own share in proportion to the IR sources of the class at
    Ks <= K_i.  'nearest': both at the nearest grid magnitude (K clipped to the grid;
    rho floored at one source per area).  Ks missing: f = f_lim, rho = all IR sources.
    """
    nb = len(edges) - 1
    missing = ccls == nb + stats.MISSING
    pos = pos_of_class[ccls]
    if opt.lookup == "exact":
        finite = np.sort(ks[np.isfinite(ks)])
        rank = np.searchsorted(finite, np.where(missing, 0.0, cks), side="right").astype(np.float64)
        n_before = np.where(pos > 0, n_ir_cum[np.maximum(pos - 1, 0)], 0)
        f_before = np.where(pos > 0, f_cum[np.maximum(pos - 1, 0)], 0.0)
        frac = (rank - n_before) / n_ir_class[ccls]
        f_k = f_before + df_class[ccls] * frac
        rho_k = rank / area_as2
    else:
        g = np.abs(np.clip(np.where(missing, edges[0], cks), edges[0], edges[-1])[:, None]
                   - edges[None, :]).argmin(axis=1)
        f_k = f_cum[g]  # f_cum position g = Ks < edges[g] (position 0: the 'below' class)
        rho_k = np.maximum(n_ir_cum[g], 1) / area_as2
    f_k = np.where(missing, f_cum[-1], f_k)
    rho_k = np.where(missing, n_ir / area_as2, rho_k)
    return f_k, rho_k


def _best_table(xray, ir, ci, cj, csep, cks, P, P0_src, sx, inside, k, loc_rho, loc_n,
                loc_area) -> pd.DataFrame:
    """One row per X-ray source: its most probable candidate (ties: smaller sep, then IR row)."""
    n_x = len(xray)
    o = np.lexsort((cj, csep, -P, ci))
    first = o[_first_per_group(ci[o])]
    src = ci[first]
    n_cand = np.bincount(ci, minlength=n_x)
    bj = np.full(n_x, -1, dtype=np.int64)
    bj[src] = cj[first]
    P_best = np.full(n_x, np.nan)
    P_best[src] = P[first]
    b_sep = np.full(n_x, np.nan)
    b_sep[src] = csep[first]
    b_ks = np.full(n_x, np.nan)
    b_ks[src] = cks[first]
    P_sum = np.bincount(ci, weights=P, minlength=n_x)
    reason = np.where(n_cand > 0, "", np.where(inside, f"no candidate within {k:g} sigma",
                                               "outside IR coverage")).astype(object)
    return pd.DataFrame({
        "index_x": xray.row, "id_x": xray.ids, "ra": xray.ra, "dec": xray.dec, "sigma_x_arcsec": sx,
        "n_candidates": n_cand, "index_ir": np.where(bj >= 0, ir.row[np.maximum(bj, 0)], -1),
        "id_ir": _ids(ir.ids, bj), "ks": b_ks, "sep_arcsec": b_sep, "P_best": P_best, "P0": P0_src,
        "P_sum": P_sum, "norm_residual": 1.0 - P0_src - P_sum, "rho_local_per_arcsec2": loc_rho,
        "n_ir_local": loc_n, "area_local_arcsec2": loc_area, "considered": inside, "reason": reason})
