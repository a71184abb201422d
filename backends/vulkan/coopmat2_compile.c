/*
 * Build tool: compiles a GLSL compute shader that uses
 * GL_NV_cooperative_matrix2 to SPIR-V 1.6 (the least that extension
 * takes), through the glslang that the Slang shader compiler ships as a
 * library (libslang-glslang, in PyPI's slangpy wheel): no glslangValidator
 * packaged for Debian or PyPI compiles that extension yet. The library's entry point is Slang's
 * glslang_compile_1_2, whose request structure is mirrored below (Slang's
 * source/slang-glslang/slang-glslang.h).
 *
 *   coopmat2_compile LIBRARY INPUT.comp OUTPUT.spv DEPFILE [NAME=VALUE ...]
 *
 * The wrapper has no include handler and no macro options, so this tool
 * expands `#include "file"` lines itself (paths relative to the including
 * file) and puts a #define per NAME=VALUE after the #version line. DEPFILE
 * lists the files read, for the build system.
 */
#define _POSIX_C_SOURCE 200809L
#include <dlfcn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef void (*output_fn)(const void *data, size_t size, void *user);

typedef struct spirv_version {
    int major, minor, patch;
} spirv_version;

/* glslang_CompileRequest_1_2, field for field. */
typedef struct compile_request {
    size_t size_in_bytes;
    const char *source_path;
    const void *input_begin, *input_end;
    output_fn diagnostic;
    void *diagnostic_user;
    output_fn output;
    void *output_user;
    int stage; /* Slang's SlangStage: 6 is compute */
    unsigned action, optimization_level, debug_info_type;
    const char *spirv_target_name; /* NULL: from spirv */
    spirv_version spirv;
    const char *entry_point_name;
} compile_request;

#define STAGE_COMPUTE 6
#define ACTION_COMPILE_GLSL_TO_SPIRV 0u
#define MAX_DEPTH 8

typedef struct text {
    char *data;
    size_t size, capacity;
} text;

static void fail(const char *format, ...) {
    va_list args;
    va_start(args, format);
    fputs("coopmat2_compile: ", stderr);
    vfprintf(stderr, format, args);
    fputc('\n', stderr);
    va_end(args);
    exit(1);
}

static void append(text *t, const char *data, size_t size) {
    if (t->size + size + 1 > t->capacity) {
        t->capacity = (t->size + size + 1) * 2;
        t->data = realloc(t->data, t->capacity);
        if (!t->data) fail("out of memory");
    }
    memcpy(t->data + t->size, data, size);
    t->size += size;
    t->data[t->size] = '\0';
}

static char *read_file(const char *path) {
    FILE *file = fopen(path, "rb");
    if (!file) fail("cannot open %s", path);
    text t = {0};
    char buffer[4096];
    size_t n;
    while ((n = fread(buffer, 1, sizeof buffer, file)) > 0)
        append(&t, buffer, n);
    fclose(file);
    if (!t.data) append(&t, "", 0);
    return t.data;
}

/* The folder part of a path, with its slash ("" for none). */
static char *folder_of(const char *path) {
    const char *slash = strrchr(path, '/');
    size_t n = slash ? (size_t)(slash - path) + 1 : 0;
    char *folder = malloc(n + 1);
    if (!folder) fail("out of memory");
    memcpy(folder, path, n);
    folder[n] = '\0';
    return folder;
}

/* The quoted name of an `#include "name"` line, else NULL. */
static char *include_name(const char *line, size_t length) {
    const char *p = line, *end = line + length;
    while (p < end && (*p == ' ' || *p == '\t'))
        ++p;
    if (end - p < 8 || strncmp(p, "#include", 8) != 0) return NULL;
    const char *open = memchr(p, '"', (size_t)(end - p));
    const char *close = open ? memchr(open + 1, '"', (size_t)(end - open - 1)) : NULL;
    if (!close) return NULL;
    char *name = malloc((size_t)(close - open));
    if (!name) fail("out of memory");
    memcpy(name, open + 1, (size_t)(close - open - 1));
    name[close - open - 1] = '\0';
    return name;
}

static void expand(const char *path, int depth, text *out, FILE *deps) {
    if (depth > MAX_DEPTH) fail("%s: #include nested deeper than %d", path, MAX_DEPTH);
    char *source = read_file(path), *folder = folder_of(path);
    if (deps) fprintf(deps, " \\\n  %s", path);
    for (const char *line = source; *line;) {
        const char *newline = strchr(line, '\n');
        size_t length = newline ? (size_t)(newline - line) + 1 : strlen(line);
        char *name = include_name(line, length);
        if (name) {
            char *included = malloc(strlen(folder) + strlen(name) + 1);
            if (!included) fail("out of memory");
            strcat(strcpy(included, folder), name);
            expand(included, depth + 1, out, deps);
            free(included);
            free(name);
        } else {
            append(out, line, length);
        }
        line += length;
    }
    free(folder);
    free(source);
}

/* The source with a #define per NAME=VALUE argument after its #version line. */
static text with_defines(const text *source, int count, char **defines) {
    const char *version = strstr(source->data, "#version");
    const char *after = version ? strchr(version, '\n') : NULL;
    if (!after) fail("the shader has no #version line");
    text out = {0};
    append(&out, source->data, (size_t)(after - source->data) + 1);
    for (int i = 0; i < count; ++i) {
        const char *eq = strchr(defines[i], '=');
        if (!eq || eq == defines[i]) fail("%s: expected NAME=VALUE", defines[i]);
        append(&out, "#define ", 8);
        append(&out, defines[i], (size_t)(eq - defines[i]));
        append(&out, " ", 1);
        append(&out, eq + 1, strlen(eq + 1));
        append(&out, "\n", 1);
    }
    append(&out, after + 1, strlen(after + 1));
    return out;
}

static void to_stderr(const void *data, size_t size, void *user) {
    (void)user;
    fwrite(data, 1, size, stderr);
}

static void to_file(const void *data, size_t size, void *user) {
    if (fwrite(data, 1, size, (FILE *)user) != size) fail("cannot write the SPIR-V");
}

int main(int argc, char **argv) {
    if (argc < 5) fail("usage: coopmat2_compile LIBRARY INPUT OUTPUT DEPFILE [NAME=VALUE ...]");
    void *library = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (!library) fail("%s", dlerror());
    int (*compile)(compile_request *);
    void *symbol = dlsym(library, "glslang_compile_1_2");
    if (!symbol) fail("%s has no glslang_compile_1_2", argv[1]);
    memcpy(&compile, &symbol, sizeof compile);

    FILE *deps = fopen(argv[4], "w");
    if (!deps) fail("cannot write %s", argv[4]);
    fprintf(deps, "%s:", argv[3]);
    text expanded = {0};
    expand(argv[2], 0, &expanded, deps);
    fputc('\n', deps);
    fclose(deps);
    text source = with_defines(&expanded, argc - 5, argv + 5);

    FILE *output = fopen(argv[3], "wb");
    if (!output) fail("cannot write %s", argv[3]);
    compile_request request = {.size_in_bytes = sizeof request,
                              .source_path = argv[2],
                              .input_begin = source.data,
                              .input_end = source.data + source.size,
                              .diagnostic = to_stderr,
                              .output = to_file,
                              .output_user = output,
                              .stage = STAGE_COMPUTE,
                              .action = ACTION_COMPILE_GLSL_TO_SPIRV,
                              .spirv = {1, 6, 0},
                              .entry_point_name = "main"};
    int status = compile(&request);
    if (fclose(output) != 0 || status != 0) {
        remove(argv[3]);
        fail("%s did not compile (status %d)", argv[2], status);
    }
    free(source.data);
    free(expanded.data);
    return 0;
}
