/* What this CPU can do at best, measured in the same run as a benchmark:
 * the f32 FMA rate and the memory copy rate, both over `threads` threads. */
#ifndef EFLA_TOOLS_CPU_PEAKS_H
#define EFLA_TOOLS_CPU_PEAKS_H

#include <stdint.h>

typedef struct cpu_peak {
    double gflops;   /* f32 FLOP/s / 1e9 (one FMA = 2 FLOP); 0 when it failed */
    const char *isa; /* the instruction set used: "avx512f", "avx2+fma", "portable" */
} cpu_peak;

/* Independent FMA chains on every thread for about `seconds`. Needs an
 * optimised build to reach the real peak. */
cpu_peak fma_peak_measure(uint32_t threads, double seconds);

/* Bytes read plus bytes written per second / 1e9, copying buffers much
 * larger than the caches; 0 when it failed. */
double copy_rate_measure(uint32_t threads, double seconds);

#endif
