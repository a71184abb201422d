/* EFLA_VULKAN_SPIRV_DIR: SPIR-V files that replace built-in Vulkan kernels
 * (for tuning without a rebuild). The build's own kernels given that way
 * must give bitwise the same results; a file that is not SPIR-V must fail
 * context creation with a message naming it, before the driver sees it. */
#include "harness.h"

#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static efla_context vulkan_context(efla_status *status) {
    efla_context_create_info info = EFLA_CONTEXT_CREATE_INFO_INIT;
    info.backend = EFLA_BACKEND_VULKAN;
    efla_context context = NULL;
    *status = efla_context_create(&info, &context);
    return context;
}

/* A chunked f16 forward (prepare, scan, output kernels) on a new context. */
static void run_chunked(run_result *r) {
    efla_status status;
    efla_context context = vulkan_context(&status);
    cr_assert_eq(status, EFLA_SUCCESS, "%s", efla_last_error_message());
    problem p;
    const problem_spec spec = {.B = 2, .T = 100, .H = 2, .HV = 2, .Dk = 32, .Dv = 48};
    problem_create(&p, &spec, EFLA_DTYPE_F16, 11);
    const run_options options = {.algorithm = EFLA_ALGORITHM_CHUNKED};
    cr_assert(device_run(context, &p, &options, r), "%s", r->error);
    problem_destroy(&p);
    efla_context_destroy(context);
}

Test(vulkan_spirv_dir, the_builds_own_kernels_give_the_same_bits) {
    if (!harness_backend_selected(EFLA_BACKEND_VULKAN)) cr_skip_test("no Vulkan device selected");
    run_result builtin, replaced;
    unsetenv("EFLA_VULKAN_SPIRV_DIR");
    run_chunked(&builtin);
    setenv("EFLA_VULKAN_SPIRV_DIR", EFLA_TEST_SPIRV_DIR, 1);
    run_chunked(&replaced);
    unsetenv("EFLA_VULKAN_SPIRV_DIR");
    const size_t count = 2 * 100 * 2 * 48;
    cr_expect(memcmp(builtin.out, replaced.out, count * sizeof *builtin.out) == 0,
              "outputs differ with the build's SPIR-V from %s", EFLA_TEST_SPIRV_DIR);
    run_result_free(&builtin);
    run_result_free(&replaced);
}

Test(vulkan_spirv_dir, a_file_that_is_not_spirv_is_refused) {
    if (!harness_backend_selected(EFLA_BACKEND_VULKAN)) cr_skip_test("no Vulkan device selected");
    char dir[] = "/tmp/efla_spirv_XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char path[sizeof dir + 32];
    snprintf(path, sizeof path, "%s/chunk_prep.spv", dir);
    FILE *file = fopen(path, "wb");
    cr_assert_not_null(file);
    fputs("not a SPIR-V module at all", file);
    fclose(file);
    setenv("EFLA_VULKAN_SPIRV_DIR", dir, 1);
    efla_status status;
    efla_context context = vulkan_context(&status);
    unsetenv("EFLA_VULKAN_SPIRV_DIR");
    cr_expect_eq(status, EFLA_ERROR_KERNEL_BUILD, "status %d: %s", status,
                 efla_last_error_message());
    cr_expect_null(context);
    cr_expect_not_null(strstr(efla_last_error_message(), "chunk_prep.spv"), "%s",
                       efla_last_error_message());
    efla_context_destroy(context);
    remove(path);
    rmdir(dir);
}
