"""Benchmark of the neighbour search (gpumatch.sky.pairs) against astropy and scikit-learn.

Workload (seeded): catalogues A and B uniform on a 1 deg^2 field (RA 149.5..150.5 deg
times 1/cos(Dec), Dec 1.5..2.5 deg, uniform in sin Dec), search radius 1 arcsec.
Sizes ``NAxNB``: default 1e5x1e6 and 1e6x1e6, plus 1e7x1e7 where a GPU is usable.
Sizes with more than 2e6 sources on a side run on the GPU only.

Methods, each from host arrays of RA/Dec in degrees:
  gpumatch-numpy  sky.pairs(..., backend='numpy'): index build + search + (i, j, sep) out.
  gpumatch-cupy   the same call on the CuPy backend; host-to-host wall time, and the CUDA-event
                  time of the call, of its index build and of its query (device timeline
                  between events, so time the device waited for the host is included).
  astropy         astropy.coordinates.search_around_sky on prebuilt SkyCoord objects
                  (SkyCoord construction not timed; it returns i, j, sep, dist).
  sklearn         BallTree(metric='haversine') build + query_radius(return_distance=True)
                  (per-query index/distance arrays; not flattened).
Every method must return the same number of pairs at a size (checked; exit status 1 if not);
the two gpumatch backends must return identical pairs.  Times are best and median of
``--repeat`` runs; ratios are other / gpumatch-numpy (>1: gpumatch is faster).

Usage: python bench/bench_sky.py [--sizes 1e5x1e6,1e6x1e6] [--repeat 3] [--out DIR] [--gpu]
       [--methods gpumatch-numpy,gpumatch-cupy,astropy,sklearn]
Writes DIR/sky_<UTC date-time>_<machine>.json and .log (default DIR: bench/results).
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gpumatch import sky  # noqa: E402
from gpumatch.backend import gpu_available  # noqa: E402
from benchlib import machine_info, versions  # noqa: E402

RADIUS_ARCSEC = 1.0
FIELD = {"ra_centre_deg": 150.0, "dec_min_deg": 1.5, "dec_max_deg": 2.5, "area_deg2": None}
GPU_ONLY_ABOVE = 2_000_000
METHODS = ("gpumatch-numpy", "gpumatch-cupy", "astropy", "sklearn")


# -- workload --------------------------------------------------------------------
def field(n: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """n positions (deg) uniform on the sphere inside the benchmark field."""
    s0, s1 = np.sin(np.radians([FIELD["dec_min_deg"], FIELD["dec_max_deg"]]))
    dec = np.degrees(np.arcsin(s0 + rng.random(n) * (s1 - s0)))
    cos_mid = np.cos(np.radians(0.5 * (FIELD["dec_min_deg"] + FIELD["dec_max_deg"])))
    ra = FIELD["ra_centre_deg"] + (rng.random(n) - 0.5) / cos_mid
    return ra, dec


def field_area_deg2() -> float:
    s0, s1 = np.sin(np.radians([FIELD["dec_min_deg"], FIELD["dec_max_deg"]]))
    cos_mid = np.cos(np.radians(0.5 * (FIELD["dec_min_deg"] + FIELD["dec_max_deg"])))
    return float(np.degrees(1.0) * (s1 - s0) / cos_mid)  # RA width 1/cos_mid deg


def parse_sizes(text: str) -> list[tuple[int, int]]:
    out = []
    for part in text.split(","):
        a, b = part.lower().split("x")
        out.append((int(float(a)), int(float(b))))
    return out


# -- methods: each returns (n_pairs, result or None, extra timings) -----------------
def run_gpumatch(ra_a, dec_a, ra_b, dec_b, backend):
    p = sky.pairs(ra_a, dec_a, ra_b, dec_b, RADIUS_ARCSEC, backend=backend)
    return len(p), p, {}


def run_gpumatch_cupy(ra_a, dec_a, ra_b, dec_b):
    """The CuPy call with CUDA events: whole call, index build and query (seconds)."""
    import cupy

    ev = [cupy.cuda.Event() for _ in range(3)]
    cupy.cuda.Device().synchronize()
    ev[0].record()
    index = sky.SkyIndex(ra_b, dec_b, RADIUS_ARCSEC, backend="cupy")
    ev[1].record()
    p = index.query(ra_a, dec_a, RADIUS_ARCSEC)
    ev[2].record()
    ev[2].synchronize()
    extra = {"gpu_event_s": cupy.cuda.get_elapsed_time(ev[0], ev[2]) / 1e3,
             "gpu_event_build_s": cupy.cuda.get_elapsed_time(ev[0], ev[1]) / 1e3,
             "gpu_event_query_s": cupy.cuda.get_elapsed_time(ev[1], ev[2]) / 1e3}
    return len(p), p, extra


def prepare_astropy(ra_a, dec_a, ra_b, dec_b):
    from astropy import units as u
    from astropy.coordinates import SkyCoord

    return SkyCoord(ra_a * u.deg, dec_a * u.deg), SkyCoord(ra_b * u.deg, dec_b * u.deg)


def run_astropy(ca, cb):
    from astropy import units as u
    from astropy.coordinates import search_around_sky

    ia, ib, sep, _ = search_around_sky(ca, cb, RADIUS_ARCSEC * u.arcsec)
    return len(ia), None, {}


def run_sklearn(ra_a, dec_a, ra_b, dec_b):
    from sklearn.neighbors import BallTree

    tree = BallTree(np.radians(np.stack([dec_b, ra_b], axis=1)), metric="haversine")
    ind, dist = tree.query_radius(np.radians(np.stack([dec_a, ra_a], axis=1)),
                                  np.radians(RADIUS_ARCSEC / 3600.0), return_distance=True)
    return int(sum(len(x) for x in ind)), None, {}


# -- harness -----------------------------------------------------------------------
def timed(fn, repeat: int, sync=None):
    """Run fn() ``repeat`` times; (n_pairs, last result, wall times, extra timings per run)."""
    walls, extras, n, res = [], [], None, None
    for _ in range(repeat):
        if sync:
            sync()
        t0 = time.perf_counter()
        n, res, extra = fn()
        if sync:
            sync()
        walls.append(time.perf_counter() - t0)
        extras.append(extra)
    return n, res, walls, extras


def summary(walls):
    return {"best_s": min(walls), "median_s": statistics.median(walls), "runs_s": walls}


def machine_slug(info) -> str:
    name = info["gpu"]["name"] if info["gpu"] else f"{info['cpu_count']}cpu-{info['cpu']}"
    return re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-").lower()[:40]


def make_runner(m, ra_a, dec_a, ra_b, dec_b):
    """(fn, sync, untimed setup seconds) for method ``m``; fn() -> (n_pairs, result, extra)."""
    if m == "gpumatch-numpy":
        return (lambda: run_gpumatch(ra_a, dec_a, ra_b, dec_b, "numpy")), None, None
    if m == "gpumatch-cupy":
        import cupy

        run_gpumatch(ra_a[:1000], dec_a[:1000], ra_b[:1000], dec_b[:1000], "cupy")  # compile, warm up
        return (lambda: run_gpumatch_cupy(ra_a, dec_a, ra_b, dec_b)), cupy.cuda.Device().synchronize, None
    if m == "astropy":
        t0 = time.perf_counter()
        ca, cb = prepare_astropy(ra_a, dec_a, ra_b, dec_b)
        return (lambda: run_astropy(ca, cb)), None, time.perf_counter() - t0
    if m == "sklearn":
        import sklearn  # noqa: F401  (fail early when missing)

        return (lambda: run_sklearn(ra_a, dec_a, ra_b, dec_b)), None, None
    raise ValueError(f"unknown method {m!r}: choose from {', '.join(METHODS)}")


def bench_size(na, nb, methods, repeat, rng, log):
    ra_a, dec_a = field(na, rng)
    ra_b, dec_b = field(nb, rng)
    gpu_only = max(na, nb) > GPU_ONLY_ABOVE
    row = {"na": na, "nb": nb, "gpu_only": gpu_only, "methods": {}}
    results = {}
    for m in methods:
        if gpu_only and m != "gpumatch-cupy":
            continue
        try:
            fn, sync, setup_s = make_runner(m, ra_a, dec_a, ra_b, dec_b)
            n, res, walls, extras = timed(fn, repeat, sync)
        except ImportError as exc:  # e.g. no astropy/scikit-learn on the GPU machine
            row["methods"][m] = {"skipped": f"{exc.__class__.__name__}: {exc}"}
            log(f"  {m:15s} skipped ({exc})")
            continue
        entry = {"pairs": n, **summary(walls)}
        if setup_s is not None:
            entry["setup_s"] = setup_s
        for key in (extras[0] if extras else {}):
            entry[key] = summary([e[key] for e in extras])
        row["methods"][m] = entry
        results[m] = res
        log(f"  {m:15s} pairs {n:>10d}  best {min(walls):8.3f} s  median {statistics.median(walls):8.3f} s"
            + (f"  gpu-event {entry['gpu_event_s']['best_s']:.3f} s" if "gpu_event_s" in entry else ""))
    counts = {m: e["pairs"] for m, e in row["methods"].items() if "pairs" in e}
    row["same_pair_count"] = len(set(counts.values())) <= 1
    if "gpumatch-numpy" in results and "gpumatch-cupy" in results:
        a, b = results["gpumatch-numpy"], results["gpumatch-cupy"]
        row["numpy_cupy_identical"] = bool(np.array_equal(a.i, b.i) and np.array_equal(a.j, b.j)
                                           and np.array_equal(a.sep_arcsec, b.sep_arcsec))
    ref = row["methods"].get("gpumatch-numpy", {}).get("best_s")
    if ref:
        row["ratio_vs_gpumatch_numpy"] = {m: e["best_s"] / ref for m, e in row["methods"].items()
                                          if "best_s" in e}
        log("  ratio (time / gpumatch-numpy): " + ", ".join(
            f"{m} {r:.2f}" for m, r in row["ratio_vs_gpumatch_numpy"].items()))
    if not row["same_pair_count"]:
        log(f"  PAIR COUNT MISMATCH: {counts}")
    return row


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default=None, help="comma-separated NAxNB, e.g. 1e5x1e6,1e6x1e6")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results"))
    ap.add_argument("--gpu", action="store_true", help="require a GPU (default: use one if usable)")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--seed", type=int, default=20241121)
    args = ap.parse_args(argv)
    have_gpu = gpu_available()
    if args.gpu and not have_gpu:
        ap.error("--gpu given but no usable GPU (CuPy + CUDA device)")
    methods = [m for m in args.methods.split(",") if m]
    if set(methods) - set(METHODS):
        ap.error(f"unknown method(s) {sorted(set(methods) - set(METHODS))}: choose from {', '.join(METHODS)}")
    methods = [m for m in methods if m != "gpumatch-cupy" or have_gpu]
    sizes = parse_sizes(args.sizes or ("1e5x1e6,1e6x1e6" + (",1e7x1e7" if have_gpu else "")))
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    info = machine_info()
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    stem = out_dir / f"sky_{stamp}_{machine_slug(info)}"
    lines = []

    def log(s=""):
        print(s, flush=True)
        lines.append(s)

    FIELD["area_deg2"] = field_area_deg2()
    report = {"benchmark": "sky", "date_utc": stamp, "machine": info, "versions": versions(),
              "radius_arcsec": RADIUS_ARCSEC, "field": dict(FIELD), "repeat": args.repeat,
              "seed": args.seed, "command": " ".join([Path(sys.argv[0]).name] + (argv or sys.argv[1:])),
              "sizes": []}
    log(f"gpumatch sky benchmark {stamp}: radius {RADIUS_ARCSEC} arcsec, field "
        f"{FIELD['area_deg2']:.3f} deg^2, repeat {args.repeat}")
    log(f"machine: {info['cpu']} x{info['cpu_count']}, {info['memory_gib']} GiB, "
        f"GPU {info['gpu']['name'] if info['gpu'] else 'none'}; commit {info['commit']}"
        f"{' (dirty)' if info['dirty'] else ''}")
    log("versions: " + ", ".join(f"{k} {v}" for k, v in report["versions"].items() if v))
    rng = np.random.default_rng(args.seed)
    ok = True
    for na, nb in sizes:
        log(f"\n{na:.0e} x {nb:.0e}")
        row = bench_size(na, nb, methods, args.repeat, rng, log)
        report["sizes"].append(row)
        ok &= row["same_pair_count"] and row.get("numpy_cupy_identical", True)
    stem.with_suffix(".json").write_text(json.dumps(report, indent=2))
    stem.with_suffix(".log").write_text("\n".join(lines) + "\n")
    print(f"\nwrote {stem}.json and .log")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
