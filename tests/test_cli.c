/* The `efla` command run as a program: exit codes, messages, outputs that
 * match a float64 recurrence written here, and outputs left untouched on
 * every failure. */
#include "npy.h"

#include <efla/efla.h>

#include <criterion/criterion.h>

#include <dirent.h>
#include <fcntl.h>
#include <math.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef EFLA_CLI_PATH
#error "EFLA_CLI_PATH must name the built efla program"
#endif

extern char **environ;

static char dir[64];

static void make_dir(void) {
    snprintf(dir, sizeof dir, "/tmp/efla_test_cli_XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
}

static void remove_dir(void) {
    DIR *d = opendir(dir);
    struct dirent *entry;
    char path[512];
    while (d && (entry = readdir(d))) {
        if (entry->d_name[0] == '.' && (!entry->d_name[1] || entry->d_name[1] == '.')) continue;
        snprintf(path, sizeof path, "%s/%s", dir, entry->d_name);
        unlink(path);
    }
    if (d) closedir(d);
    rmdir(dir);
}

TestSuite(cli, .init = make_dir, .fini = remove_dir, .timeout = 60);

static const char *in_dir(const char *name) {
    static char paths[16][256];
    static int next;
    char *path = paths[next++ % 16];
    snprintf(path, sizeof paths[0], "%s/%s", dir, name);
    return path;
}

/* ---- running the program ------------------------------------------- */

/* The program under test: $EFLA_CLI, else the build's, else the efla
 * beside this test program (a bundle copied to another machine). */
static const char *cli_path(void) {
    static char beside[4096];
    const char *env = getenv("EFLA_CLI");
    if (env && *env) return env;
    if (access(EFLA_CLI_PATH, X_OK) == 0) return EFLA_CLI_PATH;
    ssize_t n = readlink("/proc/self/exe", beside, sizeof beside - 8);
    if (n <= 0) return EFLA_CLI_PATH;
    beside[n] = '\0';
    char *slash = strrchr(beside, '/');
    if (!slash) return EFLA_CLI_PATH;
    strcpy(slash + 1, "efla");
    return beside;
}

/* This environment without the variables that pick a backend, device or
 * kernel path: these tests pin the CPU backend with --backend cpu, and a
 * GPU kernel path forced for the conformance runs means nothing to it. */
static char **child_environment(void) {
    static char *kept[1024];
    size_t n = 0;
    for (char **e = environ; *e && n + 1 < sizeof kept / sizeof kept[0]; ++e)
        if (strncmp(*e, "EFLA_PATH=", 10) && strncmp(*e, "EFLA_BACKEND=", 13) &&
            strncmp(*e, "EFLA_DEVICE=", 12))
            kept[n++] = *e;
    kept[n] = NULL;
    return kept;
}

typedef struct cli_result {
    int code; /* exit status; 128 + signal when killed */
    char out[8192];
    char err[8192];
} cli_result;

static void read_text(const char *path, char *buf, size_t size) {
    FILE *f = fopen(path, "rb");
    size_t n = f ? fread(buf, 1, size - 1, f) : 0;
    buf[n] = '\0';
    if (f) fclose(f);
}

/* Runs efla with args (NULL-terminated), capturing stdout and stderr. */
static cli_result run_efla(const char *const *args) {
    static cli_result r;
    const char *program = cli_path();
    const char *argv[64] = {program};
    int argc = 1;
    for (; args[argc - 1]; ++argc)
        argv[argc] = args[argc - 1];
    argv[argc] = NULL;
    char out_path[256], err_path[256];
    snprintf(out_path, sizeof out_path, "%s.stdout", dir);
    snprintf(err_path, sizeof err_path, "%s.stderr", dir);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 1, out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    posix_spawn_file_actions_addopen(&actions, 2, err_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    pid_t pid;
    cr_assert_eq(
        posix_spawn(&pid, program, &actions, NULL, (char *const *)argv, child_environment()), 0);
    posix_spawn_file_actions_destroy(&actions);
    int status = 0;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    read_text(out_path, r.out, sizeof r.out);
    read_text(err_path, r.err, sizeof r.err);
    unlink(out_path);
    unlink(err_path);
    return r;
}

#define RUN(...) run_efla((const char *const[]){__VA_ARGS__, NULL})

/* One stderr line "efla: ...", containing `phrase`. */
static void expect_failure(const cli_result *r, int code, const char *phrase) {
    cr_assert_eq(r->code, code, "exit %d, expected %d; stderr: %s", r->code, code, r->err);
    cr_assert_eq(strncmp(r->err, "efla: ", 6), 0, "stderr: %s", r->err);
    cr_assert_not_null(strchr(r->err, '\n'));
    cr_assert_eq(strchr(r->err, '\n')[1], '\0', "more than one line: %s", r->err);
    cr_assert_not_null(strstr(r->err, phrase), "stderr '%s' lacks '%s'", r->err, phrase);
    cr_assert_eq(r->out[0], '\0', "stdout: %s", r->out);
}

/* ---- files ----------------------------------------------------------- */

static void write_f32(const char *name, const float *data, uint32_t rank, const int64_t *shape) {
    FILE *f = fopen(in_dir(name), "wb");
    char err[256];
    cr_assert_not_null(f);
    cr_assert_eq(npy_write_f32(f, data, rank, shape, err, sizeof err), NPY_OK, "%s", err);
    cr_assert_eq(fclose(f), 0);
}

/* A little-endian '<i4' vector, written by hand. */
static void write_i4(const char *name, const int32_t *values, int count) {
    char header[128];
    int length = snprintf(header, sizeof header,
                          "{'descr': '<i4', 'fortran_order': False, 'shape': (%d,), }", count);
    while ((10 + length + 1) % 64)
        header[length++] = ' ';
    header[length++] = '\n';
    FILE *f = fopen(in_dir(name), "wb");
    cr_assert_not_null(f);
    fwrite("\x93NUMPY\x01\x00", 1, 8, f);
    fputc(length & 0xff, f);
    fputc(length >> 8, f);
    fwrite(header, 1, (size_t)length, f);
    for (int i = 0; i < count; ++i)
        for (int b = 0; b < 4; ++b)
            fputc((int)(((uint32_t)values[i] >> (8 * b)) & 0xff), f);
    fclose(f);
}

static void write_text(const char *name, const char *text) {
    FILE *f = fopen(in_dir(name), "wb");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
}

static void expect_text(const char *name, const char *text) {
    char buf[256];
    read_text(in_dir(name), buf, sizeof buf);
    cr_assert_str_eq(buf, text, "%s was changed", name);
}

static void expect_absent(const char *name) {
    struct stat st;
    cr_assert_neq(stat(in_dir(name), &st), 0, "%s was created", name);
}

/* No temporary output (a dot file) is left behind. */
static void expect_no_temporaries(void) {
    DIR *d = opendir(dir);
    struct dirent *entry;
    cr_assert_not_null(d);
    while ((entry = readdir(d)))
        cr_assert(entry->d_name[0] != '.' || !strcmp(entry->d_name, ".") ||
                      !strcmp(entry->d_name, ".."),
                  "temporary %s left behind", entry->d_name);
    closedir(d);
}

static float *read_f32(const char *name, uint32_t rank, const int64_t *shape) {
    npy_array a;
    char err[512];
    cr_assert_eq(npy_read(in_dir(name), NPY_F32, &a, err, sizeof err), NPY_OK, "%s", err);
    cr_assert_eq(a.rank, rank, "%s has rank %u", name, a.rank);
    for (uint32_t i = 0; i < rank; ++i)
        cr_assert_eq(a.shape[i], shape[i], "%s shape", name);
    float *values = malloc(a.count ? a.count * sizeof *values : 1);
    npy_to_f32(&a, values);
    npy_array_free(&a);
    return values;
}

/* ---- the problem and its float64 reference ---------------------------- */

enum { MAX_VALUES = 512 };

typedef struct problem {
    int b, t, h, hv, dk, dv, n; /* n: state rows */
    float q[MAX_VALUES], k[MAX_VALUES], v[MAX_VALUES], beta[MAX_VALUES], s0[MAX_VALUES];
} problem;

typedef struct sequence {
    int row, start, length; /* its batch row and tokens; the state row is its index */
} sequence;

static float uniform(uint32_t *seed) {
    *seed = *seed * 1664525u + 1013904223u;
    return (float)(*seed >> 8) / 16777216.0f * 2.0f - 1.0f;
}

static void fill(float *values, int count, uint32_t *seed, float scale) {
    for (int i = 0; i < count; ++i)
        values[i] = scale * uniform(seed);
}

static problem make_problem(int b, int t, int h, int hv, int dk, int dv, int n) {
    problem p = {b, t, h, hv, dk, dv, n, {0}, {0}, {0}, {0}, {0}};
    uint32_t seed = 12345;
    cr_assert_leq(b * t * hv * (dk > dv ? dk : dv), MAX_VALUES);
    fill(p.q, b * t * h * dk, &seed, 1.0f);
    fill(p.k, b * t * h * dk, &seed, 1.5f);
    fill(p.v, b * t * hv * dv, &seed, 1.0f);
    for (int i = 0; i < b * t * hv; ++i)
        p.beta[i] = 0.5f + 0.45f * uniform(&seed);
    fill(p.s0, n * hv * dk * dv, &seed, 0.3f);
    return p;
}

static void write_problem(const problem *p) {
    const int64_t qk[4] = {p->b, p->t, p->h, p->dk}, v[4] = {p->b, p->t, p->hv, p->dv},
                  beta[3] = {p->b, p->t, p->hv}, state[4] = {p->n, p->hv, p->dk, p->dv};
    write_f32("q.npy", p->q, 4, qk);
    write_f32("k.npy", p->k, 4, qk);
    write_f32("v.npy", p->v, 4, v);
    write_f32("beta.npy", p->beta, 3, beta);
    write_f32("s0.npy", p->s0, 4, state);
}

/* One (sequence, v-head): S <- S + alpha k (v - S^T k)^T; o = scale S^T q. */
static void reference_head(const problem *p, const sequence *s, int hv, double *S, double *o) {
    const double scale = 1.0 / sqrt((double)p->dk);
    const int head = hv / (p->hv / p->h);
    for (int t = s->start; t < s->start + s->length; ++t) {
        const int token = s->row * p->t + t;
        const float *k = &p->k[(token * p->h + head) * p->dk];
        const float *q = &p->q[(token * p->h + head) * p->dk];
        const float *v = &p->v[(token * p->hv + hv) * p->dv];
        const double beta = p->beta[token * p->hv + hv];
        double lambda = 0.0;
        for (int i = 0; i < p->dk; ++i)
            lambda += (double)k[i] * k[i];
        const double alpha = lambda > 0 ? -expm1(-beta * lambda) / lambda : beta;
        for (int j = 0; j < p->dv; ++j) {
            double u = v[j], out = 0.0;
            for (int i = 0; i < p->dk; ++i)
                u -= S[i * p->dv + j] * k[i];
            for (int i = 0; i < p->dk; ++i)
                S[i * p->dv + j] += alpha * k[i] * u;
            for (int i = 0; i < p->dk; ++i)
                out += S[i * p->dv + j] * q[i];
            o[(token * p->hv + hv) * p->dv + j] = scale * out;
        }
    }
}

static void reference(const problem *p, const sequence *seqs, int count, double *o, double *state) {
    const int size = p->dk * p->dv;
    for (int s = 0; s < count; ++s)
        for (int hv = 0; hv < p->hv; ++hv) {
            double *S = &state[(s * p->hv + hv) * size];
            for (int i = 0; i < size; ++i)
                S[i] = p->s0[(s * p->hv + hv) * size + i];
            reference_head(p, &seqs[s], hv, S, o);
        }
}

static void expect_close(const float *got, const double *want, int count, double tolerance,
                         const char *what) {
    for (int i = 0; i < count; ++i)
        cr_assert_leq(fabs(got[i] - want[i]), tolerance * (1.0 + fabs(want[i])),
                      "%s[%d] = %.9g, reference %.9g", what, i, got[i], want[i]);
}

/* ---- success --------------------------------------------------------- */

#define INPUTS                                                                                     \
    "--q", in_dir("q.npy"), "--k", in_dir("k.npy"), "--v", in_dir("v.npy"), "--beta",              \
        in_dir("beta.npy")

static void check_batch_run(const problem *p, double tolerance) {
    sequence seqs[8];
    for (int b = 0; b < p->b; ++b)
        seqs[b] = (sequence){b, 0, p->t};
    static double o[MAX_VALUES], state[MAX_VALUES];
    reference(p, seqs, p->b, o, state);
    const int64_t out_shape[4] = {p->b, p->t, p->hv, p->dv},
                  state_shape[4] = {p->n, p->hv, p->dk, p->dv};
    float *out = read_f32("o.npy", 4, out_shape), *final = read_f32("s1.npy", 4, state_shape);
    expect_close(out, o, p->b * p->t * p->hv * p->dv, tolerance, "out");
    expect_close(final, state, p->n * p->hv * p->dk * p->dv, tolerance, "final_state");
    free(out);
    free(final);
}

Test(cli, forward_matches_a_float64_recurrence) {
    problem p = make_problem(2, 9, 1, 2, 4, 3, 2);
    write_problem(&p);
    cli_result r = RUN("forward", "--backend", "cpu", INPUTS, "--initial-state", in_dir("s0.npy"),
                       "--out", in_dir("o.npy"), "--final-state", in_dir("s1.npy"));
    cr_assert_eq(r.code, 0, "exit %d: %s", r.code, r.err);
    cr_assert_str_eq(r.out, "");
    cr_assert_str_eq(r.err, "");
    check_batch_run(&p, 1e-4);
    expect_no_temporaries();
}

Test(cli, forward_with_16_bit_storage_and_both_algorithms) {
    problem p = make_problem(2, 9, 1, 2, 4, 3, 2);
    write_problem(&p);
    const char *const settings[][2] = {
        {"f16", "chunked"}, {"bf16", "recurrent"}, {"f32", "chunked"}};
    const double tolerance[] = {2e-2, 1e-1, 1e-4};
    for (int i = 0; i < 3; ++i) {
        cli_result r =
            RUN("forward", "--backend", "cpu", INPUTS, "--initial-state", in_dir("s0.npy"),
                "--storage", settings[i][0], "--algorithm", settings[i][1], "--out",
                in_dir("o.npy"), "--final-state", in_dir("s1.npy"));
        cr_assert_eq(r.code, 0, "%s %s: exit %d: %s", settings[i][0], settings[i][1], r.code,
                     r.err);
        check_batch_run(&p, tolerance[i]);
    }
}

Test(cli, forward_json_is_one_line) {
    problem p = make_problem(1, 3, 1, 1, 2, 2, 1);
    write_problem(&p);
    cli_result r = RUN("forward", "--backend", "cpu", INPUTS, "--json", "--out", in_dir("o.npy"));
    cr_assert_eq(r.code, 0, "exit %d: %s", r.code, r.err);
    cr_assert_eq(r.out[0], '{', "%s", r.out);
    cr_assert_str_eq(strchr(r.out, '\n'), "\n", "%s", r.out);
    const char *keys[] = {"\"backend\":\"cpu\"", "\"device\":0", "\"device_name\":",
                          "\"algorithm\":",      "\"path\":",    "\"ms\":"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; ++i)
        cr_assert_not_null(strstr(r.out, keys[i]), "%s lacks %s", r.out, keys[i]);
}

Test(cli, forward_varlen_with_an_empty_sequence) {
    problem p = make_problem(1, 7, 1, 2, 3, 2, 3);
    write_problem(&p);
    const int32_t cu[4] = {0, 3, 3, 7};
    write_i4("cu.npy", cu, 4);
    cli_result r = RUN("forward", "--backend", "cpu", INPUTS, "--cu-seqlens", in_dir("cu.npy"),
                       "--initial-state", in_dir("s0.npy"), "--out", in_dir("o.npy"),
                       "--final-state", in_dir("s1.npy"));
    cr_assert_eq(r.code, 0, "exit %d: %s", r.code, r.err);
    const sequence seqs[3] = {{0, 0, 3}, {0, 3, 0}, {0, 3, 4}};
    static double o[MAX_VALUES], state[MAX_VALUES];
    reference(&p, seqs, 3, o, state);
    const int64_t out_shape[4] = {1, 7, 2, 2}, state_shape[4] = {3, 2, 3, 2};
    float *out = read_f32("o.npy", 4, out_shape), *final = read_f32("s1.npy", 4, state_shape);
    expect_close(out, o, 7 * 2 * 2, 1e-4, "out");
    expect_close(final, state, 3 * 2 * 3 * 2, 1e-4, "final_state");
    free(out);
    free(final);
}

Test(cli, forward_with_zero_tokens_passes_the_state_through) {
    problem p = make_problem(2, 0, 1, 1, 2, 2, 2);
    write_problem(&p);
    cli_result r = RUN("forward", "--backend", "cpu", INPUTS, "--initial-state", in_dir("s0.npy"),
                       "--out", in_dir("o.npy"), "--final-state", in_dir("s1.npy"));
    cr_assert_eq(r.code, 0, "exit %d: %s", r.code, r.err);
    const int64_t out_shape[4] = {2, 0, 1, 2}, state_shape[4] = {2, 1, 2, 2};
    free(read_f32("o.npy", 4, out_shape));
    float *final = read_f32("s1.npy", 4, state_shape);
    cr_assert_arr_eq(final, p.s0, 8 * sizeof(float));
    free(final);
}

/* ---- failures -------------------------------------------------------- */

/* Writes the standard problem and a pre-existing final state file. */
static void prepare_failure(void) {
    problem p = make_problem(2, 5, 1, 2, 4, 3, 2);
    write_problem(&p);
    write_text("old.npy", "unchanged");
}

/* The outputs of a failed run: o.npy never appears, old.npy is intact. */
static void expect_outputs_untouched(void) {
    expect_absent("o.npy");
    expect_text("old.npy", "unchanged");
    expect_no_temporaries();
}

#define OUTPUTS "--out", in_dir("o.npy"), "--final-state", in_dir("old.npy")

Test(cli, missing_input_file) {
    prepare_failure();
    cli_result r =
        RUN("forward", "--backend", "cpu", "--q", in_dir("none.npy"), "--k", in_dir("k.npy"), "--v",
            in_dir("v.npy"), "--beta", in_dir("beta.npy"), OUTPUTS);
    cr_assert(r.code == 2 || r.code == 3, "exit %d", r.code);
    expect_failure(&r, r.code, "none.npy");
    expect_outputs_untouched();
}

Test(cli, malformed_npy) {
    prepare_failure();
    write_text("bad.npy", "\x93NUMPY\x01\x00\x05\x00{oops");
    cli_result r =
        RUN("forward", "--backend", "cpu", "--q", in_dir("bad.npy"), "--k", in_dir("k.npy"), "--v",
            in_dir("v.npy"), "--beta", in_dir("beta.npy"), OUTPUTS);
    expect_failure(&r, 3, "bad.npy");
    expect_outputs_untouched();
    write_text("bad.npy", "not numpy at all");
    r = RUN("forward", "--backend", "cpu", "--q", in_dir("bad.npy"), "--k", in_dir("k.npy"), "--v",
            in_dir("v.npy"), "--beta", in_dir("beta.npy"), OUTPUTS);
    expect_failure(&r, 3, "bad magic");
    expect_outputs_untouched();
}

Test(cli, shape_mismatch_is_reported_by_the_library) {
    prepare_failure();
    const int64_t shape[4] = {2, 5, 1, 3}; /* Dk 3 where q has 4 */
    float k[30] = {0};
    write_f32("k3.npy", k, 4, shape);
    cli_result r =
        RUN("forward", "--backend", "cpu", "--q", in_dir("q.npy"), "--k", in_dir("k3.npy"), "--v",
            in_dir("v.npy"), "--beta", in_dir("beta.npy"), OUTPUTS);
    expect_failure(&r, 3, "k has shape");
    expect_outputs_untouched();
}

Test(cli, wrong_initial_state_shape) {
    prepare_failure();
    cli_result r =
        RUN("forward", "--backend", "cpu", INPUTS, "--initial-state", in_dir("q.npy"), OUTPUTS);
    expect_failure(&r, 3, "initial_state");
    expect_outputs_untouched();
}

Test(cli, same_out_and_final_state) {
    prepare_failure();
    cli_result r = RUN("forward", "--backend", "cpu", INPUTS, "--out", in_dir("old.npy"),
                       "--final-state", in_dir("old.npy"));
    expect_failure(&r, 2, "same file");
    char dotted[300];
    snprintf(dotted, sizeof dotted, "%s/./old.npy", dir);
    r = RUN("forward", "--backend", "cpu", INPUTS, "--out", in_dir("old.npy"), "--final-state",
            dotted);
    expect_failure(&r, 2, "same file");
    expect_outputs_untouched();
}

Test(cli, unknown_flag_and_missing_flag) {
    prepare_failure();
    cli_result r = RUN("forward", "--backend", "cpu", INPUTS, "--bogus", OUTPUTS);
    expect_failure(&r, 2, "--bogus");
    r = RUN("forward", "--backend", "cpu", "--q", in_dir("q.npy"), "--k", in_dir("k.npy"), "--v",
            in_dir("v.npy"), OUTPUTS);
    expect_failure(&r, 2, "--beta");
    r = RUN("frobnicate");
    expect_failure(&r, 2, "frobnicate");
    expect_outputs_untouched();
}

Test(cli, bad_numbers) {
    prepare_failure();
    const char *const cases[][2] = {{"--scale", "abc"}, {"--scale", "1,5"},
                                    {"--scale", "nan"}, {"--scale", ""},
                                    {"--device", "-1"}, {"--device", "1.5"},
                                    {"--threads", "x"}, {"--threads", "99999999999999999999"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; ++i) {
        cli_result r =
            RUN("forward", "--backend", "cpu", INPUTS, cases[i][0], cases[i][1], OUTPUTS);
        expect_failure(&r, 2, cases[i][0]);
    }
    cli_result r = RUN("forward", "--backend", "cpu", INPUTS, "--mode", "fast", OUTPUTS);
    expect_failure(&r, 2, "--mode");
    expect_outputs_untouched();
}

Test(cli, unavailable_gpu_backends) {
    prepare_failure();
    const efla_backend backends[] = {EFLA_BACKEND_CUDA, EFLA_BACKEND_VULKAN, EFLA_BACKEND_OPENCL};
    int checked = 0;
    for (size_t i = 0; i < 3; ++i) {
        if (efla_backend_probe(backends[i]) == EFLA_SUCCESS) continue; /* usable here */
        const char *name = efla_backend_name(backends[i]);
        cli_result r = RUN("forward", "--backend", name, INPUTS, OUTPUTS);
        expect_failure(&r, 4, name);
        expect_outputs_untouched();
        checked++;
    }
    if (!checked) cr_skip_test("every GPU backend is available here");
}

Test(cli, outputs_appear_together_or_not_at_all) {
    prepare_failure();
    char missing_dir[300];
    snprintf(missing_dir, sizeof missing_dir, "%s/no/such/dir/s.npy", dir);
    cli_result r = RUN("forward", "--backend", "cpu", INPUTS, "--out", in_dir("o.npy"),
                       "--final-state", missing_dir);
    cr_assert_eq(r.code, 2, "exit %d: %s", r.code, r.err);
    expect_outputs_untouched();
}

Test(cli, info_exits_zero) {
    cli_result r = RUN("info");
    cr_assert_eq(r.code, 0, "exit %d: %s", r.code, r.err);
    cr_assert_not_null(strstr(r.out, "cpu"), "%s", r.out);
    r = RUN("info", "--json");
    cr_assert_eq(r.code, 0, "exit %d: %s", r.code, r.err);
    cr_assert_eq(r.out[0], '{', "%s", r.out);
    cr_assert_str_eq(strchr(r.out, '\n'), "\n");
    cr_assert_not_null(strstr(r.out, "\"auto\":"), "%s", r.out);
}

Test(cli, bench_json_on_a_small_shape) {
    cli_result r = RUN("bench", "--backend", "cpu", "--shape", "1,8,1,2,4,4", "--warmup", "1",
                       "--iters", "3", "--json");
    cr_assert_eq(r.code, 0, "exit %d: %s", r.code, r.err);
    cr_assert_eq(r.out[0], '{', "%s", r.out);
    cr_assert_str_eq(strchr(r.out, '\n'), "\n", "%s", r.out);
    const char *keys[] = {
        "\"backend\":\"cpu\"", "\"device\":0",
        "\"path\":",           "\"shape\":{\"B\":1,\"T\":8,\"H\":1,\"HV\":2,\"Dk\":4,\"Dv\":4}",
        "\"storage\":\"f32\"", "\"median_ms\":",
        "\"p10_ms\":",         "\"p90_ms\":",
        "\"tokens_per_s\":",   "\"nominal_gflops\":",
        "\"gbps\":",           "\"fma_peak_gflops\":",
        "\"peak_fraction\":",  "\"set_median_ms\":[",
        "\"run_ms\":["};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; ++i)
        cr_assert_not_null(strstr(r.out, keys[i]), "%s lacks %s", r.out, keys[i]);
    r = RUN("bench", "--backend", "cpu", "--shape", "1,8,3,2,4,4", "--iters", "3");
    cr_assert_eq(r.code, 3, "exit %d: %s", r.code, r.err);
    r = RUN("bench", "--shape", "1,8,a,2,4,4");
    expect_failure(&r, 2, "--shape");
}
