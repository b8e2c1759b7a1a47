#!/usr/bin/env bash
# Wall time to build (compile + link) irv1_embed.cpp at -O2, for the default x86-64 target and with
# -march=native, median of 3 builds each, then runs the program once. Issue #7's goal: <= 20 s at -O2.
#   benchmarks/compile_time/run.sh [CXX]        (default g++)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cxx="${1:-g++}"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
for arch in "" "-march=native"; do
  times=()
  for _ in 1 2 3; do
    start=$(date +%s%N)
    # shellcheck disable=SC2086  # $arch is empty or one flag
    "$cxx" -std=c++17 -O2 $arch -fopenmp -I"$root/include" -I/usr/include/eigen3 "$here/irv1_embed.cpp" -o "$out/irv1_embed"
    times+=("$(( ($(date +%s%N) - start) / 1000000 ))")
  done
  median=$(printf '%s\n' "${times[@]}" | sort -n | sed -n 2p)
  printf '%s -O2 %-14s builds (ms): %s; median %d.%d s\n' "$cxx" "${arch:-(x86-64)}" "${times[*]}" $((median / 1000)) $((median % 1000 / 100))
done
"$out/irv1_embed"
