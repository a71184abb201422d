/*
 * The process-wide part of the Vulkan backend: libvulkan is opened at run
 * time (core/dynlib.h), one instance is created for efla's own contexts, and
 * the physical devices efla can use are ranked once. Nothing here runs
 * unless the Vulkan backend is probed.
 */
#include "backends/vulkan/vk_loader.h"

#include "core/dynlib.h"
#include "core/error.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct {
    pthread_once_t once;
    efla_status status;
    char message[512];
    efla_dynlib *library;
    VkInstance instance;
    efla_vk_instance_fns fns;
    efla_vk_physical *devices;
    uint32_t device_count;
} runtime = {.once = PTHREAD_ONCE_INIT};

static bool has_instance_extension(PFN_vkGetInstanceProcAddr get_proc, const char *name) {
    PFN_vkEnumerateInstanceExtensionProperties enumerate =
        (PFN_vkEnumerateInstanceExtensionProperties)get_proc(
            NULL, "vkEnumerateInstanceExtensionProperties");
    uint32_t count = 0;
    if (!enumerate || enumerate(NULL, &count, NULL) != VK_SUCCESS || count == 0) return false;
    VkExtensionProperties *list = calloc(count, sizeof *list);
    bool found = false;
    if (list && enumerate(NULL, &count, list) == VK_SUCCESS)
        for (uint32_t i = 0; i < count && !found; ++i)
            found = strcmp(list[i].extensionName, name) == 0;
    free(list);
    return found;
}

static efla_status create_instance(PFN_vkGetInstanceProcAddr get_proc) {
    PFN_vkEnumerateInstanceVersion version_fn =
        (PFN_vkEnumerateInstanceVersion)get_proc(NULL, "vkEnumerateInstanceVersion");
    uint32_t version = VK_API_VERSION_1_0;
    if (version_fn && version_fn(&version) != VK_SUCCESS) version = VK_API_VERSION_1_0;
    if (version < VK_API_VERSION_1_1)
        return efla_error(EFLA_ERROR_BACKEND_UNAVAILABLE,
                          "the Vulkan loader supports only Vulkan 1.0 (efla needs 1.1)");
    PFN_vkCreateInstance create = (PFN_vkCreateInstance)get_proc(NULL, "vkCreateInstance");
    if (!create)
        return efla_error(EFLA_ERROR_BACKEND_UNAVAILABLE,
                          "the Vulkan loader lacks vkCreateInstance");
    VkApplicationInfo app = {.sType = VK_STRUCTURE_TYPE_APPLICATION_INFO,
                             .pApplicationName = "efla",
                             .pEngineName = "efla",
                             .engineVersion = EFLA_VERSION,
                             .apiVersion =
                                 version < VK_API_VERSION_1_3 ? version : VK_API_VERSION_1_3};
    const char *portability = "VK_KHR_portability_enumeration";
    VkInstanceCreateInfo info = {.sType = VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO,
                                 .pApplicationInfo = &app};
    if (has_instance_extension(get_proc, portability)) {
        info.flags = 0x00000001; /* VK_INSTANCE_CREATE_ENUMERATE_PORTABILITY_BIT_KHR */
        info.enabledExtensionCount = 1;
        info.ppEnabledExtensionNames = &portability;
    }
    VkResult result = create(&info, NULL, &runtime.instance);
    if (result != VK_SUCCESS)
        return efla_error(EFLA_ERROR_BACKEND_UNAVAILABLE, "vkCreateInstance failed: %s (%d)",
                          efla_vk_result_name(result), (int)result);
    return efla_vk_load_instance_fns(get_proc, runtime.instance, &runtime.fns);
}

static int compare_rank(const void *a, const void *b) {
    const efla_vk_physical *x = a, *y = b;
    int rx = efla_vk_caps_rank(&x->caps), ry = efla_vk_caps_rank(&y->caps);
    if (rx != ry) return rx - ry;
    return (x->order > y->order) - (x->order < y->order);
}

static efla_status enumerate_devices(void) {
    uint32_t count = 0;
    VkResult result = runtime.fns.vkEnumeratePhysicalDevices(runtime.instance, &count, NULL);
    if (result != VK_SUCCESS) return efla_vk_check(result, "vkEnumeratePhysicalDevices");
    VkPhysicalDevice *handles = calloc(count ? count : 1, sizeof *handles);
    runtime.devices = calloc(count ? count : 1, sizeof *runtime.devices);
    if (!handles || !runtime.devices) {
        free(handles);
        return efla_error(EFLA_ERROR_OUT_OF_HOST_MEMORY, "out of host memory");
    }
    result = runtime.fns.vkEnumeratePhysicalDevices(runtime.instance, &count, handles);
    if (result != VK_SUCCESS && result != VK_INCOMPLETE) {
        free(handles);
        return efla_vk_check(result, "vkEnumeratePhysicalDevices");
    }
    for (uint32_t i = 0; i < count; ++i) {
        efla_vk_physical *device = &runtime.devices[runtime.device_count];
        device->handle = handles[i];
        device->order = i;
        if (efla_vk_query_caps(&runtime.fns, handles[i], &device->caps) != EFLA_SUCCESS) continue;
        if (!device->caps.unusable) runtime.device_count++;
    }
    free(handles);
    qsort(runtime.devices, runtime.device_count, sizeof *runtime.devices, compare_rank);
    return EFLA_SUCCESS;
}

static void initialize(void) {
    efla_status status = efla_dynlib_open(efla_dynlib_vulkan_names, &runtime.library);
    PFN_vkGetInstanceProcAddr get_proc = NULL;
    if (status == EFLA_SUCCESS) {
        void *address = efla_dynlib_symbol_address(runtime.library, "vkGetInstanceProcAddr");
        memcpy(&get_proc, &address, sizeof get_proc);
        if (!get_proc)
            status = efla_error(EFLA_ERROR_BACKEND_UNAVAILABLE,
                                "the Vulkan loader lacks vkGetInstanceProcAddr");
    }
    if (status == EFLA_SUCCESS) status = create_instance(get_proc);
    if (status == EFLA_SUCCESS) status = enumerate_devices();
    runtime.status = status;
    if (status != EFLA_SUCCESS)
        snprintf(runtime.message, sizeof runtime.message, "%s", efla_last_error_message());
}

efla_status efla_vk_runtime_init(void) {
    pthread_once(&runtime.once, initialize);
    if (runtime.status != EFLA_SUCCESS) return efla_error(runtime.status, "%s", runtime.message);
    return EFLA_SUCCESS;
}

const efla_vk_instance_fns *efla_vk_runtime_fns(void) { return &runtime.fns; }
VkInstance efla_vk_runtime_instance(void) { return runtime.instance; }
uint32_t efla_vk_runtime_device_count(void) { return runtime.device_count; }

const efla_vk_physical *efla_vk_runtime_device(uint32_t index) {
    return index < runtime.device_count ? &runtime.devices[index] : NULL;
}
