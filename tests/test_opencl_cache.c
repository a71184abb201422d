/*
 * The OpenCL backend's on-disk program-binary cache.
 *
 * cache_file: backends/opencl/opencl_cache.c compiled into this program
 * (plain file handling, no OpenCL): round trip, keys, corruption, location.
 * cache_backend: through the library on a real OpenCL device (skipped when
 * there is none, unless EFLA_REQUIRE_BACKENDS names opencl): a second
 * context loads the binary instead of rebuilding it, other build options
 * miss, a corrupt file is rebuilt and replaced, EFLA_OPENCL_CACHE=0 writes
 * nothing. Every case builds at most one new program (PoCL compiles take
 * seconds) and runs one tiny recurrent forward.
 */
#include "backends/opencl/opencl_cache.h"

#include "efla/efla.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- helpers ---------------------------------------------------------- */

static void temporary_directory(char *out, size_t size) {
    const char *base = getenv("TMPDIR");
    snprintf(out, size, "%s/efla-cl-cache-XXXXXX", base && *base ? base : "/tmp");
    cr_assert_not_null(mkdtemp(out), "mkdtemp failed");
}

/* Number of entries in `dir` (-1 if it does not exist); the first name
 * ending in .clbin goes to `first`. */
static int list_directory(const char *dir, char *first, size_t size) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    int count = 0;
    if (first) first[0] = '\0';
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.') continue;
        count++;
        size_t length = strlen(e->d_name);
        if (first && !first[0] && length > 6 && strcmp(e->d_name + length - 6, ".clbin") == 0)
            snprintf(first, size, "%s/%s", dir, e->d_name);
    }
    closedir(d);
    return count;
}

static void remove_tree(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    char path[2048];
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.') continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        struct stat st;
        if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
            remove_tree(path);
        else
            unlink(path);
    }
    closedir(d);
    rmdir(dir);
}

static void write_bytes(const char *path, const void *data, size_t size) {
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f, "cannot write %s", path);
    cr_assert_eq(fwrite(data, 1, size, f), size);
    fclose(f);
}

static size_t read_bytes(const char *path, unsigned char *out, size_t capacity) {
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "cannot read %s", path);
    size_t n = fread(out, 1, capacity, f);
    fclose(f);
    return n;
}

/* ---- the file format, without OpenCL ------------------------------------ */

static const unsigned char sample[] = "pretend this is a device binary \x01\x02\x03";

Test(cache_file, round_trip_and_no_temporaries) {
    char dir[512], nested[600], file[800];
    temporary_directory(dir, sizeof dir);
    snprintf(nested, sizeof nested, "%s/a/b", dir);
    cr_assert(efla_cl_cache_file(nested, "key one", file, sizeof file));
    cr_assert(efla_cl_cache_store(nested, file, "key one", sample, sizeof sample));
    unsigned char *binary = NULL;
    size_t size = 0;
    cr_assert(efla_cl_cache_load(file, "key one", &binary, &size));
    cr_expect_eq(size, sizeof sample);
    cr_expect_arr_eq(binary, sample, sizeof sample);
    free(binary);
    cr_expect_eq(list_directory(nested, NULL, 0), 1, "a temporary file was left behind");
    remove_tree(dir);
}

Test(cache_file, keys_name_files_and_must_match) {
    char dir[512], a[800], b[800], c[800];
    temporary_directory(dir, sizeof dir);
    /* Keys differ when any part (options, source hash, driver...) does. */
    cr_assert(efla_cl_cache_file(dir, "options -DEFLA_STORAGE=1\nsource 0123", a, sizeof a));
    cr_assert(efla_cl_cache_file(dir, "options -DEFLA_STORAGE=2\nsource 0123", b, sizeof b));
    cr_assert(efla_cl_cache_file(dir, "options -DEFLA_STORAGE=1\nsource 0124", c, sizeof c));
    cr_expect_str_neq(a, b);
    cr_expect_str_neq(a, c);
    cr_assert(efla_cl_cache_store(dir, a, "key A", sample, sizeof sample));
    unsigned char *binary = NULL;
    size_t size = 0;
    /* Same file, different key (a hash collision or a stale file). */
    cr_expect_not(efla_cl_cache_load(a, "key B", &binary, &size));
    cr_expect_not(efla_cl_cache_load(b, "key A", &binary, &size), "missing file");
    remove_tree(dir);
}

Test(cache_file, corrupt_files_are_ignored) {
    char dir[512], file[800];
    temporary_directory(dir, sizeof dir);
    cr_assert(efla_cl_cache_file(dir, "k", file, sizeof file));
    cr_assert(efla_cl_cache_store(dir, file, "k", sample, sizeof sample));
    unsigned char bytes[4096];
    const size_t n = read_bytes(file, bytes, sizeof bytes);
    unsigned char *binary = NULL;
    size_t size = 0;

    bytes[n - 3] ^= 0x40; /* a flipped bit in the binary */
    write_bytes(file, bytes, n);
    cr_expect_not(efla_cl_cache_load(file, "k", &binary, &size), "checksum not checked");
    bytes[n - 3] ^= 0x40;
    write_bytes(file, bytes, n - 5); /* truncated */
    cr_expect_not(efla_cl_cache_load(file, "k", &binary, &size), "truncation not seen");
    bytes[n] = 0;
    write_bytes(file, bytes, n + 1); /* trailing garbage */
    cr_expect_not(efla_cl_cache_load(file, "k", &binary, &size), "trailing bytes not seen");
    write_bytes(file, "garbage", 7);
    cr_expect_not(efla_cl_cache_load(file, "k", &binary, &size), "garbage accepted");
    write_bytes(file, bytes, n); /* intact again */
    cr_expect(efla_cl_cache_load(file, "k", &binary, &size));
    free(binary);
    remove_tree(dir);
}

Test(cache_file, location_and_switch) {
    char dir[1024];
    setenv("HOME", "/home/someone", 1);
    unsetenv("XDG_CACHE_HOME");
    unsetenv("EFLA_OPENCL_CACHE_DIR");
    unsetenv("EFLA_OPENCL_CACHE");
    cr_assert(efla_cl_cache_directory(dir, sizeof dir));
    cr_expect_str_eq(dir, "/home/someone/.cache/efla");
    setenv("XDG_CACHE_HOME", "/xdg", 1);
    cr_assert(efla_cl_cache_directory(dir, sizeof dir));
    cr_expect_str_eq(dir, "/xdg/efla");
    setenv("EFLA_OPENCL_CACHE_DIR", "/explicit/dir", 1);
    cr_assert(efla_cl_cache_directory(dir, sizeof dir));
    cr_expect_str_eq(dir, "/explicit/dir");
    setenv("EFLA_OPENCL_CACHE", "0", 1);
    cr_expect_not(efla_cl_cache_directory(dir, sizeof dir), "EFLA_OPENCL_CACHE=0 must turn it off");
    setenv("EFLA_OPENCL_CACHE", "1", 1);
    cr_expect(efla_cl_cache_directory(dir, sizeof dir));
}

/* ---- through the library ------------------------------------------------ */

static bool opencl_required(void) {
    const char *required = getenv("EFLA_REQUIRE_BACKENDS");
    return required && strstr(required, "opencl") != NULL;
}

static void require_opencl(void) {
    if (efla_backend_probe(EFLA_BACKEND_OPENCL) == EFLA_SUCCESS) return;
    if (opencl_required())
        cr_assert_fail("EFLA_REQUIRE_BACKENDS names opencl, which is unavailable: %s",
                       efla_last_error_message());
    cr_skip_test("opencl unavailable: %s", efla_last_error_message());
}

enum { T = 3, DK = 4, DV = 3 };

/* One tiny f32 recurrent forward on a fresh context; returns out[0..]. */
static void run_forward(float out[T * DV]) {
    efla_context_create_info info = EFLA_CONTEXT_CREATE_INFO_INIT;
    info.backend = EFLA_BACKEND_OPENCL;
    efla_context context;
    cr_assert_eq(efla_context_create(&info, &context), EFLA_SUCCESS, "%s",
                 efla_last_error_message());
    float q[T * DK], k[T * DK], v[T * DV], beta[T];
    for (int i = 0; i < T * DK; ++i) {
        q[i] = (float)((i * 7) % 5) - 2.0f;
        k[i] = (float)((i * 3) % 7) * 0.25f - 0.5f;
    }
    for (int i = 0; i < T * DV; ++i)
        v[i] = (float)(i % 4) - 1.5f;
    for (int i = 0; i < T; ++i)
        beta[i] = 0.25f + 0.25f * (float)i;
    efla_buffer bq, bk, bv, bb, bo;
    cr_assert_eq(efla_buffer_create(context, sizeof q, &bq), EFLA_SUCCESS);
    cr_assert_eq(efla_buffer_create(context, sizeof k, &bk), EFLA_SUCCESS);
    cr_assert_eq(efla_buffer_create(context, sizeof v, &bv), EFLA_SUCCESS);
    cr_assert_eq(efla_buffer_create(context, sizeof beta, &bb), EFLA_SUCCESS);
    cr_assert_eq(efla_buffer_create(context, sizeof v, &bo), EFLA_SUCCESS);
    cr_assert_eq(efla_buffer_upload(bq, 0, q, sizeof q), EFLA_SUCCESS);
    cr_assert_eq(efla_buffer_upload(bk, 0, k, sizeof k), EFLA_SUCCESS);
    cr_assert_eq(efla_buffer_upload(bv, 0, v, sizeof v), EFLA_SUCCESS);
    cr_assert_eq(efla_buffer_upload(bb, 0, beta, sizeof beta), EFLA_SUCCESS);
    const int64_t qk[4] = {1, T, 1, DK}, vo[4] = {1, T, 1, DV}, bs[3] = {1, T, 1};
    efla_forward_desc desc = EFLA_FORWARD_DESC_INIT;
    desc.q = efla_tensor_contiguous(bq, 0, EFLA_DTYPE_F32, 4, qk);
    desc.k = efla_tensor_contiguous(bk, 0, EFLA_DTYPE_F32, 4, qk);
    desc.v = efla_tensor_contiguous(bv, 0, EFLA_DTYPE_F32, 4, vo);
    desc.beta = efla_tensor_contiguous(bb, 0, EFLA_DTYPE_F32, 3, bs);
    desc.out = efla_tensor_contiguous(bo, 0, EFLA_DTYPE_F32, 4, vo);
    desc.algorithm = EFLA_ALGORITHM_RECURRENT;
    cr_assert_eq(efla_forward(context, &desc), EFLA_SUCCESS, "%s", efla_last_error_message());
    cr_assert_eq(efla_buffer_download(bo, 0, out, sizeof v), EFLA_SUCCESS, "%s",
                 efla_last_error_message());
    efla_buffer_destroy(bq), efla_buffer_destroy(bk), efla_buffer_destroy(bv);
    efla_buffer_destroy(bb), efla_buffer_destroy(bo);
    efla_context_destroy(context);
}

static void use_cache_dir(char *dir, size_t size) {
    temporary_directory(dir, size);
    setenv("EFLA_OPENCL_CACHE_DIR", dir, 1);
    unsetenv("EFLA_OPENCL_CACHE");
    unsetenv("EFLA_OPENCL_BUILD_OPTIONS");
}

static bool same_file_version(const struct stat *a, const struct stat *b) {
    return a->st_ino == b->st_ino && a->st_size == b->st_size &&
           a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

Test(cache_backend, second_context_loads_the_binary) {
    require_opencl();
    char dir[512], file[1024];
    use_cache_dir(dir, sizeof dir);
    float first[T * DV], second[T * DV];
    run_forward(first);
    cr_assert_eq(list_directory(dir, file, sizeof file), 1, "expected one cached program");
    struct stat before, after;
    cr_assert_eq(stat(file, &before), 0);
    run_forward(second);
    cr_assert_eq(stat(file, &after), 0);
    cr_expect(same_file_version(&before, &after), "the cached binary was rebuilt and rewritten");
    cr_expect_eq(list_directory(dir, NULL, 0), 1);
    cr_expect_arr_eq(first, second, sizeof first, "cached binary gives other results");
    remove_tree(dir);
}

Test(cache_backend, other_build_options_miss) {
    require_opencl();
    char dir[512];
    use_cache_dir(dir, sizeof dir);
    float out[T * DV];
    run_forward(out);
    cr_assert_eq(list_directory(dir, NULL, 0), 1);
    setenv("EFLA_OPENCL_BUILD_OPTIONS", "-DEFLA_CACHE_TEST_OPTION=1", 1);
    run_forward(out);
    cr_expect_eq(list_directory(dir, NULL, 0), 2, "other options must be another cache entry");
    remove_tree(dir);
}

Test(cache_backend, corrupt_file_is_rebuilt) {
    require_opencl();
    char dir[512], file[1024];
    use_cache_dir(dir, sizeof dir);
    float expected[T * DV], out[T * DV];
    run_forward(expected);
    cr_assert_eq(list_directory(dir, file, sizeof file), 1);
    unsigned char bytes[64];
    cr_assert_eq(read_bytes(file, bytes, sizeof bytes), sizeof bytes);
    memset(bytes + 40, 0xee, sizeof bytes - 40); /* a damaged header and key */
    write_bytes(file, bytes, sizeof bytes);
    run_forward(out);
    cr_expect_arr_eq(out, expected, sizeof out);
    struct stat st;
    cr_assert_eq(stat(file, &st), 0);
    cr_expect_gt(st.st_size, (off_t)sizeof bytes, "the corrupt file was not replaced");
    unsigned char head[8];
    cr_assert_eq(read_bytes(file, head, sizeof head), sizeof head);
    cr_expect_arr_eq(head, "EFLACLB1", 8);
    remove_tree(dir);
}

Test(cache_backend, switched_off_writes_nothing) {
    require_opencl();
    char dir[512], inner[600];
    use_cache_dir(dir, sizeof dir);
    snprintf(inner, sizeof inner, "%s/inner", dir);
    setenv("EFLA_OPENCL_CACHE_DIR", inner, 1);
    setenv("EFLA_OPENCL_CACHE", "0", 1);
    float out[T * DV];
    run_forward(out);
    for (int i = 0; i < T * DV; ++i)
        cr_expect(isfinite(out[i]));
    cr_expect_eq(list_directory(inner, NULL, 0), -1, "EFLA_OPENCL_CACHE=0 created the directory");
    remove_tree(dir);
}
