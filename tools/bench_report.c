#include "bench_report.h"

#include "cli_util.h"

#include <math.h>

static double floor_ms(double amount, double rate) { return rate > 0 ? amount / rate * 1e3 : 0; }

static double ratio(double value, double reference) {
    return reference > 0 ? value / reference : NAN;
}

void bench_print_header(FILE *out, const bench_machine *m) {
    fprintf(out, "efla bench: %s device %u (%s), storage %s\n",
            efla_backend_name(m->device.backend), m->device.index, m->device.name,
            efla_dtype_name(m->storage));
    if (m->is_cpu)
        fprintf(out, "CPU f32 FMA peak %.1f GFLOP/s (%s, %u threads), copy %.1f GB/s\n",
                m->fma.gflops, m->fma.isa, m->device.compute_units, m->copy_gbps);
    fprintf(out, "floors: %s\n", m->basis);
    fprintf(out, "%-5s %-24s %-12s %-9s %10s %10s %10s %12s %9s %8s %7s %7s\n", "id",
            "B,T,H,HV,Dk,Dv", "path", "algorithm", "median ms", "p10 ms", "p90 ms", "tokens/s",
            "GFLOP/s", "GB/s", "xbytes", "xFMA");
}

void bench_print_row(FILE *out, const bench_machine *m, const bench_result *r) {
    const bench_shape *s = r->shape;
    char dims[64];
    snprintf(dims, sizeof dims, "%lld,%lld,%lld,%lld,%lld,%lld", (long long)s->b, (long long)s->t,
             (long long)s->h, (long long)s->hv, (long long)s->dk, (long long)s->dv);
    const double seconds = r->stats.median_ms * 1e-3;
    fprintf(out, "%-5s %-24s %-12s %-9s %10.4f %10.4f %10.4f %12.4g %9.1f %8.1f %7.2f %7.2f\n",
            s->id, dims, r->plan.kernel_path, efla_algorithm_name(r->plan.algorithm),
            r->stats.median_ms, r->stats.p10_ms, r->stats.p90_ms, r->work.tokens / seconds,
            r->work.flop / seconds * 1e-9, r->work.bytes / seconds * 1e-9,
            ratio(r->stats.median_ms, floor_ms(r->work.bytes, m->peak_bytes)),
            ratio(r->stats.median_ms, floor_ms(r->work.flop, m->peak_flops)));
    if (r->sets > 1 && r->set_median_ms[0] > 0) {
        fprintf(out, "%-5s median ms per buffer set:", "");
        for (int k = 0; k < r->sets && k < 3; ++k)
            fprintf(out, " %.4f", r->set_median_ms[k]);
        fputc('\n', out);
    }
    if (r->stage_count) {
        fprintf(out, "%-5s stages, mean device ms:", "");
        for (uint32_t i = 0; i < r->stage_count; ++i)
            fprintf(out, " %s %.4f (%u)", r->stages[i].name, r->stages[i].ms,
                    r->stages[i].dispatches);
        fputc('\n', out);
    }
    fflush(out);
}

static void json_number(FILE *out, const char *key, double value) {
    fprintf(out, ",\"%s\":", key);
    cli_json_number(out, value);
}

static void json_string(FILE *out, const char *key, const char *value) {
    fprintf(out, ",\"%s\":", key);
    cli_json_string(out, value);
}

static void json_floors(FILE *out, const bench_machine *m, const bench_result *r) {
    const double byte_floor = floor_ms(r->work.bytes, m->peak_bytes);
    const double fma_floor = floor_ms(r->work.flop, m->peak_flops);
    json_string(out, "floor_basis", m->basis);
    json_number(out, "byte_floor_ms", byte_floor > 0 ? byte_floor : NAN);
    json_number(out, "fma_floor_ms", fma_floor > 0 ? fma_floor : NAN);
    json_number(out, "x_byte_floor", ratio(r->stats.median_ms, byte_floor));
    json_number(out, "x_fma_floor", ratio(r->stats.median_ms, fma_floor));
    if (!m->is_cpu) return;
    json_number(out, "fma_peak_gflops", m->fma.gflops);
    json_string(out, "fma_isa", m->fma.isa);
    json_number(out, "peak_fraction",
                ratio(r->work.flop / (r->stats.median_ms * 1e-3) * 1e-9, m->fma.gflops));
    json_number(out, "copy_gbps", m->copy_gbps);
}

void bench_print_json(FILE *out, const bench_machine *m, const bench_result *r) {
    const bench_shape *s = r->shape;
    const double seconds = r->stats.median_ms * 1e-3;
    fputs("{\"id\":", out);
    cli_json_string(out, s->id);
    json_string(out, "backend", efla_backend_name(m->device.backend));
    fprintf(out, ",\"device\":%u", m->device.index);
    json_string(out, "device_name", m->device.name);
    json_string(out, "path", r->plan.kernel_path);
    json_string(out, "algorithm", efla_algorithm_name(r->plan.algorithm));
    fprintf(out,
            ",\"shape\":{\"B\":%lld,\"T\":%lld,\"H\":%lld,\"HV\":%lld,\"Dk\":%lld,\"Dv\":%lld}",
            (long long)s->b, (long long)s->t, (long long)s->h, (long long)s->hv, (long long)s->dk,
            (long long)s->dv);
    json_string(out, "storage", efla_dtype_name(m->storage));
    json_string(out, "timer", r->timer);
    fprintf(out, ",\"warmup\":%d,\"iters\":%zu,\"sets\":%d", r->warmup, r->iters, r->sets);
    json_number(out, "median_ms", r->stats.median_ms);
    json_number(out, "p10_ms", r->stats.p10_ms);
    json_number(out, "p90_ms", r->stats.p90_ms);
    json_number(out, "tokens_per_s", r->work.tokens / seconds);
    json_number(out, "nominal_gflops", r->work.flop / seconds * 1e-9);
    json_number(out, "gbps", r->work.bytes / seconds * 1e-9);
    json_number(out, "flop", r->work.flop);
    json_number(out, "bytes", r->work.bytes);
    json_floors(out, m, r);
    if (r->sets > 1 && r->set_median_ms[0] > 0) {
        fputs(",\"set_median_ms\":[", out);
        for (int k = 0; k < r->sets && k < 3; ++k) {
            cli_json_number(out, r->set_median_ms[k]);
            if (k + 1 < r->sets && k < 2) fputc(',', out);
        }
        fputc(']', out);
    }
    if (r->run_ms) {
        fputs(",\"run_ms\":[", out);
        for (size_t i = 0; i < r->iters; ++i) {
            cli_json_number(out, r->run_ms[i]);
            if (i + 1 < r->iters) fputc(',', out);
        }
        fputc(']', out);
    }
    if (r->stage_count) {
        fputs(",\"stages_ms\":{", out);
        for (uint32_t i = 0; i < r->stage_count; ++i) {
            cli_json_string(out, r->stages[i].name);
            fputc(':', out);
            cli_json_number(out, r->stages[i].ms);
            if (i + 1 < r->stage_count) fputc(',', out);
        }
        fputc('}', out);
    }
    fputs("}\n", out);
    fflush(out);
}
