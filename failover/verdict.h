/* The leader's verdict on a proxy's writer, from the nodes' health observations (pure: no clock,
 * no I/O; the caller decides which observations are fresh).
 *
 * One node's failed checks are an observation, not a verdict: the writer counts as gone only when
 * a majority of the voters see it down (UNAVAILABLE) or demoted (read_only=1), so one proxy cut off
 * from the database cannot cause a failover. External mode (something else promotes a replica):
 * the new writer is the one other target a majority sees writable (read_only=0) and that no node
 * sees replicating; with none the verdict is to wait, with several it refuses to choose. */
#ifndef SL_FAILOVER_VERDICT_H
#define SL_FAILOVER_VERDICT_H

#include <stdbool.h>
#include <stddef.h>

#define SL_VERDICT_NODES_MAX 16

/* What one node's latest fresh report says of one target. */
enum sl_obs {
    SL_OBS_NONE,      /* no fresh report from that node, or it does not check that target */
    SL_OBS_DOWN,      /* UNAVAILABLE */
    SL_OBS_WRITABLE,  /* AVAILABLE, read_only=0 */
    SL_OBS_READ_ONLY, /* AVAILABLE, read_only=1 */
    SL_OBS_UP,        /* AVAILABLE, read_only not known */
};

struct sl_verdict_target {
    enum sl_obs obs[SL_VERDICT_NODES_MAX]; /* by node, the same node index in every target */
    int replicating[SL_VERDICT_NODES_MAX]; /* 1 seen replicating, 0 not, -1 unknown */
};

struct sl_verdict_input {
    size_t voters; /* Raft voters: a majority is voters / 2 + 1 */
    size_t nodes;  /* observers (<= SL_VERDICT_NODES_MAX) */
    const struct sl_verdict_target *targets;
    size_t n_targets;
    size_t writer; /* index of the committed writer in targets */
};

enum sl_verdict_kind { SL_VERDICT_KEEP, SL_VERDICT_SWITCH };

struct sl_verdict {
    enum sl_verdict_kind kind;
    size_t target;      /* SWITCH: the new writer */
    const char *why;    /* a short static explanation, for logs and events */
    size_t gone_votes;  /* nodes that see the writer down or read-only */
    size_t ready_votes; /* SWITCH: nodes that see the new writer writable */
    bool writer_gone;   /* a majority sees the writer down or read-only */
};

void sl_verdict_external(const struct sl_verdict_input *in, struct sl_verdict *out);

/* Managed mode, once the writer is gone: the replica to promote. Among the other targets that a
 * majority sees AVAILABLE, the one whose GTID position (gtids[t]) is at or ahead of every other
 * candidate's in every replication domain. SIZE_MAX when there is none, or when two candidates'
 * positions do not contain one another (then no choice is safe without a person). */
size_t sl_verdict_pick_replica(const struct sl_verdict_input *in, const char *const *gtids);

/* Compare GTID positions ("domain-server-seq" triples separated by commas, MariaDB's
 * @@gtid_current_pos): 1 when a is ahead (every domain of b is in a at an equal or higher
 * sequence, and a is not equal), -1 when b is ahead, 0 when equal, 2 when neither contains the
 * other or one is malformed. "" is the empty position. */
int sl_gtid_compare(const char *a, const char *b);

#endif
