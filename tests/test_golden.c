/* Fixed-value anchors of ALGORITHM.md §6: the closed form against an RK4
 * integration of the ODE, the small-step limit, alpha at the series
 * boundary and for a zero key, the normalised-key identity, the large-step
 * overwrite and unit keys. Each is checked in float64 here and, where the
 * library can show it, on every selected backend in f32. */
#include "harness.h"
#include "reference.h"
#include "storage.h"

#include <criterion/criterion.h>
#include <criterion/logging.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define COUNT(array) (sizeof(array) / sizeof((array)[0]))
#define DK 4
#define DV 3

static const efla_algorithm algorithms[] = {EFLA_ALGORITHM_RECURRENT, EFLA_ALGORITHM_CHUNKED};

/* ----- the closed form is the exact solution of the ODE (§1.2, §6.1) ----- */

/* Fixed inputs, exactly representable in f32. */
static const double golden_k[DK] = {0.875, -0.40625, 0.3125, 1.125};
static const double golden_v[DV] = {0.6875, -1.1875, 0.5};
static const double golden_s0[DK][DV] = {{0.1875, -0.125, 0.4375},
                                         {0.3125, 0.5, -0.625},
                                         {-0.1875, 0.125, 0.3125},
                                         {0.625, -0.375, 0.125}};
static const double golden_q[DK] = {0.25, -0.75, 1.0, 0.5};

static double golden_lambda(void) {
    double lambda = 0.0;
    for (int i = 0; i < DK; ++i)
        lambda += golden_k[i] * golden_k[i];
    return lambda;
}

/* dS/dtau = -k k^T S + k v^T */
static void ode_rate(const double s[DK][DV], double rate[DK][DV]) {
    for (int j = 0; j < DV; ++j) {
        double projection = 0.0;
        for (int i = 0; i < DK; ++i)
            projection += golden_k[i] * s[i][j];
        for (int i = 0; i < DK; ++i)
            rate[i][j] = golden_k[i] * (golden_v[j] - projection);
    }
}

static void axpy_state(const double s[DK][DV], double h, const double d[DK][DV],
                       double out[DK][DV]) {
    for (int i = 0; i < DK; ++i)
        for (int j = 0; j < DV; ++j)
            out[i][j] = s[i][j] + h * d[i][j];
}

/* Classic RK4 over [0, beta] in `steps` steps. */
static void integrate_rk4(double beta, int steps, double s[DK][DV]) {
    memcpy(s, golden_s0, sizeof golden_s0);
    const double h = beta / steps;
    double k1[DK][DV], k2[DK][DV], k3[DK][DV], k4[DK][DV], tmp[DK][DV];
    for (int n = 0; n < steps; ++n) {
        ode_rate((const double(*)[DV])s, k1);
        axpy_state((const double(*)[DV])s, h / 2, (const double(*)[DV])k1, tmp);
        ode_rate((const double(*)[DV])tmp, k2);
        axpy_state((const double(*)[DV])s, h / 2, (const double(*)[DV])k2, tmp);
        ode_rate((const double(*)[DV])tmp, k3);
        axpy_state((const double(*)[DV])s, h, (const double(*)[DV])k3, tmp);
        ode_rate((const double(*)[DV])tmp, k4);
        for (int i = 0; i < DK; ++i)
            for (int j = 0; j < DV; ++j)
                s[i][j] += h / 6 * (k1[i][j] + 2 * k2[i][j] + 2 * k3[i][j] + k4[i][j]);
    }
}

/* S1 = S0 + a k (v - S0^T k)^T with step a (alpha for EFLA, beta for Euler). */
static void delta_step(double step, double s[DK][DV]) {
    memcpy(s, golden_s0, sizeof golden_s0);
    double rate[DK][DV];
    ode_rate(golden_s0, rate);
    axpy_state(golden_s0, step, (const double(*)[DV])rate, s);
}

static double max_difference(const double a[DK][DV], const double b[DK][DV]) {
    double worst = 0.0;
    for (int i = 0; i < DK; ++i)
        for (int j = 0; j < DV; ++j)
            worst = fmax(worst, fabs(a[i][j] - b[i][j]));
    return worst;
}

/* beta with beta * lambda = 4.4, rounded to f32 so the library sees it too. */
static double golden_beta(void) { return storage_round(EFLA_DTYPE_F32, 4.4 / golden_lambda()); }

Test(golden, closed_form_is_the_rk4_limit) {
    static const int steps[] = {10, 100, 1000};
    static const double documented[] = {2.3e-5, 1.6e-9, 1.6e-13}; /* ALGORITHM.md §6.1 */
    const double beta = golden_beta(), lambda = golden_lambda();
    double closed[DK][DV], euler[DK][DV], rk4[DK][DV];
    delta_step(-expm1(-beta * lambda) / lambda, closed);
    double errors[3];
    for (int i = 0; i < 3; ++i) {
        integrate_rk4(beta, steps[i], rk4);
        errors[i] = max_difference((const double(*)[DV])rk4, (const double(*)[DV])closed);
        cr_log_info("RK4 with %d steps: max error %.3g (documented %.2g)", steps[i], errors[i],
                    documented[i]);
        cr_expect(errors[i] > documented[i] / 10 && errors[i] < documented[i] * 10,
                  "RK4 with %d steps is %.3g from the closed form; expected the order of %.2g",
                  steps[i], errors[i], documented[i]);
    }
    for (int i = 0; i < 2; ++i)
        cr_expect(errors[i] / errors[i + 1] > 5e3 && errors[i] / errors[i + 1] < 3e4,
                  "RK4 error ratio %d->%d steps is %.3g; O(h^4) convergence gives ~1e4", steps[i],
                  steps[i + 1], errors[i] / errors[i + 1]);
    delta_step(beta, euler);
    const double euler_error =
        max_difference((const double(*)[DV])euler, (const double(*)[DV])closed);
    cr_expect(euler_error > 0.1, "the Euler (DeltaNet) step is only %.3g from the exact flow",
              euler_error);
}

/* A [B, T=1] f32 problem with H = HV = 1; values set by the caller. */
static void one_token_problem(problem *p, int64_t rows, int64_t dk, bool initial_state) {
    const problem_spec spec = {.B = rows,
                               .T = 1,
                               .H = 1,
                               .HV = 1,
                               .Dk = dk,
                               .Dv = DV,
                               .initial_state = initial_state,
                               .scale = 1.0f};
    problem_create_zero(p, &spec, EFLA_DTYPE_F32);
}

typedef void (*device_check)(const harness_device *device, efla_algorithm algorithm);

static void for_each_device(device_check check) {
    efla_backend backends[HARNESS_MAX_BACKENDS];
    const size_t count = harness_backends(backends, HARNESS_MAX_BACKENDS);
    for (size_t b = 0; b < count; ++b) {
        harness_device device;
        if (!harness_open(backends[b], 0, &device)) continue;
        for (size_t a = 0; a < COUNT(algorithms); ++a)
            check(&device, algorithms[a]);
        harness_close(&device);
    }
}

/* Runs p; reports a failure with the algorithm and returns false. */
static bool run_golden(const harness_device *device, const problem *p, efla_algorithm algorithm,
                       const char *what, run_result *r) {
    const run_options options = {.algorithm = algorithm};
    char label[768], text[160];
    snprintf(text, sizeof text, "%s algorithm=%s", what, efla_algorithm_name(algorithm));
    if (device_run(device->context, p, &options, r)) return true;
    harness_label(label, sizeof label, device, r, p, 0, text);
    cr_expect_fail("%s: %s", label, r->error);
    run_result_free(r);
    return false;
}

static void check_one_step(const harness_device *device, efla_algorithm algorithm) {
    problem p;
    one_token_problem(&p, 1, DK, true);
    memcpy(p.q, golden_q, sizeof golden_q);
    memcpy(p.k, golden_k, sizeof golden_k);
    memcpy(p.v, golden_v, sizeof golden_v);
    memcpy(p.initial_state, golden_s0, sizeof golden_s0);
    p.beta[0] = golden_beta();
    run_result r;
    if (run_golden(device, &p, algorithm, "case=golden-one-step", &r)) {
        double closed[DK][DV], rk4[DK][DV], out[DV];
        const double lambda = golden_lambda();
        delta_step(-expm1(-p.beta[0] * lambda) / lambda, closed);
        integrate_rk4(p.beta[0], 1000, rk4);
        for (int j = 0; j < DV; ++j) {
            out[j] = 0.0;
            for (int i = 0; i < DK; ++i)
                out[j] += closed[i][j] * golden_q[i];
        }
        char label[768];
        harness_label(label, sizeof label, device, &r, &p, 0, "case=golden-one-step");
        harness_compare(&p, label, r.out, r.final_state, out, &closed[0][0], NULL, 2e-5);
        strncat(label, " vs RK4(1000)", sizeof label - strlen(label) - 1);
        harness_compare(&p, label, NULL, r.final_state, NULL, &rk4[0][0], NULL, 2e-5);
        run_result_free(&r);
    }
    problem_destroy(&p);
}

Test(golden, one_library_step_is_the_closed_form) { for_each_device(check_one_step); }

/* ----- alpha as the library applies it ----- */

/* One token per batch row from S = 0: S1 = alpha k v^T, so alpha is the
 * least-squares fit of the final state to k v^T. */
static bool library_alphas(const harness_device *device, efla_algorithm algorithm, int64_t rows,
                           int64_t dk, const double *keys, const double *betas, double *alphas) {
    problem p;
    one_token_problem(&p, rows, dk, false);
    for (int64_t i = 0; i < rows * dk; ++i)
        p.k[i] = storage_round(EFLA_DTYPE_F32, keys[i]);
    for (int64_t b = 0; b < rows; ++b) {
        p.beta[b] = storage_round(EFLA_DTYPE_F32, betas[b]);
        memcpy(p.v + b * DV, golden_v, sizeof golden_v);
    }
    run_result r;
    const bool ok = run_golden(device, &p, algorithm, "case=golden-alpha", &r);
    for (int64_t b = 0; ok && b < rows; ++b) {
        double dot = 0.0, norm2 = 0.0;
        for (int64_t i = 0; i < dk; ++i)
            for (int j = 0; j < DV; ++j) {
                const double basis = p.k[b * dk + i] * golden_v[j];
                dot += r.final_state[(b * dk + i) * DV + j] * basis;
                norm2 += basis * basis;
            }
        alphas[b] = dot / norm2;
    }
    if (ok) run_result_free(&r);
    problem_destroy(&p);
    return ok;
}

/* A key of norm `norm` along a fixed direction (norm 2 before scaling). */
static void scaled_key(double norm, double *k) {
    static const double direction[DK] = {1.0, -1.0, 1.0, 1.0};
    for (int i = 0; i < DK; ++i)
        k[i] = direction[i] * norm / 2.0;
}

static double alpha_of(const double *k, double beta, int64_t dk) {
    double lambda = 0.0;
    for (int64_t i = 0; i < dk; ++i)
        lambda += k[i] * k[i];
    return ref_alpha(beta, lambda);
}

/* EFLA -> DeltaNet as beta*lambda -> 0: alpha - beta = O(beta^2 lambda). */
Test(golden, small_step_limit_in_float64) {
    const double beta = 1e-3;
    double previous = 0.0;
    for (double epsilon = 1.0; epsilon >= 1e-3; epsilon /= 10) {
        double k[DK];
        scaled_key(2.0 * epsilon, k);
        const double gap = beta - alpha_of(k, beta, DK);
        cr_expect(gap > 0 && gap < beta * beta * 4.0 * epsilon * epsilon,
                  "alpha gap %.3g at epsilon %g is not within beta^2 lambda", gap, epsilon);
        if (previous > 0)
            cr_expect(fabs(previous / gap / 100.0 - 1.0) < 0.01,
                      "the gap shrinks by %.4g, not 100, when k shrinks tenfold", previous / gap);
        previous = gap;
    }
}

static void check_small_step(const harness_device *device, efla_algorithm algorithm) {
    double keys[2 * DK], betas[2] = {1e-3, 1e-3}, alphas[2];
    scaled_key(2.0, keys);
    scaled_key(0.2, keys + DK);
    if (!library_alphas(device, algorithm, 2, DK, keys, betas, alphas)) return;
    double gaps[2];
    for (int b = 0; b < 2; ++b) {
        const double exact = alpha_of(keys + b * DK, storage_round(EFLA_DTYPE_F32, betas[b]), DK);
        cr_expect(fabs(alphas[b] / exact - 1) < 2e-6,
                  "%s %s: alpha %.9g, exact %.9g (|k| = %g, beta 1e-3)", device->text,
                  efla_algorithm_name(algorithm), alphas[b], exact, b ? 0.2 : 2.0);
        gaps[b] = storage_round(EFLA_DTYPE_F32, betas[b]) - alphas[b];
    }
    cr_expect(gaps[0] / gaps[1] > 90 && gaps[0] / gaps[1] < 110,
              "%s %s: beta - alpha shrinks by %.4g, not ~100, when k shrinks tenfold", device->text,
              efla_algorithm_name(algorithm), gaps[0] / gaps[1]);
}

Test(golden, small_step_limit_in_the_library) { for_each_device(check_small_step); }

/* Unit keys: alpha = 1 - e^-beta; the series boundary x = 1e-4 is smooth. */
static void check_unit_keys(const harness_device *device, efla_algorithm algorithm) {
    double betas[] = {1e-3, 0.1, 1.0, 5.0, 0.99e-4, 1.0e-4, 1.01e-4};
    enum { ROWS = COUNT(betas) };
    double keys[ROWS * DK], alphas[ROWS];
    for (int b = 0; b < ROWS; ++b)
        scaled_key(1.0, keys + b * DK); /* exactly |k| = 1 */
    if (!library_alphas(device, algorithm, ROWS, DK, keys, betas, alphas)) return;
    for (int b = 0; b < ROWS; ++b) {
        const double beta = storage_round(EFLA_DTYPE_F32, betas[b]);
        const double exact = -expm1(-beta);
        cr_expect(fabs(alphas[b] / exact - 1) < 2e-6,
                  "%s %s: |k| = 1, beta %g: alpha %.9g but 1 - e^-beta = %.9g", device->text,
                  efla_algorithm_name(algorithm), beta, alphas[b], exact);
    }
}

Test(golden, unit_keys_give_one_minus_exp_beta) { for_each_device(check_unit_keys); }

/* A zero key is an exact no-op on the state (no NaN from 0/0). */
static void check_zero_key(const harness_device *device, efla_algorithm algorithm) {
    problem p;
    one_token_problem(&p, 1, DK, true);
    memcpy(p.q, golden_q, sizeof golden_q);
    memcpy(p.v, golden_v, sizeof golden_v);
    memcpy(p.initial_state, golden_s0, sizeof golden_s0);
    p.beta[0] = 0.75;
    run_result r;
    if (run_golden(device, &p, algorithm, "case=golden-zero-key", &r)) {
        cr_expect(memcmp(r.final_state, p.initial_state, sizeof golden_s0) == 0,
                  "%s %s: a zero key changed the state", device->text,
                  efla_algorithm_name(algorithm));
        for (int j = 0; j < DV; ++j) {
            double expected = 0.0;
            for (int i = 0; i < DK; ++i)
                expected += golden_s0[i][j] * golden_q[i];
            cr_expect(fabs(r.out[j] - expected) <= 1e-6 * (1 + fabs(expected)),
                      "%s %s: zero key: out[%d] = %.9g, expected S0^T q = %.9g", device->text,
                      efla_algorithm_name(algorithm), j, r.out[j], expected);
        }
        run_result_free(&r);
    }
    problem_destroy(&p);
}

Test(golden, zero_key_is_an_exact_no_op) { for_each_device(check_zero_key); }

/* ----- EFLA(k, v, beta) == DeltaNet(k/|k|, v/|k|, 1 - e^-beta lambda) (§1.4) ----- */

static const problem_spec identity_spec = {.B = 1,
                                           .T = 40,
                                           .H = 1,
                                           .HV = 1,
                                           .Dk = 8,
                                           .Dv = 5,
                                           .keys = KEYS_GAUSSIAN,
                                           .betas = BETA_MIXED,
                                           .initial_state = true,
                                           .scale = 0.5f};

/* The DeltaNet problem of the identity, rounded to `dtype`. */
static void normalized_twin(const problem *efla, efla_dtype dtype, problem *delta) {
    problem_spec spec = efla->spec;
    spec.mode = EFLA_MODE_DELTA;
    problem_create_zero(delta, &spec, dtype);
    memcpy(delta->q, efla->q, sizeof *delta->q * (size_t)problem_q_count(efla));
    memcpy(delta->initial_state, efla->initial_state,
           sizeof *delta->initial_state * (size_t)problem_state_count(efla));
    for (int64_t t = 0; t < efla->T; ++t) {
        const double *k = efla->k + t * efla->Dk;
        double lambda = 0.0;
        for (int64_t i = 0; i < efla->Dk; ++i)
            lambda += k[i] * k[i];
        const double norm = sqrt(lambda);
        for (int64_t i = 0; i < efla->Dk; ++i)
            delta->k[t * efla->Dk + i] = storage_round(dtype, k[i] / norm);
        for (int64_t j = 0; j < efla->Dv; ++j)
            delta->v[t * efla->Dv + j] = storage_round(dtype, efla->v[t * efla->Dv + j] / norm);
        delta->beta[t] = storage_round(dtype, -expm1(-efla->beta[t] * lambda));
    }
}

Test(golden, normalized_key_identity_in_float64) {
    problem efla, delta;
    problem_create(&efla, &identity_spec, EFLA_DTYPE_F32, 7);
    normalized_twin(&efla, EFLA_DTYPE_INVALID, &delta); /* no rounding */
    double *out_a, *state_a, *out_b, *state_b;
    problem_reference(&efla, &out_a, &state_a, NULL);
    problem_reference(&delta, &out_b, &state_b, NULL);
    harness_compare(&efla, "float64 reference: EFLA vs normalised DeltaNet", out_b, state_b, out_a,
                    state_a, NULL, 1e-12);
    free(out_a), free(state_a), free(out_b), free(state_b);
    problem_destroy(&efla);
    problem_destroy(&delta);
}

static void check_identity(const harness_device *device, efla_algorithm algorithm) {
    problem efla, delta;
    problem_create(&efla, &identity_spec, EFLA_DTYPE_F32, 7);
    normalized_twin(&efla, EFLA_DTYPE_F32, &delta);
    run_result a, b;
    if (run_golden(device, &efla, algorithm, "case=identity-efla", &a)) {
        if (run_golden(device, &delta, algorithm, "case=identity-delta", &b)) {
            char label[768];
            harness_label(label, sizeof label, device, &b, &efla, 7,
                          "case=identity EFLA vs normalised DeltaNet");
            harness_compare(&efla, label, b.out, b.final_state, a.out, a.final_state, NULL, 2e-5);
            run_result_free(&b);
        }
        run_result_free(&a);
    }
    problem_destroy(&efla);
    problem_destroy(&delta);
}

Test(golden, normalized_key_identity_in_the_library) { for_each_device(check_identity); }

/* ----- large beta*lambda: S_t^T k_t = v_t, a full overwrite (§1.4) ----- */

static void overwrite_problem(problem *p) {
    const problem_spec spec = {.B = 1,
                               .T = 12,
                               .H = 1,
                               .HV = 1,
                               .Dk = 8,
                               .Dv = 4,
                               .keys = KEYS_GAUSSIAN,
                               .betas = BETA_UNIFORM,
                               .initial_state = true,
                               .scale = 1.0f};
    problem_create(p, &spec, EFLA_DTYPE_F32, 11);
    for (int64_t t = 0; t < p->T; ++t) {
        double *k = p->k + t * p->Dk, norm = 0.0;
        for (int64_t i = 0; i < p->Dk; ++i)
            norm += k[i] * k[i];
        for (int64_t i = 0; i < p->Dk; ++i) {
            k[i] = storage_round(EFLA_DTYPE_F32, k[i] * 100.0 / sqrt(norm)); /* lambda = 1e4 */
            p->q[t * p->Dk + i] = k[i]; /* so o_t = S_t^T k_t */
        }
        p->beta[t] = 1.0;
    }
}

/* Fails when some o_t is not v_t to `tol` (relative). */
static void expect_overwrite(const problem *p, const double *out, double tol, const char *label) {
    for (int64_t t = 0; t < p->T; ++t) {
        double diff2 = 0.0, ref2 = 0.0;
        for (int64_t j = 0; j < p->Dv; ++j) {
            const double d = out[t * p->Dv + j] - p->v[t * p->Dv + j];
            diff2 += d * d;
            ref2 += p->v[t * p->Dv + j] * p->v[t * p->Dv + j];
        }
        cr_expect(sqrt(diff2 / ref2) <= tol, "%s: token %lld: |S^T k - v| / |v| = %.3g > %.1g",
                  label, (long long)t, sqrt(diff2 / ref2), tol);
    }
}

Test(golden, large_step_overwrites_the_value) {
    problem p;
    overwrite_problem(&p);
    double *out, *state;
    problem_reference(&p, &out, &state, NULL);
    expect_overwrite(&p, out, 1e-12, "float64 reference");
    free(out), free(state);
    efla_backend backends[HARNESS_MAX_BACKENDS];
    const size_t count = harness_backends(backends, HARNESS_MAX_BACKENDS);
    for (size_t b = 0; b < count; ++b) {
        harness_device device;
        if (!harness_open(backends[b], 0, &device)) continue;
        for (size_t a = 0; a < COUNT(algorithms); ++a) {
            run_result r;
            if (!run_golden(&device, &p, algorithms[a], "case=overwrite", &r)) continue;
            char label[768];
            harness_label(label, sizeof label, &device, &r, &p, 11, "case=overwrite");
            expect_overwrite(&p, r.out, 1e-4, label);
            run_result_free(&r);
        }
        harness_close(&device);
    }
    problem_destroy(&p);
}
