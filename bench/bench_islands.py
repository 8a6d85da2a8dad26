"""Benchmark of island construction and photometric likelihoods (gpumatch.islands, gpumatch.photometry).

Workloads (simulated, seeded; both catalogues at 0.05 sources per arcsec^2, A errors
0.3-2", B errors 0.1", 37.5 % of A with a counterpart):
  1e5x1e5 -- 100,000 sources in each catalogue (about 0.39 x 0.39 deg);
  1e6x1e6 -- 1,000,000 in each (about 1.24 x 1.24 deg; full mode only).
Stages timed: ``build_islands`` (candidate search, overlap cut, connected components,
canonical labels, edge flags) and ``estimate_photometry`` (densities, masked areas on a
200,000-point grid, f and c).  Each runs on NumPy and, where a GPU is usable (or --gpu),
on CuPy; CuPy results are checked against NumPy (identical islands; densities and
distributions: max relative difference).

Usage: python bench/bench_islands.py [--quick] [--gpu] [--out DIR] [--repeat N]
Writes DIR/bench_islands[_quick]_<cpu|gpu>.json and .log (default DIR: bench/results).
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gpumatch.islands import SkyBox, build_islands  # noqa: E402
from gpumatch.photometry import estimate_photometry  # noqa: E402
from gpumatch.simulate import simulate_field  # noqa: E402
from benchlib import Recorder, common_parser, use_gpu  # noqa: E402

DENSITY = 0.05  # per arcsec^2, both catalogues


def make_field(n: int, seed: int = 7):
    side = np.sqrt(n / DENSITY) / 3600.0  # deg
    sim = simulate_field(seed=seed, n_a=n, width_deg=side, height_deg=side, density_b_arcsec2=DENSITY)
    s = sim.spec
    half_ra = s.width_deg / 2 / np.cos(np.radians(s.dec0_deg))
    box = SkyBox(s.ra0_deg - half_ra, s.ra0_deg + half_ra, s.dec0_deg - s.height_deg / 2,
                 s.dec0_deg + s.height_deg / 2)
    return sim, box


def run_once(sim, box, backend):
    t0 = time.perf_counter()
    isl = build_islands(sim.a, sim.b, coverage=box, backend=backend)
    t1 = time.perf_counter()
    ph = estimate_photometry(sim.a, sim.b, isl, "Xmag", "Ks", backend=backend)
    t2 = time.perf_counter()
    return t1 - t0, t2 - t1, isl, ph


def timed(sim, box, backend, repeat):
    best_i, best_p, out = np.inf, np.inf, None
    for _ in range(repeat):
        ti, tp, isl, ph = run_once(sim, box, backend)
        best_i, best_p, out = min(best_i, ti), min(best_p, tp), (isl, ph)
    return best_i, best_p, out


def compare(ref, got):
    (ia, pa), (ib, pb) = ref, got
    same = all(np.array_equal(getattr(ia, f), getattr(ib, f)) for f in
               ("ia", "ib", "label_a", "label_b", "island_key", "island_edge", "a_rows", "b_rows"))
    rel = 0.0
    for x, y in [(ia.G_per_arcsec2, ib.G_per_arcsec2), (ia.cdf, ib.cdf), (pa.c, pb.c), (pa.f_a, pb.f_a),
                 (pa.f_b, pb.f_b), (np.array([pa.N_a, pa.N_b, pa.N_c]), np.array([pb.N_a, pb.N_b, pb.N_c]))]:
        d = np.abs(x - y) / np.maximum(np.abs(x), 1e-300)
        rel = max(rel, float(np.max(np.where(x == y, 0.0, d), initial=0.0)))
    return {"islands_identical": bool(same), "max_rel_diff": rel}


def summary(isl, ph, sim):
    st = isl.size_stats()
    area = isl.coverage.area_arcsec2()
    return {"n_a": isl.n_a, "n_b": isl.n_b, "pairs": st["n_pairs"], "islands": st["n_islands"],
            "max_n_a": st["max_n_a"], "max_n_b": st["max_n_b"], "edge_islands": st["n_edge_islands"],
            "N_c": ph.N_c, "N_c_true": float((sim.truth >= 0).sum() / area), "N_a": ph.N_a, "N_b": ph.N_b,
            "f_methods": [ph.diagnostics["f_a_method"], ph.diagnostics["f_b_method"]]}


def main(argv=None):
    opt = common_parser(__doc__.splitlines()[0], "the 1e5 x 1e5 workload only, one repeat").parse_args(argv)
    gpu = use_gpu(opt)
    repeat = opt.repeat or (1 if opt.quick else 2)
    sizes = [100_000] if opt.quick else [100_000, 1_000_000]
    rec = Recorder("islands", opt, gpu, stages="islands+photometry", repeat=repeat)
    if gpu:  # warm-up: kernel compilation is not part of the timing
        run_once(*make_field(2000), "cupy")
    for n in sizes:
        name = f"1e{int(round(np.log10(n)))}x1e{int(round(np.log10(n)))}"
        t0 = time.perf_counter()
        sim, box = make_field(n)
        entry = {"simulate_s": time.perf_counter() - t0}
        ti, tp, res_np = timed(sim, box, "numpy", repeat)
        entry.update(numpy_islands_s=ti, numpy_photometry_s=tp, result=summary(*res_np, sim))
        rec.log(f"{name}: numpy islands {ti:.2f} s  photometry {tp:.2f} s  {entry['result']}")
        if gpu:
            ti_c, tp_c, res_cp = timed(sim, box, "cupy", repeat)
            entry.update(cupy_islands_s=ti_c, cupy_photometry_s=tp_c,
                         speedup_islands=ti / ti_c, speedup_photometry=tp / tp_c,
                         cupy_vs_numpy=compare(res_np, res_cp))
            rec.log(f"{name}: cupy islands {ti_c:.2f} s  photometry {tp_c:.2f} s  "
                    f"speedups {ti / ti_c:.1f}x / {tp / tp_c:.1f}x  {entry['cupy_vs_numpy']}")
        rec.report["workloads"][name] = entry
    rec.save()


if __name__ == "__main__":
    main()
