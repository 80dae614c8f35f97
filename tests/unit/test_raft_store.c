/* The configuration store (raft/store.h) over real libraft + raft_uv: three stores (later four)
 * in one process on one uv loop, each with its own data dir under /tmp (ext4 here; raft_uv needs
 * O_DIRECT + AIO or tmpfs) and its own 127.0.0.1 port. Short timeouts (heartbeat 50 ms, election
 * 500 ms) keep the whole run to a few seconds.
 *
 * One scenario, in order: election and leader warm-up; replication and identical dumps; writes
 * through a follower refused with the leader's id; compare-and-set conflicts; a retried request id
 * applied once; barriers; the leader closed with a write in flight, a new leader, the write
 * retried with its request id; the old leader restarted from its data dir (bootstrap refused) and
 * caught up; a fourth node joined as voter and removed; leadership transferred with a write in
 * flight. */
#include <arpa/inet.h>
#include <ftw.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <uv.h>

#include "raft/store.h"
#include "tests/unit/support.h"

#define N_MAX   4
#define WAIT_MS 8000

struct node {
    struct sl_store *s;
    uint64_t id;
    char dir[128];
    char addr[SL_STORE_ADDR_MAX];
    uint64_t watched; /* last index given to the watch callback */
    bool closed;      /* close callback ran */
};

struct cluster {
    uv_loop_t loop;
    char root[64];
    struct node n[N_MAX];
};

static void on_watch(struct sl_store *s, uint64_t applied, void *arg)
{
    struct node *n = arg;
    assert_true(applied >= n->watched);
    n->watched = applied;
}

static struct sl_store_options options(struct node *n)
{
    struct sl_store_options o = {
        .id = n->id,
        .address = n->addr,
        .data_dir = n->dir,
        .election_timeout_ms = 500,
        .heartbeat_timeout_ms = 50,
        .snapshot_threshold = 16,
        .snapshot_trailing = 8,
        .lmdb_map_size = 8 << 20,
    };
    return o;
}

static void open_node(struct cluster *c, unsigned i)
{
    struct node *n = &c->n[i];
    struct sl_store_options o = options(n);
    char err[256] = "";
    int rc = sl_store_open(&n->s, &c->loop, &o, err, sizeof err);
    if (rc != SL_STORE_OK)
        fail_msg("open node %u: %s", i, err);
    n->closed = false;
    n->watched = 0;
    sl_store_watch(n->s, on_watch, n);
}

static void bootstrap3(struct cluster *c, unsigned i)
{
    struct sl_store_member voters[3];
    for (unsigned k = 0; k < 3; k++) {
        voters[k].id = c->n[k].id;
        snprintf(voters[k].address, sizeof voters[k].address, "%s", c->n[k].addr);
        voters[k].role = SL_STORE_VOTER;
    }
    assert_int_equal(sl_store_bootstrap(c->n[i].s, voters, 3), SL_STORE_OK);
}

static void on_closed(void *arg)
{
    struct node *n = arg;
    n->closed = true;
    n->s = NULL;
}

typedef bool (*pred_fn)(struct cluster *c, void *arg);

/* Run the loop until pred holds; false after ms of wall time. */
static bool run_until(struct cluster *c, pred_fn pred, void *arg, unsigned ms)
{
    uint64_t deadline = uv_hrtime() + (uint64_t)ms * 1000000u;
    while (!pred(c, arg)) {
        if (uv_hrtime() > deadline)
            return false;
        uv_run(&c->loop, UV_RUN_ONCE);
    }
    return true;
}

static bool node_closed(struct cluster *c, void *arg)
{
    return ((struct node *)arg)->closed;
}

static void close_node(struct cluster *c, unsigned i)
{
    sl_store_close(c->n[i].s, on_closed, &c->n[i]);
    assert_true(run_until(c, node_closed, &c->n[i], WAIT_MS));
}

/* Index of the open node that leads, has finished its warm-up barrier and is the leader every
 * other open node knows; -1 when there is none. */
static int ready_leader(struct cluster *c)
{
    int leader = -1;
    for (unsigned i = 0; i < N_MAX; i++) {
        struct sl_store_info info;
        if (!c->n[i].s)
            continue;
        sl_store_info(c->n[i].s, &info);
        if (info.state == SL_STORE_LEADER && info.leader_ready)
            leader = (int)i;
    }
    if (leader < 0)
        return -1;
    for (unsigned i = 0; i < N_MAX; i++) {
        struct sl_store_info info;
        if (!c->n[i].s || i == 3) /* node 4 is only a member between join and remove */
            continue;
        sl_store_info(c->n[i].s, &info);
        if (info.leader_id != c->n[leader].id)
            return -1;
    }
    return leader;
}

static bool has_leader(struct cluster *c, void *arg)
{
    return ready_leader(c) >= 0;
}

static int wait_leader(struct cluster *c)
{
    assert_true(run_until(c, has_leader, NULL, WAIT_MS));
    return ready_leader(c);
}

struct applied_arg {
    unsigned mask;
    uint64_t index;
};

static bool all_applied(struct cluster *c, void *arg)
{
    struct applied_arg *a = arg;
    for (unsigned i = 0; i < N_MAX; i++) {
        struct sl_store_info info;
        if (!(a->mask & (1u << i)))
            continue;
        sl_store_info(c->n[i].s, &info);
        if (info.applied_index < a->index || c->n[i].watched < a->index)
            return false;
    }
    return true;
}

static void wait_applied(struct cluster *c, unsigned mask, uint64_t index)
{
    struct applied_arg a = {mask, index};
    assert_true(run_until(c, all_applied, &a, WAIT_MS));
}

/* Every node in mask holds the same configuration and the same applied index. */
static char *assert_converged(struct cluster *c, unsigned mask)
{
    char *first = NULL;
    uint64_t applied = 0;
    for (unsigned i = 0; i < N_MAX; i++) {
        if (!(mask & (1u << i)))
            continue;
        char *d = NULL;
        assert_int_equal(sl_store_dump(c->n[i].s, &d), 0);
        struct sl_store_info info;
        sl_store_info(c->n[i].s, &info);
        if (!first) {
            first = d;
            applied = info.applied_index;
            continue;
        }
        assert_string_equal(first, d);
        assert_true(info.applied_index == applied);
        free(d);
    }
    return first;
}

struct waiter {
    bool done;
    struct sl_store_result r;
    int status; /* for done callbacks */
};

static void on_proposed(struct sl_store *s, const struct sl_store_result *r, void *arg)
{
    struct waiter *w = arg;
    w->r = *r;
    w->done = true;
}

static void on_done(struct sl_store *s, int status, void *arg)
{
    struct waiter *w = arg;
    w->status = status;
    w->done = true;
}

static bool waiter_done(struct cluster *c, void *arg)
{
    return ((struct waiter *)arg)->done;
}

static struct sl_store_change put_change(enum sl_raft_kind kind, const char *name, const char *body)
{
    struct sl_store_change ch = {.op = SL_RAFT_PUT, .kind = kind, .name = name, .body = body};
    return ch;
}

/* Propose through node i and wait for the answer. */
static struct sl_store_result propose(struct cluster *c, unsigned i,
                                      const struct sl_store_change *ch)
{
    struct waiter w = {0};
    assert_int_equal(sl_store_propose(c->n[i].s, ch, on_proposed, &w), SL_STORE_OK);
    assert_true(run_until(c, waiter_done, &w, WAIT_MS));
    return w.r;
}

static uint64_t put_ok(struct cluster *c, unsigned i, enum sl_raft_kind kind, const char *name,
                       const char *body)
{
    struct sl_store_change ch = put_change(kind, name, body);
    struct sl_store_result r = propose(c, i, &ch);
    assert_int_equal(r.status, SL_STORE_OK);
    assert_int_equal(r.fsm.outcome, SL_FSM_OK);
    assert_true(r.fsm.revision == r.fsm.index);
    return r.fsm.index;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    return remove(path);
}

static int setup(void **state)
{
    struct cluster *c = calloc(1, sizeof *c);
    assert_non_null(c);
    assert_int_equal(uv_loop_init(&c->loop), 0);
    snprintf(c->root, sizeof c->root, "/tmp/sl_raft_store_XXXXXX");
    assert_non_null(mkdtemp(c->root));
    for (unsigned i = 0; i < N_MAX; i++) {
        struct node *n = &c->n[i];
        n->id = i + 1;
        snprintf(n->dir, sizeof n->dir, "%s/n%u", c->root, i + 1);
        assert_int_equal(mkdir(n->dir, 0700), 0);
        snprintf(n->addr, sizeof n->addr, "127.0.0.1:%d", free_port());
    }
    *state = c;
    return 0;
}

static int teardown(void **state)
{
    struct cluster *c = *state;
    for (unsigned i = 0; i < N_MAX; i++)
        if (c->n[i].s)
            close_node(c, i);
    assert_int_equal(uv_run(&c->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&c->loop), 0);
    assert_int_equal(nftw(c->root, rm_entry, 16, FTW_DEPTH | FTW_PHYS), 0);
    free(c);
    return 0;
}

static void test_options(void **state)
{
    struct cluster *c = *state;
    struct node *n = &c->n[0];
    struct sl_store *s = NULL;
    char err[256];
    static const char *const bad[] = {
        "localhost:7000", "127.0.0.1",  "127.0.0.1:", "127.0.0.1:0", "127.0.0.1:65536",
        "127.0.0.1:70a",  "1.2.3:7000", "::1:7000",   ":7000",       "127.0.0.01:7000",
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        struct sl_store_options o = options(n);
        o.address = bad[k];
        assert_int_equal(sl_store_open(&s, &c->loop, &o, err, sizeof err), SL_STORE_INVALID);
    }
    struct sl_store_options o = options(n);
    o.id = 0;
    assert_int_equal(sl_store_open(&s, &c->loop, &o, err, sizeof err), SL_STORE_INVALID);
    o = options(n);
    o.heartbeat_timeout_ms = 500;
    assert_int_equal(sl_store_open(&s, &c->loop, &o, err, sizeof err), SL_STORE_INVALID);

    /* Opened and closed without ever starting; a bootstrap that leaves this node out is
     * refused, a proper one works once, and never again on the same data dir. */
    open_node(c, 0);
    struct sl_store_member other = {.id = 2, .role = SL_STORE_VOTER};
    snprintf(other.address, sizeof other.address, "%s", c->n[1].addr);
    assert_int_equal(sl_store_bootstrap(n->s, &other, 1), SL_STORE_INVALID);
    bootstrap3(c, 0);
    close_node(c, 0);
    open_node(c, 0);
    struct sl_store_member voters[3];
    for (unsigned k = 0; k < 3; k++) {
        voters[k].id = c->n[k].id;
        snprintf(voters[k].address, sizeof voters[k].address, "%s", c->n[k].addr);
        voters[k].role = SL_STORE_VOTER;
    }
    assert_int_equal(sl_store_bootstrap(n->s, voters, 3), SL_STORE_EXISTS);
    /* Not started: nothing to propose to. */
    struct sl_store_change ch = put_change(SL_RAFT_PROXY, "app", "{}");
    assert_int_equal(sl_store_propose(n->s, &ch, on_proposed, NULL), SL_STORE_NOT_LEADER);
    ch.name = "bad name";
    assert_int_equal(sl_store_propose(n->s, &ch, on_proposed, NULL), SL_STORE_INVALID);

    /* A start that fails (raft port taken) leaves a store that still closes cleanly. */
    assert_int_equal(sl_store_start(n->s), SL_STORE_OK);
    assert_int_equal(sl_store_start(n->s), SL_STORE_INVALID);
    snprintf(c->n[1].addr, sizeof c->n[1].addr, "%s", n->addr);
    open_node(c, 1);
    assert_int_equal(sl_store_start(c->n[1].s), SL_STORE_ERROR);
    close_node(c, 1);
    close_node(c, 0);
}

static void test_cluster(void **state)
{
    struct cluster *c = *state;
    const unsigned all3 = 7;
    uint64_t t0 = uv_hrtime();
    for (unsigned i = 0; i < 3; i++) {
        open_node(c, i);
        bootstrap3(c, i);
        assert_int_equal(sl_store_start(c->n[i].s), SL_STORE_OK);
    }

    /* Election: a leader within a bounded time, known to all. */
    int leader = wait_leader(c);
    assert_true(uv_hrtime() - t0 < 5000000000u);
    struct sl_store_member m[N_MAX];
    assert_int_equal(sl_store_members(c->n[leader].s, m, N_MAX), 3);
    for (unsigned k = 0; k < 3; k++)
        assert_int_equal(m[k].role, SL_STORE_VOTER);

    /* Replication: same dump everywhere, watchers told. */
    put_ok(c, (unsigned)leader, SL_RAFT_SECRET, "app-user", "{\"ref\":\"env:APP_USER\"}");
    uint64_t rev = put_ok(c, (unsigned)leader, SL_RAFT_PROXY, "app", "{\"listen_port\":6033}");
    wait_applied(c, all3, rev);
    free(assert_converged(c, all3));
    char *json = NULL;
    uint64_t got_rev = 0;
    unsigned follower = ((unsigned)leader + 1) % 3;
    assert_int_equal(sl_store_get(c->n[follower].s, SL_RAFT_PROXY, "app", NULL, &json, &got_rev),
                     0);
    assert_true(got_rev == rev);
    free(json);

    /* A follower refuses writes and barriers and names the leader. */
    struct sl_store_change ch = put_change(SL_RAFT_PROXY, "app", "{\"listen_port\":1}");
    assert_int_equal(sl_store_propose(c->n[follower].s, &ch, on_proposed, NULL),
                     SL_STORE_NOT_LEADER);
    assert_int_equal(sl_store_barrier(c->n[follower].s, on_done, NULL), SL_STORE_NOT_LEADER);
    struct sl_store_info info;
    sl_store_info(c->n[follower].s, &info);
    assert_true(info.leader_id == c->n[leader].id);
    assert_string_equal(info.leader_address, c->n[leader].addr);
    assert_int_equal(info.state, SL_STORE_FOLLOWER);

    /* Compare-and-set: a wrong expected revision changes nothing. */
    ch.expected_rev = rev + 100;
    struct sl_store_result r = propose(c, (unsigned)leader, &ch);
    assert_int_equal(r.status, SL_STORE_OK);
    assert_int_equal(r.fsm.outcome, SL_FSM_CONFLICT);
    assert_true(r.fsm.revision == rev);
    ch.expected_rev = rev;
    r = propose(c, (unsigned)leader, &ch);
    assert_int_equal(r.fsm.outcome, SL_FSM_OK);
    assert_true(r.fsm.revision == r.fsm.index);

    /* A request id proposed twice takes effect once; the retry reports the first outcome. */
    struct sl_store_change del = {.op = SL_RAFT_DELETE, .kind = SL_RAFT_SECRET, .name = "app-user"};
    struct sl_store_result first = propose(c, (unsigned)leader, &del);
    assert_int_equal(first.fsm.outcome, SL_FSM_OK);
    del.req_id = first.req_id;
    struct sl_store_result again = propose(c, (unsigned)leader, &del);
    assert_int_equal(again.status, SL_STORE_OK);
    assert_int_equal(again.fsm.outcome, SL_FSM_OK);
    assert_true(again.fsm.index == first.fsm.index);
    del.req_id = NULL;
    r = propose(c, (unsigned)leader, &del);
    assert_int_equal(r.fsm.outcome, SL_FSM_NOT_FOUND);

    /* Linearizable read point on the leader. */
    struct waiter bw = {0};
    assert_int_equal(sl_store_barrier(c->n[leader].s, on_done, &bw), SL_STORE_OK);
    assert_true(run_until(c, waiter_done, &bw, WAIT_MS));
    assert_int_equal(bw.status, SL_STORE_OK);
    sl_store_info(c->n[leader].s, &info);
    assert_true(info.applied_index >= r.fsm.index && info.commit_index >= info.applied_index);

    /* The leader closes with a write in flight: the caller hears CLOSING, a new leader takes
     * over, and the write retried with its request id lands exactly once. */
    struct waiter inflight = {0};
    struct sl_store_change lost = put_change(SL_RAFT_PROXY, "lost", "{\"listen_port\":7000}");
    assert_int_equal(sl_store_propose(c->n[leader].s, &lost, on_proposed, &inflight), SL_STORE_OK);
    unsigned old = (unsigned)leader;
    close_node(c, old);
    assert_true(inflight.done);
    assert_int_equal(inflight.r.status, SL_STORE_CLOSING);
    leader = wait_leader(c);
    assert_int_not_equal(leader, (int)old);
    lost.req_id = inflight.r.req_id;
    r = propose(c, (unsigned)leader, &lost);
    assert_int_equal(r.status, SL_STORE_OK);
    assert_int_equal(r.fsm.outcome, SL_FSM_OK);
    assert_int_equal(sl_store_get(c->n[leader].s, SL_RAFT_PROXY, "lost", NULL, &json, &got_rev), 0);
    assert_true(got_rev == r.fsm.index);
    free(json);
    /* Enough writes for snapshots (threshold 16, trailing 8) while the old leader is away. */
    char name[16];
    uint64_t last = 0;
    for (int k = 0; k < 30; k++) {
        snprintf(name, sizeof name, "n%02d", k);
        last = put_ok(c, (unsigned)leader, SL_RAFT_NODE, name, "{\"az\":\"az-a\"}");
    }
    unsigned up = all3 & ~(1u << old);
    wait_applied(c, up, last);

    /* Restart the old leader from its data dir: no second bootstrap, it catches up. */
    open_node(c, old);
    struct sl_store_member voters[3];
    for (unsigned k = 0; k < 3; k++) {
        voters[k].id = c->n[k].id;
        snprintf(voters[k].address, sizeof voters[k].address, "%s", c->n[k].addr);
        voters[k].role = SL_STORE_VOTER;
    }
    assert_int_equal(sl_store_bootstrap(c->n[old].s, voters, 3), SL_STORE_EXISTS);
    assert_int_equal(sl_store_start(c->n[old].s), SL_STORE_OK);
    last = put_ok(c, (unsigned)leader, SL_RAFT_NODE, "after", "{\"az\":\"az-b\"}");
    wait_applied(c, all3, last);
    free(assert_converged(c, all3));

    /* A fourth node joins (started, never bootstrapped), becomes a voter, then leaves. */
    open_node(c, 3);
    assert_int_equal(sl_store_start(c->n[3].s), SL_STORE_OK);
    sl_store_info(c->n[3].s, &info);
    assert_true(info.term == 0 && info.leader_id == 0);
    struct waiter add = {0};
    assert_int_equal(sl_store_add(c->n[leader].s, 4, c->n[3].addr, SL_STORE_VOTER, on_done, &add),
                     SL_STORE_OK);
    assert_int_equal(sl_store_remove(c->n[leader].s, 2, on_done, NULL), SL_STORE_BUSY);
    assert_true(run_until(c, waiter_done, &add, WAIT_MS));
    assert_int_equal(add.status, SL_STORE_OK);
    assert_int_equal(sl_store_members(c->n[leader].s, m, N_MAX), 4);
    assert_true(m[3].id == 4 && m[3].role == SL_STORE_VOTER);
    last = put_ok(c, (unsigned)leader, SL_RAFT_NODE, "four", "{\"az\":\"az-d\"}");
    wait_applied(c, 15, last);
    free(assert_converged(c, 15));
    struct waiter rm = {0};
    assert_int_equal(sl_store_remove(c->n[leader].s, 4, on_done, &rm), SL_STORE_OK);
    assert_true(run_until(c, waiter_done, &rm, WAIT_MS));
    assert_int_equal(rm.status, SL_STORE_OK);
    assert_int_equal(sl_store_members(c->n[leader].s, m, N_MAX), 3);
    close_node(c, 3);

    /* Leadership transfer with a write in flight: the write reports its real outcome (directly,
     * or through the outcome lookup if the old leader lost leadership first). */
    struct waiter w = {0}, tr = {0};
    ch = put_change(SL_RAFT_PROXY, "moved", "{\"listen_port\":7001}");
    assert_int_equal(sl_store_propose(c->n[leader].s, &ch, on_proposed, &w), SL_STORE_OK);
    assert_int_equal(sl_store_transfer(c->n[leader].s, 0, on_done, &tr), SL_STORE_OK);
    assert_true(run_until(c, waiter_done, &tr, WAIT_MS));
    assert_int_equal(tr.status, SL_STORE_OK);
    assert_true(run_until(c, waiter_done, &w, WAIT_MS));
    assert_int_equal(w.r.status, SL_STORE_OK);
    assert_int_equal(w.r.fsm.outcome, SL_FSM_OK);
    old = (unsigned)leader;
    leader = wait_leader(c);
    assert_int_not_equal(leader, (int)old);
    last = put_ok(c, (unsigned)leader, SL_RAFT_NODE, "end", "{\"az\":\"az-c\"}");
    wait_applied(c, all3, last);
    char *d = assert_converged(c, all3);
    assert_non_null(strstr(d, "\"moved\":{\"listen_port\":7001,"));
    assert_null(strstr(d, "app-user"));
    free(d);
    assert_true(uv_hrtime() - t0 < 20000000000u);
}

int main(void)
{
    /* raft_uv writes to peers that may have gone; the node's main does the same. */
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_options, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cluster, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
