"""The validated in-memory catalogue every stage works on.

A :class:`Catalogue` holds host (NumPy) arrays of equal length ``n``:

* ``ra``, ``dec``: ICRS/J2000 position in degrees, RA normalised to [0, 360).
* ``cov``: ``(n, 3)`` tangent-plane position covariance in arcsec^2, columns
  ``(s_aa, s_dd, s_ad)`` = (sigma_alpha^2, sigma_delta^2, rho sigma_alpha sigma_delta),
  the alpha axis pointing east (RA * cos Dec).  Circular errors give
  ``(s^2, s^2, 0)``; an ellipse (a, b, PA east of north) is converted with
  Wilson & Naylor (2018) eqs 28-29.  May be ``None`` for a catalogue without
  position errors (then only fixed-radius searches apply).
* ``mags``: ``{band: float64 array}`` in mag; a missing magnitude is NaN, never 0.
* ``extra``: other carried columns (pandas DataFrame, e.g. HR0, flags).
* ``ids``: the source identifiers (default: the input row number).
* ``row``: 0-based row of each source in the input as read (files/tiles
  concatenated in the order given) -- the key that ties every output back to
  the input; ``file`` and ``file_row`` name the file and the row within it.

``dropped`` records rows removed by validation with ``on_bad_rows='drop'``
(row, file, file_row, column, reason), so nothing is lost silently.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

ARCSEC_PER_DEG = 3600.0
ARCSEC_PER_RAD = 180.0 / np.pi * 3600.0
ERR_UNITS = {"arcsec": 1.0, "mas": 1e-3, "deg": 3600.0, "arcmin": 60.0, "rad": ARCSEC_PER_RAD}


class InputError(ValueError):
    """Bad input, with the file, the (1-based data) row and the column it was found in."""

    def __init__(self, problem: str, file: str | None = None, row: int | None = None,
                 column: str | None = None):
        self.problem, self.file, self.row, self.column = problem, file, row, column
        where = []
        if file is not None:
            where.append(str(file))
        if row is not None:
            where.append(f"row {row}")
        if column is not None:
            where.append(f"column {column!r}")
        super().__init__((": ".join([", ".join(where), problem])) if where else problem)


DROPPED_COLUMNS = ["row", "file", "file_row", "column", "reason"]


@dataclass
class Catalogue:
    name: str
    ra: np.ndarray
    dec: np.ndarray
    cov: np.ndarray | None = None
    mags: dict = field(default_factory=dict)
    extra: pd.DataFrame | None = None
    ids: np.ndarray | None = None
    row: np.ndarray | None = None
    file: np.ndarray | None = None
    file_row: np.ndarray | None = None
    dropped: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=DROPPED_COLUMNS))
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        n = len(self.ra)
        self.ra = np.asarray(self.ra, dtype=np.float64)
        self.dec = np.asarray(self.dec, dtype=np.float64)
        if self.row is None:
            self.row = np.arange(n, dtype=np.int64)
        if self.ids is None:
            self.ids = self.row.copy()
        if self.file is None:
            self.file = np.full(n, self.name, dtype=object)
        if self.file_row is None:
            self.file_row = self.row.copy()
        if self.extra is None:
            self.extra = pd.DataFrame(index=np.arange(n))
        self.mags = {k: np.asarray(v, dtype=np.float64) for k, v in self.mags.items()}
        if self.cov is not None:
            self.cov = np.asarray(self.cov, dtype=np.float64).reshape(n, 3)
        for key, arr in [("dec", self.dec), ("ids", self.ids), ("row", self.row),
                         ("file", self.file), ("file_row", self.file_row)] + \
                [(f"mag {k}", v) for k, v in self.mags.items()]:
            if len(arr) != n:
                raise ValueError(f"catalogue {self.name!r}: {key} has {len(arr)} rows, ra has {n}")
        self._xyz = None

    def __len__(self) -> int:
        return len(self.ra)

    # -- position errors -------------------------------------------------
    @property
    def sigma_arcsec(self) -> np.ndarray:
        """Circular-equivalent 1-sigma error, sqrt((s_aa + s_dd)/2) in arcsec (NaN if none)."""
        if self.cov is None:
            return np.full(len(self), np.nan)
        return np.sqrt(0.5 * (self.cov[:, 0] + self.cov[:, 1]))

    @property
    def xyz(self) -> np.ndarray:
        """``(n, 3)`` float64 unit vectors, computed once on the host (shared by both backends)."""
        if self._xyz is None:
            self._xyz = radec_to_xyz(self.ra, self.dec)
        return self._xyz

    def subset(self, sel) -> "Catalogue":
        """A new catalogue of the selected rows (boolean mask or index array); provenance kept."""
        sel = np.asarray(sel)
        if sel.dtype == bool:
            sel = np.flatnonzero(sel)
        return replace(
            self,
            ra=self.ra[sel], dec=self.dec[sel],
            cov=None if self.cov is None else self.cov[sel],
            mags={k: v[sel] for k, v in self.mags.items()},
            extra=self.extra.iloc[sel].reset_index(drop=True),
            ids=self.ids[sel], row=self.row[sel], file=self.file[sel], file_row=self.file_row[sel],
            dropped=self.dropped.copy(), meta=dict(self.meta),
        )

    def to_frame(self) -> pd.DataFrame:
        """All columns as a DataFrame (ra/dec in deg, errors in arcsec, magnitudes in mag)."""
        d = {"id": self.ids, "row": self.row, "file": self.file, "file_row": self.file_row,
             "ra": self.ra, "dec": self.dec}
        if self.cov is not None:
            d.update(sigma_arcsec=self.sigma_arcsec, cov_aa_arcsec2=self.cov[:, 0],
                     cov_dd_arcsec2=self.cov[:, 1], cov_ad_arcsec2=self.cov[:, 2])
        d.update(self.mags)
        df = pd.DataFrame(d)
        for c in self.extra.columns:
            if c not in df:
                df[c] = self.extra[c].to_numpy()
        return df


def radec_to_xyz(ra_deg, dec_deg) -> np.ndarray:
    """Unit vectors (n, 3) float64 from RA/Dec in degrees."""
    ra = np.radians(np.asarray(ra_deg, dtype=np.float64))
    dec = np.radians(np.asarray(dec_deg, dtype=np.float64))
    cd = np.cos(dec)
    return np.stack([cd * np.cos(ra), cd * np.sin(ra), np.sin(dec)], axis=1)


# -- error models ----------------------------------------------------------
def _positive(x) -> np.ndarray:
    """float64 copy with non-positive values made NaN, so validation flags them (not squares them away)."""
    x = np.array(x, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        x[~(x > 0)] = np.nan
    return x


def cov_circular(sigma_arcsec) -> np.ndarray:
    s2 = _positive(sigma_arcsec) ** 2
    return np.stack([s2, s2, np.zeros_like(s2)], axis=1)


def cov_axes(sigma_ra_arcsec, sigma_dec_arcsec) -> np.ndarray:
    """Per-axis errors (the RA error already on the sky, i.e. times cos Dec)."""
    a = _positive(sigma_ra_arcsec)
    d = _positive(sigma_dec_arcsec)
    return np.stack([a * a, d * d, np.zeros_like(a)], axis=1)


def cov_ellipse(a_arcsec, b_arcsec, pa_deg) -> np.ndarray:
    """Error ellipse (semi-axes a >= b in arcsec, PA of a east of north in deg), W&N eqs 28-29."""
    a = _positive(a_arcsec)
    b = _positive(b_arcsec)
    t = np.radians(np.asarray(pa_deg, dtype=np.float64))
    s, c = np.sin(t), np.cos(t)
    return np.stack([a * a * s * s + b * b * c * c, a * a * c * c + b * b * s * s,
                     (a * a - b * b) * s * c], axis=1)


# -- validation --------------------------------------------------------------
def _record(bad: dict, mask: np.ndarray, column: str, reason: str):
    for i in np.flatnonzero(mask):
        bad.setdefault(int(i), (column, reason))


def validate(cat: Catalogue, on_bad_rows: str = "raise", err_columns: dict | None = None) -> Catalogue:
    """Check and normalise a catalogue; return it (possibly with rows dropped).

    RA is wrapped to [0, 360).  Non-finite RA/Dec, |Dec| > 90, and non-finite or
    non-positive position errors are bad rows: ``on_bad_rows='raise'`` raises
    :class:`InputError` naming the file, the 1-based data row within it and the
    column of the first one; ``'drop'`` removes them and records each in
    ``cat.dropped`` with its reason.  An empty catalogue is an error either way.
    ``err_columns`` maps the covariance role ('err') to the input column name for messages.
    """
    if on_bad_rows not in ("raise", "drop"):
        raise ValueError("on_bad_rows must be 'raise' or 'drop'")
    n = len(cat)
    if n == 0:
        raise InputError("catalogue is empty (no data rows)", file=cat.meta.get("path", cat.name))
    names = dict(ra="ra", dec="dec", err="position error")
    names.update(cat.meta.get("columns", {}))
    names.update(err_columns or {})
    bad: dict[int, tuple[str, str]] = {}
    _record(bad, ~np.isfinite(cat.ra), names["ra"], "RA is missing or not a number")
    _record(bad, ~np.isfinite(cat.dec), names["dec"], "Dec is missing or not a number")
    with np.errstate(invalid="ignore"):
        _record(bad, np.abs(cat.dec) > 90.0, names["dec"], "Dec outside [-90, 90] deg")
    if cat.cov is not None:
        with np.errstate(invalid="ignore"):
            var_ok = np.isfinite(cat.cov).all(axis=1) & (cat.cov[:, 0] > 0) & (cat.cov[:, 1] > 0)
            det = cat.cov[:, 0] * cat.cov[:, 1] - cat.cov[:, 2] ** 2
        _record(bad, ~var_ok, names["err"], "position error is missing, not finite, or not positive")
        _record(bad, var_ok & ~(det > 0), names["err"], "error ellipse is degenerate")
    if bad:
        rows = sorted(bad)
        if on_bad_rows == "raise":
            i = rows[0]
            col, why = bad[i]
            more = f" ({len(rows) - 1} more bad rows; on_bad_rows='drop' removes and reports them)" \
                if len(rows) > 1 else ""
            raise InputError(why + more, file=cat.file[i], row=int(cat.file_row[i]) + 1, column=col)
        keep = np.ones(n, dtype=bool)
        keep[rows] = False
        rec = pd.DataFrame({
            "row": cat.row[rows], "file": cat.file[rows], "file_row": cat.file_row[rows],
            "column": [bad[i][0] for i in rows], "reason": [bad[i][1] for i in rows]})
        dropped = pd.concat([cat.dropped, rec], ignore_index=True) if len(cat.dropped) else rec
        cat = cat.subset(keep)
        cat.dropped = dropped
        if len(cat) == 0:
            raise InputError("no valid rows left after dropping bad rows",
                             file=cat.meta.get("path", cat.name))
    cat.ra = np.mod(cat.ra, 360.0)
    cat.ra[cat.ra >= 360.0] = 0.0  # mod of a tiny negative number rounds to 360.0
    cat._xyz = None
    return cat


def summarize_dropped(cat: Catalogue) -> dict:
    """{reason: count} of the rows validation dropped."""
    if len(cat.dropped) == 0:
        return {}
    return cat.dropped.groupby("reason").size().to_dict()
