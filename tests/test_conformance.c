/* The conformance cases of DESIGN.md "Tests" and ALGORITHM.md §6: every
 * case runs on every selected backend, seed and storage dtype, and each run
 * is compared per (sequence, value head) with the float64 reference. */
#include "harness.h"

#include <criterion/criterion.h>
#include <criterion/logging.h>

#include <stdio.h>

#define COUNT(array) (sizeof(array) / sizeof((array)[0]))

static const run_options all_algorithms[] = {
    {.algorithm = EFLA_ALGORITHM_RECURRENT},
    {.algorithm = EFLA_ALGORITHM_CHUNKED},
    {.algorithm = EFLA_ALGORITHM_AUTO},
};

/* A small multi-head problem with an initial state; cases change from here. */
static problem_spec base_spec(int64_t T) {
    problem_spec spec = {.B = 2,
                         .T = T,
                         .H = 2,
                         .HV = 2,
                         .Dk = 32,
                         .Dv = 24,
                         .keys = KEYS_GAUSSIAN,
                         .betas = BETA_UNIFORM,
                         .initial_state = true};
    return spec;
}

static void check_all(const char *name, const problem_spec *spec) {
    harness_check_case(name, spec, harness_all_dtypes, 3, all_algorithms, COUNT(all_algorithms));
}

Test(backends, required_backends_are_available) {
    harness_check_required_backends();
    efla_backend backends[HARNESS_MAX_BACKENDS];
    size_t count = harness_backends(backends, HARNESS_MAX_BACKENDS);
    for (size_t i = 0; i < count; ++i)
        cr_log_info("running on %s", efla_backend_name(backends[i]));
}

Test(algorithms, recurrent_chunked_and_auto_match_the_reference) {
    problem_spec spec = base_spec(150);
    check_all("algorithms", &spec);
}

Test(algorithms, without_initial_state) {
    problem_spec spec = base_spec(100);
    spec.initial_state = false;
    check_all("no-initial-state", &spec);
}

Test(algorithms, without_final_state) {
    problem_spec spec = base_spec(90);
    const run_options variants[] = {
        {.algorithm = EFLA_ALGORITHM_RECURRENT, .no_final_state = true},
        {.algorithm = EFLA_ALGORITHM_CHUNKED, .no_final_state = true},
    };
    harness_check_case("no-final-state", &spec, harness_all_dtypes, 3, variants, COUNT(variants));
}

Test(hard_cases, zero_tiny_and_huge_keys_in_one_chunk) {
    problem_spec spec = base_spec(70);
    spec.keys = KEYS_HARD;
    spec.betas = BETA_MIXED;
    check_all("hard-keys", &spec);
}

Test(hard_cases, beta_zero_keeps_the_state) {
    problem_spec spec = base_spec(70);
    spec.betas = BETA_ZERO;
    check_all("beta-zero", &spec);
}

Test(hard_cases, very_large_beta) {
    problem_spec spec = base_spec(70);
    spec.betas = BETA_LARGE;
    check_all("beta-50", &spec);
    spec.keys = KEYS_HARD;
    check_all("beta-50-hard-keys", &spec);
}

Test(lengths, empty_and_single_token) {
    problem_spec spec = base_spec(0);
    check_all("T=0", &spec);
    spec.initial_state = false;
    check_all("T=0-no-state", &spec);
    spec = base_spec(1);
    check_all("T=1", &spec);
    spec.initial_state = false;
    check_all("T=1-no-state", &spec);
}

Test(lengths, around_the_chunk_size) {
    static const int64_t lengths[] = {63, 64, 65, 70, 127, 129, 130};
    char name[32];
    for (size_t i = 0; i < COUNT(lengths); ++i) {
        problem_spec spec = base_spec(lengths[i]);
        spec.B = 1;
        snprintf(name, sizeof name, "T=%lld", (long long)lengths[i]);
        check_all(name, &spec);
    }
}

Test(lengths, long_sequence) {
    problem_spec spec = base_spec(300);
    spec.Dk = spec.Dv = 16;
    check_all("T=300", &spec);
}

Test(sizes, odd_key_dims) {
    static const int64_t dims[][2] = {{1, 5}, {3, 7}, {17, 17}, {129, 33}};
    char name[32];
    for (size_t i = 0; i < COUNT(dims); ++i) {
        problem_spec spec = base_spec(70);
        spec.B = 1;
        spec.Dk = dims[i][0];
        spec.Dv = dims[i][1];
        snprintf(name, sizeof name, "Dk=%lld,Dv=%lld", (long long)dims[i][0],
                 (long long)dims[i][1]);
        check_all(name, &spec);
    }
}

Test(sizes, value_dim_one) {
    problem_spec spec = base_spec(70);
    spec.Dv = 1;
    check_all("Dv=1", &spec);
    spec.Dk = 1;
    check_all("Dk=Dv=1", &spec);
}

Test(sizes, key_and_value_dims_differ) {
    problem_spec spec = base_spec(80);
    spec.Dk = 48;
    spec.Dv = 80;
    check_all("Dk=48,Dv=80", &spec);
    spec.Dk = 80;
    spec.Dv = 48;
    check_all("Dk=80,Dv=48", &spec);
}

/* States of unit size, key norms from about 1 to 17 (most steps nearly
 * erase) and the smallest heads the tensor-core paths take: where their
 * bf16 operands come closest to the bar. Under emulation OpenCL's nvmma
 * path erred by 8.5e-3 to 8.8e-3 at Dk = Dv = 16 (it now leaves bf16 below
 * Dk 32 to the portable kernels) and by 6.3e-3 to 6.8e-3 at Dk 32. */
Test(sizes, unit_states_in_small_heads) {
    problem_spec spec = base_spec(150);
    spec.Dv = 16;
    spec.state_sigma = 1.0;
    spec.keys = KEYS_WIDE;
    check_all("Dk=32,Dv=16,state sigma 1", &spec);
    spec.Dk = spec.Dv = 16;
    check_all("Dk=Dv=16,state sigma 1", &spec);
}

Test(sizes, largest_head_dims) {
    problem_spec spec = {.B = 1,
                         .T = 70,
                         .H = 1,
                         .HV = 1,
                         .Dk = 256,
                         .Dv = 256,
                         .keys = KEYS_GAUSSIAN,
                         .betas = BETA_UNIFORM,
                         .initial_state = true};
    const run_options variants[] = {
        {.algorithm = EFLA_ALGORITHM_RECURRENT},
        {.algorithm = EFLA_ALGORITHM_CHUNKED},
    };
    harness_check_case("Dk=Dv=256", &spec, harness_all_dtypes, 3, variants, COUNT(variants));
}

Test(heads, grouped_value_heads) {
    problem_spec spec = base_spec(70);
    spec.H = 2;
    spec.HV = 4;
    check_all("HV=2H", &spec);
    spec.H = 1;
    spec.HV = 4;
    check_all("HV=4H", &spec);
}

Test(batch, rows_with_different_initial_states) {
    problem_spec spec = base_spec(80);
    spec.B = 3;
    check_all("B=3", &spec);
}

Test(modes, delta_with_normalized_keys) {
    problem_spec spec = base_spec(100);
    spec.mode = EFLA_MODE_DELTA;
    spec.flags = EFLA_FORWARD_L2NORM_K;
    check_all("delta-l2norm-k", &spec);
}

Test(modes, delta_with_small_raw_keys) {
    problem_spec spec = base_spec(100);
    spec.mode = EFLA_MODE_DELTA;
    spec.keys = KEYS_SMALL;
    check_all("delta-raw-small-keys", &spec);
}

Test(options, fused_l2_normalization) {
    problem_spec spec = base_spec(100);
    spec.flags = EFLA_FORWARD_L2NORM_Q | EFLA_FORWARD_L2NORM_K;
    check_all("l2norm-qk", &spec);
    spec.flags = EFLA_FORWARD_L2NORM_Q;
    check_all("l2norm-q", &spec);
    spec.flags = EFLA_FORWARD_L2NORM_K;
    spec.keys = KEYS_HARD;
    check_all("l2norm-k-hard-keys", &spec);
}

Test(options, custom_scale) {
    problem_spec spec = base_spec(80);
    spec.scale = 0.37f;
    check_all("scale=0.37", &spec);
    spec.scale = -2.0f;
    check_all("scale=-2", &spec);
}

Test(layouts, in_place_state) {
    problem_spec spec = base_spec(100);
    const run_options variants[] = {
        {.algorithm = EFLA_ALGORITHM_RECURRENT, .in_place = true},
        {.algorithm = EFLA_ALGORITHM_CHUNKED, .in_place = true},
        {.algorithm = EFLA_ALGORITHM_AUTO, .in_place = true, .layout = LAYOUT_STRIDED},
        {.algorithm = EFLA_ALGORITHM_AUTO, .in_place = true, .layout = LAYOUT_SHARED},
    };
    harness_check_case("in-place", &spec, harness_all_dtypes, 3, variants, COUNT(variants));
}

Test(layouts, strided_views_and_shared_buffers) {
    problem_spec spec = base_spec(100);
    spec.HV = 4;
    const run_options variants[] = {
        {.algorithm = EFLA_ALGORITHM_RECURRENT},
        {.algorithm = EFLA_ALGORITHM_RECURRENT, .layout = LAYOUT_STRIDED},
        {.algorithm = EFLA_ALGORITHM_CHUNKED, .layout = LAYOUT_STRIDED},
        {.algorithm = EFLA_ALGORITHM_RECURRENT, .layout = LAYOUT_SHARED},
        {.algorithm = EFLA_ALGORITHM_CHUNKED, .layout = LAYOUT_SHARED},
    };
    harness_check_case("layouts", &spec, harness_all_dtypes, 3, variants, COUNT(variants));
}

Test(varlen, offsets_in_i32_and_i64_with_empty_sequences) {
    static const int64_t lengths[] = {0, 5, 70, 0, 1, 64, 65, 0};
    problem_spec spec = base_spec(205);
    spec.B = 1;
    spec.lengths = lengths;
    spec.num_sequences = COUNT(lengths);
    const run_options variants[] = {
        {.algorithm = EFLA_ALGORITHM_AUTO},
        {.algorithm = EFLA_ALGORITHM_AUTO, .cu_dtype = EFLA_DTYPE_I32},
        {.algorithm = EFLA_ALGORITHM_RECURRENT, .cu_dtype = EFLA_DTYPE_I32},
        {.algorithm = EFLA_ALGORITHM_CHUNKED},
        {.algorithm = EFLA_ALGORITHM_CHUNKED, .layout = LAYOUT_STRIDED, .in_place = true},
    };
    harness_check_case("varlen", &spec, harness_all_dtypes, 3, variants, COUNT(variants));
    spec.initial_state = false;
    harness_check_case("varlen-no-state", &spec, harness_all_dtypes, 3, variants, 2);
}
