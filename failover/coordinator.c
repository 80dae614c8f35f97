#include "failover/coordinator.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "admin/validate.h"
#include "base/log.h"
#include "base/secret.h"
#include "failover/events.h"
#include "failover/promote.h"
#include "failover/verdict.h"

#define NODES_MAX   SL_VERDICT_NODES_MAX
#define TARGETS_MAX 32 /* per report, and per proxy */
#define PROXIES_MAX 64
#define OBS_MAX_AGE 2000 /* ms: an older check says nothing about now */
#define REPORT_PATH "/v1/internal/failover/report"

struct obs {
    char host[256];
    uint16_t port;
    enum sl_obs obs;
    int replicating;
    int semi_sync;
    char gtid[256];
};

/* One node's latest report, on the leader. */
struct view {
    uint64_t node;
    uint64_t received_ns;
    struct obs obs[TARGETS_MAX];
    size_t n;
};

/* The leader's memory of one proxy: what it said last (logged on change), its proposal and its
 * managed promotion in flight, and whether semi-synchronous replication was active on the writer
 * when a node last saw it up (-1: not seen since this node leads). */
struct decision {
    char proxy[64];
    const char *last_why;
    size_t last_gone; /* voters that saw the writer gone at the last round */
    bool in_flight;
    bool promoting;
    uint64_t retry_ns; /* no new promotion attempt before (uv_hrtime) */
    char writer[64];   /* the writer writer_semi_sync is about */
    int writer_semi_sync;
    const char *last_refusal;
};

enum mode { MODE_EXTERNAL, MODE_MANAGED, MODE_DISABLED };

/* A proxy's target group "failover" settings (admin/validate.c fills the defaults). */
struct fcfg {
    enum mode mode;
    char admin_secret[64];
    char repl_secret[64];
    bool require_semi_sync;
};

struct sl_failover {
    uv_loop_t *loop;
    struct sl_store *store;
    struct sl_health *health;
    struct sl_fwd *fwd;
    uint64_t node_id;
    char *name;
    char *token;
    unsigned report_ms;
    uv_timer_t timer;
    bool timer_closed;
    bool closing;
    bool report_in_flight;
    unsigned pending; /* reports and proposals in flight */
    struct view views[NODES_MAX];
    size_t n_views;
    struct decision dec[PROXIES_MAX];
    size_t n_dec;
    /* Every node: the writer epoch applied last per proxy, to record each new one once. */
    struct {
        char proxy[64];
        uint64_t epoch;
    } seen[PROXIES_MAX];
    size_t n_seen;
    struct sl_events events;
};

static void maybe_free(struct sl_failover *f)
{
    if (!f->closing || !f->timer_closed || f->pending > 0)
        return;
    if (f->token)
        OPENSSL_cleanse(f->token, strlen(f->token));
    free(f->token);
    free(f->name);
    free(f);
}

/* ---- the node's report -------------------------------------------------------------------- */

static void add_view(const struct sl_health_view *v, void *arg)
{
    json_t *arr = arg;
    json_array_append_new(
        arr,
        json_pack("{s:s,s:i,s:s,s:i,s:i,s:i,s:s,s:I}", "host", v->host, "port", (int)v->port,
                  "state", sl_health_state_name(v->state), "read_only", v->read_only, "replicating",
                  v->replicating, "semi_sync", v->semi_sync, "gtid", v->gtid, "age_ms",
                  (json_int_t)(v->age_ms == UINT64_MAX ? -1 : (json_int_t)v->age_ms)));
}

static void on_report_answer(int status, const char *body, size_t len, const char *error, void *arg)
{
    (void)body;
    (void)len;
    struct sl_failover *f = arg;
    f->pending--;
    f->report_in_flight = false;
    if (status != 204 && !f->closing)
        sl_debug(0, "failover: report not taken: %s", error ? error : "refused");
    maybe_free(f);
}

static void decide_all(struct sl_failover *f);
static void note_applied_writers(struct sl_failover *f);

static void on_timer(uv_timer_t *timer)
{
    struct sl_failover *f = timer->data;
    struct sl_store_info info;
    sl_store_info(f->store, &info);
    note_applied_writers(f);
    json_t *targets = json_array();
    sl_health_each(f->health, add_view, targets);
    json_t *rep = json_pack("{s:I,s:o}", "node", (json_int_t)f->node_id, "targets", targets);
    if (!rep)
        return;
    if (info.state == SL_STORE_LEADER) {
        char err[160];
        if (sl_failover_report(f, rep, err, sizeof err) < 0)
            sl_warn(0, "failover: own report refused: %s", err);
        json_decref(rep);
        if (info.leader_ready)
            decide_all(f);
        return;
    }
    char *url = info.leader_id && !f->report_in_flight
                    ? sl_store_node_field(f->store, info.leader_id, "admin_url")
                    : NULL;
    char *body = url ? json_dumps(rep, JSON_COMPACT) : NULL;
    json_decref(rep);
    if (body && sl_fwd_post(f->fwd, url, REPORT_PATH, f->token, body, strlen(body),
                            2u * f->report_ms, on_report_answer, f) == 0) {
        f->pending++;
        f->report_in_flight = true;
    }
    free(body);
    free(url);
}

/* ---- the leader: reports ------------------------------------------------------------------- */

static enum sl_obs obs_of(const char *state, int read_only, json_int_t age_ms)
{
    if (age_ms < 0 || age_ms > OBS_MAX_AGE)
        return SL_OBS_NONE;
    if (strcmp(state, "UNAVAILABLE") == 0)
        return SL_OBS_DOWN;
    if (strcmp(state, "AVAILABLE") != 0)
        return SL_OBS_NONE;
    return read_only == 0 ? SL_OBS_WRITABLE : read_only == 1 ? SL_OBS_READ_ONLY : SL_OBS_UP;
}

int sl_failover_report(struct sl_failover *f, json_t *rep, char *err, size_t errlen)
{
    struct sl_store_info info;
    sl_store_info(f->store, &info);
    if (info.state != SL_STORE_LEADER)
        return 1;
    json_t *node = json_object_get(rep, "node"), *targets = json_object_get(rep, "targets");
    if (!json_is_integer(node) || json_integer_value(node) <= 0 || !json_is_array(targets) ||
        json_array_size(targets) > TARGETS_MAX) {
        snprintf(err, errlen, "a report needs node and targets (at most %d)", TARGETS_MAX);
        return -1;
    }
    struct view v = {.node = (uint64_t)json_integer_value(node), .received_ns = uv_hrtime()};
    size_t i;
    json_t *t;
    json_array_foreach(targets, i, t)
    {
        const char *host = json_string_value(json_object_get(t, "host"));
        const char *state = json_string_value(json_object_get(t, "state"));
        json_t *port = json_object_get(t, "port"), *ro = json_object_get(t, "read_only");
        json_t *repl = json_object_get(t, "replicating"), *age = json_object_get(t, "age_ms");
        if (!host || strlen(host) >= sizeof v.obs[0].host || !state || !json_is_integer(port) ||
            json_integer_value(port) < 1 || json_integer_value(port) > 65535 ||
            !json_is_integer(ro) || !json_is_integer(repl) || !json_is_integer(age)) {
            snprintf(err, errlen,
                     "targets[%zu]: needs host, port, state, read_only, "
                     "replicating and age_ms",
                     i);
            return -1;
        }
        struct obs *o = &v.obs[v.n++];
        snprintf(o->host, sizeof o->host, "%s", host);
        o->port = (uint16_t)json_integer_value(port);
        o->obs = obs_of(state, (int)json_integer_value(ro), json_integer_value(age));
        o->replicating = (int)json_integer_value(repl);
        /* Optional: what managed failover ranks replicas by and checks the writer with. */
        json_t *semi = json_object_get(t, "semi_sync");
        const char *gtid = json_string_value(json_object_get(t, "gtid"));
        o->semi_sync = json_is_integer(semi) ? (int)json_integer_value(semi) : -1;
        snprintf(o->gtid, sizeof o->gtid, "%s", gtid && strlen(gtid) < sizeof o->gtid ? gtid : "");
    }
    size_t slot = f->n_views, oldest = 0;
    for (size_t k = 0; k < f->n_views; k++) {
        if (f->views[k].node == v.node)
            slot = k;
        if (f->views[k].received_ns < f->views[oldest].received_ns)
            oldest = k;
    }
    if (slot == f->n_views) {
        if (f->n_views == NODES_MAX)
            slot = oldest; /* more reporters than a verdict counts: the stalest goes */
        else
            f->n_views++;
    }
    f->views[slot] = v;
    return 0;
}

/* ---- the leader: decisions ----------------------------------------------------------------- */

struct tinfo {
    char id[64];
    char host[256];
    uint16_t port;
    bool read_write;
};

struct tlist {
    struct tinfo t[TARGETS_MAX];
    size_t n;
};

static int collect_target(const char *name, size_t name_len, const char *json, size_t json_len,
                          uint64_t revision, void *arg)
{
    (void)revision;
    struct tlist *l = arg;
    if (l->n == TARGETS_MAX || name_len >= sizeof l->t[0].id)
        return 0;
    json_t *doc = json_loadb(json, json_len, 0, NULL);
    const char *host = json_string_value(json_object_get(doc, "host"));
    const char *role = json_string_value(json_object_get(doc, "role"));
    json_int_t port = json_integer_value(json_object_get(doc, "port"));
    if (!port)
        port = 3306;
    if (host && strlen(host) < sizeof l->t[0].host && port > 0 && port <= 65535) {
        struct tinfo *t = &l->t[l->n++];
        memcpy(t->id, name, name_len);
        t->id[name_len] = '\0';
        snprintf(t->host, sizeof t->host, "%s", host);
        t->port = (uint16_t)port;
        t->read_write = !role || strcmp(role, "READ_WRITE") == 0;
    }
    json_decref(doc);
    return 0;
}

struct plist {
    char name[PROXIES_MAX][64];
    size_t n;
};

static int collect_proxy(const char *name, size_t name_len, const char *json, size_t json_len,
                         uint64_t revision, void *arg)
{
    (void)json;
    (void)json_len;
    (void)revision;
    struct plist *l = arg;
    if (l->n < PROXIES_MAX && name_len < sizeof l->name[0]) {
        memcpy(l->name[l->n], name, name_len);
        l->name[l->n++][name_len] = '\0';
    }
    return 0;
}

static struct decision *decision_of(struct sl_failover *f, const char *proxy)
{
    for (size_t i = 0; i < f->n_dec; i++)
        if (strcmp(f->dec[i].proxy, proxy) == 0)
            return &f->dec[i];
    if (f->n_dec == PROXIES_MAX)
        return NULL;
    struct decision *d = &f->dec[f->n_dec++];
    *d = (struct decision){.last_why = "", .writer_semi_sync = -1, .last_refusal = ""};
    snprintf(d->proxy, sizeof d->proxy, "%s", proxy);
    return d;
}

/* The committed writer's index in l and the epoch, or the default (first READ_WRITE, epoch 0). */
static size_t writer_of(struct sl_failover *f, const char *proxy, const struct tlist *l,
                        uint64_t *epoch)
{
    char *text = NULL;
    *epoch = 0;
    if (sl_store_get(f->store, SL_RAFT_WRITER, proxy, NULL, &text, epoch) == 0) {
        json_t *doc = json_loads(text, 0, NULL);
        const char *id = json_string_value(json_object_get(doc, "target"));
        size_t found = l->n;
        for (size_t i = 0; id && i < l->n; i++)
            if (strcmp(l->t[i].id, id) == 0)
                found = i;
        json_decref(doc);
        free(text);
        return found;
    }
    for (size_t i = 0; i < l->n; i++)
        if (l->t[i].read_write)
            return i;
    return l->n;
}

struct proposal {
    struct sl_failover *f;
    char proxy[64];
    char target[64];
};

static void on_proposed(struct sl_store *s, const struct sl_store_result *r, void *arg)
{
    (void)s;
    struct proposal *p = arg;
    struct sl_failover *f = p->f;
    f->pending--;
    struct decision *d = decision_of(f, p->proxy);
    if (d)
        d->in_flight = false;
    if (r->status == SL_STORE_OK && r->fsm.outcome == SL_FSM_OK) {
        sl_warn(0, "failover: proxy %s: writer is now target %s (epoch %llu)", p->proxy, p->target,
                (unsigned long long)r->fsm.revision);
        sl_events_add(&f->events, "writer_committed", p->proxy, p->target, r->fsm.revision, f->name,
                      "");
    } else if (!f->closing) {
        char detail[120];
        snprintf(detail, sizeof detail, "status %d, outcome %d", r->status, (int)r->fsm.outcome);
        sl_warn(0, "failover: proxy %s: moving the writer to %s did not commit (%s)", p->proxy,
                p->target, detail);
        sl_events_add(&f->events, "writer_not_committed", p->proxy, p->target, 0, f->name, detail);
    }
    free(p);
    maybe_free(f);
}

static void propose(struct sl_failover *f, struct decision *d, const char *proxy,
                    const struct tinfo *to, uint64_t epoch, const char *why)
{
    char reason[200];
    snprintf(reason, sizeof reason, "failover: %s", why);
    json_t *body =
        json_pack("{s:s,s:s,s:s}", "target", to->id, "reason", reason, "decided_by", f->name);
    char *text = body ? json_dumps(body, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(body);
    struct proposal *p = calloc(1, sizeof *p);
    if (!text || !p) {
        free(text);
        free(p);
        return;
    }
    p->f = f;
    snprintf(p->proxy, sizeof p->proxy, "%s", proxy);
    snprintf(p->target, sizeof p->target, "%s", to->id);
    /* Against the epoch the verdict saw: a decision overtaken by another one does not land.
     * Epoch 0 (no writer committed yet) cannot be expressed as a revision: unconditional, and
     * only the leader proposes. */
    struct sl_store_change c = {.op = SL_RAFT_PUT,
                                .kind = SL_RAFT_WRITER,
                                .name = proxy,
                                .body = text,
                                .expected_rev = epoch};
    if (sl_store_propose(f->store, &c, on_proposed, p) == SL_STORE_OK) {
        d->in_flight = true;
        f->pending++;
        sl_events_add(&f->events, "writer_proposed", proxy, to->id, epoch, f->name, reason);
    } else {
        free(p);
    }
    free(text);
}

/* ---- the leader: managed failover ----------------------------------------------------------- */

static void failover_config(struct sl_failover *f, const char *proxy, struct fcfg *out)
{
    *out = (struct fcfg){.mode = MODE_EXTERNAL, .require_semi_sync = true};
    char *text = NULL;
    uint64_t rev;
    if (sl_store_get(f->store, SL_RAFT_TARGET_GROUP, proxy, NULL, &text, &rev) != 0)
        return;
    json_t *doc = json_loads(text, 0, NULL);
    free(text);
    json_t *fo = json_object_get(doc, "failover");
    const char *mode = json_string_value(json_object_get(fo, "mode"));
    const char *admin = json_string_value(json_object_get(fo, "admin_secret"));
    const char *repl = json_string_value(json_object_get(fo, "replication_secret"));
    json_t *semi = json_object_get(fo, "require_semi_sync");
    if (mode && strcmp(mode, "MANAGED") == 0)
        out->mode = MODE_MANAGED;
    else if (mode && strcmp(mode, "DISABLED") == 0)
        out->mode = MODE_DISABLED;
    snprintf(out->admin_secret, sizeof out->admin_secret, "%s", admin ? admin : "");
    snprintf(out->repl_secret, sizeof out->repl_secret, "%s", repl ? repl : "");
    if (json_is_boolean(semi))
        out->require_semi_sync = json_is_true(semi);
    json_decref(doc);
}

/* Remember whether semi-sync was active on the writer, from the nodes that see it up now. */
static void note_writer_semi_sync(struct sl_failover *f, struct decision *d,
                                  const struct tinfo *writer, const size_t *fresh, size_t n_fresh)
{
    if (strcmp(d->writer, writer->id) != 0) {
        snprintf(d->writer, sizeof d->writer, "%s", writer->id);
        d->writer_semi_sync = -1;
    }
    for (size_t k = 0; k < n_fresh; k++) {
        const struct view *v = &f->views[fresh[k]];
        for (size_t o = 0; o < v->n; o++)
            if (v->obs[o].port == writer->port && strcmp(v->obs[o].host, writer->host) == 0 &&
                v->obs[o].obs != SL_OBS_DOWN && v->obs[o].obs != SL_OBS_NONE &&
                v->obs[o].semi_sync >= 0)
                d->writer_semi_sync = v->obs[o].semi_sync;
    }
}

/* A secret resource's credentials (resolved now; the caller wipes them). 0 or -1. */
static int cred_of(struct sl_failover *f, const char *name, struct sl_dbprobe_cred *out)
{
    char *text = NULL, err[256];
    uint64_t rev;
    if (!name[0] || sl_store_get(f->store, SL_RAFT_SECRET, name, NULL, &text, &rev) != 0)
        return -1;
    json_t *doc = json_loads(text, 0, NULL);
    free(text);
    const char *ref = json_string_value(json_object_get(doc, "ref"));
    struct sl_secret s;
    int rc = ref && sl_secret_resolve(ref, &s, err, sizeof err) == 0 ? 0 : -1;
    json_decref(doc);
    if (rc != 0)
        return -1;
    snprintf(out->user, sizeof out->user, "%s", s.username);
    memcpy(out->password, s.password, s.password_len);
    out->password[s.password_len] = '\0';
    sl_secret_wipe(&s);
    return 0;
}

/* This node's data address, the source of its database connections ("" = any). */
static void bind_address(struct sl_failover *f, char *out, size_t cap)
{
    char *ip = sl_store_node_field(f->store, f->node_id, "data_address");
    snprintf(out, cap, "%s", ip && strcmp(ip, "0.0.0.0") != 0 ? ip : "");
    free(ip);
}

struct promotion {
    struct sl_failover *f;
    char proxy[64];
    struct tinfo to;
    uint64_t epoch;
};

static void propose(struct sl_failover *f, struct decision *d, const char *proxy,
                    const struct tinfo *to, uint64_t epoch, const char *why);

static void on_promotion_done(bool ok, const char *error, void *arg)
{
    struct promotion *p = arg;
    struct sl_failover *f = p->f;
    f->pending--;
    struct decision *d = decision_of(f, p->proxy);
    if (d) {
        d->promoting = false;
        if (!ok)
            d->retry_ns = uv_hrtime() + 2000000000ull;
    }
    if (!ok && !f->closing) {
        sl_warn(0, "failover: proxy %s: promoting %s failed, trying again in 2 s: %s", p->proxy,
                p->to.id, error);
        sl_events_add(&f->events, "promotion_failed", p->proxy, p->to.id, p->epoch, f->name, error);
    } else if (ok && d && !f->closing)
        propose(f, d, p->proxy, &p->to, p->epoch,
                "the writer is down for a majority; sluice promoted the most advanced replica");
    free(p);
    maybe_free(f);
}

/* Log (and record) a refusal once per reason. */
static void refuse(struct sl_failover *f, struct decision *d, const char *proxy, const char *why)
{
    if (d->last_refusal != why) {
        sl_warn(0, "failover: proxy %s: not promoting: %s", proxy, why);
        sl_events_add(&f->events, "promotion_refused", proxy, "", 0, f->name, why);
    }
    d->last_refusal = why;
}

static void managed(struct sl_failover *f, struct decision *d, const struct fcfg *cfg,
                    const char *proxy, const struct tlist *l, const struct sl_verdict_input *in,
                    size_t writer, uint64_t epoch, const size_t *fresh, size_t n_fresh)
{
    if (cfg->require_semi_sync && d->writer_semi_sync != 1) {
        refuse(f, d, proxy,
               d->writer_semi_sync == 0
                   ? "semi-synchronous replication was off on the writer at its last check, so "
                     "an acknowledged commit may exist on no replica (require_semi_sync)"
                   : "this leader never saw the writer up with semi-synchronous replication "
                     "active (require_semi_sync)");
        return;
    }
    if (d->writer_semi_sync != 1)
        sl_warn(0,
                "failover: proxy %s: promoting without semi-synchronous replication: "
                "acknowledged commits may be lost",
                proxy);
    const char *gtids[TARGETS_MAX] = {0};
    bool up[TARGETS_MAX] = {0};
    for (size_t t = 0; t < l->n; t++)
        for (size_t k = 0; k < n_fresh; k++) {
            const struct view *v = &f->views[fresh[k]];
            for (size_t o = 0; o < v->n; o++)
                if (v->obs[o].port == l->t[t].port && strcmp(v->obs[o].host, l->t[t].host) == 0 &&
                    v->obs[o].obs != SL_OBS_DOWN && v->obs[o].obs != SL_OBS_NONE) {
                    up[t] = true;
                    if (!gtids[t] || sl_gtid_compare(v->obs[o].gtid, gtids[t]) == 1)
                        gtids[t] = v->obs[o].gtid;
                }
        }
    size_t pick = sl_verdict_pick_replica(in, gtids);
    if (pick == SIZE_MAX) {
        refuse(f, d, proxy, "no replica is up for a majority, or their positions diverged");
        return;
    }
    struct sl_promote_request *rq = calloc(1, sizeof *rq);
    struct promotion *p = calloc(1, sizeof *p);
    if (!rq || !p || cred_of(f, cfg->admin_secret, &rq->admin) != 0 ||
        cred_of(f, cfg->repl_secret, &rq->repl) != 0) {
        refuse(f, d, proxy, "the failover secrets cannot be resolved");
        goto out;
    }
    snprintf(rq->candidate.host, sizeof rq->candidate.host, "%s", l->t[pick].host);
    rq->candidate.port = l->t[pick].port;
    for (size_t t = 0; t < l->n && rq->n_others < SL_PROMOTE_OTHERS_MAX; t++) {
        if (t == pick || t == writer || !up[t])
            continue;
        snprintf(rq->others[rq->n_others].host, sizeof rq->others[0].host, "%s", l->t[t].host);
        rq->others[rq->n_others++].port = l->t[t].port;
    }
    /* A writer that a node still sees up (a read-only one, or one only some nodes lost) is set
     * read-only too: nothing routes to it after the new epoch, and nothing else should write. */
    rq->demote_old = up[writer];
    snprintf(rq->old.host, sizeof rq->old.host, "%s", l->t[writer].host);
    rq->old.port = l->t[writer].port;
    rq->timeout_ms = 5000;
    bind_address(f, rq->bind_ip, sizeof rq->bind_ip);
    p->f = f;
    snprintf(p->proxy, sizeof p->proxy, "%s", proxy);
    p->to = l->t[pick];
    p->epoch = epoch;
    sl_warn(0, "failover: proxy %s: writer %s is gone; promoting %s (gtid %s)", proxy,
            l->t[writer].id, l->t[pick].id, gtids[pick]);
    if (sl_promote_run(f->loop, rq, on_promotion_done, p) == 0) {
        d->promoting = true;
        d->last_refusal = "";
        f->pending++;
        char detail[200];
        snprintf(detail, sizeof detail, "gtid %s%s", gtids[pick],
                 d->writer_semi_sync == 1 ? ""
                                          : "; without semi-synchronous replication on the "
                                            "writer: acknowledged commits may be lost");
        sl_events_add(&f->events, "promotion_started", proxy, p->to.id, epoch, f->name, detail);
        p = NULL;
    }
out:
    if (rq) {
        OPENSSL_cleanse(rq, sizeof *rq);
        free(rq);
    }
    free(p);
}

static void decide(struct sl_failover *f, const char *proxy, size_t voters, const size_t *fresh,
                   size_t n_fresh)
{
    struct tlist l = {.n = 0};
    if (sl_store_list(f->store, SL_RAFT_TARGET, proxy, collect_target, &l) != 0 || l.n < 2)
        return;
    struct decision *d = decision_of(f, proxy);
    struct fcfg cfg;
    failover_config(f, proxy, &cfg);
    if (!d || d->in_flight || d->promoting || cfg.mode == MODE_DISABLED)
        return;
    uint64_t epoch;
    size_t writer = writer_of(f, proxy, &l, &epoch);
    if (writer == l.n)
        return;
    note_writer_semi_sync(f, d, &l.t[writer], fresh, n_fresh);
    struct sl_verdict_target vt[TARGETS_MAX];
    for (size_t t = 0; t < l.n; t++) {
        for (size_t k = 0; k < n_fresh; k++) {
            const struct view *v = &f->views[fresh[k]];
            vt[t].obs[k] = SL_OBS_NONE;
            vt[t].replicating[k] = -1;
            for (size_t o = 0; o < v->n; o++)
                if (v->obs[o].port == l.t[t].port && strcmp(v->obs[o].host, l.t[t].host) == 0) {
                    vt[t].obs[k] = v->obs[o].obs;
                    vt[t].replicating[k] = v->obs[o].replicating;
                }
        }
    }
    struct sl_verdict_input in = {
        .voters = voters, .nodes = n_fresh, .targets = vt, .n_targets = l.n, .writer = writer};
    struct sl_verdict v;
    sl_verdict_external(&in, &v);
    /* Logged when the picture changes: a node losing sight of the writer is worth a line even
     * when it changes nothing. */
    if ((v.why != d->last_why || v.gone_votes != d->last_gone) &&
        (v.gone_votes > 0 || d->last_gone > 0))
        sl_info(0, "failover: proxy %s: %s (%zu of %zu voters see the writer gone)", proxy, v.why,
                v.gone_votes, voters);
    d->last_why = v.why;
    d->last_gone = v.gone_votes;
    if (v.kind != SL_VERDICT_SWITCH) {
        if (v.writer_gone && cfg.mode == MODE_MANAGED && uv_hrtime() >= d->retry_ns)
            managed(f, d, &cfg, proxy, &l, &in, writer, epoch, fresh, n_fresh);
        return;
    }
    sl_warn(0, "failover: proxy %s: writer %s -> %s at epoch %llu: %s (%zu gone, %zu ready)", proxy,
            l.t[writer].id, l.t[v.target].id, (unsigned long long)epoch, v.why, v.gone_votes,
            v.ready_votes);
    propose(f, d, proxy, &l.t[v.target], epoch, v.why);
}

static void decide_all(struct sl_failover *f)
{
    struct sl_store_member m[NODES_MAX];
    size_t members = sl_store_members(f->store, m, NODES_MAX), voters = 0;
    for (size_t i = 0; i < members && i < NODES_MAX; i++)
        voters += m[i].role == SL_STORE_VOTER;
    uint64_t now = uv_hrtime(), max_age = 3ull * f->report_ms * 1000000ull;
    size_t fresh[NODES_MAX], n_fresh = 0;
    for (size_t k = 0; k < f->n_views; k++)
        if (now - f->views[k].received_ns <= max_age)
            fresh[n_fresh++] = k;
    struct plist p = {.n = 0};
    if (voters == 0 || sl_store_list(f->store, SL_RAFT_PROXY, NULL, collect_proxy, &p) != 0)
        return;
    for (size_t i = 0; i < p.n; i++)
        decide(f, p.name[i], voters, fresh, n_fresh);
}

static void on_report_route(struct sl_admin_request *rq, void *arg)
{
    struct sl_failover *f = arg;
    json_error_t jerr;
    char err[200];
    json_t *rep =
        json_loadb((const char *)rq->http.body, rq->http.body_len, JSON_REJECT_DUPLICATES, &jerr);
    if (!rep) {
        snprintf(err, sizeof err, "the body is not JSON: %s", jerr.text);
        sl_admin_reply_problem(rq, 400, err);
        return;
    }
    int rc = sl_failover_report(f, rep, err, sizeof err);
    json_decref(rep);
    if (rc < 0) {
        sl_admin_reply_problem(rq, 400, err);
    } else if (rc > 0) {
        sl_admin_reply_problem(rq, 503, "this node is not the leader");
    } else {
        struct sl_http_response head = {.status = 204};
        sl_admin_reply(rq, &head);
    }
}

/* GET /v1/events[?after=N]: this node's events, oldest first. */
static void on_events_route(struct sl_admin_request *rq, void *arg)
{
    struct sl_failover *f = arg;
    uint64_t after = 0;
    const char *q = rq->http.query;
    if (q && !(strcmp(q, "after=0") == 0 ||
               (strncmp(q, "after=", 6) == 0 && sl_validate_node_id(q + 6, &after) == 0))) {
        sl_admin_reply_problem(rq, 400, "the only query is after=N (an event sequence number)");
        return;
    }
    json_t *doc = sl_events_json(&f->events, after);
    if (!doc) {
        sl_admin_reply_problem(rq, 500, "out of memory");
        return;
    }
    struct sl_http_response head = {.status = 200};
    sl_admin_reply_json(rq, &head, doc);
}

/* Every node records each writer epoch it applies (the Raft index that decided it). */
static int note_writer(const char *name, size_t name_len, const char *json, size_t json_len,
                       uint64_t revision, void *arg)
{
    struct sl_failover *f = arg;
    char proxy[64];
    if (name_len >= sizeof proxy)
        return 0;
    memcpy(proxy, name, name_len);
    proxy[name_len] = '\0';
    size_t i = 0;
    while (i < f->n_seen && strcmp(f->seen[i].proxy, proxy) != 0)
        i++;
    if (i == f->n_seen) {
        if (f->n_seen == PROXIES_MAX)
            return 0;
        snprintf(f->seen[f->n_seen].proxy, sizeof f->seen[0].proxy, "%s", proxy);
        f->seen[f->n_seen++].epoch = 0;
    }
    if (f->seen[i].epoch == revision)
        return 0;
    f->seen[i].epoch = revision;
    json_t *doc = json_loadb(json, json_len, 0, NULL);
    sl_events_add(&f->events, "writer_applied", proxy,
                  json_string_value(json_object_get(doc, "target")), revision,
                  json_string_value(json_object_get(doc, "decided_by")),
                  json_string_value(json_object_get(doc, "reason")));
    json_decref(doc);
    return 0;
}

static void note_applied_writers(struct sl_failover *f)
{
    sl_store_list(f->store, SL_RAFT_WRITER, NULL, note_writer, f);
}

void sl_failover_applied(struct sl_failover *f)
{
    note_applied_writers(f);
}

void sl_failover_routes(struct sl_failover *f, struct sl_admin_server *srv)
{
    sl_admin_handle(srv, SL_ROUTE_FAILOVER_REPORT, on_report_route, f);
    sl_admin_handle(srv, SL_ROUTE_EVENTS, on_events_route, f);
}

/* ---- life cycle ----------------------------------------------------------------------------- */

int sl_failover_open(struct sl_failover **out, uv_loop_t *loop, struct sl_store *store,
                     struct sl_health *health, struct sl_fwd *fwd,
                     const struct sl_failover_options *opt)
{
    struct sl_failover *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    f->name = strdup(opt->node_name ? opt->node_name : "");
    f->token = strdup(opt->token ? opt->token : "");
    if (!f->name || !f->token) {
        free(f->name);
        free(f->token);
        free(f);
        return -1;
    }
    f->loop = loop;
    f->store = store;
    f->health = health;
    f->fwd = fwd;
    f->node_id = opt->node_id;
    f->report_ms = opt->report_ms ? opt->report_ms : 500;
    uv_timer_init(loop, &f->timer);
    f->timer.data = f;
    uv_timer_start(&f->timer, on_timer, f->report_ms, f->report_ms);
    *out = f;
    return 0;
}

static void on_timer_closed(uv_handle_t *h)
{
    struct sl_failover *f = h->data;
    f->timer_closed = true;
    maybe_free(f);
}

void sl_failover_close(struct sl_failover *f)
{
    f->closing = true;
    uv_close((uv_handle_t *)&f->timer, on_timer_closed);
}
