"""Benchmark of per-island counterpart assignment (gpumatch.assign.evaluate_islands).

Workloads (synthetic islands of realistic shapes, seeded):
  gc_field   -- Galactic-Centre-like: 1,438 islands with 1-4 X-ray sources and up to 127
                infrared sources (31 islands with more than 20), every X-ray source paired with
                most infrared sources of its island;
  many_small -- many 1-3 x 1-3 islands (an optical/IR match of a sparse field);
  wide       -- islands of 12 x 200 (the exact programme at 4,096 states).
Each workload runs on NumPy and, where a GPU is usable (or --gpu), on CuPy; the CuPy
results are checked against NumPy (identical best hypotheses, max relative float difference).

Usage: python bench/bench_assign.py [--quick] [--gpu] [--out DIR] [--repeat N]
Writes DIR/bench_assign[_quick]_<cpu|gpu>.json and .log (default DIR: bench/results).
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gpumatch.assign import evaluate_islands  # noqa: E402
from benchlib import Recorder, common_parser, use_gpu  # noqa: E402


def make_islands(shapes, rng, density=0.8):
    """CSR inputs for islands of the given (n_a, n_b) shapes; every island has its pairs
    drawn with probability ``density`` (at least one per A source), ln r ~ N(-1, 3)."""
    shapes = np.asarray(shapes, dtype=np.int64)
    ptr_a = np.concatenate([[0], np.cumsum(shapes[:, 0])])
    ptr_b = np.concatenate([[0], np.cumsum(shapes[:, 1])])
    pi, pa, pb = [], [], []
    for k, (na, nb) in enumerate(shapes):
        keep = rng.random((na, nb)) < density
        keep[np.arange(na), rng.integers(0, nb, na)] = True
        a, b = np.nonzero(keep)
        pi.append(np.full(len(a), k))
        pa.append(ptr_a[k] + a)
        pb.append(ptr_b[k] + b)
    pi, pa, pb = (np.concatenate(x) for x in (pi, pa, pb))
    w = rng.normal(-1.0, 3.0, len(pi))
    return (ptr_a, np.arange(ptr_a[-1]), ptr_b, np.arange(ptr_b[-1]), pi, pa, pb, w)


def gc_shapes(rng, n=1438):
    """1-4 X-ray sources; infrared counts with a long tail: max 127, 31 islands above 20."""
    nx = rng.choice([1, 2, 3, 4], size=n, p=[0.80, 0.13, 0.05, 0.02])
    nir = np.minimum(1 + rng.geometric(0.22, n), 20)
    tail = rng.choice(n, 31, replace=False)
    nir[tail] = rng.integers(21, 128, 31)
    nir[tail[0]] = 127
    return np.stack([nx, nir], axis=1)


def workloads(quick: bool, rng):
    n_small = 20_000 if quick else 500_000
    n_wide = 2 if quick else 20
    return {
        "gc_field": make_islands(gc_shapes(rng), rng),
        "many_small": make_islands(rng.integers(1, 4, (n_small, 2)), rng),
        "wide_12x200": make_islands(np.tile([12, 200], (n_wide, 1)), rng, density=0.5),
    }


def describe(args):
    ptr_a, _, ptr_b, _, pi, *_ = args
    na, nb = np.diff(ptr_a), np.diff(ptr_b)
    return {"islands": int(len(na)), "sources_a": int(ptr_a[-1]), "sources_b": int(ptr_b[-1]),
            "pairs": int(len(pi)), "max_a": int(na.max()), "max_b": int(nb.max()),
            "max_small_side": int(np.minimum(na, nb).max())}


def timed(args, backend, repeat):
    best, res = np.inf, None
    for _ in range(repeat):
        t0 = time.perf_counter()
        res = evaluate_islands(*args, backend=backend)
        best = min(best, time.perf_counter() - t0)
    return best, res


def compare(a, b):
    same = bool(np.array_equal(a.pair_in_best, b.pair_in_best)
                and np.array_equal(a.best_log_weight, b.best_log_weight))
    rel = 0.0
    for f in ("log_evidence", "pair_prob", "p_none_a", "p_none_b"):
        x, y = getattr(a, f), getattr(b, f)
        d = np.abs(x - y) / np.maximum(np.abs(x), 1e-300)
        rel = max(rel, float(np.max(np.where(x == y, 0.0, d), initial=0.0)))
    return {"best_identical": same, "max_rel_diff": rel}


def main(argv=None):
    opt = common_parser(__doc__.splitlines()[0], "small workloads (seconds)").parse_args(argv)
    gpu = use_gpu(opt)
    repeat = opt.repeat or (1 if opt.quick else 3)
    rng = np.random.default_rng(20241121)
    rec = Recorder("assign", opt, gpu, repeat=repeat)
    for name, args in workloads(opt.quick, rng).items():
        entry = {"shape": describe(args)}
        if gpu:                    # warm-up: kernel compilation is not part of the timing
            evaluate_islands(*make_islands([[2, 3], [5, 1]], rng), backend="cupy")
        t_np, r_np = timed(args, "numpy", repeat)
        entry["numpy_s"] = t_np
        rec.log(f"{name}: {entry['shape']}  numpy {t_np:.3f} s")
        if gpu:
            t_cp, r_cp = timed(args, "cupy", repeat)
            entry["cupy_s"] = t_cp
            entry["speedup"] = t_np / t_cp
            entry["cupy_vs_numpy"] = compare(r_np, r_cp)
            rec.log(f"{name}: cupy {t_cp:.3f} s  speedup {t_np / t_cp:.1f}x  {entry['cupy_vs_numpy']}")
        entry["status_counts"] = {int(k): int(v) for k, v in zip(*np.unique(r_np.status, return_counts=True))}
        rec.report["workloads"][name] = entry
    rec.save()


if __name__ == "__main__":
    main()
