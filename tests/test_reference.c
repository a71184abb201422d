/* The tests' own tools, checked on their own: storage rounding and
 * encodings (exhaustively for the 16-bit formats), the reference alpha and
 * the seeded generator. A wrong reference would make every other test
 * meaningless, so it gets tests too. */
#include "reference.h"
#include "rng.h"
#include "storage.h"

#include <criterion/criterion.h>

#include <math.h>
#include <stdint.h>
#include <string.h>

static uint16_t bits16(efla_dtype dtype, double x) {
    uint16_t bits;
    storage_encode(dtype, x, &bits);
    return bits;
}

/* Every finite 16-bit pattern decodes to a value that rounds to itself and
 * encodes back to the same pattern. */
static void check_round_trip(efla_dtype dtype) {
    for (uint32_t pattern = 0; pattern < 65536; ++pattern) {
        const uint16_t bits = (uint16_t)pattern;
        const double value = storage_decode(dtype, &bits);
        if (isnan(value)) continue;
        cr_assert_eq(storage_round(dtype, value), value, "%s 0x%04x = %g does not round to itself",
                     efla_dtype_name(dtype), pattern, value);
        if (value == 0.0 && signbit(value) != ((pattern & 0x8000u) != 0)) continue;
        cr_assert_eq(bits16(dtype, value), bits, "%s 0x%04x = %g encodes as 0x%04x",
                     efla_dtype_name(dtype), pattern, value, bits16(dtype, value));
    }
}

Test(reference, sixteen_bit_formats_round_trip) {
    check_round_trip(EFLA_DTYPE_F16);
    check_round_trip(EFLA_DTYPE_BF16);
}

/* Midpoints between neighbours round to the even one; just off them, to the nearer. */
static void check_midpoints(efla_dtype dtype) {
    for (uint32_t pattern = 0; pattern < 0x7bff; pattern += 7) {
        const uint16_t low_bits = (uint16_t)pattern, high_bits = (uint16_t)(pattern + 1);
        const double low = storage_decode(dtype, &low_bits);
        const double high = storage_decode(dtype, &high_bits);
        if (!isfinite(high)) break;
        const double middle = (low + high) / 2, even = (pattern & 1u) ? high : low;
        cr_assert_eq(storage_round(dtype, middle), even, "%s: %g rounds to %g, not the even %g",
                     efla_dtype_name(dtype), middle, storage_round(dtype, middle), even);
        cr_assert_eq(storage_round(dtype, nextafter(middle, 0.0)), low);
        cr_assert_eq(storage_round(dtype, nextafter(middle, INFINITY)), high);
    }
}

Test(reference, rounding_is_to_nearest_even) {
    check_midpoints(EFLA_DTYPE_F16);
    check_midpoints(EFLA_DTYPE_BF16);
    cr_expect_eq(storage_round(EFLA_DTYPE_F32, 1.0 + 0x1p-24), 1.0);
    cr_expect_eq(storage_round(EFLA_DTYPE_F32, 1.0 + 0x1p-23 + 0x1p-24), 1.0 + 0x1p-22);
    cr_expect_eq(storage_round(EFLA_DTYPE_F32, 0.1), (double)0.1f);
}

Test(reference, known_encodings_and_limits) {
    cr_expect_eq(bits16(EFLA_DTYPE_F16, 1.0), 0x3c00);
    cr_expect_eq(bits16(EFLA_DTYPE_F16, -2.0), 0xc000);
    cr_expect_eq(bits16(EFLA_DTYPE_F16, 65504.0), 0x7bff);
    cr_expect_eq(bits16(EFLA_DTYPE_F16, 0x1p-24), 0x0001);
    cr_expect_eq(bits16(EFLA_DTYPE_BF16, 1.0), 0x3f80);
    cr_expect_eq(bits16(EFLA_DTYPE_BF16, -0.5), 0xbf00);
    cr_expect(isinf(storage_round(EFLA_DTYPE_F16, 65520.0)), "65520 must overflow f16");
    cr_expect_eq(storage_round(EFLA_DTYPE_F16, 65519.0), 65504.0);
    cr_expect_eq(storage_round(EFLA_DTYPE_F16, 0x1p-25), 0.0,
                 "half the smallest subnormal ties to 0");
    cr_expect_eq(storage_round(EFLA_DTYPE_F16, 0x1.8p-25), 0x1p-24);
    cr_expect_eq(storage_round(EFLA_DTYPE_BF16, 1.0 + 0x1p-8), 1.0);
    cr_expect_eq(storage_round(EFLA_DTYPE_BF16, 1.0 + 0x1p-8 + 0x1p-20), 1.0 + 0x1p-7);
    const float f = 3.14159f;
    cr_expect_eq(storage_decode(EFLA_DTYPE_F32, &f), (double)f);
}

Test(reference, alpha_branches_meet) {
    /* the series (x <= 1e-4) and expm1 branches agree around the switch */
    for (double lambda = 0.25; lambda <= 4.0; lambda *= 2) {
        const double beta = 1e-4 / lambda;
        const double below = ref_alpha(nextafter(beta, 0.0), lambda);
        const double above = ref_alpha(nextafter(beta, 1.0), lambda);
        cr_expect(fabs(above - below) / below < 1e-14, "alpha jumps by %g at the switch",
                  fabs(above - below) / below);
        cr_expect(fabs(below - (-expm1(-beta * lambda) / lambda)) / below < 1e-15);
    }
    cr_expect_eq(ref_alpha(0.7, 0.0), 0.7, "a zero key gives alpha = beta");
    cr_expect_eq(ref_alpha(0.0, 3.0), 0.0);
    cr_expect(fabs(ref_alpha(2.0, 1e4) - 1e-4) < 1e-18, "large beta*lambda gives 1/lambda");
}

Test(reference, one_step_by_hand) {
    /* Dk = 2, Dv = 1: S0 = (1, 0), k = (0, 2), v = 3, beta = 0.25, q = (1, 1), scale 1 */
    const double q[] = {1, 1}, k[] = {0, 2}, v[] = {3}, beta[] = {0.25}, s0[] = {1, 0};
    const ref_problem p = {.B = 1,
                           .T = 1,
                           .H = 1,
                           .HV = 1,
                           .Dk = 2,
                           .Dv = 1,
                           .N = 1,
                           .q = q,
                           .k = k,
                           .v = v,
                           .beta = beta,
                           .initial_state = s0,
                           .scale = 1};
    double out[1], state[2];
    ref_forward(&p, out, state, NULL);
    const double alpha = -expm1(-1.0) / 4.0; /* lambda = 4, u = 3 - 0 */
    cr_expect(fabs(state[0] - 1.0) < 1e-15);
    cr_expect(fabs(state[1] - alpha * 2 * 3) < 1e-15);
    cr_expect(fabs(out[0] - (1.0 + alpha * 6)) < 1e-15);
}

Test(reference, state_peak_is_the_largest_norm_along_the_sequence) {
    /* DELTA mode, k = 1, beta = 1: each step sets S = v^T (exactly, for
     * these dyadic values). Row 0 peaks mid-sequence at |(3, -4)| = 5 (max
     * abs would say 4), row 1 at its initial state; both end below that. */
    const double q[] = {1, 1, 1, 1}, k[] = {1, 1, 1, 1}, beta[] = {1, 1, 1, 1};
    const double v[] = {3, -4, 0.75, 0.5, 3, -4, 0.75, 0.5}, s0[] = {1, 0, 0, -6};
    const ref_problem p = {.B = 2,
                           .T = 2,
                           .H = 1,
                           .HV = 1,
                           .Dk = 1,
                           .Dv = 2,
                           .N = 2,
                           .q = q,
                           .k = k,
                           .v = v,
                           .beta = beta,
                           .initial_state = s0,
                           .scale = 1,
                           .delta_mode = true};
    double out[8], state[4], peak[2];
    ref_forward(&p, out, state, peak);
    cr_expect_eq(state[0], 0.75);
    cr_expect_eq(state[3], 0.5);
    cr_expect_eq(peak[0], 5.0, "row 0 peaks at %g, not 5", peak[0]);
    cr_expect_eq(peak[1], 6.0, "row 1 peaks at %g, not its initial 6", peak[1]);
}

Test(reference, generator_replays_from_its_seed) {
    test_rng a = {rng_derive(5, "case", 1)}, b = {rng_derive(5, "case", 1)};
    test_rng c = {rng_derive(5, "case", 2)}, d = {rng_derive(5, "other", 1)};
    double sum = 0, sum2 = 0;
    for (int i = 0; i < 20000; ++i) {
        const double x = rng_normal(&a);
        cr_assert_eq(x, rng_normal(&b));
        sum += x;
        sum2 += x * x;
    }
    cr_expect(rng_next(&c) != rng_next(&d), "different cases draw different data");
    cr_expect(fabs(sum / 20000) < 0.05 && fabs(sum2 / 20000 - 1) < 0.05,
              "normals have mean %g and variance %g", sum / 20000, sum2 / 20000);
}
