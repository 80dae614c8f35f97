/* The node's budget agent: reports demand to the leader, and turns committed grants and lease
 * renewals into the worker's quotas and lease deadline.
 *
 * Lease anchor (budget/lease.h has the arithmetic and its argument). A renewal names the sequence
 * number of the report it answers; the node remembers when it sent each report and holds its lease
 * from that moment. A renewal for a report this process did not send (a previous incarnation's)
 * gives no lease.
 *
 * Ahead of the deadline (two report periods before it) the node takes its quotas down to zero
 * softly: idle connections close at once and busy ones when released. At the deadline it closes
 * whatever is left, busy connections included (sl_worker_budget_revoke). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "budget/internal.h"
#include "budget/lease.h"

#define SAMPLE_MS 100

static uint64_t node_lease_ns(const struct sl_budget *b)
{
    struct sl_lease_params p = {b->opt.lease_ms, b->opt.drift_pct, b->opt.close_margin_ms};
    return sl_lease_node_ns(&p);
}

/* ---- quotas and the lease ---------------------------------------------------------------- */

struct sync_ctx {
    struct sl_budget *b;
    const struct sl_budget_table *t;
    bool lease_valid;
};

static void sync_one(const struct sl_worker_budget_use *u, void *arg)
{
    struct sync_ctx *c = arg;
    unsigned quota = 0;
    const struct sl_budget_entry *e = sl_budget_find(c->t, u->key);
    const struct sl_budget_holder *h = e ? sl_budget_holder_of(e, c->b->opt.node_id) : NULL;
    if (h && c->lease_valid)
        quota = h->quota;
    sl_worker_set_quota(c->b->worker, u->key, quota);
}

/* The worker's quotas: the committed ones while the lease holds (and is not about to end). */
static void sync_quotas(struct sl_budget *b, const struct sl_budget_table *t)
{
    struct sync_ctx c = {b, t, b->lease_deadline_ns > uv_hrtime() && !b->soft_expired};
    sl_worker_budget_each(b->worker, false, sync_one, &c);
}

static void on_soft_expiry(uv_timer_t *timer)
{
    struct sl_budget *b = timer->data;
    sl_warn(0, "budget: lease ends in %" PRIu64 " ms without renewal; closing connections",
            (b->lease_deadline_ns - uv_hrtime()) / 1000000u);
    b->soft_expired = true;
    struct sl_budget_table empty;
    sl_budget_table_init(&empty);
    sync_quotas(b, &empty);
}

static void on_hard_expiry(uv_timer_t *timer)
{
    struct sl_budget *b = timer->data;
    sl_warn(0, "budget: lease over; every database connection of this node is closed");
    b->lease_deadline_ns = 0;
    b->soft_expired = false;
    sl_worker_budget_revoke(b->worker);
}

static uint64_t sent_at(const struct sl_budget *b, uint64_t seq)
{
    for (size_t i = 0; i < SENT_RING; i++)
        if (b->sent[i].seq == seq)
            return b->sent[i].sent_ns;
    return 0;
}

static void take_lease(struct sl_budget *b, const struct sl_budget_table *t)
{
    const struct sl_budget_lease *l = sl_budget_lease_of(t, b->opt.node_id);
    if (!l || l->seq == b->lease_seq)
        return;
    uint64_t sent = sent_at(b, l->seq);
    if (!sent)
        return; /* another incarnation's report, or too old to remember */
    uint64_t deadline = sent + node_lease_ns(b), now = uv_hrtime();
    b->lease_seq = l->seq;
    if (deadline <= b->lease_deadline_ns || deadline <= now)
        return;
    if (!b->lease_deadline_ns || b->soft_expired)
        sl_info(0, "budget: lease held for %" PRIu64 " ms", (deadline - now) / 1000000u);
    b->lease_deadline_ns = deadline;
    b->soft_expired = false;
    sl_worker_set_lease_deadline(b->worker, deadline);
    uint64_t soft = 2u * b->opt.report_ms;
    uint64_t left_ms = (deadline - now) / 1000000u;
    uv_timer_start(&b->soft_timer, on_soft_expiry, left_ms > soft ? left_ms - soft : 0, 0);
    uv_timer_start(&b->hard_timer, on_hard_expiry, left_ms, 0);
}

void sl_budget_applied(struct sl_budget *b)
{
    struct sl_budget_table t;
    if (b->closing || b->leaving || sl_budget_read_table(b, &t) != 0)
        return;
    take_lease(b, &t);
    sync_quotas(b, &t);
    sl_budget_table_free(&t);
}

/* ---- reports ------------------------------------------------------------------------------- */

static void add_use(const struct sl_worker_budget_use *u, void *arg)
{
    json_t *keys = arg;
    json_array_append_new(keys,
                          json_pack("{s:s,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "key", u->key, "open",
                                    (json_int_t)u->open, "in_use", (json_int_t)u->in_use, "idle",
                                    (json_int_t)u->idle, "waiting", (json_int_t)u->waiting,
                                    "demand", (json_int_t)u->peak_demand, "max_connections",
                                    (json_int_t)u->max_connections, "quota", (json_int_t)u->quota,
                                    "borrow_wait_max_ms", (json_int_t)u->borrow_wait_max_ms));
}

static void on_report_answer(int status, const char *body, size_t len, const char *error, void *arg)
{
    struct sl_budget *b = arg;
    b->pending--;
    b->report_in_flight = false;
    if (status != 204 && !b->closing)
        sl_debug(0, "budget: report to the leader: %s", error ? error : "refused");
    sl_budget_maybe_free(b);
}

/* The leader's admin URL from its node resource, or NULL. */
static char *leader_url(struct sl_budget *b)
{
    struct sl_store_info info;
    sl_store_info(b->store, &info);
    return info.leader_id ? sl_store_node_field(b->store, info.leader_id, "admin_url") : NULL;
}

static void on_report_timer(uv_timer_t *timer)
{
    struct sl_budget *b = timer->data;
    struct sl_store_info info;
    if (b->closing || b->leaving || b->report_in_flight)
        return;
    sl_store_info(b->store, &info);
    json_t *keys = json_array();
    sl_worker_budget_each(b->worker, true, add_use, keys);
    uint64_t seq = b->boot | ++b->counter;
    json_t *rep =
        json_pack("{s:I,s:I,s:I,s:o}", "node", (json_int_t)b->opt.node_id, "seq", (json_int_t)seq,
                  "applied", (json_int_t)info.applied_index, "keys", keys);
    if (!rep)
        return;
    /* The send time is taken before the report leaves: the lease is anchored no later than the
     * leader's receipt. */
    b->reported_ns = uv_hrtime();
    b->sent[b->sent_next] = (struct sent){seq, b->reported_ns};
    b->sent_next = (b->sent_next + 1) % SENT_RING;
    char err[160];
    if (info.state == SL_STORE_LEADER) {
        if (sl_budget_leader_report(b, rep, err, sizeof err) < 0)
            sl_warn(0, "budget: own report refused: %s", err);
        json_decref(rep);
        return;
    }
    char *url = leader_url(b);
    char *body = url ? json_dumps(rep, JSON_COMPACT) : NULL;
    json_decref(rep);
    /* A report older than two periods is worth less than the next one: a leader that does not
     * answer (paused, gone) must not hold the next reports back for long. */
    if (body && sl_fwd_post(b->fwd, url, "/v1/internal/budget/report", b->token, body, strlen(body),
                            2u * b->opt.report_ms, on_report_answer, b) == 0) {
        b->pending++;
        b->report_in_flight = true;
    }
    free(body);
    free(url);
}

/* ---- leaving ----------------------------------------------------------------------------- */

#define LEAVE_WAIT_MS 3000

static void leave_done(struct sl_budget *b)
{
    void (*left)(void *) = b->left;
    b->left = NULL;
    uv_timer_stop(&b->soft_timer);
    if (left)
        left(b->left_arg);
}

static void on_leave_answer(int status, const char *body, size_t len, const char *error, void *arg)
{
    struct sl_budget *b = arg;
    b->pending--;
    if (status == 204)
        sl_info(0, "budget: the leader was told this node holds no connection any more");
    else
        sl_warn(0,
                "budget: the leader did not take the last report (%s); it revokes this node's "
                "quota after its lease",
                error ? error : "refused");
    leave_done(b);
    sl_budget_maybe_free(b);
}

static void count_open(const struct sl_worker_budget_use *u, void *arg)
{
    *(unsigned *)arg += u->open;
}

/* Polled on the soft timer until the pools are empty (or the wait is over). */
static void on_leave_poll(uv_timer_t *timer)
{
    struct sl_budget *b = timer->data;
    unsigned open = 0;
    sl_worker_budget_each(b->worker, false, count_open, &open);
    if (open > 0 && uv_hrtime() < b->leave_deadline_ns) {
        uv_timer_start(&b->soft_timer, on_leave_poll, 50, 0);
        return;
    }
    char *url = open == 0 ? leader_url(b) : NULL;
    json_t *keys = json_array();
    sl_worker_budget_each(b->worker, false, add_use, keys);
    json_t *rep = json_pack("{s:I,s:I,s:I,s:o,s:b}", "node", (json_int_t)b->opt.node_id, "seq",
                            (json_int_t)(b->boot | ++b->counter), "applied", (json_int_t)0, "keys",
                            keys, "leaving", 1);
    char *body = url && rep ? json_dumps(rep, JSON_COMPACT) : NULL;
    json_decref(rep);
    if (body && sl_fwd_post(b->fwd, url, "/v1/internal/budget/report", b->token, body, strlen(body),
                            2u * b->opt.report_ms, on_leave_answer, b) == 0) {
        b->pending++;
    } else {
        if (open > 0)
            sl_warn(0,
                    "budget: %u connections still closing; the leader revokes this node's "
                    "quota after its lease",
                    open);
        leave_done(b);
    }
    free(body);
    free(url);
}

void sl_budget_leave(struct sl_budget *b, void (*done)(void *arg), void *arg)
{
    struct sl_store_info info;
    sl_store_info(b->store, &info);
    /* Nothing opens from now on; the periodic reports stop so the last one is the last, and no
     * renewal is taken up any more. */
    b->leaving = true;
    sl_worker_set_lease_deadline(b->worker, 0);
    uv_timer_stop(&b->report_timer);
    uv_timer_stop(&b->hard_timer);
    if (info.state == SL_STORE_LEADER) {
        done(arg);
        return;
    }
    b->left = done;
    b->left_arg = arg;
    b->leave_deadline_ns = uv_hrtime() + (uint64_t)LEAVE_WAIT_MS * 1000000u;
    uv_timer_start(&b->soft_timer, on_leave_poll, 0, 0);
}

static void find_starved(const struct sl_worker_budget_use *u, void *arg)
{
    bool *starved = arg;
    if (u->waiting > 0 && u->open == 0)
        *starved = true;
}

/* Sample demand; when clients wait and the node has no connection at all (a new budget, a lease
 * just regained), report now instead of at the next tick. Under steady load the periodic reports
 * suffice (and keep the Raft log from growing with every wait). */
static void on_sample_timer(uv_timer_t *timer)
{
    struct sl_budget *b = timer->data;
    bool starved = false;
    sl_worker_budget_sample(b->worker);
    sl_worker_budget_each(b->worker, false, find_starved, &starved);
    if (starved && uv_hrtime() - b->reported_ns >= (uint64_t)SAMPLE_MS * 1000000u)
        on_report_timer(&b->report_timer);
}

/* ---- life cycle ----------------------------------------------------------------------------- */

static void free_keys(struct sl_budget *b)
{
    for (size_t i = 0; i < b->n_keys; i++)
        for (size_t k = 0; k < b->keys[i].n_secrets; k++)
            free(b->keys[i].secrets[k]);
    b->n_keys = 0;
}

void sl_budget_set_config(struct sl_budget *b, const struct sl_config *cfg)
{
    struct key_cfg old[KEYS_MAX];
    size_t n_old = b->n_keys;
    memcpy(old, b->keys, sizeof old);
    b->n_keys = 0;
    for (size_t i = 0; i < cfg->n_proxies; i++) {
        const struct sl_proxy_config *pc = &cfg->proxies[i];
        if (strchr(pc->name, '.'))
            continue; /* an endpoint: shares its proxy's budget */
        for (size_t t = 0; t < pc->n_targets && b->n_keys < KEYS_MAX; t++) {
            struct key_cfg *k = &b->keys[b->n_keys];
            memset(k, 0, sizeof *k);
            snprintf(k->key, sizeof k->key, "%s/%s:%u", pc->name, pc->targets[t].host,
                     pc->targets[t].port);
            snprintf(k->host, sizeof k->host, "%s", pc->targets[t].host);
            k->port = pc->targets[t].port;
            k->percent = pc->pool.max_connections_percent;
            for (size_t a = 0; a < pc->n_auth && k->n_secrets < USERS_MAX; a++)
                k->secrets[k->n_secrets++] = strdup(pc->auth[a].secret);
            /* Keep what the leader already learnt about this database. */
            for (size_t o = 0; o < n_old; o++)
                if (strcmp(old[o].key, k->key) == 0) {
                    k->probed_max_connections = old[o].probed_max_connections;
                    k->probed_at_ns = old[o].probed_at_ns;
                    k->probing = old[o].probing;
                }
            b->n_keys++;
        }
    }
    for (size_t o = 0; o < n_old; o++)
        for (size_t s = 0; s < old[o].n_secrets; s++)
            free(old[o].secrets[s]);
}

static void init_timer(struct sl_budget *b, uv_timer_t *t)
{
    uv_timer_init(b->loop, t);
    t->data = b;
    b->open_handles++;
}

int sl_budget_open(struct sl_budget **out, uv_loop_t *loop, struct sl_store *store,
                   struct sl_worker *worker, struct sl_fwd *fwd,
                   const struct sl_budget_options *opt)
{
    struct sl_budget *b = calloc(1, sizeof *b);
    if (!b || !(b->token = strdup(opt->token))) {
        free(b);
        return -1;
    }
    b->loop = loop;
    b->store = store;
    b->worker = worker;
    b->fwd = fwd;
    b->opt = *opt;
    b->opt.token = b->token;
    if (!b->opt.lease_ms)
        b->opt.lease_ms = 5000;
    if (!b->opt.report_ms)
        b->opt.report_ms = 500;
    if (!b->opt.drift_pct)
        b->opt.drift_pct = 5;
    if (!b->opt.close_margin_ms)
        b->opt.close_margin_ms = 500;
    if (!b->opt.probe_ms)
        b->opt.probe_ms = 5000;
    /* Sequence numbers: 30 random bits per process above a 32-bit counter, below 2^62 (they
     * travel as JSON integers). */
    uint32_t r = 0;
    if (uv_random(NULL, NULL, &r, sizeof r, 0, NULL) != 0)
        r = (uint32_t)uv_hrtime();
    b->boot = (uint64_t)(r & 0x3fffffffu) << 32;
    init_timer(b, &b->sample_timer);
    init_timer(b, &b->report_timer);
    init_timer(b, &b->soft_timer);
    init_timer(b, &b->hard_timer);
    init_timer(b, &b->round_timer);
    uv_timer_start(&b->sample_timer, on_sample_timer, SAMPLE_MS, SAMPLE_MS);
    uv_timer_start(&b->report_timer, on_report_timer, b->opt.report_ms, b->opt.report_ms);
    sl_budget_leader_start(b);
    *out = b;
    return 0;
}

void sl_budget_maybe_free(struct sl_budget *b)
{
    if (!b->closing || b->pending || b->open_handles)
        return;
    free_keys(b);
    free(b->token);
    free(b);
}

void sl_budget_handle_closed(uv_handle_t *h)
{
    struct sl_budget *b = h->data;
    b->open_handles--;
    sl_budget_maybe_free(b);
}

void sl_budget_close(struct sl_budget *b)
{
    b->closing = true;
    uv_timer_t *timers[] = {&b->sample_timer, &b->report_timer, &b->soft_timer, &b->hard_timer,
                            &b->round_timer};
    for (size_t i = 0; i < sizeof timers / sizeof *timers; i++)
        uv_close((uv_handle_t *)timers[i], sl_budget_handle_closed);
}
