"""Sub-commands of the ``gpumatch`` CLI, one module each.

Each module defines ``register(subparsers)`` which adds its parser (with a help
text for every option, units included) and sets ``func=run`` on it;
``run(args) -> int`` is the exit status.  ``gpumatch.cli`` lists the modules.
"""


def add_run_options(p, config_name: str, demo_files: str):
    """Options shared by the config-driven commands (onesided, match): figures, progress, demo data."""
    import argparse

    p.add_argument("--no-figures", action="store_true",
                   help="skip the figures (tables and summary are still written)")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="show progress bars on stderr (default: only when stderr is a terminal)")
    p.add_argument("--demo-data", metavar="DIR",
                   help=f"instead of running: write a simulated field in the layout examples/{config_name} "
                        f"reads ({demo_files}) into DIR and exit")


def demo_data_or_config(args):
    """For --demo-data: write the demo inputs and return exit status 0; else require CONFIG.toml (None)."""
    if args.demo_data:
        from ..onesided.run import announce_demo_inputs

        return announce_demo_inputs(args.demo_data)
    if not args.config:
        raise ValueError("give CONFIG.toml (or --demo-data DIR)")
    return None
