/* The routes a node answers from its own state, without the configuration store:
 *   GET /v1/health  liveness and readiness (no token needed)
 *   GET /v1/stats   this node's data-path figures as JSON
 *   GET /metrics    the same figures in Prometheus text format
 *
 * The node provides the figures through struct sl_admin_node; admin/ never sees the data path. */
#ifndef SL_ADMIN_LOCAL_H
#define SL_ADMIN_LOCAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "admin/metrics.h"
#include "admin/server.h"

#define SL_ADMIN_PIN_REASONS_MAX 32

/* A snapshot of this node's figures (summed over its workers). */
struct sl_admin_stats {
    uint64_t client_connections_total;  /* accepted since start */
    uint64_t client_connections_active; /* open now */
    uint64_t auth_failures;
    uint64_t backend_connections_opened; /* since start */
    uint64_t backend_connections_active; /* open now */
    uint64_t borrow_timeouts;
    uint64_t borrow_waits; /* commands that queued for a backend */
    uint64_t queries;
    /* Database connections lost under a client session, and what became of the session's work
     * (SL_ADMIN_RECOVERY_NAMES, in that order). */
    uint64_t backends_lost;
    uint64_t recoveries[6];
    /* Connections now, by state. */
    uint64_t clients_handshake, clients_idle, clients_waiting, clients_busy;
    uint64_t backends_connecting, backends_idle, backends_in_use;
    /* Sessions pinned, by reason (each time a session gets the reason). */
    struct sl_admin_pin_count {
        const char *reason; /* "user_variable", "temp_table", ... */
        uint64_t count;
    } pins[SL_ADMIN_PIN_REASONS_MAX];
    size_t n_pins;
    /* The configuration store, when the node runs one (has_store false otherwise). */
    bool has_store;
    bool is_leader;
    uint64_t raft_term, raft_commit_index, raft_applied_index;
};

struct sl_admin_node {
    const char *node_id; /* shown by /v1/health; NULL: omitted */
    /* Fill *out now. Called on the admin loop's thread for each /v1/stats and /metrics request;
     * the node decides how figures of other threads get there. */
    void (*stats)(void *arg, struct sl_admin_stats *out);
    /* Whether this node is ready to serve; when not, a short reason into reason (cap bytes).
     * NULL: always ready. */
    bool (*ready)(void *arg, char *reason, size_t cap);
    /* Append further metric families to /metrics (the budget's); NULL: none. */
    void (*more_metrics)(void *arg, struct sl_metrics *m);
    void *arg;
};

/* Register the three routes on srv. node is borrowed: it must outlive the server. */
void sl_admin_local_routes(struct sl_admin_server *srv, const struct sl_admin_node *node);

/* The bodies, for tests and for callers composing their own answers. json: a new reference or
 * NULL; metrics: 0 with m filled, or -1. */
json_t *sl_admin_stats_json(const struct sl_admin_stats *st);
int sl_admin_stats_metrics(const struct sl_admin_stats *st, struct sl_metrics *m);

/* Outcome names of recoveries[]: label values of sluice_session_recoveries_total. */
#define SL_ADMIN_RECOVERY_NAMES                                                                    \
    {                                                                                              \
        "retried", "replayed", "replay_refused", "transaction_lost", "outcome_unknown",            \
            "state_lost"                                                                           \
    }

#endif
