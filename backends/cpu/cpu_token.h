/* Per-token preparation shared by both algorithms (ALGORITHM.md §2.6):
 * q scaled (after an optional L2 norm); k replaced by the unit key k̂ with
 * the erase coefficient e and the write coefficient g, so that one token
 * does S += k̂ (g v - e S^T k̂)^T. */
#ifndef EFLA_CPU_TOKEN_H
#define EFLA_CPU_TOKEN_H

#include "core/backend.h"

struct efla_cpu_task;

void efla_cpu_prepare_query(const efla_forward_args *a, float *q);

/* k (Dk floats) becomes k̂; a zero key gives k̂ = 0 and e = g = 0, an exact
 * no-op. */
void efla_cpu_prepare_key(const efla_forward_args *a, float *k, float beta, float *erase,
                          float *write);

/* sum x_i y_i in a fixed order (eight interleaved partial sums). */
float efla_cpu_dot(const float *x, const float *y, int64_t n);

/* Prefetches token t's q, k, v rows (and its output row, for writing):
 * one of them (which = 0..3) or all. */
#define EFLA_CPU_TOKEN_ROWS 4
void efla_cpu_prefetch_token_row(const struct efla_cpu_task *task, int64_t t, int which);
void efla_cpu_prefetch_token(const struct efla_cpu_task *task, int64_t t);

/* Loads token t's q, k (head task->head), beta and prepares them. */
void efla_cpu_load_token(const struct efla_cpu_task *task, int64_t t, float *q, float *k,
                         float *erase, float *write);

#endif
