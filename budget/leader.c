/* The leader's side of the budget: every report period it proposes one Raft entry with
 *   - LIMIT for each budget key whose @@max_connections or percentage changed,
 *   - RENEW for each node that reported since the last round (the lease anchor is the report),
 *   - CONFIRM for each node that applied its last shrink and holds no more than its quota,
 *   - SET for the quotas the allocator (budget/alloc.h) wants moved,
 *   - REVOKE for each node whose lease ran out and whose connections were fenced away,
 * and waits for that entry before the next one, so each round sees the committed table.
 *
 * Lease expiry on the leader's clock: a node's lease is over for sure at
 *   max(takeover, latest report received) + lease_ms * (100 + drift_pct) / 100,
 * where takeover is when this node became leader: a new leader cannot know when its predecessors
 * last renewed, but every renewal they committed answered a report sent before this term began.
 * Only then does the leader fence the node (kill its connections at the database, identified by
 * the node's data address, and check PROCESSLIST that none is left) and revoke its quota.
 *
 * Probes (fence, @@max_connections) use the key's reserve of RESERVE connections, never granted to
 * a node: the current leader's probe, and one a deposed leader may still have open (a leader that
 * lost its quorum steps down within an election timeout, and a probe is bounded by
 * PROBE_TIMEOUT_MS; a deposed leader paused mid-probe keeps its connection until it is fenced like
 * any silent node, because probes connect from the leader's data address too). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/secret.h"
#include "budget/alloc.h"
#include "budget/dbprobe.h"
#include "budget/internal.h"
#include "budget/lease.h"

#define PROBE_TIMEOUT_MS 2000
#define RESERVE          2
#define OPS_MAX          1024

static uint64_t ms_ns(uint64_t ms)
{
    return ms * 1000000u;
}

static uint64_t leader_lease_ns(const struct sl_budget *b)
{
    struct sl_lease_params p = {b->opt.lease_ms, b->opt.drift_pct, b->opt.close_margin_ms};
    return sl_lease_leader_ns(&p);
}

bool sl_budget_leading(const struct sl_budget *b)
{
    return b->led_term != 0;
}

static struct node_view *view_of(struct sl_budget *b, uint64_t node, bool add)
{
    for (size_t i = 0; i < b->n_nodes; i++)
        if (b->nodes[i].node == node)
            return &b->nodes[i];
    if (!add || b->n_nodes == NODES_MAX)
        return NULL;
    struct node_view *v = &b->nodes[b->n_nodes++];
    memset(v, 0, sizeof *v);
    v->node = node;
    /* Whatever a predecessor renewed ends by then. */
    v->expiry_ns = b->takeover_ns + leader_lease_ns(b);
    return v;
}

const struct node_view *sl_budget_leader_view(const struct sl_budget *b, uint64_t node)
{
    for (size_t i = 0; i < b->n_nodes; i++)
        if (b->nodes[i].node == node)
            return &b->nodes[i];
    return NULL;
}

static struct key_cfg *key_cfg_of(struct sl_budget *b, const char *key)
{
    for (size_t i = 0; i < b->n_keys; i++)
        if (strcmp(b->keys[i].key, key) == 0)
            return &b->keys[i];
    return NULL;
}

static const struct key_use *use_of(const struct node_view *v, const char *key)
{
    for (size_t i = 0; i < v->n_keys; i++)
        if (strcmp(v->keys[i].key, key) == 0)
            return &v->keys[i];
    return NULL;
}

/* ---- reports ------------------------------------------------------------------------------- */

static void on_round(uv_timer_t *timer);

/* Run a round at once (or right after the proposal in flight commits). */
static void soon(struct sl_budget *b)
{
    if (b->closing)
        return;
    if (b->proposing)
        b->again = true;
    else
        uv_timer_start(&b->round_timer, on_round, 0, b->opt.report_ms);
}

/* A node shutting down says it closed everything and opens nothing more: its quota can be revoked
 * without waiting for its lease. Only when every key shows nothing open, and only when the report
 * comes from the same process (the high bits of seq) as the node's latest report: a last report of
 * a previous incarnation arriving late must not revoke what a restarted node already uses. */
static void note_leaving(struct sl_budget *b, struct node_view *v, uint64_t seq,
                         const struct key_use *uses, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (uses[i].open > 0)
            return;
    if (v->reported && v->seq >> 32 != seq >> 32)
        return;
    sl_info(0, "budget: node %" PRIu64 " left with no connection open; revoking its quota",
            v->node);
    v->fence = FENCE_DONE;
    soon(b);
}

static int get_uint(json_t *o, const char *name, uint64_t max, uint64_t *out)
{
    json_t *v = json_object_get(o, name);
    if (!json_is_integer(v) || json_integer_value(v) < 0 || (uint64_t)json_integer_value(v) > max)
        return -1;
    *out = (uint64_t)json_integer_value(v);
    return 0;
}

int sl_budget_leader_report(struct sl_budget *b, json_t *rep, char *err, size_t errlen)
{
    uint64_t node, seq, applied;
    json_t *keys = json_object_get(rep, "keys");
    if (!json_is_object(rep) || get_uint(rep, "node", UINT64_MAX >> 1, &node) ||
        get_uint(rep, "seq", UINT64_MAX >> 1, &seq) ||
        get_uint(rep, "applied", UINT64_MAX >> 1, &applied) || !json_is_array(keys) ||
        json_array_size(keys) > KEYS_MAX || node == 0 || seq == 0) {
        snprintf(err, errlen, "a report needs node, seq, applied and keys (at most %d)", KEYS_MAX);
        return -1;
    }
    /* Check every key before keeping anything: a malformed report changes nothing. */
    struct key_use uses[KEYS_MAX];
    size_t n = json_array_size(keys);
    for (size_t i = 0; i < n; i++) {
        json_t *k = json_array_get(keys, i);
        const char *name = json_string_value(json_object_get(k, "key"));
        uint64_t open, in_use, waiting, demand, mc;
        if (!name || !sl_budget_key_valid(name) || get_uint(k, "open", UINT32_MAX, &open) ||
            get_uint(k, "in_use", UINT32_MAX, &in_use) ||
            get_uint(k, "waiting", UINT32_MAX, &waiting) ||
            get_uint(k, "demand", UINT32_MAX, &demand) ||
            get_uint(k, "max_connections", UINT32_MAX, &mc)) {
            snprintf(err, errlen,
                     "keys[%zu]: needs key, open, in_use, waiting, demand, "
                     "max_connections",
                     i);
            return -1;
        }
        memset(&uses[i], 0, sizeof uses[i]);
        snprintf(uses[i].key, sizeof uses[i].key, "%s", name);
        uses[i].open = (unsigned)open;
        uses[i].in_use = (unsigned)in_use;
        uses[i].waiting = (unsigned)waiting;
        uses[i].max_connections = (unsigned)mc;
        /* Optional: the longest borrow wait the node saw since its previous report. */
        uint64_t wait_ms = 0;
        if (json_object_get(k, "borrow_wait_max_ms") &&
            get_uint(k, "borrow_wait_max_ms", UINT32_MAX, &wait_ms)) {
            snprintf(err, errlen, "keys[%zu].borrow_wait_max_ms: not a count", i);
            return -1;
        }
        uses[i].borrow_wait_max_ms = (unsigned)wait_ms;
        uses[i].demand[0] = (unsigned)demand;
    }
    json_t *leaving = json_object_get(rep, "leaving");
    if (leaving && !json_is_boolean(leaving)) {
        snprintf(err, errlen, "leaving: must be true or false");
        return -1;
    }
    if (!sl_budget_leading(b))
        return 1;
    struct node_view *v = view_of(b, node, true);
    if (!v) {
        snprintf(err, errlen, "too many nodes");
        return -1;
    }
    if (json_is_true(leaving)) {
        note_leaving(b, v, seq, uses, n);
        return 0;
    }
    /* Keep the previous peaks of each key for the demand window. */
    for (size_t i = 0; i < n; i++) {
        const struct key_use *old = use_of(v, uses[i].key);
        if (old)
            memcpy(&uses[i].demand[1], &old->demand[0], sizeof(unsigned) * (DEMAND_WINDOW - 1));
    }
    memcpy(v->keys, uses, n * sizeof *uses);
    v->n_keys = n;
    v->reported = true;
    v->seq = seq;
    v->applied = applied;
    v->received_ns = uv_hrtime();
    /* Clients wait on a node that has no connection at all: allocate now, not at the next tick. */
    for (size_t i = 0; i < n; i++)
        if (uses[i].waiting > 0 && uses[i].open == 0)
            soon(b);
    return 0;
}

/* ---- probes ---------------------------------------------------------------------------------- */

/* Credentials of a key's users into rq (resolved now; wiped by the caller). */
static int fill_creds(const struct key_cfg *k, struct sl_dbprobe_request *rq)
{
    rq->n_creds = 0;
    for (size_t i = 0; i < k->n_secrets && rq->n_creds < SL_DBPROBE_USERS_MAX; i++) {
        struct sl_secret s;
        char err[256];
        if (sl_secret_resolve(k->secrets[i], &s, err, sizeof err) != 0) {
            sl_warn(0, "budget: %s: %s", k->key, err);
            continue;
        }
        struct sl_dbprobe_cred *c = &rq->creds[rq->n_creds++];
        snprintf(c->user, sizeof c->user, "%s", s.username);
        memcpy(c->password, s.password, s.password_len);
        c->password[s.password_len] = '\0';
        sl_secret_wipe(&s);
    }
    return rq->n_creds ? 0 : -1;
}

/* The data address of a node (its backends' source address), from its node resource. */
static int node_address(struct sl_budget *b, uint64_t node, char *out, size_t cap)
{
    char *ip = sl_store_node_field(b->store, node, "data_address");
    int rc = ip && strlen(ip) < cap ? 0 : -1;
    if (rc == 0)
        snprintf(out, cap, "%s", ip);
    free(ip);
    return rc;
}

struct probe_ctx {
    struct sl_budget *b;
    char key[SL_BUDGET_KEY_MAX + 1];
    uint64_t node; /* fence: the node; 0 for a monitor probe */
};

static void on_probe_done(const struct sl_dbprobe_result *r, void *arg)
{
    struct probe_ctx *p = arg;
    struct sl_budget *b = p->b;
    b->pending--;
    struct key_cfg *k = key_cfg_of(b, p->key);
    if (p->node == 0) {
        if (k) {
            k->probing = false;
            k->probed_at_ns = uv_hrtime();
            if (r->ok && r->max_connections)
                k->probed_max_connections = r->max_connections;
            else if (!b->closing)
                sl_warn(0, "budget: reading @@max_connections of %s failed: %s", p->key, r->error);
        }
    } else {
        struct node_view *v = view_of(b, p->node, false);
        if (v && v->fence == FENCE_RUNNING) {
            if (!r->ok)
                v->fence_failed = true;
            if (--v->fences_pending == 0) {
                v->fence = v->fence_failed ? FENCE_NONE : FENCE_DONE;
                if (v->fence_failed)
                    v->fence_retry_ns = uv_hrtime() + ms_ns(1000);
            }
        }
        if (!r->ok && !b->closing)
            sl_warn(0, "budget: fencing node %" PRIu64 " on %s failed: %s", p->node, p->key,
                    r->error);
    }
    free(p);
    soon(b); /* act on it now */
    sl_budget_maybe_free(b);
}

static int start_probe(struct sl_budget *b, struct key_cfg *k, uint64_t node, const char *ip)
{
    struct sl_dbprobe_request *rq = calloc(1, sizeof *rq);
    struct probe_ctx *p = calloc(1, sizeof *p);
    int rc = -1;
    if (!rq || !p || fill_creds(k, rq) != 0)
        goto out;
    snprintf(rq->host, sizeof rq->host, "%s", k->host);
    rq->port = k->port;
    snprintf(rq->fence_ip, sizeof rq->fence_ip, "%s", ip ? ip : "");
    if (node_address(b, b->opt.node_id, rq->bind_ip, sizeof rq->bind_ip) != 0 ||
        strcmp(rq->bind_ip, "0.0.0.0") == 0)
        rq->bind_ip[0] = '\0';
    rq->timeout_ms = PROBE_TIMEOUT_MS;
    p->b = b;
    p->node = node;
    snprintf(p->key, sizeof p->key, "%s", k->key);
    if (sl_dbprobe_run(b->loop, rq, on_probe_done, p) == 0) {
        b->pending++;
        p = NULL;
        rc = 0;
    }
out:
    if (rq) {
        memset(rq, 0, sizeof *rq); /* passwords */
        free(rq);
    }
    free(p);
    return rc;
}

/* Fence node v on every database where it may hold connections. */
static void start_fence(struct sl_budget *b, struct node_view *v, const struct sl_budget_table *t)
{
    char ip[64];
    if (node_address(b, v->node, ip, sizeof ip) != 0) {
        sl_warn(0, "budget: node %" PRIu64 " has no data address; its quota stays reserved",
                v->node);
        v->fence_retry_ns = uv_hrtime() + ms_ns(5000);
        return;
    }
    sl_warn(0, "budget: node %" PRIu64 " stopped renewing its lease; fencing %s", v->node, ip);
    v->fence = FENCE_RUNNING;
    v->fence_failed = false;
    v->fences_pending = 1; /* held until every probe is started */
    for (size_t i = 0; i < t->n_entries; i++) {
        const struct sl_budget_holder *h = sl_budget_holder_of(&t->entries[i], v->node);
        struct key_cfg *k = key_cfg_of(b, t->entries[i].key);
        if (!h || h->cap == 0)
            continue;
        if (!k) {
            v->fence_failed = true; /* no longer configured here: nothing to reach it with */
            continue;
        }
        v->fences_pending++;
        if (start_probe(b, k, v->node, ip) != 0) {
            v->fences_pending--;
            v->fence_failed = true;
        }
    }
    if (--v->fences_pending == 0) {
        v->fence = v->fence_failed ? FENCE_NONE : FENCE_DONE;
        if (v->fence_failed)
            v->fence_retry_ns = uv_hrtime() + ms_ns(1000);
    }
}

static void maybe_monitor(struct sl_budget *b, uint64_t now)
{
    for (size_t i = 0; i < b->n_keys; i++) {
        struct key_cfg *k = &b->keys[i];
        if (k->probing || (k->probed_at_ns && now - k->probed_at_ns < ms_ns(b->opt.probe_ms)))
            continue;
        k->probed_at_ns = now;
        if (start_probe(b, k, 0, NULL) == 0)
            k->probing = true;
    }
}

/* ---- a round --------------------------------------------------------------------------------- */

struct ops {
    struct sl_budget_op v[OPS_MAX];
    size_t n;
};

static struct sl_budget_op *add_op(struct ops *o, enum sl_budget_op_kind kind)
{
    if (o->n == OPS_MAX)
        return NULL;
    struct sl_budget_op *op = &o->v[o->n++];
    memset(op, 0, sizeof *op);
    op->kind = kind;
    return op;
}

static bool alive(const struct sl_budget *b, const struct node_view *v, uint64_t now)
{
    return v->reported && v->fence == FENCE_NONE &&
           now - v->received_ns < ms_ns(3u * b->opt.report_ms);
}

static unsigned max_demand(const struct key_use *u)
{
    unsigned m = 0;
    for (size_t i = 0; i < DEMAND_WINDOW; i++)
        if (u->demand[i] > m)
            m = u->demand[i];
    return m;
}

/* LIMIT ops: the budget of each configured key, from the leader's probe or the nodes' reports. */
static void plan_limits(struct sl_budget *b, const struct sl_budget_table *t, struct ops *o,
                        bool *changed)
{
    for (size_t i = 0; i < b->n_keys; i++) {
        const struct key_cfg *k = &b->keys[i];
        unsigned mc = k->probed_max_connections;
        for (size_t n = 0; !mc && n < b->n_nodes; n++) {
            const struct key_use *u = use_of(&b->nodes[n], k->key);
            if (u && u->max_connections > mc)
                mc = u->max_connections;
        }
        const struct sl_budget_entry *e = sl_budget_find(t, k->key);
        if (!mc ||
            (e && e->max_connections == mc && e->percent == k->percent && e->reserve == RESERVE))
            continue;
        struct sl_budget_op *op = add_op(o, SL_BUDGET_LIMIT);
        if (!op)
            return;
        snprintf(op->key, sizeof op->key, "%s", k->key);
        op->max_connections = mc;
        op->percent = k->percent;
        op->reserve = RESERVE;
        changed[i] = true;
        sl_info(0, "budget %s: max_connections=%u, %u%% -> budget %u (%d reserved)", k->key, mc,
                k->percent, (unsigned)((uint64_t)mc * k->percent / 100), RESERVE);
    }
}

static void plan_entry(struct sl_budget *b, const struct sl_budget_entry *e, struct ops *o,
                       uint64_t now)
{
    struct sl_alloc_node nodes[NODES_MAX];
    unsigned out[NODES_MAX];
    size_t n = 0;
    /* Holders (alive or not) and every alive node that reported this key. */
    for (size_t i = 0; i < e->n_holders && n < NODES_MAX; i++) {
        const struct sl_budget_holder *h = &e->holders[i];
        const struct node_view *v = view_of(b, h->node, false);
        const struct key_use *u = v ? use_of(v, e->key) : NULL;
        nodes[n++] = (struct sl_alloc_node){
            .node = h->node,
            .alive = v && alive(b, v, now) && u,
            .demand = u ? max_demand(u) : 0,
            .waiting = u ? u->waiting : 0,
            .quota = h->quota,
            .cap = h->cap,
        };
    }
    for (size_t i = 0; i < b->n_nodes && n < NODES_MAX; i++) {
        const struct node_view *v = &b->nodes[i];
        const struct key_use *u = use_of(v, e->key);
        if (!u || !alive(b, v, now) || sl_budget_holder_of(e, v->node))
            continue;
        nodes[n++] = (struct sl_alloc_node){
            .node = v->node, .alive = true, .demand = max_demand(u), .waiting = u->waiting};
    }
    struct sl_alloc_params p = {
        .budget = e->budget,
        .reserve = e->reserve,
        .floor = SL_ALLOC_FLOOR_DEFAULT,
        .headroom_pct = SL_ALLOC_HEADROOM_PCT_DEFAULT,
    };
    if (sl_alloc_plan(&p, nodes, n, out) == 0)
        return;
    for (size_t i = 0; i < n; i++) {
        if (out[i] == nodes[i].quota)
            continue;
        struct sl_budget_op *op = add_op(o, SL_BUDGET_SET);
        if (!op)
            return;
        snprintf(op->key, sizeof op->key, "%s", e->key);
        op->node = nodes[i].node;
        op->quota = out[i];
    }
}

/* Keys no longer served by any proxy: quotas go to 0, the entry goes once nobody holds any. */
static void plan_orphans(struct sl_budget *b, const struct sl_budget_entry *e, struct ops *o)
{
    bool capped = false;
    for (size_t i = 0; i < e->n_holders; i++) {
        capped |= e->holders[i].cap > 0;
        if (e->holders[i].quota == 0)
            continue;
        struct sl_budget_op *op = add_op(o, SL_BUDGET_SET);
        if (!op)
            return;
        snprintf(op->key, sizeof op->key, "%s", e->key);
        op->node = e->holders[i].node;
    }
    struct sl_budget_op *op = capped ? NULL : add_op(o, SL_BUDGET_FORGET);
    if (op)
        snprintf(op->key, sizeof op->key, "%s", e->key);
}

static void on_proposed(struct sl_store *s, const struct sl_store_result *r, void *arg)
{
    struct sl_budget *b = arg;
    b->proposing = false;
    b->pending--;
    if (r->status != SL_STORE_OK && !b->closing)
        sl_debug(0, "budget: round not committed: %s", sl_store_status_name(r->status));
    if (b->again) {
        b->again = false;
        soon(b);
    }
    sl_budget_maybe_free(b);
}

/* Nodes holding any cap in the table get a view, so that a silent one expires. */
static void track_holders(struct sl_budget *b, const struct sl_budget_table *t)
{
    for (size_t i = 0; i < t->n_entries; i++)
        for (size_t h = 0; h < t->entries[i].n_holders; h++)
            view_of(b, t->entries[i].holders[h].node, true);
}

static void round_ops(struct sl_budget *b, const struct sl_budget_table *t, struct ops *o,
                      uint64_t now)
{
    bool limit_changed[KEYS_MAX] = {false};
    plan_limits(b, t, o, limit_changed);
    for (size_t i = 0; i < b->n_nodes; i++) {
        struct node_view *v = &b->nodes[i];
        if (v->fence == FENCE_DONE) {
            struct sl_budget_op *op = add_op(o, SL_BUDGET_REVOKE);
            if (op)
                op->node = v->node;
            continue;
        }
        if (v->reported && v->fence == FENCE_NONE && v->seq != v->renewed_seq) {
            struct sl_budget_op *op = add_op(o, SL_BUDGET_RENEW);
            if (!op)
                continue;
            op->node = v->node;
            op->seq = v->seq;
            v->renewed_seq = v->seq;
            if (v->received_ns + leader_lease_ns(b) > v->expiry_ns)
                v->expiry_ns = v->received_ns + leader_lease_ns(b);
        }
    }
    for (size_t i = 0; i < t->n_entries; i++) {
        const struct sl_budget_entry *e = &t->entries[i];
        const struct key_cfg *k = key_cfg_of(b, e->key);
        if (!k) {
            plan_orphans(b, e, o);
            continue;
        }
        if (limit_changed[k - b->keys])
            continue; /* allocate against the new budget next round */
        for (size_t h = 0; h < e->n_holders; h++) {
            const struct sl_budget_holder *hd = &e->holders[h];
            const struct node_view *v = view_of(b, hd->node, false);
            const struct key_use *u = v && v->reported ? use_of(v, e->key) : NULL;
            if (hd->cap <= hd->quota || !u || v->applied < hd->index || u->open > hd->quota)
                continue;
            struct sl_budget_op *op = add_op(o, SL_BUDGET_CONFIRM);
            if (!op)
                break;
            snprintf(op->key, sizeof op->key, "%s", e->key);
            op->node = hd->node;
            op->applied = v->applied;
        }
        plan_entry(b, e, o, now);
    }
}

static bool holds_caps(const struct sl_budget_table *t, uint64_t node)
{
    for (size_t i = 0; i < t->n_entries; i++) {
        const struct sl_budget_holder *h = sl_budget_holder_of(&t->entries[i], node);
        if (h && h->cap > 0)
            return true;
    }
    return false;
}

static void on_round(uv_timer_t *timer)
{
    struct sl_budget *b = timer->data;
    struct sl_store_info info;
    if (b->closing)
        return;
    sl_store_info(b->store, &info);
    if (info.state != SL_STORE_LEADER || !info.leader_ready) {
        b->led_term = 0;
        b->n_nodes = 0;
        return;
    }
    uint64_t now = uv_hrtime();
    if (b->led_term != info.term) {
        b->led_term = info.term;
        b->takeover_ns = now;
        b->n_nodes = 0;
        sl_info(0,
                "budget: leading in term %" PRIu64 "; leases of earlier terms end within %" PRIu64
                " ms",
                info.term, (leader_lease_ns(b) + 999999u) / 1000000u);
    }
    if (b->proposing)
        return;
    struct sl_budget_table t;
    if (sl_budget_read_table(b, &t) != 0)
        return;
    track_holders(b, &t);
    maybe_monitor(b, now);
    for (size_t i = 0; i < b->n_nodes; i++) {
        struct node_view *v = &b->nodes[i];
        if (v->fence == FENCE_NONE && now > v->expiry_ns && !alive(b, v, now) &&
            now >= v->fence_retry_ns && holds_caps(&t, v->node))
            start_fence(b, v, &t);
    }
    struct ops *o = calloc(1, sizeof *o);
    if (o)
        round_ops(b, &t, o, now);
    sl_budget_table_free(&t);
    if (!o || o->n == 0) {
        free(o);
        return;
    }
    char *body = sl_budget_ops_json(o->v, o->n);
    for (size_t i = 0; i < o->n; i++)
        if (o->v[i].kind == SL_BUDGET_LIMIT)
            b->again = true; /* allocate against the new budget as soon as it is committed */
    /* Revoked nodes start afresh: their next report is renewed like a new node's. */
    for (size_t i = 0; i < o->n; i++)
        if (o->v[i].kind == SL_BUDGET_REVOKE) {
            struct node_view *v = view_of(b, o->v[i].node, false);
            if (v) {
                sl_info(0, "budget: node %" PRIu64 " fenced; revoking its quota", v->node);
                v->fence = FENCE_NONE;
                v->reported = false;
                v->n_keys = 0;
                v->expiry_ns = 0;
            }
        }
    free(o);
    struct sl_store_change c = {
        .op = SL_RAFT_PUT, .kind = SL_RAFT_BUDGET, .name = "budget", .body = body};
    if (body && sl_store_propose(b->store, &c, on_proposed, b) == SL_STORE_OK) {
        b->proposing = true;
        b->pending++;
    }
    free(body);
}

void sl_budget_leader_start(struct sl_budget *b)
{
    uv_timer_start(&b->round_timer, on_round, b->opt.report_ms, b->opt.report_ms);
}
