/* The node's connection quotas (cluster mode): how many connections this node may hold on each
 * database budget, as granted by the leader (budget/), and the lease that backs the grant.
 *
 * Accounting: a quota counts the backends of every target with its budget key, in any state, from
 * the moment the connect starts until the database has closed the connection (as the per-target
 * limit does, pool/pool.c). A shrink takes effect as connections come back: idle ones close at
 * once, lent ones when released. Only a lost lease closes busy connections (revoke).
 *
 * Clock: the lease deadline is on uv_hrtime() (CLOCK_MONOTONIC), read again at each connect
 * decision and at each server greeting rather than taken from the loop's cached time, so that a
 * process resumed after a pause (SIGSTOP, a frozen VM) sees that its lease is over before it starts
 * anything. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "pool/internal.h"

/* "<proxy>/<host>:<port>"; false when it does not fit (a host name of over 130 characters). */
static bool make_key(const char *proxy, const char *host, uint16_t port, char *out, size_t cap)
{
    /* Endpoints are served as proxies named "<proxy>.<endpoint>"; they share the proxy's budget. */
    size_t base = strcspn(proxy, ".");
    int n = snprintf(out, cap, "%.*s/%s:%u", (int)base, proxy, host, port);
    return n > 0 && (size_t)n < cap;
}

static struct sl_quota *find(struct sl_worker *w, const char *key)
{
    struct sl_list *pos, *tmp;
    sl_list_for_each_safe (pos, tmp, &w->quotas) {
        struct sl_quota *q = sl_container_of(pos, struct sl_quota, link);
        if (strcmp(q->key, key) == 0)
            return q;
    }
    return NULL;
}

static struct sl_quota *find_or_add(struct sl_worker *w, const char *key)
{
    struct sl_quota *q = find(w, key);
    if (q)
        return q;
    q = calloc(1, sizeof *q);
    if (!q)
        return NULL;
    snprintf(q->key, sizeof q->key, "%s", key);
    sl_list_push_back(&w->quotas, &q->link);
    return q;
}

struct sl_quota *sl_quota_for(struct sl_worker *w, const struct sl_proxy_config *pc,
                              const struct sl_target *t)
{
    if (!w->budget)
        return NULL;
    char key[SL_WORKER_BUDGET_KEY_MAX + 1];
    if (!make_key(pc->name, t->host, t->port, key, sizeof key))
        sl_error(0,
                 "proxy %s: target %s: the budget key is longer than %d bytes; this target "
                 "gets no quota",
                 pc->name, t->host, SL_WORKER_BUDGET_KEY_MAX);
    return find_or_add(w, key);
}

static bool lease_over(const struct sl_worker *w)
{
    return uv_hrtime() >= w->lease_deadline_ns;
}

bool sl_quota_full(const struct sl_target *t)
{
    const struct sl_quota *q = t->quota;
    return q && (q->open >= q->limit || lease_over(t->proxy->worker));
}

bool sl_quota_lease_over(const struct sl_target *t)
{
    return t->quota && lease_over(t->proxy->worker);
}

/* Walks every target of the worker that counts against quota q, retired proxies' included (their
 * connections count too). A handful of proxies per node: a linear walk is cheaper than upkeep. */
struct target_iter {
    size_t proxy, target;
};

static struct sl_target *next_of(struct sl_worker *w, const struct sl_quota *q,
                                 struct target_iter *it)
{
    for (; it->proxy < w->n_proxies; it->proxy++, it->target = 0)
        while (it->target < w->proxies[it->proxy]->n_targets) {
            struct sl_target *t = &w->proxies[it->proxy]->targets[it->target++];
            if (t->quota == q)
                return t;
        }
    return NULL;
}

static void dispatch_all(struct sl_worker *w, struct sl_quota *q)
{
    struct target_iter it = {0};
    for (struct sl_target *t; (t = next_of(w, q, &it)) != NULL;)
        if (!sl_list_empty(&t->waiters))
            sl_pool_dispatch(t);
}

void sl_quota_released(struct sl_target *t)
{
    struct sl_worker *w = t->proxy->worker;
    if (t->quota && !w->draining)
        dispatch_all(w, t->quota);
}

bool sl_quota_waiting(const struct sl_target *t)
{
    struct sl_worker *w = t->proxy->worker;
    struct target_iter it = {0};
    for (struct sl_target *u; (u = next_of(w, t->quota, &it)) != NULL;)
        if (u != t && !sl_list_empty(&u->waiters))
            return true;
    return false;
}

struct sl_backend *sl_quota_oldest_idle(struct sl_target *t)
{
    struct sl_worker *w = t->proxy->worker;
    struct sl_backend *oldest = NULL;
    struct target_iter it = {0};
    if (!t->quota)
        return sl_pool_oldest_idle(t);
    for (struct sl_target *u; (u = next_of(w, t->quota, &it)) != NULL;) {
        struct sl_backend *b = sl_pool_oldest_idle(u);
        if (b && (!oldest || b->idle_since < oldest->idle_since))
            oldest = b;
    }
    return oldest;
}

void sl_quota_note_borrow(struct sl_target *t, double waited_s)
{
    struct sl_quota *q = t->quota;
    if (!q)
        return;
    unsigned ms = waited_s > 0 ? (unsigned)(waited_s * 1000.0) : 0;
    q->borrows++;
    q->borrow_wait_us += ms * 1000u;
    if (ms > q->borrow_wait_max_ms)
        q->borrow_wait_max_ms = ms;
}

void sl_quotas_free(struct sl_worker *w)
{
    while (!sl_list_empty(&w->quotas)) {
        struct sl_quota *q = sl_container_of(w->quotas.next, struct sl_quota, link);
        sl_list_remove(&q->link);
        free(q);
    }
}

int sl_worker_budget_enable(struct sl_worker *w, const char *source_ip)
{
    if (source_ip) {
        memset(&w->source, 0, sizeof w->source);
        if (uv_ip4_addr(source_ip, 0, &w->source) != 0)
            return -1;
        w->bind_source = true;
    }
    w->budget = true;
    /* Targets created before: count them from now on (a node enables this before serving). */
    for (size_t i = 0; i < w->n_proxies; i++)
        for (size_t k = 0; k < w->proxies[i]->n_targets; k++) {
            struct sl_target *t = &w->proxies[i]->targets[k];
            t->quota = sl_quota_for(w, w->proxies[i]->cfg, t);
            if (t->quota)
                t->quota->open += t->open;
        }
    return 0;
}

/* Close idle connections of q, oldest first, until it is within its limit. */
static void trim(struct sl_worker *w, struct sl_quota *q)
{
    struct target_iter it = {0};
    for (struct sl_target *t; (t = next_of(w, q, &it)) != NULL;) {
        struct sl_backend *b;
        while (q->open > q->limit && (b = sl_pool_oldest_idle(t)) != NULL)
            sl_backend_close(b);
    }
}

void sl_worker_set_quota(struct sl_worker *w, const char *key, unsigned quota)
{
    struct sl_quota *q = find_or_add(w, key);
    if (!q || q->limit == quota)
        return;
    sl_info(0, "budget %s: quota %u -> %u (%u open)", q->key, q->limit, quota, q->open);
    bool grew = quota > q->limit;
    q->limit = quota;
    if (grew)
        dispatch_all(w, q);
    else
        trim(w, q);
}

/* The runtime target of a served proxy (not a retired one) at host:port. */
static struct sl_target *served_target(struct sl_worker *w, const char *proxy, const char *host,
                                       uint16_t port)
{
    for (size_t i = 0; i < w->n_proxies; i++) {
        struct sl_proxy *p = w->proxies[i];
        if (p->removed || strcmp(p->cfg->name, proxy) != 0)
            continue;
        for (size_t k = 0; k < p->n_targets; k++)
            if (p->targets[k].port == port && strcmp(p->targets[k].host, host) == 0)
                return &p->targets[k];
    }
    return NULL;
}

void sl_worker_set_reader(struct sl_worker *w, const char *host, uint16_t port, bool reader)
{
    for (size_t i = 0; i < w->n_proxies; i++) {
        struct sl_proxy *p = w->proxies[i];
        for (size_t k = 0; k < p->n_targets; k++)
            if (p->targets[k].port == port && strcmp(p->targets[k].host, host) == 0) {
                bool was = p->targets[k].reader;
                p->targets[k].reader = reader;
                if (was && !reader)
                    sl_pool_reroute_waiters(&p->targets[k]);
            }
    }
}

bool sl_worker_reserve_connection(struct sl_worker *w, const char *proxy, const char *host,
                                  uint16_t port)
{
    struct sl_target *t = served_target(w, proxy, host, port);
    if (t && t->quota)
        t->quota->checked = 1;
    if (!t || w->draining || t->open >= sl_target_limit(t) || sl_quota_full(t))
        return false;
    t->open++;
    if (t->quota)
        t->quota->open++;
    return true;
}

void sl_worker_release_connection(struct sl_worker *w, const char *proxy, const char *host,
                                  uint16_t port)
{
    struct sl_target *t = served_target(w, proxy, host, port);
    if (!t || t->open == 0)
        return; /* the target went with a configuration change, and its count with it */
    t->open--;
    if (t->quota && t->quota->open > 0)
        t->quota->open--;
    if (!w->draining) {
        sl_pool_dispatch(t);
        sl_quota_released(t);
    }
}

void sl_worker_set_lease_deadline(struct sl_worker *w, uint64_t deadline_ns)
{
    w->lease_deadline_ns = deadline_ns;
}

void sl_worker_budget_revoke(struct sl_worker *w)
{
    struct sl_list *pos, *tmp;
    w->lease_deadline_ns = 0;
    sl_list_for_each_safe (pos, tmp, &w->quotas) {
        struct sl_quota *q = sl_container_of(pos, struct sl_quota, link);
        q->limit = 0;
        if (q->open > 0)
            sl_warn(0, "budget %s: lease lost; closing %u connections", q->key, q->open);
        struct target_iter it = {0};
        for (struct sl_target *t; (t = next_of(w, q, &it)) != NULL;) {
            struct sl_list *bp, *bt;
            /* An answer that arrived while this process was paused is taken first: a COMMIT
             * that went through then reaches its client instead of being reported as in doubt.
             * Nothing is sent and nothing waited for. */
            sl_list_for_each_safe (bp, bt, &t->backends) {
                struct sl_backend *b = sl_container_of(bp, struct sl_backend, target_link);
                if (b->state == SL_BE_RELAYING && b->session && b->session->cmd_sent)
                    sl_stream_read_arrived(&b->bs);
            }
            sl_list_for_each_safe (bp, bt, &t->backends)
                sl_backend_abort(sl_container_of(bp, struct sl_backend, target_link));
        }
    }
}

void sl_worker_budget_sample(struct sl_worker *w)
{
    struct sl_list *pos, *tmp;
    sl_list_for_each_safe (pos, tmp, &w->quotas) {
        struct sl_quota *q = sl_container_of(pos, struct sl_quota, link);
        unsigned demand = 0;
        struct target_iter it = {0};
        for (struct sl_target *t; (t = next_of(w, q, &it)) != NULL;)
            demand += sl_pool_lent(t) + sl_pool_waiting(t);
        /* A health-checked target needs a slot for its checks besides its clients' (else a busy
         * writer, whose pool uses all of its quota, would never be checked). */
        demand += q->checked;
        if (demand > q->peak_demand)
            q->peak_demand = demand;
    }
}

void sl_worker_budget_each(struct sl_worker *w, bool reset_peaks, sl_worker_budget_cb cb, void *arg)
{
    struct sl_list *pos, *tmp;
    sl_list_for_each_safe (pos, tmp, &w->quotas) {
        struct sl_quota *q = sl_container_of(pos, struct sl_quota, link);
        struct sl_worker_budget_use u = {
            .key = q->key,
            .quota = q->limit,
            .open = q->open,
            .peak_demand = q->peak_demand,
            .borrows = q->borrows,
            .borrow_wait_us = q->borrow_wait_us,
            .borrow_wait_max_ms = q->borrow_wait_max_ms,
        };
        struct target_iter it = {0};
        for (struct sl_target *t; (t = next_of(w, q, &it)) != NULL;) {
            u.idle += t->idle;
            u.in_use += sl_pool_lent(t);
            u.waiting += sl_pool_waiting(t);
            if (t->db_max_connections)
                u.max_connections = t->db_max_connections;
        }
        if (u.in_use + u.waiting > u.peak_demand)
            u.peak_demand = u.in_use + u.waiting;
        cb(&u, arg);
        if (reset_peaks) {
            q->peak_demand = 0;
            q->borrow_wait_max_ms = 0;
        }
    }
}
