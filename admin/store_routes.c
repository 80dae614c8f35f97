#include "admin/store_routes.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin/validate.h"
#include "base/list.h"
#include "raft/store.h"

/* How many members GET /v1/cluster shows; Raft configurations here have a handful. */
#define MEMBERS_MAX 64

struct sl_admin_store_routes {
    struct sl_store *store;
    struct sl_admin_forwarder fwd;
    bool has_fwd;
    struct sl_admin_target_health health;
    bool has_health;
    struct sl_admin_reachability reach;
    bool has_reach;
    unsigned wait_ms;
    char node_id[SL_RAFT_NAME_MAX + 1]; /* this node's id (its file's node.id); "" until set */
    uv_check_t check;                   /* active while reads wait for ?min_revision */
    uv_timer_t timer;                   /* their earliest deadline */
    struct sl_list waiting;             /* struct op, by link */
    unsigned ops;                       /* requests not answered yet (each holds the routes) */
    unsigned open_handles;
    bool closing;
};

/* One request being handled across store callbacks. */
struct op {
    struct sl_admin_store_routes *r;
    struct sl_admin_request *rq;
    enum sl_route_id route;
    char name[SL_RAFT_NAME_MAX + 1]; /* the proxy or secret; a node id in decimal */
    char id[SL_RAFT_NAME_MAX + 1];   /* the target (of a writer PUT too) */
    char *body;                      /* canonical body of a PUT */
    uint64_t expected_rev;
    uint64_t revision; /* POST /v1/cluster/nodes: of the node resource, while the node joins */
    uint64_t node_id;
    bool member; /* POST /v1/cluster/nodes: already a member at that address */
    char raft_address[SL_VALIDATE_ADDR_MAX];
    struct sl_read_query q;
    struct sl_list link; /* on r->waiting */
    uint64_t deadline;   /* uv_now of the ?min_revision give-up */
};

/* ---- life of the routes' state ---------------------------------------------------------------
 */

static void maybe_free(struct sl_admin_store_routes *r)
{
    if (r->closing && r->ops == 0 && r->open_handles == 0)
        free(r);
}

static void on_handle_closed(uv_handle_t *h)
{
    struct sl_admin_store_routes *r = h->data;
    r->open_handles--;
    maybe_free(r);
}

static struct op *op_new(struct sl_admin_store_routes *r, struct sl_admin_request *rq)
{
    struct op *op = calloc(1, sizeof *op);
    if (!op) {
        sl_admin_reply_problem(rq, 500, "out of memory");
        return NULL;
    }
    op->r = r;
    op->rq = rq;
    op->route = rq->route.id;
    sl_list_init(&op->link);
    r->ops++;
    return op;
}

/* The request has been answered (or handed to the forwarder): forget it. */
static void op_done(struct op *op)
{
    struct sl_admin_store_routes *r = op->r;
    free(op->body);
    free(op);
    r->ops--;
    maybe_free(r);
}

/* ---- answers ---------------------------------------------------------------------------------
 */

static void reply_json(struct op *op, int status, uint64_t etag, json_t *body)
{
    char tag[24];
    struct sl_http_response head = {.status = status};
    if (etag) {
        snprintf(tag, sizeof tag, "%" PRIu64, etag);
        head.etag = tag;
    }
    sl_admin_reply_json(op->rq, &head, body);
    op_done(op);
}

/* A problem document; member (when not NULL) is added with the value given (stolen). */
static void reply_problem(struct op *op, int status, unsigned retry_after, const char *detail,
                          const char *member, json_t *value)
{
    json_t *doc = sl_http_problem(status, NULL, NULL, detail);
    if (doc && member)
        json_object_set_new(doc, member, value);
    else
        json_decref(value);
    struct sl_http_response head = {
        .status = status, .content_type = SL_HTTP_PROBLEM_TYPE, .retry_after = retry_after};
    sl_admin_reply_json(op->rq, &head, doc);
    op_done(op);
}

static void reply_invalid(struct op *op, const struct sl_validate_error *e)
{
    if (e->status != 400)
        reply_problem(op, e->status, 0, e->detail, NULL, NULL);
    else
        reply_problem(op, 400, 0, e->detail, "field", json_string(e->field));
}

static void reply_unavailable(struct op *op, const char *detail)
{
    reply_problem(op, 503, 1, detail, NULL, NULL);
}

/* This node's id for "decided_by": its file's node.id, or (before the node said) its Raft id. */
static void own_id(struct sl_admin_store_routes *r, char out[SL_RAFT_NAME_MAX + 1])
{
    if (r->node_id[0]) {
        memcpy(out, r->node_id, sizeof r->node_id);
        return;
    }
    struct sl_store_info info;
    sl_store_info(r->store, &info);
    snprintf(out, SL_RAFT_NAME_MAX + 1, "%" PRIu64, info.id);
}

/* This node cannot do it, the leader can: forward, unless there is no forwarder, the request
 * was forwarded already (a second hop could loop while leadership moves), or no other node is
 * known to lead. */
static void not_leader(struct op *op, uint64_t leader_id)
{
    struct sl_admin_store_routes *r = op->r;
    struct sl_store_info info;
    sl_store_info(r->store, &info);
    if (leader_id == 0)
        leader_id = info.leader_id;
    if (r->has_fwd && !op->rq->http.forwarded && leader_id != 0 && leader_id != info.id) {
        struct sl_admin_request *rq = op->rq;
        struct sl_admin_forwarder fwd = r->fwd; /* op_done may free r */
        /* The leader names this node as the one a writer decision was taken on. Out of memory:
         * the leader names itself. */
        if (!rq->http.origin) {
            char self[SL_RAFT_NAME_MAX + 1];
            own_id(r, self);
            rq->http.origin = strdup(self);
        }
        op_done(op);
        fwd.forward(fwd.arg, rq, leader_id);
        return;
    }
    char detail[128];
    if (leader_id == 0 || leader_id == info.id)
        snprintf(detail, sizeof detail, "no leader at the moment; retry");
    else if (op->rq->http.forwarded)
        snprintf(detail, sizeof detail, "forwarded here, but node %" PRIu64 " leads now; retry",
                 leader_id);
    else
        snprintf(detail, sizeof detail, "this node does not lead (node %" PRIu64 " does)",
                 leader_id);
    reply_problem(op, 503, 1, detail, "leader",
                  leader_id && leader_id != info.id ? json_integer((json_int_t)leader_id)
                                                    : json_null());
}

/* A store status other than OK (and NOT_LEADER, handled by the caller). */
static void reply_store_status(struct op *op, int status)
{
    switch (status) {
    case SL_STORE_BUSY:
        reply_problem(op, 409, 0, "another membership change or leadership transfer is running",
                      NULL, NULL);
        return;
    case SL_STORE_INVALID:
        reply_problem(op, 400, 0, "the store refused the change", NULL, NULL);
        return;
    case SL_STORE_UNKNOWN:
        reply_unavailable(op, "the outcome is unknown (leadership changed); check and retry");
        return;
    case SL_STORE_CLOSING: reply_unavailable(op, "this node is shutting down"); return;
    default: reply_problem(op, 500, 0, "the configuration store failed", NULL, NULL); return;
    }
}

/* ---- resources as JSON -----------------------------------------------------------------------
 */

/* The stored text as an object, with its name added under key (when key is not NULL). */
static json_t *resource(const char *json, size_t len, const char *key, const char *name,
                        size_t name_len)
{
    json_t *o = json_loadb(json, len, 0, NULL);
    if (o && key && json_object_set_new(o, key, json_stringn(name, name_len)) != 0) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static const char *name_key(enum sl_raft_kind kind)
{
    return kind == SL_RAFT_PROXY || kind == SL_RAFT_SECRET ? "name" : NULL;
}

/* The kind a route works on. */
static enum sl_raft_kind route_kind(enum sl_route_id id)
{
    switch (id) {
    case SL_ROUTE_SECRETS_LIST:
    case SL_ROUTE_SECRET_PUT:
    case SL_ROUTE_SECRET_GET:
    case SL_ROUTE_SECRET_DELETE: return SL_RAFT_SECRET;
    case SL_ROUTE_TARGET_GROUP_PUT:
    case SL_ROUTE_TARGET_GROUP_GET: return SL_RAFT_TARGET_GROUP;
    case SL_ROUTE_TARGETS_ADD:
    case SL_ROUTE_TARGETS_LIST:
    case SL_ROUTE_TARGET_REMOVE: return SL_RAFT_TARGET;
    case SL_ROUTE_WRITER_PUT:
    case SL_ROUTE_WRITER_GET: return SL_RAFT_WRITER;
    case SL_ROUTE_CLUSTER_GET:
    case SL_ROUTE_CLUSTER_NODE_ADD:
    case SL_ROUTE_CLUSTER_NODE_REMOVE:
    case SL_ROUTE_CLUSTER_TRANSFER_LEADERSHIP: return SL_RAFT_NODE;
    default: return SL_RAFT_PROXY;
    }
}

/* ---- writes ----------------------------------------------------------------------------------
 */

static void on_node_added(struct sl_store *s, int status, void *arg);
static void on_node_deleted(struct op *op, const struct sl_store_result *res);

/* Whether the proxy op->name has the target op->id: 1 yes, 0 no proxy, -1 no such target, -2
 * the store failed. */
static int writer_target_exists(struct op *op)
{
    char *text = NULL;
    uint64_t rev;
    int rc = sl_store_get(op->r->store, SL_RAFT_PROXY, op->name, NULL, &text, &rev);
    free(text);
    if (rc != 0)
        return rc > 0 ? 0 : -2;
    text = NULL;
    rc = sl_store_get(op->r->store, SL_RAFT_TARGET, op->name, op->id, &text, &rev);
    free(text);
    return rc == 0 ? 1 : rc > 0 ? -1 : -2;
}

/* Whether op->name's committed writer is the target op->id. */
static bool writer_is(struct op *op)
{
    char *text = NULL;
    uint64_t rev;
    if (sl_store_get(op->r->store, SL_RAFT_WRITER, op->name, NULL, &text, &rev) != 0)
        return false;
    json_t *w = json_loads(text, 0, NULL);
    const char *target = json_string_value(json_object_get(w, "target"));
    bool is = target && strcmp(target, op->id) == 0;
    json_decref(w);
    free(text);
    return is;
}

/* The 404 detail of a writer PUT: which of the proxy and its target is missing. */
static void writer_not_found(struct op *op, char *detail, size_t len)
{
    if (writer_target_exists(op) == 0)
        snprintf(detail, len, "no proxy named \"%s\"", op->name);
    else
        snprintf(detail, len, "no target \"%s\" in proxy \"%s\"", op->id, op->name);
}

static void on_proposed(struct sl_store *s, const struct sl_store_result *res, void *arg)
{
    struct op *op = arg;
    if (res->status == SL_STORE_NOT_LEADER) {
        not_leader(op, res->leader_id);
        return;
    }
    if (res->status != SL_STORE_OK) {
        reply_store_status(op, res->status);
        return;
    }
    char detail[384];
    switch (res->fsm.outcome) {
    case SL_FSM_OK: break;
    case SL_FSM_CONFLICT:
        if (op->route == SL_ROUTE_TARGET_REMOVE && writer_is(op)) {
            /* The state machine keeps the committed writer's target (revision: the epoch). */
            snprintf(detail, sizeof detail,
                     "target \"%s\" is the committed writer of proxy \"%s\" (epoch %" PRIu64
                     "); PUT /v1/proxies/%s/writer with another target first",
                     op->id, op->name, res->fsm.revision, op->name);
            reply_problem(op, 409, 0, detail, "epoch", json_integer((json_int_t)res->fsm.revision));
            return;
        }
        snprintf(detail, sizeof detail, "If-Match: the %s is %" PRIu64 ", not %" PRIu64,
                 op->route == SL_ROUTE_WRITER_PUT ? "writer's epoch (revision)" : "revision",
                 res->fsm.revision, op->expected_rev);
        reply_problem(op, 412, 0, detail, "revision", json_integer((json_int_t)res->fsm.revision));
        return;
    case SL_FSM_NOT_FOUND:
        if (op->route == SL_ROUTE_CLUSTER_NODE_REMOVE) {
            on_node_deleted(op, res); /* the membership change is what counted */
            return;
        }
        /* A target group, target or writer PUT below a missing proxy, a writer naming a target
         * the proxy does not have (at the commit), or a DELETE of something absent. */
        if (op->route == SL_ROUTE_WRITER_PUT)
            writer_not_found(op, detail, sizeof detail);
        else if (op->route == SL_ROUTE_TARGET_REMOVE)
            snprintf(detail, sizeof detail, "no target \"%s\" in proxy \"%s\"", op->id, op->name);
        else
            snprintf(detail, sizeof detail, "no %s named \"%s\"",
                     op->route == SL_ROUTE_SECRET_DELETE ? "secret" : "proxy", op->name);
        reply_problem(op, 404, 0, detail, NULL, NULL);
        return;
    default: reply_problem(op, 400, 0, "the state machine refused the body", NULL, NULL); return;
    }
    if (op->route == SL_ROUTE_CLUSTER_NODE_ADD) {
        /* The node's description is committed; now the membership change. */
        op->revision = res->fsm.revision;
        if (op->member) {
            on_node_added(s, SL_STORE_OK, op);
            return;
        }
        int rc = sl_store_add(s, op->node_id, op->raft_address, SL_STORE_VOTER, on_node_added, op);
        if (rc == SL_STORE_NOT_LEADER)
            not_leader(op, 0);
        else if (rc == SL_STORE_INVALID)
            reply_problem(op, 409, 0, "this node id or Raft address is already a member", NULL,
                          NULL);
        else if (rc != SL_STORE_OK)
            reply_store_status(op, rc);
        return;
    }
    if (op->route == SL_ROUTE_CLUSTER_NODE_REMOVE) {
        on_node_deleted(op, res);
        return;
    }
    if (!op->body) { /* a DELETE */
        reply_json(op, 200, 0, json_pack("{s:I}", "index", (json_int_t)res->fsm.index));
        return;
    }
    json_t *o = resource(op->body, strlen(op->body), name_key(route_kind(op->route)), op->name,
                         strlen(op->name));
    if (o)
        json_object_set_new(o, "revision", json_integer((json_int_t)res->fsm.revision));
    if (o && op->route == SL_ROUTE_WRITER_PUT) /* the writer's revision is its epoch */
        json_object_set_new(o, "epoch", json_integer((json_int_t)res->fsm.revision));
    reply_json(op, 200, res->fsm.revision, o);
}

/* Propose the change, unless the request was forwarded here and this node does not lead. */
static void propose(struct op *op, enum sl_raft_op rop, enum sl_raft_kind kind)
{
    struct sl_store_change ch = {
        .op = rop,
        .kind = kind,
        .name = op->name,
        .id = kind == SL_RAFT_TARGET ? op->id : NULL,
        .body = op->body,
        .expected_rev = op->expected_rev,
    };
    int rc = sl_store_propose(op->r->store, &ch, on_proposed, op);
    if (rc == SL_STORE_NOT_LEADER)
        not_leader(op, 0);
    else if (rc == SL_STORE_INVALID)
        reply_problem(op, 400, 0, "the change cannot be encoded (body over 1 MiB?)", NULL, NULL);
    else if (rc != SL_STORE_OK)
        reply_store_status(op, rc);
}

static bool is_leader(struct sl_admin_store_routes *r)
{
    struct sl_store_info info;
    sl_store_info(r->store, &info);
    return info.state == SL_STORE_LEADER;
}

/* If-Match, when sent, into op->expected_rev; false after answering 400. */
static bool take_if_match(struct op *op)
{
    const char *v = op->rq->http.if_match;
    if (v && sl_validate_if_match(v, &op->expected_rev) != 0) {
        reply_problem(op, 400, 0, "If-Match: must be a revision as sent in ETag, e.g. \"42\"",
                      "field", json_string("If-Match"));
        return false;
    }
    return true;
}

/* The URL's {name} (and {id}) into op; false after answering 400. */
static bool take_names(struct op *op)
{
    struct sl_validate_error e;
    const char *name = sl_route_param(&op->rq->route, "name");
    const char *id = sl_route_param(&op->rq->route, "id");
    if (name && sl_validate_name("name", name, &e) != 0) {
        reply_invalid(op, &e);
        return false;
    }
    if (id && sl_validate_name("id", id, &e) != 0) {
        reply_invalid(op, &e);
        return false;
    }
    snprintf(op->name, sizeof op->name, "%s", name ? name : "");
    snprintf(op->id, sizeof op->id, "%s", id ? id : "");
    return true;
}

/* The secret named by field must exist. Read from this (the leading) node's applied state before
 * proposing: not atomic with the commit, so a secret deleted in between leaves a resource naming
 * a missing secret (the data path refuses that user's logins, managed failover refuses to promote,
 * until it exists). True when it exists; false after answering (400 naming the field, 500). */
static bool secret_exists(struct op *op, const char *field, const char *secret)
{
    char *text = NULL;
    uint64_t rev;
    int rc = sl_store_get(op->r->store, SL_RAFT_SECRET, secret, NULL, &text, &rev);
    free(text);
    if (rc == 0)
        return true;
    char detail[200];
    snprintf(detail, sizeof detail, "%s: no secret named \"%s\" (PUT /v1/secrets/%s first)", field,
             secret, secret);
    if (rc < 0)
        reply_problem(op, 500, 0, "the configuration store failed", NULL, NULL);
    else
        reply_problem(op, 400, 0, detail, "field", json_string(field));
    return false;
}

/* Every secret the validated body names: auth[].secret of a proxy; failover.admin_secret and
 * failover.replication_secret of a target group, when given. */
static bool secrets_exist(struct op *op)
{
    static const char *const failover[] = {"admin_secret", "replication_secret"};
    json_t *doc = json_loads(op->body, 0, NULL);
    if (!doc) {
        reply_problem(op, 500, 0, "out of memory", NULL, NULL);
        return false;
    }
    bool ok = true;
    char field[48];
    size_t i;
    json_t *a, *auth = json_object_get(doc, "auth");
    json_array_foreach(auth, i, a)
    {
        snprintf(field, sizeof field, "auth[%zu].secret", i);
        if (!(ok = secret_exists(op, field, json_string_value(json_object_get(a, "secret")))))
            break;
    }
    json_t *fo = json_object_get(doc, "failover");
    for (i = 0; ok && i < 2; i++) {
        const char *secret = json_string_value(json_object_get(fo, failover[i]));
        snprintf(field, sizeof field, "failover.%s", failover[i]);
        if (secret)
            ok = secret_exists(op, field, secret);
    }
    json_decref(doc);
    return ok;
}

/* ---- databases shared by proxies -------------------------------------------------------------
 *
 * The proxies with a target at one database (host:port) share its connections: the sum of their
 * max_connections_percent must stay at most 100. Checked, like the secrets above, against this
 * (the leading) node's applied state before proposing, and not part of the committed apply: two
 * concurrent writes can each pass alone and together exceed 100. That is acceptable because the
 * budget allocator (budget/alloc.h) and the state machine's clamp hold each proxy's connections,
 * summed over all nodes, to its own budget whatever the shares add up to: this rule keeps the
 * configuration sane, it is not what bounds the connections.
 */

/* The percentage any share may add up to. */
#define SHARES_MAX 100

static int collect_name(const char *name, size_t name_len, const char *json, size_t json_len,
                        uint64_t revision, void *arg)
{
    return json_array_append_new(arg, json_stringn(name, name_len)) == 0 ? 0 : 1;
}

/* targets (arg): target id -> database */
static int collect_target(const char *name, size_t name_len, const char *json, size_t json_len,
                          uint64_t revision, void *arg)
{
    char db[SL_VALIDATE_DATABASE_MAX];
    json_t *t = json_loadb(json, json_len, 0, NULL);
    const char *id = json_string_value(json_object_get(t, "id"));
    int rc = id && sl_validate_target_database(json, json_len, db) == 0 &&
                     json_object_set_new(arg, id, json_string(db)) == 0
                 ? 0
                 : 1;
    json_decref(t);
    return rc;
}

/* Every proxy, by name: {"percent": its max_connections_percent, "targets": {id: database}}.
 * NULL when memory ran out or the store failed. */
static json_t *load_shares(struct sl_store *store)
{
    json_t *names = json_array(), *shares = json_object();
    bool ok =
        names && shares && sl_store_list(store, SL_RAFT_PROXY, NULL, collect_name, names) == 0;
    size_t i;
    json_t *v;
    json_array_foreach(names, i, v)
    {
        if (!ok)
            break;
        const char *name = json_string_value(v);
        char *tg = NULL;
        uint64_t rev;
        int found = sl_store_get(store, SL_RAFT_TARGET_GROUP, name, NULL, &tg, &rev);
        json_t *share = json_object(), *targets = json_object();
        /* Each call steals its value even when it fails, so all three run. */
        int rc = json_object_set_new(share, "targets", targets);
        rc |= json_object_set_new(share, "percent",
                                  json_integer(sl_validate_pool_percent(found == 0 ? tg : NULL)));
        rc |= json_object_set_new(shares, name, share);
        free(tg);
        ok = rc == 0 && found >= 0 &&
             sl_store_list(store, SL_RAFT_TARGET, name, collect_target, targets) == 0;
    }
    json_decref(names);
    if (!ok) {
        json_decref(shares);
        return NULL;
    }
    return shares;
}

/* The sum of the percentages of the proxies with a target at db; counted (when not NULL) gets
 * name -> percent for each of them. */
static json_int_t shares_at(json_t *shares, const char *db, json_t *counted)
{
    json_int_t sum = 0;
    const char *name;
    json_t *share;
    json_object_foreach(shares, name, share)
    {
        const char *id;
        json_t *at;
        json_object_foreach(json_object_get(share, "targets"), id, at)
        {
            if (strcmp(json_string_value(at), db) == 0) {
                json_t *pct = json_object_get(share, "percent");
                sum += json_integer_value(pct);
                if (counted)
                    json_object_set(counted, name, pct); /* out of memory: a shorter list */
                break;
            }
        }
    }
    return sum;
}

static void reply_shares_conflict(struct op *op, const char *db, json_int_t sum, json_t *counted)
{
    char names[512] = "";
    size_t len = 0;
    const char *name;
    json_t *pct;
    json_object_foreach(counted, name, pct)
    {
        int n = snprintf(names + len, sizeof names - len, "%s%s %" JSON_INTEGER_FORMAT "%%",
                         len ? ", " : "", name, json_integer_value(pct));
        if (n < 0 || (size_t)n >= sizeof names - len) {
            snprintf(names + len, sizeof names - len, ", ..."); /* the member lists them all */
            break;
        }
        len += (size_t)n;
    }
    char detail[1024];
    snprintf(detail, sizeof detail,
             "max_connections_percent of the proxies with a target at %s would add up to "
             "%" JSON_INTEGER_FORMAT " (%s); at most %d",
             db, sum, names, SHARES_MAX);
    json_t *doc = sl_http_problem(409, NULL, NULL, detail);
    if (doc) {
        json_object_set_new(doc, "database", json_string(db));
        json_object_set_new(doc, "sum", json_integer(sum));
        json_object_set(doc, "proxies", counted);
    }
    struct sl_http_response head = {.status = 409, .content_type = SL_HTTP_PROBLEM_TYPE};
    sl_admin_reply_json(op->rq, &head, doc);
    op_done(op);
}

/* A target group PUT (a new percentage) or a target POST (a new database) must not raise the sum
 * at any database it touches above SHARES_MAX. A write that does not raise a sum passes even above
 * it, so a configuration from before this rule can be brought down step by step. True to go on;
 * false after answering (409, 500). */
static bool shares_fit(struct op *op)
{
    if (op->route != SL_ROUTE_TARGET_GROUP_PUT && op->route != SL_ROUTE_TARGETS_ADD)
        return true;
    json_t *before = load_shares(op->r->store);
    if (!before) {
        reply_problem(op, 500, 0, "could not read the configuration", NULL, NULL);
        return false;
    }
    if (!json_object_get(before, op->name)) {
        json_decref(before);
        return true; /* no such proxy: the state machine answers 404 */
    }
    json_t *after = json_deep_copy(before);
    json_t *mine = json_object_get(after, op->name);
    json_t *dbs = json_object(); /* the databases the write touches, as keys */
    int rc = dbs ? 0 : -1;
    if (op->route == SL_ROUTE_TARGET_GROUP_PUT) {
        rc |=
            json_object_set_new(mine, "percent", json_integer(sl_validate_pool_percent(op->body)));
        const char *id;
        json_t *at;
        json_object_foreach(json_object_get(mine, "targets"), id, at)
        {
            rc |= json_object_set(dbs, json_string_value(at), json_true());
        }
    } else {
        char db[SL_VALIDATE_DATABASE_MAX];
        rc |= sl_validate_target_database(op->body, strlen(op->body), db);
        if (rc == 0) {
            rc |= json_object_set_new(json_object_get(mine, "targets"), op->id, json_string(db));
            rc |= json_object_set(dbs, db, json_true());
        }
    }
    bool fit = true;
    const char *db;
    json_t *unused;
    json_object_foreach(rc == 0 ? dbs : NULL, db, unused)
    {
        json_t *counted = json_object();
        json_int_t sum = shares_at(after, db, counted);
        if (sum > SHARES_MAX && sum > shares_at(before, db, NULL)) {
            reply_shares_conflict(op, db, sum, counted);
            fit = false;
        }
        json_decref(counted);
        if (!fit)
            break;
    }
    json_decref(dbs);
    json_decref(after);
    json_decref(before);
    if (rc != 0)
        reply_problem(op, 500, 0, "out of memory", NULL, NULL);
    return fit && rc == 0;
}

/* A writer PUT names a target of an existing proxy: checked against this (the leading) node's
 * applied state for a precise 404; the state machine checks again at the commit and is the
 * authority (a target deleted in between gives its 404 then). True to go on; false after
 * answering. */
static bool writer_target_ok(struct op *op)
{
    char detail[256];
    switch (writer_target_exists(op)) {
    case 1: return true;
    case -2:
        reply_problem(op, 500, 0, "could not read the configuration", NULL, NULL);
        return false;
    default:
        writer_not_found(op, detail, sizeof detail);
        reply_problem(op, 404, 0, detail, NULL, NULL);
        return false;
    }
}

static void on_write(struct sl_admin_request *rq, void *arg)
{
    struct op *op = op_new(arg, rq);
    if (!op || !take_names(op) || !take_if_match(op))
        return;
    struct sl_validate_error e = {0};
    const char *body = (const char *)rq->http.body;
    size_t len = rq->http.body_len;
    enum sl_raft_kind kind = route_kind(op->route);
    enum sl_raft_op rop = SL_RAFT_PUT;
    switch (op->route) {
    case SL_ROUTE_SECRET_PUT: op->body = sl_validate_secret(body, len, op->name, &e); break;
    case SL_ROUTE_PROXY_PUT: op->body = sl_validate_proxy(body, len, op->name, &e); break;
    case SL_ROUTE_TARGET_GROUP_PUT: op->body = sl_validate_target_group(body, len, &e); break;
    case SL_ROUTE_TARGETS_ADD: op->body = sl_validate_target(body, len, op->id, &e); break;
    case SL_ROUTE_WRITER_PUT: {
        /* Decided on the node the client called: the follower that forwarded it, or this one. */
        char by[SL_RAFT_NAME_MAX + 1];
        const char *origin = rq->http.origin;
        if (rq->http.forwarded && origin && sl_raft_name_valid(origin, strlen(origin)) == 1)
            snprintf(by, sizeof by, "%s", origin);
        else
            own_id(op->r, by);
        op->body = sl_validate_writer(body, len, by, op->id, &e);
        break;
    }
    default: rop = SL_RAFT_DELETE; break;
    }
    if (rop == SL_RAFT_PUT && !op->body) {
        reply_invalid(op, &e);
        return;
    }
    /* On a follower the leader does the rest (including the secret check, against its state). */
    if (!is_leader(op->r)) {
        not_leader(op, 0);
        return;
    }
    if ((op->route == SL_ROUTE_PROXY_PUT || op->route == SL_ROUTE_TARGET_GROUP_PUT) &&
        !secrets_exist(op))
        return;
    if (op->route == SL_ROUTE_WRITER_PUT && !writer_target_ok(op))
        return;
    if (!shares_fit(op)) /* target groups and targets only; never a writer decision */
        return;
    propose(op, rop, kind);
}

/* ---- membership ------------------------------------------------------------------------------
 */

static void on_node_added(struct sl_store *s, int status, void *arg)
{
    struct op *op = arg;
    if (status == SL_STORE_OK) {
        json_t *o = resource(op->body, strlen(op->body), NULL, NULL, 0);
        if (o)
            json_object_set_new(o, "revision", json_integer((json_int_t)op->revision));
        reply_json(op, 200, op->revision, o);
    } else if (status == SL_STORE_ERROR) {
        /* The store's documented case: the new node never caught up (not started, unreachable). */
        reply_unavailable(op, "the node did not catch up with the log; is it running and reachable "
                              "at its raft_address?");
    } else {
        reply_store_status(op, status);
    }
}

static void on_node_add(struct sl_admin_request *rq, void *arg)
{
    struct op *op = op_new(arg, rq);
    if (!op)
        return;
    struct sl_validate_error e;
    op->body = sl_validate_node((const char *)rq->http.body, rq->http.body_len, &op->node_id,
                                op->raft_address, &e);
    if (!op->body) {
        reply_invalid(op, &e);
        return;
    }
    if (!is_leader(op->r)) {
        not_leader(op, 0);
        return;
    }
    /* Already a member at this address: only the description changes (POST is idempotent). The
     * id at another address, or the address under another id, is a conflict: remove it first. */
    struct sl_store_member m[MEMBERS_MAX];
    size_t n = sl_store_members(op->r->store, m, MEMBERS_MAX);
    for (size_t i = 0; i < n && i < MEMBERS_MAX; i++) {
        bool same_id = m[i].id == op->node_id;
        bool same_addr = strcmp(m[i].address, op->raft_address) == 0;
        if (same_id && same_addr) {
            op->member = true;
        } else if (same_id || same_addr) {
            char detail[160];
            snprintf(detail, sizeof detail, "node %" PRIu64 " is a member at %s; remove it first",
                     m[i].id, m[i].address);
            reply_problem(op, 409, 0, detail, NULL, NULL);
            return;
        }
    }
    /* The description first (so GET /v1/cluster can name the new member's zone and URL as soon
     * as it appears), then the membership change. If the change fails the description stays;
     * POST again to retry. */
    snprintf(op->name, sizeof op->name, "%" PRIu64, op->node_id);
    propose(op, SL_RAFT_PUT, SL_RAFT_NODE);
}

static void on_node_deleted(struct op *op, const struct sl_store_result *res)
{
    reply_json(op, 200, 0, json_pack("{s:I}", "index", (json_int_t)res->fsm.index));
}

static void on_node_removed(struct sl_store *s, int status, void *arg)
{
    struct op *op = arg;
    if (status != SL_STORE_OK) {
        reply_store_status(op, status);
        return;
    }
    /* Removing the leader itself makes it step down: the node resource is then deleted through
     * the forwarder, where the removal finds no member and goes on with the deletion. */
    propose(op, SL_RAFT_DELETE, SL_RAFT_NODE);
}

static void on_node_remove(struct sl_admin_request *rq, void *arg)
{
    struct op *op = op_new(arg, rq);
    if (!op)
        return;
    const char *id = sl_route_param(&rq->route, "id");
    if (sl_validate_node_id(id, &op->node_id) != 0) {
        reply_problem(op, 400, 0, "id: must be a node id (a decimal number above 0)", "field",
                      json_string("id"));
        return;
    }
    snprintf(op->name, sizeof op->name, "%" PRIu64, op->node_id);
    if (!is_leader(op->r)) {
        not_leader(op, 0);
        return;
    }
    int rc = sl_store_remove(op->r->store, op->node_id, on_node_removed, op);
    if (rc == SL_STORE_INVALID) {
        /* Not a member (any more): a retry after the membership change, or a description left
         * by a failed add. Deleting the description finishes the job; none at all is a 404. */
        char *text = NULL;
        uint64_t rev;
        int found = sl_store_get(op->r->store, SL_RAFT_NODE, op->name, NULL, &text, &rev);
        free(text);
        if (found == 0) {
            propose(op, SL_RAFT_DELETE, SL_RAFT_NODE);
        } else {
            char detail[64];
            snprintf(detail, sizeof detail, "no node %" PRIu64 " in the cluster", op->node_id);
            reply_problem(op, 404, 0, detail, NULL, NULL);
        }
    } else if (rc == SL_STORE_NOT_LEADER) {
        not_leader(op, 0);
    } else if (rc != SL_STORE_OK) {
        reply_store_status(op, rc);
    }
}

static void on_transferred(struct sl_store *s, int status, void *arg)
{
    struct op *op = arg;
    struct sl_store_info info;
    if (status != SL_STORE_OK) {
        reply_store_status(op, status);
        return;
    }
    sl_store_info(s, &info);
    reply_json(op, 200, 0, json_pack("{s:I}", "leader", (json_int_t)info.leader_id));
}

static void on_transfer(struct sl_admin_request *rq, void *arg)
{
    struct op *op = op_new(arg, rq);
    if (!op)
        return;
    struct sl_validate_error e;
    uint64_t id;
    if (sl_validate_transfer((const char *)rq->http.body, rq->http.body_len, &id, &e) != 0) {
        reply_invalid(op, &e);
        return;
    }
    int rc = is_leader(op->r) ? sl_store_transfer(op->r->store, id, on_transferred, op)
                              : SL_STORE_NOT_LEADER;
    if (rc == SL_STORE_NOT_LEADER)
        not_leader(op, 0);
    else if (rc == SL_STORE_INVALID)
        reply_problem(op, 400, 0, "id: not a voter of the cluster", "field", json_string("id"));
    else if (rc != SL_STORE_OK)
        reply_store_status(op, rc);
}

/* ---- reads -----------------------------------------------------------------------------------
 */

struct list_ctx {
    json_t *arr;
    const char *key;
};

static int list_one(const char *name, size_t name_len, const char *json, size_t json_len,
                    uint64_t revision, void *arg)
{
    struct list_ctx *l = arg;
    json_t *o = resource(json, json_len, l->key, name, name_len);
    return o && json_array_append_new(l->arr, o) == 0 ? 0 : 1;
}

/* The store's names come in key order, which is name order: the arrays need no sorting. */
static void read_list(struct op *op, enum sl_raft_kind kind, const char *proxy)
{
    struct list_ctx l = {json_array(), name_key(kind)};
    int rc = l.arr ? sl_store_list(op->r->store, kind, proxy, list_one, &l) : 1;
    if (rc != 0) {
        json_decref(l.arr);
        reply_problem(op, 500, 0, "could not list the configuration", NULL, NULL);
        return;
    }
    reply_json(op, 200, 0, l.arr);
}

/* A proxy's targets, each with RDS's target_health as this node sees it (when the node told us
 * how to look it up). */
static void read_targets(struct op *op)
{
    struct list_ctx l = {json_array(), name_key(SL_RAFT_TARGET)};
    int rc = l.arr ? sl_store_list(op->r->store, SL_RAFT_TARGET, op->name, list_one, &l) : 1;
    if (rc != 0) {
        json_decref(l.arr);
        reply_problem(op, 500, 0, "could not list the configuration", NULL, NULL);
        return;
    }
    size_t i;
    json_t *t;
    json_array_foreach(l.arr, i, t)
    {
        const char *host = json_string_value(json_object_get(t, "host"));
        json_int_t port = json_integer_value(json_object_get(t, "port"));
        if (!op->r->has_health || !host)
            break;
        char state[64] = "", reason[64] = "", description[64] = "";
        op->r->health.lookup(op->r->health.arg, op->name, host, (int)port, state, reason,
                             description);
        json_object_set_new(t, "target_health",
                            json_pack("{s:s,s:s,s:s}", "state", state, "reason", reason,
                                      "description", description));
    }
    reply_json(op, 200, 0, l.arr);
}

/* 0 found, or answered (404 / 500) and -1. */
static int read_one(struct op *op, enum sl_raft_kind kind, const char *name, json_t **out,
                    uint64_t *rev)
{
    char *text = NULL;
    int rc = sl_store_get(op->r->store, kind, name, NULL, &text, rev);
    if (rc == 0) {
        *out = resource(text, strlen(text), name_key(kind), name, strlen(name));
        free(text);
        return 0;
    }
    char detail[128];
    snprintf(detail, sizeof detail, "no %s named \"%s\"", sl_raft_kind_name(kind), name);
    if (rc > 0)
        reply_problem(op, 404, 0, detail, NULL, NULL);
    else
        reply_problem(op, 500, 0, "could not read the configuration", NULL, NULL);
    return -1;
}

static void read_cluster(struct op *op)
{
    struct sl_store *s = op->r->store;
    struct sl_store_info info;
    struct sl_store_member m[MEMBERS_MAX];
    sl_store_info(s, &info);
    size_t n = sl_store_members(s, m, MEMBERS_MAX);
    static const char *const roles[] = {
        [SL_STORE_VOTER] = "voter", [SL_STORE_STANDBY] = "standby", [SL_STORE_SPARE] = "spare"};
    json_t *nodes = json_array();
    for (size_t i = 0; nodes && i < n && i < MEMBERS_MAX; i++) {
        char name[24], *text = NULL;
        uint64_t rev;
        snprintf(name, sizeof name, "%" PRIu64, m[i].id);
        json_t *o = NULL;
        /* The node resource (admin URL, zone, data address) when there is one; membership and
         * role come from Raft's configuration. */
        if (sl_store_get(s, SL_RAFT_NODE, name, NULL, &text, &rev) == 0)
            o = json_loads(text, 0, NULL);
        free(text);
        if (!o)
            o = json_object();
        json_object_del(o, "revision");
        json_object_set_new(o, "id", json_integer((json_int_t)m[i].id));
        json_object_set_new(o, "raft_address", json_string(m[i].address));
        json_object_set_new(o, "role", json_string(roles[m[i].role]));
        /* Reachability as this node sees it: itself always; the others from the prober. */
        bool up = false;
        uint64_t ago = UINT64_MAX;
        if (m[i].id == info.id) {
            json_object_set_new(o, "reachable", json_true());
        } else if (op->r->has_reach &&
                   op->r->reach.lookup(op->r->reach.arg, m[i].id, &up, &ago) == 0) {
            json_object_set_new(o, "reachable", json_boolean(up));
            json_object_set_new(o, "last_seen_ms",
                                ago == UINT64_MAX ? json_null() : json_integer((json_int_t)ago));
        } else {
            json_object_set_new(o, "reachable", json_null());
        }
        if (json_array_append_new(nodes, o) != 0) {
            json_decref(nodes);
            nodes = NULL;
        }
    }
    json_t *doc = json_pack("{s:I,s:o,s:b,s:I,s:I,s:I,s:o}", "node", (json_int_t)info.id, "leader",
                            info.leader_id ? json_integer((json_int_t)info.leader_id) : json_null(),
                            "leader_ready", info.leader_ready, "term", (json_int_t)info.term,
                            "commit_index", (json_int_t)info.commit_index, "applied_index",
                            (json_int_t)info.applied_index, "nodes", nodes);
    reply_json(op, 200, 0, doc);
}

/* The default writer, found by walking a proxy's targets in id order: the first READ_WRITE one,
 * else the first one (targets[0] as node/store_source.c renders a proxy without a committed
 * writer). */
struct default_writer {
    char first[SL_RAFT_NAME_MAX + 1], first_rw[SL_RAFT_NAME_MAX + 1];
};

static int default_writer_one(const char *name, size_t name_len, const char *json, size_t json_len,
                              uint64_t revision, void *arg)
{
    struct default_writer *d = arg;
    json_t *t = json_loadb(json, json_len, 0, NULL);
    const char *id = json_string_value(json_object_get(t, "id"));
    const char *role = json_string_value(json_object_get(t, "role"));
    if (id && !d->first[0])
        snprintf(d->first, sizeof d->first, "%s", id);
    if (id && !d->first_rw[0] && (!role || strcmp(role, "READ_WRITE") == 0))
        snprintf(d->first_rw, sizeof d->first_rw, "%s", id);
    json_decref(t);
    return d->first_rw[0] ? 1 : 0; /* found: stop the walk */
}

/* A proxy's writer: the committed one, with its epoch (the revision), or the default one (epoch
 * 0, reason "default", no revision nor ETag) for a proxy that never had a writer decision, which
 * is how the data path treats it. 404 without the proxy, or without a target to write to. */
static void read_writer(struct op *op)
{
    json_t *o = NULL;
    uint64_t rev = 0;
    if (read_one(op, SL_RAFT_PROXY, op->name, &o, &rev) != 0)
        return;
    json_decref(o);
    char *text = NULL;
    int rc = sl_store_get(op->r->store, SL_RAFT_WRITER, op->name, NULL, &text, &rev);
    if (rc == 0) {
        o = json_loads(text, 0, NULL);
        free(text);
        if (o)
            json_object_set_new(o, "epoch", json_integer((json_int_t)rev));
        reply_json(op, 200, rev, o);
        return;
    }
    struct default_writer d = {{0}, {0}};
    if (rc > 0)
        rc = sl_store_list(op->r->store, SL_RAFT_TARGET, op->name, default_writer_one, &d);
    if (rc < 0) {
        reply_problem(op, 500, 0, "could not read the configuration", NULL, NULL);
        return;
    }
    const char *id = d.first_rw[0] ? d.first_rw : d.first;
    if (!id[0]) {
        char detail[160];
        snprintf(detail, sizeof detail, "proxy \"%s\" has no targets, so no writer", op->name);
        reply_problem(op, 404, 0, detail, NULL, NULL);
        return;
    }
    reply_json(op, 200, 0,
               json_pack("{s:s,s:i,s:s}", "target", id, "epoch", 0, "reason", "default"));
}

static void serve_read(struct op *op)
{
    json_t *o = NULL;
    uint64_t rev = 0;
    switch (op->route) {
    case SL_ROUTE_CLUSTER_GET: read_cluster(op); return;
    case SL_ROUTE_SECRETS_LIST: read_list(op, SL_RAFT_SECRET, NULL); return;
    case SL_ROUTE_PROXIES_LIST: read_list(op, SL_RAFT_PROXY, NULL); return;
    case SL_ROUTE_SECRET_GET:
    case SL_ROUTE_PROXY_GET:
        if (read_one(op, route_kind(op->route), op->name, &o, &rev) == 0)
            reply_json(op, 200, rev, o);
        return;
    case SL_ROUTE_TARGETS_LIST:
        if (read_one(op, SL_RAFT_PROXY, op->name, &o, &rev) == 0) {
            json_decref(o);
            read_targets(op);
        }
        return;
    case SL_ROUTE_WRITER_GET: read_writer(op); return;
    default: break;
    }
    /* The target group: the stored one, or the defaults (no revision, no ETag) for a proxy that
     * never had one, which is how the data path treats it. */
    if (read_one(op, SL_RAFT_PROXY, op->name, &o, &rev) != 0)
        return;
    json_decref(o);
    char *text = NULL;
    int rc = sl_store_get(op->r->store, SL_RAFT_TARGET_GROUP, op->name, NULL, &text, &rev);
    if (rc < 0) {
        reply_problem(op, 500, 0, "could not read the configuration", NULL, NULL);
        return;
    }
    if (rc > 0) {
        struct sl_validate_error e;
        text = sl_validate_target_group("{}", 2, &e);
        rev = 0;
    }
    o = text ? json_loads(text, 0, NULL) : NULL;
    free(text);
    reply_json(op, 200, rev, o);
}

static void on_barrier(struct sl_store *s, int status, void *arg)
{
    struct op *op = arg;
    if (status == SL_STORE_OK)
        serve_read(op);
    else if (status == SL_STORE_NOT_LEADER)
        not_leader(op, 0);
    else
        reply_store_status(op, status);
}

/* The ?min_revision wait is over: the barrier if asked for, then the read. */
static void continue_read(struct op *op)
{
    if (!op->q.consistent) {
        serve_read(op);
        return;
    }
    int rc = sl_store_barrier(op->r->store, on_barrier, op);
    if (rc == SL_STORE_NOT_LEADER)
        not_leader(op, 0);
    else if (rc != SL_STORE_OK)
        reply_store_status(op, rc);
}

static uint64_t applied(struct sl_admin_store_routes *r)
{
    struct sl_store_info info;
    sl_store_info(r->store, &info);
    return info.applied_index;
}

static void on_timer(uv_timer_t *t);

/* Arm the timer for the earliest deadline; stop both handles when nobody waits. */
static void rearm(struct sl_admin_store_routes *r)
{
    struct sl_list *pos, *tmp;
    uint64_t first = UINT64_MAX;
    sl_list_for_each_safe (pos, tmp, &r->waiting) {
        struct op *op = sl_container_of(pos, struct op, link);
        if (op->deadline < first)
            first = op->deadline;
    }
    if (first == UINT64_MAX) {
        uv_check_stop(&r->check);
        uv_timer_stop(&r->timer);
        return;
    }
    uint64_t now = uv_now(r->timer.loop);
    uv_timer_start(&r->timer, on_timer, first > now ? first - now : 0, 0);
}

/* After every loop iteration while reads wait (the store applies from its own callbacks, and
 * only one watcher can be registered with sl_store_watch, which the node uses): hand over the
 * satisfied waiters, answer the expired ones. */
static void poll_waiters(struct sl_admin_store_routes *r)
{
    uint64_t now = uv_now(r->timer.loop), idx = applied(r);
    struct sl_list *pos, *tmp;
    sl_list_for_each_safe (pos, tmp, &r->waiting) {
        struct op *op = sl_container_of(pos, struct op, link);
        if (idx >= op->q.min_revision) {
            sl_list_remove(&op->link);
            continue_read(op);
        } else if (now >= op->deadline) {
            char detail[160];
            sl_list_remove(&op->link);
            snprintf(detail, sizeof detail,
                     "min_revision %" PRIu64 " not applied here within %u ms (applied: %" PRIu64
                     ")",
                     op->q.min_revision, r->wait_ms, idx);
            reply_unavailable(op, detail);
        }
    }
    rearm(r);
}

static void on_check(uv_check_t *h)
{
    poll_waiters(h->data);
}

static void on_timer(uv_timer_t *t)
{
    poll_waiters(t->data);
}

static void on_read(struct sl_admin_request *rq, void *arg)
{
    struct op *op = op_new(arg, rq);
    if (!op || !take_names(op))
        return;
    struct sl_validate_error e;
    if (sl_validate_query(rq->http.query, &op->q, &e) != 0) {
        reply_invalid(op, &e);
        return;
    }
    struct sl_admin_store_routes *r = op->r;
    if (op->q.min_revision <= applied(r)) {
        continue_read(op);
        return;
    }
    op->deadline = uv_now(r->timer.loop) + r->wait_ms;
    sl_list_push_back(&r->waiting, &op->link);
    uv_check_start(&r->check, on_check);
    rearm(r);
}

/* ---- registration ----------------------------------------------------------------------------
 */

struct sl_admin_store_routes *sl_admin_store_routes(struct sl_admin_server *srv,
                                                    struct sl_store *store,
                                                    const struct sl_admin_forwarder *fwd)
{
    struct sl_admin_store_routes *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    uv_loop_t *loop = sl_admin_server_loop(srv);
    r->store = store;
    r->has_fwd = fwd != NULL;
    if (fwd)
        r->fwd = *fwd;
    r->wait_ms = SL_ADMIN_MIN_REVISION_WAIT_MS;
    sl_list_init(&r->waiting);
    uv_check_init(loop, &r->check);
    uv_timer_init(loop, &r->timer);
    r->check.data = r->timer.data = r;
    r->open_handles = 2;

    static const struct {
        enum sl_route_id id;
        sl_admin_handler fn;
    } table[] = {
        {SL_ROUTE_CLUSTER_GET, on_read},
        {SL_ROUTE_CLUSTER_NODE_ADD, on_node_add},
        {SL_ROUTE_CLUSTER_NODE_REMOVE, on_node_remove},
        {SL_ROUTE_CLUSTER_TRANSFER_LEADERSHIP, on_transfer},
        {SL_ROUTE_SECRETS_LIST, on_read},
        {SL_ROUTE_SECRET_PUT, on_write},
        {SL_ROUTE_SECRET_GET, on_read},
        {SL_ROUTE_SECRET_DELETE, on_write},
        {SL_ROUTE_PROXIES_LIST, on_read},
        {SL_ROUTE_PROXY_PUT, on_write},
        {SL_ROUTE_PROXY_GET, on_read},
        {SL_ROUTE_PROXY_DELETE, on_write},
        {SL_ROUTE_TARGET_GROUP_PUT, on_write},
        {SL_ROUTE_TARGET_GROUP_GET, on_read},
        {SL_ROUTE_TARGETS_ADD, on_write},
        {SL_ROUTE_TARGETS_LIST, on_read},
        {SL_ROUTE_TARGET_REMOVE, on_write},
        {SL_ROUTE_WRITER_PUT, on_write},
        {SL_ROUTE_WRITER_GET, on_read},
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        sl_admin_handle(srv, table[i].id, table[i].fn, r);
    return r;
}

void sl_admin_store_routes_set_reachability(struct sl_admin_store_routes *r,
                                            const struct sl_admin_reachability *h)
{
    r->reach = *h;
    r->has_reach = true;
}

void sl_admin_store_routes_set_health(struct sl_admin_store_routes *r,
                                      const struct sl_admin_target_health *h)
{
    r->health = *h;
    r->has_health = true;
}

void sl_admin_store_routes_set_node(struct sl_admin_store_routes *r, const char *node_id)
{
    snprintf(r->node_id, sizeof r->node_id, "%s", node_id ? node_id : "");
}

void sl_admin_store_routes_set_wait(struct sl_admin_store_routes *r, unsigned ms)
{
    r->wait_ms = ms;
}

void sl_admin_store_routes_close(struct sl_admin_store_routes *r)
{
    struct sl_list *pos, *tmp;
    r->closing = true;
    sl_list_for_each_safe (pos, tmp, &r->waiting) {
        struct op *op = sl_container_of(pos, struct op, link);
        sl_list_remove(&op->link);
        reply_unavailable(op, "this node is shutting down");
    }
    uv_close((uv_handle_t *)&r->check, on_handle_closed);
    uv_close((uv_handle_t *)&r->timer, on_handle_closed);
}
