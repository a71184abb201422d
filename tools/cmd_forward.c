/* `efla forward`: one EFLA forward over .npy inputs, written to .npy
 * outputs that appear only when everything succeeded. */
#include "cli_util.h"
#include "commands.h"
#include "device_io.h"
#include "npy.h"
#include "outfile.h"
#include "storage.h"

#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "usage: efla forward [--backend auto|cpu|vulkan|opencl|cuda] [--device N]\n"
    "                    --q F --k F --v F --beta F [--initial-state F] [--cu-seqlens F]\n"
    "                    [--scale X] [--mode efla|delta] [--storage f32|f16|bf16]\n"
    "                    [--algorithm auto|chunked|recurrent] [--l2norm-q] [--l2norm-k]\n"
    "                    [--threads N] [--json] --out F [--final-state F]\n"
    "\n"
    "Files are NumPy .npy (C order, little-endian): q, k [B,T,H,Dk], v [B,T,HV,Dv],\n"
    "beta [B,T,HV] as '<f4', '<f2' or '<f8'; states [N,HV,Dk,Dv]; cu_seqlens '<i4' or\n"
    "'<i8' [N+1] with B = 1. Outputs are '<f4'. --scale defaults to Dk^-1/2.\n"
    "Exit codes: 0 ok, 2 usage or file problem, 3 invalid input, 4 backend or device\n"
    "unavailable, 5 device or runtime error.\n";

typedef struct forward_flags {
    const char *backend, *device, *q, *k, *v, *beta, *initial_state, *cu_seqlens, *scale, *mode,
        *storage, *algorithm, *threads, *out, *final_state;
    bool l2norm_q, l2norm_k, json;
} forward_flags;

typedef struct host_tensor {
    float *data; /* NULL when absent */
    uint32_t rank;
    int64_t shape[EFLA_MAX_RANK];
    uint64_t count;
} host_tensor;

enum { T_Q, T_K, T_V, T_BETA, T_INITIAL, T_OUT, T_FINAL, T_COUNT };

typedef struct forward_job {
    efla_context_create_info context_info;
    efla_forward_desc desc;
    host_tensor tensors[T_COUNT];
    int64_t *cu_seqlens;
    efla_context context;
    efla_buffer buffers[T_COUNT];
    efla_forward_plan plan;
    efla_device_info device;
    double ms;
} forward_job;

static int parse_flags(int argc, char **argv, forward_flags *f) {
    const cli_option options[] = {
        {"--backend", &f->backend, NULL, NULL},
        {"--device", &f->device, NULL, NULL},
        {"--q", &f->q, NULL, NULL},
        {"--k", &f->k, NULL, NULL},
        {"--v", &f->v, NULL, NULL},
        {"--beta", &f->beta, NULL, NULL},
        {"--initial-state", &f->initial_state, NULL, NULL},
        {"--cu-seqlens", &f->cu_seqlens, NULL, NULL},
        {"--scale", &f->scale, NULL, NULL},
        {"--mode", &f->mode, NULL, NULL},
        {"--storage", &f->storage, NULL, NULL},
        {"--algorithm", &f->algorithm, NULL, NULL},
        {"--threads", &f->threads, NULL, NULL},
        {"--out", &f->out, NULL, NULL},
        {"--final-state", &f->final_state, NULL, NULL},
        {"--l2norm-q", NULL, NULL, &f->l2norm_q},
        {"--l2norm-k", NULL, NULL, &f->l2norm_k},
        {"--json", NULL, NULL, &f->json},
    };
    return cli_parse_options(argc, argv, 2, options, sizeof options / sizeof options[0]);
}

static int check_required(const forward_flags *f) {
    const struct {
        const char *name, *value;
    } required[] = {
        {"--q", f->q}, {"--k", f->k}, {"--v", f->v}, {"--beta", f->beta}, {"--out", f->out}};
    for (size_t i = 0; i < sizeof required / sizeof required[0]; ++i) {
        if (!required[i].value) {
            cli_error("forward: %s is required (efla forward --help)", required[i].name);
            return CLI_EXIT_USAGE;
        }
    }
    if (f->final_state && same_output_path(f->out, f->final_state)) {
        cli_error("--out and --final-state name the same file '%s'", f->out);
        return CLI_EXIT_USAGE;
    }
    return CLI_EXIT_OK;
}

static bool parse_enums(const forward_flags *f, efla_forward_desc *desc, efla_dtype *storage) {
    static const char *const modes[] = {"efla", "delta"};
    static const char *const algorithms[] = {"auto", "chunked", "recurrent"};
    int mode = EFLA_MODE_EFLA, algorithm = EFLA_ALGORITHM_AUTO;
    if (f->mode && !cli_parse_choice("--mode", f->mode, modes, 2, &mode)) return false;
    if (f->algorithm && !cli_parse_choice("--algorithm", f->algorithm, algorithms, 3, &algorithm))
        return false;
    if (f->storage && !storage_from_name(f->storage, storage)) {
        cli_error("--storage: '%s' is not one of f32, f16, bf16", f->storage);
        return false;
    }
    desc->mode = (efla_mode)mode;
    desc->algorithm = (efla_algorithm)algorithm;
    return true;
}

/* Turns the flag texts into the context and forward settings. */
static int resolve_settings(const forward_flags *f, forward_job *job, efla_dtype *storage) {
    job->context_info.flags = EFLA_CONTEXT_PROFILING;
    int code = cli_select_target(f->backend, f->device, &job->context_info);
    if (code != CLI_EXIT_OK) return code;
    double scale = 0.0;
    int64_t threads = 0;
    if (f->scale && !cli_parse_double("--scale", f->scale, &scale)) return CLI_EXIT_USAGE;
    if (f->threads && !cli_parse_int64("--threads", f->threads, 0, 4096, &threads))
        return CLI_EXIT_USAGE;
    if (!parse_enums(f, &job->desc, storage)) return CLI_EXIT_USAGE;
    job->context_info.threads = (uint32_t)threads;
    job->desc.scale = (float)scale;
    job->desc.flags =
        (f->l2norm_q ? EFLA_FORWARD_L2NORM_Q : 0u) | (f->l2norm_k ? EFLA_FORWARD_L2NORM_K : 0u);
    return CLI_EXIT_OK;
}

static int npy_exit_code(npy_result result) {
    if (result == NPY_ERROR_IO) return CLI_EXIT_USAGE;
    return result == NPY_ERROR_MEMORY ? CLI_EXIT_RUNTIME : CLI_EXIT_INPUT;
}

/* Reads a float .npy into f32; tensors of rank above 4 cannot be described
 * to the library, so they are refused here. */
static int read_float_input(const char *path, const char *name, uint32_t rank, host_tensor *out) {
    npy_array array;
    char err[512];
    npy_result result = npy_read(path, NPY_FLOATS, &array, err, sizeof err);
    if (result != NPY_OK) {
        cli_error("%s", err);
        return npy_exit_code(result);
    }
    int code = CLI_EXIT_OK;
    if (array.rank > EFLA_MAX_RANK) {
        cli_error("%s: %s has rank %u; it must have rank %u", path, name, array.rank, rank);
        code = CLI_EXIT_INPUT;
    } else if (!(out->data = malloc(array.count ? array.count * sizeof(float) : 1))) {
        cli_error("%s: out of memory", path);
        code = CLI_EXIT_RUNTIME;
    } else {
        npy_to_f32(&array, out->data);
        out->rank = array.rank;
        out->count = array.count;
        memcpy(out->shape, array.shape, array.rank * sizeof *out->shape);
    }
    npy_array_free(&array);
    return code;
}

static int read_cu_seqlens(const char *path, forward_job *job) {
    npy_array array;
    char err[512];
    npy_result result = npy_read(path, NPY_INTEGERS, &array, err, sizeof err);
    if (result != NPY_OK) {
        cli_error("%s", err);
        return npy_exit_code(result);
    }
    int code = CLI_EXIT_OK;
    if (array.rank != 1 || array.count == 0) {
        cli_error("%s: cu_seqlens must be 1-D with N+1 offsets starting at 0", path);
        code = CLI_EXIT_INPUT;
    } else if (!(job->cu_seqlens = malloc(array.count * sizeof *job->cu_seqlens))) {
        cli_error("%s: out of memory", path);
        code = CLI_EXIT_RUNTIME;
    } else {
        npy_to_i64(&array, job->cu_seqlens);
        job->desc.cu_seqlens = job->cu_seqlens;
        job->desc.cu_seqlens_dtype = EFLA_DTYPE_I64;
        job->desc.num_sequences = (int64_t)array.count - 1;
    }
    npy_array_free(&array);
    return code;
}

static int read_inputs(const forward_flags *f, forward_job *job) {
    const struct {
        const char *path, *name;
        uint32_t rank;
        int slot;
    } inputs[] = {{f->q, "q", 4, T_Q},
                  {f->k, "k", 4, T_K},
                  {f->v, "v", 4, T_V},
                  {f->beta, "beta", 3, T_BETA},
                  {f->initial_state, "initial_state", 4, T_INITIAL}};
    for (size_t i = 0; i < sizeof inputs / sizeof inputs[0]; ++i) {
        if (!inputs[i].path) continue;
        int code = read_float_input(inputs[i].path, inputs[i].name, inputs[i].rank,
                                    &job->tensors[inputs[i].slot]);
        if (code != CLI_EXIT_OK) return code;
    }
    return f->cu_seqlens ? read_cu_seqlens(f->cu_seqlens, job) : CLI_EXIT_OK;
}

static efla_tensor *desc_tensor(efla_forward_desc *desc, int slot) {
    efla_tensor *tensors[T_COUNT] = {
        &desc->q,   &desc->k,          &desc->v, &desc->beta, &desc->initial_state,
        &desc->out, &desc->final_state};
    return tensors[slot];
}

static void describe(forward_job *job, int slot, efla_dtype dtype) {
    const host_tensor *t = &job->tensors[slot];
    *desc_tensor(&job->desc, slot) =
        efla_tensor_contiguous(job->buffers[slot], 0, dtype, t->rank, t->shape);
}

/* Uploads the inputs and creates `out`, shaped like v. */
static efla_status upload_inputs(forward_job *job, efla_dtype storage) {
    for (int slot = T_Q; slot <= T_INITIAL; ++slot) {
        const host_tensor *t = &job->tensors[slot];
        if (!t->data) continue;
        efla_dtype dtype = slot == T_INITIAL ? EFLA_DTYPE_F32 : storage;
        efla_status s = upload_f32(job->context, t->data, t->count, dtype, &job->buffers[slot]);
        if (s != EFLA_SUCCESS) return s;
        describe(job, slot, dtype);
    }
    host_tensor *out = &job->tensors[T_OUT];
    const host_tensor *v = &job->tensors[T_V];
    out->rank = v->rank;
    out->count = v->count;
    memcpy(out->shape, v->shape, sizeof out->shape);
    efla_status s = create_tensor_buffer(job->context, out->count, storage, &job->buffers[T_OUT]);
    if (s == EFLA_SUCCESS) describe(job, T_OUT, storage);
    return s;
}

/* [N,HV,Dk,Dv] from the validated inputs; refuses a size that overflows. */
static int create_final_state(forward_job *job) {
    const int64_t *q = job->tensors[T_Q].shape, *v = job->tensors[T_V].shape;
    host_tensor *state = &job->tensors[T_FINAL];
    int64_t n = job->cu_seqlens ? job->desc.num_sequences : q[0];
    const int64_t shape[4] = {n, v[2], q[3], v[3]};
    uint64_t count = 1;
    for (int i = 0; i < 4; ++i) {
        if (shape[i] && count > (UINT64_MAX / 4) / (uint64_t)shape[i]) {
            cli_error("final state [%lld,%lld,%lld,%lld] is too large", (long long)shape[0],
                      (long long)shape[1], (long long)shape[2], (long long)shape[3]);
            return CLI_EXIT_INPUT;
        }
        count *= (uint64_t)shape[i];
    }
    state->rank = 4;
    state->count = count;
    memcpy(state->shape, shape, sizeof shape);
    efla_status s =
        create_tensor_buffer(job->context, count, EFLA_DTYPE_F32, &job->buffers[T_FINAL]);
    if (s != EFLA_SUCCESS) return cli_library_error(s, "final state buffer");
    describe(job, T_FINAL, EFLA_DTYPE_F32);
    return CLI_EXIT_OK;
}

static efla_status run_forward(forward_job *job) {
    double start = cli_now_seconds();
    efla_status s = efla_forward(job->context, &job->desc);
    if (s == EFLA_SUCCESS) s = efla_context_synchronize(job->context);
    double host_ms = (cli_now_seconds() - start) * 1e3;
    if (s != EFLA_SUCCESS) return s;
    if (efla_context_last_forward_ms(job->context, &job->ms) != EFLA_SUCCESS) job->ms = host_ms;
    return EFLA_SUCCESS;
}

static efla_status download_results(forward_job *job, efla_dtype storage) {
    for (int slot = T_OUT; slot <= T_FINAL; ++slot) {
        host_tensor *t = &job->tensors[slot];
        if (!job->buffers[slot]) continue;
        t->data = malloc(t->count ? t->count * sizeof(float) : 1);
        if (!t->data) return EFLA_ERROR_OUT_OF_HOST_MEMORY;
        efla_dtype dtype = slot == T_OUT ? storage : EFLA_DTYPE_F32;
        efla_status s = download_f32(job->buffers[slot], t->count, dtype, t->data);
        if (s != EFLA_SUCCESS) return s;
    }
    return EFLA_SUCCESS;
}

/* Everything between reading the inputs and writing the outputs. */
static int compute(forward_job *job, efla_dtype storage, bool want_final_state) {
    efla_status s = efla_context_create(&job->context_info, &job->context);
    if (s != EFLA_SUCCESS) return cli_library_error(s, "cannot create a context");
    if ((s = efla_context_device_info(job->context, &job->device)) != EFLA_SUCCESS)
        return cli_library_error(s, "device info");
    if ((s = upload_inputs(job, storage)) != EFLA_SUCCESS)
        return cli_library_error(s, "uploading the inputs");
    if ((s = efla_forward_query(job->context, &job->desc, &job->plan)) != EFLA_SUCCESS)
        return cli_library_error(s, NULL);
    int code = want_final_state ? create_final_state(job) : CLI_EXIT_OK;
    if (code != CLI_EXIT_OK) return code;
    if ((s = run_forward(job)) != EFLA_SUCCESS) return cli_library_error(s, NULL);
    if ((s = download_results(job, storage)) != EFLA_SUCCESS)
        return cli_library_error(s, "downloading the results");
    return CLI_EXIT_OK;
}

static int write_outputs(const forward_flags *f, forward_job *job) {
    staged_output staged[2] = {{NULL, NULL}, {NULL, NULL}};
    const host_tensor *out = &job->tensors[T_OUT], *state = &job->tensors[T_FINAL];
    int code = staged_write_npy(&staged[0], f->out, out->data, out->rank, out->shape);
    if (code == CLI_EXIT_OK && f->final_state)
        code = staged_write_npy(&staged[1], f->final_state, state->data, 4, state->shape);
    if (code == CLI_EXIT_OK) code = staged_commit(staged, 2);
    staged_discard(staged, 2);
    return code;
}

static void print_json(const forward_job *job) {
    fputs("{\"backend\":", stdout);
    cli_json_string(stdout, efla_backend_name(job->device.backend));
    printf(",\"device\":%u,\"device_name\":", job->device.index);
    cli_json_string(stdout, job->device.name);
    fputs(",\"algorithm\":", stdout);
    cli_json_string(stdout, efla_algorithm_name(job->plan.algorithm));
    fputs(",\"path\":", stdout);
    cli_json_string(stdout, job->plan.kernel_path);
    fputs(",\"ms\":", stdout);
    cli_json_number(stdout, job->ms);
    fputs("}\n", stdout);
}

static void job_init(forward_job *job) {
    memset(job, 0, sizeof *job);
    job->context_info = (efla_context_create_info)EFLA_CONTEXT_CREATE_INFO_INIT;
    job->desc = (efla_forward_desc)EFLA_FORWARD_DESC_INIT;
    job->plan = (efla_forward_plan)EFLA_FORWARD_PLAN_INIT;
    job->device = (efla_device_info)EFLA_DEVICE_INFO_INIT;
}

static void job_free(forward_job *job) {
    for (int slot = 0; slot < T_COUNT; ++slot) {
        efla_buffer_destroy(job->buffers[slot]);
        free(job->tensors[slot].data);
    }
    efla_context_destroy(job->context);
    free(job->cu_seqlens);
}

int cmd_forward(int argc, char **argv) {
    forward_flags flags;
    memset(&flags, 0, sizeof flags);
    int code = parse_flags(argc, argv, &flags);
    if (code == CLI_PARSE_HELP) {
        fputs(usage, stdout);
        return CLI_EXIT_OK;
    }
    if (code != CLI_EXIT_OK) return code;
    forward_job job;
    job_init(&job);
    efla_dtype storage = EFLA_DTYPE_F32;
    code = check_required(&flags);
    if (code == CLI_EXIT_OK) code = resolve_settings(&flags, &job, &storage);
    if (code == CLI_EXIT_OK) code = read_inputs(&flags, &job);
    if (code == CLI_EXIT_OK) code = compute(&job, storage, flags.final_state != NULL);
    if (code == CLI_EXIT_OK) code = write_outputs(&flags, &job);
    if (code == CLI_EXIT_OK && flags.json) print_json(&job);
    job_free(&job);
    return code;
}
