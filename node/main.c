/* sluice: the node daemon. Wires the configuration source, the data-path worker and signals onto
 * one libuv loop. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <uv.h>

#include "admin/local.h"
#include "admin/server.h"
#include "base/log.h"
#include "base/secret.h"
#include "base/stream.h"
#include "node/args.h"
#include "node/config_source.h"
#include "pool/worker.h"

struct node {
    uv_loop_t *loop;
    struct sl_config_source source;
    struct sl_worker *worker;
    uv_signal_t sighup, sigterm, sigint;
    struct sl_admin_server *admin;
    SSL_CTX *admin_tls;
    struct sl_admin_node admin_node;
    bool stopping;
    unsigned drain_timeout;
    char node_id[64];
};

static void on_admin_closed(void *arg)
{
    struct node *n = arg;
    if (n->admin_tls)
        SSL_CTX_free(n->admin_tls);
    n->admin_tls = NULL;
}

static void on_drained(void *arg)
{
    struct node *n = arg;
    sl_info(0, "drained; exiting");
    if (n->admin) {
        sl_admin_server_close(n->admin, on_admin_closed, n);
        n->admin = NULL;
    }
    uv_close((uv_handle_t *)&n->sighup, NULL);
    uv_close((uv_handle_t *)&n->sigterm, NULL);
    uv_close((uv_handle_t *)&n->sigint, NULL);
}

static void on_stop_signal(uv_signal_t *h, int signum)
{
    struct node *n = h->data;
    if (n->stopping) {
        sl_info(0, "second stop signal: exiting at once");
        exit(1);
    }
    n->stopping = true;
    unsigned timeout = n->drain_timeout;
    sl_info(0, "%s received: draining (up to %u s)", signum == SIGTERM ? "SIGTERM" : "SIGINT",
            timeout);
    sl_worker_drain(n->worker, (uint64_t)timeout * 1000, on_drained, n);
}

static void on_sighup(uv_signal_t *h, int signum)
{
    struct node *n = h->data;
    struct sl_config *cfg;
    char err[512];
    if (n->source.load(&n->source, &cfg, err, sizeof err) != 0) {
        sl_error(0, "reload failed, keeping the running configuration: %s", err);
        return;
    }
    if (sl_worker_reload(n->worker, cfg, err, sizeof err) != 0) {
        sl_error(0, "reload failed, keeping the running configuration: %s", err);
        sl_config_free(cfg);
    }
}

static void admin_stats(void *arg, struct sl_admin_stats *out)
{
    const struct node *n = arg;
    if (!n->worker) {
        memset(out, 0, sizeof *out);
        return;
    }
    const struct sl_worker_stats *w = sl_worker_stats(n->worker);
    out->client_connections_total = w->client_connections_total;
    out->client_connections_active = w->client_connections_active;
    out->auth_failures = w->auth_failures;
    out->backend_connections_opened = w->backend_connections_opened;
    out->backend_connections_active = w->backend_connections_active;
    out->borrow_timeouts = w->borrow_timeouts;
    out->queries = w->queries;
}

static bool admin_ready(void *arg, char *reason, size_t cap)
{
    const struct node *n = arg;
    if (n->stopping) {
        snprintf(reason, cap, "draining");
        return false;
    }
    if (!n->worker) {
        snprintf(reason, cap, "starting");
        return false;
    }
    return true;
}

/* The admin API, when the configuration has an "admin" block. It runs on the same loop as the data
 * path for now (one loop per node); its handlers only read counters. Changing the admin block needs
 * a restart. */
static int start_admin(struct node *n, const struct sl_config *cfg, char *err, size_t errlen)
{
    const struct sl_admin_listen_config *a = cfg->admin;
    char token[SL_TOKEN_MAX + 1];
    if (sl_secret_resolve_token(a->token, token, sizeof token, err, errlen) != 0)
        return -1;
    if (a->tls) {
        n->admin_tls = sl_tls_server_ctx(cfg->tls_cert_file, cfg->tls_key_file, err, errlen);
        if (!n->admin_tls) {
            OPENSSL_cleanse(token, sizeof token);
            return -1;
        }
    }
    struct sl_admin_config ac = {
        .host = a->host, .port = a->port, .token = token, .tls = n->admin_tls};
    int rc = sl_admin_server_start(n->loop, &ac, &n->admin, err, errlen);
    OPENSSL_cleanse(token, sizeof token); /* the server keeps only its SHA-256 */
    if (rc != 0) {
        if (n->admin_tls)
            SSL_CTX_free(n->admin_tls);
        n->admin_tls = NULL;
        return -1;
    }
    n->admin_node = (struct sl_admin_node){
        .node_id = n->node_id, .stats = admin_stats, .ready = admin_ready, .arg = n};
    sl_admin_local_routes(n->admin, &n->admin_node);
    return 0;
}

/* --check-config: everything a start would check short of binding ports. */
static int check_config(const struct sl_config *cfg)
{
    char err[512];
    int bad = 0;
    if (cfg->tls_cert_file) {
        SSL_CTX *ctx = sl_tls_server_ctx(cfg->tls_cert_file, cfg->tls_key_file, err, sizeof err);
        if (!ctx) {
            fprintf(stderr, "sluice: %s\n", err);
            bad = 1;
        }
        SSL_CTX_free(ctx);
    }
    if (cfg->admin) {
        char token[SL_TOKEN_MAX + 1];
        if (sl_secret_resolve_token(cfg->admin->token, token, sizeof token, err, sizeof err) != 0) {
            fprintf(stderr, "sluice: admin.token: %s\n", err);
            bad = 1;
        }
        OPENSSL_cleanse(token, sizeof token);
    }
    for (size_t i = 0; i < cfg->n_proxies; i++) {
        for (size_t j = 0; j < cfg->proxies[i].n_auth; j++) {
            struct sl_secret s;
            if (sl_secret_resolve(cfg->proxies[i].auth[j].secret, &s, err, sizeof err) != 0) {
                fprintf(stderr, "sluice: proxies[%zu].auth[%zu]: %s\n", i, j, err);
                bad = 1;
            }
            sl_secret_wipe(&s);
        }
    }
    return bad;
}

int main(int argc, char **argv)
{
    struct sl_args args;
    switch (sl_args_parse(argc, argv, &args, stdout, stderr)) {
    case SL_ARGS_EXIT_OK: return 0;
    case SL_ARGS_EXIT_USAGE: return 2;
    case SL_ARGS_RUN: break;
    }
    if (args.log_level) {
        enum sl_log_level lvl;
        sl_log_parse_level(args.log_level, &lvl);
        sl_log_set_level(lvl);
    }
    signal(SIGPIPE, SIG_IGN);

    struct node n;
    memset(&n, 0, sizeof n);
    sl_config_source_file(&n.source, args.config_path);
    struct sl_config *cfg;
    char err[512];
    if (n.source.load(&n.source, &cfg, err, sizeof err) != 0) {
        fprintf(stderr, "sluice: %s\n", err);
        return 1;
    }
    if (args.check_only) {
        int bad = check_config(cfg);
        sl_config_free(cfg);
        if (!bad)
            printf("%s: configuration is valid\n", args.config_path);
        return bad;
    }
    sl_log_set_node(cfg->node_id);
    unsigned drain_timeout = cfg->drain_timeout;

    n.loop = uv_default_loop();
    snprintf(n.node_id, sizeof n.node_id, "%s", cfg->node_id);
    if (cfg->admin && start_admin(&n, cfg, err, sizeof err) != 0) {
        sl_error(0, "cannot start the admin API: %s", err);
        sl_config_free(cfg);
        return 1;
    }
    if (sl_worker_start(n.loop, cfg, &n.worker, err, sizeof err) != 0) {
        sl_error(0, "cannot start: %s", err);
        sl_config_free(cfg);
        if (n.admin) {
            sl_admin_server_close(n.admin, on_admin_closed, &n);
            uv_run(n.loop, UV_RUN_DEFAULT);
        }
        return 1;
    }
    uv_signal_init(n.loop, &n.sighup);
    uv_signal_init(n.loop, &n.sigterm);
    uv_signal_init(n.loop, &n.sigint);
    n.sighup.data = n.sigterm.data = n.sigint.data = &n;
    uv_signal_start(&n.sighup, on_sighup, SIGHUP);
    uv_signal_start(&n.sigterm, on_stop_signal, SIGTERM);
    uv_signal_start(&n.sigint, on_stop_signal, SIGINT);
    n.drain_timeout = drain_timeout;
    sl_info(0, "sluice %s started (config %s)", SLUICE_VERSION, n.source.description);

    uv_run(n.loop, UV_RUN_DEFAULT);

    sl_worker_free(n.worker);
    uv_loop_close(n.loop);
    return 0;
}
