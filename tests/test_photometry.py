"""Densities and photometric likelihoods: recovery on a simulated field with known truth,
physical estimates in a Galactic-Centre crowded field, missing magnitudes, switches."""
import numpy as np
import pytest

from gpumatch.islands import SkyBox, build_islands, find_islands, k_of
from gpumatch.likelihood import pair_ratios
from gpumatch.photometry import (Photometry, _bin_index, _FieldSample, _GaussMix2, _isotonic,
                                 _posterior_p, default_bins, estimate_photometry)
from gpumatch.simulate import simulate_field


def field_box(spec) -> SkyBox:
    """The exact simulated field (positions are drawn uniform inside it)."""
    half_ra = spec.width_deg / 2 / np.cos(np.radians(spec.dec0_deg))
    return SkyBox(spec.ra0_deg - half_ra, spec.ra0_deg + half_ra,
                  spec.dec0_deg - spec.height_deg / 2, spec.dec0_deg + spec.height_deg / 2)


def run(seed, **kw):
    sim = simulate_field(seed=seed, **kw)
    isl = build_islands(sim.a, sim.b, coverage=field_box(sim.spec), backend="numpy")
    ph = estimate_photometry(sim.a, sim.b, isl, "Xmag", "Ks", n_area=50_000, backend="numpy")
    return sim, isl, ph


def binned_pdf(m, edges):
    m = m[np.isfinite(m)]
    h = np.bincount(_bin_index(edges, m), minlength=len(edges) - 1).astype(float)
    return h / h.sum() / np.diff(edges)


def assert_physical(ph: Photometry):
    assert 0.0 <= ph.N_c <= min(ph.N_a_total, ph.N_b_total) * (1 + 1e-12)
    assert ph.N_a >= 0 and ph.N_b >= 0
    assert ph.N_a <= ph.N_a_total and ph.N_b <= ph.N_b_total
    if ph.use_photometry:
        da, db = np.diff(ph.bins_a), np.diff(ph.bins_b)
        for arr in (ph.c, ph.f_a, ph.f_b):
            assert np.all(np.isfinite(arr)) and np.all(arr > 0)
        assert (ph.c * da[:, None] * db[None, :]).sum() == pytest.approx(1.0, abs=1e-12)
        assert (ph.f_a * da).sum() == pytest.approx(1.0, abs=1e-12)
        assert (ph.f_b * db).sum() == pytest.approx(1.0, abs=1e-12)


@pytest.fixture(scope="module")
def recovered():
    return run(3, n_a=3000, width_deg=0.3, height_deg=0.3)


def test_recovers_densities(recovered):
    """Tolerances (seed 3, 3000 A sources, 1125 true pairs): N_c within 8 %, field
    densities within 5 % (A) and 1 % (B); the reported N_c uncertainty is honest."""
    sim, isl, ph = recovered
    area = isl.coverage.area_arcsec2()
    n_c = (sim.truth >= 0).sum() / area
    assert ph.N_c == pytest.approx(n_c, rel=0.08)
    assert abs(ph.N_c - n_c) < 3 * ph.diagnostics["N_c_sd"]
    assert ph.N_a == pytest.approx(((sim.truth < 0).sum()) / area, rel=0.05)
    assert ph.N_b == pytest.approx((sim.b.ra.size - (sim.truth >= 0).sum()) / area, rel=0.01)
    assert ph.diagnostics["f_a_method"] == "mask" and ph.diagnostics["f_b_method"] == "mask"
    assert_physical(ph)


def test_recovers_field_distributions(recovered):
    """f_a, f_b against the true unmatched populations (L1 distance of the pdfs)."""
    sim, isl, ph = recovered
    has = sim.truth >= 0
    field_b = np.ones(sim.b.ra.size, bool)
    field_b[sim.truth[has]] = False
    fa = binned_pdf(sim.a.mags["Xmag"][~has], ph.bins_a)
    fb = binned_pdf(sim.b.mags["Ks"][field_b], ph.bins_b)
    assert np.sum(np.abs(ph.f_a - fa) * np.diff(ph.bins_a)) < 0.2   # ~1100 field-like A sources
    assert np.sum(np.abs(ph.f_b - fb) * np.diff(ph.bins_b)) < 0.02  # ~55,000 B sources


def mass_above(ph: Photometry, m: float) -> float:
    """Mass of c's B-magnitude marginal in the bins starting at or fainter than m (mag)."""
    return float((ph.c_b_marginal * np.diff(ph.bins_b))[ph.bins_b[:-1] >= m - 1e-9].sum())


def test_recovers_counterpart_distribution(recovered):
    """The simulated counterparts have Ks ~ N(12, 1.5) and Xmag = Ks + 4 + N(0, 0.5): c must
    put its mass on that ridge, with the right marginals -- including ~ nothing at faint Ks,
    where the field stars (dN/dKs ~ 10^(0.3 Ks)) dominate -- and eta must separate true pairs
    from chance ones.  (The eq 32 recursion's shape, c_model='recursion', gives 0.87 on the
    ridge, +0.29 mag on the mean Ks and 6.8 % of the mass at Ks >= 15.)"""
    sim, isl, ph = recovered
    ca = 0.5 * (ph.bins_a[1:] + ph.bins_a[:-1])
    cb = 0.5 * (ph.bins_b[1:] + ph.bins_b[:-1])
    mass = ph.c * np.diff(ph.bins_a)[:, None] * np.diff(ph.bins_b)[None, :]
    d = ca[:, None] - cb[None, :]
    assert mass[np.abs(d - 4.0) < 1.0].sum() > 0.9  # truth: 0.95
    assert (mass * d).sum() == pytest.approx(4.0, abs=0.1)
    has = sim.truth >= 0
    ks_cp = sim.b.mags["Ks"][sim.truth[has]]
    cb_true = binned_pdf(ks_cp, ph.bins_b)
    assert np.sum(np.abs(ph.c_b_marginal - cb_true) * np.diff(ph.bins_b)) < 0.3
    assert (ph.c_b_marginal * cb * np.diff(ph.bins_b)).sum() == pytest.approx(ks_cp.mean(), abs=0.15)
    assert mass_above(ph, 15.0) == pytest.approx(np.mean(ks_cp >= 15.0), abs=0.015)  # truth 0.034
    eta, xi = pair_ratios(ph, isl, sim.a.mags["Xmag"], sim.b.mags["Ks"])
    true_pair = sim.truth[isl.ia] == isl.ib
    assert np.median(eta[true_pair]) > 1.0 and np.median(eta[~true_pair]) < -1.0
    assert np.median(xi[true_pair]) > np.median(xi[~true_pair])
    faint_chance = ~true_pair & (sim.b.mags["Ks"][isl.ib] > 15.0)
    assert np.mean(eta[faint_chance] > -0.5) < 0.05
    assert ph.diagnostics["c_mixture"]["K"] == 1  # one Gaussian population: BIC keeps one


def test_faint_background_dominated_bins_get_no_counterparts():
    """The calibration field of tests/test_symmetric_calibration.py with the match's own bins
    (symmetric.counterpart_bins): 2.7 % of the true counterparts have Ks >= 15, where the
    field stars are ~ 70 % of the B catalogue.  The mixture c puts about that much there,
    so chance pairs at faint Ks get eta << 0; the recursion's shape puts several times more
    (its noise in background-dominated bins, made positive by non-negativity)."""
    from gpumatch.symmetric import counterpart_bins

    sim = simulate_field(seed=3, n_a=600, width_deg=0.12, height_deg=0.12, density_b_arcsec2=0.1)
    isl = build_islands(sim.a, sim.b, coverage=field_box(sim.spec), backend="numpy")
    ma, mb = sim.a.mags["Xmag"], sim.b.mags["Ks"]
    n = min(np.isfinite(ma).sum(), np.isfinite(mb).sum())
    kw = dict(bins_a=counterpart_bins(ma, n), bins_b=counterpart_bins(mb, n), n_area=50_000)
    ph = estimate_photometry(sim.a, sim.b, isl, "Xmag", "Ks", **kw)
    rec = estimate_photometry(sim.a, sim.b, isl, "Xmag", "Ks", c_model="recursion", **kw)
    assert_physical(ph)
    assert_physical(rec)
    has = sim.truth >= 0
    ks_cp = mb[sim.truth[has]]
    truth15 = np.mean(ks_cp >= 15.0)
    assert mass_above(ph, 15.0) == pytest.approx(truth15, abs=0.015)
    assert mass_above(rec, 15.0) > 3 * truth15
    mean_ks = (ph.c_b_marginal * np.diff(ph.bins_b) * 0.5 * (ph.bins_b[1:] + ph.bins_b[:-1])).sum()
    assert mean_ks == pytest.approx(ks_cp.mean(), abs=0.15)
    eta, _ = pair_ratios(ph, isl, ma, mb)
    faint_chance = (sim.truth[isl.ia] != isl.ib) & (mb[isl.ib] > 15.0)
    assert np.mean(eta[faint_chance] > -0.5) < 0.05 and np.percentile(eta[faint_chance], 90) < -1.0
    eta_rec, _ = pair_ratios(rec, isl, ma, mb)
    assert np.mean(eta_rec[faint_chance] > -0.5) > 0.1


def two_population_field(seed=3):
    """seed-3 test field with the counterparts redrawn as two populations: half with
    Ks ~ N(10, 0.7), Xmag = Ks + 4, half with Ks ~ N(14.5, 0.6), Xmag = Ks + 1 (scatter 0.4)."""
    sim = simulate_field(seed=seed, n_a=3000, width_deg=0.3, height_deg=0.3)
    rng = np.random.default_rng(seed + 100)
    has = sim.truth >= 0
    n = int(has.sum())
    first = rng.uniform(size=n) < 0.5
    ks = np.where(first, rng.normal(10.0, 0.7, n), rng.normal(14.5, 0.6, n))
    sim.b.mags["Ks"][sim.truth[has]] = ks
    sim.a.mags["Xmag"][has] = ks + np.where(first, 4.0, 1.0) + rng.normal(0.0, 0.4, n)
    return sim


def test_mixture_c_finds_two_populations():
    """Two counterpart populations on different ridges: BIC takes two Gaussians and c
    recovers both marginals and the split between them (the recursion's shape here: L1 0.22
    and 0.14 on the marginals, 0.44 of the mass at Ks < 12.25 for 0.48 true)."""
    sim = two_population_field()
    isl = build_islands(sim.a, sim.b, coverage=field_box(sim.spec), backend="numpy")
    ph = estimate_photometry(sim.a, sim.b, isl, "Xmag", "Ks", n_area=50_000)
    assert_physical(ph)
    assert ph.diagnostics["c_mixture"]["K"] == 2
    has = sim.truth >= 0
    ks_cp, xm_cp = sim.b.mags["Ks"][sim.truth[has]], sim.a.mags["Xmag"][has]
    da, db = np.diff(ph.bins_a), np.diff(ph.bins_b)
    assert np.sum(np.abs(ph.c_b_marginal - binned_pdf(ks_cp, ph.bins_b)) * db) < 0.22  # 0.18
    assert np.sum(np.abs(ph.c_a_marginal - binned_pdf(xm_cp, ph.bins_a)) * da) < 0.11  # 0.07
    bright = (ph.c_b_marginal * db)[ph.bins_b[1:] <= 12.25 + 1e-9].sum()
    assert bright == pytest.approx(np.mean(ks_cp < 12.25), abs=0.02)  # 0.477 vs 0.476


def test_gaussian_mixture_cells_and_split():
    """Cell masses of a Gaussian well inside the grid sum to 1 and give back its mean and
    covariance; the split that starts a fit with one more component keeps the mixture's first two
    moments exactly."""
    e = np.arange(0.0, 20.0001, 0.25)
    gm = _GaussMix2(e, e)
    mu, cov = np.array([10.0, 9.0]), np.array([[1.0, 0.6], [0.6, 0.8]])
    gm.pis, gm.mus, gm.covs = np.ones(1), [mu], [cov]
    M = gm.component_masses()[0]
    assert M.sum() == pytest.approx(1.0, abs=1e-6)
    fit = _GaussMix2(e, e).start(M)  # grouped moments with Sheppard's correction
    assert fit.mus[0] == pytest.approx(mu, abs=1e-3)
    assert fit.covs[0] == pytest.approx(cov, abs=1e-3)
    c = gm.density(gm.component_masses())
    assert (c * 0.25 * 0.25).sum() == pytest.approx(1.0, abs=1e-12)

    def moments(g):
        m = sum(p * u for p, u in zip(g.pis, g.mus))
        s = sum(p * (v + np.outer(u, u)) for p, u, v in zip(g.pis, g.mus, g.covs)) - np.outer(m, m)
        return m, s

    two = gm.split()
    assert two.n_components == 2 and gm.n_components == 1
    for a, b in zip(moments(two), moments(gm)):
        np.testing.assert_allclose(a, b, atol=1e-12)
    assert all(np.all(np.linalg.eigvalsh(v) > 0) for v in two.covs)
    # refitting the split mixture to the one-Gaussian cell masses keeps the moments close
    R = gm.component_masses()[0]
    for _ in range(20):
        two.update(R)
    m2, s2 = moments(two)
    assert m2 == pytest.approx(mu, abs=0.02)


def test_c_model_option(recovered):
    sim, isl, ph = recovered
    rec = estimate_photometry(sim.a, sim.b, isl, "Xmag", "Ks", c_model="recursion", n_area=10_000)
    assert_physical(rec)
    assert "c_mixture" not in rec.diagnostics and ph.diagnostics["c_mixture"]["converged"]
    with pytest.raises(ValueError):
        estimate_photometry(sim.a, sim.b, isl, "Xmag", "Ks", c_model="histogram")


@pytest.mark.parametrize("seed,smin,smax,n_a", [(1, 0.2, 4.0, 300), (2, 4.0, 4.0001, 300),
                                                (3, 0.2, 4.0, 1500)])
def test_crowded_galactic_centre_stays_physical(seed, smin, smax, n_a):
    """0.8 infrared sources per arcsec^2, X-ray errors up to 4": every density physical, c and
    f normalised and positive.  The paper's recursion N_c (reported, not used) can exceed
    the X-ray density here; the mixture estimate cannot."""
    sim, isl, ph = run(seed, n_a=n_a, width_deg=0.05, height_deg=0.05, density_b_arcsec2=0.8,
                       sigma_a_min_arcsec=smin, sigma_a_max_arcsec=smax)
    assert isl.size_stats()["max_n_b"] > 100  # really crowded islands
    assert_physical(ph)
    n_c = (sim.truth >= 0).sum() / isl.coverage.area_arcsec2()
    if smin < 1.0:  # small-error X-ray sources carry the positional information
        assert ph.N_c == pytest.approx(n_c, rel=0.35)
    else:  # none: the estimate is uninformative, and says so
        assert ph.diagnostics["N_c_sd"] > 0.2 * ph.N_a_total
    eta, xi = pair_ratios(ph, isl, sim.a.mags["Xmag"], sim.b.mags["Ks"])
    assert np.all(np.isfinite(eta)) and np.all(np.isfinite(xi))


def test_masked_field_density_option_physical():
    sim = simulate_field(seed=4, n_a=300, width_deg=0.05, height_deg=0.05, density_b_arcsec2=0.8,
                         sigma_a_min_arcsec=0.2, sigma_a_max_arcsec=4.0)
    isl = build_islands(sim.a, sim.b, coverage=field_box(sim.spec), backend="numpy")
    ph = estimate_photometry(sim.a, sim.b, isl, "Xmag", "Ks", field_density="masked", n_area=20_000)
    assert_physical(ph)
    with pytest.raises(ValueError):
        estimate_photometry(sim.a, sim.b, isl, field_density="nope")


def test_photometry_off_gives_ones_and_densities(recovered):
    sim, isl, _ = recovered
    ph = estimate_photometry(sim.a, sim.b, isl, n_area=10_000)
    assert not ph.use_photometry and ph.c is None
    assert ph.c_ab([12.0, np.nan], [14.0, 3.0]).tolist() == [1.0, 1.0]
    assert ph.f_a_of([12.0]).tolist() == [1.0] and ph.f_b_of(np.nan) == 1.0
    assert_physical(ph)
    eta, xi = pair_ratios(ph, isl, sim.a.mags["Xmag"], sim.b.mags["Ks"])
    assert np.all(eta == 0)


def test_missing_magnitudes_rule():
    sim = simulate_field(seed=6, n_a=800, width_deg=0.15, height_deg=0.15)
    mb = sim.b.mags["Ks"].copy()
    rng = np.random.default_rng(0)
    mb[rng.uniform(size=mb.size) < 0.2] = np.nan
    sim.b.mags["Ks"] = mb
    sim.a.mags["Xmag"][:50] = np.nan
    isl = build_islands(sim.a, sim.b, coverage=field_box(sim.spec), backend="numpy")
    ph = estimate_photometry(sim.a, sim.b, isl, "Xmag", "Ks", n_area=20_000)
    assert_physical(ph)
    # densities count sources without magnitudes too
    assert ph.N_b_total * isl.coverage.area_arcsec2() == pytest.approx(np.sum(
        isl.coverage.contains(sim.b.ra, sim.b.dec)))
    m = np.array([12.0, 15.0])
    np.testing.assert_array_equal(ph.f_a_of([np.nan]), [1.0])
    np.testing.assert_allclose(ph.c_ab(np.nan, m), ph.c_b_marginal[_bin_index(ph.bins_b, m)])
    np.testing.assert_allclose(ph.c_ab(m + 4, np.nan), ph.c_a_marginal[_bin_index(ph.bins_a, m + 4)])
    assert ph.c_ab(np.nan, np.nan) == 1.0
    assert (ph.c_b_marginal * np.diff(ph.bins_b)).sum() == pytest.approx(1.0)
    # out-of-range magnitudes take the edge bins
    assert ph.f_b_of([-50.0])[0] == ph.f_b[0] and ph.f_b_of([99.0])[0] == ph.f_b[-1]


def test_explicit_bins_and_validation(recovered):
    sim, isl, _ = recovered
    ea, eb = np.arange(10.0, 24.01, 0.5), np.arange(8.0, 18.01, 0.25)
    ph = estimate_photometry(sim.a, sim.b, isl, "Xmag", "Ks", bins_a=ea, bins_b=eb, n_area=10_000)
    assert ph.c.shape == (len(ea) - 1, len(eb) - 1)
    np.testing.assert_array_equal(ph.bins_a, ea)
    assert_physical(ph)
    with pytest.raises(ValueError):
        estimate_photometry(sim.a, sim.b, isl, "Xmag", "Ks", bins_a=[3.0, 2.0])


def test_unmasked_area_matches_union_of_circles():
    """Isolated sources of the other catalogue: the unmasked fraction for variance s^2 is
    1 - n pi k_0.9 (s^2 + sigma_y^2) / area exactly (no overlaps)."""
    box = SkyBox(10.0, 10.1, 0.0, 0.1)
    g = np.arange(5) * 0.02 + 0.01
    ra_b, dec_b = [a.ravel() for a in np.meshgrid(10.0 + g, g)]
    s2b = np.full(ra_b.size, 0.25)
    ra_a, dec_a = np.array([10.05, 10.06, 10.07]), np.array([0.05, 0.05, 0.05])
    isl = find_islands(ra_a, dec_a, [1.0, 4.0, 9.0], ra_b, dec_b, s2b, coverage=box, backend="numpy")

    class Other:
        ra, dec = ra_b, dec_b

    fs = _FieldSample(isl, "a", np.ones(3, bool), 0.9, 1e-6, 400_000, Other, "numpy")
    for s2 in (1.0, 4.0, 9.0):
        want = 1 - ra_b.size * np.pi * k_of(0.9) * (s2 + 0.25) / box.area_arcsec2()
        assert fs.phi(s2) == pytest.approx(want, abs=1e-3)
    assert fs.phi(10.0) == 0.0  # above the largest variance: not searched


def test_posterior_p_and_isotonic():
    rng = np.random.default_rng(1)
    # x = T/N - Y: 30 % with a clear counterpart (G/N >> 1), 70 % with no candidate at all
    x = np.concatenate([rng.uniform(100.0, 300.0, 300), np.full(700, -0.997)])
    mean, sd, p_map = _posterior_p(x, 1.0)
    assert 0.25 < p_map < 0.35 and abs(mean - p_map) < 3 * sd and sd < 0.05
    assert _posterior_p(np.full(100, -0.5), 1.0)[2] == 0.0      # no excess: MAP at 0
    m, s, pm = _posterior_p(np.full(100, 50.0), 0.2)            # capped at p_max
    assert pm == 0.2 and 0 <= m <= 0.2
    y = np.array([0.0, 0.3, 0.2, 0.5, 0.4, 0.4, 1.0])
    iso = _isotonic(y)
    assert np.all(np.diff(iso) >= 0) and iso.sum() == pytest.approx(y.sum())
    np.testing.assert_allclose(iso, [0.0, 0.25, 0.25, 13 / 30, 13 / 30, 13 / 30, 1.0])


def test_default_bins():
    e = default_bins(np.r_[np.linspace(10, 20, 1000), np.nan])
    assert e[0] <= 10 and e[-1] > 20 and np.allclose(np.diff(e), np.diff(e)[0])
    assert 0.1 <= np.diff(e)[0] <= 1.0


@pytest.mark.gpu
def test_photometry_backends_agree(gpu_backend):
    sim = simulate_field(seed=8, n_a=1500, width_deg=0.2, height_deg=0.2)
    box = field_box(sim.spec)
    out = []
    for be in ("numpy", gpu_backend):
        isl = build_islands(sim.a, sim.b, coverage=box, backend=be)
        out.append(estimate_photometry(sim.a, sim.b, isl, "Xmag", "Ks", n_area=50_000, backend=be))
    ref, got = out
    for name in ("N_a", "N_b", "N_c", "N_a_total", "N_b_total"):
        assert getattr(got, name) == pytest.approx(getattr(ref, name), rel=1e-12, abs=0)
    np.testing.assert_array_equal(got.bins_a, ref.bins_a)
    for name in ("c", "f_a", "f_b"):
        np.testing.assert_allclose(getattr(got, name), getattr(ref, name), rtol=1e-10)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_tiny_catalogues_give_finite_physical_c(seed):
    """Too few sources for a counterpart signal: c falls back to f_a f_b (eta = 0), never NaN."""
    _, _, ph = run(seed, n_a=8, width_deg=0.01, height_deg=0.01, density_b_arcsec2=0.01)
    assert_physical(ph)
