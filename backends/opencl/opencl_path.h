/* Kernel paths of the OpenCL backend, and EFLA_PATH to force one. */
#ifndef EFLA_OPENCL_PATH_H
#define EFLA_OPENCL_PATH_H

#include "efla/efla.h"

struct efla_cl_device;

typedef enum efla_cl_path {
    EFLA_CL_PATH_PORTABLE = 0, /* OpenCL C 1.2, local memory, no extensions */
    EFLA_CL_PATH_COUNT
} efla_cl_path;

const char *efla_cl_path_name(efla_cl_path path);

/* The best path for the device, ignoring EFLA_PATH. */
efla_status efla_cl_path_default(const struct efla_cl_device *device, efla_cl_path *out);

/* The path a context uses: EFLA_PATH when set (an unknown name, or a path
 * the device cannot run, fails with EFLA_ERROR_UNSUPPORTED naming the
 * valid values), else the default. */
efla_status efla_cl_path_choose(const struct efla_cl_device *device, efla_cl_path *out);

#endif
