"""Catalogue ingestion: formats, tiles and provenance, column mapping, units, chunking, real files."""
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from astropy.coordinates import Angle
from astropy.table import MaskedColumn, Table

from gpumatch.io import DEFAULT_MISSING, ColumnMap, detect_format, read_catalogue
from gpumatch.io.formats import open_source

REAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real"

VIZIER_PREAMBLE = """\
#
#   VizieR Astronomical Server vizier.cds.unistra.fr
#    Date: 2024-03-12T15:02:11 [V7.33.3]
#   In case of problem, please report to:\tcds-question@unistra.fr
#
#
#Coosys\tJ2000:\teq_FK5 J2000
#INFO\tvotable-version=1.99+ (14-Oct-2013)\t
#INFO\t-ref=VIZ65f06e0b1a2b
#RESOURCE=yCat_36310020
#Name: J/A+A/631/A20
#Title: GALACTICNUCLEUS. A high-angular-resolution JHKs imaging survey (Nogueras-Lara+, 2019)
#Table\tJ_A_A_631_A20_central:
#Name: J/A+A/631/A20/central
#Title: Central region
#Column\tRAJ2000\t(F10.6)\tRight ascension (FK5, Equinox=J2000.0)\t[ucd=pos.eq.ra;meta.main]
#Column\tDEJ2000\t(F10.6)\tDeclination (FK5, Equinox=J2000.0)\t[ucd=pos.eq.dec;meta.main]
#Column\tKsmag\t(F8.5)\t? Ks magnitude (mag)\t[ucd=phot.mag;em.IR.K]
"""
GN_COLUMNS = ["RAJ2000", "DEJ2000", "e_RAJ2000", "e_DEJ2000", "Jmag", "Hmag", "Ksmag"]


def gn_rows(n, seed, blank_every=3):
    """GALACTICNUCLEUS-like rows: floats, with some magnitudes missing (None)."""
    rng = np.random.default_rng(seed)
    rows = []
    for k in range(n):
        mags = [round(float(m), 5) for m in rng.uniform(10, 20, 3)]
        if k % blank_every == 1:
            mags[0] = None          # no J
        if k % blank_every == 2:
            mags[0] = mags[1] = None  # only Ks
        rows.append([round(266.3 + rng.uniform(0, 0.2), 6), round(-29.0 + rng.uniform(0, 0.2), 6),
                     round(rng.uniform(0.001, 0.01), 6), round(rng.uniform(0.001, 0.01), 6)] + mags)
    return rows


GN_UNITS = ("deg", "deg", "arcsec", "arcsec", "mag", "mag", "mag")


def write_vizier(path, rows, columns=GN_COLUMNS, units=GN_UNITS, sep=";", preamble=True, units_line=True):
    """A table laid out as VizieR writes it: comments, header, units, dashes, padded fields."""
    def cell(v, width=10):
        return " " * width if v is None else f"{v:>{width}}"
    lines = [VIZIER_PREAMBLE] if preamble else []
    lines.append(sep.join(columns) + "\n")
    if units_line:
        lines.append(sep.join(units) + "\n")
    lines.append(sep.join("-" * 10 for _ in columns) + "\n")
    lines += [sep.join(cell(v) for v in r) + "\n" for r in rows]
    lines.append("\n")  # VizieR ends with a blank line
    Path(path).write_text("".join(lines))
    return path


def gn_map(**kw):
    return ColumnMap(err_ra="e_RAJ2000", err_dec="e_DEJ2000", mags=("Jmag", "Hmag", "Ksmag"), **kw)


def as_float(values):
    return np.array([np.nan if v is None else v for v in values], dtype=float)


# -- VizieR TSV tiles ------------------------------------------------------------------
@pytest.fixture
def gn_tiles(tmp_path):
    sizes = (5, 7, 4)
    rows = [gn_rows(n, seed) for n, seed in zip(sizes, (1, 2, 3))]
    paths = [write_vizier(tmp_path / f"{k + 1}.tsv", r) for k, r in enumerate(rows)]
    return paths, rows


def test_vizier_tiles_values_and_provenance(gn_tiles):
    paths, rows = gn_tiles
    cat = read_catalogue(paths, gn_map())
    flat = [r for tile in rows for r in tile]
    assert len(cat) == 16
    np.testing.assert_array_equal(cat.ra, [r[0] for r in flat])
    np.testing.assert_array_equal(cat.dec, [r[1] for r in flat])
    for k, band in enumerate(("Jmag", "Hmag", "Ksmag")):
        np.testing.assert_array_equal(cat.mags[band], as_float([r[4 + k] for r in flat]))
    # Blank magnitudes are missing (NaN), never 0.
    assert np.isnan(cat.mags["Jmag"]).sum() == sum(r[4] is None for r in flat) > 0
    assert np.isnan(cat.mags["Hmag"]).sum() == sum(r[5] is None for r in flat) > 0
    assert not (cat.mags["Jmag"] == 0).any() and not (cat.mags["Hmag"] == 0).any()
    # Provenance: file, row within file (0-based), row of the concatenation.
    np.testing.assert_array_equal(cat.file, [str(p) for p, n in zip(paths, (5, 7, 4)) for _ in range(n)])
    np.testing.assert_array_equal(cat.file_row, list(range(5)) + list(range(7)) + list(range(4)))
    np.testing.assert_array_equal(cat.row, np.arange(16))
    np.testing.assert_array_equal(cat.ids, np.arange(16))
    # Per-axis errors in arcsec -> covariance (s_aa, s_dd, 0) in arcsec^2.
    np.testing.assert_allclose(cat.cov[:, 0], np.array([r[2] for r in flat]) ** 2, rtol=1e-15)
    np.testing.assert_allclose(cat.cov[:, 1], np.array([r[3] for r in flat]) ** 2, rtol=1e-15)
    assert (cat.cov[:, 2] == 0).all()
    assert cat.meta["columns"]["ra"] == "RAJ2000" and cat.meta["columns"]["dec"] == "DEJ2000"
    assert cat.meta["path"] == ", ".join(str(p) for p in paths)
    assert cat.meta["rows_per_file"] == [5, 7, 4]
    assert cat.name == "1"


def test_vizier_variants_tab_no_preamble_no_units(tmp_path):
    rows = gn_rows(6, 4)
    ref = read_catalogue(write_vizier(tmp_path / "a.tsv", rows), gn_map())
    for k, kw in enumerate([dict(sep="\t"), dict(preamble=False), dict(units_line=False),
                            dict(sep="\t", preamble=False, units_line=False)]):
        cat = read_catalogue(write_vizier(tmp_path / f"v{k}.tsv", rows, **kw), gn_map())
        np.testing.assert_array_equal(cat.ra, ref.ra)
        np.testing.assert_array_equal(cat.cov, ref.cov)
        for b in ref.mags:
            np.testing.assert_array_equal(cat.mags[b], ref.mags[b])


def test_error_unit_from_units_line_per_tile(tmp_path):
    rows = gn_rows(5, 7)
    mas_rows = [r[:2] + [round(r[2] * 1000, 3), round(r[3] * 1000, 3)] + r[4:] for r in rows]
    a = write_vizier(tmp_path / "arcsec.tsv", rows)
    b = write_vizier(tmp_path / "mas.tsv", mas_rows, units=("deg", "deg", "mas", "mas", "mag", "mag", "mag"))
    cat = read_catalogue([a, b], gn_map())
    np.testing.assert_allclose(cat.cov[5:], cat.cov[:5], rtol=1e-9)
    # An explicit err_unit agreeing with the file is fine; converting a unit-less file works too.
    forced = read_catalogue(b, gn_map(err_unit="mas"))
    np.testing.assert_allclose(forced.cov, cat.cov[5:], rtol=1e-15)


# -- Muno-like CSV --------------------------------------------------------------------------
MUNO = """\
RAJ2000,DEJ2000,ePos,Band,HR0,HR1,HR2,CXOGC
266.23813,-28.96121,1.8,soft,-1.0,--,--,174457.1-285740
266.23941,-28.93967,2.0,full,--,1.0,-0.169,174457.4-285622
266.2462,-29.10122,1.3,full,0.116,0.299,-0.254,174459.1-290604
266.24982,-29.05683,2.0,full,1.0,-1.0,,174459.9-290324
266.24994,-29.09415,1.5,hard,nan,1.0,-0.012,174459.9-290538
"""


def test_muno_csv_circular_errors_and_extras(tmp_path):
    p = tmp_path / "muno3.csv"
    p.write_text(MUNO)
    cat = read_catalogue(p, ColumnMap(id="CXOGC", err="ePos", keep=("HR0", "HR1", "HR2", "Band", "ePos")))
    assert len(cat) == 5
    np.testing.assert_array_equal(cat.sigma_arcsec, [1.8, 2.0, 1.3, 2.0, 1.5])
    np.testing.assert_array_equal(cat.cov[:, 0], cat.cov[:, 1])
    assert list(cat.ids) == ["174457.1-285740", "174457.4-285622", "174459.1-290604",
                             "174459.9-290324", "174459.9-290538"]
    np.testing.assert_array_equal(cat.extra["HR0"], [-1.0, np.nan, 0.116, 1.0, np.nan])
    np.testing.assert_array_equal(cat.extra["HR1"], [np.nan, 1.0, 0.299, -1.0, 1.0])
    np.testing.assert_array_equal(cat.extra["HR2"], [np.nan, -0.169, -0.254, np.nan, -0.012])
    assert cat.extra["HR0"].dtype == np.float64
    assert list(cat.extra["Band"]) == ["soft", "full", "full", "full", "hard"]
    np.testing.assert_array_equal(cat.extra["ePos"], [1.8, 2.0, 1.3, 2.0, 1.5])
    assert cat.meta["columns"]["err"] == "ePos"


def test_numeric_sentinels_apply_to_mags_not_coordinates(tmp_path):
    p = tmp_path / "s.csv"
    p.write_text("ra,dec,Kmag,flag\n99.0,-5.0,99.0,-99\n10.0,99.0e-1,12.5,3\n")
    cat = read_catalogue(p, ColumnMap(mags=["Kmag"], keep=["flag"], missing=DEFAULT_MISSING + (99.0, -99)))
    np.testing.assert_array_equal(cat.ra, [99.0, 10.0])
    np.testing.assert_array_equal(cat.mags["Kmag"], [np.nan, 12.5])
    np.testing.assert_array_equal(cat.extra["flag"], [np.nan, 3.0])
    plain = read_catalogue(p, ColumnMap(mags=["Kmag"], keep=["flag"]))
    np.testing.assert_array_equal(plain.mags["Kmag"], [99.0, 12.5])
    assert plain.extra["flag"].dtype == np.int64


def test_radec_autodetect_any_case_and_explicit(tmp_path):
    for ra, dec in [("RA_ICRS", "DE_ICRS"), ("ra", "dec"), ("RA_deg", "Dec_deg"), ("raj2000", "dej2000")]:
        p = tmp_path / f"{ra}.csv"
        p.write_text(f"x,{ra},{dec}\n1,10.5,-20.25\n")
        cat = read_catalogue(p)
        assert (cat.ra[0], cat.dec[0]) == (10.5, -20.25)
        assert cat.meta["columns"] == {"ra": ra, "dec": dec}
    p = tmp_path / "custom.csv"
    p.write_text("alpha,delta\n10.5,-20.25\n")
    cat = read_catalogue(p, ColumnMap(ra="ALPHA", dec="delta"))  # case-insensitive match
    assert cat.meta["columns"]["ra"] == "alpha"


def test_pandas_csv_with_index_column(tmp_path):
    pd.DataFrame({"RA": [1.5, 2.5], "DEC": [3.0, 4.0]}).to_csv(tmp_path / "i.csv")
    cat = read_catalogue(tmp_path / "i.csv", ColumnMap(keep=["unnamed_0"]))
    np.testing.assert_array_equal(cat.ra, [1.5, 2.5])
    np.testing.assert_array_equal(cat.extra["unnamed_0"], [0, 1])


def test_whitespace_and_pipe_delimiters(tmp_path):
    (tmp_path / "w.txt").write_text("ra dec  mag\n10.0   20.0 15.5\n11.0 21.0 16.5\n")
    (tmp_path / "p.txt").write_text("ra|dec|mag\n10.0|20.0|15.5\n11.0|21.0|\n")
    w = read_catalogue(tmp_path / "w.txt", ColumnMap(mags=["mag"]))
    p = read_catalogue(tmp_path / "p.txt", ColumnMap(mags=["mag"]))
    np.testing.assert_array_equal(w.ra, [10.0, 11.0])
    np.testing.assert_array_equal(w.mags["mag"], [15.5, 16.5])
    np.testing.assert_array_equal(p.mags["mag"], [15.5, np.nan])


# -- sexagesimal ---------------------------------------------------------------------------
def test_sexagesimal_auto_and_forced(tmp_path):
    ras = ["17 45 40.04", "17:45:40.04", "17h45m40.04s", "00 00 01.5"]
    decs = ["-29 00 28.1", "-29:00:28.1", "-29d00m28.1s", "-00 30 00"]
    p = tmp_path / "sexa.csv"
    p.write_text("RAJ2000,DEJ2000\n" + "".join(f"{r},{d}\n" for r, d in zip(ras, decs)))
    want_ra = [Angle(r.replace(" ", ":"), unit="hourangle").deg if " " in r else
               Angle(r, unit="hourangle").deg for r in ras]
    want_dec = [Angle(d.replace(" ", ":"), unit="deg").deg if " " in d else Angle(d, unit="deg").deg
                for d in decs]
    for coords in ("auto", "sexagesimal"):
        cat = read_catalogue(p, ColumnMap(coords=coords))
        np.testing.assert_allclose(cat.ra, want_ra, rtol=0, atol=1e-12)
        np.testing.assert_allclose(cat.dec, want_dec, rtol=0, atol=1e-12)
    assert cat.dec[3] == -0.5  # the sign of a "-00" degree field is kept


def test_sexagesimal_from_vizier_units(tmp_path):
    p = write_vizier(tmp_path / "s.tsv", [["17 45 40.04", "+29 00 28.1"], ["05 34 31.94", "+22 00 52.2"]],
                     columns=["RAJ2000", "DEJ2000"], units=('"h:m:s"', '"d:m:s"'))
    cat = read_catalogue(p)
    np.testing.assert_allclose(cat.ra, [Angle("17:45:40.04", unit="hourangle").deg,
                                        Angle("05:34:31.94", unit="hourangle").deg], atol=1e-12)
    np.testing.assert_allclose(cat.dec, [29 + 28.1 / 3600, 22 + 52.2 / 3600], atol=1e-12)


def test_decimal_strings_stay_degrees(tmp_path):
    p = tmp_path / "d.csv"
    p.write_text('ra,dec\n"266.5","-29.0"\n"+10.25",5\n')
    cat = read_catalogue(p)
    np.testing.assert_array_equal(cat.ra, [266.5, 10.25])


# -- binary formats ---------------------------------------------------------------------------
def sample_table(n=9, seed=5):
    rng = np.random.default_rng(seed)
    t = Table()
    t["ID"] = np.array([f"src{k:03d}" for k in range(n)])
    t["RA"] = rng.uniform(0, 360, n)
    t["DEC"] = rng.uniform(-89, 89, n)
    t["pos_err"] = rng.uniform(0.1, 3, n).astype(np.float32)
    kmag = rng.uniform(10, 20, n)
    mask = np.zeros(n, bool)
    mask[[1, 4]] = True
    t["Kmag"] = MaskedColumn(kmag, mask=mask)
    t["flag"] = np.arange(n, dtype=np.int16)
    return t


def check_sample(cat, t):
    np.testing.assert_array_equal(cat.ra, np.asarray(t["RA"]))
    np.testing.assert_array_equal(cat.dec, np.asarray(t["DEC"]))
    np.testing.assert_array_equal(cat.sigma_arcsec, np.asarray(t["pos_err"], dtype=np.float64))
    want_k = np.where(np.ma.getmaskarray(t["Kmag"]), np.nan, np.ma.getdata(t["Kmag"]))
    np.testing.assert_array_equal(cat.mags["Kmag"], want_k)
    assert list(cat.ids) == list(t["ID"])
    np.testing.assert_array_equal(cat.extra["flag"], np.asarray(t["flag"]))


SAMPLE_MAP = ColumnMap(id="ID", err="pos_err", mags=["Kmag"], keep=["flag"])


def test_fits_round_trip(tmp_path):
    t = sample_table()
    t.write(tmp_path / "t.fits")
    check_sample(read_catalogue(tmp_path / "t.fits", SAMPLE_MAP), t)


def test_fits_hdu_choice_and_null(tmp_path):
    from astropy.io import fits

    t = sample_table()
    first = fits.table_to_hdu(Table({"RA": [1.0], "DEC": [2.0]}))
    first.name = "OTHER"
    second = fits.table_to_hdu(t)
    second.name = "SRC"
    fits.HDUList([fits.PrimaryHDU(), first, second]).writeto(tmp_path / "m.fits")
    assert len(read_catalogue(tmp_path / "m.fits")) == 1
    check_sample(read_catalogue(tmp_path / "m.fits", SAMPLE_MAP, hdu="SRC"), t)
    check_sample(read_catalogue(tmp_path / "m.fits", SAMPLE_MAP, hdu=2), t)
    # An integer column with TNULL: null values are missing.
    col = fits.Column(name="n", format="J", null=-1, array=np.array([5, -1, 7]))
    ra = fits.Column(name="ra", format="D", array=np.array([1.0, 2.0, 3.0]))
    dec = fits.Column(name="dec", format="D", array=np.array([0.0, 0.0, 0.0]))
    fits.BinTableHDU.from_columns([ra, dec, col]).writeto(tmp_path / "null.fits")
    cat = read_catalogue(tmp_path / "null.fits", ColumnMap(keep=["n"]))
    np.testing.assert_array_equal(cat.extra["n"], [5.0, np.nan, 7.0])


def test_parquet_round_trip(tmp_path):
    t = sample_table()
    df = t.to_pandas()
    assert df["Kmag"].isna().sum() == 2
    df.to_parquet(tmp_path / "t.parquet")
    check_sample(read_catalogue(tmp_path / "t.parquet", SAMPLE_MAP), t)


def test_votable_round_trip(tmp_path):
    t = sample_table()
    t.write(tmp_path / "t.vot", format="votable")
    check_sample(read_catalogue(tmp_path / "t.vot", SAMPLE_MAP), t)
    check_sample(read_catalogue(tmp_path / "t.vot", SAMPLE_MAP, hdu=0), t)


def test_format_from_extension_or_given(tmp_path):
    assert detect_format("x.fits") == "fits" and detect_format("x.FITS.gz") == "fits"
    assert detect_format("x.tsv") == "text" and detect_format("x.csv") == "csv"
    assert detect_format("x.parquet") == "parquet" and detect_format("x.vot") == "votable"
    t = sample_table()
    t.write(tmp_path / "catalogue.bin", format="fits")
    check_sample(read_catalogue(tmp_path / "catalogue.bin", SAMPLE_MAP, fmt="fits"), t)


def test_gzipped_vizier_tile(tmp_path):
    import gzip

    rows = gn_rows(5, 9)
    plain = write_vizier(tmp_path / "g.tsv", rows)
    gz = tmp_path / "g.tsv.gz"
    gz.write_bytes(gzip.compress(plain.read_bytes()))
    a, b = read_catalogue(plain, gn_map()), read_catalogue(gz, gn_map())
    np.testing.assert_array_equal(a.ra, b.ra)
    np.testing.assert_array_equal(a.mags["Jmag"], b.mags["Jmag"])


# -- chunked == unchunked ----------------------------------------------------------------------
def assert_same_catalogue(a, b):
    for key in ("ra", "dec", "cov", "row", "file_row"):
        np.testing.assert_array_equal(getattr(a, key), getattr(b, key))
    assert list(a.ids) == list(b.ids) and list(a.file) == list(b.file)
    assert a.mags.keys() == b.mags.keys()
    for k in a.mags:
        np.testing.assert_array_equal(a.mags[k], b.mags[k])
    pd.testing.assert_frame_equal(a.extra, b.extra)


TINY_MB = 300 / 2**20  # a few rows per chunk


def chunk_count(path, usecols, **kw):
    with open_source(path, **kw) as src:
        return sum(1 for _ in src.chunks(usecols, TINY_MB * 2**20))


def test_chunked_equals_unchunked_text(gn_tiles, tmp_path):
    paths, _ = gn_tiles
    assert chunk_count(paths[1], ["RAJ2000", "Jmag"]) > 2
    assert_same_catalogue(read_catalogue(paths, gn_map()),
                          read_catalogue(paths, gn_map(), memory_budget_mb=TINY_MB))
    p = tmp_path / "muno.csv"
    p.write_text(MUNO)
    m = ColumnMap(id="CXOGC", err="ePos", keep=("HR0", "HR2", "Band"))
    assert_same_catalogue(read_catalogue(p, m), read_catalogue(p, m, memory_budget_mb=100 / 2**20))


@pytest.mark.parametrize("ext", ["fits", "parquet", "vot"])
def test_chunked_equals_unchunked_binary(tmp_path, ext):
    t = sample_table(n=40)
    path = tmp_path / f"t.{ext}"
    if ext == "parquet":
        t.to_pandas().to_parquet(path)
    else:
        t.write(path, format="votable" if ext == "vot" else "fits")
    assert chunk_count(path, ["RA", "DEC", "Kmag"]) > 2
    whole = read_catalogue(path, SAMPLE_MAP)
    check_sample(whole, t)
    assert_same_catalogue(whole, read_catalogue(path, SAMPLE_MAP, memory_budget_mb=TINY_MB))


# -- real files ----------------------------------------------------------------------------------
def real(name):
    p = REAL / name
    if not p.is_file():
        pytest.skip(f"real data file {p} not present")
    return p


def test_real_cosmos_xmm():
    p = real("COSMOS_XMM.fits")
    t = Table.read(p, hdu="XMM")
    cat = read_catalogue(p, ColumnMap(id="ID", err="pos_err"))
    assert len(cat) == 1797 == len(t)
    np.testing.assert_array_equal(cat.ra, t["RA"])
    np.testing.assert_array_equal(cat.dec, t["DEC"])
    np.testing.assert_array_equal(cat.ids, t["ID"])
    np.testing.assert_array_equal(cat.sigma_arcsec, np.asarray(t["pos_err"], dtype=np.float64))
    assert 0.1 < cat.sigma_arcsec.min() and cat.sigma_arcsec.max() < 7.5
    assert cat.meta["columns"] == {"ra": "RA", "dec": "DEC", "id": "ID", "err": "pos_err"}


def test_real_xmmatlas():
    p = real("xmmatlas_srclistnew_Legacy.fits")
    t = Table.read(p, hdu=1)
    cat = read_catalogue(p, ColumnMap(id="UXID", err="RADEC_ERR", keep=["BOX_ID_SRC"]))
    assert len(cat) == 1127
    np.testing.assert_array_equal(cat.ra, t["RA"])
    np.testing.assert_array_equal(cat.sigma_arcsec, np.asarray(t["RADEC_ERR"], dtype=np.float64))
    assert list(cat.ids[:2]) == ["23520000", "23520001"]
    np.testing.assert_array_equal(cat.extra["BOX_ID_SRC"], t["BOX_ID_SRC"])


def test_real_testcat_moc_2_axes_and_mags():
    p = real("testcat_moc_2.fits")
    t = Table.read(p, hdu=1)
    cat = read_catalogue(p, ColumnMap(id="SRCID", err_ra="raErr", err_dec="decErr", mags=["uMag", "gMag"]))
    assert len(cat) == 624
    np.testing.assert_array_equal(cat.cov[:, 0], np.asarray(t["raErr"]) ** 2)
    np.testing.assert_array_equal(cat.cov[:, 1], np.asarray(t["decErr"]) ** 2)
    np.testing.assert_array_equal(cat.mags["uMag"], t["uMag"])
    np.testing.assert_array_equal(cat.mags["gMag"], t["gMag"])
    assert cat.ids[0] == "1237650795678466710"


def test_real_tiles_concatenated():
    a, b = real("testcat_moc_1.fits"), real("COSMOS_XMM.fits")
    cat = read_catalogue([a, b])
    assert len(cat) == 203 + 1797
    assert cat.file[202] == str(a) and cat.file[203] == str(b)
    assert cat.file_row[203] == 0 and cat.row[-1] == 1999


def test_fast_numeric_path_equals_text_path(gn_tiles, tmp_path, monkeypatch):
    """Text files parse numeric columns with pandas' float parser; reading everything as text
    (the fallback used when a column holds other text) must give the same catalogue."""
    import gpumatch.io.readers as readers

    paths, _ = gn_tiles
    p = tmp_path / "muno.csv"
    p.write_text(MUNO)
    cases = [(paths, gn_map()), (p, ColumnMap(err="ePos", mags=["HR0", "HR1"]))]
    fast = [read_catalogue(f, m) for f, m in cases]
    monkeypatch.setattr(readers, "_numeric_columns", lambda names, modes: set())
    for cat, (f, m) in zip(fast, cases):
        assert_same_catalogue(cat, read_catalogue(f, m))


def test_numeric_looking_text_marker_marks_numbers_too(tmp_path):
    t = Table({"ra": [1.0, 2.0], "dec": [0.0, 0.0], "K": [-99.0, 12.0]})
    t.write(tmp_path / "k.fits")
    cat = read_catalogue(tmp_path / "k.fits", ColumnMap(mags=["K"], missing=("", "-99")))
    np.testing.assert_array_equal(cat.mags["K"], [np.nan, 12.0])
