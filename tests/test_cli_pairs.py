"""``gpumatch pairs`` end to end through gpumatch.cli.main, checked against gpumatch.sky.pairs."""
from pathlib import Path

import numpy as np
import pytest

from gpumatch import __version__
from gpumatch.cli import build_parser, main
from gpumatch.io import ColumnMap, read_catalogue, read_table
from gpumatch.sky import pairs

RNG_SEED = 42


def write_x(path, n=40, seed=RNG_SEED, bad_row=None):
    """An X-ray-like CSV: name, position in a 0.05 deg field, circular error ePos (arcsec)."""
    rng = np.random.default_rng(seed)
    ra = 266.40 + rng.uniform(0, 0.05, n)
    dec = -29.00 + rng.uniform(0, 0.05, n)
    err = rng.uniform(0.3, 2.0, n)
    lines = ["name,RAJ2000,DEJ2000,ePos"]
    lines += [f"X{k:03d},{float(ra[k])!r},{float(dec[k])!r},{float(err[k])!r}" for k in range(n)]
    if bad_row is not None:
        lines[1 + bad_row] = f"X{bad_row:03d},{float(ra[bad_row])!r},-95.0,1.0"
    Path(path).write_text("\n".join(lines) + "\n")
    return path


def write_ir_tile(path, n, seed):
    """A VizieR-style semicolon tile with a units and a dashes line and blank magnitudes."""
    rng = np.random.default_rng(seed)
    ra = 266.40 + rng.uniform(0, 0.05, n)
    dec = -29.00 + rng.uniform(0, 0.05, n)
    lines = ["#", "#   VizieR Astronomical Server", "#", "GN;RAJ2000;DEJ2000;Ksmag", "-;deg;deg;mag",
             "----;----------;----------;------"]
    lines += [f"G{seed}-{k};{float(ra[k])!r};{float(dec[k])!r};{'' if k % 4 == 0 else round(12 + k % 7, 2)}"
              for k in range(n)]
    Path(path).write_text("\n".join(lines) + "\n\n")
    return path


@pytest.fixture
def files(tmp_path):
    x = write_x(tmp_path / "muno.csv")
    tiles = [write_ir_tile(tmp_path / f"{k}.tsv", n, seed=k) for k, n in ((1, 300), (2, 250), (3, 350))]
    return x, tiles


def run(argv, capsys, backend="numpy"):
    code = main(["--backend", backend] + [str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def reference(x, tiles, radius_of):
    a = read_catalogue(x, ColumnMap(err="ePos"))
    b = read_catalogue(tiles)
    return a, b, pairs(a.ra, a.dec, b.ra, b.dec, radius_of(a), backend="numpy")


def test_fixed_radius_pairs_match_sky_pairs(files, tmp_path, capsys, backend):
    """On every backend the output equals the NumPy reference search."""
    x, tiles = files
    out = tmp_path / "pairs.parquet"
    code, stdout, _ = run(["pairs", x, ",".join(map(str, tiles)), "--radius-arcsec", 15,
                           "--id-a", "name", "--id-b", "GN", "--out", out], capsys, backend.name)
    assert code == 0
    df, meta = read_table(out)
    assert list(df.columns) == ["index_a", "index_b", "sep_arcsec", "id_a", "id_b"]
    a, b, ref = reference(x, tiles, lambda a: 15.0)
    assert len(ref) > 20  # the test field is dense enough to give pairs
    np.testing.assert_array_equal(df["index_a"], ref.i)
    np.testing.assert_array_equal(df["index_b"], ref.j)
    np.testing.assert_array_equal(df["sep_arcsec"], ref.sep_arcsec)
    assert list(df["id_a"]) == [f"X{i:03d}" for i in ref.i]
    # index_b counts rows over the tiles in the order given; the id says which tile.
    tile_of = np.searchsorted([300, 550], ref.j, side="right") + 1
    first = np.array([0, 0, 300, 550])[tile_of]
    assert list(df["id_b"]) == [f"G{t}-{j - f}" for t, j, f in zip(tile_of, ref.j, first)]
    assert f"{len(ref)} pairs" in stdout
    assert meta["gpumatch_version"] == __version__ and meta["command"] == "pairs"
    assert meta["backend"].startswith(backend.name)
    assert meta["inputs"] == {"a": [str(x)], "b": [str(t) for t in tiles]}
    assert meta["options"]["radius_arcsec"] == 15.0 and meta["n_pairs"] == len(ref)
    assert meta["rows_read"] == {"a": 40, "b": 900}


def test_quadrature_radius_and_nsigma(files, tmp_path, capsys, backend):
    x, tiles = files
    out = tmp_path / "pairs.csv"
    code, _, _ = run(["pairs", x, f"{tiles[0]},{tiles[1]},{tiles[2]}", "--sigma-col-a", "ePos",
                      "--sigma-b", 0.5, "--nsigma", 3, "--out", out], capsys, backend.name)
    assert code == 0
    df, meta = read_table(out)
    assert list(df.columns) == ["index_a", "index_b", "sep_arcsec"]
    a, b, ref = reference(x, tiles, lambda a: 3.0 * np.sqrt(a.sigma_arcsec ** 2 + 0.25))
    assert len(ref) > 0
    np.testing.assert_array_equal(df["index_a"], ref.i)
    np.testing.assert_array_equal(df["index_b"], ref.j)
    np.testing.assert_array_equal(df["sep_arcsec"], ref.sep_arcsec)
    radius = 3.0 * np.sqrt(a.sigma_arcsec[ref.i] ** 2 + 0.25)
    assert (df["sep_arcsec"] <= radius * (1 + 1e-9)).all()
    # A smaller K gives a strict subset.
    out1 = tmp_path / "k1.csv"
    assert run(["pairs", x, ",".join(map(str, tiles)), "--sigma-col-a", "ePos", "--sigma-b", 0.5,
                "--out", out1], capsys)[0] == 0
    k1, _ = read_table(out1)
    assert 0 < len(k1) < len(df)
    assert set(zip(k1.index_a, k1.index_b)) <= set(zip(df.index_a, df.index_b))


def test_glob_pattern_expands_in_sorted_order(files, tmp_path, capsys):
    x, tiles = files
    out_list, out_glob = tmp_path / "l.fits", tmp_path / "g.fits"
    assert run(["pairs", x, ",".join(map(str, tiles)), "--radius-arcsec", 10, "--out", out_list],
               capsys)[0] == 0
    assert run(["pairs", x, str(tmp_path / "*.tsv"), "--radius-arcsec", 10, "--out", out_glob],
               capsys)[0] == 0
    a, _ = read_table(out_list)
    b, _ = read_table(out_glob)
    assert len(a) > 0
    np.testing.assert_array_equal(a.to_numpy(), b.to_numpy())


def test_bad_row_raise_gives_one_line_error(tmp_path, capsys):
    x = write_x(tmp_path / "x.csv", bad_row=6)
    b = write_ir_tile(tmp_path / "b.tsv", 50, seed=1)
    code, out, err = run(["pairs", x, b, "--radius-arcsec", 5, "--out", tmp_path / "o.csv"], capsys)
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("gpumatch pairs: error: ")
    assert str(x) in lines[0] and "row 7" in lines[0] and "'DEJ2000'" in lines[0]
    assert not (tmp_path / "o.csv").exists()


def test_drop_mode_keeps_input_row_numbers(tmp_path, capsys):
    x = write_x(tmp_path / "x.csv", bad_row=6)
    tiles = [write_ir_tile(tmp_path / f"{k}.tsv", 300, seed=k) for k in (1, 2)]
    out = tmp_path / "o.fits"
    code, stdout, _ = run(["pairs", x, f"{tiles[0]},{tiles[1]}", "--radius-arcsec", 20,
                           "--on-bad-rows", "drop", "--id-a", "name", "--out", out], capsys)
    assert code == 0
    assert "dropped from A: 1 rows, Dec outside [-90, 90] deg" in stdout
    df, meta = read_table(out)
    assert meta["dropped"] == {"a": {"Dec outside [-90, 90] deg": 1}, "b": {}}
    assert meta["rows_read"]["a"] == 40 and meta["rows_used"]["a"] == 39
    assert 6 not in set(df["index_a"]) and (df["index_a"] > 6).any()
    # index_a is the input row: its id is the name written on that row.
    assert all(name == f"X{i:03d}" for i, name in zip(df["index_a"], df["id_a"]))


@pytest.mark.parametrize("argv, words", [
    (["--radius-arcsec", "5", "--ra-a", "RA_X", "--dec-a", "DEJ2000"],
     "RA column 'RA_X' not found; available columns: name, RAJ2000, DEJ2000, ePos"),
    (["--sigma-col-a", "eee"], "position error column 'eee' not found"),
    (["--radius-arcsec", "5", "--ra-a", "RA_X"], "give both ra and dec columns, or neither"),
    ([], "give exactly one of --radius-arcsec or --sigma-col-a"),
    (["--radius-arcsec", "-1"], "--radius-arcsec must be positive"),
    (["--radius-arcsec", "5", "--sigma-b", "1"], "go with --sigma-col-a"),
    (["--radius-arcsec", "5", "--format-a", "fits"], "not a readable FITS file"),
])
def test_bad_options_and_columns(tmp_path, capsys, argv, words):
    x = write_x(tmp_path / "x.csv", n=5)
    b = write_ir_tile(tmp_path / "b.tsv", 5, seed=1)
    code, _, err = run(["pairs", x, b, "--out", tmp_path / "o.csv"] + argv, capsys)
    assert code == 1
    assert words in err and len(err.strip().splitlines()) == 1


def test_missing_file_and_existing_output(tmp_path, capsys):
    x = write_x(tmp_path / "x.csv", n=5)
    code, _, err = run(["pairs", x, tmp_path / "nope.tsv", "--radius-arcsec", 1, "--out",
                        tmp_path / "o.csv"], capsys)
    assert code == 1 and "nope.tsv: no such file" in err
    code, _, err = run(["pairs", x, str(tmp_path / "*.vot"), "--radius-arcsec", 1, "--out",
                        tmp_path / "o.csv"], capsys)
    assert code == 1 and "no file matches" in err
    (tmp_path / "o.csv").write_text("keep me")
    code, _, err = run(["pairs", x, x, "--radius-arcsec", 1, "--out", tmp_path / "o.csv"], capsys)
    assert code == 1 and "--overwrite" in err
    assert (tmp_path / "o.csv").read_text() == "keep me"
    assert run(["pairs", x, x, "--radius-arcsec", 1, "--out", tmp_path / "o.csv", "--overwrite"],
               capsys)[0] == 0
    df, _ = read_table(tmp_path / "o.csv")
    np.testing.assert_array_equal(df["index_a"], df["index_b"])  # a catalogue with itself


def test_help_explains_every_option():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    pairs_parser = sub.choices["pairs"]
    for action in pairs_parser._actions:
        assert action.help, f"{action.dest} has no help text"
    text = pairs_parser.format_help()
    for word in ("arcsec", "--sigma-col-a", "index_a", "comma", "MiB", "degrees"):
        assert word in text
