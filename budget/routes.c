/* The budget's admin routes:
 *   GET  /v1/budget                    the committed table with the leader's live figures; a
 *                                      follower forwards it to the leader (it has only its own)
 *   POST /v1/internal/budget/report    a node's demand report (node-to-node, same bearer token) */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "budget/internal.h"

int sl_budget_read_table(struct sl_budget *b, struct sl_budget_table *t)
{
    char *json = NULL, err[160];
    sl_budget_table_init(t);
    if (sl_store_budget(b->store, &json) != 0) {
        sl_error(0, "budget: cannot read the committed table");
        return -1;
    }
    int rc = sl_budget_table_parse(json, strlen(json), t, err, sizeof err);
    if (rc != 0)
        sl_error(0, "budget: the committed table does not parse: %s", err);
    free(json);
    return rc;
}

static json_t *holder_json(const struct sl_budget *b, const struct sl_budget_entry *e,
                           const struct sl_budget_holder *h, uint64_t now)
{
    json_t *o =
        json_pack("{s:I,s:I,s:I,s:I}", "node", (json_int_t)h->node, "quota", (json_int_t)h->quota,
                  "cap", (json_int_t)h->cap, "index", (json_int_t)h->index);
    const struct node_view *v = sl_budget_leader_view(b, h->node);
    const struct key_use *u = NULL;
    for (size_t i = 0; v && v->reported && i < v->n_keys; i++)
        if (strcmp(v->keys[i].key, e->key) == 0)
            u = &v->keys[i];
    if (u) {
        json_object_set_new(o, "open", json_integer(u->open));
        json_object_set_new(o, "in_use", json_integer(u->in_use));
        json_object_set_new(o, "waiting", json_integer(u->waiting));
        json_object_set_new(o, "borrow_wait_max_ms", json_integer(u->borrow_wait_max_ms));
    }
    if (v)
        json_object_set_new(
            o, "lease_expires_ms",
            json_integer(v->expiry_ns > now ? (json_int_t)((v->expiry_ns - now) / 1000000u) : 0));
    return o;
}

static json_t *table_json(const struct sl_budget *b, const struct sl_budget_table *t)
{
    uint64_t now = uv_hrtime();
    json_t *keys = json_array();
    for (size_t i = 0; i < t->n_entries; i++) {
        const struct sl_budget_entry *e = &t->entries[i];
        json_t *nodes = json_array();
        unsigned in_use = 0, waiting = 0;
        for (size_t h = 0; h < e->n_holders; h++) {
            json_t *n = holder_json(b, e, &e->holders[h], now);
            in_use += (unsigned)json_integer_value(json_object_get(n, "in_use"));
            waiting += (unsigned)json_integer_value(json_object_get(n, "waiting"));
            json_array_append_new(nodes, n);
        }
        json_array_append_new(
            keys, json_pack("{s:s,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:o}", "key", e->key,
                            "max_connections", (json_int_t)e->max_connections, "percent",
                            (json_int_t)e->percent, "budget", (json_int_t)e->budget, "reserve",
                            (json_int_t)e->reserve, "committed", (json_int_t)sl_budget_capped(e),
                            "last_change_index", (json_int_t)e->index, "in_use", (json_int_t)in_use,
                            "waiting", (json_int_t)waiting, "nodes", nodes));
    }
    json_t *leases = json_array();
    for (size_t i = 0; i < t->n_leases; i++)
        json_array_append_new(leases, json_pack("{s:I,s:I}", "node", (json_int_t)t->leases[i].node,
                                                "renewed_index", (json_int_t)t->leases[i].index));
    return json_pack("{s:I,s:b,s:o,s:o}", "node", (json_int_t)b->opt.node_id, "leader",
                     sl_budget_leading(b), "budgets", keys, "leases", leases);
}

static void on_get(struct sl_admin_request *rq, void *arg)
{
    struct sl_budget *b = arg;
    struct sl_store_info info;
    sl_store_info(b->store, &info);
    if (!sl_budget_leading(b) && info.leader_id && info.leader_id != info.id &&
        !rq->http.forwarded) {
        char *url = sl_store_node_field(b->store, info.leader_id, "admin_url");
        if (url) {
            sl_fwd_send(b->fwd, rq, url);
            free(url);
            return;
        }
    }
    struct sl_budget_table t;
    if (sl_budget_read_table(b, &t) != 0) {
        sl_admin_reply_problem(rq, 500, "the budget table cannot be read");
        return;
    }
    struct sl_http_response head = {.status = 200};
    sl_admin_reply_json(rq, &head, table_json(b, &t));
    sl_budget_table_free(&t);
}

static void on_report(struct sl_admin_request *rq, void *arg)
{
    struct sl_budget *b = arg;
    json_error_t jerr;
    char err[200];
    json_t *rep =
        json_loadb((const char *)rq->http.body, rq->http.body_len, JSON_REJECT_DUPLICATES, &jerr);
    if (!rep) {
        snprintf(err, sizeof err, "the body is not JSON: %s", jerr.text);
        sl_admin_reply_problem(rq, 400, err);
        return;
    }
    int rc = sl_budget_leader_report(b, rep, err, sizeof err);
    json_decref(rep);
    if (rc < 0) {
        sl_admin_reply_problem(rq, 400, err);
    } else if (rc > 0) {
        struct sl_http_response head = {
            .status = 503, .content_type = SL_HTTP_PROBLEM_TYPE, .retry_after = 1};
        sl_admin_reply_json(rq, &head,
                            sl_http_problem(503, NULL, NULL, "this node is not the leader"));
    } else {
        struct sl_http_response head = {.status = 204};
        sl_admin_reply(rq, &head);
    }
}

void sl_budget_routes(struct sl_budget *b, struct sl_admin_server *srv)
{
    sl_admin_handle(srv, SL_ROUTE_BUDGET_GET, on_get, b);
    sl_admin_handle(srv, SL_ROUTE_BUDGET_REPORT, on_report, b);
}

/* ---- /metrics ------------------------------------------------------------------------------ */

struct key_row {
    char key[SL_BUDGET_KEY_MAX + 1];
    uint64_t v[10];
};

struct rows {
    struct key_row r[KEYS_MAX];
    size_t n;
    const struct sl_budget_table *t;
    uint64_t node;
};

static void collect(const struct sl_worker_budget_use *u, void *arg)
{
    struct rows *rs = arg;
    if (rs->n == KEYS_MAX)
        return;
    struct key_row *r = &rs->r[rs->n++];
    const struct sl_budget_entry *e = sl_budget_find(rs->t, u->key);
    const struct sl_budget_holder *h = e ? sl_budget_holder_of(e, rs->node) : NULL;
    snprintf(r->key, sizeof r->key, "%s", u->key);
    uint64_t v[10] = {e ? e->budget : 0,
                      e ? e->max_connections : 0,
                      e ? sl_budget_capped(e) : 0,
                      h ? h->cap : 0,
                      u->quota,
                      u->open,
                      u->in_use,
                      u->waiting,
                      u->borrows,
                      u->borrow_wait_us};
    memcpy(r->v, v, sizeof v);
}

void sl_budget_metrics(struct sl_budget *b, struct sl_metrics *m)
{
    static const struct {
        const char *name, *help;
        enum sl_metric_type type;
    } families[10] = {
        {"sluice_budget_connections", "The key's budget: max_connections x percent / 100.",
         SL_METRIC_GAUGE},
        {"sluice_budget_max_connections", "The database's @@max_connections as committed.",
         SL_METRIC_GAUGE},
        {"sluice_budget_committed", "Connections the fleet may hold on the key (sum of caps).",
         SL_METRIC_GAUGE},
        {"sluice_budget_node_cap", "Connections this node may still hold (committed).",
         SL_METRIC_GAUGE},
        {"sluice_budget_node_quota", "Connections this node may open now.", SL_METRIC_GAUGE},
        {"sluice_budget_node_open", "This node's connections on the key, any state.",
         SL_METRIC_GAUGE},
        {"sluice_budget_node_in_use", "Of which lent to client sessions.", SL_METRIC_GAUGE},
        {"sluice_budget_node_waiting", "Client sessions waiting for a connection.",
         SL_METRIC_GAUGE},
        {"sluice_budget_borrows_total", "Borrows served.", SL_METRIC_COUNTER},
        {"sluice_budget_borrow_wait_seconds_total", "Time borrowers waited, summed.",
         SL_METRIC_COUNTER},
    };
    struct sl_budget_table t;
    struct rows *rs = calloc(1, sizeof *rs);
    if (!rs || sl_budget_read_table(b, &t) != 0) {
        free(rs);
        return;
    }
    rs->t = &t;
    rs->node = b->opt.node_id;
    sl_worker_budget_each(b->worker, false, collect, rs);
    for (size_t f = 0; f < 10; f++) {
        sl_metrics_family(m, families[f].name, families[f].type, families[f].help);
        for (size_t i = 0; i < rs->n; i++) {
            struct sl_metric_label l = {"key", rs->r[i].key};
            if (f == 9)
                sl_metrics_double(m, families[f].name, &l, 1, (double)rs->r[i].v[f] / 1e6);
            else
                sl_metrics_u64(m, families[f].name, &l, 1, rs->r[i].v[f]);
        }
    }
    uint64_t now = uv_hrtime();
    sl_metrics_single(m, "sluice_budget_lease_remaining_ms", SL_METRIC_GAUGE,
                      "Milliseconds left on this node's lease (0: none).",
                      b->lease_deadline_ns > now ? (b->lease_deadline_ns - now) / 1000000u : 0);
    sl_budget_table_free(&t);
    free(rs);
}
