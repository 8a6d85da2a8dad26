"""The TOML file that describes one whole one-sided run (``gpumatch onesided CONFIG.toml``).

Layout (abbreviated; ``examples/onesided.toml`` is a complete, commented example)::

    backend = "auto"                 # optional: auto | numpy | cupy

    [xray]                           # the sparse catalogue (one)
    name = "muno"
    files = ["data/xray.csv"]        # paths or glob patterns, relative to this file
    [xray.columns]                   # gpumatch.io.ColumnMap fields
    ra = "RAJ2000"
    dec = "DEJ2000"
    err = "ePos"
    [xray.hr0_filter]                # optional foreground window on a hardness ratio
    lo = -1.0
    hi = -0.175

    [[ir]]                           # one or more dense catalogues
    name = "GN"
    files = ["data/ir_tile*.tsv"]
    sigma_ir_arcsec = 0.1
    [ir.columns]
    mags = { J = "Jmag", H = "Hmag", Ks = "Ksmag" }   # band name = column
    [ir.colour_filter]
    remove = "blue"                  # blue = foreground (default) | red = the notebook's side
                                     # (unset: the [onesided] preset's side)

    [onesided]                       # OneSidedOptions fields (preset, n_trials, seed, ...)
    [candidates]                     # follow-up list: file = "...", or list = [{...}], or top = N
    [output]                         # folder, figures = ["png", "pdf"], tables = ["csv", "parquet"]

Every problem is reported as :class:`ConfigError` naming the key (``ir[1].columns.mags``)
and, for a file, the file.  Relative paths resolve against the config file's folder.
"""
from __future__ import annotations

import dataclasses
import glob
import re
from dataclasses import dataclass, field
from pathlib import Path

try:
    import tomllib
except ImportError:  # Python < 3.11
    import tomli as tomllib

import pandas as pd

BACKENDS = ("auto", "numpy", "cupy")
FIGURE_FORMATS = ("png", "pdf", "svg")
TABLE_FORMATS = ("csv", "parquet", "fits")
NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


class ConfigError(ValueError):
    """A config problem; the message starts with the offending key."""

    def __init__(self, key: str, problem: str, source: str | None = None):
        self.key, self.problem, self.source = key, problem, source
        where = f"{source}: " if source else ""
        super().__init__(f"{where}{key}: {problem}")


@dataclass
class CatalogueConfig:
    """One input catalogue: files, ColumnMap fields, band names and reading options."""

    name: str
    files: list                      # resolved Paths, in the order given (globs sorted)
    columns: dict                    # ColumnMap keyword arguments (mags as a tuple of columns)
    bands: dict                      # band name -> input column (magnitudes, mag)
    fmt: str | None = None
    on_bad_rows: str = "raise"


@dataclass
class XrayConfig(CatalogueConfig):
    hr0_filter: dict | None = None   # {'column', 'lo', 'hi'} or None when disabled


@dataclass
class IRConfig(CatalogueConfig):
    colour_filter: dict | None = None  # colour_foreground keyword arguments or None; remove=None
                                       # means the one-sided preset's side (default blue, notebook red)
    options: dict = field(default_factory=dict)  # OneSidedOptions overrides for this catalogue


@dataclass
class CandidatesConfig:
    table: pd.DataFrame | None = None  # validated list (read_candidates) or None
    top: int = 0                       # else: the N X-ray sources with the highest P_best
    radius_arcsec: float = 180.0       # follow-up density radius
    zoom_arcsec: float = 6.0           # half-width of the candidate zoom panels
    catalogue: str = "filtered"        # density from the 'filtered' or the 'input' IR rows


@dataclass
class OutputConfig:
    folder: Path
    figures: tuple = ("png", "pdf")    # empty: no figures
    tables: tuple = ("csv", "parquet")
    dpi: int = 150


@dataclass
class RunConfig:
    xray: XrayConfig
    ir: list
    onesided: dict
    candidates: CandidatesConfig
    output: OutputConfig
    backend: str | None = None
    progress: bool | None = None
    source: str = "<dict>"
    base: Path = Path(".")
    raw: dict = field(default_factory=dict)


# -- small checked accessors -------------------------------------------------------
class _Table:
    """A TOML table being validated: typed getters; leftover keys are errors."""

    def __init__(self, data, key: str, source: str):
        if not isinstance(data, dict):
            raise ConfigError(key, f"must be a table, got {type(data).__name__}", source)
        self.data, self.key, self.source, self.used = data, key, source, set()

    def k(self, name):
        if not name:
            return self.key
        return f"{self.key}.{name}" if self.key else name

    def err(self, name, problem):
        return ConfigError(self.k(name), problem, self.source)

    def get(self, name, types, default=None, required=False):
        self.used.add(name)
        if name not in self.data:
            if required:
                raise self.err(name, "is required")
            return default
        v = self.data[name]
        if types is float and isinstance(v, int) and not isinstance(v, bool):
            v = float(v)
        if types is not None and (not isinstance(v, types) or (isinstance(v, bool) and types in (int, float))):
            tn = types.__name__ if isinstance(types, type) else " or ".join(t.__name__ for t in types)
            raise self.err(name, f"must be {tn}, got {v!r}")
        return v

    def sub(self, name, required=False):
        self.used.add(name)
        if name not in self.data:
            if required:
                raise self.err(name, "is required")
            return None
        return _Table(self.data[name], self.k(name), self.source)

    def done(self):
        extra = sorted(set(self.data) - self.used)
        if extra:
            raise self.err(extra[0], f"unknown key (known here: {', '.join(sorted(self.used))})")


def _choice(t: _Table, name, choices, default):
    v = t.get(name, str, default)
    if v is not None and v not in choices:
        raise t.err(name, f"must be one of {', '.join(map(repr, choices))}, got {v!r}")
    return v


def _name(t: _Table, default=None):
    v = t.get("name", str, default, required=default is None)
    if not NAME_RE.match(v):
        raise t.err("name", f"{v!r} must start with a letter and hold only letters, digits and '_' "
                            "(it prefixes output columns and names output files)")
    return v


def _files(t: _Table, base: Path, check: bool):
    raw = t.get("files", (list, str), required=True)
    items = [raw] if isinstance(raw, str) else raw
    if not items:
        raise t.err("files", "lists no file")
    out = []
    for i, item in enumerate(items):
        if not isinstance(item, str):
            raise t.err(f"files[{i}]", f"must be a path string, got {item!r}")
        p = Path(item).expanduser()
        p = p if p.is_absolute() else base / p
        if glob.has_magic(str(p)):
            hits = sorted(Path(h) for h in glob.glob(str(p)))
            if check and not hits:
                raise t.err(f"files[{i}]", f"pattern {item!r} matches no file (looked in {p.parent})")
            out.extend(hits)
        else:
            if check and not p.is_file():
                raise t.err(f"files[{i}]", f"no such file: {p}")
            out.append(p)
    return out


def _column_map_fields() -> set:
    from ..io import ColumnMap

    return {f.name for f in dataclasses.fields(ColumnMap)}


def _columns(t: _Table):
    """ColumnMap keyword arguments and the band -> column mapping."""
    c = t.sub("columns")
    if c is None:
        return {}, {}
    known = _column_map_fields()
    kwargs, bands = {}, {}
    for key, value in c.data.items():
        c.used.add(key)
        if key not in known:
            raise c.err(key, f"is not a column role (known: {', '.join(sorted(known))})")
        if key == "mags":
            if isinstance(value, dict):
                bands = {str(b): v for b, v in value.items()}
            elif isinstance(value, list):
                bands = {v: v for v in value}
            else:
                raise c.err(key, "must be a list of columns or a table {band = column}")
            bad = [v for v in bands.values() if not isinstance(v, str)]
            if bad:
                raise c.err(key, f"column names must be strings, got {bad[0]!r}")
            kwargs["mags"] = tuple(bands.values())
        elif key in ("keep", "missing"):
            if not isinstance(value, list):
                raise c.err(key, f"must be a list, got {value!r}")
            kwargs[key] = tuple(value)
        else:
            if not isinstance(value, str):
                raise c.err(key, f"must be a column name (string), got {value!r}")
            kwargs[key] = value
    try:
        from ..io import ColumnMap

        ColumnMap(**kwargs)
    except (TypeError, ValueError) as exc:
        raise c.err("", str(exc)) from None
    return kwargs, bands


def _catalogue(t: _Table, base: Path, check: bool, default_name=None) -> dict:
    cols, bands = _columns(t)
    return dict(name=_name(t, default_name), files=_files(t, base, check), columns=cols, bands=bands,
                fmt=t.get("format", str), on_bad_rows=_choice(t, "on_bad_rows", ("raise", "drop"), "raise"))


def _hr0(t: _Table, cat: dict):
    h = t.sub("hr0_filter")
    if h is None:
        return None
    enabled = h.get("enabled", bool, True)
    out = dict(column=h.get("column", str, "HR0"), lo=h.get("lo", float, -1.0), hi=h.get("hi", float, -0.175))
    h.done()
    if out["lo"] >= out["hi"]:
        raise h.err("lo", f"must be below hi ({out['lo']} >= {out['hi']})")
    if not enabled:
        return None
    keep = tuple(cat["columns"].get("keep", ()))
    if out["column"] not in keep:
        cat["columns"]["keep"] = keep + (out["column"],)
    return out


def _colour(t: _Table, bands: dict):
    c = t.sub("colour_filter")
    if c is None:
        return None
    enabled = c.get("enabled", bool, True)
    out = dict(remove=_choice(c, "remove", ("blue", "red"), None),
               jh_max=c.get("jh_max", float, 2.35), jk_max=c.get("jk_max", float, 3.0),
               hk_max=c.get("hk_max", float, 1.1),
               j=c.get("j", str, "J"), h=c.get("h", str, "H"), k=c.get("k", str, "Ks"))
    c.done()
    for role in ("j", "h", "k"):
        if enabled and out[role] not in bands:
            raise c.err(role, f"band {out[role]!r} is not among the catalogue's bands "
                              f"({', '.join(bands) or 'none: set columns.mags'})")
    return out if enabled else None


_ANNOTATION_TYPES = {"int": (int,), "float": (int, float), "str": (str,), "bool": (bool,),
                     "tuple": (list, tuple)}


def _options(t: _Table | None) -> dict:
    """OneSidedOptions keyword arguments from a [onesided] table (names checked here)."""
    from .core import OneSidedOptions

    if t is None:
        return {}
    known = {f.name: f.type for f in dataclasses.fields(OneSidedOptions) if not f.name.startswith("_")}
    for key, value in t.data.items():
        t.used.add(key)
        if key not in known:
            raise t.err(key, f"is not a one-sided option (known: {', '.join(sorted(known))})")
        want = _ANNOTATION_TYPES.get(str(known[key]).replace(" | None", "").strip())
        if want is not None and (not isinstance(value, want) or
                                 (isinstance(value, bool) and bool not in want)):
            raise t.err(key, f"must be {str(known[key]).replace(' | None', '')}, got {value!r}")
    return dict(t.data)


def _check_options(common: dict, own: dict, i: int, source: str):
    """Build the OneSidedOptions an IR catalogue will run with; its errors name the key."""
    from .core import OneSidedOptions

    try:
        OneSidedOptions(**{**common, **own})
    except (TypeError, ValueError) as exc:
        msg = str(exc)
        bad = [k for k in own if k in msg]
        key = f"ir[{i}].onesided.{bad[0]}" if bad else \
            next((f"onesided.{k}" for k in common if k in msg), "onesided")
        raise ConfigError(key, msg, source) from None


def _candidates(t: _Table | None, base: Path, check: bool) -> CandidatesConfig:
    from .followup import read_candidates

    if t is None:
        return CandidatesConfig()
    out = CandidatesConfig(top=t.get("top", int, 0),
                           radius_arcsec=t.get("radius_arcsec", float, 180.0),
                           zoom_arcsec=t.get("zoom_arcsec", float, 6.0),
                           catalogue=_choice(t, "catalogue", ("filtered", "input"), "filtered"))
    fname = t.get("file", str)
    inline = t.get("list", list)
    t.done()
    if fname is not None and inline is not None:
        raise t.err("list", "give either candidates.file or candidates.list, not both")
    if out.radius_arcsec <= 0:
        raise t.err("radius_arcsec", "must be positive")
    if out.zoom_arcsec <= 0:
        raise t.err("zoom_arcsec", "must be positive")
    if out.top < 0:
        raise t.err("top", "must be >= 0")
    try:
        if fname is not None:
            p = Path(fname).expanduser()
            p = p if p.is_absolute() else base / p
            if check and not p.is_file():
                raise t.err("file", f"no such file: {p}")
            out.table = read_candidates(p) if p.is_file() else None
        elif inline is not None:
            out.table = read_candidates(inline)
    except ValueError as exc:
        if isinstance(exc, ConfigError):
            raise
        raise t.err("file" if fname else "list", str(exc)) from None
    return out


def _output(t: _Table | None, base: Path, default_folder: str = "onesided-output") -> OutputConfig:
    """The [output] table (folder relative to the config's folder; figure and table formats; dpi)."""
    t = t or _Table({}, "output", "")
    folder = Path(t.get("folder", str, default_folder)).expanduser()
    figs = t.get("figures", list, ["png", "pdf"])
    tables = t.get("tables", list, ["csv", "parquet"])
    dpi = t.get("dpi", int, 150)
    t.done()
    for name, vals, allowed in (("figures", figs, FIGURE_FORMATS), ("tables", tables, TABLE_FORMATS)):
        bad = [v for v in vals if v not in allowed]
        if bad:
            raise t.err(name, f"{bad[0]!r} is not one of {', '.join(allowed)}")
    if not tables:
        raise t.err("tables", "must name at least one table format")
    return OutputConfig(folder if folder.is_absolute() else base / folder, tuple(figs), tuple(tables), dpi)


def parse_config(data: dict, base=".", source: str = "<dict>", check_files: bool = True) -> RunConfig:
    """Validate a config mapping (as read from TOML) into a :class:`RunConfig`.

    ``base``: folder that relative paths resolve against; ``check_files``: require
    that every listed catalogue file exists.
    """
    base = Path(base)
    top = _Table(data, "", source)
    backend = _choice(top, "backend", BACKENDS, None)
    progress = top.get("progress", bool)
    xt = top.sub("xray", required=True)
    xcat = _catalogue(xt, base, check_files, default_name="xray")
    xray = XrayConfig(**xcat, hr0_filter=_hr0(xt, xcat))
    xt.done()
    ir_raw = top.get("ir", list, required=True)
    if not ir_raw:
        raise ConfigError("ir", "needs at least one [[ir]] catalogue", source)
    irs, names = [], {xray.name}
    for i, item in enumerate(ir_raw):
        it = _Table(item, f"ir[{i}]", source)
        cat = _catalogue(it, base, check_files)
        if cat["name"] in names:
            raise it.err("name", f"{cat['name']!r} is used twice (names must be unique)")
        names.add(cat["name"])
        options = _options(it.sub("onesided"))
        sig = it.get("sigma_ir_arcsec", float)
        if sig is not None:
            if sig <= 0:
                raise it.err("sigma_ir_arcsec", "must be positive")
            options["sigma_ir_arcsec"] = sig
        irs.append(IRConfig(**cat, colour_filter=_colour(it, cat["bands"]), options=options))
        it.done()
    onesided = _options(top.sub("onesided"))
    for i, ir in enumerate(irs):
        _check_options(onesided, ir.options, i, source)
        ks = ir.options.get("ks_band", onesided.get("ks_band", "Ks"))
        if ks not in ir.bands:
            raise ConfigError(f"ir[{i}].columns.mags",
                              f"has no band {ks!r} (the one-sided ks_band); bands: "
                              f"{', '.join(ir.bands) or 'none'}", source)
    cand = _candidates(top.sub("candidates"), base, check_files)
    out = _output(top.sub("output"), base)
    top.done()
    return RunConfig(xray=xray, ir=irs, onesided=onesided, candidates=cand, output=out, backend=backend,
                     progress=progress, source=source, base=base, raw=data)


def read_toml_config(path_or_dict, parse, config_type, check_files: bool = True):
    """Shared loader: a ``config_type`` passes through, a mapping is parsed with base '.', a TOML
    path is read and parsed with relative paths resolving against the file's own folder (the
    folder of the link, when the path is a symbolic link)."""
    if isinstance(path_or_dict, config_type):
        return path_or_dict
    if isinstance(path_or_dict, dict):
        return parse(path_or_dict, base=".", check_files=check_files)
    path = Path(path_or_dict)
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path}")
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("(syntax)", str(exc), str(path)) from None
    return parse(data, base=path.absolute().parent, source=str(path), check_files=check_files)


def load_config(path_or_dict, check_files: bool = True) -> RunConfig:
    """Read and validate a config: a TOML path, a mapping, or a :class:`RunConfig`."""
    return read_toml_config(path_or_dict, parse_config, RunConfig, check_files)
