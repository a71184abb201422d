#include "core/context.h"

#include "core/error.h"
#include "core/registry.h"

#include <stdlib.h>
#include <string.h>

static void *default_alloc(void *user, size_t size, size_t alignment) {
    (void)user;
    if (alignment < sizeof(void *)) alignment = sizeof(void *);
    size = (size + alignment - 1) / alignment * alignment;
    return aligned_alloc(alignment, size ? size : alignment);
}

static void default_free(void *user, void *ptr) {
    (void)user;
    free(ptr);
}

const efla_allocator efla_default_allocator = {NULL, default_alloc, default_free};

void *efla_host_alloc(const efla_allocator *allocator, size_t size) {
    return allocator->alloc(allocator->user, size, 64);
}

void efla_host_free(const efla_allocator *allocator, void *ptr) {
    if (ptr) allocator->free(allocator->user, ptr);
}

static efla_status check_create_info(const efla_context_create_info *info) {
    if (!info) return efla_error(EFLA_ERROR_INVALID_ARGUMENT, "context create info is NULL");
    if (info->struct_size < sizeof *info)
        return efla_error(EFLA_ERROR_INVALID_ARGUMENT,
                          "context create info struct_size %u is smaller than %zu "
                          "(use EFLA_CONTEXT_CREATE_INFO_INIT)",
                          info->struct_size, sizeof *info);
    if (info->next) return efla_error(EFLA_ERROR_INVALID_ARGUMENT, "context create info next must be NULL");
    if ((unsigned)info->backend >= EFLA_BACKEND_COUNT)
        return efla_error(EFLA_ERROR_INVALID_ARGUMENT, "unknown backend %d", (int)info->backend);
    if (info->flags & ~EFLA_CONTEXT_PROFILING)
        return efla_error(EFLA_ERROR_INVALID_ARGUMENT, "unknown context flags 0x%x",
                          info->flags & ~EFLA_CONTEXT_PROFILING);
    if (info->allocator && (!info->allocator->alloc || !info->allocator->free))
        return efla_error(EFLA_ERROR_INVALID_ARGUMENT,
                          "allocator must provide both alloc and free");
    return EFLA_SUCCESS;
}

/* Wraps a backend context in a core context; frees it on failure. */
static efla_status create_with(const efla_context_create_info *info, efla_backend backend,
                               uint32_t device, efla_native_kind native_kind,
                               const void *native_info, efla_context *out_context) {
    efla_allocator allocator = info->allocator ? *info->allocator : efla_default_allocator;
    efla_context context = efla_host_alloc(&allocator, sizeof *context);
    if (!context) return efla_error(EFLA_ERROR_OUT_OF_HOST_MEMORY, "out of host memory");
    memset(context, 0, sizeof *context);
    context->allocator = allocator;
    context->ops = efla_backend_ops_get(backend);

    efla_backend_context_params params = {
        .device_index = device,
        .threads = info->threads,
        .flags = info->flags,
        .allocator = &context->allocator,
        .parallel_for = info->parallel_for,
        .parallel_for_user = info->parallel_for_user,
    };
    efla_status status;
    if (native_info) {
        status = context->ops->context_create_native
                     ? context->ops->context_create_native(native_kind, native_info, &params,
                                                           &context->impl)
                     : efla_error(EFLA_ERROR_UNSUPPORTED, "%s backend has no interop",
                                  context->ops->name);
    } else {
        status = context->ops->context_create(&params, &context->impl);
    }
    if (status != EFLA_SUCCESS) {
        efla_host_free(&allocator, context);
        return status;
    }
    *out_context = context;
    return EFLA_SUCCESS;
}

efla_status efla_context_create(const efla_context_create_info *info, efla_context *out_context) {
    efla_error_clear();
    if (!out_context) return efla_error(EFLA_ERROR_INVALID_ARGUMENT, "out_context is NULL");
    efla_status status = check_create_info(info);
    if (status != EFLA_SUCCESS) return status;
    efla_backend backend;
    uint32_t device;
    status = efla_select_device(info->backend, info->device_index, &backend, &device);
    if (status != EFLA_SUCCESS) return status;
    return create_with(info, backend, device, 0, NULL, out_context);
}

efla_status efla_context_create_native(efla_backend backend, efla_native_kind kind,
                                       const void *native_info,
                                       const efla_context_create_info *info,
                                       efla_context *out_context) {
    efla_error_clear();
    efla_context_create_info defaults = EFLA_CONTEXT_CREATE_INFO_INIT;
    if (!info) info = &defaults;
    if (!out_context || !native_info)
        return efla_error(EFLA_ERROR_INVALID_ARGUMENT, "out_context or native info is NULL");
    efla_status status = check_create_info(info);
    if (status != EFLA_SUCCESS) return status;
    const efla_backend_ops *ops = efla_backend_ops_get(backend);
    if (!ops)
        return efla_error(EFLA_ERROR_BACKEND_UNAVAILABLE, "%s backend not compiled in",
                          efla_backend_name(backend));
    status = ops->probe();
    if (status != EFLA_SUCCESS) return status;
    return create_with(info, backend, 0, kind, native_info, out_context);
}

void efla_context_destroy(efla_context context) {
    if (!context) return;
    context->ops->context_destroy(context->impl);
    efla_allocator allocator = context->allocator;
    efla_host_free(&allocator, context);
}

efla_backend efla_context_backend(efla_context context) {
    return context ? context->ops->id : EFLA_BACKEND_AUTO;
}

efla_status efla_context_device_info(efla_context context, efla_device_info *info) {
    efla_error_clear();
    if (!context) return efla_error(EFLA_ERROR_INVALID_ARGUMENT, "context is NULL");
    if (!info || info->struct_size < sizeof *info)
        return efla_error(EFLA_ERROR_INVALID_ARGUMENT,
                          "device info is NULL or its struct_size is too small");
    uint32_t struct_size = info->struct_size;
    memset(info, 0, sizeof *info);
    info->struct_size = struct_size;
    info->backend = context->ops->id;
    return context->ops->context_device_info(context->impl, info);
}

efla_status efla_context_synchronize(efla_context context) {
    efla_error_clear();
    if (!context) return efla_error(EFLA_ERROR_INVALID_ARGUMENT, "context is NULL");
    return context->ops->synchronize(context->impl);
}

efla_status efla_context_last_forward_ms(efla_context context, double *out_ms) {
    efla_error_clear();
    if (!context || !out_ms)
        return efla_error(EFLA_ERROR_INVALID_ARGUMENT, "context or out_ms is NULL");
    if (!context->ops->last_forward_ms)
        return efla_error(EFLA_ERROR_UNSUPPORTED, "%s backend has no forward timing",
                          context->ops->name);
    return context->ops->last_forward_ms(context->impl, out_ms);
}

efla_status efla_context_last_forward_stages(efla_context context, efla_stage_time *stages,
                                             uint32_t capacity, uint32_t *out_count) {
    efla_error_clear();
    if (!context || !out_count)
        return efla_error(EFLA_ERROR_INVALID_ARGUMENT, "context or out_count is NULL");
    if (capacity > 0 && !stages)
        return efla_error(EFLA_ERROR_INVALID_ARGUMENT, "stages is NULL with capacity %u",
                          capacity);
    if (!context->ops->last_forward_stages)
        return efla_error(EFLA_ERROR_UNSUPPORTED, "%s backend has no per-stage timing",
                          context->ops->name);
    *out_count = 0;
    return context->ops->last_forward_stages(context->impl, stages, capacity, out_count);
}
