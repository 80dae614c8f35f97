/* The node's health checks (failover/health.h), fed from the data path's configuration: every
 * target of every proxy that has more than one (where a writer is to be chosen), checked with the
 * proxy's first user, each check counted like a backend of that target (its connection limit and
 * the node's quota). */
#ifndef SL_NODE_CHECKS_H
#define SL_NODE_CHECKS_H

#include <uv.h>

#include "admin/metrics.h"
#include "base/config.h"
#include "pool/worker.h"

struct sl_health;

struct sl_node_checks {
    struct sl_health *health; /* NULL when not started or stopped */
    struct sl_worker *worker;
};

/* bind_ip: the address checks connect from (the node's data address), NULL = any. 0 or -1. */
int sl_node_checks_start(struct sl_node_checks *c, uv_loop_t *loop, struct sl_worker *w,
                         const char *bind_ip);
/* The targets of cfg's proxies; called again after every configuration change. */
void sl_node_checks_config(struct sl_node_checks *c, const struct sl_config *cfg);
/* sluice_target_health{target,state}, sluice_target_read_only{target},
 * sluice_target_semi_sync{target}, sluice_target_checks_total{target}. */
void sl_node_checks_metrics(struct sl_node_checks *c, struct sl_metrics *m);
/* done(arg) once the checks in flight have finished. */
void sl_node_checks_stop(struct sl_node_checks *c, void (*done)(void *arg), void *arg);

#endif
