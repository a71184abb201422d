/*
 * The efla demo: a prompt prefill followed by decode steps that carry the
 * state, on the best device this machine has, checked against the CPU
 * backend and timed.
 *
 *   prefill_decode [--tokens T] [--steps N] [--heads H] [--dim D]
 *
 * Exit status 0 when the device agrees with the CPU backend.
 */
#include <efla/efla.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct demo_shape {
    int64_t tokens, steps, heads, dim;
} demo_shape;

/* Everything one run needs on one context: inputs, outputs, state. */
typedef struct demo_run {
    efla_context context;
    efla_buffer q, k, v, beta, out, state;
    double prefill_ms, decode_ms;
} demo_run;

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

/* Deterministic pseudo-random normal numbers (xorshift + Box-Muller). */
static float random_normal(uint64_t *s) {
    double u[2];
    for (int i = 0; i < 2; ++i) {
        *s ^= *s << 13, *s ^= *s >> 7, *s ^= *s << 17;
        u[i] = ((double)(*s >> 11) + 0.5) / 9007199254740992.0;
    }
    return (float)(sqrt(-2.0 * log(u[0])) * cos(6.283185307179586 * u[1]));
}

static int check(efla_status status, const char *what) {
    if (status == EFLA_SUCCESS) return 0;
    fprintf(stderr, "demo: %s failed: %s (%s)\n", what, efla_last_error_message(),
            efla_status_string(status));
    return 1;
}

static int make_buffer(efla_context ctx, const float *data, size_t count, efla_buffer *out) {
    if (check(efla_buffer_create(ctx, count * sizeof(float), out), "buffer create")) return 1;
    return data ? check(efla_buffer_upload(*out, 0, data, count * sizeof(float)), "upload") : 0;
}

/* Runs tokens [first, first + count) of the whole sequence. */
static int forward_tokens(demo_run *run, const demo_shape *s, int64_t first, int64_t count) {
    const int64_t d = s->dim, h = s->heads;
    const int64_t rows[4] = {1, count, h, d}, beta_rows[3] = {1, count, h};
    const int64_t state_shape[4] = {1, h, d, d};
    const uint64_t row_bytes = (uint64_t)(h * d) * sizeof(float);
    efla_forward_desc desc = EFLA_FORWARD_DESC_INIT;
    desc.q = efla_tensor_contiguous(run->q, first * row_bytes, EFLA_DTYPE_F32, 4, rows);
    desc.k = efla_tensor_contiguous(run->k, first * row_bytes, EFLA_DTYPE_F32, 4, rows);
    desc.v = efla_tensor_contiguous(run->v, first * row_bytes, EFLA_DTYPE_F32, 4, rows);
    desc.out = efla_tensor_contiguous(run->out, first * row_bytes, EFLA_DTYPE_F32, 4, rows);
    desc.beta = efla_tensor_contiguous(run->beta, (uint64_t)(first * h) * sizeof(float),
                                       EFLA_DTYPE_F32, 3, beta_rows);
    /* The state is updated in place: decode carries it from call to call. */
    desc.final_state = efla_tensor_contiguous(run->state, 0, EFLA_DTYPE_F32, 4, state_shape);
    if (first > 0) desc.initial_state = desc.final_state;
    return check(efla_forward(run->context, &desc), "forward");
}

static int run_demo(demo_run *run, const demo_shape *s, float *const inputs[4], float *out) {
    const int64_t total = s->tokens + s->steps;
    const size_t rows = (size_t)(total * s->heads * s->dim);
    if (make_buffer(run->context, inputs[0], rows, &run->q) ||
        make_buffer(run->context, inputs[1], rows, &run->k) ||
        make_buffer(run->context, inputs[2], rows, &run->v) ||
        make_buffer(run->context, inputs[3], (size_t)(total * s->heads), &run->beta) ||
        make_buffer(run->context, NULL, rows, &run->out) ||
        make_buffer(run->context, NULL, (size_t)(s->heads * s->dim * s->dim), &run->state))
        return 1;
    double start = now_ms();
    if (forward_tokens(run, s, 0, s->tokens) ||
        check(efla_context_synchronize(run->context), "prefill"))
        return 1;
    run->prefill_ms = now_ms() - start;
    start = now_ms();
    for (int64_t step = 0; step < s->steps; ++step)
        if (forward_tokens(run, s, s->tokens + step, 1)) return 1;
    if (check(efla_context_synchronize(run->context), "decode")) return 1;
    run->decode_ms = now_ms() - start;
    return check(efla_buffer_download(run->out, 0, out, rows * sizeof(float)), "download");
}

static void release(demo_run *run) {
    efla_buffer bufs[] = {run->q, run->k, run->v, run->beta, run->out, run->state};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; ++i) efla_buffer_destroy(bufs[i]);
    efla_context_destroy(run->context);
}

static double relative_error(const float *got, const float *want, size_t n) {
    double diff = 0.0, norm = 0.0;
    for (size_t i = 0; i < n; ++i) {
        diff += ((double)got[i] - want[i]) * ((double)got[i] - want[i]);
        norm += (double)want[i] * want[i];
    }
    return sqrt(diff / (norm > 0.0 ? norm : 1.0));
}

static int parse_args(int argc, char **argv, demo_shape *s) {
    for (int i = 1; i + 1 < argc; i += 2) {
        long long value = atoll(argv[i + 1]);
        if (strcmp(argv[i], "--tokens") == 0) s->tokens = value;
        else if (strcmp(argv[i], "--steps") == 0) s->steps = value;
        else if (strcmp(argv[i], "--heads") == 0) s->heads = value;
        else if (strcmp(argv[i], "--dim") == 0) s->dim = value;
        else return 1;
    }
    if (argc % 2 == 0 || s->tokens < 1 || s->steps < 0 || s->heads < 1 || s->dim < 1 ||
        s->dim > 256)
        return 1;
    return 0;
}

int main(int argc, char **argv) {
    demo_shape shape = {1024, 32, 8, 128};
    if (parse_args(argc, argv, &shape)) {
        fprintf(stderr, "usage: %s [--tokens T] [--steps N] [--heads H] [--dim D<=256]\n", argv[0]);
        return 2;
    }
    const int64_t total = shape.tokens + shape.steps;
    const size_t rows = (size_t)(total * shape.heads * shape.dim);
    float *inputs[4], *device_out = malloc(rows * sizeof(float)),
                      *cpu_out = malloc(rows * sizeof(float));
    uint64_t seed = 0x9e3779b97f4a7c15ull;
    for (int t = 0; t < 4; ++t) {
        size_t n = t < 3 ? rows : (size_t)(total * shape.heads);
        inputs[t] = malloc(n * sizeof(float));
        for (size_t i = 0; inputs[t] && i < n; ++i) {
            float x = random_normal(&seed);
            inputs[t][i] = t < 3 ? x : 1.0f / (1.0f + expf(-x)); /* beta = sigmoid */
        }
    }

    efla_context_create_info best = EFLA_CONTEXT_CREATE_INFO_INIT;
    efla_context_create_info cpu = EFLA_CONTEXT_CREATE_INFO_INIT;
    cpu.backend = EFLA_BACKEND_CPU;
    demo_run device_run = {0}, cpu_run = {0};
    int failed = check(efla_context_create(&best, &device_run.context), "context") ||
                 run_demo(&device_run, &shape, inputs, device_out) ||
                 check(efla_context_create(&cpu, &cpu_run.context), "cpu context") ||
                 run_demo(&cpu_run, &shape, inputs, cpu_out);
    if (!failed) {
        efla_device_info info = EFLA_DEVICE_INFO_INIT;
        efla_context_device_info(device_run.context, &info);
        double error = relative_error(device_out, cpu_out, rows);
        printf("efla %s — EFLA prefill + decode, %lld heads, Dk = Dv = %lld\n",
               efla_version_string(), (long long)shape.heads, (long long)shape.dim);
        printf("backend  %s\ndevice   %s (path %s)\n", efla_backend_name(info.backend), info.name,
               info.kernel_path);
        printf("prefill  %lld tokens in %.3f ms\n", (long long)shape.tokens, device_run.prefill_ms);
        printf("decode   %lld steps in %.3f ms (%.3f ms/step)\n", (long long)shape.steps,
               device_run.decode_ms, shape.steps ? device_run.decode_ms / shape.steps : 0.0);
        printf("check    relative error vs the CPU backend %.2e: %s\n", error,
               error < 1e-4 ? "ok" : "MISMATCH");
        failed = !(error < 1e-4);
    }
    release(&device_run);
    release(&cpu_run);
    for (int t = 0; t < 4; ++t) free(inputs[t]);
    free(device_out);
    free(cpu_out);
    return failed;
}
