"""The end-to-end symmetric match: conservation of every input row, reasons, guards, the
sequential (3-catalogue) match, and NumPy vs CuPy equality."""
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gpumatch.catalogue import Catalogue, cov_circular
from gpumatch.filters import hr0_foreground
from gpumatch.islands import SkyBox
from gpumatch.photometry import Photometry
from gpumatch.simulate import FieldSpec, simulate_field
from gpumatch.symmetric import (FIELD_DENSITY_FLOOR, LOG_R_MAX, REASON_APPROX, REASON_BELOW, REASON_EDGE,
                                REASON_FILTERED, REASON_INVALID, REASON_UNMATCHED, ConservationError,
                                MatchOptions, SideOptions, apply_filter, check_conservation,
                                counterpart_bins, match_catalogues, match_sequence, pair_weights,
                                precision_order)

RA0, DEC0, WIDTH = 150.0, 2.0, 40.0 / 3600  # a 40" x 40" box
BOX = (RA0, RA0 + WIDTH, DEC0, DEC0 + WIDTH)
FAST_PHOT = {"n_area": 4000}


# -- random catalogues for the property test ------------------------------------------------------
def _catalogue(name, draw, n, n_dropped, rng, near=None):
    """n kept sources (some near the given positions), n_dropped rows dropped before matching."""
    ra = RA0 + rng.uniform(0.05, 0.95, n) * WIDTH
    dec = DEC0 + rng.uniform(0.05, 0.95, n) * WIDTH
    if near is not None and len(near[0]):
        k = min(n, len(near[0]), draw(st.integers(0, n)))
        ra[:k] = near[0][:k] + rng.normal(0, 0.3, k) / 3600
        dec[:k] = near[1][:k] + rng.normal(0, 0.3, k) / 3600
    sig = rng.uniform(0.1, 1.5, n)
    mag = rng.uniform(12, 18, n)
    mag[rng.uniform(size=n) < 0.15] = np.nan
    total = n + n_dropped
    rows = np.sort(rng.choice(total, n, replace=False))
    gone = np.setdiff1d(np.arange(total), rows)
    dropped = pd.DataFrame({"row": gone, "file": name, "file_row": gone, "column": "ra",
                            "reason": ["filtered: test rule" if r % 2 else "RA is missing" for r in gone]})
    return Catalogue(name, ra, dec, cov=cov_circular(sig), mags={"m": mag}, row=rows,
                     ids=np.array([f"{name}{r}" for r in rows], dtype=object), dropped=dropped)


@st.composite
def match_case(draw):
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    a = _catalogue("A", draw, draw(st.integers(1, 12)), draw(st.integers(0, 3)), rng)
    b = _catalogue("B", draw, draw(st.integers(1, 30)), draw(st.integers(0, 3)), rng, near=(a.ra, a.dec))
    by = draw(st.sampled_from(["hypothesis", "pair"]))
    thr = draw(st.sampled_from([None, 0.3, 0.9] if by == "hypothesis" else [None, 0.6, 0.95]))
    opts = MatchOptions(a=SideOptions(band="m"), b=SideOptions(band="m"),
                        use_photometry=draw(st.booleans()), coverage=BOX, threshold=thr, accept_by=by,
                        reject_edge=draw(st.booleans()), include_approximate=draw(st.booleans()),
                        max_small_side=draw(st.integers(0, 3)), photometry=FAST_PHOT)
    return a, b, opts


# Tiny random catalogues make degenerate photometric estimates (NaN eta, guarded and warned about).
@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(match_case())
def test_every_input_row_once(case):
    a, b, opts = case
    r = match_catalogues(a, b, opts, backend="numpy")   # also checks conservation internally
    check_conservation(r, a, b)
    for s, cat in (("a", a), ("b", b)):
        idx = np.concatenate([r.matches[f"index_{s}"], r.nonmatches[s]["index"]])
        assert len(idx) == len(cat) + len(cat.dropped) == len(np.unique(idx))
        nm = r.nonmatches[s]
        assert nm["reason"].notna().all() and (nm["reason"] != "").all()
        dropped = nm[nm["index"].isin(cat.dropped["row"])]
        assert set(dropped["reason"]) <= {REASON_FILTERED, REASON_INVALID}
        assert (np.isnan(nm["p_no_match"]) | ((nm["p_no_match"] >= 0) & (nm["p_no_match"] <= 1 + 1e-12))).all()
    m = r.matches
    assert m["index_a"].is_unique and m["index_b"].is_unique
    assert ((m["p_match"] >= 0) & (m["p_match"] <= 1 + 1e-12)).all()
    if opts.threshold is not None and opts.accept_by == "pair":
        assert (m["p_match"] >= opts.threshold).all()
    if opts.threshold is not None and opts.accept_by == "hypothesis":
        assert (m["p_hypothesis"] > opts.threshold).all()
    if opts.reject_edge:
        assert not m["edge"].any()
    if not opts.include_approximate:
        assert (m["status"] == "exact").all()


def test_conservation_check_catches_a_lost_row():
    a, b = _two_sources()
    r = match_catalogues(a, b, MatchOptions(coverage=BOX, photometry=FAST_PHOT))
    r.nonmatches["b"] = r.nonmatches["b"].iloc[1:]
    with pytest.raises(ConservationError, match="catalogue 'B'"):
        check_conservation(r, a, b)


# -- reasons on a hand-made field --------------------------------------------------------------------
def _two_sources():
    """A: one source with a counterpart 0.1" away, one isolated; B: the counterpart and one far away."""
    ra_a = np.array([RA0 + 10 / 3600, RA0 + 30 / 3600])
    dec_a = np.array([DEC0 + 20 / 3600, DEC0 + 20 / 3600])
    ra_b = np.array([ra_a[0] + 0.1 / 3600, RA0 + 20 / 3600])
    dec_b = np.array([dec_a[0], DEC0 + 35 / 3600])
    a = Catalogue("A", ra_a, dec_a, cov=cov_circular([0.3, 0.3]), ids=np.array(["a0", "a1"], dtype=object))
    b = Catalogue("B", ra_b, dec_b, cov=cov_circular([0.1, 0.1]))
    return a, b


def test_simple_field_columns_and_reasons():
    a, b = _two_sources()
    r = match_catalogues(a, b, MatchOptions(coverage=BOX, photometry=FAST_PHOT))
    m = r.matches
    assert list(m[["id_a", "index_a", "index_b"]].itertuples(index=False, name=None)) == [("a0", 0, 0)]
    assert m["sep_arcsec"].iloc[0] == pytest.approx(0.1 * np.cos(np.radians(DEC0 + 20 / 3600)), rel=1e-6)
    for col in ("ra_a", "dec_a", "ra_b", "dec_b", "p_match", "p_hypothesis", "eta", "xi", "island",
                "island_n_a", "island_n_b", "status"):
        assert col in m
    assert m["status"].iloc[0] == "exact"
    assert m["eta"].iloc[0] == 0.0  # photometry off: no magnitudes
    for s in ("a", "b"):
        nm = r.nonmatches[s]
        assert list(nm["reason"]) == ["no candidate within R_0.997"]
        assert nm["p_no_match"].iloc[0] == 1.0
    assert r.summary["n_matches"] == 1
    assert set(r.summary["timing_s"]) >= {"islands", "photometry", "assignment", "total"}


def test_threshold_edge_and_approximate_reasons():
    sim = simulate_field(FieldSpec(seed=5, n_a=80, width_deg=0.03, height_deg=0.03, density_b_arcsec2=0.1))
    base = dict(a=SideOptions(band="Xmag"), b=SideOptions(band="Ks"))
    best = match_catalogues(sim.a, sim.b, MatchOptions(**base))
    strict = match_catalogues(sim.a, sim.b, MatchOptions(**base, threshold=0.95))
    assert len(strict.matches) < len(best.matches)
    assert (strict.nonmatches["a"]["reason"] == REASON_BELOW).sum() == len(best.matches) - len(strict.matches)
    edge = match_catalogues(sim.a, sim.b, MatchOptions(**base, reject_edge=True))
    assert (edge.nonmatches["a"]["reason"] == REASON_EDGE).any()
    assert not edge.matches["edge"].any()
    approx = match_catalogues(sim.a, sim.b, MatchOptions(**base, max_small_side=0, include_approximate=False))
    assert len(approx.matches) == 0
    assert (approx.nonmatches["a"]["reason"] == REASON_APPROX).sum() == len(best.matches) + \
        (best.nonmatches["a"]["reason"] == REASON_UNMATCHED).sum() - \
        (approx.nonmatches["a"]["reason"] == REASON_UNMATCHED).sum()
    loose = match_catalogues(sim.a, sim.b, MatchOptions(**base, max_small_side=0))
    assert (loose.matches["status"] != "exact").all() and len(loose.matches) > 0


def test_filtered_rows_are_reported():
    sim = simulate_field(FieldSpec(seed=2, n_a=60, width_deg=0.03, height_deg=0.03))
    fr = hr0_foreground(sim.a)
    a = apply_filter(sim.a, fr)
    assert len(a) + len(a.dropped) == len(sim.a)
    r = match_catalogues(a, sim.b, MatchOptions(a=SideOptions(band="Xmag"), b=SideOptions(band="Ks")))
    nm = r.nonmatches["a"]
    gone = nm[nm["reason"] == REASON_FILTERED]
    assert sorted(gone["index"]) == sorted(np.flatnonzero(~fr.keep))
    assert gone["detail"].str.startswith("filtered: hr0 foreground").all()


def test_options_are_checked():
    a, b = _two_sources()
    with pytest.raises(ValueError, match="threshold"):
        match_catalogues(a, b, MatchOptions(threshold=0.4, accept_by="pair"))
    with pytest.raises(ValueError, match="psf_fwhm_arcsec"):
        match_catalogues(a, b, MatchOptions(b=SideOptions(band="m", perturbation=True)))
    with pytest.raises(ValueError, match="no magnitude 'K'"):
        match_catalogues(a, b, MatchOptions(a=SideOptions(band="K"), coverage=BOX))


# -- weight guards -------------------------------------------------------------------------------
def test_pair_weights_guards():
    phot = Photometry(N_a=0.0, N_b=0.01, N_c=0.02, N_a_total=0.02, N_b_total=0.03, area_arcsec2=1e4,
                      use_photometry=False)
    isl = SimpleNamespace(G_per_arcsec2=np.array([1.0, 0.0, np.nan, np.inf]), ia=np.zeros(4, int),
                          ib=np.arange(4))
    with pytest.warns(RuntimeWarning, match="1 NaN xi"):
        e, x, log_r, guard = pair_weights(phot, isl, None, None)
    assert np.all(e == 0)
    n_a = FIELD_DENSITY_FLOOR * 0.02
    assert log_r[0] == pytest.approx(np.log(0.02 / (n_a * 0.01)))
    assert log_r[1] == -np.inf and log_r[2] == -np.inf and log_r[3] == LOG_R_MAX
    assert guard["field_density_floored"] and guard["n_xi_nan"] == 1 and guard["n_clipped"] == 1
    assert guard["n_impossible"] == 1 and guard["n_eta_nan"] == 0


def test_counterpart_bins_follow_the_counterpart_count():
    m = np.random.default_rng(0).normal(15, 2, 100_000)
    wide = counterpart_bins(m, 200)
    assert 0.4 < np.diff(wide)[0] <= 1.0 and wide[0] <= m.min() and wide[-1] > m.max()
    assert np.diff(counterpart_bins(m, 10**7))[0] == pytest.approx(0.1)
    assert counterpart_bins([np.nan], 5) is None


# -- sequential matching ---------------------------------------------------------------------------
def _third_catalogue(sim, seed=11):
    """C: the B stars re-observed (0.05" errors, 0.05 mag Ks scatter), only Ks <= 15.5."""
    rng = np.random.default_rng(seed)
    b = sim.b
    keep = np.flatnonzero(b.mags["Ks"] <= 15.5)
    e = rng.normal(0, 0.05, (2, len(keep))) / 3600
    c = Catalogue("C", b.ra[keep] + e[0] / np.cos(np.radians(b.dec[keep])), b.dec[keep] + e[1],
                  cov=cov_circular(np.full(len(keep), 0.05)),
                  mags={"Ks": b.mags["Ks"][keep] + rng.normal(0, 0.05, len(keep))},
                  ids=np.array([f"C{k}" for k in range(len(keep))], dtype=object))
    return c, keep


def test_sequence_three_catalogues():
    sim = simulate_field(FieldSpec(seed=4, n_a=150, width_deg=0.05, height_deg=0.05, density_b_arcsec2=0.05))
    c, b_of_c = _third_catalogue(sim)
    a = sim.a
    sides = [SideOptions(band="Xmag"), SideOptions(band="Ks"), SideOptions(band="Ks")]
    seq = match_sequence([a, sim.b, c], MatchOptions(), sides=sides)
    assert seq.order == ["C", "ir", "xray"]            # most precise astrometry first
    assert [s[:2] for s in seq.steps] == [("C", "ir"), ("C+ir", "xray")]
    f = seq.final
    for cat in (a, sim.b, c):
        rows = f[f"row_{cat.name}"].to_numpy()
        assert np.array_equal(np.sort(rows[rows >= 0]), np.arange(len(cat)))
    # C and B: the same stars, matched almost perfectly
    cb = f[(f["row_C"] >= 0) & (f["row_ir"] >= 0)]
    assert len(cb) >= 0.97 * len(c)
    assert np.mean(b_of_c[cb["row_C"]] == cb["row_ir"]) > 0.99
    # triples: the X-ray source is the true counterpart of the B star in most cases
    tri = f[(f["row_xray"] >= 0) & (f["row_ir"] >= 0)]
    assert np.mean(sim.truth[tri["row_xray"]] == tri["row_ir"]) > 0.8
    assert set(f["step1_reason"]) >= {"matched"} and "step2_p_match" in f
    assert (f.loc[f["n_catalogues"] == 3, "step2_reason"] == "matched").all()
    assert seq.summary["by_catalogues"]


def test_sequence_order_rules():
    sim = simulate_field(FieldSpec(seed=4, n_a=40, width_deg=0.02, height_deg=0.02))
    c, _ = _third_catalogue(sim)
    assert precision_order([sim.a, sim.b, c]) == [2, 1, 0]
    sides = [SideOptions(band="Xmag"), SideOptions(band="Ks"), SideOptions(band="Ks")]
    seq = match_sequence([sim.a, sim.b, c], sides=sides, order="given")
    assert seq.order == ["xray", "ir", "C"]
    seq = match_sequence([sim.a, sim.b, c], sides=sides, order=["ir", "xray", "C"])
    assert seq.order == ["ir", "xray", "C"]
    with pytest.raises(ValueError, match="must list each"):
        match_sequence([sim.a, sim.b, c], order=["ir", "C"])


# -- perturbation ------------------------------------------------------------------------------------
def test_perturbation_on_gives_contamination_probabilities():
    sim = simulate_field(FieldSpec(seed=1, n_a=60, width_deg=0.03, height_deg=0.03, density_b_arcsec2=0.1))
    opts = MatchOptions(a=SideOptions(band="Xmag"),
                        b=SideOptions(band="Ks", perturbation=True, psf_fwhm_arcsec=0.6,
                                      perturbation_kwargs={"n_real": 100}))
    r = match_catalogues(sim.a, sim.b, opts)
    m = r.matches
    assert len(m) > 0
    assert m["p_contaminated_a"].isna().all()
    pb = m["p_contaminated_b"]
    assert ((pb >= 0) & (pb <= 1)).all() and pb.max() > 0
    assert r.summary["catalogues"]["b"]["perturbation_model"]["n_real"] == 100


# -- backends ------------------------------------------------------------------------------------------
def test_backends_identical(gpu_backend):
    sim = simulate_field(FieldSpec(seed=3, n_a=300, width_deg=0.08, height_deg=0.08, density_b_arcsec2=0.08))
    opts = MatchOptions(a=SideOptions(band="Xmag"), b=SideOptions(band="Ks"), threshold=0.5)
    cpu = match_catalogues(sim.a, sim.b, opts, backend="numpy")
    gpu = match_catalogues(sim.a, sim.b, opts, backend=gpu_backend)
    for name in ("matches", "pairs"):
        x, y = getattr(cpu, name), getattr(gpu, name)
        assert list(x.columns) == list(y.columns) and len(x) == len(y)
        for col in x.columns:
            if x[col].dtype.kind == "f":
                np.testing.assert_allclose(y[col], x[col], rtol=1e-12, atol=1e-300)
            else:
                assert (x[col].to_numpy() == y[col].to_numpy()).all(), col
    for s in ("a", "b"):
        pd.testing.assert_frame_equal(cpu.nonmatches[s], gpu.nonmatches[s], rtol=1e-12)
