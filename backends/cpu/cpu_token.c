#include "backends/cpu/cpu_token.h"
#include "backends/cpu/cpu_plan.h"
#include "backends/cpu/cpu_tensor.h"

#include "core/alpha.h"

#include <math.h>

/* sum x_i y_i in eight interleaved partial sums combined in a fixed
 * tree: shorter dependency chains, and the same order on every run. */
float efla_cpu_dot(const float *x, const float *y, int64_t n) {
    float part[8] = {0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; ++j)
            part[j] += x[i + j] * y[i + j];
    for (; i < n; ++i)
        part[i & 7] += x[i] * y[i];
    return ((part[0] + part[4]) + (part[1] + part[5])) +
           ((part[2] + part[6]) + (part[3] + part[7]));
}

static void l2_normalize(float *x, int64_t n) {
    float sum = efla_cpu_dot(x, x, n);
    float inv = 1.0f / sqrtf(sum + 1e-6f);
    for (int64_t i = 0; i < n; ++i)
        x[i] *= inv;
}

void efla_cpu_prepare_query(const efla_forward_args *a, float *q) {
    if (a->l2norm_q) l2_normalize(q, a->dk);
    for (int64_t i = 0; i < a->dk; ++i)
        q[i] *= a->scale;
}

/* |k| without overflow or loss to underflow: rescaled by the largest
 * magnitude when the plain sum of squares leaves the safe range. Sets
 * *lambda = |k|^2 as well as it can be represented. */
static float key_norm(const float *k, int64_t n, float *lambda) {
    float sum = efla_cpu_dot(k, k, n);
    if (sum >= 0x1p-100f && sum <= 0x1p100f) {
        *lambda = sum;
        return sqrtf(sum);
    }
    float largest = 0.0f;
    for (int64_t i = 0; i < n; ++i)
        largest = fmaxf(largest, fabsf(k[i]));
    if (largest == 0.0f || !isfinite(largest)) {
        *lambda = largest == 0.0f ? 0.0f : INFINITY;
        return largest;
    }
    float scaled = 0.0f;
    for (int64_t i = 0; i < n; ++i)
        scaled += (k[i] / largest) * (k[i] / largest);
    float norm = largest * sqrtf(scaled);
    *lambda = norm * norm;
    return norm;
}

void efla_cpu_prepare_key(const efla_forward_args *a, float *k, float beta, float *erase,
                          float *write) {
    const int64_t n = a->dk;
    if (a->l2norm_k) l2_normalize(k, n);
    float lambda;
    float norm = key_norm(k, n, &lambda);
    if (norm == 0.0f || !isfinite(norm)) {
        for (int64_t i = 0; i < n; ++i)
            k[i] = 0.0f;
        *erase = *write = 0.0f;
        return;
    }
    if (norm >= 0x1p-60f) {
        float inv = 1.0f / norm;
        for (int64_t i = 0; i < n; ++i)
            k[i] *= inv;
    } else {
        for (int64_t i = 0; i < n; ++i)
            k[i] /= norm;
    }
    if (a->mode == EFLA_MODE_DELTA) {
        /* alpha = beta: I - beta k k^T = I - (beta lambda) k̂ k̂^T. */
        *erase = beta * lambda;
        *write = beta * norm;
        return;
    }
    /* e = 1 - exp(-x), g = alpha |k| = e / |k|, x = beta lambda; the
     * series of core/alpha.h below its limit avoids 0/0. */
    float x = beta == 0.0f ? 0.0f : beta * lambda;
    *erase = efla_erase_coefficient(x);
    if (x <= EFLA_ALPHA_SERIES_LIMIT)
        *write = beta * norm * (1.0f - x * (0.5f - x * (1.0f / 6.0f - x / 24.0f)));
    else
        *write = *erase / norm;
}

void efla_cpu_prefetch_token_row(const efla_cpu_task *task, int64_t t, int which) {
    const efla_forward_args *a = task->args;
    const int64_t b = task->batch_row;
    switch (which) {
    case 0: efla_cpu_prefetch_row(&a->q, b, t, task->head, 0, a->dk, false); break;
    case 1: efla_cpu_prefetch_row(&a->k, b, t, task->head, 0, a->dk, false); break;
    case 2:
        efla_cpu_prefetch_row(&a->v, b, t, task->value_head, task->col0, task->width, false);
        break;
    default:
        efla_cpu_prefetch_row(&a->out, b, t, task->value_head, task->col0, task->width, true);
        break;
    }
}

void efla_cpu_prefetch_token(const efla_cpu_task *task, int64_t t) {
    for (int which = 0; which < EFLA_CPU_TOKEN_ROWS; ++which)
        efla_cpu_prefetch_token_row(task, t, which);
}

void efla_cpu_load_token(const efla_cpu_task *task, int64_t t, float *q, float *k, float *erase,
                         float *write) {
    const efla_forward_args *a = task->args;
    efla_cpu_load_row(task->kernels, &a->q, task->batch_row, t, task->head, 0, a->dk, q);
    efla_cpu_load_row(task->kernels, &a->k, task->batch_row, t, task->head, 0, a->dk, k);
    float beta = efla_view_load(&a->beta,
                                efla_view_index(&a->beta, task->batch_row, t, task->value_head, 0));
    efla_cpu_prepare_query(a, q);
    efla_cpu_prepare_key(a, k, beta, erase, write);
}
