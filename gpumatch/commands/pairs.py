"""``gpumatch pairs``: every pair of sources of catalogues A and B closer than a radius.

The radius is one fixed value (``--radius-arcsec``) or, per source of A, the
quadrature radius ``K * sqrt(sigma_A_i^2 + sigma_B^2)`` (``--sigma-col-a``,
``--sigma-b``, ``--nsigma``).  The output table has one row per pair, sorted by
(index_a, index_b): the 0-based row numbers of each input as read (tiles
concatenated in the order given; unchanged when bad rows are dropped), the
separation in arcsec, and the identifiers when ``--id-a``/``--id-b`` name them.
"""
from __future__ import annotations

import argparse
import datetime
import glob
from pathlib import Path

import numpy as np
import pandas as pd

from ..catalogue import ERR_UNITS, summarize_dropped
from ..io.columns import COORD_MODES
from ..io.formats import FORMATS
from ..io.readers import DEFAULT_MEMORY_BUDGET_MB

_GLOB_CHARS = set("*?[")

DESCRIPTION = """\
List every pair (source of A, source of B) whose angular separation is within a
search radius, with the separation in arcsec.

Radius: either a fixed --radius-arcsec R, or per-source errors:
--sigma-col-a COL [--sigma-b ARCSEC] [--nsigma K] searches within
K * sqrt(sigma_A^2 + sigma_B^2) arcsec around each source of A.

A and B may each be several files (tiles), read and numbered in the order
given: separate them with commas ('gn1.tsv,gn2.tsv'), or give a quoted glob
pattern ('gn/*.tsv', expanded in sorted order).

Output columns: index_a, index_b (0-based rows of A and B as read, tiles in the
order given; bad rows dropped with --on-bad-rows drop keep their numbers),
sep_arcsec, and id_a / id_b when --id-a / --id-b name identifier columns.
Provenance (version, backend, inputs, options) goes into the file's metadata.
"""


def register(sub):
    p = sub.add_parser(
        "pairs", help="list all pairs of sources of A and B within a radius (arcsec)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=DESCRIPTION)
    p.add_argument("a", metavar="A", help="catalogue A: file(s), comma-separated, in order")
    p.add_argument("b", metavar="B", help="catalogue B: file(s), comma-separated, in order")
    p.add_argument("--out", required=True, metavar="FILE",
                   help="output table; .fits, .parquet or .csv (provenance in its metadata)")
    p.add_argument("--overwrite", action="store_true", help="replace FILE if it exists")
    r = p.add_argument_group("search radius (give --radius-arcsec or --sigma-col-a)")
    r.add_argument("--radius-arcsec", type=float, metavar="R", help="fixed search radius in arcsec")
    r.add_argument("--sigma-col-a", metavar="COL",
                   help="column of A holding each source's 1-sigma position error (unit: "
                        "--err-unit-a)")
    r.add_argument("--err-unit-a", choices=sorted(ERR_UNITS), default=None,
                   help="unit of --sigma-col-a (default: the file's stated unit, else arcsec)")
    r.add_argument("--sigma-b", type=float, default=0.0, metavar="ARCSEC",
                   help="1-sigma position error of every B source in arcsec, added in quadrature "
                        "(default 0)")
    r.add_argument("--nsigma", type=float, default=1.0, metavar="K",
                   help="multiply the quadrature radius by K (default 1)")
    for side in ("a", "b"):
        g = p.add_argument_group(f"columns and format of {side.upper()}")
        g.add_argument(f"--ra-{side}", metavar="COL",
                       help="RA column (degrees or sexagesimal hours; default: found by name, "
                            "e.g. RAJ2000, RA_ICRS, RA)")
        g.add_argument(f"--dec-{side}", metavar="COL",
                       help="Dec column (degrees or sexagesimal; default: found by name)")
        g.add_argument(f"--id-{side}", metavar="COL", help=f"identifier column, written as id_{side}")
        g.add_argument(f"--coords-{side}", choices=COORD_MODES, default="auto",
                       help="coordinate notation: decimal degrees, sexagesimal (RA in hours), or "
                            "auto (from the column units or the first value; default)")
        g.add_argument(f"--format-{side}", choices=FORMATS, default=None,
                       help="file format (default: from the extension)")
        g.add_argument(f"--hdu-{side}", metavar="HDU", default=None,
                       help="FITS HDU or VOTable table, by index or name (default: the first table)")
    p.add_argument("--on-bad-rows", choices=("raise", "drop"), default="raise",
                   help="a row with bad coordinates or errors stops the run with an error naming "
                        "file, row and column (raise, default), or is dropped and counted (drop)")
    p.add_argument("--memory-mb", type=float, default=DEFAULT_MEMORY_BUDGET_MB, metavar="MiB",
                   help="files larger than this are read in chunks of about this size "
                        f"(MiB, default {DEFAULT_MEMORY_BUDGET_MB:g})")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="show a progress bar on stderr (default: when stderr is a terminal)")
    p.set_defaults(func=run)
    return p


def expand_paths(spec: str) -> list:
    """Files named by a comma-separated list; items with * ? [ that name no file are globbed (sorted)."""
    paths = []
    for item in (s.strip() for s in spec.split(",")):
        if not item:
            continue
        if not Path(item).exists() and _GLOB_CHARS & set(item):
            found = sorted(glob.glob(item))
            if not found:
                raise FileNotFoundError(f"{item}: no file matches")
            paths.extend(found)
        else:
            paths.append(item)
    if not paths:
        raise ValueError(f"no input file in {spec!r}")
    return paths


def _check_options(args):
    if (args.radius_arcsec is None) == (args.sigma_col_a is None):
        raise ValueError("give exactly one of --radius-arcsec or --sigma-col-a")
    if args.radius_arcsec is not None:
        if not (np.isfinite(args.radius_arcsec) and args.radius_arcsec > 0):
            raise ValueError(f"--radius-arcsec must be positive, got {args.radius_arcsec}")
        if args.sigma_b or args.nsigma != 1.0 or args.err_unit_a:
            raise ValueError("--sigma-b, --nsigma and --err-unit-a go with --sigma-col-a, "
                             "not --radius-arcsec")
    if not (np.isfinite(args.sigma_b) and args.sigma_b >= 0):
        raise ValueError(f"--sigma-b must be >= 0 arcsec, got {args.sigma_b}")
    if not (np.isfinite(args.nsigma) and args.nsigma > 0):
        raise ValueError(f"--nsigma must be positive, got {args.nsigma}")
    if Path(args.out).exists() and not args.overwrite:
        raise ValueError(f"{args.out} exists; use --overwrite to replace it")


def _read(args, side: str):
    from ..io import ColumnMap, read_catalogue

    opt = lambda name: getattr(args, f"{name}_{side}")  # noqa: E731
    cmap = ColumnMap(ra=opt("ra"), dec=opt("dec"), id=opt("id"), coords=opt("coords"),
                     err=args.sigma_col_a if side == "a" else None,
                     err_unit=args.err_unit_a if side == "a" else None)
    return read_catalogue(expand_paths(getattr(args, side)), cmap, name=side.upper(),
                          on_bad_rows=args.on_bad_rows, memory_budget_mb=args.memory_mb,
                          fmt=opt("format"), hdu=opt("hdu"))


def search_radius(args, cat_a) -> np.ndarray | float:
    """The radius in arcsec: fixed, or K*sqrt(sigma_A_i^2 + sigma_B^2) per A source."""
    if args.radius_arcsec is not None:
        return float(args.radius_arcsec)
    return args.nsigma * np.sqrt(cat_a.sigma_arcsec ** 2 + args.sigma_b ** 2)


def pair_table(cat_a, cat_b, found, with_ids: tuple) -> pd.DataFrame:
    """Output rows: input row numbers, separation (arcsec), identifiers when asked for."""
    out = {"index_a": cat_a.row[found.i], "index_b": cat_b.row[found.j], "sep_arcsec": found.sep_arcsec}
    if with_ids[0]:
        out["id_a"] = cat_a.ids[found.i]
    if with_ids[1]:
        out["id_b"] = cat_b.ids[found.j]
    return pd.DataFrame(out)


def _provenance(args, cats, backend, n_pairs: int) -> dict:
    from .. import __version__

    options = {k: v for k, v in vars(args).items()
               if k not in ("func", "a", "b", "out", "command", "progress", "version")}
    return {
        "gpumatch_version": __version__,
        "command": "pairs",
        "created_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "backend": backend.describe(),
        "inputs": {s: c.meta["paths"] for s, c in zip("ab", cats)},
        "rows_read": {s: int(sum(c.meta["rows_per_file"])) for s, c in zip("ab", cats)},
        "rows_used": {s: len(c) for s, c in zip("ab", cats)},
        "dropped": {s: summarize_dropped(c) for s, c in zip("ab", cats)},
        "options": options,
        "n_pairs": n_pairs,
    }


def run(args) -> int:
    from ..backend import get_backend
    from ..io import write_table
    from ..progress import bar
    from ..sky import pairs

    _check_options(args)
    backend = get_backend(args.backend)
    cat_a, cat_b = _read(args, "a"), _read(args, "b")
    radius = search_radius(args, cat_a)
    with bar(total=len(cat_a), desc="pairs", unit="src", enabled=args.progress) as pb:
        found = pairs(cat_a.ra, cat_a.dec, cat_b.ra, cat_b.dec, radius, backend=backend,
                      progress=pb.update)
    table = pair_table(cat_a, cat_b, found, (args.id_a is not None, args.id_b is not None))
    meta = _provenance(args, (cat_a, cat_b), backend, len(table))
    write_table(table, args.out, meta, overwrite=args.overwrite)
    print(f"{len(table)} pairs between A ({len(cat_a)} sources) and B ({len(cat_b)} sources) "
          f"written to {args.out}")
    for side, cat in (("A", cat_a), ("B", cat_b)):
        for reason, count in summarize_dropped(cat).items():
            print(f"dropped from {side}: {count} rows, {reason}")
    return 0
