/* `efla bench`: times the forward on the PERFORMANCE.md shapes with random
 * inputs, a warm-up and many runs rotating through separate buffer sets. */
#include "bench_data.h"
#include "bench_report.h"
#include "bench_shapes.h"
#include "bench_stats.h"
#include "cli_util.h"
#include "commands.h"
#include "cpu_peaks.h"
#include "device_io.h"
#include "storage.h"

#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "usage: efla bench [--backend auto|cpu|vulkan|opencl|cuda] [--device N]\n"
    "                  [--suite prefill|decode|all] [--shape B,T,H,HV,Dk,Dv]...\n"
    "                  [--storage f32|f16|bf16] [--algorithm auto|chunked|recurrent]\n"
    "                  [--warmup N] [--iters N] [--threads N] [--scale-down] [--json]\n"
    "\n"
    "Suites (PERFORMANCE.md): prefill S1-S5, decode D1; --scale-down runs S1s\n"
    "(1,2048,4,4,128,128) and D1s (16,1,4,4,128,128) instead, for CPUs. A --shape with\n"
    "T <= 64 is timed as a decode step (initial state given). Default: --suite all,\n"
    "3 warm-up runs and more for at least 1 s (none with --warmup 0), enough timed\n"
    "runs for about 1.5 s per shape (at least 10).\n"
    "The table goes to stdout, or to stderr with --json, which prints one JSON object\n"
    "per shape per line on stdout. Floors: H200 figures for GPUs (4.25 TB/s copy,\n"
    "51 TFLOP/s f32 FMA); on the CPU the FMA peak and copy rate measured in the run.\n"
    "Backends that time stages (Vulkan, OpenCL) add each stage's mean device time.\n";

enum { MAX_SETS = 3 };
#define TARGET_SECONDS 1.5
#define WARMUP_SECONDS 1.0
#define MAX_AUTO_ITERS 10000
#define H200_COPY_BYTES_PER_S 4.25e12
#define H200_F32_FLOPS 51e12

typedef struct bench_flags {
    const char *backend, *device, *suite, *storage, *algorithm, *warmup, *iters, *threads;
    cli_list shapes;
    bool scale_down, json;
} bench_flags;

typedef struct bench_config {
    efla_context_create_info context_info;
    efla_dtype storage;
    efla_algorithm algorithm;
    int64_t warmup, iters; /* iters 0: chosen per shape */
    bool json;
} bench_config;

static int parse_flags(int argc, char **argv, bench_flags *f) {
    const cli_option options[] = {
        {"--backend", &f->backend, NULL, NULL}, {"--device", &f->device, NULL, NULL},
        {"--suite", &f->suite, NULL, NULL},     {"--shape", NULL, &f->shapes, NULL},
        {"--storage", &f->storage, NULL, NULL}, {"--algorithm", &f->algorithm, NULL, NULL},
        {"--warmup", &f->warmup, NULL, NULL},   {"--iters", &f->iters, NULL, NULL},
        {"--threads", &f->threads, NULL, NULL}, {"--scale-down", NULL, NULL, &f->scale_down},
        {"--json", NULL, NULL, &f->json},
    };
    return cli_parse_options(argc, argv, 2, options, sizeof options / sizeof options[0]);
}

static int resolve_config(const bench_flags *f, bench_config *c) {
    static const char *const algorithms[] = {"auto", "chunked", "recurrent"};
    int algorithm = EFLA_ALGORITHM_AUTO;
    int64_t threads = 0;
    c->context_info = (efla_context_create_info)EFLA_CONTEXT_CREATE_INFO_INIT;
    c->context_info.flags = EFLA_CONTEXT_PROFILING;
    c->storage = EFLA_DTYPE_F32;
    c->warmup = 3;
    c->iters = 0;
    c->json = f->json;
    int code = cli_select_target(f->backend, f->device, &c->context_info);
    if (code != CLI_EXIT_OK) return code;
    if (f->storage && !storage_from_name(f->storage, &c->storage)) {
        cli_error("--storage: '%s' is not one of f32, f16, bf16", f->storage);
        return CLI_EXIT_USAGE;
    }
    if ((f->algorithm &&
         !cli_parse_choice("--algorithm", f->algorithm, algorithms, 3, &algorithm)) ||
        (f->warmup && !cli_parse_int64("--warmup", f->warmup, 0, 1000000, &c->warmup)) ||
        (f->iters && !cli_parse_int64("--iters", f->iters, 1, 10000000, &c->iters)) ||
        (f->threads && !cli_parse_int64("--threads", f->threads, 0, 4096, &threads)))
        return CLI_EXIT_USAGE;
    c->algorithm = (efla_algorithm)algorithm;
    c->context_info.threads = (uint32_t)threads;
    return CLI_EXIT_OK;
}

/* The device and the ceilings: measured on the CPU, the H200's otherwise. */
static void describe_machine(efla_context context, efla_dtype storage, bench_machine *m) {
    memset(m, 0, sizeof *m);
    m->device = (efla_device_info)EFLA_DEVICE_INFO_INIT;
    efla_context_device_info(context, &m->device);
    m->storage = storage;
    m->is_cpu = efla_context_backend(context) == EFLA_BACKEND_CPU;
    if (!m->is_cpu) {
        m->peak_flops = H200_F32_FLOPS;
        m->peak_bytes = H200_COPY_BYTES_PER_S;
        m->basis = "H200 figures (4.25 TB/s copy, 51 TFLOP/s f32 FMA)";
        return;
    }
    uint32_t threads = m->device.compute_units ? m->device.compute_units : 1;
    fprintf(stderr, "efla bench: measuring this CPU's FMA peak and copy rate\n");
    m->fma = fma_peak_measure(threads, 0.5);
    m->copy_gbps = copy_rate_measure(threads, 0.3);
    m->peak_flops = m->fma.gflops * 1e9;
    m->peak_bytes = m->copy_gbps * 1e9;
    m->basis = "this CPU, measured in this run";
}

/* The buffer sets of one shape; per-set bytes above 2 GiB use only two. */
static int prepare_sets(efla_context context, const bench_config *c, const bench_shape *s,
                        bench_set *sets, int *set_count) {
    bench_host host;
    if (!bench_host_generate(s, c->storage, 0x5eedull, &host)) {
        cli_error("%s: out of host memory for the inputs", s->id);
        return CLI_EXIT_RUNTIME;
    }
    *set_count = bench_work_of(s, c->storage).bytes > 2.0 * (1u << 30) ? 2 : MAX_SETS;
    efla_status status = EFLA_SUCCESS;
    for (int i = 0; i < *set_count && status == EFLA_SUCCESS; ++i)
        status =
            bench_set_create(context, s, &host, (uint64_t)i * 1000003u, c->algorithm, &sets[i]);
    bench_host_free(&host);
    if (status == EFLA_SUCCESS) return CLI_EXIT_OK;
    char what[64];
    snprintf(what, sizeof what, "%s: buffers", s->id);
    return cli_library_error(status, what);
}

/* One forward, synchronised; device time when asked and available, else
 * host time around the forward and the synchronisation. */
static efla_status run_once(efla_context context, const bench_set *set, bool *device_timer,
                            double *ms) {
    double start = cli_now_seconds();
    efla_status s = efla_forward(context, &set->desc);
    if (s == EFLA_SUCCESS) s = efla_context_synchronize(context);
    *ms = (cli_now_seconds() - start) * 1e3;
    if (s == EFLA_SUCCESS && *device_timer &&
        efla_context_last_forward_ms(context, ms) != EFLA_SUCCESS) {
        *device_timer = false;
        *ms = (cli_now_seconds() - start) * 1e3;
    }
    return s;
}

/* Warm-up: --warmup runs, and more until WARMUP_SECONDS have passed (with
 * --warmup > 0), enqueued back to back so that the device is busy
 * throughout; then one synchronized run whose time is the estimate per run.
 * On the H200's Vulkan driver a shape's first 5-11 runs after the previous
 * shape's buffers were freed took 4-5x their steady time (about 0.1-0.25 s
 * in all), and some processes ran slow for seconds: a fixed count of
 * synchronized runs does not reach the steady state. */
static efla_status warm_up(efla_context context, const bench_config *c, const bench_set *sets,
                           int set_count, bool *device_timer, double *estimate_ms) {
    efla_status s = EFLA_SUCCESS;
    double start = cli_now_seconds();
    for (int64_t i = 0; s == EFLA_SUCCESS; ++i) {
        if (i >= c->warmup && cli_now_seconds() - start >= (c->warmup ? WARMUP_SECONDS : 0))
            break;
        s = efla_forward(context, &sets[i % set_count].desc);
        if (s == EFLA_SUCCESS && i % 16 == 15) s = efla_context_synchronize(context);
    }
    if (s == EFLA_SUCCESS) s = efla_context_synchronize(context);
    if (s == EFLA_SUCCESS) s = run_once(context, &sets[0], device_timer, estimate_ms);
    return s;
}

static size_t choose_iters(const bench_config *c, double estimate_ms) {
    if (c->iters > 0) return (size_t)c->iters;
    double wanted = TARGET_SECONDS * 1e3 / (estimate_ms > 1e-6 ? estimate_ms : 1e-6);
    if (wanted < 10) return 10;
    return wanted > MAX_AUTO_ITERS ? MAX_AUTO_ITERS : (size_t)wanted;
}

/* Adds the last forward's stage times to r (by name); false when the
 * backend has none. */
static bool add_stage_times(efla_context context, bench_result *r) {
    efla_stage_time stages[BENCH_MAX_STAGES];
    uint32_t count = 0;
    if (efla_context_last_forward_stages(context, stages, BENCH_MAX_STAGES, &count) !=
        EFLA_SUCCESS)
        return false;
    for (uint32_t i = 0; i < count && i < BENCH_MAX_STAGES; ++i) {
        uint32_t n = 0;
        while (n < r->stage_count && strcmp(r->stages[n].name, stages[i].name) != 0)
            ++n;
        if (n == BENCH_MAX_STAGES) continue;
        if (n == r->stage_count) {
            r->stages[r->stage_count++] = stages[i];
            continue;
        }
        r->stages[n].ms += stages[i].ms;
        r->stages[n].dispatches = stages[i].dispatches;
    }
    return true;
}

/* The median time of the runs on buffer set k (runs k, k + sets, ...): a
 * set much slower than the others points at where its memory lies. */
static double set_median(const double *ms, size_t iters, int k, int sets) {
    double picked[MAX_AUTO_ITERS / 2 + 1];
    size_t n = 0;
    for (size_t i = (size_t)k; i < iters && n < sizeof picked / sizeof picked[0]; i += (size_t)sets)
        picked[n++] = ms[i];
    return bench_stats_of(picked, n).median_ms;
}

static int time_runs(efla_context context, const bench_config *c, const bench_set *sets,
                     int set_count, bench_result *r) {
    bool device_timer = r->timer[0] == 'd';
    double estimate_ms = 0.0;
    efla_status s = warm_up(context, c, sets, set_count, &device_timer, &estimate_ms);
    r->iters = choose_iters(c, estimate_ms);
    double *ms = malloc(r->iters * sizeof *ms);
    if (!ms) s = EFLA_ERROR_OUT_OF_HOST_MEMORY;
    bool staged = device_timer;
    for (size_t i = 0; i < r->iters && s == EFLA_SUCCESS; ++i) {
        s = run_once(context, &sets[i % (size_t)set_count], &device_timer, &ms[i]);
        if (s == EFLA_SUCCESS && staged) staged = add_stage_times(context, r);
    }
    for (int k = 0; k < set_count && s == EFLA_SUCCESS && r->iters >= (size_t)set_count; ++k)
        r->set_median_ms[k] = set_median(ms, r->iters, k, set_count);
    r->run_ms = s == EFLA_SUCCESS ? malloc(r->iters * sizeof *ms) : NULL;
    if (r->run_ms) memcpy(r->run_ms, ms, r->iters * sizeof *ms);
    if (s == EFLA_SUCCESS) r->stats = bench_stats_of(ms, r->iters); /* sorts ms */
    for (uint32_t i = 0; i < r->stage_count; ++i)
        r->stages[i].ms = staged ? r->stages[i].ms / (double)r->iters : 0.0;
    if (!staged) r->stage_count = 0;
    r->timer = device_timer ? "device" : "host";
    free(ms);
    return s == EFLA_SUCCESS ? CLI_EXIT_OK : cli_library_error(s, r->shape->id);
}

static int bench_shape_run(efla_context context, const bench_config *c, const bench_machine *m,
                           const bench_shape *s) {
    bench_set sets[MAX_SETS];
    bench_result r = {.shape = s,
                      .work = bench_work_of(s, c->storage),
                      .plan = EFLA_FORWARD_PLAN_INIT,
                      .timer = (m->device.flags & EFLA_DEVICE_TIMESTAMPS) ? "device" : "host",
                      .warmup = (int)c->warmup};
    memset(sets, 0, sizeof sets);
    fprintf(stderr, "efla bench: %s %lld,%lld,%lld,%lld,%lld,%lld: preparing inputs\n", s->id,
            (long long)s->b, (long long)s->t, (long long)s->h, (long long)s->hv, (long long)s->dk,
            (long long)s->dv);
    int code = prepare_sets(context, c, s, sets, &r.sets);
    efla_status status = EFLA_SUCCESS;
    if (code == CLI_EXIT_OK &&
        (status = efla_forward_query(context, &sets[0].desc, &r.plan)) != EFLA_SUCCESS)
        code = cli_library_error(status, s->id);
    if (code == CLI_EXIT_OK) code = time_runs(context, c, sets, r.sets, &r);
    for (int i = 0; i < MAX_SETS; ++i)
        bench_set_destroy(&sets[i]);
    if (code != CLI_EXIT_OK) return code;
    bench_print_row(c->json ? stderr : stdout, m, &r);
    if (c->json) bench_print_json(stdout, m, &r);
    free(r.run_ms);
    return CLI_EXIT_OK;
}

static int run_shapes(const bench_config *c, const bench_shape *shapes, size_t count) {
    efla_context context = NULL;
    efla_status s = efla_context_create(&c->context_info, &context);
    if (s != EFLA_SUCCESS) return cli_library_error(s, "cannot create a context");
    bench_machine machine;
    describe_machine(context, c->storage, &machine);
    bench_print_header(c->json ? stderr : stdout, &machine);
    int first_failure = CLI_EXIT_OK;
    for (size_t i = 0; i < count; ++i) {
        int code = bench_shape_run(context, c, &machine, &shapes[i]);
        if (first_failure == CLI_EXIT_OK) first_failure = code;
    }
    efla_context_destroy(context);
    return first_failure;
}

int cmd_bench(int argc, char **argv) {
    bench_flags flags;
    memset(&flags, 0, sizeof flags);
    int code = parse_flags(argc, argv, &flags);
    bench_config config;
    bench_shape *shapes = NULL;
    size_t count = 0;
    if (code == CLI_PARSE_HELP) fputs(usage, stdout);
    if (code == CLI_EXIT_OK) code = resolve_config(&flags, &config);
    if (code == CLI_EXIT_OK)
        code = bench_shapes_select(flags.suite, flags.scale_down, &flags.shapes, &shapes, &count);
    if (code == CLI_EXIT_OK) code = run_shapes(&config, shapes, count);
    free(shapes);
    cli_list_free(&flags.shapes);
    return code == CLI_PARSE_HELP ? CLI_EXIT_OK : code;
}
