/* Token-by-token recurrence (ALGORITHM.md §2.1, in the normalised form of
 * §2.6) for decode and short sequences. Per token, one pass reads the state
 * for S^T k̂ and S^T q together, and one pass applies the rank-1 update:
 *   u = g v - e S^T k̂,  o = S^T q + (k̂ . q) u  (= S_new^T q),  S += k̂ u^T.
 * The state is read from the initial state and written to the final state
 * in place where their rows are contiguous, so that a decode step moves it
 * through memory once. */
#include "backends/cpu/cpu_plan.h"
#include "backends/cpu/cpu_scratch.h"
#include "backends/cpu/cpu_tensor.h"
#include "backends/cpu/cpu_token.h"

#include <string.h>

/* All states together from this size on are written past the cache. */
#define EFLA_CPU_STREAM_STATE_BYTES (32.0 * 1024 * 1024)

typedef struct recurrent_scratch {
    float *state, *q, *k, *v, *sk, *sq, *u, *o;
} recurrent_scratch;

static size_t layout(const efla_forward_args *a, const efla_cpu_plan *plan, char *base,
                     recurrent_scratch *s) {
    const size_t dk = (size_t)a->dk, w = (size_t)plan->tile_width;
    efla_cpu_arena arena = {base, 0};
    float **vectors[] = {&s->v, &s->sk, &s->sq, &s->u, &s->o};
    s->state = efla_cpu_arena_take(&arena, dk * w);
    s->q = efla_cpu_arena_take(&arena, dk);
    s->k = efla_cpu_arena_take(&arena, dk);
    for (size_t i = 0; i < sizeof vectors / sizeof *vectors; ++i)
        *vectors[i] = efla_cpu_arena_take(&arena, w);
    return arena.used;
}

size_t efla_cpu_recurrent_scratch(const efla_forward_args *args, const efla_cpu_plan *plan) {
    recurrent_scratch s;
    return layout(args, plan, NULL, &s);
}

/* Where a task's state tile lives: rows of `width` floats, `ld` apart. */
typedef struct state_tile {
    float *data;
    int64_t ld;
} state_tile;

/* The caller's state memory for this task's tile when its rows are
 * contiguous f32, else {NULL, 0}. */
static state_tile direct_tile(const efla_tensor_view *v, const efla_cpu_task *task) {
    state_tile tile = {NULL, 0};
    if (!v->buffer || v->strides[3] != 1) return tile;
    tile.data = (float *)v->buffer->memory +
                efla_view_index(v, task->sequence, task->value_head, 0, task->col0);
    tile.ld = v->strides[2];
    return tile;
}

static void copy_tile(const efla_cpu_task *task, state_tile from, state_tile to) {
    for (int64_t i = 0; i < task->args->dk; ++i)
        memmove(to.data + i * to.ld, from.data + i * from.ld, sizeof(float) * (size_t)task->width);
}

/* Streams the final state past the cache when all states together are
 * larger than a cache could hold: nothing would find them there anyway. */
static bool stream_state(const efla_forward_args *a) {
    const double bytes = 4.0 * (double)(a->sequences * a->value_heads) * (double)(a->dk * a->dv);
    return bytes >= EFLA_CPU_STREAM_STATE_BYTES;
}

static void token_step(const efla_cpu_task *task, int64_t t, const recurrent_scratch *s,
                       state_tile src, state_tile dst, bool stream) {
    const efla_forward_args *a = task->args;
    const int64_t w = task->width;
    float e, g;
    efla_cpu_load_token(task, t, s->q, s->k, &e, &g);
    efla_cpu_load_row(task->kernels, &a->v, task->batch_row, t, task->value_head, task->col0, w,
                      s->v);
    task->kernels->state_dot2(a->dk, w, src.data, src.ld, s->k, s->q, s->sk, s->sq);
    const float kq = efla_cpu_dot(s->k, s->q, a->dk);
    for (int64_t j = 0; j < w; ++j) {
        s->u[j] = g * s->v[j] - e * s->sk[j];
        s->o[j] = s->sq[j] + kq * s->u[j];
    }
    task->kernels->state_rank1(a->dk, w, src.data, src.ld, dst.data, dst.ld, s->k, s->u, stream);
    efla_cpu_store_row(task->kernels, &a->out, task->batch_row, t, task->value_head, task->col0, w,
                       s->o);
}

void efla_cpu_recurrent_run(const efla_cpu_task *task, void *scratch) {
    const efla_forward_args *a = task->args;
    recurrent_scratch s;
    layout(a, task->plan, scratch, &s);
    const state_tile local = {s.state, task->plan->tile_width};
    state_tile src = direct_tile(&a->initial_state, task);
    state_tile out = direct_tile(&a->final_state, task);
    state_tile dst = out.data ? out : local;
    if (!src.data) {
        if (a->initial_state.buffer) {
            for (int64_t i = 0; i < a->dk; ++i)
                efla_cpu_load_row(task->kernels, &a->initial_state, task->sequence,
                                  task->value_head, i, task->col0, task->width,
                                  local.data + i * local.ld);
        } else {
            for (int64_t i = 0; i < a->dk; ++i)
                memset(local.data + i * local.ld, 0, sizeof(float) * (size_t)task->width);
        }
        src = local;
    }
    if (task->length == 0 && a->final_state.buffer && src.data != dst.data)
        copy_tile(task, src, dst);
    const int64_t last = task->first + task->length - 1;
    for (int64_t t = task->first; t <= last; ++t) {
        if (t + 2 <= last) efla_cpu_prefetch_token(task, t + 2);
        token_step(task, t, &s, src, dst, t == last && dst.data == out.data && stream_state(a));
        src = dst;
    }
    if (a->final_state.buffer && !out.data)
        for (int64_t i = 0; i < a->dk; ++i)
            efla_cpu_store_row(task->kernels, &a->final_state, task->sequence, task->value_head, i,
                               task->col0, task->width, src.data + i * src.ld);
}
