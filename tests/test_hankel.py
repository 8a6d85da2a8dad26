"""Hankel transforms as matrix products: accuracy against closed forms, both backends."""
import math

import numpy as np
import pytest
from scipy import special

from gpumatch.backend import to_host
from gpumatch.hankel import HankelGrid, annulus_matrix

# sigma^2 ranges: one wide grid (0.1" .. 4") and factor-2 bands as pair_auf uses them
RANGES = [(0.01, 16.0), (0.01, 0.02), (1.0, 2.0)]


def gauss(r, s2):
    return np.exp(-r * r / (2 * s2)) / (2 * np.pi * s2)


@pytest.fixture(scope="module")
def grids():
    return {}


def grid_for(grids, lo, hi, backend):
    key = (lo, hi, backend.name)
    if key not in grids:
        grids[key] = HankelGrid.for_sigma2(lo, hi, backend=backend)
    return grids[key]


def test_grid_sizes_stay_small():
    g = HankelGrid.for_sigma2(0.01, 16.0, backend="numpy")
    # documented sizes: far below macauff's 10,000 x 10,000 tables
    assert (g.n_r, g.n_rho) == (10241, 706)
    band = HankelGrid.for_sigma2(0.5, 1.0, r_extra_arcsec=0.0, backend="numpy")
    assert band.n_r < 400 and band.n_rho < 80
    assert g.sigma2_min == pytest.approx(0.01)


@pytest.mark.parametrize("lo,hi", RANGES)
def test_inverse_of_gaussian_is_the_closed_form(backend, grids, lo, hi):
    """Perturbation off (H = 1 on both sides): G from the Hankel path equals the Gaussian to
    1e-6 relative at every node where G >= 1e-6 of its peak, and to 1e-12 of the peak everywhere."""
    g = grid_for(grids, lo, hi, backend)
    r = g.r_host
    for s2 in np.geomspace(lo, hi, 5):
        got = to_host(g.convolve(1.0, 1.0, s2))
        want = gauss(r, s2)
        sig = want >= 1e-6 * want[0]
        assert np.max(np.abs(got[sig] / want[sig] - 1)) < 1e-6
        assert np.max(np.abs(got - want)) < 1e-12 * want[0]


@pytest.mark.parametrize("lo,hi", RANGES)
def test_convolution_of_sampled_gaussians(backend, grids, lo, hi):
    """forward(h_a) * forward(h_b) -> inverse: the convolution of two Gaussian AUFs sampled on
    the r grid is the Gaussian of summed variance (1e-6 relative where G >= 1e-6 of the peak)."""
    g = grid_for(grids, lo, hi, backend)
    r = g.r_host
    for sa2, sb2 in [(lo / 2, lo / 2), (0.3 * lo, 0.7 * hi), (hi / 2, hi / 2)]:
        h = np.stack([gauss(r, sa2), gauss(r, sb2)])
        ha, hb = g.forward(g.backend.asarray(h))
        got = to_host(g.inverse((ha * hb)[None]))[0]
        want = gauss(r, sa2 + sb2)
        sig = want >= 1e-6 * want[0]
        assert np.max(np.abs(got[sig] / want[sig] - 1)) < 1e-6
        # the forward transform itself
        assert np.max(np.abs(to_host(ha) - np.exp(-2 * np.pi ** 2 * g.rho_host ** 2 * sa2))) < 1e-8


@pytest.mark.parametrize("lo,hi", RANGES)
def test_radius_matches_closed_form(backend, grids, lo, hi):
    g = grid_for(grids, lo, hi, backend)
    s2 = np.geomspace(lo, hi, 7)
    for y in (0.63, 0.9, 0.997):
        got = to_host(g.radius(g.gaussian(g.backend.asarray(s2)), y))
        want = np.sqrt(-2 * np.log(1 - y) * s2)
        assert np.max(np.abs(got / want - 1)) < 1e-4
        assert np.max(np.abs(got / want - 1)) < 1e-7  # what the grid actually achieves


def test_radius_per_row_targets(backend, grids):
    g = grid_for(grids, 1.0, 2.0, backend)
    s2 = np.array([1.0, 1.3, 1.99, 1.5])
    y = np.array([0.5, 0.997, 0.63, 0.9])
    got = to_host(g.radius(g.gaussian(g.backend.asarray(s2)), g.backend.asarray(y)))
    np.testing.assert_allclose(got, np.sqrt(-2 * np.log1p(-y) * s2), rtol=1e-8)
    # a target beyond what the grid holds gives r_max
    assert to_host(g.radius(g.gaussian(1.0)[None], 1.0 - 1e-16))[0] == pytest.approx(g.r_max)


@pytest.mark.parametrize("lo,hi", RANGES)
def test_pdf_and_cdf_between_nodes(backend, grids, lo, hi, rng):
    g = grid_for(grids, lo, hi, backend)
    s2 = np.exp(rng.uniform(np.log(lo), np.log(hi), 2000))
    r = rng.uniform(0, 6, s2.size) * np.sqrt(s2)
    hc = g.gaussian(g.backend.asarray(s2))
    pdf = to_host(g.pdf(hc, g.backend.asarray(r)))
    cdf = to_host(g.cdf(hc, g.backend.asarray(r)))
    peak = 1 / (2 * np.pi * s2)
    assert np.max(np.abs(pdf - gauss(r, s2)) / peak) < 1e-7
    assert np.max(np.abs(cdf - (1 - np.exp(-r * r / (2 * s2))))) < 1e-7
    nodes = to_host(g.cdf_nodes(g.gaussian(lo)[None]))[0]
    assert np.max(np.abs(nodes - (1 - np.exp(-g.r_host ** 2 / (2 * lo))))) < 1e-10
    # beyond the grid: no density, all the probability
    far = to_host(g.pdf(g.gaussian(lo)[None], g.r_max * 1.5))
    assert far[0] == 0.0 and to_host(g.cdf(g.gaussian(lo)[None], g.r_max * 1.5))[0] == 1.0


def test_forward_binned_is_the_transform_of_annuli(backend):
    """Masses spread over annuli: an independent check through the Gaussian (fine bins) and the
    closed form of a uniform disk, 2 J1(x)/x."""
    g = HankelGrid.for_sigma2(0.25, 0.5, backend=backend)
    s2 = 0.3
    edges = np.linspace(0, 8 * math.sqrt(s2), 4001)
    masses = np.diff(1 - np.exp(-edges ** 2 / (2 * s2)))
    got = to_host(g.forward_binned(masses[None], edges))[0]
    assert np.max(np.abs(got - np.exp(-2 * np.pi ** 2 * g.rho_host ** 2 * s2))) < 1e-6
    disk = to_host(g.forward_binned(np.ones((1, 1)), [0.0, 1.2]))[0]
    x = 2 * np.pi * g.rho_host * 1.2
    np.testing.assert_allclose(disk, 2 * special.j1(x) / x, rtol=1e-12, atol=1e-15)
    t = annulus_matrix(np.array([0.0, 0.5, 1.0]), np.array([0.0, 0.3]))
    np.testing.assert_allclose(t[:, 0], 1.0)


def test_bad_grids_are_refused():
    with pytest.raises(ValueError):
        HankelGrid(1.0, 4, 1.0, 10, backend="numpy")
    with pytest.raises(ValueError):
        HankelGrid.for_sigma2(0.0, 1.0, backend="numpy")


def test_cupy_matches_numpy(gpu_backend):
    """GEMMs on cuBLAS vs NumPy BLAS: floats within 1e-12 of the peak; radii within 1e-12."""
    gn = HankelGrid.for_sigma2(0.01, 0.02, r_extra_arcsec=1.0, backend="numpy")
    gc = HankelGrid.for_sigma2(0.01, 0.02, r_extra_arcsec=1.0, backend=gpu_backend)
    assert np.array_equal(gn.r_host, gc.r_host) and np.array_equal(to_host(gn.j0), to_host(gc.j0))
    s2 = np.linspace(0.01, 0.02, 50)
    rn = gn.inverse(gn.gaussian(s2))
    rc = to_host(gc.inverse(gc.gaussian(gpu_backend.asarray(s2))))
    assert np.max(np.abs(rn - rc)) <= 1e-12 * np.max(np.abs(rn))
    for y in (0.63, 0.9, 0.997):
        a = gn.radius(gn.gaussian(s2), y)
        b = to_host(gc.radius(gc.gaussian(gpu_backend.asarray(s2)), y))
        np.testing.assert_allclose(b, a, rtol=1e-12)
