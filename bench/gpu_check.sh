#!/usr/bin/env bash
# GPU check: run on a lent GPU machine (device tool) from the repository root, in ONE call:
#   carry [".whl"] (prepared here by ../shared/tools/device-wheels.sh), then
#   bash bench/gpu_check.sh
# It installs the missing wheels, runs every CuPy-parametrised test (and the rest of the
# suite on the NumPy path), runs each benchmark in its GPU mode, and writes a report
# (gpu_check.json + raw logs) into $OUT (default bench/results/gpu-check-DATE) so the
# session can commit it under bench/results/.
set -uo pipefail
OUT=${OUT:-bench/results/gpu-check-$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$OUT"
if [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl >"$OUT/install.log" 2>&1
  export PYTHONPATH=/tmp/site:$PWD
else
  export PYTHONPATH=$PWD
fi
export GPUMATCH_PROGRESS=0
{
  echo "date: $(date -u +%FT%TZ)"; echo "commit: $(git rev-parse HEAD 2>/dev/null || echo unknown)"
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.mem --format=csv 2>&1
  python3 -c "import cupy, numpy; print('cupy', cupy.__version__, 'numpy', numpy.__version__)" 2>&1
  python3 -m gpumatch.cli info 2>&1
} >"$OUT/machine.log"
# 1. tests: everything, CuPy backend included (the `backend` fixture runs cupy where usable)
python3 -m pytest -q -rs -p no:cacheprovider tests >"$OUT/tests.log" 2>&1
test_rc=$?
# 2. benchmarks, each in its own log; a failing benchmark does not stop the others
bench_rc=0
for b in bench/bench_*.py; do
  name=$(basename "$b" .py)
  timeout 900 python3 "$b" --gpu --out "$OUT" >"$OUT/$name.log" 2>&1 || bench_rc=$((bench_rc + 1))
done
python3 - "$OUT" "$test_rc" "$bench_rc" <<'PY'
import json, re, sys, pathlib
out, test_rc, bench_rc = pathlib.Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
tests = (out / "tests.log").read_text().splitlines()
summary = next((l for l in reversed(tests) if re.search(r"\d+ (passed|failed)", l)), "")
report = {"tests_rc": test_rc, "tests_summary": summary, "benchmarks_failed": bench_rc,
          "machine": (out / "machine.log").read_text(),
          "benchmark_results": sorted(p.name for p in out.glob("*.json") if p.name != "gpu_check.json")}
(out / "gpu_check.json").write_text(json.dumps(report, indent=2))
print(json.dumps(report, indent=2))
PY
exit $test_rc
