#!/bin/bash
# The whole GPU run on the H200 host in one go (/work/shared/docs/GPU.md): set
# the host up, then efla info, the conformance tests per backend and per
# kernel path, efla bench per backend, and bench/fla_compare.py per backend.
# Every step's output is kept in $OUT; a failing step is recorded and the run
# goes on; every step has a time limit and the whole run stays within
# BUDGET_S. A table of the steps comes last (also $OUT/summary.txt).
#
# usage, on the host, from the checkout's root (the .device folder made by
# bench/bundle.sh beside it):   bash bench/h200.sh
#
# Environment (all optional):
#   OUT            output folder (default ./h200-out)
#   BUDGET_S       the whole run's time limit in seconds (default 540)
#   BACKENDS       backends to run (default: the GPU backends compiled into the bundle)
#   CUDA_PATHS     kernel paths the tests force with EFLA_PATH (default "simt mma")
#   VULKAN_PATHS   (default "portable")      OPENCL_PATHS (default "portable nvmma")
#                  a path named "default" runs with EFLA_PATH unset
#   TEST_LIMIT_S   one test program's limit (default 120); a (backend, path) step gets
#                  at most STEP_TEST_LIMIT_S (default 150)
#   BENCH_LIMIT_S  efla bench per backend (default 90)
#   FLA_LIMIT_S    fla_compare per backend (default 150)
#   TESTS_UNTIL_S  no test step runs past this many seconds into the run (default 270),
#   BENCH_UNTIL_S  nor a bench step past this (default 360): a slow phase cannot starve
#                  the fla comparison, which gets the rest of BUDGET_S
#   BENCH_ARGS     extra arguments for efla bench;  FLA_ARGS extra ones for fla_compare
#   FLA_BACKENDS   backends fla_compare runs beside fla (default: every backend run)
#   TEST_PROGRAMS  only these test programs (see run_tests.sh)
#   The PTX-JIT test step keeps the driver's JIT cache in $OUT/cuda-cache and runs
#   PTX_JIT_JOBS tests at once (default: the CPU count; each test process JITs on the CPU)
# Results: $OUT/bench-<backend>.jsonl (efla bench --json), $OUT/fla-<backend>.json; the
# Markdown for docs/BENCHMARKS.md: python3 bench/to_markdown.py --bench ... --fla ...
#   SKIP_SETUP=1   leave the system alone (a dry run on a build machine)
#   BUNDLE         the bundle folder (default .device/bundle)
set -uo pipefail

OUT=${OUT:-$PWD/h200-out}
BUDGET_S=${BUDGET_S:-540}
BUNDLE=${BUNDLE:-$PWD/.device/bundle}
CUDA_PATHS=${CUDA_PATHS:-simt mma}
VULKAN_PATHS=${VULKAN_PATHS:-portable}
OPENCL_PATHS=${OPENCL_PATHS:-portable nvmma}
TEST_LIMIT_S=${TEST_LIMIT_S:-120}
PTX_JIT_JOBS=${PTX_JIT_JOBS:-$(nproc)}
STEP_TEST_LIMIT_S=${STEP_TEST_LIMIT_S:-150}
BENCH_LIMIT_S=${BENCH_LIMIT_S:-90}
FLA_LIMIT_S=${FLA_LIMIT_S:-150}
TESTS_UNTIL_S=${TESTS_UNTIL_S:-270}
BENCH_UNTIL_S=${BENCH_UNTIL_S:-360}
read -r -a bench_args <<< "${BENCH_ARGS:-}"
read -r -a fla_args <<< "${FLA_ARGS:-}"
here=$(cd "$(dirname "$0")" && pwd)
self=$here/$(basename "$0")
efla=$BUNDLE/bin/efla
reserve_s=5 # kept back for the summary

mkdir -p "$OUT"
started=$SECONDS
summary=()
phase_end=$BUDGET_S # the current phase's deadline, in seconds into the run

# step NAME LIMIT_S COMMAND...: bench/steps.sh
. "$here/steps.sh"

# GPU.md's "each run" steps: the loaders from .deb files, the NVIDIA OpenCL ICD,
# the bundle's libraries; a Vulkan driver file where the loader finds none.
setup_host() {
  local f icd=/usr/lib/libnvidia-opencl.so.1
  shopt -s nullglob
  for f in .device/debs/*.deb; do
    echo "dpkg -x $f /"
    dpkg -x "$f" / || return 1
  done
  ldconfig || return 1
  if [ ! -e "$icd" ]; then # GPU.md's path; say so if the driver keeps it elsewhere
    echo "note: $icd not found; ldconfig knows: $(ldconfig -p | grep -m1 libnvidia-opencl.so.1)"
  fi
  mkdir -p /etc/OpenCL/vendors && echo "$icd" > /etc/OpenCL/vendors/nvidia.icd
}

vulkan_driver_files() {
  local fallback=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
  [ -n "${VK_DRIVER_FILES:-}" ] && return
  if ! ls /usr/share/vulkan/icd.d/*nvidia* /etc/vulkan/icd.d/*nvidia* > /dev/null 2>&1 &&
    [ -e "$fallback" ]; then
    export VK_DRIVER_FILES=$fallback
    echo "VK_DRIVER_FILES=$VK_DRIVER_FILES (no NVIDIA ICD file in the loader's usual folders)"
  fi
}

gpu_facts() {
  echo "efla commit: $EFLA_COMMIT"
  python3 -c 'import torch, triton; print("torch", torch.__version__, "cuda", torch.version.cuda, "triton", triton.__version__)'
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv &&
    nvidia-smi
}

paths_of() {
  case $1 in
    cuda) echo "$CUDA_PATHS" ;;
    vulkan) echo "$VULKAN_PATHS" ;;
    opencl) echo "$OPENCL_PATHS" ;;
    *) echo default ;;
  esac
}

# tests NAME BACKEND PATH [VAR=VALUE...]: the conformance programs on one backend, one path.
tests() {
  local name=$1 backend=$2 path=$3
  shift 3
  local vars=("EFLA_REQUIRE_BACKENDS=$backend" "EFLA_TEST_BACKENDS=$backend" "$@")
  [ "$path" != default ] && vars+=("EFLA_PATH=$backend:$path")
  step "$name" "$STEP_TEST_LIMIT_S" env "${vars[@]}" "$here/run_tests.sh" "$BUNDLE/bin" "$TEST_LIMIT_S"
}

# efla bench prints its table on stderr (the log) and JSON lines on stdout.
efla_bench() {
  "$efla" bench --backend "$1" --suite all --storage bf16 --json "${bench_args[@]}" > "$OUT/bench-$1.jsonl"
}

efla_info() {
  "$efla" info || return
  "$efla" info --json > "$OUT/info.json"
}

# note NAME: a few words from a finished step's output for the summary.
note() {
  case $1 in
    test-*) grep -h '^failed:' "$OUT/$1.log" 2> /dev/null | tail -n 1 ;;
    fla-*)
      python3 - "$OUT/$1.json" << 'EOF' 2> /dev/null
import json, sys
rows = json.load(open(sys.argv[1]))["rows"]
print(" ".join(f"{r['shape']}:{r['ratio']:.2f}x" if "ratio" in r else f"{r['shape']}:{r['status']}"
               for r in rows))
EOF
      ;;
  esac
}

print_summary() {
  local line name result seconds
  {
    echo
    echo "=== summary ($((SECONDS - started))s of ${BUDGET_S}s; logs in $OUT; fla: efla/fla time)"
    printf '%-22s %-24s %5s  %s\n' step result s note
    for line in "${summary[@]}"; do
      IFS='|' read -r name result seconds <<< "$line"
      printf '%-22s %-24s %5s  %s\n' "$name" "$result" "$seconds" "$(note "$name")"
    done
  } | tee "$OUT/summary.txt"
}

export LD_LIBRARY_PATH=$BUNDLE/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
# The commit the bundle was built from (the host's copy of the checkout has no .git).
EFLA_COMMIT=${EFLA_COMMIT:-$(cat "$BUNDLE/COMMIT" 2> /dev/null || echo unknown)}
export EFLA_COMMIT
# `timeout` runs programs, not functions: a step that is a function of this
# script runs as `bash h200.sh --run FUNCTION`.
if [ "${1:-}" = --run ]; then
  "${@:2}"
  exit
fi

if [ "${SKIP_SETUP:-0}" != 1 ]; then
  step setup 120 bash "$self" --run setup_host
fi
vulkan_driver_files
step gpu 30 bash "$self" --run gpu_facts
step info 60 bash "$self" --run efla_info

if [ -z "${BACKENDS:-}" ]; then
  BACKENDS=$(python3 "$here/efla_ctypes.py" --lib "$BUNDLE/lib/libefla.so" backends 2>&1 |
    tr ' ' '\n' | grep -x -E 'cuda|vulkan|opencl' | tr '\n' ' ')
  echo "GPU backends in the bundle: ${BACKENDS:-none}" | tee "$OUT/backends.txt"
fi
read -r -a backends <<< "$BACKENDS"

phase_end=$TESTS_UNTIL_S
for b in "${backends[@]}"; do
  for p in $(paths_of "$b"); do
    tests "test-$b-$p" "$b" "$p"
  done
  if [ "$b" = cuda ]; then
    tests test-cuda-ptx-jit cuda default CUDA_FORCE_PTX_JIT=1 "CUDA_CACHE_PATH=$OUT/cuda-cache" \
      CUDA_CACHE_MAXSIZE=4294967296 "TEST_ARGS=--jobs $PTX_JIT_JOBS"
  fi
done

phase_end=$BENCH_UNTIL_S
for b in "${backends[@]}"; do
  step "bench-$b" "$BENCH_LIMIT_S" bash "$self" --run efla_bench "$b"
done

phase_end=$BUDGET_S
read -r -a fla_backends <<< "${FLA_BACKENDS:-$BACKENDS}"
for b in "${fla_backends[@]}"; do
  step "fla-$b" "$FLA_LIMIT_S" python3 "$here/fla_compare.py" --backend "$b" \
    --lib "$BUNDLE/lib/libefla.so" --json "$OUT/fla-$b.json" "${fla_args[@]}"
done

print_summary
