#!/bin/sh
# Runs the Vulkan side of the suite under VK_LAYER_KHRONOS_validation with
# synchronization validation (DESIGN.md "Tests") and fails on any message the
# layer prints. Usage: tests/run_vulkan_validation.sh <build dir> [seed]
# Needs the vulkan-validationlayers package; one seed keeps it short.
# The programs run once with what the device offers (or what
# EFLA_VULKAN_PUSH_DESCRIPTORS / EFLA_VULKAN_16BIT_STORAGE in the caller's
# environment force), then the dispatch-recording ones again with both
# fallbacks forced: descriptor sets and 16-bit tensors through 32-bit words,
# and the chunked ones with the two-level scan forced.
set -u
if [ $# -lt 1 ]; then
    echo "usage: $0 <build dir> [seed]" >&2
    exit 2
fi
build=$1
log=$(mktemp)
settings=$(mktemp -d)
trap 'rm -rf "$log" "$settings"' EXIT
# This layer version reads its settings from a file, not from VK_LAYER_* variables.
cat >"$settings/vk_layer_settings.txt" <<SETTINGS
khronos_validation.report_flags = error,warn,info
khronos_validation.debug_action = VK_DBG_LAYER_ACTION_LOG_MSG
khronos_validation.log_filename = stdout
khronos_validation.enables = VK_VALIDATION_FEATURE_ENABLE_SYNCHRONIZATION_VALIDATION_EXT
SETTINGS
export VK_LAYER_SETTINGS_PATH=$settings
export VK_INSTANCE_LAYERS=VK_LAYER_KHRONOS_validation
export EFLA_TEST_BACKENDS=vulkan EFLA_REQUIRE_BACKENDS=vulkan EFLA_TEST_SEED=${2:-1}
status=0

# check <label> <program> [VAR=value ...]
check() {
    label=$1
    program=$2
    shift 2
    echo "== $program under the validation layer$label"
    env "$@" "$build/tests/$program" --jobs 1 >"$log" 2>&1 || status=1
    tail -n 1 "$log"
    if ! grep -q "Current Enables:.*SYNCHRONIZATION_VALIDATION" "$log"; then
        echo "$program: the validation layer with synchronization validation did not load" >&2
        status=1
    fi
    if grep -q -E "Validation (Error|Warning)|VUID-|SYNC-" "$log"; then
        grep -E -A4 "Validation (Error|Warning)|VUID-|SYNC-" "$log" | head -n 40
        status=1
    fi
}

for program in test_conformance test_state test_determinism test_golden test_api test_vulkan_interop; do
    check "" "$program"
done
for program in test_conformance test_state test_determinism; do
    check " (descriptor sets, 32-bit words)" "$program" \
        EFLA_VULKAN_PUSH_DESCRIPTORS=0 EFLA_VULKAN_16BIT_STORAGE=0
done
# The two-level scan's four dispatches (the first legs beside the leg
# products, with no barrier between them), forced where the plan would not
# take it.
for program in test_conformance test_state; do
    check " (two-level scan, 3 legs)" "$program" EFLA_VULKAN_SCAN_LEGS=3
done
exit $status
