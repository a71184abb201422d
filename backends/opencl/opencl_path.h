/* Kernel paths of the OpenCL backend, and EFLA_PATH to force one. */
#ifndef EFLA_OPENCL_PATH_H
#define EFLA_OPENCL_PATH_H

#include "efla/efla.h"

#include <stdbool.h>

struct efla_cl_device;

typedef enum efla_cl_path {
    EFLA_CL_PATH_PORTABLE = 0, /* OpenCL C 1.2, local memory, no extensions */
    /* NVIDIA sm_80+: the chunk kernels' products on tensor cores through
     * inline PTX mma.sync (16-bit storage; f32 storage runs the portable
     * kernels). The default where available. */
    EFLA_CL_PATH_NVMMA,
    EFLA_CL_PATH_COUNT
} efla_cl_path;

const char *efla_cl_path_name(efla_cl_path path);

/* The best path for the device, ignoring EFLA_PATH. */
efla_status efla_cl_path_default(const struct efla_cl_device *device, efla_cl_path *out);

/* The path a context uses: EFLA_PATH when set (an unknown name, or a path
 * the device cannot run, fails with EFLA_ERROR_UNSUPPORTED naming the
 * valid values), else the default. `forced` tells which. */
efla_status efla_cl_path_choose(const struct efla_cl_device *device, efla_cl_path *out,
                                bool *forced);

/* EFLA_OPENCL_NVMMA_EMULATE=1 (tests): the nvmma path may be forced on any
 * device, its mma.sync emulated in OpenCL C through local memory. */
bool efla_cl_nvmma_emulated(void);

#endif
