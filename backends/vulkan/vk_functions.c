/* Loading the Vulkan function tables, and VkResult -> efla_status. */
#include "backends/vulkan/vk_functions.h"

#include "core/error.h"

#include <stddef.h>
#include <string.h>

typedef struct named_entry {
    const char *name;
    size_t offset;
} named_entry;

#define EFLA_VK_INSTANCE_ENTRY(name) {#name, offsetof(efla_vk_instance_fns, name)},
#define EFLA_VK_DEVICE_ENTRY(name) {#name, offsetof(efla_vk_device_fns, name)},

static const named_entry instance_entries[] = {EFLA_VK_INSTANCE_FUNCTIONS(EFLA_VK_INSTANCE_ENTRY)};
static const named_entry device_entries[] = {EFLA_VK_DEVICE_FUNCTIONS(EFLA_VK_DEVICE_ENTRY)};
static const named_entry optional_entries[] = {
    EFLA_VK_OPTIONAL_DEVICE_FUNCTIONS(EFLA_VK_DEVICE_ENTRY)};

/* Function and object pointers share a representation on every platform
 * efla targets, so the looked-up pointer is stored with memcpy. */
static void store_pointer(void *table, size_t offset, PFN_vkVoidFunction fn) {
    memcpy((char *)table + offset, &fn, sizeof fn);
}

efla_status efla_vk_load_instance_fns(PFN_vkGetInstanceProcAddr get_proc, VkInstance instance,
                                      efla_vk_instance_fns *out) {
    memset(out, 0, sizeof *out);
    out->vkGetInstanceProcAddr = get_proc;
    for (size_t i = 0; i < sizeof instance_entries / sizeof instance_entries[0]; ++i) {
        PFN_vkVoidFunction fn = get_proc(instance, instance_entries[i].name);
        if (!fn)
            return efla_error(EFLA_ERROR_BACKEND_UNAVAILABLE,
                              "the Vulkan loader lacks %s (Vulkan 1.1 is required)",
                              instance_entries[i].name);
        store_pointer(out, instance_entries[i].offset, fn);
    }
    out->vkGetPhysicalDeviceCooperativeMatrixPropertiesKHR =
        get_proc(instance, "vkGetPhysicalDeviceCooperativeMatrixPropertiesKHR");
    return EFLA_SUCCESS;
}

efla_status efla_vk_load_device_fns(const efla_vk_instance_fns *instance_fns, VkDevice device,
                                    efla_vk_device_fns *out) {
    memset(out, 0, sizeof *out);
    for (size_t i = 0; i < sizeof device_entries / sizeof device_entries[0]; ++i) {
        PFN_vkVoidFunction fn = instance_fns->vkGetDeviceProcAddr(device, device_entries[i].name);
        if (!fn)
            return efla_error(EFLA_ERROR_UNSUPPORTED, "the Vulkan device lacks %s",
                              device_entries[i].name);
        store_pointer(out, device_entries[i].offset, fn);
    }
    for (size_t i = 0; i < sizeof optional_entries / sizeof optional_entries[0]; ++i)
        store_pointer(out, optional_entries[i].offset,
                      instance_fns->vkGetDeviceProcAddr(device, optional_entries[i].name));
    return EFLA_SUCCESS;
}

const char *efla_vk_result_name(VkResult result) {
    switch (result) {
    case VK_SUCCESS: return "VK_SUCCESS";
    case VK_NOT_READY: return "VK_NOT_READY";
    case VK_TIMEOUT: return "VK_TIMEOUT";
    case VK_INCOMPLETE: return "VK_INCOMPLETE";
    case VK_ERROR_OUT_OF_HOST_MEMORY: return "VK_ERROR_OUT_OF_HOST_MEMORY";
    case VK_ERROR_OUT_OF_DEVICE_MEMORY: return "VK_ERROR_OUT_OF_DEVICE_MEMORY";
    case VK_ERROR_INITIALIZATION_FAILED: return "VK_ERROR_INITIALIZATION_FAILED";
    case VK_ERROR_DEVICE_LOST: return "VK_ERROR_DEVICE_LOST";
    case VK_ERROR_MEMORY_MAP_FAILED: return "VK_ERROR_MEMORY_MAP_FAILED";
    case VK_ERROR_LAYER_NOT_PRESENT: return "VK_ERROR_LAYER_NOT_PRESENT";
    case VK_ERROR_EXTENSION_NOT_PRESENT: return "VK_ERROR_EXTENSION_NOT_PRESENT";
    case VK_ERROR_FEATURE_NOT_PRESENT: return "VK_ERROR_FEATURE_NOT_PRESENT";
    case VK_ERROR_INCOMPATIBLE_DRIVER: return "VK_ERROR_INCOMPATIBLE_DRIVER";
    case VK_ERROR_TOO_MANY_OBJECTS: return "VK_ERROR_TOO_MANY_OBJECTS";
    case VK_ERROR_FORMAT_NOT_SUPPORTED: return "VK_ERROR_FORMAT_NOT_SUPPORTED";
    case VK_ERROR_FRAGMENTED_POOL: return "VK_ERROR_FRAGMENTED_POOL";
    case VK_ERROR_OUT_OF_POOL_MEMORY: return "VK_ERROR_OUT_OF_POOL_MEMORY";
    case VK_ERROR_INVALID_SHADER_NV: return "VK_ERROR_INVALID_SHADER_NV";
    default: return "unknown VkResult";
    }
}

efla_status efla_vk_check(VkResult result, const char *what) {
    if (result == VK_SUCCESS) return EFLA_SUCCESS;
    efla_status status = EFLA_ERROR_DEVICE;
    if (result == VK_ERROR_DEVICE_LOST)
        status = EFLA_ERROR_DEVICE_LOST;
    else if (result == VK_ERROR_OUT_OF_DEVICE_MEMORY)
        status = EFLA_ERROR_OUT_OF_DEVICE_MEMORY;
    else if (result == VK_ERROR_OUT_OF_HOST_MEMORY)
        status = EFLA_ERROR_OUT_OF_HOST_MEMORY;
    return efla_error(status, "%s failed: %s (%d)", what, efla_vk_result_name(result), (int)result);
}
