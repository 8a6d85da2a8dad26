"""Selection rules: HR0 window and the GALACTICNUCLEUS colour test (defect 7: direction)."""
import numpy as np
import pandas as pd
import pytest

from gpumatch.catalogue import Catalogue
from gpumatch.filters import FilterResult, colour_foreground, hr0_foreground
from gpumatch.simulate import simulate_field

NAN = np.nan


def _xcat(hr0):
    n = len(hr0)
    return Catalogue("x", np.linspace(10, 11, n), np.zeros(n), extra=pd.DataFrame({"HR0": hr0}))


def _ircat(j, h, k):
    n = len(j)
    return Catalogue("ir", np.linspace(10, 11, n), np.zeros(n), mags={"J": j, "H": h, "Ks": k})


def test_hr0_window_is_strict_and_missing_is_kept():
    hr = [-1.0, -0.99, -0.5, -0.175, -0.17, 0.3, NAN]
    r = hr0_foreground(_xcat(hr))
    assert r.keep.tolist() == [True, False, False, True, True, True, True]
    assert r.reason[1].startswith("hr0 foreground") and r.reason[0] == ""
    assert r.info[-1] == "hr0 missing (kept)" and r.reason[-1] == ""
    s = r.summary()
    assert s["count"].sum() == len(hr)
    assert dict(zip(s["reason"], s["count"]))["hr0 missing (kept)"] == 1
    assert s.loc[s.action == "removed", "count"].sum() == 2
    assert "removed 2 of 7" in s.attrs["description"]


def test_hr0_apply_keeps_provenance_rows():
    cat = _xcat([0.5, -0.5, NAN, 0.9])
    r = hr0_foreground(cat)
    sub = r.apply(cat)
    assert sub.row.tolist() == [0, 2, 3]
    assert "hr0_foreground" in sub.meta["filters"][0]
    f = r.frame(cat)
    assert list(f.columns) == ["row", "id", "keep", "reason", "info"]


def test_hr0_needs_its_column():
    cat = Catalogue("x", [1.0], [0.0])
    with pytest.raises(KeyError, match="HR0"):
        hr0_foreground(cat)


# rows: all present blue, all present red (J-H), one colour fails only (H-Ks),
# J missing blue, J missing red, H missing blue/red, Ks missing blue/red, two missing, all missing
J = [12.0, 15.0, 12.0, NAN, NAN, 12.0, 16.0, 12.0, 16.0, NAN, NAN]
H = [11.0, 12.0, 11.5, 11.0, 13.0, NAN, NAN, 11.0, 13.0, NAN, NAN]
K = [10.5, 11.5, 10.3, 10.5, 11.0, 10.5, 11.0, NAN, NAN, 10.0, NAN]
PASSES = [True, False, False, True, False, True, False, True, False, None, None]


def test_colour_test_and_missing_band_rules_default_removes_blue():
    r = colour_foreground(_ircat(J, H, K))
    for i, p in enumerate(PASSES):
        if p is None:
            assert r.keep[i] and r.info[i].startswith("colour ambiguous"), i
        else:
            assert r.keep[i] == (not p), i
            if p:
                assert r.reason[i].startswith("colour foreground (blue)"), r.reason[i]
    assert "H-Ks; J missing" in r.reason[3]
    assert "J-Ks; H missing" in r.reason[5]
    assert "J-H; Ks missing" in r.reason[7]
    assert "BLUE side" in r.summary().attrs["description"]


def test_colour_red_is_the_notebook_direction_and_the_complement():
    blue = colour_foreground(_ircat(J, H, K))
    red = colour_foreground(_ircat(J, H, K), remove="red")
    testable = np.array([p is not None for p in PASSES])
    assert np.all(blue.keep[testable] != red.keep[testable])
    assert np.all(blue.keep[~testable] & red.keep[~testable])
    assert all(t.startswith("colour removed (red, notebook direction)") for t in red.reason[~red.keep])
    assert "RED side" in red.summary().attrs["description"]
    with pytest.raises(ValueError):
        colour_foreground(_ircat(J, H, K), remove="green")


def test_zero_magnitude_is_a_magnitude_not_missing():
    r = colour_foreground(_ircat([0.0], [5.0], [4.0]))  # J-H = -5: blue
    assert not r.keep[0] and r.info[0] == ""


def test_defect7_default_removes_the_blue_foreground_on_a_simulated_field():
    """The notebook's direction keeps the blue foreground and removes most bulge stars."""
    f = simulate_field(seed=5, n_a=50, density_b_arcsec2=0.05, width_deg=0.05, height_deg=0.05)
    pop = f.b_population
    ours = colour_foreground(f.b)
    nb = colour_foreground(f.b, remove="red")
    two_bands = np.array([not i.startswith("colour ambiguous") for i in ours.info])
    fg = (pop == "foreground") & two_bands
    bg = (pop != "foreground") & two_bands
    assert fg.sum() > 50 and bg.sum() > 200
    # ours: removes nearly all testable foreground, keeps nearly all bulge/background
    assert np.mean(~ours.keep[fg]) > 0.9
    assert np.mean(~ours.keep[bg]) < 0.05
    # the notebook's: the opposite -- the "cleaned" catalogue is mostly foreground
    assert np.mean(~nb.keep[bg]) > 0.9
    assert np.mean(nb.keep[fg]) > 0.9


def test_filter_result_checks_consistency():
    with pytest.raises(ValueError):
        FilterResult(np.array([True]), np.array(["x"], dtype=object), np.array([""], dtype=object), "r", "d")
