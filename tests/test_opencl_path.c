/*
 * The OpenCL backend's kernel paths (backends/opencl/opencl_path.c): the
 * default follows the device, EFLA_PATH=opencl:nvmma is refused with a
 * clear message where the device is not an NVIDIA GPU of compute
 * capability 8.0+, and EFLA_OPENCL_NVMMA_EMULATE=1 lets tests force it
 * anywhere. Needs an OpenCL device (skipped when there is none). Criterion
 * runs each test in its own process, so the environment changes stay local.
 */
#include "efla/efla.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Device 0's description, or a skipped test when there is no OpenCL device. */
static efla_device_info first_device(void) {
    uint32_t count = 0;
    if (efla_device_count(EFLA_BACKEND_OPENCL, &count) != EFLA_SUCCESS || count == 0)
        cr_skip_test("no OpenCL device");
    efla_device_info info = EFLA_DEVICE_INFO_INIT;
    cr_assert_eq(efla_device_get_info(EFLA_BACKEND_OPENCL, 0, &info), EFLA_SUCCESS, "%s",
                 efla_last_error_message());
    return info;
}

static bool is_nvidia(const efla_device_info *info) {
    return strstr(info->vendor, "NVIDIA") != NULL;
}

static efla_status create(efla_context *context) {
    efla_context_create_info create_info = EFLA_CONTEXT_CREATE_INFO_INIT;
    create_info.backend = EFLA_BACKEND_OPENCL;
    create_info.device_index = 0;
    return efla_context_create(&create_info, context);
}

/* The path a context on device 0 reports. */
static void context_path(char *out, size_t size) {
    efla_context context = NULL;
    cr_assert_eq(create(&context), EFLA_SUCCESS, "%s", efla_last_error_message());
    efla_device_info info = EFLA_DEVICE_INFO_INIT;
    cr_assert_eq(efla_context_device_info(context, &info), EFLA_SUCCESS);
    snprintf(out, size, "%s", info.kernel_path);
    efla_context_destroy(context);
}

Test(opencl_path, default_follows_the_device) {
    const efla_device_info device = first_device();
    unsetenv("EFLA_PATH");
    char path[32];
    context_path(path, sizeof path);
    cr_expect_str_eq(path, device.kernel_path);
    if (!is_nvidia(&device)) cr_expect_str_eq(path, "portable");
}

Test(opencl_path, portable_can_always_be_forced) {
    first_device();
    setenv("EFLA_PATH", "opencl:portable", 1);
    char path[32];
    context_path(path, sizeof path);
    cr_expect_str_eq(path, "portable");
}

Test(opencl_path, nvmma_is_refused_off_nvidia) {
    const efla_device_info device = first_device();
    if (is_nvidia(&device)) cr_skip_test("an NVIDIA device may run nvmma");
    unsetenv("EFLA_OPENCL_NVMMA_EMULATE");
    setenv("EFLA_PATH", "opencl:nvmma", 1);
    efla_context context = NULL;
    cr_assert_eq(create(&context), EFLA_ERROR_UNSUPPORTED);
    cr_expect_null(context);
    cr_expect(strstr(efla_last_error_message(), "compute capability 8.0") != NULL, "message: %s",
              efla_last_error_message());
}

Test(opencl_path, nvmma_can_be_forced_when_emulated) {
    first_device();
    setenv("EFLA_OPENCL_NVMMA_EMULATE", "1", 1);
    setenv("EFLA_PATH", "opencl:nvmma", 1);
    char path[32];
    context_path(path, sizeof path);
    cr_expect_str_eq(path, "nvmma");
}

Test(opencl_path, unknown_names_list_the_valid_ones) {
    first_device();
    setenv("EFLA_PATH", "opencl:tensor", 1);
    efla_context context = NULL;
    cr_assert_eq(create(&context), EFLA_ERROR_UNSUPPORTED);
    cr_expect(strstr(efla_last_error_message(), "portable, nvmma") != NULL, "message: %s",
              efla_last_error_message());
}
