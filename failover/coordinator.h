/* The failover coordinator: on every node it sends the node's health observations (failover/
 * health.h) to the Raft leader every report period; on the leader it keeps each node's latest
 * report and, every period, decides for each proxy with several targets whether its writer moves
 * (failover/verdict.h) and, if so, commits the new writer through Raft as a compare-and-set on the
 * writer epoch (raft/fsm.h, kind writer). Nodes then switch when they apply it (pool/worker.c).
 *
 * Clocks: the leader's monotonic clock (uv_hrtime) alone ages reports: a report counts while it is
 * younger than 3 report periods, an observation in it while its check is younger than 2 s. A
 * leader that changes starts with no reports and decides nothing until the nodes reported to it.
 * Everything runs on the control loop. */
#ifndef SL_FAILOVER_COORDINATOR_H
#define SL_FAILOVER_COORDINATOR_H

#include <stdint.h>

#include <jansson.h>
#include <uv.h>

#include "admin/forward.h"
#include "admin/server.h"
#include "failover/health.h"
#include "raft/store.h"

struct sl_failover;

struct sl_failover_options {
    uint64_t node_id;      /* this node's Raft id */
    const char *node_name; /* this node's id for "decided_by" (copied) */
    const char *token;     /* admin bearer token for node-to-node reports (copied) */
    unsigned report_ms;    /* 0 = 500 */
};

/* store, health and fwd are borrowed and must outlive the coordinator. 0 or -1 (memory). */
int sl_failover_open(struct sl_failover **out, uv_loop_t *loop, struct sl_store *store,
                     struct sl_health *health, struct sl_fwd *fwd,
                     const struct sl_failover_options *opt);
/* The store applied new entries: record a new writer epoch as an event, with this moment. */
void sl_failover_applied(struct sl_failover *f);
/* Serve POST /v1/internal/failover/report and GET /v1/events on srv. */
void sl_failover_routes(struct sl_failover *f, struct sl_admin_server *srv);
/* A node's report, as the route takes it: 0 kept, 1 not the leader, -1 malformed (err says why). */
int sl_failover_report(struct sl_failover *f, json_t *rep, char *err, size_t errlen);
/* Stop; freed once the timer is closed and no report or proposal is in flight. */
void sl_failover_close(struct sl_failover *f);

#endif
