"""``gpumatch match``: the symmetric Bayesian cross-match (Wilson & Naylor 2018) from a TOML config."""
from __future__ import annotations

import argparse

from . import add_run_options, demo_data_or_config

DESCRIPTION = """\
Symmetric probabilistic cross-match (Wilson & Naylor 2018; macauff's method) of the catalogues
named in CONFIG.toml: astrometric uncertainty functions (Gaussian errors, optionally with the
unresolved-contaminant perturbation term), islands of sources that may be counterparts
(pairs inside R_0.997 of their AUF convolution), densities and magnitude likelihoods c and f
estimated from the data, and the probability of every match/non-match hypothesis in each
island.  Two catalogues give one match; three or more are matched two at a time, most precise
astrometry first (paper section 7; [match] order = "given" keeps the listed order), merging
accepted matches at their weighted-mean position.

Written to the output folder:
  tables/matches (or stepK_matches)   accepted pairs: input rows and ids of both sides, positions
                                      (deg), separation (arcsec), magnitudes (mag), p_match (the pair's
                                      match probability), p_hypothesis (the island's best hypothesis),
                                      eta and xi (log10 photometric / astrometric likelihood ratios)
  tables/nonmatches_<name>            every other input row once: p_no_match and the reason
                                      (no candidate within R_0.997, below threshold, unmatched in
                                      best hypothesis, island at field edge, island too complex
                                      (approximate), filtered, invalid row)
  tables/pairs                        every candidate pair with eta, xi, ln r and p_match
  tables/final                        (3+ catalogues) one row per final object, input row of each
  figures/                            magnitude-magnitude density, matched vs unmatched magnitudes,
                                      eta vs xi, probability histograms (PNG and PDF)
  summary.txt, summary.json           counts, densities (per arcsec^2), island sizes, times (s)
Tables are CSV plus Parquet or FITS with provenance metadata (version, backend, options, seed).

Units: RA/Dec in deg, errors, radii and separations in arcsec, magnitudes in mag, densities per
arcsec^2, probabilities in [0, 1].  See examples/match.toml for a commented config."""


def register(sub):
    p = sub.add_parser(
        "match", help="symmetric probabilistic cross-match (Wilson & Naylor 2018) from a TOML config",
        formatter_class=argparse.RawDescriptionHelpFormatter, description=DESCRIPTION,
        epilog="example:\n  gpumatch match --demo-data examples/data     # simulated inputs for the example\n"
               "  gpumatch match examples/match.toml --out out/match\n"
               "  gpumatch match examples/match.toml --catalogues xray,GN,VVV   # sequential, 3 catalogues")
    p.add_argument("config", nargs="?", metavar="CONFIG.toml",
                   help="the run's TOML config; relative paths inside it resolve against its folder")
    p.add_argument("--out", metavar="DIR",
                   help="output folder (default: [output] folder in the config, relative to the config)")
    p.add_argument("--threshold", type=float, metavar="P",
                   help="accept only islands whose most probable hypothesis has probability > P "
                        "(0 <= P < 1; with [match] accept_by = \"pair\": pairs with match probability "
                        ">= P, 0.5 < P <= 1); default: the config's, else the most probable hypothesis "
                        "of every island is accepted whatever its probability")
    p.add_argument("--catalogues", metavar="NAMES",
                   help="comma-separated [[catalogue]] names to match (overrides [match] catalogues); "
                        "two give one match, three or more a sequential match")
    p.add_argument("--order", choices=("precision", "given"),
                   help="sequential order: most precise astrometry (median 1-sigma error, arcsec) first, "
                        "or the order listed (overrides [match] order; default precision)")
    add_run_options(p, "match.toml", "X-ray CSV, GALACTICNUCLEUS-like VizieR TSV tiles, a VVV-like CSV, truth.csv")
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    status = demo_data_or_config(args)
    if status is not None:
        return status
    from ..symmetric_config import run_from_config

    cats = [c.strip() for c in args.catalogues.split(",") if c.strip()] if args.catalogues else None
    summary = run_from_config(args.config, backend=getattr(args, "backend", None), out=args.out,
                              threshold=args.threshold, figures=not args.no_figures,
                              progress=args.progress, catalogues=cats, order=args.order)
    print(summary["text"], end="")
    return 0
