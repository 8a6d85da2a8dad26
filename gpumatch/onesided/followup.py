"""Follow-up of selected candidates: local versus global infrared source density.

For each candidate (e.g. an HMXB candidate with its X-ray error ellipse) the
infrared sources within a radius (default 3 arcmin) are counted and turned into a
local surface density, which is compared with the catalogue's global density.

Both densities use one definition of where the catalogue has data -- the one
rho(K) uses: :class:`gpumatch.onesided.geometry.CoverageGrid`, weighted occupied
cells of a gnomonic grid (boundary cells weighted by an estimate of the fraction
of them inside the footprint).

* global density = N_catalogue / (covered area);
* local density  = N_within_r / (circle area x covered fraction of the circle),
  the fraction being the solid-angle-weighted mean cell weight over a fine grid
  of points filling the circle -- so a candidate at a field edge or corner is
  not diluted by the empty sky beyond the edge (at a straight edge the fraction
  is ~0.5, at a corner ~0.25).

Units: positions in deg, radii and cell sizes in arcsec, densities per arcsec^2.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from ..catalogue import ARCSEC_PER_RAD, InputError, radec_to_xyz
from ..sky import pairs
from . import geometry

CANDIDATE_COLUMNS = ["name", "ra", "dec", "r0", "r1", "angle"]
DEFAULT_RADIUS_ARCSEC = 180.0


# -- tangent-plane helpers -----------------------------------------------------
def inverse_gnomonic(x, y, ra0_deg, dec0_deg):
    """Tangent-plane (x east, y north; radians) about (ra0, dec0) back to (ra, dec) in deg."""
    c = radec_to_xyz([ra0_deg], [dec0_deg])[0]
    e, n = geometry.east_north(c[None, :])
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    v = c + x[..., None] * e[0] + y[..., None] * n[0]
    ra, dec = geometry.xyz_to_radec(geometry.unit(v.reshape(-1, 3)))
    return ra.reshape(x.shape), dec.reshape(x.shape)


def offsets_arcsec(ra_deg, dec_deg, ra0_deg, dec0_deg):
    """Gnomonic offsets (east, north) in arcsec of positions from a centre (within 80 deg)."""
    c = radec_to_xyz([ra0_deg], [dec0_deg])[0]
    x, y = geometry.gnomonic(radec_to_xyz(np.atleast_1d(ra_deg), np.atleast_1d(dec_deg)), c)
    return x * ARCSEC_PER_RAD, y * ARCSEC_PER_RAD


def mean_position(ra_deg, dec_deg):
    """(ra, dec) in deg of the catalogue's mean direction (safe across RA = 0/360)."""
    ra, dec = geometry.xyz_to_radec(geometry.mean_direction(radec_to_xyz(ra_deg, dec_deg))[None, :])
    return float(ra[0]), float(dec[0])


def coverage_of(ra_deg, dec_deg, per_cell: float | None = None) -> geometry.CoverageGrid:
    """The :class:`~gpumatch.onesided.geometry.CoverageGrid` of a catalogue (positions in deg).

    ``per_cell``: sources per grid cell at the mean density (default: CoverageGrid's;
    pass ``OneSidedOptions.coverage_per_cell`` to reuse the grid rho(K) was measured on).
    """
    kw = {} if per_cell is None else {"per_cell": per_cell}
    return geometry.CoverageGrid(radec_to_xyz(ra_deg, dec_deg), **kw)


def weight_at(coverage: geometry.CoverageGrid, ra_deg, dec_deg) -> np.ndarray:
    """Coverage weight (0..1: covered fraction of the cell) at positions in deg, any shape."""
    w = coverage.weight(radec_to_xyz(np.ravel(ra_deg), np.ravel(dec_deg)))
    return w.reshape(np.shape(ra_deg))


def circle_coverage_fraction(coverage: geometry.CoverageGrid, ra_deg, dec_deg, radius_arcsec: float,
                             n_grid: int = 201) -> np.ndarray:
    """Covered fraction of each circle (centre ra/dec in deg, radius in arcsec).

    The mean coverage weight over a regular ``n_grid x n_grid`` grid of
    tangent-plane points at each centre, keeping those inside the circle
    (~0.785 n_grid^2 points), capped at 1 (boundary-cell weights are unbiased
    estimates and can exceed 1; a circle is at most fully covered).
    """
    ra = np.atleast_1d(np.asarray(ra_deg, dtype=np.float64))
    dec = np.atleast_1d(np.asarray(dec_deg, dtype=np.float64))
    r = np.tan(float(radius_arcsec) / ARCSEC_PER_RAD)  # gnomonic radius of the circle
    u = (np.arange(n_grid) + 0.5) / n_grid * 2.0 - 1.0
    gx, gy = np.meshgrid(u * r, u * r)
    inside = gx * gx + gy * gy <= r * r
    gx, gy = gx[inside], gy[inside]
    w = (1.0 + gx * gx + gy * gy) ** -1.5  # equal solid angle per point
    out = np.empty(len(ra))
    for k in range(len(ra)):
        pra, pdec = inverse_gnomonic(gx, gy, ra[k], dec[k])
        out[k] = min(1.0, np.sum(w * weight_at(coverage, pra, pdec)) / np.sum(w))
    return out


# -- candidates ------------------------------------------------------------------
def read_candidates(source) -> pd.DataFrame:
    """Candidate list as a DataFrame with name, ra, dec (deg), r0, r1 (arcsec), angle (deg).

    ``source``: a CSV/TSV path (separator sniffed), a DataFrame, or a list of dicts.
    ``r0``/``r1`` are the error-ellipse semi-major/semi-minor axes in arcsec and
    ``angle`` the position angle of r0 east of north in deg.  An optional ``epos``
    column (arcsec) gives the circular X-ray error drawn as a cross in zoom plots.
    """
    where = "candidates"
    if isinstance(source, (str, Path)):
        where = str(source)
        df = pd.read_csv(source, sep=None, engine="python", comment="#")
    elif isinstance(source, pd.DataFrame):
        df = source.copy()
    else:
        df = pd.DataFrame(list(source))
    df.columns = [str(c).strip() for c in df.columns]
    missing = [c for c in CANDIDATE_COLUMNS if c not in df.columns]
    if missing:
        raise InputError(f"candidate list lacks column(s) {missing}; needs {CANDIDATE_COLUMNS}",
                         file=where)
    if len(df) == 0:
        raise InputError("candidate list is empty", file=where)
    for c in CANDIDATE_COLUMNS[1:] + (["epos"] if "epos" in df.columns else []):
        v = pd.to_numeric(df[c], errors="coerce").to_numpy(dtype=float)
        bad = ~np.isfinite(v)
        if c == "dec":
            bad |= np.abs(v) > 90
        if c in ("r0", "r1", "epos"):
            bad |= v < 0
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise InputError(f"value {df[c].iloc[i]!r} is not valid", file=where, row=i + 1, column=c)
        df[c] = v
    df["name"] = df["name"].astype(str)
    df["ra"] = np.mod(df["ra"], 360.0)
    return df.reset_index(drop=True)


def local_density(candidates: pd.DataFrame, ir_ra, ir_dec, radius_arcsec: float = DEFAULT_RADIUS_ARCSEC,
                  coverage: geometry.CoverageGrid | None = None, backend=None,
                  n_grid: int = 201) -> pd.DataFrame:
    """Local vs global density of a catalogue (ir_ra, ir_dec in deg) around each candidate.

    ``coverage``: the catalogue's CoverageGrid (built from ir_ra/ir_dec when None).
    Returns one row per candidate: name, ra, dec, radius_arcsec, n_local,
    area_fraction (of the circle inside the coverage), area_eff_arcsec2,
    local_density (arcsec^-2), local_density_err (Poisson), global_density
    (arcsec^-2), n_global, coverage_area_arcsec2, coverage_cell_arcsec,
    n_expected (global density x
    effective area), ratio (local/global), ratio_err, p_excess (Poisson
    probability of n_local or more given n_expected).  A circle entirely outside
    the coverage gets NaN densities.
    """
    ir_ra = np.asarray(ir_ra, dtype=np.float64)
    ir_dec = np.asarray(ir_dec, dtype=np.float64)
    if coverage is None:
        coverage = coverage_of(ir_ra, ir_dec)
    ra = candidates["ra"].to_numpy(dtype=float)
    dec = candidates["dec"].to_numpy(dtype=float)
    pr = pairs(ra, dec, ir_ra, ir_dec, radius_arcsec, backend=backend)
    n_local = np.bincount(pr.i, minlength=len(ra)).astype(np.int64)
    frac = circle_coverage_fraction(coverage, ra, dec, radius_arcsec, n_grid=n_grid)
    r_rad = radius_arcsec / ARCSEC_PER_RAD
    circle = 2.0 * np.pi * (1.0 - np.cos(r_rad)) * ARCSEC_PER_RAD**2
    area_eff = circle * frac
    glob = len(ir_ra) / coverage.area_arcsec2
    with np.errstate(invalid="ignore", divide="ignore"):
        local = np.where(area_eff > 0, n_local / area_eff, np.nan)
        local_err = np.where(area_eff > 0, np.sqrt(n_local) / area_eff, np.nan)
    n_exp = glob * area_eff
    p_excess = np.where(area_eff > 0, stats.poisson.sf(n_local - 1, n_exp), np.nan)
    return pd.DataFrame({
        "name": candidates["name"].to_numpy(), "ra": ra, "dec": dec,
        "radius_arcsec": float(radius_arcsec), "n_local": n_local, "area_fraction": frac,
        "area_eff_arcsec2": area_eff, "local_density": local, "local_density_err": local_err,
        "global_density": glob, "n_global": len(ir_ra),
        "coverage_area_arcsec2": coverage.area_arcsec2, "coverage_cell_arcsec": coverage.cell_arcsec,
        "n_expected": n_exp,
        "ratio": local / glob, "ratio_err": local_err / glob, "p_excess": p_excess,
    })
