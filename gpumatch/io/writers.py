"""Output tables with provenance metadata, and reading them back.

:func:`write_table` writes a table as FITS, Parquet or CSV (chosen by the
extension) together with a metadata dict (gpumatch version, backend, options,
seed, inputs, ...; any JSON-serialisable values):

* FITS: a binary-table HDU named ``GPUMATCH`` whose header keyword ``GMMETA``
  holds the metadata as JSON (long values continue over ``CONTINUE`` cards);
* Parquet: the schema metadata key ``gpumatch`` holds the JSON;
* CSV: ``# key = <json value>`` comment lines above the header line (the
  catalogue readers skip leading '#' lines, so the file reads back as input).

:func:`read_table` returns ``(DataFrame, meta)`` and :func:`read_table_meta`
only the metadata.  Files are written to a temporary name first and renamed,
so a failed write never leaves a truncated table behind.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
from pathlib import Path

import numpy as np
import pandas as pd

from .formats import _open_text

WRITE_FORMATS = {".fits": "fits", ".fit": "fits", ".parquet": "parquet", ".pq": "parquet",
                 ".csv": "csv"}
FITS_KEY = "GMMETA"
PARQUET_KEY = b"gpumatch"
EXTNAME = "GPUMATCH"


def output_format(path, fmt: str | None = None) -> str:
    """'fits', 'parquet' or 'csv' for ``path`` (from ``fmt`` or the extension)."""
    if fmt is not None:
        if fmt not in set(WRITE_FORMATS.values()):
            raise ValueError(f"unknown output format {fmt!r}: choose fits, parquet or csv")
        return fmt
    ext = Path(path).suffix.lower()
    if ext not in WRITE_FORMATS:
        raise ValueError(f"{path}: output extension must be one of {', '.join(WRITE_FORMATS)}")
    return WRITE_FORMATS[ext]


def _json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (Path, set, tuple)):
        return str(obj) if isinstance(obj, Path) else list(obj)
    raise TypeError(f"metadata value {obj!r} of type {type(obj).__name__} is not JSON-serialisable")


def jsonable(obj):
    """A copy of ``obj`` that ``json.dumps`` writes as strict JSON: dataclasses and mappings become
    objects, sequences and arrays lists, NumPy scalars Python numbers, paths strings, and
    non-finite floats ``null``."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return jsonable(dataclasses.asdict(obj))
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return jsonable(obj.item())
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def _dumps(value) -> str:
    return json.dumps(value, default=_json_default, sort_keys=False)


def _as_frame(table) -> pd.DataFrame:
    """A DataFrame from a DataFrame, an astropy Table or a dict of columns."""
    if isinstance(table, pd.DataFrame):
        return table.reset_index(drop=True)
    if hasattr(table, "to_pandas"):
        return table.to_pandas().reset_index(drop=True)
    return pd.DataFrame(dict(table))


def _text_columns(df: pd.DataFrame) -> pd.DataFrame:
    """Object columns as plain strings ('' for None), so every format can store them."""
    out = df.copy()
    for c in out.columns:
        if out[c].dtype == object:
            out[c] = [("" if v is None else str(v)) for v in out[c]]
    return out


def write_table(table, path, meta: dict | None = None, fmt: str | None = None,
                overwrite: bool = False) -> Path:
    """Write ``table`` (DataFrame, astropy Table or dict of columns) with ``meta`` to ``path``.

    The format comes from ``fmt`` or the extension (.fits/.fit, .parquet/.pq, .csv).
    An existing file is replaced only with ``overwrite=True``.
    """
    path = Path(path)
    kind = output_format(path, fmt)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists (use overwrite)")
    meta_json = _dumps(meta or {})
    df = _as_frame(table)
    tmp = path.with_name(f".{path.name}.part")
    try:
        {"fits": _write_fits, "parquet": _write_parquet, "csv": _write_csv}[kind](df, tmp, meta or {},
                                                                               meta_json)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def _write_fits(df, path, meta, meta_json):
    from astropy.io import fits
    from astropy.table import Table

    from .. import __version__

    hdu = fits.table_to_hdu(Table.from_pandas(_text_columns(df)))
    hdu.name = EXTNAME
    hdu.header["CREATOR"] = f"gpumatch {__version__}"
    hdu.header[FITS_KEY] = (meta_json, "gpumatch provenance (JSON)")
    fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(path)


def _write_parquet(df, path, meta, meta_json):
    import pyarrow as pa
    import pyarrow.parquet as pq

    t = pa.Table.from_pandas(_text_columns(df), preserve_index=False)
    md = dict(t.schema.metadata or {})
    md[PARQUET_KEY] = meta_json.encode()
    pq.write_table(t.replace_schema_metadata(md), path)


def _write_csv(df, path, meta, meta_json):
    with open(path, "w", encoding="utf-8", newline="") as fh:
        for key, value in meta.items():
            if "\n" in str(key) or " = " in str(key):
                raise ValueError(f"metadata key {key!r} cannot be written to a CSV header")
            fh.write(f"# {key} = {_dumps(value)}\n")
        df.to_csv(fh, index=False, lineterminator="\n")


# -- reading back --------------------------------------------------------------------
def _csv_meta(path) -> tuple[dict, int]:
    meta, n = {}, 0
    with _open_text(str(path)) as fh:
        for line in fh:
            if not line.startswith("#"):
                break
            n += 1
            key, sep, value = line[1:].strip().partition(" = ")
            if sep:
                meta[key] = json.loads(value)
    return meta, n


def read_table_meta(path) -> dict:
    """The metadata dict :func:`write_table` stored in ``path`` ({} if none)."""
    kind = output_format(path)
    if kind == "fits":
        from astropy.io import fits

        with fits.open(path) as hdul:
            hdu = hdul[EXTNAME] if EXTNAME in hdul else hdul[1]
            value = hdu.header.get(FITS_KEY)
        return json.loads(value) if value else {}
    if kind == "parquet":
        import pyarrow.parquet as pq

        md = pq.read_schema(path).metadata or {}
        return json.loads(md[PARQUET_KEY]) if PARQUET_KEY in md else {}
    return _csv_meta(path)[0]


def read_table(path) -> tuple[pd.DataFrame, dict]:
    """(table as a DataFrame, metadata dict) of a file written by :func:`write_table`."""
    kind = output_format(path)
    if kind == "fits":
        from astropy.table import Table

        t = Table.read(path, hdu=EXTNAME)
        t.convert_bytestring_to_unicode()
        df = t.to_pandas()
    elif kind == "parquet":
        df = pd.read_parquet(path)
    else:
        _, n = _csv_meta(path)
        df = pd.read_csv(path, skiprows=n)
    return df, read_table_meta(path)
