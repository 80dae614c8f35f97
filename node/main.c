/* sluice: the node daemon. Wires the configuration source, the data-path worker and signals onto
 * one libuv loop. A node whose file has a "cluster" block also runs the Raft configuration store
 * on that loop: the data path follows the store's committed state, and the admin API serves the
 * store's routes (writes on a follower are forwarded to the leader). */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <uv.h>

#include "admin/forward.h"
#include "admin/local.h"
#include "admin/probe.h"
#include "admin/server.h"
#include "admin/store_routes.h"
#include "base/log.h"
#include "base/secret.h"
#include "base/stream.h"
#include "budget/budget.h"
#include "failover/coordinator.h"
#include "node/args.h"
#include "node/checks.h"
#include "node/config_source.h"
#include "node/store_source.h"
#include "pool/pinscan.h"
#include "pool/worker.h"
#include "raft/store.h"

/* A forwarded write waits this long for the leader's answer; above the store's own commit
 * timeouts so that the leader's 503 arrives rather than ours. */
#define FORWARD_TIMEOUT_MS 15000
/* How often the leader checks that every initial member has its node resource. */
#define REGISTER_PERIOD_MS 250

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
    struct sl_node_checks checks; /* health checks of every target */

    /* Cluster mode only ("cluster" block; all NULL/zero otherwise). */
    struct sl_config *file_cfg;  /* the node's file: cluster, tls, admin */
    struct sl_store *store;      /* NULL once closed */
    struct sl_store_source ssrc; /* renders the data path's config from the store */
    struct sl_admin_store_routes *routes;
    struct sl_fwd *fwd;
    struct sl_admin_forwarder forwarder;
    struct sl_probe *probe;       /* reachability of the other members */
    struct sl_budget *budget;     /* this node's share of the global connection budget */
    struct sl_failover *failover; /* health reports to the leader; writer decisions on it */
    SSL_CTX *fwd_tls; /* checks the leader's admin certificate when forwarding over https */
    uv_timer_t register_timer;
    uint64_t registered_term; /* term in which this node, as leader, registered the members */
    unsigned registering;     /* node registrations in flight */
};

static void on_store_closed(void *arg)
{
    struct node *n = arg;
    sl_info(0, "configuration store closed");
    n->store = NULL;
}

static void on_fwd_closed(void *arg)
{
    struct node *n = arg;
    if (n->fwd_tls)
        SSL_CTX_free(n->fwd_tls);
    n->fwd_tls = NULL;
}

/* After the drain: the admin API first (its pending requests get their answers from the store's
 * callbacks), then the forwarder and the store. */
static void close_cluster(struct node *n)
{
    if (n->budget) {
        sl_budget_close(n->budget); /* before the forwarder: its reports use it */
        n->budget = NULL;
    }
    if (n->routes) {
        sl_admin_store_routes_close(n->routes);
        n->routes = NULL;
    }
    if (n->fwd) {
        sl_fwd_close(n->fwd, on_fwd_closed, n);
        n->fwd = NULL;
    } else {
        on_fwd_closed(n);
    }
    if (n->probe) {
        sl_probe_close(n->probe, NULL, NULL);
        n->probe = NULL;
    }
    if (!uv_is_closing((uv_handle_t *)&n->register_timer))
        uv_close((uv_handle_t *)&n->register_timer, NULL);
    if (n->store) {
        sl_store_watch(n->store, NULL, NULL);
        sl_store_close(n->store, on_store_closed, n);
    }
}

static void on_admin_closed(void *arg)
{
    struct node *n = arg;
    if (n->admin_tls)
        SSL_CTX_free(n->admin_tls);
    n->admin_tls = NULL;
}

static void on_left(void *arg);

static void on_drained(void *arg)
{
    struct node *n = arg;
    if (n->budget) {
        sl_info(0, "drained; handing back the budget");
        sl_budget_leave(n->budget, on_left, n);
        return;
    }
    on_left(n);
}

static void on_checks_stopped(void *arg)
{
    (void)arg; /* nothing waits for them: the loop just runs until they are done */
}

static void on_left(void *arg)
{
    struct node *n = arg;
    sl_info(0, "drained; exiting");
    if (n->failover) { /* first: it reads the health checks */
        sl_failover_close(n->failover);
        n->failover = NULL;
    }
    sl_node_checks_stop(&n->checks, on_checks_stopped, NULL);
    if (n->admin) {
        sl_admin_server_close(n->admin, on_admin_closed, n);
        n->admin = NULL;
    }
    if (n->file_cfg)
        close_cluster(n);
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

/* Cluster mode: bring the data path to the store's applied state (skipped when the rendered
 * configuration did not change). */
static void apply_store_state(struct node *n)
{
    struct sl_config *cfg;
    char err[512];
    if (sl_store_source_load(&n->ssrc, &cfg, err, sizeof err) != 0) {
        sl_error(0, "cannot build the configuration from the store: %s", err);
        return;
    }
    if (!cfg)
        return;
    if (sl_worker_reload(n->worker, cfg, err, sizeof err) != 0) {
        sl_error(0, "the store's configuration was refused, keeping the running one: %s", err);
        sl_config_free(cfg);
        sl_store_source_forget(&n->ssrc);
        return;
    }
    if (n->budget)
        sl_budget_set_config(n->budget, cfg);
    sl_node_checks_config(&n->checks, cfg);
}

static void on_store_applied(struct sl_store *s, uint64_t applied_index, void *arg)
{
    struct node *n = arg;
    if (!n->stopping && n->worker)
        apply_store_state(n);
    if (n->budget)
        sl_budget_applied(n->budget);
    if (n->failover)
        sl_failover_applied(n->failover);
}

static void on_registered(struct sl_store *s, const struct sl_store_result *r, void *arg)
{
    struct node *n = arg;
    n->registering--;
    if (r->status != SL_STORE_OK || r->fsm.outcome != SL_FSM_OK) {
        sl_warn(0, "registering a node resource failed (%s); retrying",
                sl_store_status_name(r->status));
        n->registered_term = 0;
    }
}

static char *member_body(const struct sl_cluster_member *m)
{
    json_t *o =
        json_pack("{s:I,s:s,s:s,s:s,s:s}", "id", (json_int_t)m->id, "raft_address", m->raft_address,
                  "admin_url", m->admin_url, "data_address", m->data_address, "az", m->az);
    char *text = o ? json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(o);
    return text;
}

/* A new leader puts the node resources of initial_members that are missing, so that every node
 * can map the leader's id to its admin URL (forwarding) and /v1/cluster can show them. Once per
 * term, after the leader's post-election barrier. */
static void on_register_tick(uv_timer_t *t)
{
    struct node *n = t->data;
    const struct sl_cluster_config *cl = n->file_cfg->cluster;
    struct sl_store_info info;

    if (n->stopping || !n->store || n->registering)
        return;
    sl_store_info(n->store, &info);
    if (info.state != SL_STORE_LEADER || !info.leader_ready || info.term == n->registered_term)
        return;
    n->registered_term = info.term;
    for (size_t i = 0; i < cl->n_initial_members; i++) {
        const struct sl_cluster_member *m = &cl->initial_members[i];
        char name[24], *json = NULL;
        uint64_t rev;
        snprintf(name, sizeof name, "%" PRIu64, m->id);
        int rc = sl_store_get(n->store, SL_RAFT_NODE, name, NULL, &json, &rev);
        free(json);
        if (rc != 1)
            continue; /* present (or unreadable: not ours to fix) */
        char *body = member_body(m);
        struct sl_store_change c = {
            .op = SL_RAFT_PUT, .kind = SL_RAFT_NODE, .name = name, .body = body};
        if (body && sl_store_propose(n->store, &c, on_registered, n) == SL_STORE_OK) {
            n->registering++;
            sl_info(0, "registering node %s (%s, admin %s)", name, m->raft_address, m->admin_url);
        } else {
            n->registered_term = 0;
        }
        free(body);
    }
}

/* The leader's admin URL: its node resource, else the initial_members entry of the file. */
static char *leader_admin_url(struct node *n, uint64_t leader_id)
{
    char name[24], *json = NULL, *url = NULL;
    uint64_t rev;
    snprintf(name, sizeof name, "%" PRIu64, leader_id);
    if (n->store && sl_store_get(n->store, SL_RAFT_NODE, name, NULL, &json, &rev) == 0) {
        json_t *o = json_loads(json, 0, NULL);
        const char *u = json_string_value(json_object_get(o, "admin_url"));
        url = u ? strdup(u) : NULL;
        json_decref(o);
    }
    free(json);
    const struct sl_cluster_config *cl = n->file_cfg->cluster;
    for (size_t i = 0; !url && i < cl->n_initial_members; i++)
        if (cl->initial_members[i].id == leader_id)
            url = strdup(cl->initial_members[i].admin_url);
    return url;
}

static void forward_write(void *arg, struct sl_admin_request *rq, uint64_t leader_id)
{
    struct node *n = arg;
    char *url = n->fwd ? leader_admin_url(n, leader_id) : NULL;
    if (!url) {
        struct sl_http_response head = {
            .status = 503, .content_type = SL_HTTP_PROBLEM_TYPE, .retry_after = 1};
        char detail[96];
        snprintf(detail, sizeof detail, "the admin URL of the leader (node %" PRIu64 ") is unknown",
                 leader_id);
        sl_admin_reply_json(rq, &head, sl_http_problem(503, NULL, NULL, detail));
        return;
    }
    sl_fwd_send(n->fwd, rq, url);
    free(url);
}

static void on_sighup(uv_signal_t *h, int signum)
{
    struct node *n = h->data;
    struct sl_config *cfg;
    char err[512];
    if (n->file_cfg) {
        sl_info(0, "SIGHUP: proxies come from the store; re-reading it");
        sl_store_source_forget(&n->ssrc);
        apply_store_state(n);
        return;
    }
    if (n->source.load(&n->source, &cfg, err, sizeof err) != 0) {
        sl_error(0, "reload failed, keeping the running configuration: %s", err);
        return;
    }
    if (sl_worker_reload(n->worker, cfg, err, sizeof err) != 0) {
        sl_error(0, "reload failed, keeping the running configuration: %s", err);
        sl_config_free(cfg);
        return;
    }
    sl_node_checks_config(&n->checks, cfg);
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
    out->borrow_waits = w->borrow_waits;
    out->queries = w->queries;
    out->backends_lost = w->backends_lost_under_session;
    const uint64_t recoveries[] = {w->statements_retried, w->transactions_replayed,
                                   w->replay_mismatches,  w->transactions_lost,
                                   w->outcomes_unknown,   w->session_states_lost};
    memcpy(out->recoveries, recoveries, sizeof out->recoveries);
    struct sl_worker_state_counts c;
    sl_worker_state_counts(n->worker, &c);
    out->clients_handshake = c.clients_handshake;
    out->clients_idle = c.clients_idle;
    out->clients_waiting = c.clients_waiting;
    out->clients_busy = c.clients_busy;
    out->backends_connecting = c.backends_connecting;
    out->backends_idle = c.backends_idle;
    out->backends_in_use = c.backends_in_use;
    for (unsigned i = 0; i < SL_PIN_REASON_COUNT && out->n_pins < SL_ADMIN_PIN_REASONS_MAX; i++) {
        out->pins[out->n_pins].reason = sl_pin_reason_name(1u << i);
        out->pins[out->n_pins++].count = w->pins[i];
    }
    if (n->store) {
        struct sl_store_info info;
        sl_store_info(n->store, &info);
        out->has_store = true;
        out->is_leader = info.state == SL_STORE_LEADER;
        out->raft_term = info.term;
        out->raft_commit_index = info.commit_index;
        out->raft_applied_index = info.applied_index;
    }
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
static void admin_more_metrics(void *arg, struct sl_metrics *m)
{
    struct node *n = arg;
    if (n->budget)
        sl_budget_metrics(n->budget, m);
    sl_node_checks_metrics(&n->checks, m);
}

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
    n->admin_node = (struct sl_admin_node){.node_id = n->node_id,
                                           .stats = admin_stats,
                                           .ready = admin_ready,
                                           .more_metrics = admin_more_metrics,
                                           .arg = n};
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

/* Open and start the store of the "cluster" block (bootstrapping it first with --init-cluster)
 * and render the data path's first configuration from it into *data. */
static int start_store(struct node *n, bool init, struct sl_config **data, char *err, size_t errlen)
{
    const struct sl_cluster_config *cl = n->file_cfg->cluster;
    if (mkdir(cl->data_dir, 0700) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "cluster.data_dir %s: %s", cl->data_dir, strerror(errno));
        return -1;
    }
    struct sl_store_options opt = {.id = cl->id,
                                   .address = cl->raft_address,
                                   .data_dir = cl->data_dir,
                                   .snapshot_threshold = cl->snapshot_threshold,
                                   .snapshot_trailing = cl->snapshot_trailing};
    if (sl_store_open(&n->store, n->loop, &opt, err, errlen) != SL_STORE_OK)
        return -1;
    if (init) {
        struct sl_store_member *voters = calloc(cl->n_initial_members, sizeof *voters);
        if (!voters) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        for (size_t i = 0; i < cl->n_initial_members; i++) {
            voters[i].id = cl->initial_members[i].id;
            voters[i].role = SL_STORE_VOTER;
            snprintf(voters[i].address, sizeof voters[i].address, "%s",
                     cl->initial_members[i].raft_address);
        }
        int rc = sl_store_bootstrap(n->store, voters, cl->n_initial_members);
        free(voters);
        if (rc == SL_STORE_EXISTS) {
            sl_info(0, "--init-cluster: %s already holds Raft state; not bootstrapping again",
                    cl->data_dir);
        } else if (rc != SL_STORE_OK) {
            snprintf(err, errlen, "cannot bootstrap the cluster: %s", sl_store_status_name(rc));
            return -1;
        } else {
            sl_info(0, "cluster bootstrapped with %zu voters", cl->n_initial_members);
        }
    }
    int rc = sl_store_start(n->store);
    if (rc != SL_STORE_OK) {
        snprintf(err, errlen, "cannot start the configuration store: %s", sl_store_status_name(rc));
        return -1;
    }
    sl_store_source_init(&n->ssrc, n->file_cfg, n->store);
    if (sl_store_source_load(&n->ssrc, data, err, errlen) != 0)
        return -1;
    uv_timer_start(&n->register_timer, on_register_tick, REGISTER_PERIOD_MS, REGISTER_PERIOD_MS);
    sl_info(0, "configuration store started (raft id %" PRIu64 " on %s, data in %s)", cl->id,
            cl->raft_address, cl->data_dir);
    return 0;
}

/* RDS's TargetHealth for a proxy's target as this node's data path sees it. A proxy this node does
 * not serve (not built yet: no target, unknown secret...) reports REGISTERING. */
static void target_health(void *arg, const char *proxy, const char *host, int port, char *state,
                          char *reason, char *description)
{
    const struct node *n = arg;
    const char *st = "REGISTERING", *why = "";
    if (!n->worker || port < 1 || port > 65535 ||
        sl_worker_target_health(n->worker, proxy, host, (uint16_t)port, &st, &why) != 0) {
        snprintf(state, 64, "REGISTERING");
        snprintf(description, 64, "this node does not serve the proxy (yet)");
        return;
    }
    snprintf(state, 64, "%s", st);
    snprintf(reason, 64, "%s", why);
    const char *d = strcmp(st, "AVAILABLE") == 0       ? "logins of the pool succeed"
                    : strcmp(st, "REGISTERING") == 0   ? "no connection tried yet"
                    : strcmp(why, "AUTH_FAILURE") == 0 ? "the database refused the secret's login"
                    : strcmp(why, "CONNECTION_FAILED") == 0 ? "the database cannot be reached"
                                                            : "the last connection attempt failed";
    snprintf(description, 64, "%s", d);
}

/* The members to probe: every other member whose node resource names an admin URL. */
static size_t probe_targets(void *arg, struct sl_probe_target *out, size_t cap)
{
    struct node *n = arg;
    struct sl_store_info info;
    struct sl_store_member m[16];
    if (!n->store)
        return 0;
    sl_store_info(n->store, &info);
    size_t count = sl_store_members(n->store, m, 16), k = 0;
    for (size_t i = 0; i < count && i < 16 && k < cap; i++) {
        if (m[i].id == info.id)
            continue;
        char *url = sl_store_node_field(n->store, m[i].id, "admin_url");
        if (url && strlen(url) < sizeof out[k].admin_url) {
            out[k].id = m[i].id;
            snprintf(out[k].admin_url, sizeof out[k].admin_url, "%s", url);
            k++;
        }
        free(url);
    }
    return k;
}

static int reachability(void *arg, uint64_t id, bool *reachable, uint64_t *last_ok_ms_ago)
{
    const struct node *n = arg;
    return n->probe ? sl_probe_result(n->probe, id, reachable, last_ok_ms_ago) : -1;
}

/* The store's admin routes, with writes on a follower forwarded to the leader. */
static int start_store_routes(struct node *n, char *err, size_t errlen)
{
    const struct sl_admin_listen_config *a = n->file_cfg->admin;
    if (a->ca_file) {
        n->fwd_tls = sl_tls_client_ctx(a->ca_file, err, errlen);
        if (!n->fwd_tls)
            return -1;
    }
    n->fwd = sl_fwd_new(n->loop, FORWARD_TIMEOUT_MS, n->fwd_tls);
    n->forwarder = (struct sl_admin_forwarder){.forward = forward_write, .arg = n};
    if (n->fwd)
        n->routes = sl_admin_store_routes(n->admin, n->store, &n->forwarder);
    if (!n->routes) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    struct sl_admin_target_health h = {.lookup = target_health, .arg = n};
    sl_admin_store_routes_set_health(n->routes, &h);
    sl_admin_store_routes_set_node(n->routes, n->node_id);
    /* Probed once a second, each probe a TCP connect that must succeed within 500 ms. */
    n->probe = sl_probe_start(n->loop, 1000, 500, probe_targets, n);
    struct sl_admin_reachability r = {.lookup = reachability, .arg = n};
    sl_admin_store_routes_set_reachability(n->routes, &r);
    return 0;
}

/* The node's budget agent: backends connect from the node's data address (how the leader fences
 * them), reports go to the leader with the node's own admin token (every member shares it). */
static int start_budget(struct node *n, const struct sl_config *cfg, char *err, size_t errlen)
{
    const char *source = n->file_cfg->cluster->data_address;
    if (strcmp(source, "0.0.0.0") == 0) {
        sl_warn(0, "cluster.data_address is 0.0.0.0: the leader cannot fence this node's "
                   "database connections, so a quota it holds is never handed on while it is "
                   "silent");
        source = NULL;
    }
    if (sl_worker_budget_enable(n->worker, source) != 0) {
        snprintf(err, errlen, "cluster.data_address: not an IPv4 address");
        return -1;
    }
    char token[SL_TOKEN_MAX + 1];
    if (sl_secret_resolve_token(n->file_cfg->admin->token, token, sizeof token, err, errlen) != 0)
        return -1;
    struct sl_budget_options opt = {.node_id = n->file_cfg->cluster->id, .token = token};
    int rc = sl_budget_open(&n->budget, n->loop, n->store, n->worker, n->fwd, &opt);
    OPENSSL_cleanse(token, sizeof token);
    if (rc != 0) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    sl_budget_routes(n->budget, n->admin);
    sl_budget_set_config(n->budget, cfg);
    return 0;
}

static int start_failover(struct node *n, char *err, size_t errlen)
{
    char token[SL_TOKEN_MAX + 1];
    if (sl_secret_resolve_token(n->file_cfg->admin->token, token, sizeof token, err, errlen) != 0)
        return -1;
    struct sl_failover_options opt = {
        .node_id = n->file_cfg->cluster->id, .node_name = n->node_id, .token = token};
    int rc = sl_failover_open(&n->failover, n->loop, n->store, n->checks.health, n->fwd, &opt);
    OPENSSL_cleanse(token, sizeof token);
    if (rc != 0) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    sl_failover_routes(n->failover, n->admin);
    return 0;
}

/* Start-up failed part-way: close what was opened (asynchronously: run the loop until it is
 * closed) and free the rest. */
static void abandon_start(struct node *n)
{
    if (n->admin) {
        sl_admin_server_close(n->admin, on_admin_closed, n);
        n->admin = NULL;
    }
    if (n->file_cfg)
        close_cluster(n);
    uv_run(n->loop, UV_RUN_DEFAULT);
    sl_store_source_free(&n->ssrc);
    sl_config_free(n->file_cfg);
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
    signal(SIGPIPE, SIG_IGN); /* also required by raft_uv (raft/store.h) */

    struct node n;
    memset(&n, 0, sizeof n);
    sl_config_source_file(&n.source, args.config_path);
    struct sl_config *cfg;
    char err[512];
    if (n.source.load(&n.source, &cfg, err, sizeof err) != 0) {
        fprintf(stderr, "sluice: %s\n", err);
        return 1;
    }
    if (args.init_cluster && !cfg->cluster) {
        fprintf(stderr, "sluice: --init-cluster needs a \"cluster\" block in %s\n",
                args.config_path);
        sl_config_free(cfg);
        return 2;
    }
    if (args.init_cluster && cfg->cluster->n_initial_members == 0) {
        fprintf(stderr, "sluice: --init-cluster needs cluster.initial_members in %s\n",
                args.config_path);
        sl_config_free(cfg);
        return 2;
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
    if (cfg->cluster) {
        /* The file configures the node; the data path's proxies come from the store. */
        n.file_cfg = cfg;
        cfg = NULL;
        uv_timer_init(n.loop, &n.register_timer);
        n.register_timer.data = &n;
        if (start_store(&n, args.init_cluster, &cfg, err, sizeof err) != 0) {
            sl_error(0, "cannot start: %s", err);
            abandon_start(&n);
            return 1;
        }
    }
    const struct sl_config *node_cfg = n.file_cfg ? n.file_cfg : cfg;
    if (node_cfg->admin && (start_admin(&n, node_cfg, err, sizeof err) != 0 ||
                            (n.store && start_store_routes(&n, err, sizeof err) != 0))) {
        sl_error(0, "cannot start the admin API: %s", err);
        sl_config_free(cfg);
        abandon_start(&n);
        return 1;
    }
    if (sl_worker_start(n.loop, cfg, &n.worker, err, sizeof err) != 0) {
        sl_error(0, "cannot start: %s", err);
        sl_config_free(cfg);
        abandon_start(&n);
        return 1;
    }
    if (n.store) {
        /* Only out of memory gets here (the address and the token were checked above). */
        if (start_budget(&n, cfg, err, sizeof err) != 0) {
            sl_error(0, "cannot start the budget agent: %s", err);
            exit(1);
        }
    }
    /* Health checks connect from the data address, like the pools (so a fence finds them). */
    const char *check_ip = n.file_cfg ? n.file_cfg->cluster->data_address : NULL;
    if (check_ip && strcmp(check_ip, "0.0.0.0") == 0)
        check_ip = NULL;
    if (sl_node_checks_start(&n.checks, n.loop, n.worker, check_ip) != 0) {
        sl_error(0, "cannot start the health checks: out of memory");
        exit(1);
    }
    sl_node_checks_config(&n.checks, cfg);
    if (n.store) {
        if (start_failover(&n, err, sizeof err) != 0) {
            sl_error(0, "cannot start the failover coordinator: %s", err);
            exit(1);
        }
        sl_store_watch(n.store, on_store_applied, &n);
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
    sl_store_source_free(&n.ssrc);
    sl_config_free(n.file_cfg);
    uv_loop_close(n.loop);
    return 0;
}
