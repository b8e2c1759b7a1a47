#!/usr/bin/env bash
# Builds everything in build/ (Release) and runs the whole test suite; exits non-zero on any failure.
# Then, in CI (CI=true) or with FACENET_SANITIZED_TESTS=1, the ASan+UBSan and TSan runs of
# scripts/run_sanitized_tests.sh (FACENET_SANITIZED_TESTS=0 skips them).
set -euo pipefail
# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

configure
timed "Release build" cmake --build "$build_dir" -j 2
cd "$build_dir"
# ctest ends with its summary (pass count and the names of failed tests).
timed "Release tests" ctest -j 2 --output-on-failure

default_sanitized=0
[[ "${CI:-}" == true ]] && default_sanitized=1
if [[ "${FACENET_SANITIZED_TESTS:-$default_sanitized}" == 1 ]]; then
  bash "$root/scripts/run_sanitized_tests.sh"
fi
