#!/bin/bash
# Runs every conformance test program of a bundle once, each under its own
# time limit, and says which failed. The backend and kernel path come from the
# environment (EFLA_TEST_BACKENDS, EFLA_REQUIRE_BACKENDS, EFLA_PATH, ...).
# usage: bench/run_tests.sh BIN_DIR [PER_PROGRAM_LIMIT_S]
#   TEST_ARGS  arguments for each program (default "--jobs 1", as ctest runs them)
#   TEST_PROGRAMS  only these programs (names, space-separated; default: every test_*)
# Exit status: 0 all passed, 1 one failed or timed out, 2 no test programs.
set -uo pipefail
bin=${1:?usage: run_tests.sh BIN_DIR [PER_PROGRAM_LIMIT_S]}
limit=${2:-120}
read -r -a args <<< "${TEST_ARGS:---jobs 1}"

shopt -s nullglob
programs=("$bin"/test_*)
if [ -n "${TEST_PROGRAMS:-}" ]; then
  programs=()
  for name in $TEST_PROGRAMS; do
    [ -x "$bin/$name" ] && programs+=("$bin/$name")
  done
fi
if [ ${#programs[@]} -eq 0 ]; then
  echo "no test programs (test_*) in $bin"
  exit 2
fi

# Each program's `timeout` leads a process group of its own, which a timeout
# around this script does not reach: pass its signal on.
child=
trap '[ -n "$child" ] && kill -TERM -- "-$child" 2> /dev/null; exit 143' TERM INT

failed=()
for program in "${programs[@]}"; do
  name=$(basename "$program")
  echo "--- $name ${args[*]}"
  timeout --kill-after=5 "$limit" "$program" "${args[@]}" &
  child=$!
  wait "$child"
  rc=$?
  child=
  case $rc in
    0) echo "--- $name: ok" ;;
    124 | 137) echo "--- $name: TIMEOUT after ${limit}s"; failed+=("$name(timeout)") ;;
    *) echo "--- $name: FAIL (exit $rc)"; failed+=("$name") ;;
  esac
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "failed: ${failed[*]}"
  exit 1
fi
echo "all ${#programs[@]} test programs passed"
