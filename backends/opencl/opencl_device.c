/* Enumerating OpenCL devices and describing their capabilities. */
#include "backends/opencl/opencl_device.h"

#include "backends/opencl/opencl_error.h"
#include "backends/opencl/opencl_loader.h"
#include "backends/opencl/opencl_path.h"
#include "core/error.h"

#include <CL/cl_ext.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* NVIDIA's cl_nv_device_attribute_query values (absent from Khronos'
 * headers). The slot id holds (device << 3) | function. */
#define EFLA_CL_DEVICE_PCI_BUS_ID_NV 0x4008
#define EFLA_CL_DEVICE_PCI_SLOT_ID_NV 0x4009
#define EFLA_CL_DEVICE_PCI_DOMAIN_ID_NV 0x400A

static void device_string(cl_device_id device, cl_device_info what, char *out, size_t size) {
    out[0] = '\0';
    size_t length = 0;
    if (efla_cl.clGetDeviceInfo(device, what, size, out, &length) != CL_SUCCESS) out[0] = '\0';
    out[size - 1] = '\0';
}

static cl_ulong device_ulong(cl_device_id device, cl_device_info what) {
    cl_ulong value = 0;
    if (efla_cl.clGetDeviceInfo(device, what, sizeof value, &value, NULL) != CL_SUCCESS) return 0;
    return value;
}

static cl_uint device_uint(cl_device_id device, cl_device_info what) {
    cl_uint value = 0;
    if (efla_cl.clGetDeviceInfo(device, what, sizeof value, &value, NULL) != CL_SUCCESS) return 0;
    return value;
}

/* Whether the device's extension string names `extension` exactly. */
static bool has_extension(cl_device_id device, const char *extension) {
    size_t size = 0;
    if (efla_cl.clGetDeviceInfo(device, CL_DEVICE_EXTENSIONS, 0, NULL, &size) != CL_SUCCESS ||
        size == 0)
        return false;
    char *text = malloc(size + 1);
    if (!text) return false;
    bool found = false;
    if (efla_cl.clGetDeviceInfo(device, CL_DEVICE_EXTENSIONS, size, text, NULL) == CL_SUCCESS) {
        text[size] = '\0';
        size_t length = strlen(extension);
        for (const char *p = strstr(text, extension); p && !found; p = strstr(p + 1, extension))
            found = (p == text || p[-1] == ' ') && (p[length] == ' ' || p[length] == '\0');
    }
    free(text);
    return found;
}

static void pci_bus_id(cl_device_id device, char *out, size_t size) {
    out[0] = '\0';
    if (has_extension(device, "cl_khr_pci_bus_info")) {
        cl_device_pci_bus_info_khr pci;
        if (efla_cl.clGetDeviceInfo(device, CL_DEVICE_PCI_BUS_INFO_KHR, sizeof pci, &pci, NULL) ==
            CL_SUCCESS) {
            snprintf(out, size, "%04x:%02x:%02x.%x", pci.pci_domain, pci.pci_bus, pci.pci_device,
                     pci.pci_function);
            return;
        }
    }
    if (has_extension(device, "cl_nv_device_attribute_query")) {
        cl_uint bus = 0, slot = 0, domain = 0;
        if (efla_cl.clGetDeviceInfo(device, EFLA_CL_DEVICE_PCI_BUS_ID_NV, sizeof bus, &bus, NULL) !=
                CL_SUCCESS ||
            efla_cl.clGetDeviceInfo(device, EFLA_CL_DEVICE_PCI_SLOT_ID_NV, sizeof slot, &slot,
                                    NULL) != CL_SUCCESS)
            return;
        if (efla_cl.clGetDeviceInfo(device, EFLA_CL_DEVICE_PCI_DOMAIN_ID_NV, sizeof domain, &domain,
                                    NULL) != CL_SUCCESS)
            domain = 0;
        snprintf(out, size, "%04x:%02x:%02x.%x", domain & 0xffffu, bus & 0xffu, (slot >> 3) & 0x1fu,
                 slot & 7u);
    }
}

static efla_device_type device_type(cl_device_id device, cl_device_type type) {
    if (type & CL_DEVICE_TYPE_GPU) {
        cl_bool unified = CL_FALSE;
        efla_cl.clGetDeviceInfo(device, CL_DEVICE_HOST_UNIFIED_MEMORY, sizeof unified, &unified,
                                NULL);
        return unified ? EFLA_DEVICE_TYPE_INTEGRATED_GPU : EFLA_DEVICE_TYPE_DISCRETE_GPU;
    }
    /* An OpenCL CPU device (PoCL, Intel's CPU runtime) is a GPU API run on
     * the CPU: a software device next to efla's own CPU backend. */
    if (type & CL_DEVICE_TYPE_CPU) return EFLA_DEVICE_TYPE_SOFTWARE;
    return EFLA_DEVICE_TYPE_OTHER;
}

static uint32_t subgroup_size(cl_device_id device) {
    if (has_extension(device, "cl_nv_device_attribute_query"))
        return device_uint(device, CL_DEVICE_WARP_SIZE_NV);
    if (has_extension(device, "cl_amd_device_attribute_query"))
        return device_uint(device, CL_DEVICE_WAVEFRONT_WIDTH_AMD);
    return 0;
}

static uint32_t nv_compute_capability(cl_device_id device) {
    if (!has_extension(device, "cl_nv_device_attribute_query")) return 0;
    return 10 * device_uint(device, CL_DEVICE_COMPUTE_CAPABILITY_MAJOR_NV) +
           device_uint(device, CL_DEVICE_COMPUTE_CAPABILITY_MINOR_NV);
}

static uint32_t capability_flags(cl_device_id device, uint8_t *uuid) {
    uint32_t flags = EFLA_DEVICE_TIMESTAMPS; /* profiling queues are core OpenCL */
    if (has_extension(device, "cl_khr_fp16")) flags |= EFLA_DEVICE_FP16;
    if (has_extension(device, "cl_khr_subgroups") || has_extension(device, "cl_intel_subgroups"))
        flags |= EFLA_DEVICE_SUBGROUPS;
    if (has_extension(device, "cl_khr_device_uuid") &&
        efla_cl.clGetDeviceInfo(device, CL_DEVICE_UUID_KHR, 16, uuid, NULL) == CL_SUCCESS)
        flags |= EFLA_DEVICE_UUID_VALID;
    return flags;
}

efla_status efla_cl_describe(cl_platform_id platform, cl_device_id device, efla_cl_device *out) {
    memset(out, 0, sizeof *out);
    out->platform = platform;
    out->device = device;
    cl_int err =
        efla_cl.clGetDeviceInfo(device, CL_DEVICE_TYPE, sizeof out->cl_type, &out->cl_type, NULL);
    if (err != CL_SUCCESS) return efla_cl_fail(err, "clGetDeviceInfo(CL_DEVICE_TYPE)");
    efla_device_info *info = &out->info;
    info->struct_size = sizeof *info;
    info->backend = EFLA_BACKEND_OPENCL;
    info->type = device_type(device, out->cl_type);
    device_string(device, CL_DEVICE_NAME, info->name, sizeof info->name);
    device_string(device, CL_DEVICE_VENDOR, info->vendor, sizeof info->vendor);
    device_string(device, CL_DRIVER_VERSION, info->driver_version, sizeof info->driver_version);
    pci_bus_id(device, info->pci_bus_id, sizeof info->pci_bus_id);
    info->vendor_id = device_uint(device, CL_DEVICE_VENDOR_ID);
    info->compute_units = device_uint(device, CL_DEVICE_MAX_COMPUTE_UNITS);
    info->subgroup_size = subgroup_size(device);
    out->nv_compute_capability = nv_compute_capability(device);
    out->local_memory = device_ulong(device, CL_DEVICE_LOCAL_MEM_SIZE);
    info->shared_memory_bytes = out->local_memory;
    info->memory_bytes = device_ulong(device, CL_DEVICE_GLOBAL_MEM_SIZE);
    info->flags = capability_flags(device, info->uuid);
    out->max_allocation = device_ulong(device, CL_DEVICE_MAX_MEM_ALLOC_SIZE);
    efla_cl.clGetDeviceInfo(device, CL_DEVICE_MAX_WORK_GROUP_SIZE, sizeof out->max_work_group,
                            &out->max_work_group, NULL);
    efla_cl.clGetDeviceInfo(device, CL_DEVICE_QUEUE_PROPERTIES, sizeof out->queue_properties,
                            &out->queue_properties, NULL);
    if (efla_cl.clGetPlatformInfo(platform, CL_PLATFORM_VERSION, sizeof out->platform_version,
                                  out->platform_version, NULL) != CL_SUCCESS)
        out->platform_version[0] = '\0';
    out->platform_version[sizeof out->platform_version - 1] = '\0';
    efla_cl_path path;
    if (efla_cl_path_default(out, &path) == EFLA_SUCCESS)
        snprintf(info->kernel_path, sizeof info->kernel_path, "%s", efla_cl_path_name(path));
    return EFLA_SUCCESS;
}

/* ---- the process-wide list ---------------------------------------- */

static pthread_once_t list_once = PTHREAD_ONCE_INIT;
static efla_cl_device *device_list;
static uint32_t device_list_count;
static efla_status list_status;
static char list_message[512];

static int rank_of(const efla_cl_device *d) {
    if (d->cl_type & CL_DEVICE_TYPE_GPU) return 0;
    if (d->cl_type & CL_DEVICE_TYPE_ACCELERATOR) return 1;
    if (d->cl_type & CL_DEVICE_TYPE_CPU) return 2;
    return 3;
}

/* Stable insertion sort by rank: platform order is kept within a rank. */
static void rank_devices(efla_cl_device *devices, uint32_t count) {
    for (uint32_t i = 1; i < count; ++i) {
        efla_cl_device moving = devices[i];
        uint32_t j = i;
        for (; j > 0 && rank_of(&devices[j - 1]) > rank_of(&moving); --j)
            devices[j] = devices[j - 1];
        devices[j] = moving;
    }
    for (uint32_t i = 0; i < count; ++i)
        devices[i].info.index = i;
}

static efla_status append_platform(cl_platform_id platform) {
    cl_uint count = 0;
    cl_int err = efla_cl.clGetDeviceIDs(platform, CL_DEVICE_TYPE_ALL, 0, NULL, &count);
    if (err == CL_DEVICE_NOT_FOUND || count == 0) return EFLA_SUCCESS;
    if (err != CL_SUCCESS) return efla_cl_fail(err, "clGetDeviceIDs");
    cl_device_id *ids = calloc(count, sizeof *ids);
    efla_cl_device *grown = realloc(device_list, (device_list_count + count) * sizeof *grown);
    if (!ids || !grown) {
        free(ids);
        if (grown) device_list = grown;
        return efla_error(EFLA_ERROR_OUT_OF_HOST_MEMORY, "out of host memory");
    }
    device_list = grown;
    err = efla_cl.clGetDeviceIDs(platform, CL_DEVICE_TYPE_ALL, count, ids, NULL);
    for (cl_uint i = 0; err == CL_SUCCESS && i < count; ++i) {
        efla_status status = efla_cl_describe(platform, ids[i], &device_list[device_list_count]);
        if (status == EFLA_SUCCESS) device_list_count++;
    }
    free(ids);
    return err == CL_SUCCESS ? EFLA_SUCCESS : efla_cl_fail(err, "clGetDeviceIDs");
}

static void enumerate(void) {
    cl_uint count = 0;
    cl_int err = efla_cl.clGetPlatformIDs(0, NULL, &count);
    if (err == -1001 /* CL_PLATFORM_NOT_FOUND_KHR: no ICD installed */ || count == 0) return;
    cl_platform_id *platforms = calloc(count, sizeof *platforms);
    if (!platforms) {
        list_status = efla_error(EFLA_ERROR_OUT_OF_HOST_MEMORY, "out of host memory");
    } else if ((err = efla_cl.clGetPlatformIDs(count, platforms, NULL)) != CL_SUCCESS) {
        list_status = efla_cl_fail(err, "clGetPlatformIDs");
    } else {
        /* A platform that fails is skipped: the others may still work. */
        for (cl_uint p = 0; p < count; ++p)
            append_platform(platforms[p]);
        rank_devices(device_list, device_list_count);
    }
    free(platforms);
    if (list_status != EFLA_SUCCESS)
        snprintf(list_message, sizeof list_message, "%s", efla_last_error_message());
}

efla_status efla_cl_devices(const efla_cl_device **out_devices, uint32_t *out_count) {
    efla_status status = efla_cl_load();
    if (status != EFLA_SUCCESS) return status;
    pthread_once(&list_once, enumerate);
    if (list_status != EFLA_SUCCESS) return efla_error(list_status, "%s", list_message);
    *out_devices = device_list;
    *out_count = device_list_count;
    return EFLA_SUCCESS;
}
