/* OpenCL error codes as names and efla statuses. */
#ifndef EFLA_OPENCL_ERROR_H
#define EFLA_OPENCL_ERROR_H

#include "efla/efla.h"

#include <CL/cl.h>

/* "CL_OUT_OF_RESOURCES"; "CL error -9999" style for unknown codes is not
 * returned here: unknown codes give NULL. */
const char *efla_cl_error_name(cl_int code);

/* Sets the message "<what> failed: CL_NAME (code)" and returns the status:
 * EFLA_ERROR_OUT_OF_DEVICE_MEMORY for CL_OUT_OF_RESOURCES and
 * CL_MEM_OBJECT_ALLOCATION_FAILURE, EFLA_ERROR_OUT_OF_HOST_MEMORY for
 * CL_OUT_OF_HOST_MEMORY, EFLA_ERROR_DEVICE otherwise. */
efla_status efla_cl_fail(cl_int code, const char *what);

/* The status efla_cl_fail would return, without a message. */
efla_status efla_cl_status(cl_int code);

#endif
