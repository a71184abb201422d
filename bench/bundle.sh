#!/bin/bash
# Prepares the .device folder that bench/h200.sh needs on the H200 host
# (/work/shared/docs/GPU.md), on a build machine:
#   1. a Release build in build-h200 with every GPU backend whose folder exists
#      forced ON (a missing SDK is an error, not a quiet skip);
#   2. .device/bundle: the efla program, the test programs and libefla.so with the
#      libraries they need (device-bundle.sh), and COMMIT;
#   3. .device/debs: the Vulkan and OpenCL loaders and glvnd (downloaded once);
#   4. .fla: fla's fla/ package exported from a fetched mirror, if one is given, and
#      the pure-Python packages it imports (einops, packaging) in .fla/deps;
#   5. checks that what travels stays under 64 MiB.
# usage: bench/bundle.sh [FLA_GIT_DIR]   (from anywhere; FLA_GIT_DIR is a git dir of
#        fla-org/flash-linear-attention, e.g. /work/.mirror/fla-org+flash-linear-attention/repo)
# Environment: BUILD_DIR (default build-h200), JOBS (default 2), EXTRA_CMAKE_ARGS (after
#              the defaults, so they win), DEVICE_DIR (default .device; another folder for a
#              dry run), DEVICE_BUNDLE (default ../shared/tools/device-bundle.sh, then
#              /work/shared/tools/device-bundle.sh)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
build=${BUILD_DIR:-build-h200}
fla_git=${1:-}
dev=${DEVICE_DIR:-.device}
limit_mib=64
debs=(libvulkan1 libglvnd0 libglx0 libgl1 libegl1 libopengl0 libgles2 ocl-icd-libopencl1)

configure_and_build() {
  local api options=(-DCMAKE_BUILD_TYPE=Release)
  for api in cuda vulkan opencl; do
    if [ -f "backends/$api/CMakeLists.txt" ]; then
      options+=("-DEFLA_${api^^}=ON")
    else
      options+=("-DEFLA_${api^^}=OFF")
      echo "bundle: backends/$api does not exist yet: built without it"
    fi
  done
  read -r -a extra <<< "${EXTRA_CMAKE_ARGS:-}"
  cmake -S . -B "$build" "${options[@]}" "${extra[@]}"
  cmake --build "$build" -j"${JOBS:-2}"
}

make_bundle() {
  local tool=${DEVICE_BUNDLE:-$root/../shared/tools/device-bundle.sh}
  [ -x "$tool" ] || tool=/work/shared/tools/device-bundle.sh
  local tests=()
  mapfile -t tests < <(find "$build/tests" -maxdepth 1 -type f -name 'test_*' -perm -u+x 2> /dev/null | sort)
  echo "bundle: ${#tests[@]} test programs"
  rm -rf "$dev/bundle"
  "$tool" "$dev/bundle" "$build/tools/efla" "${tests[@]}" "$build/libefla.so"
  git describe --always --dirty > "$dev/bundle/COMMIT"
  echo "bundle: commit $(cat "$dev/bundle/COMMIT")"
}

# GPU.md's download, once: only the packages not yet in $dev/debs.
download_debs() {
  local pkg missing=()
  mkdir -p "$dev/debs"
  for pkg in "${debs[@]}"; do
    compgen -G "$dev/debs/${pkg}_*.deb" > /dev/null || missing+=("$pkg")
  done
  if [ ${#missing[@]} -eq 0 ]; then
    echo "bundle: $dev/debs complete"
    return
  fi
  local lists
  lists=$(mktemp -d)
  mkdir -p "$lists/partial"
  local o=(-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 "-oDir::State::Lists=$lists")
  apt-get "${o[@]}" update
  (cd "$dev/debs" && apt-get "${o[@]}" download "${missing[@]}")
  rm -rf "$lists"
}

export_fla() {
  [ -n "$fla_git" ] || return 0
  rm -rf .fla
  mkdir -p .fla
  git --git-dir="$fla_git" archive HEAD fla | tar -x -C .fla
  git --git-dir="$fla_git" rev-parse --short HEAD > .fla/FLA_COMMIT
  echo "bundle: fla $(cat .fla/FLA_COMMIT) exported into .fla"
  fla_python_deps
}

# fla imports einops and packaging, which the host may lack (it cannot install
# packages): their pure-Python wheels go to .fla/deps, which fla_compare.py puts
# last on sys.path, so the host's own copies win.
fla_python_deps() {
  local wheels whl
  wheels=$(mktemp -d)
  if pip download --quiet --no-deps -d "$wheels" einops packaging; then
    for whl in "$wheels"/*.whl; do
      python3 -m zipfile -e "$whl" .fla/deps
    done
    echo "bundle: $(cd "$wheels" && echo *.whl) unpacked into .fla/deps"
  else
    echo "bundle: warning: could not download einops/packaging; fla needs them on the host" >&2
  fi
  rm -rf "$wheels"
}

check_size() {
  local device_kib fla_kib=0
  device_kib=$(du -sk "$dev" | cut -f1)
  [ -d .fla ] && fla_kib=$(du -sk .fla | cut -f1)
  echo "bundle: $dev $((device_kib / 1024)) MiB, .fla $((fla_kib / 1024)) MiB (limit ${limit_mib} MiB together)"
  if [ $((device_kib + fla_kib)) -gt $((limit_mib * 1024)) ]; then
    echo "bundle: too large for the device machine's ${limit_mib} MiB" >&2
    return 1
  fi
}

configure_and_build
make_bundle
download_debs
export_fla
check_size
echo "bundle: ready; on the host: bash bench/h200.sh (carry .device and .fla)"
