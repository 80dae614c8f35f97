/* A worker: one libuv loop that owns client sessions, backend connections and pools for the proxies
 * of a configuration snapshot. The daemon runs one today; the structure allows one per core later
 * (each with SO_REUSEPORT listeners and its own pools, no lock on the per-query path). */
#ifndef SL_POOL_WORKER_H
#define SL_POOL_WORKER_H

#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "base/config.h"

struct sl_worker;

#define SL_WORKER_PIN_REASONS 15 /* == SL_PIN_REASON_COUNT */

struct sl_worker_stats {
    uint64_t client_connections_total;
    uint64_t client_connections_active;
    uint64_t auth_failures;
    uint64_t backend_connections_opened;
    uint64_t backend_connections_active;
    uint64_t borrow_timeouts;
    uint64_t borrow_waits; /* commands that had to queue for a backend */
    uint64_t queries;
    /* Backend connections lost under a session (failover, fencing, a killed connection), and what
     * became of the session's work: */
    uint64_t backends_lost_under_session;
    uint64_t statements_retried;    /* sent again on another connection, unnoticed */
    uint64_t transactions_replayed; /* replayed with every result matching */
    uint64_t replay_mismatches;     /* refused: a replayed result differed */
    uint64_t transactions_lost;     /* failed with 1213 (not replayable, or replay refused) */
    uint64_t outcomes_unknown;      /* COMMIT or a write in flight: 1180 / 08007 */
    uint64_t session_states_lost;   /* pinned state gone: 1927 */
    /* Sessions pinned, by reason: index i counts reason bit 1 << i (pool/pinscan.h; its name is
     * sl_pin_reason_name(1 << i)), each time a session gets that reason. */
    uint64_t pins[SL_WORKER_PIN_REASONS];
};

/* Start serving cfg (ownership moves to the worker on success): open listeners, resolve secrets.
 * Returns 0, or -1 with a reason in err (nothing is left running). */
int sl_worker_start(uv_loop_t *loop, struct sl_config *cfg, struct sl_worker **out, char *err,
                    size_t errlen);

/* Apply a new configuration (ownership moves on success). Proxies are matched by name: new ones
 * start listening, removed ones stop accepting (their sessions finish), changed settings apply to
 * new logins and new backend connections. On failure the old configuration stays in force. */
int sl_worker_reload(struct sl_worker *w, struct sl_config *cfg, char *err, size_t errlen);

/* Stop accepting; close idle clients now and the others when their transaction ends or after
 * timeout_ms; then close backends and call done(arg). The worker must then be freed. */
void sl_worker_drain(struct sl_worker *w, uint64_t timeout_ms, void (*done)(void *arg), void *arg);

void sl_worker_free(struct sl_worker *w);

const struct sl_worker_stats *sl_worker_stats(const struct sl_worker *w);

/* Connections right now, by state (counted on demand: for the admin API, not the hot path). */
struct sl_worker_state_counts {
    uint64_t clients_handshake, clients_idle, clients_waiting, clients_busy;
    uint64_t backends_connecting, backends_idle, backends_in_use;
};
void sl_worker_state_counts(struct sl_worker *w, struct sl_worker_state_counts *out);

/* RDS-style health of one target of a served proxy, as this worker sees it: state
 * "REGISTERING" (no connection tried yet: pools open lazily), "AVAILABLE" or "UNAVAILABLE" with a
 * reason ("CONNECTION_FAILED", "AUTH_FAILURE", "INIT_QUERY_FAILED", "UNSUPPORTED_SERVER"). Returns
 * 0, or -1 when this worker serves no such proxy and target. The strings stay valid until the next
 * loop iteration. */
int sl_worker_target_health(const struct sl_worker *w, const char *proxy, const char *host,
                            uint16_t port, const char **state, const char **reason);

/* ---- The node's connection budget (cluster mode) --------------------------------------------
 *
 * A budget key names one database budget: "<proxy>/<host>:<port>", proxy being the proxy's name
 * without an endpoint suffix (a proxy and its endpoints share one budget). Once enabled, every
 * target's connections count against the node's quota for its key, in any state, from the moment
 * a connect starts until the database has closed the connection, and no connection starts after
 * the lease deadline. Quotas start at 0: nothing opens before sl_worker_set_quota. */
#define SL_WORKER_BUDGET_KEY_MAX 200

/* Enable quotas. source_ip (IPv4, or NULL for any) is the local address backends connect from, so
 * that the database can tell this node's connections apart (fencing). 0, or -1 when source_ip is
 * not an IPv4 address. */
int sl_worker_budget_enable(struct sl_worker *w, const char *source_ip);

/* Set key's quota: more lets waiters in at once; less closes idle connections now and busy ones
 * when their session releases them. */
void sl_worker_set_quota(struct sl_worker *w, const char *key, unsigned quota);

/* The lease's end on uv_hrtime()'s clock (CLOCK_MONOTONIC, ns); 0: no lease. Checked before every
 * connect and again when the server's greeting arrives. */
void sl_worker_set_lease_deadline(struct sl_worker *w, uint64_t deadline_ns);

/* The lease ran out: every quota drops to 0 and every connection counted against one is closed at
 * once, busy ones too (their clients get an error), because another node may get the quota. */
void sl_worker_budget_revoke(struct sl_worker *w);

struct sl_worker_budget_use {
    const char *key;
    unsigned quota;              /* current limit */
    unsigned open;               /* connections in any state */
    unsigned idle;               /* of which parked in a pool */
    unsigned in_use;             /* of which lent to a session */
    unsigned waiting;            /* sessions waiting for a connection */
    unsigned peak_demand;        /* highest in_use + waiting sampled since the last reset */
    unsigned max_connections;    /* @@max_connections as last read by a backend, 0 if unknown */
    uint64_t borrows;            /* borrows served, ever */
    uint64_t borrow_wait_us;     /* their total wait, ever */
    unsigned borrow_wait_max_ms; /* longest wait since the last reset */
};

/* A database connection opened outside the pools (a health check) counts like a backend of the
 * proxy's target while it is open: against the target's connection limit and, in a cluster, the
 * node's quota. Reserve before connecting (false: no room, the lease is over, the node drains or
 * does not serve that target), release once it is closed. */
bool sl_worker_reserve_connection(struct sl_worker *w, const char *proxy, const char *host,
                                  uint16_t port);
void sl_worker_release_connection(struct sl_worker *w, const char *proxy, const char *host,
                                  uint16_t port);

/* The health checks' verdict on a target at host:port, for every proxy that has it: usable as a
 * reader (up and read-only) or not. */
void sl_worker_set_reader(struct sl_worker *w, const char *host, uint16_t port, bool reader);

/* Sample demand (lent out + waiting) into each quota's peak; cheap, for a 100 ms timer. */
void sl_worker_budget_sample(struct sl_worker *w);

/* Call cb for every quota (in creation order); reset_peaks starts a new peak window. */
typedef void (*sl_worker_budget_cb)(const struct sl_worker_budget_use *u, void *arg);
void sl_worker_budget_each(struct sl_worker *w, bool reset_peaks, sl_worker_budget_cb cb,
                           void *arg);

#endif
