#!/usr/bin/env bash
# Installs the Debian 12 packages facenet needs to build, test and benchmark (and the Python ones the
# parity-fixture generators use), plus any package names given as arguments. Quick when everything
# is already there: apt is not touched then.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config meson
  libeigen3-dev libxsimd-dev libstb-dev
  libgtest-dev libbenchmark-dev
  python3-torch python3-numpy python3-protobuf  # parity fixtures against the reference implementations
  clang libclang-rt-14-dev libomp-dev           # sanitizer and fuzzing builds (libomp: OpenMP with clang)
)
packages+=("$@")  # extra packages a caller needs, e.g. benchmarks/compare's contenders

missing=()
for p in "${packages[@]}"; do
  # "ii" = wanted and installed; dpkg -s alone also succeeds for removed packages with config left.
  if [[ "$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null)" != ii* ]]; then missing+=("$p"); fi
done
if ((${#missing[@]} == 0)); then
  echo "install_deps: all ${#packages[@]} packages are installed"
  exit 0
fi

sudo=()
if ((EUID != 0)); then
  command -v sudo >/dev/null || { echo "install_deps: run as root (or install sudo) to install: ${missing[*]}" >&2; exit 1; }
  sudo=(sudo)
fi
echo "install_deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update
"${sudo[@]}" apt-get install -y "${missing[@]}"
