/*
 * Tile choices of the tensor-core (mma) chunked kernels: the state
 * kernel's column tile BV and the output kernel's BO, from the device's SM
 * count and shared memory. EFLA_CUDA_STATE_TILE (8, 16, 32) and
 * EFLA_CUDA_OUTPUT_TILE (32, 64, 128) override them for tuning, and
 * EFLA_CUDA_STATE_STAGES (2, 3) the state kernel's prefetch depth.
 */
#include "backends/cuda/cuda_internal.h"

#include <stdlib.h>

static int env_tile(const char *name, int a, int b, int c) {
    const char *text = getenv(name);
    if (!text || !*text) return 0;
    const int value = atoi(text);
    return value == a || value == b || value == c ? value : 0;
}

static bool fits(const efla_cuda_device_props *props, uint32_t bytes) {
    return (int64_t)bytes <= props->smem_optin;
}

/* The widest tile that still gives about one block per SM (the serial
 * chunk loop is latency-bound: more, narrower blocks run it side by side;
 * wider ones read each chunk's W and K^T fewer times). */
static int choose_state_tile(const efla_cuda_device_props *props, int64_t seq_heads, int64_t dk,
                             int64_t dv) {
    const int64_t dvp = efla_cuda_pad16(dv);
    const int forced = env_tile("EFLA_CUDA_STATE_TILE", 8, 16, 32);
    if (forced && dvp % forced == 0 && fits(props, efla_cuda_state_mma_smem(dk, forced, 2)))
        return forced;
    const int64_t enough = 3 * (int64_t)props->sm_count / 4;
    for (int tile = 32; tile >= 16; tile /= 2)
        if (dvp % tile == 0 && seq_heads * (dvp / tile) >= enough &&
            fits(props, efla_cuda_state_mma_smem(dk, tile, 2)))
            return tile;
    for (int tile = 8; tile <= 32; tile *= 2)
        if (dvp % tile == 0 && fits(props, efla_cuda_state_mma_smem(dk, tile, 2))) return tile;
    return 0;
}

static bool output_tile_ok(const efla_cuda_device_props *props, int64_t dk, int tile) {
    return efla_cuda_output_tile_fits(dk, tile) && fits(props, efla_cuda_output_mma_smem(dk, tile));
}

/* The whole (padded) Dv in one tile up to 128 columns, so that P = masked
 * QK^T is computed once per chunk; 32 columns at Dk > 128, where Q and K
 * alone take 67 KB and two blocks per SM need the smaller tiles. */
static int choose_output_tile(const efla_cuda_device_props *props, int64_t dk, int64_t dv) {
    const int forced = env_tile("EFLA_CUDA_OUTPUT_TILE", 32, 64, 128);
    if (forced && output_tile_ok(props, dk, forced)) return forced;
    const int64_t dvp = efla_cuda_pad16(dv);
    int preferred = dvp > 64 ? 128 : dvp > 32 ? 64 : 32;
    if (efla_cuda_pad16(dk) > 128) preferred = 32;
    for (int tile = preferred; tile >= 32; tile /= 2)
        if (output_tile_ok(props, dk, tile)) return tile;
    return 0;
}

bool efla_cuda_mma_choose(const efla_cuda_device_props *props, int64_t seq_heads, int64_t dk,
                          int64_t dv, efla_cuda_mma_tiles *out) {
    out->state = choose_state_tile(props, seq_heads, dk, dv);
    /* Three chunks of operands in flight where they fit: a copy then has
     * two chunk steps to land instead of one. */
    out->state_stages = fits(props, efla_cuda_state_mma_smem(dk, out->state, 3)) ? 3 : 2;
    if (env_tile("EFLA_CUDA_STATE_STAGES", 2, 2, 2)) out->state_stages = 2;
    out->output = choose_output_tile(props, dk, dv);
    return out->state && out->output && fits(props, efla_cuda_prepare_mma_smem(dk, dv));
}

efla_cuda_kernel efla_cuda_mma_state_kernel(bool bf16, int tile) {
    const int index = tile == 8 ? 0 : tile == 16 ? 1 : 2;
    return (efla_cuda_kernel)(EFLA_CUDA_KERNEL_STATE_MMA_F16_V8 + 3 * bf16 + index);
}

efla_cuda_kernel efla_cuda_mma_output_kernel(bool bf16, int tile) {
    const int index = tile == 32 ? 0 : tile == 64 ? 1 : 2;
    return (efla_cuda_kernel)(EFLA_CUDA_KERNEL_OUTPUT_MMA_F16_V32 + 3 * bf16 + index);
}
