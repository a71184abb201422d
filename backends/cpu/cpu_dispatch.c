/* Run-time choice of the microkernel table: the best the CPU runs, or the
 * one EFLA_PATH forces (so tests and benchmarks can pin each path). */
#include "backends/cpu/cpu_kernels.h"

#include "backends/cpu/cpu_internal.h"

#include "core/error.h"
#include "core/kernel_path.h"

#include <stdlib.h>
#include <strings.h>

typedef struct kernel_path {
    const char *name;
    const efla_cpu_kernels *(*table)(void);
    bool (*available)(void);
} kernel_path;

static bool always(void) { return true; }

#if defined(EFLA_CPU_X86)
#include <cpuid.h>

/* F16C (CPUID.1:ECX bit 29) by hand: not every compiler's
 * __builtin_cpu_supports knows it. Every AVX2 CPU has it, but a virtual
 * machine may hide it. */
static bool has_f16c(void) {
    unsigned eax, ebx, ecx, edx;
    return __get_cpuid(1, &eax, &ebx, &ecx, &edx) && (ecx & (1u << 29));
}

static bool has_avx2(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && has_f16c();
}

/* The AVX-512 table also runs AVX2 kernels. __builtin_cpu_supports checks
 * that the OS saves the 512-bit state. */
static bool has_avx512(void) { return has_avx2() && __builtin_cpu_supports("avx512f"); }
#endif

/* Best first. */
static const kernel_path paths[] = {
#if defined(EFLA_CPU_X86)
    {"avx512", efla_cpu_kernels_avx512, has_avx512},
    {"avx2", efla_cpu_kernels_avx2, has_avx2},
#endif
    {"portable", efla_cpu_kernels_portable, always},
};
#define PATH_COUNT (sizeof paths / sizeof paths[0])

const efla_cpu_kernels *efla_cpu_kernels_best(void) {
    for (size_t i = 0; i < PATH_COUNT; ++i)
        if (paths[i].available()) return paths[i].table();
    return efla_cpu_kernels_portable();
}

static const char *valid_names(void) {
#if defined(EFLA_CPU_X86)
    return "portable, avx2, avx512";
#else
    return "portable";
#endif
}

const efla_cpu_kernels *efla_cpu_kernels_select(void) {
    char buffer[64];
    const char *wanted = efla_kernel_path_requested(EFLA_BACKEND_CPU, buffer, sizeof buffer);
    if (!wanted || !*wanted) return efla_cpu_kernels_best();
    for (size_t i = 0; i < PATH_COUNT; ++i) {
        if (strcasecmp(wanted, paths[i].name) != 0) continue;
        if (paths[i].available()) return paths[i].table();
        efla_error(EFLA_ERROR_UNSUPPORTED,
                   "EFLA_PATH=%s: this CPU cannot run the %s kernels (valid values: %s)", wanted,
                   wanted, valid_names());
        return NULL;
    }
    efla_error(EFLA_ERROR_UNSUPPORTED, "EFLA_PATH=%s is not a CPU kernel path (valid values: %s)",
               wanted, valid_names());
    return NULL;
}

const char *efla_cpu_kernel_path(void) {
    char buffer[64];
    const char *wanted = efla_kernel_path_requested(EFLA_BACKEND_CPU, buffer, sizeof buffer);
    for (size_t i = 0; wanted && i < PATH_COUNT; ++i)
        if (strcasecmp(wanted, paths[i].name) == 0 && paths[i].available()) return paths[i].name;
    return efla_cpu_kernels_best()->name;
}
