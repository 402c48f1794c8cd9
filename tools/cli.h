/* cli.h: shared pieces of the flashgen command-line tool. */
#ifndef FG_CLI_H
#define FG_CLI_H
#include "flashgen.h"
#include "gen/spec.h"

/* Shared-memory opt-in limit per block for a target arch, for compiling
 * without a GPU (values from the CUDA programming guide's compute
 * capability table). */
int fg_cli_arch_smem(const char *arch);
/* Returns the value of option `name` ("--batch") in argv or NULL. */
const char *fg_cli_opt(int argc, char **argv, const char *name);
int fg_cli_flag(int argc, char **argv, const char *name);
int fg_cli_int(int argc, char **argv, const char *name, int dflt);
/* The first argument that is not an option or an option's value. */
const char *fg_cli_positional(int argc, char **argv);

/* Comma-separated positive integers (<= 2^20) into out[max]; the count, or
 * -1 on a bad item. */
int fg_cli_parse_list(const char *s, int *out, int max);

int fg_cmd_run(int argc, char **argv);
int fg_cmd_bench(int argc, char **argv);
int fg_cmd_tune(int argc, char **argv);
int fg_cmd_cache(int argc, char **argv);
int fg_cmd_explore(int argc, char **argv);
#endif
