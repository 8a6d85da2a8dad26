"""End-to-end symmetric Bayesian cross-match (Wilson & Naylor 2018) and sequential matching (section 7).

:func:`match_catalogues` runs every stage for two catalogues A and B:

1. **AUFs** -- per catalogue, optionally a perturbation model (unresolved contaminants;
   :class:`gpumatch.auf.PerturbationModel`) on top of the Gaussian centroid error;
2. **islands** -- overlap pairs inside ``R_{y_cut}`` (default R_0.997) of each pair's AUF
   convolution G, connected into islands (:func:`gpumatch.islands.build_islands`);
3. **photometry** -- densities N_a, N_b, N_c and, when on, the magnitude likelihoods c, f_a, f_b
   from the catalogues themselves (:func:`gpumatch.photometry.estimate_photometry`);
4. **weights** -- per pair ``ln r = ln 10 (eta + xi)`` (eqs 37-38), guarded (below);
5. **assignment** -- per island the evidence, the most probable hypothesis and every pair's
   marginal match probability (:func:`gpumatch.assign.evaluate_island_set`);
6. **acceptance** (section 6.1) -- the most probable hypothesis of each island, or only where its
   probability exceeds ``threshold`` (``accept_by='hypothesis'``), or the pairs whose marginal
   is at least ``threshold`` (``accept_by='pair'``, threshold > 0.5);
7. **tables** -- ``matches`` and one ``nonmatches`` table per catalogue.

Weight guard (the documented rule)
----------------------------------
``r_ab = N_c G c / (N_a f_a N_b f_b)``.  c and f are floored by the photometry stage, so eta
is finite.  A zero field density N_a or N_b (the positional fit says every source has a
counterpart) would make "unmatched" impossible (``r = +inf``); the densities entering xi are
therefore floored at ``FIELD_DENSITY_FLOOR`` (1e-6) times that catalogue's total density.
``G = 0`` (a pair beyond the AUF grid) or ``N_c = 0`` gives ``ln r = -inf``: the pair cannot
match, which the assignment accepts.  Finite weights are clipped to ``ln r <= LOG_R_MAX``
(1000: r = e^1000, far beyond any real odds, keeps sums of log weights finite).  NaNs are never
expected but are guarded and counted in ``summary['weights']`` (with a warning): a NaN eta (a
degenerate photometric estimate) is replaced by 0, i.e. that pair is weighed on its astrometry
alone; a NaN xi (a NaN G) makes the pair "cannot match" (-inf).  Nothing else is altered.

Every input source ends up exactly once in ``matches`` or in its catalogue's ``nonmatches``
(rows removed before matching -- ``Catalogue.dropped`` -- included, with reason 'invalid row'
or 'filtered'); :func:`check_conservation` enforces it on every result.

:func:`match_sequence` matches several catalogues two at a time, merging accepted matches with
:func:`gpumatch.sequential.merge_matched` (eq 40 positions), and returns one final table with
the input row and identifier of every catalogue per object.

Units: RA/Dec in deg, separations and errors in arcsec, densities per arcsec^2, magnitudes in
mag, eta and xi dimensionless (log10), probabilities in [0, 1], times in s.
"""
from __future__ import annotations

import dataclasses
import time
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .assign import STATUS_NAMES, AssignmentResult, accept, evaluate_island_set
from .backend import get_backend, to_host
from .catalogue import Catalogue
from .io import jsonable
from .islands import DEFAULT_Y_CUT, Coverage, IslandSet, SkyBox, build_islands
from .likelihood import LN10, eta as eta_of, xi as xi_of
from .photometry import Photometry, estimate_photometry

LOG_R_MAX = 1000.0
FIELD_DENSITY_FLOOR = 1e-6
STAGES = ("perturbation", "islands", "photometry", "weights", "assignment", "acceptance", "tables")

REASON_NO_CANDIDATE = "no candidate within R_{y}"
REASON_BELOW = "below threshold"
REASON_UNMATCHED = "unmatched in best hypothesis"
REASON_EDGE = "island at field edge"
REASON_APPROX = "island too complex (approximate)"
REASON_FILTERED = "filtered"
REASON_INVALID = "invalid row"
#: Prefix of a ``Catalogue.dropped`` reason that marks a selection rule (not bad data).
FILTERED_PREFIX = "filtered"


class ConservationError(AssertionError):
    """An input source is missing from, or repeated in, the match outputs."""


# -- options -----------------------------------------------------------------------------------
@dataclass
class SideOptions:
    """Per-catalogue settings.

    band : magnitude column (key of ``Catalogue.mags``) used for the photometric likelihoods
        and for the perturbation model; None = no magnitude (photometry off for the match).
    perturbation : add the contaminant perturbation term to this catalogue's AUFs.
    psf_fwhm_arcsec : PSF FWHM in arcsec (required with ``perturbation``).
    perturbation_kwargs : further :meth:`gpumatch.auf.PerturbationModel.from_catalogue`
        arguments (e.g. ``n_real``, ``mag_bin``, ``delta_mag_max``).
    """

    band: str | None = None
    perturbation: bool = False
    psf_fwhm_arcsec: float | None = None
    perturbation_kwargs: dict = field(default_factory=dict)


@dataclass
class MatchOptions:
    """Options of :func:`match_catalogues` (units in the names: arcsec; probabilities in [0, 1]).

    a, b : :class:`SideOptions` of catalogues A and B.
    use_photometry : use the magnitude likelihoods c, f (needs a band on both sides).
    y_cut : CDF fraction of G whose radius defines overlaps (islands), default 0.997.
    max_sep_arcsec : absolute cap on pair separations (default: the largest possible R_y_cut).
    coverage : the sky region both catalogues cover (a :class:`gpumatch.islands.Coverage`, or
        ``(ra_min, ra_max, dec_min, dec_max)`` in deg); default the overlap of the catalogues'
        bounding boxes.  Densities and edge flags depend on it: give it when known.
    photometry : extra :func:`gpumatch.photometry.estimate_photometry` keyword arguments
        (default magnitude bins: :func:`counterpart_bins`).
    max_small_side : islands whose smaller side (sources with a possible pair) exceeds this are
        evaluated approximately (Bethe) and flagged.
    threshold : None = accept the most probable hypothesis of every island (paper 6.1); else
        see ``accept_by``.
    accept_by : 'hypothesis' -- accept the best hypothesis where its probability > threshold;
        'pair' -- accept pairs whose marginal match probability >= threshold (> 0.5).
    reject_edge : reject islands flagged at the coverage edge (their sources become
        nonmatches, reason 'island at field edge').
    include_approximate : accept matches from approximately evaluated islands (else their
        sources become nonmatches, reason 'island too complex (approximate)').
    seed : random seed of the perturbation Monte Carlo (recorded in the summary).
    """

    a: SideOptions = field(default_factory=SideOptions)
    b: SideOptions = field(default_factory=SideOptions)
    use_photometry: bool = True
    y_cut: float = DEFAULT_Y_CUT
    max_sep_arcsec: float | None = None
    coverage: Coverage | tuple | None = None
    photometry: dict = field(default_factory=dict)
    max_small_side: int = 20
    threshold: float | None = None
    accept_by: str = "hypothesis"
    reject_edge: bool = False
    include_approximate: bool = True
    seed: int = 0

    def check(self):
        """Raise ValueError for inconsistent options."""
        if not 0.0 < self.y_cut < 1.0:
            raise ValueError(f"y_cut must lie in (0, 1), got {self.y_cut}")
        if self.accept_by not in ("hypothesis", "pair"):
            raise ValueError(f"accept_by must be 'hypothesis' or 'pair', got {self.accept_by!r}")
        if self.threshold is not None:
            lo = 0.5 if self.accept_by == "pair" else 0.0
            ok = (lo < self.threshold <= 1.0) if self.accept_by == "pair" else (0.0 <= self.threshold < 1.0)
            if not ok:
                rng = "(0.5, 1]" if self.accept_by == "pair" else "[0, 1)"
                raise ValueError(f"threshold for accept_by={self.accept_by!r} must be in {rng}, "
                                 f"got {self.threshold}")
        if self.max_sep_arcsec is not None and not self.max_sep_arcsec > 0:
            raise ValueError(f"max_sep_arcsec must be positive, got {self.max_sep_arcsec}")
        for s, side in (("a", self.a), ("b", self.b)):
            if side.perturbation and not (side.psf_fwhm_arcsec and side.psf_fwhm_arcsec > 0):
                raise ValueError(f"perturbation on catalogue {s.upper()} needs psf_fwhm_arcsec > 0")
            if side.perturbation and side.band is None:
                raise ValueError(f"perturbation on catalogue {s.upper()} needs a magnitude band")

    def resolved_coverage(self) -> Coverage | None:
        if self.coverage is None or isinstance(self.coverage, Coverage):
            return self.coverage
        return SkyBox(*map(float, self.coverage))

    def to_dict(self) -> dict:
        """JSON-friendly description (the coverage as text)."""
        d = dataclasses.asdict(dataclasses.replace(self, coverage=None))
        d["coverage"] = None if self.coverage is None else (
            list(self.coverage) if isinstance(self.coverage, (tuple, list)) else repr(self.coverage))
        return d


# -- results --------------------------------------------------------------------------------------
@dataclass
class MatchResult:
    """Outputs of :func:`match_catalogues`.

    matches : one row per accepted pair (columns in :data:`MATCH_COLUMNS` order).
    nonmatches : {'a': DataFrame, 'b': DataFrame}, one row per source not matched, with reason.
    pairs : every candidate pair (inside R_y_cut): rows index_a/index_b, sep_arcsec, eta, xi,
        log_r, p_match, in_best, accepted, island.
    summary : counts, densities, island statistics, weight guards, timing per stage (s).
    pos_a, pos_b : positions (0-based indices into the Catalogue arrays) of the accepted pairs,
        in the order of ``matches`` (for :func:`gpumatch.sequential.merge_matched`).
    """

    names: tuple
    matches: pd.DataFrame
    nonmatches: dict
    pairs: pd.DataFrame
    summary: dict
    pos_a: np.ndarray
    pos_b: np.ndarray
    options: MatchOptions
    islands: IslandSet | None = None
    photometry: Photometry | None = None
    assignment: AssignmentResult | None = None

    @property
    def nonmatches_a(self) -> pd.DataFrame:
        return self.nonmatches["a"]

    @property
    def nonmatches_b(self) -> pd.DataFrame:
        return self.nonmatches["b"]


class _Stages:
    """Times the pipeline stages and reports each start to ``progress(stage, index, n)``."""

    def __init__(self, progress, stages=STAGES):
        self.progress, self.stages, self.seconds = progress, stages, {}

    def __call__(self, name):
        return _Stage(self, name)


class _Stage:
    def __init__(self, owner, name):
        self.owner, self.name = owner, name

    def __enter__(self):
        if callable(self.owner.progress):
            self.owner.progress(self.name, self.owner.stages.index(self.name), len(self.owner.stages))
        self.t0 = time.perf_counter()

    def __exit__(self, *exc):
        self.owner.seconds[self.name] = round(time.perf_counter() - self.t0, 6)
        return False


def apply_filter(cat: Catalogue, result) -> Catalogue:
    """The kept rows of ``cat`` under a :class:`gpumatch.filters.FilterResult`, with every removed
    row recorded in ``dropped`` (reason ``'filtered: <the rule's tag>'``), so the match outputs
    list it as a nonmatch with reason 'filtered'."""
    out = result.apply(cat)
    gone = np.flatnonzero(~result.keep)
    if len(gone):
        rec = pd.DataFrame({"row": cat.row[gone], "file": cat.file[gone], "file_row": cat.file_row[gone],
                            "column": "", "reason": [f"{FILTERED_PREFIX}: {r}" for r in result.reason[gone]]})
        out.dropped = pd.concat([cat.dropped, rec], ignore_index=True) if len(cat.dropped) else rec
    return out


# -- stages ---------------------------------------------------------------------------------------
def _mags(cat: Catalogue, band: str | None) -> np.ndarray | None:
    if band is None:
        return None
    if band not in cat.mags:
        raise ValueError(f"catalogue {cat.name!r} has no magnitude {band!r} "
                         f"(its magnitudes: {', '.join(cat.mags) or 'none'})")
    return np.asarray(cat.mags[band], dtype=np.float64)


def perturbation_inputs(a: Catalogue, b: Catalogue, options: MatchOptions, backend) -> dict | None:
    """Per-source perturbation cells and models for :func:`build_islands` (None when both off).

    Each side with ``perturbation`` gets a :class:`~gpumatch.auf.PerturbationModel` built
    from its own magnitudes (power-law counts fitted over the coverage area), and every
    source the cell of its (magnitude, local density)."""
    from .auf import PerturbationModel, local_density

    if not (options.a.perturbation or options.b.perturbation):
        return None
    cov = options.resolved_coverage()
    out = {}
    for s, cat, side in (("a", a, options.a), ("b", b, options.b)):
        if not side.perturbation:
            out[f"cell_{s}"], out[f"model_{s}"] = None, None
            continue
        mags = _mags(cat, side.band)
        kw = dict(side.perturbation_kwargs)
        kw.setdefault("seed", options.seed)
        if cov is not None:
            kw.setdefault("area_arcsec2", cov.area_arcsec2())
        model = PerturbationModel.from_catalogue(cat, side.band, side.psf_fwhm_arcsec, backend=backend, **kw)
        dens = local_density(cat.ra, cat.dec, mags, model.meta["m_norm"],
                             model.meta["density_radius_arcsec"], backend=backend)
        out[f"cell_{s}"], out[f"model_{s}"] = model.cell_of(mags, dens), model
    return out


def counterpart_bins(mags, n_counterparts: int, min_width: float = 0.1, max_width: float = 1.0):
    """Magnitude bin edges (mag) for the photometric likelihoods, sized for the counterparts.

    c(m_a, m_b) is a 2-D density estimated from at most ``n_counterparts = min(n_a, n_b)``
    pairs, so the Freedman-Diaconis width is taken for that many values:
    ``2 IQR / n^(1/3)`` with this catalogue's own interquartile range, clipped to
    [min_width, max_width]; edges on multiples of the width.  (The photometry stage's own
    default sizes the bins by the catalogue's full length, which for a dense catalogue gives
    0.1 mag bins and a c too noisy to use -- spikes of eta > 1 on chance pairs.)"""
    m = np.asarray(mags, dtype=np.float64)
    m = m[np.isfinite(m)]
    if m.size == 0:
        return None
    q75, q25 = np.percentile(m, [75, 25])
    w = 2.0 * (q75 - q25) / max(int(n_counterparts), 1) ** (1 / 3)
    w = float(np.clip(w if w > 0 else max_width, min_width, max_width))
    lo, hi = np.floor(m.min() / w) * w, np.ceil(m.max() / w) * w
    if hi <= m.max():
        hi += w
    return np.arange(round((hi - lo) / w) + 1) * w + lo


def _photometry_kwargs(options: MatchOptions, mag_a, mag_b, use_phot: bool) -> dict:
    kw = dict(options.photometry)
    if use_phot:
        n = min(int(np.isfinite(mag_a).sum()), int(np.isfinite(mag_b).sum()))
        for key, m in (("bins_a", mag_a), ("bins_b", mag_b)):
            if kw.get(key) is None:
                kw[key] = counterpart_bins(m, n)
    return kw


def pair_weights(phot: Photometry, isl: IslandSet, mag_a, mag_b) -> tuple:
    """(eta, xi, ln r, guard counts) for every pair of ``isl`` (module docstring: weight guard).

    ``mag_a``/``mag_b``: full per-row magnitude arrays (mag) or None (photometry off)."""
    n_a_eff = max(phot.N_a, FIELD_DENSITY_FLOOR * phot.N_a_total)
    n_b_eff = max(phot.N_b, FIELD_DENSITY_FLOOR * phot.N_b_total)
    with np.errstate(invalid="ignore"):
        x = np.asarray(to_host(xi_of(np.asarray(isl.G_per_arcsec2, dtype=np.float64), phot.N_c,
                                     n_a_eff, n_b_eff)))
    if phot.use_photometry and mag_a is not None and mag_b is not None:
        with np.errstate(invalid="ignore"):
            e = np.asarray(eta_of(phot, np.asarray(mag_a)[isl.ia], np.asarray(mag_b)[isl.ib]),
                           dtype=np.float64)
    else:
        e = np.zeros(len(x))
    eta_nan, xi_nan = np.isnan(e), np.isnan(x)
    e = np.where(eta_nan, 0.0, e)
    log_r = LN10 * (e + np.where(xi_nan, -np.inf, x))
    clipped = log_r > LOG_R_MAX
    log_r = np.minimum(log_r, LOG_R_MAX)
    guard = {"n_pairs": int(len(log_r)), "n_impossible": int(np.sum(log_r == -np.inf) - xi_nan.sum()),
             "n_clipped": int(clipped.sum()), "n_eta_nan": int(eta_nan.sum()), "n_xi_nan": int(xi_nan.sum()),
             "N_a_used": float(n_a_eff), "N_b_used": float(n_b_eff),
             "field_density_floored": bool(n_a_eff > phot.N_a or n_b_eff > phot.N_b)}
    if guard["n_eta_nan"] or guard["n_xi_nan"]:
        warnings.warn(f"pair weights: {guard['n_eta_nan']} NaN eta (photometry ignored for those pairs), "
                      f"{guard['n_xi_nan']} NaN xi (pairs treated as 'cannot match')",
                      RuntimeWarning, stacklevel=2)
    return e, x, log_r, guard


def _per_row(values, rows, n, fill):
    """Scatter per-member values (CSR order ``rows``) into a per-row array of length n."""
    out = np.full(n, fill, dtype=np.asarray(values).dtype if len(values) else np.float64)
    out[np.asarray(rows, dtype=np.int64)] = values
    return out


def _dropped_rows(cat: Catalogue, side: str) -> pd.DataFrame:
    """Nonmatch rows for ``cat.dropped`` (rows removed before matching)."""
    d = cat.dropped
    n = len(d)
    reason = np.asarray(d["reason"], dtype=object) if n else np.zeros(0, dtype=object)
    filt = np.array([str(r).startswith(FILTERED_PREFIX) for r in reason], dtype=bool)
    detail = [f"{r} (column {c})" if isinstance(c, str) and c and not f else str(r)
              for r, c, f in zip(reason, d["column"] if n else [], filt)]
    return pd.DataFrame({
        "id": np.full(n, None, dtype=object), "index": np.asarray(d["row"], dtype=np.int64) if n else
        np.zeros(0, dtype=np.int64), "ra": np.nan, "dec": np.nan, "mag": np.nan,
        "p_no_match": np.nan, "best_p_match": np.nan, "island": -1, "island_n_a": 0, "island_n_b": 0,
        "edge": False, "reason": np.where(filt, REASON_FILTERED, REASON_INVALID).astype(object),
        "detail": np.asarray(detail, dtype=object)})


NONMATCH_COLUMNS = ["id", "index", "ra", "dec", "mag", "p_no_match", "best_p_match", "island",
                    "island_n_a", "island_n_b", "edge", "reason", "detail"]


def _nonmatches(side, cat, isl, res, acc_pos, options, mags, approx_isl, y_cut) -> pd.DataFrame:
    n = len(cat)
    if side == "a":
        label, rows_csr, p_none, best = isl.label_a, isl.a_rows, res.p_none_a, res.best_b
        pair_pos = isl.ia
    else:
        label, rows_csr, p_none, best = isl.label_b, isl.b_rows, res.p_none_b, res.best_a
        pair_pos = isl.ib
    has_pair = np.bincount(pair_pos, minlength=n) > 0
    p_none_row = _per_row(p_none, rows_csr, n, 1.0)
    best_row = _per_row(best, rows_csr, n, -1)
    best_p = np.zeros(n)
    if len(pair_pos):
        np.maximum.at(best_p, pair_pos, res.pair_prob)
    matched = np.zeros(n, dtype=bool)
    matched[acc_pos] = True
    edge_isl = isl.island_edge[label]
    reason = np.where(best_row >= 0, REASON_BELOW, REASON_UNMATCHED).astype(object)
    if not options.include_approximate:
        reason = np.where(approx_isl[label], REASON_APPROX, reason)
    if options.reject_edge:
        reason = np.where(edge_isl, REASON_EDGE, reason)
    reason = np.where(has_pair, reason, REASON_NO_CANDIDATE.format(y=f"{y_cut:g}"))
    keep = np.flatnonzero(~matched)
    lab = label[keep]
    df = pd.DataFrame({
        "id": cat.ids[keep], "index": cat.row[keep], "ra": cat.ra[keep], "dec": cat.dec[keep],
        "mag": np.full(len(keep), np.nan) if mags is None else mags[keep],
        "p_no_match": p_none_row[keep], "best_p_match": best_p[keep], "island": lab,
        "island_n_a": isl.island_n_a[lab], "island_n_b": isl.island_n_b[lab], "edge": edge_isl[keep],
        "reason": reason[keep], "detail": ""})
    dropped = _dropped_rows(cat, side)
    if len(dropped):
        df = pd.concat([df, dropped], ignore_index=True)
    return df[NONMATCH_COLUMNS]


MATCH_COLUMNS = ["id_a", "id_b", "index_a", "index_b", "ra_a", "dec_a", "ra_b", "dec_b", "sep_arcsec",
                 "mag_a", "mag_b", "p_match", "p_hypothesis", "eta", "xi", "log_r", "island",
                 "island_n_a", "island_n_b", "edge", "status"]


def _status_names(codes) -> np.ndarray:
    names = np.array([STATUS_NAMES.get(i, str(i)) for i in range(max(STATUS_NAMES) + 1)], dtype=object)
    return names[np.asarray(codes, dtype=np.int64)]


def _matches(a, b, isl, res, acc, e, x, log_r, mag_a, mag_b, contamination) -> pd.DataFrame:
    p = np.flatnonzero(acc)
    ia, ib = isl.ia[p], isl.ib[p]
    k = isl.label_a[ia]
    df = pd.DataFrame({
        "id_a": a.ids[ia], "id_b": b.ids[ib], "index_a": a.row[ia], "index_b": b.row[ib],
        "ra_a": a.ra[ia], "dec_a": a.dec[ia], "ra_b": b.ra[ib], "dec_b": b.dec[ib],
        "sep_arcsec": isl.sep_arcsec[p],
        "mag_a": np.full(len(p), np.nan) if mag_a is None else mag_a[ia],
        "mag_b": np.full(len(p), np.nan) if mag_b is None else mag_b[ib],
        "p_match": res.pair_prob[p], "p_hypothesis": res.best_prob[k], "eta": e[p], "xi": x[p],
        "log_r": log_r[p], "island": k, "island_n_a": isl.island_n_a[k], "island_n_b": isl.island_n_b[k],
        "edge": isl.island_edge[k],
        "status": _status_names(res.status[k])})
    if contamination is not None:
        df["p_contaminated_a"], df["p_contaminated_b"] = contamination[0][p], contamination[1][p]
    return df.sort_values(["index_a", "index_b"], kind="stable").reset_index(drop=True)


def _contamination(isl, pert, acc, backend):
    """P(contaminated | separation) of each side for every pair (NaN where a side is off);
    evaluated for the accepted pairs only."""
    from .auf import pair_contamination

    out = [np.full(isl.n_pairs, np.nan), np.full(isl.n_pairs, np.nan)]
    p = np.flatnonzero(acc)
    if len(p) == 0:
        return out
    kw = {}
    for s, rows in (("a", isl.ia[p]), ("b", isl.ib[p])):
        if pert.get(f"model_{s}") is not None:
            kw[f"cell_{s}"], kw[f"model_{s}"] = np.asarray(pert[f"cell_{s}"])[rows], pert[f"model_{s}"]
    pa, pb = pair_contamination(isl.sep_arcsec[p], isl.sigma2_arcsec2[p], backend=backend, **kw)
    for i, (s, v) in enumerate((("a", pa), ("b", pb))):
        if pert.get(f"model_{s}") is not None:
            out[i][p] = np.asarray(to_host(v), dtype=np.float64)
    return out


def check_conservation(result: MatchResult, a: Catalogue, b: Catalogue):
    """Raise :class:`ConservationError` unless every input row of A and B (kept or dropped)
    appears exactly once in ``matches`` or in its ``nonmatches`` table."""
    for side, cat in (("a", a), ("b", b)):
        expected = np.sort(np.concatenate([np.asarray(cat.row, dtype=np.int64),
                                           np.asarray(cat.dropped["row"], dtype=np.int64)]))
        got = np.sort(np.concatenate([result.matches[f"index_{side}"].to_numpy(dtype=np.int64),
                                      result.nonmatches[side]["index"].to_numpy(dtype=np.int64)]))
        if len(got) != len(expected) or not np.array_equal(got, expected):
            dup = np.unique(got[1:][np.diff(got) == 0]) if len(got) > 1 else []
            missing = np.setdiff1d(expected, got)
            raise ConservationError(
                f"catalogue {cat.name!r}: {len(got)} output rows for {len(expected)} input rows "
                f"(repeated: {list(dup[:5])}, missing: {list(missing[:5])})")


# -- the pipeline ---------------------------------------------------------------------------------
def match_catalogues(a: Catalogue, b: Catalogue, options: MatchOptions | None = None, backend=None,
                     progress=None) -> MatchResult:
    """Symmetric probabilistic cross-match of catalogues A and B (see the module docstring).

    a, b : validated catalogues with position errors (``cov``) and, for photometry, the
        magnitude columns named by ``options.a.band`` / ``options.b.band``.
    options : :class:`MatchOptions` (default: photometry off unless bands are given, most
        probable hypothesis accepted).
    backend : 'auto' | 'numpy' | 'cupy' or a Backend; every stage runs on it.
    progress : optional ``callable(stage, index, n_stages)`` called as each stage starts
        (None or a bool: no callback; the CLI draws its bar through the callable).
    Returns a :class:`MatchResult`; every input row is in exactly one of its tables.
    """
    options = options or MatchOptions()
    options.check()
    be = get_backend(backend)
    for cat in (a, b):
        if cat.cov is None:
            raise ValueError(f"catalogue {cat.name!r} has no position errors; the symmetric match "
                             "needs them (give error columns, or a constant error)")
    mag_a, mag_b = _mags(a, options.a.band), _mags(b, options.b.band)
    use_phot = bool(options.use_photometry and mag_a is not None and mag_b is not None)
    cov = options.resolved_coverage()
    st = _Stages(progress)
    with st("perturbation"):
        pert = perturbation_inputs(a, b, options, be)
    with st("islands"):
        isl = build_islands(a, b, y_cut=options.y_cut, max_sep_arcsec=options.max_sep_arcsec,
                            coverage=cov, perturbation=pert, backend=be)
    with st("photometry"):
        phot = estimate_photometry(a, b, isl, options.a.band if use_phot else None,
                                   options.b.band if use_phot else None, use_photometry=use_phot,
                                   backend=be, **_photometry_kwargs(options, mag_a, mag_b, use_phot))
    with st("weights"):
        e, x, log_r, guard = pair_weights(phot, isl, mag_a, mag_b)
    with st("assignment"):
        res = evaluate_island_set(isl, log_r, backend=be, max_small_side=options.max_small_side)
    with st("acceptance"):
        acc = accept(res, options.threshold, by=options.accept_by,
                     include_approximate=options.include_approximate)
        if options.reject_edge:
            acc &= ~isl.island_edge[res.pair_island]
        contamination = _contamination(isl, pert, acc, be) if pert is not None else None
    with st("tables"):
        approx = res.approximate
        matches = _matches(a, b, isl, res, acc, e, x, log_r, mag_a, mag_b, contamination)
        acc_a, acc_b = isl.ia[acc], isl.ib[acc]
        nonm = {"a": _nonmatches("a", a, isl, res, acc_a, options, mag_a, approx, options.y_cut),
                "b": _nonmatches("b", b, isl, res, acc_b, options, mag_b, approx, options.y_cut)}
        pairs = pd.DataFrame({"index_a": a.row[isl.ia], "index_b": b.row[isl.ib],
                              "sep_arcsec": isl.sep_arcsec, "eta": e, "xi": x, "log_r": log_r,
                              "p_match": res.pair_prob, "in_best": res.pair_in_best, "accepted": acc,
                              "island": isl.label_a[isl.ia]})
        order = np.lexsort((b.row[acc_b], a.row[acc_a]))   # the order of ``matches``
        result = MatchResult(names=(a.name, b.name), matches=matches, nonmatches=nonm, pairs=pairs,
                             summary={}, pos_a=acc_a[order], pos_b=acc_b[order], options=options,
                             islands=isl, photometry=phot, assignment=res)
        check_conservation(result, a, b)
    result.summary = _summary(a, b, result, guard, st.seconds, be, use_phot, pert)
    return result


def _summary(a, b, r: MatchResult, guard, seconds, be, use_phot, pert) -> dict:
    isl, ph, res = r.islands, r.photometry, r.assignment
    area = float(ph.area_arcsec2)
    cats = {}
    for s, cat, side in (("a", a, r.options.a), ("b", b, r.options.b)):
        nm = r.nonmatches[s]
        cats[s] = {"name": cat.name, "n_input": int(len(cat) + len(cat.dropped)), "n_used": int(len(cat)),
                   "n_dropped": int(len(cat.dropped)), "band": side.band,
                   "perturbation": bool(side.perturbation), "psf_fwhm_arcsec": side.psf_fwhm_arcsec,
                   "median_sigma_arcsec": float(np.median(cat.sigma_arcsec)),
                   "n_matched": int(len(r.matches)), "n_nonmatched": int(len(nm)),
                   "nonmatch_reasons": {str(k): int(v) for k, v in nm["reason"].value_counts().items()}}
        if pert is not None and pert.get(f"model_{s}") is not None:
            m = pert[f"model_{s}"]
            cats[s]["perturbation_model"] = {"n_cells": int(m.n_cells), "psf_radius_arcsec": m.psf_radius,
                                             **{k: v for k, v in m.meta.items() if k != "counts"}}
    p = r.matches["p_match"].to_numpy()
    status = {STATUS_NAMES[k]: int(np.sum(res.status == k)) for k in STATUS_NAMES}
    return {
        "catalogues": cats,
        "n_matches": int(len(r.matches)),
        "expected_true_matches": float(p.sum()),
        "expected_false_matches": float(len(p) - p.sum()),
        "photometry": bool(use_phot),
        "densities_per_arcsec2": {"N_a": ph.N_a, "N_b": ph.N_b, "N_c": ph.N_c,
                                  "N_c_sd": ph.diagnostics.get("N_c_sd"),
                                  "N_a_total": ph.N_a_total, "N_b_total": ph.N_b_total},
        "area_arcsec2": area, "area_deg2": area / 3600.0**2,
        "islands": {**isl.size_stats(), "status": status},
        "weights": guard,
        "photometry_diagnostics": jsonable(ph.diagnostics),
        "timing_s": dict(seconds, total=round(sum(seconds.values()), 6)),
        "backend": be.name,
        "options": r.options.to_dict(),
        "seed": r.options.seed,
    }


# -- sequential matching ---------------------------------------------------------------------------
@dataclass
class SequenceResult:
    """Outputs of :func:`match_sequence`.

    order : catalogue names in matching order.
    steps : list of (left name, right name, :class:`MatchResult`); step k matches the merge of
        the first k+1 catalogues (left) with catalogue k+1 (right).
    final : one row per final object: ``id_<name>``/``row_<name>`` per input catalogue (row -1
        where absent), ``catalogues`` (which are present), ``ra``/``dec`` (eq 40 merged
        position), magnitudes, and per step ``step<k>_p_match``, ``step<k>_sep_arcsec``,
        ``step<k>_reason`` ('matched' or the nonmatch reason); input rows dropped before
        matching come last, with ``status`` 'invalid row' / 'filtered'.
    merged : the final merged :class:`Catalogue`.
    summary : per-step summaries, counts per combination of catalogues, timing.
    """

    order: list
    steps: list
    final: pd.DataFrame
    merged: Catalogue
    summary: dict


def precision_order(cats) -> list:
    """Indices of ``cats`` from the most to the least precise astrometry (median
    circular-equivalent 1-sigma error, arcsec; ties keep the given order) -- Wilson & Naylor
    2018 section 7: start with the two most precise catalogues."""
    med = [float(np.median(c.sigma_arcsec)) if c.cov is not None else np.inf for c in cats]
    return sorted(range(len(cats)), key=lambda i: (med[i], i))


def _provenance(cat: Catalogue, names) -> dict:
    """{original catalogue name: input rows (-1 where absent)} for an input or merged catalogue."""
    if f"row_{cat.name}" not in cat.extra.columns and cat.name in names:
        return {cat.name: np.asarray(cat.row, dtype=np.int64)}
    return {n: cat.extra[f"row_{n}"].to_numpy(dtype=np.int64) for n in names
            if f"row_{n}" in cat.extra.columns}


def _keys(prov: dict, names: list) -> np.ndarray:
    """One int64 key per row: the first original catalogue (in ``names`` order) present, and its row."""
    n = len(next(iter(prov.values())))
    key = np.full(n, -1, dtype=np.int64)
    for i, nm in enumerate(names):
        if nm in prov:
            r = prov[nm]
            key = np.where((key < 0) & (r >= 0), (np.int64(i) << 40) + r, key)
    return key


def _merged_side(left, lside: SideOptions, right, rside: SideOptions, merged: Catalogue) -> SideOptions:
    """Side options of a merged catalogue: the left (more precise) side's AUF settings, and as
    magnitude the left band -- rows lacking it take the right band when both have the same name
    (the same filter) -- else the right band."""
    def key(cat, other, band):
        return None if band is None else (f"{cat.name}_{band}" if band in other.mags else band)

    kl, kr = key(left, right, lside.band), key(right, left, rside.band)
    band = kl if kl is not None else kr
    if lside.band is not None and lside.band == rside.band:
        band = lside.band
        merged.mags[band] = np.where(np.isfinite(merged.mags[kl]), merged.mags[kl], merged.mags[kr])
    side = lside if kl is not None or rside.band is None else rside
    return dataclasses.replace(side, band=band)


def match_sequence(cats, options: MatchOptions | None = None, sides=None, order="precision",
                   backend=None, progress=None) -> SequenceResult:
    """Match several catalogues two at a time (Wilson & Naylor 2018 section 7).

    cats : list of catalogues (unique names).  sides : list of :class:`SideOptions` parallel to
    ``cats`` (default: no band, no perturbation).  order : 'precision' (default; most precise
    astrometry first, see :func:`precision_order`), 'given', or a list of names.
    options : pair-level :class:`MatchOptions` (its ``a``/``b`` are replaced per step); the same
    acceptance rule applies at every step -- only accepted matches are merged.
    progress : ``callable(stage, index, n)`` with stages named ``'step k: <stage>'``.
    """
    cats = list(cats)
    if len(cats) < 2:
        raise ValueError("match_sequence needs at least two catalogues")
    names = [c.name for c in cats]
    if len(set(names)) != len(names):
        raise ValueError(f"catalogue names must be unique, got {names}")
    sides = list(sides) if sides is not None else [SideOptions() for _ in cats]
    if len(sides) != len(cats):
        raise ValueError("give one SideOptions per catalogue")
    if order == "precision":
        idx = precision_order(cats)
    elif order == "given":
        idx = list(range(len(cats)))
    else:
        order = list(order)
        if sorted(order) != sorted(names):
            raise ValueError(f"order {order} must list each of {names} once")
        idx = [names.index(n) for n in order]
    cats, sides = [cats[i] for i in idx], [sides[i] for i in idx]
    names = [c.name for c in cats]
    options = options or MatchOptions()
    t0 = time.perf_counter()
    left, lside = cats[0], sides[0]
    steps, infos = [], []
    for k in range(1, len(cats)):
        right, rside = cats[k], sides[k]
        step_progress = None if not callable(progress) else \
            (lambda stage, i, n, k=k: progress(f"step {k}: {stage}", i, n))
        opts = dataclasses.replace(options, a=lside, b=rside)
        res = match_catalogues(left, right, opts, backend=backend, progress=step_progress)
        steps.append((left.name, right.name, res))
        infos.append(_step_info(left, right, res, names))
        merged = _merge(left, right, res, name="+".join(names[:k + 1]))
        lside = _merged_side(left, lside, right, rside, merged)
        left = merged
    final = _final_table(left, cats, names, infos)
    kept = final["status"].isin(["matched", "unmatched"]).to_numpy()
    summary = {"order": names, "order_rule": order if isinstance(order, str) else "explicit",
               "steps": [{"left": l_, "right": r_, **{k_: s.summary[k_] for k_ in
                         ("n_matches", "expected_true_matches", "densities_per_arcsec2", "timing_s")}}
                         for l_, r_, s in steps],
               "n_final": int(len(final)),
               "by_catalogues": {str(k): int(v) for k, v in
                                 final.loc[kept, "catalogues"].value_counts().items()},
               "n_dropped": {str(k): int(v) for k, v in final.loc[~kept, "status"].value_counts().items()},
               "timing_s": {"total": round(time.perf_counter() - t0, 6)}}
    return SequenceResult(order=names, steps=steps, final=final, merged=left, summary=summary)


def _merge(left, right, res: MatchResult, name: str) -> Catalogue:
    from .sequential import merge_matched

    return merge_matched(left, right, res.pos_a, res.pos_b, name=name)


def _step_info(left, right, res: MatchResult, names) -> dict:
    """Per-row (keyed) outcome of one step for both of its inputs."""
    out = {}
    for s, cat in (("a", left), ("b", right)):
        prov = _provenance(cat, names)
        key = _keys(prov, names)
        n = len(cat)
        pos_of_row = pd.Series(np.arange(n), index=cat.row)
        p = np.full(n, np.nan)
        sep = np.full(n, np.nan)
        reason = np.full(n, "", dtype=object)
        m = res.matches
        pos = pos_of_row.loc[m[f"index_{s}"].to_numpy()].to_numpy()
        p[pos], sep[pos], reason[pos] = m["p_match"].to_numpy(), m["sep_arcsec"].to_numpy(), "matched"
        nm = res.nonmatches[s]
        nm = nm[nm["index"].isin(pos_of_row.index)]
        reason[pos_of_row.loc[nm["index"].to_numpy()].to_numpy()] = nm["reason"].to_numpy()
        out[s] = pd.DataFrame({"p_match": p, "sep_arcsec": sep, "reason": reason}, index=key)
    return out


def _final_table(merged: Catalogue, cats, names, infos) -> pd.DataFrame:
    prov = _provenance(merged, names)
    key_all = {nm: prov[nm] for nm in names}
    df = pd.DataFrame({f"row_{nm}": key_all[nm] for nm in names})
    for nm in names:
        col = f"id_{nm}"
        df[col] = merged.extra[col].to_numpy() if col in merged.extra.columns else \
            np.where(key_all[nm] >= 0, merged.ids, None)
    present = np.stack([key_all[nm] >= 0 for nm in names], axis=1)
    df.insert(0, "catalogues", ["+".join(n for n, p in zip(names, row) if p) for row in present])
    df["n_catalogues"] = present.sum(axis=1)
    df["ra"], df["dec"] = merged.ra, merged.dec
    df["sigma_arcsec"] = merged.sigma_arcsec
    for band, v in merged.mags.items():
        df[band] = v
    for k, info in enumerate(infos, start=1):
        left_names = names[:k]
        key_l = _keys({n: key_all[n] for n in left_names}, names)
        key_r = _keys({names[k]: key_all[names[k]]}, names)
        for col in ("p_match", "sep_arcsec", "reason"):
            vl = info["a"][col].reindex(key_l).to_numpy()
            vr = info["b"][col].reindex(key_r).to_numpy()
            use_l = key_l >= 0
            df[f"step{k}_{col}"] = np.where(use_l, vl, vr)
        df[f"step{k}_reason"] = df[f"step{k}_reason"].fillna("")
    df["status"] = np.where(df["n_catalogues"] > 1, "matched", "unmatched")
    df["detail"] = ""
    parts = [df]
    for cat in cats:
        d = _dropped_rows(cat, "")
        if len(d):
            extra = pd.DataFrame({f"row_{nm}": (d["index"].to_numpy() if nm == cat.name else -1)
                                  for nm in names})
            extra["catalogues"] = cat.name
            extra["n_catalogues"] = 1
            extra["status"] = d["reason"].to_numpy()
            extra["detail"] = d["detail"].to_numpy()
            parts.append(extra)
    final = pd.concat(parts, ignore_index=True) if len(parts) > 1 else df
    for nm in names:
        final[f"row_{nm}"] = final[f"row_{nm}"].fillna(-1).astype(np.int64)
    _check_final(final, cats)
    return final


def _check_final(final: pd.DataFrame, cats):
    for cat in cats:
        got = final[f"row_{cat.name}"].to_numpy(dtype=np.int64)
        got = np.sort(got[got >= 0])
        expected = np.sort(np.concatenate([np.asarray(cat.row, dtype=np.int64),
                                           np.asarray(cat.dropped["row"], dtype=np.int64)]))
        if not np.array_equal(got, expected):
            raise ConservationError(f"catalogue {cat.name!r}: the final table holds {len(got)} of its "
                                    f"rows for {len(expected)} input rows")


__all__ = ["SideOptions", "MatchOptions", "MatchResult", "SequenceResult", "match_catalogues",
           "apply_filter", "match_sequence", "precision_order", "pair_weights", "perturbation_inputs",
           "check_conservation", "ConservationError", "LOG_R_MAX", "FIELD_DENSITY_FLOOR"]
