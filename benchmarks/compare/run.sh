#!/usr/bin/env bash
# Side-by-side comparison with ONNX Runtime, PyTorch and OpenCV dnn (see compare.py for what is timed).
# Installs what it needs (Debian packages, onnxruntime-node from npm into a cache outside the repo),
# builds facenet_timer and bench_peak in BUILD_DIR, then runs compare.py with the given options:
#
#   bash benchmarks/compare/run.sh [--quick] [--cases irv1_b1,nn4_b64] [--output report.md]
#
# Environment: BUILD_DIR (default /tmp/build_compare_release), CACHE_DIR (default
# ~/.cache/facenet-compare), ORT_VERSION (default 1.30.0), JOBS (default 1: the machine is shared).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
build="${BUILD_DIR:-/tmp/build_compare_release}"
cache="${CACHE_DIR:-$HOME/.cache/facenet-compare}"
ort_version="${ORT_VERSION:-1.30.0}"

# Debian packages besides the project's own: ONNX export, OpenCV dnn, jemalloc and the OpenMP
# OpenBLAS a tuned PyTorch user would preload, node/npm for ONNX Runtime.
# A node from elsewhere (e.g. NodeSource's nodejs, which bundles npm and conflicts with Debian's npm) is kept.
extra=(python3-onnx python3-opencv libjemalloc2 libopenblas0-openmp)
command -v npm >/dev/null || extra+=(nodejs npm)
bash "$repo/scripts/install_deps.sh" "${extra[@]}"

# onnxruntime-node's install script fetches CUDA provider binaries from nuget; the CPU build is in
# the npm package itself, so skip that step.
if [[ ! -f "$cache/node_modules/onnxruntime-node/package.json" ]] ||
   ! grep -q "\"version\": \"$ort_version\"" "$cache/node_modules/onnxruntime-node/package.json"; then
  mkdir -p "$cache"
  (cd "$cache" && { [[ -f package.json ]] || npm init -y >/dev/null; } &&
    ONNXRUNTIME_NODE_INSTALL=skip npm install --no-audit --no-fund "onnxruntime-node@$ort_version")
fi

if [[ ! -f "$build/build.ninja" ]]; then
  cmake -S "$repo" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release
fi
nice -n 10 cmake --build "$build" --target facenet_timer bench_peak -j "${JOBS:-1}"

exec /usr/bin/python3 "$here/compare.py" --timer "$build/benchmarks/facenet_timer" \
  --peak "$build/benchmarks/bench_peak" --node-modules "$cache/node_modules" --work "$cache/work" "$@"
