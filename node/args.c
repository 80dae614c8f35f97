#include "node/args.h"

#include <string.h>

#include "base/log.h"

static const char usage[] = "Usage: sluice --config FILE [--log-level LEVEL] [--check-config]\n"
                            "                            [--init-cluster]\n"
                            "       sluice --help | --version\n";

static const char help[] =
    "sluice: a MySQL/MariaDB connection-pooling proxy node.\n"
    "\n"
    "Clients speak the MySQL protocol (TLS, mysql_native_password, caching_sha2_password) to the\n"
    "proxies listed in the configuration; their transactions are multiplexed over a small pool of\n"
    "backend connections per target, user and capability class.\n"
    "\n"
    "Options:\n"
    "  --config FILE       JSON configuration (see docs/configuration.md); re-read on SIGHUP\n"
    "  --log-level LEVEL   debug, info (default), warn or error; logs are logfmt lines on stderr\n"
    "  --check-config      validate FILE (and resolve its secrets) and exit: 0 valid, 1 invalid\n"
    "  --init-cluster      with a \"cluster\" block: bootstrap a new cluster with\n"
    "                      cluster.initial_members as voters (a node that already holds Raft\n"
    "                      state ignores it; never needed again after the first start)\n"
    "  --help              show this text\n"
    "  --version           print the version\n"
    "\n"
    "Signals: SIGHUP reloads the configuration (a cluster node's proxies come from its store and\n"
    "follow every committed change instead); SIGTERM and SIGINT drain (stop accepting, let\n"
    "in-flight transactions finish up to node.drain_timeout seconds, then close) and exit.\n";

enum sl_args_result sl_args_parse(int argc, char **argv, struct sl_args *a, FILE *out, FILE *err)
{
    memset(a, 0, sizeof *a);
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            fprintf(out, "%s\n%s", usage, help);
            return SL_ARGS_EXIT_OK;
        }
        if (strcmp(arg, "--version") == 0) {
            fprintf(out, "sluice %s\n", SLUICE_VERSION);
            return SL_ARGS_EXIT_OK;
        }
        if (strcmp(arg, "--check-config") == 0) {
            a->check_only = 1;
            continue;
        }
        if (strcmp(arg, "--init-cluster") == 0) {
            a->init_cluster = 1;
            continue;
        }
        const char **slot = NULL;
        if (strcmp(arg, "--config") == 0)
            slot = &a->config_path;
        else if (strcmp(arg, "--log-level") == 0)
            slot = &a->log_level;
        if (!slot) {
            fprintf(err, "sluice: unknown option '%s'\n%s", arg, usage);
            return SL_ARGS_EXIT_USAGE;
        }
        if (i + 1 >= argc) {
            fprintf(err, "sluice: option '%s' needs a value\n%s", arg, usage);
            return SL_ARGS_EXIT_USAGE;
        }
        *slot = argv[++i];
    }
    if (!a->config_path) {
        fprintf(err, "sluice: --config FILE is required\n%s", usage);
        return SL_ARGS_EXIT_USAGE;
    }
    enum sl_log_level lvl;
    if (a->log_level && sl_log_parse_level(a->log_level, &lvl) != 0) {
        fprintf(err, "sluice: --log-level must be debug, info, warn or error\n%s", usage);
        return SL_ARGS_EXIT_USAGE;
    }
    return SL_ARGS_RUN;
}
