#include "node/checks.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "failover/health.h"

static bool reserve(void *arg, const char *proxy, const char *host, uint16_t port)
{
    struct sl_node_checks *c = arg;
    return sl_worker_reserve_connection(c->worker, proxy, host, port);
}

static void release(void *arg, const char *proxy, const char *host, uint16_t port)
{
    struct sl_node_checks *c = arg;
    sl_worker_release_connection(c->worker, proxy, host, port);
}

/* A READ_ONLY endpoint reads from what the checks see up and read-only. */
static void on_check(void *arg, const struct sl_health_view *v)
{
    struct sl_node_checks *c = arg;
    sl_worker_set_reader(c->worker, v->host, v->port,
                         v->state == SL_HEALTH_AVAILABLE && v->read_only == 1);
}

static void push_reader(const struct sl_health_view *v, void *arg)
{
    on_check(arg, v);
}

int sl_node_checks_start(struct sl_node_checks *c, uv_loop_t *loop, struct sl_worker *w,
                         const char *bind_ip)
{
    struct sl_health_options opt = {.reserve = reserve,
                                    .release = release,
                                    .budget_arg = c,
                                    .on_check = on_check,
                                    .check_arg = c};
    if (bind_ip)
        snprintf(opt.bind_ip, sizeof opt.bind_ip, "%s", bind_ip);
    c->worker = w;
    return sl_health_start(loop, &opt, &c->health);
}

void sl_node_checks_config(struct sl_node_checks *c, const struct sl_config *cfg)
{
    if (!c->health || !cfg)
        return;
    size_t n = 0;
    for (size_t i = 0; i < cfg->n_proxies; i++)
        n += cfg->proxies[i].n_targets;
    struct sl_health_target_cfg *t = calloc(n + 1, sizeof *t);
    if (!t) {
        sl_error(0, "health checks: out of memory; keeping the previous targets");
        return;
    }
    size_t k = 0;
    for (size_t i = 0; i < cfg->n_proxies; i++) {
        const struct sl_proxy_config *pc = &cfg->proxies[i];
        /* Only where there is a writer to choose: a proxy with one target has no failover, and
         * its pool already reports its health (pool/worker.c). */
        if (pc->n_auth == 0 || pc->n_targets < 2)
            continue;
        for (size_t j = 0; j < pc->n_targets; j++, k++) {
            snprintf(t[k].host, sizeof t[k].host, "%s", pc->targets[j].host);
            t[k].port = pc->targets[j].port;
            t[k].secret = pc->auth[0].secret;
            t[k].proxy = pc->name;
            t[k].interval_ms = pc->health_check.interval_ms;
            t[k].timeout_ms = pc->health_check.timeout_ms;
            t[k].failures = pc->health_check.failures;
        }
    }
    if (sl_health_set_targets(c->health, t, k) != 0)
        sl_error(0, "health checks: out of memory; keeping the previous targets");
    free(t);
    /* Proxies the reload just created know nothing yet: tell them what the checks know. */
    sl_health_each(c->health, push_reader, c);
}

struct metrics_ctx {
    struct sl_metrics *m;
    int pass;
};

static void metric_of(const struct sl_health_view *v, void *arg)
{
    struct metrics_ctx *x = arg;
    char target[300];
    snprintf(target, sizeof target, "%s:%u", v->host, v->port);
    if (x->pass == 0) {
        const struct sl_metric_label l[] = {{"target", target},
                                            {"state", sl_health_state_name(v->state)}};
        sl_metrics_u64(x->m, "sluice_target_health", l, 2, 1);
    } else if (x->pass == 1) {
        const struct sl_metric_label l[] = {{"target", target}};
        if (v->read_only >= 0)
            sl_metrics_u64(x->m, "sluice_target_read_only", l, 1, (uint64_t)v->read_only);
    } else if (x->pass == 2) {
        const struct sl_metric_label l[] = {{"target", target}};
        if (v->semi_sync >= 0)
            sl_metrics_u64(x->m, "sluice_target_semi_sync", l, 1, (uint64_t)v->semi_sync);
    } else {
        const struct sl_metric_label l[] = {{"target", target}};
        sl_metrics_u64(x->m, "sluice_target_checks_total", l, 1, v->checks);
    }
}

void sl_node_checks_metrics(struct sl_node_checks *c, struct sl_metrics *m)
{
    if (!c->health)
        return;
    struct metrics_ctx x = {m, 0};
    sl_metrics_family(m, "sluice_target_health", SL_METRIC_GAUGE,
                      "Health of each database target as this node's checks see it (1 for the "
                      "current state).");
    sl_health_each(c->health, metric_of, &x);
    x.pass = 1;
    sl_metrics_family(m, "sluice_target_read_only", SL_METRIC_GAUGE,
                      "@@read_only of each target at its last good check.");
    sl_health_each(c->health, metric_of, &x);
    x.pass = 2;
    sl_metrics_family(m, "sluice_target_semi_sync", SL_METRIC_GAUGE,
                      "Whether the semi-synchronous master side was active at the last good check "
                      "(Rpl_semi_sync_master_status).");
    sl_health_each(c->health, metric_of, &x);
    x.pass = 3;
    sl_metrics_family(m, "sluice_target_checks_total", SL_METRIC_COUNTER,
                      "Health checks finished, per target.");
    sl_health_each(c->health, metric_of, &x);
}

void sl_node_checks_stop(struct sl_node_checks *c, void (*done)(void *arg), void *arg)
{
    struct sl_health *h = c->health;
    c->health = NULL;
    if (h)
        sl_health_stop(h, done, arg);
    else
        done(arg);
}
