"""Calibration against the simulator's truth on crowded fields (fixed seeds, a few seconds)."""
import numpy as np
import pytest

from gpumatch.onesided import OneSidedOptions, run_onesided
from gpumatch.simulate import simulate_field

C1 = 1.0 - np.exp(-0.5)  # completeness of the 1-sigma quadrature radius


def _crowded(seed, **kw):
    spec = dict(seed=seed, n_a=1200, density_b_arcsec2=0.12, width_deg=0.1, height_deg=0.1)
    return simulate_field(**{**spec, **kw})


def _ece(p, correct, nbins=10):
    """Expected calibration error over equal-width probability bins."""
    b = np.clip((p * nbins).astype(int), 0, nbins - 1)
    return sum(np.sum(b == k) / len(p) * abs(p[b == k].mean() - correct[b == k].mean())
               for k in range(nbins) if np.any(b == k))


@pytest.mark.parametrize("seed", [21, 22])
@pytest.mark.parametrize("f_mode", ["em", "excess"])
def test_best_match_probabilities_are_calibrated(seed, f_mode):
    f = _crowded(seed)
    r = run_onesided(f.a, f.b, OneSidedOptions(seed=seed, f_mode=f_mode, sweep_radii_arcsec=()),
                     backend="numpy", progress=False)
    b = r.best
    has = b.n_candidates.to_numpy() > 0
    correct = b.index_ir.to_numpy()[has] == f.truth[b.index_x.to_numpy()[has]]
    assert _ece(b.P_best.to_numpy()[has], correct) <= 0.1
    true_frac = np.mean(f.truth >= 0)
    assert abs(np.mean(1 - b.P0) - true_frac) <= 0.05
    # the candidates hold the true counterparts (5 sigma), so the best match finds most
    assert correct.sum() > 0.8 * np.sum(f.truth >= 0)


def test_notebook_cumulative_form_is_not_calibrated():
    """The cumulative f(<=K)/rho(<=K) weights faint candidates too much (documented)."""
    f = _crowded(21)
    r = run_onesided(f.a, f.b, OneSidedOptions(seed=21, weight_form="cumulative", sweep_radii_arcsec=()),
                     backend="numpy", progress=False)
    true_frac = np.mean(f.truth >= 0)
    assert np.mean(1 - r.best.P0) - true_frac > 0.1


@pytest.mark.parametrize("seed", [31, 32, 33, 34, 35])
def test_no_counterparts_no_excess(seed):
    f = _crowded(seed, counterpart_fraction=0.0)
    r = run_onesided(f.a, f.b, OneSidedOptions(seed=seed, sweep_radii_arcsec=()), backend="numpy",
                     progress=False)
    assert np.all(np.abs(r.counts["significance"]) < 3)
    tot = r.trial_counts.sum(axis=1)
    err = np.sqrt(max(tot.var(ddof=1), tot.mean()) * (1 + 1 / len(tot)))
    assert abs(r.counts["excess"].sum()) < 3 * err
    assert r.meta["f_lim"] < 0.05


@pytest.mark.parametrize("seed", [41, 42, 43])
def test_total_excess_recovers_the_injected_counterparts(seed):
    f = _crowded(seed)
    r = run_onesided(f.a, f.b, OneSidedOptions(seed=seed, sweep_radii_arcsec=()), backend="numpy",
                     progress=False)
    tot = r.trial_counts.sum(axis=1)
    err = np.sqrt(max(tot.var(ddof=1), tot.mean()) * (1 + 1 / len(tot)))
    excess = r.counts["excess"].sum()
    n_cp = np.sum(f.truth >= 0)
    # the excess counts the counterparts inside the 1-sigma radius: n_cp (1 - exp(-1/2)) on average
    err_cp = np.sqrt(err**2 + n_cp * C1 * (1 - C1))
    assert abs(excess - n_cp * C1) < 3 * err_cp
    assert excess > 5 * err  # and it is a detection
