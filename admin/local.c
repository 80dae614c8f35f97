#include "admin/local.h"

#include <string.h>

/* jansson integers are signed 64-bit; counters would need centuries to pass INT64_MAX. */
#define I(v) ((json_int_t)(v))

json_t *sl_admin_stats_json(const struct sl_admin_stats *st)
{
    json_t *clients = json_pack(
        "{s:I,s:I,s:{s:I,s:I,s:I,s:I}}", "total", I(st->client_connections_total), "active",
        I(st->client_connections_active), "by_state", "handshake", I(st->clients_handshake), "idle",
        I(st->clients_idle), "waiting", I(st->clients_waiting), "busy", I(st->clients_busy));
    json_t *backends = json_pack(
        "{s:I,s:I,s:{s:I,s:I,s:I}}", "opened", I(st->backend_connections_opened), "active",
        I(st->backend_connections_active), "by_state", "connecting", I(st->backends_connecting),
        "idle", I(st->backends_idle), "in_use", I(st->backends_in_use));
    json_t *pins = json_object();
    for (size_t i = 0; pins && i < st->n_pins; i++)
        json_object_set_new(pins, st->pins[i].reason, json_integer(I(st->pins[i].count)));
    static const char *const recovery_names[] = SL_ADMIN_RECOVERY_NAMES;
    json_t *recoveries = json_object();
    for (size_t i = 0; recoveries && i < 6; i++)
        json_object_set_new(recoveries, recovery_names[i], json_integer(I(st->recoveries[i])));
    /* "o" steals the references, also when packing fails. */
    json_t *doc = json_pack(
        "{s:o,s:I,s:o,s:I,s:I,s:I,s:o,s:{s:I,s:o}}", "client_connections", clients, "auth_failures",
        I(st->auth_failures), "backend_connections", backends, "borrow_timeouts",
        I(st->borrow_timeouts), "borrow_waits", I(st->borrow_waits), "queries", I(st->queries),
        "pins", pins, "backend_losses", "total", I(st->backends_lost), "outcomes", recoveries);
    if (doc && st->has_store)
        json_object_set_new(doc, "raft",
                            json_pack("{s:b,s:I,s:I,s:I}", "leader", st->is_leader, "term",
                                      I(st->raft_term), "commit_index", I(st->raft_commit_index),
                                      "applied_index", I(st->raft_applied_index)));
    return doc;
}

int sl_admin_stats_metrics(const struct sl_admin_stats *st, struct sl_metrics *m)
{
    const struct sl_metric_label version = {"version", SLUICE_VERSION};

    sl_metrics_family(m, "sluice_build_info", SL_METRIC_GAUGE, "Version of this sluice node.");
    sl_metrics_u64(m, "sluice_build_info", &version, 1, 1);
    sl_metrics_single(m, "sluice_client_connections_total", SL_METRIC_COUNTER,
                      "Client connections accepted.", st->client_connections_total);
    sl_metrics_single(m, "sluice_client_connections_active", SL_METRIC_GAUGE,
                      "Client connections open.", st->client_connections_active);
    sl_metrics_single(m, "sluice_auth_failures_total", SL_METRIC_COUNTER, "Client logins refused.",
                      st->auth_failures);
    sl_metrics_single(m, "sluice_backend_connections_opened_total", SL_METRIC_COUNTER,
                      "Database connections opened.", st->backend_connections_opened);
    sl_metrics_single(m, "sluice_backend_connections_active", SL_METRIC_GAUGE,
                      "Database connections open.", st->backend_connections_active);
    sl_metrics_single(m, "sluice_borrow_timeouts_total", SL_METRIC_COUNTER,
                      "Clients that waited longer than connection_borrow_timeout.",
                      st->borrow_timeouts);
    sl_metrics_single(m, "sluice_queries_total", SL_METRIC_COUNTER,
                      "Commands relayed to a database.", st->queries);
    sl_metrics_single(m, "sluice_borrow_waits_total", SL_METRIC_COUNTER,
                      "Commands that queued for a database connection.", st->borrow_waits);
    static const char *const client_states[] = {"handshake", "idle", "waiting", "busy"};
    const uint64_t clients[] = {st->clients_handshake, st->clients_idle, st->clients_waiting,
                                st->clients_busy};
    sl_metrics_family(m, "sluice_client_connections", SL_METRIC_GAUGE,
                      "Client connections open now, by state.");
    for (size_t i = 0; i < 4; i++) {
        const struct sl_metric_label l = {"state", client_states[i]};
        sl_metrics_u64(m, "sluice_client_connections", &l, 1, clients[i]);
    }
    static const char *const backend_states[] = {"connecting", "idle", "in_use"};
    const uint64_t backends[] = {st->backends_connecting, st->backends_idle, st->backends_in_use};
    sl_metrics_family(m, "sluice_backend_connections", SL_METRIC_GAUGE,
                      "Database connections open now, by state.");
    for (size_t i = 0; i < 3; i++) {
        const struct sl_metric_label l = {"state", backend_states[i]};
        sl_metrics_u64(m, "sluice_backend_connections", &l, 1, backends[i]);
    }
    sl_metrics_single(m, "sluice_backend_losses_total", SL_METRIC_COUNTER,
                      "Database connections lost while a client session used them (failover, "
                      "fencing, KILL).",
                      st->backends_lost);
    static const char *const recovery_names[] = SL_ADMIN_RECOVERY_NAMES;
    sl_metrics_family(m, "sluice_session_recoveries_total", SL_METRIC_COUNTER,
                      "What became of a session's work when its database connection was lost, "
                      "by outcome.");
    for (size_t i = 0; i < 6; i++) {
        const struct sl_metric_label l = {"outcome", recovery_names[i]};
        sl_metrics_u64(m, "sluice_session_recoveries_total", &l, 1, st->recoveries[i]);
    }
    sl_metrics_family(m, "sluice_session_pins_total", SL_METRIC_COUNTER,
                      "Sessions pinned to one database connection, by reason.");
    for (size_t i = 0; i < st->n_pins; i++) {
        const struct sl_metric_label reason = {"reason", st->pins[i].reason};
        sl_metrics_u64(m, "sluice_session_pins_total", &reason, 1, st->pins[i].count);
    }
    if (st->has_store) {
        sl_metrics_single(m, "sluice_raft_leader", SL_METRIC_GAUGE,
                          "1 when this node is the Raft leader.", st->is_leader ? 1 : 0);
        sl_metrics_single(m, "sluice_raft_term", SL_METRIC_GAUGE, "Current Raft term.",
                          st->raft_term);
        sl_metrics_single(m, "sluice_raft_commit_index", SL_METRIC_GAUGE,
                          "Highest Raft index known committed.", st->raft_commit_index);
        sl_metrics_single(m, "sluice_raft_applied_index", SL_METRIC_GAUGE,
                          "Highest Raft index applied to this node's configuration.",
                          st->raft_applied_index);
    }
    return sl_metrics_finish(m);
}

static void fill_stats(const struct sl_admin_node *node, struct sl_admin_stats *st)
{
    memset(st, 0, sizeof *st);
    node->stats(node->arg, st);
}

static void on_health(struct sl_admin_request *rq, void *arg)
{
    const struct sl_admin_node *node = arg;
    char reason[128] = "";
    bool ready = !node->ready || node->ready(node->arg, reason, sizeof reason);
    /* A health document in both cases (not a problem): probes read the status code, people and
     * dashboards the body. */
    json_t *body = json_pack("{s:s,s:b,s:s}", "status", ready ? "ok" : "unavailable", "ready",
                             ready, "version", SLUICE_VERSION);
    if (body && node->node_id)
        json_object_set_new(body, "node", json_string(node->node_id));
    if (body && !ready)
        json_object_set_new(body, "reason", json_string(reason));
    struct sl_http_response head = {.status = ready ? 200 : 503};
    sl_admin_reply_json(rq, &head, body);
}

static void on_stats(struct sl_admin_request *rq, void *arg)
{
    struct sl_admin_stats st;
    struct sl_http_response head = {.status = 200};
    fill_stats(arg, &st);
    sl_admin_reply_json(rq, &head, sl_admin_stats_json(&st));
}

static void on_metrics(struct sl_admin_request *rq, void *arg)
{
    struct sl_admin_stats st;
    struct sl_metrics m;
    const struct sl_admin_node *node = arg;
    fill_stats(arg, &st);
    sl_metrics_init(&m);
    int rc = sl_admin_stats_metrics(&st, &m);
    if (rc == 0 && node->more_metrics) {
        node->more_metrics(node->arg, &m);
        rc = sl_metrics_finish(&m);
    }
    if (rc != 0) {
        sl_admin_reply_problem(rq, 500, "could not build the metrics");
    } else {
        struct sl_http_response r = {
            .status = 200,
            .content_type = SL_METRICS_CONTENT_TYPE,
            .body = m.out.data,
            .body_len = m.out.len,
        };
        sl_admin_reply(rq, &r);
    }
    sl_metrics_free(&m);
}

void sl_admin_local_routes(struct sl_admin_server *srv, const struct sl_admin_node *node)
{
    /* The handlers take a const node through a void pointer; they never write through it. */
    void *arg = (void *)(uintptr_t)node;
    sl_admin_handle(srv, SL_ROUTE_HEALTH, on_health, arg);
    sl_admin_handle(srv, SL_ROUTE_STATS, on_stats, arg);
    sl_admin_handle(srv, SL_ROUTE_METRICS, on_metrics, arg);
}
