/* One forward problem on the host: its dimensions, options and inputs,
 * already rounded to the storage dtype exactly as a device will hold them,
 * and its float64 reference answer. */
#ifndef EFLA_TESTS_PROBLEM_H
#define EFLA_TESTS_PROBLEM_H

#include "reference.h"

#include "efla/efla.h"

#include <stdbool.h>
#include <stdint.h>

/* How keys are drawn, per token. */
typedef enum key_profile {
    KEYS_GAUSSIAN, /* norms log-uniform in [0.5, 4] */
    KEYS_HARD,     /* element scale per token from {0, 1e-3, 1e-2, 1, 10, 1e2} */
    KEYS_SMALL,    /* |k|^2 in [0.2, 0.8]: DeltaNet with raw keys stays stable */
    KEYS_WIDE,     /* Gaussian elements times U(0.2, 3) per token: most steps nearly erase */
} key_profile;

/* How beta is drawn, per (token, value head). */
typedef enum beta_profile {
    BETA_UNIFORM, /* U(0, 1), like a sigmoid gate */
    BETA_ZERO,    /* 0: the state never changes */
    BETA_LARGE,   /* 50: every step is (nearly) a full overwrite */
    BETA_MIXED,   /* each of 0, U(0,1), U(0,5), 50 */
} beta_profile;

/* What a case asks for; the problem is built from it, a dtype and a seed. */
typedef struct problem_spec {
    int64_t B, T, H, HV, Dk, Dv;
    const int64_t *lengths; /* varlen: num_sequences lengths summing to T (B must be 1) */
    int64_t num_sequences;
    key_profile keys;
    beta_profile betas;
    bool initial_state; /* random initial states; else absent (zeros) */
    double state_sigma; /* the initial states' standard deviation; 0: 0.3 */
    efla_mode mode;
    uint32_t flags; /* EFLA_FORWARD_* */
    float scale;    /* 0: the default Dk^-1/2 */
} problem_spec;

typedef struct problem {
    problem_spec spec;
    efla_dtype dtype;
    int64_t B, T, H, HV, Dk, Dv, N;
    int64_t *cu_seqlens;                      /* N + 1 offsets, or NULL */
    double *q, *k, *v, *beta, *initial_state; /* initial_state NULL when absent */
} problem;

static inline int64_t problem_q_count(const problem *p) { return p->B * p->T * p->H * p->Dk; }
static inline int64_t problem_v_count(const problem *p) { return p->B * p->T * p->HV * p->Dv; }
static inline int64_t problem_beta_count(const problem *p) { return p->B * p->T * p->HV; }
static inline int64_t problem_state_count(const problem *p) { return p->N * p->HV * p->Dk * p->Dv; }

/* Allocates and fills a problem with seeded random inputs. */
void problem_create(problem *p, const problem_spec *spec, efla_dtype dtype, uint64_t data_seed);
/* An empty problem of the same shape and options (arrays zeroed), for
 * tests that write their own inputs; values must be storage-rounded. */
void problem_create_zero(problem *p, const problem_spec *spec, efla_dtype dtype);
void problem_destroy(problem *p);

/* The scale the library resolves: spec.scale, or Dk^-1/2 when it is 0. */
double problem_scale(const problem *p);

/* The reference out [B,T,HV,Dv], final state [N,HV,Dk,Dv] and, unless
 * state_peak is NULL, each state's peak norm [N,HV] (ref_forward); malloc'd. */
void problem_reference(const problem *p, double **out, double **final_state, double **state_peak);

/* Batch row, first token and length of sequence n. */
void problem_sequence(const problem *p, int64_t n, int64_t *row, int64_t *first, int64_t *length);

/* A copy holding tokens [first, first + count) of every batch row, with the
 * given initial state (NULL: none). For state-carry tests (no varlen). */
void problem_slice_tokens(const problem *p, int64_t first, int64_t count,
                          const double *initial_state, problem *slice);

#endif
