/* A strict parser for the one dict literal a .npy header holds: string
 * keys 'descr' (a dtype string), 'fortran_order' (True/False) and 'shape'
 * (a tuple of non-negative integers), each exactly once. */
#include "npy_header.h"

#include <stdarg.h>
#include <string.h>

typedef struct cursor {
    const char *p, *end;
    char *err;
    size_t err_size;
} cursor;

enum { KEY_DESCR = 1, KEY_FORTRAN = 2, KEY_SHAPE = 4, ALL_KEYS = 7 };

static bool fail(cursor *c, const char *format, ...) __attribute__((format(printf, 2, 3)));
static bool fail(cursor *c, const char *format, ...) {
    va_list args;
    va_start(args, format);
    vsnprintf(c->err, c->err_size, format, args);
    va_end(args);
    return false;
}

static void skip_space(cursor *c) {
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
        c->p++;
}

static bool accept(cursor *c, char ch) {
    skip_space(c);
    if (c->p < c->end && *c->p == ch) {
        c->p++;
        return true;
    }
    return false;
}

static bool accept_word(cursor *c, const char *word) {
    size_t n = strlen(word);
    skip_space(c);
    if ((size_t)(c->end - c->p) < n || memcmp(c->p, word, n) != 0) return false;
    c->p += n;
    return true;
}

static bool parse_string(cursor *c, char *buf, size_t size, const char *what) {
    skip_space(c);
    if (c->p >= c->end || (*c->p != '\'' && *c->p != '"'))
        return fail(c, "header: %s is not a string", what);
    char quote = *c->p++;
    const char *start = c->p;
    while (c->p < c->end && *c->p != quote && *c->p != '\\')
        c->p++;
    if (c->p >= c->end || *c->p != quote)
        return fail(c, "header: %s is not a plain quoted string", what);
    size_t length = (size_t)(c->p - start);
    c->p++;
    if (length >= size) return fail(c, "header: %s is too long", what);
    memcpy(buf, start, length);
    buf[length] = '\0';
    return true;
}

static bool parse_bool(cursor *c, bool *out) {
    if (accept_word(c, "True"))
        *out = true;
    else if (accept_word(c, "False"))
        *out = false;
    else
        return fail(c, "header: 'fortran_order' is not True or False");
    return true;
}

static bool parse_dim(cursor *c, int64_t *out) {
    skip_space(c);
    if (c->p >= c->end || *c->p < '0' || *c->p > '9')
        return fail(c, "header: 'shape' holds something other than non-negative integers");
    int64_t value = 0;
    while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
        int digit = *c->p++ - '0';
        if (value > (INT64_MAX - digit) / 10)
            return fail(c, "header: a 'shape' dimension does not fit in 64 bits");
        value = value * 10 + digit;
    }
    if (c->p < c->end && *c->p == 'L') c->p++; /* Python 2 long */
    *out = value;
    return true;
}

/* "(" [dim ("," dim)* [","]] ")"; one element needs its comma. */
static bool parse_shape(cursor *c, npy_header *h) {
    if (!accept(c, '(')) return fail(c, "header: 'shape' is not a tuple");
    h->rank = 0;
    if (accept(c, ')')) return true;
    for (;;) {
        if (h->rank == NPY_MAX_RANK)
            return fail(c, "header: 'shape' has more than %d dimensions", NPY_MAX_RANK);
        if (!parse_dim(c, &h->shape[h->rank++])) return false;
        bool comma = accept(c, ',');
        if (accept(c, ')')) {
            if (h->rank == 1 && !comma) return fail(c, "header: 'shape' is not a tuple");
            return true;
        }
        if (!comma) return fail(c, "header: 'shape' is not a well-formed tuple");
    }
}

static bool parse_entry(cursor *c, npy_header *h, unsigned *seen) {
    char key[32];
    if (!parse_string(c, key, sizeof key, "a key")) return false;
    if (!accept(c, ':')) return fail(c, "header: expected ':' after '%s'", key);
    unsigned bit = strcmp(key, "descr") == 0           ? KEY_DESCR
                   : strcmp(key, "fortran_order") == 0 ? KEY_FORTRAN
                   : strcmp(key, "shape") == 0         ? KEY_SHAPE
                                                       : 0;
    if (!bit) return fail(c, "header: unexpected key '%s'", key);
    if (*seen & bit) return fail(c, "header: key '%s' appears twice", key);
    *seen |= bit;
    if (bit == KEY_DESCR)
        return parse_string(c, h->descr, sizeof h->descr,
                            "'descr' (structured dtypes are not supported)");
    if (bit == KEY_FORTRAN) return parse_bool(c, &h->fortran_order);
    return parse_shape(c, h);
}

static bool check_all_keys(cursor *c, unsigned seen) {
    if (!(seen & KEY_DESCR)) return fail(c, "header has no 'descr' key");
    if (!(seen & KEY_FORTRAN)) return fail(c, "header has no 'fortran_order' key");
    if (!(seen & KEY_SHAPE)) return fail(c, "header has no 'shape' key");
    return true;
}

bool npy_parse_header(const char *text, size_t length, npy_header *out, char *err,
                      size_t err_size) {
    cursor c = {text, text + length, err, err_size};
    npy_header h;
    memset(&h, 0, sizeof h);
    unsigned seen = 0;
    if (!accept(&c, '{')) return fail(&c, "header is not a Python dict literal");
    while (!accept(&c, '}')) {
        if (!parse_entry(&c, &h, &seen)) return false;
        if (!accept(&c, ',')) {
            if (accept(&c, '}')) break;
            return fail(&c, "header: expected ',' or '}' in the dict");
        }
    }
    skip_space(&c);
    if (c.p != c.end) return fail(&c, "header has characters after its dict");
    if (!check_all_keys(&c, seen)) return false;
    *out = h;
    return true;
}

void npy_shape_text(const int64_t *shape, uint32_t rank, char *buf, size_t size) {
    size_t used = (size_t)snprintf(buf, size, "(");
    for (uint32_t i = 0; i < rank && used < size; ++i)
        used +=
            (size_t)snprintf(buf + used, size - used, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (used < size) snprintf(buf + used, size - used, rank == 1 ? ",)" : ")");
}
