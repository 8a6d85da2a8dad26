"""Run a whole one-sided cross-match from a config file (``gpumatch onesided CONFIG.toml``).

:func:`run_from_config` does, in order:

1. read the X-ray catalogue and every IR catalogue (``gpumatch.io``); rows that
   fail validation with ``on_bad_rows = "drop"`` are kept aside with their reason;
2. apply the filters: the HR0 foreground window to the X-ray catalogue, the colour
   rule (``remove = "blue"`` by default, ``"red"`` reproduces the notebook) to each
   IR catalogue, recording a reason for every row;
3. run :func:`gpumatch.onesided.core.run_onesided` against each IR catalogue;
4. merge the per-catalogue best counterparts into one table per X-ray source;
5. follow up the candidates: local vs global IR density, zoom panels;
6. write every table (CSV + Parquet/FITS with provenance metadata), every figure
   and ``summary.txt`` / ``summary.json``.

Nothing is lost: every input row of every catalogue appears exactly once, either
in a kept table (X-ray: the per-catalogue ``best`` tables and ``merged``; IR:
``<name>_kept``) or in a ``removed`` table with its stage and reason.  Rows are
identified by ``row`` (0-based across the input files in the order given),
``file`` and ``file_row``.

Output folder layout::

    summary.txt  summary.json
    tables/  <xray>_removed  <ir>_removed  <ir>_kept  <ir>_counts  <ir>_trials  <ir>_shifts
             <ir>_sweep  <ir>_candidates  <ir>_best  <ir>_thresholds  <ir>_f_table  <ir>_classes
             merged  candidates  <ir>_followup          (.csv / .parquet / .fits)
    figures/ overlay  <ir>_counts  <ir>_sweep  <ir>_probabilities
             <ir>_environment  <ir>_candidates  (.png / .pdf)
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import json
from pathlib import Path

import numpy as np
import pandas as pd

from .. import __version__
from ..backend import get_backend
from ..catalogue import Catalogue
from ..io import jsonable
from ..progress import bar
from .config import RunConfig, load_config
from .followup import coverage_of, local_density
from .merge import merge_best

REMOVED_COLUMNS = ["row", "file", "file_row", "id", "stage", "reason", "column", "ra", "dec"]
IR_COLOURS = ["tab:blue", "tab:green", "tab:purple", "tab:cyan"]
#: Field of the demo inputs: large enough for the notebook's 3 arcmin follow-up radius.
DEMO_FIELD = dict(width_deg=0.25, height_deg=0.25, n_a=800)


# -- reading ------------------------------------------------------------------------
def read_input(cc) -> Catalogue:
    """Read one configured catalogue; magnitudes are renamed from columns to band names."""
    from ..io import ColumnMap, read_catalogue

    cat = read_catalogue([str(p) for p in cc.files], columns=ColumnMap(**cc.columns), name=cc.name,
                         on_bad_rows=cc.on_bad_rows, fmt=cc.fmt)
    if cc.bands:
        cat.mags = {band: cat.mags[col] for band, col in cc.bands.items()}
    return cat


def _invalid_rows(cat: Catalogue) -> pd.DataFrame:
    """Rows dropped by validation, in the removed-table layout."""
    d = cat.dropped
    if len(d) == 0:
        return pd.DataFrame(columns=REMOVED_COLUMNS)
    return pd.DataFrame({"row": d["row"].to_numpy(), "file": d["file"].to_numpy(),
                         "file_row": d["file_row"].to_numpy(), "id": pd.NA, "stage": "validation",
                         "reason": d["reason"].to_numpy(), "column": d["column"].to_numpy(),
                         "ra": np.nan, "dec": np.nan})


def _stack(invalid: pd.DataFrame, filtered: pd.DataFrame) -> pd.DataFrame:
    """Rows removed by validation then by the filter (an empty part keeps no say on dtypes)."""
    parts = [f for f in (invalid, filtered) if len(f)]
    return pd.concat(parts, ignore_index=True) if parts else filtered


def _filtered_rows(cat: Catalogue, keep: np.ndarray, reason: np.ndarray, stage: str) -> pd.DataFrame:
    """Rows a filter removed: identity, stage, reason and all catalogue columns."""
    sel = np.flatnonzero(~keep)
    f = cat.subset(sel).to_frame()
    f.insert(4, "stage", stage)
    f.insert(5, "reason", np.asarray(reason)[sel])
    f.insert(6, "column", "")
    return f


def _filter(cat: Catalogue, spec: dict | None, kind: str):
    """Apply the configured filter (or none).

    Returns (kept catalogue, keep mask, per-row note -- the removal tag, or for
    kept rows the rule's note or 'passed' --, removed-rows table, summary records
    {action, reason, count}, one-line description).
    """
    if spec is None:
        keep = np.ones(len(cat), bool)
        note = np.full(len(cat), "no filter", dtype=object)
        return (cat, keep, note, _filtered_rows(cat, keep, note, kind),
                [{"action": "kept", "reason": "no filter", "count": len(cat)}], "no filter")
    from ..filters import colour_foreground, hr0_foreground

    fr = hr0_foreground(cat, **spec) if kind == "hr0_filter" else colour_foreground(cat, **spec)
    note = np.where(fr.keep, np.where(fr.info == "", "passed", fr.info), fr.reason).astype(object)
    return (fr.apply(cat), fr.keep, note, _filtered_rows(cat, fr.keep, note, kind),
            fr.summary().to_dict("records"), fr.describe())


# -- tables -----------------------------------------------------------------------------
class _Writer:
    """Writes each table in every configured format and remembers the paths."""

    def __init__(self, folder: Path, formats, meta: dict):
        self.folder, self.formats, self.meta = folder / "tables", formats, meta
        self.paths: dict = {}

    def __call__(self, name: str, df: pd.DataFrame, description: str, **extra):
        from ..io import write_table

        self.folder.mkdir(parents=True, exist_ok=True)
        meta = {**self.meta, "table": name, "description": description, **extra}
        out = []
        for fmt in self.formats:
            out.append(write_table(df, self.folder / f"{name}.{fmt}", meta=meta, fmt=fmt, overwrite=True))
        self.paths[name] = [str(p) for p in out]


def _positions(cat: Catalogue, rows) -> np.ndarray:
    """Positions in ``cat`` of input ``row`` values (``cat.row`` is sorted; -1 stays -1)."""
    rows = np.asarray(rows, dtype=np.int64)
    pos = np.clip(np.searchsorted(cat.row, rows), 0, len(cat) - 1)
    return np.where((rows >= 0) & (cat.row[pos] == rows), pos, -1)


def _enrich_best(best: pd.DataFrame, xray: Catalogue, ir: Catalogue) -> pd.DataFrame:
    """Add the X-ray source's file and file row, and the chosen IR source's position (deg)."""
    b = best.copy()
    ix = _positions(xray, b["index_x"])
    b.insert(1, "file", xray.file[ix])
    b.insert(2, "file_row", xray.file_row[ix])
    j = _positions(ir, b["index_ir"])
    has = j >= 0
    b["ra_ir"] = np.where(has, ir.ra[np.maximum(j, 0)], np.nan)
    b["dec_ir"] = np.where(has, ir.dec[np.maximum(j, 0)], np.nan)
    return b


def _kept_ir(ir: Catalogue, note: np.ndarray, candidates: pd.DataFrame) -> pd.DataFrame:
    """One row per kept IR source: identity, filter note, number of X-ray sources it is a candidate of."""
    n_as = np.bincount(_positions(ir, candidates["index_ir"]), minlength=len(ir))
    d = {"row": ir.row, "file": ir.file, "file_row": ir.file_row, "id": ir.ids, "ra": ir.ra, "dec": ir.dec}
    d.update(ir.mags)
    d.update(filter_note=note, n_candidate_of=n_as)
    return pd.DataFrame(d)


# -- candidates for follow-up ---------------------------------------------------------------
def _candidate_list(cfg: RunConfig, xray_in: Catalogue, best: pd.DataFrame) -> pd.DataFrame | None:
    """The configured candidate list (or the top-N by P_best in ``best``), with the nearest X-ray source."""
    from ..sky import pairs

    cc = cfg.candidates
    if cc.table is not None:
        cand = cc.table.copy()
    elif cc.top > 0:
        b = best[best["n_candidates"] > 0].sort_values("P_best", ascending=False).head(cc.top)
        if len(b) == 0:
            return None
        sig = b["sigma_x_arcsec"].to_numpy(float)
        cand = pd.DataFrame({"name": b["id_x"].astype(str).to_numpy(), "ra": b["ra"].to_numpy(float),
                             "dec": b["dec"].to_numpy(float), "r0": sig, "r1": sig, "angle": 0.0})
    else:
        return None
    # Nearest X-ray input source (as the notebook does, to draw its ePos cross).
    reach = cand["r0"].to_numpy(float).max() + 5.0
    pr = pairs(cand["ra"], cand["dec"], xray_in.ra, xray_in.dec, reach)
    cand["xray_row"] = -1
    cand["xray_id"] = None
    cand["xray_sep_arcsec"] = np.nan
    if len(pr):
        order = np.lexsort((pr.sep_arcsec, pr.i))
        first = order[np.r_[True, pr.i[order][1:] != pr.i[order][:-1]]]
        i, j = pr.i[first], pr.j[first]
        cand.loc[i, "xray_row"] = xray_in.row[j]
        cand.loc[i, "xray_id"] = xray_in.ids[j]
        cand.loc[i, "xray_sep_arcsec"] = pr.sep_arcsec[first]
        if "epos" not in cand:
            cand["epos"] = np.nan
        fill = cand["epos"].isna().to_numpy()
        sig = xray_in.sigma_arcsec
        cand.loc[i[fill[i]], "epos"] = sig[j[fill[i]]]
    return cand


def _zoom_marks(cand: pd.DataFrame, best: pd.DataFrame):
    """Per candidate: the chosen counterpart's (ra, dec) or None, and a note for the zoom panel."""
    by_row = best.set_index("index_x")
    marks, notes = [], []
    for r in cand["xray_row"]:
        if r < 0:
            marks.append(None)
            notes.append("no X-ray source nearby")
        elif r not in by_row.index:
            marks.append(None)
            notes.append("X-ray source filtered out")
        elif by_row.at[r, "n_candidates"] == 0:
            marks.append(None)
            notes.append(str(by_row.at[r, "reason"]))
        else:
            b = by_row.loc[r]
            marks.append((b["ra_ir"], b["dec_ir"]))
            notes.append(f"best P = {b['P_best']:.2f}, Ks = {b['ks']:.1f}")
    return marks, notes


# -- the run -------------------------------------------------------------------------
@dataclasses.dataclass
class _Matched:
    """One IR catalogue's share of the run."""

    name: str
    ir_in: Catalogue          # as read (after validation)
    ir: Catalogue             # after the colour filter
    keep: np.ndarray          # per ir_in row
    res: object               # OneSidedResult
    best: pd.DataFrame        # res.best with file/file_row and the counterpart's position
    info: dict                # for the summary
    followup: tuple | None = None  # (table, CoverageGrid, catalogue used)


def run_from_config(config, backend=None, out=None, figures: bool = True, seed: int | None = None,
                    progress: bool | None = None) -> dict:
    """Run everything a config describes; returns the summary dict (also written as JSON).

    ``config``: TOML path, mapping or :class:`RunConfig`.  ``backend``, ``out``
    (output folder) and ``seed`` override the config; ``figures=False`` skips
    the figures; ``progress`` forces progress bars on/off (default: on a terminal).
    """
    cfg = load_config(config)
    out_dir = Path(out) if out is not None else cfg.output.folder
    out_dir.mkdir(parents=True, exist_ok=True)
    be = get_backend(backend or cfg.backend)
    progress = cfg.progress if progress is None else progress
    base_opts = dict(cfg.onesided) if seed is None else {**cfg.onesided, "seed": int(seed)}
    meta = {"gpumatch_version": __version__, "backend": be.describe(), "config": cfg.source,
            "created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
    write = _Writer(out_dir, cfg.output.tables, meta)
    draw = figures and bool(cfg.output.figures)
    with bar(total=2 + 2 * len(cfg.ir) + draw, desc="onesided", unit="step", enabled=progress) as pb:
        pb.set_postfix_str(f"reading {cfg.xray.name}")
        xray_in, xray, xray_info = _prepare_xray(cfg, write)
        pb.update(1)
        runs = [_match(cfg, ic, xray, xray_info, base_opts, be, progress, write, pb) for ic in cfg.ir]
        merged = merge_best({m.name: m.best for m in runs})
        write("merged", merged, "best counterpart of each X-ray source in every IR catalogue "
                                "(columns prefixed by the catalogue name)")
        cand = _follow_up(cfg, xray_in, runs, write, be)
        pb.update(1)
        fig_paths = []
        if draw:
            pb.set_postfix_str("figures")
            fig_paths = _figures(cfg, out_dir, xray_in, xray, runs, cand)
            pb.update(1)
    summary = {"output": str(out_dir), "config": cfg.source, "backend": be.describe(),
               "gpumatch_version": __version__, "seed": runs[0].res.meta["seed"],
               "xray": xray_info, "ir": {m.name: m.info for m in runs},
               "merged": _merged_info(merged, [m.name for m in runs]),
               "followup": {m.name: m.followup[0].to_dict("records") for m in runs if m.followup},
               "tables": write.paths, "figures": [str(p) for p in fig_paths]}
    summary["text"] = summary_text(summary)
    (out_dir / "summary.txt").write_text(summary["text"])
    (out_dir / "summary.json").write_text(json.dumps(jsonable(summary), indent=2, default=str))
    return summary


def _prepare_xray(cfg: RunConfig, write: _Writer):
    """Read and filter the X-ray catalogue; write its removed rows.  (input, kept, info)."""
    xray_in = read_input(cfg.xray)
    xray, keep, _, rem, reasons, desc = _filter(xray_in, cfg.xray.hr0_filter, "hr0_filter")
    info = {"name": cfg.xray.name, "files": [str(p) for p in cfg.xray.files],
            "n_input": len(xray_in) + len(xray_in.dropped), "n_invalid": len(xray_in.dropped),
            "n_removed_filter": int((~keep).sum()), "n_kept": len(xray),
            "filter": cfg.xray.hr0_filter, "filter_description": desc, "reasons": reasons}
    write(f"{cfg.xray.name}_removed", _stack(_invalid_rows(xray_in), rem),
          "X-ray input rows not used for matching, with the stage and reason", inputs=info["files"])
    return xray_in, xray, info


def _match(cfg, ic, xray, xray_info, base_opts, be, progress, write, pb) -> _Matched:
    """Read, filter and match one IR catalogue; write its tables."""
    from .core import OneSidedOptions, run_onesided

    pb.set_postfix_str(f"reading {ic.name}")
    ir_in = read_input(ic)
    opts = OneSidedOptions(**{**base_opts, **ic.options})
    cf = ic.colour_filter
    if cf is not None:  # the side removed: the config's, else the preset's (recorded in opts)
        cf = {**cf, "remove": cf["remove"] or opts.colour_remove}
        opts = dataclasses.replace(opts, colour_remove=cf["remove"])
    ir, keep, note, rem, reasons, desc = _filter(ir_in, cf, "colour_filter")
    pb.update(1)
    pb.set_postfix_str(f"matching {cfg.xray.name} x {ic.name}")
    res = run_onesided(xray, ir, opts, backend=be, progress=progress)
    pb.update(1)
    best = _enrich_best(res.best, xray, ir)
    w = _Writer(write.folder.parent, write.formats,
                {**write.meta, "options": opts.to_dict(), "seed": opts.seed,
                 "inputs": {cfg.xray.name: xray_info["files"], ic.name: [str(p) for p in ic.files]}})
    n = ic.name
    w(f"{n}_removed", _stack(_invalid_rows(ir_in), rem), "IR input rows not used for matching, "
                                                          "with the stage and reason")
    w(f"{n}_kept", _kept_ir(ir, note[keep], res.candidates),
      "IR rows used for matching (filter note, number of X-ray sources it is a candidate of)")
    w(f"{n}_counts", res.counts, "real vs shifted matches per Ks class (counts, excess, significance)")
    w(f"{n}_trials", pd.DataFrame(np.asarray(res.trial_counts), columns=[str(c) for c in res.counts["label"]]),
      "matches per Ks class in each shifted (null) trial, edge-corrected (one row per trial)")
    w(f"{n}_shifts", res.shifts, "offset of each null trial (arcsec) and its edge scale")
    w(f"{n}_sweep", res.sweep, "unique matched X-ray sources vs applied shift",
      sweep_real=res.meta["sweep_real"])
    w(f"{n}_candidates", res.candidates, "every candidate pair with its T and P (P_i); "
                                         "index_x / index_ir are input rows")
    w(f"{n}_best", best, "best counterpart per X-ray source (index_x = input row), with P_best, P0 "
                         "and the reason when there is none")
    w(f"{n}_thresholds", res.thresholds, "X-ray sources with best P_i above each threshold")
    w(f"{n}_f_table", res.f_table, "cumulative f(K) and rho(K)")
    w(f"{n}_classes", res.class_table, "per Ks class: f, rho and f/rho used for the weights")
    write.paths.update(w.paths)
    info = _ir_info(ic, cf, ir_in, ir, keep, reasons, desc, res, best, opts)
    return _Matched(n, ir_in, ir, keep, res, best, info)


def _follow_up(cfg: RunConfig, xray_in: Catalogue, runs: list, write: _Writer, be):
    """Candidate list and its local/global densities in each IR catalogue (None without a list)."""
    cand = _candidate_list(cfg, xray_in, runs[0].best)
    if cand is None:
        return None
    write("candidates", cand, "follow-up candidates with their nearest X-ray source")
    for m in runs:
        src = m.ir if cfg.candidates.catalogue == "filtered" else m.ir_in
        cov = coverage_of(src.ra, src.dec, per_cell=m.res.meta["options"]["coverage_per_cell"])
        fu = local_density(cand, src.ra, src.dec, cfg.candidates.radius_arcsec, coverage=cov, backend=be)
        m.followup = (fu, cov, src)
        write(f"{m.name}_followup", fu, f"local vs global density of {m.name} "
                                        f"({cfg.candidates.catalogue} rows) around the candidates")
    return cand


def _ir_info(ic, cf, ir_in, ir, keep, reasons, desc, res, best, opts) -> dict:
    counts = res.counts
    return {
        "files": [str(p) for p in ic.files], "n_input": len(ir_in) + len(ir_in.dropped),
        "n_invalid": len(ir_in.dropped), "n_removed_filter": int((~keep).sum()), "n_kept": len(ir),
        "colour_filter": cf, "filter_description": desc, "reasons": reasons,
        "sigma_ir_arcsec": opts.sigma_ir_arcsec, "options": opts.to_dict(),
        "n_real_matches": int(counts["n_real"].sum()),
        "n_random_mean": float(counts["rand_mean"].sum()),
        "excess": float(counts["excess"].sum()),
        "n_xray_with_candidates": int((best["n_candidates"] > 0).sum()), "n_xray": len(best),
        "thresholds": res.thresholds.to_dict("records"),
        "counts": counts.to_dict("records"),
        "meta": jsonable({k: v for k, v in res.meta.items() if k != "options"}),
    }


def _merged_info(merged: pd.DataFrame, names: list) -> dict:
    info = {"n": len(merged), "best_catalogue": merged["best_catalogue"].value_counts().to_dict()}
    for b in names[1:]:
        col = f"{names[0]}_{b}_same"
        if col in merged:
            both = merged[[f"{names[0]}_ra_ir", f"{b}_ra_ir"]].notna().all(axis=1)
            info[f"{names[0]}_{b}"] = {"both_have_counterpart": int(both.sum()),
                                       "same_star": int(merged[col].sum())}
    return info


# -- figures --------------------------------------------------------------------------
def _figures(cfg, out_dir, xray_in, xray, runs, cand) -> list:
    """Write every figure; returns the paths."""
    from ..plots import save_figure
    from ..plots import onesided as P

    paths = []

    def save(fig, name):
        paths.extend(save_figure(fig, out_dir / "figures" / name, cfg.output.figures, cfg.output.dpi))

    x = cfg.xray.name
    layers = [{"label": f"{m.name} (IR, kept)", "ra": m.ir.ra, "dec": m.ir.dec, "size": 0.5,
               "color": IR_COLOURS[k % len(IR_COLOURS)]} for k, m in enumerate(runs)]
    removed_x = ~np.isin(xray_in.row, xray.row)
    layers.append({"label": f"{x} (X-ray, removed)", "ra": xray_in.ra[removed_x], "dec": xray_in.dec[removed_x],
                   "size": 10, "color": "0.3", "hollow": True})
    layers.append({"label": f"{x} (X-ray, kept)", "ra": xray.ra, "dec": xray.dec, "size": 6, "color": "red"})
    save(P.figure_overlay(layers, title=f"{x} X-ray sources over "
                                        f"{' and '.join(m.name for m in runs)} infrared catalogues"), "overlay")
    for m in runs:
        meta = m.res.meta
        save(P.figure_counts(m.res.counts, title=f"{x} x {m.name}: real vs shifted matches per Ks bin",
                             n_trials=meta["n_trials"]), f"{m.name}_counts")
        save(P.figure_sweep(m.res.sweep, real_unique=meta["sweep_real"],
                            null_range=(meta["shift_r_min_arcsec"], meta["shift_r_max_arcsec"]),
                            title=f"{x} x {m.name}: unique matched X-ray sources vs shift"), f"{m.name}_sweep")
        save(P.figure_probabilities(m.best, m.res.thresholds, title=f"{x} x {m.name}: match probabilities"),
             f"{m.name}_probabilities")
        if cand is None:
            continue
        fu, cov, src = m.followup
        save(P.figure_environment(fu, src.ra, src.dec, cov, title=f"{m.name} environment of the candidates "
                                  f"({cfg.candidates.radius_arcsec / 60:g}' radius)"), f"{m.name}_environment")
        marks, notes = _zoom_marks(cand, m.best)
        save(P.figure_candidate_zooms(cand, m.ir_in.ra, m.ir_in.dec, m.ir_in.mags[meta["ks_band"]],
                                      ir_kept=m.keep, zoom_arcsec=cfg.candidates.zoom_arcsec,
                                      counterparts=marks, notes=notes,
                                      title=f"Candidates and {m.name} sources ({meta['ks_band']} colour)"),
             f"{m.name}_candidates")
    return paths


# -- text summary ------------------------------------------------------------------------
def _side_sentence(cf: dict | None) -> str:
    if cf is None:
        return "no colour filter"
    cuts = f"J-H < {cf['jh_max']:g}, J-Ks < {cf['jk_max']:g}, H-Ks < {cf['hk_max']:g}"
    if cf["remove"] == "blue":
        return (f"colour filter removed the BLUE side ({cuts}: foreground disc stars towards the "
                "Galactic Centre) -- the gpumatch default")
    return (f"colour filter removed the RED side (kept {cuts}) -- the notebook's direction, "
            "chosen with remove = \"red\"")


def summary_text(s: dict) -> str:
    """The human-readable summary written to summary.txt and printed by the CLI."""
    x = s["xray"]
    lines = [f"gpumatch {s['gpumatch_version']} one-sided cross-match  (backend {s['backend']}, "
             f"seed {s['seed']})", f"output: {s['output']}", ""]
    hr0 = x["filter"]
    lines.append(f"{x['name']}: {x['n_input']:,} input rows, {x['n_invalid']:,} invalid, "
                 f"{x['n_removed_filter']:,} removed by the HR0 window, {x['n_kept']:,} matched")
    if hr0:
        lines.append(f"  HR0 window: {hr0['lo']:g} < {hr0['column']} < {hr0['hi']:g} removed as foreground")
    lines += _reason_lines(x["reasons"])
    for name, d in s["ir"].items():
        lines += ["", f"{name}: {d['n_input']:,} input rows, {d['n_invalid']:,} invalid, "
                      f"{d['n_removed_filter']:,} removed by the colour filter, {d['n_kept']:,} matched "
                      f"(sigma_IR = {d['sigma_ir_arcsec']} arcsec)",
                  f"  {_side_sentence(d['colour_filter'])}"]
        lines += _reason_lines(d["reasons"])
        lines.append(f"  matches within the quadrature radius: {d['n_real_matches']:,} real, "
                     f"{d['n_random_mean']:.1f} expected by chance (shifted mean), excess {d['excess']:.1f}")
        lines.append(f"  {'Ks class':<16} {'real':>6}   shifted mean +- std   {'excess':>7}   signif.")
        for c in d["counts"]:
            if c["n_real"] > 0 or c["rand_mean"] > 0:
                lines.append(f"  {c['label']:<16} {c['n_real']:6d}   {c['rand_mean']:8.2f} +- "
                             f"{c['rand_std']:6.2f}   {c['excess']:7.2f}   {c['significance']:6.2f}")
        lines.append(f"  X-ray sources with >= 1 candidate: {d['n_xray_with_candidates']:,} of {d['n_xray']:,}")
        lines.append("  best P_i thresholds: " + ", ".join(
            f"P >= {t['threshold']:g}: {int(t['n']):,} ({100 * t['fraction']:.1f}%)" for t in d["thresholds"]))
    m = s["merged"]
    lines += ["", f"merged table: {m['n']:,} X-ray sources; catalogue with the highest P_best: " +
              ", ".join(f"{k or 'none'} {v:,}" for k, v in m["best_catalogue"].items())]
    for key, v in m.items():
        if isinstance(v, dict) and "same_star" in v:
            lines.append(f"  {key}: {v['both_have_counterpart']:,} sources with a counterpart in both, "
                         f"{v['same_star']:,} name the same star")
    for name, rows in s["followup"].items():
        lines += ["", f"follow-up in {name} (radius {rows[0]['radius_arcsec']:g} arcsec; densities per arcsec^2):"]
        for r in rows:
            lines.append(f"  {r['name']:<16} N={r['n_local']:<7d} covered {100 * r['area_fraction']:5.1f}%  "
                         f"local {r['local_density']:.4g}  global {r['global_density']:.4g}  "
                         f"ratio {r['ratio']:.2f} +- {r['ratio_err']:.2f}")
    lines += ["", f"tables: {len(s['tables'])} in {Path(s['output']) / 'tables'}; "
                  f"figures: {len(s['figures'])} files in {Path(s['output']) / 'figures'}", ""]
    return "\n".join(lines)


def _reason_lines(reasons: list) -> list:
    return [f"    {r['action']:<7} {r['count']:>9,}  {r['reason']}" for r in reasons]


# -- demo inputs ------------------------------------------------------------------------
def write_demo_inputs(folder, seed: int = 7, n_tiles: int = 7, **field) -> dict:
    """Write a simulated field in the layout ``examples/onesided.toml`` reads.

    ``xray.csv`` (Muno-like: CXOGC, RAJ2000, DEJ2000 deg, ePos arcsec, HR0, Xmag),
    ``ir_tile1..n.tsv`` (GALACTICNUCLEUS-like VizieR TSV: J, H, Ks mag), ``vvv.csv``
    (VVV-like: srcid, RAJ2000, DEJ2000, Jmag3, Hmag3, Ksmag3; the same stars
    re-observed with 0.08 arcsec errors, 0.05 mag scatter, Ks <= 16.5 only),
    ``candidates.csv`` (name, ra, dec deg, r0, r1 arcsec, angle deg: five X-ray
    sources with true counterparts, one at the field edge) and ``truth.csv``.
    ``field`` overrides :class:`gpumatch.simulate.FieldSpec` parameters (default
    :data:`DEMO_FIELD`: 0.25 x 0.25 deg, 800 X-ray sources, ~40,000 IR sources).
    """
    from ..simulate import simulate_field

    folder = Path(folder)
    sim = simulate_field(seed=seed, **{**DEMO_FIELD, **field})
    paths = sim.write(folder, n_tiles=n_tiles)
    rng = np.random.default_rng(seed + 1000)
    b = sim.b
    n = len(b)
    e = rng.normal(0, 0.08, (2, n)) / 3600.0
    ks = b.mags["Ks"] + rng.normal(0, 0.05, n)
    keep = ks <= 16.5
    vvv = pd.DataFrame({"srcid": 515530000000 + np.arange(n), "RAJ2000": b.ra + e[0] / np.cos(np.radians(b.dec)),
                        "DEJ2000": b.dec + e[1], "Jmag3": b.mags["J"] + rng.normal(0, 0.05, n),
                        "Hmag3": b.mags["H"] + rng.normal(0, 0.05, n), "Ksmag3": ks})[keep]
    vvv.round({"RAJ2000": 7, "DEJ2000": 7, "Jmag3": 3, "Hmag3": 3, "Ksmag3": 3}).to_csv(
        folder / "vvv.csv", index=False, na_rep="")
    paths["vvv"] = folder / "vvv.csv"
    a = sim.a
    sig = a.sigma_arcsec
    with_cp = np.flatnonzero(sim.truth >= 0)
    pick = list(with_cp[np.argsort(sig[with_cp])][:4])
    x_off = np.abs(a.ra - np.median(a.ra)) * np.cos(np.radians(a.dec))
    pick.append(int(np.argmax(np.where(sim.truth >= 0, x_off, -1))))  # at the field edge
    pick = np.array(pick)
    cand = pd.DataFrame({"name": [f"HMXB_cand{k + 1}" for k in range(len(pick))],
                         "ra": a.ra[pick].round(7), "dec": a.dec[pick].round(7),
                         "r0": (1.6 * sig[pick]).round(3), "r1": (1.1 * sig[pick]).round(3),
                         "angle": rng.uniform(0, 180, len(pick)).round(1)})
    cand.to_csv(folder / "candidates.csv", index=False)
    paths["candidates"] = folder / "candidates.csv"
    return paths


def announce_demo_inputs(folder) -> int:
    """CLI helper for ``--demo-data DIR``: write the demo inputs and list them; exit status 0."""
    paths = write_demo_inputs(folder)
    names = sorted({getattr(p, "name", str(p)) for v in paths.values() for p in (v if isinstance(v, list) else [v])})
    print(f"demo inputs written to {folder}: {', '.join(names)}")
    return 0
