#include "storage.h"

#include <float.h>
#include <math.h>
#include <string.h>

typedef struct float_format {
    int precision;    /* significand bits, including the implicit one */
    int min_exponent; /* exponent of the smallest normal number */
    double max_finite;
} float_format;

static const float_format f32_format = {24, -126, FLT_MAX};
static const float_format f16_format = {11, -14, 65504.0};
static const float_format bf16_format = {8, -126, 3.3895313892515355e38};

static double round_to_format(const float_format *format, double x) {
    if (x == 0.0 || !isfinite(x)) return x;
    int exponent = ilogb(x);
    if (exponent < format->min_exponent) exponent = format->min_exponent; /* subnormals */
    const double quantum = ldexp(1.0, exponent - (format->precision - 1));
    const double rounded = nearbyint(x / quantum) * quantum; /* ties to even */
    return fabs(rounded) > format->max_finite ? copysign(INFINITY, x) : rounded;
}

double storage_round(efla_dtype dtype, double x) {
    switch (dtype) {
    case EFLA_DTYPE_F32: return round_to_format(&f32_format, x);
    case EFLA_DTYPE_F16: return round_to_format(&f16_format, x);
    case EFLA_DTYPE_BF16: return round_to_format(&bf16_format, x);
    default: return x;
    }
}

static uint16_t f16_bits(double x) {
    const uint16_t sign = signbit(x) ? 0x8000u : 0;
    const double magnitude = fabs(x);
    if (isnan(x)) return 0x7e00u;
    if (isinf(x)) return (uint16_t)(sign | 0x7c00u);
    if (magnitude < 0x1p-14) return (uint16_t)(sign | (uint16_t)(magnitude * 0x1p24));
    const int exponent = ilogb(magnitude);
    const uint16_t mantissa = (uint16_t)((ldexp(magnitude, -exponent) - 1.0) * 1024.0);
    return (uint16_t)(sign | (uint16_t)((exponent + 15) << 10) | mantissa);
}

static double f16_value(uint16_t bits) {
    const int exponent = (bits >> 10) & 0x1f;
    const int mantissa = bits & 0x3ff;
    double magnitude;
    if (exponent == 0x1f)
        magnitude = mantissa ? NAN : INFINITY;
    else if (exponent == 0)
        magnitude = ldexp(mantissa, -24);
    else
        magnitude = ldexp(1024 + mantissa, exponent - 25);
    return (bits & 0x8000u) ? -magnitude : magnitude;
}

void storage_encode(efla_dtype dtype, double x, void *dst) {
    if (dtype == EFLA_DTYPE_F32) {
        float value = (float)x;
        memcpy(dst, &value, sizeof value);
    } else if (dtype == EFLA_DTYPE_F16) {
        uint16_t bits = f16_bits(x);
        memcpy(dst, &bits, sizeof bits);
    } else if (dtype == EFLA_DTYPE_BF16) {
        float value = (float)x; /* exact: x is a bf16 value, so its low 16 bits are zero */
        uint32_t word;
        memcpy(&word, &value, sizeof word);
        uint16_t bits = (uint16_t)(word >> 16);
        memcpy(dst, &bits, sizeof bits);
    }
}

double storage_decode(efla_dtype dtype, const void *src) {
    if (dtype == EFLA_DTYPE_F32) {
        float value;
        memcpy(&value, src, sizeof value);
        return value;
    }
    uint16_t bits;
    memcpy(&bits, src, sizeof bits);
    if (dtype == EFLA_DTYPE_F16) return f16_value(bits);
    uint32_t word = (uint32_t)bits << 16;
    float value;
    memcpy(&value, &word, sizeof value);
    return value;
}
