"""Output tables: FITS / Parquet / CSV with provenance metadata that round-trips."""
import numpy as np
import pandas as pd
import pytest
from astropy.io import fits

from gpumatch.io import ColumnMap, read_catalogue, read_table, read_table_meta, write_table

META = {
    "gpumatch_version": "0.1.0",
    "backend": "numpy (forced)",
    "seed": np.int64(20241121),
    "options": {"radius_arcsec": 2.5, "nsigma": None, "on_bad_rows": "drop", "flag": True},
    "inputs": {"a": ["tiles/1.tsv", "tiles/2.tsv"], "b": ["muno3.csv"]},
    "note": "a long provenance string " * 8,  # longer than one FITS card
}
WANT_META = dict(META, seed=20241121)


def frame():
    return pd.DataFrame({
        "index_a": np.array([0, 0, 3], dtype=np.int64),
        "index_b": np.array([5, 9, 2], dtype=np.int64),
        "sep_arcsec": [0.25, 1.0 / 3.0, 2.0],
        "id_a": ["X1", "X1", "X4"],
        "kmag": [12.5, np.nan, 14.0],
    })


@pytest.mark.parametrize("ext", ["fits", "parquet", "csv"])
def test_round_trip_table_and_meta(tmp_path, ext):
    path = tmp_path / f"out.{ext}"
    df = frame()
    write_table(df, path, META)
    back, meta = read_table(path)
    assert meta == WANT_META
    assert read_table_meta(path) == WANT_META
    assert list(back.columns) == list(df.columns)
    np.testing.assert_array_equal(back["index_a"], df["index_a"])
    np.testing.assert_array_equal(back["index_b"], df["index_b"])
    np.testing.assert_array_equal(back["sep_arcsec"], df["sep_arcsec"])  # exact, also in CSV
    np.testing.assert_array_equal(back["kmag"], df["kmag"])
    assert [str(v) for v in back["id_a"]] == list(df["id_a"])


def test_fits_header_and_csv_comment_lines(tmp_path):
    write_table(frame(), tmp_path / "o.fits", META)
    with fits.open(tmp_path / "o.fits") as hdul:
        assert hdul[1].name == "GPUMATCH"
        assert hdul[1].header["CREATOR"].startswith("gpumatch")
        assert "radius_arcsec" in hdul[1].header["GMMETA"]
    write_table(frame(), tmp_path / "o.csv", {"seed": 7, "backend": "numpy"})
    lines = (tmp_path / "o.csv").read_text().splitlines()
    assert lines[:3] == ["# seed = 7", '# backend = "numpy"', "index_a,index_b,sep_arcsec,id_a,kmag"]


def test_csv_output_reads_back_as_a_catalogue(tmp_path):
    df = pd.DataFrame({"ra": [10.0, 20.0], "dec": [-5.0, 5.0], "Kmag": [np.nan, 11.0]})
    write_table(df, tmp_path / "c.csv", META)
    cat = read_catalogue(tmp_path / "c.csv", ColumnMap(mags=["Kmag"]))
    np.testing.assert_array_equal(cat.ra, [10.0, 20.0])
    np.testing.assert_array_equal(cat.mags["Kmag"], [np.nan, 11.0])


def test_overwrite_and_bad_extension(tmp_path):
    path = tmp_path / "o.parquet"
    write_table(frame(), path, {"v": 1})
    with pytest.raises(FileExistsError):
        write_table(frame(), path, {"v": 2})
    write_table(frame(), path, {"v": 2}, overwrite=True)
    assert read_table_meta(path) == {"v": 2}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.parquet"]  # no temporary left
    with pytest.raises(ValueError, match="extension"):
        write_table(frame(), tmp_path / "o.xlsx", {})
    with pytest.raises(TypeError, match="not JSON-serialisable"):
        write_table(frame(), tmp_path / "o.csv", {"bad": object()})
    assert not (tmp_path / "o.csv").exists()


def test_astropy_table_and_dict_inputs(tmp_path):
    from astropy.table import Table

    write_table(Table({"a": [1, 2]}), tmp_path / "t.fits", {})
    write_table({"a": [1, 2]}, tmp_path / "d.csv", None)
    assert list(read_table(tmp_path / "t.fits")[0]["a"]) == [1, 2]
    assert read_table(tmp_path / "d.csv")[1] == {}
