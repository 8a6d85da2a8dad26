"""Follow-up densities (local vs global, edge-corrected), candidate lists, and the merged table."""
import numpy as np
import pandas as pd
import pytest

from gpumatch.catalogue import InputError, radec_to_xyz
from gpumatch.onesided import geometry
from gpumatch.onesided.followup import (circle_coverage_fraction, coverage_of, inverse_gnomonic, local_density,
                                        offsets_arcsec, read_candidates, weight_at)
from gpumatch.onesided.merge import angular_sep_arcsec, merge_best

RA0, DEC0 = 266.4, -29.0


def uniform_field(rng, density, half_deg, ra0=RA0, dec0=DEC0):
    """Uniform sources (per arcsec^2) in a square of half-width half_deg on the sky (RA x cos Dec)."""
    n = rng.poisson(density * (2 * half_deg * 3600) ** 2)
    x = rng.uniform(-half_deg, half_deg, n)
    y = rng.uniform(-half_deg, half_deg, n)
    return ra0 + x / np.cos(np.radians(dec0)), dec0 + y


def cands(**cols):
    n = len(cols["ra"])
    d = {"name": [f"c{k}" for k in range(n)], "r0": 1.0, "r1": 0.5, "angle": 0.0}
    d.update(cols)
    return pd.DataFrame(d)


def test_gnomonic_round_trip():
    x = np.array([0.0, 1e-3, -2e-3, 5e-4])
    y = np.array([0.0, -1e-3, 4e-4, 2e-3])
    ra, dec = inverse_gnomonic(x, y, 359.99, 45.0)
    dx, dy = offsets_arcsec(ra, dec, 359.99, 45.0)
    np.testing.assert_allclose(dx, x * 206264.80624709636, atol=1e-7)
    np.testing.assert_allclose(dy, y * 206264.80624709636, atol=1e-7)
    assert 0 < np.mod(ra[1] - 359.99, 360.0) < 1  # east = increasing RA (across 360 -> 0)


def test_global_density_uses_the_rho_coverage(rng):
    ra, dec = uniform_field(rng, 0.02, 0.08)
    out = local_density(cands(ra=[RA0], dec=[DEC0]), ra, dec, radius_arcsec=60.0)
    area = geometry.CoverageGrid(radec_to_xyz(ra, dec)).area_arcsec2
    assert out["coverage_area_arcsec2"][0] == area
    assert out["global_density"][0] == len(ra) / area
    assert area == pytest.approx((0.16 * 3600) ** 2, rel=0.02)


def test_uniform_field_interior_edge_corner(rng):
    """On a uniform field the edge correction keeps the ratio at 1 at an edge and a corner."""
    half = 0.1
    ra, dec = uniform_field(rng, 0.03, half)
    cosd = np.cos(np.radians(DEC0))
    c = cands(ra=[RA0, RA0 + half / cosd, RA0 - half / cosd, RA0 + 1.0],
              dec=[DEC0, DEC0, DEC0 - half, DEC0])
    out = local_density(c, ra, dec, radius_arcsec=150.0)
    np.testing.assert_allclose(out["area_fraction"][:3], [1.0, 0.5, 0.25], atol=0.02)
    assert out["area_fraction"][3] == 0 and np.isnan(out["ratio"][3])
    # within 4 sigma of 1 (Poisson) and the naive (uncorrected) edge density would be ~0.5
    assert np.all(np.abs(out["ratio"][:3] - 1) < 4 * out["ratio_err"][:3])
    naive = out["n_local"][1] / (np.pi * 150.0**2) / out["global_density"][1]
    assert naive < 0.6
    assert out["global_density"][0] == pytest.approx(len(ra) / (2 * half * 3600) ** 2, rel=0.02)


def test_known_overdensity(rng):
    """A cluster of 400 extra sources within 60" raises the 90" density by the expected factor."""
    ra, dec = uniform_field(rng, 0.02, 0.1)
    n_cl = 400
    r = 60.0 * np.sqrt(rng.uniform(0, 1, n_cl))
    phi = rng.uniform(0, 2 * np.pi, n_cl)
    cra, cdec = inverse_gnomonic(r * np.cos(phi) / 206264.80624709636, r * np.sin(phi) / 206264.80624709636,
                                 RA0 + 0.03, DEC0)
    ra_all, dec_all = np.r_[ra, cra], np.r_[dec, cdec]
    out = local_density(cands(ra=[RA0 + 0.03, RA0 - 0.04], dec=[DEC0, DEC0 + 0.03]), ra_all, dec_all,
                        radius_arcsec=90.0)
    glob = out["global_density"][0]
    expected = (0.02 * np.pi * 90**2 + n_cl) / (np.pi * 90**2) / glob
    assert out["ratio"][0] == pytest.approx(expected, abs=4 * out["ratio_err"][0])
    assert out["ratio"][0] > 1.5 and out["p_excess"][0] < 1e-10
    assert abs(out["ratio"][1] - 1) < 4 * out["ratio_err"][1]


def test_hole_is_not_coverage(rng):
    """A gap in the catalogue (a missing tile) is excluded from the area and the circle."""
    ra, dec = uniform_field(rng, 0.03, 0.1)
    cosd = np.cos(np.radians(DEC0))
    gap = (ra > RA0) & (dec > DEC0)  # remove the north-east quadrant
    cov = coverage_of(ra[~gap], dec[~gap])
    assert cov.area_arcsec2 == pytest.approx(0.75 * (0.2 * 3600) ** 2, rel=0.02)
    f = circle_coverage_fraction(cov, [RA0], [DEC0], 100.0)
    assert f[0] == pytest.approx(0.75, abs=0.02)
    np.testing.assert_array_equal(weight_at(cov, [RA0 + 0.05 / cosd, RA0 - 0.05 / cosd], [DEC0 + 0.05] * 2),
                                  [0.0, 1.0])


def test_read_candidates_validation(tmp_path):
    p = tmp_path / "c.tsv"
    p.write_text("name\tra\tdec\tr0\tr1\tangle\nA\t266.1\t-29.0\t1.0\t0.5\t30\nB\t266.2\t-29.1\t0.8\t0.8\t0\n")
    df = read_candidates(p)
    assert list(df["name"]) == ["A", "B"] and df["r0"].dtype == float
    with pytest.raises(InputError, match="lacks column"):
        read_candidates([{"name": "a", "ra": 1.0, "dec": 2.0}])
    with pytest.raises(InputError, match=r"row 2.*'dec'"):
        read_candidates([{"name": "a", "ra": 1, "dec": 2, "r0": 1, "r1": 1, "angle": 0},
                         {"name": "b", "ra": 1, "dec": 95, "r0": 1, "r1": 1, "angle": 0}])


# -- merge ----------------------------------------------------------------------
def best_table(index_x, p, ra_ir, ids):
    n = len(index_x)
    return pd.DataFrame({"index_x": index_x, "row": np.asarray(index_x) + 100, "id_x": [f"X{i}" for i in index_x],
                         "ra": 10.0, "dec": 20.0, "sigma_x_arcsec": 1.0,
                         "n_candidates": np.where(np.isfinite(p), 1, 0), "id_ir": ids, "P_best": p,
                         "P0": 1 - np.nan_to_num(p), "ra_ir": ra_ir, "dec_ir": np.full(n, 20.0)})


def test_merge_best_prefixes_and_cross_columns():
    a = best_table([0, 1, 2, 3], np.array([0.9, 0.2, np.nan, 0.5]),
                   np.array([10.0, 10.001, np.nan, 10.002]), ["a0", "a1", None, "a3"])
    # second catalogue given in another row order; source 1 picks another star 3.6" away
    b = best_table([3, 2, 1, 0], np.array([0.7, np.nan, 0.6, 0.95]),
                   np.array([10.002 + 1e-5, np.nan, 10.002, 10.0]), ["b3", None, "b1", "b0"])
    m = merge_best({"GN": a, "VVV": b})
    assert list(m["index_x"]) == [0, 1, 2, 3] and list(m["row"]) == [100, 101, 102, 103]
    assert list(m["GN_id_ir"][[0, 1, 3]]) == ["a0", "a1", "a3"]
    assert list(m["VVV_id_ir"][[0, 1, 3]]) == ["b0", "b1", "b3"]
    assert "GN_ra" not in m and "ra" in m
    assert list(m["best_catalogue"]) == ["VVV", "VVV", "", "VVV"]
    np.testing.assert_allclose(m["P_best_max"], [0.95, 0.6, np.nan, 0.7])
    sep = m["GN_VVV_sep_arcsec"].to_numpy()
    assert sep[0] == pytest.approx(0.0, abs=1e-9)
    assert sep[1] == pytest.approx(angular_sep_arcsec(10.001, 20, 10.002, 20))
    assert np.isnan(sep[2])
    assert list(m["GN_VVV_same"]) == [True, False, False, True]


def test_merge_best_rejects_different_sources():
    a = best_table([0, 1], np.array([0.5, 0.5]), np.array([1.0, 1.0]), ["a", "b"])
    b = best_table([0, 2], np.array([0.5, 0.5]), np.array([1.0, 1.0]), ["a", "b"])
    with pytest.raises(ValueError, match="different X-ray sources"):
        merge_best({"A": a, "B": b})
