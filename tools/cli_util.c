#include "cli_util.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int cli_exit_for_status(efla_status status) {
    if (status == EFLA_SUCCESS) return CLI_EXIT_OK;
    if (status < 200) return CLI_EXIT_INPUT;
    if (status < 300) return CLI_EXIT_UNAVAILABLE;
    return CLI_EXIT_RUNTIME;
}

void cli_error(const char *format, ...) {
    va_list args;
    va_start(args, format);
    fputs("efla: ", stderr);
    vfprintf(stderr, format, args);
    fputc('\n', stderr);
    va_end(args);
}

int cli_library_error(efla_status status, const char *what) {
    const char *message = efla_last_error_message();
    if (!message || !*message) message = efla_status_string(status);
    if (what)
        cli_error("%s: %s", what, message);
    else
        cli_error("%s", message);
    return cli_exit_for_status(status);
}

static bool list_append(cli_list *list, const char *item) {
    const char **grown = realloc(list->items, (list->count + 1) * sizeof *grown);
    if (!grown) return false;
    grown[list->count++] = item;
    list->items = grown;
    return true;
}

void cli_list_free(cli_list *list) {
    free(list->items);
    list->items = NULL;
    list->count = 0;
}

static const cli_option *find_option(const char *arg, size_t name_length, const cli_option *options,
                                     size_t count) {
    for (size_t i = 0; i < count; ++i)
        if (strlen(options[i].name) == name_length &&
            strncmp(options[i].name, arg, name_length) == 0)
            return &options[i];
    return NULL;
}

/* Stores one option's value; *index advances past a separate value. */
static int take_value(const cli_option *option, const char *inline_value, int argc, char **argv,
                      int *index) {
    const char *value = inline_value;
    if (!value) {
        if (*index + 1 >= argc) {
            cli_error("%s needs a value", option->name);
            return CLI_EXIT_USAGE;
        }
        value = argv[++*index];
    }
    if (option->list) {
        if (list_append(option->list, value)) return CLI_EXIT_OK;
        cli_error("out of memory");
        return CLI_EXIT_RUNTIME;
    }
    if (*option->value) {
        cli_error("%s given more than once", option->name);
        return CLI_EXIT_USAGE;
    }
    *option->value = value;
    return CLI_EXIT_OK;
}

static int parse_one(int argc, char **argv, int *index, const cli_option *options, size_t count) {
    const char *arg = argv[*index];
    if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) return CLI_PARSE_HELP;
    if (strncmp(arg, "--", 2) != 0) {
        cli_error("unexpected argument '%s'", arg);
        return CLI_EXIT_USAGE;
    }
    const char *equals = strchr(arg, '=');
    size_t name_length = equals ? (size_t)(equals - arg) : strlen(arg);
    const cli_option *option = find_option(arg, name_length, options, count);
    if (!option) {
        cli_error("unknown option '%.*s'", (int)name_length, arg);
        return CLI_EXIT_USAGE;
    }
    if (option->value || option->list)
        return take_value(option, equals ? equals + 1 : NULL, argc, argv, index);
    if (equals) {
        cli_error("%s takes no value", option->name);
        return CLI_EXIT_USAGE;
    }
    *option->seen = true;
    return CLI_EXIT_OK;
}

int cli_parse_options(int argc, char **argv, int first, const cli_option *options,
                      size_t option_count) {
    for (int i = first; i < argc; ++i) {
        int result = parse_one(argc, argv, &i, options, option_count);
        if (result != CLI_EXIT_OK) return result;
    }
    return CLI_EXIT_OK;
}

bool cli_parse_int64(const char *flag, const char *text, int64_t min, int64_t max, int64_t *out) {
    char *end = NULL;
    errno = 0;
    long long value = strtoll(text, &end, 10);
    if (!*text || *end || end == text) {
        cli_error("%s: '%s' is not a whole number", flag, text);
        return false;
    }
    if (errno == ERANGE || value < min || value > max) {
        cli_error("%s: %s is out of range (%lld..%lld)", flag, text, (long long)min,
                  (long long)max);
        return false;
    }
    *out = value;
    return true;
}

bool cli_parse_double(const char *flag, const char *text, double *out) {
    char *end = NULL;
    errno = 0;
    double value = strtod(text, &end);
    if (!*text || *end || end == text) {
        cli_error("%s: '%s' is not a number", flag, text);
        return false;
    }
    if (errno == ERANGE || !isfinite(value)) {
        cli_error("%s: '%s' is not a finite number", flag, text);
        return false;
    }
    *out = value;
    return true;
}

void cli_json_string(FILE *out, const char *s) {
    fputc('"', out);
    for (const unsigned char *p = (const unsigned char *)s; *p; ++p) {
        if (*p == '"' || *p == '\\')
            fprintf(out, "\\%c", *p);
        else if (*p == '\n')
            fputs("\\n", out);
        else if (*p == '\t')
            fputs("\\t", out);
        else if (*p < 0x20 || *p == 0x7f)
            fprintf(out, "\\u%04x", *p);
        else
            fputc(*p, out);
    }
    fputc('"', out);
}

void cli_json_number(FILE *out, double value) {
    if (isfinite(value))
        fprintf(out, "%.6g", value);
    else
        fputs("null", out);
}

bool cli_parse_choice(const char *flag, const char *text, const char *const *names, int count,
                      int *out) {
    for (int i = 0; i < count; ++i) {
        if (strcmp(text, names[i]) == 0) {
            *out = i;
            return true;
        }
    }
    char list[256];
    size_t used = 0;
    list[0] = '\0';
    for (int i = 0; i < count && used < sizeof list; ++i)
        used += (size_t)snprintf(list + used, sizeof list - used, "%s%s", i ? ", " : "", names[i]);
    cli_error("%s: '%s' is not one of %s", flag, text, list);
    return false;
}

double cli_now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}
