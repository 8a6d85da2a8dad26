import json

from gpumatch.cli import main


def test_demo_runs_both_jobs_and_scores_against_truth(tmp_path, capsys):
    assert main(["--backend", "numpy", "demo", "--out", str(tmp_path), "--no-figures"]) == 0
    out = capsys.readouterr().out
    assert "one-sided job" in out and "symmetric job" in out and "Outputs:" in out
    for p in ("data/xray.csv", "data/ir_tile7.tsv", "onesided.toml", "match.toml",
              "onesided/summary.txt", "match/summary.txt", "match/tables/matches.csv"):
        assert (tmp_path / p).exists(), p
    rep = json.loads((tmp_path / "demo.json").read_text())
    sc = rep["symmetric_vs_truth"]
    assert sc["precision"] > 0.75 and sc["recall"] > 0.75


def test_packaged_configs_are_the_examples():
    from importlib.resources import files
    from pathlib import Path

    ex = Path(__file__).resolve().parents[1] / "examples"
    for name in ("onesided.toml", "match.toml"):
        assert files("gpumatch.data").joinpath(name).read_text() == (ex / name).read_text()
