"""Progress bars for long work (tqdm on stderr; silent when not a terminal unless forced)."""
from __future__ import annotations

import os
import sys

from tqdm.auto import tqdm


def progress_enabled(flag: bool | None = None) -> bool:
    """Explicit flag wins; else GPUMATCH_PROGRESS=0/1; else only when stderr is a terminal."""
    if flag is not None:
        return flag
    env = os.environ.get("GPUMATCH_PROGRESS")
    if env is not None:
        return env not in ("0", "", "false", "no")
    return sys.stderr.isatty()


def bar(total=None, desc: str = "", unit: str = "it", enabled: bool | None = None):
    """A tqdm bar (a disabled one when progress is off); use as a context manager."""
    return tqdm(total=total, desc=desc, unit=unit, disable=not progress_enabled(enabled),
                file=sys.stderr, dynamic_ncols=True, leave=False)
