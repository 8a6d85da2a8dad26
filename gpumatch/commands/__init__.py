"""Sub-commands of the ``gpumatch`` CLI, one module each.

Each module defines ``register(subparsers)`` which adds its parser (with a help
text for every option, units included) and sets ``func=run`` on it;
``run(args) -> int`` is the exit status.  ``gpumatch.cli`` lists the modules.
"""
