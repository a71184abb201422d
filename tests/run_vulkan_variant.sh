#!/bin/sh
# ctest helper: runs one test program on the Vulkan backend only, with the
# given environment assignments, e.g. the fallbacks of devices without push
# descriptors or 16-bit storage forced on a device that has both:
#   tests/run_vulkan_variant.sh <program> EFLA_VULKAN_PUSH_DESCRIPTORS=0 ...
# Vulkan is required exactly when the caller's EFLA_REQUIRE_BACKENDS names it.
set -u
if [ $# -lt 1 ]; then
    echo "usage: $0 <test program> [VAR=value ...]" >&2
    exit 2
fi
program=$1
shift
case ",$(printf '%s' "${EFLA_REQUIRE_BACKENDS:-}" | tr -d ' ')," in
*,vulkan,*) required=vulkan ;;
*) required= ;;
esac
exec env EFLA_TEST_BACKENDS=vulkan EFLA_REQUIRE_BACKENDS="$required" "$@" "$program" --jobs 1
