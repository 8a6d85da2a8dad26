"""Benchmark of the AUF stages (gpumatch.auf / gpumatch.hankel), NumPy vs CuPy.

Workload (seeded), per size N (sources in each catalogue, default 1e5 and 1e6):
  * catalogue B (infrared-like, perturbation on): N positions uniform at 0.05 sources per
    arcsec^2, Ks magnitudes from dN/dm ~ 10^(0.3 m) on [12, 18.5], PSF FWHM 1.0", sigma 0.1";
  * catalogue A (perturbation off): sigma log-uniform in [0.2, 2] arcsec;
  * N candidate pairs (a random A source, a random B source), separations uniform in
    [0, 3 sqrt(sigma2)], sigma2 = sigma_a^2 + sigma_b^2.
Stages (host arrays in, arrays on the backend out, timed host-to-host with device sync):
  local_density   counts of brighter-than-m_norm neighbours within 15" (sky.pairs) for B
  fit_counts      power-law fit of B's counts
  model_build     PerturbationModel.build: cells, Poisson tables, the Monte Carlo (n_real per
                  cell; CUDA kernel on CuPy), histograms
  cell_of         per-source cells
  pair_auf_closed G and CDF, perturbation off on both sides (closed form)
  pair_auf_first  G and CDF, perturbation on for B: first call (builds the band grids and the
                  per-cell Hankel tables)
  pair_auf        the same call again (grids and tables cached)
  pair_radius     R_0.997 per pair, perturbation on for B
Checks recorded: the NumPy and CuPy models are bit-identical; max |G_cupy - G_numpy| relative
to each pair's peak, max |CDF| and max relative R difference.

Usage: python bench/bench_auf.py [--sizes 1e5,1e6] [--n-real 10000] [--quick] [--gpu]
       [--out DIR] [--repeat 1]
--quick: N = 1e4, n_real = 1000 (a smoke run: minutes on a 2-core CPU).  --gpu adds CuPy
(default: CuPy too whenever a GPU is usable).  Writes DIR/auf_<mode>_<UTC>_<machine>.json and
.log (default DIR: bench/results).
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import re
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gpumatch import auf  # noqa: E402
from gpumatch.backend import get_backend, gpu_available, to_host  # noqa: E402
from gpumatch.counts import fit_power_law  # noqa: E402
from benchlib import machine_info  # noqa: E402

DENSITY = 0.05         # B sources per arcsec^2
FWHM = 1.0             # arcsec
SIGMA_B = 0.1          # arcsec
DENSITY_RADIUS = 15.0  # arcsec


def workload(n: int, seed: int = 1):
    rng = np.random.default_rng(seed)
    side_deg = math.sqrt(n / DENSITY) / 3600.0
    dec = rng.uniform(-0.5, 0.5, n) * side_deg
    ra = 150.0 + rng.uniform(-0.5, 0.5, n) * side_deg
    lo, hi = 10 ** (0.3 * 12), 10 ** (0.3 * 18.5)
    mags = np.log10(lo + rng.uniform(size=n) * (hi - lo)) / 0.3
    sig_a = np.exp(rng.uniform(math.log(0.2), math.log(2.0), n))
    ia = rng.integers(0, n, n)
    ib = rng.integers(0, n, n)
    s2 = sig_a[ia] ** 2 + SIGMA_B ** 2
    sep = rng.uniform(0, 3, n) * np.sqrt(s2)
    return dict(ra=ra, dec=dec, mags=mags, area=(side_deg * 3600) ** 2, ib=ib, s2=s2, sep=sep)


def timed(fn, be, repeat=1):
    best, out = None, None
    for _ in range(repeat):
        sync(be)
        t0 = time.perf_counter()
        out = fn()
        sync(be)
        dt_ = time.perf_counter() - t0
        best = dt_ if best is None else min(best, dt_)
    return best, out


def sync(be):
    if be.is_gpu:
        import cupy

        cupy.cuda.Device().synchronize()


def run_backend(w, be, n_real, repeat, log):
    t = {}
    t["local_density"], dens = timed(lambda: auf.local_density(
        w["ra"], w["dec"], w["mags"], 17.5, DENSITY_RADIUS, backend=be), be)
    t["fit_counts"], counts = timed(lambda: fit_power_law(w["mags"], w["area"]), be)
    t["model_build"], model = timed(lambda: auf.PerturbationModel.build(
        w["mags"], dens, counts, FWHM, n_real=n_real, seed=3, snr_params=(0.01, 1e-13, 1e-8),
        backend=be), be)
    t["cell_of"], cells = timed(lambda: model.cell_of(w["mags"], dens), be)
    cb = cells[w["ib"]]
    sep, s2 = be.asarray(w["sep"]), be.asarray(w["s2"])
    t["pair_auf_closed"], _ = timed(lambda: auf.pair_auf(sep, s2, backend=be), be, repeat)
    t["pair_auf_first"], _ = timed(lambda: auf.pair_auf(sep, s2, None, None, cb, model, backend=be), be)
    t["pair_auf"], gc = timed(lambda: auf.pair_auf(sep, s2, None, None, cb, model, backend=be), be, repeat)
    t["pair_radius"], rad = timed(lambda: auf.pair_radius(0.997, s2, None, None, cb, model, backend=be),
                                  be, repeat)
    for k, v in t.items():
        log(f"  {be.name:5s} {k:16s} {v:9.3f} s")
    info = {"n_cells": model.n_cells, "n_real": n_real,
            "mc_realisations": model.n_cells * n_real,
            "mc_us_per_realisation": 1e6 * t["model_build"] / (model.n_cells * n_real),
            "pairs_per_s": len(w["sep"]) / t["pair_auf"],
            "mean_zero_mass": float(model.zero_mass.mean()),
            "mean_frac_contaminated": float(model.frac_contaminated.mean())}
    return t, info, model, [to_host(x) for x in gc], to_host(rad)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1e5,1e6")
    ap.add_argument("--n-real", type=int, default=10000)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--gpu", action="store_true", help="require the CuPy backend")
    ap.add_argument("--cpu-only", action="store_true", help="skip CuPy even where usable")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results"))
    args = ap.parse_args(argv)
    sizes = [10_000] if args.quick else [int(float(s)) for s in args.sizes.split(",")]
    n_real = 1000 if args.quick else args.n_real
    backends = ["numpy"]
    if (args.gpu or gpu_available()) and not args.cpu_only:
        backends.append("cupy")
    machine = machine_info()
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    slug = re.sub(r"[^A-Za-z0-9]+", "-", machine["gpu"]["name"] if machine["gpu"]
                  else f"{machine['cpu_count']}cpu").strip("-").lower()[:40]
    stem = out_dir / f"auf_{'quick' if args.quick else 'full'}_{stamp}_{slug}"
    lines = []

    def log(msg):
        print(msg, flush=True)
        lines.append(msg)

    log(f"bench_auf: sizes {sizes}, n_real {n_real}, backends {backends}, commit {machine['commit']}"
        f"{' (dirty)' if machine['dirty'] else ''}")
    results = []
    for n in sizes:
        w = workload(n)
        log(f"N = {n:,} sources per catalogue, {n:,} pairs")
        row = {"n_sources": n, "n_pairs": n, "timings_s": {}, "info": {}}
        got = {}
        for name in backends:
            be = get_backend(name)
            t, info, model, gc, rad = run_backend(w, be, n_real, args.repeat, log)
            row["timings_s"][name], row["info"][name] = t, info
            got[name] = (model, gc, rad)
        if "cupy" in got:
            mn, gn, rn = got["numpy"]
            mc, gcu, rc = got["cupy"]
            peak = 1 / (2 * np.pi * w["s2"])
            row["cupy_vs_numpy"] = {
                "model_bit_identical": all(np.array_equal(getattr(mn, f), getattr(mc, f)) for f in
                                           ("zero_mass", "masses", "masses_cont", "frac_contaminated")),
                "max_G_diff_rel_peak": float(np.max(np.abs(gn[0] - gcu[0]) / peak)),
                "max_cdf_diff": float(np.max(np.abs(gn[1] - gcu[1]))),
                "max_radius_rel_diff": float(np.max(np.abs(rn / rc - 1))),
                "speedup": {k: row["timings_s"]["numpy"][k] / max(row["timings_s"]["cupy"][k], 1e-12)
                            for k in row["timings_s"]["numpy"]}}
            log(f"  cupy vs numpy: {json.dumps(row['cupy_vs_numpy'])}")
        results.append(row)
    report = {"benchmark": "auf", "quick": args.quick, "repeat": args.repeat, "n_real": n_real,
              "workload": {"density_b_per_arcsec2": DENSITY, "psf_fwhm_arcsec": FWHM,
                           "sigma_b_arcsec": SIGMA_B, "sigma_a_arcsec": [0.2, 2.0],
                           "density_radius_arcsec": DENSITY_RADIUS, "mags": "10^(0.3 m), 12..18.5"},
              "machine": machine, "results": results, "utc": stamp}
    stem.with_suffix(".json").write_text(json.dumps(report, indent=2, default=str))
    stem.with_suffix(".log").write_text("\n".join(lines) + "\n")
    print(f"wrote {stem}.json and .log")
    return 0


if __name__ == "__main__":
    sys.exit(main())
