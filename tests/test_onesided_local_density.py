"""rho_mode='local': the IR density about each X-ray source instead of one global value.

Fixed seeds, NumPy backend, a few seconds in all.  The two-density field is two
simulated fields on adjacent RA ranges (0.05 and 0.2 IR sources per arcsec^2).
Its calibration is judged within each half: pooled over the whole field, the
global rho's over-confidence in the dense half and under-confidence in the sparse
half fall in the same P bins and cancel (pooled ECE ~0.02 either way).
"""
import numpy as np
import pytest

from gpumatch.catalogue import ARCSEC_PER_DEG, Catalogue
from gpumatch.onesided import OneSidedOptions, run_onesided
from gpumatch.onesided.geometry import CoverageGrid, annulus_footprint_area, offset_points
from gpumatch.onesided.probability import local_rho
from gpumatch.onesided.stats import shrunk_density
from gpumatch.simulate import simulate_field

DEC0 = -29.0
RA0 = 266.4
FAST = dict(sweep_radii_arcsec=(), n_trials=20)


def _ece(p, correct, nbins=10):
    """Expected calibration error over equal-width probability bins."""
    b = np.clip((p * nbins).astype(int), 0, nbins - 1)
    return sum(np.sum(b == k) / len(p) * abs(p[b == k].mean() - correct[b == k].mean())
               for k in range(nbins) if np.any(b == k))


def _concat(cats, name):
    return Catalogue(name, np.concatenate([c.ra for c in cats]), np.concatenate([c.dec for c in cats]),
                     cov=np.concatenate([c.cov for c in cats]),
                     mags={k: np.concatenate([c.mags[k] for c in cats]) for k in cats[0].mags},
                     ids=np.arange(sum(len(c) for c in cats), dtype=np.int64))


def _two_density(seed, n_a=1500, dens=(0.05, 0.2), width=0.08, height=0.1):
    """Sparse half (RA < RA0) then dense half; truth remapped to the concatenated IR rows."""
    dra = width / 2 / np.cos(np.radians(DEC0))
    f1 = simulate_field(seed=seed, ra0_deg=RA0 - dra, dec0_deg=DEC0, width_deg=width, height_deg=height,
                        n_a=n_a, density_b_arcsec2=dens[0])
    f2 = simulate_field(seed=seed + 1000, ra0_deg=RA0 + dra, dec0_deg=DEC0, width_deg=width,
                        height_deg=height, n_a=n_a, density_b_arcsec2=dens[1])
    truth = np.concatenate([f1.truth, np.where(f2.truth >= 0, f2.truth + len(f1.b), -1)])
    half = np.repeat([0, 1], [len(f1.a), len(f2.a)])
    return _concat([f1.a, f2.a], "xray"), _concat([f1.b, f2.b], "ir"), truth, half


def _scored(res, truth):
    b = res.best
    has = b.n_candidates.to_numpy() > 0
    correct = b.index_ir.to_numpy() == truth[b.index_x.to_numpy()]
    return b.P_best.to_numpy(), correct, has


@pytest.fixture(scope="module")
def two_density_runs():
    """(P, correct, has, half) per mode, two seeds stacked (f_mode='em')."""
    out = {"global": [], "local": []}
    for seed in (1, 3):  # typical seeds (over 5 pairs, local's per-half ECE 0.016-0.028, global's 0.032-0.041)
        a, b, truth, half = _two_density(seed)
        for mode in out:
            r = run_onesided(a, b, OneSidedOptions(seed=seed, f_mode="em", rho_mode=mode, **FAST),
                             backend="numpy", progress=False)
            out[mode].append((*_scored(r, truth), half, r))
    return out


def _per_half(runs):
    p, c, has, half = (np.concatenate([r[k] for r in runs]) for k in range(4))
    eces, biases = [], []
    for h in (0, 1):
        s = has & (half == h)
        eces.append(_ece(p[s], c[s]))
        biases.append(p[s].mean() - c[s].mean())
    pooled = _ece(p[has], c[has])
    return np.array(eces), np.array(biases), pooled


def test_local_rho_calibrates_a_two_density_field(two_density_runs):
    e_g, b_g, pooled_g = _per_half(two_density_runs["global"])
    e_l, b_l, pooled_l = _per_half(two_density_runs["local"])
    # global: the sparse half under-confident, the dense half over-confident
    assert b_g[0] < -0.02 and b_g[1] > 0.015
    # local: per-half ECE clearly lower and small; no systematic split between the halves
    assert e_l.mean() <= 0.05
    assert e_l.mean() < e_g.mean() - 0.005
    assert e_l.max() < e_g.max()
    assert abs(b_l[1] - b_l[0]) < 0.5 * (b_g[1] - b_g[0])
    assert pooled_l <= 0.05 and pooled_g <= 0.05  # pooled, both look fine (the errors cancel)


def test_local_density_follows_the_halves(two_density_runs):
    for p, c, has, half, r in two_density_runs["local"]:
        b = r.best
        x = (b.ra.to_numpy() - RA0) * np.cos(np.radians(DEC0)) * ARCSEC_PER_DEG
        far = np.abs(x) > r.meta["rho_local_radius_arcsec"]  # annulus does not reach the step
        rho = b.rho_local_per_arcsec2.to_numpy()
        for h, true in ((0, 0.05), (1, 0.2)):
            s = far & (half == h) & b.considered.to_numpy()
            assert abs(np.median(rho[s]) / true - 1) < 0.05
        assert r.meta["rho_mode"] == "local" and r.meta["rho_local_radius_arcsec"] == 60.0
        assert 0.3 < r.meta["rho_local_over_mean_min"] < 0.6 < 1.4 < r.meta["rho_local_over_mean_max"] < 2.0
        cand = r.candidates
        assert np.all(cand.rho_k_per_arcsec2.to_numpy() > 0)
        assert np.all(np.isfinite(cand.P.to_numpy()))


@pytest.mark.parametrize("f_mode", ["em", "excess"])
@pytest.mark.parametrize("seed", [21, 22])
def test_local_rho_stays_calibrated_on_a_uniform_field(seed, f_mode):
    f = simulate_field(seed=seed, n_a=1200, density_b_arcsec2=0.12, width_deg=0.1, height_deg=0.1)
    r = run_onesided(f.a, f.b, OneSidedOptions(seed=seed, f_mode=f_mode, rho_mode="local", **FAST),
                     backend="numpy", progress=False)
    p, correct, has = _scored(r, f.truth)
    assert _ece(p[has], correct[has]) <= 0.1
    assert abs(np.mean(1 - r.best.P0) - np.mean(f.truth >= 0)) <= 0.05
    rho = r.best.rho_local_per_arcsec2.to_numpy()[r.best.considered.to_numpy()]
    assert abs(np.median(rho) / 0.12 - 1) < 0.03


def test_edge_sources_are_not_biased_low():
    """The annulus area on the footprint, not the full annulus, divides the counts."""
    f = simulate_field(seed=5, n_a=1500, density_b_arcsec2=0.1, width_deg=0.1, height_deg=0.1)
    r = run_onesided(f.a, f.b, OneSidedOptions(seed=5, rho_mode="local", **FAST), backend="numpy",
                     progress=False)
    b = r.best
    cosd = np.cos(np.radians(f.spec.dec0_deg))
    x = (b.ra.to_numpy() - f.spec.ra0_deg) * cosd * ARCSEC_PER_DEG
    y = (b.dec.to_numpy() - f.spec.dec0_deg) * ARCSEC_PER_DEG
    half = 0.05 * ARCSEC_PER_DEG
    d_edge = np.minimum(half - np.abs(x), half - np.abs(y))
    edge = (d_edge > 0) & (d_edge < 20)  # the annulus (R = 60") is 30-50 % off the field
    interior = d_edge > 70
    assert edge.sum() > 100 and interior.sum() > 100
    n, area = b.n_ir_local.to_numpy(), b.area_local_arcsec2.to_numpy()
    rho = b.rho_local_per_arcsec2.to_numpy()
    full = np.pi * 60.0**2  # upper bound of the annulus area
    assert np.mean(n[edge] / full) / 0.1 < 0.8  # a full-annulus density would be biased low ...
    assert abs(np.mean(n[edge] / area[edge]) / 0.1 - 1) < 0.05  # ... the footprint area is not
    assert abs(np.mean(rho[edge]) / np.mean(rho[interior]) - 1) < 0.05
    assert np.all(area[edge] < 0.85 * full) and np.all(area[interior] > 0.9 * full)
    corner = (half - np.abs(x) < 30) & (half - np.abs(y) < 30) & (d_edge > 0)  # ~3/4 off the field
    assert corner.sum() > 20
    assert abs(np.mean(n[corner] / area[corner]) / 0.1 - 1) < 0.08


def test_annulus_footprint_area_at_edges_and_corners():
    rng = np.random.default_rng(3)
    ra0, dec0, side = 150.0, 10.0, 0.1  # deg; 0.1 IR per arcsec^2
    n = int(0.1 * (side * ARCSEC_PER_DEG) ** 2)
    dec = dec0 + rng.uniform(-side / 2, side / 2, n)
    ra = ra0 + rng.uniform(-side / 2, side / 2, n) / np.cos(np.radians(dec0))
    grid = CoverageGrid(Catalogue("ir", ra, dec).xyz)
    c = Catalogue("c", [ra0], [dec0]).xyz
    h = side / 2 * ARCSEC_PER_DEG
    pts = np.concatenate([c, offset_points(c, h, 0.0), offset_points(c, h, h), offset_points(c, 3 * h, 0.0)])
    a = annulus_footprint_area(grid, pts, 5.0, 60.0)
    full = np.pi * (60.0**2 - 5.0**2)
    np.testing.assert_allclose(a[:3] / full, [1.0, 0.5, 0.25], atol=0.04)
    assert a[3] == 0.0
    np.testing.assert_allclose(annulus_footprint_area(None, pts, 5.0, 60.0), full)
    with pytest.raises(ValueError):
        annulus_footprint_area(grid, pts, 60.0, 60.0)


def test_shrinkage_rule_is_positive_and_tends_to_local_and_prior():
    assert shrunk_density(0, 0.0, 0.3, 10) == pytest.approx(0.3)  # off the footprint: the prior
    assert shrunk_density(0, 1e4, 0.3, 10) > 0  # no sources: small but positive
    assert shrunk_density(1e5, 1e4, 0.3, 10) == pytest.approx(10.0, rel=5e-3)  # many: the local value
    counts = np.array([[0, 0, 0], [500, 400, 100], [5, 4, 1]])
    area = np.array([0.0, 1000.0, 10.0])
    rho_i, rho_c = local_rho(counts, area, np.array([50, 40, 10]), 0.1, 10.0,
                             src=np.array([0, 1, 1, 2]), cls=np.array([2, 0, 2, 1]))
    assert rho_i[0] == pytest.approx(0.1) and rho_i[1] == pytest.approx(1010 / 1100)
    assert np.all(rho_c > 0)
    assert rho_c[0] == pytest.approx(0.1 * 0.1)  # off the footprint: the global class density
    assert rho_c[1] == pytest.approx(510 / (1000 + 10 / (0.5 * rho_i[1])))
    _, scaled = local_rho(counts, area, np.array([50, 40, 10]), 0.1, 10.0, src=np.array([1]),
                          cls=np.array([2]), per_class=False)
    assert scaled[0] == pytest.approx(0.1 * rho_i[1])


def test_default_is_global_and_unchanged():
    f = simulate_field(seed=7, n_a=300, density_b_arcsec2=0.05, width_deg=0.05, height_deg=0.05)
    assert OneSidedOptions().rho_mode == "global"
    r = run_onesided(f.a, f.b, OneSidedOptions(seed=7, **FAST), backend="numpy", progress=False)
    g = run_onesided(f.a, f.b, OneSidedOptions(seed=7, rho_mode="global", rho_local_radius_arcsec=10.0,
                                               **FAST), backend="numpy", progress=False)
    np.testing.assert_array_equal(r.candidates.P.to_numpy(), g.candidates.P.to_numpy())
    assert r.meta["rho_mode"] == "global" and "rho_local_radius_arcsec" not in r.meta
    # the global binned weights: one rho per class, IR sources of the class over the area
    ct = r.class_table.set_index("label")
    c = r.candidates
    np.testing.assert_allclose(c.rho_k_per_arcsec2.to_numpy(),
                               ct.loc[c.ks_class, "rho_per_arcsec2"].to_numpy(), rtol=1e-15)
    np.testing.assert_allclose(c["T"].to_numpy(), (c.f_k * c.p_phi_per_arcsec2 / c.rho_k_per_arcsec2).to_numpy(),
                               rtol=1e-15)
    for col in ("rho_local_per_arcsec2", "n_ir_local", "area_local_arcsec2"):
        assert r.best[col].isna().all()


def test_local_with_cumulative_form_and_no_footprint():
    f = simulate_field(seed=8, n_a=300, density_b_arcsec2=0.05, width_deg=0.05, height_deg=0.05)
    g = run_onesided(f.a, f.b, OneSidedOptions(seed=8, weight_form="cumulative", **FAST), backend="numpy",
                     progress=False)
    r = run_onesided(f.a, f.b, OneSidedOptions(seed=8, weight_form="cumulative", rho_mode="local", **FAST),
                     backend="numpy", progress=False)
    ratio = r.candidates.rho_k_per_arcsec2.to_numpy() / g.candidates.rho_k_per_arcsec2.to_numpy()
    idx = r.candidates.index_x.to_numpy()
    np.testing.assert_allclose(ratio, r.best.rho_local_per_arcsec2.to_numpy()[idx] / r.meta["rho_mean_per_arcsec2"])
    area = f.spec.area_arcsec2
    n = run_onesided(f.a, f.b, OneSidedOptions(seed=8, rho_mode="local", footprint="none", area_arcsec2=area,
                                               **FAST), backend="numpy", progress=False)
    assert "no edge correction" in n.meta["rho_local_area_method"]
    assert np.all(n.candidates.rho_k_per_arcsec2.to_numpy() > 0)


def test_options_are_checked():
    with pytest.raises(ValueError, match="rho_mode"):
        OneSidedOptions(rho_mode="adaptive")
    with pytest.raises(ValueError, match="rho_local_radius_arcsec"):
        OneSidedOptions(rho_local_radius_arcsec=0.0)
    with pytest.raises(ValueError, match="rho_local_prior_count"):
        OneSidedOptions(rho_local_prior_count=-1.0)
    assert OneSidedOptions(rho_mode="local").to_dict()["rho_mode"] == "local"
