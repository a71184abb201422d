/* The embedded fatbins: loaded per context, kernels resolved by name. */
#include "backends/cuda/cuda_internal.h"

#include "core/error.h"

#include <stdio.h>

extern const unsigned char efla_cuda_fatbin_recurrent[];
extern const size_t efla_cuda_fatbin_recurrent_size;
extern const unsigned char efla_cuda_fatbin_chunk_simt[];
extern const size_t efla_cuda_fatbin_chunk_simt_size;
extern const unsigned char efla_cuda_fatbin_chunk_mma[];
extern const size_t efla_cuda_fatbin_chunk_mma_size;

static const unsigned char *const module_images[EFLA_CUDA_MODULE_COUNT] = {
    [EFLA_CUDA_MODULE_RECURRENT] = efla_cuda_fatbin_recurrent,
    [EFLA_CUDA_MODULE_CHUNK_SIMT] = efla_cuda_fatbin_chunk_simt,
    [EFLA_CUDA_MODULE_CHUNK_MMA] = efla_cuda_fatbin_chunk_mma,
};

static const struct {
    const char *name;
    efla_cuda_module_id module;
} kernel_table[EFLA_CUDA_KERNEL_COUNT] = {
#define EFLA_CUDA_ENTRY(id, name, module)                                                          \
    [EFLA_CUDA_KERNEL_##id] = {name, EFLA_CUDA_MODULE_##module},
    EFLA_CUDA_KERNELS(EFLA_CUDA_ENTRY)
#undef EFLA_CUDA_ENTRY
};

/* Results of cuModuleLoadData that mean "this driver cannot run what this
 * toolkit built" rather than a broken image. */
static bool driver_too_old(CUresult result) {
    return result == CUDA_ERROR_UNSUPPORTED_PTX_VERSION || result == CUDA_ERROR_NO_BINARY_FOR_GPU ||
           result == CUDA_ERROR_INVALID_PTX || result == CUDA_ERROR_JIT_COMPILER_NOT_FOUND ||
           result == CUDA_ERROR_INVALID_IMAGE;
}

static efla_status load_failed(const efla_backend_context *ctx, CUresult result) {
    const char *name = "?";
    if (efla_cu->GetErrorName(result, &name) != CUDA_SUCCESS || !name) name = "?";
    int driver = efla_cu->driver_version;
    if (!driver_too_old(result)) return efla_cuda_fail(result, "cuModuleLoadData");
    if (ctx->props.cc_major < 8)
        return efla_error(EFLA_ERROR_UNSUPPORTED,
                          "compute capability %d.%d is not supported (efla's CUDA kernels need "
                          "8.0 or newer): cuModuleLoadData returned %s",
                          ctx->props.cc_major, ctx->props.cc_minor, name);
    return efla_error(EFLA_ERROR_DRIVER_TOO_OLD,
                      "driver too old: needs R%d+ (the kernels were built with CUDA %d.%d for "
                      "%s; this driver supports CUDA %d.%d; cuModuleLoadData returned %s)",
                      EFLA_CUDA_MIN_DRIVER, EFLA_CUDA_TOOLKIT_VERSION / 1000,
                      EFLA_CUDA_TOOLKIT_VERSION % 1000 / 10, EFLA_CUDA_ARCHS_TEXT, driver / 1000,
                      driver % 1000 / 10, name);
}

efla_status efla_cuda_modules_load(efla_backend_context *ctx) {
    for (int m = 0; m < EFLA_CUDA_MODULE_COUNT; ++m) {
        CUresult result = efla_cu->ModuleLoadData(&ctx->modules[m], module_images[m]);
        if (result != CUDA_SUCCESS) {
            ctx->modules[m] = NULL;
            return load_failed(ctx, result);
        }
    }
    for (int k = 0; k < EFLA_CUDA_KERNEL_COUNT; ++k) {
        CUresult result = efla_cu->ModuleGetFunction(
            &ctx->kernels[k], ctx->modules[kernel_table[k].module], kernel_table[k].name);
        if (result != CUDA_SUCCESS) {
            char what[128];
            snprintf(what, sizeof what, "cuModuleGetFunction(%s)", kernel_table[k].name);
            efla_cuda_fail(result, what);
            return efla_error(EFLA_ERROR_KERNEL_BUILD, "%s", efla_last_error_message());
        }
        ctx->kernel_smem[k] = 48 * 1024;
    }
    return EFLA_SUCCESS;
}

void efla_cuda_modules_unload(efla_backend_context *ctx) {
    for (int m = 0; m < EFLA_CUDA_MODULE_COUNT; ++m)
        if (ctx->modules[m]) efla_cu->ModuleUnload(ctx->modules[m]);
}

efla_status efla_cuda_launch(efla_backend_context *ctx, efla_cuda_kernel id, CUstream stream,
                             uint32_t grid_x, uint32_t grid_y, uint32_t threads,
                             uint32_t smem_bytes, const efla_cuda_params *params) {
    if (grid_x == 0 || grid_y == 0) return EFLA_SUCCESS;
    if ((int64_t)smem_bytes > ctx->props.smem_optin)
        return efla_error(EFLA_ERROR_UNSUPPORTED,
                          "%s needs %u bytes of shared memory; the device allows %d",
                          kernel_table[id].name, smem_bytes, ctx->props.smem_optin);
    if ((int)smem_bytes > ctx->kernel_smem[id]) {
        CUresult result = efla_cu->FuncSetAttribute(
            ctx->kernels[id], CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, (int)smem_bytes);
        if (result != CUDA_SUCCESS) return efla_cuda_fail(result, "cuFuncSetAttribute");
        /* All of the SM's unified L1/shared storage as shared memory: the
         * default carveout can hold fewer blocks than the opt-in allows. */
        result = efla_cu->FuncSetAttribute(ctx->kernels[id],
                                           CU_FUNC_ATTRIBUTE_PREFERRED_SHARED_MEMORY_CARVEOUT, 100);
        if (result != CUDA_SUCCESS) return efla_cuda_fail(result, "cuFuncSetAttribute");
        ctx->kernel_smem[id] = (int)smem_bytes;
    }
    efla_cuda_params copy = *params;
    void *args[] = {&copy};
    CUresult result = efla_cu->LaunchKernel(ctx->kernels[id], grid_x, grid_y, 1, threads, 1, 1,
                                            smem_bytes, stream, args, NULL);
    if (result != CUDA_SUCCESS) {
        char what[128];
        snprintf(what, sizeof what, "launching %s", kernel_table[id].name);
        return efla_cuda_fail(result, what);
    }
    return EFLA_SUCCESS;
}
