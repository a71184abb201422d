/* The .npy reader of the `efla` tool against good files and against
 * malformed, truncated and lying ones. Every file is generated here. */
#include "npy.h"

#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[64];
static char paths[64][128];
static int path_count;

static void make_dir(void) {
    snprintf(dir, sizeof dir, "/tmp/efla_test_npy_XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    path_count = 0;
}

static void remove_dir(void) {
    for (int i = 0; i < path_count; ++i)
        unlink(paths[i]);
    rmdir(dir);
}

TestSuite(npy, .init = make_dir, .fini = remove_dir);

static const char *path_for(const char *name) {
    cr_assert_lt(path_count, 64);
    char *path = paths[path_count++];
    snprintf(path, sizeof paths[0], "%s/%s", dir, name);
    return path;
}

static const char *write_bytes(const char *name, const void *bytes, size_t size) {
    const char *path = path_for(name);
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    cr_assert_eq(fwrite(bytes, 1, size, f), size);
    fclose(f);
    return path;
}

/* A .npy image: magic, version, header length field, header text, data.
 * The header is padded to a multiple of 64 as NumPy does. */
static size_t build(unsigned char *out, size_t cap, int major, const char *header, const void *data,
                    size_t data_size) {
    size_t field = major == 1 ? 2 : 4, prefix = 8 + field;
    size_t text = strlen(header);
    size_t padded = ((prefix + text + 1 + 63) / 64) * 64 - prefix;
    cr_assert_leq(prefix + padded + data_size, cap);
    memcpy(out, "\x93NUMPY", 6);
    out[6] = (unsigned char)major;
    out[7] = 0;
    for (size_t i = 0; i < field; ++i)
        out[8 + i] = (unsigned char)(padded >> (8 * i));
    memcpy(out + prefix, header, text);
    memset(out + prefix + text, ' ', padded - text - 1);
    out[prefix + padded - 1] = '\n';
    if (data_size) memcpy(out + prefix + padded, data, data_size);
    return prefix + padded + data_size;
}

static const char *write_npy(const char *name, int major, const char *header, const void *data,
                             size_t data_size) {
    static unsigned char image[1 << 16];
    size_t size = build(image, sizeof image, major, header, data, data_size);
    return write_bytes(name, image, size);
}

/* Reads a file that must be refused, and checks the message. */
static void expect_error(const char *path, unsigned accepted, npy_result expected,
                         const char *phrase) {
    npy_array a;
    char err[512] = "";
    npy_result r = npy_read(path, accepted, &a, err, sizeof err);
    cr_assert_eq(r, expected, "%s: result %d, expected %d (%s)", path, r, expected, err);
    cr_assert_not_null(strstr(err, phrase), "message '%s' lacks '%s'", err, phrase);
    cr_assert_not_null(strstr(err, path), "message '%s' does not name the file", err);
    cr_assert_null(a.data);
}

static void expect_format_error(const char *header, const void *data, size_t size,
                                const char *phrase) {
    expect_error(write_npy("bad.npy", 1, header, data, size), NPY_FLOATS, NPY_ERROR_FORMAT, phrase);
    unlink(paths[--path_count]);
}

#define F4_2x3 "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }"

static const float six[6] = {1.0f, -2.5f, 3.25f, 0.0f, 1e-3f, -7.0f};

/* ---- good files ---------------------------------------------------- */

static npy_array read_good(const char *path, unsigned accepted) {
    npy_array a;
    char err[512] = "";
    cr_assert_eq(npy_read(path, accepted, &a, err, sizeof err), NPY_OK, "%s", err);
    return a;
}

Test(npy, reads_f4_version_1) {
    npy_array a = read_good(write_npy("a.npy", 1, F4_2x3, six, sizeof six), NPY_FLOATS);
    cr_assert_eq(a.dtype, NPY_F32);
    cr_assert_eq(a.rank, 2);
    cr_assert_eq(a.shape[0], 2);
    cr_assert_eq(a.shape[1], 3);
    cr_assert_eq(a.count, 6);
    float out[6];
    npy_to_f32(&a, out);
    cr_assert_arr_eq(out, six, sizeof six);
    npy_array_free(&a);
}

Test(npy, reads_f8_version_2_and_f2_version_3) {
    const double d[3] = {0.1, -1e30, 2.0};
    npy_array a =
        read_good(write_npy("d.npy", 2, "{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }",
                            d, sizeof d),
                  NPY_FLOATS);
    float f[3];
    npy_to_f32(&a, f);
    cr_assert_eq(a.dtype, NPY_F64);
    cr_assert_eq(f[0], 0.1f);
    cr_assert_eq(f[1], -1e30f);
    npy_array_free(&a);

    const uint16_t h[4] = {0x3c00, 0xc000, 0x0001, 0x7bff}; /* 1, -2, 2^-24, 65504 */
    a = read_good(write_npy("h.npy", 3,
                            "{'descr': '<f2', 'fortran_order': False, 'shape': (2, 2), }", h,
                            sizeof h),
                  NPY_FLOATS);
    float g[4];
    npy_to_f32(&a, g);
    cr_assert_eq(a.dtype, NPY_F16);
    cr_assert_eq(g[0], 1.0f);
    cr_assert_eq(g[1], -2.0f);
    cr_assert_eq(g[2], 5.9604644775390625e-8f);
    cr_assert_eq(g[3], 65504.0f);
    npy_array_free(&a);
}

Test(npy, reads_integers) {
    const int32_t i4[3] = {0, -5, 2147483647};
    const int64_t i8[2] = {0, -((int64_t)1 << 40)};
    int64_t out[3];
    npy_array a = read_good(write_npy("i4.npy", 1,
                                      "{'descr': '<i4', 'fortran_order': False, 'shape': (3,), }",
                                      i4, sizeof i4),
                            NPY_INTEGERS);
    npy_to_i64(&a, out);
    cr_assert_eq(out[1], -5);
    cr_assert_eq(out[2], 2147483647);
    npy_array_free(&a);
    a = read_good(write_npy("i8.npy", 1,
                            "{'descr': '<i8', 'fortran_order': False, 'shape': (2,), }", i8,
                            sizeof i8),
                  NPY_INTEGERS);
    npy_to_i64(&a, out);
    cr_assert_eq(out[1], -((int64_t)1 << 40));
    npy_array_free(&a);
}

Test(npy, reads_empty_and_scalar_arrays) {
    npy_array a = read_good(
        write_npy("e.npy", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (0, 5, 3), }",
                  NULL, 0),
        NPY_FLOATS);
    cr_assert_eq(a.rank, 3);
    cr_assert_eq(a.count, 0);
    npy_array_free(&a);
    /* A zero dimension makes any other size harmless, however large. */
    a = read_good(write_npy("z.npy", 1,
                            "{'descr': '<f4', 'fortran_order': False, "
                            "'shape': (9223372036854775807, 0), }",
                            NULL, 0),
                  NPY_FLOATS);
    cr_assert_eq(a.count, 0);
    npy_array_free(&a);
    a = read_good(
        write_npy("s.npy", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (), }", six, 4),
        NPY_FLOATS);
    cr_assert_eq(a.rank, 0);
    cr_assert_eq(a.count, 1);
    npy_array_free(&a);
}

Test(npy, accepts_header_variations) {
    /* Other key order, double quotes, no trailing comma, Python 2 longs,
     * an unpadded header. */
    const char header[] = "{\"shape\":(2L,3L),\"fortran_order\":False,\"descr\":\"<f4\"}";
    unsigned char image[256];
    size_t n = 0;
    memcpy(image, "\x93NUMPY\x01\x00", 8);
    image[8] = (unsigned char)(sizeof header - 1);
    image[9] = 0;
    memcpy(image + 10, header, sizeof header - 1);
    n = 10 + sizeof header - 1;
    memcpy(image + n, six, sizeof six);
    npy_array a = read_good(write_bytes("v.npy", image, n + sizeof six), NPY_FLOATS);
    cr_assert_eq(a.count, 6);
    npy_array_free(&a);
}

Test(npy, writer_round_trips_with_64_byte_aligned_data) {
    const char *path = path_for("w.npy");
    const int64_t shape[4] = {2, 1, 3, 1};
    FILE *f = fopen(path, "wb");
    char err[256];
    cr_assert_eq(npy_write_f32(f, six, 4, shape, err, sizeof err), NPY_OK);
    fclose(f);
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    cr_assert_eq((st.st_size - (off_t)sizeof six) % 64, 0, "data starts at %lld",
                 (long long)(st.st_size - (off_t)sizeof six));
    npy_array a = read_good(path, NPY_F32);
    cr_assert_eq(a.rank, 4);
    cr_assert_arr_eq(a.shape, shape, sizeof shape);
    float out[6];
    npy_to_f32(&a, out);
    cr_assert_arr_eq(out, six, sizeof six);
    npy_array_free(&a);
}

Test(npy, writer_handles_rank_0_1_and_empty) {
    const int64_t one[1] = {0};
    const char *path = path_for("w1.npy");
    FILE *f = fopen(path, "wb");
    char err[256];
    cr_assert_eq(npy_write_f32(f, six, 1, one, err, sizeof err), NPY_OK);
    fclose(f);
    npy_array a = read_good(path, NPY_F32);
    cr_assert_eq(a.rank, 1);
    cr_assert_eq(a.count, 0);
    npy_array_free(&a);
    path = path_for("w0.npy");
    f = fopen(path, "wb");
    cr_assert_eq(npy_write_f32(f, six, 0, one, err, sizeof err), NPY_OK);
    fclose(f);
    a = read_good(path, NPY_F32);
    cr_assert_eq(a.rank, 0);
    cr_assert_eq(a.count, 1);
    npy_array_free(&a);
}

/* ---- malformed, truncated and lying files --------------------------- */

Test(npy, refuses_a_missing_file_and_a_directory) {
    char missing[128];
    snprintf(missing, sizeof missing, "%s/none.npy", dir);
    expect_error(missing, NPY_FLOATS, NPY_ERROR_IO, "cannot open");
    expect_error(dir, NPY_FLOATS, NPY_ERROR_IO, "not a regular file");
}

Test(npy, refuses_a_shape_that_claims_more_data_than_the_file_has) {
    expect_format_error(F4_2x3, six, 20, "needs 24 data bytes but the file has 20");
    expect_format_error(F4_2x3, six, 0, "needs 24 data bytes but the file has 0");
}

Test(npy, refuses_trailing_data) {
    expect_format_error("{'descr': '<f4', 'fortran_order': False, 'shape': (5,), }", six, 24,
                        "needs 20 data bytes but the file has 24");
}

Test(npy, refuses_bad_magic_and_versions) {
    unsigned char image[512];
    size_t n = build(image, sizeof image, 1, F4_2x3, six, sizeof six);
    image[1] = 'n';
    expect_error(write_bytes("m.npy", image, n), NPY_FLOATS, NPY_ERROR_FORMAT, "bad magic");
    image[1] = 'N';
    image[6] = 4;
    expect_error(write_bytes("v4.npy", image, n), NPY_FLOATS, NPY_ERROR_FORMAT,
                 "format version 4.0 is not supported");
    image[6] = 1;
    image[7] = 1;
    expect_error(write_bytes("v11.npy", image, n), NPY_FLOATS, NPY_ERROR_FORMAT,
                 "format version 1.1");
    expect_error(write_bytes("empty.npy", "", 0), NPY_FLOATS, NPY_ERROR_FORMAT,
                 "file ends inside its magic bytes");
}

Test(npy, refuses_a_header_length_past_the_end) {
    unsigned char image[512];
    size_t n = build(image, sizeof image, 1, F4_2x3, six, sizeof six);
    image[8] = 0xff;
    image[9] = 0xff;
    expect_error(write_bytes("h1.npy", image, n), NPY_FLOATS, NPY_ERROR_FORMAT,
                 "header length 65535 runs past the end");
    n = build(image, sizeof image, 2, F4_2x3, six, sizeof six);
    memset(image + 8, 0xff, 4);
    expect_error(write_bytes("h2.npy", image, n), NPY_FLOATS, NPY_ERROR_FORMAT,
                 "header length 4294967295 runs past the end");
    expect_error(write_bytes("h3.npy", image, 9), NPY_FLOATS, NPY_ERROR_FORMAT,
                 "file ends inside its header length");
}

Test(npy, refuses_every_truncation_of_a_good_file) {
    unsigned char image[512];
    size_t n = build(image, sizeof image, 1, F4_2x3, six, sizeof six);
    for (size_t length = 0; length < n; ++length) {
        npy_array a;
        char err[512];
        const char *path = write_bytes("t.npy", image, length);
        cr_assert_eq(npy_read(path, NPY_FLOATS, &a, err, sizeof err), NPY_ERROR_FORMAT,
                     "a file cut to %zu bytes was accepted", length);
        unlink(paths[--path_count]);
    }
}

Test(npy, refuses_headers_that_are_not_the_dict) {
    expect_format_error("[1, 2, 3]", NULL, 0, "not a Python dict literal");
    expect_format_error("", NULL, 0, "not a Python dict literal");
    expect_format_error("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), } x", six,
                        sizeof six, "characters after its dict");
    expect_format_error("{'descr': '<f4' 'fortran_order': False, 'shape': (2, 3)}", six, sizeof six,
                        "expected ',' or '}'");
    expect_format_error("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3)", six, sizeof six,
                        "header");
    expect_format_error("{'descr' '<f4'}", NULL, 0, "expected ':'");
    expect_format_error("{descr: '<f4'}", NULL, 0, "a key is not a string");
}

Test(npy, refuses_missing_duplicate_and_unknown_keys) {
    expect_format_error("{'fortran_order': False, 'shape': (2, 3), }", six, sizeof six,
                        "no 'descr' key");
    expect_format_error("{'descr': '<f4', 'shape': (2, 3), }", six, sizeof six,
                        "no 'fortran_order' key");
    expect_format_error("{'descr': '<f4', 'fortran_order': False, }", six, sizeof six,
                        "no 'shape' key");
    expect_format_error("{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, "
                        "'shape': (2, 3), }",
                        six, sizeof six, "key 'descr' appears twice");
    expect_format_error("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), 'x': 1}", six,
                        sizeof six, "unexpected key 'x'");
}

Test(npy, refuses_fortran_order) {
    expect_format_error("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }", six,
                        sizeof six, "Fortran order");
    expect_format_error("{'descr': '<f4', 'fortran_order': 0, 'shape': (2, 3), }", six, sizeof six,
                        "not True or False");
}

Test(npy, refuses_big_endian_by_name) {
    expect_format_error("{'descr': '>f4', 'fortran_order': False, 'shape': (2, 3), }", six,
                        sizeof six,
                        "dtype '>f4' is big-endian; efla reads little-endian '<f4', '<f2', "
                        "'<f8'");
    expect_error(
        write_npy("bi.npy", 1, "{'descr': '>i8', 'fortran_order': False, 'shape': (1,)}", six, 8),
        NPY_INTEGERS, NPY_ERROR_FORMAT,
        "dtype '>i8' is big-endian; efla reads little-endian '<i4', '<i8'");
}

Test(npy, refuses_unsupported_dtypes) {
    expect_format_error("{'descr': '<c8', 'fortran_order': False, 'shape': (3,), }", six,
                        sizeof six, "dtype '<c8' is not supported");
    expect_format_error("{'descr': '|u1', 'fortran_order': False, 'shape': (4,), }", six, 4,
                        "dtype '|u1' is not supported");
    expect_format_error("{'descr': '<i4', 'fortran_order': False, 'shape': (6,), }", six,
                        sizeof six, "efla reads '<f4', '<f2', '<f8'");
    expect_format_error("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (6,), }", six,
                        sizeof six, "structured dtypes are not supported");
    expect_error(write_npy("f.npy", 1, F4_2x3, six, sizeof six), NPY_INTEGERS, NPY_ERROR_FORMAT,
                 "dtype '<f4' is not supported here; efla reads '<i4', '<i8'");
}

Test(npy, refuses_bad_shapes) {
    expect_format_error("{'descr': '<f4', 'fortran_order': False, 'shape': [2, 3], }", six,
                        sizeof six, "'shape' is not a tuple");
    expect_format_error("{'descr': '<f4', 'fortran_order': False, 'shape': (6), }", six, sizeof six,
                        "'shape' is not a tuple");
    expect_format_error("{'descr': '<f4', 'fortran_order': False, 'shape': (-1,), }", six,
                        sizeof six, "non-negative integers");
    expect_format_error("{'descr': '<f4', 'fortran_order': False, 'shape': (2.0,), }", six,
                        sizeof six, "well-formed tuple");
    expect_format_error("{'descr': '<f4', 'fortran_order': False, "
                        "'shape': (99999999999999999999,), }",
                        six, sizeof six, "does not fit in 64 bits");
    char header[512];
    int used =
        snprintf(header, sizeof header, "{'descr': '<f4', 'fortran_order': False, 'shape': (");
    for (int i = 0; i < NPY_MAX_RANK + 1; ++i)
        used += snprintf(header + used, 8, "1, ");
    snprintf(header + used, sizeof header - (size_t)used, "), }");
    expect_format_error(header, six, 4, "more than 32 dimensions");
}

Test(npy, refuses_absurd_shapes_that_overflow_64_bits) {
    expect_format_error("{'descr': '<f4', 'fortran_order': False, "
                        "'shape': (4294967296, 4294967296), }",
                        six, sizeof six, "more elements than fit in 64 bits");
    expect_format_error("{'descr': '<f4', 'fortran_order': False, "
                        "'shape': (4611686018427387904,), }",
                        six, sizeof six, "needs more than 2^64 bytes");
    expect_format_error("{'descr': '<f8', 'fortran_order': False, "
                        "'shape': (1048576, 1048576, 1048576), }",
                        six, sizeof six, "needs 9223372036854775808 data bytes");
}

Test(npy, survives_every_single_byte_change_of_the_header) {
    unsigned char image[512];
    size_t n = build(image, sizeof image, 1, F4_2x3, six, sizeof six);
    static const unsigned char replacements[] = {0, ' ', '\'', '(', ')', ',', '9', '{', '}', 0xff};
    for (size_t at = 0; at < n - sizeof six; ++at) {
        for (size_t r = 0; r < sizeof replacements; ++r) {
            unsigned char copy[512];
            memcpy(copy, image, n);
            copy[at] = replacements[r];
            const char *path = write_bytes("x.npy", copy, n);
            npy_array a;
            char err[512];
            if (npy_read(path, NPY_FLOATS, &a, err, sizeof err) == NPY_OK)
                npy_array_free(&a);
            else
                cr_assert_neq(err[0], '\0');
            unlink(paths[--path_count]);
        }
    }
}
