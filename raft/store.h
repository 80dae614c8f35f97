/* The consensus-backed configuration store: the only interface the rest of the node uses to reach
 * the replicated configuration. It runs libraft 0.15 (raft_uv disk + TCP backend) on the caller's
 * libuv loop and applies committed commands (raft/cmd.h) to the LMDB state machine (raft/fsm.h).
 * No folder but raft/ includes <raft.h> or <lmdb.h>; this header includes neither.
 *
 * The process must ignore SIGPIPE: raft_uv writes to peers' sockets that may have closed.
 *
 * Life cycle (all calls on the loop's thread; no function here is thread-safe):
 *   sl_store_open       validate options, open LMDB and raft_uv, raft_init. Nothing listens yet.
 *   sl_store_bootstrap  only for "init cluster": write the initial voter set. Fails with
 *                       SL_STORE_EXISTS when the data dir already holds Raft state, so a restarted
 *                       or wiped-and-reused node is never bootstrapped by accident.
 *   sl_store_start      load the log and snapshot (replaying committed entries into LMDB, which
 *                       skips what it already holds), listen on the raft port, join the cluster.
 *                       A node that was neither bootstrapped nor ever a member waits, with an
 *                       empty configuration, until a leader adds it (sl_store_add on the leader).
 *   sl_store_close      asynchronous; required after every successful sl_store_open, started or
 *                       not. Pending callbacks fire with SL_STORE_CLOSING, then the close callback.
 *
 * Callbacks run on the loop, never from inside the calling function (a call that fails returns
 * its status and its callback never runs, as in libuv). A callback may call any function here,
 * including sl_store_close: closing is deferred to a timer, and the store is freed only once all
 * its handles are closed, right before the close callback runs.
 *
 * Guarantees.
 *   - Safety comes from Raft's committed order alone: the configuration on every node is the
 *     result of applying the same committed commands in the same order (raft/fsm.h). A command
 *     takes effect at most once even when proposed several times (same request id): the state
 *     machine remembers request ids and their outcomes.
 *   - SL_STORE_OK from sl_store_propose means committed by a quorum and applied on this node; the
 *     result carries the Raft index (the resource's new revision). Any other status means the
 *     command did not take effect, except SL_STORE_UNKNOWN and SL_STORE_CLOSING: then it may
 *     still commit later, and retrying with the same request id (sl_store_change.req_id) on the
 *     current leader is always safe.
 *   - After RAFT_LEADERSHIPLOST (or a disk error) on the proposing leader the entry may still
 *     commit (shared/notes/raft.md, pitfall 5), so the store does not fail the proposal at once:
 *     it waits until this node has applied the entry's index, then reads the outcome by request
 *     id. Found: the real outcome. Not found: the entry was replaced and can never commit; the
 *     store proposes the same bytes again when this node is leader, else answers NOT_LEADER.
 *     When neither happens within outcome_timeout_ms the answer is SL_STORE_UNKNOWN. The state
 *     machine keeps the last 10000 request outcomes; a retry older than that could apply twice.
 *   - Linearizable reads: sl_store_barrier on the leader, then read. Plain reads (get, list,
 *     dump) are this node's applied state: possibly stale, never uncommitted.
 *   - A new leader commits a barrier entry before the store reports it ready
 *     (sl_store_info.leader_ready): libraft 0.15 appends no entry when it wins an election, so
 *     entries of earlier terms would otherwise stay uncommitted until the next write.
 *
 * Clock. Only libuv's monotonic clock (uv_now) is used, and only for timeouts: Raft's election
 * and heartbeat timers and outcome_timeout_ms. No decision depends on wall-clock time.
 *
 * Failure model. Crash-stop nodes, honest disks (a write that returned is on disk), messages that
 * may be lost, delayed or reordered but not forged: the raft TCP port has no TLS and no
 * authentication, so bind it to a private network. Known libraft 0.15 defects we accept for a
 * low-write configuration store (shared/notes/raft.md, section 5): a failed disk write on the
 * leader (ENOSPC, EIO, AIO limit) crashes the process, so keep free space and run under a
 * supervisor; entries of earlier terms may be committed by counting replicas (Raft's Figure 8
 * hazard, fixed in 0.17.1); elections may count unpersisted entries (0.18.0); rolling back an
 * uncommitted membership change after log compaction can crash a follower (keep membership
 * changes rare and snapshot_trailing large); a double free at close was reported (#341), so the
 * process should exit soon after closing. A loop stalled longer than the election timeout loses
 * leadership: keep every callback on this loop short. */
#ifndef SL_RAFT_STORE_H
#define SL_RAFT_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "raft/cmd.h"
#include "raft/fsm.h"

/* "255.255.255.255:65535" and its NUL fit. */
#define SL_STORE_ADDR_MAX 32

enum sl_store_status {
    SL_STORE_OK = 0,
    SL_STORE_NOT_LEADER = -1, /* this node is not the leader (or is handing leadership over) */
    SL_STORE_BUSY = -2,       /* a membership change or leadership transfer is in flight */
    SL_STORE_INVALID = -3,    /* bad argument (name, address, unknown member, ...) */
    SL_STORE_UNKNOWN = -4,    /* outcome unknown: may still take effect; retry the same request */
    SL_STORE_CLOSING = -5,    /* the store is closing; as UNKNOWN for a pending proposal */
    SL_STORE_EXISTS = -6,     /* bootstrap: the data dir already holds Raft state */
    SL_STORE_ERROR = -7,      /* Raft, disk or memory failure (logged) */
};

/* A short constant name for a status ("ok", "not_leader", ...). */
const char *sl_store_status_name(int status);

enum sl_store_role {
    SL_STORE_VOTER = 1,   /* replicates and counts for quorum */
    SL_STORE_STANDBY = 2, /* replicates, does not vote */
    SL_STORE_SPARE = 3,   /* member without replication */
};

enum sl_store_state {
    SL_STORE_UNAVAILABLE = 0, /* not started or closing */
    SL_STORE_FOLLOWER = 1,
    SL_STORE_CANDIDATE = 2,
    SL_STORE_LEADER = 3,
};

struct sl_store_options {
    uint64_t id;                  /* this node's Raft id, > 0 */
    const char *address;          /* this node's Raft address, IPv4 "a.b.c.d:port" (no hostnames) */
    const char *data_dir;         /* existing directory; "raft" and "lmdb" are created inside */
    unsigned election_timeout_ms; /* 0 = 1000 */
    unsigned heartbeat_timeout_ms; /* 0 = election / 10; must be below the election timeout */
    unsigned snapshot_threshold;   /* 0 = 1024 applied entries between snapshots */
    unsigned snapshot_trailing;    /* 0 = 2048 entries kept behind a snapshot */
    unsigned outcome_timeout_ms;   /* 0 = 10 election timeouts; see "Guarantees" */
    size_t lmdb_map_size;          /* 0 = the state machine's default */
};

struct sl_store_member {
    uint64_t id;
    char address[SL_STORE_ADDR_MAX];
    enum sl_store_role role;
};

struct sl_store_info {
    uint64_t id;
    enum sl_store_state state;
    bool leader_ready; /* leader, and its post-election barrier has been applied */
    uint64_t term;
    uint64_t last_index;    /* last entry in the local log */
    uint64_t commit_index;  /* highest entry known to be committed */
    uint64_t applied_index; /* highest entry applied here (commands, barriers, configurations) */
    uint64_t leader_id;     /* 0 when no leader is known */
    char leader_address[SL_STORE_ADDR_MAX]; /* the leader's Raft address, "" when unknown */
};

struct sl_store;

/* Returns SL_STORE_OK with *out set, or a negative status with a message in err; nothing is left
 * to clean up on failure. */
int sl_store_open(struct sl_store **out, uv_loop_t *loop, const struct sl_store_options *opt,
                  char *err, size_t errlen);
/* Write the initial configuration: voters[0..n) must include this node. Before sl_store_start. */
int sl_store_bootstrap(struct sl_store *s, const struct sl_store_member *voters, size_t n);
int sl_store_start(struct sl_store *s);

typedef void (*sl_store_close_cb)(void *arg);
/* Close everything; close_cb(arg) runs once the store is freed (the loop must keep running until
 * then). Calling it twice is a bug. */
void sl_store_close(struct sl_store *s, sl_store_close_cb close_cb, void *arg);

/* --- Writes ------------------------------------------------------------------------------- */

struct sl_store_change {
    enum sl_raft_op op;
    enum sl_raft_kind kind;
    const char *name;      /* resource name; the proxy for a target */
    const char *id;        /* target id; NULL for every other kind */
    const char *body;      /* JSON object text for PUT (validated by the caller), NULL for DELETE */
    uint64_t expected_rev; /* 0 = unconditional, else compare-and-set on the revision */
    const uint8_t *req_id; /* SL_RAFT_REQID_LEN bytes to retry a request; NULL = a fresh one */
};

struct sl_store_result {
    int status; /* SL_STORE_OK: outcome, index and revision are set */
    struct sl_fsm_result fsm;
    uint8_t req_id[SL_RAFT_REQID_LEN]; /* to retry after UNKNOWN or CLOSING */
    uint64_t leader_id;                /* NOT_LEADER: the known leader, 0 if none */
    char leader_address[SL_STORE_ADDR_MAX];
};

typedef void (*sl_store_propose_cb)(struct sl_store *s, const struct sl_store_result *r, void *arg);

/* Propose one change through this node, which must be the leader. Returns SL_STORE_OK (cb will
 * run exactly once), SL_STORE_NOT_LEADER (use sl_store_info for the leader), SL_STORE_INVALID
 * (the change cannot be encoded), SL_STORE_CLOSING or SL_STORE_ERROR. The change's strings are
 * copied. */
int sl_store_propose(struct sl_store *s, const struct sl_store_change *c, sl_store_propose_cb cb,
                     void *arg);

typedef void (*sl_store_done_cb)(struct sl_store *s, int status, void *arg);

/* cb(SL_STORE_OK) once every entry committed before the call is applied here, through a Raft
 * barrier entry (leader only). NOT_LEADER when leadership was lost meanwhile. */
int sl_store_barrier(struct sl_store *s, sl_store_done_cb cb, void *arg);

/* --- Membership (leader only; one change or transfer at a time, else SL_STORE_BUSY) ---------- */

/* Add a node (it must be started, not bootstrapped) as a spare, then, for VOTER or STANDBY,
 * assign that role; promotion to voter waits until the node has caught up. cb gets OK, or
 * UNKNOWN when leadership was lost mid-way (check sl_store_members), or ERROR (for example the
 * node never caught up). */
int sl_store_add(struct sl_store *s, uint64_t id, const char *address, enum sl_store_role role,
                 sl_store_done_cb cb, void *arg);
/* Remove a node. The removed node is not told: stop it (it would keep campaigning, harmlessly
 * thanks to pre-vote). Removing the leader itself makes it step down once committed. */
int sl_store_remove(struct sl_store *s, uint64_t id, sl_store_done_cb cb, void *arg);
/* Hand leadership to voter `id` (0 = the most up-to-date voter). cb gets OK when the target (or
 * some other node, for id 0) is leader, UNKNOWN when nothing changed within the election
 * timeout. Proposals are refused with NOT_LEADER while the transfer runs. */
int sl_store_transfer(struct sl_store *s, uint64_t id, sl_store_done_cb cb, void *arg);

/* --- Reads and notifications ------------------------------------------------------------- */

void sl_store_info(struct sl_store *s, struct sl_store_info *out);
/* The current Raft configuration (possibly not yet committed). Returns the number of members;
 * at most cap are written to out. */
size_t sl_store_members(struct sl_store *s, struct sl_store_member *out, size_t cap);

/* Pass-throughs to the state machine (raft/fsm.h, same return values): this node's applied
 * state. */
int sl_store_get(struct sl_store *s, enum sl_raft_kind kind, const char *name, const char *id,
                 char **json, uint64_t *revision);
int sl_store_list(struct sl_store *s, enum sl_raft_kind kind, const char *proxy, sl_fsm_list_cb cb,
                  void *arg);
int sl_store_dump(struct sl_store *s, char **out);
int sl_store_budget(struct sl_store *s, char **json);
/* One string field of a node's resource (named by its Raft id), malloc'd; NULL when the node, the
 * field or memory is missing. */
char *sl_store_node_field(struct sl_store *s, uint64_t node, const char *field);
int sl_store_outcome(struct sl_store *s, const uint8_t req_id[SL_RAFT_REQID_LEN],
                     struct sl_fsm_result *out);

/* Called on the loop after the applied index advances (commands, snapshot restores, barriers and
 * configuration entries alike), with the new applied index. Several applies in one loop
 * iteration give one call. NULL unregisters. */
typedef void (*sl_store_watch_cb)(struct sl_store *s, uint64_t applied_index, void *arg);
void sl_store_watch(struct sl_store *s, sl_store_watch_cb cb, void *arg);

#endif
