"""``gpumatch simulate``: write a seeded synthetic field with its truth table."""
from __future__ import annotations

import json
from dataclasses import fields

from ..simulate import FieldSpec, simulate_field

_UNITS = {
    "seed": "random seed (integer)", "ra0_deg": "field centre RA (deg)", "dec0_deg": "field centre Dec (deg)",
    "width_deg": "field width on the sky (deg, RA x cos Dec)", "height_deg": "field height (deg)",
    "n_a": "number of sparse (X-ray-like) sources", "density_b_arcsec2": "dense (IR-like) sources per arcsec^2",
    "counterpart_fraction": "fraction of sparse sources with a true counterpart (0-1)",
    "sigma_a_min_arcsec": "smallest sparse-catalogue 1-sigma error (arcsec)",
    "sigma_a_max_arcsec": "largest sparse-catalogue 1-sigma error (arcsec); errors log-uniform between",
    "sigma_b_arcsec": "dense-catalogue 1-sigma error per axis (arcsec)",
    "ks_bright": "brightest dense-catalogue Ks (mag)", "ks_faint": "faintest dense-catalogue Ks (mag)",
    "ks_slope": "number-count slope: dN/dKs ~ 10^(slope Ks) (per mag)",
    "counterpart_ks_mean": "mean Ks of true counterparts (mag)", "counterpart_ks_sd": "Ks spread of counterparts (mag)",
    "foreground_fraction": "fraction of dense field sources that are blue foreground stars (0-1)",
    "j_limit": "J survey limit: fainter J is missing (mag)", "h_limit": "H survey limit (mag)",
    "xmag_offset": "sparse 'magnitude' of a counterpart minus its Ks (mag)",
    "xmag_scatter": "scatter of that relation (mag)", "hr0_missing_fraction": "fraction of missing HR0 (0-1)",
}


def register(sub):
    p = sub.add_parser(
        "simulate", help="write a simulated field (X-ray CSV, VizieR-TSV IR tiles, truth table)",
        description="Draw a seeded synthetic field with known truth and write it: the sparse catalogue "
                    "as a Muno-like CSV (RAJ2000, DEJ2000 in deg, ePos in arcsec, HR0, Xmag), the dense one "
                    "as GALACTICNUCLEUS-like VizieR semicolon TSV tiles (J, H, Ks in mag, blank when "
                    "missing), and truth.csv (index_a -> index_b, -1 when no counterpart).")
    p.add_argument("--out", required=True, help="output folder (created if needed)")
    p.add_argument("--tiles", type=int, default=3, help="number of dense-catalogue tile files (default 3)")
    p.add_argument("--format", default="vizier", choices=["vizier", "csv", "fits", "parquet"],
                   help="file format: 'vizier' = X-ray CSV + VizieR semicolon-TSV IR tiles (as the notebook's "
                        "inputs); or both catalogues as csv, fits or parquet (default vizier)")
    defaults = FieldSpec()
    for f in fields(FieldSpec):
        p.add_argument("--" + f.name.replace("_", "-"), type=type(getattr(defaults, f.name)), default=None,
                       help=f"{_UNITS.get(f.name, f.name)} (default {getattr(defaults, f.name)})")
    p.set_defaults(func=run)
    return p


def spec_from_args(args) -> FieldSpec:
    over = {f.name: getattr(args, f.name) for f in fields(FieldSpec) if getattr(args, f.name, None) is not None}
    return FieldSpec(**{**vars(FieldSpec()), **over})


def run(args) -> int:
    spec = spec_from_args(args)
    field = simulate_field(spec)
    paths = field.write(args.out, n_tiles=args.tiles, fmt=args.format)
    meta = {"spec": vars(spec), "n_a": len(field.a), "n_b": len(field.b),
            "n_true_pairs": int((field.truth >= 0).sum()),
            "files": {"a": str(paths["a"]), "b": [str(p) for p in paths["b"]], "truth": str(paths["truth"])}}
    with open(f"{args.out}/field.json", "w") as fh:
        json.dump(meta, fh, indent=2)
    print(f"simulated field (seed {spec.seed}): {len(field.a)} sparse, {len(field.b)} dense sources, "
          f"{meta['n_true_pairs']} true pairs; written to {args.out}")
    return 0
