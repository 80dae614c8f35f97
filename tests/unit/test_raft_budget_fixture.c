/* The committed budget table (raft/budget.h) under leader changes: libraft's deterministic fixture
 * (raft/fixture.h) with three servers, each running the real state machine (raft/fsm.h on its own
 * LMDB directory, through raft/fsm_glue.h).
 *
 * A small driver plays the budget leader's rounds as budget/leader.c composes them: on whichever
 * server leads, it reads that server's applied table and proposes one budget command (PUT of
 * SL_RAFT_BUDGET named SL_RAFT_BUDGET_NAME, body from sl_budget_ops_json) holding
 *   RENEW for every node that "reports" to it (budget node id = fixture index + 1),
 *   CONFIRM for every holder with a pending shrink whose node has applied the shrink (its store's
 *   applied index; simulated nodes close connections at once),
 *   SET for every quota sl_alloc_plan moves, from fixed per-key demands,
 * and waits for it before planning the next round, so each round sees the committed table.
 *
 * Every server's state machine is wrapped: after each applied entry and each restore the wrapper
 * reads the server's table back from LMDB and checks, for every entry:
 *   1. quota <= cap for each holder;
 *   2. sum(cap) <= budget - reserve, in scenarios that never lower a LIMIT (c->strict);
 *   3. after an apply, sum(cap) <= max(sum(cap) before the entry, budget - reserve), and no cap
 *      grew if the sum is above budget - reserve (raft/budget.h, "Safety argument");
 *   4. what the nodes may hold at that moment. Each live node is taken to fill the quota of its
 *      own applied table (closing connections the moment it applies a shrink); a killed node
 *      holds nothing (the database dropped its connections), nor does a revived one until it has
 *      caught up (it has no lease). A node whose applied index is at most the table's holds at
 *      most its cap there (the cap is what the leader counts as taken), and, in strict
 *      scenarios, all of them together hold at most budget - reserve.
 * Violations are recorded (an assertion inside a raft callback would unwind through libraft) and
 * every driver step fails on the first one.
 *
 * Fixture pitfalls (shared/notes/raft.md, section 6): zero the struct before
 * raft_fixture_initialize; partition with raft_fixture_saturate in both directions. The fixture
 * cannot restart a raft instance (closing one frees its simulated disk), so a restart here is a
 * kill + revive around closing and reopening the server's LMDB store, and the log replay that a
 * real restart does is checked by re-applying the committed commands to the stores directly. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <raft.h>
#include <raft/fixture.h>

#include "budget/alloc.h"
#include "budget/lease.h"
#include "raft/budget.h"
#include "raft/cmd.h"
#include "raft/fsm.h"
#include "raft/fsm_glue.h"

#define N         3
#define ALL       ((1u << N) - 1)
#define BIT(i)    (1u << (i))
#define N_KEYS    2
#define MAX_PROPS 256
#define MAX_OPS   32
#define WAIT_MS   10000

static const char *const keys[N_KEYS] = {"app/db1.internal:3306", "app/db2.internal:3307"};

/* A proposal stays alive until teardown: libraft may call back long after the round (a deposed
 * leader's callbacks fire when it steps down, or at raft_fixture_close). */
struct proposal {
    struct raft_apply req;
    int status;
    bool done;
    unsigned num;     /* request number, encoded in the request id */
    raft_index index; /* where the leader appended it */
    uint8_t *bytes;   /* the command, for the replay checks */
    size_t len;
};

struct cluster;

struct server {
    struct cluster *c;
    unsigned i;
    struct sl_fsm *store;
    struct sl_fsm_glue glue;
    struct raft_fsm fsm;         /* wraps glue.fsm with the invariant checks */
    struct sl_budget_table last; /* the table after the last apply or restore */
    uint64_t applied;            /* its index */
    uint64_t lag_until;          /* revived: holds nothing until it applied this index */
    unsigned applies, restores;  /* checks run */
};

struct cluster {
    char root[64];
    char dirs[N][96];
    struct server s[N];
    struct raft_fixture f;
    bool strict; /* no LIMIT lowering: sum(cap) <= budget - reserve after every entry */
    unsigned violations;
    char violation[512];
    unsigned demand[N_KEYS][N]; /* per key, per budget node */
    uint64_t seq[N];            /* per budget node: its last report's sequence number */
    struct proposal props[MAX_PROPS];
    size_t n_props;
};

/* --- Invariant checks, run inside the state machine callbacks --------------------------------- */

__attribute__((format(printf, 2, 3))) static void violated(struct cluster *c, const char *fmt, ...)
{
    if (c->violations++ > 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->violation, sizeof c->violation, fmt, ap);
    va_end(ap);
}

static void assert_no_violation(struct cluster *c)
{
    if (c->violations)
        fail_msg("%u invariant violations; first: %s", c->violations, c->violation);
}

static void check_table(struct server *s, bool restored)
{
    struct cluster *c = s->c;
    char *json = NULL, err[160];
    uint64_t at = 0;
    struct sl_budget_table t;
    if (sl_fsm_budget(s->store, &json) != 0 || sl_fsm_applied(s->store, &at) < 0) {
        violated(c, "server %u: store unreadable", s->i);
        free(json);
        return;
    }
    if (sl_budget_table_parse(json, strlen(json), &t, err, sizeof err) != 0) {
        violated(c, "server %u index %llu: stored table unparsable: %s", s->i,
                 (unsigned long long)at, err);
        free(json);
        return;
    }
    free(json);
    for (size_t k = 0; k < t.n_entries; k++) {
        const struct sl_budget_entry *e = &t.entries[k];
        const struct sl_budget_entry *prev = restored ? NULL : sl_budget_find(&s->last, e->key);
        uint64_t usable = e->budget - e->reserve, sum = 0;
        bool grew = false;
        for (size_t h = 0; h < e->n_holders; h++) {
            const struct sl_budget_holder *hd = &e->holders[h];
            const struct sl_budget_holder *ph = prev ? sl_budget_holder_of(prev, hd->node) : NULL;
            if (hd->quota > hd->cap)
                violated(c, "server %u index %llu %s node %llu: quota %u > cap %u", s->i,
                         (unsigned long long)at, e->key, (unsigned long long)hd->node, hd->quota,
                         hd->cap);
            sum += hd->cap;
            grew |= !restored && hd->cap > (ph ? ph->cap : 0);
        }
        uint64_t before = prev ? sl_budget_capped(prev) : 0;
        if (c->strict && sum > usable)
            violated(c, "server %u index %llu %s: sum of caps %llu > budget - reserve %llu", s->i,
                     (unsigned long long)at, e->key, (unsigned long long)sum,
                     (unsigned long long)usable);
        if (!restored && sum > (before > usable ? before : usable))
            violated(c, "server %u index %llu %s: sum of caps %llu > max(%llu before, %llu)", s->i,
                     (unsigned long long)at, e->key, (unsigned long long)sum,
                     (unsigned long long)before, (unsigned long long)usable);
        if (grew && sum > usable)
            violated(c, "server %u index %llu %s: a cap grew to a sum of %llu > %llu", s->i,
                     (unsigned long long)at, e->key, (unsigned long long)sum,
                     (unsigned long long)usable);
    }
    sl_budget_table_free(&s->last);
    s->last = t;
    s->applied = at;
    for (size_t k = 0; k < t.n_entries; k++) {
        const struct sl_budget_entry *e = &t.entries[k];
        uint64_t held = 0;
        for (unsigned j = 0; j < N; j++) {
            const struct server *o = &c->s[j];
            if (!raft_fixture_alive(&c->f, j) || o->applied < o->lag_until)
                continue;
            const struct sl_budget_entry *oe = sl_budget_find(&o->last, e->key);
            const struct sl_budget_holder *oh = oe ? sl_budget_holder_of(oe, j + 1) : NULL;
            const struct sl_budget_holder *th = sl_budget_holder_of(e, j + 1);
            unsigned q = oh ? oh->quota : 0;
            held += q;
            if (o->applied <= at && q > (th ? th->cap : 0))
                violated(c, "server %u index %llu %s: node %u may hold %u (applied %llu) > cap %u",
                         s->i, (unsigned long long)at, e->key, j + 1, q,
                         (unsigned long long)o->applied, th ? th->cap : 0);
        }
        if (c->strict && held > e->budget - e->reserve)
            violated(c, "server %u index %llu %s: the nodes may hold %llu > budget - reserve %u",
                     s->i, (unsigned long long)at, e->key, (unsigned long long)held,
                     e->budget - e->reserve);
    }
    if (restored)
        s->restores++;
    else
        s->applies++;
}

static int checked_apply(struct raft_fsm *fsm, const struct raft_buffer *buf, void **result)
{
    struct server *s = fsm->data;
    int rc = s->glue.fsm.apply(&s->glue.fsm, buf, result);
    if (rc == 0)
        check_table(s, false);
    return rc;
}

static int checked_snapshot(struct raft_fsm *fsm, struct raft_buffer *bufs[], unsigned *n_bufs)
{
    struct server *s = fsm->data;
    return s->glue.fsm.snapshot(&s->glue.fsm, bufs, n_bufs);
}

static int checked_finalize(struct raft_fsm *fsm, struct raft_buffer *bufs[], unsigned *n_bufs)
{
    struct server *s = fsm->data;
    return s->glue.fsm.snapshot_finalize(&s->glue.fsm, bufs, n_bufs);
}

static int checked_restore(struct raft_fsm *fsm, struct raft_buffer *buf)
{
    struct server *s = fsm->data;
    int rc = s->glue.fsm.restore(&s->glue.fsm, buf);
    if (rc == 0)
        check_table(s, true);
    return rc;
}

/* --- Cluster ---------------------------------------------------------------------------------- */

static struct sl_fsm *open_dir(const char *dir)
{
    struct sl_fsm_options opt = {.map_size = 8 << 20};
    struct sl_fsm *fsm;
    char err[256];
    assert_int_equal(sl_fsm_open(&fsm, dir, &opt, err, sizeof err), 0);
    return fsm;
}

/* Open server i's store (again) and hand it to its glue. */
static void open_store(struct cluster *c, unsigned i)
{
    c->s[i].store = open_dir(c->dirs[i]);
    c->s[i].glue.store = c->s[i].store;
}

static void close_store(struct cluster *c, unsigned i)
{
    sl_fsm_close(c->s[i].store);
    c->s[i].store = NULL;
    c->s[i].glue.store = NULL;
}

static int setup_with(void **state, unsigned threshold, unsigned trailing)
{
    struct cluster *c = calloc(1, sizeof *c);
    assert_non_null(c);
    snprintf(c->root, sizeof c->root, "/tmp/sl_budget_fixture_XXXXXX");
    assert_non_null(mkdtemp(c->root));
    for (unsigned i = 0; i < N; i++) {
        struct server *s = &c->s[i];
        snprintf(c->dirs[i], sizeof c->dirs[i], "%s/n%u", c->root, i);
        assert_int_equal(mkdir(c->dirs[i], 0700), 0);
        s->c = c;
        s->i = i;
        s->store = open_dir(c->dirs[i]);
        sl_fsm_glue_init(&s->glue, s->store);
        sl_budget_table_init(&s->last);
        s->fsm = (struct raft_fsm){.version = 2,
                                   .data = s,
                                   .apply = checked_apply,
                                   .snapshot = checked_snapshot,
                                   .restore = checked_restore,
                                   .snapshot_finalize = checked_finalize};
    }
    c->strict = true;
    memset(&c->f, 0, sizeof c->f);
    assert_int_equal(raft_fixture_initialize(&c->f), 0);
    for (unsigned i = 0; i < N; i++)
        assert_int_equal(raft_fixture_grow(&c->f, &c->s[i].fsm), 0);
    for (unsigned i = 0; i < N; i++) {
        struct raft *r = raft_fixture_get(&c->f, i);
        sl_fsm_glue_bind(&c->s[i].glue, r);
        raft_set_snapshot_threshold(r, threshold);
        raft_set_snapshot_trailing(r, trailing);
    }
    struct raft_configuration conf;
    assert_int_equal(raft_fixture_configuration(&c->f, N, &conf), 0);
    assert_int_equal(raft_fixture_bootstrap(&c->f, &conf), 0);
    raft_configuration_close(&conf);
    assert_int_equal(raft_fixture_start(&c->f), 0);
    raft_fixture_elect(&c->f, 0);
    *state = c;
    return 0;
}

static int setup(void **state)
{
    return setup_with(state, 1024, 2048); /* no snapshot is ever taken */
}

static int setup_snapshots(void **state)
{
    return setup_with(state, 4, 4);
}

static void remove_store_dir(const char *dir)
{
    char p[160];
    snprintf(p, sizeof p, "%s/data.mdb", dir);
    unlink(p);
    snprintf(p, sizeof p, "%s/lock.mdb", dir);
    unlink(p);
    rmdir(dir);
}

static int teardown(void **state)
{
    struct cluster *c = *state;
    raft_fixture_close(&c->f); /* fires pending callbacks: the proposals are still alive */
    char p[160];
    for (unsigned i = 0; i < N; i++) {
        if (c->s[i].store)
            sl_fsm_close(c->s[i].store);
        sl_budget_table_free(&c->s[i].last);
        remove_store_dir(c->dirs[i]);
        snprintf(p, sizeof p, "%s/r%u", c->root, i); /* replay stores */
        remove_store_dir(p);
    }
    for (size_t i = 0; i < c->n_props; i++)
        free(c->props[i].bytes);
    assert_int_equal(rmdir(c->root), 0);
    free(c);
    return 0;
}

/* Revive server i; its node holds nothing until it caught up with the others. */
static void revive(struct cluster *c, unsigned i)
{
    c->s[i].lag_until = 0;
    for (unsigned j = 0; j < N; j++)
        if (j != i && c->s[j].applied > c->s[i].lag_until)
            c->s[i].lag_until = c->s[j].applied;
    raft_fixture_revive(&c->f, i);
}

/* --- Reading the stores ----------------------------------------------------------------------- */

static char *budget_json(struct sl_fsm *store)
{
    char *s = NULL;
    assert_int_equal(sl_fsm_budget(store, &s), 0);
    return s;
}

static void read_table(struct cluster *c, unsigned i, struct sl_budget_table *t)
{
    char *s = budget_json(c->s[i].store), err[160];
    assert_int_equal(sl_budget_table_parse(s, strlen(s), t, err, sizeof err), 0);
    free(s);
}

static uint64_t applied_of(struct sl_fsm *store)
{
    uint64_t idx = 0;
    assert_true(sl_fsm_applied(store, &idx) >= 0);
    return idx;
}

/* Every server in `who` holds the same table, byte for byte; returns it (caller frees). */
static char *assert_tables_equal(struct cluster *c, unsigned who)
{
    char *first = NULL;
    for (unsigned i = 0; i < N; i++) {
        if (!(who & BIT(i)))
            continue;
        char *t = budget_json(c->s[i].store);
        if (!first) {
            first = t;
            continue;
        }
        assert_string_equal(first, t);
        free(t);
    }
    assert_non_null(first);
    return first;
}

/* The holder of budget node `node` on key k in server i's table: quota and cap (0 when absent). */
static void holding(struct cluster *c, unsigned i, unsigned k, uint64_t node, unsigned *quota,
                    unsigned *cap)
{
    struct sl_budget_table t;
    read_table(c, i, &t);
    const struct sl_budget_entry *e = sl_budget_find(&t, keys[k]);
    assert_non_null(e);
    const struct sl_budget_holder *h = sl_budget_holder_of(e, node);
    *quota = h ? h->quota : 0;
    *cap = h ? h->cap : 0;
    sl_budget_table_free(&t);
}

static unsigned quota_of(struct cluster *c, unsigned i, unsigned k, uint64_t node)
{
    unsigned q, cap;
    holding(c, i, k, node, &q, &cap);
    return q;
}

/* Sum of the caps of key k on server i, and its budget - reserve. */
static unsigned capped(struct cluster *c, unsigned i, unsigned k, unsigned *usable)
{
    struct sl_budget_table t;
    read_table(c, i, &t);
    const struct sl_budget_entry *e = sl_budget_find(&t, keys[k]);
    assert_non_null(e);
    unsigned sum = sl_budget_capped(e);
    if (usable)
        *usable = e->budget - e->reserve;
    sl_budget_table_free(&t);
    return sum;
}

/* --- Proposals -------------------------------------------------------------------------------- */

static void apply_cb(struct raft_apply *req, int status, void *result)
{
    struct proposal *p = req->data;
    p->status = status;
    p->done = true;
}

static bool proposal_done(struct raft_fixture *f, void *arg)
{
    return ((struct proposal *)arg)->done;
}

static void req_id(uint8_t id[SL_RAFT_REQID_LEN], unsigned n)
{
    memset(id, 0, SL_RAFT_REQID_LEN);
    memcpy(id, "budget", 6);
    for (int i = 0; i < 4; i++)
        id[12 + i] = (uint8_t)(n >> (8 * i));
}

/* Propose ops as one budget command through server `leader` (which must be leader). */
static struct proposal *propose(struct cluster *c, unsigned leader, const struct sl_budget_op *ops,
                                size_t n)
{
    char *body = sl_budget_ops_json(ops, n);
    assert_non_null(body);
    assert_true(c->n_props < MAX_PROPS);
    struct proposal *p = &c->props[c->n_props++];
    p->num = (unsigned)c->n_props;
    struct sl_raft_cmd cmd = {.op = SL_RAFT_PUT,
                              .kind = SL_RAFT_BUDGET,
                              .name = SL_RAFT_BUDGET_NAME,
                              .name_len = strlen(SL_RAFT_BUDGET_NAME),
                              .body = body,
                              .body_len = strlen(body)};
    req_id(cmd.req_id, p->num);
    size_t len = sl_raft_cmd_size(&cmd);
    assert_true(len > 0);
    struct raft_buffer buf = {.base = raft_malloc(len), .len = len};
    assert_non_null(buf.base);
    assert_int_equal(sl_raft_cmd_encode(&cmd, buf.base, len), len);
    p->bytes = malloc(len);
    assert_non_null(p->bytes);
    memcpy(p->bytes, buf.base, len);
    p->len = len;
    free(body);
    p->req.data = p;
    assert_int_equal(raft_apply(raft_fixture_get(&c->f, leader), &p->req, &buf, 1, apply_cb), 0);
    p->index = p->req.index;
    return p;
}

/* Wait until every server in `who` (a mask containing the proposer) applied p; p succeeded. */
static void wait_applied(struct cluster *c, struct proposal *p, unsigned who)
{
    for (unsigned i = 0; i < N; i++)
        if (who & BIT(i))
            assert_true(raft_fixture_step_until_applied(&c->f, i, p->index, WAIT_MS));
    assert_true(p->done);
    assert_int_equal(p->status, 0);
    assert_no_violation(c);
}

static struct proposal *commit_ops(struct cluster *c, unsigned leader, unsigned who,
                                   const struct sl_budget_op *ops, size_t n)
{
    struct proposal *p = propose(c, leader, ops, n);
    wait_applied(c, p, who);
    return p;
}

/* The outcome of p's request on server i: 1 committed (at p's index, OK), 0 never applied. */
static int committed_on(struct cluster *c, unsigned i, const struct proposal *p)
{
    uint8_t rid[SL_RAFT_REQID_LEN];
    req_id(rid, p->num);
    struct sl_fsm_result r;
    int rc = sl_fsm_outcome(c->s[i].store, rid, &r);
    assert_true(rc == 0 || rc == 1);
    if (rc == 1)
        return 0;
    assert_int_equal(r.outcome, SL_FSM_OK);
    assert_true(r.index == p->index);
    return 1;
}

/* --- The leader's rounds ---------------------------------------------------------------------- */

static struct sl_budget_op op_limit(unsigned k, unsigned mc, unsigned pct, unsigned reserve)
{
    struct sl_budget_op op = {
        .kind = SL_BUDGET_LIMIT, .max_connections = mc, .percent = pct, .reserve = reserve};
    snprintf(op.key, sizeof op.key, "%s", keys[k]);
    return op;
}

static struct sl_budget_op op_set(unsigned k, uint64_t node, unsigned quota)
{
    struct sl_budget_op op = {.kind = SL_BUDGET_SET, .node = node, .quota = quota};
    snprintf(op.key, sizeof op.key, "%s", keys[k]);
    return op;
}

static struct sl_budget_op op_revoke(uint64_t node)
{
    return (struct sl_budget_op){.kind = SL_BUDGET_REVOKE, .node = node};
}

static int key_index(const char *key)
{
    for (int k = 0; k < N_KEYS; k++)
        if (strcmp(keys[k], key) == 0)
            return k;
    return -1;
}

struct round {
    struct sl_budget_op ops[MAX_OPS];
    size_t n_ops, n_sets, n_confirms;
    struct sl_budget_table base; /* the leader's applied table the round was planned from */
};

static struct sl_budget_op *add_op(struct round *r, enum sl_budget_op_kind kind)
{
    assert_true(r->n_ops < MAX_OPS);
    struct sl_budget_op *op = &r->ops[r->n_ops++];
    memset(op, 0, sizeof *op);
    op->kind = kind;
    return op;
}

/* Plan one round on server `leader` from its applied table; `reporting` is the mask of budget
 * nodes (fixture indexes) whose reports reach it. */
static void plan(struct cluster *c, unsigned leader, unsigned reporting, struct round *r)
{
    r->n_ops = r->n_sets = r->n_confirms = 0;
    read_table(c, leader, &r->base);
    for (unsigned i = 0; i < N; i++) {
        if (!(reporting & BIT(i)))
            continue;
        struct sl_budget_op *op = add_op(r, SL_BUDGET_RENEW);
        op->node = i + 1;
        op->seq = ++c->seq[i];
    }
    for (size_t x = 0; x < r->base.n_entries; x++) {
        const struct sl_budget_entry *e = &r->base.entries[x];
        int k = key_index(e->key);
        assert_true(k >= 0);
        struct sl_alloc_node nodes[N];
        unsigned out[N];
        size_t n = 0;
        for (size_t h = 0; h < e->n_holders; h++) {
            const struct sl_budget_holder *hd = &e->holders[h];
            assert_true(hd->node >= 1 && hd->node <= N && n < N);
            unsigned i = (unsigned)(hd->node - 1);
            bool reports = reporting & BIT(i);
            /* The node reported that it applied its last quota change and holds no more. */
            uint64_t node_applied = reports ? applied_of(c->s[i].store) : 0;
            if (hd->cap > hd->quota && reports && node_applied >= hd->index) {
                struct sl_budget_op *op = add_op(r, SL_BUDGET_CONFIRM);
                snprintf(op->key, sizeof op->key, "%s", e->key);
                op->node = hd->node;
                op->applied = node_applied;
                r->n_confirms++;
            }
            nodes[n++] = (struct sl_alloc_node){.node = hd->node,
                                                .alive = reports,
                                                .demand = c->demand[k][i],
                                                .waiting = c->demand[k][i] / 2,
                                                .quota = hd->quota,
                                                .cap = hd->cap};
        }
        for (unsigned i = 0; i < N; i++) {
            if (!(reporting & BIT(i)) || sl_budget_holder_of(e, i + 1))
                continue;
            assert_true(n < N);
            nodes[n++] = (struct sl_alloc_node){.node = i + 1,
                                                .alive = true,
                                                .demand = c->demand[k][i],
                                                .waiting = c->demand[k][i] / 2};
        }
        struct sl_alloc_params p = {.budget = e->budget,
                                    .reserve = e->reserve,
                                    .floor = SL_ALLOC_FLOOR_DEFAULT,
                                    .headroom_pct = SL_ALLOC_HEADROOM_PCT_DEFAULT};
        sl_alloc_plan(&p, nodes, n, out);
        for (size_t j = 0; j < n; j++) {
            if (out[j] == nodes[j].quota)
                continue;
            struct sl_budget_op *op = add_op(r, SL_BUDGET_SET);
            snprintf(op->key, sizeof op->key, "%s", e->key);
            op->node = nodes[j].node;
            op->quota = out[j];
            r->n_sets++;
        }
    }
}

struct result {
    raft_index index;
    bool stable; /* nothing to confirm or move: only renewals */
    bool exact;  /* the leader's table after the entry is sl_budget_apply(base, ops, index) */
    size_t n_sets, n_confirms;
    long set_to[N_KEYS][N]; /* the quota each SET of the round asked for; -1 when none */
};

static struct result result_of(const struct round *r)
{
    struct result res = {.stable = r->n_sets == 0 && r->n_confirms == 0,
                         .n_sets = r->n_sets,
                         .n_confirms = r->n_confirms};
    for (unsigned k = 0; k < N_KEYS; k++)
        for (unsigned i = 0; i < N; i++)
            res.set_to[k][i] = -1;
    for (size_t i = 0; i < r->n_ops; i++)
        if (r->ops[i].kind == SL_BUDGET_SET)
            res.set_to[key_index(r->ops[i].key)][r->ops[i].node - 1] = r->ops[i].quota;
    return res;
}

/* One round on `leader`, committed and applied on every server of `who`. */
static struct result run_round(struct cluster *c, unsigned leader, unsigned reporting, unsigned who)
{
    struct round *r = calloc(1, sizeof *r);
    assert_non_null(r);
    plan(c, leader, reporting, r);
    struct result res = result_of(r);
    struct proposal *p = propose(c, leader, r->ops, r->n_ops);
    res.index = p->index;
    /* What the entry does to the table it was planned from, by the pure rules. */
    assert_int_equal(sl_budget_apply(&r->base, r->ops, r->n_ops, p->index), 0);
    char *expect = sl_budget_table_json(&r->base);
    assert_non_null(expect);
    wait_applied(c, p, who);
    char *got = budget_json(c->s[leader].store);
    res.exact = strcmp(got, expect) == 0;
    /* alloc.h: a plan made from a table with sum(cap) <= budget - reserve passes the state
     * machine's clamp unchanged. */
    for (size_t i = 0; res.exact && c->strict && i < r->n_ops; i++) {
        const struct sl_budget_op *op = &r->ops[i];
        if (op->kind != SL_BUDGET_SET)
            continue;
        const struct sl_budget_holder *h =
            sl_budget_holder_of(sl_budget_find(&r->base, op->key), op->node);
        assert_int_equal(h ? h->quota : 0, op->quota);
    }
    free(got);
    free(expect);
    sl_budget_table_free(&r->base);
    free(r);
    return res;
}

/* Rounds on `leader` until one only renews (the plan has converged); each must be exact (no other
 * entry between its planning and its commit). Returns the number of rounds, the last included. */
static unsigned run_until_stable(struct cluster *c, unsigned leader, unsigned reporting,
                                 unsigned who, unsigned max)
{
    for (unsigned n = 1; n <= max; n++) {
        struct result r = run_round(c, leader, reporting, who);
        assert_true(r.exact);
        if (r.stable)
            return n;
    }
    fail_msg("no stable round within %u rounds", max);
    return 0;
}

/* Plan a round and propose it without waiting. */
static struct proposal *propose_round(struct cluster *c, unsigned leader, unsigned reporting,
                                      struct result *res)
{
    struct round *r = calloc(1, sizeof *r);
    assert_non_null(r);
    plan(c, leader, reporting, r);
    *res = result_of(r);
    struct proposal *p = propose(c, leader, r->ops, r->n_ops);
    res->index = p->index;
    sl_budget_table_free(&r->base);
    free(r);
    return p;
}

static void set_demand(struct cluster *c, unsigned k, unsigned d1, unsigned d2, unsigned d3)
{
    c->demand[k][0] = d1;
    c->demand[k][1] = d2;
    c->demand[k][2] = d3;
}

/* Key 0: budget 100 * 50 % = 50, 48 usable; key 1: 40 * 50 % = 20, 18 usable. */
static void limits(struct cluster *c, unsigned leader)
{
    struct sl_budget_op ops[] = {op_limit(0, 100, 50, 2), op_limit(1, 40, 50, 2)};
    commit_ops(c, leader, ALL, ops, 2);
}

/* Every holder has confirmed: quota == cap everywhere (server i's table). */
static void assert_settled(struct cluster *c, unsigned i)
{
    struct sl_budget_table t;
    read_table(c, i, &t);
    for (size_t k = 0; k < t.n_entries; k++)
        for (size_t h = 0; h < t.entries[k].n_holders; h++)
            assert_int_equal(t.entries[k].holders[h].quota, t.entries[k].holders[h].cap);
    sl_budget_table_free(&t);
}

/* --- Scenarios -------------------------------------------------------------------------------- */

/* Servers 1 and 2 (the followers of server 0) hold the proposal's entry in their logs. */
static bool followers_hold(struct raft_fixture *f, void *arg)
{
    raft_index index = ((struct proposal *)arg)->index;
    return raft_last_index(raft_fixture_get(f, 1)) >= index &&
           raft_last_index(raft_fixture_get(f, 2)) >= index;
}

/* The fixture sees a leader other than server *arg. */
static bool other_leader(struct raft_fixture *f, void *arg)
{
    unsigned i = raft_fixture_leader_index(f);
    return i < raft_fixture_n(f) && i != *(unsigned *)arg;
}

/* After a server comes back (revive, heal) it may force an election with the term it reached
 * campaigning alone (the fixture has no pre-vote): let that play out, return the leader. */
static unsigned settle(struct cluster *c)
{
    raft_fixture_step_until_elapsed(&c->f, 3000);
    assert_true(raft_fixture_step_until_has_leader(&c->f, WAIT_MS));
    unsigned leader = raft_fixture_leader_index(&c->f);
    assert_true(leader < N);
    return leader;
}

/* Steady rounds on server 0 (grants, shrinks, confirms); then a round granting node 1 the free
 * room is in flight when server 0 dies (`replicated`: the followers already hold the entry in
 * their logs, so it commits later; else nobody else has it and it is lost). A new leader continues
 * from its own applied table, granting the same room to node 2, revokes node 1 once its lease is
 * over on its clock, and hands the room on; server 0 comes back, catches up and gets a share. */
static void leader_killed(struct cluster *c, bool replicated)
{
    limits(c, 0);
    set_demand(c, 0, 10, 30, 5); /* wants 13 + 38 + 7 > 48: split in proportion */
    set_demand(c, 1, 4, 0, 12);  /* wants 5 + 1 + 15 > 18 */
    assert_true(run_until_stable(c, 0, ALL, ALL, 8) >= 2);
    assert_settled(c, 0);
    unsigned usable;
    assert_int_equal(capped(c, 0, 0, &usable), 48);
    assert_int_equal(usable, 48);

    /* Demand falls: nodes shrink, confirm, and 33 of the 48 are free again. */
    set_demand(c, 0, 4, 4, 4);
    assert_true(run_until_stable(c, 0, ALL, ALL, 8) >= 2);
    assert_settled(c, 0);
    assert_int_equal(capped(c, 0, 0, NULL), 15);
    free(assert_tables_equal(c, ALL));

    /* Node 1's demand jumps: server 0 grants it all the free room (5 -> 38), and dies with that
     * entry in flight. */
    set_demand(c, 0, 40, 4, 4);
    struct result inflight;
    struct proposal *lost = propose_round(c, 0, ALL, &inflight);
    assert_int_equal(inflight.set_to[0][0], 38);
    if (replicated)
        assert_true(raft_fixture_step_until(&c->f, followers_hold, lost, WAIT_MS));
    for (unsigned i = 0; i < N; i++)
        assert_true(raft_last_applied(raft_fixture_get(&c->f, i)) < lost->index);
    raft_fixture_kill(&c->f, 0);
    assert_true(raft_fixture_step_until(&c->f, other_leader, &(unsigned){0}, WAIT_MS));
    unsigned leader = raft_fixture_leader_index(&c->f);
    assert_true(leader == 1 || leader == 2);
    unsigned majority = ALL & ~BIT(0);

    /* The new leader plans from its own applied table, which does not have the grant in flight
     * (not committed yet): node 2 now wants as much, node 1 is silent, so it grants node 2 the
     * same 33. When the entry in flight commits first, the state machine clamps that grant. */
    set_demand(c, 0, 40, 40, 4);
    assert_true(raft_last_applied(raft_fixture_get(&c->f, leader)) < lost->index);
    struct result first = run_round(c, leader, majority, majority);
    assert_int_equal(first.set_to[0][1], 38);
    assert_true(first.exact == !replicated);
    assert_int_equal(quota_of(c, leader, 0, 1), replicated ? 38 : 5);
    assert_int_equal(quota_of(c, leader, 0, 2), replicated ? 5 : 38);
    run_until_stable(c, leader, majority, majority, 8);
    unsigned q2 = quota_of(c, leader, 0, 2);

    /* Node 1's lease is over on the new leader's clock (it cannot know when node 1 was last
     * renewed, so it counts from its takeover, before this): fence (simulated) and revoke. */
    struct sl_lease_params lp = {5000, 5, 500};
    raft_fixture_step_until_elapsed(&c->f, (unsigned)(sl_lease_leader_ns(&lp) / 1000000u));
    struct sl_budget_op revoke = op_revoke(1);
    commit_ops(c, leader, majority, &revoke, 1);
    struct sl_budget_table t;
    read_table(c, leader, &t);
    for (size_t k = 0; k < t.n_entries; k++)
        assert_null(sl_budget_holder_of(&t.entries[k], 1));
    assert_null(sl_budget_lease_of(&t, 1));
    assert_non_null(sl_budget_lease_of(&t, 2));
    sl_budget_table_free(&t);
    /* Its room goes to node 2, the one that wants it. */
    run_until_stable(c, leader, majority, majority, 8);
    assert_true(quota_of(c, leader, 0, 2) > q2);

    /* Server 0 comes back: it steps down, drops what it had not committed, catches up, and
     * reports again like a new node: node 2 shrinks, confirms, node 1 grows. */
    revive(c, 0);
    assert_true(raft_fixture_step_until(&c->f, proposal_done, lost, WAIT_MS));
    assert_int_equal(lost->status, RAFT_LEADERSHIPLOST);
    leader = settle(c);
    q2 = quota_of(c, leader, 0, 2);
    run_until_stable(c, leader, ALL, ALL, 8);
    assert_settled(c, leader);
    assert_true(quota_of(c, leader, 0, 1) > 0);
    assert_true(quota_of(c, leader, 0, 2) < q2);
    assert_int_equal(capped(c, leader, 0, NULL), 48);
    free(assert_tables_equal(c, ALL));
    /* The entry in flight: committed everywhere or nowhere. */
    for (unsigned i = 0; i < N; i++)
        assert_int_equal(committed_on(c, i, lost), replicated ? 1 : 0);
    for (unsigned i = 0; i < N; i++)
        assert_true(c->s[i].applies >= 10);
    assert_no_violation(c);
}

static void test_leader_killed_before_replication(void **state)
{
    leader_killed(*state, false);
}

static void test_leader_killed_after_replication(void **state)
{
    leader_killed(*state, true);
}

/* A confirmation planned by a new leader from a table that lacks its predecessor's last shrink.
 * Node 3 shrinks (committed), then server 0 proposes a round confirming that shrink and shrinking
 * node 3 again, and dies with the followers holding the entry. The new leader, planning from its
 * applied table, confirms the first shrink with node 3's applied index, which predates the second
 * one once both are committed: that CONFIRM must be ignored (the cap stays until node 3 has
 * applied the second shrink), or the leader would count as free connections node 3 may still
 * hold. */
static void test_confirm_across_leader_change(void **state)
{
    struct cluster *c = *state;
    limits(c, 0);
    set_demand(c, 0, 10, 5, 30); /* node 3 holds most */
    set_demand(c, 1, 1, 1, 1);
    run_until_stable(c, 0, ALL, ALL, 8);
    assert_int_equal(capped(c, 0, 0, NULL), 48);
    unsigned q3, cap3;
    holding(c, 0, 0, 3, &q3, &cap3);

    /* First shrink of node 3, committed everywhere: quota down, cap kept. */
    set_demand(c, 0, 10, 5, 15);
    struct result r1 = run_round(c, 0, ALL, ALL);
    assert_true(r1.exact);
    assert_true(r1.set_to[0][2] >= 0 && (unsigned)r1.set_to[0][2] < q3);
    unsigned mid = (unsigned)r1.set_to[0][2];

    /* Server 0's next round confirms it and shrinks node 3 again; the followers get the entry,
     * then server 0 dies. */
    set_demand(c, 0, 10, 5, 5);
    struct result r2;
    struct proposal *inflight = propose_round(c, 0, ALL, &r2);
    assert_true(r2.n_confirms >= 1);
    assert_true(r2.set_to[0][2] >= 0 && (unsigned)r2.set_to[0][2] < mid);
    unsigned low = (unsigned)r2.set_to[0][2];
    assert_true(raft_fixture_step_until(&c->f, followers_hold, inflight, WAIT_MS));
    raft_fixture_kill(&c->f, 0);
    assert_true(raft_fixture_step_until(&c->f, other_leader, &(unsigned){0}, WAIT_MS));
    unsigned leader = raft_fixture_leader_index(&c->f);
    assert_true(leader == 1 || leader == 2);
    unsigned majority = ALL & ~BIT(0);

    /* The new leader has not applied the entry in flight: it sees node 3 at (mid, cap3) and
     * confirms with node 3's applied index, that of the first shrink. */
    assert_true(raft_last_applied(raft_fixture_get(&c->f, leader)) < inflight->index);
    struct result first = run_round(c, leader, majority, majority);
    assert_true(first.n_confirms >= 1);
    assert_false(first.exact);
    /* Both committed, in order: the second shrink stands with the cap of the first confirm. */
    for (unsigned i = 1; i < N; i++) {
        unsigned q, cap;
        holding(c, i, 0, 3, &q, &cap);
        assert_int_equal(q, low);
        assert_int_equal(cap, mid);
    }
    /* Later rounds confirm the second shrink and hand the room on. */
    run_until_stable(c, leader, majority, majority, 8);
    holding(c, leader, 0, 3, &q3, &cap3);
    assert_int_equal(q3, cap3);

    revive(c, 0);
    assert_true(raft_fixture_step_until(&c->f, proposal_done, inflight, WAIT_MS));
    leader = settle(c);
    run_until_stable(c, leader, ALL, ALL, 8);
    free(assert_tables_equal(c, ALL));
    for (unsigned i = 0; i < N; i++)
        assert_int_equal(committed_on(c, i, inflight), 1);
    assert_no_violation(c);
}

/* Server 0 leads, then is cut off. While it still believes it leads it proposes grants of all the
 * free room to node 1; the majority elects a new leader, which grants the same room to node 2.
 * Together the two would exceed the budget; only the majority's are committed, and after the
 * partition heals server 0 drops its entries and converges. */
static void test_stale_leader(void **state)
{
    struct cluster *c = *state;
    limits(c, 0);
    set_demand(c, 0, 4, 4, 4); /* wants 5 each: 15 of 48, 33 free */
    set_demand(c, 1, 2, 2, 2);
    run_until_stable(c, 0, ALL, ALL, 8);
    unsigned usable, q[N];
    unsigned free_room = 48 - capped(c, 0, 0, &usable);
    assert_int_equal(free_room, 33);
    for (unsigned i = 0; i < N; i++)
        q[i] = quota_of(c, 0, 0, i + 1);

    for (unsigned i = 1; i < N; i++) {
        raft_fixture_saturate(&c->f, 0, i);
        raft_fixture_saturate(&c->f, i, 0);
    }
    /* Both sides now see demand 40 from "their" node: node 1 reports only to server 0, nodes 2
     * and 3 only to the majority. */
    set_demand(c, 0, 40, 40, 4);
    struct proposal *stale[8];
    size_t n_stale = 0;
    unsigned stale_grant = 0;
    while (raft_state(raft_fixture_get(&c->f, 0)) == RAFT_LEADER && n_stale < 8) {
        struct result r;
        stale[n_stale++] = propose_round(c, 0, BIT(0), &r);
        /* Node 1's grant: server 0 believes nodes 2 and 3 still hold theirs, so all the room. */
        assert_true(r.set_to[0][0] >= 0);
        stale_grant = (unsigned)r.set_to[0][0] - q[0];
        raft_fixture_step_until_elapsed(&c->f, 200);
    }
    assert_true(n_stale >= 2);
    assert_int_equal(stale_grant, free_room);
    assert_int_not_equal(raft_state(raft_fixture_get(&c->f, 0)), RAFT_LEADER);

    assert_true(raft_fixture_step_until(&c->f, other_leader, &(unsigned){0}, WAIT_MS));
    unsigned leader = raft_fixture_leader_index(&c->f);
    assert_true(leader == 1 || leader == 2);
    unsigned majority = ALL & ~BIT(0);
    run_until_stable(c, leader, majority, majority, 8);
    unsigned new_grant = quota_of(c, leader, 0, 2) - q[1];
    /* The two grants together would have exceeded the free room. */
    assert_true(stale_grant + new_grant > free_room);
    assert_true(capped(c, leader, 0, NULL) <= usable);
    assert_int_equal(quota_of(c, leader, 0, 1), q[0]);

    /* Heal: server 0's entries are discarded, nobody ever applied them. */
    for (unsigned i = 1; i < N; i++) {
        raft_fixture_desaturate(&c->f, 0, i);
        raft_fixture_desaturate(&c->f, i, 0);
    }
    leader = settle(c);
    struct result last = run_round(c, leader, majority, ALL);
    assert_true(last.exact);
    for (size_t s = 0; s < n_stale; s++) {
        assert_true(stale[s]->done);
        assert_int_not_equal(stale[s]->status, 0);
        for (unsigned i = 0; i < N; i++)
            assert_int_equal(committed_on(c, i, stale[s]), 0);
    }
    for (unsigned i = 0; i < N; i++)
        assert_int_equal(quota_of(c, i, 0, 1), q[0]);
    free(assert_tables_equal(c, ALL));

    /* Node 1 reports to the real leader again and gets its share the regular way. */
    run_until_stable(c, leader, ALL, ALL, 8);
    assert_true(quota_of(c, leader, 0, 1) > q[0]);
    assert_true(capped(c, leader, 0, NULL) <= usable);
    free(assert_tables_equal(c, ALL));
    assert_no_violation(c);
}

/* A LIMIT lowers the budget below the sum of caps. No SET grows a cap (or a quota) until
 * shrinks and confirms bring the sum under the new budget; then grants resume. */
static void test_limit_below_caps(void **state)
{
    struct cluster *c = *state;
    limits(c, 0);
    set_demand(c, 0, 20, 20, 20); /* wants 25 each > 48: 16 each */
    set_demand(c, 1, 1, 1, 1);
    run_until_stable(c, 0, ALL, ALL, 8);
    assert_int_equal(capped(c, 0, 0, NULL), 48);

    /* Budget 60 * 50 % = 30, 28 usable, below the 48 held. */
    c->strict = false;
    struct sl_budget_op lower = op_limit(0, 60, 50, 2);
    commit_ops(c, 0, ALL, &lower, 1);
    unsigned usable;
    assert_int_equal(capped(c, 0, 0, &usable), 48);
    assert_int_equal(usable, 28);

    /* Direct grow attempts change nothing, on any server. */
    unsigned q3, cap3, q1, cap1;
    holding(c, 0, 0, 3, &q3, &cap3);
    holding(c, 0, 0, 1, &q1, &cap1);
    struct sl_budget_op grow[] = {op_set(0, 3, cap3 + 10), op_set(0, 1, q1 + 1)};
    commit_ops(c, 0, ALL, grow, 2);
    for (unsigned i = 0; i < N; i++) {
        unsigned q, cap;
        holding(c, i, 0, 3, &q, &cap);
        assert_int_equal(q, q3);
        assert_int_equal(cap, cap3);
        holding(c, i, 0, 1, &q, &cap);
        assert_int_equal(q, q1);
        assert_int_equal(cap, cap1);
    }

    /* Node 2's demand goes away, node 1's grows: the plan shrinks 2 and 3 and wants 1 to grow.
     * Round after round, while the sum stays above 28 no cap grows (the per-entry check), and
     * node 1's quota stays put; once confirmed shrinks bring the sum under, node 1 grows. */
    set_demand(c, 0, 30, 0, 5);
    unsigned rounds = 0, above = 0, sum;
    bool grew_after = false;
    for (; rounds < 10; rounds++) {
        unsigned before = quota_of(c, 0, 0, 1);
        sum = capped(c, 0, 0, NULL);
        struct result r = run_round(c, 0, ALL, ALL);
        assert_true(r.exact);
        if (sum > usable) {
            above++;
            assert_true(quota_of(c, 0, 0, 1) <= before);
        } else if (quota_of(c, 0, 0, 1) > before) {
            grew_after = true;
        }
        if (r.stable)
            break;
    }
    assert_true(rounds < 10);
    assert_true(above >= 2); /* shrink, then confirm */
    assert_true(grew_after);
    assert_true(capped(c, 0, 0, NULL) <= usable);
    assert_settled(c, 0);
    free(assert_tables_equal(c, ALL));
    assert_no_violation(c);
}

/* A lagging server (stopped, its store closed and reopened) catches up by snapshot install when
 * the leader's log no longer has what it misses, and from the log otherwise; and the committed
 * log alone rebuilds the same table: replayed onto every store (what a restart does: nothing
 * changes), into an empty store, and on top of an earlier snapshot. */
static void test_restart_and_replay(void **state)
{
    struct cluster *c = *state;
    limits(c, 0);
    set_demand(c, 0, 10, 30, 5);
    set_demand(c, 1, 4, 0, 12);
    run_until_stable(c, 0, ALL, ALL, 8);
    uint8_t *snap;
    size_t snap_len;
    uint64_t snap_at;
    assert_int_equal(sl_fsm_snapshot(c->s[0].store, &snap, &snap_len), 0);
    assert_int_equal(sl_fsm_snapshot_applied(snap, snap_len, &snap_at), 0);

    /* Server 2 goes down; node 3 is silent; twelve rounds move quota about. */
    raft_fixture_kill(&c->f, 2);
    close_store(c, 2);
    unsigned up = BIT(0) | BIT(1);
    raft_index last = 0;
    for (unsigned k = 0; k < 12; k++) {
        set_demand(c, 0, 10 + 3 * k, 30 - 2 * k, 5);
        struct result r = run_round(c, 0, up, up);
        assert_true(r.exact);
        last = r.index;
    }
    open_store(c, 2);
    unsigned installs = raft_fixture_n_recv(&c->f, 2, RAFT_IO_INSTALL_SNAPSHOT);
    revive(c, 2);
    assert_true(raft_fixture_step_until_applied(&c->f, 2, last, WAIT_MS));
    assert_true(raft_fixture_n_recv(&c->f, 2, RAFT_IO_INSTALL_SNAPSHOT) > installs);
    assert_true(c->s[2].restores >= 1);
    assert_true(applied_of(c->s[2].store) == last);
    free(assert_tables_equal(c, ALL));
    assert_no_violation(c);

    /* Server 1 goes down for one round only: it catches up from the log. */
    raft_fixture_kill(&c->f, 1);
    close_store(c, 1);
    set_demand(c, 0, 20, 10, 5);
    struct result r = run_round(c, 0, BIT(0) | BIT(2), BIT(0) | BIT(2));
    assert_true(r.exact);
    open_store(c, 1);
    installs = raft_fixture_n_recv(&c->f, 1, RAFT_IO_INSTALL_SNAPSHOT);
    unsigned restores = c->s[1].restores;
    revive(c, 1);
    assert_true(raft_fixture_step_until_applied(&c->f, 1, r.index, WAIT_MS));
    assert_int_equal(raft_fixture_n_recv(&c->f, 1, RAFT_IO_INSTALL_SNAPSHOT), installs);
    assert_int_equal(c->s[1].restores, restores);
    run_until_stable(c, 0, ALL, ALL, 8);
    char *table = assert_tables_equal(c, ALL);
    uint64_t at = applied_of(c->s[0].store);

    /* The committed log: every proposal whose request was applied, in index order (the
     * proposals were committed in order, none was lost). */
    size_t n_committed = 0;
    for (size_t i = 0; i < c->n_props; i++) {
        assert_int_equal(committed_on(c, 0, &c->props[i]), 1);
        assert_true(i == 0 || c->props[i].index > c->props[i - 1].index);
        n_committed++;
    }
    assert_true(n_committed >= 15);

    /* A restart replays the log over the store: already applied, so nothing changes. */
    for (unsigned i = 0; i < N; i++) {
        close_store(c, i);
        open_store(c, i);
        for (size_t k = 0; k < c->n_props; k++)
            assert_int_equal(
                sl_fsm_apply(c->s[i].store, c->props[k].index, c->props[k].bytes, c->props[k].len),
                0);
        char *again = budget_json(c->s[i].store);
        assert_string_equal(again, table);
        free(again);
        assert_true(applied_of(c->s[i].store) == at);
    }

    /* From nothing: the whole log into an empty store. */
    char dir[128];
    snprintf(dir, sizeof dir, "%s/r0", c->root);
    assert_int_equal(mkdir(dir, 0700), 0);
    struct sl_fsm *fresh = open_dir(dir);
    for (size_t k = 0; k < c->n_props; k++)
        assert_int_equal(sl_fsm_apply(fresh, c->props[k].index, c->props[k].bytes, c->props[k].len),
                         0);
    char *rebuilt = budget_json(fresh);
    assert_string_equal(rebuilt, table);
    free(rebuilt);
    sl_fsm_close(fresh);

    /* From the snapshot taken after the first rounds, plus the entries after it. */
    snprintf(dir, sizeof dir, "%s/r1", c->root);
    assert_int_equal(mkdir(dir, 0700), 0);
    fresh = open_dir(dir);
    assert_int_equal(sl_fsm_restore(fresh, snap, snap_len), 0);
    size_t suffix = 0;
    for (size_t k = 0; k < c->n_props; k++) {
        if (c->props[k].index <= snap_at)
            continue;
        suffix++;
        assert_int_equal(sl_fsm_apply(fresh, c->props[k].index, c->props[k].bytes, c->props[k].len),
                         0);
    }
    assert_true(suffix >= 12);
    rebuilt = budget_json(fresh);
    assert_string_equal(rebuilt, table);
    free(rebuilt);
    sl_fsm_close(fresh);
    free(snap);
    free(table);
    assert_no_violation(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_leader_killed_before_replication, setup, teardown),
        cmocka_unit_test_setup_teardown(test_leader_killed_after_replication, setup, teardown),
        cmocka_unit_test_setup_teardown(test_confirm_across_leader_change, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stale_leader, setup, teardown),
        cmocka_unit_test_setup_teardown(test_limit_below_caps, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restart_and_replay, setup_snapshots, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
