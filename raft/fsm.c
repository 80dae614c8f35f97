#include "raft/fsm.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <lmdb.h>

#include "base/buf.h"
#include "base/bytes.h"
#include "base/log.h"
#include "raft/budget.h"

enum {
    DB_META,
    DB_PROXIES,
    DB_TARGET_GROUPS,
    DB_TARGETS,
    DB_SECRETS,
    DB_NODES,
    DB_REQUESTS,
    DB_REQ_BY_INDEX,
    DB_BUDGET,
    DB_WRITERS,
    DB_COUNT
};

static const char *const db_names[DB_COUNT] = {
    "meta",  "proxies",  "target_groups",     "targets", "secrets",
    "nodes", "requests", "requests_by_index", "budget",  "writers",
};

/* Snapshot sections, in this order (requests_by_index is rebuilt from requests). Version 1
 * snapshots end after requests; version 2 added the budget, version 3 the writers. */
static const int snap_dbs[] = {DB_PROXIES, DB_TARGET_GROUPS, DB_TARGETS, DB_SECRETS,
                               DB_NODES,   DB_REQUESTS,      DB_BUDGET,  DB_WRITERS};
#define N_SNAP_DBS (sizeof(snap_dbs) / sizeof(snap_dbs[0]))

#define SNAP_MAGIC   0x53464c53u /* "SLFS" read as little-endian u32 */
#define SNAP_VERSION 3
#define SNAP_HEADER  16
#define REQ_VAL_LEN  17 /* u64 index, u8 outcome, u64 revision */
#define KEY_MAX      (2 * SL_RAFT_NAME_MAX + 1)

struct sl_fsm {
    MDB_env *env;
    MDB_dbi dbi[DB_COUNT];
    unsigned max_requests;
};

/* LMDB takes keys and values as non-const pointers but never writes through them. */
static MDB_val val_of(const void *p, size_t n)
{
    MDB_val v = {n, (void *)(uintptr_t)p};
    return v;
}

static MDB_val applied_key(void)
{
    return val_of("applied", 7);
}

static int kind_db(enum sl_raft_kind kind)
{
    switch (kind) {
    case SL_RAFT_PROXY: return DB_PROXIES;
    case SL_RAFT_TARGET_GROUP: return DB_TARGET_GROUPS;
    case SL_RAFT_TARGET: return DB_TARGETS;
    case SL_RAFT_SECRET: return DB_SECRETS;
    case SL_RAFT_NODE: return DB_NODES;
    case SL_RAFT_WRITER: return DB_WRITERS;
    case SL_RAFT_BUDGET: break; /* one table, not resources: see change_budget */
    }
    return -1;
}

/* Resource key: the name, or for a target the proxy name, a NUL and the id. Names never contain
 * NUL, so a proxy's targets are exactly the keys starting with "proxy\0", sorted by id. */
struct key {
    char b[KEY_MAX];
    size_t len;
};

static void make_key(struct key *k, const char *name, size_t name_len, const char *id,
                     size_t id_len)
{
    memcpy(k->b, name, name_len);
    k->len = name_len;
    if (id_len > 0) {
        k->b[k->len++] = '\0';
        memcpy(k->b + k->len, id, id_len);
        k->len += id_len;
    }
}

static int fail(const char *what, int rc)
{
    sl_error(0, "raft fsm: %s: %s", what, mdb_strerror(rc));
    return -1;
}

int sl_fsm_open(struct sl_fsm **out, const char *dir, const struct sl_fsm_options *opt, char *err,
                size_t errlen)
{
    struct sl_fsm *f = calloc(1, sizeof *f);
    if (!f) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    size_t map_size = opt && opt->map_size ? opt->map_size : (size_t)256 << 20;
    f->max_requests = opt && opt->max_requests ? opt->max_requests : 10000;
    MDB_txn *txn = NULL;
    int rc = mdb_env_create(&f->env);
    if (rc != 0)
        goto fail;
    if ((rc = mdb_env_set_maxdbs(f->env, DB_COUNT)) != 0 ||
        (rc = mdb_env_set_mapsize(f->env, map_size)) != 0 ||
        (rc = mdb_env_open(f->env, dir, MDB_NOMETASYNC | MDB_NOTLS, 0600)) != 0 ||
        (rc = mdb_txn_begin(f->env, NULL, 0, &txn)) != 0)
        goto fail;
    for (int i = 0; i < DB_COUNT; i++)
        if ((rc = mdb_dbi_open(txn, db_names[i], MDB_CREATE, &f->dbi[i])) != 0)
            goto fail;
    rc = mdb_txn_commit(txn);
    txn = NULL;
    if (rc != 0)
        goto fail;
    *out = f;
    return 0;
fail:
    snprintf(err, errlen, "%s: %s", dir, mdb_strerror(rc));
    if (txn)
        mdb_txn_abort(txn);
    if (f->env)
        mdb_env_close(f->env);
    free(f);
    return -1;
}

void sl_fsm_close(struct sl_fsm *fsm)
{
    if (!fsm)
        return;
    mdb_env_close(fsm->env);
    free(fsm);
}

static int get_applied(struct sl_fsm *f, MDB_txn *txn, uint64_t *index)
{
    MDB_val k = applied_key(), v;
    int rc = mdb_get(txn, f->dbi[DB_META], &k, &v);
    if (rc == MDB_NOTFOUND) {
        *index = 0;
        return 0;
    }
    if (rc != 0)
        return rc;
    if (v.mv_size != 8)
        return MDB_CORRUPTED;
    *index = sl_get_u64(v.mv_data);
    return 0;
}

static int put_applied(struct sl_fsm *f, MDB_txn *txn, uint64_t index)
{
    uint8_t b[8];
    sl_put_u64(b, index);
    MDB_val k = applied_key(), v = val_of(b, sizeof b);
    return mdb_put(txn, f->dbi[DB_META], &k, &v, 0);
}

/* Revision of a stored resource, 0 when absent. */
static int get_revision(struct sl_fsm *f, MDB_txn *txn, int db, const struct key *k, uint64_t *rev)
{
    MDB_val kv = val_of(k->b, k->len), v;
    int rc = mdb_get(txn, f->dbi[db], &kv, &v);
    *rev = 0;
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc != 0)
        return rc;
    if (v.mv_size < 8)
        return MDB_CORRUPTED;
    *rev = sl_get_u64(v.mv_data);
    return 0;
}

/* Build the stored JSON text: the body object with "revision" added, compact with sorted keys.
 * Returns 0 with *text malloc'd, 1 when the body is unusable, or ENOMEM. Running out of memory
 * must not look like an invalid body: that outcome would then differ between nodes. */
static int render_body(const struct sl_raft_cmd *c, uint64_t index, char **text)
{
    json_error_t jerr;
    json_t *obj = json_loadb(c->body, c->body_len, JSON_REJECT_DUPLICATES, &jerr);
    if (!obj)
        return json_error_code(&jerr) == json_error_out_of_memory ? ENOMEM : 1;
    int rc = 1;
    if (!json_is_object(obj) || json_object_get(obj, "revision"))
        goto out;
    if (c->kind == SL_RAFT_WRITER && !json_is_string(json_object_get(obj, "target")))
        goto out;
    if (c->kind == SL_RAFT_SECRET) {
        /* A secret is a reference only; anything else could be a password in the Raft log. */
        const char *ref = json_string_value(json_object_get(obj, "ref"));
        if (json_object_size(obj) != 1 || !ref ||
            !((strncmp(ref, "file:", 5) == 0 && ref[5]) ||
              (strncmp(ref, "env:", 4) == 0 && ref[4])))
            goto out;
    }
    rc = ENOMEM;
    if (json_object_set_new(obj, "revision", json_integer((json_int_t)index)) != 0)
        goto out;
    *text = json_dumps(obj, JSON_COMPACT | JSON_SORT_KEYS);
    if (*text)
        rc = 0;
out:
    json_decref(obj);
    return rc;
}

static int delete_targets_of(struct sl_fsm *f, MDB_txn *txn, const char *proxy, size_t len)
{
    struct key prefix;
    make_key(&prefix, proxy, len, "", 0);
    prefix.b[prefix.len++] = '\0';
    MDB_cursor *cur;
    int rc = mdb_cursor_open(txn, f->dbi[DB_TARGETS], &cur);
    if (rc != 0)
        return rc;
    /* Seek again after each delete: simpler than relying on cursor position after mdb_cursor_del,
     * and a proxy has few targets. */
    for (;;) {
        MDB_val k = val_of(prefix.b, prefix.len), v;
        rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
        if (rc == MDB_NOTFOUND || (rc == 0 && (k.mv_size <= prefix.len ||
                                               memcmp(k.mv_data, prefix.b, prefix.len) != 0))) {
            rc = 0;
            break;
        }
        if (rc != 0 || (rc = mdb_cursor_del(cur, 0)) != 0)
            break;
    }
    mdb_cursor_close(cur);
    return rc;
}

static int del_if_present(MDB_txn *txn, MDB_dbi dbi, MDB_val *k)
{
    int rc = mdb_del(txn, dbi, k, NULL);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

/* The revision of the target a writer command names (0 when the proxy has no such target, or the
 * body names none; render_body has already refused a body that is not a JSON object). */
static int writer_target_revision(struct sl_fsm *f, MDB_txn *txn, const struct sl_raft_cmd *c,
                                  uint64_t *rev)
{
    *rev = 0;
    json_t *obj = json_loadb(c->body, c->body_len, 0, NULL);
    if (!obj)
        return ENOMEM;
    const char *id = json_string_value(json_object_get(obj, "target"));
    int rc = 0;
    if (id && sl_raft_name_valid(id, strlen(id))) {
        struct key tk;
        make_key(&tk, c->name, c->name_len, id, strlen(id));
        rc = get_revision(f, txn, DB_TARGETS, &tk, rev);
    }
    json_decref(obj);
    return rc;
}

/* The revision of c's proxy's writer when it names the target c deletes, else 0. */
static int writer_names(struct sl_fsm *f, MDB_txn *txn, const struct sl_raft_cmd *c, uint64_t *rev)
{
    *rev = 0;
    MDB_val k = val_of(c->name, c->name_len), v;
    int rc = mdb_get(txn, f->dbi[DB_WRITERS], &k, &v);
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc != 0 || v.mv_size < 8)
        return rc ? rc : MDB_CORRUPTED;
    json_t *obj = json_loadb((const char *)v.mv_data + 8, v.mv_size - 8, 0, NULL);
    if (!obj)
        return MDB_CORRUPTED;
    const char *id = json_string_value(json_object_get(obj, "target"));
    if (id && strlen(id) == c->id_len && memcmp(id, c->id, c->id_len) == 0)
        *rev = sl_get_u64(v.mv_data);
    json_decref(obj);
    return 0;
}

/* The effect of one decoded command. Fills res; returns 0 or an LMDB/errno code. */
static int change(struct sl_fsm *f, MDB_txn *txn, uint64_t index, const struct sl_raft_cmd *c,
                  struct sl_fsm_result *res)
{
    int db = kind_db(c->kind);
    struct key k;
    make_key(&k, c->name, c->name_len, c->id, c->id_len);
    MDB_val kv = val_of(k.b, k.len);
    char *text = NULL;
    size_t tlen;
    MDB_val v;
    int rc;

    if (c->op == SL_RAFT_PUT) {
        rc = render_body(c, index, &text);
        if (rc == 1) {
            res->outcome = SL_FSM_INVALID;
            return 0;
        }
        if (rc != 0)
            return rc;
    }
    uint64_t cur;
    if ((rc = get_revision(f, txn, db, &k, &cur)) != 0)
        goto out;
    if (c->op == SL_RAFT_PUT && (c->kind == SL_RAFT_TARGET_GROUP || c->kind == SL_RAFT_TARGET ||
                                 c->kind == SL_RAFT_WRITER)) {
        /* Target groups, targets and the writer exist only below an existing proxy. */
        struct key pk;
        uint64_t prev;
        make_key(&pk, c->name, c->name_len, NULL, 0);
        if ((rc = get_revision(f, txn, DB_PROXIES, &pk, &prev)) != 0)
            goto out;
        if (prev == 0) {
            res->outcome = SL_FSM_NOT_FOUND;
            goto out;
        }
    }
    if (c->op == SL_RAFT_PUT && c->kind == SL_RAFT_WRITER) {
        /* The writer is one of the proxy's targets, at the time the decision commits. */
        uint64_t trev;
        if ((rc = writer_target_revision(f, txn, c, &trev)) != 0)
            goto out;
        if (trev == 0) {
            res->outcome = SL_FSM_NOT_FOUND;
            goto out;
        }
    }
    if (c->expected_rev != 0 && c->expected_rev != cur) {
        res->outcome = SL_FSM_CONFLICT;
        res->revision = cur;
        goto out;
    }
    if (c->op == SL_RAFT_DELETE) {
        if (cur == 0) {
            res->outcome = SL_FSM_NOT_FOUND;
            goto out;
        }
        if (c->kind == SL_RAFT_TARGET) {
            /* The committed writer's target stays until another writer is committed: without it
             * nodes would fall back to the first READ_WRITE target, maybe a demoted writer. */
            uint64_t wrev;
            if ((rc = writer_names(f, txn, c, &wrev)) != 0)
                goto out;
            if (wrev != 0) {
                res->outcome = SL_FSM_CONFLICT;
                res->revision = wrev;
                goto out;
            }
        }
        if ((rc = mdb_del(txn, f->dbi[db], &kv, NULL)) != 0)
            goto out;
        if (c->kind == SL_RAFT_PROXY) {
            if ((rc = del_if_present(txn, f->dbi[DB_TARGET_GROUPS], &kv)) != 0 ||
                (rc = del_if_present(txn, f->dbi[DB_WRITERS], &kv)) != 0 ||
                (rc = delete_targets_of(f, txn, c->name, c->name_len)) != 0)
                goto out;
        }
        res->outcome = SL_FSM_OK;
        goto out;
    }
    tlen = strlen(text);
    v.mv_size = 8 + tlen;
    if ((rc = mdb_put(txn, f->dbi[db], &kv, &v, MDB_RESERVE)) != 0)
        goto out;
    sl_put_u64(v.mv_data, index);
    memcpy((uint8_t *)v.mv_data + 8, text, tlen);
    res->outcome = SL_FSM_OK;
    res->revision = index;
out:
    free(text);
    return rc;
}

static MDB_val budget_key(void)
{
    return val_of("table", 5);
}

/* The stored budget table (empty when absent) into t. 0 or an LMDB/errno code. */
static int read_budget(struct sl_fsm *f, MDB_txn *txn, struct sl_budget_table *t)
{
    MDB_val k = budget_key(), v;
    sl_budget_table_init(t);
    int rc = mdb_get(txn, f->dbi[DB_BUDGET], &k, &v);
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc != 0)
        return rc;
    char err[160];
    rc = sl_budget_table_parse(v.mv_data, v.mv_size, t, err, sizeof err);
    if (rc == -2)
        return ENOMEM;
    if (rc != 0) {
        sl_error(0, "raft fsm: stored budget table: %s", err);
        return MDB_CORRUPTED;
    }
    return 0;
}

/* A budget command: apply its ops to the stored table at `index` and store the table back. Only
 * an unconditional PUT named SL_RAFT_BUDGET_NAME with a valid ops body is usable. As in
 * render_body, running out of memory is an error, never SL_FSM_INVALID. */
static int change_budget(struct sl_fsm *f, MDB_txn *txn, uint64_t index,
                         const struct sl_raft_cmd *c, struct sl_fsm_result *res)
{
    size_t name_len = strlen(SL_RAFT_BUDGET_NAME);
    if (c->op != SL_RAFT_PUT || c->expected_rev != 0 || c->name_len != name_len ||
        memcmp(c->name, SL_RAFT_BUDGET_NAME, name_len) != 0) {
        res->outcome = SL_FSM_INVALID;
        return 0;
    }
    struct sl_budget_op *ops;
    size_t n;
    char err[160];
    int rc = sl_budget_ops_parse(c->body, c->body_len, &ops, &n, err, sizeof err);
    if (rc == -2)
        return ENOMEM;
    if (rc != 0) {
        sl_warn(0, "raft fsm: index %llu: budget command refused: %s", (unsigned long long)index,
                err);
        res->outcome = SL_FSM_INVALID;
        return 0;
    }
    struct sl_budget_table t;
    char *text = NULL;
    rc = read_budget(f, txn, &t);
    if (rc == 0 && sl_budget_apply(&t, ops, n, index) != 0)
        rc = ENOMEM;
    if (rc == 0 && !(text = sl_budget_table_json(&t)))
        rc = ENOMEM;
    if (rc == 0) {
        MDB_val k = budget_key(), v = val_of(text, strlen(text));
        /* An empty table is no record at all, so each state has one representation. */
        if (t.n_entries == 0 && t.n_leases == 0)
            rc = del_if_present(txn, f->dbi[DB_BUDGET], &k);
        else
            rc = mdb_put(txn, f->dbi[DB_BUDGET], &k, &v, 0);
    }
    if (rc == 0) {
        res->outcome = SL_FSM_OK;
        res->revision = index;
    }
    free(text);
    sl_budget_table_free(&t);
    free(ops);
    return rc;
}

static int prune_requests(struct sl_fsm *f, MDB_txn *txn)
{
    MDB_stat st;
    int rc = mdb_stat(txn, f->dbi[DB_REQ_BY_INDEX], &st);
    if (rc != 0)
        return rc;
    MDB_cursor *cur;
    if ((rc = mdb_cursor_open(txn, f->dbi[DB_REQ_BY_INDEX], &cur)) != 0)
        return rc;
    for (size_t n = st.ms_entries; n > f->max_requests && rc == 0; n--) {
        MDB_val k, v;
        uint8_t id[SL_RAFT_REQID_LEN];
        if ((rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST)) != 0)
            break;
        if (v.mv_size != sizeof id) {
            rc = MDB_CORRUPTED;
            break;
        }
        /* Copy: v points into a page that the deletes below may change. */
        memcpy(id, v.mv_data, sizeof id);
        MDB_val rk = val_of(id, sizeof id);
        if ((rc = mdb_cursor_del(cur, 0)) == 0)
            rc = mdb_del(txn, f->dbi[DB_REQUESTS], &rk, NULL);
    }
    mdb_cursor_close(cur);
    return rc;
}

static int record(struct sl_fsm *f, MDB_txn *txn, const uint8_t *req_id,
                  const struct sl_fsm_result *res)
{
    uint8_t val[REQ_VAL_LEN], ik[8];
    sl_put_u64(val, res->index);
    val[8] = (uint8_t)res->outcome;
    sl_put_u64(val + 9, res->revision);
    for (int i = 0; i < 8; i++)
        ik[i] = (uint8_t)(res->index >> (56 - 8 * i)); /* big-endian: LMDB sorts keys bytewise */
    MDB_val rk = val_of(req_id, SL_RAFT_REQID_LEN), rv = val_of(val, sizeof val);
    MDB_val k2 = val_of(ik, sizeof ik), v2 = val_of(req_id, SL_RAFT_REQID_LEN);
    int rc = mdb_put(txn, f->dbi[DB_REQUESTS], &rk, &rv, 0);
    if (rc == 0)
        rc = mdb_put(txn, f->dbi[DB_REQ_BY_INDEX], &k2, &v2, 0);
    if (rc == 0)
        rc = prune_requests(f, txn);
    return rc;
}

int sl_fsm_apply(struct sl_fsm *fsm, uint64_t index, const uint8_t *cmd, size_t len)
{
    MDB_txn *txn;
    int rc = mdb_txn_begin(fsm->env, NULL, 0, &txn);
    if (rc != 0)
        return fail("apply: begin", rc);
    uint64_t applied;
    if ((rc = get_applied(fsm, txn, &applied)) != 0)
        goto fail;
    if (index <= applied) {
        mdb_txn_abort(txn);
        return 0;
    }
    struct sl_raft_cmd c;
    if (sl_raft_cmd_decode(cmd, len, &c) != 0) {
        sl_warn(0, "raft fsm: index %llu: malformed command (%zu bytes) skipped",
                (unsigned long long)index, len);
    } else {
        MDB_val rk = val_of(c.req_id, SL_RAFT_REQID_LEN), rv;
        rc = mdb_get(txn, fsm->dbi[DB_REQUESTS], &rk, &rv);
        if (rc == MDB_NOTFOUND) {
            struct sl_fsm_result res = {.index = index};
            if ((rc = c.kind == SL_RAFT_BUDGET ? change_budget(fsm, txn, index, &c, &res)
                                               : change(fsm, txn, index, &c, &res)) != 0 ||
                (rc = record(fsm, txn, c.req_id, &res)) != 0)
                goto fail;
        } else if (rc != 0) {
            goto fail;
        }
        /* rc == 0: a request id seen before; its first outcome stands. */
    }
    if ((rc = put_applied(fsm, txn, index)) != 0)
        goto fail;
    if ((rc = mdb_txn_commit(txn)) != 0)
        return fail("apply: commit", rc);
    return 0;
fail:
    mdb_txn_abort(txn);
    return fail("apply", rc);
}

int sl_fsm_applied(struct sl_fsm *fsm, uint64_t *index)
{
    MDB_txn *txn;
    int rc = mdb_txn_begin(fsm->env, NULL, MDB_RDONLY, &txn);
    if (rc != 0)
        return fail("read: begin", rc);
    rc = get_applied(fsm, txn, index);
    mdb_txn_abort(txn);
    return rc == 0 ? 0 : fail("read applied", rc);
}

int sl_fsm_outcome(struct sl_fsm *fsm, const uint8_t req_id[SL_RAFT_REQID_LEN],
                   struct sl_fsm_result *out)
{
    MDB_txn *txn;
    int rc = mdb_txn_begin(fsm->env, NULL, MDB_RDONLY, &txn);
    if (rc != 0)
        return fail("read: begin", rc);
    MDB_val k = val_of(req_id, SL_RAFT_REQID_LEN), v;
    rc = mdb_get(txn, fsm->dbi[DB_REQUESTS], &k, &v);
    int ret = 1;
    if (rc == 0 && v.mv_size == REQ_VAL_LEN) {
        const uint8_t *p = v.mv_data;
        out->index = sl_get_u64(p);
        out->outcome = (enum sl_fsm_outcome)p[8];
        out->revision = sl_get_u64(p + 9);
        ret = 0;
    } else if (rc != MDB_NOTFOUND) {
        ret = fail("read outcome", rc == 0 ? MDB_CORRUPTED : rc);
    }
    mdb_txn_abort(txn);
    return ret;
}

/* Resource key from the read API's arguments; -1 on misuse, 1 for a name that cannot exist. */
static int api_key(enum sl_raft_kind kind, const char *name, const char *id, struct key *k)
{
    if (kind_db(kind) < 0 || !name || (kind == SL_RAFT_TARGET) != (id != NULL))
        return -1;
    size_t nl = strlen(name), il = id ? strlen(id) : 0;
    if (!sl_raft_name_valid(name, nl) || (id && !sl_raft_name_valid(id, il)))
        return 1;
    make_key(k, name, nl, id, il);
    return 0;
}

int sl_fsm_get(struct sl_fsm *fsm, enum sl_raft_kind kind, const char *name, const char *id,
               char **json, uint64_t *revision)
{
    if (kind == SL_RAFT_BUDGET)
        return 1; /* not a resource: sl_fsm_budget reads it */
    struct key k;
    int ret = api_key(kind, name, id, &k);
    if (ret != 0)
        return ret;
    MDB_txn *txn;
    int rc = mdb_txn_begin(fsm->env, NULL, MDB_RDONLY, &txn);
    if (rc != 0)
        return fail("read: begin", rc);
    MDB_val kv = val_of(k.b, k.len), v;
    rc = mdb_get(txn, fsm->dbi[kind_db(kind)], &kv, &v);
    if (rc == MDB_NOTFOUND) {
        ret = 1;
    } else if (rc != 0 || v.mv_size < 8) {
        ret = fail("read resource", rc == 0 ? MDB_CORRUPTED : rc);
    } else {
        size_t n = v.mv_size - 8;
        char *s = malloc(n + 1);
        if (!s) {
            ret = fail("read resource", ENOMEM);
        } else {
            memcpy(s, (const uint8_t *)v.mv_data + 8, n);
            s[n] = '\0';
            *json = s;
            *revision = sl_get_u64(v.mv_data);
        }
    }
    mdb_txn_abort(txn);
    return ret;
}

/* Walk db (all of it, or the keys starting with prefix) inside txn. */
static int walk(struct sl_fsm *f, MDB_txn *txn, int db, const struct key *prefix, sl_fsm_list_cb cb,
                void *arg)
{
    MDB_cursor *cur;
    int rc = mdb_cursor_open(txn, f->dbi[db], &cur);
    if (rc != 0)
        return fail("list", rc);
    MDB_val k = prefix ? val_of(prefix->b, prefix->len) : val_of(NULL, 0), v;
    int ret = 0;
    for (rc = mdb_cursor_get(cur, &k, &v, prefix ? MDB_SET_RANGE : MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        const char *name = k.mv_data;
        size_t name_len = k.mv_size;
        if (prefix) {
            if (name_len <= prefix->len || memcmp(name, prefix->b, prefix->len) != 0)
                break;
            name += prefix->len;
            name_len -= prefix->len;
        }
        if (v.mv_size < 8) {
            rc = MDB_CORRUPTED;
            break;
        }
        ret = cb(name, name_len, (const char *)v.mv_data + 8, v.mv_size - 8, sl_get_u64(v.mv_data),
                 arg);
        if (ret != 0)
            break;
    }
    mdb_cursor_close(cur);
    if (ret == 0 && rc != 0 && rc != MDB_NOTFOUND)
        ret = fail("list", rc);
    return ret;
}

int sl_fsm_list(struct sl_fsm *fsm, enum sl_raft_kind kind, const char *proxy, sl_fsm_list_cb cb,
                void *arg)
{
    struct key prefix;
    if (kind == SL_RAFT_TARGET) {
        int r = api_key(SL_RAFT_PROXY, proxy, NULL, &prefix);
        if (r < 0)
            return -1;
        if (r > 0)
            return 0; /* no proxy of that name can exist, so it has no targets */
        prefix.b[prefix.len++] = '\0';
    } else if (kind == SL_RAFT_BUDGET && !proxy) {
        return 0; /* not a resource: nothing to list */
    } else if (kind_db(kind) < 0 || proxy) {
        return -1;
    }
    MDB_txn *txn;
    int rc = mdb_txn_begin(fsm->env, NULL, MDB_RDONLY, &txn);
    if (rc != 0)
        return fail("read: begin", rc);
    int ret = walk(fsm, txn, kind_db(kind), kind == SL_RAFT_TARGET ? &prefix : NULL, cb, arg);
    mdb_txn_abort(txn);
    return ret;
}

/* sl_fsm_dump_json: collect each resource into a JSON object keyed by name. */
static int dump_cb(const char *name, size_t name_len, const char *json, size_t json_len,
                   uint64_t revision, void *arg)
{
    json_t *into = arg;
    char key[KEY_MAX + 1];
    if (name_len > KEY_MAX)
        return -1;
    json_t *val = json_loadb(json, json_len, 0, NULL);
    if (!val)
        return -1;
    memcpy(key, name, name_len);
    key[name_len] = '\0';
    if (memchr(key, '\0', name_len)) {
        /* A target key "proxy\0id": group targets by proxy. */
        json_t *group = json_object_get(into, key);
        if (!group && json_object_set_new(into, key, group = json_object()) != 0)
            group = NULL;
        if (!group) {
            json_decref(val);
            return -1;
        }
        return json_object_set_new(group, key + strlen(key) + 1, val) == 0 ? 0 : -1;
    }
    return json_object_set_new(into, key, val) == 0 ? 0 : -1;
}

int sl_fsm_dump_json(struct sl_fsm *fsm, char **out)
{
    static const struct {
        const char *name;
        int db;
    } parts[] = {{"nodes", DB_NODES},     {"proxies", DB_PROXIES},
                 {"secrets", DB_SECRETS}, {"target_groups", DB_TARGET_GROUPS},
                 {"targets", DB_TARGETS}, {"writers", DB_WRITERS}};
    json_t *doc = json_object();
    if (!doc)
        return -1;
    MDB_txn *txn;
    int rc = mdb_txn_begin(fsm->env, NULL, MDB_RDONLY, &txn);
    if (rc != 0) {
        json_decref(doc);
        return fail("dump: begin", rc);
    }
    int ret = 0;
    for (size_t i = 0; i < sizeof parts / sizeof parts[0] && ret == 0; i++) {
        json_t *part = json_object();
        if (!part || json_object_set_new(doc, parts[i].name, part) != 0)
            ret = -1;
        else
            ret = walk(fsm, txn, parts[i].db, NULL, dump_cb, part);
    }
    mdb_txn_abort(txn);
    if (ret == 0) {
        *out = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
        ret = *out ? 0 : -1;
    }
    json_decref(doc);
    return ret;
}

int sl_fsm_budget(struct sl_fsm *fsm, char **json)
{
    static const char empty[] = "{\"entries\":{},\"leases\":{}}";
    MDB_txn *txn;
    int rc = mdb_txn_begin(fsm->env, NULL, MDB_RDONLY, &txn);
    if (rc != 0)
        return fail("read: begin", rc);
    MDB_val k = budget_key(), v;
    rc = mdb_get(txn, fsm->dbi[DB_BUDGET], &k, &v);
    if (rc == MDB_NOTFOUND) {
        v = val_of(empty, sizeof empty - 1);
        rc = 0;
    }
    /* The record is the table's canonical JSON already: copy it without parsing. */
    char *s = rc == 0 ? malloc(v.mv_size + 1) : NULL;
    if (s) {
        memcpy(s, v.mv_data, v.mv_size);
        s[v.mv_size] = '\0';
    }
    mdb_txn_abort(txn);
    if (!s)
        return fail("read budget", rc != 0 ? rc : ENOMEM);
    *json = s;
    return 0;
}

static int buf_u32(struct sl_buf *b, uint32_t v)
{
    uint8_t p[4];
    sl_put_u32(p, v);
    return sl_buf_append(b, p, sizeof p, SIZE_MAX);
}

static int snapshot_db(struct sl_fsm *f, MDB_txn *txn, int db, struct sl_buf *b)
{
    MDB_stat st;
    MDB_cursor *cur;
    int rc = mdb_stat(txn, f->dbi[db], &st);
    if (rc != 0 || (rc = mdb_cursor_open(txn, f->dbi[db], &cur)) != 0)
        return rc;
    if (st.ms_entries > UINT32_MAX)
        rc = EOVERFLOW;
    else if (buf_u32(b, (uint32_t)st.ms_entries) != 0)
        rc = ENOMEM;
    MDB_val k, v;
    size_t n = 0;
    for (int op = MDB_FIRST; rc == 0; op = MDB_NEXT) {
        if ((rc = mdb_cursor_get(cur, &k, &v, (MDB_cursor_op)op)) != 0)
            break;
        if (k.mv_size > UINT32_MAX || v.mv_size > UINT32_MAX ||
            buf_u32(b, (uint32_t)k.mv_size) != 0 ||
            sl_buf_append(b, k.mv_data, k.mv_size, SIZE_MAX) != 0 ||
            buf_u32(b, (uint32_t)v.mv_size) != 0 ||
            sl_buf_append(b, v.mv_data, v.mv_size, SIZE_MAX) != 0)
            rc = ENOMEM;
        n++;
    }
    mdb_cursor_close(cur);
    if (rc == MDB_NOTFOUND)
        rc = n == st.ms_entries ? 0 : MDB_CORRUPTED;
    return rc;
}

int sl_fsm_snapshot(struct sl_fsm *fsm, uint8_t **buf, size_t *len)
{
    MDB_txn *txn;
    int rc = mdb_txn_begin(fsm->env, NULL, MDB_RDONLY, &txn);
    if (rc != 0)
        return fail("snapshot: begin", rc);
    struct sl_buf b = {0};
    uint8_t head[SNAP_HEADER];
    uint64_t applied;
    if ((rc = get_applied(fsm, txn, &applied)) == 0) {
        sl_put_u32(head, SNAP_MAGIC);
        sl_put_u32(head + 4, SNAP_VERSION);
        sl_put_u64(head + 8, applied);
        if (sl_buf_append(&b, head, sizeof head, SIZE_MAX) != 0)
            rc = ENOMEM;
    }
    for (size_t i = 0; i < N_SNAP_DBS && rc == 0; i++)
        rc = snapshot_db(fsm, txn, snap_dbs[i], &b);
    mdb_txn_abort(txn);
    if (rc != 0) {
        sl_buf_free(&b);
        return fail("snapshot", rc);
    }
    *buf = b.data;
    *len = b.len;
    return 0;
}

/* The snapshot's version (1 to 3), or 0 when the header is not one of ours. */
static uint32_t snap_version(const uint8_t *buf, size_t len)
{
    if (len < SNAP_HEADER || sl_get_u32(buf) != SNAP_MAGIC)
        return 0;
    uint32_t v = sl_get_u32(buf + 4);
    return v >= 1 && v <= SNAP_VERSION ? v : 0;
}

int sl_fsm_snapshot_applied(const uint8_t *buf, size_t len, uint64_t *applied)
{
    if (snap_version(buf, len) == 0)
        return -1;
    *applied = sl_get_u64(buf + 8);
    return 0;
}

/* Pure reader over a snapshot buffer. */
struct reader {
    const uint8_t *p;
    size_t left;
};

static int rd_u32(struct reader *r, uint32_t *v)
{
    if (r->left < 4)
        return -1;
    *v = sl_get_u32(r->p);
    r->p += 4;
    r->left -= 4;
    return 0;
}

static int rd_bytes(struct reader *r, MDB_val *out)
{
    uint32_t n;
    if (rd_u32(r, &n) != 0 || n > r->left)
        return -1;
    *out = val_of(r->p, n);
    r->p += n;
    r->left -= n;
    return 0;
}

static int key_less(const MDB_val *a, const MDB_val *b)
{
    size_t n = a->mv_size < b->mv_size ? a->mv_size : b->mv_size;
    int c = memcmp(a->mv_data, b->mv_data, n);
    return c < 0 || (c == 0 && a->mv_size < b->mv_size);
}

/* The budget record: key "table" and the canonical JSON of a non-empty table (empty is no record)
 * whose indexes are at most applied. 1 valid, 0 not, -1 out of memory. */
static int budget_valid(const MDB_val *k, const MDB_val *v, uint64_t applied)
{
    MDB_val bk = budget_key();
    if (k->mv_size != bk.mv_size || memcmp(k->mv_data, bk.mv_data, bk.mv_size) != 0)
        return 0;
    struct sl_budget_table t;
    char err[160];
    int rc = sl_budget_table_parse(v->mv_data, v->mv_size, &t, err, sizeof err);
    if (rc != 0)
        return rc == -2 ? -1 : 0;
    char *text = sl_budget_table_json(&t);
    int ok = !text ? -1
                   : t.n_entries + t.n_leases > 0 && sl_budget_max_index(&t) <= applied &&
                         strlen(text) == v->mv_size && memcmp(text, v->mv_data, v->mv_size) == 0;
    free(text);
    sl_budget_table_free(&t);
    return ok;
}

/* Structural checks of one snapshot entry: what apply could have written, nothing else. 1 valid,
 * 0 not, -1 out of memory. */
static int entry_valid(int db, const MDB_val *k, const MDB_val *v, uint64_t applied)
{
    if (db == DB_BUDGET)
        return budget_valid(k, v, applied);
    const uint8_t *vp = v->mv_data;
    if (db == DB_REQUESTS)
        return k->mv_size == SL_RAFT_REQID_LEN && v->mv_size == REQ_VAL_LEN && sl_get_u64(vp) > 0 &&
               sl_get_u64(vp) <= applied && vp[8] >= SL_FSM_OK && vp[8] <= SL_FSM_INVALID;
    if (v->mv_size < 8 || sl_get_u64(vp) == 0 || sl_get_u64(vp) > applied)
        return 0;
    const char *name = k->mv_data;
    if (db != DB_TARGETS)
        return sl_raft_name_valid(name, k->mv_size);
    const char *sep = memchr(name, '\0', k->mv_size);
    return sep && sl_raft_name_valid(name, (size_t)(sep - name)) &&
           sl_raft_name_valid(sep + 1, k->mv_size - (size_t)(sep - name) - 1);
}

int sl_fsm_restore(struct sl_fsm *fsm, const uint8_t *buf, size_t len)
{
    uint64_t applied;
    if (sl_fsm_snapshot_applied(buf, len, &applied) != 0)
        return -1;
    struct reader r = {buf + SNAP_HEADER, len - SNAP_HEADER};
    /* Each version added one section at the end: 1 has all but the budget and the writers. */
    size_t sections = N_SNAP_DBS - (SNAP_VERSION - snap_version(buf, len));
    MDB_txn *txn;
    int rc = mdb_txn_begin(fsm->env, NULL, 0, &txn);
    if (rc != 0)
        return fail("restore: begin", rc);
    for (int i = 0; i < DB_COUNT && rc == 0; i++)
        rc = mdb_drop(txn, fsm->dbi[i], 0);
    if (rc == 0)
        rc = put_applied(fsm, txn, applied);
    int bad = 0;
    for (size_t s = 0; s < sections && rc == 0 && !bad; s++) {
        int db = snap_dbs[s];
        uint32_t count;
        MDB_val prev = {0, NULL}, k, v;
        if (rd_u32(&r, &count) != 0) {
            bad = 1;
            break;
        }
        for (uint32_t i = 0; i < count && rc == 0; i++) {
            int valid = 0;
            if (rd_bytes(&r, &k) == 0 && rd_bytes(&r, &v) == 0 && (i == 0 || key_less(&prev, &k)))
                valid = entry_valid(db, &k, &v, applied);
            if (valid <= 0) {
                if (valid < 0)
                    rc = ENOMEM;
                else
                    bad = 1;
                break;
            }
            prev = k;
            /* Keys arrive sorted (checked above), so LMDB can append. */
            if ((rc = mdb_put(txn, fsm->dbi[db], &k, &v, MDB_APPEND)) != 0 || db != DB_REQUESTS)
                continue;
            uint8_t ik[8];
            const uint8_t *vp = v.mv_data;
            for (int j = 0; j < 8; j++)
                ik[j] = vp[7 - j];
            MDB_val k2 = val_of(ik, sizeof ik);
            rc = mdb_put(txn, fsm->dbi[DB_REQ_BY_INDEX], &k2, &k, MDB_NOOVERWRITE);
            if (rc == MDB_KEYEXIST) {
                bad = 1; /* two requests at one index */
                rc = 0;
                break;
            }
        }
    }
    if (rc == 0 && !bad && r.left != 0)
        bad = 1;
    if (rc == 0 && !bad)
        rc = prune_requests(fsm, txn);
    if (rc != 0 || bad) {
        mdb_txn_abort(txn);
        if (bad) {
            sl_warn(0, "raft fsm: malformed snapshot (%zu bytes) not restored", len);
            return -1;
        }
        return fail("restore", rc);
    }
    if ((rc = mdb_txn_commit(txn)) != 0)
        return fail("restore: commit", rc);
    return 0;
}
