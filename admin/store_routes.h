/* The admin routes backed by the Raft configuration store (raft/store.h): cluster status and
 * membership, secrets, proxies, target groups, targets and writers (docs/admin-api.md, "Store
 * routes").
 *
 * Writes are validated (admin/validate.h), then proposed through the store; the answer comes after
 * the commit and carries the new revision (the Raft index) in the body and in ETag. A write that
 * reaches a follower goes to the forwarder, which answers it with the leader's answer; without a
 * forwarder, for a request that was already forwarded (X-Sluice-Forwarded: 1) or with no known
 * leader, the answer is 503 with Retry-After. Reads come from this node's applied state, with
 * ?consistent=true through a Raft barrier on the leader and ?min_revision=N after this node has
 * applied N.
 *
 * Everything runs on the loop of the server and the store (the same loop). */
#ifndef SL_ADMIN_STORE_ROUTES_H
#define SL_ADMIN_STORE_ROUTES_H

#include <stdbool.h>
#include <stdint.h>

#include "admin/server.h"

struct sl_store;

struct sl_admin_forwarder {
    /* A write arrived at a follower: send it to the leader and answer rq with the leader's answer
     * (sl_admin_reply...). leader_id is the raft id of the current leader. The request carries no
     * X-Sluice-Forwarded header of its own: the forwarder adds "X-Sluice-Forwarded: 1". */
    void (*forward)(void *arg, struct sl_admin_request *rq, uint64_t leader_id);
    void *arg;
};

/* How this node sees a proxy's target (RDS's TargetHealth), for target lists. */
struct sl_admin_target_health {
    /* Fill state ("REGISTERING", "AVAILABLE", "UNAVAILABLE"), reason ("" when none) and a
     * one-line description; each buffer holds 64 bytes. */
    void (*lookup)(void *arg, const char *proxy, const char *host, int port, char *state,
                   char *reason, char *description);
    void *arg;
};

#define SL_ADMIN_MIN_REVISION_WAIT_MS 5000

struct sl_admin_store_routes;

/* Register every store-backed route on srv. fwd NULL: writes on a follower get 503 (the struct is
 * copied). Returns the routes' state, or NULL when memory ran out (nothing registered). */
struct sl_admin_store_routes *sl_admin_store_routes(struct sl_admin_server *srv,
                                                    struct sl_store *store,
                                                    const struct sl_admin_forwarder *fwd);

/* How this node sees the other members, for GET /v1/cluster: 0 with reachable and the time since
 * the member last answered (UINT64_MAX: never), or -1 when not known (yet). */
struct sl_admin_reachability {
    int (*lookup)(void *arg, uint64_t id, bool *reachable, uint64_t *last_ok_ms_ago);
    void *arg;
};
void sl_admin_store_routes_set_reachability(struct sl_admin_store_routes *r,
                                            const struct sl_admin_reachability *h);

/* Add "target_health" to every entry of GET /v1/proxies/{name}/targets (the struct is copied). */
void sl_admin_store_routes_set_health(struct sl_admin_store_routes *r,
                                      const struct sl_admin_target_health *h);

/* This node's id (its file's node.id, 1..63 bytes of A-Z a-z 0-9 . _ -), which a writer decision
 * taken on this node records as "decided_by". Until set, the node's Raft id (in decimal) is used.
 */
void sl_admin_store_routes_set_node(struct sl_admin_store_routes *r, const char *node_id);

/* How long a read with ?min_revision=N waits for this node to apply N before answering 503
 * (default SL_ADMIN_MIN_REVISION_WAIT_MS). */
void sl_admin_store_routes_set_wait(struct sl_admin_store_routes *r, unsigned ms);

/* Answer the reads still waiting for ?min_revision with 503 and free the routes' state once their
 * handles are closed (asynchronous: keep the loop running). Call it after sl_admin_server_close
 * and before sl_store_close; other requests in flight are answered by the store's callbacks
 * (SL_STORE_CLOSING gives 503). */
void sl_admin_store_routes_close(struct sl_admin_store_routes *r);

#endif
