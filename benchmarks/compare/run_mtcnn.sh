#!/usr/bin/env bash
# MTCNN detection, ours next to facenet-pytorch on CPU (see mtcnn_facenet_pytorch.py for what is
# timed and how facenet-pytorch is found). Installs the Debian packages it needs, builds bench_mtcnn
# in BUILD_DIR, then runs the comparison with the given options:
#
#   bash benchmarks/compare/run_mtcnn.sh [--threads 2] [--rounds 5] [--seconds 1]
#
# Environment: BUILD_DIR (default /tmp/build_mtcnn_compare), FACENET_PYTORCH_DIR (a facenet-pytorch
# checkout), FACENET_SHARED (default ../shared), JOBS (default 1: the machine may be shared).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
build="${BUILD_DIR:-/tmp/build_mtcnn_compare}"

packages=(python3-torch python3-torchvision python3-numpy python3-pil libbenchmark-dev cmake ninja-build)
missing=()
for p in "${packages[@]}"; do
  [[ "$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null)" == ii* ]] || missing+=("$p")
done
if ((${#missing[@]})); then
  sudo=()
  ((EUID == 0)) || sudo=(sudo)
  echo "mtcnn compare: installing ${missing[*]}" >&2
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y --no-install-recommends "${missing[@]}"
fi

[[ -f "$build/CMakeCache.txt" ]] || cmake -S "$repo" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release >&2
cmake --build "$build" --target bench_mtcnn -j "${JOBS:-1}" >&2
exec /usr/bin/python3 "$here/mtcnn_facenet_pytorch.py" --bench "$build/benchmarks/bench_mtcnn" "$@"
