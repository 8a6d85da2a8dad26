"""`gpumatch onesided CONFIG.toml`: config validation, an end-to-end run on a small simulated
field (tiles + CSVs), conservation of every input row, metadata, and the colour-side wording."""
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gpumatch.cli import main
from gpumatch.io import read_table, read_table_meta
from gpumatch.onesided.config import ConfigError, load_config, parse_config
from gpumatch.onesided.run import run_from_config, write_demo_inputs

ROOT = Path(__file__).resolve().parents[1]

CONFIG = '''
backend = "numpy"
[xray]
name = "muno"
files = ["data/xray.csv"]
on_bad_rows = "drop"
[xray.columns]
ra = "RAJ2000"
dec = "DEJ2000"
id = "CXOGC"
err = "ePos"
keep = ["Xmag"]
[xray.hr0_filter]
[[ir]]
name = "GN"
files = ["data/ir_tile*.tsv"]
sigma_ir_arcsec = 0.1
[ir.columns]
mags = { J = "Jmag", H = "Hmag", Ks = "Ksmag" }
[ir.colour_filter]
[[ir]]
name = "VVV"
files = ["data/vvv.csv"]
[ir.columns]
id = "srcid"
mags = { J = "Jmag3", H = "Hmag3", Ks = "Ksmag3" }
[ir.colour_filter]
[onesided]
n_trials = 5
sweep_radii_arcsec = [0.0, 5.0, 10.0]
sweep_trials = 3
seed = 3
[candidates]
file = "data/candidates.csv"
radius_arcsec = 40.0
zoom_arcsec = 5.0
[output]
folder = "out"
dpi = 40
'''

FIELD = dict(n_tiles=3, width_deg=0.06, height_deg=0.06, n_a=150)


@pytest.fixture(scope="module")
def field_dir(tmp_path_factory):
    """A small simulated field in the example layout, with one bad X-ray row appended."""
    d = tmp_path_factory.mktemp("field")
    write_demo_inputs(d / "data", seed=5, **FIELD)
    with open(d / "data" / "xray.csv", "a") as fh:
        fh.write("XBAD,266.4,-29.0,-1.0,0.5,15.0\n")  # non-positive ePos: dropped as invalid
    (d / "run.toml").write_text(CONFIG)
    return d


@pytest.fixture(scope="module")
def e2e(field_dir):
    """One full CLI run with figures (PNG + PDF); returns (output folder, stdout)."""
    import contextlib
    import io

    out = field_dir / "cli-out"
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = main(["onesided", str(field_dir / "run.toml"), "--out", str(out), "--seed", "11"])
    assert rc == 0
    return out, buf.getvalue()


# -- config validation -----------------------------------------------------------------
def base_dict():
    import tomllib

    return tomllib.loads(CONFIG)


def edit(d, path, value=None, delete=False):
    *parents, last = path
    node = d
    for p in parents:
        node = node[p]
    if delete:
        del node[last]
    else:
        node[last] = value
    return d


@pytest.mark.parametrize("path,value,delete,key", [
    (("xray",), None, True, "xray: is required"),
    (("xray", "files"), ["data/nope.csv"], False, "xray.files[0]: no such file"),
    (("ir", 0, "files"), ["data/none_*.tsv"], False, "ir[0].files[0]: pattern"),
    (("xray", "columns", "rra"), "RAJ2000", False, "xray.columns.rra: is not a column role"),
    (("xray", "columns", "err_unit"), "furlong", False, "xray.columns: err_unit must be one of"),
    (("xray", "hr0_filter", "lo"), 0.5, False, "xray.hr0_filter.lo: must be below hi"),
    (("xray", "name"), "2muno", False, "xray.name:"),
    (("ir", 1, "name"), "GN", False, "ir[1].name: 'GN' is used twice"),
    (("ir", 0, "colour_filter", "remove"), "green", False, "ir[0].colour_filter.remove: must be one of"),
    (("ir", 0, "colour_filter", "j"), "Jmag", False, "ir[0].colour_filter.j: band 'Jmag'"),
    (("ir", 0, "columns", "mags"), {"J": "Jmag", "H": "Hmag"}, False, "ir[0].colour_filter.k: band 'Ks'"),
    (("onesided", "ks_band"), "K", False, "ir[0].columns.mags: has no band 'K'"),
    (("ir", 0, "sigma_ir_arcsec"), -0.1, False, "ir[0].sigma_ir_arcsec: must be positive"),
    (("ir", 0, "sigmaIR"), 0.1, False, "ir[0].sigmaIR: unknown key"),
    (("ir",), [], False, "ir: needs at least one"),
    (("onesided", "n_trial"), 5, False, "onesided.n_trial: is not a one-sided option"),
    (("onesided", "n_trials"), 1, False, "onesided.n_trials: n_trials must be >= 2"),
    (("onesided", "f_mode"), "magic", False, "onesided.f_mode:"),
    (("onesided", "n_trials"), "many", False, "onesided.n_trials:"),
    (("candidates", "list"), [{"name": "a"}], False, "candidates.list: give either"),
    (("candidates", "radius_arcsec"), 0, False, "candidates.radius_arcsec: must be positive"),
    (("output", "figures"), ["gif"], False, "output.figures: 'gif' is not one of"),
    (("output", "dpi"), "high", False, "output.dpi: must be int"),
    (("backend",), "gpu", False, "backend: must be one of"),
    (("outptu",), {}, False, "outptu: unknown key"),
])
def test_config_errors_name_the_key(field_dir, path, value, delete, key):
    d = edit(base_dict(), path, value, delete)
    with pytest.raises(ConfigError) as exc:
        parse_config(d, base=field_dir, source="run.toml")
    assert str(exc.value).startswith(f"run.toml: {key}"), str(exc.value)


def test_config_candidate_file_errors_and_toml_syntax(field_dir, tmp_path):
    (tmp_path / "bad.csv").write_text("name,ra,dec\nA,1,2\n")
    d = edit(base_dict(), ("candidates", "file"), str(tmp_path / "bad.csv"))
    with pytest.raises(ConfigError, match=r"candidates.file: .*lacks column"):
        parse_config(d, base=field_dir)
    p = tmp_path / "broken.toml"
    p.write_text("[xray\nname = 1\n")
    with pytest.raises(ConfigError, match=r"broken.toml: \(syntax\)"):
        load_config(p)
    with pytest.raises(FileNotFoundError):
        load_config(tmp_path / "missing.toml")


def test_config_resolves_paths_and_defaults(field_dir):
    cfg = load_config(field_dir / "run.toml")
    assert [p.name for p in cfg.ir[0].files] == ["ir_tile1.tsv", "ir_tile2.tsv", "ir_tile3.tsv"]
    assert cfg.output.folder == field_dir / "out"
    assert cfg.output.figures == ("png", "pdf") and cfg.output.tables == ("csv", "parquet")
    assert "HR0" in cfg.xray.columns["keep"]  # the filter's column is carried automatically
    assert cfg.ir[0].colour_filter["remove"] is None  # = the preset's side, decided at run time
    assert cfg.ir[0].options == {"sigma_ir_arcsec": 0.1}
    assert len(cfg.candidates.table) == 5


def test_example_config_is_valid_on_demo_data(tmp_path):
    shutil.copy(ROOT / "examples" / "onesided.toml", tmp_path)
    cfg = load_config(tmp_path / "onesided.toml", check_files=False)
    assert [c.name for c in cfg.ir] == ["GN", "VVV"]
    assert main(["onesided", "--demo-data", str(tmp_path / "data")]) == 0
    cfg = load_config(tmp_path / "onesided.toml")
    assert len(cfg.ir[0].files) == 7 and cfg.candidates.table is not None


def test_help_explains_options(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["onesided", "--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    for word in ("CONFIG.toml", "--out", "--no-figures", "--seed", "--demo-data", "arcsec", "deg", "mag"):
        assert word in text


# -- the end-to-end run -------------------------------------------------------------------
TABLES = ["muno_removed", "merged", "candidates"] + [
    f"{c}_{t}" for c in ("GN", "VVV") for t in (
        "removed", "kept", "counts", "trials", "shifts", "sweep", "candidates", "best", "thresholds",
        "f_table", "classes", "followup")]
FIGURES = ["overlay"] + [f"{c}_{f}" for c in ("GN", "VVV")
                         for f in ("counts", "sweep", "probabilities", "environment", "candidates")]


def test_e2e_writes_every_table_figure_and_summary(e2e):
    out, stdout = e2e
    for name in TABLES:
        for ext in ("csv", "parquet"):
            assert (out / "tables" / f"{name}.{ext}").stat().st_size > 0, name
    for name in FIGURES:
        png = (out / "figures" / f"{name}.png").read_bytes()
        pdf = (out / "figures" / f"{name}.pdf").read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000, name
        assert pdf[:5] == b"%PDF-" and len(pdf) > 5000, name
    text = (out / "summary.txt").read_text()
    assert text.strip() == stdout.strip()
    assert "removed the BLUE side" in text and "gpumatch default" in text
    assert "1 invalid" in text and "removed by the HR0 window" in text
    assert "hr0 foreground (-1 < HR0 < -0.175)" in text and "P >= 0.9" in text
    summary = json.loads((out / "summary.json").read_text())
    assert summary["seed"] == 11 and summary["xray"]["n_input"] == 151
    assert set(summary["tables"]) == set(TABLES)


def test_e2e_every_input_row_exactly_once(e2e, field_dir):
    out, _ = e2e
    t = lambda name: read_table(out / "tables" / f"{name}.parquet")[0]  # noqa: E731
    n_x = len(pd.read_csv(field_dir / "data" / "xray.csv"))
    removed = t("muno_removed")
    assert set(removed["stage"]) == {"validation", "hr0_filter"}
    assert removed.loc[removed["stage"] == "validation", "reason"].str.contains("error").all()
    for ir in ("GN", "VVV"):
        best = t(f"{ir}_best")
        rows = np.sort(np.r_[best["index_x"].to_numpy(), removed["row"].to_numpy()])
        np.testing.assert_array_equal(rows, np.arange(n_x))
    n_ir = {"GN": sum(len(pd.read_csv(p, sep=";", comment="#")) - 2
                      for p in sorted((field_dir / "data").glob("ir_tile*.tsv"))),
            "VVV": len(pd.read_csv(field_dir / "data" / "vvv.csv"))}
    for ir, n in n_ir.items():
        kept, rem = t(f"{ir}_kept"), t(f"{ir}_removed")
        rows = np.sort(np.r_[kept["row"].to_numpy(), rem["row"].to_numpy()])
        np.testing.assert_array_equal(rows, np.arange(n))
        assert (rem["stage"] == "colour_filter").all()
        assert rem["reason"].str.startswith("colour foreground (blue)").all()
    merged = t("merged")
    assert len(merged) == len(t("GN_best")) and merged["index_x"].is_unique
    for col in ("GN_id_ir", "VVV_id_ir", "GN_P_best", "VVV_P_best", "best_catalogue", "GN_VVV_same"):
        assert col in merged


def test_e2e_metadata_and_consistency(e2e):
    out, _ = e2e
    meta = read_table_meta(out / "tables" / "GN_best.parquet")
    assert meta["gpumatch_version"] and meta["backend"].startswith("numpy")
    assert meta["seed"] == 11 and meta["options"]["n_trials"] == 5 and meta["options"]["colour_remove"] == "blue"
    assert meta["inputs"]["GN"][0].endswith("ir_tile1.tsv")
    csv, _ = read_table(out / "tables" / "GN_counts.csv")
    pq, _ = read_table(out / "tables" / "GN_counts.parquet")
    np.testing.assert_array_equal(csv["n_real"], pq["n_real"])
    best, _ = read_table(out / "tables" / "GN_best.parquet")
    has = best["n_candidates"] > 0
    assert np.isfinite(best.loc[has, "ra_ir"]).all() and best.loc[~has, "ra_ir"].isna().all()
    fu, _ = read_table(out / "tables" / "GN_followup.parquet")
    assert len(fu) == 5 and (fu["area_fraction"] > 0.2).all() and (fu["radius_arcsec"] == 40).all()


def test_notebook_preset_removes_red_side_fits_only_no_figures(field_dir, tmp_path):
    import tomllib

    d = tomllib.loads(CONFIG)
    d["onesided"]["preset"] = "notebook"
    d["output"]["tables"] = ["fits"]
    del d["ir"][1]
    del d["candidates"]
    cfg = parse_config(d, base=field_dir)
    s = run_from_config(cfg, out=tmp_path / "nb", figures=False, progress=False)
    assert "removed the RED side" in s["text"] and "notebook's direction" in s["text"]
    assert not (tmp_path / "nb" / "figures").exists() and s["figures"] == []
    rem, meta = read_table(tmp_path / "nb" / "tables" / "GN_removed.fits")
    assert meta["options"]["colour_remove"] == "red" and meta["options"]["preset"] == "notebook"
    assert rem["reason"].str.contains("red, notebook direction").all()
    assert not list((tmp_path / "nb" / "tables").glob("*.csv"))


def test_top_n_candidates_from_best(field_dir, tmp_path):
    import tomllib

    d = tomllib.loads(CONFIG)
    del d["ir"][1]
    d["candidates"] = {"top": 3, "radius_arcsec": 30.0}
    d["output"]["figures"] = ["png"]
    s = run_from_config(parse_config(d, base=field_dir), out=tmp_path / "top", progress=False)
    cand, _ = read_table(tmp_path / "top" / "tables" / "candidates.parquet")
    best, _ = read_table(tmp_path / "top" / "tables" / "GN_best.parquet")
    top = best.sort_values("P_best", ascending=False).head(3)
    assert list(cand["name"]) == [str(v) for v in top["id_x"]]
    np.testing.assert_allclose(cand["epos"], top["sigma_x_arcsec"])
    assert (tmp_path / "top" / "figures" / "GN_candidates.png").exists()
    assert len(s["followup"]["GN"]) == 3
