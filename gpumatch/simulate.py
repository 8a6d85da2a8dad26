"""Seeded synthetic fields with known truth.

A field has a sparse catalogue A (X-ray-like: per-source circular position errors,
a hardness ratio HR0 and an X-ray "magnitude") and a dense catalogue B
(infrared-like: J, H, Ks magnitudes from power-law number counts, small position
errors).  A fraction of the A sources have a true counterpart in B; both observed
positions of such a pair scatter about a common true position by their own
Gaussian errors.  B also mixes a blue, unextincted foreground population with a
red, extincted bulge/background one (the notebook's colour cut separates them),
and faint sources lose their J (and H) magnitudes as in a real survey.

Units: positions in deg, errors in arcsec, magnitudes in mag, densities per arcsec^2.
Everything is drawn from one ``numpy.random.Generator`` seeded by ``seed``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .catalogue import ARCSEC_PER_DEG, Catalogue, cov_axes, cov_circular


@dataclass
class FieldSpec:
    """Parameters of a simulated field (defaults: a small Galactic-Centre-like field)."""

    seed: int = 1
    ra0_deg: float = 266.4
    dec0_deg: float = -29.0
    width_deg: float = 0.1          # RA extent on the sky (already times cos Dec)
    height_deg: float = 0.1
    n_a: int = 400                  # sparse catalogue size
    density_b_arcsec2: float = 0.05  # dense catalogue, sources per arcsec^2 (all populations)
    counterpart_fraction: float = 0.375  # of A sources with a true counterpart in B
    sigma_a_min_arcsec: float = 0.3  # A errors log-uniform in [min, max]
    sigma_a_max_arcsec: float = 2.0
    sigma_b_arcsec: float = 0.1      # B per-axis error (RA and Dec)
    ks_bright: float = 8.0           # B number counts dN/dKs ~ 10^(slope Ks) in [bright, faint]
    ks_faint: float = 17.5
    ks_slope: float = 0.3
    counterpart_ks_mean: float = 12.0  # counterparts: Ks ~ N(mean, sd), clipped to the limits
    counterpart_ks_sd: float = 1.5
    foreground_fraction: float = 0.15  # of B field sources that are blue foreground stars
    j_limit: float = 19.5            # J and H fainter than these are missing (survey limit)
    h_limit: float = 18.5
    xmag_offset: float = 4.0         # A "magnitude" of a counterpart = Ks + offset + N(0, scatter)
    xmag_scatter: float = 0.5
    hr0_missing_fraction: float = 0.3

    @property
    def area_arcsec2(self) -> float:
        return self.width_deg * self.height_deg * ARCSEC_PER_DEG**2


@dataclass
class SimulatedField:
    spec: FieldSpec
    a: Catalogue
    b: Catalogue
    truth: np.ndarray  # per A row: B row of the true counterpart, or -1
    b_population: np.ndarray = field(default=None)  # 'counterpart' | 'foreground' | 'background'

    def truth_table(self) -> pd.DataFrame:
        """One row per A source: index_a, index_b (-1 when no counterpart), true separation."""
        has = self.truth >= 0
        sep = np.full(len(self.truth), np.nan)
        j = self.truth[has]
        dra = (self.a.ra[has] - self.b.ra[j]) * np.cos(np.radians(self.b.dec[j]))
        sep[has] = np.hypot(dra, self.a.dec[has] - self.b.dec[j]) * ARCSEC_PER_DEG
        return pd.DataFrame({"index_a": np.arange(len(self.truth)), "index_b": self.truth,
                             "id_a": self.a.ids, "sep_arcsec": sep})

    def params(self) -> dict:
        return dict(vars(self.spec))

    def write(self, folder, n_tiles: int = 3, fmt: str = "vizier") -> dict:
        """Write A (Muno-like columns), B in ``n_tiles`` tiles (GN-like columns) and the truth table.

        ``fmt``: 'vizier' (A as CSV with '--' for missing values, B as VizieR semicolon TSV
        tiles, as in the notebook), or 'csv', 'fits', 'parquet' (both catalogues in that
        format, provenance metadata included).  Returns {'a': path, 'b': [tile paths], 'truth': path}.
        """
        from .io import write_table

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        if fmt not in ("vizier", "csv", "fits", "parquet"):
            raise ValueError(f"unknown simulation output format {fmt!r}")
        meta = {"simulated_by": "gpumatch.simulate", "spec": vars(self.spec)}
        fa = self.a.to_frame()
        xa = pd.DataFrame({"CXOGC": fa["id"].astype(str), "RAJ2000": fa["ra"].round(7),
                           "DEJ2000": fa["dec"].round(7), "ePos": fa["sigma_arcsec"].round(4),
                           "HR0": self.a.extra["HR0"], "Xmag": self.a.mags["Xmag"].round(4)})
        ext = {"vizier": "csv", "csv": "csv", "fits": "fits", "parquet": "parquet"}[fmt]
        a_path = folder / f"xray.{ext}"
        if fmt == "vizier":
            xa.to_csv(a_path, index=False, na_rep="--")
        else:
            write_table(xa, a_path, meta=meta, overwrite=True)
        fb = self.b.to_frame()
        gn = pd.DataFrame({"RAJ2000": fb["ra"], "DEJ2000": fb["dec"], "e_RAJ2000": fb["sigma_arcsec"],
                           "e_DEJ2000": fb["sigma_arcsec"], "Jmag": fb["J"], "Hmag": fb["H"], "Ksmag": fb["Ks"]})
        b_paths = []
        for t, rows in enumerate(np.array_split(np.arange(len(gn)), n_tiles), start=1):
            if fmt == "vizier":
                p = folder / f"ir_tile{t}.tsv"
                write_vizier_tsv(gn.iloc[rows], p, tile=t)
            else:
                p = folder / f"ir_tile{t}.{ext}"
                write_table(gn.iloc[rows].reset_index(drop=True), p, meta=meta, overwrite=True)
            b_paths.append(p)
        truth_path = folder / "truth.csv"
        self.truth_table().to_csv(truth_path, index=False)
        return {"a": a_path, "b": b_paths, "truth": truth_path}


def write_vizier_tsv(frame: pd.DataFrame, path, tile: int = 1):
    """Write a GN-like table in VizieR's semicolon TSV layout: '#' comments, header, units, dashes.

    ``frame`` has RAJ2000, DEJ2000 (deg), e_RAJ2000, e_DEJ2000 (arcsec), Jmag, Hmag, Ksmag (mag);
    missing values are written as blank fields, as VizieR does.
    """
    cols = [("RAJ2000", "deg", "{:.7f}"), ("DEJ2000", "deg", "{:.7f}"), ("e_RAJ2000", "arcsec", "{:.6f}"),
            ("e_DEJ2000", "arcsec", "{:.6f}"), ("Jmag", "mag", "{:.5f}"), ("Hmag", "mag", "{:.5f}"),
            ("Ksmag", "mag", "{:.5f}")]
    lines = ["#", "#   VizieR Astronomical Server (simulated by gpumatch)",
             f"#   Tile {tile}: synthetic GALACTICNUCLEUS-like catalogue", "#",
             ";".join(c[0] for c in cols), ";".join(c[1] for c in cols),
             ";".join("-" * max(len(c[0]), 8) for c in cols)]
    data = []
    for name, _, form in cols:
        v = frame[name].to_numpy(dtype=float)
        data.append(["" if not np.isfinite(x) else form.format(x) for x in v])
    lines += [";".join(r) for r in zip(*data)]
    Path(path).write_text("\n".join(lines) + "\n")


def _uniform_positions(rng, spec: FieldSpec, n: int):
    """n positions uniform on the sphere inside the field rectangle (deg)."""
    d0 = np.radians(spec.dec0_deg - spec.height_deg / 2)
    d1 = np.radians(spec.dec0_deg + spec.height_deg / 2)
    dec = np.degrees(np.arcsin(rng.uniform(np.sin(d0), np.sin(d1), n)))
    half_ra = spec.width_deg / 2 / np.cos(np.radians(spec.dec0_deg))
    ra = np.mod(spec.ra0_deg + rng.uniform(-half_ra, half_ra, n), 360.0)
    return ra, dec


def _offset(ra, dec, dx_arcsec, dy_arcsec):
    """Move positions by tangent-plane offsets (east, north) in arcsec."""
    dec2 = dec + dy_arcsec / ARCSEC_PER_DEG
    ra2 = np.mod(ra + dx_arcsec / ARCSEC_PER_DEG / np.cos(np.radians(dec)), 360.0)
    return ra2, np.clip(dec2, -90.0, 90.0)


def _powerlaw_mags(rng, n, bright, faint, slope):
    """Magnitudes with dN/dm ~ 10^(slope m) in [bright, faint] (inverse-CDF sampling)."""
    k = slope * np.log(10.0)
    u = rng.uniform(0.0, 1.0, n)
    return np.log(np.exp(k * bright) + u * (np.exp(k * faint) - np.exp(k * bright))) / k


def simulate_field(spec: FieldSpec | None = None, **overrides) -> SimulatedField:
    """Draw a field; keyword overrides change single FieldSpec parameters."""
    spec = spec or FieldSpec()
    if overrides:
        spec = FieldSpec(**{**vars(spec), **overrides})
    rng = np.random.default_rng(spec.seed)
    n_a = int(spec.n_a)
    n_b_total = int(rng.poisson(spec.density_b_arcsec2 * spec.area_arcsec2))
    n_cp = int(round(spec.counterpart_fraction * n_a))
    n_cp = min(n_cp, n_b_total)
    n_field = max(n_b_total - n_cp, 0)

    # True positions of A sources; the first n_cp (after a shuffle) have counterparts.
    ra_t, dec_t = _uniform_positions(rng, spec, n_a)
    has_cp = np.zeros(n_a, dtype=bool)
    has_cp[rng.choice(n_a, n_cp, replace=False)] = True
    sig_a = np.exp(rng.uniform(np.log(spec.sigma_a_min_arcsec), np.log(spec.sigma_a_max_arcsec), n_a))
    ra_a, dec_a = _offset(ra_t, dec_t, rng.normal(0, sig_a), rng.normal(0, sig_a))

    # B: counterparts (at the true positions of their A source) + field populations.
    ra_f, dec_f = _uniform_positions(rng, spec, n_field)
    ra_b_true = np.concatenate([ra_t[has_cp], ra_f])
    dec_b_true = np.concatenate([dec_t[has_cp], dec_f])
    n_b = len(ra_b_true)
    sb = np.full(n_b, spec.sigma_b_arcsec)
    ra_b, dec_b = _offset(ra_b_true, dec_b_true, rng.normal(0, sb), rng.normal(0, sb))
    ks_cp = np.clip(rng.normal(spec.counterpart_ks_mean, spec.counterpart_ks_sd, n_cp),
                    spec.ks_bright, spec.ks_faint)
    ks_f = _powerlaw_mags(rng, n_field, spec.ks_bright, spec.ks_faint, spec.ks_slope)
    ks = np.concatenate([ks_cp, ks_f])
    pop = np.array(["counterpart"] * n_cp + ["background"] * n_field, dtype=object)
    fg = np.zeros(n_b, dtype=bool)
    fg[n_cp:] = rng.uniform(size=n_field) < spec.foreground_fraction
    pop[fg] = "foreground"
    # Colours: foreground blue (little extinction), the rest red (heavily extincted).
    jh = np.where(fg, rng.normal(0.9, 0.3, n_b), rng.normal(3.4, 0.5, n_b))
    hk = np.where(fg, rng.normal(0.4, 0.2, n_b), rng.normal(1.7, 0.3, n_b))
    h = ks + hk
    j = h + jh
    h = np.where(h > spec.h_limit, np.nan, h)
    j = np.where(j > spec.j_limit, np.nan, j)

    # Shuffle B so counterparts are not the first rows.
    perm = rng.permutation(n_b)
    inv = np.empty(n_b, dtype=np.int64)
    inv[perm] = np.arange(n_b)
    truth = np.full(n_a, -1, dtype=np.int64)
    truth[np.flatnonzero(has_cp)] = inv[np.arange(n_cp)]

    xmag = np.empty(n_a)
    xmag[has_cp] = ks_cp + spec.xmag_offset + rng.normal(0, spec.xmag_scatter, n_cp)
    xmag[~has_cp] = rng.normal(spec.counterpart_ks_mean + spec.xmag_offset, spec.counterpart_ks_sd + 0.5,
                               int((~has_cp).sum()))
    hr0 = rng.uniform(-1.0, 1.0, n_a)
    hr0[rng.uniform(size=n_a) < spec.hr0_missing_fraction] = np.nan

    ids_a = np.array([f"X{k:06d}" for k in range(n_a)], dtype=object)
    a = Catalogue("xray", ra_a, dec_a, cov=cov_circular(sig_a), mags={"Xmag": xmag},
                  extra=pd.DataFrame({"HR0": hr0}), ids=ids_a, meta={"simulated": True})
    b = Catalogue("ir", ra_b[perm], dec_b[perm], cov=cov_axes(sb[perm], sb[perm]),
                  mags={"J": j[perm], "H": h[perm], "Ks": ks[perm]},
                  ids=np.arange(n_b, dtype=np.int64), meta={"simulated": True})
    return SimulatedField(spec, a, b, truth, b_population=pop[perm])
