"""Figures (matplotlib, no display needed).

Figures are built as :class:`matplotlib.figure.Figure` objects without pyplot, so
nothing depends on the interactive backend and nothing stays open; they are
written with :func:`save_figure` in each requested format (PNG, PDF, SVG).
``gpumatch.plots.onesided`` holds the one-sided method's diagnostics.
"""
from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

#: Default style for every gpumatch figure (DejaVu fonts ship with matplotlib).
STYLE = {
    "font.size": 10,
    "axes.titlesize": 10,
    "axes.labelsize": 10,
    "legend.fontsize": 8,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "mathtext.fontset": "dejavusans",
    "savefig.bbox": "tight",
}


def styled(func):
    """Decorator: build the figure under :data:`STYLE` (text sizes are fixed at creation)."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        import matplotlib

        with matplotlib.rc_context(STYLE):
            return func(*args, **kwargs)

    return wrapper


def new_figure(figsize=(7.0, 5.0), **subplots):
    """A constrained-layout Figure (Agg canvas, no pyplot) and ``fig.subplots(**subplots)``."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, layout="constrained")
    return fig, fig.subplots(**subplots)


def save_figure(fig, stem, formats=("png", "pdf"), dpi: int = 150) -> list:
    """Write ``fig`` to ``stem.<format>`` for each format; returns the paths written."""
    import matplotlib

    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    out = []
    with matplotlib.rc_context(STYLE):
        for fmt in formats:
            p = stem.with_name(f"{stem.name}.{fmt}")
            fig.savefig(p, format=fmt, dpi=dpi)
            out.append(p)
            fig.set_layout_engine("none")  # keep the first layout: later formats skip re-solving it
    return out


def unwrap_ra(ra_deg, centre_deg: float) -> np.ndarray:
    """RA values brought within +-180 deg of ``centre_deg`` (continuous across 0/360)."""
    return centre_deg + np.mod(np.asarray(ra_deg, dtype=float) - centre_deg + 180.0, 360.0) - 180.0
