#!/usr/bin/env bash
# GPU check, for a session that has a lent GPU (device tool).  Two stages, one device call each
# (a call may run 10 minutes at most):
#
#   here, once:   bash ../shared/tools/device-wheels.sh       # astropy wheels -> .whl/ (13 MB)
#   device call 1 (carry [".whl"]):  bash bench/gpu_check.sh tests
#   device call 2 (carry [".whl"]):  bash bench/gpu_check.sh bench
#
# `tests` runs the whole suite with the CuPy backend usable (every `backend`/`gpu_backend`
# fixture test then runs on CuPy and compares with NumPy); `bench` runs every bench/bench_*.py
# in --gpu mode with a time budget each.  Each stage writes raw logs and a JSON report
# (gpu_check_<stage>.json) into $OUT (the device tool's output folder; default
# bench/results/gpu-check-<UTC time>).  Copy them under bench/results/ and commit.
set -uo pipefail
stage=${1:-tests}
OUT=${OUT:-bench/results/gpu-check-$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$OUT"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl >"$OUT/install.log" 2>&1
  export PYTHONPATH=/tmp/site:$PWD
else
  export PYTHONPATH=$PWD
fi
export GPUMATCH_PROGRESS=0
{
  echo "date: $(date -u +%FT%TZ)"; echo "stage: $stage"
  echo "commit: $(git rev-parse HEAD 2>/dev/null || echo unknown)"
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.mem --format=csv 2>&1
  python3 -c "import cupy, numpy; print('cupy', cupy.__version__, 'numpy', numpy.__version__)" 2>&1
  python3 -m gpumatch.cli info 2>&1
} >"$OUT/machine_$stage.log"

rc=0
case "$stage" in
  tests)
    timeout 540 python3 -m pytest -q -rs -n 8 -p no:cacheprovider tests >"$OUT/tests.log" 2>&1
    rc=$?
    ;;
  bench)
    # budget per benchmark (s); the sum stays under the 10-minute call limit
    declare -A budget=([sky]=90 [onesided]=70 [auf]=170 [islands]=80 [assign]=40 [match]=90)
    for name in sky onesided auf islands assign match; do
      timeout "${budget[$name]}" python3 "bench/bench_$name.py" --gpu --out "$OUT" \
        >"$OUT/bench_$name.log" 2>&1 || { echo "bench_$name rc=$?" >>"$OUT/bench_failures.log"; rc=1; }
    done
    ;;
  *) echo "usage: bash bench/gpu_check.sh tests|bench" >&2; exit 2 ;;
esac

python3 - "$OUT" "$stage" "$rc" <<'PY'
import json, pathlib, re, sys
out, stage, rc = pathlib.Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
report = {"stage": stage, "rc": rc, "machine": (out / f"machine_{stage}.log").read_text()}
if stage == "tests":
    lines = (out / "tests.log").read_text().splitlines()
    report["summary"] = next((l for l in reversed(lines) if re.search(r"\d+ (passed|failed)", l)), "")
    report["skipped_reasons"] = sorted({l for l in lines if l.startswith("SKIPPED")})[:50]
else:
    report["results"] = sorted(p.name for p in out.glob("*.json") if not p.name.startswith("gpu_check"))
    fails = out / "bench_failures.log"
    report["failures"] = fails.read_text().splitlines() if fails.exists() else []
(out / f"gpu_check_{stage}.json").write_text(json.dumps(report, indent=2))
print(json.dumps({k: v for k, v in report.items() if k != "machine"}, indent=2))
PY
exit $rc
