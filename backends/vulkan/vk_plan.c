/* Planning rounds, pieces, windows and dispatches (see vk_plan.h). */
#include "backends/vulkan/vk_plan.h"

#include "backends/vulkan/vk_tiles.h"
#include "core/context.h"
#include "core/error.h"

#include <string.h>

#define ENTRY_READ_STATE 1u
#define ENTRY_WRITE_STATE 2u
#define FLAG_L2NORM_Q 1u
#define FLAG_L2NORM_K 2u
#define FLAG_DELTA 4u
#define BLOB_ALIGNMENT 256u

/* Mirrors of the shader-side blocks in shaders/vulkan/efla_common.glsl. */
typedef struct view_params {
    uint32_t base, s0, s1, s2, s3;
} view_params;

typedef struct piece_params {
    view_params q, k, v, beta, out, state_in, state_out;
    uint32_t dk, dv, group, hv_base, flags;
    float scale;
    uint32_t dv_stride, hv_count, w_base, u_base, a_base, f_base, h_base;
} piece_params;
_Static_assert(sizeof(piece_params) == 192, "matches ParamBlock in efla_common.glsl");
#define PARAMS_RANGE 192u

typedef struct entry {
    uint32_t batch_row, first, count, state_row, flags, chunk_base, state_out_row, pad1;
} entry;
_Static_assert(sizeof(entry) == 32, "matches Entry in efla_common.glsl");

/* Element index range of one tensor; empty when lo > hi. */
typedef struct span {
    int64_t lo, hi;
} span;

enum { T_Q, T_K, T_V, T_BETA, T_OUT, T_SIN, T_SOUT, T_COUNT };

/* One sequence segment of the current round. */
typedef struct segment {
    int64_t batch_row, first, count, sequence;
    uint64_t chunks;
    uint32_t flags;
} segment;

typedef struct piece {
    uint32_t first, end; /* segments [first, end) */
    int64_t h0, h1;      /* value heads [h0, h1) */
    span spans[T_COUNT];
    uint64_t chunks;
} piece;

typedef struct planner {
    const efla_forward_args *a;
    const efla_vk_limits *limits;
    efla_vk_plan *plan;
    efla_vk_tiles tiles;
    uint64_t segment_chunks; /* 0: whole sequences */
    const efla_tensor_view *views[T_COUNT];
    efla_tensor_view carrier; /* scratch state between rounds */
    bool use_carrier;
    uint32_t alignment;
    uint64_t cursor[EFLA_VK_REGION_COUNT];
    uint64_t region_size[EFLA_VK_REGION_COUNT];
    segment *segments;
    uint32_t segment_count, segment_capacity;
    /* Scan, then output dispatches, appended after the round's preps. */
    efla_vk_dispatch *deferred[2];
    uint32_t deferred_count[2], deferred_capacity[2];
    bool need_split; /* a single segment of one head does not fit a binding */
} planner;

static uint64_t align_up(uint64_t value, uint64_t alignment) {
    return (value + alignment - 1) / alignment * alignment;
}

static efla_status grow(const efla_allocator *host, void **array, uint32_t *capacity,
                        uint32_t needed, size_t element) {
    if (needed <= *capacity) return EFLA_SUCCESS;
    uint32_t next = *capacity ? *capacity * 2 : 16;
    while (next < needed)
        next *= 2;
    void *bigger = efla_host_alloc(host, (size_t)next * element);
    if (!bigger) return efla_error(EFLA_ERROR_OUT_OF_HOST_MEMORY, "out of host memory");
    if (*array) memcpy(bigger, *array, (size_t)*capacity * element);
    efla_host_free(host, *array);
    *array = bigger;
    *capacity = next;
    return EFLA_SUCCESS;
}

/* Appends `size` bytes at an aligned offset of the blob; returns the offset. */
static efla_status blob_append(efla_vk_plan *plan, const void *data, uint64_t size,
                               uint64_t *offset) {
    uint64_t start = align_up(plan->blob_size, BLOB_ALIGNMENT);
    if (start + size > plan->blob_capacity) {
        uint64_t capacity = plan->blob_capacity ? plan->blob_capacity * 2 : 4096;
        while (capacity < start + size)
            capacity *= 2;
        uint8_t *bigger = efla_host_alloc(plan->host, (size_t)capacity);
        if (!bigger) return efla_error(EFLA_ERROR_OUT_OF_HOST_MEMORY, "out of host memory");
        if (plan->blob) memcpy(bigger, plan->blob, (size_t)plan->blob_size);
        efla_host_free(plan->host, plan->blob);
        plan->blob = bigger;
        plan->blob_capacity = capacity;
    }
    memset(plan->blob + plan->blob_size, 0, (size_t)(start - plan->blob_size));
    memcpy(plan->blob + start, data, (size_t)size);
    plan->blob_size = start + size;
    *offset = start;
    return EFLA_SUCCESS;
}

/* ------------------------------------------------------------------ */
/* Spans and windows                                                   */
/* ------------------------------------------------------------------ */

static void span_include(span *s, const efla_tensor_view *view, const int64_t *lo,
                         const int64_t *hi, int rank) {
    int64_t first = (int64_t)view->offset_elements, last = first;
    for (int d = 0; d < rank; ++d) {
        first += lo[d] * view->strides[d];
        last += hi[d] * view->strides[d];
    }
    if (s->lo > s->hi) {
        s->lo = first;
        s->hi = last;
        return;
    }
    if (first < s->lo) s->lo = first;
    if (last > s->hi) s->hi = last;
}

static void spans_add_segment(const planner *p, const segment *s, int64_t h0, int64_t h1,
                              span *spans) {
    const efla_forward_args *a = p->a;
    const int64_t group = a->value_heads / a->heads;
    if (s->count > 0) {
        int64_t last = s->first + s->count - 1;
        int64_t qlo[4] = {s->batch_row, s->first, h0 / group, 0};
        int64_t qhi[4] = {s->batch_row, last, (h1 - 1) / group, a->dk - 1};
        int64_t vlo[4] = {s->batch_row, s->first, h0, 0};
        int64_t vhi[4] = {s->batch_row, last, h1 - 1, a->dv - 1};
        span_include(&spans[T_Q], &a->q, qlo, qhi, 4);
        span_include(&spans[T_K], &a->k, qlo, qhi, 4);
        span_include(&spans[T_V], &a->v, vlo, vhi, 4);
        span_include(&spans[T_BETA], &a->beta, vlo, vhi, 3);
        span_include(&spans[T_OUT], &a->out, vlo, vhi, 4);
    }
    int64_t slo[4] = {s->sequence, h0, 0, 0};
    int64_t shi[4] = {s->sequence, h1 - 1, a->dk - 1, a->dv - 1};
    if ((s->flags & ENTRY_READ_STATE) && p->views[T_SIN])
        span_include(&spans[T_SIN], p->views[T_SIN], slo, shi, 4);
    if ((s->flags & ENTRY_WRITE_STATE) && p->views[T_SOUT])
        span_include(&spans[T_SOUT], p->views[T_SOUT], slo, shi, 4);
}

/* The window a span binds, and the view's element base within it. */
static void make_window(const planner *p, int tensor, span s, efla_vk_window *w, view_params *vp) {
    const efla_tensor_view *view = p->views[tensor];
    memset(w, 0, sizeof *w);
    memset(vp, 0, sizeof *vp);
    w->write = tensor == T_OUT || tensor == T_SOUT;
    if (!view || s.lo > s.hi) return; /* dummy */
    uint64_t element = efla_dtype_size(view->dtype);
    uint64_t base = 0, extent = UINT64_MAX;
    if (view == &p->carrier) {
        w->source = EFLA_VK_SOURCE_SCRATCH;
        w->region = EFLA_VK_REGION_CARRIER;
    } else {
        w->source = EFLA_VK_SOURCE_TENSOR;
        w->buffer = view->buffer->buffer;
        base = view->buffer->base;
        extent = view->buffer->extent;
    }
    uint64_t start = base + (uint64_t)s.lo * element, end = base + (uint64_t)(s.hi + 1) * element;
    w->offset = start / p->alignment * p->alignment;
    end = align_up(end, 4);
    w->range = (end < extent ? end : extent) - w->offset;
    int64_t origin = (int64_t)(base + view->offset_elements * element) - (int64_t)w->offset;
    vp->base = (uint32_t)(uint64_t)(origin / (int64_t)element);
    int rank = tensor == T_BETA ? 3 : 4;
    uint32_t *strides = &vp->s0;
    for (int d = 0; d < rank; ++d)
        strides[d] = view->shape[d] > 1 ? (uint32_t)(uint64_t)view->strides[d] : 0;
}

static bool window_fits(const planner *p, int tensor, span s) {
    efla_vk_window w;
    view_params vp;
    make_window(p, tensor, s, &w, &vp);
    return w.source == EFLA_VK_SOURCE_DUMMY || w.range <= p->limits->storage_range;
}

static bool piece_fits(const planner *p, const piece *pc, bool chunked) {
    uint64_t heads = (uint64_t)(pc->h1 - pc->h0);
    if (heads > p->limits->max_groups[1]) return false;
    for (int t = 0; t < T_COUNT; ++t)
        if (!window_fits(p, t, pc->spans[t])) return false;
    if (!chunked) return true;
    for (int r = 0; r < EFLA_VK_SCRATCH_REGIONS; ++r)
        if (pc->chunks * heads * p->tiles.chunk_bytes[r] > p->limits->storage_range) return false;
    return true;
}

/* ------------------------------------------------------------------ */
/* Emitting a piece                                                    */
/* ------------------------------------------------------------------ */

/* Appends to the plan (list -1) or to deferred list `list`. */
static efla_status push_dispatch(planner *p, const efla_vk_dispatch *d, int list) {
    efla_vk_plan *plan = p->plan;
    efla_vk_dispatch **array = list >= 0 ? &p->deferred[list] : &plan->dispatches;
    uint32_t *count = list >= 0 ? &p->deferred_count[list] : &plan->dispatch_count;
    uint32_t *capacity = list >= 0 ? &p->deferred_capacity[list] : &plan->dispatch_capacity;
    efla_status status = grow(plan->host, (void **)array, capacity, *count + 1, sizeof **array);
    if (status != EFLA_SUCCESS) return status;
    (*array)[(*count)++] = *d;
    return EFLA_SUCCESS;
}

static uint32_t forward_flags(const efla_forward_args *a) {
    return (a->l2norm_q ? FLAG_L2NORM_Q : 0) | (a->l2norm_k ? FLAG_L2NORM_K : 0) |
           (a->mode == EFLA_MODE_DELTA ? FLAG_DELTA : 0);
}

/* Parameter block and windows of the seven tensors for a piece. */
static void piece_windows(const planner *p, const piece *pc, piece_params *params,
                          efla_vk_window *windows) {
    const efla_forward_args *a = p->a;
    memset(params, 0, sizeof *params);
    view_params *views[T_COUNT] = {&params->q,        &params->k,   &params->v,
                                   &params->beta,     &params->out, &params->state_in,
                                   &params->state_out};
    for (int t = 0; t < T_COUNT; ++t)
        make_window(p, t, pc->spans[t], &windows[t], views[t]);
    params->dk = (uint32_t)a->dk;
    params->dv = (uint32_t)a->dv;
    params->group = (uint32_t)(a->value_heads / a->heads);
    params->hv_base = (uint32_t)pc->h0;
    params->flags = forward_flags(a);
    params->scale = a->scale;
    params->dv_stride = p->tiles.dv_stride;
    params->hv_count = (uint32_t)(pc->h1 - pc->h0);
}

/* The piece's entry table (chunk_base counts chunks within the piece). */
static efla_status piece_entries(planner *p, const piece *pc, uint64_t *offset) {
    uint32_t count = pc->end - pc->first;
    entry *table = efla_host_alloc(p->plan->host, (size_t)count * sizeof *table);
    if (!table) return efla_error(EFLA_ERROR_OUT_OF_HOST_MEMORY, "out of host memory");
    uint64_t chunk_base = 0;
    for (uint32_t i = 0; i < count; ++i) {
        const segment *s = &p->segments[pc->first + i];
        table[i] = (entry){(uint32_t)s->batch_row,
                           (uint32_t)s->first,
                           (uint32_t)s->count,
                           (uint32_t)s->sequence,
                           s->flags,
                           (uint32_t)chunk_base,
                           (uint32_t)s->sequence,
                           0};
        chunk_base += s->chunks;
    }
    efla_status status = blob_append(p->plan, table, (uint64_t)count * sizeof *table, offset);
    efla_host_free(p->plan->host, table);
    return status;
}

static const int tensor_binding[T_COUNT] = {
    EFLA_VK_BIND_Q,   EFLA_VK_BIND_K,        EFLA_VK_BIND_V,        EFLA_VK_BIND_BETA,
    EFLA_VK_BIND_OUT, EFLA_VK_BIND_STATE_IN, EFLA_VK_BIND_STATE_OUT};

/* Which tensors each kernel reads or writes. */
static bool kernel_uses(const efla_vk_pipeline_key *key, int tensor) {
    if (key->fused_out && tensor == T_OUT) return true;
    switch (key->kernel) {
    case EFLA_VK_PREP:
    case EFLA_VK_PREP_COOPMAT: return tensor <= T_BETA;
    case EFLA_VK_SCAN: return tensor == T_K || tensor == T_SIN || tensor == T_SOUT;
    case EFLA_VK_SCAN_COOPMAT:
    case EFLA_VK_SCAN_SLAB_COOPMAT:
    case EFLA_VK_SCAN_JOIN: return tensor == T_SIN || tensor == T_SOUT;
    case EFLA_VK_OUT: return tensor == T_Q || tensor == T_OUT;
    case EFLA_VK_OUT_COOPMAT: return tensor == T_Q || tensor == T_K || tensor == T_OUT;
    default: return true;
    }
}

enum { SCRATCH_UNUSED, SCRATCH_READ, SCRATCH_WRITE };

/* How each kernel uses scratch region EFLA_VK_REGION_W + r. */
static int scratch_access(uint32_t kernel, int r) {
    static const int access[EFLA_VK_KERNEL_COUNT][EFLA_VK_SCRATCH_REGIONS] = {
        [EFLA_VK_PREP] = {SCRATCH_WRITE, SCRATCH_WRITE, SCRATCH_WRITE, SCRATCH_WRITE,
                          SCRATCH_UNUSED},
        [EFLA_VK_SCAN] = {SCRATCH_READ, SCRATCH_WRITE, SCRATCH_UNUSED, SCRATCH_READ, SCRATCH_WRITE},
        [EFLA_VK_OUT] = {SCRATCH_UNUSED, SCRATCH_READ, SCRATCH_READ, SCRATCH_READ, SCRATCH_READ},
        /* coopmat: V' (region A) and H as f16 tiles, their scales in F */
        [EFLA_VK_SCAN_COOPMAT] = {SCRATCH_READ, SCRATCH_READ, SCRATCH_WRITE, SCRATCH_WRITE,
                                  SCRATCH_WRITE},
        [EFLA_VK_OUT_COOPMAT] = {SCRATCH_UNUSED, SCRATCH_UNUSED, SCRATCH_READ, SCRATCH_READ,
                                 SCRATCH_READ},
        [EFLA_VK_PREP_COOPMAT] = {SCRATCH_WRITE, SCRATCH_WRITE, SCRATCH_UNUSED, SCRATCH_WRITE,
                                  SCRATCH_UNUSED},
        [EFLA_VK_SCAN_SLAB_COOPMAT] = {SCRATCH_READ, SCRATCH_READ, SCRATCH_WRITE, SCRATCH_WRITE,
                                       SCRATCH_WRITE},
        /* the leg products, bound where W's region would be */
        [EFLA_VK_SCAN_JOIN] = {SCRATCH_READ, SCRATCH_READ}, /* and the starts where U's would be */
    };
    return access[kernel][r];
}

/* A scan's first level (LEG_PRODUCTS) reads U and writes nothing there; a
 * scan that forms the output (FUSED_OUT) reads the rows' factors in F and
 * writes nothing there either. */
static int key_scratch_access(const efla_vk_pipeline_key *key, int r) {
    if (key->kernel == EFLA_VK_RECURRENT) return SCRATCH_UNUSED;
    int access = scratch_access(key->kernel, r);
    if (key->fused_out && access == SCRATCH_WRITE)
        return r == EFLA_VK_REGION_F - EFLA_VK_REGION_W ? SCRATCH_READ : SCRATCH_UNUSED;
    if (key->leg_products && access == SCRATCH_WRITE)
        return r == EFLA_VK_REGION_U - EFLA_VK_REGION_W ? SCRATCH_READ : SCRATCH_UNUSED;
    return access;
}

/* Dispatches over the piece's chunks (prep, output): groups (chunks, heads, z). */
static efla_status emit_over_chunks(planner *p, const piece *pc, efla_vk_dispatch *d, uint32_t z,
                                    int list) {
    uint32_t heads = (uint32_t)(pc->h1 - pc->h0);
    const uint32_t *max_groups = p->limits->max_groups;
    for (uint64_t c = 0; c < pc->chunks; c += max_groups[0]) {
        uint64_t n = pc->chunks - c < max_groups[0] ? pc->chunks - c : max_groups[0];
        d->groups[0] = (uint32_t)n;
        d->groups[1] = heads;
        d->groups[2] = z;
        d->push[0] = 0;
        d->push[1] = (uint32_t)c;
        d->push[2] = pc->end - pc->first;
        efla_status status = push_dispatch(p, d, list);
        if (status != EFLA_SUCCESS) return status;
    }
    return EFLA_SUCCESS;
}

/* The dispatches of one kernel over a piece, `entries` entries at
 * `entries_offset` (the piece's own but for the two-level scan's). */
static efla_status emit_entries(planner *p, const piece *pc, const efla_vk_pipeline_key *key,
                                const efla_vk_window *tensors, const efla_vk_window *scratch,
                                uint64_t params_offset, uint64_t entries_offset, uint32_t entries) {
    efla_vk_dispatch d;
    memset(&d, 0, sizeof d);
    d.key = *key;
    d.bind[EFLA_VK_BIND_PARAMS] = (efla_vk_window){
        EFLA_VK_SOURCE_PARAMS, 0, false, VK_NULL_HANDLE, params_offset, PARAMS_RANGE};
    d.bind[EFLA_VK_BIND_ENTRIES] = (efla_vk_window){
        EFLA_VK_SOURCE_PARAMS, 0, false, VK_NULL_HANDLE, entries_offset, (uint64_t)entries * 32};
    for (int t = 0; t < T_COUNT; ++t) {
        efla_vk_window w = tensors[t];
        if (!kernel_uses(key, t)) w.source = EFLA_VK_SOURCE_DUMMY;
        d.bind[tensor_binding[t]] = w;
    }
    for (int r = 0; r < EFLA_VK_SCRATCH_REGIONS; ++r) {
        efla_vk_window w = scratch[r];
        int access = key_scratch_access(key, r);
        if (access == SCRATCH_UNUSED) w.source = EFLA_VK_SOURCE_DUMMY;
        w.write = access == SCRATCH_WRITE;
        d.bind[EFLA_VK_BIND_W + r] = w;
    }
    uint32_t heads = (uint32_t)(pc->h1 - pc->h0);
    const uint32_t *max_groups = p->limits->max_groups;
    uint64_t columns =
        key->leg_products ? (uint64_t)p->tiles.dv_stride + p->tiles.dk_class : (uint64_t)p->a->dv;
    uint32_t tiles = (uint32_t)((columns + key->block_v - 1) / key->block_v);
    if (key->kernel == EFLA_VK_PREP || key->kernel == EFLA_VK_PREP_COOPMAT)
        return emit_over_chunks(p, pc, &d, 1, -1);
    if (key->kernel == EFLA_VK_OUT) return emit_over_chunks(p, pc, &d, tiles, 1);
    if (key->kernel == EFLA_VK_OUT_COOPMAT) return emit_over_chunks(p, pc, &d, 1, 1);
    for (uint32_t e = 0; e < entries; e += max_groups[2]) {
        d.groups[0] = tiles;
        d.groups[1] = heads;
        d.groups[2] = entries - e < max_groups[2] ? entries - e : max_groups[2];
        d.push[0] = e;
        d.push[1] = 0;
        d.push[2] = entries;
        bool scan = key->kernel == EFLA_VK_SCAN || key->kernel == EFLA_VK_SCAN_COOPMAT ||
                    key->kernel == EFLA_VK_SCAN_SLAB_COOPMAT || key->kernel == EFLA_VK_SCAN_JOIN;
        efla_status status = push_dispatch(p, &d, scan ? 0 : -1);
        if (status != EFLA_SUCCESS) return status;
    }
    return EFLA_SUCCESS;
}

static efla_status emit_kernel(planner *p, const piece *pc, const efla_vk_pipeline_key *key,
                               const efla_vk_window *tensors, const efla_vk_window *scratch,
                               uint64_t params_offset, uint64_t entries_offset) {
    return emit_entries(p, pc, key, tensors, scratch, params_offset, entries_offset,
                        pc->end - pc->first);
}

/* ------------------------------------------------------------------ */
/* The two-level scan                                                  */
/* ------------------------------------------------------------------ */

/*
 * Where the scan's workgroups leave the device idle (vk_tiles.c,
 * efla_vk_tiles_legs), each entry's chunks are cut into legs, and the scan
 * runs in four dispatches:
 * - the first legs: the scan runs each entry's first leg from its initial
 *   state, with its outputs, and writes its end state S_1 to region
 *   LEG_STATES (the start of the second leg);
 * - the leg products, beside them (no binding of one is written by the
 *   other, so nothing orders them): every later leg but the last, from a
 *   zero state, with W's columns beside U's (LEG_PRODUCTS), writes its end
 *   state Q_j and X_j (I - X_j being the product of its transitions) to
 *   region LEGS;
 * - the join carries S_1 across them, S_(j+1) = S_j - X_j S_j + Q_j, into
 *   LEG_STATES (an entry of one leg: its initial state);
 * - the scan runs every other leg from its start in LEG_STATES, the last
 *   one writing the entry's end state where the entry would have.
 * EFLA's transitions are contractions, so the products stay bounded; only
 * their correction terms see 16-bit operands (ALGORITHM.md's precision
 * contract holds on the float64 reference, tests/test_vulkan_tuning.c).
 */
#define ENTRY_FROM_LEG 4u /* the join's: the first start is a first leg's end */

typedef struct leg_tables {
    entry *firsts, *products, *joins, *runs;
    uint32_t first_count, product_count, join_count, run_count;
} leg_tables;

/* Legs of an entry of `chunks` chunks: (count, chunks per leg). */
static void entry_legs(const planner *p, uint64_t chunks, uint64_t *legs, uint64_t *per_leg) {
    uint64_t n = p->tiles.legs;
    if (!p->limits->scan_legs && n > chunks / EFLA_VK_MIN_LEG_CHUNKS)
        n = chunks / EFLA_VK_MIN_LEG_CHUNKS;
    if (n > chunks) n = chunks;
    if (n < 1) n = 1;
    *per_leg = chunks ? (chunks + n - 1) / n : 0;
    *legs = chunks ? (chunks + *per_leg - 1) / *per_leg : 1;
}

static void leg_entries(const planner *p, const piece *pc, leg_tables *t) {
    uint64_t chunk_base = 0, chunk = p->tiles.chunk;
    for (uint32_t i = pc->first; i < pc->end; ++i) {
        const segment *s = &p->segments[i];
        uint64_t legs, per_leg;
        entry_legs(p, s->chunks, &legs, &per_leg);
        bool one = legs == 1;
        t->joins[t->join_count++] = (entry){t->product_count,
                                            t->run_count,
                                            (uint32_t)(one ? 1 : legs - 1),
                                            (uint32_t)s->sequence,
                                            one ? s->flags & ENTRY_READ_STATE : ENTRY_FROM_LEG,
                                            (uint32_t)chunk_base,
                                            0,
                                            0};
        for (uint64_t k = 0; k < legs; ++k) {
            int64_t start = (int64_t)(k * per_leg * chunk);
            int64_t count = s->count - start < (int64_t)(per_leg * chunk)
                                ? s->count - start
                                : (int64_t)(per_leg * chunk);
            entry leg = {(uint32_t)s->batch_row,
                         (uint32_t)(s->first + start),
                         (uint32_t)count,
                         0,
                         0,
                         (uint32_t)(chunk_base + k * per_leg),
                         0,
                         0};
            if (k == 0 && !one) { /* from the initial state to the second leg's start */
                entry first = leg;
                first.state_row = (uint32_t)s->sequence;
                first.flags = (s->flags & ENTRY_READ_STATE) | ENTRY_WRITE_STATE;
                first.state_out_row = t->run_count;
                t->firsts[t->first_count++] = first;
                continue;
            }
            if (k + 1 < legs) {
                entry product = leg;
                product.flags = ENTRY_WRITE_STATE;
                product.state_out_row = t->product_count;
                t->products[t->product_count++] = product;
            }
            leg.state_row = t->run_count;
            leg.flags = ENTRY_READ_STATE | (k + 1 == legs ? s->flags & ENTRY_WRITE_STATE : 0);
            leg.state_out_row = (uint32_t)s->sequence;
            t->runs[t->run_count++] = leg;
        }
        chunk_base += s->chunks;
    }
}

/* A state view of `rows` x the piece's heads x `dk` x `width` floats in
 * scratch, indexed by the global value head. */
static view_params leg_view(const piece *pc, uint64_t dk, uint64_t width) {
    uint32_t s1 = (uint32_t)(dk * width);
    uint32_t s0 = (uint32_t)((uint64_t)(pc->h1 - pc->h0) * s1);
    return (view_params){0u - (uint32_t)pc->h0 * s1, s0, s1, (uint32_t)width, 1};
}

static efla_vk_window scratch_window(planner *p, int region, uint64_t bytes) {
    efla_vk_window w = {EFLA_VK_SOURCE_SCRATCH, (uint8_t)region,   false,
                        VK_NULL_HANDLE,         p->cursor[region], bytes ? bytes : 4};
    p->cursor[region] = align_up(p->cursor[region] + w.range, p->alignment);
    return w;
}

static efla_status append_params(planner *p, const piece_params *params, view_params state_in,
                                 view_params state_out, uint64_t *offset) {
    piece_params copy = *params;
    copy.state_in = state_in;
    copy.state_out = state_out;
    return blob_append(p->plan, &copy, sizeof copy, offset);
}

/* The three dispatches of the two-level scan over a piece (tables `t`). */
static efla_status emit_leg_dispatches(planner *p, const piece *pc, const piece_params *params,
                                       const efla_vk_window *tensors, const efla_vk_window *scratch,
                                       const leg_tables *t) {
    const efla_vk_tiles *tiles = &p->tiles;
    uint64_t heads = (uint64_t)(pc->h1 - pc->h0), width = tiles->dv_stride + tiles->dk_class;
    uint64_t dk = (uint64_t)p->a->dk, dv = (uint64_t)p->a->dv;
    view_params products = leg_view(pc, tiles->dk_class, width), starts = leg_view(pc, dk, dv);
    efla_vk_window product_window = scratch_window(
        p, EFLA_VK_REGION_LEGS, (uint64_t)t->product_count * heads * tiles->dk_class * width * 4);
    efla_vk_window start_window =
        scratch_window(p, EFLA_VK_REGION_LEG_STATES, (uint64_t)t->run_count * heads * dk * dv * 4);
    efla_vk_window bound[T_COUNT], join_scratch[EFLA_VK_SCRATCH_REGIONS];
    /* params and entries of the products, the join, the runs, the first legs */
    uint64_t offsets[4][2];
    const entry *tables[4] = {t->products, t->joins, t->runs, t->firsts};
    const uint32_t counts[4] = {t->product_count, t->join_count, t->run_count, t->first_count};
    efla_status status = append_params(p, params, params->state_in, products, &offsets[0][0]);
    if (status == EFLA_SUCCESS)
        status = append_params(p, params, params->state_in, starts, &offsets[1][0]);
    if (status == EFLA_SUCCESS)
        status = append_params(p, params, starts, params->state_out, &offsets[2][0]);
    offsets[3][0] = offsets[1][0]; /* the first legs: the initial states in, starts out */
    for (int i = 0; i < 4 && status == EFLA_SUCCESS; ++i)
        status =
            blob_append(p->plan, tables[i], (uint64_t)counts[i] * sizeof(entry), &offsets[i][1]);
    if (status != EFLA_SUCCESS) return status;

    memcpy(bound, tensors, sizeof bound);
    bound[T_SOUT] = start_window;
    bound[T_SOUT].write = true;
    if (t->first_count)
        status = emit_entries(p, pc, &tiles->scan, bound, scratch, offsets[3][0], offsets[3][1],
                              t->first_count);

    memcpy(bound, tensors, sizeof bound);
    bound[T_SIN].source = EFLA_VK_SOURCE_DUMMY;
    bound[T_SOUT] = product_window;
    bound[T_SOUT].write = true;
    if (t->product_count && status == EFLA_SUCCESS)
        status = emit_entries(p, pc, &tiles->leg_scan, bound, scratch, offsets[0][0], offsets[0][1],
                              t->product_count);

    memcpy(bound, tensors, sizeof bound);
    bound[T_SOUT] = start_window;
    bound[T_SOUT].write = true;
    memset(join_scratch, 0, sizeof join_scratch);
    join_scratch[0] = product_window;
    join_scratch[1] = start_window; /* the first legs' ends, read */
    if (status == EFLA_SUCCESS)
        status = emit_entries(p, pc, &tiles->join, bound, join_scratch, offsets[1][0],
                              offsets[1][1], t->join_count);

    memcpy(bound, tensors, sizeof bound);
    bound[T_SIN] = start_window;
    if (status == EFLA_SUCCESS)
        status = emit_entries(p, pc, &tiles->scan, bound, scratch, offsets[2][0], offsets[2][1],
                              t->run_count);
    return status;
}

/* The two-level scan where the piece's leg tables and states fit their
 * bindings; else (*ran false) the plain one runs. */
static efla_status emit_legs(planner *p, const piece *pc, const piece_params *params,
                             const efla_vk_window *tensors, const efla_vk_window *scratch,
                             bool *ran) {
    uint64_t legs = 0, per_leg, n;
    for (uint32_t i = pc->first; i < pc->end; ++i) {
        entry_legs(p, p->segments[i].chunks, &n, &per_leg);
        legs += n;
    }
    uint64_t heads = (uint64_t)(pc->h1 - pc->h0);
    uint64_t width = (uint64_t)p->tiles.dv_stride + p->tiles.dk_class;
    *ran = legs > pc->end - pc->first &&
           legs * heads * p->tiles.dk_class * width * 4 <= p->limits->storage_range &&
           legs * heads * (uint64_t)(p->a->dk * p->a->dv) * 4 <= p->limits->storage_range &&
           legs <= p->limits->max_groups[2];
    if (!*ran) return EFLA_SUCCESS;
    leg_tables t = {0};
    t.firsts = efla_host_alloc(p->plan->host, (size_t)(pc->end - pc->first) * sizeof(entry));
    t.products = efla_host_alloc(p->plan->host, (size_t)legs * sizeof(entry));
    t.joins = efla_host_alloc(p->plan->host, (size_t)(pc->end - pc->first) * sizeof(entry));
    t.runs = efla_host_alloc(p->plan->host, (size_t)legs * sizeof(entry));
    efla_status status = EFLA_SUCCESS;
    if (!t.firsts || !t.products || !t.joins || !t.runs)
        status = efla_error(EFLA_ERROR_OUT_OF_HOST_MEMORY, "out of host memory");
    if (status == EFLA_SUCCESS) {
        leg_entries(p, pc, &t);
        status = emit_leg_dispatches(p, pc, params, tensors, scratch, &t);
    }
    efla_host_free(p->plan->host, t.firsts);
    efla_host_free(p->plan->host, t.products);
    efla_host_free(p->plan->host, t.joins);
    efla_host_free(p->plan->host, t.runs);
    return status;
}

static efla_status emit_piece(planner *p, const piece *pc, bool chunked) {
    piece_params params;
    efla_vk_window tensors[T_COUNT], scratch[EFLA_VK_SCRATCH_REGIONS];
    piece_windows(p, pc, &params, tensors);
    memset(scratch, 0, sizeof scratch);
    uint64_t heads = (uint64_t)(pc->h1 - pc->h0);
    for (int r = 0; chunked && r < EFLA_VK_SCRATCH_REGIONS; ++r) {
        int region = EFLA_VK_REGION_W + r;
        uint64_t bytes = pc->chunks * heads * p->tiles.chunk_bytes[r];
        scratch[r] = (efla_vk_window){EFLA_VK_SOURCE_SCRATCH, (uint8_t)region,   false,
                                      VK_NULL_HANDLE,         p->cursor[region], bytes};
        p->cursor[region] = align_up(p->cursor[region] + bytes, p->alignment);
    }
    uint64_t params_offset, entries_offset;
    efla_status status = blob_append(p->plan, &params, sizeof params, &params_offset);
    if (status == EFLA_SUCCESS) status = piece_entries(p, pc, &entries_offset);
    if (status != EFLA_SUCCESS) return status;
    if (!chunked)
        return emit_kernel(p, pc, &p->tiles.recurrent, tensors, scratch, params_offset,
                           entries_offset);
    status = emit_kernel(p, pc, &p->tiles.prep, tensors, scratch, params_offset, entries_offset);
    bool legs = false;
    if (status == EFLA_SUCCESS && p->tiles.legs > 1)
        status = emit_legs(p, pc, &params, tensors, scratch, &legs);
    if (status == EFLA_SUCCESS && !legs)
        status =
            emit_kernel(p, pc, &p->tiles.scan, tensors, scratch, params_offset, entries_offset);
    if (status != EFLA_SUCCESS || p->tiles.scan.fused_out) return status;
    return emit_kernel(p, pc, &p->tiles.out, tensors, scratch, params_offset, entries_offset);
}

/* ------------------------------------------------------------------ */
/* Grouping segments into pieces                                       */
/* ------------------------------------------------------------------ */

static void piece_start(piece *pc, uint32_t first, int64_t h0, int64_t h1) {
    pc->first = pc->end = first;
    pc->h0 = h0;
    pc->h1 = h1;
    pc->chunks = 0;
    for (int t = 0; t < T_COUNT; ++t)
        pc->spans[t] = (span){1, 0};
}

/* Adds segment pc->end when the piece still fits afterwards. */
static bool piece_extend(const planner *p, piece *pc, bool chunked) {
    piece next = *pc;
    const segment *s = &p->segments[pc->end];
    spans_add_segment(p, s, pc->h0, pc->h1, next.spans);
    next.chunks += s->chunks;
    next.end++;
    if (!piece_fits(p, &next, chunked)) return false;
    *pc = next;
    return true;
}

/* One segment over value-head groups small enough to fit. */
static efla_status emit_head_split(planner *p, uint32_t index, bool chunked) {
    int64_t heads = p->a->value_heads, group = heads;
    piece pc;
    for (;;) {
        piece_start(&pc, index, 0, group);
        if (piece_extend(p, &pc, chunked)) break;
        if (group == 1) {
            p->need_split = true;
            return EFLA_SUCCESS;
        }
        group = (group + 1) / 2;
    }
    for (int64_t h0 = 0; h0 < heads; h0 += group) {
        piece_start(&pc, index, h0, h0 + group < heads ? h0 + group : heads);
        if (!piece_extend(p, &pc, chunked)) {
            p->need_split = true;
            return EFLA_SUCCESS;
        }
        efla_status status = emit_piece(p, &pc, chunked);
        if (status != EFLA_SUCCESS) return status;
    }
    return EFLA_SUCCESS;
}

static efla_status emit_segments(planner *p, bool chunked) {
    uint32_t index = 0;
    while (index < p->segment_count && !p->need_split) {
        piece pc;
        piece_start(&pc, index, 0, p->a->value_heads);
        if (!piece_extend(p, &pc, chunked)) {
            efla_status status = emit_head_split(p, index, chunked);
            if (status != EFLA_SUCCESS) return status;
            index++;
            continue;
        }
        while (pc.end < p->segment_count && piece_extend(p, &pc, chunked)) {
        }
        efla_status status = emit_piece(p, &pc, chunked);
        if (status != EFLA_SUCCESS) return status;
        index = pc.end;
    }
    return EFLA_SUCCESS;
}

/* ------------------------------------------------------------------ */
/* Rounds                                                              */
/* ------------------------------------------------------------------ */

static bool runs_chunked(const efla_forward_args *a, int64_t length) {
    if (length == 0) return false;
    if (a->algorithm == EFLA_ALGORITHM_CHUNKED) return true;
    if (a->algorithm == EFLA_ALGORITHM_RECURRENT) return false;
    return length > EFLA_RECURRENT_MAX_TOKENS;
}

efla_algorithm efla_vk_plan_algorithm(const efla_forward_args *a) {
    if (a->algorithm != EFLA_ALGORITHM_AUTO) return a->algorithm;
    bool chunked = false, recurrent = false;
    for (int64_t n = 0; n < a->sequences; ++n) {
        int64_t b, first, length;
        efla_forward_sequence(a, n, &b, &first, &length);
        if (runs_chunked(a, length))
            chunked = true;
        else
            recurrent = true;
    }
    if (chunked && recurrent) return EFLA_ALGORITHM_AUTO;
    return chunked ? EFLA_ALGORITHM_CHUNKED : EFLA_ALGORITHM_RECURRENT;
}

/* Tokens per segment for a sequence (its whole length when unbounded). */
static int64_t segment_tokens(const planner *p, int64_t length) {
    if (p->segment_chunks == 0) return length > 0 ? length : 1;
    return (int64_t)(p->segment_chunks * p->tiles.chunk);
}

static uint64_t sequence_rounds(const planner *p, int64_t length) {
    int64_t per = segment_tokens(p, length);
    return length == 0 ? 1 : (uint64_t)((length + per - 1) / per);
}

/* Collects round r's segments of the chunked or the recurrent sequences. */
static efla_status collect_segments(planner *p, uint64_t round, bool chunked) {
    const efla_forward_args *a = p->a;
    bool has_initial = a->initial_state.buffer != NULL, has_final = a->final_state.buffer != NULL;
    p->segment_count = 0;
    for (int64_t n = 0; n < a->sequences; ++n) {
        int64_t b, first, length;
        efla_forward_sequence(a, n, &b, &first, &length);
        uint64_t rounds = sequence_rounds(p, length);
        if (runs_chunked(a, length) != chunked || round >= rounds) continue;
        int64_t per = segment_tokens(p, length);
        int64_t start = (int64_t)round * per;
        int64_t count = length - start < per ? length - start : per;
        uint32_t flags = 0;
        if (round > 0 || has_initial) flags |= ENTRY_READ_STATE;
        if (round + 1 < rounds || has_final) flags |= ENTRY_WRITE_STATE;
        if (count == 0 && !(flags & ENTRY_WRITE_STATE)) continue;
        efla_status status = grow(p->plan->host, (void **)&p->segments, &p->segment_capacity,
                                  p->segment_count + 1, sizeof *p->segments);
        if (status != EFLA_SUCCESS) return status;
        p->segments[p->segment_count++] = (segment){
            b,    first + start, count, n, (uint64_t)(count + p->tiles.chunk - 1) / p->tiles.chunk,
            flags};
    }
    return EFLA_SUCCESS;
}

static efla_status plan_round(planner *p, uint64_t round) {
    const efla_forward_args *a = p->a;
    const efla_tensor_view *carrier = a->final_state.buffer ? &a->final_state : &p->carrier;
    p->views[T_SIN] = round > 0 ? carrier : a->initial_state.buffer ? &a->initial_state : NULL;
    p->views[T_SOUT] = a->final_state.buffer ? &a->final_state
                       : p->use_carrier      ? &p->carrier
                                             : NULL;
    memset(p->cursor, 0, sizeof p->cursor);
    efla_status status = collect_segments(p, round, false);
    if (status == EFLA_SUCCESS) status = emit_segments(p, false);
    if (status == EFLA_SUCCESS && !p->need_split) status = collect_segments(p, round, true);
    if (status == EFLA_SUCCESS && !p->need_split) status = emit_segments(p, true);
    if (status != EFLA_SUCCESS || p->need_split) return status;
    for (int list = 0; list < 2; ++list) {
        for (uint32_t i = 0; i < p->deferred_count[list]; ++i) {
            status = push_dispatch(p, &p->deferred[list][i], -1);
            if (status != EFLA_SUCCESS) return status;
        }
        p->deferred_count[list] = 0;
    }
    for (int r = 0; r < EFLA_VK_REGION_COUNT; ++r)
        if (p->cursor[r] > p->region_size[r]) p->region_size[r] = p->cursor[r];
    return EFLA_SUCCESS;
}

static void plan_reset(efla_vk_plan *plan) {
    plan->dispatch_count = 0;
    plan->blob_size = 0;
    plan->scratch_bytes = 0;
    memset(plan->region_offset, 0, sizeof plan->region_offset);
}

/* Builds every round with the current segment length. */
static efla_status plan_all(planner *p, uint64_t rounds) {
    const efla_forward_args *a = p->a;
    plan_reset(p->plan);
    memset(p->region_size, 0, sizeof p->region_size);
    p->need_split = false;
    p->deferred_count[0] = p->deferred_count[1] = 0;
    p->use_carrier = rounds > 1 && !a->final_state.buffer;
    if (p->use_carrier)
        p->region_size[EFLA_VK_REGION_CARRIER] =
            (uint64_t)(a->sequences * a->value_heads * a->dk * a->dv) * 4;
    for (uint64_t r = 0; r < rounds && !p->need_split; ++r) {
        efla_status status = plan_round(p, r);
        if (status != EFLA_SUCCESS) return status;
    }
    uint64_t offset = 0;
    for (int r = 0; r < EFLA_VK_REGION_COUNT; ++r) {
        p->plan->region_offset[r] = offset;
        offset = align_up(offset + p->region_size[r], p->alignment);
    }
    p->plan->scratch_bytes = offset;
    return EFLA_SUCCESS;
}

static uint64_t max_rounds(const planner *p) {
    uint64_t rounds = 0;
    for (int64_t n = 0; n < p->a->sequences; ++n) {
        int64_t b, first, length;
        efla_forward_sequence(p->a, n, &b, &first, &length);
        uint64_t r = sequence_rounds(p, length);
        if (r > rounds) rounds = r;
    }
    return rounds;
}

/* Chunks of the longest sequence, and how many sequences run chunked. */
static void count_chunked(const efla_forward_args *a, uint64_t chunk, uint64_t *longest,
                          uint64_t *sequences) {
    *longest = 0;
    *sequences = 0;
    for (int64_t n = 0; n < a->sequences; ++n) {
        int64_t b, first, length;
        efla_forward_sequence(a, n, &b, &first, &length);
        uint64_t chunks = ((uint64_t)length + chunk - 1) / chunk;
        if (chunks > *longest) *longest = chunks;
        if (runs_chunked(a, length)) ++*sequences;
    }
}

/* The segment length that keeps one round's W/U/A scratch in budget. */
static uint64_t budget_segment_chunks(const planner *p, uint64_t chunked, uint64_t longest) {
    uint64_t per_chunk = 0;
    for (int r = 0; r < EFLA_VK_SCRATCH_REGIONS; ++r)
        per_chunk += p->tiles.chunk_bytes[r];
    per_chunk *= (uint64_t)p->a->value_heads;
    if (chunked == 0 || chunked * longest * per_chunk <= p->limits->scratch_budget) return 0;
    uint64_t chunks = p->limits->scratch_budget / (chunked * per_chunk);
    return chunks ? chunks : 1;
}

static efla_status check_ranges(const efla_forward_args *a) {
    if (a->tokens > UINT32_MAX || a->sequences > UINT32_MAX || a->value_heads > UINT32_MAX)
        return efla_error(EFLA_ERROR_UNSUPPORTED,
                          "the Vulkan backend handles at most 2^32-1 tokens, sequences and heads");
    return EFLA_SUCCESS;
}

efla_status efla_vk_plan_build(const efla_vk_limits *limits, const efla_forward_args *a,
                               const efla_allocator *host, efla_vk_plan *plan) {
    memset(plan, 0, sizeof *plan);
    plan->host = host;
    efla_status status = check_ranges(a);
    if (status != EFLA_SUCCESS) return status;
    planner p;
    memset(&p, 0, sizeof p);
    p.a = a;
    p.limits = limits;
    p.plan = plan;
    p.alignment =
        limits->storage_alignment > BLOB_ALIGNMENT ? limits->storage_alignment : BLOB_ALIGNMENT;
    const efla_tensor_view *views[T_COUNT] = {&a->q, &a->k, &a->v, &a->beta, &a->out, NULL, NULL};
    memcpy(p.views, views, sizeof views);
    p.carrier =
        (efla_tensor_view){.dtype = EFLA_DTYPE_F32,
                           .shape = {a->sequences, a->value_heads, a->dk, a->dv},
                           .strides = {a->value_heads * a->dk * a->dv, a->dk * a->dv, a->dv, 1},
                           .contiguous = true};
    uint64_t longest, chunked;
    count_chunked(a, 1, &longest, &chunked);
    status = efla_vk_tiles_choose(limits, a, chunked, &p.tiles);
    if (status != EFLA_SUCCESS) return status;
    count_chunked(a, p.tiles.chunk, &longest, &chunked);
    efla_vk_tiles_legs(limits, a, chunked, longest, &p.tiles);
    p.segment_chunks = limits->max_chunks_per_dispatch;
    uint64_t budget = budget_segment_chunks(&p, chunked, longest);
    if (budget && (p.segment_chunks == 0 || budget < p.segment_chunks)) p.segment_chunks = budget;
    for (;;) {
        status = plan_all(&p, max_rounds(&p));
        if (status != EFLA_SUCCESS || !p.need_split) break;
        uint64_t current = p.segment_chunks ? p.segment_chunks : (longest > 1 ? longest : 2);
        if (current <= 1) {
            status = efla_error(EFLA_ERROR_UNSUPPORTED,
                                "one chunk (or the state) of one value head needs a binding larger "
                                "than the %llu-byte storage-buffer range",
                                (unsigned long long)limits->storage_range);
            break;
        }
        p.segment_chunks = current / 2;
    }
    efla_host_free(host, p.segments);
    efla_host_free(host, p.deferred[0]);
    efla_host_free(host, p.deferred[1]);
    if (status != EFLA_SUCCESS) efla_vk_plan_release(plan);
    return status;
}

void efla_vk_plan_release(efla_vk_plan *plan) {
    efla_host_free(plan->host, plan->dispatches);
    efla_host_free(plan->host, plan->blob);
    plan->dispatches = NULL;
    plan->blob = NULL;
    plan->dispatch_count = plan->dispatch_capacity = 0;
    plan->blob_size = plan->blob_capacity = 0;
}
