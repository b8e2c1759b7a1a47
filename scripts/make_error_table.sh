#!/usr/bin/env bash
# Regenerates docs/errors.md from the built facenet tool (build/ or $FACENET_BUILD_DIR); --check only
# compares. Build the tool first: cmake --build build --target facenet_tool
set -euo pipefail
# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
exec /usr/bin/python3 "$root/scripts/make_error_table.py" --tool "$build_dir/tools/facenet/facenet" \
  --out "$root/docs/errors.md" "$@"
