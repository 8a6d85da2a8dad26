"""The ``gpumatch`` command line.  ``gpumatch COMMAND --help`` explains each command."""
from __future__ import annotations

import argparse
import importlib
import sys

from .backend import BACKENDS, BackendError
from .catalogue import InputError

# Sub-command modules in gpumatch/commands, in the order --help lists them.
COMMANDS = ["info", "simulate", "pairs", "onesided", "match", "demo"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gpumatch",
        description="GPU-accelerated probabilistic cross-matching of astronomical catalogues. "
                    "Angles: RA/Dec in degrees, separations and errors in arcsec, magnitudes in mag.")
    parser.add_argument("--backend", choices=BACKENDS, default=None,
                        help="array backend: 'auto' (CuPy if a GPU is usable, else NumPy), 'numpy' "
                             "or 'cupy' (default: $GPUMATCH_BACKEND, else auto)")
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"gpumatch.commands.{name}").register(sub)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        from . import __version__

        print(__version__)
        return 0
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except (InputError, BackendError, FileNotFoundError, ValueError) as exc:
        print(f"gpumatch {args.command}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
