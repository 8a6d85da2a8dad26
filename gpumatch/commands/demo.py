"""``gpumatch demo``: the main jobs on a built-in simulated field, end to end."""
from __future__ import annotations

import json
import shutil
import time
from importlib.resources import files
from pathlib import Path


def register(sub):
    p = sub.add_parser(
        "demo", help="simulate a Galactic-Centre-like field and run the one-sided and symmetric matches on it",
        description="Write a seeded simulated field (Muno-like X-ray CSV, 7 GALACTICNUCLEUS-like VizieR TSV "
                    "tiles, a VVV-like CSV, HMXB-like candidates and the truth table) into OUT/data, copy the "
                    "example configs (onesided.toml, match.toml: every key documented) next to it, run "
                    "'gpumatch onesided' and 'gpumatch match' on them, score the results against the truth, "
                    "and print where every output is.  Units: positions in deg, errors in arcsec, "
                    "magnitudes in mag.")
    p.add_argument("--out", default="demo-output", metavar="DIR",
                   help="output folder (default ./demo-output); existing demo outputs in it are replaced")
    p.add_argument("--seed", type=int, default=7, help="seed of the simulated field (default 7)")
    p.add_argument("--no-figures", action="store_true", help="skip the figures (faster)")
    p.add_argument("--skip-symmetric", action="store_true", help="run only the one-sided (notebook) job")
    p.set_defaults(func=run)
    return p


def _score_symmetric(tables: Path, truth_csv: Path) -> dict:
    """Precision/recall of the accepted X-ray -> GN matches against the simulator's truth.

    Recall counts the true pairs whose two sources both passed the filters (HR0, colour).
    """
    import pandas as pd

    from ..io import read_table

    truth = pd.read_csv(truth_csv)
    m, _ = read_table(tables / "matches.csv")
    removed = {}
    for side in ("xray", "GN"):
        nm, _ = read_table(tables / f"nonmatches_{side}.csv")
        removed[side] = set(nm.loc[nm.reason == "filtered", "index"])
    tp_mask = (truth.index_b >= 0) & ~truth.index_a.isin(removed["xray"]) & ~truth.index_b.isin(removed["GN"])
    true_pairs = set(zip(truth.index_a[tp_mask], truth.index_b[tp_mask]))
    got = set(zip(m.index_a, m.index_b))
    tp = len(got & true_pairs)
    prec = tp / len(got) if got else float("nan")
    rec = tp / len(true_pairs) if true_pairs else float("nan")
    return {"accepted": len(got), "true_pairs": len(true_pairs), "correct": tp, "precision": prec, "recall": rec}


def run(args) -> int:
    from ..onesided.run import run_from_config as run_onesided_config
    from ..onesided.run import write_demo_inputs
    from ..symmetric_config import run_from_config as run_match_config

    out = Path(args.out)
    data = out / "data"
    for sub in ("data", "onesided", "match"):
        shutil.rmtree(out / sub, ignore_errors=True)
    data.mkdir(parents=True, exist_ok=True)
    backend = getattr(args, "backend", None)
    t0 = time.perf_counter()
    write_demo_inputs(data, seed=args.seed)
    for name in ("onesided.toml", "match.toml"):
        (out / name).write_text(files("gpumatch.data").joinpath(name).read_text())
    print(f"[demo] simulated field (seed {args.seed}) written to {data}")

    print("[demo] one-sided job (the notebook's workflow, corrected): gpumatch onesided "
          f"{out / 'onesided.toml'}")
    s1 = run_onesided_config(out / "onesided.toml", backend=backend, out=out / "onesided",
                             figures=not args.no_figures, seed=None)
    print(s1["text"])
    report = {"seed": args.seed, "onesided": str(out / "onesided")}
    if not args.skip_symmetric:
        print(f"[demo] symmetric job (Wilson & Naylor 2018): gpumatch match {out / 'match.toml'}")
        s2 = run_match_config(out / "match.toml", backend=backend, out=out / "match",
                              figures=not args.no_figures)
        print(s2["text"], end="")
        tables = out / "match" / "tables"
        if (tables / "matches.csv").exists():
            sc = _score_symmetric(tables, data / "truth.csv")
            report["symmetric_vs_truth"] = sc
            print(f"[demo] symmetric matches vs the simulator's truth: {sc['correct']} of {sc['accepted']} "
                  f"accepted are true pairs (precision {sc['precision']:.3f}); recall {sc['recall']:.3f} "
                  f"of the {sc['true_pairs']} true pairs that passed the filters")
        report["match"] = str(out / "match")
    report["seconds"] = round(time.perf_counter() - t0, 1)
    (out / "demo.json").write_text(json.dumps(report, indent=2))
    print(f"[demo] done in {report['seconds']} s. Outputs:")
    print(f"  inputs        {data}/ (xray.csv, ir_tile1-7.tsv, vvv.csv, candidates.csv, truth.csv)")
    print(f"  one-sided     {out / 'onesided'}/ (summary.txt, tables/, figures/)")
    if not args.skip_symmetric:
        print(f"  symmetric     {out / 'match'}/ (summary.txt, tables/, figures/)")
    print(f"  configs       {out / 'onesided.toml'}, {out / 'match.toml'} (edit and rerun with "
          f"'gpumatch onesided' / 'gpumatch match')")
    return 0
