#!/usr/bin/env bash
# Compile every kernels/*.cu to PTX for sm_80 and sm_90 with the same options the
# runtime uses (--fmad=false), so a kernel that does not compile fails without a GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v nvcc >/dev/null || { echo "nvcc not found" >&2; exit 1; }
out=$(mktemp -d)
for f in kernels/*.cu; do
  for arch in sm_80 sm_90; do
    nvcc --ptx --std=c++14 --fmad=false -arch="$arch" -Ikernels -o "$out/$(basename "$f" .cu).$arch.ptx" "$f"
  done
  echo "compiled $f (sm_80, sm_90)"
done
rm -rf "$out"
