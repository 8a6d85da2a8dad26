"""``read_catalogue``: one or several files (tiles) -> one validated :class:`Catalogue`.

Each file is read in chunks of the needed columns only (see
:mod:`gpumatch.io.formats`), its values converted to degrees / arcsec / mag
(:mod:`gpumatch.io.columns`), and the files concatenated in the order given.
Every row keeps its provenance: ``file`` (the path as given), ``file_row``
(0-based data row within that file) and ``row`` (0-based row of the
concatenation, i.e. the input as read).  Chunk sizes never change the result.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..catalogue import (ERR_UNITS, Catalogue, InputError, cov_axes, cov_circular, cov_ellipse,
                         validate)
from .columns import (ColumnMap, Missing, coord_mode_from_unit, detect_radec, error_unit,
                      finish_extra, find_column, is_text, looks_sexagesimal, sexagesimal_to_deg,
                      to_float, to_ids)
from .formats import NotNumeric, open_source

DEFAULT_MEMORY_BUDGET_MB = 1024.0
ERR_REASON = "position error is missing, not finite, or not positive"
PA_REASON = "error ellipse position angle is missing or not finite"


@dataclass
class _Part:
    """The converted columns of one file."""

    path: str
    fmt: str
    names: dict                      # role -> input column name
    n: int = 0
    ra: list = field(default_factory=list)
    dec: list = field(default_factory=list)
    ids: list = field(default_factory=list)
    errs: dict = field(default_factory=dict)   # role -> list of arcsec (PA: deg) chunks
    mags: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)


def read_catalogue(paths, columns: ColumnMap | None = None, name: str | None = None,
                   on_bad_rows: str = "raise", memory_budget_mb: float = DEFAULT_MEMORY_BUDGET_MB,
                   fmt: str | None = None, delimiter: str | None = None, hdu=None) -> Catalogue:
    """Read, convert, concatenate and validate catalogue file(s).

    paths : a path or a list of paths (tiles), concatenated in the order given.
    columns : the :class:`ColumnMap` (default: RA/Dec found by name, no errors).
    name : catalogue name (default: the first file's stem).
    on_bad_rows : 'raise' (InputError naming file, 1-based data row and column) or
        'drop' (bad rows removed and recorded with their reason in ``cat.dropped``).
    memory_budget_mb : files larger than this (MiB) are read in chunks of about this size.
    fmt : 'text' (alias 'tsv', 'vizier'; delimiter sniffed), 'csv' (comma), 'fits', 'parquet' or
        'votable' (default: from each file's extension).  VOTables are parsed whole (XML),
        so the memory budget does not bound them.
    delimiter : text delimiter (default: sniffed per file).
    hdu : FITS HDU / VOTable table (index or name; default: the first table).
    """
    if on_bad_rows not in ("raise", "drop"):
        raise ValueError("on_bad_rows must be 'raise' or 'drop'")
    paths = [str(p) for p in ([paths] if isinstance(paths, (str, Path)) else paths)]
    if not paths:
        raise ValueError("no input files given")
    cmap = columns if columns is not None else ColumnMap()
    missing = Missing.from_values(cmap.missing)
    budget = float(memory_budget_mb) * 2**20
    parts = [_read_file(p, cmap, missing, budget, fmt, delimiter, hdu) for p in paths]
    cat, errs = _assemble(parts, cmap, missing, name or _stem(paths[0]))
    cat = _check_errors(cat, errs, parts, on_bad_rows)
    return validate(cat, on_bad_rows)


def _stem(path: str) -> str:
    p = Path(path)
    while p.suffix:
        p = p.with_suffix("")
    return p.name


# -- one file ----------------------------------------------------------------------
def _resolve(cmap: ColumnMap, available: list, path: str) -> dict:
    """{role: input column} for every column the map asks for ('mag:X' / 'keep:X' for lists)."""
    if cmap.ra is None and cmap.dec is None:
        ra, dec = detect_radec(available, path)
    else:
        ra, dec = find_column(cmap.ra, available, path, "RA"), find_column(cmap.dec, available, path, "Dec")
    names = {"ra": ra, "dec": dec}
    if cmap.id is not None:
        names["id"] = find_column(cmap.id, available, path, "id")
    for role, col in cmap.error_roles().items():
        names[role] = find_column(col, available, path, "position error")
    for m in cmap.mags:
        names[f"mag:{m}"] = find_column(m, available, path, "magnitude")
    for k in cmap.keep:
        names[f"keep:{k}"] = find_column(k, available, path, "kept")
    return names


def _read_file(path: str, cmap: ColumnMap, missing: Missing, budget: float, fmt, delimiter,
               hdu) -> _Part:
    """One file's converted columns.  Text is first read with numbers parsed by pandas (fast);
    if a numeric column holds anything else, the file is read again all as text."""
    try:
        return _read_file_as(path, cmap, missing, budget, fmt, delimiter, hdu, fast=True)
    except NotNumeric:
        return _read_file_as(path, cmap, missing, budget, fmt, delimiter, hdu, fast=False)


def _na_tokens(missing: Missing) -> list:
    variants = {v for t in missing.tokens for v in (t, t.upper(), t.capitalize())}
    return sorted(variants | ({"NaN"} if "nan" in missing.tokens else set()))


def _read_file_as(path: str, cmap: ColumnMap, missing: Missing, budget: float, fmt, delimiter,
                  hdu, fast: bool) -> _Part:
    with open_source(path, fmt, delimiter, hdu) as src:
        names = _resolve(cmap, src.columns, path)
        part = _Part(path, type(src).__name__.replace("Source", "").lower(), names)
        modes = {r: coord_mode_from_unit(cmap, src.units.get(names[r]), path, names[r])
                 or (None if cmap.coords == "auto" else cmap.coords) for r in ("ra", "dec")}
        units = {r: error_unit(cmap, src.units.get(names[r]), path, names[r])
                 for r in cmap.error_roles() if r != "err_pa"}
        usecols = [c for c in src.columns if c in set(names.values())]
        numeric = _numeric_columns(names, modes) if fast else set()
        for chunk in src.chunks(usecols, budget, numeric, _na_tokens(missing)):
            _convert_chunk(part, chunk, modes, units, missing)
    return part


def _numeric_columns(names: dict, modes: dict) -> set:
    """Columns a text reader may parse straight to floats: errors, magnitudes and decimal
    coordinates, unless the column is also the id or a kept extra (those stay text)."""
    roles = [r for r in names if r.startswith(("err", "mag:"))]
    roles += [r for r in ("ra", "dec") if modes[r] != "sexagesimal"]
    text = {names[r] for r in names if r == "id" or r.startswith("keep:")}
    return {names[r] for r in roles} - text


def _coords(raw, role: str, modes: dict, part: _Part, missing: Missing) -> np.ndarray:
    """Degrees from one chunk of a coordinate column; settles 'auto' on the first value."""
    col = part.names[role]
    if modes[role] is None:
        sexa = looks_sexagesimal(raw, missing)
        if sexa is None:  # every value in this chunk is missing: decide on a later chunk
            return np.full(len(raw), np.nan)
        modes[role] = "sexagesimal" if sexa else "deg"
    if modes[role] == "deg":
        return to_float(raw, part.path, col, part.n, missing, sentinels=False)
    if not is_text(raw):
        raise InputError("holds numbers, not sexagesimal strings (use coords='deg')",
                         file=part.path, column=col)
    return sexagesimal_to_deg(raw, role == "ra", part.path, col, part.n, missing)


def _convert_chunk(part: _Part, chunk: dict, modes: dict, units: dict, missing: Missing):
    nm = part.names
    n = len(chunk[nm["ra"]])
    part.ra.append(_coords(chunk[nm["ra"]], "ra", modes, part, missing))
    part.dec.append(_coords(chunk[nm["dec"]], "dec", modes, part, missing))
    if "id" in nm:
        part.ids.append(to_ids(chunk[nm["id"]]))
    for role in [r for r in nm if r.startswith("err")]:
        v = to_float(chunk[nm[role]], part.path, nm[role], part.n, missing)
        part.errs.setdefault(role, []).append(v if role == "err_pa" else v * ERR_UNITS[units[role]])
    for role in [r for r in nm if r.startswith("mag:")]:
        part.mags.setdefault(role[4:], []).append(to_float(chunk[nm[role]], part.path, nm[role],
                                                           part.n, missing))
    for role in [r for r in nm if r.startswith("keep:")]:
        part.extra.setdefault(role[5:], []).append(np.asarray(chunk[nm[role]]))
    part.n += n


# -- all files ------------------------------------------------------------------------
def _cat(chunks: list, dtype=np.float64) -> np.ndarray:
    if not chunks:
        return np.zeros(0, dtype=dtype)
    kinds = {np.asarray(c).dtype.kind for c in chunks}
    if len(kinds) > 1 and "O" in kinds:  # text in one tile, numbers in another
        chunks = [np.asarray(c, dtype=object) for c in chunks]
    return np.concatenate(chunks)


def _joined(parts: list, role: str) -> str:
    names = list(dict.fromkeys(p.names[role] for p in parts))
    return "/".join(names)


def _assemble(parts: list, cmap: ColumnMap, missing: Missing, name: str) -> tuple:
    """(catalogue before validation, {error role: values in arcsec (PA in deg)})."""
    counts = [p.n for p in parts]
    ra = _cat([c for p in parts for c in p.ra])
    dec = _cat([c for p in parts for c in p.dec])
    ids = _cat([c for p in parts for c in p.ids], object) if cmap.id is not None else None
    errs = {r: _cat([c for p in parts for c in p.errs.get(r, [])]) for r in cmap.error_roles()}
    cov = _cov(cmap.error_model(), errs)
    mags = {m: _cat([c for p in parts for c in p.mags.get(m, [])]) for m in cmap.mags}
    extra = pd.DataFrame({k: finish_extra(_cat([c for p in parts for c in p.extra.get(k, [])], object),
                                          missing) for k in cmap.keep}, index=np.arange(len(ra)))
    file = np.repeat(np.array([p.path for p in parts], dtype=object), counts)
    file_row = np.concatenate([np.arange(c, dtype=np.int64) for c in counts])
    meta = {
        "path": ", ".join(p.path for p in parts),
        "paths": [p.path for p in parts],
        "formats": [p.fmt for p in parts],
        "rows_per_file": counts,
        "columns": {r: _joined(parts, r) for r in ("ra", "dec", "id") if r in parts[0].names},
        "error_model": cmap.error_model(),
        "error_columns": {r: _joined(parts, r) for r in cmap.error_roles()},
    }
    if cmap.error_model():
        meta["columns"]["err"] = "/".join(meta["error_columns"].values())
    cat = Catalogue(name=name, ra=ra, dec=dec, cov=cov, mags=mags, extra=extra, ids=ids,
                    file=file, file_row=file_row, meta=meta)
    return cat, errs


def _cov(model: str | None, errs: dict):
    if model is None:
        return None
    with np.errstate(invalid="ignore"):
        if model == "circular":
            return cov_circular(errs["err"])
        if model == "axes":
            return cov_axes(errs["err_ra"], errs["err_dec"])
        return cov_ellipse(errs["err_a"], errs["err_b"], errs["err_pa"])


# -- error-column checks (before validate, so the message names the exact column) -----------
def _bad_error_rows(errs: dict, parts: list) -> dict:
    """{row: (column, reason)} for missing / non-finite / non-positive error values."""
    offsets = np.cumsum([0] + [p.n for p in parts])
    bad: dict = {}
    for role, v in errs.items():
        with np.errstate(invalid="ignore"):
            mask = ~np.isfinite(v) if role == "err_pa" else ~(np.isfinite(v) & (v > 0))
        rows = np.flatnonzero(mask)
        which = np.searchsorted(offsets, rows, side="right") - 1
        why = PA_REASON if role == "err_pa" else ERR_REASON
        for i, k in zip(rows.tolist(), which.tolist()):
            bad.setdefault(i, (parts[k].names[role], why))
    return bad


def _check_errors(cat: Catalogue, errs: dict, parts: list, on_bad_rows: str) -> Catalogue:
    """Raise on, or drop and record, rows whose error columns are unusable."""
    bad = _bad_error_rows(errs, parts)
    if not bad:
        return cat
    rows = sorted(bad)
    if on_bad_rows == "raise":
        first = rows[0]
        if first > 0:  # an earlier row with bad coordinates is reported first
            validate(cat.subset(np.arange(first)), "raise")
        col, why = bad[first]
        more = f" ({len(rows) - 1} more rows with bad position errors; on_bad_rows='drop' removes " \
               "and reports them)" \
            if len(rows) > 1 else ""
        raise InputError(why + more, file=cat.file[first], row=int(cat.file_row[first]) + 1, column=col)
    keep = np.ones(len(cat), dtype=bool)
    keep[rows] = False
    dropped = pd.DataFrame({"row": cat.row[rows], "file": cat.file[rows], "file_row": cat.file_row[rows],
                            "column": [bad[i][0] for i in rows], "reason": [bad[i][1] for i in rows]})
    cat = cat.subset(keep)
    cat.dropped = dropped
    if len(cat) == 0:
        raise InputError("no valid rows left after dropping bad rows", file=cat.meta["path"])
    return cat
