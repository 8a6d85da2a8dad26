"""One row per X-ray source naming its best counterpart in each infrared catalogue.

The one-sided run is made once per infrared catalogue (e.g. GALACTICNUCLEUS and
VVV); each gives a ``best`` table with one row per X-ray source considered.
:func:`merge_best` joins them on the X-ray source: the X-ray columns once, then
every per-catalogue column prefixed by the catalogue name (``GN_P_best``,
``VVV_id_ir``, ...), then cross-catalogue columns:

* ``best_catalogue``: the catalogue whose best counterpart has the highest
  ``P_best`` ('' when no catalogue offers a candidate), and ``P_best_max``;
* for each later catalogue B against the first A, when IR positions are present
  (``ra_ir``/``dec_ir`` in deg): ``A_B_sep_arcsec``, the separation between the
  two chosen counterparts (arcsec), and ``A_B_same`` (True when within
  ``same_tolerance_arcsec``: both catalogues name the same star).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..catalogue import ARCSEC_PER_DEG

#: Columns describing the X-ray source (taken once, from the first table that has them).
XRAY_COLUMNS = ("index_x", "row", "file", "file_row", "id_x", "ra", "dec", "sigma_x_arcsec")


def angular_sep_arcsec(ra1, dec1, ra2, dec2) -> np.ndarray:
    """Great-circle separation in arcsec (haversine; inputs in deg; NaN propagates)."""
    ra1, dec1, ra2, dec2 = (np.radians(np.asarray(v, dtype=np.float64)) for v in (ra1, dec1, ra2, dec2))
    h = np.sin((dec2 - dec1) / 2) ** 2 + np.cos(dec1) * np.cos(dec2) * np.sin((ra2 - ra1) / 2) ** 2
    return np.degrees(2 * np.arcsin(np.sqrt(np.clip(h, 0, 1)))) * ARCSEC_PER_DEG


def merge_best(best: dict, same_tolerance_arcsec: float = 0.5) -> pd.DataFrame:
    """Merge per-catalogue best-counterpart tables (``{name: DataFrame}``) on ``index_x``.

    Every table must hold the same X-ray sources (the same ``index_x`` values, one
    row each); the result has one row per X-ray source in ``index_x`` order.
    """
    if not best:
        raise ValueError("merge_best needs at least one catalogue's table")
    names = list(best)
    ref = None
    for name in names:
        t = best[name]
        if "index_x" not in t.columns:
            raise ValueError(f"catalogue {name!r}: best table has no index_x column")
        if t["index_x"].duplicated().any():
            raise ValueError(f"catalogue {name!r}: best table has more than one row per X-ray source")
        keys = np.sort(t["index_x"].to_numpy())
        if ref is None:
            ref = keys
        elif len(keys) != len(ref) or not np.array_equal(keys, ref):
            raise ValueError(f"catalogue {name!r}: best table holds different X-ray sources "
                             f"than {names[0]!r} ({len(keys)} vs {len(ref)} rows)")
    tables = {n: best[n].sort_values("index_x").reset_index(drop=True) for n in names}
    first = tables[names[0]]
    out = first[[c for c in XRAY_COLUMNS if c in first.columns]].copy()
    for name in names:
        t = tables[name]
        own = [c for c in t.columns if c not in XRAY_COLUMNS]
        out = pd.concat([out, t[own].add_prefix(f"{name}_")], axis=1)
    _cross_columns(out, names, same_tolerance_arcsec)
    return out


def _cross_columns(out: pd.DataFrame, names: list, tol: float):
    p = np.stack([out[f"{n}_P_best"].to_numpy(dtype=float) if f"{n}_P_best" in out else
                  np.full(len(out), np.nan) for n in names], axis=1)
    has = np.isfinite(p).any(axis=1)
    k = np.argmax(np.where(np.isfinite(p), p, -np.inf), axis=1)
    out["best_catalogue"] = np.where(has, np.asarray(names, dtype=object)[k], "")
    out["P_best_max"] = np.where(has, p[np.arange(len(p)), k], np.nan)
    a = names[0]
    for b in names[1:]:
        cols = [f"{a}_ra_ir", f"{a}_dec_ir", f"{b}_ra_ir", f"{b}_dec_ir"]
        if all(c in out for c in cols):
            sep = angular_sep_arcsec(*(out[c].to_numpy(dtype=float) for c in cols))
            out[f"{a}_{b}_sep_arcsec"] = sep
            out[f"{a}_{b}_same"] = sep <= tol
