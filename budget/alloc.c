/* The budget allocator; the rules are in alloc.h. */
#include "budget/alloc.h"

#include <limits.h>

/* One alive node while planning. */
struct slot {
    const struct sl_alloc_node *node;
    size_t index;        /* in the caller's arrays */
    unsigned demand;     /* max(demand, waiting) */
    unsigned want, min;  /* rules 2 and 3 */
    unsigned target;     /* rule 3's result */
    bool fixed;          /* held at its minimum by the proportional split */
    uint64_t key1, key2; /* sort keys of the current pass, both descending */
};

static unsigned sat_sub(unsigned a, unsigned b)
{
    return a > b ? a - b : 0;
}

/* key1 desc, key2 desc, node id asc: a total order since node ids are distinct. */
static bool goes_before(const struct slot *a, const struct slot *b)
{
    if (a->key1 != b->key1)
        return a->key1 > b->key1;
    if (a->key2 != b->key2)
        return a->key2 > b->key2;
    return a->node->node < b->node->node;
}

/* Insertion sort: a cluster has a handful of nodes. */
static void sort(struct slot **ord, size_t k)
{
    for (size_t i = 1; i < k; i++) {
        struct slot *x = ord[i];
        size_t j = i;
        for (; j > 0 && goes_before(x, ord[j - 1]); j--)
            ord[j] = ord[j - 1];
        ord[j] = x;
    }
}

/* Not capped at A: the wants are the weights of the proportional split, and capping them would
 * make every node whose demand exceeds A equal. Capped at UINT_MAX so rest * want fits 64 bits. */
static unsigned want_of(const struct sl_alloc_params *p, unsigned demand)
{
    uint64_t w = demand;
    if (demand > 0) {
        uint64_t headroom = ((uint64_t)demand * p->headroom_pct + 99) / 100;
        w += headroom > 0 ? headroom : 1;
    }
    if (w < p->floor)
        w = p->floor;
    return w < UINT_MAX ? (unsigned)w : UINT_MAX;
}

/* A cannot cover the minimums: 1 to each node with demand (waiting desc, id asc), then one more
 * per node and pass toward the minimums. */
static void split_minimums(struct slot *s, size_t m, unsigned avail, struct slot **ord)
{
    for (size_t k = 0; k < m; k++) {
        ord[k] = &s[k];
        s[k].key1 = s[k].node->waiting;
        s[k].key2 = 0;
        s[k].target = 0;
    }
    sort(ord, m);
    unsigned left = avail;
    for (size_t k = 0; k < m && left > 0; k++) {
        if (ord[k]->demand > 0) {
            ord[k]->target = 1;
            left--;
        }
    }
    /* Ends: the minimums add up to at least avail, and from level 2 on every pass raises each
     * node still below its minimum. */
    for (unsigned level = 1; left > 0; level++) {
        for (size_t k = 0; k < m && left > 0; k++) {
            struct slot *x = ord[k];
            if (x->target < level && x->target < x->min) {
                x->target++;
                left--;
            }
        }
    }
}

/* The wants exceed A but the minimums fit: A in proportion to the wants. A node whose share is
 * below its minimum is held there and the rest is split again among the others (each such hold
 * lowers everyone else's share, so repeat until none is added). */
static void split_proportional(struct slot *s, size_t m, unsigned avail, uint64_t sum_want,
                               struct slot **ord)
{
    uint64_t rest = avail, weight = sum_want;
    bool held;
    do {
        held = false;
        for (size_t k = 0; k < m; k++) {
            struct slot *x = &s[k];
            /* floor(share) < min <=> share < min, min being an integer; rest * want < 2^64 */
            if (!x->fixed && rest * x->want / weight < x->min) {
                x->fixed = true;
                x->target = x->min;
                rest -= x->min;
                weight -= x->want;
                held = true;
            }
        }
    } while (held);

    /* Largest remainder: whole parts first, the units lost to rounding to the largest fractions
     * (same denominator, so the numerators compare), ties to the lower node id. */
    size_t k2 = 0;
    uint64_t given = 0;
    for (size_t k = 0; k < m; k++) {
        struct slot *x = &s[k];
        if (x->fixed)
            continue;
        x->target = (unsigned)(rest * x->want / weight);
        x->key1 = rest * x->want % weight;
        x->key2 = 0;
        given += x->target;
        ord[k2++] = x;
    }
    sort(ord, k2);
    for (size_t k = 0; given < rest; k++, given++)
        ord[k]->target++;
}

size_t sl_alloc_plan(const struct sl_alloc_params *p, const struct sl_alloc_node *nodes, size_t n,
                     unsigned *out)
{
    for (size_t i = 0; i < n; i++)
        out[i] = nodes[i].quota;
    if (n > SL_ALLOC_NODES_MAX)
        return 0;

    struct slot s[SL_ALLOC_NODES_MAX];
    struct slot *ord[SL_ALLOC_NODES_MAX];
    unsigned usable = sat_sub(p->budget, p->reserve);
    uint64_t caps = 0, dead_caps = 0;
    for (size_t i = 0; i < n; i++) {
        caps += nodes[i].cap;
        if (!nodes[i].alive)
            dead_caps += nodes[i].cap;
    }
    unsigned avail = usable > dead_caps ? (unsigned)(usable - dead_caps) : 0;

    /* Rules 2 and 3. */
    size_t m = 0;
    uint64_t sum_want = 0, sum_min = 0;
    for (size_t i = 0; i < n; i++) {
        const struct sl_alloc_node *nd = &nodes[i];
        if (!nd->alive)
            continue;
        struct slot *x = &s[m++];
        *x = (struct slot){.node = nd, .index = i};
        x->demand = nd->demand > nd->waiting ? nd->demand : nd->waiting;
        x->want = want_of(p, x->demand);
        x->min = x->demand > 0 ? 1 : 0;
        if (x->min < p->floor)
            x->min = p->floor; /* <= want, which counts the floor too */
        x->target = x->want;
        sum_want += x->want;
        sum_min += x->min;
    }
    if (sum_want > avail) {
        if (sum_min >= avail)
            split_minimums(s, m, avail, ord);
        else
            split_proportional(s, m, avail, sum_want, ord);
    }

    /* Rule 4. */
    uint64_t room = usable > caps ? usable - caps : 0;
    size_t growing = 0;
    for (size_t k = 0; k < m; k++) {
        struct slot *x = &s[k];
        if (x->target < x->node->quota) {
            out[x->index] = x->target;
        } else if (x->target > x->node->quota) {
            x->key1 = x->node->waiting;
            x->key2 = x->target - x->node->quota;
            ord[growing++] = x;
        }
    }
    sort(ord, growing);
    for (size_t k = 0; k < growing; k++) {
        struct slot *x = ord[k];
        unsigned spare = sat_sub(x->node->cap, x->node->quota);
        uint64_t grant = x->key2 < spare + room ? x->key2 : spare + room;
        out[x->index] = x->node->quota + (unsigned)grant;
        if (grant > spare)
            room -= grant - spare;
    }

    size_t moved = 0;
    for (size_t i = 0; i < n; i++)
        moved += out[i] != nodes[i].quota;
    return moved;
}
