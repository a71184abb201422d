#!/bin/sh
# Runs the conformance programs once per kernel path of a backend, so every
# path meets the same tests (DESIGN.md "Tests"). Usage:
#   tests/run_paths.sh <build dir> <backend>:<path> ...
#   tests/run_paths.sh build cpu:portable cpu:avx2 opencl:portable cuda:simt cuda:mma
# `efla info` lists each backend's paths. Each pair runs with
# EFLA_TEST_BACKENDS and EFLA_REQUIRE_BACKENDS set to its backend (a missing
# backend fails) and EFLA_PATH set to its path; test_determinism checks that
# the context reports the forced path.
set -u
if [ $# -lt 2 ]; then
    echo "usage: $0 <build dir> <backend>:<path> ..." >&2
    exit 2
fi
build=$1
shift
status=0
for pair in "$@"; do
    backend=${pair%%:*}
    path=${pair#*:}
    echo "== backend $backend, EFLA_PATH=$backend:$path"
    EFLA_TEST_BACKENDS=$backend EFLA_REQUIRE_BACKENDS=$backend EFLA_PATH=$backend:$path \
        ctest --test-dir "$build" --output-on-failure \
        -R '^test_(conformance|state|determinism|golden)$' || status=1
done
exit $status
