#!/usr/bin/env bash
# Builds everything in build/ (Release) and runs the whole test suite; exits non-zero on any failure.
set -euo pipefail
# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

configure
cmake --build "$build_dir" -j 2
cd "$build_dir"
# ctest ends with its summary (pass count and the names of failed tests).
ctest -j 2 --output-on-failure
