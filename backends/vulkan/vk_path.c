/* Choosing the Vulkan kernel path (see vk_path.h). */
#include "backends/vulkan/vk_path.h"

#include "core/error.h"
#include "core/kernel_path.h"

#include <strings.h>

typedef struct path_entry {
    const char *name;
    bool (*offered)(const efla_vk_caps *caps);
} path_entry;

static bool always(const efla_vk_caps *caps) {
    (void)caps;
    return true;
}

/* Best first. */
static const path_entry paths[EFLA_VK_PATH_COUNT] = {
    [EFLA_VK_PATH_PORTABLE] = {"portable", always},
};

const char *efla_vk_path_name(efla_vk_path path) {
    return (unsigned)path < EFLA_VK_PATH_COUNT ? paths[path].name : "unknown";
}

efla_status efla_vk_path_select(const efla_vk_caps *caps, efla_vk_path *out) {
    char buffer[64];
    const char *forced = efla_kernel_path_requested(EFLA_BACKEND_VULKAN, buffer, sizeof buffer);
    bool automatic = !forced || !*forced || strcasecmp(forced, "auto") == 0;
    for (int p = 0; p < EFLA_VK_PATH_COUNT; ++p) {
        if (!automatic && strcasecmp(forced, paths[p].name) != 0) continue;
        if (!paths[p].offered(caps))
            return efla_error(EFLA_ERROR_UNSUPPORTED,
                              "EFLA_PATH=%s: this Vulkan device does not offer that kernel path",
                              paths[p].name);
        *out = (efla_vk_path)p;
        return EFLA_SUCCESS;
    }
    return efla_error(EFLA_ERROR_UNSUPPORTED,
                      "EFLA_PATH='%s' is not a Vulkan kernel path (valid: auto, portable)", forced);
}
