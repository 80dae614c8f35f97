/* The LMDB state machine without Raft: apply semantics (put, delete, cascade, revisions,
 * compare-and-set, duplicates, replay, invalid bodies), the read API, bounded request outcomes,
 * snapshot/restore round trips and rejection of every truncated snapshot, and the budget table
 * (budget commands, their replay and duplicates, snapshot versions 1 and 2). Each test works in
 * its own mkdtemp directory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/bytes.h"
#include "raft/cmd.h"
#include "raft/fsm.h"

struct env {
    char dir[64];
    struct sl_fsm *fsm;
    uint64_t index; /* last index handed to apply */
    unsigned next_req;
};

static struct sl_fsm *open_in(const char *dir, unsigned max_requests)
{
    struct sl_fsm_options opt = {.map_size = 8 << 20, .max_requests = max_requests};
    struct sl_fsm *f = NULL;
    char err[256];
    assert_int_equal(sl_fsm_open(&f, dir, &opt, err, sizeof err), 0);
    return f;
}

static void make_dir(char *dir, size_t size)
{
    snprintf(dir, size, "/tmp/sl_raft_fsm_XXXXXX");
    assert_non_null(mkdtemp(dir));
}

static void remove_dir(const char *dir)
{
    char p[128];
    snprintf(p, sizeof p, "%s/data.mdb", dir);
    unlink(p);
    snprintf(p, sizeof p, "%s/lock.mdb", dir);
    unlink(p);
    assert_int_equal(rmdir(dir), 0);
}

static int setup(void **state)
{
    struct env *e = calloc(1, sizeof *e);
    assert_non_null(e);
    make_dir(e->dir, sizeof e->dir);
    e->fsm = open_in(e->dir, 0);
    *state = e;
    return 0;
}

static int teardown(void **state)
{
    struct env *e = *state;
    sl_fsm_close(e->fsm);
    remove_dir(e->dir);
    free(e);
    return 0;
}

static void req_id(uint8_t id[SL_RAFT_REQID_LEN], unsigned n)
{
    memset(id, 0, SL_RAFT_REQID_LEN);
    memcpy(id, "req", 3);
    for (int i = 0; i < 4; i++)
        id[12 + i] = (uint8_t)(n >> (8 * i));
}

/* Encode a command; the caller frees it. */
static uint8_t *cmd(enum sl_raft_op op, enum sl_raft_kind kind, const char *name, const char *id,
                    const char *body, uint64_t expected, unsigned req, size_t *len)
{
    struct sl_raft_cmd c = {.op = op, .kind = kind, .expected_rev = expected};
    req_id(c.req_id, req);
    c.name = name;
    c.name_len = strlen(name);
    c.id = id;
    c.id_len = id ? strlen(id) : 0;
    c.body = body;
    c.body_len = body ? strlen(body) : 0;
    *len = sl_raft_cmd_size(&c);
    assert_true(*len > 0);
    uint8_t *p = malloc(*len);
    assert_non_null(p);
    assert_int_equal(sl_raft_cmd_encode(&c, p, *len), *len);
    return p;
}

/* Apply one command at the next index and return its recorded outcome. */
static struct sl_fsm_result run(struct env *e, enum sl_raft_op op, enum sl_raft_kind kind,
                                const char *name, const char *id, const char *body,
                                uint64_t expected)
{
    size_t len;
    unsigned req = ++e->next_req;
    uint8_t *p = cmd(op, kind, name, id, body, expected, req, &len);
    assert_int_equal(sl_fsm_apply(e->fsm, ++e->index, p, len), 0);
    free(p);
    uint8_t rid[SL_RAFT_REQID_LEN];
    req_id(rid, req);
    struct sl_fsm_result r;
    assert_int_equal(sl_fsm_outcome(e->fsm, rid, &r), 0);
    assert_true(r.index == e->index);
    return r;
}

#define PUT(e, kind, name, id, body) run(e, SL_RAFT_PUT, kind, name, id, body, 0)
#define DEL(e, kind, name, id)       run(e, SL_RAFT_DELETE, kind, name, id, NULL, 0)

static char *get(struct env *e, enum sl_raft_kind kind, const char *name, const char *id,
                 uint64_t *rev)
{
    char *json = NULL;
    int rc = sl_fsm_get(e->fsm, kind, name, id, &json, rev);
    assert_true(rc == 0 || rc == 1);
    return rc == 0 ? json : NULL;
}

static char *dump(struct sl_fsm *f)
{
    char *s = NULL;
    assert_int_equal(sl_fsm_dump_json(f, &s), 0);
    return s;
}

static uint64_t applied(struct sl_fsm *f)
{
    uint64_t i = 99;
    assert_int_equal(sl_fsm_applied(f, &i), 0);
    return i;
}

static void test_put_get_revision(void **state)
{
    struct env *e = *state;
    assert_true(applied(e->fsm) == 0);
    struct sl_fsm_result r = PUT(e, SL_RAFT_PROXY, "app", NULL, "{\"z\":1,\"a\":[true,null]}");
    assert_int_equal(r.outcome, SL_FSM_OK);
    assert_true(r.revision == 1);
    uint64_t rev;
    char *j = get(e, SL_RAFT_PROXY, "app", NULL, &rev);
    assert_string_equal(j, "{\"a\":[true,null],\"revision\":1,\"z\":1}");
    assert_true(rev == 1);
    free(j);

    r = PUT(e, SL_RAFT_PROXY, "app", NULL, "{\"z\":2}");
    assert_true(r.revision == 2);
    j = get(e, SL_RAFT_PROXY, "app", NULL, &rev);
    assert_string_equal(j, "{\"revision\":2,\"z\":2}");
    assert_true(rev == 2);
    free(j);
    assert_null(get(e, SL_RAFT_PROXY, "other", NULL, &rev));
    assert_null(get(e, SL_RAFT_PROXY, "bad name", NULL, &rev));
    assert_null(get(e, SL_RAFT_SECRET, "app", NULL, &rev));
    assert_true(applied(e->fsm) == 2);

    /* Misuse of the read API. */
    char *s;
    assert_int_equal(sl_fsm_get(e->fsm, SL_RAFT_TARGET, "app", NULL, &s, &rev), -1);
    assert_int_equal(sl_fsm_get(e->fsm, SL_RAFT_PROXY, "app", "x", &s, &rev), -1);
    assert_int_equal(sl_fsm_get(e->fsm, (enum sl_raft_kind)0, "app", NULL, &s, &rev), -1);
}

static void test_children_and_cascade(void **state)
{
    struct env *e = *state;
    assert_int_equal(PUT(e, SL_RAFT_TARGET, "app", "t1", "{}").outcome, SL_FSM_NOT_FOUND);
    assert_int_equal(PUT(e, SL_RAFT_TARGET_GROUP, "app", NULL, "{}").outcome, SL_FSM_NOT_FOUND);
    PUT(e, SL_RAFT_PROXY, "app", NULL, "{}");
    PUT(e, SL_RAFT_PROXY, "app-b", NULL, "{}"); /* sorts between "app" and "app\0..." keys */
    assert_int_equal(PUT(e, SL_RAFT_TARGET_GROUP, "app", NULL, "{\"m\":1}").outcome, SL_FSM_OK);
    PUT(e, SL_RAFT_TARGET, "app", "t2", "{\"port\":2}");
    PUT(e, SL_RAFT_TARGET, "app", "t1", "{\"port\":1}");
    PUT(e, SL_RAFT_TARGET, "app-b", "t9", "{}");
    uint64_t rev;
    char *j = get(e, SL_RAFT_TARGET, "app", "t1", &rev);
    assert_string_equal(j, "{\"port\":1,\"revision\":7}");
    free(j);

    char *d = dump(e->fsm);
    assert_string_equal(d, "{\"nodes\":{},\"proxies\":{\"app\":{\"revision\":3},\"app-b\":{"
                           "\"revision\":4}},\"secrets\":{},\"target_groups\":{\"app\":{\"m\":1,"
                           "\"revision\":5}},\"targets\":{\"app\":{\"t1\":{\"port\":1,"
                           "\"revision\":7},\"t2\":{\"port\":2,\"revision\":6}},\"app-b\":{\"t9\":{"
                           "\"revision\":8}}},\"writers\":{}}");
    free(d);

    struct sl_fsm_result r = DEL(e, SL_RAFT_PROXY, "app", NULL);
    assert_int_equal(r.outcome, SL_FSM_OK);
    assert_true(r.revision == 0);
    d = dump(e->fsm);
    assert_string_equal(d, "{\"nodes\":{},\"proxies\":{\"app-b\":{\"revision\":4}},\"secrets\":{},"
                           "\"target_groups\":{},\"targets\":{\"app-b\":{\"t9\":{\"revision\":8}}},"
                           "\"writers\":{}}");
    free(d);
    assert_int_equal(DEL(e, SL_RAFT_PROXY, "app", NULL).outcome, SL_FSM_NOT_FOUND);
    assert_int_equal(DEL(e, SL_RAFT_TARGET, "app-b", "t9").outcome, SL_FSM_OK);
    assert_int_equal(DEL(e, SL_RAFT_TARGET, "app-b", "t9").outcome, SL_FSM_NOT_FOUND);
}

struct seen {
    char names[8][80];
    uint64_t revs[8];
    int n;
};

static int collect(const char *name, size_t name_len, const char *json, size_t json_len,
                   uint64_t revision, void *arg)
{
    struct seen *s = arg;
    assert_true(s->n < 8);
    snprintf(s->names[s->n], sizeof s->names[0], "%.*s=%.*s", (int)name_len, name, (int)json_len,
             json);
    s->revs[s->n++] = revision;
    return 0;
}

static int stop_at_first(const char *name, size_t name_len, const char *json, size_t json_len,
                         uint64_t revision, void *arg)
{
    return 42;
}

/* A list callback may read the store (the environment uses MDB_NOTLS). */
static int nested_get(const char *name, size_t name_len, const char *json, size_t json_len,
                      uint64_t revision, void *arg)
{
    struct env *e = arg;
    char key[SL_RAFT_NAME_MAX + 1];
    snprintf(key, sizeof key, "%.*s", (int)name_len, name);
    char *j;
    uint64_t rev;
    assert_int_equal(sl_fsm_get(e->fsm, SL_RAFT_SECRET, key, NULL, &j, &rev), 0);
    assert_true(rev == revision);
    free(j);
    return 0;
}

static void test_list(void **state)
{
    struct env *e = *state;
    PUT(e, SL_RAFT_SECRET, "zz", NULL, "{\"ref\":\"env:Z\"}");
    PUT(e, SL_RAFT_SECRET, "aa", NULL, "{\"ref\":\"file:/a\"}");
    PUT(e, SL_RAFT_PROXY, "p", NULL, "{}");
    PUT(e, SL_RAFT_PROXY, "p-2", NULL, "{}");
    PUT(e, SL_RAFT_TARGET, "p", "b", "{}");
    PUT(e, SL_RAFT_TARGET, "p", "a", "{}");
    PUT(e, SL_RAFT_TARGET, "p-2", "c", "{}");

    struct seen s = {0};
    assert_int_equal(sl_fsm_list(e->fsm, SL_RAFT_SECRET, NULL, collect, &s), 0);
    assert_int_equal(s.n, 2);
    assert_string_equal(s.names[0], "aa={\"ref\":\"file:/a\",\"revision\":2}");
    assert_string_equal(s.names[1], "zz={\"ref\":\"env:Z\",\"revision\":1}");

    memset(&s, 0, sizeof s);
    assert_int_equal(sl_fsm_list(e->fsm, SL_RAFT_TARGET, "p", collect, &s), 0);
    assert_int_equal(s.n, 2);
    assert_string_equal(s.names[0], "a={\"revision\":6}");
    assert_string_equal(s.names[1], "b={\"revision\":5}");
    assert_true(s.revs[0] == 6);

    memset(&s, 0, sizeof s);
    assert_int_equal(sl_fsm_list(e->fsm, SL_RAFT_TARGET, "none", collect, &s), 0);
    assert_int_equal(sl_fsm_list(e->fsm, SL_RAFT_NODE, NULL, collect, &s), 0);
    assert_int_equal(s.n, 0);
    assert_int_equal(sl_fsm_list(e->fsm, SL_RAFT_PROXY, NULL, stop_at_first, NULL), 42);
    assert_int_equal(sl_fsm_list(e->fsm, SL_RAFT_SECRET, NULL, nested_get, e), 0);
    assert_int_equal(sl_fsm_list(e->fsm, SL_RAFT_TARGET, NULL, collect, &s), -1);
    assert_int_equal(sl_fsm_list(e->fsm, SL_RAFT_PROXY, "p", collect, &s), -1);
}

static void test_conflict(void **state)
{
    struct env *e = *state;
    /* Expected revision on an absent resource: it is 0, so anything else conflicts. */
    struct sl_fsm_result r = run(e, SL_RAFT_PUT, SL_RAFT_NODE, "n1", NULL, "{}", 5);
    assert_int_equal(r.outcome, SL_FSM_CONFLICT);
    assert_true(r.revision == 0);
    PUT(e, SL_RAFT_NODE, "n1", NULL, "{\"az\":\"a\"}"); /* revision 2 */
    r = run(e, SL_RAFT_PUT, SL_RAFT_NODE, "n1", NULL, "{\"az\":\"b\"}", 1);
    assert_int_equal(r.outcome, SL_FSM_CONFLICT);
    assert_true(r.revision == 2);
    r = run(e, SL_RAFT_DELETE, SL_RAFT_NODE, "n1", NULL, NULL, 3);
    assert_int_equal(r.outcome, SL_FSM_CONFLICT);
    uint64_t rev;
    char *j = get(e, SL_RAFT_NODE, "n1", NULL, &rev);
    assert_string_equal(j, "{\"az\":\"a\",\"revision\":2}");
    free(j);
    r = run(e, SL_RAFT_PUT, SL_RAFT_NODE, "n1", NULL, "{\"az\":\"c\"}", 2);
    assert_int_equal(r.outcome, SL_FSM_OK);
    assert_true(r.revision == 5);
    r = run(e, SL_RAFT_DELETE, SL_RAFT_NODE, "n1", NULL, NULL, 5);
    assert_int_equal(r.outcome, SL_FSM_OK);
    assert_true(applied(e->fsm) == 6);
}

static void test_invalid_bodies(void **state)
{
    struct env *e = *state;
    static const char *const bad[] = {
        "[1]", "{", "{\"a\":1,\"a\":2}", "{\"revision\":3}", "\"x\"", "{} {}", "{\"a\":\"\xff\"}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(PUT(e, SL_RAFT_PROXY, "p", NULL, bad[i]).outcome, SL_FSM_INVALID);
    static const char *const bad_secrets[] = {
        "{\"ref\":\"secret-password\"}",          "{\"ref\":\"file:\"}", "{\"ref\":\"env:\"}",
        "{\"ref\":\"env:X\",\"password\":\"p\"}", "{\"ref\":1}",         "{}",
    };
    for (size_t i = 0; i < sizeof bad_secrets / sizeof bad_secrets[0]; i++)
        assert_int_equal(PUT(e, SL_RAFT_SECRET, "s", NULL, bad_secrets[i]).outcome, SL_FSM_INVALID);
    char *d = dump(e->fsm);
    assert_string_equal(
        d, "{\"nodes\":{},\"proxies\":{},\"secrets\":{},\"target_groups\":{},\"targets\":{},"
           "\"writers\":{}}");
    free(d);
    assert_true(applied(e->fsm) == e->index);

    /* Undecodable bytes: nothing recorded, the index still advances. */
    uint8_t junk[16] = {1, 2, 3};
    assert_int_equal(sl_fsm_apply(e->fsm, ++e->index, junk, sizeof junk), 0);
    assert_int_equal(sl_fsm_apply(e->fsm, ++e->index, junk, 0), 0);
    assert_true(applied(e->fsm) == e->index);
}

static void test_duplicate_and_replay(void **state)
{
    struct env *e = *state;
    size_t len;
    uint8_t *p = cmd(SL_RAFT_PUT, SL_RAFT_PROXY, "p", NULL, "{\"v\":1}", 0, 7, &len);
    assert_int_equal(sl_fsm_apply(e->fsm, 10, p, len), 0);
    /* The same request proposed again after LEADERSHIPLOST commits at a later index. */
    assert_int_equal(sl_fsm_apply(e->fsm, 11, p, len), 0);
    assert_true(applied(e->fsm) == 11);
    uint64_t rev;
    char *j = get(e, SL_RAFT_PROXY, "p", NULL, &rev);
    assert_true(rev == 10);
    free(j);
    uint8_t rid[SL_RAFT_REQID_LEN];
    req_id(rid, 7);
    struct sl_fsm_result r;
    assert_int_equal(sl_fsm_outcome(e->fsm, rid, &r), 0);
    assert_true(r.index == 10 && r.revision == 10 && r.outcome == SL_FSM_OK);
    req_id(rid, 8);
    assert_int_equal(sl_fsm_outcome(e->fsm, rid, &r), 1);

    /* Replay: an index at or below the applied one changes nothing, whatever it carries. */
    uint8_t *q = cmd(SL_RAFT_DELETE, SL_RAFT_PROXY, "p", NULL, NULL, 0, 9, &len);
    char *before = dump(e->fsm);
    assert_int_equal(sl_fsm_apply(e->fsm, 11, q, len), 0);
    assert_int_equal(sl_fsm_apply(e->fsm, 3, q, len), 0);
    char *after = dump(e->fsm);
    assert_string_equal(before, after);
    assert_true(applied(e->fsm) == 11);
    req_id(rid, 9);
    assert_int_equal(sl_fsm_outcome(e->fsm, rid, &r), 1);
    free(before);
    free(after);
    free(p);
    free(q);
}

static void test_requests_bounded(void **state)
{
    struct env *e = *state;
    sl_fsm_close(e->fsm);
    e->fsm = open_in(e->dir, 3);
    for (int i = 0; i < 6; i++)
        PUT(e, SL_RAFT_NODE, "n", NULL, "{}");
    uint8_t rid[SL_RAFT_REQID_LEN];
    struct sl_fsm_result r;
    for (unsigned i = 1; i <= 6; i++) {
        req_id(rid, i);
        assert_int_equal(sl_fsm_outcome(e->fsm, rid, &r), i <= 3 ? 1 : 0);
    }
}

/* Fill a store with one of everything. */
static void populate(struct env *e)
{
    PUT(e, SL_RAFT_PROXY, "app", NULL, "{\"listen_port\":6033}");
    PUT(e, SL_RAFT_TARGET_GROUP, "app", NULL, "{\"connection_pool_config\":{}}");
    PUT(e, SL_RAFT_TARGET, "app", "db1", "{\"host\":\"10.0.0.1\",\"port\":3306}");
    PUT(e, SL_RAFT_TARGET, "app", "db2", "{\"host\":\"10.0.0.2\",\"port\":3306}");
    PUT(e, SL_RAFT_SECRET, "app-user", NULL, "{\"ref\":\"file:/etc/sluice/app.json\"}");
    PUT(e, SL_RAFT_NODE, "n1", NULL, "{\"az\":\"az-a\"}");
    PUT(e, SL_RAFT_PROXY, "gone", NULL, "{}");
    DEL(e, SL_RAFT_PROXY, "gone", NULL);
}

static void test_snapshot_restore(void **state)
{
    struct env *e = *state;
    populate(e);
    uint8_t *snap;
    size_t len;
    assert_int_equal(sl_fsm_snapshot(e->fsm, &snap, &len), 0);
    uint64_t idx;
    assert_int_equal(sl_fsm_snapshot_applied(snap, len, &idx), 0);
    assert_true(idx == 8);

    /* Into a second store that holds other state: replaced as a whole. */
    struct env other = {0};
    make_dir(other.dir, sizeof other.dir);
    other.fsm = open_in(other.dir, 0);
    other.next_req = 100;
    PUT(&other, SL_RAFT_PROXY, "stale", NULL, "{}");
    assert_int_equal(sl_fsm_restore(other.fsm, snap, len), 0);
    char *a = dump(e->fsm), *b = dump(other.fsm);
    assert_string_equal(a, b);
    assert_true(applied(other.fsm) == 8);
    /* Request outcomes travel with the snapshot, so duplicates stay duplicates. */
    uint8_t rid[SL_RAFT_REQID_LEN];
    struct sl_fsm_result r;
    req_id(rid, 3);
    assert_int_equal(sl_fsm_outcome(other.fsm, rid, &r), 0);
    assert_true(r.index == 3 && r.outcome == SL_FSM_OK);
    req_id(rid, 101);
    assert_int_equal(sl_fsm_outcome(other.fsm, rid, &r), 1);

    /* Equal states give equal snapshots. */
    uint8_t *snap2;
    size_t len2;
    assert_int_equal(sl_fsm_snapshot(other.fsm, &snap2, &len2), 0);
    assert_int_equal(len, len2);
    assert_memory_equal(snap, snap2, len);
    free(snap2);

    /* Every truncation, and one byte too many, is refused and leaves the state alone. */
    other.index = 8;
    PUT(&other, SL_RAFT_NODE, "n2", NULL, "{}");
    char *before = dump(other.fsm);
    for (size_t n = 0; n < len; n++) {
        uint8_t *t = malloc(n ? n : 1);
        assert_non_null(t);
        memcpy(t, snap, n);
        assert_int_equal(sl_fsm_restore(other.fsm, t, n), -1);
        free(t);
    }
    uint8_t *longer = calloc(1, len + 1);
    assert_non_null(longer);
    memcpy(longer, snap, len);
    assert_int_equal(sl_fsm_restore(other.fsm, longer, len + 1), -1);
    free(longer);
    char *after = dump(other.fsm);
    assert_string_equal(before, after);
    assert_true(applied(other.fsm) == 9);

    free(before);
    free(after);
    free(a);
    free(b);
    free(snap);
    sl_fsm_close(other.fsm);
    remove_dir(other.dir);
}

static void test_reopen_keeps_state(void **state)
{
    struct env *e = *state;
    populate(e);
    char *a = dump(e->fsm);
    sl_fsm_close(e->fsm);
    e->fsm = open_in(e->dir, 0);
    char *b = dump(e->fsm);
    assert_string_equal(a, b);
    assert_true(applied(e->fsm) == 8);
    free(a);
    free(b);

    struct sl_fsm *f = NULL;
    char err[256];
    assert_int_equal(sl_fsm_open(&f, "/nonexistent/sl_raft", NULL, err, sizeof err), -1);
    assert_non_null(strstr(err, "/nonexistent/sl_raft"));
}

/* --- The budget table ------------------------------------------------------------------------ */

#define BUDGET(e, body) run(e, SL_RAFT_PUT, SL_RAFT_BUDGET, SL_RAFT_BUDGET_NAME, NULL, body, 0)
#define EMPTY_BUDGET    "{\"entries\":{},\"leases\":{}}"

static const char limit_set[] =
    "{\"ops\":[{\"op\":\"limit\",\"key\":\"app/db:3306\",\"max_connections\":60,\"percent\":50,"
    "\"reserve\":1},{\"op\":\"set\",\"key\":\"app/db:3306\",\"node\":2,\"quota\":40}]}";

static void assert_budget(struct sl_fsm *f, const char *want)
{
    char *s = NULL;
    assert_int_equal(sl_fsm_budget(f, &s), 0);
    assert_string_equal(s, want);
    free(s);
}

static void test_budget_apply(void **state)
{
    struct env *e = *state;
    assert_budget(e->fsm, EMPTY_BUDGET);
    PUT(e, SL_RAFT_PROXY, "app", NULL, "{}");
    char *before = dump(e->fsm);
    struct sl_fsm_result r = BUDGET(e, limit_set);
    assert_int_equal(r.outcome, SL_FSM_OK);
    assert_true(r.revision == 2);
    assert_budget(e->fsm, "{\"entries\":{\"app/db:3306\":{\"budget\":30,\"holders\":{\"2\":{"
                          "\"cap\":29,\"index\":2,\"quota\":29}},\"index\":2,\"max_connections\":"
                          "60,\"percent\":50,\"reserve\":1}},\"leases\":{}}");

    /* Not a resource: dump, get and list do not show it. */
    char *after = dump(e->fsm);
    assert_string_equal(before, after);
    char *j;
    uint64_t rev;
    assert_int_equal(sl_fsm_get(e->fsm, SL_RAFT_BUDGET, SL_RAFT_BUDGET_NAME, NULL, &j, &rev), 1);
    struct seen s = {0};
    assert_int_equal(sl_fsm_list(e->fsm, SL_RAFT_BUDGET, NULL, collect, &s), 0);
    assert_int_equal(s.n, 0);

    /* An empty ops list is a valid command. */
    r = BUDGET(e, "{\"ops\":[]}");
    assert_int_equal(r.outcome, SL_FSM_OK);
    assert_true(r.revision == 3);

    /* Releasing everything empties the table, and an empty table is stored as no record: the
     * snapshot's budget section (the last 4 bytes) counts 0. */
    r = BUDGET(e, "{\"ops\":[{\"op\":\"revoke\",\"node\":2},{\"op\":\"forget\",\"key\":"
                  "\"app/db:3306\"}]}");
    assert_int_equal(r.outcome, SL_FSM_OK);
    assert_budget(e->fsm, EMPTY_BUDGET);
    uint8_t *snap;
    size_t len;
    assert_int_equal(sl_fsm_snapshot(e->fsm, &snap, &len), 0);
    assert_int_equal(sl_get_u32(snap + len - 4), 0);
    free(snap);
    free(before);
    free(after);
}

static void test_budget_invalid(void **state)
{
    struct env *e = *state;
    BUDGET(e, limit_set);
    static const char *const bad[] = {
        "{}",
        "not json",
        "{\"ops\":[{\"op\":\"grow\"}]}",
        "{\"ops\":[{\"op\":\"revoke\",\"node\":0}]}",
        /* a valid op before an invalid one: none of the command applies */
        "{\"ops\":[{\"op\":\"renew\",\"node\":1,\"seq\":1},{\"op\":\"renew\",\"node\":1}]}",
    };
    char *before = NULL;
    assert_int_equal(sl_fsm_budget(e->fsm, &before), 0);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(BUDGET(e, bad[i]).outcome, SL_FSM_INVALID);
    /* Only an unconditional PUT named "budget" is a budget command. */
    struct sl_fsm_result r =
        run(e, SL_RAFT_PUT, SL_RAFT_BUDGET, SL_RAFT_BUDGET_NAME, NULL, "{\"ops\":[]}", 1);
    assert_int_equal(r.outcome, SL_FSM_INVALID);
    r = run(e, SL_RAFT_PUT, SL_RAFT_BUDGET, "budgets", NULL, "{\"ops\":[]}", 0);
    assert_int_equal(r.outcome, SL_FSM_INVALID);
    r = run(e, SL_RAFT_DELETE, SL_RAFT_BUDGET, SL_RAFT_BUDGET_NAME, NULL, NULL, 0);
    assert_int_equal(r.outcome, SL_FSM_INVALID);
    assert_budget(e->fsm, before);
    assert_true(applied(e->fsm) == e->index);
    free(before);
}

static void test_budget_replay_and_duplicate(void **state)
{
    struct env *e = *state;
    size_t len, qlen;
    uint8_t *p = cmd(SL_RAFT_PUT, SL_RAFT_BUDGET, SL_RAFT_BUDGET_NAME, NULL,
                     "{\"ops\":[{\"op\":\"renew\",\"node\":3,\"seq\":1}]}", 0, 7, &len);
    uint8_t *q = cmd(SL_RAFT_PUT, SL_RAFT_BUDGET, SL_RAFT_BUDGET_NAME, NULL,
                     "{\"ops\":[{\"op\":\"renew\",\"node\":3,\"seq\":2}]}", 0, 8, &qlen);
    static const char at10[] = "{\"entries\":{},\"leases\":{\"3\":{\"index\":10,\"seq\":1}}}";
    assert_int_equal(sl_fsm_apply(e->fsm, 10, p, len), 0);
    assert_budget(e->fsm, at10);
    /* Replay: an index at or below the applied one is skipped, whatever it carries. */
    assert_int_equal(sl_fsm_apply(e->fsm, 10, q, qlen), 0);
    assert_int_equal(sl_fsm_apply(e->fsm, 4, q, qlen), 0);
    assert_budget(e->fsm, at10);
    /* The same request again at a later index: skipped (the lease keeps index 10), the applied
     * index advances. */
    assert_int_equal(sl_fsm_apply(e->fsm, 11, p, len), 0);
    assert_budget(e->fsm, at10);
    assert_true(applied(e->fsm) == 11);
    uint8_t rid[SL_RAFT_REQID_LEN];
    struct sl_fsm_result r;
    req_id(rid, 7);
    assert_int_equal(sl_fsm_outcome(e->fsm, rid, &r), 0);
    assert_true(r.index == 10 && r.revision == 10 && r.outcome == SL_FSM_OK);
    req_id(rid, 8);
    assert_int_equal(sl_fsm_outcome(e->fsm, rid, &r), 1);
    assert_int_equal(sl_fsm_apply(e->fsm, 12, q, qlen), 0);
    assert_budget(e->fsm, "{\"entries\":{},\"leases\":{\"3\":{\"index\":12,\"seq\":2}}}");
    free(p);
    free(q);
}

static void test_budget_snapshot_restore(void **state)
{
    struct env *e = *state;
    populate(e);
    BUDGET(e, limit_set);
    BUDGET(e, "{\"ops\":[{\"op\":\"renew\",\"node\":2,\"seq\":5}]}");
    uint8_t *snap;
    size_t len;
    assert_int_equal(sl_fsm_snapshot(e->fsm, &snap, &len), 0);
    assert_int_equal(sl_get_u32(snap + 4), 3);

    struct env other = {0};
    make_dir(other.dir, sizeof other.dir);
    other.fsm = open_in(other.dir, 0);
    other.next_req = 100;
    BUDGET(&other, "{\"ops\":[{\"op\":\"renew\",\"node\":9,\"seq\":1}]}");
    assert_int_equal(sl_fsm_restore(other.fsm, snap, len), 0);
    char *a = NULL, *b = NULL;
    assert_int_equal(sl_fsm_budget(e->fsm, &a), 0);
    assert_budget(other.fsm, a);
    assert_non_null(strstr(a, "\"leases\":{\"2\":{\"index\":10,\"seq\":5}}"));
    free(a);
    a = dump(e->fsm);
    b = dump(other.fsm);
    assert_string_equal(a, b);
    assert_true(applied(other.fsm) == 10);
    uint8_t *snap2;
    size_t len2;
    assert_int_equal(sl_fsm_snapshot(other.fsm, &snap2, &len2), 0);
    assert_int_equal(len, len2);
    assert_memory_equal(snap, snap2, len);
    free(snap2);

    /* Truncated anywhere (the budget section included): refused, nothing changes. */
    char *before = NULL;
    assert_int_equal(sl_fsm_budget(other.fsm, &before), 0);
    for (size_t n = 0; n < len; n++) {
        uint8_t *t = malloc(n ? n : 1);
        assert_non_null(t);
        memcpy(t, snap, n);
        assert_int_equal(sl_fsm_restore(other.fsm, t, n), -1);
        free(t);
    }
    assert_budget(other.fsm, before);
    free(before);
    free(a);
    free(b);
    free(snap);
    sl_fsm_close(other.fsm);
    remove_dir(other.dir);
}

/* A snapshot written by hand: empty sections, then for version 2 a budget section holding one
 * record (key, value) or none (key NULL). */
static uint8_t *hand_snapshot(uint32_t version, uint64_t applied_index, const char *key,
                              const char *value, size_t *len)
{
    size_t klen = key ? strlen(key) : 0, vlen = value ? strlen(value) : 0;
    size_t n = 16 + 6 * 4 + (version >= 2 ? 4 : 0) + (key ? 8 + klen + vlen : 0);
    uint8_t *p = calloc(1, n);
    assert_non_null(p);
    memcpy(p, "SLFS", 4);
    sl_put_u32(p + 4, version);
    sl_put_u64(p + 8, applied_index);
    uint8_t *w = p + 16 + 6 * 4;
    if (version >= 2) {
        sl_put_u32(w, key ? 1 : 0);
        w += 4;
    }
    if (key) {
        sl_put_u32(w, (uint32_t)klen);
        memcpy(w + 4, key, klen);
        w += 4 + klen;
        sl_put_u32(w, (uint32_t)vlen);
        memcpy(w + 4, value, vlen);
    }
    *len = n;
    return p;
}

static int restore_hand(struct env *e, uint32_t version, uint64_t applied_index, const char *key,
                        const char *value)
{
    size_t len;
    uint8_t *p = hand_snapshot(version, applied_index, key, value, &len);
    int rc = sl_fsm_restore(e->fsm, p, len);
    free(p);
    return rc;
}

static void test_budget_snapshot_versions(void **state)
{
    struct env *e = *state;
    /* A version 1 snapshot (no budget section) of a real store restores over a store that holds
     * a budget: same configuration, empty budget. */
    populate(e);
    uint8_t *snap;
    size_t len;
    assert_int_equal(sl_fsm_snapshot(e->fsm, &snap, &len), 0);
    assert_int_equal(sl_get_u32(snap + len - 8), 0); /* the empty budget section */
    assert_int_equal(sl_get_u32(snap + len - 4), 0); /* the empty writers section */
    len -= 4;                                        /* without it: a version 2 snapshot */
    sl_put_u32(snap + 4, 2);
    struct env v2 = {0};
    make_dir(v2.dir, sizeof v2.dir);
    v2.fsm = open_in(v2.dir, 0);
    assert_int_equal(sl_fsm_restore(v2.fsm, snap, len + 4), -1); /* v2 with a writers section */
    assert_int_equal(sl_fsm_restore(v2.fsm, snap, len), 0);
    sl_fsm_close(v2.fsm);
    remove_dir(v2.dir);
    sl_put_u32(snap + 4, 1);
    struct env other = {0};
    make_dir(other.dir, sizeof other.dir);
    other.fsm = open_in(other.dir, 0);
    other.next_req = 100;
    BUDGET(&other, limit_set);
    assert_int_equal(sl_fsm_restore(other.fsm, snap, len), -1); /* v1 with a budget section */
    assert_int_equal(sl_fsm_restore(other.fsm, snap, len - 4), 0);
    assert_budget(other.fsm, EMPTY_BUDGET);
    char *a = dump(e->fsm), *b = dump(other.fsm);
    assert_string_equal(a, b);
    free(a);
    free(b);
    uint64_t idx;
    assert_int_equal(sl_fsm_snapshot_applied(snap, len - 4, &idx), 0);
    assert_true(idx == 8);
    sl_put_u32(snap + 4, 4);
    assert_int_equal(sl_fsm_snapshot_applied(snap, len, &idx), -1);
    assert_int_equal(sl_fsm_restore(other.fsm, snap, len), -1);
    free(snap);
    sl_fsm_close(other.fsm);
    remove_dir(other.dir);

    /* Hand-made budget sections: only what apply could have stored is accepted. */
    static const char good[] =
        "{\"entries\":{\"k\":{\"budget\":30,\"holders\":{\"2\":{\"cap\":10,\"index\":12,"
        "\"quota\":10}},\"index\":12,\"max_connections\":60,\"percent\":50,\"reserve\":1}},"
        "\"leases\":{\"2\":{\"index\":5,\"seq\":77}}}";
    assert_int_equal(restore_hand(e, 2, 12, "table", good), 0);
    assert_budget(e->fsm, good);
    assert_true(applied(e->fsm) == 12);
    assert_int_equal(restore_hand(e, 2, 11, "table", good), -1); /* index 12 after applied 11 */
    assert_int_equal(restore_hand(e, 2, 12, "tablex", good), -1);
    assert_int_equal(restore_hand(e, 2, 12, "table", EMPTY_BUDGET), -1); /* never stored */
    assert_int_equal(restore_hand(e, 2, 12, "table", "{\"entries\":{}, \"leases\":{}}"), -1);
    assert_int_equal(restore_hand(e, 2, 12, "table",
                                  "{\"leases\":{},\"entries\":{\"k\":{"
                                  "\"budget\":3,\"holders\":{},\"index\":1,"
                                  "\"max_connections\":6,\"percent\":50,"
                                  "\"reserve\":0}}}"),
                     -1); /* not canonical: keys out of order */
    assert_int_equal(restore_hand(e, 2, 12, "table",
                                  "{\"entries\":{\"k\":{\"budget\":4,"
                                  "\"holders\":{},\"index\":1,"
                                  "\"max_connections\":6,\"percent\":50,"
                                  "\"reserve\":0}},\"leases\":{}}"),
                     -1); /* budget inconsistent with the limits */
    assert_budget(e->fsm, good);
    /* Version 2 without a budget record, version 1: an empty budget. */
    assert_int_equal(restore_hand(e, 2, 3, NULL, NULL), 0);
    assert_budget(e->fsm, EMPTY_BUDGET);
    assert_int_equal(restore_hand(e, 2, 12, "table", good), 0);
    assert_int_equal(restore_hand(e, 1, 4, NULL, NULL), 0);
    assert_budget(e->fsm, EMPTY_BUDGET);
    assert_true(applied(e->fsm) == 4);
}

static void test_writer(void **state)
{
    struct env *e = *state;
    static const char w1[] = "{\"decided_by\":\"n1\",\"reason\":\"manual\",\"target\":\"db1\"}";
    static const char w2[] = "{\"decided_by\":\"n2\",\"reason\":\"failover\",\"target\":\"db2\"}";
    /* Only below an existing proxy, naming one of its targets. */
    assert_int_equal(PUT(e, SL_RAFT_WRITER, "app", NULL, w1).outcome, SL_FSM_NOT_FOUND);
    populate(e); /* proxy app with targets db1 and db2, at indexes 1..8 */
    assert_int_equal(PUT(e, SL_RAFT_WRITER, "app", NULL, "{\"target\":\"db9\"}").outcome,
                     SL_FSM_NOT_FOUND);
    assert_int_equal(PUT(e, SL_RAFT_WRITER, "app", NULL, "{\"target\":1}").outcome, SL_FSM_INVALID);
    assert_int_equal(PUT(e, SL_RAFT_WRITER, "app", NULL, "{}").outcome, SL_FSM_INVALID);
    /* The epoch is the revision: the index of the decision. */
    struct sl_fsm_result r = PUT(e, SL_RAFT_WRITER, "app", NULL, w1);
    assert_int_equal(r.outcome, SL_FSM_OK);
    uint64_t epoch1 = r.revision, rev;
    assert_true(epoch1 == e->index);
    char *j = get(e, SL_RAFT_WRITER, "app", NULL, &rev);
    assert_non_null(strstr(j, "\"target\":\"db1\""));
    assert_true(rev == epoch1);
    free(j);
    /* A decision taken against an older epoch is refused and changes nothing. */
    r = run(e, SL_RAFT_PUT, SL_RAFT_WRITER, "app", NULL, w2, epoch1 - 1);
    assert_int_equal(r.outcome, SL_FSM_CONFLICT);
    assert_true(r.revision == epoch1);
    r = run(e, SL_RAFT_PUT, SL_RAFT_WRITER, "app", NULL, w2, epoch1);
    assert_int_equal(r.outcome, SL_FSM_OK);
    assert_true(r.revision > epoch1);
    /* The writer's target cannot be deleted; the other one can. */
    r = DEL(e, SL_RAFT_TARGET, "app", "db2");
    assert_int_equal(r.outcome, SL_FSM_CONFLICT);
    j = get(e, SL_RAFT_TARGET, "app", "db2", &rev);
    assert_non_null(j);
    free(j);
    assert_int_equal(DEL(e, SL_RAFT_TARGET, "app", "db1").outcome, SL_FSM_OK);
    /* It travels in snapshots and dumps, and goes with its proxy. */
    char *d = dump(e->fsm);
    assert_non_null(strstr(d, "\"writers\":{\"app\":{\"decided_by\":\"n2\""));
    free(d);
    uint8_t *snap;
    size_t len;
    assert_int_equal(sl_fsm_snapshot(e->fsm, &snap, &len), 0);
    struct env other = {0};
    make_dir(other.dir, sizeof other.dir);
    other.fsm = open_in(other.dir, 0);
    assert_int_equal(sl_fsm_restore(other.fsm, snap, len), 0);
    char *a = dump(e->fsm), *b = dump(other.fsm);
    assert_string_equal(a, b);
    free(a);
    free(b);
    free(snap);
    sl_fsm_close(other.fsm);
    remove_dir(other.dir);
    assert_int_equal(DEL(e, SL_RAFT_PROXY, "app", NULL).outcome, SL_FSM_OK);
    assert_null(get(e, SL_RAFT_WRITER, "app", NULL, &rev));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_put_get_revision, setup, teardown),
        cmocka_unit_test_setup_teardown(test_children_and_cascade, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list, setup, teardown),
        cmocka_unit_test_setup_teardown(test_conflict, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invalid_bodies, setup, teardown),
        cmocka_unit_test_setup_teardown(test_duplicate_and_replay, setup, teardown),
        cmocka_unit_test_setup_teardown(test_requests_bounded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_snapshot_restore, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reopen_keeps_state, setup, teardown),
        cmocka_unit_test_setup_teardown(test_budget_apply, setup, teardown),
        cmocka_unit_test_setup_teardown(test_budget_invalid, setup, teardown),
        cmocka_unit_test_setup_teardown(test_budget_replay_and_duplicate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_budget_snapshot_restore, setup, teardown),
        cmocka_unit_test_setup_teardown(test_budget_snapshot_versions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_writer, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
