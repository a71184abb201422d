/* Physical-device queries: properties, features, extensions, queues. */
#include "backends/vulkan/vk_caps.h"

#include "backends/vulkan/vk_coopmat.h"
#include "backends/vulkan/vk_path.h"

#include "core/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct extension_set {
    bool push_descriptor, pci_bus_info, driver_properties, sm_builtins;
    bool cooperative_matrix_khr, cooperative_matrix_nv, cooperative_matrix2_nv, float16_int8;
    bool amd_core;
} extension_set;

static efla_status query_extensions(const efla_vk_instance_fns *fns, VkPhysicalDevice device,
                                    extension_set *set) {
    uint32_t count = 0;
    VkResult result = fns->vkEnumerateDeviceExtensionProperties(device, NULL, &count, NULL);
    if (result != VK_SUCCESS) return efla_vk_check(result, "vkEnumerateDeviceExtensionProperties");
    VkExtensionProperties *list = calloc(count ? count : 1, sizeof *list);
    if (!list) return efla_error(EFLA_ERROR_OUT_OF_HOST_MEMORY, "out of host memory");
    result = fns->vkEnumerateDeviceExtensionProperties(device, NULL, &count, list);
    for (uint32_t i = 0; result == VK_SUCCESS && i < count; ++i) {
        const char *name = list[i].extensionName;
        set->push_descriptor |= strcmp(name, VK_KHR_PUSH_DESCRIPTOR_EXTENSION_NAME) == 0;
        set->pci_bus_info |= strcmp(name, VK_EXT_PCI_BUS_INFO_EXTENSION_NAME) == 0;
        set->driver_properties |= strcmp(name, VK_KHR_DRIVER_PROPERTIES_EXTENSION_NAME) == 0;
        set->sm_builtins |= strcmp(name, VK_NV_SHADER_SM_BUILTINS_EXTENSION_NAME) == 0;
        set->cooperative_matrix_khr |= strcmp(name, "VK_KHR_cooperative_matrix") == 0;
        set->cooperative_matrix_nv |= strcmp(name, VK_NV_COOPERATIVE_MATRIX_EXTENSION_NAME) == 0;
        set->cooperative_matrix2_nv |= strcmp(name, EFLA_VK_COOPMAT2_EXTENSION) == 0;
        set->float16_int8 |= strcmp(name, VK_KHR_SHADER_FLOAT16_INT8_EXTENSION_NAME) == 0;
        set->amd_core |= strcmp(name, VK_AMD_SHADER_CORE_PROPERTIES_EXTENSION_NAME) == 0;
    }
    free(list);
    if (result != VK_SUCCESS && result != VK_INCOMPLETE)
        return efla_vk_check(result, "vkEnumerateDeviceExtensionProperties");
    return EFLA_SUCCESS;
}

static void query_properties2(const efla_vk_instance_fns *fns, VkPhysicalDevice device,
                              const extension_set *ext, efla_vk_caps *caps) {
    VkPhysicalDeviceSubgroupProperties subgroup = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_PROPERTIES};
    VkPhysicalDeviceIDProperties id = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_ID_PROPERTIES,
                                       .pNext = &subgroup};
    VkPhysicalDeviceMaintenance3Properties maintenance3 = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MAINTENANCE_3_PROPERTIES, .pNext = &id};
    VkPhysicalDevicePCIBusInfoPropertiesEXT pci = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PCI_BUS_INFO_PROPERTIES_EXT};
    VkPhysicalDeviceDriverProperties driver = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_DRIVER_PROPERTIES};
    VkPhysicalDeviceShaderSMBuiltinsPropertiesNV sm = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_SM_BUILTINS_PROPERTIES_NV};
    VkPhysicalDeviceShaderCorePropertiesAMD amd = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_CORE_PROPERTIES_AMD};
    VkPhysicalDeviceProperties2 properties = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2, .pNext = &maintenance3};
    caps->pci_bus_info = ext->pci_bus_info;
    caps->driver_properties = caps->api_version >= VK_API_VERSION_1_2 || ext->driver_properties;
    caps->sm_builtins = ext->sm_builtins;
    if (caps->pci_bus_info) {
        pci.pNext = properties.pNext;
        properties.pNext = &pci;
    }
    if (caps->driver_properties) {
        driver.pNext = properties.pNext;
        properties.pNext = &driver;
    }
    if (caps->sm_builtins) {
        sm.pNext = properties.pNext;
        properties.pNext = &sm;
    }
    if (ext->amd_core) {
        amd.pNext = properties.pNext;
        properties.pNext = &amd;
    }
    fns->vkGetPhysicalDeviceProperties2(device, &properties);
    caps->subgroup_size = subgroup.subgroupSize;
    caps->max_allocation = maintenance3.maxMemoryAllocationSize;
    memcpy(caps->device_uuid, id.deviceUUID, VK_UUID_SIZE);
    if (caps->pci_bus_info)
        snprintf(caps->pci_bus_id, sizeof caps->pci_bus_id, "%04x:%02x:%02x.%x", pci.pciDomain,
                 pci.pciBus, pci.pciDevice, pci.pciFunction);
    if (caps->driver_properties)
        snprintf(caps->driver_info, sizeof caps->driver_info, "%.63s", driver.driverInfo);
    if (caps->sm_builtins) caps->compute_units = sm.shaderSMCount;
    if (ext->amd_core)
        caps->compute_units =
            amd.shaderEngineCount * amd.shaderArraysPerEngineCount * amd.computeUnitsPerShaderArray;
}

static void query_features(const efla_vk_instance_fns *fns, VkPhysicalDevice device,
                           const extension_set *ext, efla_vk_caps *caps) {
    VkPhysicalDevice16BitStorageFeatures storage16 = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_16BIT_STORAGE_FEATURES};
    VkPhysicalDeviceShaderFloat16Int8Features float16 = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_FLOAT16_INT8_FEATURES};
    VkPhysicalDeviceFeatures2 features = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2,
                                          .pNext = &storage16};
    bool has_float16 = caps->api_version >= VK_API_VERSION_1_2 || ext->float16_int8;
    if (has_float16) storage16.pNext = &float16;
    fns->vkGetPhysicalDeviceFeatures2(device, &features);
    caps->storage_16bit = storage16.storageBuffer16BitAccess == VK_TRUE;
    caps->float16_arithmetic = has_float16 && float16.shaderFloat16 == VK_TRUE;
}

static void query_memory(const efla_vk_instance_fns *fns, VkPhysicalDevice device,
                         efla_vk_caps *caps) {
    VkPhysicalDeviceMemoryProperties memory;
    fns->vkGetPhysicalDeviceMemoryProperties(device, &memory);
    for (uint32_t i = 0; i < memory.memoryHeapCount; ++i)
        if (memory.memoryHeaps[i].flags & VK_MEMORY_HEAP_DEVICE_LOCAL_BIT)
            caps->device_local_bytes += memory.memoryHeaps[i].size;
}

/* A compute family, preferring one with timestamps. */
static void query_queue_family(const efla_vk_instance_fns *fns, VkPhysicalDevice device,
                               efla_vk_caps *caps) {
    uint32_t count = 0;
    fns->vkGetPhysicalDeviceQueueFamilyProperties(device, &count, NULL);
    VkQueueFamilyProperties families[32];
    if (count > 32) count = 32;
    fns->vkGetPhysicalDeviceQueueFamilyProperties(device, &count, families);
    caps->queue_family = UINT32_MAX;
    for (uint32_t i = 0; i < count; ++i) {
        if (!(families[i].queueFlags & VK_QUEUE_COMPUTE_BIT) || families[i].queueCount == 0)
            continue;
        bool better = caps->queue_family == UINT32_MAX ||
                      (caps->timestamp_bits == 0 && families[i].timestampValidBits > 0);
        if (better) {
            caps->queue_family = i;
            caps->timestamp_bits = families[i].timestampValidBits;
        }
    }
}

const char *efla_vk_caps_unusable(const efla_vk_caps *caps) {
    const VkPhysicalDeviceLimits *limits = &caps->properties.limits;
    if (caps->queue_family == UINT32_MAX) return "it has no compute queue";
    if (limits->maxPerStageDescriptorStorageBuffers < EFLA_VK_BINDING_COUNT)
        return "it binds fewer than 14 storage buffers per stage";
    if (limits->maxComputeWorkGroupInvocations < 128)
        return "its workgroups hold fewer than 128 invocations";
    if (limits->maxComputeSharedMemorySize < 16384)
        return "it has less than 16 KiB of shared memory";
    return NULL;
}

efla_status efla_vk_query_caps(const efla_vk_instance_fns *fns, VkPhysicalDevice device,
                               efla_vk_caps *caps) {
    memset(caps, 0, sizeof *caps);
    fns->vkGetPhysicalDeviceProperties(device, &caps->properties);
    caps->api_version = caps->properties.apiVersion;
    if (caps->api_version < VK_API_VERSION_1_1) {
        caps->unusable = "it supports only Vulkan 1.0 (efla needs 1.1)";
        return EFLA_SUCCESS;
    }
    extension_set ext = {0};
    efla_status status = query_extensions(fns, device, &ext);
    if (status != EFLA_SUCCESS) return status;
    caps->push_descriptor = ext.push_descriptor;
    caps->cooperative_matrix_khr = ext.cooperative_matrix_khr;
    caps->cooperative_matrix_nv = ext.cooperative_matrix_nv;
    caps->coopmat2 = ext.cooperative_matrix2_nv; /* narrowed by efla_vk_coopmat_query */
    query_properties2(fns, device, &ext, caps);
    query_features(fns, device, &ext, caps);
    query_memory(fns, device, caps);
    query_queue_family(fns, device, caps);
    efla_vk_coopmat_query(fns, device, caps);
    caps->unusable = efla_vk_caps_unusable(caps);
    return EFLA_SUCCESS;
}

int efla_vk_caps_rank(const efla_vk_caps *caps) {
    switch (caps->properties.deviceType) {
    case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU: return 0;
    case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU: return 1;
    case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU: return 2;
    case VK_PHYSICAL_DEVICE_TYPE_OTHER: return 3;
    default: return 4; /* CPU: a software implementation */
    }
}

static efla_device_type device_type(VkPhysicalDeviceType type) {
    switch (type) {
    case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU: return EFLA_DEVICE_TYPE_DISCRETE_GPU;
    case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU: return EFLA_DEVICE_TYPE_INTEGRATED_GPU;
    case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU: return EFLA_DEVICE_TYPE_VIRTUAL_GPU;
    case VK_PHYSICAL_DEVICE_TYPE_CPU: return EFLA_DEVICE_TYPE_SOFTWARE;
    default: return EFLA_DEVICE_TYPE_OTHER;
    }
}

static const char *vendor_name(uint32_t vendor_id) {
    switch (vendor_id) {
    case 0x10de: return "NVIDIA";
    case 0x1002: return "AMD";
    case 0x8086: return "Intel";
    case 0x13b5: return "ARM";
    case 0x5143: return "Qualcomm";
    case 0x1010: return "Imagination";
    case 0x106b: return "Apple";
    case 0x10005: return "Mesa";
    default: return NULL;
    }
}

static void driver_version_text(const efla_vk_caps *caps, char *text, size_t size) {
    uint32_t v = caps->properties.driverVersion;
    if (caps->properties.vendorID == 0x10de)
        snprintf(text, size, "%u.%u.%u.%u", v >> 22, (v >> 14) & 0xff, (v >> 6) & 0xff, v & 0x3f);
    else
        snprintf(text, size, "%u.%u.%u", VK_API_VERSION_MAJOR(v), VK_API_VERSION_MINOR(v),
                 VK_API_VERSION_PATCH(v));
    if (caps->driver_info[0]) {
        size_t used = strlen(text);
        snprintf(text + used, size - used, " (%s)", caps->driver_info);
    }
}

void efla_vk_caps_describe(const efla_vk_caps *caps, efla_device_info *info) {
    const VkPhysicalDeviceProperties *p = &caps->properties;
    info->type = device_type(p->deviceType);
    snprintf(info->name, sizeof info->name, "%s", p->deviceName);
    const char *vendor = vendor_name(p->vendorID);
    if (vendor)
        snprintf(info->vendor, sizeof info->vendor, "%s", vendor);
    else
        snprintf(info->vendor, sizeof info->vendor, "0x%04x", p->vendorID);
    driver_version_text(caps, info->driver_version, sizeof info->driver_version);
    snprintf(info->pci_bus_id, sizeof info->pci_bus_id, "%s", caps->pci_bus_id);
    memcpy(info->uuid, caps->device_uuid, sizeof info->uuid);
    info->vendor_id = p->vendorID;
    info->device_id = p->deviceID;
    info->compute_units = caps->compute_units;
    if (info->compute_units == 0 && info->type == EFLA_DEVICE_TYPE_SOFTWARE) {
        long cores = sysconf(_SC_NPROCESSORS_ONLN); /* llvmpipe runs one thread per core */
        info->compute_units = cores > 0 ? (uint32_t)cores : 1;
    }
    if (info->compute_units == 0) info->compute_units = 1; /* the driver does not say */
    info->subgroup_size = caps->subgroup_size;
    info->shared_memory_bytes = p->limits.maxComputeSharedMemorySize;
    info->memory_bytes = caps->device_local_bytes;
    info->flags = EFLA_DEVICE_UUID_VALID;
    if (caps->storage_16bit || caps->float16_arithmetic) info->flags |= EFLA_DEVICE_FP16;
    if (caps->subgroup_size > 1) info->flags |= EFLA_DEVICE_SUBGROUPS;
    if (caps->cooperative_matrix_khr || caps->cooperative_matrix_nv)
        info->flags |= EFLA_DEVICE_COOPERATIVE_MATRIX;
    if (caps->timestamp_bits > 0) info->flags |= EFLA_DEVICE_TIMESTAMPS;
    efla_vk_path path = EFLA_VK_PATH_PORTABLE;
    if (efla_vk_path_select(caps, &path) != EFLA_SUCCESS) efla_error_clear(); /* reported at use */
    snprintf(info->kernel_path, sizeof info->kernel_path, "%s", efla_vk_path_name(path));
}

/* A positive integer from the environment, or `fallback` when unset. */
static efla_status env_u64(const char *name, uint64_t fallback, uint64_t *out) {
    const char *text = getenv(name);
    *out = fallback;
    if (!text || !*text) return EFLA_SUCCESS;
    char *end = NULL;
    unsigned long long value = strtoull(text, &end, 10);
    if (*end || value == 0 || text[0] == '-')
        return efla_error(EFLA_ERROR_INVALID_ARGUMENT, "%s='%s' is not a positive integer", name,
                          text);
    *out = value;
    return EFLA_SUCCESS;
}

/* A choice from the environment: unset -1 (let the plan choose), "0" or "1". */
static efla_status env_tristate(const char *name, int *out) {
    const char *text = getenv(name);
    *out = -1;
    if (!text || !*text) return EFLA_SUCCESS;
    if (strcmp(text, "0") != 0 && strcmp(text, "1") != 0)
        return efla_error(EFLA_ERROR_INVALID_ARGUMENT, "%s='%s'; valid: 0, 1", name, text);
    *out = text[0] - '0';
    return EFLA_SUCCESS;
}

/* An on/off switch from the environment: unset or "1" keeps `*on`, "0"
 * clears it. */
static efla_status env_switch(const char *name, bool *on) {
    const char *text = getenv(name);
    if (!text || !*text || strcmp(text, "1") == 0) return EFLA_SUCCESS;
    if (strcmp(text, "0") != 0)
        return efla_error(EFLA_ERROR_INVALID_ARGUMENT, "%s='%s'; valid: 0, 1", name, text);
    *on = false;
    return EFLA_SUCCESS;
}

efla_status efla_vk_features_select(const efla_vk_caps *caps, bool *push_descriptors,
                                    bool *storage_16bit) {
    *push_descriptors = caps->push_descriptor;
    *storage_16bit = caps->storage_16bit;
    efla_status status = env_switch("EFLA_VULKAN_PUSH_DESCRIPTORS", push_descriptors);
    if (status == EFLA_SUCCESS) status = env_switch("EFLA_VULKAN_16BIT_STORAGE", storage_16bit);
    return status;
}

static uint64_t min_u64(uint64_t a, uint64_t b) { return a < b ? a : b; }

/* More invocations per scan tile hide latency on GPUs; on a CPU
 * implementation they only add coroutine switches at every barrier. */
static uint64_t default_row_groups(const efla_vk_caps *caps) {
    return caps->properties.deviceType == VK_PHYSICAL_DEVICE_TYPE_CPU ? 4 : 8;
}

efla_status efla_vk_limits_init(const efla_vk_caps *caps, uint32_t max_chunks_per_dispatch,
                                efla_vk_limits *limits) {
    const VkPhysicalDeviceLimits *l = &caps->properties.limits;
    uint64_t shared, range, alignment, chunks, scratch, chunk, block_v, parts, legs, row_groups,
        coopmat_wg;
    int slabs, scan_output;
    bool coopmat2 = true;
    uint64_t budget = caps->device_local_bytes ? caps->device_local_bytes / 4 : (256u << 20);
    budget = min_u64(budget < (64u << 20) ? (64u << 20) : budget, (uint64_t)2 << 30);
    if (caps->max_allocation) budget = min_u64(budget, caps->max_allocation / 2); /* one buffer */
    efla_status status;
    if ((status =
             env_u64("EFLA_VULKAN_MAX_SHARED_MEMORY", l->maxComputeSharedMemorySize, &shared)) ||
        (status = env_u64("EFLA_VULKAN_MAX_STORAGE_RANGE", l->maxStorageBufferRange, &range)) ||
        (status = env_u64("EFLA_VULKAN_STORAGE_ALIGNMENT", l->minStorageBufferOffsetAlignment,
                          &alignment)) ||
        (status =
             env_u64("EFLA_VULKAN_MAX_CHUNKS_PER_DISPATCH", max_chunks_per_dispatch, &chunks)) ||
        (status = env_u64("EFLA_VULKAN_MAX_SCRATCH", budget, &scratch)) ||
        (status = env_u64("EFLA_VULKAN_CHUNK", 0, &chunk)) ||
        (status = env_u64("EFLA_VULKAN_SCAN_BLOCK_V", 0, &block_v)) ||
        (status = env_u64("EFLA_VULKAN_SCAN_PARTS", 0, &parts)) ||
        (status = env_u64("EFLA_VULKAN_SCAN_LEGS", 0, &legs)) ||
        (status = env_u64("EFLA_VULKAN_SCAN_ROW_GROUPS", default_row_groups(caps), &row_groups)) ||
        (status = env_u64("EFLA_VULKAN_COOPMAT_WORKGROUP", 0, &coopmat_wg)) ||
        (status = env_tristate("EFLA_VULKAN_SCAN_SLABS", &slabs)) ||
        (status = env_tristate("EFLA_VULKAN_SCAN_OUTPUT", &scan_output)) ||
        (status = env_switch("EFLA_VULKAN_COOPMAT2", &coopmat2)) ||
        (status = efla_vk_features_select(caps, &limits->push_descriptors, &limits->storage_16bit)))
        return status;
    if (block_v != 0 && block_v != 8 && block_v != 16 && block_v != 32 && block_v != 64)
        return efla_error(EFLA_ERROR_INVALID_ARGUMENT,
                          "EFLA_VULKAN_SCAN_BLOCK_V=%llu; valid: 8, 16, 32, 64",
                          (unsigned long long)block_v);
    if (parts != 0 && parts != 1 && parts != 2 && parts != 4)
        return efla_error(EFLA_ERROR_INVALID_ARGUMENT,
                          "EFLA_VULKAN_SCAN_PARTS=%llu; valid: 1, 2, 4", (unsigned long long)parts);
    if (legs > 64)
        return efla_error(EFLA_ERROR_INVALID_ARGUMENT,
                          "EFLA_VULKAN_SCAN_LEGS=%llu; valid: 1 (off) to 64",
                          (unsigned long long)legs);
    if (row_groups > 16 || (row_groups & (row_groups - 1)))
        return efla_error(EFLA_ERROR_INVALID_ARGUMENT,
                          "EFLA_VULKAN_SCAN_ROW_GROUPS=%llu; valid: 1, 2, 4, 8, 16",
                          (unsigned long long)row_groups);
    if (coopmat_wg != 0 && coopmat_wg != 128 && coopmat_wg != 256 && coopmat_wg != 512)
        return efla_error(EFLA_ERROR_INVALID_ARGUMENT,
                          "EFLA_VULKAN_COOPMAT_WORKGROUP=%llu; valid: 128, 256, 512",
                          (unsigned long long)coopmat_wg);
    if (chunk != 0 && chunk != 16 && chunk != 32 && chunk != 64)
        return efla_error(EFLA_ERROR_INVALID_ARGUMENT, "EFLA_VULKAN_CHUNK=%llu; valid: 16, 32, 64",
                          (unsigned long long)chunk);
    if (alignment & (alignment - 1) || alignment > 65536)
        return efla_error(EFLA_ERROR_INVALID_ARGUMENT,
                          "EFLA_VULKAN_STORAGE_ALIGNMENT=%llu is not a power of two <= 65536",
                          (unsigned long long)alignment);
    limits->shared_bytes = (uint32_t)min_u64(shared, l->maxComputeSharedMemorySize);
    limits->storage_range = min_u64(range, l->maxStorageBufferRange);
    limits->storage_alignment = (uint32_t)(alignment < l->minStorageBufferOffsetAlignment
                                               ? l->minStorageBufferOffsetAlignment
                                               : alignment);
    if (limits->storage_alignment < 4) limits->storage_alignment = 4;
    limits->max_invocations = l->maxComputeWorkGroupInvocations;
    for (int i = 0; i < 3; ++i)
        limits->max_groups[i] = l->maxComputeWorkGroupCount[i];
    limits->scratch_budget = scratch;
    limits->max_chunks_per_dispatch = (uint32_t)min_u64(chunks, UINT32_MAX);
    limits->chunk = (uint32_t)chunk;
    limits->scan_block_v = (uint32_t)block_v;
    limits->scan_parts = (uint32_t)parts;
    limits->scan_legs = (uint32_t)legs;
    limits->scan_row_groups = (uint32_t)row_groups;
    limits->coopmat_workgroup = (uint32_t)coopmat_wg;
    limits->scan_slabs = slabs;
    limits->scan_output = scan_output;
    limits->compute_units = caps->compute_units;
    limits->subgroup_size = caps->subgroup_size;
    efla_vk_path path;
    status = efla_vk_path_select(caps, &path);
    limits->path = (int)path;
    limits->coopmat2 = coopmat2 && caps->coopmat2 && path == EFLA_VK_PATH_COOPMAT;
    return status;
}
