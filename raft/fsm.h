/* The configuration state machine: committed Raft commands (raft/cmd.h) applied to LMDB.
 *
 * Storage: one LMDB environment in a directory, opened with MDB_NOMETASYNC. The Raft log is the
 * durable record; LMDB is a view that restore + replay can always rebuild, so losing the last
 * LMDB commit in a crash costs nothing but a replay. Named databases:
 *   meta           "applied" -> u64 index of the last command applied
 *   proxies, target_groups, secrets, nodes
 *                  name -> u64 revision + JSON text
 *   targets        proxy "\0" id -> u64 revision + JSON text
 *   requests       request id -> u64 index, u8 outcome, u64 revision (the last max_requests)
 *   requests_by_index  u64 big-endian index -> request id (to prune the oldest)
 *   budget         "table" -> the connection-budget table as canonical JSON (raft/budget.h);
 *                  absent = empty table (an empty table is never stored)
 *   writers        proxy name -> u64 revision + JSON text: the proxy's committed writer
 *
 * Guarantees. The state depends only on the sequence of (index, command) pairs that Raft
 * committed: no clock, no randomness, no local configuration is consulted (apart from
 * max_requests, which must be equal on every node). Each apply is one LMDB write transaction that
 * also stores the applied index, so:
 *   - an index at or below the stored applied index is skipped (replay after a restart);
 *   - a request id already recorded is skipped (a retried proposal), the index still advances;
 *   - a command with an expected revision that differs from the resource's current revision
 *     (0 when absent) changes nothing but its outcome, SL_FSM_CONFLICT;
 *   - a PUT stores the body with "revision": index added (canonical JSON: compact, sorted keys);
 *     deleting a proxy also deletes its target group and targets;
 *   - a malformed command is never an error: undecodable bytes only advance the applied index,
 *     a decodable command with an unusable body is recorded as SL_FSM_INVALID;
 *   - a budget command (kind SL_RAFT_BUDGET: PUT, name SL_RAFT_BUDGET_NAME, expected revision 0,
 *     body = ops JSON) applies its ops to the budget table at its index (sl_budget_apply) with
 *     outcome SL_FSM_OK and revision = index. Anything else of that kind (DELETE, another name,
 *     an expected revision, a body sl_budget_ops_parse refuses) is SL_FSM_INVALID and changes
 *     nothing. The budget is not a resource: get, list and dump_json do not show it.
 *   - a writer (kind SL_RAFT_WRITER, named by its proxy) is a resource whose body names one of
 *     the proxy's targets ({"target": id, ...}); its revision is the writer epoch. A PUT below an
 *     absent proxy or naming a target the proxy does not have is SL_FSM_NOT_FOUND, one without a
 *     string "target" SL_FSM_INVALID; with an expected revision it is a compare-and-set on the
 *     epoch, so a decision taken against an older epoch never lands. The writer's target cannot
 *     be deleted while it is named (SL_FSM_CONFLICT, revision = the epoch): nodes would fall back
 *     to the first READ_WRITE target, possibly a demoted writer. Deleting the proxy deletes it.
 * Apply fails (-1, nothing changed) only when LMDB itself fails (disk or map full): the node then
 * stops applying rather than diverging from the others.
 *
 * Threads: writes (apply, restore) on one thread; the read functions may run on any thread, each
 * in its own LMDB read transaction (MVCC: readers never block the writer). The environment is
 * opened with MDB_NOTLS, so a list callback may itself call the read functions. */
#ifndef SL_RAFT_FSM_H
#define SL_RAFT_FSM_H

#include <stddef.h>
#include <stdint.h>

#include "raft/cmd.h"

struct sl_fsm;

struct sl_fsm_options {
    size_t map_size;       /* LMDB map size in bytes; 0 = 256 MiB */
    unsigned max_requests; /* request outcomes kept; 0 = 10000 */
};

enum sl_fsm_outcome {
    SL_FSM_OK = 1,        /* applied; revision = the new revision (0 after a DELETE) */
    SL_FSM_CONFLICT = 2,  /* expected revision differed; revision = the current one */
    SL_FSM_NOT_FOUND = 3, /* DELETE of an absent resource, or PUT below an absent proxy */
    SL_FSM_INVALID = 4,   /* body not usable (not a JSON object, reserved key, bad secret ref,
                             bad budget ops) or budget command not a plain PUT */
};

struct sl_fsm_result {
    enum sl_fsm_outcome outcome;
    uint64_t index;    /* Raft index of the command */
    uint64_t revision; /* see enum sl_fsm_outcome */
};

/* Open (creating if needed) the store in the existing directory dir. Returns 0, or -1 with a
 * message in err. */
int sl_fsm_open(struct sl_fsm **out, const char *dir, const struct sl_fsm_options *opt, char *err,
                size_t errlen);
void sl_fsm_close(struct sl_fsm *fsm);

/* Apply the committed command cmd[0..len) at Raft index `index`. 0 whatever the outcome, -1 only
 * on a storage failure. */
int sl_fsm_apply(struct sl_fsm *fsm, uint64_t index, const uint8_t *cmd, size_t len);

/* Reads: 0 = found, 1 = not found, -1 = storage failure. */
int sl_fsm_applied(struct sl_fsm *fsm, uint64_t *index);
int sl_fsm_outcome(struct sl_fsm *fsm, const uint8_t req_id[SL_RAFT_REQID_LEN],
                   struct sl_fsm_result *out);
/* One resource: *json (malloc'd, NUL-terminated, the caller frees it) and its revision. For a
 * target, name is the proxy and id the target id; id is NULL for every other kind. The kind
 * SL_RAFT_BUDGET is never found (use sl_fsm_budget). */
int sl_fsm_get(struct sl_fsm *fsm, enum sl_raft_kind kind, const char *name, const char *id,
               char **json, uint64_t *revision);

/* Called for each resource in name order; returning non-zero stops the walk and becomes the
 * return value of sl_fsm_list. The pointers are valid during the call only. */
typedef int (*sl_fsm_list_cb)(const char *name, size_t name_len, const char *json, size_t json_len,
                              uint64_t revision, void *arg);
/* Walk a kind; for targets, `proxy` names the proxy whose targets are listed (NULL otherwise).
 * Returns 0, the callback's non-zero value, or -1 on a storage failure. SL_RAFT_BUDGET lists
 * nothing. */
int sl_fsm_list(struct sl_fsm *fsm, enum sl_raft_kind kind, const char *proxy, sl_fsm_list_cb cb,
                void *arg);

/* The whole configuration as one canonical JSON document (compact, keys sorted), to compare
 * nodes byte for byte: {"nodes":{..},"proxies":{..},"secrets":{..},"target_groups":{..},
 * "targets":{proxy:{id:{..}}},"writers":{..}}. Applied index, request outcomes and the budget are
 * not part of it (the budget changes all the time, and nodes compare dumps while it does). Returns
 * 0 with *out malloc'd (the caller frees it), or -1. */
int sl_fsm_dump_json(struct sl_fsm *fsm, char **out);

/* The budget table as canonical JSON (sl_budget_table_json; "{\"entries\":{},\"leases\":{}}"
 * when empty). Returns 0 with *json malloc'd (the caller frees it), or -1 on a storage failure. */
int sl_fsm_budget(struct sl_fsm *fsm, char **json);

/* Snapshot: every database but requests_by_index (rebuilt on restore), in a fixed order and in
 * key order, so equal states give equal bytes. Layout, little-endian:
 *   "SLFS" u32 version(3) u64 applied, then for proxies, target_groups, targets, secrets, nodes,
 *   requests, budget, writers: u32 count, count x (u32 key length, key, u32 value length, value).
 * Restore also accepts version 2 (no writers section) and version 1 (no budget either); what is
 * missing is empty.
 * sl_fsm_snapshot returns 0 with *buf malloc'd, or -1. */
int sl_fsm_snapshot(struct sl_fsm *fsm, uint8_t **buf, size_t *len);
/* The applied index recorded in a snapshot (pure; checks the header only). 0 or -1. */
int sl_fsm_snapshot_applied(const uint8_t *buf, size_t len, uint64_t *applied);
/* Replace the whole state with the snapshot, in one transaction: on -1 (malformed snapshot or
 * storage failure) the state is unchanged. */
int sl_fsm_restore(struct sl_fsm *fsm, const uint8_t *buf, size_t len);

#endif
