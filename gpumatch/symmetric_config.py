"""The TOML file of a symmetric match run (``gpumatch match CONFIG.toml``) and the run itself.

Layout (``examples/match.toml`` is a complete, commented example)::

    backend = "auto"                     # optional: auto | numpy | cupy

    [[catalogue]]                        # two or more; names must be unique
    name = "xray"
    files = ["data/xray.csv"]            # paths or glob patterns, relative to this file
    band = "Xmag"                        # the magnitude used for photometry (a columns.mags band)
    position_error_arcsec = 0.3          # constant 1-sigma error when there is no error column
    perturbation = false                 # add the contaminant perturbation term to the AUF
    psf_fwhm_arcsec = 0.8                # PSF FWHM (needed with perturbation)
    [catalogue.perturbation_options]     # PerturbationModel.from_catalogue extras (n_real, ...)
    [catalogue.columns]                  # gpumatch.io.ColumnMap fields; mags = {band = column}
    [catalogue.hr0_filter]               # optional selection rules (gpumatch.filters); removed
    [catalogue.colour_filter]            #   rows are reported with reason 'filtered'

    [match]                              # MatchOptions and the catalogues to use
    catalogues = ["xray", "GN"]          # which [[catalogue]] blocks, 2 = one match, 3+ = sequential
    order = "precision"                  # precision | given (sequential matching order)
    threshold = 0.5  accept_by = "hypothesis"  use_photometry = true  ...
    [match.photometry]                   # estimate_photometry extras

    [output]                             # folder, tables = ["csv", "parquet"], figures = ["png", "pdf"]

Problems are reported as :class:`~gpumatch.onesided.config.ConfigError` naming the key
(``catalogue[1].band``) and the file.  Relative paths resolve against the config's folder.
:func:`run_from_config` reads the inputs, runs :func:`gpumatch.symmetric.match_catalogues` or
:func:`~gpumatch.symmetric.match_sequence`, and writes tables, figures and the summary.
"""
from __future__ import annotations

import datetime as _dt
import inspect
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .onesided.config import (BACKENDS, ConfigError, OutputConfig, _catalogue, _choice, _colour, _hr0, _output,
                              _Table, read_toml_config)
from .symmetric import MatchOptions, SideOptions

ORDERS = ("precision", "given")
DEFAULT_FOLDER = "match-output"


@dataclass
class MatchCatalogueConfig:
    """One input catalogue: files, ColumnMap fields, bands, error fallback, filters, side options."""

    name: str
    files: list
    columns: dict
    bands: dict
    side: SideOptions
    fmt: str | None = None
    on_bad_rows: str = "raise"
    position_error_arcsec: float | None = None
    hr0_filter: dict | None = None
    colour_filter: dict | None = None


MatchOutputConfig = OutputConfig  # same [output] table as the one-sided config


@dataclass
class MatchRunConfig:
    catalogues: dict                  # name -> MatchCatalogueConfig, in file order
    use: list                         # names to match, in the order given
    order: str                        # 'precision' or 'given'
    options: MatchOptions             # pair-level options (a/b are set per match)
    output: MatchOutputConfig
    backend: str | None = None
    progress: bool | None = None
    source: str = "<dict>"
    base: Path = Path(".")
    raw: dict = field(default_factory=dict)


def _known_kwargs(func, exclude=()) -> set:
    return {n for n, p in inspect.signature(func).parameters.items()
            if p.kind == p.KEYWORD_ONLY or (p.default is not p.empty)} - set(exclude)


def _passthrough(t: _Table | None, known: set, what: str) -> dict:
    if t is None:
        return {}
    for key in t.data:
        t.used.add(key)
        if key not in known:
            raise t.err(key, f"is not a {what} option (known: {', '.join(sorted(known))})")
    return dict(t.data)


def _positive(t: _Table, name, value):
    if value is not None and not value > 0:
        raise t.err(name, f"must be positive, got {value}")
    return value


def _catalogue_config(t: _Table, base: Path, check: bool) -> MatchCatalogueConfig:
    from .auf import PerturbationModel

    cat = _catalogue(t, base, check)
    band = t.get("band", str)
    if band is not None and band not in cat["bands"]:
        raise t.err("band", f"{band!r} is not among the catalogue's bands "
                            f"({', '.join(cat['bands']) or 'none: set columns.mags'})")
    pert = t.get("perturbation", bool, False)
    psf = _positive(t, "psf_fwhm_arcsec", t.get("psf_fwhm_arcsec", float))
    known = (_known_kwargs(PerturbationModel.from_catalogue) | _known_kwargs(PerturbationModel.build)) - \
        {"backend", "psf_fwhm_arcsec", "counts", "mag_err"}
    popts = _passthrough(t.sub("perturbation_options"), known, "perturbation")
    if pert and psf is None:
        raise t.err("psf_fwhm_arcsec", "is required with perturbation = true (PSF FWHM in arcsec)")
    if pert and band is None:
        raise t.err("band", "is required with perturbation = true (the magnitude of the perturbation model)")
    sigma = _positive(t, "position_error_arcsec", t.get("position_error_arcsec", float))
    has_err = any(k in cat["columns"] for k in ("err", "err_ra", "err_a"))
    if sigma is not None and has_err:
        raise t.err("position_error_arcsec", "give either error columns or a constant error, not both")
    if sigma is None and not has_err:
        raise t.err("columns", "the symmetric match needs position errors: set columns.err (or err_ra + "
                               "err_dec, or err_a + err_b + err_pa) or position_error_arcsec")
    hr0 = _hr0(t, cat)
    colour = _colour(t, cat["bands"])
    if colour is not None and colour["remove"] is None:
        colour["remove"] = "blue"
    t.done()
    side = SideOptions(band=band, perturbation=pert, psf_fwhm_arcsec=psf, perturbation_kwargs=popts)
    return MatchCatalogueConfig(name=cat["name"], files=cat["files"], columns=cat["columns"],
                                bands=cat["bands"], side=side, fmt=cat["fmt"], on_bad_rows=cat["on_bad_rows"],
                                position_error_arcsec=sigma, hr0_filter=hr0, colour_filter=colour)


def _match_table(t: _Table | None, names: list):
    from .photometry import estimate_photometry

    t = t or _Table({}, "match", "")
    use = t.get("catalogues", list, names[:2] if len(names) == 2 else None)
    if use is None:
        raise t.err("catalogues", f"is required when more than two catalogues are defined ({names})")
    bad = [u for u in use if u not in names]
    if bad:
        raise t.err("catalogues", f"{bad[0]!r} is not a [[catalogue]] name ({', '.join(names)})")
    if len(use) < 2 or len(set(use)) != len(use):
        raise t.err("catalogues", f"must list at least two different catalogues, got {use}")
    order = _choice(t, "order", ORDERS, "precision")
    cov = t.get("coverage", list)
    if cov is not None:
        if len(cov) != 4 or not all(isinstance(v, (int, float)) for v in cov):
            raise t.err("coverage", "must be [ra_min, ra_max, dec_min, dec_max] in degrees")
        cov = tuple(float(v) for v in cov)
    known_phot = _known_kwargs(estimate_photometry, exclude=("band_a", "band_b", "use_photometry", "backend"))
    opts = MatchOptions(
        use_photometry=t.get("use_photometry", bool, True),
        y_cut=t.get("y_cut", float, 0.997),
        max_sep_arcsec=_positive(t, "max_sep_arcsec", t.get("max_sep_arcsec", float)),
        coverage=cov,
        photometry=_passthrough(t.sub("photometry"), known_phot, "photometry"),
        max_small_side=t.get("max_small_side", int, 20),
        threshold=t.get("threshold", float),
        accept_by=_choice(t, "accept_by", ("hypothesis", "pair"), "hypothesis"),
        reject_edge=t.get("reject_edge", bool, False),
        include_approximate=t.get("include_approximate", bool, True),
        seed=t.get("seed", int, 0))
    t.done()
    try:
        opts.check()
        if cov is not None:
            opts.resolved_coverage()
    except ValueError as exc:
        msg = str(exc)
        key = next((k for k in ("threshold", "y_cut", "max_sep_arcsec", "coverage", "Dec", "RA")
                    if k in msg), "")
        raise t.err({"Dec": "coverage", "RA": "coverage"}.get(key, key), msg) from None
    return use, order, opts


def parse_match_config(data: dict, base=".", source: str = "<dict>", check_files: bool = True) -> MatchRunConfig:
    """Validate a config mapping (as read from TOML) into a :class:`MatchRunConfig`."""
    base = Path(base)
    top = _Table(data, "", source)
    backend = _choice(top, "backend", BACKENDS, None)
    progress = top.get("progress", bool)
    raw = top.get("catalogue", list, required=True)
    cats = {}
    for i, item in enumerate(raw):
        c = _catalogue_config(_Table(item, f"catalogue[{i}]", source), base, check_files)
        if c.name in cats:
            raise ConfigError(f"catalogue[{i}].name", f"{c.name!r} is used twice (names must be unique)",
                              source)
        cats[c.name] = c
    if len(cats) < 2:
        raise ConfigError("catalogue", "needs at least two [[catalogue]] blocks", source)
    use, order, opts = _match_table(top.sub("match"), list(cats))
    out = _output(top.sub("output"), base, DEFAULT_FOLDER)
    top.done()
    return MatchRunConfig(catalogues=cats, use=use, order=order, options=opts, output=out, backend=backend,
                          progress=progress, source=source, base=base, raw=data)


def load_match_config(path_or_dict, check_files: bool = True) -> MatchRunConfig:
    """Read and validate a config: a TOML path, a mapping, or a :class:`MatchRunConfig`."""
    return read_toml_config(path_or_dict, parse_match_config, MatchRunConfig, check_files)


# -- reading the inputs ------------------------------------------------------------------------
def read_configured(cc: MatchCatalogueConfig):
    """Read one configured catalogue: bands renamed from columns, the constant position error
    applied, the configured filters applied (removed rows kept in ``dropped``)."""
    from .catalogue import cov_circular
    from .filters import colour_foreground, hr0_foreground
    from .io import ColumnMap, read_catalogue
    from .symmetric import apply_filter

    cat = read_catalogue([str(p) for p in cc.files], columns=ColumnMap(**cc.columns), name=cc.name,
                         on_bad_rows=cc.on_bad_rows, fmt=cc.fmt)
    if cc.bands:
        cat.mags = {band: cat.mags[col] for band, col in cc.bands.items()}
    if cc.position_error_arcsec is not None:
        cat.cov = cov_circular(np.full(len(cat), cc.position_error_arcsec))
    notes = []
    if cc.hr0_filter is not None:
        fr = hr0_foreground(cat, **cc.hr0_filter)
        cat = apply_filter(cat, fr)
        notes.append(fr.describe())
    if cc.colour_filter is not None:
        fr = colour_foreground(cat, **cc.colour_filter)
        cat = apply_filter(cat, fr)
        notes.append(fr.describe())
    cat.meta["filter_notes"] = notes
    return cat


# -- the run ------------------------------------------------------------------------------------
class _Writer:
    """Writes each table in every configured format; remembers the paths."""

    def __init__(self, folder: Path, formats, meta: dict):
        self.folder, self.formats, self.meta, self.paths = folder / "tables", formats, meta, {}

    def __call__(self, name: str, df: pd.DataFrame, description: str, **extra):
        from .io import write_table

        self.folder.mkdir(parents=True, exist_ok=True)
        meta = {**self.meta, "table": name, "description": description, **extra}
        self.paths[name] = [str(write_table(df, self.folder / f"{name}.{fmt}", meta=meta, fmt=fmt,
                                            overwrite=True)) for fmt in self.formats]


def _write_result(write: _Writer, res, prefix: str, extra_meta: dict):
    a, b = res.names
    write(f"{prefix}matches", res.matches,
          f"accepted {a}-{b} counterparts: index_a/index_b are input rows (0-based, files concatenated "
          "in order), sep in arcsec, p_match the pair's match probability, p_hypothesis that of its "
          "island's most probable hypothesis, eta/xi log10 likelihood ratios", **extra_meta)
    for s, nm in (("a", a), ("b", b)):
        write(f"{prefix}nonmatches_{nm}", res.nonmatches[s],
              f"{nm} sources without an accepted counterpart: index = input row, p_no_match, reason",
              **extra_meta)
    write(f"{prefix}pairs", res.pairs, f"every {a}-{b} candidate pair inside R_{res.options.y_cut:g}: "
                                       "eta, xi, ln r, p_match, in_best, accepted", **extra_meta)


def run_from_config(config, backend=None, out=None, threshold: float | None = None, figures: bool = True,
                    progress: bool | None = None, catalogues=None, order=None) -> dict:
    """Run the match a config describes; returns the summary dict (also written as JSON and text).

    ``backend``, ``out`` (output folder), ``threshold`` (acceptance probability),
    ``catalogues`` (names to use) and ``order`` ('precision' | 'given') override the config;
    ``figures=False`` skips the figures; ``progress`` forces progress bars on/off.
    """
    import dataclasses

    from . import __version__
    from .backend import get_backend
    from .progress import bar
    from .symmetric import STAGES, match_catalogues, match_sequence

    cfg = load_match_config(config)
    opts = cfg.options
    if threshold is not None:
        opts = dataclasses.replace(opts, threshold=float(threshold))
        opts.check()
    use = list(catalogues) if catalogues is not None else cfg.use
    for n in use:
        if n not in cfg.catalogues:
            raise ValueError(f"catalogue {n!r} is not defined in {cfg.source} ({', '.join(cfg.catalogues)})")
    if len(use) < 2 or len(set(use)) != len(use):
        raise ValueError(f"need at least two different catalogues, got {use}")
    order = order or cfg.order
    if order not in ORDERS:
        raise ValueError(f"order must be one of {', '.join(ORDERS)}, got {order!r}")
    out_dir = Path(out) if out is not None else cfg.output.folder
    out_dir.mkdir(parents=True, exist_ok=True)
    be = get_backend(backend or cfg.backend)
    progress = cfg.progress if progress is None else progress
    started = _dt.datetime.now(_dt.timezone.utc)
    n_steps = len(use) - 1
    with bar(total=len(use) + n_steps * len(STAGES) + 1, desc="match", unit="stage", enabled=progress) as pb:
        cats, inputs = [], {}
        for n in use:
            pb.set_postfix_str(f"reading {n}")
            cats.append(read_configured(cfg.catalogues[n]))
            inputs[n] = [str(p) for p in cfg.catalogues[n].files]
            pb.update(1)

        def report(stage, i, n):
            pb.set_postfix_str(stage)
            pb.update(1)

        sides = [cfg.catalogues[n].side for n in use]
        meta = {"gpumatch_version": __version__, "command": "match", "backend": be.describe(),
                "config": cfg.source, "created_utc": started.isoformat(timespec="seconds"),
                "inputs": inputs, "options": opts.to_dict(), "seed": opts.seed,
                "sides": {n: dataclasses.asdict(s) for n, s in zip(use, sides)}}
        write = _Writer(out_dir, cfg.output.tables, meta)
        results = []
        if len(cats) == 2:
            r = match_catalogues(cats[0], cats[1], dataclasses.replace(opts, a=sides[0], b=sides[1]),
                                 backend=be, progress=report)
            _write_result(write, r, "", {})
            results.append(("", r))
            summary_core = {"match": r.summary}
        else:
            seq = match_sequence(cats, opts, sides=sides, order=order, backend=be, progress=report)
            for k, (l_, r_, r) in enumerate(seq.steps, start=1):
                _write_result(write, r, f"step{k}_", {"step": k, "left": l_, "right": r_})
                results.append((f"step{k}_", r))
            write("final", seq.final, "one row per final object: row_<catalogue> / id_<catalogue> per input "
                                      "catalogue (-1 / empty where absent), eq-40 merged position, and per "
                                      "step the match probability or the reason it was not matched",
                  order=seq.order)
            summary_core = {"sequence": seq.summary,
                            "steps": [{"left": l_, "right": r_, **r.summary} for l_, r_, r in seq.steps]}
        fig_paths = []
        if figures and cfg.output.figures:
            pb.set_postfix_str("figures")
            fig_paths = _figures(results, out_dir / "figures", cfg.output.figures, cfg.output.dpi)
        pb.update(1)
    summary = {"output": str(out_dir), "config": cfg.source, "backend": be.describe(),
               "gpumatch_version": __version__, "created_utc": meta["created_utc"], "catalogues": use,
               "order": order, "seed": opts.seed, "threshold": opts.threshold, "accept_by": opts.accept_by,
               "inputs": {n: {"files": inputs[n], "n_rows": int(len(c) + len(c.dropped)),
                              "n_used": int(len(c)), "n_dropped": int(len(c.dropped)),
                              "filters": c.meta.get("filter_notes", [])} for n, c in zip(use, cats)},
               **summary_core, "tables": write.paths, "figures": [str(p) for p in fig_paths]}
    summary["text"] = summary_text(summary)
    (out_dir / "summary.txt").write_text(summary["text"])
    from .io import jsonable

    (out_dir / "summary.json").write_text(json.dumps(jsonable(summary), indent=2, default=str))
    return summary


def _figures(results, folder: Path, formats, dpi) -> list:
    from .plots import save_figure
    from .plots.symmetric import all_figures

    paths = []
    for prefix, r in results:
        for name, fig in all_figures(r, prefix=prefix).items():
            paths += save_figure(fig, folder / name, formats=formats, dpi=dpi)
    return paths


def _match_lines(s: dict, indent: str = "") -> list:
    d = s["densities_per_arcsec2"]
    lines = [f"{indent}{s['n_matches']:,} matches accepted (expected true: {s['expected_true_matches']:.1f}, "
             f"expected false: {s['expected_false_matches']:.1f})",
             f"{indent}densities per arcsec^2: N_c = {d['N_c']:.4g}" +
             (f" +- {d['N_c_sd']:.2g}" if d.get("N_c_sd") is not None else "") +
             f", N_a = {d['N_a']:.4g}, N_b = {d['N_b']:.4g} (area {s['area_deg2']:.4g} deg^2)",
             f"{indent}islands: {s['islands']['n_islands']:,} ({s['islands']['n_pairs']:,} candidate pairs; "
             f"largest {s['islands']['max_n_a']} x {s['islands']['max_n_b']}; "
             + ", ".join(f"{k} {v:,}" for k, v in s["islands"]["status"].items() if v) + ")"]
    for side in ("a", "b"):
        c = s["catalogues"][side]
        reasons = ", ".join(f"{k}: {v:,}" for k, v in c["nonmatch_reasons"].items())
        lines.append(f"{indent}{c['name']}: {c['n_input']:,} input rows, {c['n_matched']:,} matched, "
                     f"{c['n_nonmatched']:,} not ({reasons})")
    t = s["timing_s"]
    lines.append(f"{indent}time: {t['total']:.2f} s (" + ", ".join(f"{k} {v:.2f}" for k, v in t.items()
                                                              if k != "total") + ")")
    return lines


def summary_text(s: dict) -> str:
    """Human-readable summary of :func:`run_from_config`'s summary dict."""
    lines = [f"gpumatch {s['gpumatch_version']} symmetric match ({s['backend']}), config {s['config']}",
             f"catalogues: {', '.join(s['catalogues'])}; acceptance: " +
             ("most probable hypothesis of each island" if s["threshold"] is None else
              f"{s['accept_by']} probability {'>' if s['accept_by'] == 'hypothesis' else '>='} "
              f"{s['threshold']:g}")]
    for n, i in s["inputs"].items():
        lines.append(f"  {n}: {i['n_rows']:,} rows read, {i['n_used']:,} used, {i['n_dropped']:,} dropped"
                     + ("".join(f"; {f}" for f in i["filters"])))
    if "match" in s:
        lines += _match_lines(s["match"], "  ")
    else:
        lines.append(f"sequential order ({s['order']}): {' -> '.join(s['sequence']['order'])}")
        for k, st in enumerate(s["steps"], start=1):
            lines.append(f"step {k}: {st['left']} x {st['right']}")
            lines += _match_lines(st, "  ")
        q = s["sequence"]
        lines.append(f"final table: {q['n_final']:,} rows; objects by catalogues: " + ", ".join(
            f"{k} {v:,}" for k, v in q["by_catalogues"].items()) + (
            "; rows dropped before matching: " + ", ".join(f"{k} {v:,}" for k, v in q["n_dropped"].items())
            if q["n_dropped"] else ""))
    lines.append(f"output: {s['output']}")
    return "\n".join(lines) + "\n"
