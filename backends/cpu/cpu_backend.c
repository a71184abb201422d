/* The CPU backend's table: device, context and buffers in host memory. */
#include "backends/cpu/cpu_internal.h"
#include "backends/cpu/cpu_kernels.h"
#include "backends/cpu/cpu_pool.h"
#include "backends/cpu/cpu_scratch.h"

#include "core/context.h"
#include "core/error.h"

#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static efla_status cpu_probe(void) { return EFLA_SUCCESS; }

static efla_status cpu_device_count(uint32_t *out_count) {
    *out_count = 1;
    return EFLA_SUCCESS;
}

static void cpu_model_name(char *name, size_t size) {
    snprintf(name, size, "CPU");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        char *colon = strchr(line, ':');
        if (strncmp(line, "model name", 10) != 0 || !colon) continue;
        colon += 1 + (colon[1] == ' ');
        colon[strcspn(colon, "\n")] = '\0';
        snprintf(name, size, "%s", colon);
        break;
    }
    fclose(f);
}

static efla_status cpu_device_info(uint32_t index, efla_device_info *info) {
    (void)index;
    info->type = EFLA_DEVICE_TYPE_CPU;
    cpu_model_name(info->name, sizeof info->name);
    snprintf(info->vendor, sizeof info->vendor, "efla");
    snprintf(info->driver_version, sizeof info->driver_version, "%s", efla_version_string());
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    info->compute_units = cores > 0 ? (uint32_t)cores : 1;
    long pages = sysconf(_SC_PHYS_PAGES), page_size = sysconf(_SC_PAGESIZE);
    if (pages > 0 && page_size > 0) info->memory_bytes = (uint64_t)pages * (uint64_t)page_size;
    info->flags = EFLA_DEVICE_FP16 | EFLA_DEVICE_BF16 | EFLA_DEVICE_TIMESTAMPS;
    snprintf(info->kernel_path, sizeof info->kernel_path, "%s", efla_cpu_kernel_path());
    return EFLA_SUCCESS;
}

static efla_status cpu_context_create(const efla_backend_context_params *params,
                                      efla_backend_context **out) {
    const efla_cpu_kernels *kernels = efla_cpu_kernels_select();
    if (!kernels) return EFLA_ERROR_UNSUPPORTED; /* message set by the selection */
    efla_backend_context *ctx = efla_host_alloc(params->allocator, sizeof *ctx);
    if (!ctx) return efla_error(EFLA_ERROR_OUT_OF_HOST_MEMORY, "out of host memory");
    memset(ctx, 0, sizeof *ctx);
    ctx->params = *params;
    ctx->kernels = kernels;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    ctx->threads = params->threads ? params->threads : (cores > 0 ? (uint32_t)cores : 1);
    if (!params->parallel_for && ctx->threads > 1) {
        efla_status status = efla_cpu_pool_create(ctx->threads, params->allocator, &ctx->pool);
        if (status != EFLA_SUCCESS) {
            params->allocator->free(params->allocator->user, ctx);
            return status;
        }
    }
    *out = ctx;
    return EFLA_SUCCESS;
}

static void cpu_context_destroy(efla_backend_context *ctx) {
    efla_cpu_scratch_destroy(ctx);
    efla_cpu_pool_destroy(ctx->pool);
    ctx->params.allocator->free(ctx->params.allocator->user, ctx);
}

static efla_status cpu_context_device_info(efla_backend_context *ctx, efla_device_info *info) {
    efla_status status = cpu_device_info(ctx->params.device_index, info);
    info->compute_units = ctx->threads;
    snprintf(info->kernel_path, sizeof info->kernel_path, "%s", ctx->kernels->name);
    return status;
}

static efla_status cpu_synchronize(efla_backend_context *ctx) {
    (void)ctx; /* every call completes before it returns */
    return EFLA_SUCCESS;
}

static efla_status cpu_last_forward_ms(efla_backend_context *ctx, double *out_ms) {
    *out_ms = ctx->last_forward_ms;
    return EFLA_SUCCESS;
}

static efla_status new_buffer(efla_backend_context *ctx, void *memory, uint64_t size, bool owned,
                              efla_backend_buffer **out) {
    efla_backend_buffer *buf = efla_host_alloc(ctx->params.allocator, sizeof *buf);
    if (!buf) return efla_error(EFLA_ERROR_OUT_OF_HOST_MEMORY, "out of host memory");
    buf->memory = memory;
    buf->size = size;
    buf->owned = owned;
    *out = buf;
    return EFLA_SUCCESS;
}

static efla_status cpu_buffer_create(efla_backend_context *ctx, uint64_t size,
                                     efla_backend_buffer **out) {
    if (size > SIZE_MAX - 64)
        return efla_error(EFLA_ERROR_OUT_OF_HOST_MEMORY, "buffer of %llu bytes is too large",
                          (unsigned long long)size);
    void *memory = ctx->params.allocator->alloc(ctx->params.allocator->user, (size_t)size, 64);
    if (!memory)
        return efla_error(EFLA_ERROR_OUT_OF_HOST_MEMORY, "cannot allocate %llu bytes",
                          (unsigned long long)size);
    efla_status status = new_buffer(ctx, memory, size, true, out);
    if (status != EFLA_SUCCESS) ctx->params.allocator->free(ctx->params.allocator->user, memory);
    return status;
}

static efla_status cpu_buffer_wrap_host(efla_backend_context *ctx, void *memory, uint64_t size,
                                        efla_backend_buffer **out) {
    return new_buffer(ctx, memory, size, false, out);
}

static void cpu_buffer_destroy(efla_backend_context *ctx, efla_backend_buffer *buf) {
    if (buf->owned) ctx->params.allocator->free(ctx->params.allocator->user, buf->memory);
    ctx->params.allocator->free(ctx->params.allocator->user, buf);
}

static efla_status cpu_buffer_upload(efla_backend_context *ctx, efla_backend_buffer *buf,
                                     uint64_t offset, const void *src, uint64_t size) {
    (void)ctx;
    memmove((char *)buf->memory + offset, src, (size_t)size);
    return EFLA_SUCCESS;
}

static efla_status cpu_buffer_download(efla_backend_context *ctx, efla_backend_buffer *buf,
                                       uint64_t offset, void *dst, uint64_t size) {
    (void)ctx;
    memmove(dst, (const char *)buf->memory + offset, (size_t)size);
    return EFLA_SUCCESS;
}

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

static efla_status cpu_forward(efla_backend_context *ctx, const efla_forward_args *args) {
    double start = now_ms();
    efla_status status = efla_cpu_forward_run(ctx, args);
    ctx->last_forward_ms = now_ms() - start;
    return status;
}

static efla_status cpu_forward_query(efla_backend_context *ctx, const efla_forward_args *args,
                                     efla_forward_plan *plan) {
    plan->algorithm = efla_cpu_forward_algorithm(args);
    snprintf(plan->kernel_path, sizeof plan->kernel_path, "%s", ctx->kernels->name);
    return EFLA_SUCCESS;
}

const efla_backend_ops efla_cpu_backend_ops = {
    .id = EFLA_BACKEND_CPU,
    .name = "cpu",
    .probe = cpu_probe,
    .device_count = cpu_device_count,
    .device_info = cpu_device_info,
    .context_create = cpu_context_create,
    .context_destroy = cpu_context_destroy,
    .context_device_info = cpu_context_device_info,
    .synchronize = cpu_synchronize,
    .last_forward_ms = cpu_last_forward_ms,
    .buffer_create = cpu_buffer_create,
    .buffer_wrap_host = cpu_buffer_wrap_host,
    .buffer_destroy = cpu_buffer_destroy,
    .buffer_upload = cpu_buffer_upload,
    .buffer_download = cpu_buffer_download,
    .forward = cpu_forward,
    .forward_query = cpu_forward_query,
};
