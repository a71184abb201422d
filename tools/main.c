/* The `efla` command: dispatches to its subcommands. */
#include "cli_util.h"
#include "commands.h"

#include <signal.h>
#include <string.h>

static const char usage[] =
    "usage: efla <command> [options]\n"
    "\n"
    "commands:\n"
    "  info [--json]   the version, backends, devices and the AUTO choice\n"
    "  forward ...     one EFLA forward over .npy files (efla forward --help)\n"
    "  bench ...       time the forward on the PERFORMANCE.md shapes (efla bench --help)\n"
    "  version         print the version\n"
    "\n"
    "Exit codes: 0 ok, 2 usage or file problem, 3 invalid input, 4 backend or device\n"
    "unavailable, 5 device or runtime error.\n";

int main(int argc, char **argv) {
    /* A closed stdout must end in an error status, never in SIGPIPE. */
    signal(SIGPIPE, SIG_IGN);
    if (argc < 2) {
        fputs(usage, stderr);
        return CLI_EXIT_USAGE;
    }
    const char *command = argv[1];
    if (strcmp(command, "info") == 0) return cmd_info(argc, argv);
    if (strcmp(command, "forward") == 0) return cmd_forward(argc, argv);
    if (strcmp(command, "bench") == 0) return cmd_bench(argc, argv);
    if (strcmp(command, "version") == 0 || strcmp(command, "--version") == 0) {
        printf("efla %s\n", efla_version_string());
        return CLI_EXIT_OK;
    }
    if (strcmp(command, "help") == 0 || strcmp(command, "--help") == 0 ||
        strcmp(command, "-h") == 0) {
        fputs(usage, stdout);
        return CLI_EXIT_OK;
    }
    cli_error("unknown command '%s' (efla --help lists them)", command);
    return CLI_EXIT_USAGE;
}
