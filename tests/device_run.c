#include "device_run.h"

#include "storage.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { T_Q, T_K, T_V, T_BETA, T_OUT, T_S0, T_ST, TENSOR_COUNT };
enum { MAX_SLOTS = TENSOR_COUNT, TAIL_BYTES = 64 };

/* Where one tensor lives: which buffer, at which byte offset, with which
 * element strides; `implicit` passes all-zero strides (C-contiguous). */
typedef struct placement {
    bool present;
    int slot;
    uint64_t offset;
    efla_dtype dtype;
    uint32_t rank;
    int64_t shape[4];
    int64_t strides[4];
    bool implicit;
} placement;

typedef struct device_layout {
    placement tensors[TENSOR_COUNT];
    int slot_count;
    uint64_t slot_size[MAX_SLOTS];
} device_layout;

const char *layout_name(layout_kind layout) {
    switch (layout) {
    case LAYOUT_CONTIGUOUS: return "contiguous";
    case LAYOUT_STRIDED: return "strided";
    case LAYOUT_SHARED: return "shared-buffer";
    }
    return "?";
}

static void set_shape(placement *t, efla_dtype dtype, uint32_t rank, int64_t d0, int64_t d1,
                      int64_t d2, int64_t d3) {
    t->present = true;
    t->dtype = dtype;
    t->rank = rank;
    const int64_t dims[4] = {d0, d1, d2, d3};
    memcpy(t->shape, dims, sizeof dims);
}

/* Strides of a tensor stored with its dimensions in `order` (outermost
 * first) and `pad` extra elements on the innermost stored dimension. */
static void strides_from_order(placement *t, const int *order, int64_t pad) {
    int64_t stride = 1;
    for (uint32_t i = t->rank; i-- > 0;) {
        const int d = order[i];
        t->strides[d] = stride;
        const int64_t extent = t->shape[d] + (i == t->rank - 1 ? pad : 0);
        stride *= extent > 0 ? extent : 1;
    }
}

static uint64_t element_size(efla_dtype dtype) { return dtype == EFLA_DTYPE_F32 ? 4 : 2; }

/* One past the last byte the tensor can touch (its offset when empty). */
static uint64_t end_byte(const placement *t) {
    uint64_t last = 0;
    for (uint32_t i = 0; i < t->rank; ++i) {
        if (t->shape[i] == 0) return t->offset;
        last += (uint64_t)((t->shape[i] - 1) * t->strides[i]);
    }
    return t->offset + (last + 1) * element_size(t->dtype);
}

static void describe_tensors(const problem *p, const run_options *o, device_layout *l) {
    placement *t = l->tensors;
    set_shape(&t[T_Q], p->dtype, 4, p->B, p->T, p->H, p->Dk);
    set_shape(&t[T_K], p->dtype, 4, p->B, p->T, p->H, p->Dk);
    set_shape(&t[T_V], p->dtype, 4, p->B, p->T, p->HV, p->Dv);
    set_shape(&t[T_BETA], p->dtype, 3, p->B, p->T, p->HV, 0);
    set_shape(&t[T_OUT], p->dtype, 4, p->B, p->T, p->HV, p->Dv);
    if (p->initial_state) set_shape(&t[T_S0], EFLA_DTYPE_F32, 4, p->N, p->HV, p->Dk, p->Dv);
    if (!o->no_final_state) set_shape(&t[T_ST], EFLA_DTYPE_F32, 4, p->N, p->HV, p->Dk, p->Dv);
}

static void place_contiguous(device_layout *l) {
    static const int order[4] = {0, 1, 2, 3};
    int slot = 0;
    for (int i = 0; i < TENSOR_COUNT; ++i) {
        placement *t = &l->tensors[i];
        if (!t->present) continue;
        t->slot = slot++;
        strides_from_order(t, order, 0);
        t->implicit = i == T_Q || i == T_V || i == T_OUT || i == T_S0;
    }
}

static void place_strided(device_layout *l) {
    static const struct {
        int order[4];
        int64_t pad, offset_elements;
    } views[TENSOR_COUNT] = {
        [T_Q] = {{0, 1, 2, 3}, 3, 5},   /* inside a [B,T,H,Dk+3] tensor */
        [T_K] = {{0, 2, 1, 3}, 1, 0},   /* head-major [B,H,T,Dk+1] */
        [T_V] = {{0, 2, 3, 1}, 2, 1},   /* transposed [B,HV,Dv,T+2] */
        [T_BETA] = {{0, 2, 1}, 1, 3},   /* [B,HV,T+1] */
        [T_OUT] = {{0, 1, 2, 3}, 2, 7}, /* inside [B,T,HV,Dv+2] */
        [T_S0] = {{0, 1, 3, 2}, 0, 2},  /* transposed [N,HV,Dv,Dk] */
        [T_ST] = {{0, 1, 2, 3}, 1, 0},  /* inside [N,HV,Dk,Dv+1] */
    };
    int slot = 0;
    for (int i = 0; i < TENSOR_COUNT; ++i) {
        placement *t = &l->tensors[i];
        if (!t->present) continue;
        t->slot = slot++;
        strides_from_order(t, views[i].order, views[i].pad);
        t->offset = (uint64_t)views[i].offset_elements * element_size(t->dtype);
    }
}

static void place_shared(device_layout *l) {
    static const int order[4] = {0, 1, 2, 3};
    uint64_t cursor = 0;
    for (int i = 0; i < TENSOR_COUNT; ++i) {
        placement *t = &l->tensors[i];
        if (!t->present) continue;
        const uint64_t size = element_size(t->dtype);
        t->slot = 0;
        strides_from_order(t, order, 0);
        cursor = (cursor + size - 1) / size * size + 3 * size; /* a gap; not 16-byte aligned */
        t->offset = cursor;
        cursor = end_byte(t);
    }
}

static void plan_layout(const problem *p, const run_options *o, device_layout *l) {
    memset(l, 0, sizeof *l);
    describe_tensors(p, o, l);
    if (o->layout == LAYOUT_STRIDED)
        place_strided(l);
    else if (o->layout == LAYOUT_SHARED)
        place_shared(l);
    else
        place_contiguous(l);
    if (o->in_place) {
        l->tensors[T_ST] = l->tensors[T_S0];
        l->tensors[T_ST].present = true;
    }
    for (int i = 0; i < TENSOR_COUNT; ++i) {
        const placement *t = &l->tensors[i];
        if (!t->present) continue;
        if (t->slot + 1 > l->slot_count) l->slot_count = t->slot + 1;
        const uint64_t end = end_byte(t) + TAIL_BYTES;
        if (end > l->slot_size[t->slot]) l->slot_size[t->slot] = end;
    }
}

/* Calls visit(byte offset, logical index) for every element, in logical order. */
typedef void (*element_fn)(void *ctx, uint64_t byte, int64_t logical);

static void for_each_element(const placement *t, element_fn visit, void *ctx) {
    int64_t shape[4] = {1, 1, 1, 1}, strides[4] = {0, 0, 0, 0};
    for (uint32_t i = 0; i < t->rank; ++i)
        shape[4 - t->rank + i] = t->shape[i];
    for (uint32_t i = 0; i < t->rank; ++i)
        strides[4 - t->rank + i] = t->strides[i];
    const uint64_t size = element_size(t->dtype);
    int64_t logical = 0;
    for (int64_t a = 0; a < shape[0]; ++a)
        for (int64_t b = 0; b < shape[1]; ++b)
            for (int64_t c = 0; c < shape[2]; ++c)
                for (int64_t d = 0; d < shape[3]; ++d) {
                    const int64_t index =
                        a * strides[0] + b * strides[1] + c * strides[2] + d * strides[3];
                    visit(ctx, t->offset + (uint64_t)index * size, logical++);
                }
}

typedef struct element_io {
    unsigned char *image;
    efla_dtype dtype;
    double *values;
    unsigned char *written; /* output footprint marks, or NULL */
} element_io;

static void encode_element(void *opaque, uint64_t byte, int64_t logical) {
    element_io *io = opaque;
    storage_encode(io->dtype, io->values[logical], io->image + byte);
}

static void decode_element(void *opaque, uint64_t byte, int64_t logical) {
    element_io *io = opaque;
    io->values[logical] = storage_decode(io->dtype, io->image + byte);
    memset(io->written + byte, 1, element_size(io->dtype));
}

typedef struct device_state {
    device_layout layout;
    unsigned char *images[MAX_SLOTS];   /* what was uploaded */
    unsigned char *readback[MAX_SLOTS]; /* what came back */
    efla_buffer buffers[MAX_SLOTS];
    int32_t *cu32;
} device_state;

static bool fail(run_result *r, efla_status status, const char *call) {
    r->status = status;
    snprintf(r->error, sizeof r->error, "%s failed: %s: %s", call, efla_status_string(status),
             efla_last_error_message());
    return false;
}

static bool upload_inputs(efla_context context, const problem *p, device_state *s, run_result *r) {
    double *inputs[TENSOR_COUNT] = {p->q, p->k, p->v, p->beta, NULL, p->initial_state, NULL};
    for (int i = 0; i < s->layout.slot_count; ++i) {
        s->images[i] = malloc(s->layout.slot_size[i]);
        s->readback[i] = malloc(s->layout.slot_size[i]);
        memset(s->images[i], 0xff, s->layout.slot_size[i]); /* NaN in every float dtype */
    }
    for (int i = 0; i < TENSOR_COUNT; ++i) {
        const placement *t = &s->layout.tensors[i];
        if (!t->present || !inputs[i]) continue;
        element_io io = {s->images[t->slot], t->dtype, inputs[i], NULL};
        for_each_element(t, encode_element, &io);
    }
    for (int i = 0; i < s->layout.slot_count; ++i) {
        efla_status status = efla_buffer_create(context, s->layout.slot_size[i], &s->buffers[i]);
        if (status) return fail(r, status, "efla_buffer_create");
        status = efla_buffer_upload(s->buffers[i], 0, s->images[i], s->layout.slot_size[i]);
        if (status) return fail(r, status, "efla_buffer_upload");
    }
    return true;
}

static efla_tensor tensor_of(const device_state *s, int which) {
    const placement *t = &s->layout.tensors[which];
    efla_tensor tensor;
    memset(&tensor, 0, sizeof tensor);
    if (!t->present) return tensor;
    tensor.buffer = s->buffers[t->slot];
    tensor.offset = t->offset;
    tensor.dtype = t->dtype;
    tensor.rank = t->rank;
    memcpy(tensor.shape, t->shape, sizeof tensor.shape);
    if (!t->implicit) memcpy(tensor.strides, t->strides, sizeof tensor.strides);
    return tensor;
}

static efla_forward_desc build_desc(const problem *p, const run_options *o, device_state *s) {
    efla_forward_desc desc = EFLA_FORWARD_DESC_INIT;
    desc.q = tensor_of(s, T_Q);
    desc.k = tensor_of(s, T_K);
    desc.v = tensor_of(s, T_V);
    desc.beta = tensor_of(s, T_BETA);
    desc.out = tensor_of(s, T_OUT);
    desc.initial_state = tensor_of(s, T_S0);
    desc.final_state = tensor_of(s, T_ST);
    if (p->cu_seqlens) {
        desc.num_sequences = p->N;
        if (o->cu_dtype == EFLA_DTYPE_I32) {
            s->cu32 = malloc(sizeof *s->cu32 * (size_t)(p->N + 1));
            for (int64_t i = 0; i <= p->N; ++i)
                s->cu32[i] = (int32_t)p->cu_seqlens[i];
            desc.cu_seqlens = s->cu32;
            desc.cu_seqlens_dtype = EFLA_DTYPE_I32;
        } else {
            desc.cu_seqlens = p->cu_seqlens;
            desc.cu_seqlens_dtype = EFLA_DTYPE_I64;
        }
    }
    desc.scale = p->spec.scale;
    desc.mode = p->spec.mode;
    desc.algorithm = o->algorithm;
    desc.flags = p->spec.flags;
    return desc;
}

/* Decodes the outputs and checks every other byte is as uploaded. */
static bool read_outputs(const problem *p, device_state *s, run_result *r) {
    unsigned char *written[MAX_SLOTS];
    for (int i = 0; i < s->layout.slot_count; ++i)
        written[i] = calloc(1, s->layout.slot_size[i]);
    r->out = calloc((size_t)(problem_v_count(p) + 1), sizeof(double));
    const placement *out = &s->layout.tensors[T_OUT], *final = &s->layout.tensors[T_ST];
    element_io io = {s->readback[out->slot], out->dtype, r->out, written[out->slot]};
    for_each_element(out, decode_element, &io);
    if (final->present) {
        r->final_state = calloc((size_t)(problem_state_count(p) + 1), sizeof(double));
        element_io state_io = {s->readback[final->slot], EFLA_DTYPE_F32, r->final_state,
                               written[final->slot]};
        for_each_element(final, decode_element, &state_io);
    }
    for (int i = 0; i < s->layout.slot_count && !r->stray_writes; ++i)
        for (uint64_t b = 0; b < s->layout.slot_size[i]; ++b) {
            if (written[i][b] || s->readback[i][b] == s->images[i][b]) continue;
            r->stray_writes = true;
            snprintf(r->error, sizeof r->error,
                     "byte %llu of buffer %d changed although no output covers it",
                     (unsigned long long)b, i);
            break;
        }
    for (int i = 0; i < s->layout.slot_count; ++i)
        free(written[i]);
    return !r->stray_writes;
}

static bool run_forward(efla_context context, const problem *p, const run_options *o,
                        device_state *s, run_result *r) {
    efla_forward_desc desc = build_desc(p, o, s);
    efla_forward_plan plan = EFLA_FORWARD_PLAN_INIT;
    efla_status status = efla_forward_query(context, &desc, &plan);
    if (status) return fail(r, status, "efla_forward_query");
    r->plan = plan;
    if ((status = efla_forward(context, &desc))) return fail(r, status, "efla_forward");
    if ((status = efla_context_synchronize(context)))
        return fail(r, status, "efla_context_synchronize");
    for (int i = 0; i < s->layout.slot_count; ++i) {
        status = efla_buffer_download(s->buffers[i], 0, s->readback[i], s->layout.slot_size[i]);
        if (status) return fail(r, status, "efla_buffer_download");
    }
    return read_outputs(p, s, r);
}

bool device_run(efla_context context, const problem *p, const run_options *options, run_result *r) {
    memset(r, 0, sizeof *r);
    device_state s;
    memset(&s, 0, sizeof s);
    plan_layout(p, options, &s.layout);
    bool ok = upload_inputs(context, p, &s, r) && run_forward(context, p, options, &s, r);
    for (int i = 0; i < s.layout.slot_count; ++i) {
        efla_buffer_destroy(s.buffers[i]);
        free(s.images[i]);
        free(s.readback[i]);
    }
    free(s.cu32);
    return ok;
}

void run_result_free(run_result *r) {
    free(r->out);
    free(r->final_state);
    r->out = r->final_state = NULL;
}
