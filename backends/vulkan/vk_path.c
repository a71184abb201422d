/* Choosing the Vulkan kernel path (see vk_path.h). */
#include "backends/vulkan/vk_path.h"

#include "core/error.h"
#include "core/kernel_path.h"

#include <strings.h>

typedef struct path_entry {
    const char *name;
    /* NULL when the device offers the path, else why not. */
    const char *(*missing)(const efla_vk_caps *caps);
    bool automatic; /* AUTO may choose it */
} path_entry;

static const char *always(const efla_vk_caps *caps) {
    (void)caps;
    return NULL;
}

static const char *coopmat_missing(const efla_vk_caps *caps) {
    return caps->coopmat ? NULL : caps->coopmat_missing;
}

/* Worst first: AUTO takes the best path the device offers. (The
 * cooperative-matrix path was forced-only until its shared arrays were
 * padded to whole 16 bytes; since then it passes the conformance suite on
 * the H200.) */
static const path_entry paths[EFLA_VK_PATH_COUNT] = {
    [EFLA_VK_PATH_PORTABLE] = {"portable", always, true},
    [EFLA_VK_PATH_COOPMAT] = {"coopmat", coopmat_missing, true},
};

const char *efla_vk_path_name(efla_vk_path path) {
    return (unsigned)path < EFLA_VK_PATH_COUNT ? paths[path].name : "unknown";
}

efla_status efla_vk_path_select(const efla_vk_caps *caps, efla_vk_path *out) {
    char buffer[64];
    const char *forced = efla_kernel_path_requested(EFLA_BACKEND_VULKAN, buffer, sizeof buffer);
    bool automatic = !forced || !*forced || strcasecmp(forced, "auto") == 0;
    for (int p = EFLA_VK_PATH_COUNT - 1; p >= 0; --p) {
        const char *missing = paths[p].missing(caps);
        if (automatic) {
            if (missing || !paths[p].automatic) continue;
        } else if (strcasecmp(forced, paths[p].name) != 0) {
            continue;
        } else if (missing) {
            return efla_error(
                EFLA_ERROR_UNSUPPORTED,
                "EFLA_PATH=%s: this Vulkan device does not offer that kernel path: %s",
                paths[p].name, missing);
        }
        *out = (efla_vk_path)p;
        return EFLA_SUCCESS;
    }
    return efla_error(EFLA_ERROR_UNSUPPORTED,
                      "EFLA_PATH='%s' is not a Vulkan kernel path (valid: auto, portable, coopmat)",
                      forced);
}
