/* The leader's allocator of one database's connection budget: given what every node holds and
 * wants, the quotas the leader should propose next. Pure: no clock, no I/O, no allocation; the
 * same input always gives the same output, whatever the order of the nodes in the array.
 *
 * Each node has a committed `quota` (connections it may open) and `cap` (the most it may still
 * hold: cap >= quota while a shrink is unconfirmed, cap == quota once the node has confirmed it
 * closed the connections). The committed state machine keeps sum(cap) <= budget - reserve; this
 * planner never asks for more than that either, so its plan passes the state machine's clamp
 * unchanged when applied to the state it was computed from.
 *
 * Rules, in order:
 * 1. Usable U = budget - reserve (0 when reserve >= budget). Dead nodes (not reporting) keep their
 *    quota and cap untouched until the leader revokes them; their caps are not available:
 *    A = U - sum(cap of dead nodes) (0 when negative).
 * 2. An alive node's demand d = max(demand, waiting) (waiting can exceed a demand reported for an
 *    earlier window). It wants d + headroom, headroom = ceil(d * headroom_pct / 100), at least 1
 *    when d > 0, so that it can grow between rounds; and at least `floor`.
 * 3. When the wants fit in A, each node's target is its want. Otherwise A is split in proportion
 *    to the wants, which are not capped at A (so the split is by demand even when every demand
 *    exceeds A), by largest remainder, ties to the lower node id; with minimums: a node with d > 0
 *    gets at least 1, every alive node at least `floor`. Proportional to demand is deliberate:
 *    every waiting client gets about the same share, and the busiest node holds most. When A
 *    cannot cover the minimums, nodes with d > 0 get 1 each in order of waiting desc, then node id
 *    asc, while A lasts; what is left raises nodes toward their floor one connection per node per
 *    pass, in the same order.
 * 4. Moves respect the caps. Free room F = U - sum(cap of all nodes) (0 when negative). A node
 *    whose target is below its quota shrinks to it at once (the room returns only after the node
 *    confirms, through its cap). Nodes whose target is above their quota grow in order of waiting
 *    desc, deficit (target - quota) desc, node id asc: each by min(deficit, cap - quota + F left),
 *    and F left shrinks by the part of the growth above the node's cap (growth up to its own cap
 *    costs nothing: the cap already counts it). So sum(max(out, cap)) <= max(U, sum(cap)).
 * With fixed demands, two rounds reach the targets: one to shrink, one (after the confirmations)
 * to grow. */
#ifndef SL_BUDGET_ALLOC_H
#define SL_BUDGET_ALLOC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Most nodes sl_alloc_plan handles (its scratch space is on the stack). */
#define SL_ALLOC_NODES_MAX 256

#define SL_ALLOC_FLOOR_DEFAULT        1
#define SL_ALLOC_HEADROOM_PCT_DEFAULT 25

struct sl_alloc_node {
    uint64_t node;       /* Raft id; distinct within one call */
    bool alive;          /* reported recently; dead nodes keep quota and cap untouched */
    unsigned demand;     /* connections wanted: peak of (in use + waiting borrowers) recently */
    unsigned waiting;    /* borrowers waiting right now */
    unsigned quota, cap; /* committed; cap >= quota */
};

struct sl_alloc_params {
    unsigned budget;       /* floor(@@max_connections * max_connections_percent / 100) */
    unsigned reserve;      /* kept out of every quota for the leader's own connection */
    unsigned floor;        /* an alive idle node keeps this many (SL_ALLOC_FLOOR_DEFAULT) */
    unsigned headroom_pct; /* grant demand + this % (SL_ALLOC_HEADROOM_PCT_DEFAULT) */
};

/* Fills out[i] with the quota nodes[i] should have next (dead nodes: their quota) and returns how
 * many differ from the committed quota. nodes and out are the caller's, n entries each, and are
 * used only during the call. More than SL_ALLOC_NODES_MAX nodes is a caller's error: nothing
 * moves (every out[i] = quota) and the result is 0. */
size_t sl_alloc_plan(const struct sl_alloc_params *p, const struct sl_alloc_node *nodes, size_t n,
                     unsigned *out);

#endif
