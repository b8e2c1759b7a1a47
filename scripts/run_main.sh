#!/usr/bin/env bash
# The main job: builds the library's programs, runs `facenet demo` (detect, align, draw, embed, compare)
# on the images given as arguments (or ../shared/images), then prints the kernel benchmark summary
# (GFLOP/s and the fraction of this machine's measured FMA peak). Each benchmark's filter can be
# overridden, e.g. FACENET_BENCH_FILTER_bench_gemm='square_512'.
set -euo pipefail
# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

declare -A default_filter=(
  [bench_peak]='<float>'             # single precision, 1 and 2 threads
  [bench_gemm]='batch1/threads2'     # ours vs Eigen at every shape, one image, both cores
  [bench_conv2d]='.'
)
benches=()
for b in bench_peak bench_gemm bench_conv2d; do
  if [[ -f "$root/benchmarks/$b.cpp" ]]; then benches+=("$b"); else echo "run_main: benchmarks/$b.cpp is missing; skipped" >&2; fi
done
((${#benches[@]})) || { echo "run_main: no benchmark sources found" >&2; exit 1; }

configure
cmake --build "$build_dir" -j 2 --target facenet_tool "${benches[@]}"

echo "run_main: facenet demo $*" >&2
"$build_dir/tools/facenet/facenet" demo "$@"

results=()
for b in "${benches[@]}"; do
  filter_var="FACENET_BENCH_FILTER_$b"
  filter="${!filter_var:-${default_filter[$b]}}"
  echo "run_main: $b --benchmark_filter='$filter'" >&2
  "$build_dir/benchmarks/$b" --benchmark_filter="$filter" --benchmark_min_time=0.1 \
    --benchmark_format=json >"$build_dir/$b.json"
  results+=("$build_dir/$b.json")
done

/usr/bin/python3 - "${results[@]}" <<'PY'
import json, os, sys

row = "{:<58} {:>12} {:>10} {:>7}"
print(row.format("benchmark", "time", "GFLOP/s", "%peak"))
for path in sys.argv[1:]:
    runs = json.load(open(path)).get("benchmarks", [])
    if not runs:
        print("  ({}: no benchmark matched the filter)".format(os.path.basename(path)[:-5]))
    for r in runs:
        if r.get("error_occurred"):
            print(row.format(r["name"], "error", "", "") + "  " + r.get("error_message", ""))
            continue
        time = "{:.3f} {}".format(r["real_time"], r["time_unit"])
        gflops = "{:.1f}".format(r["GFLOP"]) if "GFLOP" in r else ""
        peak = "{:.0f}%".format(r["%peak"]) if "%peak" in r else ""
        print(row.format(r["name"], time, gflops, peak))
PY
