#include "backends/cpu/cpu_plan.h"

/* Chunk size. The intra-chunk work per token grows with C (the Gram
 * matrix and the triangular products), the per-call overhead of the state
 * products shrinks with it; 16 (one panel) measured fastest for Dk = Dv
 * from 32 to 256 on AVX2, by 2-10% over 32. */
static int64_t chunk_size(void) { return 16; }

static int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

void efla_cpu_plan_make(const efla_forward_args *args, efla_cpu_plan *plan) {
    const int64_t pairs = args->sequences * args->value_heads;
    int64_t tiles = 1;
    while (pairs * tiles < EFLA_CPU_MIN_TASKS && args->dv / (tiles * 2) >= EFLA_CPU_MIN_TILE)
        tiles *= 2;
    plan->chunk = chunk_size();
    plan->tile_width = round_up((args->dv + tiles - 1) / tiles, EFLA_CPU_NR);
    plan->tiles = (args->dv + plan->tile_width - 1) / plan->tile_width;
    plan->task_count = pairs * plan->tiles;
    size_t recurrent = efla_cpu_recurrent_scratch(args, plan);
    size_t chunked = efla_cpu_chunked_scratch(args, plan);
    plan->scratch_bytes = recurrent > chunked ? recurrent : chunked;
}
