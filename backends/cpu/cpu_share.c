#include "backends/cpu/cpu_share.h"

#include "core/context.h"
#include "core/error.h"

#include <string.h>

static size_t round_floats(size_t floats) { return (floats + 15) / 16 * 16; }

size_t efla_cpu_share_chunk_floats(const efla_forward_args *args, const efla_cpu_plan *plan) {
    const size_t c = (size_t)plan->chunk, lda = round_floats((size_t)args->dk);
    return round_floats(2 * c * lda) + round_floats(2 * c * c) + 2 * round_floats(c);
}

static int64_t chunk_count(const efla_forward_args *args, const efla_cpu_plan *plan, int64_t n) {
    int64_t batch_row, first, length;
    efla_forward_sequence(args, n, &batch_row, &first, &length);
    if (!efla_cpu_use_chunked(args, length)) return 0;
    return (length + plan->chunk - 1) / plan->chunk;
}

/* Bytes of all shares, or 0 when sharing does not apply or exceeds the cap. */
static size_t shares_bytes(const efla_forward_args *args, const efla_cpu_plan *plan) {
    if (plan->tiles < 2) return 0;
    const size_t per_chunk = efla_cpu_share_chunk_floats(args, plan) * sizeof(float);
    size_t total = (size_t)(args->sequences * args->value_heads) * sizeof(efla_cpu_share);
    for (int64_t n = 0; n < args->sequences; ++n) {
        const size_t chunks = (size_t)chunk_count(args, plan, n);
        total += (size_t)args->value_heads * chunks * (per_chunk + sizeof(atomic_int));
        if (total > EFLA_CPU_SHARE_MAX_BYTES) return 0;
    }
    return total + 64; /* room to align the chunk data */
}

efla_status efla_cpu_shares_create(const efla_forward_args *args, const efla_cpu_plan *plan,
                                   const efla_allocator *allocator, efla_cpu_shares *out) {
    memset(out, 0, sizeof *out);
    const size_t bytes = shares_bytes(args, plan);
    if (!bytes) return EFLA_SUCCESS;
    char *memory = efla_host_alloc(allocator, bytes);
    if (!memory) return efla_error(EFLA_ERROR_OUT_OF_HOST_MEMORY, "out of host memory");
    const int64_t pairs = args->sequences * args->value_heads;
    const size_t per_chunk = efla_cpu_share_chunk_floats(args, plan);
    efla_cpu_share *pair = (efla_cpu_share *)memory;
    char *next = memory + (size_t)pairs * sizeof *pair;
    for (int64_t i = 0; i < pairs; ++i) {
        pair[i].chunks = chunk_count(args, plan, i / args->value_heads);
        pair[i].state = (atomic_int *)next;
        next += (size_t)pair[i].chunks * sizeof(atomic_int);
        for (int64_t c = 0; c < pair[i].chunks; ++c)
            atomic_init(&pair[i].state[c], EFLA_CPU_CHUNK_EMPTY);
    }
    next = memory + ((size_t)(next - memory) + 63) / 64 * 64;
    for (int64_t i = 0; i < pairs; ++i) {
        pair[i].data = (float *)next;
        next += (size_t)pair[i].chunks * per_chunk * sizeof(float);
    }
    out->pair = pair;
    out->memory = memory;
    return EFLA_SUCCESS;
}

void efla_cpu_shares_destroy(const efla_allocator *allocator, efla_cpu_shares *shares) {
    efla_host_free(allocator, shares->memory);
    memset(shares, 0, sizeof *shares);
}
