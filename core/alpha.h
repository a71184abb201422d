/*
 * The EFLA step coefficients on the host (ALGORITHM.md §1.6, §2.6).
 * GPU kernels implement the same formulas in their own languages.
 */
#ifndef EFLA_CORE_ALPHA_H
#define EFLA_CORE_ALPHA_H

#include <math.h>

/* Below this x = beta * lambda the series is used (no 0/0, no clamp). */
#define EFLA_ALPHA_SERIES_LIMIT 1e-4f

/* erase = 1 - exp(-x) = -expm1(-x), in [0, 1). */
static inline float efla_erase_coefficient(float x) {
    if (x <= EFLA_ALPHA_SERIES_LIMIT) return x * (1.0f - x * (0.5f - x * (1.0f / 6.0f - x / 24.0f)));
    return -expm1f(-x);
}

/* alpha = (1 - exp(-beta * lambda)) / lambda, exact for lambda = 0 (= beta). */
static inline float efla_alpha(float beta, float lambda) {
    float x = beta * lambda;
    if (x <= EFLA_ALPHA_SERIES_LIMIT)
        return beta * (1.0f - x * (0.5f - x * (1.0f / 6.0f - x / 24.0f)));
    return -expm1f(-x) / lambda;
}

#endif
