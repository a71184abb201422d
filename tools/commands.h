/* The subcommands of `efla`; each returns the process exit code. */
#ifndef EFLA_TOOLS_COMMANDS_H
#define EFLA_TOOLS_COMMANDS_H

int cmd_info(int argc, char **argv);
int cmd_forward(int argc, char **argv);
int cmd_bench(int argc, char **argv);

#endif
