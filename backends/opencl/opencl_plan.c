#include "backends/opencl/opencl_plan.h"

#include "core/error.h"
#include "shaders/opencl/efla_params.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

bool efla_cl_runs_recurrent(const efla_forward_args *args, int64_t length) {
    switch (args->algorithm) {
    case EFLA_ALGORITHM_RECURRENT: return true;
    case EFLA_ALGORITHM_CHUNKED: return false;
    default: return length <= EFLA_RECURRENT_MAX_TOKENS;
    }
}

static void count_work(const efla_forward_args *args, uint32_t chunk, efla_cl_plan *plan) {
    for (int64_t n = 0; n < args->sequences; ++n) {
        int64_t b, first, length;
        efla_forward_sequence(args, n, &b, &first, &length);
        if (efla_cl_runs_recurrent(args, length)) {
            plan->recurrent_count++;
        } else {
            plan->scan_count++;
            plan->chunk_count += (length + chunk - 1) / chunk;
        }
    }
}

static void put_tensor(int64_t *P, int slot, const efla_tensor_view *view) {
    if (!view->buffer) return;
    const uint64_t element = efla_dtype_size(view->dtype);
    P[slot] = (int64_t)(view->offset_elements + view->buffer->offset / element);
    for (int i = 0; i < 4; ++i)
        P[slot + 1 + i] = view->strides[i];
}

static int64_t float_bits(float x) {
    uint32_t bits;
    memcpy(&bits, &x, sizeof bits);
    return bits;
}

static void fill_parameters(const efla_forward_args *args, uint32_t chunk, int64_t chunks,
                            int64_t *P) {
    put_tensor(P, EFLA_P_Q, &args->q);
    put_tensor(P, EFLA_P_K, &args->k);
    put_tensor(P, EFLA_P_V, &args->v);
    put_tensor(P, EFLA_P_BETA, &args->beta);
    put_tensor(P, EFLA_P_OUT, &args->out);
    put_tensor(P, EFLA_P_S0, &args->initial_state);
    put_tensor(P, EFLA_P_S1, &args->final_state);
    P[EFLA_P_TOKENS] = args->tokens;
    P[EFLA_P_HEADS] = args->heads;
    P[EFLA_P_VALUE_HEADS] = args->value_heads;
    P[EFLA_P_DK] = args->dk;
    P[EFLA_P_DV] = args->dv;
    P[EFLA_P_FLAGS] = (args->initial_state.buffer ? EFLA_PF_INITIAL_STATE : 0) |
                      (args->final_state.buffer ? EFLA_PF_FINAL_STATE : 0) |
                      (args->l2norm_q ? EFLA_PF_L2NORM_Q : 0) |
                      (args->l2norm_k ? EFLA_PF_L2NORM_K : 0) |
                      (args->mode == EFLA_MODE_DELTA ? EFLA_PF_DELTA : 0);
    P[EFLA_P_SCALE] = float_bits(args->scale);
    /* Scratch: W, U, A, C one after the other, B*T rows per value head,
     * then H, Dk x Dv per chunk and value head. */
    const int64_t rows = args->batch * args->tokens, heads_rows = args->value_heads * rows;
    P[EFLA_P_ROWS] = rows;
    P[EFLA_P_SCRATCH_W] = 0;
    P[EFLA_P_SCRATCH_U] = heads_rows * args->dk;
    P[EFLA_P_SCRATCH_A] = P[EFLA_P_SCRATCH_U] + heads_rows * args->dv;
    P[EFLA_P_SCRATCH_C] = P[EFLA_P_SCRATCH_A] + heads_rows * chunk;
    P[EFLA_P_SCRATCH_H] = P[EFLA_P_SCRATCH_C] + heads_rows * 2;
    P[EFLA_P_CHUNKS] = chunks;
}

static void fill_tables(const efla_forward_args *args, uint32_t chunk, efla_cl_plan *plan) {
    int32_t *base = (int32_t *)plan->block;
    int32_t *recurrent = base + 4 * plan->recurrent_table, *chunks = base + 4 * plan->chunk_table,
            *scan = base + 4 * plan->scan_table, *first_chunk = base + 4 * plan->first_chunk_table;
    for (int64_t n = 0; n < args->sequences; ++n) {
        int64_t b, first, length;
        efla_forward_sequence(args, n, &b, &first, &length);
        const int32_t entry[4] = {(int32_t)b, (int32_t)first, (int32_t)length, (int32_t)n};
        if (efla_cl_runs_recurrent(args, length)) {
            memcpy(recurrent, entry, sizeof entry);
            recurrent += 4;
            continue;
        }
        memcpy(scan, entry, sizeof entry);
        scan += 4;
        first_chunk[0] = (int32_t)((chunks - (base + 4 * plan->chunk_table)) / 4);
        first_chunk += 4;
        for (int64_t c = 0; c < length; c += chunk) {
            const int32_t piece[4] = {(int32_t)b, (int32_t)(first + c),
                                      (int32_t)(length - c < chunk ? length - c : chunk),
                                      (int32_t)n};
            memcpy(chunks, piece, sizeof piece);
            chunks += 4;
        }
    }
}

static uint32_t ceil_pow2(int64_t x) {
    uint32_t p = 1;
    while (p < x && p < (1u << 30))
        p *= 2;
    return p;
}

/* An override of the Dv tile for tests (8, 16 or 32), else 0. */
static uint32_t forced_dv_tile(void) {
    const char *text = getenv("EFLA_OPENCL_DV_TILE");
    if (!text) return 0;
    long value = strtol(text, NULL, 10);
    return value == 8 || value == 16 || value == 32 ? (uint32_t)value : 0;
}

/* The recurrent kernel's fixed work-group: dvr columns x rsr row groups,
 * enough row groups for Dk rows at rows_max each. */
static efla_status recurrent_shape(efla_backend_context *ctx, const efla_forward_args *args,
                                   efla_cl_plan *plan) {
    const uint32_t size = plan->program->tiles.work_group;
    const uint32_t rows_max = plan->program->tiles.rows_max;
    const uint32_t needed = ceil_pow2((args->dk + rows_max - 1) / rows_max);
    if (needed > size)
        return efla_error(EFLA_ERROR_UNSUPPORTED,
                          "the recurrent kernel needs %u row groups for Dk=%lld but has %u items",
                          needed, (long long)args->dk, size);
    uint32_t columns = forced_dv_tile();
    if (!columns) columns = ceil_pow2(args->dv) < 32 ? ceil_pow2(args->dv) : 32;
    if (columns > size / needed) columns = size / needed;
    plan->recurrent_columns = columns;
    plan->recurrent_row_groups = size / columns;
    plan->recurrent_local_bytes =
        sizeof(float) * (size_t)(2 * args->dk + 2 * size + 3 * (size / columns));
    (void)ctx;
    return EFLA_SUCCESS;
}

/* The state kernel for a Dv tile width of 8, 16 or 32. */
int efla_cl_state_kernel(uint32_t columns) {
    return columns >= 32 ? EFLA_CL_STATE32 : columns >= 16 ? EFLA_CL_STATE16 : EFLA_CL_STATE;
}

const efla_cl_scan_shape efla_cl_nvmma_shapes[EFLA_CL_KERNEL_COUNT - EFLA_CL_NVMMA_STATE] = {
    {128, 1, 2}, {128, 2, 2}, {128, 4, 2}, {128, 1, 4}, {128, 2, 4}, {256, 1, 4}, {256, 2, 4}};

/* An override for tuning (EFLA_OPENCL_STATE_GROUPS = 1 / 2 / 4,
 * EFLA_OPENCL_STATE_PARTS = 2 / 4), else 0. */
static uint32_t forced_choice(const char *name, uint32_t a, uint32_t b, uint32_t c) {
    const char *text = getenv(name);
    if (!text) return 0;
    const long value = strtol(text, NULL, 10);
    return value == a || value == b || value == c ? (uint32_t)value : 0;
}

static uint64_t pad16(int64_t x) { return (uint64_t)(x + 15) / 16 * 16; }

/* The nvmma scan kernel of (Dk class, groups, parts) if the program has it
 * and the device runs it, else -1. */
static int nvmma_scan_kernel(const efla_backend_context *ctx, const efla_cl_program *program,
                             uint32_t dk, uint32_t groups, uint32_t parts) {
    for (int i = 0; i < EFLA_CL_KERNEL_COUNT - EFLA_CL_NVMMA_STATE; ++i) {
        const efla_cl_scan_shape *s = &efla_cl_nvmma_shapes[i];
        const int kernel = EFLA_CL_NVMMA_STATE + i;
        if (s->dk != dk || s->groups != groups || s->parts != parts) continue;
        if (!program->kernels[kernel] || program->max_work_group[kernel] < 32 * groups * parts ||
            program->static_local[kernel] > ctx->device.local_memory)
            return -1;
        return kernel;
    }
    return -1;
}

/* The scan's groups for `parts`, as cuda_mma_plan.c chooses its column
 * tile: each warp runs the serial chain on its own and the chain's pace is
 * one warp's, so the work-groups should cover the compute units, while
 * wider ones read the chunk operands fewer times: the widest that still
 * gives about one work-group per compute unit, else the narrowest. 0 when
 * no kernel of those parts runs. */
static uint32_t nvmma_groups(const efla_backend_context *ctx, const efla_cl_program *program,
                             uint32_t dk, uint32_t parts, uint64_t seq_heads, uint64_t dvp,
                             int *kernel) {
    const uint64_t units = ctx->device.info.compute_units;
    uint32_t chosen = 0;
    for (uint32_t groups = 4; groups >= 1; groups /= 2) {
        const int k = nvmma_scan_kernel(ctx, program, dk, groups, parts);
        if (k < 0 || (groups > 1 && dvp % (16 * groups) != 0)) continue;
        chosen = groups;
        *kernel = k;
        if (seq_heads * (dvp / (16 * groups)) >= 3 * units / 4) break;
    }
    return chosen;
}

/* The nvmma scan's shape: parts as cuda_mma_plan.c (two where 64-column
 * work-groups of two parts still give about one per compute unit: less
 * partial V'^T through local memory; else four, whose narrower work-groups
 * keep more warps busy where there are few heads), then the groups; or
 * the forced ones where that kernel runs. False: no nvmma scan runs. */
static bool nvmma_scan_shape(const efla_backend_context *ctx, const efla_forward_args *args,
                             efla_cl_plan *plan) {
    const efla_cl_program *program = plan->program;
    const uint32_t dk = args->dk <= 128 ? 128 : 256;
    const uint64_t seq_heads = (uint64_t)plan->scan_count * (uint64_t)args->value_heads;
    const uint64_t dvp = pad16(args->dv), units = ctx->device.info.compute_units;
    const uint32_t forced_groups = forced_choice("EFLA_OPENCL_STATE_GROUPS", 1, 2, 4);
    const uint32_t forced_parts = forced_choice("EFLA_OPENCL_STATE_PARTS", 2, 4, 4);
    int kernel = -1;
    if (forced_groups && forced_parts)
        kernel = nvmma_scan_kernel(ctx, program, dk, forced_groups, forced_parts);
    if (kernel < 0) {
        uint32_t parts = forced_parts;
        if (!parts) parts = seq_heads * (dvp / 64) >= 3 * units / 4 ? 2 : 4;
        if (!nvmma_groups(ctx, program, dk, parts, seq_heads, dvp, &kernel) &&
            !nvmma_groups(ctx, program, dk, parts == 2 ? 4 : 2, seq_heads, dvp, &kernel))
            return false;
        /* groups forced alone: with the parts chosen */
        const uint32_t chosen = efla_cl_nvmma_shapes[kernel - EFLA_CL_NVMMA_STATE].parts;
        const int forced =
            forced_groups ? nvmma_scan_kernel(ctx, program, dk, forced_groups, chosen) : -1;
        if (forced >= 0) kernel = forced;
    }
    const efla_cl_scan_shape *shape = &efla_cl_nvmma_shapes[kernel - EFLA_CL_NVMMA_STATE];
    plan->scan_kernel = kernel;
    plan->scan_columns = 16 * shape->groups;
    plan->scan_items = 32 * shape->groups * shape->parts;
    plan->scan_local_bytes = 0;
    return true;
}

/* Below this head dimension the nvmma pipeline pads Dk or Dv to 16 (mostly
 * zero products) and still rounds the state and V' to 16-bit operands
 * (bf16 at Dk = 1 and 3 missed the 1e-2 contract under emulation, as the
 * CUDA mma path did on the H200): such calls run the portable kernels. bf16
 * operands (8 significant bits) need Dk of 32: at Dk = Dv = 16 with unit
 * initial states and key norms up to 17 the output erred by 8.5e-3 to
 * 8.8e-3 under emulation against the 1e-2 bar, at Dk 32 by 6.3e-3 to
 * 6.8e-3 (test_conformance, sizes/unit_states_in_small_heads). */
#define NVMMA_MIN_HEAD_DIM 16
#define NVMMA_MIN_KEY_DIM_BF16 32

/* Whether the forward runs the nvmma pipeline: the program has it, the
 * head dimensions fit, and every kernel runs on the device. Its scratch is
 * 16-bit, one block per (chunk, value head) (efla_params.h). */
static bool nvmma_shape(const efla_backend_context *ctx, const efla_forward_args *args,
                        efla_cl_plan *plan) {
    const efla_cl_program *program = plan->program;
    const uint64_t local = ctx->device.local_memory;
    if (!program->kernels[EFLA_CL_NVMMA_PREPARE] || args->dk > EFLA_CL_NVMMA_STATE_MAX_DK ||
        args->dk < NVMMA_MIN_HEAD_DIM || args->dv < NVMMA_MIN_HEAD_DIM ||
        (args->storage == EFLA_DTYPE_BF16 && args->dk < NVMMA_MIN_KEY_DIM_BF16) ||
        program->max_work_group[EFLA_CL_NVMMA_PREPARE] < EFLA_NV_PREPARE_ITEMS ||
        program->max_work_group[EFLA_CL_NVMMA_OUTPUT] < EFLA_NV_OUTPUT_ITEMS ||
        program->static_local[EFLA_CL_NVMMA_PREPARE] > local ||
        program->static_local[EFLA_CL_NVMMA_OUTPUT] > local || !nvmma_scan_shape(ctx, args, plan))
        return false;
    const uint64_t dkp = pad16(args->dk), dvp = pad16(args->dv);
    plan->nvmma = true;
    plan->scratch_bytes =
        2 * EFLA_NV_TOTAL(dkp, dvp) * (uint64_t)plan->chunk_count * (uint64_t)args->value_heads;
    return true;
}

static efla_status scan_shape(efla_backend_context *ctx, const efla_forward_args *args,
                              efla_cl_plan *plan) {
    const efla_cl_tiles *tiles = &plan->program->tiles;
    const uint64_t local = ctx->device.local_memory;
    const uint64_t rows = (uint64_t)(args->batch * args->tokens) * (uint64_t)args->value_heads;
    const uint64_t states = (uint64_t)plan->chunk_count * (uint64_t)args->value_heads;
    if (nvmma_shape(ctx, args, plan)) return EFLA_SUCCESS;
    plan->scratch_bytes =
        sizeof(float) * (rows * (uint64_t)(args->dk + args->dv + tiles->chunk + 2) +
                         states * (uint64_t)args->dk * (uint64_t)args->dv);
    /* S is [Dk rounded up to the state kernel's K tile][width] floats. */
    const uint64_t s_rows = (uint64_t)(args->dk + EFLA_CL_STATE_K_TILE - 1) / EFLA_CL_STATE_K_TILE *
                            EFLA_CL_STATE_K_TILE;
    uint32_t columns = forced_dv_tile();
    if (!columns) {
        columns =
            ceil_pow2(args->dv) < EFLA_CL_MAX_DV_TILE ? ceil_pow2(args->dv) : EFLA_CL_MAX_DV_TILE;
        if (columns < 8) columns = 8;
        /* On a GPU, narrower tiles give more work-groups when there are few
         * (sequence, head) pairs to spread over the compute units. */
        const uint64_t pairs = (uint64_t)plan->scan_count * (uint64_t)args->value_heads;
        while (ctx->device.info.type != EFLA_DEVICE_TYPE_SOFTWARE && columns > 8 &&
               pairs * (uint64_t)((args->dv + columns - 1) / columns) <
                   2ull * ctx->device.info.compute_units)
            columns /= 2;
    }
    uint64_t needed;
    while ((needed = plan->program->static_local[efla_cl_state_kernel(columns)] +
                     sizeof(float) * s_rows * columns) > local &&
           columns > 8)
        columns /= 2;
    if (needed > local)
        return efla_error(EFLA_ERROR_UNSUPPORTED,
                          "the chunked state scan needs %llu bytes of local memory for Dk=%lld but "
                          "'%s' has %llu",
                          (unsigned long long)needed, (long long)args->dk, ctx->device.info.name,
                          (unsigned long long)local);
    plan->scan_kernel = efla_cl_state_kernel(columns);
    plan->scan_columns = columns;
    plan->scan_items = 2 * tiles->chunk;
    plan->scan_local_bytes = sizeof(float) * (size_t)(s_rows * columns);
    return EFLA_SUCCESS;
}

/* Every index the kernels form in 32 bits must fit. */
static efla_status check_limits(const efla_forward_args *args, const efla_cl_plan *plan) {
    const uint64_t tiles = (uint64_t)args->dv; /* the most Dv tiles (1 column each) */
    const uint64_t most =
        (uint64_t)(plan->recurrent_count > plan->scan_count ? plan->recurrent_count
                                                            : plan->scan_count);
    const uint64_t groups = most * (uint64_t)args->value_heads * tiles;
    const uint64_t out_tiles = (uint64_t)(args->dv + EFLA_CL_OUT_TILE - 1) / EFLA_CL_OUT_TILE;
    const uint64_t chunk_groups =
        (uint64_t)plan->chunk_count * (uint64_t)args->value_heads * out_tiles;
    if (args->tokens > INT32_MAX || args->batch > INT32_MAX || args->sequences > INT32_MAX ||
        groups > INT32_MAX || chunk_groups > INT32_MAX)
        return efla_error(EFLA_ERROR_UNSUPPORTED,
                          "the OpenCL kernels index tokens, sequences and work-groups in 32 bits; "
                          "split this call (B=%lld, T=%lld, N=%lld)",
                          (long long)args->batch, (long long)args->tokens,
                          (long long)args->sequences);
    return EFLA_SUCCESS;
}

/* A kernel's static plus dynamic local memory must fit the device. */
static efla_status check_local(const efla_backend_context *ctx, const efla_cl_program *program,
                               int kernel, const char *name, uint64_t dynamic) {
    const uint64_t needed = program->static_local[kernel] + dynamic;
    if (needed <= ctx->device.local_memory) return EFLA_SUCCESS;
    return efla_error(EFLA_ERROR_UNSUPPORTED,
                      "%s needs %llu bytes of local memory but '%s' has %llu (try "
                      "EFLA_OPENCL_CHUNK=32)",
                      name, (unsigned long long)needed, ctx->device.info.name,
                      (unsigned long long)ctx->device.local_memory);
}

efla_status efla_cl_plan_make(efla_backend_context *ctx, const efla_forward_args *args,
                              const efla_cl_program *program, efla_cl_plan *plan) {
    memset(plan, 0, sizeof *plan);
    plan->program = program;
    const uint32_t chunk = program->tiles.chunk;
    count_work(args, chunk, plan);
    efla_status status = check_limits(args, plan);
    if (status != EFLA_SUCCESS) return status;
    if (plan->recurrent_count && (status = recurrent_shape(ctx, args, plan)) != EFLA_SUCCESS)
        return status;
    if (plan->scan_count && (status = scan_shape(ctx, args, plan)) != EFLA_SUCCESS) return status;
    if (plan->recurrent_count &&
        (status = check_local(ctx, program, EFLA_CL_RECURRENT, "efla_recurrent",
                              plan->recurrent_local_bytes)) != EFLA_SUCCESS)
        return status;
    if (plan->chunk_count &&
        ((status = check_local(ctx, program, EFLA_CL_PREPARE, "efla_chunk_prepare", 0)) !=
             EFLA_SUCCESS ||
         (status = check_local(ctx, program, EFLA_CL_OUTPUT, "efla_chunk_output", 0)) !=
             EFLA_SUCCESS))
        return status;
    const int32_t header = EFLA_P_COUNT / 2; /* int4 entries taken by the parameters */
    plan->recurrent_table = header;
    plan->chunk_table = header + (int32_t)plan->recurrent_count;
    plan->scan_table = plan->chunk_table + (int32_t)plan->chunk_count;
    plan->first_chunk_table = plan->scan_table + (int32_t)plan->scan_count;
    const uint64_t entries = (uint64_t)plan->first_chunk_table + (uint64_t)plan->scan_count;
    plan->block_bytes = (size_t)entries * 16;
    plan->block = ctx->params.allocator->alloc(ctx->params.allocator->user, plan->block_bytes, 64);
    if (!plan->block) return efla_error(EFLA_ERROR_OUT_OF_HOST_MEMORY, "out of host memory");
    memset(plan->block, 0, plan->block_bytes);
    fill_parameters(args, chunk, plan->chunk_count, plan->block);
    fill_tables(args, chunk, plan);
    return EFLA_SUCCESS;
}

void efla_cl_plan_free(efla_backend_context *ctx, efla_cl_plan *plan) {
    if (plan->block) ctx->params.allocator->free(ctx->params.allocator->user, plan->block);
    plan->block = NULL;
}
