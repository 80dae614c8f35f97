/* budget/alloc: the leader's quota planner. Fixed cases for each rule, permutation invariance, a
 * seeded random property test, and rounds of plan / commit / confirm converging on the targets. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "budget/alloc.h"

#define MAXN 8

static struct sl_alloc_params params(unsigned budget, unsigned reserve)
{
    return (struct sl_alloc_params){.budget = budget,
                                    .reserve = reserve,
                                    .floor = SL_ALLOC_FLOOR_DEFAULT,
                                    .headroom_pct = SL_ALLOC_HEADROOM_PCT_DEFAULT};
}

/* An alive node whose demand is all waiting, holding quota == cap. */
static struct sl_alloc_node busy(uint64_t id, unsigned demand, unsigned quota)
{
    return (struct sl_alloc_node){.node = id,
                                  .alive = true,
                                  .demand = demand,
                                  .waiting = demand,
                                  .quota = quota,
                                  .cap = quota};
}

static unsigned sum(const unsigned *v, size_t n)
{
    unsigned s = 0;
    for (size_t i = 0; i < n; i++)
        s += v[i];
    return s;
}

/* Commits a plan as the state machine would: a shrink lowers the quota only, a grant raises the
 * quota and (when above it) the cap. */
static size_t round_commit(const struct sl_alloc_params *p, struct sl_alloc_node *nodes, size_t n)
{
    unsigned out[MAXN];
    size_t moved = sl_alloc_plan(p, nodes, n, out);
    for (size_t i = 0; i < n; i++) {
        if (out[i] > nodes[i].cap)
            nodes[i].cap = out[i];
        nodes[i].quota = out[i];
    }
    return moved;
}

/* Every alive node reports that it holds no more than its quota. */
static void confirm(struct sl_alloc_node *nodes, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (nodes[i].alive)
            nodes[i].cap = nodes[i].quota;
    }
}

static void test_all_fit(void **state)
{
    struct sl_alloc_params p = params(100, 1);
    struct sl_alloc_node nodes[] = {busy(1, 10, 0), busy(2, 5, 0), busy(3, 0, 0)};
    unsigned out[3];
    assert_int_equal(sl_alloc_plan(&p, nodes, 3, out), 3);
    /* 10 + ceil(2.5); 5 + ceil(1.25); the floor */
    assert_int_equal(out[0], 13);
    assert_int_equal(out[1], 7);
    assert_int_equal(out[2], 1);

    /* Headroom is at least 1, even at 0 %. */
    p.headroom_pct = 0;
    assert_int_equal(sl_alloc_plan(&p, nodes, 3, out), 3);
    assert_int_equal(out[0], 11);
    assert_int_equal(out[1], 6);
    assert_int_equal(out[2], 1);

    /* Already there: nothing moves. */
    p.headroom_pct = SL_ALLOC_HEADROOM_PCT_DEFAULT;
    struct sl_alloc_node there[] = {busy(1, 10, 13), busy(2, 5, 7), busy(3, 0, 1)};
    assert_int_equal(sl_alloc_plan(&p, there, 3, out), 0);
}

/* Issue 4's acceptance case: 600 clients spread 400/150/50, budget 30, reserve 1. */
static void test_oversubscribed(void **state)
{
    struct sl_alloc_params p = params(30, 1);
    struct sl_alloc_node nodes[] = {busy(1, 400, 0), busy(2, 150, 0), busy(3, 50, 0)};
    unsigned out[3];
    assert_int_equal(sl_alloc_plan(&p, nodes, 3, out), 3);
    /* wants 500, 188, 63 of 751: shares 19.31, 7.26, 2.43; the last unit to the largest
     * remainder */
    assert_int_equal(out[0], 19);
    assert_int_equal(out[1], 7);
    assert_int_equal(out[2], 3);
    assert_true(out[0] > out[1] + out[2]);
    assert_true(sum(out, 3) <= 29);

    /* Equal remainders go to the lower node id. */
    struct sl_alloc_node even[] = {busy(9, 8, 0), busy(4, 8, 0)};
    p = params(20, 1); /* wants 10 + 10 > 19 */
    assert_int_equal(sl_alloc_plan(&p, even, 2, out), 2);
    assert_int_equal(out[0], 9);
    assert_int_equal(out[1], 10);

    /* Minimums beat proportion: a node with one waiting client is not rounded to 0. */
    struct sl_alloc_node tiny[] = {busy(1, 1000, 0), busy(2, 1, 0), busy(3, 0, 0)};
    p = params(10, 0);
    assert_int_equal(sl_alloc_plan(&p, tiny, 3, out), 3);
    assert_int_equal(out[0], 8);
    assert_int_equal(out[1], 1);
    assert_int_equal(out[2], 1);
}

static void test_idle_shrinks_to_floor(void **state)
{
    struct sl_alloc_params p = params(30, 1);
    struct sl_alloc_node nodes[] = {busy(1, 0, 20), busy(2, 5, 5)};
    unsigned out[2];
    assert_int_equal(sl_alloc_plan(&p, nodes, 2, out), 2);
    assert_int_equal(out[0], 1);
    assert_int_equal(out[1], 7); /* free room is 29 - 25 = 4 */

    p.floor = 3;
    assert_int_equal(sl_alloc_plan(&p, nodes, 2, out), 2);
    assert_int_equal(out[0], 3);

    p.floor = 0;
    assert_int_equal(sl_alloc_plan(&p, nodes, 2, out), 2);
    assert_int_equal(out[0], 0);
}

static void test_growth_waits_for_confirmation(void **state)
{
    struct sl_alloc_params p = params(30, 1);
    /* Node 1 was cut from 20 to 5 and has not confirmed yet: free room is 29 - 25 = 4. */
    struct sl_alloc_node nodes[] = {busy(1, 4, 5), busy(2, 40, 5)};
    nodes[0].cap = 20;
    unsigned out[3];
    assert_int_equal(sl_alloc_plan(&p, nodes, 2, out), 2);
    /* targets: wants 5 and 50 of 55 -> 2.64 and 26.36 -> 3 and 26 */
    assert_int_equal(out[0], 3);
    assert_int_equal(out[1], 9);
    unsigned held = out[1] + nodes[0].cap;
    assert_true(held <= 29);

    /* Growing back within its own cap costs no free room. */
    struct sl_alloc_node back[] = {busy(1, 12, 2), busy(2, 0, 9)};
    back[0].cap = 20;
    assert_int_equal(sl_alloc_plan(&p, back, 2, out), 2);
    assert_int_equal(out[0], 15); /* 12 + 3; caps 29, no free room */
    assert_int_equal(out[1], 1);

    /* With little room, the node with most waiting clients grows first. */
    struct sl_alloc_node race[] = {busy(1, 0, 24), busy(2, 3, 1), busy(3, 8, 1)};
    race[1].demand = 10; /* bigger deficit, fewer waiting */
    assert_int_equal(sl_alloc_plan(&p, race, 3, out), 2);
    assert_int_equal(out[0], 1);
    assert_int_equal(out[1], 1); /* 3 free: all to node 3 */
    assert_int_equal(out[2], 4);
}

static void test_dead_node_untouched(void **state)
{
    struct sl_alloc_params p = params(30, 1);
    struct sl_alloc_node nodes[] = {busy(1, 100, 5), busy(2, 400, 0), busy(3, 0, 0)};
    nodes[0].alive = false;
    nodes[0].cap = 12;
    unsigned out[3];
    assert_int_equal(sl_alloc_plan(&p, nodes, 3, out), 2);
    assert_int_equal(out[0], 5);
    /* A = 29 - 12 = 17: node 2 the rest after node 3's floor */
    assert_int_equal(out[1], 16);
    assert_int_equal(out[2], 1);

    /* Dead caps over the budget: the others get nothing new, and what they hold is shrunk. */
    nodes[0].cap = 40;
    nodes[1].quota = nodes[1].cap = 3;
    assert_int_equal(sl_alloc_plan(&p, nodes, 3, out), 1);
    assert_int_equal(out[0], 5);
    assert_int_equal(out[1], 0);
    assert_int_equal(out[2], 0);
}

static void test_budget_below_node_count(void **state)
{
    struct sl_alloc_params p = params(3, 1); /* 2 to share */
    struct sl_alloc_node nodes[] = {busy(1, 5, 0), busy(2, 9, 0), busy(3, 0, 0), busy(4, 9, 0),
                                    busy(5, 1, 0)};
    nodes[0].waiting = 2;
    unsigned out[5];
    assert_int_equal(sl_alloc_plan(&p, nodes, 5, out), 2);
    /* waiting 9 (nodes 2 and 4) first, lower id first among equals */
    unsigned want[] = {0, 1, 0, 1, 0};
    assert_memory_equal(out, want, sizeof want);

    /* Enough for every node with demand, then the floors in the same order. */
    p = params(6, 1);
    assert_int_equal(sl_alloc_plan(&p, nodes, 5, out), 5);
    unsigned want5[] = {1, 1, 1, 1, 1};
    assert_memory_equal(out, want5, sizeof want5);

    p = params(5, 1);
    p.floor = 2;
    assert_int_equal(sl_alloc_plan(&p, nodes, 5, out), 4);
    unsigned want4[] = {1, 1, 0, 1, 1};
    assert_memory_equal(out, want4, sizeof want4);
    p = params(8, 1);
    p.floor = 2;
    assert_int_equal(sl_alloc_plan(&p, nodes, 5, out), 5);
    unsigned want7[] = {1, 2, 1, 2, 1};
    assert_memory_equal(out, want7, sizeof want7);
}

static void test_reserve_covers_budget(void **state)
{
    struct sl_alloc_node nodes[] = {busy(1, 5, 3), busy(2, 0, 1)};
    unsigned out[2];
    struct sl_alloc_params p = params(2, 2);
    assert_int_equal(sl_alloc_plan(&p, nodes, 2, out), 2);
    assert_int_equal(out[0], 0);
    assert_int_equal(out[1], 0);
    p = params(2, 5);
    assert_int_equal(sl_alloc_plan(&p, nodes, 2, out), 2);
    assert_int_equal(out[0] + out[1], 0);
}

static void test_too_many_nodes(void **state)
{
    static struct sl_alloc_node nodes[SL_ALLOC_NODES_MAX + 1];
    static unsigned out[SL_ALLOC_NODES_MAX + 1];
    for (size_t i = 0; i <= SL_ALLOC_NODES_MAX; i++)
        nodes[i] = busy(i + 1, 3, 0);
    struct sl_alloc_params p = params(10000, 1);
    assert_int_equal(sl_alloc_plan(&p, nodes, SL_ALLOC_NODES_MAX + 1, out), 0);
    assert_int_equal(sum(out, SL_ALLOC_NODES_MAX + 1), 0);
    assert_int_equal(sl_alloc_plan(&p, nodes, SL_ALLOC_NODES_MAX, out), SL_ALLOC_NODES_MAX);
    assert_int_equal(out[SL_ALLOC_NODES_MAX - 1], 4);
}

/* xorshift64: the same sequence on every libc. */
static uint64_t rng = 0x5eed5eed5eedULL;
static unsigned rnd(unsigned below)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (unsigned)(rng % below);
}

static void shuffle(struct sl_alloc_node *nodes, size_t n)
{
    for (size_t i = n; i > 1; i--) {
        size_t j = rnd((unsigned)i);
        struct sl_alloc_node t = nodes[i - 1];
        nodes[i - 1] = nodes[j];
        nodes[j] = t;
    }
}

/* The plan for each node id does not depend on where the node sits in the array. */
static void check_permutations(const struct sl_alloc_params *p, const struct sl_alloc_node *nodes,
                               size_t n)
{
    unsigned out[MAXN], out2[MAXN];
    size_t moved = sl_alloc_plan(p, nodes, n, out);
    for (int t = 0; t < 4; t++) {
        struct sl_alloc_node copy[MAXN];
        memcpy(copy, nodes, n * sizeof *nodes);
        shuffle(copy, n);
        assert_int_equal(sl_alloc_plan(p, copy, n, out2), moved);
        for (size_t i = 0; i < n; i++) {
            for (size_t j = 0; j < n; j++) {
                if (copy[j].node == nodes[i].node)
                    assert_int_equal(out2[j], out[i]);
            }
        }
    }
}

static void test_permutation_invariance(void **state)
{
    /* Ties everywhere: equal demands, equal waiting, equal remainders. */
    struct sl_alloc_node nodes[] = {busy(7, 10, 2), busy(3, 10, 2), busy(5, 10, 2),
                                    busy(1, 10, 2), busy(9, 0, 6),  busy(4, 3, 0)};
    nodes[4].cap = 9;
    struct sl_alloc_params p = params(31, 1);
    check_permutations(&p, nodes, 6);
    p = params(4, 0);
    check_permutations(&p, nodes, 6);
    p = params(1000, 0);
    check_permutations(&p, nodes, 6);
}

static void test_random_properties(void **state)
{
    for (int iter = 0; iter < 20000; iter++) {
        size_t n = 1 + rnd(MAXN);
        struct sl_alloc_params p = {
            .budget = rnd(60), .reserve = rnd(4), .floor = rnd(3), .headroom_pct = rnd(4) * 25};
        unsigned usable = p.budget > p.reserve ? p.budget - p.reserve : 0;
        struct sl_alloc_node nodes[MAXN];
        unsigned caps = 0, dead_caps = 0, alive = 0;
        for (size_t i = 0; i < n; i++) {
            struct sl_alloc_node *x = &nodes[i];
            *x = (struct sl_alloc_node){.node = 1 + rnd(1000) * MAXN + i, .alive = rnd(5) > 0};
            x->demand = rnd(4) ? rnd(80) : 0;
            x->waiting = rnd(3) ? rnd(x->demand + 1) : rnd(5);
            /* Mostly within the state machine's invariant, sometimes above it. */
            x->quota = rnd(usable / (unsigned)n + 2);
            x->cap = x->quota + (rnd(2) ? rnd(6) : 0);
            caps += x->cap;
            dead_caps += x->alive ? 0 : x->cap;
            alive += x->alive;
        }
        unsigned avail = usable > dead_caps ? usable - dead_caps : 0;

        unsigned out[MAXN];
        size_t moved = sl_alloc_plan(&p, nodes, n, out);
        unsigned held = 0;
        size_t differ = 0;
        for (size_t i = 0; i < n; i++) {
            held += out[i] > nodes[i].cap ? out[i] : nodes[i].cap;
            differ += out[i] != nodes[i].quota;
            if (!nodes[i].alive)
                assert_int_equal(out[i], nodes[i].quota);
        }
        assert_int_equal(moved, differ);
        assert_true(held <= (usable > caps ? usable : caps));
        if (iter % 16 == 0)
            check_permutations(&p, nodes, n);

        /* Two rounds reach the targets; then no node with waiting clients is left without a
         * connection when there is one for each alive node, and the alive quotas fit in A. */
        round_commit(&p, nodes, n);
        confirm(nodes, n);
        round_commit(&p, nodes, n);
        confirm(nodes, n);
        unsigned quotas = 0;
        for (size_t i = 0; i < n; i++) {
            if (!nodes[i].alive)
                continue;
            quotas += nodes[i].quota;
            if (nodes[i].waiting > 0 && avail >= alive)
                assert_true(nodes[i].quota >= 1);
        }
        assert_true(quotas <= avail);
        assert_int_equal(sl_alloc_plan(&p, nodes, n, out), 0);
    }
}

/* From an even split, demands 400/150/50 move the quotas to 19/7/3: round 1 shrinks nodes 2 and
 * 3, round 2 (after their confirmations) grows node 1. The caps never exceed the budget. */
static void test_convergence(void **state)
{
    struct sl_alloc_params p = params(30, 1);
    struct sl_alloc_node nodes[] = {busy(1, 400, 10), busy(2, 150, 10), busy(3, 50, 9)};
    unsigned want[] = {19, 7, 3};
    int rounds = 0;
    for (;;) {
        unsigned quotas[3] = {nodes[0].quota, nodes[1].quota, nodes[2].quota};
        if (memcmp(quotas, want, sizeof want) == 0)
            break;
        assert_true(++rounds <= 3);
        round_commit(&p, nodes, 3);
        assert_true(nodes[0].cap + nodes[1].cap + nodes[2].cap <= 29);
        confirm(nodes, 3);
    }
    assert_int_equal(rounds, 2);
    unsigned out[3];
    assert_int_equal(sl_alloc_plan(&p, nodes, 3, out), 0);

    /* Demand moves to node 3: it takes over within two rounds as well. */
    nodes[0] = busy(1, 20, nodes[0].quota);
    nodes[2] = busy(3, 500, nodes[2].quota);
    for (rounds = 0; round_commit(&p, nodes, 3) > 0; rounds++) {
        assert_true(rounds < 3);
        assert_true(nodes[0].cap + nodes[1].cap + nodes[2].cap <= 29);
        confirm(nodes, 3);
    }
    assert_true(nodes[2].quota > nodes[0].quota + nodes[1].quota);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_all_fit),
        cmocka_unit_test(test_oversubscribed),
        cmocka_unit_test(test_idle_shrinks_to_floor),
        cmocka_unit_test(test_growth_waits_for_confirmation),
        cmocka_unit_test(test_dead_node_untouched),
        cmocka_unit_test(test_budget_below_node_count),
        cmocka_unit_test(test_reserve_covers_budget),
        cmocka_unit_test(test_too_many_nodes),
        cmocka_unit_test(test_permutation_invariance),
        cmocka_unit_test(test_random_properties),
        cmocka_unit_test(test_convergence),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
