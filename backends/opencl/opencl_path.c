#include "backends/opencl/opencl_path.h"

#include "backends/opencl/opencl_device.h"
#include "core/error.h"
#include "core/kernel_path.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *const path_names[EFLA_CL_PATH_COUNT] = {"portable"};

const char *efla_cl_path_name(efla_cl_path path) {
    return (unsigned)path < EFLA_CL_PATH_COUNT ? path_names[path] : "unknown";
}

static bool path_available(const efla_cl_device *device, efla_cl_path path) {
    (void)device;
    return path == EFLA_CL_PATH_PORTABLE;
}

efla_status efla_cl_path_default(const efla_cl_device *device, efla_cl_path *out) {
    (void)device;
    *out = EFLA_CL_PATH_PORTABLE;
    return EFLA_SUCCESS;
}

efla_status efla_cl_path_choose(const efla_cl_device *device, efla_cl_path *out) {
    char buffer[64];
    const char *forced = efla_kernel_path_requested(EFLA_BACKEND_OPENCL, buffer, sizeof buffer);
    if (!forced || !*forced) return efla_cl_path_default(device, out);
    for (int p = 0; p < EFLA_CL_PATH_COUNT; ++p) {
        if (strcasecmp(forced, path_names[p]) != 0) continue;
        if (!path_available(device, (efla_cl_path)p))
            return efla_error(EFLA_ERROR_UNSUPPORTED,
                              "EFLA_PATH=%s: the OpenCL device '%s' cannot run that path", forced,
                              device->info.name);
        *out = (efla_cl_path)p;
        return EFLA_SUCCESS;
    }
    char valid[128] = "";
    for (int p = 0; p < EFLA_CL_PATH_COUNT; ++p) {
        if (p) strncat(valid, ", ", sizeof valid - strlen(valid) - 1);
        strncat(valid, path_names[p], sizeof valid - strlen(valid) - 1);
    }
    return efla_error(EFLA_ERROR_UNSUPPORTED,
                      "EFLA_PATH='%s' is not an OpenCL kernel path (valid: %s)", forced, valid);
}
