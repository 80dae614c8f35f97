/* Command line of the sluice daemon. */
#ifndef SL_NODE_ARGS_H
#define SL_NODE_ARGS_H

#include <stdio.h>

struct sl_args {
    const char *config_path; /* --config FILE (required to run) */
    const char *log_level;   /* --log-level debug|info|warn|error, NULL = info */
    int check_only;          /* --check-config: validate the config and exit */
    int init_cluster;        /* --init-cluster: bootstrap the cluster of the "cluster" block */
};

enum sl_args_result { SL_ARGS_RUN, SL_ARGS_EXIT_OK, SL_ARGS_EXIT_USAGE };

/* Parse argv. --help and --version print to out and return SL_ARGS_EXIT_OK; errors print a reason
 * and the usage line to err and return SL_ARGS_EXIT_USAGE. */
enum sl_args_result sl_args_parse(int argc, char **argv, struct sl_args *a, FILE *out, FILE *err);

#endif
