#!/bin/bash
# The OpenCL backend on the H200 (issue #6) in about 4 minutes: the conformance
# programs once per kernel path, `efla bench` at S1-S5 and D1 in bf16 per path,
# each chunk kernel's share (EFLA_OPENCL_STOP_AFTER), and a sweep of the tuning
# knobs (EFLA_OPENCL_STATE_GROUPS / _PARTS, EFLA_OPENCL_DV_TILE, EFLA_OPENCL_CHUNK,
# EFLA_OPENCL_WG). Every step is
# logged to $OUT/<step>.log and none stops the run; a summary comes last.
#
# usage, on the host, from the checkout's root (.device beside it, as for
# bench/h200.sh; run h200.sh's setup first, or SETUP=1):
#   bash bench/opencl_check.sh
# Environment (all optional):
#   OUT           output folder (default ./opencl-out)
#   BUNDLE        the bundle folder (default .device/bundle)
#   PATHS         kernel paths (default "portable nvmma"; nvmma needs compute capability 8.0+)
#   SETUP=1       run bench/h200.sh's host setup (loaders, OpenCL ICD) first
#   BUDGET_S      the whole run's limit in seconds (default 240): each step's limit
#                 is cut to what is left, and steps past it are skipped
#   TEST_LIMIT_S  the conformance programs' limit per path (default 100)
#   SWEEP=0       skip the breakdown and the knob sweep
# Results: $OUT/bench-<path>.jsonl (efla bench --json; the tables are in the logs),
# $OUT/sweep.txt (one line per knob setting and shape: median ms).
set -uo pipefail

OUT=${OUT:-$PWD/opencl-out}
BUNDLE=${BUNDLE:-$PWD/.device/bundle}
PATHS=${PATHS:-portable nvmma}
BUDGET_S=${BUDGET_S:-240}
TEST_LIMIT_S=${TEST_LIMIT_S:-100}
SWEEP=${SWEEP:-1}
here=$(cd "$(dirname "$0")" && pwd)
efla=$BUNDLE/bin/efla
export LD_LIBRARY_PATH=$BUNDLE/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
mkdir -p "$OUT"
summary=()

# PERFORMANCE.md's shapes: B,T,H,HV,Dk,Dv.
declare -A shape=(
  [S1]=1,8192,16,16,128,128 [S2]=4,4096,16,16,128,128 [S3]=8,2048,32,32,64,64
  [S4]=1,32768,8,8,128,128 [S5]=2,4096,16,16,256,256 [D1]=64,1,16,16,128,128)

# step NAME LIMIT_S COMMAND...: bench/steps.sh (no phases: the deadline is BUDGET_S)
. "$here/steps.sh"

# conformance PATH: the conformance programs with the path forced (the step's
# timeout reaches them: they stay in its process group).
conformance() {
  local program status=0
  for program in test_conformance test_state test_determinism test_golden test_opencl_path; do
    [ -x "$BUNDLE/bin/$program" ] || continue
    echo "--- $program"
    EFLA_REQUIRE_BACKENDS=opencl EFLA_TEST_BACKENDS=opencl EFLA_PATH=opencl:$1 \
      "$BUNDLE/bin/$program" --jobs 1 || { status=1; echo "--- $program: FAIL"; }
  done
  return $status
}

# bench_shapes ARGS... SHAPE...: efla bench in bf16 at the named shapes.
bench_shapes() {
  local args=() s
  while [ $# -gt 0 ] && [ "${1#S}" = "$1" ] && [ "${1#D}" = "$1" ]; do
    args+=("$1")
    shift
  done
  for s in "$@"; do args+=(--shape "${shape[$s]}"); done
  "$efla" bench --backend opencl --storage bf16 --json "${args[@]}"
}

# sweep LABEL VAR=VALUE... -- SHAPE...: one knob setting, medians to sweep.txt.
sweep() {
  local label=$1 vars=()
  shift
  while [ "$1" != -- ]; do
    vars+=("$1")
    shift
  done
  shift
  env "${vars[@]}" bash "$0" --run bench_shapes --warmup 2 --iters 20 "$@" |
    python3 -c '
import json, sys
for line in sys.stdin:
    r = json.loads(line)
    d = r["shape"]
    dims = "B%d T%d H%d Dk%d Dv%d" % (d["B"], d["T"], d["H"], d["Dk"], d["Dv"])
    print("%-28s %-4s %-26s %-10s %9.4f ms" % (sys.argv[1], r["id"], dims, r["path"], r["median_ms"]))
' "$label" | tee -a "$OUT/sweep.txt"
}

if [ "${1:-}" = --run ]; then
  "${@:2}"
  exit
fi

if [ "${SETUP:-0}" = 1 ]; then
  step setup 120 bash "$here/h200.sh" --run setup_host
fi
step info 60 "$efla" info

for p in $PATHS; do
  step "test-$p" "$TEST_LIMIT_S" bash "$0" --run conformance "$p"
done

for p in $PATHS; do
  step "bench-$p" 60 env EFLA_PATH=opencl:$p bash -c \
    "bash '$0' --run bench_shapes S1 S2 S3 S4 S5 D1 > '$OUT/bench-$p.jsonl'"
done

if [ "$SWEEP" = 1 ]; then
  : > "$OUT/sweep.txt"
  for p in $PATHS; do
    # Each chunk kernel's share: prepare alone, prepare + state, all three.
    for stop in prepare state; do
      step "share-$p-$stop" 40 bash "$0" --run sweep "$p/stop-after-$stop" \
        EFLA_PATH=opencl:$p EFLA_OPENCL_STOP_AFTER=$stop -- S1 S4 S5
    done
    # The nvmma state scan's shape: groups of 16 value columns per work-group
    # and warps (parts of Dk) per group (the plan picks them from the compute units).
    if [ "$p" = nvmma ]; then
      for knob in GROUPS=1 GROUPS=2 GROUPS=4 PARTS=2 PARTS=4; do
        step "state-$knob" 40 bash "$0" --run sweep "nvmma/state-$knob" \
          EFLA_PATH=opencl:nvmma EFLA_OPENCL_STATE_$knob -- S1 S2 S4 S5
      done
    fi
    # The portable state kernel's Dv tile (the plan picks one from the work-group count).
    for dvt in 8 16 32; do
      step "dvt-$p-$dvt" 40 bash "$0" --run sweep "$p/dv-tile-$dvt" \
        EFLA_PATH=opencl:$p EFLA_OPENCL_DV_TILE=$dvt -- S1 S2 S4 S5
    done
    step "chunk32-$p" 40 bash "$0" --run sweep "$p/chunk-32" \
      EFLA_PATH=opencl:$p EFLA_OPENCL_CHUNK=32 -- S1 S3 S4
  done
  for wg in 128 64; do # the prepare and recurrent work-group (portable prepare)
    step "wg-$wg" 40 bash "$0" --run sweep "portable/wg-$wg" \
      EFLA_PATH=opencl:portable EFLA_OPENCL_WG=$wg -- S1 D1
  done
fi

{
  echo
  echo "=== summary (logs in $OUT; efla bench tables in bench-*.log; knobs in sweep.txt)"
  printf '%-26s %-20s %5s\n' step result s
  for line in "${summary[@]}"; do
    IFS='|' read -r name result seconds <<< "$line"
    printf '%-26s %-20s %5s\n' "$name" "$result" "$seconds"
  done
} | tee "$OUT/summary.txt"
