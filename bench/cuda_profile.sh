#!/bin/bash
# Profiles the CUDA backend on one shape (S1 of PERFORMANCE.md, bf16) on the
# H200 host: nsys (per-kernel time table) when found, else ncu (basic set,
# first launches of each kernel); says so when neither exists.
# usage, on the host, from the checkout's root:  bash bench/cuda_profile.sh
# Environment: OUT (default ./h200-out), BUNDLE (default .device/bundle),
#   SHAPE (default 1,8192,16,16,128,128), EFLA_PATH (default cuda:mma)
set -uo pipefail
OUT=${OUT:-$PWD/h200-out}
BUNDLE=${BUNDLE:-$PWD/.device/bundle}
SHAPE=${SHAPE:-1,8192,16,16,128,128}
export EFLA_PATH=${EFLA_PATH:-cuda:mma}
export LD_LIBRARY_PATH=$BUNDLE/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
mkdir -p "$OUT"
report=$OUT/cuda-profile.txt
bench=("$BUNDLE/bin/efla" bench --backend cuda --storage bf16 --shape "$SHAPE" --iters 20)
tool() { command -v "$1" 2>/dev/null || { [ -x "/usr/local/cuda/bin/$1" ] && echo "/usr/local/cuda/bin/$1"; }; }
nsys=$(tool nsys)
ncu=$(tool ncu)
{
  echo "# efla CUDA profile: ${bench[*]}  (EFLA_PATH=$EFLA_PATH, $(date -u))"
  if [ -n "$nsys" ]; then
    tmp=$(mktemp -d)
    timeout 300 "$nsys" profile --stats=true --force-overwrite=true -o "$tmp/efla" "${bench[@]}"
    echo "nsys exit: $?"
    rm -rf "$tmp"
  elif [ -n "$ncu" ]; then
    timeout 300 "$ncu" --set basic --launch-count 8 "${bench[@]}"
    echo "ncu exit: $?"
  else
    echo "nsys and ncu are missing (PATH and /usr/local/cuda/bin); plain timing instead:"
    timeout 120 "${bench[@]}"
  fi
} >"$report" 2>&1
tail -n 40 "$report"
