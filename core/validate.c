/*
 * Every rule of the forward operation, checked before any work. All index
 * arithmetic is 64-bit and overflow-checked; messages name the tensor and
 * the property that is wrong.
 */
#include "core/validate.h"

#include "core/error.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define EFLA_MAX_HEAD_DIM 256
#define KNOWN_FORWARD_FLAGS \
    (EFLA_FORWARD_L2NORM_Q | EFLA_FORWARD_L2NORM_K | EFLA_FORWARD_ALLOW_TF32)

typedef struct tensor_check {
    const char *name;
    const efla_tensor *tensor;
    efla_tensor_view *view;
    uint64_t first_byte, end_byte; /* [first, end) bytes touched; empty if equal */
} tensor_check;

static const char *shape_text(const int64_t *shape, uint32_t rank, char *buf, size_t size) {
    size_t used = (size_t)snprintf(buf, size, "[");
    for (uint32_t i = 0; i < rank && used < size; ++i)
        used += (size_t)snprintf(buf + used, size - used, "%s%lld", i ? "," : "",
                                 (long long)shape[i]);
    if (used < size) snprintf(buf + used, size - used, "]");
    return buf;
}

static bool mul_u64(uint64_t a, uint64_t b, uint64_t *out) {
    if (a && b > UINT64_MAX / a) return false;
    *out = a * b;
    return true;
}

static bool add_u64(uint64_t a, uint64_t b, uint64_t *out) {
    if (b > UINT64_MAX - a) return false;
    *out = a + b;
    return true;
}

/* Fills the view's strides (contiguous when all are zero) and byte range. */
static efla_status resolve_tensor(efla_context context, tensor_check *check, uint32_t rank) {
    const efla_tensor *t = check->tensor;
    efla_tensor_view *view = check->view;
    char shape_buf[128];
    if (t->buffer->context != context)
        return efla_error(EFLA_ERROR_BACKEND_MISMATCH,
                          "%s's buffer belongs to another context", check->name);
    size_t element = efla_dtype_size(t->dtype);
    if (!element)
        return efla_error(EFLA_ERROR_INVALID_TENSOR, "%s has an unknown dtype %d", check->name,
                          (int)t->dtype);
    if (t->rank != rank)
        return efla_error(EFLA_ERROR_INVALID_TENSOR, "%s has rank %u; it must have rank %u",
                          check->name, t->rank, rank);
    bool all_zero = true, empty = false;
    for (uint32_t i = 0; i < rank; ++i) {
        if (t->shape[i] < 0)
            return efla_error(EFLA_ERROR_INVALID_TENSOR, "%s has a negative dimension in shape %s",
                              check->name, shape_text(t->shape, rank, shape_buf, sizeof shape_buf));
        if (t->strides[i] < 0)
            return efla_error(EFLA_ERROR_INVALID_TENSOR,
                              "%s has negative stride %lld in dimension %u", check->name,
                              (long long)t->strides[i], i);
        all_zero &= t->strides[i] == 0;
        empty |= t->shape[i] == 0;
    }
    if (t->offset % element)
        return efla_error(EFLA_ERROR_INVALID_TENSOR,
                          "%s's byte offset %llu is not a multiple of its element size %zu",
                          check->name, (unsigned long long)t->offset, element);
    memset(view, 0, sizeof *view);
    view->buffer = t->buffer->impl;
    view->offset_elements = t->offset / element;
    view->dtype = t->dtype;
    uint64_t contiguous_stride = 1;
    for (uint32_t i = rank; i-- > 0;) {
        view->shape[i] = t->shape[i];
        view->strides[i] = all_zero ? (int64_t)contiguous_stride : t->strides[i];
        if (!mul_u64(contiguous_stride, (uint64_t)(t->shape[i] ? t->shape[i] : 1),
                     &contiguous_stride))
            return efla_error(EFLA_ERROR_INVALID_TENSOR, "%s's size overflows 64 bits",
                              check->name);
    }
    view->contiguous = true;
    uint64_t expect = 1, last_index = 0;
    for (uint32_t i = rank; i-- > 0;) {
        if (view->shape[i] > 1 && (uint64_t)view->strides[i] != expect) view->contiguous = false;
        uint64_t span;
        if (!mul_u64((uint64_t)(view->shape[i] ? view->shape[i] - 1 : 0),
                     (uint64_t)view->strides[i], &span) ||
            !add_u64(last_index, span, &last_index))
            return efla_error(EFLA_ERROR_INVALID_TENSOR, "%s's extent overflows 64 bits",
                              check->name);
        expect *= (uint64_t)(view->shape[i] ? view->shape[i] : 1);
    }
    check->first_byte = check->end_byte = t->offset;
    if (empty) return EFLA_SUCCESS;
    uint64_t end_bytes;
    if (!add_u64(last_index, 1, &last_index) || !mul_u64(last_index, element, &end_bytes) ||
        !add_u64(end_bytes, t->offset, &end_bytes))
        return efla_error(EFLA_ERROR_INVALID_TENSOR, "%s's extent overflows 64 bits", check->name);
    if (end_bytes > t->buffer->size)
        return efla_error(EFLA_ERROR_OUT_OF_BOUNDS,
                          "%s %s at byte offset %llu needs %llu bytes but its buffer has %llu",
                          check->name, shape_text(t->shape, rank, shape_buf, sizeof shape_buf),
                          (unsigned long long)t->offset, (unsigned long long)end_bytes,
                          (unsigned long long)t->buffer->size);
    check->end_byte = end_bytes;
    return EFLA_SUCCESS;
}

/* An output must not write one element twice: with its dimensions sorted
 * by stride, each stride must exceed the extent of the smaller ones. */
static efla_status check_no_self_overlap(const tensor_check *check, uint32_t rank) {
    const efla_tensor_view *view = check->view;
    uint32_t order[EFLA_MAX_RANK], n = 0;
    for (uint32_t i = 0; i < rank; ++i) {
        if (view->shape[i] == 0) return EFLA_SUCCESS;
        if (view->shape[i] > 1) order[n++] = i;
    }
    for (uint32_t i = 1; i < n; ++i)
        for (uint32_t j = i; j > 0 && view->strides[order[j]] < view->strides[order[j - 1]]; --j) {
            uint32_t swap = order[j];
            order[j] = order[j - 1];
            order[j - 1] = swap;
        }
    int64_t extent = 0; /* largest index reachable with the dims so far */
    for (uint32_t i = 0; i < n; ++i) {
        const int64_t stride = view->strides[order[i]];
        if (stride <= extent)
            return efla_error(EFLA_ERROR_OVERLAP,
                              "%s's strides make elements overlap (dimension %u has stride %lld)",
                              check->name, order[i], (long long)stride);
        extent += (view->shape[order[i]] - 1) * stride;
    }
    return EFLA_SUCCESS;
}

static bool ranges_overlap(const tensor_check *a, const tensor_check *b) {
    if (!a->tensor->buffer || !b->tensor->buffer || a->tensor->buffer != b->tensor->buffer)
        return false;
    if (a->first_byte == a->end_byte || b->first_byte == b->end_byte) return false;
    return a->first_byte < b->end_byte && b->first_byte < a->end_byte;
}

static bool same_view(const tensor_check *a, const tensor_check *b) {
    return a->tensor->buffer == b->tensor->buffer &&
           a->view->offset_elements == b->view->offset_elements &&
           memcmp(a->view->shape, b->view->shape, sizeof a->view->shape) == 0 &&
           memcmp(a->view->strides, b->view->strides, sizeof a->view->strides) == 0;
}

static efla_status check_desc_fields(const efla_forward_desc *desc) {
    if (desc->struct_size < sizeof *desc)
        return efla_error(EFLA_ERROR_INVALID_ARGUMENT,
                          "forward desc struct_size %u is smaller than %zu "
                          "(use EFLA_FORWARD_DESC_INIT)",
                          desc->struct_size, sizeof *desc);
    if (desc->next) return efla_error(EFLA_ERROR_INVALID_ARGUMENT, "forward desc next must be NULL");
    if (desc->mode != EFLA_MODE_EFLA && desc->mode != EFLA_MODE_DELTA)
        return efla_error(EFLA_ERROR_INVALID_ARGUMENT, "unknown mode %d", (int)desc->mode);
    if (!efla_algorithm_name(desc->algorithm))
        return efla_error(EFLA_ERROR_INVALID_ARGUMENT, "unknown algorithm %d",
                          (int)desc->algorithm);
    if (desc->flags & ~KNOWN_FORWARD_FLAGS)
        return efla_error(EFLA_ERROR_INVALID_ARGUMENT, "unknown forward flags 0x%x",
                          desc->flags & ~KNOWN_FORWARD_FLAGS);
    if (!isfinite(desc->scale))
        return efla_error(EFLA_ERROR_INVALID_ARGUMENT, "scale %g is not finite",
                          (double)desc->scale);
    const struct { const char *name; const efla_tensor *t; } required[] = {
        {"q", &desc->q}, {"k", &desc->k}, {"v", &desc->v}, {"beta", &desc->beta},
        {"out", &desc->out}};
    for (size_t i = 0; i < sizeof required / sizeof required[0]; ++i)
        if (!required[i].t->buffer)
            return efla_error(EFLA_ERROR_INVALID_ARGUMENT, "%s is required but has no buffer",
                              required[i].name);
    return EFLA_SUCCESS;
}

static efla_status check_storage_dtypes(const efla_forward_desc *desc) {
    efla_dtype storage = desc->q.dtype;
    if (storage != EFLA_DTYPE_F32 && storage != EFLA_DTYPE_F16 && storage != EFLA_DTYPE_BF16)
        return efla_error(EFLA_ERROR_INVALID_TENSOR,
                          "q has dtype %s; storage must be f32, f16 or bf16",
                          efla_dtype_name(storage) ? efla_dtype_name(storage) : "unknown");
    const struct { const char *name; efla_dtype dtype; } others[] = {
        {"k", desc->k.dtype}, {"v", desc->v.dtype}, {"beta", desc->beta.dtype},
        {"out", desc->out.dtype}};
    for (size_t i = 0; i < 4; ++i)
        if (others[i].dtype != storage)
            return efla_error(EFLA_ERROR_INVALID_TENSOR,
                              "%s has dtype %s but q has %s; q, k, v, beta and out must share "
                              "one storage dtype",
                              others[i].name,
                              efla_dtype_name(others[i].dtype) ? efla_dtype_name(others[i].dtype)
                                                                : "unknown",
                              efla_dtype_name(storage));
    const struct { const char *name; const efla_tensor *t; } states[] = {
        {"initial_state", &desc->initial_state}, {"final_state", &desc->final_state}};
    for (size_t i = 0; i < 2; ++i)
        if (states[i].t->buffer && states[i].t->dtype != EFLA_DTYPE_F32)
            return efla_error(EFLA_ERROR_INVALID_TENSOR, "%s has dtype %s; states are f32",
                              states[i].name,
                              efla_dtype_name(states[i].t->dtype) ? efla_dtype_name(states[i].t->dtype)
                                                                   : "unknown");
    return EFLA_SUCCESS;
}

static efla_status expect_shape(const char *name, const efla_tensor_view *view, uint32_t rank,
                                const int64_t *expected, const char *why) {
    if (memcmp(view->shape, expected, rank * sizeof *expected) == 0) return EFLA_SUCCESS;
    char got[128], want[128];
    return efla_error(EFLA_ERROR_INVALID_TENSOR, "%s has shape %s but %s requires %s", name,
                      shape_text(view->shape, rank, got, sizeof got), why,
                      shape_text(expected, rank, want, sizeof want));
}

static efla_status check_shapes(efla_forward_args *a) {
    const int64_t *q = a->q.shape;
    a->batch = q[0];
    a->tokens = q[1];
    a->heads = q[2];
    a->dk = q[3];
    a->value_heads = a->v.shape[2];
    a->dv = a->v.shape[3];
    efla_status s = expect_shape("k", &a->k, 4, q, "q's shape [B,T,H,Dk]");
    if (s) return s;
    if (a->heads < 1)
        return efla_error(EFLA_ERROR_INVALID_TENSOR, "q has H=0 heads; at least one is required");
    if (a->dk < 1 || a->dk > EFLA_MAX_HEAD_DIM)
        return efla_error(EFLA_ERROR_INVALID_TENSOR, "q has Dk=%lld; Dk must be 1..%d",
                          (long long)a->dk, EFLA_MAX_HEAD_DIM);
    if (a->v.shape[0] != a->batch || a->v.shape[1] != a->tokens)
        return efla_error(EFLA_ERROR_INVALID_TENSOR,
                          "v has B=%lld, T=%lld but q has B=%lld, T=%lld", (long long)a->v.shape[0],
                          (long long)a->v.shape[1], (long long)a->batch, (long long)a->tokens);
    if (a->dv < 1 || a->dv > EFLA_MAX_HEAD_DIM)
        return efla_error(EFLA_ERROR_INVALID_TENSOR, "v has Dv=%lld; Dv must be 1..%d",
                          (long long)a->dv, EFLA_MAX_HEAD_DIM);
    if (a->value_heads < 1 || a->value_heads % a->heads)
        return efla_error(EFLA_ERROR_INVALID_TENSOR,
                          "v has HV=%lld value heads, which is not a positive multiple of q's "
                          "H=%lld heads",
                          (long long)a->value_heads, (long long)a->heads);
    const int64_t beta_shape[3] = {a->batch, a->tokens, a->value_heads};
    s = expect_shape("beta", &a->beta, 3, beta_shape, "[B,T,HV] from q and v");
    if (s) return s;
    return expect_shape("out", &a->out, 4, a->v.shape, "v's shape [B,T,HV,Dv]");
}

static efla_status load_seqlens(efla_context context, const efla_forward_desc *desc,
                                efla_forward_args *a, int64_t **out_seqlens) {
    *out_seqlens = NULL;
    a->cu_seqlens = NULL;
    a->sequences = a->batch;
    if (!desc->cu_seqlens) {
        if (desc->num_sequences != 0)
            return efla_error(EFLA_ERROR_INVALID_ARGUMENT,
                              "num_sequences is %lld but cu_seqlens is NULL",
                              (long long)desc->num_sequences);
        return EFLA_SUCCESS;
    }
    if (desc->cu_seqlens_dtype != EFLA_DTYPE_I32 && desc->cu_seqlens_dtype != EFLA_DTYPE_I64)
        return efla_error(EFLA_ERROR_INVALID_ARGUMENT, "cu_seqlens dtype must be i32 or i64");
    if (desc->num_sequences < 0 || (uint64_t)desc->num_sequences > SIZE_MAX / 8 - 1)
        return efla_error(EFLA_ERROR_INVALID_ARGUMENT, "num_sequences %lld is out of range",
                          (long long)desc->num_sequences);
    if (a->batch != 1)
        return efla_error(EFLA_ERROR_INVALID_TENSOR,
                          "cu_seqlens requires B = 1, but q has B=%lld", (long long)a->batch);
    const int64_t n = desc->num_sequences;
    int64_t *offsets = efla_host_alloc(&context->allocator, (size_t)(n + 1) * sizeof *offsets);
    if (!offsets) return efla_error(EFLA_ERROR_OUT_OF_HOST_MEMORY, "out of host memory");
    for (int64_t i = 0; i <= n; ++i) {
        offsets[i] = desc->cu_seqlens_dtype == EFLA_DTYPE_I32
                         ? ((const int32_t *)desc->cu_seqlens)[i]
                         : ((const int64_t *)desc->cu_seqlens)[i];
        const char *problem = NULL;
        if (i == 0 && offsets[0] != 0) problem = "must start at 0";
        else if (i > 0 && offsets[i] < offsets[i - 1]) problem = "must not decrease";
        else if (i == n && offsets[i] != a->tokens) problem = "must end at T";
        if (problem) {
            const long long value = (long long)offsets[i];
            efla_host_free(&context->allocator, offsets);
            return efla_error(EFLA_ERROR_INVALID_ARGUMENT,
                              "cu_seqlens %s: entry %lld is %lld (T=%lld)", problem, (long long)i,
                              value, (long long)a->tokens);
        }
    }
    a->sequences = n;
    a->cu_seqlens = offsets;
    *out_seqlens = offsets;
    return EFLA_SUCCESS;
}

static efla_status check_states(tensor_check *checks, efla_forward_args *a) {
    const int64_t state_shape[4] = {a->sequences, a->value_heads, a->dk, a->dv};
    efla_status s = EFLA_SUCCESS;
    if (a->initial_state.buffer)
        s = expect_shape("initial_state", &a->initial_state, 4, state_shape,
                         "[N,HV,Dk,Dv] from the inputs");
    if (!s && a->final_state.buffer)
        s = expect_shape("final_state", &a->final_state, 4, state_shape,
                         "[N,HV,Dk,Dv] from the inputs");
    (void)checks;
    return s;
}

/* Outputs never overlap inputs or each other; the one allowed alias is
 * final_state being exactly initial_state. Index order follows `checks`:
 * q, k, v, beta, initial_state, out, final_state. */
static efla_status check_overlaps(tensor_check *checks, efla_forward_args *a) {
    enum { FIRST_OUTPUT = 5, COUNT = 7, INITIAL = 4, FINAL = 6 };
    for (int o = FIRST_OUTPUT; o < COUNT; ++o) {
        if (!checks[o].tensor->buffer) continue;
        efla_status s = check_no_self_overlap(&checks[o], 4);
        if (s) return s;
        for (int other = 0; other < COUNT; ++other) {
            if (other == o || (other >= FIRST_OUTPUT && other < o)) continue;
            if (o == FINAL && other == INITIAL && checks[INITIAL].tensor->buffer &&
                same_view(&checks[o], &checks[INITIAL])) {
                a->state_in_place = true;
                continue;
            }
            if (ranges_overlap(&checks[o], &checks[other]))
                return efla_error(EFLA_ERROR_OVERLAP,
                                  "%s overlaps %s in the same buffer%s", checks[o].name,
                                  checks[other].name,
                                  o == FINAL && other == INITIAL
                                      ? " (in-place needs the very same offset, shape and strides)"
                                      : "");
        }
    }
    return EFLA_SUCCESS;
}

efla_status efla_forward_validate(efla_context context, const efla_forward_desc *desc,
                                  efla_forward_args *a, int64_t **out_seqlens) {
    *out_seqlens = NULL;
    if (!context) return efla_error(EFLA_ERROR_INVALID_ARGUMENT, "context is NULL");
    if (!desc) return efla_error(EFLA_ERROR_INVALID_ARGUMENT, "forward desc is NULL");
    efla_status s = check_desc_fields(desc);
    if (s) return s;
    memset(a, 0, sizeof *a);
    tensor_check checks[7] = {
        {"q", &desc->q, &a->q, 0, 0},
        {"k", &desc->k, &a->k, 0, 0},
        {"v", &desc->v, &a->v, 0, 0},
        {"beta", &desc->beta, &a->beta, 0, 0},
        {"initial_state", &desc->initial_state, &a->initial_state, 0, 0},
        {"out", &desc->out, &a->out, 0, 0},
        {"final_state", &desc->final_state, &a->final_state, 0, 0},
    };
    static const uint32_t ranks[7] = {4, 4, 4, 3, 4, 4, 4};
    for (int i = 0; i < 7; ++i) {
        if (!checks[i].tensor->buffer) continue;
        s = resolve_tensor(context, &checks[i], ranks[i]);
        if (s) return s;
    }
    if ((s = check_storage_dtypes(desc)) || (s = check_shapes(a))) return s;
    if ((s = load_seqlens(context, desc, a, out_seqlens))) return s;
    if ((s = check_states(checks, a)) || (s = check_overlaps(checks, a))) {
        efla_forward_args_release(context, *out_seqlens);
        *out_seqlens = NULL;
        return s;
    }
    a->storage = desc->q.dtype;
    a->scale = desc->scale != 0.0f ? desc->scale : 1.0f / sqrtf((float)a->dk);
    a->mode = desc->mode;
    a->algorithm = desc->algorithm;
    a->l2norm_q = (desc->flags & EFLA_FORWARD_L2NORM_Q) != 0;
    a->l2norm_k = (desc->flags & EFLA_FORWARD_L2NORM_K) != 0;
    a->allow_tf32 = (desc->flags & EFLA_FORWARD_ALLOW_TF32) != 0;
    return EFLA_SUCCESS;
}

void efla_forward_args_release(efla_context context, int64_t *seqlens) {
    if (seqlens) efla_host_free(&context->allocator, seqlens);
}
