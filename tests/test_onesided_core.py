"""One-sided core: hand-computed arithmetic, each notebook defect, geometry, options, backends."""
import numpy as np
import pandas as pd
import pytest

from gpumatch.catalogue import ARCSEC_PER_RAD, Catalogue, cov_circular, radec_to_xyz
from gpumatch.onesided import OneSidedOptions, run_onesided
from gpumatch.onesided.geometry import (CoverageGrid, annulus_offsets, mean_direction, offset_points,
                                        rotation_for_offset, xyz_to_radec)
from gpumatch.onesided.stats import isotonic_increasing, significance
from gpumatch.simulate import simulate_field
from gpumatch.sky import SkyIndex

RA0, DEC0 = 266.4, -29.0


def _at(offsets_arcsec):
    """RA/Dec (deg) of points at (east, north) arcsec offsets from (RA0, DEC0)."""
    o = np.asarray(offsets_arcsec, dtype=float)
    base = radec_to_xyz([RA0] * len(o), [DEC0] * len(o))
    return xyz_to_radec(offset_points(base, o[:, 0], o[:, 1]))


def _p(sep, s2):
    return np.exp(-sep**2 / (2 * s2)) / (2 * np.pi * s2)


# -- (a) a tiny case computed by hand ------------------------------------------------------
@pytest.fixture(scope="module")
def tiny():
    # X-ray: X0 at the centre, X1 60" east, X2 60" west; sigma_X = 1" (quadrature radius 1.005").
    xra, xdec = _at([(0, 0), (60, 0), (-60, 0)])
    xray = Catalogue("x", xra, xdec, cov=cov_circular([1.0, 1.0, 1.0]), ids=np.array(["A", "B", "C"], object))
    # IR: a (0.5" E of X0, Ks 10.2), b (1.5" N of X0, Ks 12.7: a candidate, not a quadrature match),
    # c (0.8" E of X1, Ks missing), d (30.3" E of X0, Ks 10.4: hit by trial 1 only).
    ira, idec = _at([(0.5, 0), (0, 1.5), (60.8, 0), (30.3, 0)])
    ir = Catalogue("ir", ira, idec, mags={"Ks": [10.2, 12.7, np.nan, 10.4]})
    opt = OneSidedOptions(shifts_arcsec=((30.0, 0.0), (0.0, 30.0)), shift_target="xray",
                          footprint="none", area_arcsec2=3600.0, f_completeness=False, f_mode="excess",
                          sweep_radii_arcsec=(0.0, 30.0), sweep_trials=2)
    return xray, ir, opt


def test_tiny_counts_by_hand(tiny):
    r = run_onesided(*tiny, backend="numpy", progress=False)
    c = r.counts.set_index("label")
    assert c["n_real"].sum() == 2 and len(c) == 23 + 3
    row = c.loc["10.0-10.5"]  # real: a; trial 1: d; trial 2: nothing
    assert row.n_real == 1 and row.rand_mean == 0.5
    assert row.rand_std == pytest.approx(np.sqrt(0.5))  # ddof=1 of [1, 0]
    assert row.excess == 0.5 and row.significance_notebook == pytest.approx(0.5 / np.sqrt(0.5))
    z = (2 * np.sqrt(1.375) - 2 * np.sqrt(0.875)) / np.sqrt(max(1.0, 0.5 / 0.875) * 1.5)
    assert row.significance == pytest.approx(z, rel=1e-12)
    miss = c.loc["Ks missing"]  # c is counted apart, never dropped
    assert miss.n_real == 1 and miss.rand_mean == 0 and miss.excess == 1
    assert np.isnan(miss.significance_notebook)
    assert miss.significance == pytest.approx((2 * np.sqrt(1.375) - 2 * np.sqrt(0.375)) / np.sqrt(1.5))
    assert r.trial_counts.shape == (2, 26)
    assert r.trial_counts[:, 8].tolist() == [1.0, 0.0]  # bin 10.0-10.5 is the 9th
    assert r.shifts[["dx_arcsec", "dy_arcsec"]].to_numpy().tolist() == [[30, 0], [0, 30]]
    assert r.meta["sweep_real"] == 2
    sw = r.sweep.set_index("shift_arcsec")
    assert sw.loc[0.0, "n_unique_mean"] == 2 and sw.loc[0.0, "n_unique_std"] == 0


def test_tiny_f_rho_and_probabilities_by_hand(tiny):
    r = run_onesided(*tiny, backend="numpy", progress=False)
    ft = r.f_table.set_index("label")
    # f: excess pairs over the 3 X-ray sources: 0.5 at Ks in [10, 10.5), +1 with Ks missing.
    assert ft.loc["Ks < 10", "f_excess"] == 0 and ft.loc["Ks < 10.5", "f_excess"] == pytest.approx(0.5 / 3)
    assert ft.loc["all (incl. Ks missing)", "f_excess"] == pytest.approx(0.5)
    assert r.meta["f_lim"] == pytest.approx(0.5)
    # raw: X0 matched at 10.2, X1 matched with Ks missing
    assert ft.loc["Ks < 10.5", "f_raw"] == pytest.approx(1 / 3) and ft.loc["Ks < 17.5", "f_raw"] == pytest.approx(1 / 3)
    assert ft.loc["all (incl. Ks missing)", "f_raw"] == pytest.approx(2 / 3)
    assert ft.loc["Ks < 12", "rho_per_arcsec2"] == pytest.approx(2 / 3600)  # a and d
    cand = r.candidates.set_index("id_ir")
    assert sorted(cand.index) == [0, 1, 2]  # a, b, c; d is 30" away
    s2 = 1.01
    pa, pc = _p(0.5, s2), _p(0.8, s2)
    assert cand.loc[0, "p_phi_per_arcsec2"] == pytest.approx(pa, rel=1e-9)
    # binned: T = (class f) p / (class rho)
    Ta, Tb, Tc = (1 / 6) * pa / (2 / 3600), 0.0, (1 / 3) * pc / (1 / 3600)
    assert cand.loc[0, "T"] == pytest.approx(Ta, rel=1e-9) and cand.loc[1, "T"] == Tb
    assert cand.loc[2, "T"] == pytest.approx(Tc, rel=1e-9)
    assert cand.loc[0, "P"] == pytest.approx(Ta / (Ta + Tb + 0.5), rel=1e-9)
    assert cand.loc[2, "P"] == pytest.approx(Tc / (Tc + 0.5), rel=1e-9)
    best = r.best.set_index("id_x")
    assert best.loc["A", "P0"] == pytest.approx(0.5 / (Ta + 0.5), rel=1e-9)
    assert best.loc["A", "index_ir"] == 0 and best.loc["A", "n_candidates"] == 2
    assert best.loc["B", "index_ir"] == 2 and np.isnan(best.loc["B", "ks"])  # missing stays missing
    assert best.loc["C", "P0"] == 1.0 and np.isnan(best.loc["C", "P_best"])
    assert best.loc["C", "reason"] == "no candidate within 5 sigma" and best.loc["C", "index_ir"] == -1
    assert np.allclose(r.best["norm_residual"], 0, atol=1e-15)
    th = r.thresholds.set_index("threshold")
    assert th.loc[0.1, "n"] == int(Ta / (Ta + 0.5) >= 0.1) + int(Tc / (Tc + 0.5) >= 0.1)


def test_tiny_cumulative_forms_by_hand(tiny):
    xray, ir, opt = tiny
    s2 = 1.01
    pa, pb, pc = _p(0.5, s2), _p(1.5, s2), _p(0.8, s2)
    r = run_onesided(xray, ir, OneSidedOptions(**{**opt.to_dict(), "weight_form": "cumulative"}),
                     backend="numpy", progress=False)
    T = r.candidates.set_index("id_ir")["T"]
    # a: f = f(<10) + half the class (1 of its 2 IR sources at Ks <= 10.2); rho = 1 source
    assert T[0] == pytest.approx((1 / 12) * pa / (1 / 3600), rel=1e-9)
    # b: f(<=12.7) = 1/6, rho = 3 sources (a, d, b)
    assert T[1] == pytest.approx((1 / 6) * pb / (3 / 3600), rel=1e-9)
    # c, Ks missing: fainter than everything -> f = f_lim, rho = all 4 IR sources
    assert T[2] == pytest.approx(0.5 * pc / (4 / 3600), rel=1e-9)
    nb = run_onesided(xray, ir, OneSidedOptions(**{**opt.to_dict(), "weight_form": "cumulative",
                                                   "lookup": "nearest"}), backend="numpy", progress=False)
    T = nb.candidates.set_index("id_ir")["T"]
    assert T[0] == 0.0  # nearest grid point 10.0: f(<10) = 0 (rho floored at 1/area)
    assert T[1] == pytest.approx((1 / 6) * pb / (2 / 3600), rel=1e-9)  # grid 12.5: rho(<12.5) = a, d


def test_em_fractions_are_the_likelihood_fixed_point(field):
    f, r = field
    c, ct = r.candidates, r.class_table.reset_index(drop=True)
    cls = ct.reset_index().set_index("label").loc[c.ks_class, "index"].to_numpy()
    src = c.index_x.to_numpy()
    fe = ct.f_em.to_numpy()
    ratio = c.p_phi_per_arcsec2.to_numpy() / ct.rho_per_arcsec2.to_numpy()[cls]
    n = r.meta["n_xray_considered"]
    considered = r.best.considered.to_numpy()
    assert r.meta["em_converged"] and n == considered.sum() > 0.99 * len(f.a)
    # P from the run reproduce f_em (the EM map's fixed point) ...
    use = considered[src]
    assert np.allclose(np.bincount(cls[use], weights=c.P[use], minlength=len(fe)) / n, fe, atol=1e-8)
    assert r.meta["f_lim"] == pytest.approx(fe.sum()) == pytest.approx(np.mean(1 - r.best.P0[considered]))

    # ... and it has a higher likelihood than the null-trial excess it started from
    def loglik(fc):
        s = np.bincount(src, weights=fc[cls] * ratio, minlength=len(f.a))
        return np.sum(np.log(1 - fc.sum() + s))

    assert loglik(fe) > loglik(ct.f_excess.to_numpy())


# -- (b) the notebook's defects -------------------------------------------------------------
@pytest.fixture(scope="module")
def field():
    f = simulate_field(seed=11, n_a=1200, density_b_arcsec2=0.12, width_deg=0.1, height_deg=0.1)
    return f, run_onesided(f.a, f.b, OneSidedOptions(seed=11, f_mode="em"), backend="numpy", progress=False)


def _quadrature_pairs(f):
    return SkyIndex(f.b.ra, f.b.dec, 2.1).query(f.a.ra, f.a.dec, f.a.sigma_arcsec, np.full(len(f.b), 0.1))


def test_defect1_missing_ks_stays_missing():
    f = simulate_field(seed=12, n_a=600, density_b_arcsec2=0.1, width_deg=0.08, height_deg=0.08)
    ks = f.b.mags["Ks"].copy()
    ks[np.random.default_rng(0).uniform(size=len(ks)) < 0.3] = np.nan
    ir = Catalogue("ir", f.b.ra, f.b.dec, cov=f.b.cov, mags={"Ks": ks})
    r = run_onesided(f.a, ir, OneSidedOptions(seed=1, sweep_radii_arcsec=()), backend="numpy", progress=False)
    pr = _quadrature_pairs(f)
    # ours: every real pair is counted, the missing ones in their own row; no Ks = 0 anywhere
    assert r.counts["n_real"].sum() == len(pr)
    assert r.counts.set_index("label").loc["Ks missing", "n_real"] == np.isnan(ks[pr.j]).sum() > 0
    assert not np.any(r.best["ks"] == 0) and not np.any(r.candidates["ks"] == 0)
    assert r.best["ks"].isna().sum() > r.best["n_candidates"].eq(0).sum()  # best matches with Ks missing
    # the notebook: missing -> 0, then binned 6.0-17.5: those pairs vanish from the counts,
    # and its best-match table reports Ks = 0 "matches"
    nb_ks = np.nan_to_num(ks, nan=0.0)[pr.j]
    nb_counts = pd.cut(nb_ks, bins=np.arange(6.0, 18.0, 0.5), right=False).value_counts()
    assert nb_counts.sum() < len(pr) and np.sum(nb_ks == 0) > 0


def _notebook_probabilities(f, pr, ks_pairs, f_lim_mode="notebook"):
    """The notebook's section-5 arithmetic (p per rad^2, f over matched sources, no null)."""
    grid = np.arange(6.0, 17.6, 0.5)
    ks0 = np.nan_to_num(ks_pairs, nan=0.0)
    matched = np.unique(pr.i)
    f_k = np.array([len(np.unique(pr.i[ks0 <= k])) / len(matched) for k in grid])
    ir_ks = np.nan_to_num(f.b.mags["Ks"], nan=0.0)
    area = f.spec.area_arcsec2
    rho = np.array([np.sum(ir_ks <= k) / area for k in grid])
    g = np.abs(np.clip(ks0, grid[0], grid[-1])[:, None] - grid[None, :]).argmin(axis=1)
    s_rad = np.sqrt(f.a.sigma_arcsec[pr.i] ** 2 + 0.01) / ARCSEC_PER_RAD
    p_rad = np.exp(-0.5 * (pr.sep_arcsec / ARCSEC_PER_RAD / s_rad) ** 2) / (2 * np.pi * s_rad**2)
    T = f_k[g] / np.maximum(rho[g], 1e-30) * p_rad
    f_lim = f_k[-1]
    S = np.bincount(pr.i, weights=T, minlength=len(f.a))[matched]
    P = T / (np.bincount(pr.i, weights=T, minlength=len(f.a))[pr.i] + 1 - f_lim)
    P0 = (1 - f_lim) / (S + 1 - f_lim)
    return T, P, P0, f_lim


def test_defect2_units_agree(field):
    f, r = field
    pr = _quadrature_pairs(f)
    T_nb, P_nb, P0_nb, _ = _notebook_probabilities(f, pr, f.b.mags["Ks"][pr.j])
    # notebook: p per rad^2 over rho per arcsec^2 -> T ~ 4e10 too large, P0 ~ 1e-12
    assert np.median(T_nb[T_nb > 0]) > 1e8 and np.median(P0_nb) < 1e-8
    n1 = np.bincount(pr.i, minlength=len(f.a))
    one = (n1[pr.i] == 1) & (T_nb > 0)
    assert np.all(P_nb[one] > 1 - 1e-6)  # any lone candidate is "certain"
    correct = f.truth[pr.i] == pr.j
    assert correct[P_nb > 0.99].mean() < 0.5  # ...and mostly wrong
    # ours: p(phi) per arcsec^2 like rho (the notebook's is 4.25e10 larger for the same pair),
    # P0 spans (0, 1] and P_best is calibrated
    c = r.candidates
    s = c.sigma_arcsec.to_numpy()
    assert np.all(c.p_phi_per_arcsec2 <= 1 / (2 * np.pi * s**2) * (1 + 1e-12))
    assert ARCSEC_PER_RAD**2 == pytest.approx(4.25e10, rel=0.01)
    assert 0.1 < np.median(r.best["P0"]) < 1
    b = r.best[r.best.n_candidates > 0]
    ok = b.index_ir.to_numpy() == f.truth[b.index_x.to_numpy()]
    hi = b.P_best.to_numpy() > 0.9
    assert abs(ok[hi].mean() - b.P_best.to_numpy()[hi].mean()) < 0.1


def test_defect3_f_over_all_sources_minus_the_null(field):
    f, r = field
    true_frac = np.mean(f.truth >= 0)
    pr = _quadrature_pairs(f)
    _, _, _, f_lim_nb = _notebook_probabilities(f, pr, f.b.mags["Ks"][pr.j])
    assert abs(f_lim_nb - true_frac) > 0.4  # matched-only denominator: ~1
    assert abs(r.meta["f_lim"] - true_frac) < 0.06  # 'em' refinement
    # the default 'excess' estimator (null-subtracted, all sources in the denominator)
    r_exc = run_onesided(f.a, f.b, OneSidedOptions(seed=11, sweep_radii_arcsec=()), backend="numpy",
                         progress=False)
    assert r_exc.meta["f_mode"] == "excess"
    assert abs(r_exc.meta["f_lim"] - true_frac) < 0.1
    # Without the null subtraction f(K) follows the field counts: between Ks 14 and 17.5
    # the raw fraction grows by chance matches, while few counterparts lie there.
    ft = r.f_table.set_index("label")
    ks_cp = f.b.mags["Ks"][f.truth[f.truth >= 0]]
    true_rise = np.sum((ks_cp >= 14) & (ks_cp < 17.5)) / len(f.a)
    rise = {c: ft.loc["Ks < 17.5", c] - ft.loc["Ks < 14", c] for c in ("f_raw", "f_excess", "f_em")}
    assert true_rise < 0.05 and rise["f_raw"] > true_rise + 0.1
    assert rise["f_excess"] < rise["f_raw"] - 0.05  # the null removes most of it (noisy: 1-sigma pairs)
    assert abs(rise["f_em"] - true_rise) < 0.05


def test_defect4_candidates_from_several_sigma(field):
    f, r = field
    has = f.truth >= 0
    cand = set(zip(r.candidates.index_x, r.candidates.index_ir))
    held = np.mean([(i, f.truth[i]) in cand for i in np.flatnonzero(has)])
    nb = run_onesided(f.a, f.b, OneSidedOptions.from_preset("notebook", seed=11, sweep_radii_arcsec=()),
                      backend="numpy", progress=False)
    cand1 = set(zip(nb.candidates.index_x, nb.candidates.index_ir))
    held1 = np.mean([(i, f.truth[i]) in cand1 for i in np.flatnonzero(has)])
    assert 0.33 < held1 < 0.46  # a 2-D Gaussian's 1-sigma circle: 39 %
    assert held > 0.99


def test_defect5_trial_scatter_uses_ddof1(field):
    _, r = field
    assert np.allclose(r.counts["rand_std"], r.trial_counts.std(axis=0, ddof=1), equal_nan=True)
    # ddof=0 underestimates the variance by (T-1)/T: over many 5-trial sets of Poisson(10)
    x = np.random.default_rng(3).poisson(10.0, size=(20000, 5))
    assert x.var(axis=1, ddof=0).mean() == pytest.approx(8.0, rel=0.03)
    assert x.var(axis=1, ddof=1).mean() == pytest.approx(10.0, rel=0.03)


def test_defect6_annulus_not_disk(field):
    f, r = field
    rmin, rmax = r.meta["shift_r_min_arcsec"], r.meta["shift_r_max_arcsec"]
    assert rmin >= 5 * r.meta["quadrature_radius_max_arcsec"] - 1e-9 and rmax == 2 * rmin
    assert r.shifts.r_arcsec.between(rmin, rmax).all()
    dx, dy, rr = annulus_offsets(np.random.default_rng(1), 200000, 10.0, 20.0)
    assert rr.min() >= 10.0 and rr.max() <= 20.0
    assert np.allclose(np.hypot(dx, dy), rr)
    u = (rr**2 - 100.0) / 300.0  # area-uniform: r^2 uniform
    assert abs(u.mean() - 0.5) < 0.005 and abs(np.mean(u < 0.25) - 0.25) < 0.005
    # the notebook's null: every IR source jittered inside a disk.  Small offsets keep true
    # counterparts, so its "chance" rate is inflated; at the sweep's 5" disk by many sigma.
    idx = SkyIndex(f.b.ra, f.b.dec, 2.1)
    rng = np.random.default_rng(2)
    sx, sir = f.a.sigma_arcsec, np.full(len(f.b), 0.1)
    disk, ann = [], []
    for _ in range(10):
        rad = np.sqrt(rng.uniform(size=len(f.b))) * 5.0
        ph = rng.uniform(0, 2 * np.pi, len(f.b))
        bra, bdec = xyz_to_radec(offset_points(f.b.xyz, rad * np.cos(ph), rad * np.sin(ph)))
        disk.append(len(SkyIndex(bra, bdec, 2.1).query(f.a.ra, f.a.dec, sx, sir)))
        ddx, ddy, _ = annulus_offsets(rng, len(f.a), rmin, rmax)
        q = offset_points(f.a.xyz, ddx, ddy)
        ann.append(len(idx.query(*xyz_to_radec(q), sx, sir, xyz=q)))
    assert np.mean(disk) - np.mean(ann) > 4 * np.sqrt(np.var(disk, ddof=1) / 10 + np.var(ann, ddof=1) / 10)


# -- geometry ---------------------------------------------------------------------------------
def test_ir_shift_equals_inverse_query_shift():
    f = simulate_field(seed=4, n_a=300, density_b_arcsec2=0.05, width_deg=0.05, height_deg=0.05)
    R = rotation_for_offset(mean_direction(f.a.xyz), 13.0, -7.0)
    moved_ir = f.b.xyz @ R.T  # IR rotated by R
    a = SkyIndex(*xyz_to_radec(moved_ir), 3.0, xyz=moved_ir).query(f.a.ra, f.a.dec, 3.0)
    q = f.a.xyz @ R  # queries rotated by R^T
    b = SkyIndex(f.b.ra, f.b.dec, 3.0, xyz=f.b.xyz).query(*xyz_to_radec(q), 3.0, xyz=q)
    assert np.array_equal(a.i, b.i) and np.array_equal(a.j, b.j)
    assert np.allclose(a.sep_arcsec, b.sep_arcsec, atol=1e-9)
    c = mean_direction(f.a.xyz)
    moved = 2 * np.arcsin(np.linalg.norm(R @ c - c) / 2) * ARCSEC_PER_RAD
    assert moved == pytest.approx(np.hypot(13, 7), rel=1e-9)


def test_offset_points_moves_by_the_offset():
    p = radec_to_xyz([10.0, 200.0], [-60.0, 30.0])
    q = offset_points(p, [3.0, 0.0], [4.0, -2.0])
    sep = 2 * np.arcsin(np.linalg.norm(p - q, axis=1) / 2) * ARCSEC_PER_RAD
    assert np.allclose(sep, [5.0, 2.0], rtol=1e-9)
    ra, dec = xyz_to_radec(q)
    assert dec[1] < 30.0 and abs(ra[1] - 200.0) < 1e-9


def test_coverage_grid_area_and_weights():
    f = simulate_field(seed=8, n_a=10, density_b_arcsec2=0.1, width_deg=0.1, height_deg=0.05)
    g = CoverageGrid(f.b.xyz, 10.0)
    assert g.area_arcsec2 == pytest.approx(f.spec.area_arcsec2, rel=0.015)
    inside = g.weight(f.b.xyz)
    assert np.mean(inside > 0) == 1.0
    far = radec_to_xyz([RA0 + 1.0, RA0], [DEC0, DEC0 + 0.2])
    assert np.all(g.weight(far) == 0)


def test_edge_correction_tracks_the_true_offfield_fraction():
    f = simulate_field(seed=9, n_a=1000, density_b_arcsec2=0.12, width_deg=0.1, height_deg=0.1)
    r = run_onesided(f.a, f.b, OneSidedOptions(seed=9, n_trials=8, sweep_radii_arcsec=()), backend="numpy",
                     progress=False)
    c = mean_direction(f.a.xyz)
    half = f.spec.width_deg / 2 / np.cos(np.radians(f.spec.dec0_deg))
    for _, s in r.shifts.iterrows():
        ra, dec = xyz_to_radec(f.a.xyz @ rotation_for_offset(c, s.dx_arcsec, s.dy_arcsec))
        on = (np.abs(ra - f.spec.ra0_deg) <= half) & (np.abs(dec - f.spec.dec0_deg) <= f.spec.height_deg / 2)
        assert s.edge_scale == pytest.approx(1 / on.mean(), rel=0.025)
        assert s.edge_scale > 1.02


# -- statistics helpers -----------------------------------------------------------------------
def test_isotonic_fit():
    assert np.allclose(isotonic_increasing([1, 3, 2, 4]), [1, 2.5, 2.5, 4])
    assert np.allclose(isotonic_increasing([5, 1, 0]), [2, 2, 2])
    y = np.random.default_rng(0).normal(size=50).cumsum()
    fit = isotonic_increasing(y)
    assert np.all(np.diff(fit) >= -1e-12) and fit.mean() == pytest.approx(y.mean())


def test_significance_is_sane_for_tiny_counts():
    # one real match over a trial mean of 0.03 is not a 5-sigma detection
    assert significance(1, 0.03, 0.18, 30) < 2
    # large counts: ~ (n - mu) / sqrt(max(mu, var) (1 + 1/T)), to O((n - mu) / 4 mu)
    assert significance(1100, 1000, 20, 30) == pytest.approx(100 / np.sqrt(1000 * 31 / 30), rel=0.03)
    assert significance(1100, 1000, 50, 30) == pytest.approx(100 / np.sqrt(2500 * 31 / 30), rel=0.03)


# -- options ----------------------------------------------------------------------------------
def test_presets_and_validation():
    nb = OneSidedOptions(preset="notebook")
    assert (nb.colour_remove, nb.candidate_nsigma, nb.f_mode, nb.weight_form) == ("red", 1.0, "raw", "cumulative")
    nb2 = OneSidedOptions.from_preset("notebook", candidate_nsigma=5.0)
    assert nb2.candidate_nsigma == 5.0 and nb2.f_mode == "raw"
    d = OneSidedOptions()
    assert d.colour_remove == "blue" and d.candidate_nsigma == 5.0 and len(d.edges) == 24
    assert d.sweep_radii_arcsec == tuple(np.linspace(0, 20, 9)) and d.sweep_trials == 10
    with pytest.raises(ValueError, match="jitter"):
        OneSidedOptions(shift_mode="jitter", shift_target="ir")
    with pytest.raises(ValueError):
        OneSidedOptions(f_mode="matched")
    with pytest.raises(ValueError):
        OneSidedOptions(n_trials=1)
    with pytest.raises(ValueError, match="area"):
        OneSidedOptions(footprint="none")
    with pytest.raises(ValueError):
        OneSidedOptions(preset="nope")


def test_input_errors():
    f = simulate_field(seed=1, n_a=20, density_b_arcsec2=0.01, width_deg=0.02, height_deg=0.02)
    with pytest.raises(KeyError, match="Kmag"):
        run_onesided(f.a, f.b, OneSidedOptions(ks_band="Kmag"), backend="numpy", progress=False)
    noerr = Catalogue("x", f.a.ra, f.a.dec)
    with pytest.raises(ValueError, match="position errors"):
        run_onesided(noerr, f.b, backend="numpy", progress=False)


# -- modes, determinism, bookkeeping -------------------------------------------------------
@pytest.mark.parametrize("kw", [dict(), dict(shift_target="xray"), dict(shift_mode="jitter", shift_target="xray")])
def test_modes_run_and_every_row_is_reported(kw, backend):
    f = simulate_field(seed=2, n_a=400, density_b_arcsec2=0.08, width_deg=0.06, height_deg=0.06)
    opt = OneSidedOptions(seed=5, n_trials=10, sweep_trials=3, **kw)
    r = run_onesided(f.a, f.b, opt, backend=backend, progress=False)
    assert r.best["index_x"].tolist() == f.a.row.tolist()
    assert r.trial_counts.shape == (10, 26) and len(r.shifts) == 10 and len(r.sweep) == 9
    assert np.allclose(r.best["norm_residual"], 0, atol=1e-12)
    assert (r.candidates["P"].between(0, 1)).all() and (r.best["P0"].between(0, 1)).all()
    assert r.sweep.n_unique_mean.iloc[0] == r.meta["sweep_real"]
    assert r.meta["backend"] == backend.name and r.meta["seed"] == 5
    again = run_onesided(f.a, f.b, opt, backend=backend, progress=False)
    pd.testing.assert_frame_equal(r.best, again.best)
    other = run_onesided(f.a, f.b, OneSidedOptions(seed=6, n_trials=10, sweep_trials=3, **kw),
                         backend=backend, progress=False)
    assert not np.array_equal(r.trial_counts_raw, other.trial_counts_raw)


def test_backends_agree(gpu_backend):
    f = simulate_field(seed=3, n_a=800, density_b_arcsec2=0.12, width_deg=0.08, height_deg=0.08)
    opt = OneSidedOptions(seed=3)
    a = run_onesided(f.a, f.b, opt, backend="numpy", progress=False)
    b = run_onesided(f.a, f.b, opt, backend=gpu_backend, progress=False)
    assert np.array_equal(a.trial_counts_raw, b.trial_counts_raw)
    assert np.array_equal(a.counts["n_real"], b.counts["n_real"])
    assert np.array_equal(a.sweep_counts, b.sweep_counts)
    assert np.array_equal(a.candidates[["index_x", "index_ir"]], b.candidates[["index_x", "index_ir"]])
    assert np.array_equal(a.best["index_ir"], b.best["index_ir"])
    for col in ("P", "T", "sep_arcsec"):
        assert np.allclose(a.candidates[col], b.candidates[col], rtol=1e-12, atol=0)
    assert np.allclose(a.best["P0"], b.best["P0"], rtol=1e-12, atol=0)


def test_progress_callback_sees_every_trial_query():
    f = simulate_field(seed=6, n_a=200, density_b_arcsec2=0.05, width_deg=0.05, height_deg=0.05)
    seen = []
    r = run_onesided(f.a, f.b, OneSidedOptions(seed=1, n_trials=5, sweep_trials=2), backend="numpy",
                     progress=seen.append)
    assert sum(seen) == r.meta["n_queries"] == 200 * (1 + 5 + 9 * 2)
