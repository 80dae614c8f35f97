/* The global connection budget on one node: the node's agent (reports demand to the leader, turns
 * committed grants and lease renewals into the worker's quotas and lease deadline) and, while this
 * node leads, the allocator's side (renews leases, moves quota toward demand, fences nodes whose
 * lease ran out, reads @@max_connections). docs/budget.md has the whole argument.
 *
 * Everything runs on the control loop's thread. The committed table lives in the Raft store
 * (raft/budget.h); the only volatile state is this node's send times of its reports (the anchors of
 * its leases) and, on the leader, the latest report of each node and its lease expiry.
 *
 * Clocks. Lease arithmetic uses uv_hrtime() (CLOCK_MONOTONIC) on each machine separately; no two
 * clocks are ever compared. Assumed: each monotonic clock runs at a rate within drift_pct of real
 * time, and the database drops a connection within close_margin_ms after the node closed it. */
#ifndef SL_BUDGET_BUDGET_H
#define SL_BUDGET_BUDGET_H

#include <stdint.h>

#include <uv.h>

#include "admin/forward.h"
#include "admin/metrics.h"
#include "admin/server.h"
#include "base/config.h"
#include "pool/worker.h"
#include "raft/store.h"

struct sl_budget_options {
    uint64_t node_id;         /* this node's Raft id */
    const char *token;        /* admin bearer token, sent with reports to the leader */
    unsigned lease_ms;        /* lease length; 0 = 5000 */
    unsigned report_ms;       /* report and allocation period; 0 = 500 */
    unsigned drift_pct;       /* assumed clock-rate error bound, percent; 0 = 5 */
    unsigned close_margin_ms; /* time the database needs to drop a closed connection; 0 = 500 */
    unsigned probe_ms;        /* @@max_connections refresh period on the leader; 0 = 5000 */
};

struct sl_budget;

/* Start the agent (and, whenever this node leads, the leader's side). store, worker and fwd are
 * borrowed and must outlive the budget. The worker must have quotas enabled
 * (sl_worker_budget_enable). 0, or -1 when memory ran out. */
int sl_budget_open(struct sl_budget **out, uv_loop_t *loop, struct sl_store *store,
                   struct sl_worker *worker, struct sl_fwd *fwd,
                   const struct sl_budget_options *opt);

/* The proxies being served changed: the budget keys, their databases, percentages and users are
 * copied from cfg. */
void sl_budget_set_config(struct sl_budget *b, const struct sl_config *cfg);

/* The store applied new entries: take up committed grants and renewals. */
void sl_budget_applied(struct sl_budget *b);

/* Serve GET /v1/budget and POST /v1/internal/budget/report on srv. */
void sl_budget_routes(struct sl_budget *b, struct sl_admin_server *srv);

/* Append the budget's families to /metrics: per key the budget, the committed sum, this node's
 * cap, quota, open, in use, waiting and borrow waits; this node's remaining lease. */
void sl_budget_metrics(struct sl_budget *b, struct sl_metrics *m);

/* The node is shutting down and its pools are drained: open no more connections, wait (at most
 * 3 s) until every connection is closed, then tell the leader with a last report so that it
 * revokes this node's quota at once instead of after its lease. done(arg) follows in every case
 * (at once on the leader, whose quota a successor revokes after the lease). */
void sl_budget_leave(struct sl_budget *b, void (*done)(void *arg), void *arg);

/* Stop timers; the budget is freed once its handles are closed and its probes have returned. */
void sl_budget_close(struct sl_budget *b);

#endif
