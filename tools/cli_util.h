/* Small helpers shared by the `efla` subcommands: exit codes, error lines,
 * option parsing, number parsing and JSON strings. */
#ifndef EFLA_TOOLS_CLI_UTIL_H
#define EFLA_TOOLS_CLI_UTIL_H

#include <efla/efla.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Exit codes of the `efla` command. */
enum {
    CLI_EXIT_OK = 0,
    CLI_EXIT_USAGE = 2,       /* bad flag, bad number, missing or unreadable file */
    CLI_EXIT_INPUT = 3,       /* malformed .npy, shape/dtype/validation errors (1xx) */
    CLI_EXIT_UNAVAILABLE = 4, /* backend or device not available here (2xx) */
    CLI_EXIT_RUNTIME = 5      /* device, memory or internal error (3xx, 4xx, 5xx) */
};

/* The exit code for a failing library status. */
int cli_exit_for_status(efla_status status);

/* Prints "efla: <message>" as one line on stderr. */
void cli_error(const char *format, ...) __attribute__((format(printf, 1, 2)));

/* Prints "efla: <what>: <library message>" ("efla: <library message>"
 * when what is NULL) and returns the exit code for the status. */
int cli_library_error(efla_status status, const char *what);

/* A growable list of the values of a repeatable option. */
typedef struct cli_list {
    const char **items;
    size_t count;
} cli_list;

/* One command-line option: a value option stores its text in `value` (or
 * appends to `list` when repeatable); a switch sets `*seen`. */
typedef struct cli_option {
    const char *name; /* "--q" */
    const char **value;
    cli_list *list;
    bool *seen;
} cli_option;

#define CLI_PARSE_HELP (-1) /* --help or -h was given */

/* Parses argv[first..argc) against the table. Accepts "--name value" and
 * "--name=value". Returns CLI_EXIT_OK, CLI_PARSE_HELP, or CLI_EXIT_USAGE
 * after printing what is wrong. */
int cli_parse_options(int argc, char **argv, int first, const cli_option *options,
                      size_t option_count);
void cli_list_free(cli_list *list);

/* Numbers in the C locale (the program never calls setlocale). Each
 * prints "efla: <flag>: ..." and returns false when the text is not a
 * whole number in range / a finite number. */
bool cli_parse_int64(const char *flag, const char *text, int64_t min, int64_t max, int64_t *out);
bool cli_parse_double(const char *flag, const char *text, double *out);

/* Looks `text` up in names[0..count); prints "efla: <flag>: 'x' is not one
 * of a, b, c" and returns false when absent. */
bool cli_parse_choice(const char *flag, const char *text, const char *const *names, int count,
                      int *out);

/* Seconds on a monotonic clock. */
double cli_now_seconds(void);

/* Writes s as a JSON string literal, quotes included. */
void cli_json_string(FILE *out, const char *s);
/* Writes a finite number with %.6g, or null. */
void cli_json_number(FILE *out, double value);

#endif
