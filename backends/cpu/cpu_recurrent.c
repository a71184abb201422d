/* Token-by-token recurrence (ALGORITHM.md §2.1, in the normalised form of
 * §2.6) for decode and short sequences. Per token, one pass reads the state
 * for S^T k̂ and S^T q together, and one pass applies the rank-1 update:
 *   u = g v - e S^T k̂,  o = S^T q + (k̂ . q) u  (= S_new^T q),  S += k̂ u^T. */
#include "backends/cpu/cpu_plan.h"
#include "backends/cpu/cpu_scratch.h"
#include "backends/cpu/cpu_tensor.h"
#include "backends/cpu/cpu_token.h"

#define NR EFLA_CPU_NR

typedef struct recurrent_scratch {
    float *state, *q, *k, *v, *sk, *sq, *u, *o;
} recurrent_scratch;

static size_t layout(const efla_forward_args *a, const efla_cpu_plan *plan, char *base,
                     recurrent_scratch *s) {
    const size_t dk = (size_t)a->dk, padded = (size_t)plan->tile_width;
    const size_t row = padded > (size_t)a->dv ? padded : (size_t)a->dv;
    efla_cpu_arena arena = {base, 0};
    float **vectors[] = {&s->v, &s->sk, &s->sq, &s->u, &s->o};
    s->state = efla_cpu_arena_take(&arena, dk * padded);
    s->q = efla_cpu_arena_take(&arena, dk);
    s->k = efla_cpu_arena_take(&arena, dk);
    for (size_t i = 0; i < sizeof vectors / sizeof *vectors; ++i)
        *vectors[i] = efla_cpu_arena_take(&arena, row);
    return arena.used;
}

size_t efla_cpu_recurrent_scratch(const efla_forward_args *args, const efla_cpu_plan *plan) {
    recurrent_scratch s;
    return layout(args, plan, NULL, &s);
}

static void token_step(const efla_cpu_task *task, int64_t t, const recurrent_scratch *s) {
    const efla_forward_args *a = task->args;
    const int64_t padded = task->panels * NR;
    float e, g;
    efla_cpu_load_token(task, t, s->q, s->k, &e, &g);
    efla_cpu_load_row(&a->v, task->batch_row, t, task->value_head, task->col0, task->width, s->v);
    for (int64_t j = task->width; j < padded; ++j)
        s->v[j] = 0.0f;
    task->kernels->state_dot2(a->dk, task->panels, s->state, s->k, s->q, s->sk, s->sq);
    const float kq = efla_cpu_dot(s->k, s->q, a->dk);
    for (int64_t j = 0; j < padded; ++j) {
        s->u[j] = g * s->v[j] - e * s->sk[j];
        s->o[j] = s->sq[j] + kq * s->u[j];
    }
    task->kernels->state_rank1(a->dk, task->panels, s->state, s->k, s->u);
    efla_cpu_store_row(&a->out, task->batch_row, t, task->value_head, task->col0, task->width,
                       s->o);
}

void efla_cpu_recurrent_run(const efla_cpu_task *task, void *scratch) {
    const efla_forward_args *a = task->args;
    recurrent_scratch s;
    layout(a, task->plan, scratch, &s);
    efla_cpu_load_state(a, task->sequence, task->value_head, task->col0, task->width, s.state);
    for (int64_t t = task->first; t < task->first + task->length; ++t)
        token_step(task, t, &s);
    if (a->final_state.buffer)
        efla_cpu_store_state(a, task->sequence, task->value_head, task->col0, task->width, s.state);
}
