#include "bench_stats.h"

#include <stdlib.h>

static int compare_doubles(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double percentile(const double *sorted, size_t count, double fraction) {
    double position = fraction * (double)(count - 1);
    size_t below = (size_t)position;
    if (below + 1 >= count) return sorted[count - 1];
    double weight = position - (double)below;
    return sorted[below] * (1.0 - weight) + sorted[below + 1] * weight;
}

bench_stats bench_stats_of(double *ms, size_t count) {
    bench_stats stats = {0.0, 0.0, 0.0};
    if (count == 0) return stats;
    qsort(ms, count, sizeof *ms, compare_doubles);
    stats.median_ms = percentile(ms, count, 0.5);
    stats.p10_ms = percentile(ms, count, 0.1);
    stats.p90_ms = percentile(ms, count, 0.9);
    return stats;
}

bench_work bench_work_of(const bench_shape *s, efla_dtype storage) {
    const double tokens = (double)s->b * (double)s->t;
    const double element = (double)efla_dtype_size(storage);
    const double state = (double)s->b * (double)s->hv * (double)s->dk * (double)s->dv * 4.0;
    bench_work work;
    work.tokens = tokens;
    work.flop = 6.0 * (double)s->dk * (double)s->dv * (double)s->hv * tokens;
    work.bytes = element * tokens *
                     (2.0 * (double)s->h * (double)s->dk + 2.0 * (double)s->hv * (double)s->dv +
                      (double)s->hv) +
                 state * (s->decode ? 2.0 : 1.0);
    return work;
}
