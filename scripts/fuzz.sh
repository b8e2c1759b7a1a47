#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz with clang (ASan + UBSan, no recovery) and runs each one
# for SECONDS (default 600) from its seed corpus. Fails when any target crashes, leaks, hangs (10 s per
# input) or goes over 2 GiB; the input is saved to build-fuzz/crashes/<target>/. Keep a fixed crash as
# tests/fuzz/regressions/<target>/<name> so test_fuzz_regressions replays it in every normal build.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]     TARGET: safetensors, torch_zip, image, ... (default: all)
#
# FACENET_FUZZ_BUILD_DIR picks another build directory (default build-fuzz/), FACENET_FUZZ_JOBS the
# build parallelism (default 1). Each run ends with one line: target, seconds it ran, executions, exec/s.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${FACENET_FUZZ_BUILD_DIR:-$root/build-fuzz}"
seconds="${1:-600}"
shift || true
[[ "$seconds" =~ ^[0-9]+$ ]] || { echo "fuzz.sh: SECONDS must be a whole number, got '$seconds'" >&2; exit 2; }

bash "$root/scripts/install_deps.sh"  # clang, libclang-rt-14-dev (libFuzzer) and libomp-dev among them

targets=("$@")
if ((${#targets[@]} == 0)); then
  for d in "$root"/tests/fuzz/corpus/*/; do targets+=("$(basename "$d")"); done
fi

[[ -f "$build/CMakeCache.txt" ]] || cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_CXX_COMPILER=clang++ -DFACENET_FUZZ=ON -DFACENET_BUILD_TESTS=OFF -DFACENET_BUILD_BENCHMARKS=OFF \
  -DFACENET_BUILD_EXAMPLES=OFF -DFACENET_INSTALL=OFF
cmake --build "$build" -j "${FACENET_FUZZ_JOBS:-1}" --target "${targets[@]/#/fuzz_}"

# Longest input per target: a few times its largest seed, so mutations can grow a file without the
# fuzzer spending its time on megabyte inputs.
max_len() {
  case "$1" in
    safetensors | torch_zip | npz | image) echo 16384 ;;
    checkpoint) echo 32768 ;;
    *) echo 8192 ;;
  esac
}

failed=()
for t in "${targets[@]}"; do
  work="$build/corpus/$t"
  crashes="$build/crashes/$t"
  mkdir -p "$work" "$crashes"
  log="$build/fuzz_$t.log"
  echo "== fuzz_$t: $seconds s (log: $log)"
  started=$SECONDS
  set +e
  "$build/tests/fuzz/fuzz_$t" -max_total_time="$seconds" -max_len="$(max_len "$t")" -rss_limit_mb=2048 \
    -timeout=10 -print_final_stats=1 -artifact_prefix="$crashes/" "$work" "$root/tests/fuzz/corpus/$t" >"$log" 2>&1
  rc=$?
  set -e
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
  echo "fuzz_$t: $((SECONDS - started)) s, ${execs:-?} executions, ${rate:-?} exec/s, exit $rc"
  if ((rc != 0)); then
    failed+=("$t")
    grep -E "^==[0-9]+==ERROR|SUMMARY|runtime error|Test unit written" "$log" | head -5 || true
  fi
done

if ((${#failed[@]})); then
  echo "fuzz.sh: crashes in: ${failed[*]} (inputs under $build/crashes/)" >&2
  exit 1
fi
echo "fuzz.sh: ${#targets[@]} targets ran ${seconds} s each without a crash"
