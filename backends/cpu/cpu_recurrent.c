/* Token-by-token recurrence (ALGORITHM.md §2.1, in the normalised form of
 * §2.6) for decode and short sequences. Per token, from S^T k̂ and S^T q:
 *   u = g v - e S^T k̂,  o = S^T q + (k̂ . q) u  (= S_new^T q),  S += k̂ u^T;
 * one pass over the state applies a token's update and takes the next
 * token's two products.
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

/* Two token buffers: the next token's q̂, k̂ and v are prepared before
 * the current token's update, which then also takes the next token's dot
 * products in the same pass over the state. */
typedef struct token_buffers {
    float *q, *k, *v, erase, write;
} token_buffers;

typedef struct recurrent_scratch {
    float *state, *sk, *sq, *u, *o;
    token_buffers token[2];
} recurrent_scratch;

static size_t layout(const efla_forward_args *a, const efla_cpu_plan *plan, char *base,
                     recurrent_scratch *s) {
    const size_t dk = (size_t)a->dk, w = (size_t)plan->tile_width;
    efla_cpu_arena arena = {base, 0};
    float **vectors[] = {&s->sk, &s->sq, &s->u, &s->o};
    s->state = efla_cpu_arena_take(&arena, dk * w);
    for (size_t i = 0; i < sizeof vectors / sizeof *vectors; ++i)
        *vectors[i] = efla_cpu_arena_take(&arena, w);
    for (int i = 0; i < 2; ++i) {
        s->token[i].q = efla_cpu_arena_take(&arena, dk);
        s->token[i].k = efla_cpu_arena_take(&arena, dk);
        s->token[i].v = efla_cpu_arena_take(&arena, w);
    }
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

static void load_token(const efla_cpu_task *task, int64_t t, token_buffers *b) {
    const efla_forward_args *a = task->args;
    efla_cpu_load_token(task, t, b->q, b->k, &b->erase, &b->write);
    efla_cpu_load_row(task->kernels, &a->v, task->batch_row, t, task->value_head, task->col0,
                      task->width, b->v);
}

/* Token t's output from sk = S^T k̂ and sq = S^T q, and u for its update. */
static void token_output(const efla_cpu_task *task, int64_t t, const token_buffers *b,
                         const recurrent_scratch *s) {
    const efla_forward_args *a = task->args;
    const float kq = efla_cpu_dot(b->k, b->q, a->dk);
    for (int64_t j = 0; j < task->width; ++j) {
        s->u[j] = b->write * b->v[j] - b->erase * s->sk[j];
        s->o[j] = s->sq[j] + kq * s->u[j];
    }
    efla_cpu_store_row(task->kernels, &a->out, task->batch_row, t, task->value_head, task->col0,
                       task->width, s->o);
}

/* The tokens of the task's sequence, src the state before the first one;
 * the state after the last ends in dst. */
static void run_tokens(const efla_cpu_task *task, recurrent_scratch *s, state_tile src,
                       state_tile dst, bool stream) {
    const efla_cpu_kernels *kern = task->kernels;
    const int64_t dk = task->args->dk, w = task->width, last = task->first + task->length - 1;
    token_buffers *now = &s->token[0], *next = &s->token[1];
    load_token(task, task->first, &s->token[0]);
    kern->state_dot2(dk, w, src.data, src.ld, now->k, now->q, s->sk, s->sq);
    for (int64_t t = task->first; t <= last; ++t) {
        if (t + 2 <= last) efla_cpu_prefetch_token(task, t + 2);
        token_output(task, t, now, s);
        if (t == last) {
            kern->state_rank1(dk, w, src.data, src.ld, dst.data, dst.ld, now->k, s->u, stream);
            break;
        }
        load_token(task, t + 1, next);
        kern->state_rank1_dot2(dk, w, src.data, src.ld, dst.data, dst.ld, now->k, s->u, next->k,
                               next->q, s->sk, s->sq);
        token_buffers *swap = now;
        now = next;
        next = swap;
        src = dst;
    }
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
    if (task->length > 0) {
        run_tokens(task, &s, src, dst, dst.data == out.data && stream_state(a));
        src = dst;
    }
    if (a->final_state.buffer && !out.data)
        for (int64_t i = 0; i < a->dk; ++i)
            efla_cpu_store_row(task->kernels, &a->final_state, task->sequence, task->value_head, i,
                               task->col0, task->width, src.data + i * src.ld);
}
