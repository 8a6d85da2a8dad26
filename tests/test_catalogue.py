import numpy as np
import pytest

from gpumatch.catalogue import Catalogue, InputError, cov_circular, cov_ellipse, validate


def _cat(ra, dec, err=None, **kw):
    n = len(ra)
    cov = None if err is None else cov_circular(err)
    return Catalogue("t.csv", np.asarray(ra, float), np.asarray(dec, float), cov=cov, **kw)


def test_ra_normalised():
    c = validate(_cat([-10.0, 360.0, 370.5, -1e-18], [0, 1, 2, 3], [1, 1, 1, 1]))
    assert np.all((c.ra >= 0) & (c.ra < 360))
    np.testing.assert_allclose(c.ra[:3], [350.0, 0.0, 10.5])


@pytest.mark.parametrize("ra,dec,err,col,row", [
    ([1, np.nan], [0, 0], [1, 1], "ra", 2),
    ([1, 2], [0, 95.0], [1, 1], "dec", 2),
    ([1, 2, 3], [0, 0, np.nan], [1, 1, 1], "dec", 3),
    ([1, 2], [0, 0], [0.0, 1], "position error", 1),
    ([1, 2], [0, 0], [1, -3], "position error", 2),
    ([1, 2], [0, 0], [1, np.inf], "position error", 2),
])
def test_bad_rows_named(ra, dec, err, col, row):
    with pytest.raises(InputError) as e:
        validate(_cat(ra, dec, err))
    assert e.value.row == row and e.value.column == col and e.value.file == "t.csv"
    assert "t.csv" in str(e.value) and f"row {row}" in str(e.value)


def test_drop_mode_records_every_dropped_row():
    c = _cat([1, np.nan, 3, 4], [0, 0, 91, 0], [1, 1, 1, -1])
    out = validate(c, on_bad_rows="drop")
    assert list(out.row) == [0]
    assert sorted(out.dropped["row"]) == [1, 2, 3]
    assert set(out.dropped["reason"]) == {"RA is missing or not a number", "Dec outside [-90, 90] deg",
                                          "position error is missing, not finite, or not positive"}
    # nothing lost: kept + dropped rows are exactly the input rows
    assert sorted(list(out.row) + list(out.dropped["row"])) == [0, 1, 2, 3]


def test_empty_is_an_error():
    with pytest.raises(InputError, match="empty"):
        validate(_cat([], [], []))


def test_ellipse_conversion_matches_rotation():
    a, b, pa = 2.0, 1.0, 30.0
    cov = cov_ellipse([a], [b], [pa])[0]
    t = np.radians(pa)
    # major axis along PA (east of north): unit vector (east, north) = (sin t, cos t)
    u = np.array([np.sin(t), np.cos(t)])
    v = np.array([np.cos(t), -np.sin(t)])
    m = a * a * np.outer(u, u) + b * b * np.outer(v, v)
    np.testing.assert_allclose([m[0, 0], m[1, 1], m[0, 1]], cov, rtol=1e-12)


def test_subset_keeps_provenance():
    c = _cat([1, 2, 3], [0, 0, 0], [1, 2, 3], mags={"K": [10, np.nan, 12]})
    s = c.subset(np.array([False, True, True]))
    assert list(s.row) == [1, 2] and np.isnan(s.mags["K"][0]) and s.sigma_arcsec[1] == 3.0
