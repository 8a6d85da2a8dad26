"""Calibration of the symmetric match against the truth of a simulated crowded field.

One field (fixed seed): 600 X-ray-like sources with 0.3-2" errors, 0.1 infrared sources per
arcsec^2 (0.1" errors), 37.5% of the X-ray sources with a counterpart whose Ks correlates with
the X-ray magnitude.  Checked: the per-pair match probabilities are calibrated (expected
calibration error <= 0.05 over bins of 0.1), the accepted matches beat nearest-neighbour
matching within 3 sigma in F1, and the counterpart density N_c estimated from the data agrees
with the true one.
"""
import numpy as np
import pytest

from gpumatch.simulate import FieldSpec, simulate_field
from gpumatch.sky import pairs
from gpumatch.symmetric import MatchOptions, SideOptions, match_catalogues

SPEC = FieldSpec(seed=3, n_a=600, width_deg=0.12, height_deg=0.12, density_b_arcsec2=0.1)


@pytest.fixture(scope="module")
def field():
    sim = simulate_field(SPEC)
    res = match_catalogues(sim.a, sim.b, MatchOptions(a=SideOptions(band="Xmag"), b=SideOptions(band="Ks")))
    return sim, res


def expected_calibration_error(p, y, n_bins=10):
    """sum over bins of |mean p - fraction true| weighted by the bin's share of pairs."""
    k = np.clip((np.asarray(p) * n_bins).astype(int), 0, n_bins - 1)
    err = 0.0
    for b in range(n_bins):
        sel = k == b
        if sel.any():
            err += sel.sum() * abs(p[sel].mean() - y[sel].mean())
    return err / len(p)


def f1(pred_a, pred_b, truth):
    tp = int(np.sum(truth[pred_a] == pred_b))
    return 2 * tp / (len(pred_a) + int(np.sum(truth >= 0)))


def nearest_within_3_sigma(sim):
    """Each A source's nearest B source within 3 sqrt(sigma_a^2 + sigma_b^2)."""
    a, b = sim.a, sim.b
    p = pairs(a.ra, a.dec, b.ra, b.dec, 3 * np.sqrt(a.sigma_arcsec ** 2 + b.sigma_arcsec.max() ** 2))
    order = np.lexsort((p.sep_arcsec, p.i))
    i, j = p.i[order], p.j[order]
    first = np.r_[True, i[1:] != i[:-1]]
    return i[first], j[first]


def test_pair_probabilities_are_calibrated(field):
    sim, res = field
    pr = res.pairs
    truth = sim.truth[pr["index_a"].to_numpy()] == pr["index_b"].to_numpy()
    ece = expected_calibration_error(pr["p_match"].to_numpy(), truth)
    assert ece <= 0.05, ece
    # the expected number of true pairs among the accepted ones is close to the real number
    m = res.matches
    n_true = int(np.sum(sim.truth[m["index_a"]] == m["index_b"]))
    assert abs(m["p_match"].sum() - n_true) <= 0.05 * len(m) + 3


def test_beats_nearest_neighbour(field):
    sim, res = field
    m = res.matches
    ours = f1(m["index_a"].to_numpy(), m["index_b"].to_numpy(), sim.truth)
    nn = f1(*nearest_within_3_sigma(sim), sim.truth)
    assert ours > nn + 0.1, (ours, nn)


def test_counterpart_density_recovered(field):
    sim, res = field
    d = res.summary["densities_per_arcsec2"]
    true_nc = np.sum(sim.truth >= 0) / SPEC.area_arcsec2
    assert abs(d["N_c"] - true_nc) <= 3 * d["N_c_sd"]
    assert abs(d["N_c"] / true_nc - 1) < 0.15
    assert d["N_a"] + d["N_c"] == pytest.approx(d["N_a_total"])
