/*
 * Planning and launching a forward: which sequences run the recurrent
 * kernel and which the chunked pair (prepare + scan), the per-call
 * varlen table, the scratch, and the launch geometry.
 */
#include "backends/cuda/cuda_internal.h"
#include "backends/cuda/cuda_native.h"

#include "core/context.h"
#include "core/error.h"

#include <stdio.h>
#include <string.h>

_Static_assert(sizeof(efla_cuda_params) == EFLA_CUDA_PARAMS_SIZE,
               "efla_cuda_params must have the layout the kernels expect");

/* Scratch per launch round; value heads are split into rounds beyond it. */
#define SCRATCH_BUDGET_BYTES ((uint64_t)1 << 30)

typedef struct forward_plan {
    int64_t recurrent_max_len; /* sequences longer than this run chunked */
    bool mma;                  /* the chunked kernels run on tensor cores */
    efla_cuda_mma_tiles tiles; /* ... with these column tiles */
    bool any_recurrent, any_chunked;
    int64_t chunks_per_sequence; /* without varlen */
    int64_t total_chunks;
    efla_cuda_sequence *table; /* varlen only; host copy */
} forward_plan;

static int64_t recurrent_limit(const efla_forward_args *a) {
    switch (a->algorithm) {
    case EFLA_ALGORITHM_RECURRENT: return INT64_MAX;
    case EFLA_ALGORITHM_CHUNKED: return -1;
    default: return EFLA_RECURRENT_MAX_TOKENS;
    }
}

/* Below this head dimension the mma path pads Dk or Dv to 16 (mostly zero
 * products, no speed to gain) and still rounds the state and V' to 16-bit
 * operands (bf16 at Dk = 1, Dv = 5 missed the 1e-2 contract on the H200):
 * such requests run the f32 simt kernels whatever the context's path. bf16
 * takes Dk of 32: with unit initial states and key norms up to 17
 * (test_conformance sizes/unit_states_in_small_heads) the mma kernels on
 * the emulator (backends/cuda/emu) erred by 8.4e-3 to 9.3e-3 of the 1e-2
 * bar with Dk = Dv = 16 among the cases, and by 6.4e-3 to 6.8e-3 with the
 * smallest at Dk 32. */
#define MMA_MIN_HEAD_DIM 16
#define MMA_MIN_KEY_DIM_BF16 32

/* Tensor cores for the chunked kernels: 16-bit storage, sm_80+, not
 * forced off, head dimensions of at least MMA_MIN_HEAD_DIM, and the
 * kernels' shared memory fits this device. */
static void choose_chunked_path(const efla_backend_context *ctx, const efla_forward_args *a,
                                forward_plan *plan) {
    plan->mma = ctx->path != EFLA_CUDA_PATH_SIMT && a->storage != EFLA_DTYPE_F32 &&
                ctx->props.cc_major >= 8 && a->dk >= MMA_MIN_HEAD_DIM &&
                a->dv >= MMA_MIN_HEAD_DIM &&
                (a->storage != EFLA_DTYPE_BF16 || a->dk >= MMA_MIN_KEY_DIM_BF16) &&
                efla_cuda_mma_choose(&ctx->props, a->sequences * a->value_heads, a->dk, a->dv,
                                     &plan->tiles);
}

static int64_t chunks_of(int64_t length) {
    return (length + EFLA_CUDA_CHUNK - 1) / EFLA_CUDA_CHUNK;
}

/* Fills the plan; with varlen also builds the host table (freed by
 * release_plan). */
static efla_status make_plan(efla_backend_context *ctx, const efla_forward_args *a,
                             forward_plan *plan) {
    memset(plan, 0, sizeof *plan);
    plan->recurrent_max_len = recurrent_limit(a);
    choose_chunked_path(ctx, a, plan);
    if (!a->cu_seqlens) {
        const bool chunked = a->tokens > plan->recurrent_max_len;
        plan->any_recurrent = !chunked && a->sequences > 0;
        plan->any_chunked = chunked && a->sequences > 0;
        plan->chunks_per_sequence = chunked ? chunks_of(a->tokens) : 0;
        plan->total_chunks = plan->chunks_per_sequence * a->sequences;
        return EFLA_SUCCESS;
    }
    if (a->sequences == 0) return EFLA_SUCCESS;
    plan->table =
        efla_host_alloc(ctx->params.allocator, (size_t)a->sequences * sizeof *plan->table);
    if (!plan->table) return efla_error(EFLA_ERROR_OUT_OF_HOST_MEMORY, "out of host memory");
    int64_t chunk = 0;
    for (int64_t n = 0; n < a->sequences; ++n) {
        efla_cuda_sequence *s = &plan->table[n];
        efla_forward_sequence(a, n, &s->batch_row, &s->first, &s->length);
        s->first_chunk = chunk;
        if (s->length > plan->recurrent_max_len) {
            plan->any_chunked = true;
            chunk += chunks_of(s->length);
        } else {
            plan->any_recurrent = true;
        }
    }
    plan->total_chunks = chunk;
    return EFLA_SUCCESS;
}

static void release_plan(efla_backend_context *ctx, forward_plan *plan) {
    efla_host_free(ctx->params.allocator, plan->table);
}

static int dtype_code(efla_dtype dtype) {
    return dtype == EFLA_DTYPE_F16    ? EFLA_CUDA_F16
           : dtype == EFLA_DTYPE_BF16 ? EFLA_CUDA_BF16
                                      : EFLA_CUDA_F32;
}

static efla_cuda_tensor tensor_of(const efla_tensor_view *view) {
    efla_cuda_tensor t;
    memset(&t, 0, sizeof t);
    if (!view->buffer) return t;
    t.address =
        (uint64_t)view->buffer->address + view->offset_elements * efla_dtype_size(view->dtype);
    for (int i = 0; i < 4; ++i)
        t.stride[i] = view->strides[i];
    return t;
}

static void fill_params(const efla_forward_args *a, const forward_plan *plan, CUdeviceptr table,
                        efla_cuda_params *p) {
    memset(p, 0, sizeof *p);
    p->q = tensor_of(&a->q);
    p->k = tensor_of(&a->k);
    p->v = tensor_of(&a->v);
    p->beta = tensor_of(&a->beta);
    p->out = tensor_of(&a->out);
    p->state_in = tensor_of(&a->initial_state);
    p->state_out = tensor_of(&a->final_state);
    p->sequence_table = (uint64_t)table;
    p->tokens = a->tokens;
    p->heads = a->heads;
    p->value_heads = a->value_heads;
    p->dk = a->dk;
    p->dv = a->dv;
    p->sequences = a->sequences;
    p->chunks_per_sequence = plan->chunks_per_sequence;
    p->recurrent_max_len = plan->recurrent_max_len;
    p->chunk_floats = efla_cuda_chunk_floats(a->dk, a->dv);
    p->hv_begin = 0;
    p->hv_count = (int32_t)a->value_heads;
    p->dv_tiles = (int32_t)((a->dv + EFLA_CUDA_TILE_V - 1) / EFLA_CUDA_TILE_V);
    p->mode = a->mode == EFLA_MODE_DELTA ? 1 : 0;
    p->l2norm_q = a->l2norm_q;
    p->l2norm_k = a->l2norm_k;
    p->scale = a->scale;
}

/* Grows a device allocation to at least `size` bytes. Work that may still
 * use the old one is waited for first (rare: allocations only grow). */
static efla_status ensure_device(efla_backend_context *ctx, CUdeviceptr *address, uint64_t *have,
                                 uint64_t size, const char *what) {
    if (size <= *have) return EFLA_SUCCESS;
    if (*address) {
        CUresult result = efla_cu->CtxSynchronize();
        if (result != CUDA_SUCCESS) return efla_cuda_fail(result, "cuCtxSynchronize");
        efla_cu->MemFree(*address);
        *address = 0;
        *have = 0;
    }
    CUresult result = efla_cu->MemAlloc(address, (size_t)size);
    if (result != CUDA_SUCCESS) {
        *address = 0;
        char text[96];
        snprintf(text, sizeof text, "cuMemAlloc(%llu bytes of %s)", (unsigned long long)size, what);
        return efla_cuda_fail(result, text);
    }
    *have = size;
    return EFLA_SUCCESS;
}

static efla_status check_geometry(const efla_forward_args *a) {
    const int64_t tiles = efla_cuda_pad16(a->dv) / 8; /* the most tiles (mma, 8 columns) */
    if (a->sequences > INT32_MAX / (a->value_heads * tiles))
        return efla_error(EFLA_ERROR_UNSUPPORTED,
                          "%lld sequences x %lld value heads exceed the CUDA grid",
                          (long long)a->sequences, (long long)a->value_heads);
    return EFLA_SUCCESS;
}

static efla_status launch_recurrent(efla_backend_context *ctx, CUstream stream, int dtype,
                                    const efla_cuda_params *p) {
    const int64_t dk_class = efla_cuda_dk_class(p->dk);
    const int class_index = dk_class == 32 ? 0 : dk_class == 64 ? 1 : dk_class == 128 ? 2 : 3;
    const efla_cuda_kernel id =
        (efla_cuda_kernel)(EFLA_CUDA_KERNEL_RECURRENT_F32_K32 + 4 * dtype + class_index);
    const int64_t blocks = p->sequences * p->value_heads * p->dv_tiles;
    return efla_cuda_launch(ctx, id, stream, (uint32_t)blocks, 1, EFLA_CUDA_RECURRENT_THREADS,
                            efla_cuda_recurrent_smem(dk_class), p);
}

/* Scratch elements per (chunk, value head) and heads per launch round
 * (value heads are split into rounds beyond the scratch budget). */
static int64_t heads_per_round(const efla_cuda_params *p, const forward_plan *plan,
                               int64_t grid_y_per_head) {
    const uint64_t element = plan->mma ? 2u : 4u;
    const uint64_t per_head = (uint64_t)plan->total_chunks * (uint64_t)p->chunk_floats * element;
    int64_t heads = per_head ? (int64_t)(SCRATCH_BUDGET_BYTES / per_head) : p->value_heads;
    if (heads < 1) heads = 1;
    if (heads > p->value_heads) heads = p->value_heads;
    if (heads > 65535 / grid_y_per_head) heads = 65535 / grid_y_per_head; /* grid.y */
    return heads;
}

/* The chunked kernels' ids, threads, shared memory and grids. */
typedef struct chunked_launch {
    efla_cuda_kernel prepare, scan, output;
    uint32_t prepare_threads, scan_threads, output_threads;
    uint32_t prepare_smem, scan_smem, output_smem;
    int64_t output_grid_y; /* per value head */
    bool fused;            /* the scan writes the output: no output kernel */
} chunked_launch;

static chunked_launch simt_launch(int dtype, efla_cuda_params *p) {
    chunked_launch l = {0};
    l.prepare = (efla_cuda_kernel)(EFLA_CUDA_KERNEL_PREPARE_SIMT_F32 + dtype);
    l.scan = (efla_cuda_kernel)(EFLA_CUDA_KERNEL_SCAN_SIMT_F32 + dtype);
    l.prepare_threads = EFLA_CUDA_PREPARE_THREADS;
    l.scan_threads = EFLA_CUDA_SCAN_THREADS;
    l.prepare_smem = efla_cuda_prepare_smem();
    l.scan_smem = efla_cuda_scan_smem(p->dk);
    l.output_grid_y = 1;
    return l;
}

static chunked_launch mma_launch(int dtype, const forward_plan *plan, efla_cuda_params *p) {
    const bool bf16 = dtype == EFLA_CUDA_BF16;
    const int64_t dvp = efla_cuda_pad16(p->dv);
    p->chunk_floats = efla_cuda_mma_scratch_layout(p->dk, p->dv).total;
    p->state_tile = plan->tiles.state;
    p->state_stages = plan->tiles.state_stages;
    p->dv_tiles = (int32_t)(dvp / plan->tiles.state);
    p->output_tile = plan->tiles.output;
    p->output_tiles = (int32_t)((dvp + plan->tiles.output - 1) / plan->tiles.output);
    chunked_launch l;
    l.prepare = (efla_cuda_kernel)((plan->tiles.wide_prepare ? EFLA_CUDA_KERNEL_PREPARE_WIDE_MMA_F16
                                                             : EFLA_CUDA_KERNEL_PREPARE_MMA_F16) +
                                   bf16);
    l.scan = efla_cuda_mma_state_kernel(bf16, p->dk, &plan->tiles);
    l.output = efla_cuda_mma_output_kernel(bf16, plan->tiles.output);
    l.prepare_threads = plan->tiles.wide_prepare ? EFLA_CUDA_MMA_PREPARE_WIDE_THREADS
                                                 : EFLA_CUDA_MMA_PREPARE_THREADS;
    l.scan_threads = (uint32_t)EFLA_CUDA_STATE_THREADS(plan->tiles.state, plan->tiles.state_parts,
                                                       plan->tiles.fused);
    l.output_threads = EFLA_CUDA_MMA_OUTPUT_THREADS;
    l.prepare_smem = efla_cuda_prepare_mma_smem(p->dk, p->dv);
    l.scan_smem = efla_cuda_state_mma_smem(p->dk, plan->tiles.state, plan->tiles.state_stages,
                                           plan->tiles.state_parts, plan->tiles.fused);
    l.fused = plan->tiles.fused;
    l.output_smem = efla_cuda_output_mma_smem(p->dk, plan->tiles.output);
    l.output_grid_y = p->output_tiles;
    return l;
}

static efla_status launch_round(efla_backend_context *ctx, CUstream stream,
                                const forward_plan *plan, const chunked_launch *l,
                                const efla_cuda_params *p) {
    const uint32_t chunks = (uint32_t)plan->total_chunks, heads = (uint32_t)p->hv_count;
    efla_status status = efla_cuda_launch(ctx, l->prepare, stream, chunks, heads,
                                          l->prepare_threads, l->prepare_smem, p);
    if (status != EFLA_SUCCESS) return status;
    const int64_t blocks = p->sequences * p->hv_count * p->dv_tiles;
    status = efla_cuda_launch(ctx, l->scan, stream, (uint32_t)blocks, 1, l->scan_threads,
                              l->scan_smem, p);
    if (status != EFLA_SUCCESS || !plan->mma || l->fused) return status;
    return efla_cuda_launch(ctx, l->output, stream, chunks, heads * (uint32_t)l->output_grid_y,
                            l->output_threads, l->output_smem, p);
}

/* The chunked kernels, in rounds of value heads that fit the scratch
 * budget (one round for every shape of PERFORMANCE.md). */
static efla_status launch_chunked(efla_backend_context *ctx, CUstream stream, int dtype,
                                  const forward_plan *plan, efla_cuda_params *p) {
    const chunked_launch l = plan->mma ? mma_launch(dtype, plan, p) : simt_launch(dtype, p);
    const int64_t per_round = heads_per_round(p, plan, l.output_grid_y);
    if (plan->total_chunks > INT32_MAX)
        return efla_error(EFLA_ERROR_UNSUPPORTED, "%lld chunks exceed the CUDA grid",
                          (long long)plan->total_chunks);
    const uint64_t element = plan->mma ? 2u : 4u;
    const uint64_t bytes =
        (uint64_t)plan->total_chunks * (uint64_t)p->chunk_floats * element * (uint64_t)per_round;
    efla_status status =
        ensure_device(ctx, &ctx->scratch, &ctx->scratch_size, bytes, "chunk scratch");
    if (status != EFLA_SUCCESS) return status;
    p->scratch = (uint64_t)ctx->scratch;
    for (int64_t begin = 0; begin < p->value_heads; begin += per_round) {
        const int64_t count =
            p->value_heads - begin < per_round ? p->value_heads - begin : per_round;
        p->hv_begin = (int32_t)begin;
        p->hv_count = (int32_t)count;
        status = launch_round(ctx, stream, plan, &l, p);
        if (status != EFLA_SUCCESS) return status;
    }
    return EFLA_SUCCESS;
}

/* Everything on `stream`, in order after the context's previous forward. */
static efla_status enqueue(efla_backend_context *ctx, CUstream stream, const efla_forward_args *a,
                           const forward_plan *plan) {
    CUresult result;
    if (ctx->work_recorded && stream != ctx->stream) {
        result = efla_cu->StreamWaitEvent(stream, ctx->work_done, 0);
        if (result != CUDA_SUCCESS) return efla_cuda_fail(result, "cuStreamWaitEvent");
    }
    efla_status status = EFLA_SUCCESS;
    if (plan->table) {
        const uint64_t bytes = (uint64_t)a->sequences * sizeof *plan->table;
        status = ensure_device(ctx, &ctx->table, &ctx->table_size, bytes, "sequence table");
        if (status != EFLA_SUCCESS) return status;
        result = efla_cu->MemcpyHtoDAsync(ctx->table, plan->table, (size_t)bytes, stream);
        if (result != CUDA_SUCCESS) return efla_cuda_fail(result, "uploading cu_seqlens");
    }
    efla_cuda_params params;
    fill_params(a, plan, plan->table ? ctx->table : 0, &params);
    const int dtype = dtype_code(a->storage);
    if (ctx->timer_start) {
        result = efla_cu->EventRecord(ctx->timer_start, stream);
        if (result != CUDA_SUCCESS) return efla_cuda_fail(result, "cuEventRecord");
    }
    if (plan->any_recurrent) status = launch_recurrent(ctx, stream, dtype, &params);
    if (status == EFLA_SUCCESS && plan->any_chunked)
        status = launch_chunked(ctx, stream, dtype, plan, &params);
    if (status != EFLA_SUCCESS) return status;
    if (ctx->timer_stop) {
        result = efla_cu->EventRecord(ctx->timer_stop, stream);
        if (result != CUDA_SUCCESS) return efla_cuda_fail(result, "cuEventRecord");
        ctx->timed = true;
    }
    result = efla_cu->EventRecord(ctx->work_done, stream);
    if (result != CUDA_SUCCESS) return efla_cuda_fail(result, "cuEventRecord");
    ctx->work_recorded = true;
    if (stream != ctx->stream) {
        /* Later work on the context's own stream waits for this forward. */
        result = efla_cu->StreamWaitEvent(ctx->stream, ctx->work_done, 0);
        if (result != CUDA_SUCCESS) return efla_cuda_fail(result, "cuStreamWaitEvent");
    }
    return EFLA_SUCCESS;
}

static efla_status run(efla_backend_context *ctx, CUstream stream, const efla_forward_args *a) {
    efla_status status = check_geometry(a);
    if (status != EFLA_SUCCESS) return status;
    forward_plan plan;
    status = make_plan(ctx, a, &plan);
    if (status != EFLA_SUCCESS) return status;
    status = efla_cuda_enter(ctx);
    if (status == EFLA_SUCCESS) {
        status = enqueue(ctx, stream, a, &plan);
        efla_cuda_leave(ctx);
    }
    release_plan(ctx, &plan);
    return status;
}

efla_status efla_cuda_forward(efla_backend_context *ctx, const efla_forward_args *args) {
    return run(ctx, ctx->stream, args);
}

efla_status efla_cuda_record(efla_backend_context *ctx, efla_native_kind kind,
                             const void *native_cmd, const efla_forward_args *args) {
    if (kind != EFLA_NATIVE_CUDA)
        return efla_error(EFLA_ERROR_INVALID_ARGUMENT, "not a CUDA stream");
    const efla_cuda_native_stream *native = native_cmd;
    return run(ctx, (CUstream)native->stream, args);
}

efla_status efla_cuda_forward_query(efla_backend_context *ctx, const efla_forward_args *args,
                                    efla_forward_plan *out) {
    forward_plan plan;
    efla_status status = make_plan(ctx, args, &plan);
    if (status != EFLA_SUCCESS) return status;
    out->algorithm = plan.any_recurrent && plan.any_chunked ? EFLA_ALGORITHM_AUTO
                     : plan.any_chunked                     ? EFLA_ALGORITHM_CHUNKED
                                                            : EFLA_ALGORITHM_RECURRENT;
    /* The chunked kernels' path when they run; the recurrent kernel is the
     * same on every path, so a recurrent-only call reports the context's. */
    const char *path =
        plan.any_chunked ? (plan.mma ? "mma" : "simt") : efla_cuda_path_name(ctx->path);
    snprintf(out->kernel_path, sizeof out->kernel_path, "%s", path);
    release_plan(ctx, &plan);
    return EFLA_SUCCESS;
}
