#include "backends/opencl/opencl_cache.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char file_magic[8] = {'E', 'F', 'L', 'A', 'C', 'L', 'B', '1'};

/* The header that precedes the key and the binary. */
typedef struct cache_header {
    char magic[8];
    uint64_t key_size;
    uint64_t binary_size;
    uint64_t binary_hash;
} cache_header;

uint64_t efla_cl_hash(const void *data, size_t size, uint64_t seed) {
    const unsigned char *bytes = data;
    uint64_t hash = seed;
    for (size_t i = 0; i < size; ++i) {
        hash ^= bytes[i];
        hash *= 0x100000001b3ull;
    }
    return hash;
}

bool efla_cl_cache_directory(char *out, size_t size) {
    const char *enabled = getenv("EFLA_OPENCL_CACHE");
    if (enabled && strcmp(enabled, "0") == 0) return false;
    const char *dir = getenv("EFLA_OPENCL_CACHE_DIR");
    int written;
    if (dir && *dir) {
        written = snprintf(out, size, "%s", dir);
    } else if ((dir = getenv("XDG_CACHE_HOME")) && *dir) {
        written = snprintf(out, size, "%s/efla", dir);
    } else if ((dir = getenv("HOME")) && *dir) {
        written = snprintf(out, size, "%s/.cache/efla", dir);
    } else {
        return false;
    }
    return written > 0 && (size_t)written < size;
}

bool efla_cl_cache_file(const char *dir, const char *key, char *out, size_t size) {
    uint64_t hash = efla_cl_hash(key, strlen(key), EFLA_CL_HASH_SEED);
    int written = snprintf(out, size, "%s/%016llx.clbin", dir, (unsigned long long)hash);
    return written > 0 && (size_t)written < size;
}

static bool read_exact(FILE *f, void *out, size_t size) { return fread(out, 1, size, f) == size; }

bool efla_cl_cache_load(const char *file, const char *key, unsigned char **out_binary,
                        size_t *out_size) {
    FILE *f = fopen(file, "rb");
    if (!f) return false;
    cache_header header;
    size_t key_size = strlen(key);
    char *stored_key = NULL;
    unsigned char *binary = NULL;
    bool ok =
        read_exact(f, &header, sizeof header) &&
        memcmp(header.magic, file_magic, sizeof file_magic) == 0 && header.key_size == key_size &&
        header.binary_size > 0 && header.binary_size < ((uint64_t)1 << 32) &&
        (stored_key = malloc(key_size + 1)) && read_exact(f, stored_key, key_size) &&
        memcmp(stored_key, key, key_size) == 0 && (binary = malloc((size_t)header.binary_size)) &&
        read_exact(f, binary, (size_t)header.binary_size) &&
        fgetc(f) == EOF /* nothing trails the binary */ &&
        efla_cl_hash(binary, (size_t)header.binary_size, EFLA_CL_HASH_SEED) == header.binary_hash;
    fclose(f);
    free(stored_key);
    if (!ok) {
        free(binary);
        return false;
    }
    *out_binary = binary;
    *out_size = (size_t)header.binary_size;
    return true;
}

/* mkdir -p; existing directories are fine. */
static bool make_directories(const char *dir) {
    char path[4096];
    size_t length = strlen(dir);
    if (length == 0 || length >= sizeof path) return false;
    memcpy(path, dir, length + 1);
    for (size_t i = 1; i <= length; ++i) {
        if (path[i] != '/' && path[i] != '\0') continue;
        char saved = path[i];
        path[i] = '\0';
        if (mkdir(path, 0755) != 0 && errno != EEXIST) return false;
        path[i] = saved;
    }
    return true;
}

static bool write_file(const char *path, const char *key, const unsigned char *binary,
                       size_t size) {
    FILE *f = fopen(path, "wb");
    if (!f) return false;
    cache_header header;
    memset(&header, 0, sizeof header);
    memcpy(header.magic, file_magic, sizeof file_magic);
    header.key_size = strlen(key);
    header.binary_size = size;
    header.binary_hash = efla_cl_hash(binary, size, EFLA_CL_HASH_SEED);
    bool ok = fwrite(&header, sizeof header, 1, f) == 1 &&
              fwrite(key, 1, (size_t)header.key_size, f) == header.key_size &&
              fwrite(binary, 1, size, f) == size;
    ok = (fclose(f) == 0) && ok;
    return ok;
}

bool efla_cl_cache_store(const char *dir, const char *file, const char *key,
                         const unsigned char *binary, size_t size) {
    static atomic_uint counter; /* distinct temporary names within a process */
    if (!make_directories(dir)) return false;
    char temporary[4200];
    int written = snprintf(temporary, sizeof temporary, "%s.tmp.%ld.%u", file, (long)getpid(),
                           atomic_fetch_add(&counter, 1u));
    if (written <= 0 || (size_t)written >= sizeof temporary) return false;
    if (!write_file(temporary, key, binary, size) || rename(temporary, file) != 0) {
        unlink(temporary);
        return false;
    }
    return true;
}
