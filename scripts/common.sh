# shellcheck shell=bash
# Sourced by the scripts in this directory: the repository root, the build directory and the configure
# step they share. FACENET_BUILD_DIR picks another build directory; FACENET_CMAKE_ARGS adds options
# (e.g. FACENET_CMAKE_ARGS="-DFACENET_SANITIZE=address,undefined").
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build_dir="${FACENET_BUILD_DIR:-$root/build}"

# Installs the dependencies and configures a Release build (Ninja unless the directory already uses
# another generator).
configure() {
  bash "$root/scripts/install_deps.sh"
  local generator=()
  [[ -f "$build_dir/CMakeCache.txt" ]] || generator=(-G Ninja)
  # shellcheck disable=SC2086  # FACENET_CMAKE_ARGS is a list of words on purpose
  cmake -S "$root" -B "$build_dir" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release ${FACENET_CMAKE_ARGS:-}
}

# timed LABEL COMMAND...: runs COMMAND and then prints how long it took, so a CI log shows where its
# time went; keeps COMMAND's exit status.
timed() {
  local label=$1 start=$SECONDS status=0
  shift
  "$@" || status=$?
  echo "== $label: $((SECONDS - start)) s"
  return $status
}
