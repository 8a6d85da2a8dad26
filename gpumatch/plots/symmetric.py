"""Diagnostic figures of the symmetric match (Wilson & Naylor 2018, section 6.3).

Each function takes a :class:`gpumatch.symmetric.MatchResult` and returns a
:class:`matplotlib.figure.Figure` (or None when the inputs it needs are absent, e.g. no
magnitudes); write it with :func:`gpumatch.plots.save_figure`.  Units: magnitudes in mag,
number densities per mag (1-D) or per mag^2 (2-D), eta and xi are log10 likelihood ratios.

* :func:`figure_mag_mag`        -- counterpart magnitude-magnitude density (paper fig. 4/7):
  2-D number density of accepted matches, the fitted counterpart density N_c A c as contours,
  and matched / unmatched number densities per magnitude in the side panels;
* :func:`figure_mag_histograms` -- matched vs unmatched magnitude distributions per catalogue;
* :func:`figure_eta_xi`         -- photometric vs astrometric likelihood ratio (paper fig. 6)
  for accepted matches and for rejected candidate pairs, with the even-odds line eta + xi = 0;
* :func:`figure_probabilities`  -- histograms of pair match probabilities, island best-
  hypothesis probabilities and the no-match probabilities, with the acceptance threshold.
"""
from __future__ import annotations

import numpy as np

from . import new_figure, styled

MATCHED = "#1f4e9c"      # blue: accepted matches
UNMATCHED = "#c0392b"    # red: not matched
CANDIDATE = "#7f7f7f"    # grey: rejected candidate pairs
MAX_POINTS = 40_000      # scatter layers are thinned to this many points (seeded)
DROPPED = ("invalid row", "filtered")


def _edges(values, n_count=None, n_min=8, n_max=60, per=2.0):
    """Bin edges (mag) over the finite ``values``: about ``per n^(1/3)`` bins for ``n_count``
    entries (default: the number of finite values), clipped to [n_min, n_max], the width rounded
    up to a multiple of 0.05 mag; None when nothing is finite."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return None
    lo, hi = np.floor(v.min() * 4) / 4, np.ceil(v.max() * 4) / 4
    if hi <= lo:
        hi = lo + 0.25
    n = v.size if n_count is None else n_count
    n_bins = int(np.clip(per * max(n, 1) ** (1 / 3), n_min, n_max))
    width = max(0.05, np.ceil((hi - lo) / n_bins * 20) / 20)
    return np.arange(lo, hi + width * 0.999, width)


def _plain_log_axis(axis):
    """Log axis with plain major labels and no minor labels."""
    from matplotlib.ticker import LogFormatterSciNotation, NullFormatter

    axis.set_major_formatter(LogFormatterSciNotation(labelOnlyBase=True))
    axis.set_minor_formatter(NullFormatter())


def _kept_nonmatches(df):
    return df[~df["reason"].isin(DROPPED)]


def _bands(result):
    o = result.options
    return (o.a.band or "mag"), (o.b.band or "mag")


def _thin(n, rng):
    return np.arange(n) if n <= MAX_POINTS else np.sort(rng.choice(n, MAX_POINTS, replace=False))


@styled
def figure_mag_mag(result, title=None):
    """Counterpart magnitude-magnitude density with matched/unmatched marginals (None if a
    catalogue has no magnitude)."""
    from matplotlib.colors import LogNorm

    m = result.matches
    na, nb = result.names
    ba, bb = _bands(result)
    nm_a, nm_b = _kept_nonmatches(result.nonmatches["a"]), _kept_nonmatches(result.nonmatches["b"])
    all_a = np.concatenate([m["mag_a"], nm_a["mag"]])
    all_b = np.concatenate([m["mag_b"], nm_b["mag"]])
    ea = _edges(all_a, n_count=len(m), n_max=50, per=3.0)
    eb = _edges(all_b, n_count=len(m), n_max=50, per=3.0)
    if ea is None or eb is None:
        return None
    fig, axes = new_figure((7.6, 7.0), nrows=2, ncols=3,
                           gridspec_kw={"width_ratios": [4, 1.3, 0.18], "height_ratios": [1.3, 4]})
    top, main, side, cax = axes[0, 0], axes[1, 0], axes[1, 1], axes[1, 2]
    axes[0, 1].axis("off")
    axes[0, 2].axis("off")
    ok = np.isfinite(m["mag_a"]) & np.isfinite(m["mag_b"])
    h, _, _ = np.histogram2d(m["mag_a"][ok], m["mag_b"][ok], bins=[ea, eb])
    dens = h / (np.diff(ea)[:, None] * np.diff(eb)[None, :])
    if dens.max() > 0:
        im = main.pcolormesh(ea, eb, np.where(dens > 0, dens, np.nan).T, cmap="viridis",
                             norm=LogNorm(vmin=max(dens[dens > 0].min(), 1e-3), vmax=dens.max()))
        from matplotlib.ticker import LogLocator, NullFormatter, StrMethodFormatter

        cb_ = fig.colorbar(im, cax=cax, label="matches per mag$^2$")
        cb_.ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        cb_.ax.yaxis.set_major_formatter(StrMethodFormatter("{x:g}"))
        cb_.ax.yaxis.set_minor_formatter(NullFormatter())
    else:
        cax.axis("off")
    ph = result.photometry
    if ph is not None and ph.use_photometry:
        ca = 0.5 * (ph.bins_a[1:] + ph.bins_a[:-1])
        cb = 0.5 * (ph.bins_b[1:] + ph.bins_b[:-1])
        model = ph.N_c * ph.area_arcsec2 * ph.c
        if model.max() > 0 and len(ca) > 1 and len(cb) > 1:
            lv = model.max() * np.array([0.1, 0.5])
            cs = main.contour(ca, cb, model.T, levels=lv, colors="k", linewidths=0.8, linestyles="-")
            cs.set_label(r"fitted $N_c\,A\,c$ (10%, 50% of peak)")
            main.legend(handles=[cs.legend_elements()[0][0]], labels=[cs.get_label()],
                        loc="lower right", frameon=True, framealpha=0.85)
    main.set_xlabel(f"{na} {ba} [mag]")
    main.set_ylabel(f"{nb} {bb} [mag]")
    main.set_xlim(ea[0], ea[-1])
    main.set_ylim(eb[0], eb[-1])
    for ax, edges, mv, um, horiz in ((top, _edges(all_a), m["mag_a"], nm_a["mag"], True),
                                     (side, _edges(all_b), m["mag_b"], nm_b["mag"], False)):
        w = np.diff(edges)
        hm = np.histogram(mv[np.isfinite(mv)], edges)[0] / w
        hu = np.histogram(um[np.isfinite(um)], edges)[0] / w
        for vals, col, ls, lab in ((hm, MATCHED, "-", "matched"), (hu, UNMATCHED, ":", "unmatched")):
            y = np.append(vals, vals[-1])
            if horiz:
                ax.step(edges, y, where="post", color=col, ls=ls, label=lab)
            else:
                ax.step(y, edges, where="pre", color=col, ls=ls, label=lab)
        if horiz:
            ax.set_xlim(edges[0], edges[-1])
            ax.set_yscale("log")
            _plain_log_axis(ax.yaxis)
            ax.set_ylabel("per mag")
            ax.tick_params(labelbottom=False)
            ax.legend(loc="upper left", frameon=False)
        else:
            ax.set_ylim(edges[0], edges[-1])
            ax.set_xscale("log")
            _plain_log_axis(ax.xaxis)
            ax.set_xlabel("per mag")
            ax.tick_params(labelleft=False)
    fig.suptitle(title or f"Counterpart magnitudes: {na} vs {nb} ({len(m):,} matches)")
    return fig


@styled
def figure_mag_histograms(result, title=None):
    """Matched vs unmatched number density per magnitude, one panel per catalogue."""
    m = result.matches
    fig, axes = new_figure((9.0, 3.8), ncols=2)
    drawn = False
    for ax, s, name, band in zip(axes, ("a", "b"), result.names, _bands(result)):
        um = _kept_nonmatches(result.nonmatches[s])["mag"].to_numpy(dtype=float)
        mv = m[f"mag_{s}"].to_numpy(dtype=float)
        edges = _edges(np.concatenate([mv, um]))
        if edges is None:
            ax.text(0.5, 0.5, f"{name}: no magnitudes", ha="center", va="center", transform=ax.transAxes)
            ax.set_axis_off()
            continue
        drawn = True
        w = np.diff(edges)
        for vals, col, ls, lab in ((mv, MATCHED, "-", "matched"), (um, UNMATCHED, "--", "unmatched")):
            fin = vals[np.isfinite(vals)]
            h = np.histogram(fin, edges)[0] / w
            ax.step(edges, np.append(h, h[-1]), where="post", color=col, ls=ls,
                    label=f"{lab} ({len(fin):,})")
        n_nan = int(np.sum(~np.isfinite(mv)) + np.sum(~np.isfinite(um)))
        ax.set_yscale("log")
        ax.set_xlabel(f"{band} [mag]")
        ax.set_ylabel("sources per mag")
        ax.set_title(f"{name}" + (f" ({n_nan:,} without {band})" if n_nan else ""))
        ax.legend(frameon=False)
    if not drawn:
        return None
    fig.suptitle(title or "Matched vs unmatched magnitude distributions")
    return fig


@styled
def figure_eta_xi(result, title=None, seed: int = 0):
    """eta (photometric) vs xi (astrometric) log10 likelihood ratios of candidate pairs."""
    p = result.pairs
    fin = np.isfinite(p["xi"]) & np.isfinite(p["eta"])
    acc = p["accepted"].to_numpy() & fin
    rej = ~p["accepted"].to_numpy() & fin
    if not (acc.any() or rej.any()):
        return None
    rng = np.random.default_rng(seed)
    fig, ax = new_figure((6.8, 5.4))
    sc = None
    for sel, lab in ((rej, "rejected candidate pairs"), (acc, "accepted matches")):
        idx = np.flatnonzero(sel)
        shown = idx[_thin(len(idx), rng)]
        note = f" ({len(idx):,}" + (f", {len(shown):,} shown)" if len(shown) < len(idx) else ")")
        if sel is acc:
            sc = ax.scatter(p["xi"].to_numpy()[shown], p["eta"].to_numpy()[shown], s=7, lw=0,
                            c=p["p_match"].to_numpy()[shown], cmap="viridis", vmin=0, vmax=1,
                            label=lab + note, rasterized=len(shown) > 2000, zorder=2)
        else:
            ax.scatter(p["xi"].to_numpy()[shown], p["eta"].to_numpy()[shown], s=5, lw=0, c=CANDIDATE,
                       alpha=0.5, label=lab + note, rasterized=len(shown) > 2000, zorder=1)
    x = p["xi"].to_numpy()[fin]
    y = p["eta"].to_numpy()[fin]
    lo = np.percentile(x, 0.5) if len(x) > 50 else x.min()
    xr = np.array([min(lo, -y.max()), x.max()])
    ax.plot(xr, -xr, "k:", lw=1, label=r"$\eta + \xi = 0$ (even odds)")
    ax.set_xlim(xr[0] - 0.5, xr[1] + 0.5)
    ax.set_xlabel(r"$\xi = \log_{10}(N_c G / N_a N_b)$  (astrometric)")
    ax.set_ylabel(r"$\eta = \log_{10}(c / f_a f_b)$  (photometric)")
    if sc is not None:
        fig.colorbar(sc, ax=ax, label="pair match probability")
    ax.legend(loc="lower left", frameon=True, framealpha=0.85, markerscale=2)
    na, nb = result.names
    ax.set_title(title or f"Likelihood ratios of {na}-{nb} candidate pairs")
    return fig


@styled
def figure_probabilities(result, title=None):
    """Histograms of pair, hypothesis and no-match probabilities (log counts)."""
    p = result.pairs
    res = result.assignment
    fig, axes = new_figure((11.0, 3.6), ncols=3)
    edges = np.linspace(0, 1, 21)
    ax = axes[0]
    ax.hist(p["p_match"], edges, color=CANDIDATE, label=f"all candidate pairs ({len(p):,})")
    ax.hist(p.loc[p["accepted"], "p_match"], edges, color=MATCHED, alpha=0.8,
            label=f"accepted ({int(p['accepted'].sum()):,})")
    ax.set_xlabel("pair match probability P(a~b)")
    ax.set_title("Pair marginals")
    ax = axes[1]
    if len(p):
        with_pairs = np.unique(p["island"].to_numpy())
        has = np.zeros(len(res.best_prob), dtype=bool)
        has[with_pairs] = True
        ax.hist(res.best_prob[has], edges, color=MATCHED, label=f"islands with candidates ({has.sum():,})")
    ax.set_xlabel("probability of the most probable hypothesis")
    ax.set_title("Island hypotheses")
    ax = axes[2]
    for k, (s, col, ls) in enumerate((("a", MATCHED, "-"), ("b", UNMATCHED, "--"))):
        nm = _kept_nonmatches(result.nonmatches[s])
        v = nm.loc[nm["island_n_a"] + nm["island_n_b"] > 1, "p_no_match"].to_numpy(dtype=float)
        ax.hist(v[np.isfinite(v)], edges, histtype="step", color=col, ls=ls, lw=1.5,
                label=f"{result.names[k]} ({len(v):,})")
    ax.set_xlabel("P(no counterpart) of unmatched sources")
    ax.set_title("Unmatched sources with candidates")
    thr = result.options.threshold
    for ax in axes:
        ax.set_yscale("log")
        ax.set_ylabel("number")
        if thr is not None and ax is not axes[2]:
            ax.axvline(thr, color="k", ls=":", lw=1, label=f"threshold {thr:g}")
        ax.legend(frameon=False, loc="upper center")
    na, nb = result.names
    fig.suptitle(title or f"Match probabilities, {na} vs {nb}")
    return fig


def all_figures(result, prefix=""):
    """{name: Figure} of every diagnostic that applies (None-returning ones left out)."""
    out = {}
    for name, fn in (("mag_mag", figure_mag_mag), ("mag_histograms", figure_mag_histograms),
                     ("eta_xi", figure_eta_xi), ("probabilities", figure_probabilities)):
        fig = fn(result)
        if fig is not None:
            out[prefix + name] = fig
    return out
