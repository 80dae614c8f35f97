/* The state machine under libraft's deterministic fixture (raft/fixture.h): three servers, each
 * with its own LMDB directory, simulated network, disk and time. Checks that committed commands
 * leave all three stores byte-identical (canonical JSON dump) through elections, a partitioned
 * leader, snapshot install to a lagging server, replay of already applied indexes, retries after
 * RAFT_LEADERSHIPLOST, duplicate request ids and compare-and-set conflicts.
 *
 * Fixture pitfalls from shared/notes/raft.md: zero the struct before raft_fixture_initialize
 * (0.15 leaves f->n uninitialised); partition with raft_fixture_saturate in both directions (the
 * fixture's leader check ignores raft_fixture_disconnect). */
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

#include "raft/cmd.h"
#include "raft/fsm.h"
#include "raft/fsm_glue.h"

#define N       3
#define MAX_LOG 64
#define WAIT_MS 10000

struct proposal {
    struct raft_apply req;
    int status;
    bool done;
};

/* A committed command as proposed, to replay it later at the same index. */
struct logged {
    raft_index index;
    uint8_t *bytes;
    size_t len;
};

struct cluster {
    char root[64];
    char dirs[N][96];
    struct sl_fsm *stores[N];
    struct sl_fsm_glue glues[N];
    struct raft_fixture f;
    unsigned next_req;
    struct logged log[MAX_LOG];
    size_t n_log;
};

static void open_store(struct cluster *c, unsigned i)
{
    struct sl_fsm_options opt = {.map_size = 8 << 20};
    char err[256];
    assert_int_equal(sl_fsm_open(&c->stores[i], c->dirs[i], &opt, err, sizeof err), 0);
}

static int setup_with(void **state, unsigned threshold, unsigned trailing)
{
    struct cluster *c = calloc(1, sizeof *c);
    assert_non_null(c);
    snprintf(c->root, sizeof c->root, "/tmp/sl_raft_fixture_XXXXXX");
    assert_non_null(mkdtemp(c->root));
    for (unsigned i = 0; i < N; i++) {
        snprintf(c->dirs[i], sizeof c->dirs[i], "%s/n%u", c->root, i);
        assert_int_equal(mkdir(c->dirs[i], 0700), 0);
        open_store(c, i);
        sl_fsm_glue_init(&c->glues[i], c->stores[i]);
    }
    memset(&c->f, 0, sizeof c->f);
    assert_int_equal(raft_fixture_initialize(&c->f), 0);
    for (unsigned i = 0; i < N; i++)
        assert_int_equal(raft_fixture_grow(&c->f, &c->glues[i].fsm), 0);
    for (unsigned i = 0; i < N; i++) {
        struct raft *r = raft_fixture_get(&c->f, i);
        sl_fsm_glue_bind(&c->glues[i], r);
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
    /* Defaults large enough that no snapshot is taken. */
    return setup_with(state, 1024, 2048);
}

static int setup_snapshots(void **state)
{
    return setup_with(state, 4, 4);
}

static void remove_tree(struct cluster *c)
{
    char p[160];
    for (unsigned i = 0; i < N; i++) {
        snprintf(p, sizeof p, "%s/data.mdb", c->dirs[i]);
        unlink(p);
        snprintf(p, sizeof p, "%s/lock.mdb", c->dirs[i]);
        unlink(p);
        rmdir(c->dirs[i]);
    }
    assert_int_equal(rmdir(c->root), 0);
}

static int teardown(void **state)
{
    struct cluster *c = *state;
    raft_fixture_close(&c->f);
    for (unsigned i = 0; i < N; i++)
        sl_fsm_close(c->stores[i]);
    for (size_t i = 0; i < c->n_log; i++)
        free(c->log[i].bytes);
    remove_tree(c);
    free(c);
    return 0;
}

static void apply_cb(struct raft_apply *req, int status, void *result)
{
    struct proposal *p = req->data;
    assert_null(result);
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
    memcpy(id, "fix", 3);
    for (int i = 0; i < 4; i++)
        id[12 + i] = (uint8_t)(n >> (8 * i));
}

static struct sl_raft_cmd make(enum sl_raft_op op, enum sl_raft_kind kind, const char *name,
                               const char *id, const char *body, unsigned req)
{
    struct sl_raft_cmd c = {.op = op, .kind = kind};
    req_id(c.req_id, req);
    c.name = name;
    c.name_len = strlen(name);
    c.id = id;
    c.id_len = id ? strlen(id) : 0;
    c.body = body;
    c.body_len = body ? strlen(body) : 0;
    return c;
}

/* Propose through server `leader`; returns the entry's index. The command bytes are logged for
 * the replay check. */
static raft_index propose(struct cluster *c, unsigned leader, struct proposal *p,
                          const struct sl_raft_cmd *cmd)
{
    size_t len = sl_raft_cmd_size(cmd);
    assert_true(len > 0);
    struct raft_buffer buf = {.base = raft_malloc(len), .len = len};
    assert_non_null(buf.base);
    assert_int_equal(sl_raft_cmd_encode(cmd, buf.base, len), len);
    assert_true(c->n_log < MAX_LOG);
    struct logged *l = &c->log[c->n_log++];
    l->bytes = malloc(len);
    assert_non_null(l->bytes);
    memcpy(l->bytes, buf.base, len);
    l->len = len;
    memset(p, 0, sizeof *p);
    p->req.data = p;
    assert_int_equal(raft_apply(raft_fixture_get(&c->f, leader), &p->req, &buf, 1, apply_cb), 0);
    l->index = p->req.index;
    return p->req.index;
}

/* Propose and wait until every server in `who` (a bit mask) has applied it. */
static raft_index commit_on(struct cluster *c, unsigned leader, unsigned who,
                            const struct sl_raft_cmd *cmd)
{
    struct proposal p;
    raft_index idx = propose(c, leader, &p, cmd);
    for (unsigned i = 0; i < N; i++)
        if (who & (1u << i))
            assert_true(raft_fixture_step_until_applied(&c->f, i, idx, WAIT_MS));
    assert_true(p.done);
    assert_int_equal(p.status, 0);
    return idx;
}

#define ALL ((1u << N) - 1)

static raft_index put(struct cluster *c, unsigned leader, unsigned who, enum sl_raft_kind kind,
                      const char *name, const char *id, const char *body)
{
    struct sl_raft_cmd cmd = make(SL_RAFT_PUT, kind, name, id, body, ++c->next_req);
    return commit_on(c, leader, who, &cmd);
}

static char *dump(struct cluster *c, unsigned i)
{
    char *s = NULL;
    assert_int_equal(sl_fsm_dump_json(c->stores[i], &s), 0);
    return s;
}

/* All stores hold the same configuration; returns it (caller frees). */
static char *assert_converged(struct cluster *c)
{
    char *first = dump(c, 0);
    for (unsigned i = 1; i < N; i++) {
        char *d = dump(c, i);
        assert_string_equal(first, d);
        free(d);
    }
    return first;
}

static uint64_t applied(struct cluster *c, unsigned i)
{
    uint64_t idx;
    assert_int_equal(sl_fsm_applied(c->stores[i], &idx), 0);
    return idx;
}

static struct sl_fsm_result outcome(struct cluster *c, unsigned i, unsigned req)
{
    uint8_t rid[SL_RAFT_REQID_LEN];
    req_id(rid, req);
    struct sl_fsm_result r;
    assert_int_equal(sl_fsm_outcome(c->stores[i], rid, &r), 0);
    return r;
}

static void populate(struct cluster *c, unsigned leader, unsigned who)
{
    put(c, leader, who, SL_RAFT_NODE, "n1", NULL, "{\"az\":\"az-a\"}");
    put(c, leader, who, SL_RAFT_SECRET, "app-user", NULL, "{\"ref\":\"env:APP_USER\"}");
    put(c, leader, who, SL_RAFT_PROXY, "app", NULL, "{\"listen_port\":6033}");
    put(c, leader, who, SL_RAFT_TARGET_GROUP, "app", NULL, "{\"max_connections_percent\":90}");
    put(c, leader, who, SL_RAFT_TARGET, "app", "db1", "{\"host\":\"10.0.0.1\",\"port\":3306}");
    put(c, leader, who, SL_RAFT_TARGET, "app", "db2", "{\"host\":\"10.0.0.2\",\"port\":3306}");
}

static void test_replicate_and_replay(void **state)
{
    struct cluster *c = *state;
    assert_int_equal(raft_fixture_leader_index(&c->f), 0);
    populate(c, 0, ALL);
    char *d = assert_converged(c);
    /* Entry 1 is the bootstrap configuration; the commands are entries 2..7. */
    assert_non_null(strstr(d, "\"db2\":{\"host\":\"10.0.0.2\",\"port\":3306,\"revision\":7}"));
    for (unsigned i = 0; i < N; i++) {
        assert_true(applied(c, i) == 7);
        struct sl_fsm_result r = outcome(c, i, 3);
        assert_true(r.outcome == SL_FSM_OK && r.index == 4 && r.revision == 4);
    }

    /* Restart-like replay: every committed entry again, at its own index, on every node (and
     * after closing and reopening one store): nothing changes. */
    sl_fsm_close(c->stores[1]);
    open_store(c, 1);
    c->glues[1].store = c->stores[1];
    for (unsigned i = 0; i < N; i++)
        for (size_t k = 0; k < c->n_log; k++)
            assert_int_equal(
                sl_fsm_apply(c->stores[i], c->log[k].index, c->log[k].bytes, c->log[k].len), 0);
    char *again = assert_converged(c);
    assert_string_equal(d, again);
    for (unsigned i = 0; i < N; i++)
        assert_true(applied(c, i) == 7);

    /* The reopened store keeps serving the cluster. */
    put(c, 0, ALL, SL_RAFT_NODE, "n2", NULL, "{\"az\":\"az-b\"}");
    free(assert_converged(c));
    free(d);
    free(again);
}

static void test_partitioned_leader(void **state)
{
    struct cluster *c = *state;
    populate(c, 0, ALL);

    /* Cut server 0 off; its pending proposal fails with LEADERSHIPLOST once it steps down. */
    for (unsigned i = 1; i < N; i++) {
        raft_fixture_saturate(&c->f, 0, i);
        raft_fixture_saturate(&c->f, i, 0);
    }
    struct proposal lost;
    struct sl_raft_cmd retried =
        make(SL_RAFT_PUT, SL_RAFT_PROXY, "retried", NULL, "{\"v\":1}", ++c->next_req);
    unsigned retried_req = c->next_req;
    propose(c, 0, &lost, &retried);
    c->n_log--; /* never committed: not part of the replay log */
    free(c->log[c->n_log].bytes);
    assert_true(raft_fixture_step_until(&c->f, proposal_done, &lost, WAIT_MS));
    assert_int_not_equal(raft_state(raft_fixture_get(&c->f, 0)), RAFT_LEADER);
    assert_int_equal(lost.status, RAFT_LEADERSHIPLOST);
    assert_true(raft_fixture_step_until_has_leader(&c->f, WAIT_MS));
    unsigned leader = raft_fixture_leader_index(&c->f);
    assert_int_not_equal(leader, 0);
    unsigned majority = ALL & ~1u;

    /* The proposer retries with the same request id through the new leader, then more writes. */
    raft_index first = commit_on(c, leader, majority, &retried);
    put(c, leader, majority, SL_RAFT_TARGET, "app", "db3", "{\"host\":\"10.0.0.3\",\"port\":1}");
    struct sl_raft_cmd del =
        make(SL_RAFT_DELETE, SL_RAFT_TARGET, "app", "db1", NULL, ++c->next_req);
    raft_index last = commit_on(c, leader, majority, &del);
    assert_true(applied(c, 0) < first);

    /* Heal: the old leader catches up and everyone converges. */
    for (unsigned i = 1; i < N; i++) {
        raft_fixture_desaturate(&c->f, 0, i);
        raft_fixture_desaturate(&c->f, i, 0);
    }
    assert_true(raft_fixture_step_until_applied(&c->f, N, last, WAIT_MS));
    char *d = assert_converged(c);
    assert_null(strstr(d, "\"db1\""));
    assert_non_null(strstr(d, "\"db3\""));
    assert_non_null(strstr(d, "\"retried\":{\"revision\":"));
    for (unsigned i = 0; i < N; i++) {
        struct sl_fsm_result r = outcome(c, i, retried_req);
        assert_true(r.outcome == SL_FSM_OK && r.index == first);
    }
    free(d);
}

static void test_snapshot_install(void **state)
{
    struct cluster *c = *state;
    populate(c, 0, ALL);
    raft_fixture_kill(&c->f, 2);
    /* Far more entries than threshold + trailing: server 2 can only catch up by snapshot. */
    raft_index last = 0;
    char name[16];
    for (int k = 0; k < 24; k++) {
        snprintf(name, sizeof name, "t%02d", k);
        last = put(c, 0, 3, SL_RAFT_TARGET, "app", name, "{\"port\":3306}");
    }
    raft_fixture_revive(&c->f, 2);
    assert_true(raft_fixture_step_until_applied(&c->f, 2, last, WAIT_MS));
    assert_true(raft_fixture_n_recv(&c->f, 2, RAFT_IO_INSTALL_SNAPSHOT) >= 1);
    assert_true(applied(c, 2) == last);

    /* Writes after the install keep all three equal, including request outcomes that arrived in
     * the snapshot. */
    raft_index after = put(c, 0, ALL, SL_RAFT_NODE, "n1", NULL, "{\"az\":\"az-c\"}");
    free(assert_converged(c));
    for (unsigned i = 0; i < N; i++) {
        assert_true(applied(c, i) == after);
        struct sl_fsm_result r = outcome(c, i, 10);
        assert_true(r.outcome == SL_FSM_OK);
    }
}

static void test_duplicate_and_conflict(void **state)
{
    struct cluster *c = *state;
    populate(c, 0, ALL);

    /* The same command committed twice (a retry whose first attempt did commit): one effect. */
    struct sl_raft_cmd dup =
        make(SL_RAFT_PUT, SL_RAFT_PROXY, "dup", NULL, "{\"v\":1}", ++c->next_req);
    unsigned dup_req = c->next_req;
    raft_index first = commit_on(c, 0, ALL, &dup);
    raft_index second = commit_on(c, 0, ALL, &dup);
    assert_true(second > first);

    /* Compare-and-set on app (revision 4): a stale expected revision is a conflict. */
    struct sl_raft_cmd stale =
        make(SL_RAFT_PUT, SL_RAFT_PROXY, "app", NULL, "{\"listen_port\":1}", ++c->next_req);
    stale.expected_rev = 3;
    unsigned stale_req = c->next_req;
    raft_index conflict_at = commit_on(c, 0, ALL, &stale);
    struct sl_raft_cmd good =
        make(SL_RAFT_PUT, SL_RAFT_PROXY, "app", NULL, "{\"listen_port\":2}", ++c->next_req);
    good.expected_rev = 4;
    unsigned good_req = c->next_req;
    raft_index ok_at = commit_on(c, 0, ALL, &good);

    char *d = assert_converged(c);
    assert_non_null(strstr(d, "\"dup\":{\"revision\":8,\"v\":1}"));
    assert_non_null(strstr(d, "\"app\":{\"listen_port\":2,\"revision\":11}"));
    for (unsigned i = 0; i < N; i++) {
        struct sl_fsm_result r = outcome(c, i, dup_req);
        assert_true(r.outcome == SL_FSM_OK && r.index == first && r.revision == first);
        r = outcome(c, i, stale_req);
        assert_true(r.outcome == SL_FSM_CONFLICT && r.index == conflict_at && r.revision == 4);
        r = outcome(c, i, good_req);
        assert_true(r.outcome == SL_FSM_OK && r.revision == ok_at);
        assert_true(applied(c, i) == ok_at);
    }
    free(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_replicate_and_replay, setup, teardown),
        cmocka_unit_test_setup_teardown(test_partitioned_leader, setup, teardown),
        cmocka_unit_test_setup_teardown(test_snapshot_install, setup_snapshots, teardown),
        cmocka_unit_test_setup_teardown(test_duplicate_and_conflict, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
