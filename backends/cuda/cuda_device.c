/* Probe, device enumeration and properties, and the EFLA_PATH choice. */
#include "backends/cuda/cuda_internal.h"

#include "core/error.h"
#include "core/kernel_path.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

efla_status efla_cuda_probe(void) {
    const efla_cuda_api *api;
    return efla_cuda_api_load(&api);
}

efla_status efla_cuda_device_count(uint32_t *out_count) {
    int count = 0;
    CUresult result = efla_cu->DeviceGetCount(&count);
    if (result == CUDA_ERROR_NO_DEVICE)
        count = 0;
    else if (result != CUDA_SUCCESS)
        return efla_cuda_fail(result, "cuDeviceGetCount");
    *out_count = count > 0 ? (uint32_t)count : 0;
    return EFLA_SUCCESS;
}

static efla_status attribute(CUdevice device, CUdevice_attribute which, int *out) {
    CUresult result = efla_cu->DeviceGetAttribute(out, which, device);
    return result == CUDA_SUCCESS ? EFLA_SUCCESS : efla_cuda_fail(result, "cuDeviceGetAttribute");
}

efla_status efla_cuda_device_props_get(CUdevice device, int ordinal, efla_cuda_device_props *out) {
    memset(out, 0, sizeof *out);
    out->device = device;
    out->ordinal = ordinal;
    efla_status s;
    if ((s = attribute(device, CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, &out->sm_count)) ||
        (s = attribute(device, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, &out->cc_major)) ||
        (s = attribute(device, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, &out->cc_minor)) ||
        (s = attribute(device, CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN,
                       &out->smem_optin)) ||
        (s = attribute(device, CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_MULTIPROCESSOR,
                       &out->smem_per_sm)))
        return s;
    return EFLA_SUCCESS;
}

const char *efla_cuda_path_name(efla_cuda_path path) {
    return path == EFLA_CUDA_PATH_SIMT ? "simt" : "mma";
}

efla_status efla_cuda_path_from_env(efla_cuda_path *out) {
    char buffer[64];
    const char *text = efla_kernel_path_requested(EFLA_BACKEND_CUDA, buffer, sizeof buffer);
    *out = EFLA_CUDA_PATH_AUTO;
    if (!text || !*text || strcmp(text, "auto") == 0) return EFLA_SUCCESS;
    static const struct {
        const char *name;
        efla_cuda_path path;
    } paths[] = {{"simt", EFLA_CUDA_PATH_SIMT}, {"mma", EFLA_CUDA_PATH_MMA}};
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; ++i)
        if (strcmp(text, paths[i].name) == 0) {
            *out = paths[i].path;
            return EFLA_SUCCESS;
        }
    return efla_error(
        EFLA_ERROR_UNSUPPORTED,
        "EFLA_PATH='%s' is not a CUDA kernel path (valid: auto, " EFLA_CUDA_PATH_NAMES ")", text);
}

static void lowercase(char *text) {
    for (; *text; ++text)
        *text = (char)tolower((unsigned char)*text);
}

efla_status efla_cuda_fill_info(const efla_cuda_device_props *props, efla_device_info *info) {
    CUdevice device = props->device;
    CUresult result = efla_cu->DeviceGetName(info->name, (int)sizeof info->name, device);
    if (result != CUDA_SUCCESS) return efla_cuda_fail(result, "cuDeviceGetName");
    snprintf(info->vendor, sizeof info->vendor, "NVIDIA");
    info->vendor_id = 0x10de;
    int driver = efla_cu->driver_version;
    snprintf(info->driver_version, sizeof info->driver_version, "CUDA %d.%d", driver / 1000,
             driver % 1000 / 10);
    if (efla_cu->DeviceGetPCIBusId &&
        efla_cu->DeviceGetPCIBusId(info->pci_bus_id, (int)sizeof info->pci_bus_id, device) ==
            CUDA_SUCCESS)
        lowercase(info->pci_bus_id); /* as Vulkan and sysfs spell it */
    else
        info->pci_bus_id[0] = '\0';
    CUuuid uuid;
    if (efla_cu->DeviceGetUuid && efla_cu->DeviceGetUuid(&uuid, device) == CUDA_SUCCESS) {
        memcpy(info->uuid, uuid.bytes, sizeof info->uuid);
        info->flags |= EFLA_DEVICE_UUID_VALID;
    }
    int integrated = 0, warp = 32;
    efla_status s;
    if ((s = attribute(device, CU_DEVICE_ATTRIBUTE_INTEGRATED, &integrated)) ||
        (s = attribute(device, CU_DEVICE_ATTRIBUTE_WARP_SIZE, &warp)))
        return s;
    size_t memory = 0;
    result = efla_cu->DeviceTotalMem(&memory, device);
    if (result != CUDA_SUCCESS) return efla_cuda_fail(result, "cuDeviceTotalMem");
    info->type = integrated ? EFLA_DEVICE_TYPE_INTEGRATED_GPU : EFLA_DEVICE_TYPE_DISCRETE_GPU;
    info->compute_units = (uint32_t)props->sm_count;
    info->subgroup_size = (uint32_t)warp;
    info->shared_memory_bytes = (uint64_t)props->smem_optin;
    info->memory_bytes = memory;
    info->flags |= EFLA_DEVICE_SUBGROUPS | EFLA_DEVICE_TIMESTAMPS;
    if (props->cc_major > 5 || (props->cc_major == 5 && props->cc_minor >= 3))
        info->flags |= EFLA_DEVICE_FP16;
    if (props->cc_major >= 8) info->flags |= EFLA_DEVICE_BF16 | EFLA_DEVICE_COOPERATIVE_MATRIX;
    efla_cuda_path path = EFLA_CUDA_PATH_AUTO;
    if (efla_cuda_path_from_env(&path) != EFLA_SUCCESS) path = EFLA_CUDA_PATH_AUTO;
    snprintf(info->kernel_path, sizeof info->kernel_path, "%s",
             props->cc_major >= 8 ? efla_cuda_path_name(path) : "none (needs sm_80+)");
    return EFLA_SUCCESS;
}

efla_status efla_cuda_device_info(uint32_t index, efla_device_info *info) {
    CUdevice device;
    CUresult result = efla_cu->DeviceGet(&device, (int)index);
    if (result != CUDA_SUCCESS) return efla_cuda_fail(result, "cuDeviceGet");
    efla_cuda_device_props props;
    efla_status s = efla_cuda_device_props_get(device, (int)index, &props);
    return s ? s : efla_cuda_fill_info(&props, info);
}
