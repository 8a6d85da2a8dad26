"""Likelihood ratios eta (eq 37) and xi (eq 38), base-10 logs, and the pair weight."""
import numpy as np
import pytest

from gpumatch.auf import gaussian_pdf
from gpumatch.likelihood import LN10, eta, ln_pair_weight, pair_ratios, xi
from gpumatch.photometry import Photometry


@pytest.fixture
def phot():
    ea = np.array([10.0, 11.0, 13.0])  # widths 1, 2
    eb = np.array([5.0, 5.5, 6.0, 7.0])  # widths 0.5, 0.5, 1
    c = np.array([[0.4, 0.2, 0.1], [0.05, 0.1, 0.075]])
    c = c / (c * np.diff(ea)[:, None] * np.diff(eb)[None, :]).sum()
    fa = np.array([0.2, 0.4])
    fb = np.array([0.5, 0.5, 0.5])
    return Photometry(N_a=0.01, N_b=0.5, N_c=0.002, N_a_total=0.012, N_b_total=0.502,
                      area_arcsec2=1e4, use_photometry=True, band_a="X", band_b="K", bins_a=ea,
                      bins_b=eb, c=c, f_a=fa, f_b=fb)


def test_eta_definition(phot):
    ma = np.array([10.5, 12.0, 12.9, 9.0])  # last: below the range -> first bin
    mb = np.array([5.2, 6.5, 5.7, 5.1])
    want = np.log10(phot.c[[0, 1, 1, 0], [0, 2, 1, 0]] / (phot.f_a[[0, 1, 1, 0]] * phot.f_b[[0, 2, 1, 0]]))
    np.testing.assert_allclose(eta(phot, ma, mb), want, rtol=1e-14)


def test_eta_missing_magnitudes_marginalised(phot):
    cb = np.diff(phot.bins_a) @ phot.c
    ca = phot.c @ np.diff(phot.bins_b)
    np.testing.assert_allclose(eta(phot, np.nan, 5.2), np.log10(cb[0] / phot.f_b[0]))
    np.testing.assert_allclose(eta(phot, 12.0, np.nan), np.log10(ca[1] / phot.f_a[1]))
    assert eta(phot, np.nan, np.nan) == 0.0


def test_xi_definition_and_weight(phot):
    sep = np.array([0.1, 1.0, 3.0])
    G = gaussian_pdf(sep, 0.5)
    want = np.log10(phot.N_c * G / (phot.N_a * phot.N_b))
    np.testing.assert_allclose(xi(G, phot.N_c, phot.N_a, phot.N_b), want, rtol=1e-13)
    ma, mb = np.array([10.5, 12.0, 11.5]), np.array([5.2, 6.5, 5.9])
    r = phot.N_c * G * phot.c_ab(ma, mb) / (phot.N_a * phot.f_a_of(ma) * phot.N_b * phot.f_b_of(mb))
    np.testing.assert_allclose(ln_pair_weight(phot, G, ma, mb), np.log(r), rtol=1e-12)
    np.testing.assert_allclose(ln_pair_weight(phot, G, ma, mb), LN10 * (eta(phot, ma, mb) + want))


def test_limits():
    assert xi(np.array([0.0]), 1.0, 1.0, 1.0)[0] == -np.inf
    assert xi(np.array([1.0]), 0.0, 1.0, 1.0)[0] == -np.inf
    assert xi(np.array([1.0]), 1.0, 0.0, 1.0)[0] == np.inf
    off = Photometry(N_a=0.1, N_b=0.2, N_c=0.05, N_a_total=0.15, N_b_total=0.25, area_arcsec2=1.0,
                     use_photometry=False)
    assert eta(off, [12.0, np.nan], [3.0, 4.0]).tolist() == [0.0, 0.0]


def test_pair_ratios_on_islands():
    from gpumatch.islands import build_islands
    from gpumatch.photometry import estimate_photometry
    from gpumatch.simulate import simulate_field

    sim = simulate_field(seed=2)
    isl = build_islands(sim.a, sim.b, backend="numpy")
    ph = estimate_photometry(sim.a, sim.b, isl, "Xmag", "Ks", n_area=10_000)
    e, x = pair_ratios(ph, isl, sim.a.mags["Xmag"], sim.b.mags["Ks"])
    assert e.shape == x.shape == (isl.n_pairs,)
    np.testing.assert_allclose(x, np.log10(ph.N_c * isl.G_per_arcsec2 / (ph.N_a * ph.N_b)))
    np.testing.assert_allclose(e, eta(ph, sim.a.mags["Xmag"][isl.ia], sim.b.mags["Ks"][isl.ib]))
    e0, x0 = pair_ratios(ph, isl)
    assert np.all(e0 == 0) and np.array_equal(x0, x)


@pytest.mark.gpu
def test_xi_on_cupy(gpu_backend):
    G = np.array([1e-3, 0.1, 0.5])
    got = xi(gpu_backend.asarray(G), 0.01, 0.2, 0.5)
    np.testing.assert_allclose(gpu_backend.to_host(got), xi(G, 0.01, 0.2, 0.5), rtol=1e-14)
