/* budget/lease.h: the lease arithmetic. The defaults, the margin eating the lease, no overflow up
 * to an hour (and beyond), and the safety property the header promises, checked by simulation over
 * a grid of parameters and clock rates: whatever the two clocks' rates within the drift bound, the
 * node's deadline plus the close margin comes no later, in real time, than the leader's expiry.
 *
 * The simulation. The node sends its report at real time 0 and anchors its lease there; the
 * leader receives it at real time delay >= 0 and anchors there. A clock running at rate r shows r
 * seconds per real second, so a duration D on it lasts D / r of real time:
 *   the node's connections are gone by   (node_ns + margin_ns) / r_node
 *   the leader treats the lease over at  delay + leader_ns / r_leader
 * Rates are rationals p / RATE_ONE with p in [RATE_ONE * (1 - drift), RATE_ONE * (1 + drift)],
 * both ends included, so the comparison is done in integers, cross-multiplied. */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

#include "budget/lease.h"

#define NS_PER_MS  1000000u
#define RATE_ONE   10000u /* rate 1.0; one percent of drift is RATE_ONE / 100 */
#define RATE_STEPS 8      /* rates sampled per clock: both ends and RATE_STEPS - 1 in between */

static struct sl_lease_params lp(unsigned lease_ms, unsigned drift_pct, unsigned margin_ms)
{
    return (struct sl_lease_params){
        .lease_ms = lease_ms, .drift_pct = drift_pct, .close_margin_ms = margin_ms};
}

static void test_defaults(void **state)
{
    struct sl_lease_params p = lp(5000, 5, 500); /* budget/agent.c's defaults */
    assert_true(sl_lease_node_ns(&p) == 4250ull * NS_PER_MS);
    assert_true(sl_lease_leader_ns(&p) == 5250ull * NS_PER_MS);
    /* No drift: the node stops a margin early, the leader waits exactly the lease. */
    p = lp(5000, 0, 500);
    assert_true(sl_lease_node_ns(&p) == 4500ull * NS_PER_MS);
    assert_true(sl_lease_leader_ns(&p) == 5000ull * NS_PER_MS);
    p = lp(2000, 10, 0);
    assert_true(sl_lease_node_ns(&p) == 1800ull * NS_PER_MS);
    assert_true(sl_lease_leader_ns(&p) == 2200ull * NS_PER_MS);
}

static void test_margin_eats_lease(void **state)
{
    /* usable = 1000 * 95 / 100 = 950 ms. */
    struct sl_lease_params p = lp(1000, 5, 949);
    assert_true(sl_lease_node_ns(&p) == 1ull * NS_PER_MS);
    p.close_margin_ms = 950;
    assert_true(sl_lease_node_ns(&p) == 0);
    p.close_margin_ms = 951;
    assert_true(sl_lease_node_ns(&p) == 0);
    p.close_margin_ms = 4000000000u;
    assert_true(sl_lease_node_ns(&p) == 0);
    /* The leader's side does not depend on the margin. */
    assert_true(sl_lease_leader_ns(&p) == 1050ull * NS_PER_MS);
    /* Drift 99 %: 1000 ms leave 10 ms usable. */
    p = lp(1000, 99, 10);
    assert_true(sl_lease_node_ns(&p) == 0);
    p.close_margin_ms = 9;
    assert_true(sl_lease_node_ns(&p) == 1ull * NS_PER_MS);
    assert_true(sl_lease_leader_ns(&p) == 1990ull * NS_PER_MS);
}

/* v is within one millisecond of num / 100 ms, the exact value (num * 10^4 ns, below 2^54 for
 * every input here, so the test itself cannot overflow): v did not wrap. With down set, v must not
 * exceed the exact value. */
static void assert_near(uint64_t v, uint64_t num, int down)
{
    uint64_t exact_ns = num * (NS_PER_MS / 100);
    assert_true(v + NS_PER_MS > exact_ns);
    assert_true(v < exact_ns + NS_PER_MS);
    if (down)
        assert_true(v <= exact_ns);
}

static void test_no_overflow(void **state)
{
    /* One hour, the largest lease configured in practice. */
    struct sl_lease_params p = lp(3600000, 5, 500);
    assert_true(sl_lease_node_ns(&p) == 3419500ull * NS_PER_MS);
    assert_true(sl_lease_leader_ns(&p) == 3780000ull * NS_PER_MS);
    p = lp(3600000, 99, 0);
    assert_true(sl_lease_node_ns(&p) == 36000ull * NS_PER_MS);
    assert_true(sl_lease_leader_ns(&p) == 7164000ull * NS_PER_MS);

    /* Every lease up to an hour in coarse steps, and the largest unsigned value: within a
     * millisecond of the exact value, the node's side never above it. */
    static const unsigned drifts[] = {0, 1, 5, 50, 99};
    static const unsigned margins[] = {0, 500, 3599999};
    for (unsigned k = 0; k <= 1002; k++) {
        unsigned l = k <= 1000 ? 1 + k * 3599 : k == 1001 ? 3600000u : UINT_MAX;
        for (size_t d = 0; d < sizeof drifts / sizeof *drifts; d++) {
            for (size_t m = 0; m < sizeof margins / sizeof *margins; m++) {
                p = lp(l, drifts[d], margins[m]);
                uint64_t usable_num = (uint64_t)l * (100u - drifts[d]);
                uint64_t node = sl_lease_node_ns(&p);
                uint64_t margin_num = (uint64_t)margins[m] * 100; /* margin * 100, like usable */
                if (usable_num >= margin_num + 100)
                    assert_near(node + (uint64_t)margins[m] * NS_PER_MS, usable_num, 1);
                else if (usable_num <= margin_num)
                    assert_true(node == 0);
                else
                    assert_true(node < NS_PER_MS); /* less than a millisecond is left */
                assert_near(sl_lease_leader_ns(&p), (uint64_t)l * (100u + drifts[d]), 0);
                /* Never longer than the lease on the node. */
                assert_true(node <= (uint64_t)l * NS_PER_MS);
            }
        }
    }
}

/* The sampled rate k of RATE_STEPS for a drift of drift_pct: p / RATE_ONE, both ends included. */
static uint64_t rate(unsigned drift_pct, unsigned k)
{
    uint64_t lo = RATE_ONE - (uint64_t)drift_pct * (RATE_ONE / 100);
    uint64_t span = 2 * (uint64_t)drift_pct * (RATE_ONE / 100);
    return lo + span * k / RATE_STEPS;
}

/* Where check_property found the property violated. */
struct violation {
    uint64_t r_node, r_leader; /* rates, in units of 1 / RATE_ONE */
    uint64_t delay_ns;         /* receipt - send, real time */
};

static int check_property(const struct sl_lease_params *p, struct violation *v)
{
    uint64_t node_ns = sl_lease_node_ns(p);
    uint64_t leader_ns = sl_lease_leader_ns(p);
    if (node_ns == 0)
        return 0; /* the node never uses this lease: nothing to close */
    uint64_t margin_ns = (uint64_t)p->close_margin_ms * NS_PER_MS;
    static const uint64_t delays_ns[] = {0, 1, 15 * NS_PER_MS};
    /* The slowest node clock and the fastest leader clock first: the worst case is reported. */
    for (unsigned a = 0; a <= RATE_STEPS; a++) {
        for (unsigned b = 0; b <= RATE_STEPS; b++) {
            uint64_t rn = rate(p->drift_pct, a), rl = rate(p->drift_pct, RATE_STEPS - b);
            for (size_t d = 0; d < sizeof delays_ns / sizeof *delays_ns; d++) {
                /* Real times multiplied by rn * rl / RATE_ONE, to stay in integers:
                 *   node:   (node_ns + margin_ns) * RATE_ONE / rn  ->  (node_ns + margin_ns) * rl
                 *   leader: delay + leader_ns * RATE_ONE / rl      ->  delay * rn * rl / RATE_ONE
                 *                                                      + leader_ns * rn
                 * The largest product, 7.2e12 ns (an hour at 99 %) * 2e4, is below 2^64. The
                 * division rounds the leader's side down, which can only report more. */
                uint64_t node_real = (node_ns + margin_ns) * rl;
                uint64_t leader_real = delays_ns[d] * rn * rl / RATE_ONE + leader_ns * rn;
                if (node_real > leader_real) {
                    *v = (struct violation){rn, rl, delays_ns[d]};
                    return 1;
                }
            }
        }
    }
    return 0;
}

static void test_property_grid(void **state)
{
    static const unsigned leases[] = {1,     2,     19,    20,     100,     999,    1000,
                                      1019,  1500,  4999,  5000,   5001,    7777,   12345,
                                      30000, 60000, 99999, 600000, 3599999, 3600000};
    static const unsigned drifts[] = {0, 1, 2, 5, 10, 25, 50, 99};
    static const unsigned margins[] = {0, 1, 10, 100, 500, 2000, 60000};
    unsigned checked = 0, failed = 0;
    char first[256] = "";
    for (size_t l = 0; l < sizeof leases / sizeof *leases; l++) {
        for (size_t d = 0; d < sizeof drifts / sizeof *drifts; d++) {
            for (size_t m = 0; m < sizeof margins / sizeof *margins; m++) {
                struct sl_lease_params p = lp(leases[l], drifts[d], margins[m]);
                struct violation v;
                if (sl_lease_node_ns(&p) > 0)
                    checked++;
                if (!check_property(&p, &v))
                    continue;
                if (failed++ > 0)
                    continue;
                double node_ms = (double)(sl_lease_node_ns(&p) + p.close_margin_ms * 1000000ull) /
                                 1e6 * RATE_ONE / (double)v.r_node;
                double leader_ms = (double)v.delay_ns / 1e6 + (double)sl_lease_leader_ns(&p) / 1e6 *
                                                                  RATE_ONE / (double)v.r_leader;
                snprintf(first, sizeof first,
                         "lease %u ms drift %u %% margin %u ms: node_ns %llu leader_ns %llu; "
                         "r_node %.4f r_leader %.4f delay %llu ns: node done at %.3f ms, "
                         "leader expiry at %.3f ms (real time after the send)",
                         p.lease_ms, p.drift_pct, p.close_margin_ms,
                         (unsigned long long)sl_lease_node_ns(&p),
                         (unsigned long long)sl_lease_leader_ns(&p), (double)v.r_node / RATE_ONE,
                         (double)v.r_leader / RATE_ONE, (unsigned long long)v.delay_ns, node_ms,
                         leader_ms);
            }
        }
    }
    /* The grid is not vacuous: most combinations leave the node a usable lease. */
    assert_true(checked > 500);
    if (failed)
        fail_msg("%u of %u parameter sets violate the lease property; first: %s", failed, checked,
                 first);
}

/* One case of the property above, spelled out. 1019 ms at 5 %, no margin:
 *   node:   floor(1019 * 0.95) = 968 ms on a clock running at 0.95 -> 1018.947 ms real;
 *   leader: floor(1019 * 1.05) = 1069 ms on a clock running at 1.05 -> 1018.095 ms real,
 * so the leader may hand the quota on 0.85 ms before the node has closed. The exact values,
 * 968.05 and 1069.95 ms, would both give 1019 ms: the node's side rounds down (safe), the leader's
 * side must round up (or not round at all: lease_ms * (100 + drift) * 10^4 ns is exact). */
static void test_leader_expiry_rounds_up(void **state)
{
    struct sl_lease_params p = lp(1019, 5, 0);
    /* (node_ns / 0.95 <= leader_ns / 1.05)  <=>  node_ns * 105 <= leader_ns * 95 */
    assert_true(sl_lease_node_ns(&p) * 105 <= sl_lease_leader_ns(&p) * 95);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_margin_eats_lease),
        cmocka_unit_test(test_no_overflow),
        cmocka_unit_test(test_property_grid),
        cmocka_unit_test(test_leader_expiry_rounds_up),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
