/* realpath() is an XSI function. */
#define _XOPEN_SOURCE 700

#include "outfile.h"

#include "cli_util.h"
#include "npy.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Splits a path into a malloc'd directory ("." when none) and its name. */
static char *directory_of(const char *path, const char **name) {
    const char *slash = strrchr(path, '/');
    *name = slash ? slash + 1 : path;
    if (!slash) return strdup(".");
    size_t length = slash == path ? 1 : (size_t)(slash - path);
    char *dir = malloc(length + 1);
    if (dir) {
        memcpy(dir, path, length);
        dir[length] = '\0';
    }
    return dir;
}

/* "<real directory>/<name>", or NULL when the directory does not resolve. */
static char *resolved_entry(const char *path) {
    const char *name;
    char *dir = directory_of(path, &name);
    char *real = dir ? realpath(dir, NULL) : NULL;
    char *entry = NULL;
    if (real && (entry = malloc(strlen(real) + strlen(name) + 2)))
        sprintf(entry, "%s/%s", real, name);
    free(real);
    free(dir);
    return entry;
}

bool same_output_path(const char *a, const char *b) {
    if (strcmp(a, b) == 0) return true;
    char *ra = resolved_entry(a), *rb = resolved_entry(b);
    bool same = ra && rb && strcmp(ra, rb) == 0;
    free(ra);
    free(rb);
    return same;
}

/* The mode a new file gets: the target's if it exists, else 0666 - umask. */
static mode_t output_mode(const char *path) {
    struct stat st;
    if (stat(path, &st) == 0) return st.st_mode & 07777;
    mode_t mask = umask(0);
    umask(mask);
    return 0666 & ~mask;
}

static int check_target(const char *path, const char **name, char **dir) {
    struct stat st;
    *dir = directory_of(path, name);
    if (!*dir) {
        cli_error("out of memory");
        return CLI_EXIT_RUNTIME;
    }
    if (!**name || (stat(path, &st) == 0 && S_ISDIR(st.st_mode))) {
        cli_error("%s: is a directory; an output must name a file", path);
        return CLI_EXIT_USAGE;
    }
    return CLI_EXIT_OK;
}

static int open_temporary(staged_output *out, const char *dir, const char *name, FILE **file) {
    out->temp_path = malloc(strlen(dir) + strlen(name) + 16);
    if (!out->temp_path) {
        cli_error("out of memory");
        return CLI_EXIT_RUNTIME;
    }
    sprintf(out->temp_path, "%s/.%s.XXXXXX", dir, name);
    int fd = mkstemp(out->temp_path);
    if (fd < 0) {
        cli_error("%s: cannot create a file in '%s': %s", out->path, dir, strerror(errno));
        free(out->temp_path);
        out->temp_path = NULL;
        return CLI_EXIT_USAGE;
    }
    if (fchmod(fd, output_mode(out->path)) != 0 || !(*file = fdopen(fd, "wb"))) {
        cli_error("%s: cannot write: %s", out->temp_path, strerror(errno));
        close(fd);
        return CLI_EXIT_USAGE;
    }
    return CLI_EXIT_OK;
}

int staged_write_npy(staged_output *out, const char *path, const float *data, uint32_t rank,
                     const int64_t *shape) {
    const char *name;
    char *dir = NULL;
    FILE *file = NULL;
    out->path = path;
    out->temp_path = NULL;
    int code = check_target(path, &name, &dir);
    if (code == CLI_EXIT_OK) code = open_temporary(out, dir, name, &file);
    free(dir);
    if (code != CLI_EXIT_OK) return code;
    char err[256];
    npy_result result = npy_write_f32(file, data, rank, shape, err, sizeof err);
    if (fclose(file) != 0 && result == NPY_OK) {
        snprintf(err, sizeof err, "write failed: %s", strerror(errno));
        result = NPY_ERROR_IO;
    }
    if (result == NPY_OK) return CLI_EXIT_OK;
    cli_error("%s: %s", path, err);
    return CLI_EXIT_USAGE;
}

int staged_commit(staged_output *outputs, size_t count) {
    for (size_t i = 0; i < count; ++i) {
        if (!outputs[i].temp_path) continue;
        if (rename(outputs[i].temp_path, outputs[i].path) != 0) {
            cli_error("%s: cannot move the result into place: %s", outputs[i].path,
                      strerror(errno));
            return CLI_EXIT_USAGE;
        }
        free(outputs[i].temp_path);
        outputs[i].temp_path = NULL;
    }
    return CLI_EXIT_OK;
}

void staged_discard(staged_output *outputs, size_t count) {
    for (size_t i = 0; i < count; ++i) {
        if (!outputs[i].temp_path) continue;
        unlink(outputs[i].temp_path);
        free(outputs[i].temp_path);
        outputs[i].temp_path = NULL;
    }
}
