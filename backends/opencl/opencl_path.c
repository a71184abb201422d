#include "backends/opencl/opencl_path.h"

#include "backends/opencl/opencl_device.h"
#include "core/error.h"
#include "core/kernel_path.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *const path_names[EFLA_CL_PATH_COUNT] = {"portable", "nvmma"};

/* mma.sync m16n8k16 with bf16 operands needs sm_80. */
#define EFLA_CL_NVMMA_MIN_CAPABILITY 80

const char *efla_cl_path_name(efla_cl_path path) {
    return (unsigned)path < EFLA_CL_PATH_COUNT ? path_names[path] : "unknown";
}

bool efla_cl_nvmma_emulated(void) {
    const char *text = getenv("EFLA_OPENCL_NVMMA_EMULATE");
    return text && strcmp(text, "1") == 0;
}

static bool nvmma_native(const efla_cl_device *device) {
    return device->nv_compute_capability >= EFLA_CL_NVMMA_MIN_CAPABILITY;
}

static efla_status refuse(const efla_cl_device *device, const char *forced) {
    if (strcasecmp(forced, "nvmma") == 0)
        return efla_error(EFLA_ERROR_UNSUPPORTED,
                          "EFLA_PATH=%s: the OpenCL nvmma path needs an NVIDIA GPU of compute "
                          "capability 8.0 or newer (cl_nv_device_attribute_query); '%s' reports "
                          "%s",
                          forced, device->info.name,
                          device->nv_compute_capability ? "an older one" : "none");
    return efla_error(EFLA_ERROR_UNSUPPORTED,
                      "EFLA_PATH=%s: the OpenCL device '%s' cannot run that path", forced,
                      device->info.name);
}

static bool path_available(const efla_cl_device *device, efla_cl_path path) {
    switch (path) {
    case EFLA_CL_PATH_PORTABLE: return true;
    case EFLA_CL_PATH_NVMMA: return nvmma_native(device) || efla_cl_nvmma_emulated();
    default: return false;
    }
}

/* nvmma on NVIDIA GPUs of compute capability 8.0+, portable elsewhere. On
 * the H200 the port of the CUDA mma pipeline (9c7dd03) passed the
 * conformance suite on NVIDIA's OpenCL and ran S1 in 1.02 ms against 5.1
 * for portable (S4 2.47 against 17.0; docs/BENCHMARKS.md). A program whose
 * nvmma kernels do not build falls back to portable (opencl_program.c). */
efla_status efla_cl_path_default(const efla_cl_device *device, efla_cl_path *out) {
    *out = nvmma_native(device) ? EFLA_CL_PATH_NVMMA : EFLA_CL_PATH_PORTABLE;
    return EFLA_SUCCESS;
}

efla_status efla_cl_path_choose(const efla_cl_device *device, efla_cl_path *out, bool *forced) {
    char buffer[64];
    const char *requested = efla_kernel_path_requested(EFLA_BACKEND_OPENCL, buffer, sizeof buffer);
    *forced = requested && *requested;
    if (!*forced) return efla_cl_path_default(device, out);
    for (int p = 0; p < EFLA_CL_PATH_COUNT; ++p) {
        if (strcasecmp(requested, path_names[p]) != 0) continue;
        if (!path_available(device, (efla_cl_path)p)) return refuse(device, requested);
        *out = (efla_cl_path)p;
        return EFLA_SUCCESS;
    }
    char valid[128] = "";
    for (int p = 0; p < EFLA_CL_PATH_COUNT; ++p) {
        if (p) strncat(valid, ", ", sizeof valid - strlen(valid) - 1);
        strncat(valid, path_names[p], sizeof valid - strlen(valid) - 1);
    }
    return efla_error(EFLA_ERROR_UNSUPPORTED,
                      "EFLA_PATH='%s' is not an OpenCL kernel path (valid: %s)", requested, valid);
}
