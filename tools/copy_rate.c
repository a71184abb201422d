/* The memory copy rate: every thread copies its slice of a buffer far
 * larger than the caches, repeatedly; bytes read and written both count, as
 * in PERFORMANCE.md's device-to-device figure. */
#include "cpu_peaks.h"

#include "cli_util.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

enum { COPY_BYTES = 256 << 20 };

typedef struct copy_worker {
    unsigned char *source, *destination;
    size_t bytes;
    double seconds, bytes_per_second;
} copy_worker;

static void *copy_worker_run(void *arg) {
    copy_worker *w = arg;
    memset(w->source, 1, w->bytes); /* fault the pages in before timing */
    memset(w->destination, 0, w->bytes);
    double moved = 0.0, start = cli_now_seconds(), elapsed = 0.0;
    while (elapsed < w->seconds) {
        memcpy(w->destination, w->source, w->bytes);
        moved += 2.0 * (double)w->bytes;
        elapsed = cli_now_seconds() - start;
    }
    w->bytes_per_second = moved / elapsed;
    return NULL;
}

double copy_rate_measure(uint32_t threads, double seconds) {
    unsigned char *source = malloc(COPY_BYTES), *destination = malloc(COPY_BYTES);
    copy_worker *workers = calloc(threads, sizeof *workers);
    pthread_t *ids = calloc(threads, sizeof *ids);
    size_t slice = COPY_BYTES / threads;
    uint32_t started = 0;
    for (; source && destination && workers && ids && started < threads; ++started) {
        size_t at = started * slice;
        workers[started] = (copy_worker){source + at, destination + at, slice, seconds, 0.0};
        if (pthread_create(&ids[started], NULL, copy_worker_run, &workers[started]) != 0) break;
    }
    double rate = 0.0;
    for (uint32_t i = 0; i < started; ++i) {
        pthread_join(ids[i], NULL);
        rate += workers[i].bytes_per_second * 1e-9;
    }
    free(source);
    free(destination);
    free(workers);
    free(ids);
    return started == threads ? rate : 0.0;
}
