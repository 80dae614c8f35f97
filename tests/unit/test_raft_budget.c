/* The committed budget table (raft/budget.h): every apply rule, the safety invariant under a
 * seeded random walk, determinism, and the strict JSON codecs of ops and table. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "raft/budget.h"

#define K1 "app/db1.internal:3306"
#define K2 "app/db2.internal:3307"

static struct sl_budget_op op_limit(const char *key, unsigned mc, unsigned pct, unsigned reserve)
{
    struct sl_budget_op op = {
        .kind = SL_BUDGET_LIMIT, .max_connections = mc, .percent = pct, .reserve = reserve};
    snprintf(op.key, sizeof op.key, "%s", key);
    return op;
}

static struct sl_budget_op op_set(const char *key, uint64_t node, unsigned quota)
{
    struct sl_budget_op op = {.kind = SL_BUDGET_SET, .node = node, .quota = quota};
    snprintf(op.key, sizeof op.key, "%s", key);
    return op;
}

static struct sl_budget_op op_confirm(const char *key, uint64_t node, uint64_t applied)
{
    struct sl_budget_op op = {.kind = SL_BUDGET_CONFIRM, .node = node, .applied = applied};
    snprintf(op.key, sizeof op.key, "%s", key);
    return op;
}

static struct sl_budget_op op_renew(uint64_t node, uint64_t seq)
{
    struct sl_budget_op op = {.kind = SL_BUDGET_RENEW, .node = node, .seq = seq};
    return op;
}

static struct sl_budget_op op_revoke(uint64_t node)
{
    struct sl_budget_op op = {.kind = SL_BUDGET_REVOKE, .node = node};
    return op;
}

static struct sl_budget_op op_forget(const char *key)
{
    struct sl_budget_op op = {.kind = SL_BUDGET_FORGET};
    snprintf(op.key, sizeof op.key, "%s", key);
    return op;
}

static void apply1(struct sl_budget_table *t, struct sl_budget_op op, uint64_t index)
{
    assert_int_equal(sl_budget_apply(t, &op, 1, index), 0);
}

static const struct sl_budget_holder *holder(const struct sl_budget_table *t, const char *key,
                                             uint64_t node)
{
    const struct sl_budget_entry *e = sl_budget_find(t, key);
    assert_non_null(e);
    return sl_budget_holder_of(e, node);
}

static void assert_holder(const struct sl_budget_table *t, const char *key, uint64_t node,
                          unsigned quota, unsigned cap, uint64_t index)
{
    const struct sl_budget_holder *h = holder(t, key, node);
    assert_non_null(h);
    assert_int_equal(h->quota, quota);
    assert_int_equal(h->cap, cap);
    assert_int_equal(h->index, index);
}

static char *table_json(const struct sl_budget_table *t)
{
    char *s = sl_budget_table_json(t);
    assert_non_null(s);
    return s;
}

static void test_limit(void **state)
{
    struct sl_budget_table t;
    sl_budget_table_init(&t);
    apply1(&t, op_limit(K1, 60, 50, 1), 3);
    const struct sl_budget_entry *e = sl_budget_find(&t, K1);
    assert_non_null(e);
    assert_int_equal(e->budget, 30);
    assert_int_equal(e->reserve, 1);
    assert_int_equal(e->index, 3);
    assert_int_equal(e->n_holders, 0);

    /* Floor, and a reserve above the budget is clamped to it. */
    apply1(&t, op_limit(K2, 10, 33, 50), 4);
    e = sl_budget_find(&t, K2);
    assert_int_equal(e->budget, 3);
    assert_int_equal(e->reserve, 3);
    /* The largest values: 1000000 * 100 / 100 computed without overflow. */
    apply1(&t, op_limit(K2, SL_BUDGET_COUNT_MAX, 100, 0), 5);
    e = sl_budget_find(&t, K2);
    assert_int_equal(e->budget, SL_BUDGET_COUNT_MAX);
    assert_int_equal(e->max_connections, SL_BUDGET_COUNT_MAX);

    /* A LIMIT on an existing entry keeps its holders. */
    apply1(&t, op_set(K1, 2, 10), 6);
    apply1(&t, op_limit(K1, 100, 10, 0), 7);
    e = sl_budget_find(&t, K1);
    assert_int_equal(e->budget, 10);
    assert_int_equal(e->index, 7);
    assert_holder(&t, K1, 2, 10, 10, 6);
    assert_int_equal(t.n_entries, 2);
    assert_null(sl_budget_find(&t, "app/none:1"));
    sl_budget_table_free(&t);
    assert_int_equal(t.n_entries, 0);
    assert_null(t.entries);
}

static void test_grant_clamped_by_room(void **state)
{
    struct sl_budget_table t;
    sl_budget_table_init(&t);
    apply1(&t, op_set(K1, 1, 5), 1); /* no entry yet: ignored */
    assert_int_equal(t.n_entries, 0);
    apply1(&t, op_limit(K1, 60, 50, 1), 2); /* budget 30, 29 to hand out */
    apply1(&t, op_set(K1, 1, 20), 3);
    assert_holder(&t, K1, 1, 20, 20, 3);
    apply1(&t, op_set(K1, 2, 20), 4);
    assert_holder(&t, K1, 2, 9, 9, 4);
    const struct sl_budget_entry *e = sl_budget_find(&t, K1);
    assert_int_equal(e->index, 4);
    assert_int_equal(sl_budget_capped(e), 29);
    /* No room left: a new holder gets nothing and is not even recorded. */
    apply1(&t, op_set(K1, 3, 5), 5);
    assert_null(holder(&t, K1, 3));
    assert_int_equal(sl_budget_find(&t, K1)->index, 4);
    /* Asking for more with no room changes nothing, not even the index. */
    apply1(&t, op_set(K1, 2, 25), 6);
    assert_holder(&t, K1, 2, 9, 9, 4);
    /* Growing the budget makes room. */
    apply1(&t, op_limit(K1, 80, 50, 1), 7); /* budget 40, 39 usable */
    apply1(&t, op_set(K1, 2, 25), 8);
    assert_holder(&t, K1, 2, 19, 19, 8);
    /* Holders stay sorted by node id whatever the insertion order. */
    apply1(&t, op_limit(K2, 100, 100, 0), 9);
    apply1(&t, op_set(K2, 9, 1), 10);
    apply1(&t, op_set(K2, 3, 1), 10);
    apply1(&t, op_set(K2, 5, 1), 10);
    e = sl_budget_find(&t, K2);
    assert_int_equal(e->n_holders, 3);
    assert_true(e->holders[0].node == 3 && e->holders[1].node == 5 && e->holders[2].node == 9);
    sl_budget_table_free(&t);
}

static void test_shrink_keeps_cap_until_confirm(void **state)
{
    struct sl_budget_table t;
    sl_budget_table_init(&t);
    apply1(&t, op_limit(K1, 60, 50, 1), 1);
    apply1(&t, op_set(K1, 1, 20), 2);
    apply1(&t, op_set(K1, 1, 5), 3);
    assert_holder(&t, K1, 1, 5, 20, 3);
    /* The 15 given up are not free yet: node 1 may still hold them. */
    apply1(&t, op_set(K1, 2, 20), 4);
    assert_holder(&t, K1, 2, 9, 9, 4);
    /* A confirmation from before the shrink was applied is stale. */
    apply1(&t, op_confirm(K1, 1, 2), 5);
    assert_holder(&t, K1, 1, 5, 20, 3);
    apply1(&t, op_confirm(K1, 1, 3), 6);
    assert_holder(&t, K1, 1, 5, 5, 3);
    apply1(&t, op_set(K1, 2, 20), 7);
    assert_holder(&t, K1, 2, 20, 20, 7);
    /* Growing back within the cap after a shrink: the quota moves, the cap stays. */
    apply1(&t, op_set(K1, 2, 4), 8);
    apply1(&t, op_set(K1, 2, 12), 9);
    assert_holder(&t, K1, 2, 12, 20, 9);
    /* Shrink to 0, confirm: the holder goes away. */
    apply1(&t, op_set(K1, 1, 0), 10);
    assert_holder(&t, K1, 1, 0, 5, 10);
    apply1(&t, op_confirm(K1, 1, 12), 11);
    assert_null(holder(&t, K1, 1));
    /* Confirmations of absent holders or entries are ignored. */
    apply1(&t, op_confirm(K1, 7, 100), 12);
    apply1(&t, op_confirm(K2, 2, 100), 12);
    assert_null(holder(&t, K1, 7));
    assert_null(sl_budget_find(&t, K2));
    sl_budget_table_free(&t);
}

static void test_limit_lowering_blocks_growth(void **state)
{
    struct sl_budget_table t;
    sl_budget_table_init(&t);
    apply1(&t, op_limit(K1, 60, 50, 0), 1);
    apply1(&t, op_set(K1, 1, 15), 2);
    apply1(&t, op_set(K1, 2, 15), 3);
    apply1(&t, op_limit(K1, 20, 50, 0), 4); /* the database shrank: budget 10 */
    const struct sl_budget_entry *e = sl_budget_find(&t, K1);
    assert_int_equal(sl_budget_capped(e), 30);
    /* No cap grows while the sum is over the budget. */
    apply1(&t, op_set(K1, 1, 16), 5);
    apply1(&t, op_set(K1, 3, 1), 5);
    assert_holder(&t, K1, 1, 15, 15, 2);
    assert_null(holder(&t, K1, 3));
    apply1(&t, op_set(K1, 1, 5), 6);
    apply1(&t, op_confirm(K1, 1, 6), 7);
    apply1(&t, op_set(K1, 2, 5), 8);
    assert_holder(&t, K1, 2, 5, 15, 8);
    apply1(&t, op_set(K1, 1, 8), 9); /* sum 20 > 10: still no growth */
    assert_holder(&t, K1, 1, 5, 5, 6);
    apply1(&t, op_confirm(K1, 2, 8), 10);
    assert_int_equal(sl_budget_capped(sl_budget_find(&t, K1)), 10);
    apply1(&t, op_set(K1, 1, 8), 11); /* exactly at the budget: room 5, nothing more */
    assert_holder(&t, K1, 1, 5, 5, 6);
    apply1(&t, op_limit(K1, 40, 50, 0), 12); /* budget 20 again */
    apply1(&t, op_set(K1, 1, 8), 13);
    assert_holder(&t, K1, 1, 8, 8, 13);
    /* The reserve is never handed out either. */
    apply1(&t, op_limit(K1, 40, 50, 7), 14); /* 13 usable, 13 capped */
    apply1(&t, op_set(K1, 3, 4), 15);
    assert_null(holder(&t, K1, 3));
    sl_budget_table_free(&t);
}

static void test_revoke(void **state)
{
    struct sl_budget_table t;
    sl_budget_table_init(&t);
    apply1(&t, op_limit(K1, 100, 100, 0), 1);
    apply1(&t, op_limit(K2, 100, 100, 0), 1);
    struct sl_budget_op ops[] = {op_set(K1, 3, 10), op_set(K2, 3, 20), op_set(K1, 4, 5),
                                 op_renew(3, 7), op_renew(4, 8)};
    assert_int_equal(sl_budget_apply(&t, ops, 5, 2), 0);
    apply1(&t, op_set(K2, 3, 0), 3); /* an unconfirmed shrink is revoked too */
    apply1(&t, op_revoke(3), 4);
    assert_null(holder(&t, K1, 3));
    assert_null(holder(&t, K2, 3));
    assert_int_equal(sl_budget_find(&t, K1)->index, 4);
    assert_int_equal(sl_budget_find(&t, K2)->index, 4);
    assert_holder(&t, K1, 4, 5, 5, 2);
    assert_null(sl_budget_lease_of(&t, 3));
    assert_non_null(sl_budget_lease_of(&t, 4));
    /* Revoking a node that holds nothing changes nothing. */
    char *before = table_json(&t);
    apply1(&t, op_revoke(9), 5);
    char *after = table_json(&t);
    assert_string_equal(before, after);
    free(before);
    free(after);
    sl_budget_table_free(&t);
}

static void test_renew(void **state)
{
    struct sl_budget_table t;
    sl_budget_table_init(&t);
    apply1(&t, op_renew(5, 1), 10);
    apply1(&t, op_renew(2, 40), 11);
    apply1(&t, op_renew(5, 2), 12);
    assert_int_equal(t.n_leases, 2);
    assert_true(t.leases[0].node == 2 && t.leases[1].node == 5);
    const struct sl_budget_lease *l = sl_budget_lease_of(&t, 5);
    assert_non_null(l);
    assert_true(l->seq == 2 && l->index == 12);
    assert_null(sl_budget_lease_of(&t, 3));
    assert_true(sl_budget_max_index(&t) == 12);
    sl_budget_table_free(&t);
}

static void test_forget(void **state)
{
    struct sl_budget_table t;
    sl_budget_table_init(&t);
    apply1(&t, op_limit(K1, 100, 100, 0), 1);
    apply1(&t, op_limit(K2, 100, 100, 0), 1);
    apply1(&t, op_set(K1, 1, 10), 2);
    apply1(&t, op_set(K1, 1, 0), 3);
    apply1(&t, op_forget(K1), 4); /* node 1 may still hold 10 */
    assert_non_null(sl_budget_find(&t, K1));
    apply1(&t, op_confirm(K1, 1, 3), 5);
    apply1(&t, op_forget(K1), 6);
    assert_null(sl_budget_find(&t, K1));
    apply1(&t, op_forget(K1), 7); /* absent: ignored */
    assert_int_equal(t.n_entries, 1);
    apply1(&t, op_forget(K2), 8);
    assert_int_equal(t.n_entries, 0);
    sl_budget_table_free(&t);
}

/* Ops sl_budget_ops_parse would refuse are ignored by apply. */
static void test_invalid_ops_ignored(void **state)
{
    struct sl_budget_table t;
    sl_budget_table_init(&t);
    apply1(&t, op_limit(K1, 100, 100, 0), 1);
    char *before = table_json(&t);
    struct sl_budget_op bad[] = {
        op_limit(K2, 100, 0, 0),
        op_limit(K2, 100, 101, 0),
        op_limit(K2, SL_BUDGET_COUNT_MAX + 1, 10, 0),
        op_limit("bad key", 1, 1, 0),
        op_limit("", 1, 1, 0),
        op_set(K1, 0, 5),
        op_set(K1, 1, SL_BUDGET_COUNT_MAX + 1),
        op_renew(1, 0),
        op_renew((uint64_t)INT64_MAX + 1, 1),
        op_revoke(0),
    };
    bad[9].kind = (enum sl_budget_op_kind)99;
    assert_int_equal(sl_budget_apply(&t, bad, sizeof bad / sizeof bad[0], 2), 0);
    char *after = table_json(&t);
    assert_string_equal(before, after);
    /* A key filling the whole array without a NUL is invalid too. */
    struct sl_budget_op full = op_forget(K1);
    memset(full.key, 'a', sizeof full.key);
    apply1(&t, full, 3);
    free(after);
    after = table_json(&t);
    assert_string_equal(before, after);
    free(before);
    free(after);
    sl_budget_table_free(&t);
}

/* --- Determinism and the safety invariant under random ops ---------------------------------- */

static uint64_t rng_state;

static uint64_t rnd(void)
{
    /* splitmix64: a fixed seed gives the same walk on every machine. */
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static unsigned below(unsigned n)
{
    return (unsigned)(rnd() % n);
}

static struct sl_budget_op random_op(uint64_t index)
{
    static const char *const keys[] = {K1, K2, "other/db:1"};
    const char *key = keys[below(3)];
    uint64_t node = 1 + below(5);
    unsigned r = below(100);
    if (r < 10)
        return op_limit(key, below(120), 1 + below(100), below(12));
    if (r < 55)
        return op_set(key, node, below(40));
    if (r < 80)
        return op_confirm(key, node, index > 3 ? index - below(4) : index);
    if (r < 90)
        return op_renew(node, 1 + below(1000));
    if (r < 95)
        return op_revoke(node);
    return op_forget(key);
}

/* Everything apply promises about the shape of the table. */
static void check_table(const struct sl_budget_table *t)
{
    for (size_t i = 0; i < t->n_entries; i++) {
        const struct sl_budget_entry *e = &t->entries[i];
        assert_true(sl_budget_key_valid(e->key));
        if (i > 0)
            assert_true(strcmp(t->entries[i - 1].key, e->key) < 0);
        assert_int_equal(e->budget, (uint64_t)e->max_connections * e->percent / 100);
        assert_true(e->reserve <= e->budget);
        for (size_t j = 0; j < e->n_holders; j++) {
            const struct sl_budget_holder *h = &e->holders[j];
            assert_true(h->node > 0);
            assert_true(j == 0 || e->holders[j - 1].node < h->node);
            assert_true(h->quota <= h->cap);
            assert_true(h->cap > 0);
            assert_true(h->index <= e->index);
        }
    }
    for (size_t i = 1; i < t->n_leases; i++)
        assert_true(t->leases[i - 1].node < t->leases[i].node);
}

static unsigned capped_of(const struct sl_budget_table *t, const char *key)
{
    const struct sl_budget_entry *e = sl_budget_find(t, key);
    return e ? sl_budget_capped(e) : 0;
}

static void test_random_invariant(void **state)
{
    rng_state = 20240601;
    size_t sets = 0, grew = 0;
    for (int run = 0; run < 3000; run++) {
        struct sl_budget_table a, b;
        sl_budget_table_init(&a);
        sl_budget_table_init(&b);
        for (uint64_t index = 1; index <= 40; index++) {
            struct sl_budget_op ops[4];
            size_t n = 1 + below(4);
            for (size_t i = 0; i < n; i++)
                ops[i] = random_op(index);
            /* a: op by op, checking the invariant around each SET. */
            for (size_t i = 0; i < n; i++) {
                unsigned before = capped_of(&a, ops[i].key);
                apply1(&a, ops[i], index);
                if (ops[i].kind != SL_BUDGET_SET)
                    continue;
                const struct sl_budget_entry *e = sl_budget_find(&a, ops[i].key);
                if (!e)
                    continue;
                unsigned after = sl_budget_capped(e), usable = e->budget - e->reserve;
                assert_true(after <= (before > usable ? before : usable));
                sets++;
                grew += after > before;
            }
            check_table(&a);
            /* b: the same ops as one batch at the same index. */
            assert_int_equal(sl_budget_apply(&b, ops, n, index), 0);
        }
        /* Op by op or batched, the same bytes; and the JSON form parses back to them. */
        char *ja = table_json(&a), *jb = table_json(&b);
        assert_string_equal(ja, jb);
        struct sl_budget_table c;
        char err[128];
        assert_int_equal(sl_budget_table_parse(ja, strlen(ja), &c, err, sizeof err), 0);
        char *jc = table_json(&c);
        assert_string_equal(ja, jc);
        free(ja);
        free(jb);
        free(jc);
        sl_budget_table_free(&c);
        sl_budget_table_free(&a);
        sl_budget_table_free(&b);
    }
    /* The walk exercised both outcomes. */
    assert_true(sets > 10000);
    assert_true(grew > 1000);
}

/* What nodes really hold, under the protocol the leader follows: a node opens connections only up
 * to its committed quota and closes them whenever it likes; a CONFIRM carries the index of a
 * report in which the node held no more than its quota; a REVOKE follows fencing (the node then
 * holds nothing). Whatever the order, no node ever holds more than its cap. */
static unsigned quota_or_cap(const struct sl_budget_table *t, const char *key, uint64_t node,
                             int cap)
{
    const struct sl_budget_entry *e = sl_budget_find(t, key);
    const struct sl_budget_holder *h = e ? sl_budget_holder_of(e, node) : NULL;
    return h ? (cap ? h->cap : h->quota) : 0;
}

static void test_random_holdings_within_cap(void **state)
{
    static const char *const keys[] = {K1, K2};
    enum { NODES = 4 };
    rng_state = 42;
    size_t confirms = 0, over_quota = 0;
    for (int run = 0; run < 1000; run++) {
        struct sl_budget_table t;
        sl_budget_table_init(&t);
        unsigned held[2][NODES + 1] = {{0}};
        struct report {
            int key;
            uint64_t node, applied; /* the Raft index the node had applied when it reported */
        } reports[64];
        size_t n_reports = 0;
        for (uint64_t index = 1; index <= 60; index++) {
            for (int k = 0; k < 2; k++) {
                for (uint64_t n = 1; n <= NODES; n++) {
                    unsigned q = quota_or_cap(&t, keys[k], n, 0), *h = &held[k][n];
                    switch (below(4)) {
                    case 0:
                        if (*h < q)
                            *h += below(q - *h + 1);
                        break;
                    case 1: *h -= below(*h + 1); break;
                    case 2:
                        if (*h <= q && n_reports < 64)
                            reports[n_reports++] = (struct report){k, n, index - 1};
                        break;
                    default: break;
                    }
                    over_quota += *h > q;
                }
            }
            struct sl_budget_op op;
            const char *key = keys[below(2)];
            uint64_t node = 1 + below(NODES);
            unsigned r = below(100);
            if (r < 10) {
                op = op_limit(key, below(60), 1 + below(100), below(5));
            } else if (r < 55) {
                op = op_set(key, node, below(30));
            } else if (r < 90 && n_reports > 0) {
                size_t i = below((unsigned)n_reports);
                op = op_confirm(keys[reports[i].key], reports[i].node, reports[i].applied);
                reports[i] = reports[--n_reports];
                confirms++;
            } else if (r < 95) {
                held[0][node] = held[1][node] = 0; /* fenced at the database */
                op = op_revoke(node);
            } else {
                op = op_forget(key);
            }
            apply1(&t, op, index);
            for (int k = 0; k < 2; k++)
                for (uint64_t n = 1; n <= NODES; n++)
                    assert_true(held[k][n] <= quota_or_cap(&t, keys[k], n, 1));
        }
        sl_budget_table_free(&t);
    }
    /* Shrinks left nodes above their quota (the case caps exist for), and confirms happened. */
    assert_true(over_quota > 1000);
    assert_true(confirms > 10000);
}

static void test_determinism(void **state)
{
    struct sl_budget_table start;
    sl_budget_table_init(&start);
    struct sl_budget_op setup_ops[] = {op_limit(K1, 60, 50, 1), op_limit(K2, 20, 100, 0),
                                       op_set(K1, 2, 10), op_set(K2, 4, 3), op_renew(2, 1)};
    assert_int_equal(sl_budget_apply(&start, setup_ops, 5, 7), 0);
    char *s = table_json(&start);

    rng_state = 7;
    struct sl_budget_op ops[200];
    for (size_t i = 0; i < 200; i++)
        ops[i] = random_op(9);
    char *out[2];
    for (int k = 0; k < 2; k++) {
        struct sl_budget_table t;
        char err[128];
        assert_int_equal(sl_budget_table_parse(s, strlen(s), &t, err, sizeof err), 0);
        assert_int_equal(sl_budget_apply(&t, ops, 200, 9), 0);
        out[k] = table_json(&t);
        sl_budget_table_free(&t);
    }
    assert_string_equal(out[0], out[1]);
    /* Applying nothing changes nothing. */
    assert_int_equal(sl_budget_apply(&start, NULL, 0, 10), 0);
    char *s2 = table_json(&start);
    assert_string_equal(s, s2);
    free(s2);
    free(out[0]);
    free(out[1]);
    free(s);
    sl_budget_table_free(&start);
}

/* --- JSON codecs ------------------------------------------------------------------------------ */

static const char spec_ops[] =
    "{\"ops\":[{\"key\":\"" K1 "\",\"max_connections\":60,\"op\":\"limit\",\"percent\":50,"
    "\"reserve\":1},{\"key\":\"" K1 "\",\"node\":2,\"op\":\"set\",\"quota\":10},{\"applied\":123,"
    "\"key\":\"" K1 "\",\"node\":2,\"op\":\"confirm\"},{\"node\":2,\"op\":\"renew\",\"seq\":77},"
    "{\"node\":3,\"op\":\"revoke\"},{\"key\":\"" K1 "\",\"op\":\"forget\"}]}";

static void assert_op_equal(const struct sl_budget_op *a, const struct sl_budget_op *b)
{
    assert_int_equal(a->kind, b->kind);
    assert_string_equal(a->key, b->key);
    assert_true(a->node == b->node);
    assert_int_equal(a->max_connections, b->max_connections);
    assert_int_equal(a->percent, b->percent);
    assert_int_equal(a->reserve, b->reserve);
    assert_int_equal(a->quota, b->quota);
    assert_true(a->applied == b->applied);
    assert_true(a->seq == b->seq);
}

static void test_ops_json_round_trip(void **state)
{
    struct sl_budget_op ops[] = {
        op_limit(K1, 60, 50, 1), op_set(K1, 2, 10), op_confirm(K1, 2, 123),
        op_renew(2, 77),         op_revoke(3),      op_forget(K1),
    };
    char *text = sl_budget_ops_json(ops, 6);
    assert_non_null(text);
    assert_string_equal(text, spec_ops);

    struct sl_budget_op *back;
    size_t n;
    char err[128];
    assert_int_equal(sl_budget_ops_parse(text, strlen(text), &back, &n, err, sizeof err), 0);
    assert_int_equal(n, 6);
    for (size_t i = 0; i < n; i++)
        assert_op_equal(&ops[i], &back[i]);
    free(back);
    free(text);

    /* Field order and whitespace do not matter to the parser. */
    const char loose[] = " { \"ops\" : [ { \"quota\": 0, \"node\": 9223372036854775807, "
                         "\"key\": \"a\", \"op\": \"set\" } ] } ";
    assert_int_equal(sl_budget_ops_parse(loose, strlen(loose), &back, &n, err, sizeof err), 0);
    assert_int_equal(n, 1);
    assert_true(back[0].node == INT64_MAX);
    assert_string_equal(back[0].key, "a");
    free(back);

    /* Empty ops. */
    assert_int_equal(sl_budget_ops_parse("{\"ops\":[]}", 10, &back, &n, err, sizeof err), 0);
    assert_int_equal(n, 0);
    assert_non_null(back);
    free(back);
    text = sl_budget_ops_json(NULL, 0);
    assert_string_equal(text, "{\"ops\":[]}");
    free(text);
}

static void expect_ops_error(const char *json, const char *reason)
{
    struct sl_budget_op *ops = NULL;
    size_t n = 99;
    char err[160] = "";
    assert_int_equal(sl_budget_ops_parse(json, strlen(json), &ops, &n, err, sizeof err), -1);
    if (!strstr(err, reason))
        fail_msg("%s: got \"%s\", expected \"%s\"", json, err, reason);
    assert_null(strchr(err, '\n'));
    assert_null(ops);
    assert_int_equal(n, 99);
}

#define SET_OP(rest) "{\"ops\":[{\"op\":\"renew\",\"node\":1,\"seq\":1},{\"op\":\"set\"," rest "}]}"

static void test_ops_parse_errors(void **state)
{
    expect_ops_error("", "not JSON");
    expect_ops_error("{\"ops\":[]", "not JSON");
    expect_ops_error("[]", "body: not an object");
    expect_ops_error("{}", "body.ops: missing");
    expect_ops_error("{\"ops\":[],\"x\":1}", "body: unknown field \"x\"");
    expect_ops_error("{\"ops\":{}}", "ops: not an array");
    expect_ops_error("{\"ops\":[],\"ops\":[]}", "not JSON");
    expect_ops_error("{\"ops\":[1]}", "ops[0]: not an object");
    expect_ops_error("{\"ops\":[{}]}", "ops[0].op: missing");
    expect_ops_error("{\"ops\":[{\"op\":7}]}", "ops[0].op: missing or not a string");
    expect_ops_error("{\"ops\":[{\"op\":\"grow\"}]}", "ops[0].op: unknown op \"grow\"");
    expect_ops_error("{\"ops\":[{\"op\":\"revoke\\nx\"}]}", "unknown op \"revoke?x\"");
    expect_ops_error(SET_OP("\"key\":\"a\",\"node\":1"), "ops[1].quota: missing");
    expect_ops_error(SET_OP("\"key\":\"a\",\"node\":1,\"quota\":1,\"seq\":1"),
                     "ops[1]: unknown field \"seq\"");
    expect_ops_error(SET_OP("\"key\":\"a\",\"node\":1,\"quota\":1,\"node\":2"), "not JSON");
    expect_ops_error(SET_OP("\"key\":\"a\",\"node\":0,\"quota\":1"), "ops[1].node: expected");
    expect_ops_error(SET_OP("\"key\":\"a\",\"node\":-1,\"quota\":1"), "ops[1].node: expected");
    expect_ops_error(SET_OP("\"key\":\"a\",\"node\":\"1\",\"quota\":1"), "ops[1].node: expected");
    expect_ops_error(SET_OP("\"key\":\"a\",\"node\":1.0,\"quota\":1"), "ops[1].node: expected");
    expect_ops_error(SET_OP("\"key\":\"a\",\"node\":1,\"quota\":1000001"),
                     "ops[1].quota: expected an integer in 0..1000000");
    expect_ops_error(SET_OP("\"key\":\"a\",\"node\":1,\"quota\":null"), "ops[1].quota: expected");
    expect_ops_error(SET_OP("\"key\":\"a b\",\"node\":1,\"quota\":1"), "ops[1].key: expected");
    expect_ops_error(SET_OP("\"key\":\"\",\"node\":1,\"quota\":1"), "ops[1].key: expected");
    expect_ops_error(SET_OP("\"key\":5,\"node\":1,\"quota\":1"), "ops[1].key: expected");
    expect_ops_error(SET_OP("\"key\":\"a\\u0000b\",\"node\":1,\"quota\":1"), "not JSON");
    expect_ops_error("{\"ops\":[{\"op\":\"limit\",\"key\":\"a\",\"max_connections\":10,"
                     "\"percent\":0,\"reserve\":0}]}",
                     "ops[0].percent: expected an integer in 1..100");
    expect_ops_error("{\"ops\":[{\"op\":\"limit\",\"key\":\"a\",\"max_connections\":10,"
                     "\"percent\":101,\"reserve\":0}]}",
                     "ops[0].percent: expected");
    expect_ops_error("{\"ops\":[{\"op\":\"limit\",\"key\":\"a\",\"max_connections\":1000001,"
                     "\"percent\":1,\"reserve\":0}]}",
                     "ops[0].max_connections: expected");
    expect_ops_error("{\"ops\":[{\"op\":\"limit\",\"key\":\"a\",\"max_connections\":10,"
                     "\"percent\":1}]}",
                     "ops[0].reserve: missing");
    expect_ops_error("{\"ops\":[{\"op\":\"confirm\",\"key\":\"a\",\"node\":1,\"applied\":-1}]}",
                     "ops[0].applied: expected");
    expect_ops_error("{\"ops\":[{\"op\":\"renew\",\"node\":1,\"seq\":0}]}",
                     "ops[0].seq: expected an integer in 1..9223372036854775807");
    expect_ops_error("{\"ops\":[{\"op\":\"renew\",\"node\":1,\"seq\":9223372036854775808}]}",
                     "not JSON");
    expect_ops_error("{\"ops\":[{\"op\":\"revoke\",\"node\":1,\"key\":\"a\"}]}",
                     "ops[0]: unknown field \"key\"");
    expect_ops_error("{\"ops\":[{\"op\":\"forget\"}]}", "ops[0].key: missing");

    /* A 201-byte key is one too many. */
    char key[SL_BUDGET_KEY_MAX + 2];
    memset(key, 'k', sizeof key - 1);
    key[sizeof key - 1] = '\0';
    char json[400];
    snprintf(json, sizeof json, "{\"ops\":[{\"op\":\"forget\",\"key\":\"%s\"}]}", key);
    expect_ops_error(json, "ops[0].key: expected");
    key[SL_BUDGET_KEY_MAX] = '\0';
    snprintf(json, sizeof json, "{\"ops\":[{\"op\":\"forget\",\"key\":\"%s\"}]}", key);
    struct sl_budget_op *ops;
    size_t n;
    char err[160];
    assert_int_equal(sl_budget_ops_parse(json, strlen(json), &ops, &n, err, sizeof err), 0);
    assert_int_equal(strlen(ops[0].key), SL_BUDGET_KEY_MAX);
    free(ops);
}

/* At most SL_BUDGET_OPS_MAX ops in one body. */
static void test_ops_count_limit(void **state)
{
    struct sl_budget_op *many = calloc(SL_BUDGET_OPS_MAX + 1, sizeof *many);
    assert_non_null(many);
    for (size_t i = 0; i <= SL_BUDGET_OPS_MAX; i++)
        many[i] = op_revoke(1 + i);
    char *text = sl_budget_ops_json(many, SL_BUDGET_OPS_MAX);
    struct sl_budget_op *ops;
    size_t n;
    char err[160];
    assert_int_equal(sl_budget_ops_parse(text, strlen(text), &ops, &n, err, sizeof err), 0);
    assert_int_equal(n, SL_BUDGET_OPS_MAX);
    free(ops);
    free(text);
    text = sl_budget_ops_json(many, SL_BUDGET_OPS_MAX + 1);
    assert_int_equal(sl_budget_ops_parse(text, strlen(text), &ops, &n, err, sizeof err), -1);
    assert_string_equal(err, "ops: 4097 ops, at most 4096");
    free(text);
    free(many);
}

static const char spec_table[] =
    "{\"entries\":{\"" K1 "\":{\"budget\":30,\"holders\":{\"2\":{\"cap\":10,\"index\":12,"
    "\"quota\":10}},\"index\":12,\"max_connections\":60,\"percent\":50,\"reserve\":1}},"
    "\"leases\":{\"2\":{\"index\":5,\"seq\":77}}}";

static void test_table_json_round_trip(void **state)
{
    struct sl_budget_table t;
    sl_budget_table_init(&t);
    char *s = table_json(&t);
    assert_string_equal(s, "{\"entries\":{},\"leases\":{}}");
    free(s);

    apply1(&t, op_renew(2, 77), 5);
    apply1(&t, op_limit(K1, 60, 50, 1), 11);
    apply1(&t, op_set(K1, 2, 10), 12);
    s = table_json(&t);
    assert_string_equal(s, spec_table);
    free(s);
    sl_budget_table_free(&t);

    /* A bigger table: node ids sort as numbers in memory, as strings in the JSON. */
    struct sl_budget_op ops[] = {
        op_limit(K2, 500, 100, 3), op_limit(K1, 100, 100, 0), op_set(K1, 10, 4), op_set(K1, 9, 5),
        op_set(K2, 10, 6),         op_set(K1, 9, 1),          op_renew(10, 3),   op_renew(9, 4),
        op_renew(100, 1)};
    assert_int_equal(sl_budget_apply(&t, ops, sizeof ops / sizeof ops[0], 42), 0);
    s = table_json(&t);
    char err[128];
    struct sl_budget_table u;
    assert_int_equal(sl_budget_table_parse(s, strlen(s), &u, err, sizeof err), 0);
    assert_int_equal(u.n_entries, 2);
    assert_string_equal(u.entries[0].key, K1);
    assert_true(u.entries[0].holders[0].node == 9 && u.entries[0].holders[1].node == 10);
    assert_holder(&u, K1, 9, 1, 5, 42);
    assert_int_equal(u.n_leases, 3);
    assert_true(u.leases[0].node == 9 && u.leases[2].node == 100);
    assert_true(sl_budget_max_index(&u) == 42);
    char *s2 = table_json(&u);
    assert_string_equal(s, s2);
    free(s);
    free(s2);
    sl_budget_table_free(&t);
    sl_budget_table_free(&u);
}

static void expect_table_error(const char *json, const char *reason)
{
    struct sl_budget_table t;
    char err[160] = "";
    assert_int_equal(sl_budget_table_parse(json, strlen(json), &t, err, sizeof err), -1);
    if (!strstr(err, reason))
        fail_msg("%s: got \"%s\", expected \"%s\"", json, err, reason);
    assert_int_equal(t.n_entries, 0);
    assert_null(t.entries);
    assert_null(t.leases);
}

#define ENTRY(body)  "{\"entries\":{\"k\":" body "},\"leases\":{}}"
#define LIMITS       "\"budget\":30,\"index\":12,\"max_connections\":60,\"percent\":50,\"reserve\":1"
#define HOLDERS(h)   ENTRY("{" LIMITS ",\"holders\":{" h "}}")
#define LEASES(body) "{\"entries\":{},\"leases\":{" body "}}"

static void test_table_parse_errors(void **state)
{
    expect_table_error("{", "not JSON");
    expect_table_error("[]", "table: not an object");
    expect_table_error("{\"entries\":{}}", "table.leases: missing");
    expect_table_error("{\"entries\":{},\"leases\":{},\"x\":{}}", "table: unknown field");
    expect_table_error("{\"entries\":[],\"leases\":{}}", "must be objects");
    expect_table_error("{\"entries\":{\"a b\":{}},\"leases\":{}}", "entries: invalid key");
    expect_table_error(ENTRY("{" LIMITS "}"), "entries.k.holders: missing");
    expect_table_error(ENTRY("{\"budget\":29,\"holders\":{},\"index\":12,\"max_connections\":60,"
                             "\"percent\":50,\"reserve\":1}"),
                       "entries.k.budget: expected an integer in 30..30");
    expect_table_error(ENTRY("{\"budget\":30,\"holders\":{},\"index\":12,\"max_connections\":60,"
                             "\"percent\":50,\"reserve\":31}"),
                       "entries.k.reserve: expected an integer in 0..30");
    expect_table_error(ENTRY("{\"budget\":0,\"holders\":{},\"index\":12,\"max_connections\":60,"
                             "\"percent\":0,\"reserve\":0}"),
                       "entries.k.percent");
    expect_table_error(ENTRY("{" LIMITS ",\"holders\":[]}"), "entries.k.holders: not an object");
    expect_table_error(HOLDERS("\"02\":{\"cap\":1,\"index\":1,\"quota\":1}"), "bad node id \"02\"");
    expect_table_error(HOLDERS("\"0\":{\"cap\":1,\"index\":1,\"quota\":1}"), "bad node id");
    expect_table_error(HOLDERS("\"x\":{\"cap\":1,\"index\":1,\"quota\":1}"), "bad node id");
    expect_table_error(HOLDERS("\"9223372036854775808\":{\"cap\":1,\"index\":1,\"quota\":1}"),
                       "bad node id");
    expect_table_error(HOLDERS("\"2\":{\"cap\":0,\"index\":1,\"quota\":0}"),
                       "entries.k.holders.2.cap: expected an integer in 1..1000000");
    expect_table_error(HOLDERS("\"2\":{\"cap\":3,\"index\":1,\"quota\":4}"),
                       "entries.k.holders.2.quota: expected an integer in 0..3");
    expect_table_error(HOLDERS("\"2\":{\"cap\":3,\"index\":13,\"quota\":3}"),
                       "entries.k.holders.2.index: expected an integer in 0..12");
    expect_table_error(HOLDERS("\"2\":{\"cap\":3,\"quota\":3}"),
                       "entries.k.holders.2.index: missing");
    expect_table_error(HOLDERS("\"2\":{\"cap\":3,\"index\":1,\"quota\":3,\"x\":1}"),
                       "unknown field \"x\"");
    /* A second entry failing after a first one with holders: nothing leaks (ASan checks). */
    expect_table_error("{\"entries\":{\"a\":{" LIMITS ",\"holders\":{\"2\":{\"cap\":1,\"index\":1,"
                       "\"quota\":1}}},\"b\":{" LIMITS ",\"holders\":{\"3\":{}}}},\"leases\":{}}",
                       "entries.b.holders.3.cap: missing");
    expect_table_error(LEASES("\"2\":{\"index\":1,\"seq\":0}"), "leases.2.seq: expected");
    expect_table_error(LEASES("\"2\":{\"index\":-1,\"seq\":1}"), "leases.2.index: expected");
    expect_table_error(LEASES("\"02\":{\"index\":1,\"seq\":1}"), "leases: bad node id");
    expect_table_error(LEASES("\"2\":{\"seq\":1}"), "leases.2.index: missing");
    expect_table_error(LEASES("\"2\":5"), "leases.2: not an object");
}

static void test_key_valid(void **state)
{
    assert_true(sl_budget_key_valid("app/db-1.example_x:3306"));
    assert_true(sl_budget_key_valid("AZaz09._-/:"));
    assert_false(sl_budget_key_valid(""));
    assert_false(sl_budget_key_valid("a b"));
    assert_false(sl_budget_key_valid("a[::1]:3306"));
    assert_false(sl_budget_key_valid("caf\xc3\xa9"));
    char key[SL_BUDGET_KEY_MAX + 2];
    memset(key, 'a', sizeof key - 1);
    key[sizeof key - 1] = '\0';
    assert_false(sl_budget_key_valid(key));
    key[SL_BUDGET_KEY_MAX] = '\0';
    assert_true(sl_budget_key_valid(key));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_limit),
        cmocka_unit_test(test_grant_clamped_by_room),
        cmocka_unit_test(test_shrink_keeps_cap_until_confirm),
        cmocka_unit_test(test_limit_lowering_blocks_growth),
        cmocka_unit_test(test_revoke),
        cmocka_unit_test(test_renew),
        cmocka_unit_test(test_forget),
        cmocka_unit_test(test_invalid_ops_ignored),
        cmocka_unit_test(test_random_invariant),
        cmocka_unit_test(test_random_holdings_within_cap),
        cmocka_unit_test(test_determinism),
        cmocka_unit_test(test_ops_json_round_trip),
        cmocka_unit_test(test_ops_parse_errors),
        cmocka_unit_test(test_ops_count_limit),
        cmocka_unit_test(test_table_json_round_trip),
        cmocka_unit_test(test_table_parse_errors),
        cmocka_unit_test(test_key_valid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
