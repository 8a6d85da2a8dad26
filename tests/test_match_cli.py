"""``gpumatch match`` end to end on simulated files, with examples/match.toml."""
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gpumatch.cli import main
from gpumatch.io import read_table
from gpumatch.onesided.run import write_demo_inputs
from gpumatch.symmetric_config import ConfigError, load_match_config

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "match.toml"


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("match")
    paths = write_demo_inputs(root / "data", seed=5, n_tiles=3, width_deg=0.06, height_deg=0.06, n_a=200)
    cfg = root / "match.toml"
    shutil.copy(EXAMPLE, cfg)
    return root, cfg, paths


def _rows_read(path):
    return sum(1 for line in open(path) if line.strip() and not line.startswith("#")) - 1


def test_two_catalogues_end_to_end(setup, capsys):
    root, cfg, paths = setup
    out = root / "out2"
    assert main(["--backend", "numpy", "match", str(cfg), "--out", str(out), "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "matches accepted" in text and "xray" in text and "GN" in text
    for name in ("matches", "nonmatches_xray", "nonmatches_GN", "pairs"):
        for ext in ("csv", "parquet"):
            assert (out / "tables" / f"{name}.{ext}").is_file()
    for fig in ("mag_mag", "mag_histograms", "eta_xi", "probabilities"):
        for ext in ("png", "pdf"):
            assert (out / "figures" / f"{fig}.{ext}").stat().st_size > 1000
    m, meta = read_table(out / "tables" / "matches.parquet")
    assert meta["backend"].startswith("numpy") and meta["seed"] == 0 and meta["gpumatch_version"]
    assert meta["options"]["threshold"] is None and "xray" in meta["inputs"]
    nx, _ = read_table(out / "tables" / "nonmatches_xray.csv")
    # every X-ray input row exactly once; the HR0 filter's rows say so
    n_x = _rows_read(paths["a"])
    idx = np.concatenate([m["index_a"], nx["index"]])
    assert sorted(idx) == list(range(n_x))
    assert (nx["reason"] == "filtered").sum() > 0
    truth = pd.read_csv(paths["truth"]).set_index("index_a")["index_b"]
    assert np.mean(truth.loc[m["index_a"]].to_numpy() == m["index_b"].to_numpy()) > 0.75
    s = json.loads((out / "summary.json").read_text())
    assert s["match"]["n_matches"] == len(m)
    assert set(s["match"]["timing_s"]) >= {"islands", "photometry", "assignment"}
    assert (out / "summary.txt").read_text().startswith("gpumatch")


def test_three_catalogues_sequential_and_threshold(setup):
    root, cfg, paths = setup
    out = root / "out3"
    assert main(["match", str(cfg), "--out", str(out), "--catalogues", "xray,GN,VVV", "--threshold", "0.8",
                 "--no-figures"]) == 0
    s = json.loads((out / "summary.json").read_text())
    assert s["sequence"]["order"] == ["VVV", "GN", "xray"] and s["threshold"] == 0.8
    final, meta = read_table(out / "tables" / "final.parquet")
    assert meta["order"] == ["VVV", "GN", "xray"]
    for name, files in (("xray", [paths["a"]]), ("GN", paths["b"]), ("VVV", [paths["vvv"]])):
        n = sum(_rows_read(f) if name != "GN" else _rows_read(f) - 2 for f in files)  # TSV: units + dashes
        rows = final[f"row_{name}"].to_numpy()
        assert sorted(rows[rows >= 0]) == list(range(n)), name
    step2, _ = read_table(out / "tables" / "step2_matches.csv")
    assert (step2["p_hypothesis"] > 0.8).all()
    assert not (out / "figures").exists()


def test_given_order_and_help(setup, capsys):
    root, cfg, _ = setup
    out = root / "out_given"
    assert main(["match", str(cfg), "--out", str(out), "--catalogues", "GN,xray", "--order", "given",
                 "--no-figures"]) == 0
    assert (out / "tables" / "nonmatches_GN.csv").is_file()
    m, _ = read_table(out / "tables" / "matches.csv")
    assert {"id_a", "id_b", "p_match", "eta", "xi"} <= set(m.columns)
    with pytest.raises(SystemExit):
        main(["match", "--help"])
    assert "R_0.997" in capsys.readouterr().out


def test_config_errors(setup, tmp_path, capsys):
    root, cfg, _ = setup
    bad = tmp_path / "bad.toml"
    bad.write_text(cfg.read_text().replace('band = "Xmag"', 'band = "Kmag"').replace(
        'files = ["data/', f'files = ["{root}/data/'))
    assert main(["match", str(bad)]) == 1
    assert "catalogue[0].band" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="position errors"):
        load_match_config({"catalogue": [{"name": "a", "files": ["x"], "columns": {"ra": "r", "dec": "d"}},
                                         {"name": "b", "files": ["y"], "position_error_arcsec": 0.1}]},
                          check_files=False)
    with pytest.raises(ConfigError, match="match.threshold"):
        load_match_config({"catalogue": [{"name": "a", "files": ["x"], "position_error_arcsec": 0.1},
                                         {"name": "b", "files": ["y"], "position_error_arcsec": 0.1}],
                           "match": {"threshold": 0.3, "accept_by": "pair"}}, check_files=False)
    assert main(["match", str(cfg), "--catalogues", "xray,nope"]) == 1


def test_example_config_parses():
    cfg = load_match_config(EXAMPLE, check_files=False)
    assert list(cfg.catalogues) == ["xray", "GN", "VVV"] and cfg.use == ["xray", "GN"]
    assert cfg.order == "precision" and cfg.options.threshold is None
    assert cfg.catalogues["VVV"].position_error_arcsec == 0.08
    assert cfg.catalogues["xray"].hr0_filter["column"] == "HR0"
    assert cfg.catalogues["GN"].side.band == "Ks"
