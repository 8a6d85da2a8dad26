"""Diagnostic figures of the one-sided (shift-trial, P_i) cross-match.

Each function returns a :class:`matplotlib.figure.Figure`; write it with
:func:`gpumatch.plots.save_figure`.  Sky maps show RA increasing to the left (east
left, north up); zoom and environment panels are tangent-plane offsets from the
candidate (east offset = dRA cos Dec).  Units: RA/Dec in deg, offsets in arcsec or
arcmin as labelled, magnitudes in mag, densities per arcsec^2.

* :func:`figure_overlay`          -- catalogue positions on the sky (coverage overlap)
* :func:`figure_counts`           -- real vs shifted match counts per Ks bin, excess, significance
* :func:`figure_sweep`            -- unique matched X-ray sources vs applied shift radius
* :func:`figure_probabilities`    -- best P_i histogram, P_0 CDF, normalisation residuals, thresholds
* :func:`figure_environment`      -- IR density maps around follow-up candidates
* :func:`figure_candidate_zooms`  -- candidate error ellipse, ePos cross and Ks-coloured IR sources
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..catalogue import ARCSEC_PER_RAD
from ..onesided.followup import inverse_gnomonic, mean_position, offsets_arcsec, weight_at
from . import new_figure, styled, unwrap_ra

REAL = "#6a3d9a"     # purple: real (unshifted) matches
NULL = "#e6a100"     # amber: shifted (null) trials
KS_CMAP = "plasma_r"
MAX_POINTS = 150_000  # dense layers are thinned to this many points on the overlay


def _grid(n, ncol_max=5):
    ncol = min(n, ncol_max)
    return ncol, int(np.ceil(n / ncol))


# -- sky overlay ---------------------------------------------------------------------
@styled
def figure_overlay(layers, title="Catalogue overlay"):
    """Positions of several catalogues on one RA/Dec map.

    ``layers``: list of dicts with ``label``, ``ra``, ``dec`` (deg) and optional
    ``color``, ``size`` (points^2), ``hollow`` (bool: open markers, e.g. removed
    rows).  Layers with more than ``MAX_POINTS`` rows are thinned at random (seed 0)
    and say so in the legend.  Drawn in list order (first at the bottom).
    """
    fig, ax = new_figure((7.5, 6.5))
    ra_all = np.concatenate([np.asarray(l["ra"], float) for l in layers if len(l["ra"])])
    dec_all = np.concatenate([np.asarray(l["dec"], float) for l in layers if len(l["dec"])])
    ra_c, dec_c = mean_position(ra_all, dec_all)
    rng = np.random.default_rng(0)
    for z, layer in enumerate(layers):
        ra = unwrap_ra(layer["ra"], ra_c)
        dec = np.asarray(layer["dec"], float)
        label = f"{layer['label']} ({len(ra):,})"
        if len(ra) > MAX_POINTS:
            keep = rng.choice(len(ra), MAX_POINTS, replace=False)
            ra, dec = ra[keep], dec[keep]
            label += f", {MAX_POINTS:,} shown"
        size = layer.get("size", 1.0)
        color = layer.get("color")
        if layer.get("hollow"):
            ax.scatter(ra, dec, s=size, facecolors="none", edgecolors=color, linewidths=0.6,
                       label=label, zorder=z, rasterized=len(ra) > 2000)
        else:
            ax.scatter(ra, dec, s=size, c=color, marker="o" if size >= 3 else ".", linewidths=0,
                       label=label, zorder=z, rasterized=len(ra) > 2000)
    ax.set_xlabel("RA [deg]")
    ax.set_ylabel("Dec [deg]")
    ax.set_aspect(1.0 / np.cos(np.radians(dec_c)), adjustable="box")
    ax.invert_xaxis()
    ax.set_title(title)
    ax.ticklabel_format(useOffset=False)
    leg = ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    for h in leg.legend_handles:
        h.set_sizes([25])
        h.set_alpha(1)
    return fig


# -- real vs random per Ks bin -------------------------------------------------------
@styled
def figure_counts(counts: pd.DataFrame, title="Real vs shifted matches per Ks bin", n_trials=None):
    """Three stacked panels over Ks bins (mag): counts, excess, significance (sigma).

    ``counts`` columns: ks_lo, ks_hi, n_real, rand_mean, rand_std, excess,
    significance, and optionally kind/label: rows of kind other than 'bin' (Ks
    missing, brighter or fainter than the bins) are listed in a note.  Real counts carry Poisson errors sqrt(N); shifted ones the
    trial-to-trial standard deviation; the excess error is sqrt(N_real + std^2).
    Bars: the ``significance`` column; dashes: ``significance_notebook``
    (excess / std) where present.
    """
    from matplotlib.patches import Patch

    fig, (ax, ax_ex, ax_sig) = new_figure((8.0, 8.0), nrows=3, sharex=True,
                                          gridspec_kw={"height_ratios": [2.2, 1.2, 1.0]})
    if "kind" in counts:
        other = counts[counts["kind"] != "bin"]
        counts = counts[counts["kind"] == "bin"]
        notes = [f"{r['label']}: real {int(r['n_real'])}, shifted {r['rand_mean']:.1f}"
                 for _, r in other.iterrows() if r["n_real"] > 0 or r["rand_mean"] > 0]
        if notes:
            ax.text(0.99, 0.03, "not in the bins:\n" + "\n".join(notes), transform=ax.transAxes,
                    ha="right", va="bottom", fontsize=8, bbox=dict(fc="white", ec="0.7"))
    lo, hi = counts["ks_lo"].to_numpy(float), counts["ks_hi"].to_numpy(float)
    mid, w = 0.5 * (lo + hi), hi - lo
    n = counts["n_real"].to_numpy(float)
    mu, sd = counts["rand_mean"].to_numpy(float), counts["rand_std"].to_numpy(float)
    ntr = f", {n_trials} trials" if n_trials else ""
    ax.errorbar(mid - 0.12 * w, n, yerr=np.sqrt(n), fmt="o", ms=4, color=REAL, capsize=2,
                label=r"real (unshifted), $\pm\sqrt{N}$")
    ax.errorbar(mid + 0.12 * w, mu, yerr=sd, fmt="s", ms=4, color=NULL, capsize=2,
                label=f"shifted mean $\\pm$ std{ntr}")
    ax.set_ylabel("matches per bin")
    if np.nanmax(np.r_[n, mu + sd, 1.0]) > 200:  # wide range: linear below 10, log above
        ax.set_yscale("symlog", linthresh=10, linscale=0.5)
    ax.set_ylim(bottom=0)
    ax.legend(loc="upper left")
    ax.set_title(title)
    ex = counts["excess"].to_numpy(float)
    ex_err = np.sqrt(n + sd**2)
    ax_ex.bar(mid, ex, width=0.8 * w, color=np.where(ex >= 0, REAL, "grey"), alpha=0.75)
    ax_ex.errorbar(mid, ex, yerr=ex_err, fmt="none", ecolor="k", capsize=2, lw=0.8)
    ax_ex.axhline(0, color="k", lw=0.6)
    ax_ex.set_ylabel("excess\n(real $-$ shifted)")
    sig = counts["significance"].to_numpy(float)
    fin = np.isfinite(sig)
    ax_sig.bar(mid[fin], sig[fin], width=0.8 * w[fin], color=np.where(sig[fin] >= 3, REAL, "silver"))
    handles = [Patch(color=REAL, label=r"significance $\geq 3\sigma$"),
               Patch(color="silver", label=r"$< 3\sigma$")]
    top = np.nanmax(np.r_[sig[fin], 3.0])
    if "significance_notebook" in counts:
        nb = counts["significance_notebook"].to_numpy(float)
        handles += ax_sig.plot(mid, nb, "_", color="k", ms=9, mew=1.5, label="excess / std (notebook)")
        top = max(top, np.nanmax(np.r_[nb, 0.0]))
    ax_sig.axhline(3, color="k", ls="--", lw=0.8)
    ax_sig.axhline(0, color="k", lw=0.6)
    ax_sig.set_ylim(top=1.45 * top + 0.5)
    ax_sig.set_ylabel(r"significance [$\sigma$]")
    ax_sig.set_xlabel(r"$K_s$ [mag] (bin centres)")
    ax_sig.legend(handles=handles, loc="upper left", ncol=3)
    ax_sig.set_xlim(lo.min() - 0.25, hi.max() + 0.25)
    return fig


# -- shift sweep ------------------------------------------------------------------------
@styled
def figure_sweep(sweep: pd.DataFrame, real_unique=None, null_range=None,
                 title="Unique matched X-ray sources vs shift"):
    """Mean +- std of X-ray sources with >= 1 match in shifted trials vs shift (arcsec).

    ``real_unique``: the unshifted count (dashed line); ``null_range``: (r_min,
    r_max) arcsec of the null-trial shifts (shaded).
    """
    fig, ax = new_figure((7.0, 4.5))
    x = sweep["shift_arcsec"].to_numpy(float)
    ax.errorbar(x, sweep["n_unique_mean"], yerr=sweep["n_unique_std"], fmt="o-", color="#1b7837",
                ecolor="#7fbf7b", capsize=3, label="shifted IR catalogue: mean $\\pm$ std")
    if real_unique is not None:
        ax.axhline(real_unique, color=REAL, ls="--", label=f"real (no shift): {int(real_unique)}")
    if null_range is not None:
        ax.axvspan(*null_range, color=NULL, alpha=0.15, label="shift range of the null trials")
    ax.set_xlabel("applied shift [arcsec]")
    ax.set_ylabel("X-ray sources with $\\geq$1 match")
    ax.set_title(title)
    ax.legend(loc="best")
    return fig


# -- probabilities ----------------------------------------------------------------------
def _with_candidates(best: pd.DataFrame) -> pd.DataFrame:
    if "n_candidates" in best:
        return best[best["n_candidates"] > 0]
    return best[np.isfinite(best["P_best"])]


def ax_best_p_hist(ax, best, thresholds=(0.1, 0.5, 0.9)):
    """Histogram of each X-ray source's best P_i (sources with >= 1 candidate)."""
    b = _with_candidates(best)
    ax.hist(b["P_best"].to_numpy(float), bins=np.linspace(0, 1, 41), color=REAL, edgecolor="k", lw=0.4)
    for t in thresholds:
        ax.axvline(t, color="k", ls="--", lw=0.8)
        ax.annotate(f"$P \\geq {t:g}$", (t, 1), xycoords=("data", "axes fraction"), xytext=(-2, -4),
                    textcoords="offset points", rotation=90, ha="right", va="top", fontsize=8)
    ax.set_xlabel("best-match $P_i$")
    ax.set_ylabel("X-ray sources")
    ax.set_title(f"Best $P_i$ per X-ray source ({len(b):,} with candidates)")


def ax_p0_cdf(ax, best):
    """Empirical CDF and survival (1 - CDF) of P_0 on a log x axis, with the median."""
    b = _with_candidates(best)
    p0 = np.sort(b["P0"].to_numpy(float))
    p0 = p0[np.isfinite(p0)]
    if len(p0) == 0:
        ax.text(0.5, 0.5, "no X-ray source has a candidate", ha="center", transform=ax.transAxes)
        return
    cdf = np.arange(1, len(p0) + 1) / len(p0)
    pos = p0 > 0
    ax.step(p0[pos], cdf[pos], where="post", color="#1b7837", label="CDF")
    ax.step(p0[pos], 1 - cdf[pos], where="post", color="grey", ls=":", label="survival (1 $-$ CDF)")
    med = float(np.median(p0))
    ax.axvline(med, color="k", ls="--", lw=0.8, label=f"median $P_0$ = {med:.3g}")
    ax.set_xscale("log")
    ax.set_xlabel("$P_0$ (probability that no candidate is the counterpart)")
    ax.set_ylabel("fraction of X-ray sources")
    ax.set_ylim(0, 1.02)
    ax.grid(True, which="major", ls=":", alpha=0.5)
    ax.set_title("$P_0$ distribution")
    ax.legend(loc="center left")
    if (~pos).any():
        ax.text(0.02, 0.02, f"{int((~pos).sum())} with $P_0$ = 0 not shown", transform=ax.transAxes,
                fontsize=8)


def ax_norm_residuals(ax, best):
    """Histogram of the normalisation residual 1 - P_0 - sum_i P_i per X-ray source (~1e-16)."""
    b = _with_candidates(best)
    r = b["norm_residual"].to_numpy(float)
    r = r[np.isfinite(r)]
    ax.hist(r, bins=40, color=REAL, edgecolor="k", lw=0.4)
    ax.axvline(0, color="k", ls="--", lw=0.8, label="ideal (0)")
    worst = float(np.max(np.abs(r))) if len(r) else 0.0
    ax.set_xlabel("normalisation residual $1 - P_0 - \\Sigma_i\\, P_i$")
    ax.set_ylabel("X-ray sources")
    ax.set_title(f"Normalisation check (max |residual| = {worst:.1e})")
    ax.legend(loc="upper right")


def ax_threshold_bars(ax, thresholds: pd.DataFrame, n_total=None):
    """Bars: number (and fraction) of X-ray sources whose best P_i >= each threshold."""
    t = thresholds.sort_values("threshold")
    x = np.arange(len(t))
    bars = ax.bar(x, t["n"], color=REAL, edgecolor="k", lw=0.5, width=0.6)
    for b, n, f in zip(bars, t["n"], t["fraction"]):
        ax.annotate(f"{int(n):,}\n({100 * f:.1f}%)", (b.get_x() + b.get_width() / 2, b.get_height()),
                    xytext=(0, 2), textcoords="offset points", ha="center", va="bottom", fontsize=8)
    ax.set_xticks(x, [f"$P_i \\geq {v:g}$" for v in t["threshold"]])
    ax.set_ylabel("X-ray sources")
    ax.set_ylim(0, max(1, t["n"].max()) * 1.25)
    of = f" (% of {n_total:,})" if n_total else ""
    ax.set_title(f"X-ray sources whose best $P_i$ reaches each threshold{of}")


@styled
def figure_probabilities(best: pd.DataFrame, thresholds: pd.DataFrame, title="Match probabilities"):
    """2 x 2 panels: best P_i histogram, log-x CDF of P_0, residuals, threshold bars."""
    fig, axes = new_figure((11.0, 8.5), nrows=2, ncols=2)
    ax_best_p_hist(axes[0, 0], best, thresholds["threshold"].to_numpy(float))
    ax_p0_cdf(axes[0, 1], best)
    ax_norm_residuals(axes[1, 0], best)
    ax_threshold_bars(axes[1, 1], thresholds, len(best))
    fig.suptitle(title)
    return fig


# -- follow-up: environment ---------------------------------------------------------------
@styled
def figure_environment(followup: pd.DataFrame, ir_ra, ir_dec, coverage,
                       title="IR environment of the candidates"):
    """Density map of the IR catalogue around each candidate (one panel each).

    Tangent-plane offsets in arcmin (east left); colour: sources per arcsec^2 on a
    common scale, each pixel's count divided by its covered area (``coverage``: the
    catalogue's :class:`~gpumatch.onesided.geometry.CoverageGrid`) (pixels less than
    half covered are left blank); grey hatching: outside the coverage; circle: the
    follow-up radius.  Panel titles give N, local and global density and their
    ratio from the ``followup`` table (:func:`gpumatch.onesided.followup.local_density`).
    """
    from matplotlib.patches import Circle, Rectangle

    n = len(followup)
    ncol, nrow = _grid(n, 5)
    # rows taller than the square panels need: fixed-aspect axes then sit below their titles
    fig, axes = new_figure((3.3 * ncol + 1.2, 4.6 * nrow + 0.3), nrows=nrow, ncols=ncol, squeeze=False)
    r = float(followup["radius_arcsec"].iloc[0])
    half = 1.25 * r
    glob = float(followup["global_density"].iloc[0])
    pix = float(np.clip(np.sqrt(15.0 / max(glob, 1e-12)), r / 40, r / 8))
    nb = int(np.ceil(2 * half / pix))
    edges = np.linspace(-half, half, nb + 1)
    pix = edges[1] - edges[0]
    sub = (np.arange(4) + 0.5) / 4 * pix  # 4 x 4 sub-points per pixel for its covered fraction
    sx = (edges[:-1, None] + sub[None, :]).ravel()
    gx, gy = np.meshgrid(sx, sx)
    maps = []
    for _, row in followup.iterrows():
        near = _box(ir_ra, ir_dec, row["ra"], row["dec"], 1.5 * half)
        dx, dy = offsets_arcsec(np.asarray(ir_ra)[near], np.asarray(ir_dec)[near], row["ra"], row["dec"])
        h, _, _ = np.histogram2d(dy, dx, bins=[edges, edges])
        pra, pdec = inverse_gnomonic(gx / ARCSEC_PER_RAD, gy / ARCSEC_PER_RAD, row["ra"], row["dec"])
        frac = weight_at(coverage, pra, pdec).reshape(nb, 4, nb, 4).mean(axis=(1, 3))
        with np.errstate(invalid="ignore", divide="ignore"):
            dens = h / (pix * pix * frac)
        maps.append(np.ma.masked_where(frac < 0.5, dens))
    vals = np.concatenate([m.compressed() for m in maps])
    vmax = max(2.0 * glob, float(np.percentile(vals, 99)) if len(vals) else 0.0)
    ext = np.array([half, -half, -half, half]) / 60.0
    im = None
    for k, (ax, (_, row), m) in enumerate(zip(axes.flat, followup.iterrows(), maps)):
        ax.set_facecolor("0.85")
        ax.add_patch(Rectangle(
            (ext[0], ext[2]), ext[1] - ext[0], ext[3] - ext[2], fill=False, hatch="///",
            edgecolor="0.6", lw=0, zorder=0))
        im = ax.imshow(m, origin="lower", extent=(ext[0], ext[1], ext[2], ext[3]), cmap="magma",
                       vmin=0, vmax=vmax, interpolation="nearest", zorder=1)
        ax.add_patch(Circle((0, 0), r / 60.0, fill=False, color="cyan", lw=1.2, zorder=2))
        ax.plot(0, 0, marker="*", ms=12, color="cyan", mec="k", zorder=3)
        ax.set_xlim(ext[0], ext[1])
        ax.set_ylim(ext[2], ext[3])
        ax.set_aspect("equal")
        ax.set_title(f"{row['name']}\nN = {int(row['n_local']):,} in {r / 60:g}', "
                     f"{100 * row['area_fraction']:.0f}% covered\n"
                     f"local {row['local_density']:.3g}, global {row['global_density']:.3g} arcsec$^{{-2}}$\n"
                     f"ratio {row['ratio']:.2f} $\\pm$ {row['ratio_err']:.2f}", fontsize=8.5)
        ax.set_xlabel("east offset [arcmin]")
        if k % ncol == 0:
            ax.set_ylabel("north offset [arcmin]")
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    cb = fig.colorbar(im, ax=axes, shrink=0.8)
    cb.set_label(f"IR sources per arcsec$^2$ ({pix:.0f}\" pixels)")
    cells = followup["coverage_cell_arcsec"].iloc[0] if "coverage_cell_arcsec" in followup else None
    fig.suptitle(title + (f"; hatched: outside the coverage ({cells:.0f}\" cells)" if cells else ""))
    return fig


def _box(ra, dec, ra0, dec0, half_arcsec):
    """Cheap pre-selection of rows within a box of half-width half_arcsec around (ra0, dec0)."""
    ra = np.asarray(ra, float)
    dec = np.asarray(dec, float)
    hd = half_arcsec / 3600.0
    cosd = max(np.cos(np.radians(min(abs(dec0) + hd, 89.999))), 1e-6)
    dra = np.abs(np.mod(ra - ra0 + 180.0, 360.0) - 180.0)
    return (np.abs(dec - dec0) <= hd) & (dra <= hd / cosd)


# -- follow-up: candidate zooms -------------------------------------------------------------
@styled
def figure_candidate_zooms(candidates: pd.DataFrame, ir_ra, ir_dec, ir_ks, ir_kept=None,
                           zoom_arcsec: float = 6.0, ks_range=(8.0, 18.0), counterparts=None,
                           notes=None, title="Candidates and IR sources"):
    """One panel per candidate: error ellipse, ePos cross and nearby IR sources.

    ``candidates``: name, ra, dec (deg), r0, r1 (arcsec semi-axes), angle (deg, PA
    of r0 east of north), optional epos (arcsec, drawn as a cross).  IR sources
    (deg) are coloured by Ks (mag, colourbar; bigger = brighter); ``ir_kept``
    (bool per row) draws rows removed by the colour filter as open grey circles;
    sources without Ks are grey crosses.  ``counterparts``: optional per-candidate
    (ra, dec) of the chosen counterpart, ringed in green; ``notes``: optional
    per-candidate text shown under the name.  Offsets in arcsec.
    """
    from matplotlib.colors import Normalize
    from matplotlib.patches import Ellipse

    n = len(candidates)
    ncol, nrow = _grid(n, 5)
    fig, axes = new_figure((3.1 * ncol + 1.0, 3.7 * nrow + 0.6), nrows=nrow, ncols=ncol, squeeze=False)
    norm = Normalize(*ks_range)
    ir_ra = np.asarray(ir_ra, float)
    ir_dec = np.asarray(ir_dec, float)
    ir_ks = np.asarray(ir_ks, float)
    kept = np.ones(len(ir_ra), bool) if ir_kept is None else np.asarray(ir_kept, bool)
    z = zoom_arcsec
    sc = None
    for k, (ax, (_, c)) in enumerate(zip(axes.flat, candidates.iterrows())):
        near = np.flatnonzero(_box(ir_ra, ir_dec, c["ra"], c["dec"], 1.5 * z))
        dx, dy = offsets_arcsec(ir_ra[near], ir_dec[near], c["ra"], c["dec"])
        ks, kp = ir_ks[near], kept[near]
        size = 12 + 70 * np.clip((ks_range[1] - ks) / (ks_range[1] - ks_range[0]), 0, 1)
        has = np.isfinite(ks)
        ell = Ellipse((0, 0), width=2 * c["r0"], height=2 * c["r1"], angle=90.0 - c["angle"],
                      facecolor="silver", edgecolor="k", alpha=0.5, zorder=1, label="error ellipse")
        ax.add_patch(ell)
        ax.scatter(dx[has & ~kp], dy[has & ~kp], s=size[has & ~kp], facecolors="none", edgecolors="0.45",
                   lw=0.8, zorder=2, label="removed by colour filter")
        ax.scatter(dx[~has], dy[~has], s=15, marker="x", color="0.45", lw=0.8, zorder=2, label="no $K_s$")
        sc = ax.scatter(dx[has & kp], dy[has & kp], c=ks[has & kp], s=size[has & kp], cmap=KS_CMAP,
                        norm=norm, edgecolors="k", lw=0.3, zorder=3, label="IR source")
        if "epos" in c and np.isfinite(c["epos"]):
            ax.errorbar(0, 0, xerr=c["epos"], yerr=c["epos"], fmt="+", color="k", ms=6, capsize=0,
                        lw=1.0, zorder=4, label="ePos (1$\\sigma$)")
        else:
            ax.plot(0, 0, "+", color="k", ms=8, zorder=4)
        if counterparts is not None and counterparts[k] is not None:
            cx, cy = offsets_arcsec(counterparts[k][0], counterparts[k][1], c["ra"], c["dec"])
            ax.scatter(cx, cy, s=260, facecolors="none", edgecolors="#1b9e77", lw=1.8, zorder=5,
                       label="chosen counterpart")
        ax.set_xlim(z, -z)
        ax.set_ylim(-z, z)
        ax.set_aspect("equal")
        note = f"\n{notes[k]}" if notes is not None and notes[k] else ""
        ax.set_title(f"{c['name']}{note}", fontsize=9)
        ax.set_xlabel("east offset [arcsec]")
        if k % ncol == 0:
            ax.set_ylabel("north offset [arcsec]")
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    handles = {}
    for ax in list(axes.flat)[:n]:
        for h, l in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(l, h)
    fig.legend(list(handles.values()), list(handles.keys()), loc="outside lower center",
               ncol=min(6, len(handles)), frameon=False)
    cb = fig.colorbar(sc, ax=axes, shrink=0.85)
    cb.set_label("$K_s$ [mag]")
    cb.ax.invert_yaxis()
    fig.suptitle(title)
    return fig
