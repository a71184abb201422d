/* The Vulkan tuning variables (README, "Environment"). A value outside the
 * documented set fails context creation with a message naming the
 * variable. Every documented workgroup size of the cooperative-matrix
 * prepare and output (128, 256, 512) gives a chunked forward within the
 * precision contract of the float64 reference: on a device with that path
 * (the H200) each size runs its own kernels; elsewhere the portable path
 * runs, which the variable leaves alone. So do both of that path's scans
 * (EFLA_VULKAN_SCAN_SLABS), with a slab of value columns that lies past Dv,
 * and whichever of H and Y each hands the output, and both builds of the
 * slab scan (EFLA_VULKAN_COOPMAT2: the NV cooperative-matrix-2 one where
 * the device has it), that build's slabs split into 2 and 4 parts
 * (EFLA_VULKAN_SCAN_PARTS; 4 with 16-column tiles, what fits at Dk 256),
 * and that build forming the output itself or handing it to the output
 * kernel (EFLA_VULKAN_SCAN_OUTPUT).
 * The two-level scan (EFLA_VULKAN_SCAN_LEGS) meets it with every scan it
 * takes, over legs of one chunk up to many, a short last leg, sequences of
 * different lengths (some with a single leg) and the hard key and beta
 * profiles (no decay: beta 0; full overwrites: beta 50). */
#include "harness.h"

#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static efla_context vulkan_context(efla_status *status) {
    efla_context_create_info info = EFLA_CONTEXT_CREATE_INFO_INIT;
    info.backend = EFLA_BACKEND_VULKAN;
    efla_context context = NULL;
    *status = efla_context_create(&info, &context);
    return context;
}

/* The float64 reference of a problem, held while its runs are compared. */
typedef struct expected {
    double *out, *state, *peak;
} expected;

/* A bf16 chunked forward of `p` on a fresh Vulkan context (tuned by the
 * environment as set) within the precision contract of `e`. */
static void expect_contract(const problem *p, const expected *e, const char *label) {
    efla_status status;
    efla_context context = vulkan_context(&status);
    cr_assert_eq(status, EFLA_SUCCESS, "%s: %s", label, efla_last_error_message());
    const run_options options = {.algorithm = EFLA_ALGORITHM_CHUNKED};
    run_result r;
    bool ran = device_run(context, p, &options, &r);
    cr_expect(ran, "%s: %s", label, r.error);
    if (ran)
        harness_compare(p, label, r.out, r.final_state, e->out, e->state, e->peak,
                        harness_tolerance(EFLA_DTYPE_BF16));
    run_result_free(&r);
    efla_context_destroy(context);
}

Test(vulkan_tuning, a_value_outside_the_documented_set_is_refused_by_name) {
    if (!harness_backend_selected(EFLA_BACKEND_VULKAN)) cr_skip_test("no Vulkan device selected");
    static const char *const bad[][2] = {
        {"EFLA_VULKAN_COOPMAT_WORKGROUP", "300"},
        {"EFLA_VULKAN_COOPMAT_WORKGROUP", "1024"},
        {"EFLA_VULKAN_CHUNK", "48"},
        {"EFLA_VULKAN_SCAN_BLOCK_V", "24"},
        {"EFLA_VULKAN_SCAN_SLABS", "2"},
        {"EFLA_VULKAN_SCAN_PARTS", "3"},
        {"EFLA_VULKAN_SCAN_LEGS", "65"},
        {"EFLA_VULKAN_SCAN_OUTPUT", "2"},
        {"EFLA_VULKAN_COOPMAT2", "yes"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; ++i) {
        setenv(bad[i][0], bad[i][1], 1);
        efla_status status;
        efla_context context = vulkan_context(&status);
        const char *message = efla_last_error_message();
        cr_expect_eq(status, EFLA_ERROR_INVALID_ARGUMENT, "%s=%s: status %d (%s)", bad[i][0],
                     bad[i][1], status, message);
        cr_expect_null(context, "%s=%s made a context", bad[i][0], bad[i][1]);
        cr_expect_not_null(strstr(message, bad[i][0]), "%s=%s: the message does not name it: %s",
                           bad[i][0], bad[i][1], message);
        efla_context_destroy(context);
        unsetenv(bad[i][0]);
    }
}

Test(vulkan_tuning, every_documented_coopmat_workgroup_meets_the_contract) {
    if (!harness_backend_selected(EFLA_BACKEND_VULKAN)) cr_skip_test("no Vulkan device selected");
    /* Dk 128 with two chunks of 64 and a short last one; bf16 storage, the
     * cooperative-matrix path's. */
    const problem_spec spec = {
        .B = 1, .T = 150, .H = 2, .HV = 2, .Dk = 128, .Dv = 64, .initial_state = true};
    problem p;
    problem_create(&p, &spec, EFLA_DTYPE_BF16, harness_fresh_seed());
    expected e;
    problem_reference(&p, &e.out, &e.state, &e.peak);
    static const char *const sizes[] = {"128", "256", "512"};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; ++i) {
        setenv("EFLA_VULKAN_COOPMAT_WORKGROUP", sizes[i], 1);
        char label[96];
        snprintf(label, sizeof label, "EFLA_VULKAN_COOPMAT_WORKGROUP=%s", sizes[i]);
        expect_contract(&p, &e, label);
        unsetenv("EFLA_VULKAN_COOPMAT_WORKGROUP");
    }
    free(e.out);
    free(e.state);
    free(e.peak);
    problem_destroy(&p);
}

Test(vulkan_tuning, both_coopmat_scans_meet_the_contract) {
    if (!harness_backend_selected(EFLA_BACKEND_VULKAN)) cr_skip_test("no Vulkan device selected");
    /* Chunks of 32 (where the slab scan's registers fit), a short last one;
     * Dv 48 leaves the last of four slabs of a 64-column tile past Dv. The
     * split scan hands the output H at Dk 64 and Y = Q^ S_c above (and the
     * slab scan Y always); at Dk 256 the slab scan reads Q^ from the
     * scratch instead of staging it. */
    static const int dks[] = {64, 128, 256};
    static const char *const scans[][5] = {
        /* slabs, cm2, parts, columns, output ("": the plan's) */
        {"0", "1", "1", "", ""},   {"1", "1", "1", "", ""}, {"1", "1", "1", "", "0"},
        {"1", "1", "1", "", "1"},  {"1", "0", "1", "", ""}, {"1", "1", "2", "", ""},
        {"1", "1", "4", "16", ""},
    };
    static const char *const names[] = {"EFLA_VULKAN_SCAN_SLABS", "EFLA_VULKAN_COOPMAT2",
                                        "EFLA_VULKAN_SCAN_PARTS", "EFLA_VULKAN_SCAN_BLOCK_V",
                                        "EFLA_VULKAN_SCAN_OUTPUT"};
    setenv("EFLA_VULKAN_CHUNK", "32", 1);
    for (size_t k = 0; k < sizeof dks / sizeof dks[0]; ++k) {
        const problem_spec spec = {
            .B = 2, .T = 150, .H = 2, .HV = 2, .Dk = dks[k], .Dv = 48, .initial_state = true};
        problem p;
        problem_create(&p, &spec, EFLA_DTYPE_BF16, harness_fresh_seed());
        expected e;
        problem_reference(&p, &e.out, &e.state, &e.peak);
        for (size_t i = 0; i < sizeof scans / sizeof scans[0]; ++i) {
            for (size_t v = 0; v < 5; ++v)
                if (scans[i][v][0]) setenv(names[v], scans[i][v], 1);
            char label[160];
            snprintf(label, sizeof label, "slabs %s cm2 %s parts %s columns %s output %s Dk %d",
                     scans[i][0], scans[i][1], scans[i][2], scans[i][3][0] ? scans[i][3] : "(plan)",
                     scans[i][4][0] ? scans[i][4] : "(plan)", dks[k]);
            expect_contract(&p, &e, label);
            for (size_t v = 0; v < 5; ++v)
                unsetenv(names[v]);
        }
        free(e.out);
        free(e.state);
        free(e.peak);
        problem_destroy(&p);
    }
    unsetenv("EFLA_VULKAN_CHUNK");
}

Test(vulkan_tuning, the_two_level_scan_meets_the_contract) {
    if (!harness_backend_selected(EFLA_BACKEND_VULKAN)) cr_skip_test("no Vulkan device selected");
    /* Sequences of 1, 5, 12 and 40 chunks of 32 (the last of each short),
     * cut into up to 2, 3 and 7 legs. */
    static const int64_t lengths[] = {17, 150, 380, 1270};
    static const int dks[] = {64, 128};
    static const key_profile keys[] = {KEYS_GAUSSIAN, KEYS_HARD};
    static const beta_profile betas[] = {BETA_UNIFORM, BETA_MIXED};
    static const char *const legs[] = {"2", "3", "7"};
    static const char *const scans[][3] = {
        /* slabs, cm2, output */
        {"1", "1", "1"},
        {"1", "1", "0"},
        {"1", "0", "0"},
        {"0", "1", "0"},
    };
    setenv("EFLA_VULKAN_CHUNK", "32", 1);
    for (size_t k = 0; k < sizeof dks / sizeof dks[0]; ++k) {
        const problem_spec spec = {.B = 1,
                                   .T = 1817,
                                   .H = 2,
                                   .HV = 2,
                                   .Dk = dks[k],
                                   .Dv = 48,
                                   .lengths = lengths,
                                   .num_sequences = 4,
                                   .keys = keys[k],
                                   .betas = betas[k],
                                   .initial_state = true};
        problem p;
        problem_create(&p, &spec, EFLA_DTYPE_BF16, harness_fresh_seed());
        expected e;
        problem_reference(&p, &e.out, &e.state, &e.peak);
        for (size_t i = 0; i < sizeof scans / sizeof scans[0]; ++i) {
            setenv("EFLA_VULKAN_SCAN_SLABS", scans[i][0], 1);
            setenv("EFLA_VULKAN_COOPMAT2", scans[i][1], 1);
            setenv("EFLA_VULKAN_SCAN_OUTPUT", scans[i][2], 1);
            for (size_t l = 0; l < sizeof legs / sizeof legs[0]; ++l) {
                setenv("EFLA_VULKAN_SCAN_LEGS", legs[l], 1);
                char label[160];
                snprintf(label, sizeof label, "legs %s slabs %s cm2 %s output %s Dk %d", legs[l],
                         scans[i][0], scans[i][1], scans[i][2], dks[k]);
                expect_contract(&p, &e, label);
            }
        }
        unsetenv("EFLA_VULKAN_SCAN_LEGS");
        unsetenv("EFLA_VULKAN_SCAN_SLABS");
        unsetenv("EFLA_VULKAN_COOPMAT2");
        unsetenv("EFLA_VULKAN_SCAN_OUTPUT");
        free(e.out);
        free(e.state);
        free(e.peak);
        problem_destroy(&p);
    }
    unsetenv("EFLA_VULKAN_CHUNK");
}
