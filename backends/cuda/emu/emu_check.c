/*
 * The CUDA backend, run on the emulated driver (fake libcuda.so.1 found
 * through LD_LIBRARY_PATH), against the CPU backend through the public API:
 * every feature (chunked / recurrent / AUTO per varlen sequence, f32 / f16 /
 * bf16, l2norm, DELTA, grouped heads, odd sizes, strides, in-place state,
 * T = 0, hard key norms) plus the interop entry points and EFLA_PATH.
 * Prints one line per case; exits 1 on the first mismatch.
 */
#include "efla/efla.h"
#include "efla/efla_cuda.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct test_case {
    const char *name;
    int64_t b, t, h, hv, dk, dv;
    efla_dtype dtype;
    efla_algorithm algorithm;
    efla_mode mode;
    uint32_t flags;
    const int32_t *cu_seqlens; /* with n sequences */
    int64_t n;
    int initial, final, in_place, permuted, hard_keys;
} test_case;

static uint64_t rng = 12345;
static float uniform(void) {
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((rng >> 40) & 0xffffff) / 16777216.0f;
}
static float normal(void) {
    float u = uniform() + 1e-7f, v = uniform();
    return sqrtf(-2.0f * logf(u)) * cosf(6.2831853f * v);
}

static int fail(const char *what, efla_status s) {
    fprintf(stderr, "FAIL: %s: %s: %s\n", what, efla_status_string(s), efla_last_error_message());
    exit(1);
}
#define CHECK(call)                                                                                \
    do {                                                                                           \
        efla_status s_ = (call);                                                                   \
        if (s_ != EFLA_SUCCESS) fail(#call, s_);                                                   \
    } while (0)

static uint16_t to_half_bits(float x, efla_dtype dtype);
static float from_half_bits(uint16_t h, efla_dtype dtype);

/* Host data of one case, as f32 values already rounded to the storage. */
typedef struct host_data {
    float *q, *k, *v, *beta, *state;
    int64_t nq, nv, nb, ns;
} host_data;

static void round_to(float *x, int64_t n, efla_dtype dtype) {
    if (dtype == EFLA_DTYPE_F32) return;
    for (int64_t i = 0; i < n; ++i)
        x[i] = from_half_bits(to_half_bits(x[i], dtype), dtype);
}

static void make_data(const test_case *c, host_data *d) {
    d->nq = c->b * c->t * c->h * c->dk;
    d->nv = c->b * c->t * c->hv * c->dv;
    d->nb = c->b * c->t * c->hv;
    int64_t n = c->cu_seqlens ? c->n : c->b;
    d->ns = n * c->hv * c->dk * c->dv;
    d->q = malloc(sizeof(float) * (size_t)(d->nq + 1));
    d->k = malloc(sizeof(float) * (size_t)(d->nq + 1));
    d->v = malloc(sizeof(float) * (size_t)(d->nv + 1));
    d->beta = malloc(sizeof(float) * (size_t)(d->nb + 1));
    d->state = malloc(sizeof(float) * (size_t)(d->ns + 1));
    for (int64_t i = 0; i < d->nq; ++i) {
        d->q[i] = normal();
        d->k[i] = normal();
    }
    if (c->hard_keys) /* key norms 1e-3 .. 1e2 inside one chunk, exact zeros too */
        for (int64_t row = 0; row < d->nq / c->dk; ++row) {
            static const float scales[] = {1e-3f, 0.0f, 50.0f, 1.0f, 1e-2f, 10.0f, 3.0f};
            float s = scales[row % 7];
            for (int64_t i = 0; i < c->dk; ++i)
                d->k[row * c->dk + i] *= s;
        }
    for (int64_t i = 0; i < d->nv; ++i)
        d->v[i] = normal();
    for (int64_t i = 0; i < d->nb; ++i)
        d->beta[i] = c->hard_keys ? 50.0f * uniform() * uniform() : 1.0f / (1.0f + expf(-normal()));
    for (int64_t i = 0; i < d->ns; ++i)
        d->state[i] = 0.3f * normal();
    round_to(d->q, d->nq, c->dtype);
    round_to(d->k, d->nq, c->dtype);
    round_to(d->v, d->nv, c->dtype);
    round_to(d->beta, d->nb, c->dtype);
}

static void free_data(host_data *d) {
    free(d->q);
    free(d->k);
    free(d->v);
    free(d->beta);
    free(d->state);
}

/* f32 values -> storage bytes. */
static void *pack(const float *x, int64_t n, efla_dtype dtype) {
    size_t size = efla_dtype_size(dtype);
    unsigned char *out = malloc(size * (size_t)(n + 1));
    for (int64_t i = 0; i < n; ++i) {
        if (dtype == EFLA_DTYPE_F32)
            memcpy(out + 4 * i, &x[i], 4);
        else {
            uint16_t h = to_half_bits(x[i], dtype);
            memcpy(out + 2 * i, &h, 2);
        }
    }
    return out;
}

static efla_buffer upload(efla_context ctx, const void *bytes, uint64_t size) {
    efla_buffer buf;
    CHECK(efla_buffer_create(ctx, size ? size : 1, &buf));
    if (size) CHECK(efla_buffer_upload(buf, 0, bytes, size));
    return buf;
}

typedef struct result {
    float *out, *state;
    int64_t nout, nstate;
} result;

/* q/k permuted: stored [B,H,T,Dk] but described as [B,T,H,Dk] by strides. */
static void *permute_bt(const float *x, const test_case *c, efla_dtype dtype) {
    float *p = malloc(sizeof(float) * (size_t)(c->b * c->t * c->h * c->dk + 1));
    for (int64_t b = 0; b < c->b; ++b)
        for (int64_t t = 0; t < c->t; ++t)
            for (int64_t h = 0; h < c->h; ++h)
                for (int64_t i = 0; i < c->dk; ++i)
                    p[((b * c->h + h) * c->t + t) * c->dk + i] =
                        x[((b * c->t + t) * c->h + h) * c->dk + i];
    void *bytes = pack(p, c->b * c->t * c->h * c->dk, dtype);
    free(p);
    return bytes;
}

static void run_case(efla_backend backend, const test_case *c, const host_data *d, result *r) {
    efla_context_create_info info = EFLA_CONTEXT_CREATE_INFO_INIT;
    info.backend = backend;
    info.flags = EFLA_CONTEXT_PROFILING;
    efla_context ctx;
    /* EFLA_EMU_PATH forces a CUDA kernel path without touching the CPU's. */
    const char *path = getenv("EFLA_EMU_PATH");
    if (backend == EFLA_BACKEND_CUDA && path && *path) setenv("EFLA_PATH", path, 1);
    efla_status created = efla_context_create(&info, &ctx);
    unsetenv("EFLA_PATH");
    CHECK(created);
    const efla_dtype dt = c->dtype;
    const size_t es = efla_dtype_size(dt);
    void *qb = c->permuted ? permute_bt(d->q, c, dt) : pack(d->q, d->nq, dt);
    void *kb = c->permuted ? permute_bt(d->k, c, dt) : pack(d->k, d->nq, dt);
    void *vb = pack(d->v, d->nv, dt), *bb = pack(d->beta, d->nb, dt);
    efla_buffer q = upload(ctx, qb, es * (uint64_t)d->nq),
                k = upload(ctx, kb, es * (uint64_t)d->nq);
    efla_buffer v = upload(ctx, vb, es * (uint64_t)d->nv),
                beta = upload(ctx, bb, es * (uint64_t)d->nb);
    efla_buffer out = upload(ctx, NULL, 0), s_in = NULL, s_out = NULL;
    efla_buffer_destroy(out);
    CHECK(efla_buffer_create(ctx, es * (uint64_t)d->nv + 1, &out));
    int64_t n = c->cu_seqlens ? c->n : c->b;
    if (c->initial) s_in = upload(ctx, d->state, 4 * (uint64_t)d->ns);
    if (c->final && !c->in_place) CHECK(efla_buffer_create(ctx, 4 * (uint64_t)d->ns + 4, &s_out));

    efla_forward_desc desc = EFLA_FORWARD_DESC_INIT;
    int64_t qs[4] = {c->b, c->t, c->h, c->dk}, vs[4] = {c->b, c->t, c->hv, c->dv};
    int64_t bs[3] = {c->b, c->t, c->hv}, ss[4] = {n, c->hv, c->dk, c->dv};
    desc.q = efla_tensor_contiguous(q, 0, dt, 4, qs);
    desc.k = efla_tensor_contiguous(k, 0, dt, 4, qs);
    if (c->permuted) {
        int64_t strides[4] = {c->h * c->t * c->dk, c->dk, c->t * c->dk, 1};
        memcpy(desc.q.strides, strides, sizeof strides);
        memcpy(desc.k.strides, strides, sizeof strides);
    }
    desc.v = efla_tensor_contiguous(v, 0, dt, 4, vs);
    desc.beta = efla_tensor_contiguous(beta, 0, dt, 3, bs);
    desc.out = efla_tensor_contiguous(out, 0, dt, 4, vs);
    if (s_in) desc.initial_state = efla_tensor_contiguous(s_in, 0, EFLA_DTYPE_F32, 4, ss);
    if (c->in_place)
        desc.final_state = desc.initial_state;
    else if (s_out)
        desc.final_state = efla_tensor_contiguous(s_out, 4, EFLA_DTYPE_F32, 4, ss);
    desc.cu_seqlens = c->cu_seqlens;
    desc.cu_seqlens_dtype = EFLA_DTYPE_I32;
    desc.num_sequences = c->cu_seqlens ? c->n : 0;
    desc.mode = c->mode;
    desc.algorithm = c->algorithm;
    desc.flags = c->flags;
    CHECK(efla_forward(ctx, &desc));
    CHECK(efla_context_synchronize(ctx));
    double ms;
    CHECK(efla_context_last_forward_ms(ctx, &ms));

    r->nout = d->nv;
    r->out = malloc(sizeof(float) * (size_t)(d->nv + 1));
    unsigned char *raw = malloc(es * (size_t)(d->nv + 1));
    CHECK(efla_buffer_download(out, 0, raw, es * (uint64_t)d->nv));
    for (int64_t i = 0; i < d->nv; ++i) {
        if (dt == EFLA_DTYPE_F32)
            memcpy(&r->out[i], raw + 4 * i, 4);
        else {
            uint16_t h;
            memcpy(&h, raw + 2 * i, 2);
            r->out[i] = from_half_bits(h, dt);
        }
    }
    free(raw);
    r->nstate = c->final ? d->ns : 0;
    r->state = malloc(sizeof(float) * (size_t)(d->ns + 1));
    if (c->final)
        CHECK(efla_buffer_download(c->in_place ? s_in : s_out, c->in_place ? 0 : 4, r->state,
                                   4 * (uint64_t)d->ns));
    efla_buffer_destroy(q);
    efla_buffer_destroy(k);
    efla_buffer_destroy(v);
    efla_buffer_destroy(beta);
    efla_buffer_destroy(out);
    efla_buffer_destroy(s_in);
    efla_buffer_destroy(s_out);
    efla_context_destroy(ctx);
    free(qb);
    free(kb);
    free(vb);
    free(bb);
}

static double relative_error(const float *a, const float *b, int64_t n) {
    double diff = 0, norm = 0;
    for (int64_t i = 0; i < n; ++i) {
        if (!isfinite(a[i])) return INFINITY;
        diff += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        norm += (double)b[i] * b[i];
    }
    return norm > 0 ? sqrt(diff / norm) : sqrt(diff);
}

static int check_case(const test_case *c) {
    host_data d;
    make_data(c, &d);
    result cpu, cuda;
    run_case(EFLA_BACKEND_CPU, c, &d, &cpu);
    run_case(EFLA_BACKEND_CUDA, c, &d, &cuda);
    double tolerance = c->dtype == EFLA_DTYPE_F32 ? 2e-5 : c->dtype == EFLA_DTYPE_F16 ? 3e-3 : 1e-2;
    if (c->hard_keys) tolerance *= 5;
    double eo = relative_error(cuda.out, cpu.out, cpu.nout);
    double es = relative_error(cuda.state, cpu.state, cpu.nstate);
    int ok = eo <= tolerance && es <= tolerance;
    printf("%-4s %-44s out %.2e state %.2e (tolerance %.0e)\n", ok ? "ok" : "FAIL", c->name, eo, es,
           tolerance);
    free(cpu.out);
    free(cpu.state);
    free(cuda.out);
    free(cuda.state);
    free_data(&d);
    return ok;
}

static uint16_t to_half_bits(float x, efla_dtype dtype) {
    uint32_t u;
    memcpy(&u, &x, 4);
    if (dtype == EFLA_DTYPE_BF16) {
        u += 0x7fffu + ((u >> 16) & 1u);
        return (uint16_t)(u >> 16);
    }
    /* f16 of normal-range values (the data here never needs more) */
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    uint32_t m = u & 0x7fffffffu;
    if (m < 0x38800000u) return sign; /* flush tiny values: exact zero */
    if (m >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u);
    uint32_t r = m + 0xfffu + ((m >> 13) & 1u);
    return (uint16_t)(sign | ((r - 0x38000000u) >> 13));
}

static float from_half_bits(uint16_t h, efla_dtype dtype) {
    uint32_t u;
    if (dtype == EFLA_DTYPE_BF16)
        u = (uint32_t)h << 16;
    else {
        uint32_t e = (h >> 10) & 0x1fu, m = h & 0x3ffu, s = (uint32_t)(h & 0x8000u) << 16;
        if (e == 0) {
            float f = (float)m * 5.9604644775390625e-8f;
            return s ? -f : f;
        }
        u = s | (e == 0x1f ? 0x7f800000u | (m << 13) : ((e + 112u) << 23) | (m << 13));
    }
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static void check_interop(void) {
    efla_context_create_info info = EFLA_CONTEXT_CREATE_INFO_INIT;
    info.backend = EFLA_BACKEND_CUDA;
    efla_context ctx;
    CHECK(efla_context_create(&info, &ctx));
    efla_buffer buf, wrapped;
    CHECK(efla_buffer_create(ctx, 64, &buf));
    uint64_t address = 0;
    CHECK(efla_cuda_buffer_address(buf, &address));
    CHECK(efla_cuda_buffer_wrap(ctx, address, 64, &wrapped));
    float in[16], back[16];
    for (int i = 0; i < 16; ++i)
        in[i] = (float)i;
    CHECK(efla_buffer_upload(wrapped, 0, in, sizeof in));
    CHECK(efla_buffer_download(buf, 0, back, sizeof back));
    if (memcmp(in, back, sizeof in)) fail("wrapped buffer aliasing", EFLA_ERROR_INTERNAL);
    efla_buffer_destroy(wrapped);
    efla_buffer_destroy(buf);
    efla_device_info dev = EFLA_DEVICE_INFO_INIT;
    CHECK(efla_context_device_info(ctx, &dev));
    printf("ok   interop: device '%s' pci %s path %s smem %llu\n", dev.name, dev.pci_bus_id,
           dev.kernel_path, (unsigned long long)dev.shared_memory_bytes);
    efla_context_destroy(ctx);

    setenv("EFLA_PATH", "bogus", 1);
    efla_status s = efla_context_create(&info, &ctx);
    unsetenv("EFLA_PATH");
    if (s != EFLA_ERROR_UNSUPPORTED || !strstr(efla_last_error_message(), "simt"))
        fail("EFLA_PATH=bogus must fail with UNSUPPORTED listing the paths", s);
    printf("ok   EFLA_PATH=bogus: %s\n", efla_last_error_message());
}

/* The plan's kernel path: simt below head dimension 16 even where mma is
 * forced, and for bf16 below Dk 32; the device keeps reporting the
 * context's path. */
static void check_query_path(void) {
    setenv("EFLA_PATH", "cuda:mma", 1);
    efla_context_create_info info = EFLA_CONTEXT_CREATE_INFO_INIT;
    info.backend = EFLA_BACKEND_CUDA;
    efla_context ctx;
    efla_status created = efla_context_create(&info, &ctx);
    unsetenv("EFLA_PATH");
    CHECK(created);
    static const int64_t dims[][4] = {/* Dk, Dv, mma, dtype */
                                      {1, 5, 0, EFLA_DTYPE_BF16},   {15, 64, 0, EFLA_DTYPE_BF16},
                                      {64, 15, 0, EFLA_DTYPE_BF16}, {16, 16, 1, EFLA_DTYPE_F16},
                                      {16, 16, 0, EFLA_DTYPE_BF16}, {32, 16, 1, EFLA_DTYPE_BF16},
                                      {64, 64, 1, EFLA_DTYPE_BF16}};
    efla_buffer buf;
    CHECK(efla_buffer_create(ctx, 1 << 20, &buf));
    for (size_t i = 0; i < sizeof dims / sizeof dims[0]; ++i) {
        int64_t qs[4] = {1, 128, 1, dims[i][0]}, vs[4] = {1, 128, 1, dims[i][1]},
                bs[3] = {1, 128, 1};
        const efla_dtype dtype = (efla_dtype)dims[i][3];
        efla_forward_desc desc = EFLA_FORWARD_DESC_INIT;
        desc.q = efla_tensor_contiguous(buf, 0, dtype, 4, qs);
        desc.k = efla_tensor_contiguous(buf, 1 << 16, dtype, 4, qs);
        desc.v = efla_tensor_contiguous(buf, 2 << 16, dtype, 4, vs);
        desc.out = efla_tensor_contiguous(buf, 3 << 16, dtype, 4, vs);
        desc.beta = efla_tensor_contiguous(buf, 4 << 16, dtype, 3, bs);
        desc.algorithm = EFLA_ALGORITHM_CHUNKED;
        efla_forward_plan plan = EFLA_FORWARD_PLAN_INIT;
        CHECK(efla_forward_query(ctx, &desc, &plan));
        const char *want = dims[i][2] ? "mma" : "simt";
        if (strcmp(plan.kernel_path, want)) {
            fprintf(stderr, "FAIL: %s Dk%lld Dv%lld plans path %s, want %s\n",
                    efla_dtype_name(dtype), (long long)dims[i][0], (long long)dims[i][1],
                    plan.kernel_path, want);
            exit(1);
        }
    }
    efla_device_info dev = EFLA_DEVICE_INFO_INIT;
    CHECK(efla_context_device_info(ctx, &dev));
    if (strcmp(dev.kernel_path, "mma"))
        fail("device kernel_path must stay mma", EFLA_ERROR_INTERNAL);
    efla_buffer_destroy(buf);
    efla_context_destroy(ctx);
    printf("ok   EFLA_PATH=cuda:mma plans simt below Dk/Dv 16 (bf16: Dk 32), mma above\n");
}

int main(void) {
    static const int32_t mixed[] = {0, 3, 3, 70, 200, 201};
    static const int32_t long_only[] = {0, 65, 130};
    /* empty sequences first, in the middle and last (the last one's state
     * was overwritten by a late upload DMA on the H200) */
    static const int32_t with_empty[] = {0, 0, 5, 75, 75, 76, 140, 205, 205};
    const test_case cases[] = {
        {"f32 chunked B2 T100 H2 HV4 Dk17 Dv33", 2, 100, 2, 4, 17, 33, EFLA_DTYPE_F32,
         EFLA_ALGORITHM_AUTO, EFLA_MODE_EFLA, 0, NULL, 0, 1, 1, 0, 0, 0},
        {"f32 recurrent T5 Dk128 Dv128", 2, 5, 1, 1, 128, 128, EFLA_DTYPE_F32, EFLA_ALGORITHM_AUTO,
         EFLA_MODE_EFLA, 0, NULL, 0, 1, 1, 0, 0, 0},
        {"f32 forced chunked T5 Dk128 Dv64", 1, 5, 1, 2, 128, 64, EFLA_DTYPE_F32,
         EFLA_ALGORITHM_CHUNKED, EFLA_MODE_EFLA, 0, NULL, 0, 1, 1, 0, 0, 0},
        {"f32 forced recurrent T130 Dk64 Dv40", 1, 130, 2, 2, 64, 40, EFLA_DTYPE_F32,
         EFLA_ALGORITHM_RECURRENT, EFLA_MODE_EFLA, 0, NULL, 0, 1, 1, 0, 0, 0},
        {"f16 varlen mixed l2norm q,k Dk64 Dv40", 1, 201, 1, 2, 64, 40, EFLA_DTYPE_F16,
         EFLA_ALGORITHM_AUTO, EFLA_MODE_EFLA, EFLA_FORWARD_L2NORM_Q | EFLA_FORWARD_L2NORM_K, mixed,
         5, 1, 1, 0, 0, 0},
        {"bf16 varlen chunked DELTA Dk256 Dv1", 1, 130, 1, 1, 256, 1, EFLA_DTYPE_BF16,
         EFLA_ALGORITHM_CHUNKED, EFLA_MODE_DELTA, EFLA_FORWARD_L2NORM_K, long_only, 2, 1, 1, 0, 0,
         0},
        {"f32 permuted q/k, in-place state, Dk3 Dv1", 2, 70, 3, 3, 3, 1, EFLA_DTYPE_F32,
         EFLA_ALGORITHM_AUTO, EFLA_MODE_EFLA, 0, NULL, 0, 1, 1, 1, 1, 0},
        {"f32 T0 copies the state", 2, 0, 1, 1, 8, 8, EFLA_DTYPE_F32, EFLA_ALGORITHM_CHUNKED,
         EFLA_MODE_EFLA, 0, NULL, 0, 1, 1, 0, 0, 0},
        {"f32 Dk1 Dv1 T130 no initial state", 1, 130, 1, 1, 1, 1, EFLA_DTYPE_F32,
         EFLA_ALGORITHM_AUTO, EFLA_MODE_EFLA, 0, NULL, 0, 0, 1, 0, 0, 0},
        {"f32 hard keys 1e-3..50, beta to 50, Dk129", 1, 90, 1, 1, 129, 20, EFLA_DTYPE_F32,
         EFLA_ALGORITHM_CHUNKED, EFLA_MODE_EFLA, 0, NULL, 0, 1, 1, 0, 0, 1},
        {"bf16 chunked no final state Dk64 Dv64", 1, 128, 2, 2, 64, 64, EFLA_DTYPE_BF16,
         EFLA_ALGORITHM_AUTO, EFLA_MODE_EFLA, 0, NULL, 0, 1, 0, 0, 0, 0},
        {"bf16 hard keys, HV2 H1, Dk128 Dv48, T200", 1, 200, 1, 2, 128, 48, EFLA_DTYPE_BF16,
         EFLA_ALGORITHM_CHUNKED, EFLA_MODE_EFLA, 0, NULL, 0, 1, 1, 0, 0, 1},
        {"f16 hard keys, Dk100 Dv130 permuted, T150", 1, 150, 2, 2, 100, 130, EFLA_DTYPE_F16,
         EFLA_ALGORITHM_AUTO, EFLA_MODE_EFLA, EFLA_FORWARD_L2NORM_Q, NULL, 0, 1, 1, 0, 1, 1},
        {"bf16 varlen, empty sequences (last too)", 1, 205, 2, 4, 16, 16, EFLA_DTYPE_BF16,
         EFLA_ALGORITHM_AUTO, EFLA_MODE_EFLA, 0, with_empty, 8, 1, 1, 0, 0, 0},
        {"f32 varlen chunked, empty sequences, no state", 1, 205, 1, 2, 8, 8, EFLA_DTYPE_F32,
         EFLA_ALGORITHM_CHUNKED, EFLA_MODE_EFLA, 0, with_empty, 8, 0, 1, 0, 0, 0},
        {"bf16 varlen chunked Dk256 Dv24 (mma, 2 tiles)", 1, 130, 1, 1, 256, 24, EFLA_DTYPE_BF16,
         EFLA_ALGORITHM_CHUNKED, EFLA_MODE_EFLA, EFLA_FORWARD_L2NORM_K, long_only, 2, 1, 1, 0, 0,
         0},
        {"f16 hard keys, Dk200 Dv128 HV2 (mma, 64-column tiles)", 1, 140, 1, 2, 200, 128,
         EFLA_DTYPE_F16, EFLA_ALGORITHM_CHUNKED, EFLA_MODE_EFLA, 0, NULL, 0, 1, 1, 0, 0, 1},
        {"bf16 chunked Dk1 Dv5 (simt below Dk/Dv 16)", 1, 130, 1, 1, 1, 5, EFLA_DTYPE_BF16,
         EFLA_ALGORITHM_CHUNKED, EFLA_MODE_EFLA, 0, NULL, 0, 1, 1, 0, 0, 0},
    };
    int ok = 1;
    const char *forced = getenv("EFLA_EMU_PATH");
    printf("CUDA kernel path: %s\n", forced && *forced ? forced : "(auto)");
    unsetenv("EFLA_PATH");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; ++i)
        ok &= check_case(&cases[i]);
    check_interop();
    check_query_path();
    return ok ? 0 : 1;
}
