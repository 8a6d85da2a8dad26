"""Table sources: one per file format, each reading only the requested columns in chunks.

A source (opened with :func:`open_source`, used as a context manager) exposes

* ``columns``: the column names in file order;
* ``units``: ``{column: unit string}`` where the file states units (VizieR's
  units line, FITS ``TUNITn``, VOTable ``unit``);
* ``chunks(usecols, budget_bytes, numeric, na_tokens)``: an iterator of
  ``{column: ndarray}`` dicts holding consecutive data rows, each chunk sized to
  stay near ``budget_bytes``.  Values are numbers (NaN where a binary format
  marks them null) or text.  A text file parses its ``numeric`` columns as
  floats (the fast path) and raises :class:`NotNumeric` if one holds anything
  else; the reader then reads the file again all as text, which lets the
  conversion name the bad value's row.  Fields beyond the header's columns are
  ignored; missing trailing fields are empty.

Formats: 'text' (CSV, TSV, VizieR semicolon/tab TSV with '#' comments, units and
dashes lines; delimiter sniffed or given), 'fits' (binary or ASCII table HDU,
memory-mapped, chunked by row slices), 'parquet' (pyarrow ``iter_batches``) and
'votable' (astropy; read whole -- XML has no random access -- then sliced).
"""
from __future__ import annotations

import bz2
import csv
import gzip
import lzma
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from ..catalogue import InputError

FORMATS = ("text", "csv", "tsv", "vizier", "fits", "parquet", "votable")  # tsv, vizier: aliases of text
_EXTENSIONS = {
    ".csv": "csv", ".tsv": "text", ".txt": "text", ".dat": "text", ".tab": "text", ".psv": "text",
    ".fits": "fits", ".fit": "fits", ".fts": "fits",
    ".parquet": "parquet", ".pq": "parquet",
    ".vot": "votable", ".votable": "votable", ".xml": "votable",
}
_COMPRESSION = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}
_DELIMITERS = (";", "\t", ",", "|")
_PREAMBLE_SCAN_LINES = 100_000  # '#' comment lines tolerated before the header


class NotNumeric(Exception):
    """A column asked for as numbers holds other text (read it again as text to find where)."""


def detect_format(path, fmt: str | None = None) -> str:
    """The reader for ``path``: ``fmt`` when given, else from the extension (compression ignored)."""
    if fmt is not None:
        fmt = fmt.lower()
        if fmt not in FORMATS:
            raise ValueError(f"unknown format {fmt!r}: choose one of {', '.join(FORMATS)}")
        return fmt
    suffixes = [s.lower() for s in Path(path).suffixes]
    if suffixes and suffixes[-1] in _COMPRESSION:
        suffixes = suffixes[:-1]
    if suffixes and suffixes[-1] in _EXTENSIONS:
        return _EXTENSIONS[suffixes[-1]]
    raise InputError(f"cannot tell the format from the extension {''.join(suffixes) or '(none)'!r}; "
                     f"give it explicitly (one of {', '.join(FORMATS)})", file=str(path))


def open_source(path, fmt: str | None = None, delimiter: str | None = None, hdu=None):
    """Open ``path`` as a table source of the detected or given format.

    ``delimiter``: text files only (None sniffs ';', tab, ',', '|', else whitespace).
    ``hdu``: FITS HDU (index or EXTNAME) or VOTable table (index or ID/name);
    None takes the first table.
    """
    path = str(path)
    if not Path(path).is_file():
        raise FileNotFoundError(f"{path}: no such file")
    kind = detect_format(path, fmt)
    if kind in ("text", "csv", "tsv", "vizier"):
        return TextSource(path, "," if (kind == "csv" and delimiter is None) else delimiter)
    if kind == "fits":
        return FitsSource(path, hdu)
    if kind == "parquet":
        return ParquetSource(path)
    return VOTableSource(path, hdu)


def rows_per_chunk(budget_bytes: float, row_bytes: float, nrows: int | None = None) -> int:
    """Rows that fit in ``budget_bytes`` at ``row_bytes`` each (at least 1; all rows if they fit)."""
    rows = max(1, int(budget_bytes // max(row_bytes, 1.0)))
    return rows if nrows is None else max(1, min(rows, nrows))


class _Source:
    path: str
    columns: list
    units: dict

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        pass


# -- text ----------------------------------------------------------------------
def _open_text(path: str):
    opener = _COMPRESSION.get(Path(path).suffix.lower())
    if opener is not None:
        return opener(path, "rt", encoding="utf-8", errors="replace", newline="")
    return open(path, "rt", encoding="utf-8", errors="replace", newline="")


def _split(line: str, delimiter: str | None) -> list:
    line = line.rstrip("\r\n")
    if delimiter is None:
        return line.split()
    return next(csv.reader([line], delimiter=delimiter))


def _sniff(header: str) -> str | None:
    counts = {d: header.count(d) for d in _DELIMITERS}
    best = max(_DELIMITERS, key=lambda d: counts[d])  # ties: earlier in _DELIMITERS
    return best if counts[best] > 0 else None


def _is_dashes(fields: list) -> bool:
    """A VizieR separator line: every field dashes, one at least '---' (so that a data row of
    '--' missing markers is not taken for one)."""
    cells = [f.strip() for f in fields]
    return bool(cells) and all(c and set(c) == {"-"} for c in cells) and max(map(len, cells)) >= 3


class TextSource(_Source):
    """Delimited text: optional leading '#'/blank lines, a header line, then (VizieR)
    an optional units line followed by a dashes line, then data rows.  An empty
    header field (e.g. a pandas index column) is named ``unnamed_<position>``."""

    def __init__(self, path: str, delimiter: str | None = None):
        self.path = path
        self.delimiter = delimiter
        self._scan()

    def _scan(self):
        with _open_text(self.path) as fh:
            lines, header_at = [], None
            for k, line in enumerate(fh):
                lines.append(line)
                if header_at is None:
                    if line.strip() and not line.lstrip().startswith("#"):
                        header_at = k
                    elif k > _PREAMBLE_SCAN_LINES:
                        break
                elif len([x for x in lines[header_at + 1:] if x.strip()]) >= 2:
                    break
        if header_at is None:
            limit = f" in its first {_PREAMBLE_SCAN_LINES} lines" if len(lines) > _PREAMBLE_SCAN_LINES else ""
            raise InputError(f"file is empty: no header line{limit} (only blank or '#' comment lines)",
                             file=self.path)
        if self.delimiter is None:
            self.delimiter = _sniff(lines[header_at])
        names = [n.strip() or f"unnamed_{k}" for k, n in enumerate(_split(lines[header_at], self.delimiter))]
        self._check_names(names)
        self.columns = names
        self.units = {}
        after = [k for k in range(header_at + 1, len(lines)) if lines[k].strip()]
        self._data_start = header_at + 1
        if after and _is_dashes(_split(lines[after[0]], self.delimiter)):
            self._data_start = after[0] + 1
        elif len(after) > 1 and _is_dashes(_split(lines[after[1]], self.delimiter)):
            units = [u.strip() for u in _split(lines[after[0]], self.delimiter)]
            self.units = {n: u for n, u in zip(names, units) if u}
            self._data_start = after[1] + 1

    def _check_names(self, names: list):
        seen, dup = set(), []
        for n in names:
            if n in seen:
                dup.append(n)
            seen.add(n)
        if dup:
            raise InputError(f"the header line repeats column name(s) {', '.join(dup)}", file=self.path)

    def _row_bytes(self) -> float:
        """Mean bytes per data line over the first 200 data lines (blank lines ignored)."""
        with _open_text(self.path) as fh:
            sample = [line for _, line in zip(range(self._data_start + 200), fh)][self._data_start:]
        sizes = [len(line.encode()) for line in sample if line.strip()]
        return float(np.mean(sizes)) if sizes else 64.0

    def chunks(self, usecols: list, budget_bytes: float, numeric=(), na_tokens=()):
        """Chunks of ``usecols``: text, except ``numeric`` columns parsed as float64 by pandas
        (``na_tokens`` -> NaN); :class:`NotNumeric` when one of those holds other text."""
        size = Path(self.path).stat().st_size
        chunksize = None if size <= budget_bytes else rows_per_chunk(budget_bytes, self._row_bytes())
        numeric = [c for c in usecols if c in set(numeric)]
        kw = dict(sep=self.delimiter if self.delimiter is not None else r"\s+",
                  header=None, names=self.columns, index_col=False, skiprows=self._data_start,
                  usecols=list(usecols), dtype={c: ("float64" if c in numeric else str) for c in usecols},
                  na_filter=bool(numeric), keep_default_na=False,
                  na_values={c: list(na_tokens) for c in numeric}, skipinitialspace=True,
                  skip_blank_lines=True, encoding="utf-8", encoding_errors="replace",
                  chunksize=chunksize, engine="c")
        try:
            reader = pd.read_csv(self.path, **kw)
            frames = [reader] if chunksize is None else reader
            for frame in frames:
                yield {c: frame[c].to_numpy(dtype=np.float64 if c in numeric else object) for c in usecols}
        except InputError:
            raise
        except pd.errors.ParserError as exc:
            msg = " ".join(str(exc).split())
            raise InputError(f"cannot parse the table: {msg}", file=self.path) from None
        except (ValueError, TypeError) as exc:
            if numeric:  # some value is not a plain number: the caller re-reads as text
                raise NotNumeric(str(exc)) from None
            msg = " ".join(str(exc).split())
            raise InputError(f"cannot parse the table: {msg}", file=self.path) from None


# -- FITS --------------------------------------------------------------------------
def _native(arr: np.ndarray) -> np.ndarray:
    """A copy in native byte order; text decoded and stripped to an object array."""
    if arr.dtype.kind == "S":
        return np.array([v.decode("ascii", "replace").strip() for v in arr], dtype=object)
    if arr.dtype.kind == "U":
        return np.array([v.strip() for v in arr], dtype=object)
    return np.array(arr, dtype=arr.dtype.newbyteorder("="))


class FitsSource(_Source):
    """A FITS table HDU read through a memory map, one row slice at a time."""

    def __init__(self, path: str, hdu=None):
        from astropy.io import fits

        self.path = path
        try:
            self._hdul = fits.open(path, memmap=True)
        except OSError as exc:
            raise InputError(f"not a readable FITS file: {exc}", file=path) from None
        self._hdu = self._choose(hdu)
        cols = self._hdu.columns
        self.columns = list(cols.names)
        self.units = {c.name: c.unit for c in cols if c.unit}
        self._nulls = {c.name: c.null for c in cols if c.null not in (None, "")}
        self.nrows = int(self._hdu.header.get("NAXIS2", 0))
        self._row_bytes = float(self._hdu.header.get("NAXIS1", 8))

    def _choose(self, hdu):
        from astropy.io import fits

        tables = (fits.BinTableHDU, fits.TableHDU)
        if hdu is not None:
            key = int(hdu) if str(hdu).isdigit() else hdu
            try:
                h = self._hdul[key]
            except (KeyError, IndexError):
                names = ", ".join(f"{i}:{h.name}" for i, h in enumerate(self._hdul))
                raise InputError(f"no HDU {hdu!r}; the file has {names}", file=self.path) from None
            if not isinstance(h, tables):
                raise InputError(f"HDU {hdu!r} is not a table", file=self.path)
            return h
        for h in self._hdul:
            if isinstance(h, tables):
                return h
        raise InputError("the FITS file has no table HDU", file=self.path)

    def close(self):
        self._hdul.close()

    def _column(self, rec, name: str) -> np.ndarray:
        arr = np.asarray(rec.field(name))
        if arr.ndim != 1:
            raise InputError(f"vector column of shape {arr.shape[1:]} per row; give a scalar column",
                             file=self.path, column=name)
        out = _native(arr)
        null = self._nulls.get(name)
        if null is not None and out.dtype.kind in "iu":
            hit = out == int(null)
            if hit.any():
                out = out.astype(np.float64)
                out[hit] = np.nan
        return out

    def chunks(self, usecols: list, budget_bytes: float, numeric=(), na_tokens=()):
        if self.nrows == 0:
            return
        step = rows_per_chunk(budget_bytes, self._row_bytes, self.nrows)
        data = self._hdu.data
        for a in range(0, self.nrows, step):
            rec = data[a:a + step]
            yield {c: self._column(rec, c) for c in usecols}


# -- Parquet -----------------------------------------------------------------------
class ParquetSource(_Source):
    """A Parquet file read in record batches of the requested columns only."""

    def __init__(self, path: str):
        import pyarrow.parquet as pq

        self.path = path
        try:
            self._file = pq.ParquetFile(path)
        except Exception as exc:  # pyarrow raises ArrowInvalid, OSError, ...
            raise InputError(f"not a readable Parquet file: {exc}", file=path) from None
        self.columns = list(self._file.schema_arrow.names)
        self.units = {}
        self.nrows = int(self._file.metadata.num_rows)

    def chunks(self, usecols: list, budget_bytes: float, numeric=(), na_tokens=()):
        if self.nrows == 0:
            return
        size = Path(self.path).stat().st_size
        step = self.nrows if size <= budget_bytes else rows_per_chunk(budget_bytes, 16.0 * len(usecols))
        for batch in self._file.iter_batches(batch_size=step, columns=list(usecols)):
            frame = batch.to_pandas()
            yield {c: frame[c].to_numpy() for c in usecols}


# -- VOTable -------------------------------------------------------------------------
def _astropy_column(col) -> np.ndarray:
    """NumPy values of an astropy (Masked)Column: NaN / None where masked, text as objects."""
    mask = np.ma.getmaskarray(col)
    arr = np.ma.getdata(col)
    if arr.dtype.kind in "SU":
        out = _native(arr)
        out[mask] = None
        return out
    if arr.dtype.kind == "O":
        out = np.array(arr, dtype=object)
        out[mask] = None
        return out
    out = _native(arr)
    if mask.any():
        out = out.astype(np.float64)
        out[mask] = np.nan
    return out


class VOTableSource(_Source):
    """One table of a VOTable document (read whole, then handed out in slices)."""

    def __init__(self, path: str, table=None):
        from astropy.io import votable

        self.path = path
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                doc = votable.parse(path, verify="ignore")
                t = self._choose(doc, table)
                self._table = t.to_table(use_names_over_ids=True)
        except InputError:
            raise
        except Exception as exc:
            raise InputError(f"not a readable VOTable: {exc}", file=path) from None
        self.columns = list(self._table.colnames)
        self.units = {c: str(self._table[c].unit) for c in self.columns if self._table[c].unit is not None}
        self.nrows = len(self._table)

    def _choose(self, doc, table):
        tables = list(doc.iter_tables())
        if not tables:
            raise InputError("the VOTable holds no table", file=self.path)
        if table is None:
            return tables[0]
        if str(table).isdigit() and int(table) < len(tables):
            return tables[int(table)]
        for t in tables:
            if table in (t.ID, t.name):
                return t
        raise InputError(f"no table {table!r} in the VOTable", file=self.path)

    def chunks(self, usecols: list, budget_bytes: float, numeric=(), na_tokens=()):
        if self.nrows == 0:
            return
        step = rows_per_chunk(budget_bytes, 16.0 * len(usecols), self.nrows)
        for a in range(0, self.nrows, step):
            part = self._table[a:a + step]
            yield {c: _astropy_column(part[c]) for c in usecols}
