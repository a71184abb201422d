#include "npy.h"

#include "npy_header.h"

#include "core/half.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const unsigned char magic[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};

static const struct {
    npy_dtype dtype;
    const char *descr;
    size_t size;
} dtype_table[] = {
    {NPY_F32, "<f4", 4}, {NPY_F16, "<f2", 2}, {NPY_F64, "<f8", 8},
    {NPY_I32, "<i4", 4}, {NPY_I64, "<i8", 8},
};
#define DTYPE_COUNT (sizeof dtype_table / sizeof dtype_table[0])

const char *npy_dtype_descr(npy_dtype dtype) {
    for (size_t i = 0; i < DTYPE_COUNT; ++i)
        if (dtype_table[i].dtype == dtype) return dtype_table[i].descr;
    return "?";
}

size_t npy_dtype_size(npy_dtype dtype) {
    for (size_t i = 0; i < DTYPE_COUNT; ++i)
        if (dtype_table[i].dtype == dtype) return dtype_table[i].size;
    return 0;
}

/* A reading session: the file, its name and where errors go. */
typedef struct reader {
    const char *path;
    FILE *file;
    uint64_t file_size;
    uint64_t position; /* bytes consumed so far */
    char *err;
    size_t err_size;
} reader;

static npy_result fail(reader *r, npy_result result, const char *format, ...)
    __attribute__((format(printf, 3, 4)));
static npy_result fail(reader *r, npy_result result, const char *format, ...) {
    int used = snprintf(r->err, r->err_size, "%s: ", r->path);
    if (used < 0 || (size_t)used >= r->err_size) return result;
    va_list args;
    va_start(args, format);
    vsnprintf(r->err + used, r->err_size - (size_t)used, format, args);
    va_end(args);
    return result;
}

static uint64_t read_le(const unsigned char *bytes, size_t size) {
    uint64_t value = 0;
    for (size_t i = size; i-- > 0;)
        value = value << 8 | bytes[i];
    return value;
}

static void accepted_list(unsigned accepted, char *buf, size_t size) {
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < DTYPE_COUNT && used < size; ++i)
        if (accepted & dtype_table[i].dtype)
            used += (size_t)snprintf(buf + used, size - used, "%s'%s'", used ? ", " : "",
                                     dtype_table[i].descr);
}

static npy_result check_descr(reader *r, const char *descr, unsigned accepted, npy_dtype *out) {
    char list[64];
    accepted_list(accepted, list, sizeof list);
    for (size_t i = 0; i < DTYPE_COUNT; ++i) {
        if (!(accepted & dtype_table[i].dtype)) continue;
        if (strcmp(descr, dtype_table[i].descr) == 0) {
            *out = dtype_table[i].dtype;
            return NPY_OK;
        }
        if (descr[0] == '>' && strcmp(descr + 1, dtype_table[i].descr + 1) == 0)
            return fail(r, NPY_ERROR_FORMAT,
                        "dtype '%s' is big-endian; efla reads little-endian %s", descr, list);
    }
    return fail(r, NPY_ERROR_FORMAT, "dtype '%s' is not supported here; efla reads %s", descr,
                list);
}

static npy_result read_exact(reader *r, void *buf, size_t size, const char *what) {
    if (fread(buf, 1, size, r->file) == size) {
        r->position += size;
        return NPY_OK;
    }
    if (ferror(r->file)) return fail(r, NPY_ERROR_IO, "read failed: %s", strerror(errno));
    return fail(r, NPY_ERROR_FORMAT, "file ends inside its %s", what);
}

/* Magic, version and header length; leaves the file at the header text. */
static npy_result read_preamble(reader *r, uint32_t *header_length) {
    unsigned char pre[12];
    npy_result result = read_exact(r, pre, 8, "magic bytes");
    if (result != NPY_OK) return result;
    if (memcmp(pre, magic, sizeof magic) != 0)
        return fail(r, NPY_ERROR_FORMAT, "not a .npy file (bad magic bytes)");
    unsigned major = pre[6], minor = pre[7];
    if (major < 1 || major > 3 || minor != 0)
        return fail(r, NPY_ERROR_FORMAT,
                    "format version %u.%u is not supported (efla reads 1.0, 2.0 and 3.0)", major,
                    minor);
    size_t field = major == 1 ? 2 : 4;
    result = read_exact(r, pre + 8, field, "header length");
    if (result != NPY_OK) return result;
    *header_length = (uint32_t)read_le(pre + 8, field);
    if (*header_length > r->file_size - r->position)
        return fail(r, NPY_ERROR_FORMAT,
                    "header length %u runs past the end of the file (%llu bytes)", *header_length,
                    (unsigned long long)r->file_size);
    return NPY_OK;
}

static npy_result read_header(reader *r, uint32_t length, npy_header *header) {
    char *text = malloc(length ? length : 1);
    if (!text) return fail(r, NPY_ERROR_MEMORY, "out of memory for a %u-byte header", length);
    npy_result result = read_exact(r, text, length, "header");
    char problem[256];
    if (result == NPY_OK && !npy_parse_header(text, length, header, problem, sizeof problem))
        result = fail(r, NPY_ERROR_FORMAT, "%s", problem);
    free(text);
    return result;
}

/* Element count and byte size, overflow-checked. */
static npy_result data_size(reader *r, const npy_header *h, size_t item, uint64_t *count,
                            uint64_t *bytes) {
    char shape[256];
    npy_shape_text(h->shape, h->rank, shape, sizeof shape);
    uint64_t n = 1;
    for (uint32_t i = 0; i < h->rank; ++i) {
        uint64_t dim = (uint64_t)h->shape[i];
        if (dim && n > UINT64_MAX / dim)
            return fail(r, NPY_ERROR_FORMAT, "shape %s has more elements than fit in 64 bits",
                        shape);
        n *= dim;
    }
    if (n > UINT64_MAX / item)
        return fail(r, NPY_ERROR_FORMAT, "shape %s of '%s' needs more than 2^64 bytes", shape,
                    h->descr);
    *count = n;
    *bytes = n * item;
    return NPY_OK;
}

static npy_result check_layout(reader *r, const npy_header *h, unsigned accepted,
                               npy_dtype *dtype) {
    if (h->fortran_order)
        return fail(r, NPY_ERROR_FORMAT,
                    "array is in Fortran order; efla reads C order (np.ascontiguousarray)");
    return check_descr(r, h->descr, accepted, dtype);
}

static npy_result read_data(reader *r, const npy_header *h, npy_array *out) {
    uint64_t count = 0, bytes = 0;
    npy_result result = data_size(r, h, npy_dtype_size(out->dtype), &count, &bytes);
    if (result != NPY_OK) return result;
    uint64_t available = r->file_size - r->position;
    if (bytes != available) {
        char shape[256];
        npy_shape_text(h->shape, h->rank, shape, sizeof shape);
        return fail(r, NPY_ERROR_FORMAT,
                    "shape %s of '%s' needs %llu data bytes but the file has %llu after its "
                    "header",
                    shape, h->descr, (unsigned long long)bytes, (unsigned long long)available);
    }
    if (bytes > SIZE_MAX) return fail(r, NPY_ERROR_MEMORY, "too large for this machine");
    out->data = malloc(bytes ? (size_t)bytes : 1);
    if (!out->data)
        return fail(r, NPY_ERROR_MEMORY, "out of memory for %llu bytes", (unsigned long long)bytes);
    out->count = count;
    return read_exact(r, out->data, (size_t)bytes, "data");
}

static npy_result read_open(reader *r, unsigned accepted, npy_array *out) {
    uint32_t header_length = 0;
    npy_header header;
    npy_result result = read_preamble(r, &header_length);
    if (result == NPY_OK) result = read_header(r, header_length, &header);
    if (result == NPY_OK) result = check_layout(r, &header, accepted, &out->dtype);
    if (result != NPY_OK) return result;
    out->rank = header.rank;
    memcpy(out->shape, header.shape, sizeof out->shape);
    return read_data(r, &header, out);
}

npy_result npy_read(const char *path, unsigned accepted, npy_array *out, char *err,
                    size_t err_size) {
    memset(out, 0, sizeof *out);
    reader r = {path, fopen(path, "rb"), 0, 0, err, err_size};
    if (!r.file) return fail(&r, NPY_ERROR_IO, "cannot open: %s", strerror(errno));
    struct stat st;
    npy_result result = NPY_OK;
    if (fstat(fileno(r.file), &st) != 0)
        result = fail(&r, NPY_ERROR_IO, "cannot stat: %s", strerror(errno));
    else if (!S_ISREG(st.st_mode))
        result = fail(&r, NPY_ERROR_IO, "not a regular file");
    else {
        r.file_size = (uint64_t)st.st_size;
        result = read_open(&r, accepted, out);
    }
    fclose(r.file);
    if (result != NPY_OK) npy_array_free(out);
    return result;
}

void npy_array_free(npy_array *array) {
    free(array->data);
    memset(array, 0, sizeof *array);
}

void npy_to_f32(const npy_array *array, float *out) {
    size_t item = npy_dtype_size(array->dtype);
    for (uint64_t i = 0; i < array->count; ++i) {
        uint64_t bits = read_le(array->data + i * item, item);
        if (array->dtype == NPY_F16) {
            out[i] = efla_f16_to_f32((uint16_t)bits);
        } else if (array->dtype == NPY_F32) {
            out[i] = efla_f32_from_bits((uint32_t)bits);
        } else {
            double value;
            memcpy(&value, &bits, sizeof value);
            out[i] = (float)value;
        }
    }
}

void npy_to_i64(const npy_array *array, int64_t *out) {
    size_t item = npy_dtype_size(array->dtype);
    for (uint64_t i = 0; i < array->count; ++i) {
        uint64_t bits = read_le(array->data + i * item, item);
        out[i] = item == 4 ? (int64_t)(int32_t)(uint32_t)bits : (int64_t)bits;
    }
}

/* The version 1.0 header text padded with spaces and a newline so that
 * the data starts at a multiple of 64 bytes. */
static size_t format_header(char *buf, size_t size, uint32_t rank, const int64_t *shape) {
    char shape_text[NPY_MAX_RANK * 24 + 8];
    npy_shape_text(shape, rank, shape_text, sizeof shape_text);
    int length =
        snprintf(buf, size, "{'descr': '<f4', 'fortran_order': False, 'shape': %s, }", shape_text);
    size_t total = 10 + (size_t)length + 1;
    size_t padded = (total + 63) / 64 * 64;
    memset(buf + length, ' ', padded - total);
    buf[padded - 10 - 1] = '\n';
    return padded - 10;
}

static npy_result write_fail(char *err, size_t err_size) {
    snprintf(err, err_size, "write failed: %s", strerror(errno ? errno : EIO));
    return NPY_ERROR_IO;
}

npy_result npy_write_f32(FILE *file, const float *data, uint32_t rank, const int64_t *shape,
                         char *err, size_t err_size) {
    char header[NPY_MAX_RANK * 24 + 192];
    size_t header_length = format_header(header, sizeof header, rank, shape);
    unsigned char pre[10] = {0x93,
                             'N',
                             'U',
                             'M',
                             'P',
                             'Y',
                             1,
                             0,
                             (unsigned char)(header_length & 0xff),
                             (unsigned char)(header_length >> 8)};
    uint64_t count = 1;
    for (uint32_t i = 0; i < rank; ++i)
        count *= (uint64_t)shape[i];
    errno = 0;
    if (fwrite(pre, 1, sizeof pre, file) != sizeof pre ||
        fwrite(header, 1, header_length, file) != header_length)
        return write_fail(err, err_size);
    unsigned char chunk[4096];
    for (uint64_t i = 0; i < count;) {
        size_t n = 0;
        for (; n < sizeof chunk / 4 && i < count; ++n, ++i) {
            uint32_t bits = efla_f32_bits(data[i]);
            for (int b = 0; b < 4; ++b)
                chunk[n * 4 + b] = (unsigned char)(bits >> (8 * b));
        }
        if (fwrite(chunk, 4, n, file) != n) return write_fail(err, err_size);
    }
    return NPY_OK;
}
