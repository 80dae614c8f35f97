/* libraft glue for the configuration state machine (raft/fsm.h): a struct raft_fsm whose apply,
 * snapshot and restore call sl_fsm_*. Private to raft/ (it includes <raft.h>); the rest of the node
 * will reach the store through raft/'s own interface.
 *
 * - FSM version 2: the snapshot buffer is ours (malloc) and freed in snapshot_finalize, so it does
 *   not depend on raft's allocator. Version 3 (async snapshots) is refused by raft_uv in 0.15.
 * - apply: libraft 0.15 passes no index; the entry being applied is raft_last_applied() + 1
 *   (shared/notes/raft.md, section 2). The result pointer is always NULL: raft drops it on every
 *   node but the proposer, so proposers read their outcome with sl_fsm_outcome(request id) instead.
 *   A storage failure returns RAFT_IOERR: raft retries the entry later rather than skip it.
 * - restore keeps LMDB when it already holds the snapshot's state or a later one (it is only ever
 *   written by committed entries, in order); it replaces it otherwise, in one transaction. */
#ifndef SL_RAFT_FSM_GLUE_H
#define SL_RAFT_FSM_GLUE_H

#include <raft.h>

#include "raft/fsm.h"

struct sl_fsm_glue {
    struct raft_fsm fsm; /* give &glue->fsm to raft_init or raft_fixture_grow */
    struct sl_fsm *store;
    struct raft *raft; /* set with sl_fsm_glue_bind before raft_start */
};

void sl_fsm_glue_init(struct sl_fsm_glue *g, struct sl_fsm *store);
void sl_fsm_glue_bind(struct sl_fsm_glue *g, struct raft *r);

#endif
