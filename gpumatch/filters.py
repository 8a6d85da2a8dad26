"""Selection rules that say, row by row, why a source was kept or removed.

A rule returns a :class:`FilterResult`: per input row a ``keep`` flag, a
``reason`` (``''`` when kept, else a tag naming the rule and the side removed) and
an ``info`` note for kept rows that deserve one (e.g. ``'hr0 missing (kept)'``).
``summary()`` counts rows per reason, ``frame()`` gives the annotated per-row
table and ``apply(cat)`` returns the kept subset (provenance columns intact, the
rule's description appended to ``cat.meta['filters']``).

Built-in rules (the notebook's section 3, with its direction defect fixed):

* :func:`hr0_foreground` -- X-ray hardness-ratio window: ``lo < HR0 < hi``
  (strict, default ``-1 < HR0 < -0.175``) is soft, i.e. foreground, and removed.
  A missing HR0 is kept and noted.
* :func:`colour_foreground` -- the GALACTICNUCLEUS colour test
  ``J-H < 2.35, J-Ks < 3.0, H-Ks < 1.1`` (mag).  With one band missing the colour
  that remains decides; with two or more missing the source is kept and noted
  as ambiguous.  Towards the Galactic Centre the sources that PASS the test
  (bluer, little extinction) are the foreground disc stars, so by default
  (``remove='blue'``) they are removed.  ``remove='red'`` removes the sources that
  fail the test instead -- the notebook's direction, offered only to reproduce it.

Missing magnitudes are NaN (never 0): a 0 mag value is treated as a magnitude.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .catalogue import Catalogue


@dataclass
class FilterResult:
    """Outcome of one selection rule over ``n`` rows.

    keep   : (n,) bool, True for kept rows.
    reason : (n,) str, ``''`` for kept rows, else the removal tag.
    info   : (n,) str, a note on kept rows (``''`` when there is nothing to say).
    rule   : short rule name; ``description`` says what was removed and why.
    params : the rule's parameters (for the run metadata).
    """

    keep: np.ndarray
    reason: np.ndarray
    info: np.ndarray
    rule: str
    description: str
    params: dict = field(default_factory=dict)

    def __post_init__(self):
        self.keep = np.asarray(self.keep, dtype=bool)
        n = len(self.keep)
        self.reason = np.asarray(self.reason, dtype=object)
        self.info = np.asarray(self.info, dtype=object)
        if len(self.reason) != n or len(self.info) != n:
            raise ValueError("keep, reason and info must have one entry per row")
        if np.any((self.reason != "") == self.keep):
            raise ValueError("a row must have an empty reason exactly when it is kept")

    def __len__(self) -> int:
        return len(self.keep)

    @property
    def n_kept(self) -> int:
        return int(self.keep.sum())

    @property
    def n_removed(self) -> int:
        return len(self) - self.n_kept

    def summary(self) -> pd.DataFrame:
        """Rows per outcome: columns ``action`` ('removed' | 'kept'), ``reason``, ``count``.

        Removed rows are grouped by their reason tag, kept rows by their info note
        (``'passed'`` when there is none).  ``.attrs['description']`` states the
        rule and the side removed; counts add up to the number of input rows.
        """
        rows = []
        removed = self.reason[~self.keep]
        for tag in sorted(set(removed)):
            rows.append(("removed", tag, int(np.sum(removed == tag))))
        kept = np.where(self.info[self.keep] == "", "passed", self.info[self.keep])
        for tag in sorted(set(kept)):
            rows.append(("kept", tag, int(np.sum(kept == tag))))
        df = pd.DataFrame(rows, columns=["action", "reason", "count"])
        df.attrs["description"] = self.describe()
        df.attrs["rule"] = self.rule
        return df

    def describe(self) -> str:
        """One line: the rule, the side removed, and kept/removed totals."""
        return f"{self.description}: removed {self.n_removed} of {len(self)}, kept {self.n_kept}"

    def frame(self, cat: Catalogue | None = None) -> pd.DataFrame:
        """Per-row annotation: ``row``, ``id`` (when ``cat`` is given), ``keep``, ``reason``, ``info``."""
        d = {}
        if cat is not None:
            if len(cat) != len(self):
                raise ValueError(f"catalogue has {len(cat)} rows, the filter result {len(self)}")
            d.update(row=cat.row, id=cat.ids)
        d.update(keep=self.keep, reason=self.reason, info=self.info)
        return pd.DataFrame(d)

    def apply(self, cat: Catalogue) -> Catalogue:
        """The kept rows of ``cat`` as a new Catalogue (rule recorded in ``meta['filters']``)."""
        if len(cat) != len(self):
            raise ValueError(f"catalogue {cat.name!r} has {len(cat)} rows, the filter result {len(self)}")
        out = cat.subset(self.keep)
        out.meta["filters"] = list(cat.meta.get("filters", [])) + [self.describe()]
        return out


def _column(cat: Catalogue, column: str) -> np.ndarray:
    """A float column from the magnitudes or the extra columns (KeyError naming both)."""
    if column in cat.mags:
        return np.asarray(cat.mags[column], dtype=np.float64)
    if column in cat.extra.columns:
        return pd.to_numeric(cat.extra[column], errors="coerce").to_numpy(dtype=np.float64)
    raise KeyError(f"catalogue {cat.name!r} has no column {column!r} "
                   f"(magnitudes: {sorted(cat.mags)}, extra: {list(cat.extra.columns)})")


def hr0_foreground(cat: Catalogue, column: str = "HR0", lo: float = -1.0,
                   hi: float = -0.175) -> FilterResult:
    """Remove X-ray sources with ``lo < HR0 < hi`` (strict; soft spectra = foreground).

    A missing (NaN) hardness ratio cannot be tested: the row is kept with the
    note ``'hr0 missing (kept)'``.  ``HR0`` is dimensionless, in [-1, 1].
    """
    if not lo < hi:
        raise ValueError(f"hr0_foreground needs lo < hi, got lo={lo}, hi={hi}")
    hr = _column(cat, column)
    missing = ~np.isfinite(hr)
    with np.errstate(invalid="ignore"):
        fg = (hr > lo) & (hr < hi) & ~missing
    tag = f"hr0 foreground ({lo:g} < {column} < {hi:g})"
    reason = np.where(fg, tag, "").astype(object)
    info = np.where(missing, f"{column.lower()} missing (kept)", "").astype(object)
    desc = f"hr0_foreground: removed sources with {lo:g} < {column} < {hi:g} (soft = foreground)"
    return FilterResult(~fg, reason, info, "hr0_foreground", desc,
                        dict(column=column, lo=lo, hi=hi))


def colour_foreground(cat: Catalogue, j: str = "J", h: str = "H", k: str = "Ks",
                      jh_max: float = 2.35, jk_max: float = 3.0, hk_max: float = 1.1,
                      remove: str = "blue") -> FilterResult:
    """The J-H / J-Ks / H-Ks colour test with the notebook's missing-band rules.

    A source *passes* (is blue) when every colour it can form is below its limit:
    all bands present -> ``J-H < jh_max and J-Ks < jk_max and H-Ks < hk_max``;
    J missing -> ``H-Ks < hk_max``; H missing -> ``J-Ks < jk_max``;
    Ks missing -> ``J-H < jh_max``.  Two or more bands missing: kept, noted
    ``'colour ambiguous: two or more of J/H/Ks missing (kept)'``.

    ``remove='blue'`` (default) removes the passing sources: towards the Galactic
    Centre they are the little-extincted foreground.  ``remove='red'`` removes the
    failing ones and keeps the blue -- the notebook's direction (its defect 7),
    for reproducing it only.  Reason tags read ``'colour foreground (blue): ...'``
    or ``'colour removed (red, notebook direction): ...'`` plus the colours used.
    """
    if remove not in ("blue", "red"):
        raise ValueError(f"colour_foreground: remove must be 'blue' or 'red', got {remove!r}")
    mj, mh, mk = _column(cat, j), _column(cat, h), _column(cat, k)
    hj, hh, hk = np.isfinite(mj), np.isfinite(mh), np.isfinite(mk)
    n_missing = (~hj).astype(int) + (~hh).astype(int) + (~hk).astype(int)
    with np.errstate(invalid="ignore"):
        c_jh = (mj - mh) < jh_max
        c_jk = (mj - mk) < jk_max
        c_hk = (mh - mk) < hk_max
    cases = [  # (mask, passes, colours used)
        (n_missing == 0, c_jh & c_jk & c_hk, f"{j}-{h}, {j}-{k}, {h}-{k}"),
        (~hj & hh & hk, c_hk, f"{h}-{k}; {j} missing"),
        (hj & ~hh & hk, c_jk, f"{j}-{k}; {h} missing"),
        (hj & hh & ~hk, c_jh, f"{j}-{h}; {k} missing"),
    ]
    reason = np.full(len(cat), "", dtype=object)
    for mask, passes, used in cases:
        gone = mask & (passes if remove == "blue" else ~passes)
        if remove == "blue":
            reason[gone] = f"colour foreground (blue): {used}"
        else:
            reason[gone] = f"colour removed (red, notebook direction): {used}"
    keep = reason == ""
    info = np.where(n_missing >= 2, f"colour ambiguous: two or more of {j}/{h}/{k} missing (kept)",
                    "").astype(object)
    limits = f"{j}-{h} < {jh_max:g}, {j}-{k} < {jk_max:g}, {h}-{k} < {hk_max:g}"
    if remove == "blue":
        desc = (f"colour_foreground: removed the BLUE side -- sources passing {limits} "
                f"(foreground, little extinction)")
    else:
        desc = (f"colour_foreground: removed the RED side -- sources failing {limits} "
                f"(the notebook's direction, kept the blue ones)")
    return FilterResult(keep, reason, info, "colour_foreground", desc,
                        dict(j=j, h=h, k=k, jh_max=jh_max, jk_max=jk_max, hk_max=hk_max, remove=remove))
