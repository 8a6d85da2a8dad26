"""Column mapping and value conversion for catalogue ingestion.

:class:`ColumnMap` names the input columns that play each role (position,
identifier, position-error model, magnitudes, carried extras).  The functions
here turn one chunk of raw column values (numbers, or strings from a text file)
into float64 arrays in the units gpumatch uses: degrees for RA/Dec, arcsec for
position errors, mag for magnitudes.  A value that cannot be converted raises
:class:`~gpumatch.catalogue.InputError` naming the file, the 1-based data row
within that file and the column.  A missing value becomes NaN, never 0.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..catalogue import ERR_UNITS, InputError

#: Values treated as missing by default (text compared after stripping, any case).
DEFAULT_MISSING = ("", "--", "nan", "NaN", "null")

#: (RA, Dec) column-name pairs tried, in order, when ``ra``/``dec`` are not given.
RADEC_CANDIDATES = (
    ("RAJ2000", "DEJ2000"), ("RA_ICRS", "DE_ICRS"), ("RA", "DEC"), ("RA", "DE"),
    ("RA_deg", "DEC_deg"), ("RA_deg", "DE_deg"), ("RAdeg", "DEdeg"), ("RAdeg", "DECdeg"),
    ("_RAJ2000", "_DEJ2000"), ("RA_J2000", "DEC_J2000"), ("RAJ2000", "DECJ2000"),
    ("ALPHA_J2000", "DELTA_J2000"), ("ra_icrs", "dec_icrs"),
)

COORD_MODES = ("auto", "deg", "sexagesimal")

#: Position-error models and the ColumnMap roles each needs.
ERROR_MODELS = {"circular": ("err",), "axes": ("err_ra", "err_dec"),
                "ellipse": ("err_a", "err_b", "err_pa")}

_UNIT_ALIASES = {
    "arcsec": "arcsec", "asec": "arcsec", "arcsecond": "arcsec", "arcseconds": "arcsec",
    '"': "arcsec", "''": "arcsec",
    "mas": "mas", "milliarcsec": "mas", "milliarcsecond": "mas",
    "arcmin": "arcmin", "amin": "arcmin", "arcminute": "arcmin", "arcminutes": "arcmin", "'": "arcmin",
    "deg": "deg", "degree": "deg", "degrees": "deg", "°": "deg",
    "rad": "rad", "radian": "rad", "radians": "rad",
}
_SEXAGESIMAL_UNITS = {"h:m:s": "hours", "hms": "hours", "hourangle": "hours",
                      "d:m:s": "degrees", "dms": "degrees"}

# Sexagesimal value: sign, then 2 or 3 fields separated by ':' / spaces / unit letters.
_SEXA = re.compile(
    r"^(?P<sign>[+-]?)\s*(?P<a>\d+)\s*[:hHdD°\s]\s*(?P<b>\d+(?:\.\d*)?)"
    r"(?:\s*[:mM'\s]\s*(?P<c>\d+(?:\.\d*)?)\s*[sS\"]?)?\s*$")
_INTEGER = re.compile(r"^[+-]?\d+$")


@dataclass
class ColumnMap:
    """Which input columns hold what.  Names match exactly, else case-insensitively.

    ra, dec : position columns; None finds them by common names (RAJ2000/DEJ2000,
        RA_ICRS/DE_ICRS, RA/DEC, RA_deg/DEC_deg, ... in any case).
    coords : 'auto' (decimal degrees, or sexagesimal strings such as '17 45 40.04',
        '17:45:40.04', '-29 00 28.1' -- decided per file from its column units or its
        first value), 'deg' or 'sexagesimal' (RA in hours, Dec in degrees).
    id : identifier column (default: the 0-based input row number).
    err : circular 1-sigma position error column (e.g. Muno's ePos); or
    err_ra, err_dec : per-axis 1-sigma errors (RA error on the sky, i.e. times cos Dec); or
    err_a, err_b, err_pa : error ellipse semi-axes and position angle of ``err_a``
        (degrees east of north).
    err_unit : unit of the error columns, one of 'arcsec', 'mas', 'arcmin', 'deg';
        None takes the file's column unit where it states one, else arcsec.
    mags : magnitude columns (mag), kept as float64 with NaN for missing values.
    keep : further columns carried into ``Catalogue.extra`` (e.g. HR0, ePos).
    missing : values meaning "missing": strings (compared after stripping, any
        case) and numbers (exact sentinels such as 99.0 or -99, applied to
        errors, magnitudes and extras but never to coordinates).  Replaces the
        default; extend it with ``DEFAULT_MISSING + (99.0,)``.
    """

    ra: str | None = None
    dec: str | None = None
    coords: str = "auto"
    id: str | None = None
    err: str | None = None
    err_ra: str | None = None
    err_dec: str | None = None
    err_a: str | None = None
    err_b: str | None = None
    err_pa: str | None = None
    err_unit: str | None = None
    mags: tuple = ()
    keep: tuple = ()
    missing: tuple = field(default=DEFAULT_MISSING)

    def __post_init__(self):
        self.mags = tuple(self.mags)
        self.keep = tuple(self.keep)
        self.missing = tuple(self.missing)
        if (self.ra is None) != (self.dec is None):
            raise ValueError("give both ra and dec columns, or neither (to find them by name)")
        if self.coords not in COORD_MODES:
            raise ValueError(f"coords must be one of {', '.join(COORD_MODES)}, got {self.coords!r}")
        if self.err_unit is not None and self.err_unit not in ERR_UNITS:
            raise ValueError(f"err_unit must be one of {', '.join(ERR_UNITS)}, got {self.err_unit!r}")
        self.error_model()  # checks that the error columns form one complete model

    def error_model(self) -> str | None:
        """'circular', 'axes', 'ellipse' or None (no position errors); ValueError if mixed or partial."""
        given = [m for m, roles in ERROR_MODELS.items() if any(getattr(self, r) is not None for r in roles)]
        if len(given) > 1:
            raise ValueError(f"give one position error model, not {' and '.join(given)}: "
                             "err, or err_ra+err_dec, or err_a+err_b+err_pa")
        if not given:
            return None
        absent = [r for r in ERROR_MODELS[given[0]] if getattr(self, r) is None]
        if absent:
            raise ValueError(f"the {given[0]} error model also needs {', '.join(absent)}")
        return given[0]

    def error_roles(self) -> dict:
        """{role: input column} of the error model ('err', 'err_ra', ..., 'err_pa')."""
        model = self.error_model()
        return {r: getattr(self, r) for r in ERROR_MODELS.get(model, ())}


@dataclass(frozen=True)
class Missing:
    """The ``missing`` setting split into text tokens (lower case) and numeric sentinels."""

    tokens: frozenset
    numbers: tuple

    @classmethod
    def from_values(cls, values) -> "Missing":
        tokens, numbers = set(), []
        for v in values:
            if isinstance(v, str):
                tokens.add(v.strip().lower())
                try:  # a numeric-looking marker ('-99') also marks the number
                    number = float(v)
                except ValueError:
                    continue
                if np.isfinite(number):
                    numbers.append(number)
            elif isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool):
                numbers.append(float(v))
            else:
                raise ValueError(f"missing-value marker {v!r} is neither a string nor a number")
        return cls(frozenset(tokens), tuple(numbers))


# -- column names -----------------------------------------------------------
def find_column(name: str, available, file: str, role: str) -> str:
    """The available column matching ``name`` (exactly, else case-insensitively, if unique)."""
    if name in available:
        return name
    folded = [c for c in available if c.lower() == name.lower()]
    if len(folded) == 1:
        return folded[0]
    listing = ", ".join(available)
    if len(folded) > 1:
        raise InputError(f"{role} column {name!r} matches several columns ({', '.join(folded)}) "
                         "when case is ignored; give the exact name", file=file)
    raise InputError(f"{role} column {name!r} not found; available columns: {listing}", file=file)


def detect_radec(available, file: str) -> tuple[str, str]:
    """(RA column, Dec column) found by common names, any case; InputError if none."""
    lower = {}
    for c in available:
        lower.setdefault(c.lower(), c)
    for ra, dec in RADEC_CANDIDATES:
        if ra.lower() in lower and dec.lower() in lower:
            return lower[ra.lower()], lower[dec.lower()]
    raise InputError("no RA/Dec columns found by their usual names (RAJ2000/DEJ2000, RA_ICRS/DE_ICRS, "
                     "RA/DEC, ...); name them with ra=/dec= (--ra/--dec); available columns: "
                     + ", ".join(available), file=file)


# -- units -------------------------------------------------------------------
def normalise_unit(unit) -> str | None:
    """A file's unit string reduced to a gpumatch name ('arcsec', 'deg', 'hours', ...), or None."""
    if unit is None:
        return None
    u = str(unit).strip().strip('"').strip()
    if not u:
        return None
    key = u.lower()
    if key in _SEXAGESIMAL_UNITS:
        return _SEXAGESIMAL_UNITS[key]
    return _UNIT_ALIASES.get(key, u)


def error_unit(cmap: ColumnMap, file_unit, file: str, column: str) -> str:
    """The unit to read an error column in; InputError when the file's unit disagrees or is unusable."""
    found = normalise_unit(file_unit)
    if cmap.err_unit is not None:
        if found in ERR_UNITS and found != cmap.err_unit:
            raise InputError(f"mismatched units: the file gives {file_unit!r} but err_unit="
                             f"{cmap.err_unit!r} was requested", file=file, column=column)
        return cmap.err_unit
    if found is None:
        return "arcsec"
    if found not in ERR_UNITS:
        raise InputError(f"the file gives unit {file_unit!r}, which is not an angle gpumatch knows "
                         f"({', '.join(ERR_UNITS)}); set err_unit (--err-unit) explicitly",
                         file=file, column=column)
    return found


def coord_mode_from_unit(cmap: ColumnMap, file_unit, file: str, column: str) -> str | None:
    """'deg' or 'sexagesimal' as the file's unit implies (None if it says nothing)."""
    found = normalise_unit(file_unit)
    if found is None:
        return None
    if found == "deg":
        mode = "deg"
    elif found in ("hours", "degrees"):
        mode = "sexagesimal"
    elif found in ERR_UNITS:  # an angle, but not one coordinates are given in
        raise InputError(f"coordinates in {file_unit!r} are not supported; give degrees or "
                         "sexagesimal strings", file=file, column=column)
    else:
        return None
    if cmap.coords != "auto" and cmap.coords != mode:
        raise InputError(f"mismatched units: the file gives {file_unit!r} but coords="
                         f"{cmap.coords!r} was requested", file=file, column=column)
    return mode


# -- value conversion -----------------------------------------------------------
def _strings(raw) -> pd.Series:
    """Stripped text values; None/NaN (absent fields) become ''."""
    s = pd.Series(np.asarray(raw, dtype=object), dtype=object)
    return s.str.strip().fillna("")


def _first_bad(bad: np.ndarray, values, file: str, row0: int, column: str, what: str):
    i = int(np.flatnonzero(bad)[0])
    raise InputError(f"value {values[i]!r} is not {what}", file=file, row=row0 + i + 1, column=column)


def is_text(raw) -> bool:
    return np.asarray(raw).dtype.kind in "OSU"


def to_float(raw, file: str, column: str, row0: int, missing: Missing,
             sentinels: bool = True) -> np.ndarray:
    """float64 values of one chunk; missing -> NaN.  ``row0``: file row of the chunk's first value.

    Text that is neither a number nor a missing marker raises InputError with its
    1-based data row.  ``sentinels=False`` ignores the numeric missing markers.
    """
    arr = np.asarray(raw)
    if arr.dtype.kind in "biuf":
        out = arr.astype(np.float64, copy=True)
    else:
        arr = arr.astype(object)
        out = np.array(pd.to_numeric(pd.Series(arr, dtype=object), errors="coerce"), dtype=np.float64)
        unparsed = np.flatnonzero(np.isnan(out))  # usually only the missing values: check those
        if unparsed.size:
            s = _strings(arr[unparsed])
            folded = s.str.lower()
            bad = ~(folded.isin(missing.tokens) | (folded == "nan")).to_numpy()
            if bad.any():
                i = int(unparsed[np.flatnonzero(bad)[0]])
                raise InputError(f"value {s.iloc[int(np.flatnonzero(bad)[0])]!r} is not a number",
                                 file=file, row=row0 + i + 1, column=column)
    if sentinels and missing.numbers:
        out[np.isin(out, missing.numbers)] = np.nan
    return out


def looks_sexagesimal(raw, missing: Missing) -> bool | None:
    """True/False from the first non-missing text value; None when all are missing."""
    if not is_text(raw):
        return False
    for v in np.asarray(raw, dtype=object):
        text = v.strip() if isinstance(v, str) else ""
        if text.lower() not in missing.tokens:
            return bool(_SEXA.match(text))
    return None


def sexagesimal_to_deg(raw, hours: bool, file: str, column: str, row0: int,
                       missing: Missing) -> np.ndarray:
    """Degrees from 'd m s' / 'd:m:s' / '17h45m40.04s' strings (RA in hours when ``hours``)."""
    s = _strings(raw)
    blank = s.str.lower().isin(missing.tokens).to_numpy()
    parts = s.str.extract(_SEXA)
    bad = parts["a"].isna().to_numpy() & ~blank
    if bad.any():
        _first_bad(bad, s.to_numpy(), file, row0, column, "a sexagesimal angle")
    a = parts["a"].astype(float).to_numpy()
    b = parts["b"].astype(float).to_numpy()
    c = parts["c"].astype(float).fillna(0.0).to_numpy()
    with np.errstate(invalid="ignore"):
        bad = ~blank & ((b >= 60.0) | (c >= 60.0) | ((a >= 24.0) if hours else (a > 90.0)))
    if bad.any():
        what = "a sexagesimal angle (minutes and seconds < 60" + (", hours < 24)" if hours else ")")
        _first_bad(bad, s.to_numpy(), file, row0, column, what)
    sign = np.where(parts["sign"].to_numpy() == "-", -1.0, 1.0)
    value = sign * (a + b / 60.0 + c / 3600.0)
    value[blank] = np.nan
    return value * 15.0 if hours else value


def to_ids(raw) -> np.ndarray:
    """Identifier values: text stripped (kept as text), numbers as they are."""
    arr = np.asarray(raw)
    if is_text(arr):
        return _strings(arr).to_numpy(dtype=object)
    return arr


def finish_extra(raw, missing: Missing):
    """A carried column as a whole: numbers as float64 (NaN missing), integer text as int64,
    other text as stripped strings with None for missing values."""
    arr = np.asarray(raw)
    if arr.dtype.kind == "b":
        return arr
    if arr.dtype.kind in "iu":
        if missing.numbers and np.isin(arr, missing.numbers).any():
            return to_float(arr, "", "", 0, missing)
        return arr
    if arr.dtype.kind == "f":
        return to_float(arr, "", "", 0, missing)
    s = _strings(arr)
    blank = s.str.lower().isin(missing.tokens).to_numpy()
    num = np.array(pd.to_numeric(s.where(~blank, "nan"), errors="coerce"), dtype=np.float64)
    if not (np.isnan(num) & ~blank & (s.str.lower() != "nan").to_numpy()).any():
        if not blank.any() and len(s) and s.str.match(_INTEGER).all():
            return finish_extra(s.astype(np.int64).to_numpy(), missing)
        if missing.numbers:
            num[np.isin(num, missing.numbers)] = np.nan
        return num
    return np.where(blank, None, s.to_numpy(dtype=object))
