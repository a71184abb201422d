#include "reference.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

double ref_alpha(double beta, double lambda) {
    const double x = beta * lambda;
    if (x <= 1e-4) return beta * (1.0 - x / 2.0 + x * x / 6.0 - x * x * x / 24.0);
    return -expm1(-x) / lambda;
}

void ref_sequence(const ref_problem *p, int64_t n, int64_t *row, int64_t *first, int64_t *length) {
    if (p->cu_seqlens) {
        *row = 0;
        *first = p->cu_seqlens[n];
        *length = p->cu_seqlens[n + 1] - p->cu_seqlens[n];
    } else {
        *row = n;
        *first = 0;
        *length = p->T;
    }
}

static void load_normalized(const double *src, int64_t n, bool normalize, double *dst) {
    double sum = 0.0;
    for (int64_t i = 0; i < n; ++i)
        sum += src[i] * src[i];
    const double factor = normalize ? 1.0 / sqrt(sum + 1e-6) : 1.0;
    for (int64_t i = 0; i < n; ++i)
        dst[i] = src[i] * factor;
}

/* One token: u = v - S^T k; S += alpha k u^T; o = scale S^T q. */
static void step(const ref_problem *p, const double *q, const double *k, const double *v,
                 double beta, double *state, double *u, double *o) {
    const int64_t dk = p->Dk, dv = p->Dv;
    double lambda = 0.0;
    for (int64_t i = 0; i < dk; ++i)
        lambda += k[i] * k[i];
    const double alpha = p->delta_mode ? beta : ref_alpha(beta, lambda);
    for (int64_t j = 0; j < dv; ++j) {
        double projection = 0.0;
        for (int64_t i = 0; i < dk; ++i)
            projection += state[i * dv + j] * k[i];
        u[j] = v[j] - projection;
    }
    for (int64_t i = 0; i < dk; ++i)
        for (int64_t j = 0; j < dv; ++j)
            state[i * dv + j] += alpha * k[i] * u[j];
    for (int64_t j = 0; j < dv; ++j) {
        double sum = 0.0;
        for (int64_t i = 0; i < dk; ++i)
            sum += state[i * dv + j] * q[i];
        o[j] = p->scale * sum;
    }
}

static double frobenius(const double *x, int64_t count) {
    double sum = 0.0;
    for (int64_t i = 0; i < count; ++i)
        sum += x[i] * x[i];
    return sqrt(sum);
}

/* Returns the largest Frobenius norm the state had, the initial one included. */
static double run_slice(const ref_problem *p, int64_t n, int64_t hv, double *scratch, double *out,
                        double *final_state) {
    const int64_t dk = p->Dk, dv = p->Dv, h = hv / (p->HV / p->H);
    double *state = final_state + (n * p->HV + hv) * dk * dv;
    double *q = scratch, *k = q + dk, *u = k + dk;
    if (p->initial_state)
        memcpy(state, p->initial_state + (n * p->HV + hv) * dk * dv,
               sizeof *state * (size_t)(dk * dv));
    else
        memset(state, 0, sizeof *state * (size_t)(dk * dv));
    double peak = frobenius(state, dk * dv);
    int64_t row, first, length;
    ref_sequence(p, n, &row, &first, &length);
    for (int64_t t = first; t < first + length; ++t) {
        const int64_t token = row * p->T + t;
        load_normalized(p->q + (token * p->H + h) * dk, dk, p->l2norm_q, q);
        load_normalized(p->k + (token * p->H + h) * dk, dk, p->l2norm_k, k);
        step(p, q, k, p->v + (token * p->HV + hv) * dv, p->beta[token * p->HV + hv], state, u,
             out + (token * p->HV + hv) * dv);
        peak = fmax(peak, frobenius(state, dk * dv));
    }
    return peak;
}

void ref_forward(const ref_problem *p, double *out, double *final_state, double *state_peak) {
    double *scratch = malloc(sizeof *scratch * (size_t)(2 * p->Dk + p->Dv + 1));
    for (int64_t n = 0; n < p->N; ++n)
        for (int64_t hv = 0; hv < p->HV; ++hv) {
            const double peak = run_slice(p, n, hv, scratch, out, final_state);
            if (state_peak) state_peak[n * p->HV + hv] = peak;
        }
    free(scratch);
}
