/* OpenCL platforms and devices: enumeration, ranking and capabilities. */
#ifndef EFLA_OPENCL_DEVICE_H
#define EFLA_OPENCL_DEVICE_H

#include "core/backend.h"

#include <CL/cl.h>

/* Everything efla needs to know about one device. */
typedef struct efla_cl_device {
    cl_platform_id platform;
    cl_device_id device;
    efla_device_info info; /* backend and index filled by the caller */
    char platform_version[128];
    cl_device_type cl_type;
    uint64_t local_memory;   /* CL_DEVICE_LOCAL_MEM_SIZE */
    uint64_t max_allocation; /* CL_DEVICE_MAX_MEM_ALLOC_SIZE */
    size_t max_work_group;   /* CL_DEVICE_MAX_WORK_GROUP_SIZE */
    cl_command_queue_properties queue_properties;
    /* NVIDIA (cl_nv_device_attribute_query): major * 10 + minor; else 0. */
    uint32_t nv_compute_capability;
} efla_cl_device;

/* The process-wide device list, best first: GPUs, then accelerators, then
 * CPU devices, each group in platform order. Enumerated once. */
efla_status efla_cl_devices(const efla_cl_device **out_devices, uint32_t *out_count);

/* Describes any device (used for host-provided devices too). */
efla_status efla_cl_describe(cl_platform_id platform, cl_device_id device, efla_cl_device *out);

#endif
