import numpy as np

from gpumatch.catalogue import Catalogue, cov_circular, cov_ellipse
from gpumatch.sequential import merge_matched, weighted_mean_position


def test_weighted_mean_equal_errors_is_midpoint():
    ra, dec, cov = weighted_mean_position([10.0], [0.0], cov_circular([1.0]), [10.0 + 2 / 3600], [0.0],
                                          cov_circular([1.0]))
    np.testing.assert_allclose(ra, [10.0 + 1 / 3600], rtol=0, atol=1e-12)
    np.testing.assert_allclose(cov, [[0.5, 0.5, 0.0]], rtol=1e-12)


def test_weighted_mean_pulls_to_precise_side_and_wraps():
    ra, dec, cov = weighted_mean_position([359.9999], [-30.0], cov_circular([0.1]), [0.0001], [-30.0],
                                          cov_circular([1.0]))
    # the precise A position dominates: 1/0.01 vs 1/1 weight
    off = (np.mod(ra - 359.9999 + 180, 360) - 180) * np.cos(np.radians(-30)) * 3600
    expected = (0.0002 * np.cos(np.radians(-30)) * 3600) * (1 / 1.0) / (1 / 0.01 + 1 / 1.0)
    np.testing.assert_allclose(off, [expected], rtol=1e-9)


def test_weighted_mean_with_ellipse_matches_linear_algebra():
    ca = cov_ellipse([2.0], [0.5], [40.0])
    cb = cov_ellipse([1.0], [0.7], [-20.0])
    d = np.array([0.8, -0.3])  # arcsec east, north of A
    ra, dec, cov = weighted_mean_position([150.0], [2.0], ca, [150.0 + d[0] / 3600 / np.cos(np.radians(2.0))],
                                          [2.0 + d[1] / 3600], cb)
    A = np.array([[ca[0, 0], ca[0, 2]], [ca[0, 2], ca[0, 1]]])
    B = np.array([[cb[0, 0], cb[0, 2]], [cb[0, 2], cb[0, 1]]])
    S = np.linalg.inv(np.linalg.inv(A) + np.linalg.inv(B))
    m = S @ np.linalg.inv(B) @ d
    np.testing.assert_allclose([(ra[0] - 150.0) * np.cos(np.radians(2.0)) * 3600, (dec[0] - 2.0) * 3600], m,
                               atol=1e-6)
    np.testing.assert_allclose(cov[0], [S[0, 0], S[1, 1], S[0, 1]], rtol=1e-12)


def test_merge_keeps_every_source_once():
    a = Catalogue("X", np.array([1.0, 2.0, 3.0]), np.zeros(3), cov=cov_circular([1, 1, 1]),
                  mags={"K": np.array([10.0, 11.0, 12.0])}, ids=np.array(["a0", "a1", "a2"], dtype=object))
    b = Catalogue("IR", np.array([1.0, 5.0]), np.zeros(2), cov=cov_circular([0.1, 0.1]),
                  mags={"K": np.array([9.0, 8.0])})
    m = merge_matched(a, b, [0], [0])
    assert len(m) == 3 + 2 - 1
    assert list(m.extra["row_X"]) == [0, 1, 2, -1]
    assert list(m.extra["row_IR"]) == [0, -1, -1, 1]
    assert list(m.extra["merge_kind"]) == ["matched", "only_X", "only_X", "only_IR"]
    assert np.isnan(m.mags["IR_K"][1]) and m.mags["X_K"][0] == 10.0
    # a second merge carries the first one's provenance
    c = Catalogue("V", np.array([5.0]), np.zeros(1), cov=cov_circular([0.5]))
    m2 = merge_matched(m, c, [3], [0])
    assert list(m2.extra["row_IR"]) == [1, 0, -1, -1]
    assert list(m2.extra["row_V"]) == [0, -1, -1, -1]
