/* Choosing tile sizes that fit the device (see vk_tiles.h). */
#include "backends/vulkan/vk_tiles.h"

#include "core/error.h"

#define PREP_WORKGROUP 128u
#define OUT_ROW_GROUPS 8u

static uint32_t round_up(uint32_t value, uint32_t multiple) {
    return (value + multiple - 1) / multiple * multiple;
}

static uint32_t pow2_ceil(uint32_t value) {
    uint32_t p = 1;
    while (p < value)
        p *= 2;
    return p;
}

/* Bytes of shared memory, as declared in chunk_scan.comp / chunk_out.comp /
 * chunk_prep.comp. */
static uint64_t scan_shared_bytes(uint32_t dkc, uint32_t chunk, uint32_t bv) {
    uint64_t floats =
        (uint64_t)dkc * bv + (uint64_t)chunk * bv + (uint64_t)chunk * EFLA_VK_SLAB + chunk;
    return floats * 4;
}

static uint64_t out_shared_bytes(uint32_t chunk, uint32_t bv) {
    uint64_t floats = (uint64_t)chunk * EFLA_VK_SLAB + (uint64_t)EFLA_VK_SLAB * bv +
                      2ull * chunk * bv + (uint64_t)chunk * chunk + chunk;
    return floats * 4;
}

static uint64_t prep_shared_bytes(uint32_t chunk) {
    uint64_t slab = (uint64_t)chunk * (EFLA_VK_SLAB + 1);
    return (2 * (uint64_t)chunk * chunk + 2 * slab + 4u * chunk) * 4;
}

static uint32_t dtype_code(efla_dtype storage) {
    return storage == EFLA_DTYPE_F16 ? 1u : storage == EFLA_DTYPE_BF16 ? 2u : 0u;
}

/* 16-bit storage where the context has it; f32 tensors need only words. */
static uint32_t variant(const efla_vk_limits *limits, efla_dtype storage) {
    return limits->storage_16bit && storage != EFLA_DTYPE_F32 ? EFLA_VK_STORAGE16 : EFLA_VK_WORDS;
}

/* The output kernel: the widest Dv tile up to 32 that fits, 8 row groups. */
static bool choose_out(const efla_vk_limits *limits, const efla_forward_args *args, uint32_t chunk,
                       efla_vk_pipeline_key *key) {
    uint32_t rg = OUT_ROW_GROUPS;
    uint32_t bv = pow2_ceil((uint32_t)args->dv);
    bv = bv < 8 ? 8 : bv > 32 ? 32 : bv;
    for (; bv >= 8; bv /= 2) {
        if (rg * bv > limits->max_invocations || out_shared_bytes(chunk, bv) > limits->shared_bytes)
            continue;
        *key =
            (efla_vk_pipeline_key){EFLA_VK_OUT, rg * bv, dtype_code(args->storage),      0, chunk,
                                   bv,          rg,      variant(limits, args->storage), 0, 0,
                                   0,           0};
        return true;
    }
    return false;
}

/* Workgroups the scan needs to keep the device busy: two per compute unit
 * where the driver says how many there are. */
static uint64_t wanted_workgroups(const efla_vk_limits *limits) {
    return limits->compute_units ? 2ull * limits->compute_units : 128;
}

static efla_status choose_chunked(const efla_vk_limits *limits, const efla_forward_args *args,
                                  uint64_t chunked_sequences, efla_vk_tiles *tiles) {
    static const uint32_t default_chunks[] = {32, 16};
    const uint32_t *chunks = limits->chunk ? &limits->chunk : default_chunks;
    size_t chunk_count = limits->chunk ? 1 : 2;
    uint32_t rg = limits->scan_row_groups;
    uint32_t bv_start = limits->scan_block_v ? limits->scan_block_v : pow2_ceil((uint32_t)args->dv);
    if (!limits->scan_block_v) bv_start = bv_start < 8 ? 8 : bv_start > 32 ? 32 : bv_start;
    uint32_t bv_end = limits->scan_block_v ? limits->scan_block_v : 8;
    for (size_t c = 0; c < chunk_count; ++c) {
        uint32_t chunk = chunks[c];
        if (prep_shared_bytes(chunk) > limits->shared_bytes || rg > chunk) continue;
        if (!choose_out(limits, args, chunk, &tiles->out)) continue;
        tiles->out.dk_class = tiles->dk_class;
        for (uint32_t bv = bv_start; bv >= bv_end; bv /= 2) {
            if (rg * bv > limits->max_invocations ||
                scan_shared_bytes(tiles->dk_class, chunk, bv) > limits->shared_bytes)
                continue;
            /* Narrower tiles when there are too few workgroups to fill a GPU. */
            uint64_t tiles_v = ((uint64_t)args->dv + bv - 1) / bv;
            while (!limits->scan_block_v && bv > 16 &&
                   chunked_sequences * (uint64_t)args->value_heads * tiles_v <
                       wanted_workgroups(limits)) {
                bv /= 2;
                tiles_v = ((uint64_t)args->dv + bv - 1) / bv;
            }
            tiles->chunk = chunk;
            tiles->prep = (efla_vk_pipeline_key){EFLA_VK_PREP,
                                                 PREP_WORKGROUP,
                                                 dtype_code(args->storage),
                                                 tiles->dk_class,
                                                 chunk,
                                                 16,
                                                 4,
                                                 variant(limits, args->storage),
                                                 0,
                                                 0,
                                                 0,
                                                 0};
            tiles->scan = (efla_vk_pipeline_key){EFLA_VK_SCAN,
                                                 rg * bv,
                                                 dtype_code(args->storage),
                                                 tiles->dk_class,
                                                 chunk,
                                                 bv,
                                                 rg,
                                                 variant(limits, args->storage),
                                                 0,
                                                 0,
                                                 0,
                                                 0};
            return EFLA_SUCCESS;
        }
    }
    return efla_error(EFLA_ERROR_UNSUPPORTED,
                      "%u bytes of shared memory per workgroup cannot hold the chunked kernels "
                      "for Dk=%lld (chunk %u)",
                      limits->shared_bytes, (long long)args->dk, chunks[chunk_count - 1]);
}

static efla_status choose_recurrent(const efla_vk_limits *limits, const efla_forward_args *args,
                                    efla_vk_tiles *tiles) {
    uint32_t dkc = tiles->dk_class;
    uint32_t bv = pow2_ceil((uint32_t)args->dv);
    if (bv > 32) bv = 32;
    uint32_t rg = dkc / 32 > 4 ? dkc / 32 : 4; /* at most 32 state rows per invocation */
    while (rg < 16 && rg * bv < 32)
        rg *= 2; /* small Dv: more row groups */
    if (rg > 16) rg = 16;
    while (rg * bv > limits->max_invocations && bv > 1)
        bv /= 2;
    uint64_t shared = (2ull * dkc + rg * bv + 2ull * bv) * 4;
    if (shared > limits->shared_bytes)
        return efla_error(EFLA_ERROR_UNSUPPORTED,
                          "%u bytes of shared memory cannot hold the recurrent kernel",
                          limits->shared_bytes);
    tiles->recurrent = (efla_vk_pipeline_key){EFLA_VK_RECURRENT,
                                              rg * bv,
                                              dtype_code(args->storage),
                                              dkc,
                                              16,
                                              bv,
                                              rg,
                                              variant(limits, args->storage),
                                              0,
                                              0,
                                              0,
                                              0};
    return EFLA_SUCCESS;
}

efla_status efla_vk_tiles_choose(const efla_vk_limits *limits, const efla_forward_args *args,
                                 uint64_t chunked_sequences, efla_vk_tiles *tiles) {
    tiles->dk_class = round_up((uint32_t)args->dk, EFLA_VK_SLAB);
    tiles->dv_stride = round_up((uint32_t)args->dv, EFLA_VK_SLAB);
    efla_status status = choose_recurrent(limits, args, tiles);
    if (status != EFLA_SUCCESS) return status;
    tiles->chunk = 32;
    bool coopmat =
        (chunked_sequences > 0 || limits->chunk) &&
        efla_vk_tiles_coopmat(limits, args, chunked_sequences, dtype_code(args->storage), tiles);
    if (!coopmat && (chunked_sequences > 0 || limits->chunk)) {
        status = choose_chunked(limits, args, chunked_sequences, tiles);
        if (status != EFLA_SUCCESS) return status;
    }
    uint64_t c = tiles->chunk, dkc = tiles->dk_class, dvs = tiles->dv_stride;
    tiles->chunk_bytes[0] = c * dkc * 4;
    tiles->chunk_bytes[1] = c * dvs * 4;
    tiles->chunk_bytes[2] = c * c * 4;
    tiles->chunk_bytes[3] = 2 * c * 4;
    tiles->chunk_bytes[4] = dkc * dvs * 4;
    if (coopmat) { /* V' and H as f16 tiles, their inverse scales after F's factors */
        tiles->chunk_bytes[2] = c * dvs * 2;
        tiles->chunk_bytes[3] = (3 * c + (dkc / 16 + c / 16) * (dvs / 16)) * 4;
        tiles->chunk_bytes[4] = dkc * dvs * 2;
    }
    if (coopmat && tiles->out.scan_y) { /* W, K^ and Q^ (f16); Y = Q^ S_c (f32) for H */
        tiles->chunk_bytes[0] = c * dkc * 6;
        tiles->chunk_bytes[4] = c * dvs * 4;
    }
    if (tiles->scan.fused_out) /* the scan forms the output: no V' or Y in the scratch */
        tiles->chunk_bytes[2] = tiles->chunk_bytes[4] = 0;
    return EFLA_SUCCESS;
}

/* ------------------------------------------------------------------ */
/* The two-level scan                                                  */
/* ------------------------------------------------------------------ */

/* Where the scan's workgroups leave compute units idle, each sequence's
 * chunks are cut into legs (vk_plan.c). In a first pass the scan runs each
 * sequence's first leg, and beside it the first level runs every later leg
 * but the last from a zero state over U's and W's columns (twice the
 * scan's columns at Dk = Dv); the join carries the true states across the
 * legs, and in a second pass the scan runs the other legs at once. Two
 * passes of length T / legs replace one of length T, so it pays from three
 * legs on. The legs: as many as keep each pass within one workgroup per
 * compute unit, with the first level at the slab width that allows the
 * most. */
static uint32_t legs_that_fit(uint64_t units, uint64_t first_groups, uint64_t scan_groups) {
    if (units < scan_groups) return 0;
    uint64_t legs = 2 + (units - scan_groups) / first_groups, most = 1 + units / scan_groups;
    return (uint32_t)(legs < most ? legs : most);
}

void efla_vk_tiles_legs(const efla_vk_limits *limits, const efla_forward_args *args,
                        uint64_t chunked_sequences, uint64_t longest_chunks, efla_vk_tiles *tiles) {
    tiles->legs = 1;
    const efla_vk_pipeline_key *scan = &tiles->scan;
    bool slab = scan->kernel == EFLA_VK_SCAN_SLAB_COOPMAT;
    if ((scan->kernel != EFLA_VK_SCAN && !slab) || chunked_sequences == 0 || limits->scan_legs == 1)
        return;
    uint64_t units = limits->compute_units ? limits->compute_units : 64;
    uint64_t rows = chunked_sequences * (uint64_t)args->value_heads;
    uint64_t width = (uint64_t)tiles->dv_stride + tiles->dk_class;
    uint64_t scan_groups = rows * (((uint64_t)args->dv + scan->block_v - 1) / scan->block_v);
    uint32_t legs = 0;
    bool chosen = false; /* a width that fits, parts 1 (the products take no parts) */
    efla_vk_pipeline_key first = *scan;
    /* the slab scan's widths, or the portable scan's own */
    uint32_t widest = slab ? 64 : scan->block_v, narrowest = slab ? 16 : scan->block_v;
    for (uint32_t bv = widest; bv >= narrowest; bv /= 2) {
        efla_vk_pipeline_key key = *scan;
        if (slab &&
            !efla_vk_tiles_slab_key(limits, scan->dtype, scan->dk_class, scan->chunk, bv, &key))
            continue;
        uint32_t n = legs_that_fit(units, rows * ((width + bv - 1) / bv), scan_groups);
        if (!chosen || n > legs) {
            legs = n;
            first = key;
            chosen = true;
        }
    }
    if (longest_chunks / EFLA_VK_MIN_LEG_CHUNKS < legs)
        legs = (uint32_t)(longest_chunks / EFLA_VK_MIN_LEG_CHUNKS);
    if (limits->scan_legs)
        legs = limits->scan_legs; /* EFLA_VULKAN_SCAN_LEGS, for tests and tuning */
    if (legs < 3 && !limits->scan_legs) return;
    tiles->legs = legs;
    tiles->leg_scan = first;
    tiles->leg_scan.scan_y = scan->scan_y;
    tiles->leg_scan.leg_products = 1;
    tiles->leg_scan.fused_out = 0;
    tiles->join = (efla_vk_pipeline_key){EFLA_VK_SCAN_JOIN,
                                         256,
                                         scan->dtype,
                                         tiles->dk_class,
                                         scan->chunk,
                                         16,
                                         1,
                                         EFLA_VK_WORDS,
                                         0,
                                         0,
                                         0,
                                         0};
}
