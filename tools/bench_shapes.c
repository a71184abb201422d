#include "bench_shapes.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const bench_shape prefill[] = {
    {"S1", 1, 8192, 16, 16, 128, 128, false}, {"S2", 4, 4096, 16, 16, 128, 128, false},
    {"S3", 8, 2048, 32, 32, 64, 64, false},   {"S4", 1, 32768, 8, 8, 128, 128, false},
    {"S5", 2, 4096, 16, 16, 256, 256, false},
};
static const bench_shape decode[] = {{"D1", 64, 1, 16, 16, 128, 128, true}};
static const bench_shape prefill_small[] = {{"S1s", 1, 2048, 4, 4, 128, 128, false}};
static const bench_shape decode_small[] = {{"D1s", 16, 1, 4, 4, 128, 128, true}};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))
/* Keeps every tensor of a custom shape well inside 64-bit sizes. */
#define MAX_ELEMENTS ((int64_t)1 << 40)

static bool push(bench_shape **shapes, size_t *count, const bench_shape *add, size_t n) {
    bench_shape *grown = realloc(*shapes, (*count + n) * sizeof *grown);
    if (!grown) return false;
    memcpy(grown + *count, add, n * sizeof *add);
    *shapes = grown;
    *count += n;
    return true;
}

static bool within(int64_t a, int64_t b, int64_t c, int64_t d) {
    return a <= MAX_ELEMENTS / b && a * b <= MAX_ELEMENTS / c && a * b * c <= MAX_ELEMENTS / d;
}

/* "B,T,H,HV,Dk,Dv", each a whole number >= 1. */
static bool parse_shape(const char *text, size_t index, bench_shape *out) {
    int64_t v[6];
    const char *p = text;
    for (int i = 0; i < 6; ++i) {
        char *end = NULL;
        long long value = strtoll(p, &end, 10);
        if (end == p || value < 1 || *end != (i < 5 ? ',' : '\0')) {
            cli_error("--shape: '%s' is not B,T,H,HV,Dk,Dv (six whole numbers >= 1)", text);
            return false;
        }
        v[i] = value;
        p = end + 1;
    }
    if (!within(v[0], v[1], v[2], v[4]) || !within(v[0], v[1], v[3], v[5]) ||
        !within(v[0], v[3], v[4], v[5])) {
        cli_error("--shape: '%s' is too large", text);
        return false;
    }
    *out = (bench_shape){"", v[0], v[1], v[2], v[3], v[4], v[5], v[1] <= 64};
    snprintf(out->id, sizeof out->id, "X%zu", index + 1);
    return true;
}

static bool add_suite(const char *suite, bool small, bench_shape **shapes, size_t *count) {
    bool all = strcmp(suite, "all") == 0;
    bool ok = true;
    if (all || strcmp(suite, "prefill") == 0)
        ok = small ? push(shapes, count, prefill_small, COUNT(prefill_small))
                   : push(shapes, count, prefill, COUNT(prefill));
    if (ok && (all || strcmp(suite, "decode") == 0))
        ok = small ? push(shapes, count, decode_small, COUNT(decode_small))
                   : push(shapes, count, decode, COUNT(decode));
    return ok;
}

int bench_shapes_select(const char *suite, bool scale_down, const cli_list *custom,
                        bench_shape **out, size_t *count) {
    static const char *const suites[] = {"prefill", "decode", "all"};
    int ignored;
    *out = NULL;
    *count = 0;
    if (suite && !cli_parse_choice("--suite", suite, suites, 3, &ignored)) return CLI_EXIT_USAGE;
    if (!suite && custom->count == 0) suite = "all";
    if (suite && !add_suite(suite, scale_down, out, count)) goto out_of_memory;
    for (size_t i = 0; i < custom->count; ++i) {
        bench_shape shape;
        if (!parse_shape(custom->items[i], i, &shape)) {
            free(*out);
            *out = NULL;
            return CLI_EXIT_USAGE;
        }
        if (!push(out, count, &shape, 1)) goto out_of_memory;
    }
    return CLI_EXIT_OK;
out_of_memory:
    free(*out);
    *out = NULL;
    cli_error("out of memory");
    return CLI_EXIT_RUNTIME;
}
