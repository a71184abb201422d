#include "problem.h"

#include "rng.h"
#include "storage.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static double *zeroed(int64_t count) {
    return calloc((size_t)(count > 0 ? count : 1), sizeof(double));
}

static void allocate(problem *p, const problem_spec *spec, efla_dtype dtype) {
    memset(p, 0, sizeof *p);
    p->spec = *spec;
    p->dtype = dtype;
    p->B = spec->B, p->T = spec->T, p->H = spec->H, p->HV = spec->HV;
    p->Dk = spec->Dk, p->Dv = spec->Dv;
    p->N = spec->B;
    if (spec->lengths) {
        p->N = spec->num_sequences;
        p->cu_seqlens = malloc(sizeof *p->cu_seqlens * (size_t)(p->N + 1));
        p->cu_seqlens[0] = 0;
        for (int64_t n = 0; n < p->N; ++n)
            p->cu_seqlens[n + 1] = p->cu_seqlens[n] + spec->lengths[n];
    }
    p->q = zeroed(problem_q_count(p));
    p->k = zeroed(problem_q_count(p));
    p->v = zeroed(problem_v_count(p));
    p->beta = zeroed(problem_beta_count(p));
    if (spec->initial_state) p->initial_state = zeroed(problem_state_count(p));
}

void problem_create_zero(problem *p, const problem_spec *spec, efla_dtype dtype) {
    allocate(p, spec, dtype);
}

static void fill_gaussian(test_rng *rng, double *x, int64_t count, double sigma) {
    for (int64_t i = 0; i < count; ++i)
        x[i] = sigma * rng_normal(rng);
}

/* Scales x to the given Euclidean norm (a zero vector stays zero). */
static void set_norm(double *x, int64_t count, double norm) {
    double sum = 0.0;
    for (int64_t i = 0; i < count; ++i)
        sum += x[i] * x[i];
    const double factor = sum > 0.0 ? norm / sqrt(sum) : 0.0;
    for (int64_t i = 0; i < count; ++i)
        x[i] *= factor;
}

static void draw_key(test_rng *rng, key_profile profile, int64_t t, double *k, int64_t dk) {
    static const double hard_scales[] = {0.0, 1e-3, 1e-2, 1.0, 10.0, 100.0};
    fill_gaussian(rng, k, dk, 1.0);
    if (profile == KEYS_GAUSSIAN) {
        set_norm(k, dk, exp(rng_range(rng, log(0.5), log(4.0))));
    } else if (profile == KEYS_SMALL) {
        set_norm(k, dk, sqrt(rng_range(rng, 0.2, 0.8)));
    } else if (profile == KEYS_WIDE) {
        const double factor = rng_range(rng, 0.2, 3.0);
        for (int64_t i = 0; i < dk; ++i)
            k[i] *= factor;
    } else {
        /* the first six tokens take every scale, so every chunk start sees all of them */
        const uint32_t kind = t < 6 ? (uint32_t)t : rng_below(rng, 6);
        for (int64_t i = 0; i < dk; ++i)
            k[i] *= hard_scales[kind];
    }
}

static double draw_beta(test_rng *rng, beta_profile profile) {
    switch (profile) {
    case BETA_ZERO: return 0.0;
    case BETA_LARGE: return 50.0;
    case BETA_MIXED: {
        const uint32_t kind = rng_below(rng, 4);
        return kind == 0   ? 0.0
               : kind == 1 ? rng_uniform(rng)
               : kind == 2 ? rng_range(rng, 0, 5)
                           : 50.0;
    }
    default: return rng_uniform(rng);
    }
}

static void round_all(efla_dtype dtype, double *x, int64_t count) {
    for (int64_t i = 0; i < count; ++i)
        x[i] = storage_round(dtype, x[i]);
}

void problem_create(problem *p, const problem_spec *spec, efla_dtype dtype, uint64_t data_seed) {
    allocate(p, spec, dtype);
    test_rng rng = {data_seed};
    fill_gaussian(&rng, p->q, problem_q_count(p), 1.0);
    fill_gaussian(&rng, p->v, problem_v_count(p), 1.0);
    for (int64_t b = 0; b < p->B; ++b)
        for (int64_t t = 0; t < p->T; ++t)
            for (int64_t h = 0; h < p->H; ++h)
                draw_key(&rng, spec->keys, t, p->k + ((b * p->T + t) * p->H + h) * p->Dk, p->Dk);
    for (int64_t i = 0; i < problem_beta_count(p); ++i)
        p->beta[i] = draw_beta(&rng, spec->betas);
    round_all(dtype, p->q, problem_q_count(p));
    round_all(dtype, p->k, problem_q_count(p));
    round_all(dtype, p->v, problem_v_count(p));
    round_all(dtype, p->beta, problem_beta_count(p));
    if (p->initial_state) {
        double sigma = spec->state_sigma > 0 ? spec->state_sigma : 0.3;
        fill_gaussian(&rng, p->initial_state, problem_state_count(p), sigma);
        round_all(EFLA_DTYPE_F32, p->initial_state, problem_state_count(p));
    }
}

void problem_destroy(problem *p) {
    free(p->cu_seqlens);
    free(p->q);
    free(p->k);
    free(p->v);
    free(p->beta);
    free(p->initial_state);
    memset(p, 0, sizeof *p);
}

double problem_scale(const problem *p) {
    return p->spec.scale != 0.0f ? (double)p->spec.scale : 1.0 / sqrt((double)p->Dk);
}

static ref_problem as_reference(const problem *p) {
    ref_problem r = {
        .B = p->B,
        .T = p->T,
        .H = p->H,
        .HV = p->HV,
        .Dk = p->Dk,
        .Dv = p->Dv,
        .N = p->N,
        .cu_seqlens = p->cu_seqlens,
        .q = p->q,
        .k = p->k,
        .v = p->v,
        .beta = p->beta,
        .initial_state = p->initial_state,
        .scale = problem_scale(p),
        .delta_mode = p->spec.mode == EFLA_MODE_DELTA,
        .l2norm_q = (p->spec.flags & EFLA_FORWARD_L2NORM_Q) != 0,
        .l2norm_k = (p->spec.flags & EFLA_FORWARD_L2NORM_K) != 0,
    };
    return r;
}

void problem_reference(const problem *p, double **out, double **final_state, double **state_peak) {
    *out = zeroed(problem_v_count(p));
    *final_state = zeroed(problem_state_count(p));
    double *peak = state_peak ? zeroed(p->N * p->HV) : NULL;
    ref_problem r = as_reference(p);
    ref_forward(&r, *out, *final_state, peak);
    if (state_peak) *state_peak = peak;
}

void problem_sequence(const problem *p, int64_t n, int64_t *row, int64_t *first, int64_t *length) {
    ref_problem r = as_reference(p);
    ref_sequence(&r, n, row, first, length);
}

/* Copies rows [first, first + count) of a [B, T, inner] array. */
static void copy_tokens(const double *src, double *dst, int64_t B, int64_t T, int64_t inner,
                        int64_t first, int64_t count) {
    for (int64_t b = 0; b < B; ++b)
        memcpy(dst + b * count * inner, src + (b * T + first) * inner,
               sizeof *dst * (size_t)(count * inner));
}

void problem_slice_tokens(const problem *p, int64_t first, int64_t count,
                          const double *initial_state, problem *slice) {
    problem_spec spec = p->spec;
    spec.T = count;
    spec.lengths = NULL;
    spec.num_sequences = 0;
    spec.initial_state = initial_state != NULL;
    allocate(slice, &spec, p->dtype);
    copy_tokens(p->q, slice->q, p->B, p->T, p->H * p->Dk, first, count);
    copy_tokens(p->k, slice->k, p->B, p->T, p->H * p->Dk, first, count);
    copy_tokens(p->v, slice->v, p->B, p->T, p->HV * p->Dv, first, count);
    copy_tokens(p->beta, slice->beta, p->B, p->T, p->HV, first, count);
    if (initial_state)
        memcpy(slice->initial_state, initial_state,
               sizeof *initial_state * (size_t)problem_state_count(slice));
}
