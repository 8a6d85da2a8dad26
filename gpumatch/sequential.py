"""Merging a matched pair of catalogues into one, for sequential matching.

Wilson & Naylor (2018) section 7: several catalogues are matched two at a time,
most precise astrometry first; after each match the merged catalogue holds the
matched pairs, the unmatched sources of each side, and the matched pairs get an
updated position by eq 40.  For Gaussian AUFs eq 40 is the inverse-covariance
weighted mean, and the merged covariance is (S_a^-1 + S_b^-1)^-1, i.e. more precise
than either: we use that for the merged position and keep, for the perturbation
term, the more precise side's (the issue's "keep the more precise AUF").

Offsets are taken in the tangent plane at the A position (east = RA * cos Dec,
north = Dec), exact to far below the catalogue errors at arcsec separations.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .catalogue import ARCSEC_PER_DEG, Catalogue


def _inv2(cov):
    """Inverse of (n, 3) packed symmetric 2x2 matrices (s_aa, s_dd, s_ad)."""
    det = cov[:, 0] * cov[:, 1] - cov[:, 2] ** 2
    return np.stack([cov[:, 1] / det, cov[:, 0] / det, -cov[:, 2] / det], axis=1)


def weighted_mean_position(ra_a, dec_a, cov_a, ra_b, dec_b, cov_b):
    """Inverse-covariance weighted mean positions (deg) and merged covariances (arcsec^2).

    All inputs are per pair: RA/Dec in degrees, covariances (n, 3) in arcsec^2.
    """
    dra = np.mod(np.asarray(ra_b) - np.asarray(ra_a) + 180.0, 360.0) - 180.0
    cosd = np.cos(np.radians(dec_a))
    d = np.stack([dra * cosd * ARCSEC_PER_DEG, (np.asarray(dec_b) - np.asarray(dec_a)) * ARCSEC_PER_DEG], axis=1)
    wa, wb = _inv2(np.asarray(cov_a, float)), _inv2(np.asarray(cov_b, float))
    w = wa + wb
    cov = _inv2(w)
    # mean offset = cov @ (wb @ d)   (A sits at the origin)
    t0 = wb[:, 0] * d[:, 0] + wb[:, 2] * d[:, 1]
    t1 = wb[:, 2] * d[:, 0] + wb[:, 1] * d[:, 1]
    m0 = cov[:, 0] * t0 + cov[:, 2] * t1
    m1 = cov[:, 2] * t0 + cov[:, 1] * t1
    dec = np.asarray(dec_a) + m1 / ARCSEC_PER_DEG
    ra = np.mod(np.asarray(ra_a) + m0 / ARCSEC_PER_DEG / cosd, 360.0)
    return ra, dec, cov


def merge_matched(a: Catalogue, b: Catalogue, ia, ib, name: str | None = None) -> Catalogue:
    """Merged catalogue: matched pairs (ia[k] of A with ib[k] of B) first, then unmatched A, unmatched B.

    Magnitudes of both are kept (NaN where a side is absent), prefixed by the
    catalogue name when band names collide.  ``extra`` gets ``row_<a.name>`` and
    ``row_<b.name>`` (input rows, -1 where absent) and ``id_<name>`` columns, so
    every source of both inputs appears exactly once.
    """
    ia = np.asarray(ia, dtype=np.int64)
    ib = np.asarray(ib, dtype=np.int64)
    if len(np.unique(ia)) != len(ia) or len(np.unique(ib)) != len(ib):
        raise ValueError("a source may be matched at most once")
    if a.cov is None or b.cov is None:
        raise ValueError("merging needs position errors on both catalogues")
    ua = np.setdiff1d(np.arange(len(a)), ia)
    ub = np.setdiff1d(np.arange(len(b)), ib)
    ra_m, dec_m, cov_m = weighted_mean_position(a.ra[ia], a.dec[ia], a.cov[ia], b.ra[ib], b.dec[ib], b.cov[ib])
    ra = np.concatenate([ra_m, a.ra[ua], b.ra[ub]])
    dec = np.concatenate([dec_m, a.dec[ua], b.dec[ub]])
    cov = np.concatenate([cov_m, a.cov[ua], b.cov[ub]])
    n_m, n_a, n_b = len(ia), len(ua), len(ub)

    def side_a(v, fill):
        v = np.asarray(v)
        return np.concatenate([v[ia], v[ua], np.full(n_b, fill, dtype=v.dtype)])

    def side_b(v, fill):
        v = np.asarray(v)
        return np.concatenate([v[ib], np.full(n_a, fill, dtype=v.dtype), v[ub]])

    mags = {}
    for band, v in a.mags.items():
        mags[f"{a.name}_{band}" if band in b.mags else band] = side_a(v, np.nan)
    for band, v in b.mags.items():
        mags[f"{b.name}_{band}" if band in a.mags else band] = side_b(v, np.nan)
    id_a = side_a(np.asarray(a.ids, dtype=object), None)
    id_b = side_b(np.asarray(b.ids, dtype=object), None)
    extra = pd.DataFrame({f"row_{a.name}": side_a(a.row, -1), f"row_{b.name}": side_b(b.row, -1),
                          f"id_{a.name}": id_a, f"id_{b.name}": id_b})
    # provenance columns of an input that is itself a merge are carried on
    for cat, side in ((a, side_a), (b, side_b)):
        for c in cat.extra.columns:
            if c.startswith("row_") and c not in extra:
                extra[c] = side(cat.extra[c].to_numpy(dtype=np.int64), -1)
            elif c.startswith("id_") and c not in extra:
                extra[c] = side(cat.extra[c].to_numpy(dtype=object), None)
    kind = np.array(["matched"] * n_m + [f"only_{a.name}"] * n_a + [f"only_{b.name}"] * n_b, dtype=object)
    extra["merge_kind"] = kind
    n = n_m + n_a + n_b
    ids = np.array([f"{x}+{y}" if x is not None and y is not None else (x if x is not None else y)
                    for x, y in zip(id_a, id_b)], dtype=object)
    return Catalogue(name or f"{a.name}+{b.name}", ra, dec, cov=cov, mags=mags, extra=extra, ids=ids,
                     row=np.arange(n, dtype=np.int64), meta={"merged_from": [a.name, b.name]})
