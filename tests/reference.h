/* The float64 EFLA reference: the plain recurrence of ALGORITHM.md §2.1,
 * written for the tests alone (it shares no code with the library). */
#ifndef EFLA_TESTS_REFERENCE_H
#define EFLA_TESTS_REFERENCE_H

#include <stdbool.h>
#include <stdint.h>

/* Every array is logical and C-contiguous: q, k [B,T,H,Dk]; v [B,T,HV,Dv];
 * beta [B,T,HV]; out [B,T,HV,Dv]; states [N,HV,Dk,Dv]. */
typedef struct ref_problem {
    int64_t B, T, H, HV, Dk, Dv;
    int64_t N;                 /* B, or the number of sequences with cu_seqlens */
    const int64_t *cu_seqlens; /* N + 1 offsets into batch row 0, or NULL */
    const double *q, *k, *v, *beta;
    const double *initial_state; /* NULL: zeros */
    double scale;                /* already resolved (Dk^-1/2 when the caller gave 0) */
    bool delta_mode;             /* alpha = beta */
    bool l2norm_q, l2norm_k;     /* x / sqrt(sum x^2 + 1e-6) first */
} ref_problem;

/* alpha = (1 - exp(-beta*lambda)) / lambda, with a series where
 * beta*lambda is small (exact at lambda = 0). */
double ref_alpha(double beta, double lambda);

/* Batch row, first token and length of sequence n. */
void ref_sequence(const ref_problem *p, int64_t n, int64_t *row, int64_t *first, int64_t *length);

/* Runs the recurrence; writes every element of out and of final_state, and
 * unless NULL state_peak [N,HV]: the largest Frobenius norm each state had
 * along its sequence, the initial state included. Float32 rounding error
 * scales with that peak, not with the final state, which cancellation can
 * leave far smaller. */
void ref_forward(const ref_problem *p, double *out, double *final_state, double *state_peak);

#endif
