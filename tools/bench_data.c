#include "bench_data.h"

#include "device_io.h"
#include "storage.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* splitmix64: fast, and good enough for benchmark data. */
static uint64_t next_u64(uint64_t *state) {
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Uniform in (0, 1). */
static double next_uniform(uint64_t *state) {
    return ((double)(next_u64(state) >> 11) + 0.5) * 0x1.0p-53;
}

/* N(0,1) by Box-Muller, two at a time. */
static void fill_normal(float *out, uint64_t count, uint64_t *state) {
    for (uint64_t i = 0; i < count; i += 2) {
        double radius = sqrt(-2.0 * log(next_uniform(state)));
        double angle = 6.283185307179586 * next_uniform(state);
        out[i] = (float)(radius * cos(angle));
        if (i + 1 < count) out[i + 1] = (float)(radius * sin(angle));
    }
}

static void sigmoid_in_place(float *values, uint64_t count) {
    for (uint64_t i = 0; i < count; ++i)
        values[i] = 1.0f / (1.0f + expf(-values[i]));
}

static void scale_in_place(float *values, uint64_t count, float factor) {
    for (uint64_t i = 0; i < count; ++i)
        values[i] *= factor;
}

/* One input: generated in f32, then held in its device dtype. */
static bool generate_one(bench_host *host, int slot, uint64_t count, efla_dtype dtype,
                         uint64_t *rng) {
    float *values = malloc(count * sizeof *values);
    if (!values) return false;
    fill_normal(values, count, rng);
    if (slot == BENCH_BETA) sigmoid_in_place(values, count);
    if (slot == BENCH_STATE_IN) scale_in_place(values, count, 0.1f); /* a settled state's size */
    host->count[slot] = count;
    host->dtype[slot] = dtype;
    if (dtype == EFLA_DTYPE_F32) {
        host->data[slot] = values;
        return true;
    }
    host->data[slot] = malloc(count * efla_dtype_size(dtype));
    if (host->data[slot]) storage_from_f32(dtype, values, count, host->data[slot]);
    free(values);
    return host->data[slot] != NULL;
}

bool bench_host_generate(const bench_shape *s, efla_dtype storage, uint64_t seed, bench_host *out) {
    memset(out, 0, sizeof *out);
    const uint64_t tokens = (uint64_t)s->b * (uint64_t)s->t;
    const uint64_t qk = tokens * (uint64_t)(s->h * s->dk), v = tokens * (uint64_t)(s->hv * s->dv);
    const uint64_t state = (uint64_t)(s->b * s->hv) * (uint64_t)(s->dk * s->dv);
    uint64_t rng = seed;
    bool ok = generate_one(out, BENCH_Q, qk, storage, &rng) &&
              generate_one(out, BENCH_K, qk, storage, &rng) &&
              generate_one(out, BENCH_V, v, storage, &rng) &&
              generate_one(out, BENCH_BETA, tokens * (uint64_t)s->hv, storage, &rng) &&
              (!s->decode || generate_one(out, BENCH_STATE_IN, state, EFLA_DTYPE_F32, &rng));
    if (!ok) bench_host_free(out);
    return ok;
}

void bench_host_free(bench_host *host) {
    for (int i = 0; i < BENCH_INPUTS; ++i)
        free(host->data[i]);
    memset(host, 0, sizeof *host);
}

/* Uploads data rotated left by `rotation` elements: two copies. */
static efla_status upload_rotated(efla_buffer buffer, const void *data, uint64_t count,
                                  size_t element, uint64_t rotation) {
    uint64_t shift = count ? rotation % count : 0;
    const unsigned char *bytes = data;
    efla_status s =
        efla_buffer_upload(buffer, 0, bytes + shift * element, (count - shift) * element);
    if (s == EFLA_SUCCESS && shift)
        s = efla_buffer_upload(buffer, (count - shift) * element, bytes, shift * element);
    return s;
}

static efla_status upload_inputs(efla_context context, const bench_host *host, uint64_t rotation,
                                 bench_set *set) {
    for (int i = 0; i < BENCH_INPUTS; ++i) {
        if (!host->data[i]) continue;
        efla_status s =
            create_tensor_buffer(context, host->count[i], host->dtype[i], &set->inputs[i]);
        if (s == EFLA_SUCCESS)
            s = upload_rotated(set->inputs[i], host->data[i], host->count[i],
                               efla_dtype_size(host->dtype[i]), rotation);
        if (s != EFLA_SUCCESS) return s;
    }
    return EFLA_SUCCESS;
}

static void describe(const bench_shape *s, const bench_host *host, bench_set *set) {
    const int64_t qk[4] = {s->b, s->t, s->h, s->dk}, v[4] = {s->b, s->t, s->hv, s->dv};
    const int64_t beta[3] = {s->b, s->t, s->hv}, state[4] = {s->b, s->hv, s->dk, s->dv};
    const efla_dtype storage = host->dtype[BENCH_Q];
    efla_forward_desc *d = &set->desc;
    d->q = efla_tensor_contiguous(set->inputs[BENCH_Q], 0, storage, 4, qk);
    d->k = efla_tensor_contiguous(set->inputs[BENCH_K], 0, storage, 4, qk);
    d->v = efla_tensor_contiguous(set->inputs[BENCH_V], 0, storage, 4, v);
    d->beta = efla_tensor_contiguous(set->inputs[BENCH_BETA], 0, storage, 3, beta);
    d->out = efla_tensor_contiguous(set->out, 0, storage, 4, v);
    d->final_state = efla_tensor_contiguous(set->final_state, 0, EFLA_DTYPE_F32, 4, state);
    if (set->inputs[BENCH_STATE_IN])
        d->initial_state =
            efla_tensor_contiguous(set->inputs[BENCH_STATE_IN], 0, EFLA_DTYPE_F32, 4, state);
}

efla_status bench_set_create(efla_context context, const bench_shape *shape, const bench_host *host,
                             uint64_t rotation, efla_algorithm algorithm, bench_set *set) {
    memset(set, 0, sizeof *set);
    set->desc = (efla_forward_desc)EFLA_FORWARD_DESC_INIT;
    set->desc.mode = EFLA_MODE_EFLA;
    set->desc.algorithm = algorithm;
    const uint64_t state = (uint64_t)(shape->b * shape->hv) * (uint64_t)(shape->dk * shape->dv);
    efla_status s = upload_inputs(context, host, rotation, set);
    if (s == EFLA_SUCCESS)
        s = create_tensor_buffer(context, host->count[BENCH_V], host->dtype[BENCH_V], &set->out);
    if (s == EFLA_SUCCESS)
        s = create_tensor_buffer(context, state, EFLA_DTYPE_F32, &set->final_state);
    if (s == EFLA_SUCCESS) describe(shape, host, set);
    return s;
}

void bench_set_destroy(bench_set *set) {
    for (int i = 0; i < BENCH_INPUTS; ++i)
        efla_buffer_destroy(set->inputs[i]);
    efla_buffer_destroy(set->out);
    efla_buffer_destroy(set->final_state);
    memset(set, 0, sizeof *set);
}
