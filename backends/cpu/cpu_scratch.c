#include "backends/cpu/cpu_scratch.h"

#include "core/context.h"
#include "core/error.h"

/* The slot array is made once; a slot's memory is allocated by the first
 * task that takes the slot, so that only as many blocks exist as tasks ever
 * ran at once. Slots too small for this forward are freed here, on the
 * calling thread, before any task starts. */
efla_status efla_cpu_scratch_reserve(efla_backend_context *ctx, size_t bytes) {
    const efla_allocator *allocator = ctx->params.allocator;
    if (!ctx->slots) {
        ctx->slots = efla_host_alloc(allocator, sizeof *ctx->slots * ctx->threads);
        if (!ctx->slots) return efla_error(EFLA_ERROR_OUT_OF_HOST_MEMORY, "out of host memory");
        for (uint32_t i = 0; i < ctx->threads; ++i) {
            atomic_init(&ctx->slots[i].busy, 0);
            ctx->slots[i].bytes = 0;
            ctx->slots[i].memory = NULL;
        }
    }
    for (uint32_t i = 0; i < ctx->threads; ++i) {
        efla_cpu_scratch_slot *slot = &ctx->slots[i];
        if (slot->bytes >= bytes) continue;
        efla_host_free(allocator, slot->memory);
        slot->memory = NULL;
        slot->bytes = 0;
    }
    return EFLA_SUCCESS;
}

void efla_cpu_scratch_destroy(efla_backend_context *ctx) {
    if (!ctx->slots) return;
    for (uint32_t i = 0; i < ctx->threads; ++i)
        efla_host_free(ctx->params.allocator, ctx->slots[i].memory);
    efla_host_free(ctx->params.allocator, ctx->slots);
    ctx->slots = NULL;
}

void *efla_cpu_scratch_acquire(efla_backend_context *ctx, size_t bytes, int *slot) {
    for (uint32_t i = 0; i < ctx->threads; ++i) {
        efla_cpu_scratch_slot *s = &ctx->slots[i];
        if (atomic_exchange(&s->busy, 1) != 0) continue;
        if (!s->memory) {
            s->memory = efla_host_alloc(ctx->params.allocator, bytes);
            s->bytes = s->memory ? bytes : 0;
        }
        if (s->memory) {
            *slot = (int)i;
            return s->memory;
        }
        atomic_store(&s->busy, 0);
        break;
    }
    *slot = -1;
    return efla_host_alloc(ctx->params.allocator, bytes);
}

void efla_cpu_scratch_release(efla_backend_context *ctx, int slot, void *memory) {
    if (slot >= 0)
        atomic_store(&ctx->slots[slot].busy, 0);
    else
        efla_host_free(ctx->params.allocator, memory);
}
