# Sourced by the GPU-host scripts (h200.sh, opencl_check.sh).
# step NAME LIMIT_S COMMAND...: runs COMMAND under a time limit (cut to what is
# left of the phase and the budget), its output shown and kept in
# $OUT/NAME.log; records the result in `summary` and never fails the script.
# Reads OUT and BUDGET_S; phase_end (default BUDGET_S), reserve_s (seconds kept
# back, default 0) and started (the run's start in $SECONDS, default 0).
step() {
  local name=$1 limit=$2 rc result
  shift 2
  local budget_end=$((BUDGET_S - ${reserve_s:-0})) phase=${phase_end:-$BUDGET_S}
  local end=$((phase < budget_end ? phase : budget_end))
  local left=$((end - (SECONDS - ${started:-0})))
  if [ "$left" -lt 5 ]; then
    summary+=("$name|SKIPPED (no time left)|0")
    return
  fi
  [ "$limit" -gt "$left" ] && limit=$left
  local t0=$SECONDS
  echo "=== $name (limit ${limit}s): $*" | tee "$OUT/$name.log"
  timeout --kill-after=5 "$limit" "$@" 2>&1 | tee -a "$OUT/$name.log"
  rc=${PIPESTATUS[0]}
  case $rc in
    0) result=ok ;;
    124 | 137) result="TIMEOUT (${limit}s)" ;;
    *) result="FAIL (exit $rc)" ;;
  esac
  echo "=== $name: $result" | tee -a "$OUT/$name.log"
  summary+=("$name|$result|$((SECONDS - t0))")
}
