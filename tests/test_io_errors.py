"""Bad input: every problem names the file, the 1-based data row within it and the column;
on_bad_rows='drop' removes bad rows and reports them by reason."""
from pathlib import Path

import numpy as np
import pytest
from astropy.table import Table

from gpumatch.catalogue import InputError, summarize_dropped
from gpumatch.io import ColumnMap, read_catalogue

HEAD = "RAJ2000,DEJ2000,ePos,Kmag\n"
GOOD = ["266.1,-29.1,1.0,12.0", "266.2,-29.2,1.5,13.0", "266.3,-29.3,2.0,"]


def csv(tmp_path, name, rows, head=HEAD):
    p = tmp_path / name
    p.write_text(head + "".join(r + "\n" for r in rows))
    return p


def read(paths, **kw):
    return read_catalogue(paths, ColumnMap(err="ePos", mags=["Kmag"]), **kw)


def raised(paths, **kw) -> InputError:
    with pytest.raises(InputError) as info:
        read(paths, **kw)
    return info.value


def assert_where(err: InputError, file, row, column):
    assert (err.file, err.row, err.column) == (str(file), row, column), str(err)
    text = str(err)
    assert str(file) in text and f"row {row}" in text and repr(column) in text
    assert "\n" not in text


# Each case: (bad row text, column named, words in the message).
BAD_ROWS = {
    "missing RA": (",-29.0,1.0,12.0", "RAJ2000", "RA is missing"),
    "NaN Dec": ("266.0,nan,1.0,12.0", "DEJ2000", "Dec is missing"),
    "Dec out of range": ("266.0,95.0,1.0,12.0", "DEJ2000", "outside [-90, 90]"),
    "infinite RA": ("inf,-29.0,1.0,12.0", "RAJ2000", "RA is missing or not a number"),
    "zero error": ("266.0,-29.0,0,12.0", "ePos", "not positive"),
    "negative error": ("266.0,-29.0,-1.5,12.0", "ePos", "not positive"),
    "missing error": ("266.0,-29.0,--,12.0", "ePos", "missing"),
    "non-numeric magnitude": ("266.0,-29.0,1.0,12.x", "Kmag", "'12.x' is not a number"),
    "non-numeric Dec": ("266.0,-29d,1.0,12.0", "DEJ2000", "not a number"),
}


@pytest.mark.parametrize("case", sorted(BAD_ROWS))
def test_bad_row_in_second_tile_names_file_row_column(tmp_path, case):
    text, column, words = BAD_ROWS[case]
    a = csv(tmp_path, "a.csv", GOOD)
    b = csv(tmp_path, "b.csv", GOOD[:2] + [text] + GOOD[2:])
    err = raised([a, b])
    assert_where(err, b, 3, column)
    assert words in str(err)


def test_first_bad_row_is_reported_and_the_rest_counted(tmp_path):
    # Row 2 has a bad Dec, row 4 a bad error: the earlier one is reported.
    p = csv(tmp_path, "a.csv", [GOOD[0], "266.0,-91.0,1.0,1", GOOD[1], "266.0,-29.0,0,1"])
    assert_where(raised(p), p, 2, "DEJ2000")
    q = csv(tmp_path, "b.csv", [GOOD[0], "266.0,-29.0,0,1", GOOD[1], "266.0,-91.0,1.0,1",
                                "266.0,-29.0,-2,1"])
    err = raised(q)
    assert_where(err, q, 2, "ePos")
    assert "1 more rows with bad position errors" in str(err)
    assert "more" in str(raised(csv(tmp_path, "c.csv", [",1,1,1", ",1,1,1"])))


def test_first_data_row_of_missing_markers_is_data_not_a_separator(tmp_path):
    p = tmp_path / "m.csv"
    p.write_text("ra,dec\n--,--\n1,2\n")
    with pytest.raises(InputError) as info:
        read_catalogue(p)
    assert_where(info.value, p, 1, "ra")


def test_per_axis_error_names_the_exact_column(tmp_path):
    p = tmp_path / "gn.csv"
    p.write_text("RAJ2000,DEJ2000,e_RAJ2000,e_DEJ2000\n1,2,0.1,0.1\n1,2,0.1,-0.2\n")
    with pytest.raises(InputError) as info:
        read_catalogue(p, ColumnMap(err_ra="e_RAJ2000", err_dec="e_DEJ2000"))
    assert_where(info.value, p, 2, "e_DEJ2000")


def test_ellipse_pa_must_be_finite(tmp_path):
    p = tmp_path / "e.csv"
    p.write_text("ra,dec,a,b,pa\n1,2,0.3,0.1,45\n1,2,0.3,0.1,\n")
    with pytest.raises(InputError) as info:
        read_catalogue(p, ColumnMap(err_a="a", err_b="b", err_pa="pa"))
    assert_where(info.value, p, 2, "pa")
    cat = read_catalogue(p, ColumnMap(err_a="a", err_b="b", err_pa="pa"), on_bad_rows="drop")
    assert len(cat) == 1 and list(cat.dropped["column"]) == ["pa"]
    np.testing.assert_allclose(cat.cov[0], [0.05, 0.05, 0.04], rtol=1e-12)  # a=0.3, b=0.1 at 45 deg


def test_bad_row_row_number_is_per_file_in_chunks(tmp_path):
    rows = [f"266.{k:03d},-29.0,1.0,12.0" for k in range(50)]
    rows[37] = "266.0,-29.0,1.0,abc"
    p = csv(tmp_path, "long.csv", rows)
    for budget in (1024.0, 200 / 2**20):
        assert_where(raised(p, memory_budget_mb=budget), p, 38, "Kmag")


def test_fits_bad_value_names_row(tmp_path):
    t = Table({"RA": [1.0, 2.0, 3.0], "DEC": [0.0, 0.0, 100.0], "ePos": [1.0, 1.0, 1.0], "Kmag": [1.0, 2, 3]})
    t.write(tmp_path / "t.fits")
    assert_where(raised(tmp_path / "t.fits"), tmp_path / "t.fits", 3, "DEC")


def test_drop_mode_reports_counts_by_reason(tmp_path):
    a = csv(tmp_path, "a.csv", GOOD)
    b = csv(tmp_path, "b.csv", [GOOD[0], ",-29.0,1.0,1", "266.0,95,1.0,1", GOOD[1],
                                "266.0,-29.0,0,1", "266.0,-29.0,nan,1", GOOD[2]])
    cat = read([a, b], on_bad_rows="drop")
    assert len(cat) == 3 + 3
    assert summarize_dropped(cat) == {
        "RA is missing or not a number": 1,
        "Dec outside [-90, 90] deg": 1,
        "position error is missing, not finite, or not positive": 2,
    }
    d = cat.dropped.sort_values("row")
    assert list(d["row"]) == [4, 5, 7, 8]
    assert list(d["file_row"]) == [1, 2, 4, 5]
    assert set(d["file"]) == {str(b)}
    assert list(d["column"]) == ["RAJ2000", "DEJ2000", "ePos", "ePos"]
    # Surviving rows keep their input row numbers.
    np.testing.assert_array_equal(cat.row, [0, 1, 2, 3, 6, 9])
    np.testing.assert_array_equal(cat.file_row, [0, 1, 2, 0, 3, 6])
    # Conversion errors are not "bad rows": they always raise.
    c = csv(tmp_path, "c.csv", [GOOD[0], "x,1,1,1"])
    with pytest.raises(InputError):
        read(c, on_bad_rows="drop")


def test_all_rows_bad_in_drop_mode(tmp_path):
    p = csv(tmp_path, "a.csv", ["266.0,-29.0,0,1", "266.0,-29.0,-1,1"])
    with pytest.raises(InputError, match="no valid rows left"):
        read(p, on_bad_rows="drop")


def test_missing_column_lists_available(tmp_path):
    p = csv(tmp_path, "a.csv", GOOD)
    with pytest.raises(InputError) as info:
        read_catalogue(p, ColumnMap(err="e_Pos"))
    err = info.value
    assert err.file == str(p) and "'e_Pos' not found" in str(err)
    assert "available columns: RAJ2000, DEJ2000, ePos, Kmag" in str(err)
    q = csv(tmp_path, "b.csv", ["1,2"], head="x,y\n")
    with pytest.raises(InputError, match="no RA/Dec columns found.*available columns: x, y"):
        read_catalogue(q)
    with pytest.raises(InputError, match="RA column 'alpha' not found"):
        read_catalogue(q, ColumnMap(ra="alpha", dec="y"))


def test_empty_inputs(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(InputError, match="file is empty") as info:
        read(empty)
    assert info.value.file == str(empty)
    comments = tmp_path / "comments.tsv"
    comments.write_text("#\n# only comments\n\n")
    with pytest.raises(InputError, match="file is empty"):
        read(comments)
    header_only = csv(tmp_path, "header.csv", [])
    with pytest.raises(InputError, match="catalogue is empty") as info:
        read(header_only)
    assert str(header_only) in str(info.value)
    vizier_no_rows = tmp_path / "v.tsv"
    vizier_no_rows.write_text("#c\nRAJ2000;DEJ2000\ndeg;deg\n---;---\n\n")
    with pytest.raises(InputError, match="catalogue is empty"):
        read_catalogue(vizier_no_rows)
    t = Table({"RA": np.zeros(0), "DEC": np.zeros(0)})
    t.write(tmp_path / "e.fits")
    t.to_pandas().to_parquet(tmp_path / "e.parquet")
    for f in ("e.fits", "e.parquet"):
        with pytest.raises(InputError, match="catalogue is empty"):
            read_catalogue(tmp_path / f)
    # An empty tile among others is allowed.
    good = csv(tmp_path, "good.csv", GOOD)
    cat = read_catalogue([tmp_path / "e.fits", good, tmp_path / "e.parquet"])
    assert len(cat) == 3 and set(cat.file) == {str(good)}


def test_unit_mismatch_and_unusable_units(tmp_path):
    p = tmp_path / "u.tsv"
    p.write_text("ra;dec;err\ndeg;deg;arcsec\n---;---;---\n1;2;0.5\n")
    with pytest.raises(InputError, match="mismatched units") as info:
        read_catalogue(p, ColumnMap(err="err", err_unit="mas"))
    assert info.value.column == "err"
    q = tmp_path / "s.tsv"
    q.write_text("ra;dec;err\ndeg;deg;s\n---;---;---\n1;2;0.5\n")
    with pytest.raises(InputError, match="not an angle"):
        read_catalogue(q, ColumnMap(err="err"))
    assert read_catalogue(q, ColumnMap(err="err", err_unit="arcsec")).sigma_arcsec[0] == 0.5
    r = tmp_path / "r.tsv"
    r.write_text("ra;dec\nrad;rad\n---;---\n1;0.5\n")
    with pytest.raises(InputError, match="not supported") as info:
        read_catalogue(r)
    assert info.value.column == "ra"


def test_sexagesimal_errors(tmp_path):
    p = tmp_path / "s.csv"
    p.write_text("ra,dec\n17 45 40.04,-29 00 28.1\n17 75 40.04,-29 00 28.1\n")
    with pytest.raises(InputError, match="minutes and seconds < 60") as info:
        read_catalogue(p)
    assert (info.value.row, info.value.column) == (2, "ra")
    q = tmp_path / "m.csv"
    q.write_text("ra,dec\n17 45 40.04,-29 00 28.1\n266.5,-29 00 28.1\n")
    with pytest.raises(InputError, match="not a sexagesimal angle") as info:
        read_catalogue(q)
    assert (info.value.row, info.value.column) == (2, "ra")
    n = tmp_path / "n.csv"
    n.write_text("ra,dec\n266.5,-29.0\n")
    with pytest.raises(InputError, match="not a sexagesimal angle"):
        read_catalogue(n, ColumnMap(coords="sexagesimal"))
    Table({"ra": [266.5], "dec": [-29.0]}).write(tmp_path / "n.fits")
    with pytest.raises(InputError, match="holds numbers, not sexagesimal strings"):
        read_catalogue(tmp_path / "n.fits", ColumnMap(coords="sexagesimal"))


def test_ragged_text_rows_and_bad_files(tmp_path):
    # Extra trailing fields never shift values; a short row leaves its last fields missing.
    p = tmp_path / "r.csv"
    p.write_text("ra,dec,mag\n1,2,3\n4,5,6,7\n8,9\n")
    cat = read_catalogue(p, ColumnMap(mags=["mag"]))
    np.testing.assert_array_equal(cat.ra, [1, 4, 8])
    np.testing.assert_array_equal(cat.mags["mag"], [3, 6, np.nan])
    q = tmp_path / "q.csv"
    q.write_text('ra,dec\n1,2\n"3,4\n')
    with pytest.raises(InputError, match="cannot parse") as info:
        read_catalogue(q)
    assert info.value.file == str(q)
    f = tmp_path / "bad.fits"
    f.write_text("not fits at all")
    with pytest.raises(InputError, match="FITS"):
        read_catalogue(f)
    with pytest.raises(FileNotFoundError, match="no such file"):
        read_catalogue(tmp_path / "absent.csv")
    with pytest.raises(InputError, match="cannot tell the format"):
        read_catalogue(Path(__file__))


def test_column_map_checks():
    with pytest.raises(ValueError, match="one position error model"):
        ColumnMap(err="e", err_ra="x", err_dec="y")
    with pytest.raises(ValueError, match="also needs err_dec"):
        ColumnMap(err_ra="x")
    with pytest.raises(ValueError, match="also needs err_b, err_pa"):
        ColumnMap(err_a="x")
    with pytest.raises(ValueError, match="err_unit"):
        ColumnMap(err="e", err_unit="lightyear")
    with pytest.raises(ValueError, match="coords"):
        ColumnMap(coords="hours")
