/*
 * The on-disk cache of OpenCL program binaries. Pure file handling, no
 * OpenCL calls, so that it can be tested alone.
 *
 * Location: $EFLA_OPENCL_CACHE_DIR, else $XDG_CACHE_HOME/efla, else
 * $HOME/.cache/efla. EFLA_OPENCL_CACHE=0 turns the cache off. A file is
 * named after a hash of its key and holds the full key, the binary's size
 * and checksum, then the binary; a file that does not match in every
 * respect is ignored (and later replaced). Files are written to a
 * temporary name and renamed into place, so readers never see half a file.
 */
#ifndef EFLA_OPENCL_CACHE_H
#define EFLA_OPENCL_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* 64-bit FNV-1a, continuing from `seed` (use EFLA_CL_HASH_SEED to start). */
#define EFLA_CL_HASH_SEED 0xcbf29ce484222325ull
uint64_t efla_cl_hash(const void *data, size_t size, uint64_t seed);

/* The cache directory (not created yet); false when the cache is off or
 * no location is known. */
bool efla_cl_cache_directory(char *out, size_t size);

/* "<dir>/<16 hex digits of hash(key)>.clbin"; false if it does not fit. */
bool efla_cl_cache_file(const char *dir, const char *key, char *out, size_t size);

/* Reads the binary stored under `key` into a malloc'd block (free() it);
 * false when the file is missing, unreadable or does not match. */
bool efla_cl_cache_load(const char *file, const char *key, unsigned char **out_binary,
                        size_t *out_size);

/* Writes atomically (temporary file + rename), creating the directory;
 * false on any failure (the cache is an optimisation: callers go on). */
bool efla_cl_cache_store(const char *dir, const char *file, const char *key,
                         const unsigned char *binary, size_t size);

#endif
