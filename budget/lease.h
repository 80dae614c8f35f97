/* Lease arithmetic (pure): how long a node may use a renewed lease on its own clock, and how long
 * the leader must assume it is still in use on its clock. docs/budget.md has the argument.
 *
 * The node anchors its lease on the moment it *sent* the report that a committed renewal answers;
 * the leader anchors on the moment it *received* that report (which is later in real time). With
 * every monotonic clock running at a rate within drift_pct of real time:
 *   node:   it closes everything by sent + lease * (100 - drift) / 100 - close_margin (its clock),
 *           which is at most lease - close_margin of real time after sending;
 *   leader: the lease is over for sure at received + lease * (100 + drift) / 100 (its clock),
 *           which is at least lease of real time after receiving.
 * So the database has dropped the node's connections before the leader may treat the quota as
 * free, and no two clocks are ever compared. */
#ifndef SL_BUDGET_LEASE_H
#define SL_BUDGET_LEASE_H

#include <stdint.h>

struct sl_lease_params {
    unsigned lease_ms;        /* > 0 */
    unsigned drift_pct;       /* < 100 */
    unsigned close_margin_ms; /* time the database needs to drop a closed connection */
};

/* Nanoseconds, from the send time of the renewed report, during which the node may hold
 * connections; 0 when the margin eats the whole lease. */
static inline uint64_t sl_lease_node_ns(const struct sl_lease_params *p)
{
    /* In nanoseconds, exact: ms * percent / 100 * 10^6 = ms * percent * 10^4. */
    uint64_t usable = (uint64_t)p->lease_ms * (100u - p->drift_pct) * 10000u;
    uint64_t margin = (uint64_t)p->close_margin_ms * 1000000u;
    return usable > margin ? usable - margin : 0;
}

/* Nanoseconds, from the leader's receipt of that report (or its own takeover), after which the
 * node's lease is over for sure. */
static inline uint64_t sl_lease_leader_ns(const struct sl_lease_params *p)
{
    /* Exact, never rounded down: the argument is tight at the worst clock rates. */
    return (uint64_t)p->lease_ms * (100u + p->drift_pct) * 10000u;
}

#endif
