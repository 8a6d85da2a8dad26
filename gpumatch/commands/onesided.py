"""``gpumatch onesided``: the notebook's whole one-sided workflow from one TOML config."""
from __future__ import annotations

import argparse
import textwrap

from . import add_run_options, demo_data_or_config

_DESCRIPTION = "\n\n".join(textwrap.fill(p, 88) for p in (
    "Read the X-ray catalogue and every IR catalogue named in CONFIG.toml, apply the HR0 and colour "
    "filters (recording why each row was removed), then against each IR catalogue: real vs shifted "
    "(null) trials binned in Ks with excess and significance, the shift sweep, and the per-source "
    "probabilities P_i / P_0.  Merge the best counterparts over the IR catalogues, follow up the "
    "candidates (local vs global IR density within a radius, edge-corrected), and write tables "
    "(CSV, Parquet or FITS with provenance metadata), figures (PNG, PDF) and summary.txt to the "
    "output folder.  Every input row appears exactly once in the outputs.",
    "Units: RA/Dec in deg; position errors, radii and shifts in arcsec; magnitudes in mag; "
    "densities per arcsec^2.  examples/onesided.toml documents every config key.",
))


def register(sub):
    p = sub.add_parser(
        "onesided", help="run the one-sided (shift-trial, P_i) cross-match described by a TOML config",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=_DESCRIPTION,
        epilog="examples:\n"
               "  gpumatch onesided --demo-data examples/data   # simulated inputs for the example config\n"
               "  gpumatch onesided examples/onesided.toml\n"
               "  gpumatch --backend numpy onesided run.toml --out /tmp/run --seed 3 --no-figures")
    p.add_argument("config", nargs="?", metavar="CONFIG.toml",
                   help="the run's TOML config; relative paths inside it resolve against its folder")
    p.add_argument("--out", metavar="DIR",
                   help="output folder, relative to the current directory (default: the config's "
                        "[output] folder, relative to the config file)")
    p.add_argument("--seed", type=int, metavar="N",
                   help="random seed for the shifted (null) trials and the sweep; overrides [onesided] seed")
    add_run_options(p, "onesided.toml", "X-ray CSV, 7 GALACTICNUCLEUS-like VizieR TSV tiles, a VVV-like CSV, "
                                        "candidates.csv, truth.csv")
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    from ..onesided.run import run_from_config

    status = demo_data_or_config(args)
    if status is not None:
        return status
    summary = run_from_config(args.config, backend=getattr(args, "backend", None), out=args.out,
                              figures=not args.no_figures, seed=args.seed, progress=args.progress)
    print(summary["text"])
    return 0
