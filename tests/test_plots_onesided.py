"""The one-sided figures render (PNG and PDF) from the result tables, including awkward cases:
empty bins, classes outside the bins, no candidates at all, candidates off the coverage,
missing Ks, RA wrapping at 0/360."""
import numpy as np
import pandas as pd
import pytest

from gpumatch.onesided.followup import coverage_of, local_density
from gpumatch.plots import save_figure, unwrap_ra
from gpumatch.plots import onesided as P

RA0, DEC0 = 0.02, -5.0  # a field straddling RA = 0/360


def field(rng, n=4000, half=0.04):
    x = rng.uniform(-half, half, n)
    y = rng.uniform(-half, half, n)
    ra = np.mod(RA0 + x / np.cos(np.radians(DEC0)), 360.0)
    return ra, DEC0 + y, rng.uniform(9, 18, n)


def counts_table(rng):
    edges = np.arange(6.0, 18.0, 0.5)
    lo, hi = edges[:-1], edges[1:]
    mu = 40 * 10 ** (0.3 * (lo - 16))
    n = rng.poisson(mu + np.where((lo > 11) & (lo < 14), 8, 0))
    sd = np.sqrt(mu)
    with np.errstate(divide="ignore", invalid="ignore"):
        nb = (n - mu) / sd
    df = pd.DataFrame({"label": [f"{a:.1f}-{b:.1f}" for a, b in zip(lo, hi)], "kind": "bin", "ks_lo": lo,
                       "ks_hi": hi, "n_real": n, "rand_mean": mu, "rand_std": sd, "excess": n - mu,
                       "significance": (n - mu) / np.sqrt(mu + 1), "significance_notebook": nb})
    extra = pd.DataFrame({"label": ["Ks < 6", "Ks >= 17.5", "Ks missing"], "kind": ["below", "above", "missing"],
                          "ks_lo": np.nan, "ks_hi": np.nan, "n_real": [0, 3, 2], "rand_mean": [0, 2.5, 1.0],
                          "rand_std": [0, 1.0, 0.5], "excess": [0, 0.5, 1.0], "significance": [np.nan, 0.3, 0.9],
                          "significance_notebook": [np.nan, 0.5, 2.0]})
    return pd.concat([df, extra], ignore_index=True)


def best_table(rng, n=300, with_candidates=True):
    nc = rng.poisson(1.5, n) if with_candidates else np.zeros(n, int)
    has = nc > 0
    p = np.where(has, rng.beta(0.6, 0.6, n), np.nan)
    return pd.DataFrame({"index_x": np.arange(n), "n_candidates": nc, "P_best": p,
                         "P0": np.where(has, (1 - p) * rng.uniform(0.2, 1, n), 1.0),
                         "norm_residual": np.where(has, rng.normal(0, 1e-16, n), 0.0)})


def thresholds_table(best):
    t = np.array([0.9, 0.5, 0.1])
    n = np.array([(best["P_best"] >= v).sum() for v in t])
    return pd.DataFrame({"threshold": t, "n": n, "fraction": n / len(best)})


def check(fig, tmp_path, name, formats=("png",)):
    paths = save_figure(fig, tmp_path / name, formats, dpi=40)
    for p in paths:
        data = p.read_bytes()
        assert len(data) > 2000
        assert data[:4] == (b"\x89PNG" if p.suffix == ".png" else b"%PDF")
    return paths


def test_unwrap_ra():
    np.testing.assert_allclose(unwrap_ra([359.9, 0.1, 180.0], 0.0), [-0.1, 0.1, -180.0])


def test_counts_and_sweep(rng, tmp_path):
    fig = P.figure_counts(counts_table(rng), n_trials=30)
    ax = fig.axes[0]
    assert ax.get_ylabel() == "matches per bin" and "[mag]" in fig.axes[2].get_xlabel()
    assert any("Ks missing" in t.get_text() for t in ax.texts)  # classes outside the bins are listed
    check(fig, tmp_path, "counts", ("png", "pdf"))
    sweep = pd.DataFrame({"shift_arcsec": [0, 5, 10, 15], "n_unique_mean": [90, 40, 38, 37],
                          "n_unique_std": [np.nan, 4, 5, 4]})
    fig = P.figure_sweep(sweep, real_unique=90, null_range=(8, 16))
    assert fig.axes[0].get_xlabel() == "applied shift [arcsec]"
    check(fig, tmp_path, "sweep")


@pytest.mark.parametrize("with_candidates", [True, False])
def test_probabilities(rng, tmp_path, with_candidates):
    best = best_table(rng, with_candidates=with_candidates)
    fig = P.figure_probabilities(best, thresholds_table(best))
    assert len(fig.axes) == 4
    assert fig.axes[1].get_xscale() == ("log" if with_candidates else "linear")
    check(fig, tmp_path, f"prob{with_candidates}", ("png", "pdf"))


def test_overlay_and_candidate_panels(rng, tmp_path):
    ra, dec, ks = field(rng)
    ks[:50] = np.nan  # missing Ks: drawn as crosses, never as Ks = 0
    fig = P.figure_overlay([{"label": "IR", "ra": ra, "dec": dec, "size": 0.5},
                            {"label": "X removed", "ra": ra[:20], "dec": dec[:20], "size": 10, "hollow": True},
                            {"label": "X kept", "ra": ra[20:60], "dec": dec[20:60], "size": 6, "color": "red"}])
    ax = fig.axes[0]
    lo, hi = ax.get_xlim()
    assert lo > hi and hi > -1 and lo < 1  # RA increases to the left, unwrapped around 0
    check(fig, tmp_path, "overlay", ("png", "pdf"))
    cand = pd.DataFrame({"name": ["a", "edge", "outside"], "ra": [ra[0], np.mod(RA0 + 0.04, 360), 10.0],
                         "dec": [dec[0], DEC0, DEC0], "r0": [2.0, 1.0, 1.0], "r1": [1.0, 0.5, 1.0],
                         "angle": [30.0, 0.0, 0.0], "epos": [1.5, np.nan, 1.0]})
    cov = coverage_of(ra, dec)
    fu = local_density(cand, ra, dec, radius_arcsec=60.0, coverage=cov)
    assert np.isnan(fu["ratio"][2])
    fig = P.figure_environment(fu, ra, dec, cov)
    assert "[arcmin]" in fig.axes[0].get_xlabel()
    check(fig, tmp_path, "environment")
    fig = P.figure_candidate_zooms(cand, ra, dec, ks, ir_kept=rng.uniform(size=len(ra)) < 0.8, zoom_arcsec=30,
                                   counterparts=[(ra[0], dec[0]), None, None], notes=["P = 0.9", "", "x"])
    assert fig.axes[0].get_xlim() == (30, -30)
    assert any(a.get_ylabel() == "$K_s$ [mag]" for a in fig.axes)  # the colourbar
    check(fig, tmp_path, "zooms", ("png", "pdf"))
