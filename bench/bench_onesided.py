"""Benchmark: the notebook's full one-sided run vs the notebook's own approach.

The notebook's run is 1 real cross-match + 30 shifted null trials + a shift sweep of
9 radii x 10 trials = 121 searches of the X-ray catalogue (8,288 sources after the
HR0 cut) against the colour-cleaned GALACTICNUCLEUS catalogue (1.84 M sources).
Here both run on one simulated field of that size (2.0 x 0.8 deg, the Muno et al.
2009 survey's extent, IR density 1.84 M / 1.6 deg^2):

* gpumatch: ``run_onesided`` with default options -- all 121 searches batched in
  one pass of one sky index, plus the 5-sigma candidate search, f(K), rho(K) and
  P_i / P_0 -- timed end to end on the chosen backend.
* the notebook's approach: per search, build astropy SkyCoords from the tables,
  jitter every IR source inside a disk (its ``apply_random_shift``), run
  ``search_around_sky`` with the largest quadrature radius, filter by the per-pair
  quadrature radius, attach Ks and bin it with ``pd.cut``.  A few searches are
  timed and the mean is extrapolated to the 121 searches of the full run (stated
  in the output as such).

Writes ``bench/results/onesided-<backend>-<time>.json`` and ``.log`` with the
machine, commit and package versions.  Usage::

    python bench/bench_onesided.py [--backend numpy|cupy|auto] [--notebook-searches 3]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gpumatch.backend import get_backend, gpu_info  # noqa: E402
from gpumatch.onesided import OneSidedOptions, run_onesided  # noqa: E402
from gpumatch.simulate import simulate_field  # noqa: E402
from benchlib import commit, versions  # noqa: E402
from benchlib import machine_info as machine  # noqa: E402

N_SEARCHES_FULL = 1 + 30 + 9 * 10
WIDTH_DEG, HEIGHT_DEG = 2.0, 0.8


# -- the notebook's approach (its steps, written afresh) ---------------------------------
def notebook_search(xray_df: pd.DataFrame, ir_df: pd.DataFrame, shift_radius_arcsec: float | None,
                    rng: np.random.Generator, sigma_ir_arcsec: float = 0.1,
                    edges=np.arange(6.0, 18.0, 0.5)) -> pd.Series:
    """One real or shifted cross-match the way the notebook does it; counts per Ks bin."""
    import astropy.units as u
    from astropy.coordinates import SkyCoord

    def coords(df):
        ra = pd.to_numeric(df["RAJ2000"], errors="coerce")
        dec = pd.to_numeric(df["DEJ2000"], errors="coerce")
        ok = np.flatnonzero(ra.notna() & dec.notna())
        return SkyCoord(ra=ra.to_numpy()[ok] * u.deg, dec=dec.to_numpy()[ok] * u.deg), ok

    xc, xok = coords(xray_df)
    ic, iok = coords(ir_df)
    sub = ir_df.iloc[iok].reset_index(drop=True)
    ks = pd.to_numeric(sub["Ksmag"], errors="coerce").to_numpy()
    sx = pd.to_numeric(xray_df.iloc[xok]["ePos"], errors="coerce").to_numpy()
    if shift_radius_arcsec is not None:  # every IR source jittered in a disk, as the notebook
        r = np.sqrt(rng.random(len(ic))) * shift_radius_arcsec * u.arcsec
        th = rng.uniform(0, 2 * np.pi, len(ic)) * u.rad
        ic = SkyCoord(ra=ic.ra + r * np.cos(th) / np.cos(ic.dec), dec=ic.dec + r * np.sin(th))
    rmax = np.sqrt(np.max(sx**2 + sigma_ir_arcsec**2)) * u.arcsec
    idx_ir, idx_x, sep, _ = xc.search_around_sky(ic, seplimit=rmax)  # (around-coords, self)
    pairs = pd.DataFrame({"x": idx_x, "ir": idx_ir, "sep": sep.arcsecond})
    pairs = pairs[pairs["sep"].to_numpy() <= np.sqrt(sx[pairs["x"]] ** 2 + sigma_ir_arcsec**2)]
    labels = [f"{a:.1f}-{b:.1f}" for a, b in zip(edges[:-1], edges[1:])]
    kb = pd.cut(ks[pairs["ir"].to_numpy()], bins=edges, labels=labels, right=False)
    return pd.Series(kb).value_counts().reindex(labels, fill_value=0)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backend", default="numpy")
    ap.add_argument("--n-xray", type=int, default=8288)
    ap.add_argument("--n-ir", type=float, default=1.84e6)
    ap.add_argument("--seed", type=int, default=2009)
    ap.add_argument("--repeats", type=int, default=2, help="gpumatch runs (the first includes warm-up)")
    ap.add_argument("--notebook-searches", type=int, default=3,
                    help="notebook-style searches to time (1 real + shifted); 0 skips")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results"))
    ap.add_argument("--gpu", action="store_true",
                    help="run on the CuPy backend and check it against one NumPy run of the same field")
    args = ap.parse_args(argv)
    if args.gpu:
        args.backend = "cupy"

    log_lines = []

    def log(msg):
        print(msg, flush=True)
        log_lines.append(msg)

    be = get_backend(args.backend)
    density = args.n_ir / (WIDTH_DEG * HEIGHT_DEG * 3600.0**2)
    t = time.perf_counter()
    fld = simulate_field(seed=args.seed, n_a=args.n_xray, density_b_arcsec2=density,
                         width_deg=WIDTH_DEG, height_deg=HEIGHT_DEG)
    log(f"field: {len(fld.a)} X-ray x {len(fld.b)} IR over {WIDTH_DEG} x {HEIGHT_DEG} deg "
        f"(IR {density:.4f} per arcsec^2), simulated in {time.perf_counter() - t:.1f} s")

    opt = OneSidedOptions(seed=args.seed)
    walls, res = [], None
    for k in range(args.repeats):
        t = time.perf_counter()
        res = run_onesided(fld.a, fld.b, opt, backend=be, progress=False)
        walls.append(time.perf_counter() - t)
        log(f"gpumatch run {k + 1} on {be.name}: {walls[-1]:.2f} s  "
            f"(stages: {', '.join(f'{a} {b:.2f}' for a, b in res.meta['timings'].items())})")
    true_frac = float(np.mean(fld.truth >= 0))
    acc = {"f_lim": res.meta["f_lim"], "true_counterpart_fraction": true_frac,
           "mean_1_minus_P0": float(np.mean(1 - res.best.P0)),
           "n_queries": res.meta["n_queries"], "n_candidates": res.meta["n_candidates"]}
    log(f"f_lim {acc['f_lim']:.3f} (truth {true_frac:.3f}), mean(1 - P0) {acc['mean_1_minus_P0']:.3f}")
    if args.gpu:
        t = time.perf_counter()
        ref = run_onesided(fld.a, fld.b, opt, backend="numpy", progress=False)
        acc["numpy_reference_s"] = time.perf_counter() - t
        acc["counts_identical"] = bool(np.array_equal(ref.counts.n_real, res.counts.n_real)
                                       and np.array_equal(ref.trial_counts_raw, res.trial_counts_raw))
        acc["best_identical"] = bool(np.array_equal(ref.best.index_ir, res.best.index_ir))
        p_ref, p_gpu = ref.candidates.P.to_numpy(), res.candidates.P.to_numpy()
        acc["P_max_rel_diff"] = float(np.max(np.abs(p_gpu - p_ref) / np.maximum(np.abs(p_ref), 1e-300))) \
            if len(p_ref) == len(p_gpu) and len(p_ref) else float("nan")
        log(f"numpy reference {acc['numpy_reference_s']:.2f} s; counts identical {acc['counts_identical']}, "
            f"best identical {acc['best_identical']}, max rel diff of P {acc['P_max_rel_diff']:.2e}")

    nb = {"n_searches_timed": 0}
    if args.notebook_searches > 0:
        try:
            import astropy  # noqa: F401
        except ImportError:
            log("notebook approach skipped: astropy not installed here")
            nb["skipped"] = "astropy not installed"
        else:
            xdf = pd.DataFrame({"RAJ2000": fld.a.ra, "DEJ2000": fld.a.dec, "ePos": fld.a.sigma_arcsec})
            idf = pd.DataFrame({"RAJ2000": fld.b.ra, "DEJ2000": fld.b.dec, "Ksmag": fld.b.mags["Ks"]})
            rng = np.random.default_rng(args.seed)
            per = []
            for k in range(args.notebook_searches):
                t = time.perf_counter()
                notebook_search(xdf, idf, None if k == 0 else 10.0, rng)
                per.append(time.perf_counter() - t)
                log(f"notebook-style search {k + 1} ({'real' if k == 0 else 'shifted'}): {per[-1]:.2f} s")
            mean = float(np.mean(per))
            nb = {"n_searches_timed": len(per), "per_search_s": per, "mean_per_search_s": mean,
                  "n_searches_full_run": N_SEARCHES_FULL, "extrapolated_full_run_s": mean * N_SEARCHES_FULL,
                  "note": f"extrapolated: mean of {len(per)} timed searches x {N_SEARCHES_FULL} searches "
                          f"(1 real + 30 null + 9 x 10 sweep); the P_i step is not included"}
            log(f"notebook approach, extrapolated: {mean:.2f} s x {N_SEARCHES_FULL} = "
                f"{mean * N_SEARCHES_FULL:.0f} s")

    best = min(walls)
    out = {
        "benchmark": "onesided full run (1 real + 30 null + 9 x 10 sweep, candidates, P_i)",
        "date_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(), "gpu": gpu_info() if be.is_gpu else None, **commit(), "versions": versions(),
        "field": {"n_xray": len(fld.a), "n_ir": len(fld.b), "width_deg": WIDTH_DEG, "height_deg": HEIGHT_DEG,
                  "density_ir_per_arcsec2": density, "seed": args.seed},
        "gpumatch": {"backend": be.name, "backend_detail": be.describe(), "wall_s": walls, "best_wall_s": best,
                     "timings_last_run": res.meta["timings"], "options": opt.to_dict()},
        "notebook_approach": nb, "accuracy": acc,
    }
    if nb.get("extrapolated_full_run_s"):
        out["speedup_vs_notebook"] = nb["extrapolated_full_run_s"] / best
        log(f"speed-up: {out['speedup_vs_notebook']:.1f}x (best gpumatch run {best:.2f} s)")
    folder = Path(args.out)
    folder.mkdir(parents=True, exist_ok=True)
    stem = folder / f"onesided-{be.name}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
    stem.with_suffix(".json").write_text(json.dumps(out, indent=2, default=float) + "\n")
    stem.with_suffix(".log").write_text("\n".join(log_lines) + "\n")
    print(f"wrote {stem}.json and .log")
    return out


if __name__ == "__main__":
    main()
