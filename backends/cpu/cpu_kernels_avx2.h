/* The AVX2 path's memory-bound kernels, shared with the AVX-512 table
 * (every AVX-512 CPU runs them; they gain little from wider vectors). */
#ifndef EFLA_CPU_KERNELS_AVX2_H
#define EFLA_CPU_KERNELS_AVX2_H

#include "backends/cpu/cpu_kernels.h"

#if defined(EFLA_CPU_X86)
void efla_cpu_avx2_transpose(const float *src, int64_t ld, int64_t cols, float *dst);
void efla_cpu_avx2_f16_to_f32(const uint16_t *src, int64_t n, float *dst);
void efla_cpu_avx2_f32_to_f16(const float *src, int64_t n, uint16_t *dst);
void efla_cpu_avx2_state_dot2(int64_t dk, int64_t w, const float *s, int64_t ld, const float *k,
                              const float *q, float *sk, float *sq);
void efla_cpu_avx2_state_rank1_dot2(int64_t dk, int64_t w, const float *src, int64_t src_ld,
                                    float *dst, int64_t dst_ld, const float *k, const float *u,
                                    const float *kn, const float *qn, float *sk, float *sq);
void efla_cpu_avx2_state_rank1(int64_t dk, int64_t w, const float *src, int64_t src_ld, float *dst,
                               int64_t dst_ld, const float *k, const float *u, bool stream);
#endif

#endif
