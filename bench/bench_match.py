"""Benchmark of the end-to-end symmetric match (gpumatch.symmetric.match_catalogues).

Workloads (seeded simulated fields with truth, gpumatch.simulate):
  macauff_field -- macauff's own test field: 150,000 x 600,000 sources over 30 deg^2, 1-sigma
                   errors 0.1" (A) and 0.3" (B), 80% of A with a counterpart in B, one magnitude
                   per catalogue, perturbation off, photometry on.  macauff 0.1.2 took 305.6 s on a
                   2-core machine of this kind; the target for the NumPy path is < 60 s.
  crowded       -- 1,000,000 x 4,000,000 sources over 4 deg^2 (B: 0.077 per arcsec^2), errors
                   0.1-0.5" (A, log-uniform) and 0.1" (B), 60% of A with a counterpart,
                   photometry on and the perturbation term on for B (PSF FWHM 0.8"); GPU only
                   (with --quick: a 1/200 version on the available backend).
Every stage is timed (perturbation, islands, photometry, weights, assignment, acceptance,
tables) plus the simulation; accuracy against the truth (precision, recall, F1) and the
recovered counterpart density are recorded.  With a GPU, macauff_field runs on NumPy and
CuPy and the outputs are compared (identical matches, max relative float difference).

Usage: python bench/bench_match.py [--quick] [--gpu] [--out DIR] [--only NAME]
Writes DIR/bench_match[_quick]_<cpu|gpu>.json and .log (default DIR: bench/results).
"""
from __future__ import annotations

import math
import resource
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gpumatch.islands import SkyBox  # noqa: E402
from gpumatch.simulate import FieldSpec, simulate_field  # noqa: E402
from gpumatch.symmetric import MatchOptions, SideOptions, match_catalogues  # noqa: E402
from benchlib import Recorder, common_parser, use_gpu  # noqa: E402

MACAUFF_S = 305.6
TARGET_NUMPY_S = 60.0


def _square(area_deg2):
    return math.sqrt(area_deg2)


def macauff_spec(scale: float) -> tuple[FieldSpec, MatchOptions]:
    area = 30.0 * scale
    side = _square(area)
    spec = FieldSpec(seed=2024, ra0_deg=180.0, dec0_deg=0.0, width_deg=side, height_deg=side,
                     n_a=int(round(150_000 * scale)),
                     density_b_arcsec2=600_000 * scale / (area * 3600.0 ** 2),
                     counterpart_fraction=0.8, sigma_a_min_arcsec=0.1, sigma_a_max_arcsec=0.1,
                     sigma_b_arcsec=0.3, counterpart_ks_mean=14.0, counterpart_ks_sd=1.5)
    opts = MatchOptions(a=SideOptions(band="Xmag"), b=SideOptions(band="Ks"), use_photometry=True)
    return spec, opts


def crowded_spec(scale: float) -> tuple[FieldSpec, MatchOptions]:
    area = 4.0 * scale
    side = _square(area)
    spec = FieldSpec(seed=77, ra0_deg=266.4, dec0_deg=-29.0, width_deg=side, height_deg=side,
                     n_a=int(round(1_000_000 * scale)),
                     density_b_arcsec2=4_000_000 * scale / (area * 3600.0 ** 2),
                     counterpart_fraction=0.6, sigma_a_min_arcsec=0.1, sigma_a_max_arcsec=0.5,
                     sigma_b_arcsec=0.1)
    opts = MatchOptions(a=SideOptions(band="Xmag"),
                        b=SideOptions(band="Ks", perturbation=True, psf_fwhm_arcsec=0.8,
                                      perturbation_kwargs={"n_real": 2000}),
                        use_photometry=True)
    return spec, opts


def coverage_of(spec: FieldSpec) -> SkyBox:
    """The simulated rectangle (RA extent = width / cos Dec0, as simulate_field draws it)."""
    half_ra = spec.width_deg / 2 / math.cos(math.radians(spec.dec0_deg))
    return SkyBox(spec.ra0_deg - half_ra, spec.ra0_deg + half_ra,
                  spec.dec0_deg - spec.height_deg / 2, spec.dec0_deg + spec.height_deg / 2)


def accuracy(sim, res) -> dict:
    m = res.matches
    ia, ib = m["index_a"].to_numpy(), m["index_b"].to_numpy()
    tp = int(np.sum(sim.truth[ia] == ib))
    n_true = int(np.sum(sim.truth >= 0))
    prec = tp / max(len(m), 1)
    rec = tp / max(n_true, 1)
    d = res.summary["densities_per_arcsec2"]
    return {"n_matches": int(len(m)), "true_positives": tp, "n_true_pairs": n_true,
            "precision": prec, "recall": rec, "f1": 2 * tp / max(len(m) + n_true, 1),
            "expected_true_matches": res.summary["expected_true_matches"],
            "N_c": d["N_c"], "N_c_sd": d["N_c_sd"], "N_c_true": n_true / sim.spec.area_arcsec2}


def compare(a, b) -> dict:
    same = all(np.array_equal(a.matches[c].to_numpy(), b.matches[c].to_numpy())
               for c in ("index_a", "index_b", "island", "status"))
    rel = 0.0
    for c in ("p_match", "p_hypothesis", "eta", "xi", "log_r"):
        x, y = a.pairs[c].to_numpy() if c in a.pairs else a.matches[c].to_numpy(), \
            b.pairs[c].to_numpy() if c in b.pairs else b.matches[c].to_numpy()
        fin = np.isfinite(x) & np.isfinite(y)
        d = np.abs(x[fin] - y[fin]) / np.maximum(np.abs(x[fin]), 1e-300)
        rel = max(rel, float(np.max(np.where(x[fin] == y[fin], 0.0, d), initial=0.0)))
    return {"matches_identical": bool(same), "max_rel_diff": rel}


def run_one(name, spec, opts, backend, log) -> tuple[dict, object, object]:
    t0 = time.perf_counter()
    sim = simulate_field(spec)
    t_sim = time.perf_counter() - t0
    opts.coverage = coverage_of(spec)
    log(f"{name}: simulated {len(sim.a):,} x {len(sim.b):,} sources over "
        f"{spec.area_arcsec2 / 3600 ** 2:.3g} deg^2 in {t_sim:.1f} s; matching on {backend}")
    t0 = time.perf_counter()
    res = match_catalogues(sim.a, sim.b, opts, backend=backend)
    wall = time.perf_counter() - t0
    entry = {"backend": backend, "n_a": len(sim.a), "n_b": len(sim.b),
             "area_deg2": spec.area_arcsec2 / 3600 ** 2, "simulate_s": t_sim, "match_s": wall,
             "stages_s": res.summary["timing_s"], "islands": {k: v for k, v in res.summary["islands"].items()
                                                               if k != "by_size"},
             "accuracy": accuracy(sim, res), "weights": res.summary["weights"],
             "max_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    st = ", ".join(f"{k} {v:.2f}" for k, v in res.summary["timing_s"].items())
    acc = entry["accuracy"]
    log(f"{name} [{backend}]: {wall:.2f} s ({st}); {acc['n_matches']:,} matches, precision "
        f"{acc['precision']:.4f}, recall {acc['recall']:.4f}, F1 {acc['f1']:.4f}; N_c {acc['N_c']:.4g} "
        f"(true {acc['N_c_true']:.4g}); islands {entry['islands']['n_islands']:,}, largest "
        f"{entry['islands']['max_n_a']} x {entry['islands']['max_n_b']}; peak RSS {entry['max_rss_mib']:.0f} MiB")
    return entry, res, sim


def main(argv=None):
    ap = common_parser(__doc__.splitlines()[0], "1/20 of the macauff field and 1/200 of the crowded one (seconds)",
                       gpu_help="require the CuPy backend (and run the crowded field)")
    ap.add_argument("--only", choices=("macauff_field", "crowded"), help="run one workload only")
    ap.add_argument("--note", default="", help="free text stored in the report (e.g. machine load)")
    opt = ap.parse_args(argv)
    gpu = use_gpu(opt)
    rec = Recorder("match", opt, gpu, note=opt.note,
                   reference={"macauff_0.1.2_s": MACAUFF_S, "target_numpy_s": TARGET_NUMPY_S})
    log, report = rec.log, rec.report
    if opt.note:
        log(f"note: {opt.note}")
    if opt.only in (None, "macauff_field"):
        scale = 1 / 20 if opt.quick else 1.0
        spec, opts = macauff_spec(scale)
        entry = {"scale": scale, "spec": vars(spec)}
        e_np, r_np, _ = run_one("macauff_field", spec, opts, "numpy", log)
        entry["numpy"] = e_np
        if not opt.quick:
            entry["numpy_vs_macauff_speedup"] = MACAUFF_S / e_np["match_s"]
            entry["numpy_meets_target"] = e_np["match_s"] < TARGET_NUMPY_S
            log(f"macauff_field: NumPy {e_np['match_s']:.1f} s vs macauff 0.1.2 {MACAUFF_S} s "
                f"({MACAUFF_S / e_np['match_s']:.1f}x); target < {TARGET_NUMPY_S:.0f} s: "
                f"{'met' if entry['numpy_meets_target'] else 'NOT met'}")
        if gpu:
            e_cp, r_cp, _ = run_one("macauff_field", spec, opts, "cupy", log)
            entry["cupy"] = e_cp
            entry["speedup"] = e_np["match_s"] / e_cp["match_s"]
            entry["cupy_vs_numpy"] = compare(r_np, r_cp)
            log(f"macauff_field: cupy vs numpy {entry['cupy_vs_numpy']}, speedup {entry['speedup']:.1f}x")
        report["workloads"]["macauff_field"] = entry
    if opt.only in (None, "crowded"):
        if gpu or opt.quick:
            scale = 1 / 200 if opt.quick else 1.0
            spec, opts = crowded_spec(scale)
            be = "cupy" if gpu else "numpy"
            e, _, _ = run_one("crowded", spec, opts, be, log)
            report["workloads"]["crowded"] = {"scale": scale, "spec": vars(spec), be: e}
        else:
            log("crowded: skipped (GPU only; --quick runs a 1/200 version on NumPy)")
            report["workloads"]["crowded"] = {"skipped": "no GPU"}
    rec.save()


if __name__ == "__main__":
    main()
