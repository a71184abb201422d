/* f16 and bf16 <-> f32 conversions on the host, round to nearest even. */
#ifndef EFLA_CORE_HALF_H
#define EFLA_CORE_HALF_H

#include <stdint.h>
#include <string.h>

static inline uint32_t efla_f32_bits(float x) {
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    return u;
}

static inline float efla_f32_from_bits(uint32_t u) {
    float x;
    memcpy(&x, &u, sizeof x);
    return x;
}

static inline float efla_bf16_to_f32(uint16_t h) { return efla_f32_from_bits((uint32_t)h << 16); }

static inline uint16_t efla_f32_to_bf16(float x) {
    uint32_t u = efla_f32_bits(x);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40u); /* quiet NaN */
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

static inline float efla_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exponent = (h >> 10) & 0x1fu;
    uint32_t mantissa = h & 0x3ffu;
    if (exponent == 0x1fu) return efla_f32_from_bits(sign | 0x7f800000u | (mantissa << 13));
    if (exponent == 0) {
        /* zero or subnormal: mantissa * 2^-24, exact in f32 */
        float magnitude = (float)mantissa * 5.9604644775390625e-8f;
        return sign ? -magnitude : magnitude;
    }
    return efla_f32_from_bits(sign | ((exponent + 112u) << 23) | (mantissa << 13));
}

static inline uint16_t efla_f32_to_f16(float x) {
    uint32_t u = efla_f32_bits(x);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    uint32_t magnitude = u & 0x7fffffffu;
    if (magnitude > 0x7f800000u) return (uint16_t)(sign | 0x7e00u); /* NaN */
    if (magnitude >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); /* overflow to inf */
    if (magnitude < 0x38800000u) {
        /* subnormal or zero: round |x| * 2^24 to an integer, ties to even */
        float scaled = efla_f32_from_bits(magnitude) * 16777216.0f;
        uint32_t integer = (uint32_t)scaled;
        float remainder = scaled - (float)integer;
        if (remainder > 0.5f || (remainder == 0.5f && (integer & 1u))) integer++;
        return (uint16_t)(sign | integer);
    }
    uint32_t rounded = magnitude + 0xfffu + ((magnitude >> 13) & 1u);
    return (uint16_t)(sign | ((rounded - 0x38000000u) >> 13));
}

#endif
