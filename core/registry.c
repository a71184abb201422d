#include "core/registry.h"

#include "core/error.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *const backend_names[EFLA_BACKEND_COUNT] = {"auto", "cpu", "vulkan", "opencl",
                                                             "cuda"};

const efla_backend_ops *efla_backend_ops_get(efla_backend id) {
    switch (id) {
    case EFLA_BACKEND_CPU: return &efla_cpu_backend_ops;
#ifdef EFLA_HAVE_VULKAN
    case EFLA_BACKEND_VULKAN: return &efla_vulkan_backend_ops;
#endif
#ifdef EFLA_HAVE_OPENCL
    case EFLA_BACKEND_OPENCL: return &efla_opencl_backend_ops;
#endif
#ifdef EFLA_HAVE_CUDA
    case EFLA_BACKEND_CUDA: return &efla_cuda_backend_ops;
#endif
    default: return NULL;
    }
}

const char *efla_backend_name(efla_backend backend) {
    if ((unsigned)backend >= EFLA_BACKEND_COUNT) return NULL;
    return backend_names[backend];
}

efla_status efla_backend_from_name(const char *name, efla_backend *out_backend) {
    efla_error_clear();
    if (!name || !out_backend)
        return efla_error(EFLA_ERROR_INVALID_ARGUMENT, "efla_backend_from_name: NULL argument");
    for (int i = 0; i < EFLA_BACKEND_COUNT; ++i) {
        if (strcasecmp(name, backend_names[i]) == 0) {
            *out_backend = (efla_backend)i;
            return EFLA_SUCCESS;
        }
    }
    return efla_error(EFLA_ERROR_INVALID_ARGUMENT,
                      "unknown backend '%s' (expected auto, cpu, vulkan, opencl or cuda)", name);
}

int efla_backend_compiled(efla_backend backend) { return efla_backend_ops_get(backend) != NULL; }

/* The table of a concrete backend that is compiled in and whose runtime
 * loads; otherwise the status and message say why. */
static efla_status usable_backend(efla_backend backend, const efla_backend_ops **out) {
    const char *name = efla_backend_name(backend);
    if (!name || backend == EFLA_BACKEND_AUTO)
        return efla_error(EFLA_ERROR_INVALID_ARGUMENT, "backend %d is not a concrete backend",
                          (int)backend);
    const efla_backend_ops *ops = efla_backend_ops_get(backend);
    if (!ops)
        return efla_error(EFLA_ERROR_BACKEND_UNAVAILABLE,
                          "%s backend not compiled into this build of efla", name);
    efla_status status = ops->probe();
    if (status != EFLA_SUCCESS) {
        efla_error_prefix(name);
        return status;
    }
    *out = ops;
    return EFLA_SUCCESS;
}

efla_status efla_backend_probe(efla_backend backend) {
    efla_error_clear();
    const efla_backend_ops *ops = NULL;
    return usable_backend(backend, &ops);
}

efla_status efla_device_count(efla_backend backend, uint32_t *out_count) {
    efla_error_clear();
    if (!out_count)
        return efla_error(EFLA_ERROR_INVALID_ARGUMENT, "efla_device_count: out_count is NULL");
    *out_count = 0;
    const efla_backend_ops *ops = NULL;
    efla_status status = usable_backend(backend, &ops);
    if (status == EFLA_ERROR_BACKEND_UNAVAILABLE) return EFLA_SUCCESS; /* none here */
    if (status != EFLA_SUCCESS) return status;
    return ops->device_count(out_count);
}

efla_status efla_device_get_info(efla_backend backend, uint32_t index, efla_device_info *info) {
    efla_error_clear();
    if (!info || info->struct_size < sizeof *info)
        return efla_error(EFLA_ERROR_INVALID_ARGUMENT,
                          "efla_device_get_info: info is NULL or its struct_size is too small");
    const efla_backend_ops *ops = NULL;
    efla_status status = usable_backend(backend, &ops);
    if (status != EFLA_SUCCESS) return status;
    uint32_t count = 0;
    status = ops->device_count(&count);
    if (status != EFLA_SUCCESS) return status;
    if (index >= count)
        return efla_error(EFLA_ERROR_DEVICE_NOT_FOUND, "%s has %u device(s); no device %u",
                          efla_backend_name(backend), count, index);
    uint32_t struct_size = info->struct_size;
    memset(info, 0, sizeof *info);
    info->struct_size = struct_size;
    info->backend = backend;
    info->index = index;
    return ops->device_info(index, info);
}

/* AUTO ranking: device type first, then CUDA > Vulkan > OpenCL > CPU for
 * the same kind of device. */
static int device_score(const efla_device_info *info) {
    static const int type_rank[] = {
        [EFLA_DEVICE_TYPE_OTHER] = 2,        [EFLA_DEVICE_TYPE_DISCRETE_GPU] = 6,
        [EFLA_DEVICE_TYPE_INTEGRATED_GPU] = 5, [EFLA_DEVICE_TYPE_VIRTUAL_GPU] = 4,
        [EFLA_DEVICE_TYPE_CPU] = 3,          [EFLA_DEVICE_TYPE_SOFTWARE] = 1,
    };
    static const int backend_rank[] = {
        [EFLA_BACKEND_CPU] = 0, [EFLA_BACKEND_OPENCL] = 1, [EFLA_BACKEND_VULKAN] = 2,
        [EFLA_BACKEND_CUDA] = 3};
    int type = (unsigned)info->type <= EFLA_DEVICE_TYPE_SOFTWARE ? type_rank[info->type] : 0;
    return type * 10 + backend_rank[info->backend];
}

static efla_status best_device(efla_backend *out_backend, uint32_t *out_device) {
    int best_score = -1;
    for (int b = EFLA_BACKEND_CPU; b < EFLA_BACKEND_COUNT; ++b) {
        uint32_t count = 0;
        if (!efla_backend_ops_get((efla_backend)b)) continue;
        if (efla_device_count((efla_backend)b, &count) != EFLA_SUCCESS) continue;
        for (uint32_t d = 0; d < count; ++d) {
            efla_device_info info = EFLA_DEVICE_INFO_INIT;
            if (efla_device_get_info((efla_backend)b, d, &info) != EFLA_SUCCESS) continue;
            int score = device_score(&info);
            if (score > best_score) {
                best_score = score;
                *out_backend = (efla_backend)b;
                *out_device = d;
            }
        }
    }
    efla_error_clear();
    if (best_score < 0) return efla_error(EFLA_ERROR_DEVICE_NOT_FOUND, "no usable device");
    return EFLA_SUCCESS;
}

static efla_status parse_device_env(const char *text, int32_t *out) {
    char *end = NULL;
    long value = strtol(text, &end, 10);
    if (!*text || *end || value < 0 || value > INT32_MAX)
        return efla_error(EFLA_ERROR_INVALID_ARGUMENT,
                          "EFLA_DEVICE='%s' is not a device index (0, 1, ...)", text);
    *out = (int32_t)value;
    return EFLA_SUCCESS;
}

efla_status efla_select_device(efla_backend requested, int32_t requested_device,
                               efla_backend *out_backend, uint32_t *out_device) {
    const char *backend_env = getenv("EFLA_BACKEND");
    const char *device_env = getenv("EFLA_DEVICE");
    efla_backend backend = requested;
    bool from_env = false;
    if (backend == EFLA_BACKEND_AUTO && backend_env && *backend_env) {
        if (efla_backend_from_name(backend_env, &backend) != EFLA_SUCCESS)
            return efla_error(EFLA_ERROR_INVALID_ARGUMENT,
                              "EFLA_BACKEND='%s' is not a backend (auto, cpu, vulkan, opencl, cuda)",
                              backend_env);
        from_env = true;
    }
    int32_t device = requested_device;
    if (device < 0 && device_env && *device_env && (from_env || requested == EFLA_BACKEND_AUTO)) {
        efla_status status = parse_device_env(device_env, &device);
        if (status != EFLA_SUCCESS) return status;
    }
    if (backend == EFLA_BACKEND_AUTO && device < 0) return best_device(out_backend, out_device);
    if (backend == EFLA_BACKEND_AUTO) {
        /* A device index without a backend means the best backend's index. */
        uint32_t ignored;
        efla_status status = best_device(&backend, &ignored);
        if (status != EFLA_SUCCESS) return status;
    }
    const efla_backend_ops *ops = NULL;
    efla_status status = usable_backend(backend, &ops);
    if (status != EFLA_SUCCESS) return status;
    uint32_t count = 0;
    status = ops->device_count(&count);
    if (status != EFLA_SUCCESS) return status;
    uint32_t index = device < 0 ? 0 : (uint32_t)device;
    if (index >= count)
        return efla_error(count ? EFLA_ERROR_DEVICE_NOT_FOUND : EFLA_ERROR_BACKEND_UNAVAILABLE,
                          "%s has %u device(s); no device %u", efla_backend_name(backend), count,
                          index);
    *out_backend = backend;
    *out_device = index;
    return EFLA_SUCCESS;
}
