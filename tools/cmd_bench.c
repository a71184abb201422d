/* `efla bench`: placeholder until the benchmark lands. */
#include "cli_util.h"
#include "commands.h"

int cmd_bench(int argc, char **argv) {
    (void)argc;
    (void)argv;
    cli_error("bench is not implemented yet");
    return CLI_EXIT_USAGE;
}
