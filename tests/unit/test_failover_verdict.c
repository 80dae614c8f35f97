/* The external-mode verdict: a majority of voters must see the writer gone, exactly one other
 * target writable and not replicating; anything less keeps the writer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "failover/verdict.h"

enum { W = 0, R1 = 1, R2 = 2 };

static struct sl_verdict_target targets[3];

/* obs: one string per target, one letter per node: d down, w writable, r read-only, u up
 * (role unknown), - none; a capital letter also marks the node seeing it replicate. */
static struct sl_verdict run(size_t voters, const char *w, const char *r1, const char *r2)
{
    const char *obs[3] = {w, r1, r2};
    memset(targets, 0, sizeof targets);
    size_t nodes = strlen(w);
    for (size_t t = 0; t < 3; t++) {
        assert_int_equal(strlen(obs[t]), nodes);
        for (size_t k = 0; k < nodes; k++) {
            char c = obs[t][k];
            targets[t].replicating[k] = c >= 'A' && c <= 'Z' ? 1 : -1;
            c = (char)(c | 0x20);
            targets[t].obs[k] = c == 'd'   ? SL_OBS_DOWN
                                : c == 'w' ? SL_OBS_WRITABLE
                                : c == 'r' ? SL_OBS_READ_ONLY
                                : c == 'u' ? SL_OBS_UP
                                           : SL_OBS_NONE;
        }
    }
    struct sl_verdict_input in = {
        .voters = voters, .nodes = nodes, .targets = targets, .n_targets = 3, .writer = W};
    struct sl_verdict v;
    sl_verdict_external(&in, &v);
    assert_non_null(v.why);
    return v;
}

static void test_healthy_writer_is_kept(void **state)
{
    (void)state;
    assert_int_equal(run(3, "www", "rrr", "rrr").kind, SL_VERDICT_KEEP);
    /* Even with another target writable (a split brain in the databases): not our call. */
    assert_int_equal(run(3, "www", "www", "rrr").kind, SL_VERDICT_KEEP);
}

static void test_one_node_cannot_cause_a_failover(void **state)
{
    (void)state;
    struct sl_verdict v = run(3, "dww", "www", "rrr");
    assert_int_equal(v.kind, SL_VERDICT_KEEP);
    assert_int_equal(v.gone_votes, 1);
    /* Two nodes silent: the one that reports cannot decide alone. */
    assert_int_equal(run(3, "d--", "w--", "r--").kind, SL_VERDICT_KEEP);
}

static void test_majority_down_and_one_writable_switches(void **state)
{
    (void)state;
    struct sl_verdict v = run(3, "dd-", "ww-", "rr-");
    assert_int_equal(v.kind, SL_VERDICT_SWITCH);
    assert_int_equal(v.target, R1);
    assert_int_equal(v.gone_votes, 2);
    assert_int_equal(v.ready_votes, 2);
    /* A demoted writer (read_only=1) counts as gone. */
    v = run(3, "rrd", "www", "rrr");
    assert_int_equal(v.kind, SL_VERDICT_SWITCH);
    assert_int_equal(v.target, R1);
    /* Five voters need three. */
    assert_int_equal(run(5, "dd---", "ww---", "rr---").kind, SL_VERDICT_KEEP);
    assert_int_equal(run(5, "ddd--", "www--", "rrr--").kind, SL_VERDICT_SWITCH);
}

static void test_waits_or_refuses_when_unclear(void **state)
{
    (void)state;
    /* Nobody promoted yet: wait. */
    struct sl_verdict v = run(3, "ddd", "rrr", "rrr");
    assert_int_equal(v.kind, SL_VERDICT_KEEP);
    assert_non_null(strstr(v.why, "no other target"));
    /* Writable for a minority only. */
    assert_int_equal(run(3, "ddd", "wrr", "rrr").kind, SL_VERDICT_KEEP);
    /* Role unknown is not writable. */
    assert_int_equal(run(3, "ddd", "uuu", "rrr").kind, SL_VERDICT_KEEP);
    /* Still replicating: not promoted yet. */
    assert_int_equal(run(3, "ddd", "wwW", "rrr").kind, SL_VERDICT_KEEP);
    /* Two writable: refuse to choose. */
    v = run(3, "ddd", "www", "www");
    assert_int_equal(v.kind, SL_VERDICT_KEEP);
    assert_non_null(strstr(v.why, "several"));
}

static void test_writer_out_of_range(void **state)
{
    (void)state;
    struct sl_verdict_input in = {
        .voters = 3, .nodes = 0, .targets = targets, .n_targets = 3, .writer = 3};
    struct sl_verdict v;
    sl_verdict_external(&in, &v);
    assert_int_equal(v.kind, SL_VERDICT_KEEP);
}

static void test_gtid_compare(void **state)
{
    (void)state;
    assert_int_equal(sl_gtid_compare("0-1-5", "0-1-5"), 0);
    assert_int_equal(sl_gtid_compare("0-1-6", "0-1-5"), 1);
    assert_int_equal(sl_gtid_compare("0-1-5", "0-2-6"), -1); /* the server id does not order */
    assert_int_equal(sl_gtid_compare("0-1-5,1-1-3", "0-1-5"), 1);
    assert_int_equal(sl_gtid_compare("0-1-5", "0-1-5,1-1-3"), -1);
    assert_int_equal(sl_gtid_compare("0-1-6,1-1-2", "0-1-5,1-1-3"), 2); /* diverged */
    assert_int_equal(sl_gtid_compare("", ""), 0);
    assert_int_equal(sl_gtid_compare("0-1-1", ""), 1);
    assert_int_equal(sl_gtid_compare("0-1", "0-1-1"), 2);
    assert_int_equal(sl_gtid_compare("0-1-1,", "0-1-1"), 0);
    assert_int_equal(sl_gtid_compare("0-1-1,0-1-2", "0-1-1"), 2); /* a domain twice */
    assert_int_equal(sl_gtid_compare("x", "0-1-1"), 2);
    assert_int_equal(sl_gtid_compare(NULL, "0-1-1"), 2);
}

static void test_pick_replica(void **state)
{
    (void)state;
    run(3, "ddd", "rrr", "rrr");
    struct sl_verdict_input in = {
        .voters = 3, .nodes = 3, .targets = targets, .n_targets = 3, .writer = W};
    const char *ahead2[] = {"0-1-9", "0-1-7", "0-1-8"};
    assert_int_equal(sl_verdict_pick_replica(&in, ahead2), R2);
    const char *ahead1[] = {"0-1-9", "0-1-8", "0-1-7"};
    assert_int_equal(sl_verdict_pick_replica(&in, ahead1), R1);
    const char *diverged[] = {"0-1-9", "0-1-8,1-1-1", "0-1-9"};
    assert_int_equal(sl_verdict_pick_replica(&in, diverged), SIZE_MAX);
    /* A replica that only a minority sees up is not a candidate. */
    run(3, "ddd", "rdd", "rrr");
    assert_int_equal(sl_verdict_pick_replica(&in, ahead1), R2);
    run(3, "ddd", "ddd", "ddd");
    assert_int_equal(sl_verdict_pick_replica(&in, ahead1), SIZE_MAX);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_healthy_writer_is_kept),
        cmocka_unit_test(test_one_node_cannot_cause_a_failover),
        cmocka_unit_test(test_majority_down_and_one_writable_switches),
        cmocka_unit_test(test_waits_or_refuses_when_unclear),
        cmocka_unit_test(test_writer_out_of_range),
        cmocka_unit_test(test_gtid_compare),
        cmocka_unit_test(test_pick_replica),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
