/*
 * The chunked algorithm (ALGORITHM.md §2.2) in the two-coefficient
 * normalised form (§2.6), for one task: columns [col0, col0 + width) of one
 * (sequence, value head). Per chunk of C tokens, with Q already scaled:
 *
 * state-free (identical for every Dv tile):
 *   G    = [Q; K̂] K̂^T                       lower blocks only
 *   P    = lower-incl(Q K̂^T),  L̂ = strict-lower(diag(e) K̂ K̂^T)
 *   Âinv = (I + L̂)^{-1}                      forward substitution
 *   P̃    = P Âinv                            lower-incl
 * per state panel (NR columns of S, V, O):
 *   X    = [Q; K̂] S
 *   R    = g ⊙ V - e ⊙ (K̂ S)
 *   V'   = Âinv R                            (= U - W S of §2.2)
 *   O    = Q S + P̃ R                         (= Q S + P V')
 *   S   += K̂^T V'
 *
 * W = Âinv (e ⊙ K̂) and U = Âinv (g ⊙ V) are never formed: V' = Âinv R
 * costs what U alone would, and every state-dependent step is a plain
 * blocked product.
 */
#include "backends/cpu/cpu_plan.h"
#include "backends/cpu/cpu_scratch.h"
#include "backends/cpu/cpu_share.h"
#include "backends/cpu/cpu_tensor.h"
#include "backends/cpu/cpu_token.h"

#include <sched.h>
#include <string.h>

#define NR EFLA_CPU_NR

typedef struct chunk_scratch {
    float *state; /* Dk x padded width, panels */
    float *a;     /* 2C rows of lda: Q then K̂ */
    float *kt;    /* K̂^T: C/NR panels of Dk rows */
    float *g;     /* 2C x C: Q K̂^T then K̂ K̂^T, masked in place to P then -L̂ */
    float *inv;   /* 2C x C: Âinv then P̃ */
    float *x;     /* per panel 2C x NR: Q S then K̂ S, the latter replaced by V' */
    float *v;     /* per panel C x NR: V, then R */
    float *erase, *write;
    int64_t lda;
} chunk_scratch;

static size_t layout(const efla_forward_args *a, const efla_cpu_plan *plan, char *base,
                     chunk_scratch *s) {
    const size_t c = (size_t)plan->chunk, dk = (size_t)a->dk, w = (size_t)plan->tile_width;
    const size_t lda = (dk + NR - 1) / NR * NR;
    efla_cpu_arena arena = {base, 0};
    s->lda = (int64_t)lda;
    s->state = efla_cpu_arena_take(&arena, dk * w);
    s->a = efla_cpu_arena_take(&arena, 2 * c * lda);
    s->kt = efla_cpu_arena_take(&arena, c * dk);
    s->g = efla_cpu_arena_take(&arena, 2 * c * c);
    s->inv = efla_cpu_arena_take(&arena, 2 * c * c);
    s->x = efla_cpu_arena_take(&arena, 2 * c * w);
    s->v = efla_cpu_arena_take(&arena, c * w);
    s->erase = efla_cpu_arena_take(&arena, c);
    s->write = efla_cpu_arena_take(&arena, c);
    return arena.used;
}

size_t efla_cpu_chunked_scratch(const efla_forward_args *args, const efla_cpu_plan *plan) {
    chunk_scratch s;
    return layout(args, plan, NULL, &s);
}

static int64_t min64(int64_t x, int64_t y) { return x < y ? x : y; }

/* Rows in block `index` of m rows cut into blocks of at most mr rows as
 * even as possible (32 rows by 6: 6 6 5 5 5 5, never a 2-row block that
 * would leave the FMA pipes half idle). Results do not depend on it: every
 * row is its own sum. */
typedef struct row_blocks {
    int64_t small, larger; /* the first `larger` blocks have small + 1 rows */
} row_blocks;

static row_blocks even_blocks(int64_t m, int64_t mr) {
    const int64_t blocks = (m + mr - 1) / mr;
    return (row_blocks){m / blocks, m % blocks};
}

static int64_t block_rows(row_blocks b, int64_t index) {
    return index < b.larger ? b.small + 1 : b.small;
}

/* c (m rows) (+)= a (m x np) b over one NR-column slice, in row blocks. */
static void slice_product(const efla_cpu_kernels *kern, int64_t m, int64_t np, const float *a,
                          int64_t a_rs, int64_t a_ps, const float *b, int64_t b_rs, float *c,
                          int64_t c_rs, bool accumulate) {
    const row_blocks blocks = even_blocks(m, kern->mr);
    for (int64_t r0 = 0, i = 0; r0 < m; ++i) {
        int64_t rows = block_rows(blocks, i);
        kern->block[rows](np, a + r0 * a_rs, a_rs, a_ps, b, b_rs, c + r0 * c_rs, c_rs, accumulate);
        r0 += rows;
    }
}

/* c (n rows) (+)= t b for a lower-triangular t (n x n used, row stride
 * t_rs): row block r0 needs only columns below r0 + rows. */
static void lower_product(const efla_cpu_kernels *kern, int64_t n, const float *t, int64_t t_rs,
                          const float *b, int64_t b_rs, float *c, int64_t c_rs, bool accumulate) {
    const row_blocks blocks = even_blocks(n, kern->mr);
    for (int64_t r0 = 0, i = 0; r0 < n; ++i) {
        int64_t rows = block_rows(blocks, i);
        kern->block[rows](r0 + rows, t + r0 * t_rs, t_rs, 1, b, b_rs, c + r0 * c_rs, c_rs,
                          accumulate);
        r0 += rows;
    }
}

/* Loads tokens [t0, t0 + n) into Q, K̂, e and g; rows n..C are zero. */
static void load_keys(const efla_cpu_task *task, const chunk_scratch *s, int64_t t0, int64_t n) {
    const efla_forward_args *a = task->args;
    const int64_t c = task->plan->chunk, lda = s->lda;
    float *q = s->a, *k = s->a + c * lda;
    for (int64_t r = 0; r < n; ++r)
        efla_cpu_load_token(task, t0 + r, q + r * lda, k + r * lda, &s->erase[r], &s->write[r]);
    for (int64_t r = n; r < c; ++r) {
        memset(q + r * lda, 0, sizeof *q * (size_t)a->dk);
        memset(k + r * lda, 0, sizeof *k * (size_t)a->dk);
        s->erase[r] = s->write[r] = 0.0f;
    }
}

/* Loads the task's columns of V for tokens [t0, t0 + n); rows n..C are zero. */
static void load_values(const efla_cpu_task *task, const chunk_scratch *s, int64_t t0, int64_t n) {
    const efla_forward_args *a = task->args;
    const int64_t c = task->plan->chunk;
    for (int64_t r = 0; r < n; ++r)
        efla_cpu_load_row_panels(task->kernels, &a->v, task->batch_row, t0 + r, task->value_head,
                                 task->col0, task->width, s->v, c, r);
    for (int64_t r = n; r < c; ++r)
        for (int64_t p = 0; p < task->panels; ++p)
            memset(s->v + (p * c + r) * NR, 0, sizeof *s->v * NR);
}

/* K̂^T as panels: the right-hand side of the Gram products. */
static void transpose_keys(const efla_cpu_task *task, const chunk_scratch *s) {
    const int64_t c = task->plan->chunk, dk = task->args->dk, lda = s->lda;
    const float *k = s->a + c * lda;
    for (int64_t jp = 0; jp < c / NR; ++jp)
        task->kernels->transpose(k + jp * NR * lda, lda, dk, s->kt + jp * dk * NR);
}

/* Rows 0..C of G become P (diagonal kept), rows C..2C become -L̂; rows of
 * missing tokens (n..C) become zero. */
static void mask_gram(const efla_cpu_task *task, const chunk_scratch *s, int64_t n) {
    const int64_t c = task->plan->chunk;
    for (int64_t i = 0; i < c; ++i) {
        float *prow = s->g + i * c, *nrow = s->g + (c + i) * c;
        const float scale = -s->erase[i];
        if (i >= n) {
            memset(prow, 0, sizeof *prow * (size_t)c);
            memset(nrow, 0, sizeof *nrow * (size_t)c);
            continue;
        }
        for (int64_t j = 0; j < i; ++j)
            nrow[j] *= scale;
        for (int64_t j = i; j < c; ++j)
            nrow[j] = 0.0f;
        for (int64_t j = i + 1; j < c; ++j)
            prow[j] = 0.0f;
    }
}

/* G = [Q; K̂] K̂^T on the blocks at or below the diagonal, then masked. */
static void gram(const efla_cpu_task *task, const chunk_scratch *s, int64_t n) {
    const efla_cpu_kernels *kern = task->kernels;
    const int64_t c = task->plan->chunk, dk = task->args->dk, lda = s->lda;
    transpose_keys(task, s);
    for (int64_t half = 0; half < 2; ++half)
        for (int64_t r0 = 0; r0 < n; r0 += kern->mr) {
            int64_t rows = min64(n - r0, kern->mr);
            const float *arow = s->a + (half * c + r0) * lda;
            float *grow = s->g + (half * c + r0) * c;
            for (int64_t jp = 0; jp * NR < r0 + rows; ++jp)
                kern->block[rows](dk, arow, lda, 1, s->kt + jp * dk * NR, NR, grow + jp * NR, c,
                                  false);
        }
    mask_gram(task, s, n);
}

/* Âinv = (I + L̂)^{-1} by forward substitution on I, one NR-column slice
 * at a time from the slice's first nonzero row; then P̃ = P Âinv. */
static void inverse(const efla_cpu_task *task, const chunk_scratch *s) {
    const efla_cpu_kernels *kern = task->kernels;
    const int64_t c = task->plan->chunk;
    const float *pmat = s->g, *nmat = s->g + c * c;
    float *ainv = s->inv, *ptilde = s->inv + c * c;
    memset(ainv, 0, sizeof *ainv * (size_t)(c * c));
    for (int64_t i = 0; i < c; ++i)
        ainv[i * c + i] = 1.0f;
    for (int64_t j0 = 0; j0 < c; j0 += NR) {
        const float *nsub = nmat + j0 * c + j0;
        float *xsub = ainv + j0 * c + j0;
        for (int64_t r0 = 0; r0 < c - j0; r0 += kern->mr)
            kern->solve[min64(c - j0 - r0, kern->mr)](r0, nsub, c, xsub, c);
    }
    for (int64_t r0 = 0; r0 < c; r0 += kern->mr) {
        int64_t rows = min64(c - r0, kern->mr);
        for (int64_t j0 = 0; j0 < r0 + rows; j0 += NR)
            kern->block[rows](r0 + rows - j0, pmat + r0 * c + j0, c, 1, ainv + j0 * c + j0, c,
                              ptilde + r0 * c + j0, c, false);
    }
}

/* Share `part` of `parts` of the next chunk's rows (q, k, v, out of each
 * token): the requests spread over this chunk's products instead of
 * queueing in bursts that stall on the cache's miss buffers. */
static void prefetch_next(const efla_cpu_task *task, int64_t next, int64_t part, int64_t parts) {
    const int64_t end = task->first + task->length;
    const int64_t rows = EFLA_CPU_TOKEN_ROWS * min64(end - next, task->plan->chunk);
    for (int64_t i = rows * part / parts; i < rows * (part + 1) / parts; ++i)
        efla_cpu_prefetch_token_row(task, next + i / EFLA_CPU_TOKEN_ROWS,
                                    (int)(i % EFLA_CPU_TOKEN_ROWS));
}

/* One state panel p through one chunk of n tokens at t0: X = [Q; K̂] S_p,
 * R = g V - e (K̂ S_p), V' = Âinv R, O = Q S_p + P̃ R, S_p += K̂^T V'. The
 * panel stays in L1 from its first read to its update. */
static void state_panel(const efla_cpu_task *task, const chunk_scratch *s, int64_t p, int64_t t0,
                        int64_t n) {
    const efla_cpu_kernels *kern = task->kernels;
    const int64_t c = task->plan->chunk, dk = task->args->dk, lda = s->lda;
    const int64_t parts = 2 * task->panels;
    const float *k = s->a + c * lda, *ainv = s->inv, *ptilde = s->inv + c * c;
    float *sp = s->state + p * dk * NR, *vp = s->v + p * c * NR;
    float *xq = s->x + p * 2 * c * NR, *xk = xq + c * NR;
    prefetch_next(task, t0 + c, 2 * p, parts);
    if (n == c) {
        slice_product(kern, 2 * c, dk, s->a, lda, 1, sp, NR, xq, NR, false);
    } else {
        slice_product(kern, n, dk, s->a, lda, 1, sp, NR, xq, NR, false);
        slice_product(kern, n, dk, k, lda, 1, sp, NR, xk, NR, false);
    }
    for (int64_t r = 0; r < n; ++r)
        for (int64_t j = 0; j < NR; ++j)
            vp[r * NR + j] = s->write[r] * vp[r * NR + j] - s->erase[r] * xk[r * NR + j];
    lower_product(kern, n, ainv, c, vp, NR, xk, NR, false);
    lower_product(kern, n, ptilde, c, vp, NR, xq, NR, true);
    prefetch_next(task, t0 + c, 2 * p + 1, parts);
    slice_product(kern, dk, n, k, 1, lda, xk, NR, sp, NR, true);
}

/* Everything that touches the state, for one chunk of n tokens at t0. */
static void state_chunk(const efla_cpu_task *task, const chunk_scratch *s, int64_t t0, int64_t n) {
    const efla_forward_args *a = task->args;
    const int64_t c = task->plan->chunk;
    for (int64_t p = 0; p < task->panels; ++p)
        state_panel(task, s, p, t0, n);
    for (int64_t r = 0; r < n; ++r)
        efla_cpu_store_row_panels(task->kernels, &a->out, task->batch_row, t0 + r, task->value_head,
                                  task->col0, task->width, s->x, 2 * c, r);
}

static void state_free(const efla_cpu_task *task, const chunk_scratch *s, int64_t t0, int64_t n) {
    load_keys(task, s, t0, n);
    gram(task, s, n);
    inverse(task, s);
}

/* s with its state-free arrays (Q̃ K̂, Âinv P̃, e, g) in shared chunk `index`. */
static chunk_scratch shared_view(const efla_cpu_task *task, const chunk_scratch *s, int64_t index) {
    const int64_t c = task->plan->chunk;
    chunk_scratch view = *s;
    efla_cpu_arena arena = {
        (char *)(task->share->data +
                 (size_t)index * efla_cpu_share_chunk_floats(task->args, task->plan)),
        0};
    view.a = efla_cpu_arena_take(&arena, (size_t)(2 * c * s->lda));
    view.inv = efla_cpu_arena_take(&arena, (size_t)(2 * c * c));
    view.erase = efla_cpu_arena_take(&arena, (size_t)c);
    view.write = efla_cpu_arena_take(&arena, (size_t)c);
    return view;
}

/* Computes shared chunk `index` if nobody has claimed it; true if it did. */
static bool claim(const efla_cpu_task *task, const chunk_scratch *s, int64_t index) {
    atomic_int *state = &task->share->state[index];
    int expected = EFLA_CPU_CHUNK_EMPTY;
    if (atomic_load_explicit(state, memory_order_relaxed) != EFLA_CPU_CHUNK_EMPTY ||
        !atomic_compare_exchange_strong(state, &expected, EFLA_CPU_CHUNK_BUSY))
        return false;
    const int64_t c = task->plan->chunk;
    const chunk_scratch view = shared_view(task, s, index);
    state_free(task, &view, task->first + index * c, min64(task->length - index * c, c));
    atomic_store_explicit(state, EFLA_CPU_CHUNK_READY, memory_order_release);
    return true;
}

/* Polls of a busy chunk before a tile gives its core away: a chunk takes
 * some 10-20 microseconds, a yield to another process can take a whole
 * time slice. */
#define EFLA_CPU_SPINS_BEFORE_YIELD 20000

static void relax(int64_t *spins) {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    __builtin_ia32_pause();
#endif
    if (++*spins > EFLA_CPU_SPINS_BEFORE_YIELD) {
        sched_yield();
        *spins = 0;
    }
}

/* The state-free arrays of chunk `index`: from the shared chunk (computed
 * here if unclaimed; while another tile computes it, this one computes
 * any later unclaimed chunk instead of idling: every chunk is needed by
 * every tile), or computed into s without sharing. */
static chunk_scratch obtain_chunk(const efla_cpu_task *task, const chunk_scratch *s,
                                  int64_t index) {
    const int64_t c = task->plan->chunk;
    if (!task->share) {
        state_free(task, s, task->first + index * c, min64(task->length - index * c, c));
        return *s;
    }
    int64_t ahead = index + 1, spins = 0;
    for (;;) {
        int state = atomic_load_explicit(&task->share->state[index], memory_order_acquire);
        if (state == EFLA_CPU_CHUNK_READY || claim(task, s, index)) break;
        bool helped = false;
        for (; ahead < task->share->chunks && !helped; ++ahead)
            helped = claim(task, s, ahead);
        if (!helped) relax(&spins);
    }
    return shared_view(task, s, index);
}

void efla_cpu_chunked_run(const efla_cpu_task *task, void *scratch) {
    const efla_forward_args *a = task->args;
    const int64_t c = task->plan->chunk;
    chunk_scratch s;
    layout(a, task->plan, scratch, &s);
    efla_cpu_load_state(a, task->sequence, task->value_head, task->col0, task->width, s.state);
    for (int64_t index = 0, t0 = 0; t0 < task->length; ++index, t0 += c) {
        const int64_t n = min64(task->length - t0, c);
        const chunk_scratch view = obtain_chunk(task, &s, index);
        load_values(task, &view, task->first + t0, n);
        state_chunk(task, &view, task->first + t0, n);
    }
    if (a->final_state.buffer)
        efla_cpu_store_state(a, task->sequence, task->value_head, task->col0, task->width, s.state);
}
