"""Partitioned (Dask) neighbour search equals the single-machine search exactly."""
import numpy as np
import pytest

pytest.importorskip("dask")

from gpumatch.distributed import SkyPartition, partitioned_pairs, plan_partitions  # noqa: E402
from gpumatch.sky import pairs  # noqa: E402


def _sky(rng, n, kind):
    if kind == "all":
        return rng.uniform(0, 360, n), np.degrees(np.arcsin(rng.uniform(-1, 1, n)))
    if kind == "wrap":
        return np.mod(rng.uniform(-0.02, 0.02, n), 360), rng.uniform(-0.02, 0.02, n)
    if kind == "pole":
        return rng.uniform(0, 360, n), rng.uniform(89.97, 90.0, n)
    raise ValueError(kind)


@pytest.mark.parametrize("kind,radius", [("all", 3600.0), ("wrap", 20.0), ("pole", 15.0)])
@pytest.mark.parametrize("quadrature", [False, True])
def test_equals_single_machine(rng, kind, radius, quadrature):
    ra_a, dec_a = _sky(rng, 600, kind)
    ra_b, dec_b = _sky(rng, 2000, kind)
    r_a = rng.uniform(0.2, 1.0, len(ra_a)) * radius
    r_b = rng.uniform(0.0, 0.5, len(ra_b)) * radius if quadrature else None
    ref = pairs(ra_a, dec_a, ra_b, dec_b, r_a, r_b, backend="numpy")
    got = partitioned_pairs(ra_a, dec_a, ra_b, dec_b, r_a, r_b, n_partitions=9, scheduler="threads",
                            backend="numpy")
    assert len(ref) > 0
    np.testing.assert_array_equal(got.i, ref.i)
    np.testing.assert_array_equal(got.j, ref.j)
    np.testing.assert_array_equal(got.sep_arcsec, ref.sep_arcsec)


def test_every_position_in_exactly_one_core(rng):
    ra, dec = _sky(rng, 5000, "all")
    ra = np.concatenate([ra, [0.0, 359.999999, 12.0, 12.0]])
    dec = np.concatenate([dec, [90.0, -90.0, 0.0, 89.9999]])
    parts = plan_partitions(ra, dec, 12)
    assert 9 <= len(parts) <= 16
    owners = np.sum([p.core(ra, dec) for p in parts], axis=0)
    assert np.all(owners == 1)
    counts = np.array([p.core(ra, dec).sum() for p in parts])
    assert counts.max() < 2.5 * counts.mean()  # roughly equal-count partitions


def test_margin_contains_all_neighbours(rng):
    part = SkyPartition(10.0, 20.0, 60.0, 70.0)
    ra, dec = _sky(rng, 200000, "all")
    inside = part.core(ra, dec)
    marg = part.with_margin(ra, dec, 1.0)
    got = pairs(ra[inside], dec[inside], ra, dec, 3600.0, backend="numpy")
    assert np.all(marg[got.j])
