"""Islands: overlap pairs, connected components (both executors), canonical labels, edges."""
import ctypes

import numpy as np
import pytest
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components as scipy_cc

from gpumatch import auf
from gpumatch.backend import kernel_source
from gpumatch.catalogue import radec_to_xyz
from gpumatch.islands import (CoverageFunction, SkyBox, build_islands, connected_components,
                              find_islands, k_of)
from gpumatch.simulate import simulate_field

from hostkernel import build, ptr


def _field(rng, n_a, n_b, ra0=150.0, dec0=10.0, size_deg=0.02, clustered=True):
    """Random positions (deg) and variances (arcsec^2); B partly clustered around A."""
    ra_a = ra0 + rng.uniform(-size_deg, size_deg, n_a) / np.cos(np.radians(dec0))
    dec_a = dec0 + rng.uniform(-size_deg, size_deg, n_a)
    ra_b = ra0 + rng.uniform(-size_deg, size_deg, n_b) / np.cos(np.radians(dec0))
    dec_b = dec0 + rng.uniform(-size_deg, size_deg, n_b)
    if clustered:  # a third of B near A sources: chains and multi-source islands
        m = n_b // 3
        host = rng.integers(0, n_a, m)
        ra_b[:m] = ra_a[host] + rng.normal(0, 1.5, m) / 3600 / np.cos(np.radians(dec0))
        dec_b[:m] = dec_a[host] + rng.normal(0, 1.5, m) / 3600
    s2a = np.exp(rng.uniform(np.log(0.05), np.log(4.0), n_a))
    s2b = np.exp(rng.uniform(np.log(0.01), np.log(0.5), n_b))
    return np.mod(ra_a, 360), dec_a, s2a, np.mod(ra_b, 360), dec_b, s2b


def _brute(ra_a, dec_a, s2a, ra_b, dec_b, s2b, y):
    """Reference: all pairs by a dense distance matrix, scipy components, canonical labels."""
    xa, xb = radec_to_xyz(ra_a, dec_a), radec_to_xyz(ra_b, dec_b)
    ia, ib = np.meshgrid(np.arange(len(ra_a)), np.arange(len(ra_b)), indexing="ij")
    ia, ib = ia.ravel(), ib.ravel()
    d = xa[ia] - xb[ib]
    d2 = d[:, 0] * d[:, 0] + d[:, 1] * d[:, 1] + d[:, 2] * d[:, 2]
    sep = 2 * np.arcsin(np.minimum(np.sqrt(d2) / 2, 1)) * 206264.80624709636
    keep = sep * sep <= k_of(y) * (s2a[ia] + s2b[ib])
    ia, ib = ia[keep], ib[keep]
    na, nb = len(ra_a), len(ra_b)
    g = coo_matrix((np.ones(len(ia)), (ia, ib + na)), shape=(na + nb, na + nb))
    _, comp = scipy_cc(g, directed=False)
    keys = np.array([np.flatnonzero(comp == c).min() for c in range(comp.max() + 1)])
    order = np.argsort(keys)
    number = np.empty_like(order)
    number[order] = np.arange(len(order))
    lab = number[comp]
    return ia, ib, lab[:na], lab[na:], np.sort(keys)


@pytest.mark.parametrize("seed,ra0,dec0", [(1, 150.0, 10.0), (2, 0.001, -30.0), (3, 359.999, 60.0),
                                           (4, 42.0, 89.95), (5, 200.0, -89.97)])
def test_islands_equal_scipy_components(seed, ra0, dec0):
    rng = np.random.default_rng(seed)
    f = _field(rng, 150, 500, ra0=ra0, dec0=dec0)
    isl = find_islands(*f, backend="numpy")
    ia, ib, la, lb, keys = _brute(*f, 0.997)
    np.testing.assert_array_equal(isl.ia, ia)  # brute force is already in (i, j) order
    np.testing.assert_array_equal(isl.ib, ib)
    np.testing.assert_array_equal(isl.label_a, la)
    np.testing.assert_array_equal(isl.label_b, lb)
    np.testing.assert_array_equal(isl.island_key, keys)
    assert isl.size_stats()["max_size"] > 3  # the field really has multi-source islands


def test_pair_values_and_within():
    rng = np.random.default_rng(7)
    f = _field(rng, 100, 300)
    isl = find_islands(*f, backend="numpy")
    s2 = f[2][isl.ia] + f[5][isl.ib]
    np.testing.assert_array_equal(isl.sigma2_arcsec2, s2)
    np.testing.assert_allclose(isl.G_per_arcsec2, auf.gaussian_pdf(isl.sep_arcsec, s2), rtol=1e-14)
    np.testing.assert_allclose(isl.cdf, auf.gaussian_cdf(isl.sep_arcsec, s2), rtol=1e-14)
    assert np.all(isl.cdf <= 0.997 + 1e-12)
    w63, w90 = isl.within(0.63), isl.within(0.9)
    assert np.all(w90[w63]) and w63.sum() < w90.sum() < isl.n_pairs
    np.testing.assert_array_equal(w90, isl.sep_arcsec ** 2 <= k_of(0.9) * s2)
    with pytest.raises(ValueError):
        isl.within(0.999)


def test_members_csr_and_stats():
    rng = np.random.default_rng(11)
    f = _field(rng, 120, 400)
    isl = find_islands(*f, backend="numpy")
    seen_a = np.concatenate([isl.members(k)[0] for k in range(isl.n_islands)])
    seen_b = np.concatenate([isl.members(k)[1] for k in range(isl.n_islands)])
    np.testing.assert_array_equal(np.sort(seen_a), np.arange(isl.n_a))  # every source once
    np.testing.assert_array_equal(np.sort(seen_b), np.arange(isl.n_b))
    for k in range(isl.n_islands):
        a, b = isl.members(k)
        assert np.all(np.diff(a) > 0) and np.all(np.diff(b) > 0)
        assert np.all(isl.label_a[a] == k) and np.all(isl.label_b[b] == k)
        key = min(a.min() if len(a) else np.inf, b.min() + isl.n_a if len(b) else np.inf)
        assert key == isl.island_key[k]
        p = isl.pairs_of(k)
        assert np.all(isl.label_a[isl.ia[p]] == k) and np.all(isl.label_b[isl.ib[p]] == k)
    assert np.all(np.diff(isl.island_key) > 0)
    assert isl.pair_ptr[-1] == isl.n_pairs
    st = isl.size_stats()
    assert sum(st["by_size"].values()) == st["n_islands"] == isl.n_islands
    assert st["n_lonely_a"] == st["by_size"].get("1x0", 0)
    assert st["max_n_b"] == isl.island_n_b.max()
    tab = isl.table()
    assert list(tab.columns) == ["island", "key", "n_a", "n_b", "edge"] and len(tab) == isl.n_islands


def test_singletons_and_empty_sides():
    isl = find_islands([10.0], [0.0], [1.0], [20.0, 20.1], [0.0, 0.0], [1.0, 1.0], backend="numpy")
    assert isl.n_islands == 3 and isl.n_pairs == 0
    np.testing.assert_array_equal(isl.label_a, [0])
    np.testing.assert_array_equal(isl.label_b, [1, 2])
    assert isl.size_stats()["by_size"] == {"0x1": 2, "1x0": 1}


def test_edge_flags_skybox():
    rng = np.random.default_rng(5)
    box = SkyBox(149.98, 150.02, 9.98, 10.02)
    ra_a = rng.uniform(149.98, 150.02, 200)
    dec_a = rng.uniform(9.98, 10.02, 200)
    ra_b = rng.uniform(149.98, 150.02, 600)
    dec_b = rng.uniform(9.98, 10.02, 600)
    s2a, s2b = np.full(200, 1.0), np.full(600, 0.04)
    isl = find_islands(ra_a, dec_a, s2a, ra_b, dec_b, s2b, coverage=box, backend="numpy")
    r_a = np.sqrt(k_of(0.997) * (1.0 + 0.04))
    d_a = box.edge_distance_arcsec(ra_a, dec_a)
    np.testing.assert_array_equal(isl.edge_a, d_a < r_a)
    # brute distance to the edges on this small box: Dec edges and RA edges (times cos dec)
    d_ref = np.minimum.reduce([(dec_a - 9.98) * 3600, (10.02 - dec_a) * 3600,
                               (ra_a - 149.98) * 3600 * np.cos(np.radians(dec_a)),
                               (150.02 - ra_a) * 3600 * np.cos(np.radians(dec_a))])
    np.testing.assert_allclose(d_a, d_ref, atol=1e-6)
    want = np.zeros(isl.n_islands, bool)
    want[isl.label_a[isl.edge_a]] = True
    want[isl.label_b[isl.edge_b]] = True
    np.testing.assert_array_equal(isl.island_edge, want)
    assert 0 < isl.island_edge.sum() < isl.n_islands
    assert len(isl.label_a) == 200 and len(isl.label_b) == 600  # nothing dropped
    outside = box.edge_distance_arcsec(np.array([150.03]), np.array([10.0]))
    assert outside[0] < 0


def test_coverage_function_disc():
    box = SkyBox(149.9, 150.1, 9.9, 10.1)
    c0 = radec_to_xyz([150.0], [10.0])[0]

    def disc(ra, dec, r_deg=0.05):
        return radec_to_xyz(ra, dec) @ c0 >= np.cos(np.radians(r_deg))

    cov = CoverageFunction(disc, box, n_area=400_000)
    exact = 2 * np.pi * (1 - np.cos(np.radians(0.05))) * (180 / np.pi * 3600) ** 2
    assert cov.area_arcsec2() == pytest.approx(exact, rel=5e-3)
    # points at 0.05 deg - 3" from the centre are within 5" of the edge, at 0.05 - 10" not
    ra = 150.0 + np.array([0.05 - 3 / 3600, 0.05 - 10 / 3600]) / np.cos(np.radians(10.0))
    np.testing.assert_array_equal(cov.near_edge(ra, [10.0, 10.0], 5.0), [True, False])
    ra_g, dec_g = cov.grid(10_000)
    assert np.all(cov.contains(ra_g, dec_g)) and abs(len(ra_g) - 10_000) < 500


def test_skybox_wrap_area_grid_intersect():
    b = SkyBox(359.0, 1.0, -1.0, 1.0)
    assert b.width_deg == pytest.approx(2.0)
    assert b.contains([359.5, 0.5, 2.0], [0.0, 0.0, 0.0]).tolist() == [True, True, False]
    exact = np.radians(2.0) * 2 * np.sin(np.radians(1.0)) * (180 / np.pi * 3600) ** 2
    assert b.area_arcsec2() == pytest.approx(exact, rel=1e-12)
    ra, dec = b.grid(40_000)
    assert np.all(b.contains(ra, dec)) and abs(len(ra) - 40_000) < 400
    around = SkyBox.around((np.array([359.5, 0.2]), np.array([0.0, 0.5])))
    assert around.width_deg == pytest.approx(0.7)
    inter = b.intersect(SkyBox(0.5, 10.0, 0.0, 5.0))
    got = (inter.ra_min, inter.width_deg, inter.dec_min, inter.dec_max)
    assert got == pytest.approx((0.5, 0.5, 0.0, 1.0))


def test_default_coverage_is_overlap_of_catalogue_boxes():
    sim = simulate_field(seed=3)
    isl = build_islands(sim.a, sim.b, backend="numpy")
    box_b = SkyBox.around((sim.b.ra, sim.b.dec))
    assert isl.coverage.area_arcsec2() <= box_b.area_arcsec2() * (1 + 1e-12)
    assert isl.coverage.area_arcsec2() == pytest.approx(sim.spec.area_arcsec2, rel=0.02)


def test_perturbation_passthrough(monkeypatch):
    """With perturbation inputs the cut is taken on the CDF that auf.pair_auf returns,
    with the pairs' own cells, and the search radius grows by the models' max_offset."""
    rng = np.random.default_rng(2)
    f = _field(rng, 60, 200)
    seen = {}

    class Model:
        max_offset = 0.5

    def fake_pair_auf(sep, sigma2, cell_a=None, model_a=None, cell_b=None, model_b=None,
                      grid=None, backend=None):
        seen["cells"] = (cell_a, cell_b)
        wide = sigma2 * 1.21  # a broader G: the perturbation widens the pair distribution
        return auf.gaussian_pdf(sep, wide), auf.gaussian_cdf(sep, wide)

    monkeypatch.setattr(auf, "pair_auf", fake_pair_auf)
    cells_a, cells_b = np.arange(60) % 3, np.arange(200) % 5
    isl = find_islands(*f, perturbation=dict(cell_a=cells_a, model_a=Model(), cell_b=cells_b,
                                              model_b=Model()), backend="numpy")
    assert not isl.gaussian
    np.testing.assert_array_equal(isl.cdf <= 0.997, np.ones(isl.n_pairs, bool))
    s2 = f[2][isl.ia] + f[5][isl.ib]
    want = isl.sep_arcsec ** 2 <= k_of(0.997) * s2 * 1.21
    assert want.all() and isl.n_pairs > len(_brute(*f, 0.997)[0])  # more pairs than Gaussian
    assert isl.max_sep_arcsec == pytest.approx(np.sqrt(k_of(0.997) * (f[2].max() + f[5].max())) + 1.0)
    # the cells handed to pair_auf are those of the candidate pairs (before the cut)
    ca, cb = seen["cells"]
    assert len(ca) == len(cb) and len(ca) >= isl.n_pairs
    assert set(np.unique(ca)) <= {0, 1, 2} and set(np.unique(cb)) <= {0, 1, 2, 3, 4}


def test_perturbed_cut_tie_rule(monkeypatch):
    """On the GPU, a pair whose CDF is within TIE_TOL of the cut is decided by the NumPy
    value: a device CDF a hair below the cut does not keep a pair NumPy would drop."""
    from types import SimpleNamespace

    from gpumatch import islands as islands_mod

    y = 0.997
    dev_cdf = np.array([0.5, y - 1e-15, y + 1e-15, 0.999])
    host_cdf = np.array([0.5, y + 1e-15, y - 1e-15, 0.999])

    def fake_pair_auf(sep, sigma2, backend=None, **kw):
        assert backend.name == "numpy"
        return np.ones(len(sep)), host_cdf[np.asarray(sep, dtype=int)]

    monkeypatch.setattr(auf, "pair_auf", fake_pair_auf)
    fake_gpu = SimpleNamespace(is_gpu=True, name="cupy", xp=np)
    sep = np.arange(4.0)  # the fake looks its CDF up by separation
    idx = np.arange(4)
    keep = islands_mod._cdf_test(dev_cdf, y, sep, np.ones(4), idx, idx, {}, fake_gpu)
    np.testing.assert_array_equal(keep, [True, False, True, False])
    cpu = SimpleNamespace(is_gpu=False, name="numpy", xp=np)
    np.testing.assert_array_equal(islands_mod._cdf_test(dev_cdf, y, sep, np.ones(4), idx, idx, {}, cpu),
                                  dev_cdf <= y)


def test_connected_components_numpy_random_graphs(rng):
    for n, ne in [(1, 0), (10, 0), (50, 30), (500, 400), (2000, 3000)]:
        u = rng.integers(0, n, ne)
        v = rng.integers(0, n, ne)
        lab = connected_components(n, u, v, backend="numpy")
        g = coo_matrix((np.ones(ne), (u, v)), shape=(n, n))
        _, comp = scipy_cc(g, directed=False)
        mins = np.array([np.flatnonzero(comp == c).min() for c in range(comp.max() + 1)])
        np.testing.assert_array_equal(lab, mins[comp])


HOST_CC = r'''
#include "islands_cc.cuh"
extern "C" long long run_cc(long long n, long long ne, const long long* eu, const long long* ev,
                            const long long* edge_order, const long long* node_order, long long* label)
{
    for (long long x = 0; x < n; ++x) label[x] = x;
    long long rounds = 0;
    for (;;) {
        int changed = 0;
        for (long long k = 0; k < ne; ++k) changed |= cc_hook_one(edge_order[k], eu, ev, label);
        for (long long k = 0; k < n; ++k) cc_jump_one(node_order[k], label);
        ++rounds;
        if (!changed) return rounds;
    }
}
'''


def test_cc_kernel_header_on_host(tmp_path, rng):
    """The kernel's hook/jump functions, run serially in random thread orders, give the
    NumPy labels (the fixed point does not depend on the order)."""
    lib = build(HOST_CC, tmp_path, "islands_cc")
    lib.run_cc.restype = ctypes.c_longlong
    assert "cc_hook_one" in kernel_source("islands_cc.cuh")
    for n, ne in [(5, 0), (300, 200), (3000, 2500), (3000, 6000)]:
        u = rng.integers(0, n, ne).astype(np.int64)
        v = rng.integers(0, n, ne).astype(np.int64)
        want = connected_components(n, u, v, backend="numpy")
        for _ in range(3):
            eo = rng.permutation(ne).astype(np.int64)
            no = rng.permutation(n).astype(np.int64)
            lab = np.empty(n, dtype=np.int64)
            rounds = lib.run_cc(ctypes.c_longlong(n), ctypes.c_longlong(ne), ptr(u), ptr(v), ptr(eo),
                                ptr(no), ptr(lab))
            assert rounds >= 1
            np.testing.assert_array_equal(lab, want)


@pytest.mark.gpu
def test_islands_backends_identical(gpu_backend):
    sim = simulate_field(seed=9, n_a=2000, width_deg=0.2, height_deg=0.2)
    ref = build_islands(sim.a, sim.b, backend="numpy")
    got = build_islands(sim.a, sim.b, backend=gpu_backend)
    for name in ("ia", "ib", "label_a", "label_b", "island_key", "island_n_a", "island_n_b",
                 "island_edge", "a_ptr", "a_rows", "b_ptr", "b_rows", "pair_ptr", "pair_idx",
                 "edge_a", "edge_b"):
        np.testing.assert_array_equal(getattr(got, name), getattr(ref, name), err_msg=name)
    np.testing.assert_array_equal(got.sep_arcsec, ref.sep_arcsec)
    np.testing.assert_allclose(got.G_per_arcsec2, ref.G_per_arcsec2, rtol=1e-12)
    np.testing.assert_allclose(got.cdf, ref.cdf, rtol=1e-12, atol=1e-300)


@pytest.mark.gpu
def test_connected_components_cupy_equals_numpy(gpu_backend, rng):
    for n, ne in [(1, 0), (1000, 800), (200_000, 150_000), (200_000, 400_000)]:
        u = rng.integers(0, n, ne)
        v = rng.integers(0, n, ne)
        want = connected_components(n, u, v, backend="numpy")
        got = connected_components(n, u, v, backend=gpu_backend)
        np.testing.assert_array_equal(gpu_backend.to_host(got), want)
