/* The f32 FMA peak: each thread runs many independent multiply-add chains
 * (enough to hide the FMA latency on two pipes) in the widest vectors the
 * CPU has, chosen at run time. */
#include "cpu_peaks.h"

#include "cli_util.h"

#include <pthread.h>
#include <stdlib.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define FMA_PEAK_X86 1
#endif

enum { ROUNDS_PER_CALL = 1 << 16 };

/* The twelve chains written out, so they stay in registers. */
#define CHAINS_12(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)
#define CHAINS_16(X) CHAINS_12(X) X(12) X(13) X(14) X(15)

typedef double (*fma_kernel)(float *sink);

#ifdef FMA_PEAK_X86
__attribute__((target("avx2,fma"))) static double fma_avx2(float *sink) {
    const __m256 a = _mm256_set1_ps(0.99999994f), b = _mm256_set1_ps(1e-7f);
#define DECLARE(i) __m256 acc##i = _mm256_set1_ps((float)(i));
#define STEP(i) acc##i = _mm256_fmadd_ps(acc##i, a, b);
#define SUM(i) total = _mm256_add_ps(total, acc##i);
    CHAINS_12(DECLARE)
    for (int r = 0; r < ROUNDS_PER_CALL; ++r) {
        CHAINS_12(STEP)
    }
    __m256 total = _mm256_setzero_ps();
    CHAINS_12(SUM)
    float lanes[8];
    _mm256_storeu_ps(lanes, total);
    *sink += lanes[0];
    return (double)ROUNDS_PER_CALL * 12 * 8 * 2;
#undef DECLARE
#undef STEP
#undef SUM
}

__attribute__((target("avx512f"))) static double fma_avx512(float *sink) {
    const __m512 a = _mm512_set1_ps(0.99999994f), b = _mm512_set1_ps(1e-7f);
#define DECLARE(i) __m512 acc##i = _mm512_set1_ps((float)(i));
#define STEP(i) acc##i = _mm512_fmadd_ps(acc##i, a, b);
#define SUM(i) total = _mm512_add_ps(total, acc##i);
    CHAINS_16(DECLARE)
    for (int r = 0; r < ROUNDS_PER_CALL; ++r) {
        CHAINS_16(STEP)
    }
    __m512 total = _mm512_setzero_ps();
    CHAINS_16(SUM)
    *sink += _mm512_reduce_add_ps(total);
    return (double)ROUNDS_PER_CALL * 16 * 16 * 2;
#undef DECLARE
#undef STEP
#undef SUM
}
#endif

/* Without a known ISA: 4-wide vector multiply-adds (2 FLOP per lane). */
typedef float float4 __attribute__((vector_size(16)));

static double fma_portable(float *sink) {
    const float4 a = {0.99999994f, 0.99999994f, 0.99999994f, 0.99999994f};
    const float4 b = {1e-7f, 1e-7f, 1e-7f, 1e-7f};
#define DECLARE(i) float4 acc##i = {(float)(i), 0, 0, 0};
#define STEP(i) acc##i = acc##i * a + b;
#define SUM(i) total += acc##i;
    CHAINS_12(DECLARE)
    for (int r = 0; r < ROUNDS_PER_CALL; ++r) {
        CHAINS_12(STEP)
    }
    float4 total = {0, 0, 0, 0};
    CHAINS_12(SUM)
    *sink += total[0] + total[1] + total[2] + total[3];
    return (double)ROUNDS_PER_CALL * 12 * 4 * 2;
#undef DECLARE
#undef STEP
#undef SUM
}

static fma_kernel pick_kernel(const char **isa) {
#ifdef FMA_PEAK_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) {
        *isa = "avx512f";
        return fma_avx512;
    }
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        *isa = "avx2+fma";
        return fma_avx2;
    }
#endif
    *isa = "portable";
    return fma_portable;
}

typedef struct fma_worker {
    fma_kernel kernel;
    double seconds, flops_per_second;
    float sink;
} fma_worker;

static void *fma_worker_run(void *arg) {
    fma_worker *w = arg;
    double flop = 0.0, start = cli_now_seconds(), elapsed = 0.0;
    while (elapsed < w->seconds) {
        flop += w->kernel(&w->sink);
        elapsed = cli_now_seconds() - start;
    }
    w->flops_per_second = flop / elapsed;
    return NULL;
}

cpu_peak fma_peak_measure(uint32_t threads, double seconds) {
    cpu_peak peak = {0.0, "portable"};
    fma_kernel kernel = pick_kernel(&peak.isa);
    fma_worker *workers = calloc(threads, sizeof *workers);
    pthread_t *ids = calloc(threads, sizeof *ids);
    uint32_t started = 0;
    for (; workers && ids && started < threads; ++started) {
        workers[started] = (fma_worker){kernel, seconds, 0.0, 0.0f};
        if (pthread_create(&ids[started], NULL, fma_worker_run, &workers[started]) != 0) break;
    }
    for (uint32_t i = 0; i < started; ++i) {
        pthread_join(ids[i], NULL);
        peak.gflops += workers[i].flops_per_second * 1e-9;
    }
    if (started < threads) peak.gflops = 0.0;
    free(workers);
    free(ids);
    return peak;
}
