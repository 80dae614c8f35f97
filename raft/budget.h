/* The committed connection-budget table (issue 4): its data model, the apply function, and the
 * JSON forms of ops and table. Pure: no LMDB, no libuv, no clock. The state machine (raft/fsm.h)
 * stores the table and applies budget commands (kind SL_RAFT_BUDGET, body = ops JSON) with it; the
 * leader decides which ops to propose.
 *
 * Model. Each database is an entry keyed "<proxy>/<host>:<port>". Its budget is
 * floor(max_connections * percent / 100); `reserve` of it is never handed out. Each node holding
 * part of it is a holder with
 *   quota  what the node may open now;
 *   cap    an upper bound of what the node may still hold: cap >= quota, and cap > quota while a
 *          shrink has not been confirmed (the node may not have closed the excess yet);
 *   index  the Raft index of the last change of quota.
 * Leases record the last report of each node (its sequence number and the index it was renewed
 * at); the leader decides from them when a node is lost and must be revoked.
 *
 * Apply rules (sl_budget_apply; each op at the same Raft index `index`):
 *   LIMIT(key, mc, pct, reserve)  create the entry if missing (no holders); set the three
 *        fields; budget = mc * pct / 100 (computed in 64 bits); reserve = min(reserve, budget);
 *        entry index = index.
 *   SET(key, node, q)  ignored if the entry does not exist. h = the node's holder (created with
 *        zeros if missing). If q <= h.quota: h.quota = q and the cap stays (the node may hold up to
 *        cap until it confirms). Else room = (budget - reserve) - sum of the other holders' caps,
 *        saturating at 0; new = min(q, max(h.quota, room)); h.quota = new; h.cap = max(h.cap, new).
 *        If h.quota changed: h.index = entry index = index.
 *   CONFIRM(key, node, applied)  if the holder exists and applied >= h.index: h.cap = h.quota
 *        (the node has applied its latest quota change and holds no more than it; the leader
 *        proposes this only after a report saying so). Otherwise ignored.
 *   RENEW(node, seq)  the node's lease: seq = seq, index = index (created if missing).
 *   REVOKE(node)  every holder of the node in every entry: quota = cap = 0 (so it is removed,
 *        see below) and entry index = index; the node's lease is removed. The leader proposes this
 *        only after fencing the node at the database, so its connections are gone.
 *   FORGET(key)  remove the entry only if every holder's cap is 0; otherwise ignored.
 *   After each op, holders whose quota and cap are both 0 are removed, so the table stays small.
 *   An op that sl_budget_ops_parse would reject (unknown kind, invalid key, node 0, value out of
 *   range) is ignored.
 *
 * Safety argument. What a node may hold is bounded by its cap, and the cap only drops below what
 * the node may hold once the node has said it holds no more (CONFIRM) or the database has cut it
 * off (REVOKE). The invariant: SET never makes sum(cap) of an entry exceed max(sum(cap) before,
 * budget - reserve). Proof: a SET either keeps or lowers the holder's cap (q <= quota, or
 * new <= cap), or raises it to new > cap >= quota, and then new <= room, so the entry's sum is at
 * most budget - reserve. Only LIMIT (the database or the operator lowering the budget) can leave
 * sum(cap) above budget - reserve, and then no SET grows any cap (room is 0) until confirmed
 * shrinks and revocations bring it back under. Since every node applies the same committed ops
 * in the same order and apply depends on nothing else, every node and every future leader agrees
 * on the table.
 *
 * Raft indexes are stored as JSON integers, so every index handed to sl_budget_apply must be at
 * most INT64_MAX (Raft indexes are). Counts (max_connections, reserve, quota) are at most
 * SL_BUDGET_COUNT_MAX; node ids and sequence numbers are 1..INT64_MAX. */
#ifndef SL_RAFT_BUDGET_H
#define SL_RAFT_BUDGET_H

#include <stddef.h>
#include <stdint.h>

#define SL_BUDGET_KEY_MAX   200 /* "<proxy>/<host>:<port>" */
#define SL_BUDGET_COUNT_MAX 1000000u
#define SL_BUDGET_OPS_MAX   4096

struct sl_budget_holder {
    uint64_t node;
    unsigned quota; /* what the node may open */
    unsigned cap;   /* upper bound of what it may still hold (>= quota while a shrink is pending) */
    uint64_t index; /* Raft index of the last change of quota */
};

struct sl_budget_entry {
    char key[SL_BUDGET_KEY_MAX + 1];
    unsigned max_connections, percent, reserve;
    unsigned budget; /* floor(max_connections * percent / 100), computed in 64 bits */
    uint64_t index;  /* Raft index of the last LIMIT or quota change (SET, REVOKE) */
    struct sl_budget_holder *holders;
    size_t n_holders; /* sorted by node id */
};

struct sl_budget_lease {
    uint64_t node;
    uint64_t seq;   /* the node's last report sequence number */
    uint64_t index; /* Raft index of the RENEW that recorded it */
};

struct sl_budget_table {
    struct sl_budget_entry *entries;
    size_t n_entries; /* sorted by key (strcmp) */
    struct sl_budget_lease *leases;
    size_t n_leases; /* sorted by node */
};

enum sl_budget_op_kind {
    SL_BUDGET_LIMIT = 1,
    SL_BUDGET_SET,
    SL_BUDGET_CONFIRM,
    SL_BUDGET_RENEW,
    SL_BUDGET_REVOKE,
    SL_BUDGET_FORGET,
};

struct sl_budget_op {
    enum sl_budget_op_kind kind;
    char key[SL_BUDGET_KEY_MAX + 1];            /* LIMIT, SET, CONFIRM, FORGET */
    uint64_t node;                              /* SET, CONFIRM, RENEW, REVOKE; > 0 */
    unsigned max_connections, percent, reserve; /* LIMIT; percent 1..100 */
    unsigned quota;                             /* SET */
    uint64_t applied; /* CONFIRM: the Raft index the node had applied when it reported */
    uint64_t seq;     /* RENEW: the node's report sequence number, 1..INT64_MAX */
};

void sl_budget_table_init(struct sl_budget_table *t);
/* Frees the contents and leaves t empty. */
void sl_budget_table_free(struct sl_budget_table *t);

/* Apply ops[0..n) in order at Raft index `index` (see "Apply rules"). Deterministic: depends only
 * on t, ops and index. Returns 0, or -1 only when memory ran out, and then t is unchanged. */
int sl_budget_apply(struct sl_budget_table *t, const struct sl_budget_op *ops, size_t n,
                    uint64_t index);

/* The ops body proposed through Raft:
 *   {"ops":[{"op":"limit","key":K,"max_connections":60,"percent":50,"reserve":1},
 *           {"op":"set","key":K,"node":2,"quota":10},
 *           {"op":"confirm","key":K,"node":2,"applied":123},
 *           {"op":"renew","node":2,"seq":77}, {"op":"revoke","node":3}, {"op":"forget","key":K}]}
 * Strict: an unknown op, an unknown, missing or duplicate field, a wrong type, a value out of
 * range, an invalid key or more than SL_BUDGET_OPS_MAX ops gives -1 with a one-line reason naming
 * the op index and field in err. -2 when memory ran out (so that a node short of memory never
 * mistakes a valid body for an invalid one). On 0, *ops is malloc'd (never NULL; the caller frees
 * it) and *n may be 0. */
int sl_budget_ops_parse(const char *json, size_t len, struct sl_budget_op **ops, size_t *n,
                        char *err, size_t errlen);
/* Compact JSON with sorted keys, malloc'd; NULL when memory ran out. The ops must be valid (as
 * sl_budget_ops_parse produces them) for the text to parse back. */
char *sl_budget_ops_json(const struct sl_budget_op *ops, size_t n);

/* The table as canonical JSON (compact, sorted keys: equal tables give equal bytes), malloc'd;
 * NULL when memory ran out. Node ids are decimal strings as object keys:
 *   {"entries":{K:{"budget":30,"holders":{"2":{"cap":10,"index":12,"quota":10}},"index":12,
 *                  "max_connections":60,"percent":50,"reserve":1}},
 *    "leases":{"2":{"index":5,"seq":77}}} */
char *sl_budget_table_json(const struct sl_budget_table *t);
/* Parse what sl_budget_table_json produces into t (any previous contents are not freed). Strict as
 * sl_budget_ops_parse, and also checks what apply guarantees: budget and reserve consistent with
 * the limits, quota <= cap, no holder with both 0, canonical node ids. Returns 0; -1 with a reason
 * in err, or -2 when memory ran out; on failure t is left empty. */
int sl_budget_table_parse(const char *json, size_t len, struct sl_budget_table *t, char *err,
                          size_t errlen);

/* Lookups; NULL when absent. */
const struct sl_budget_entry *sl_budget_find(const struct sl_budget_table *t, const char *key);
const struct sl_budget_holder *sl_budget_holder_of(const struct sl_budget_entry *e, uint64_t node);
const struct sl_budget_lease *sl_budget_lease_of(const struct sl_budget_table *t, uint64_t node);
/* Sum of the holders' caps (saturating at UINT_MAX). */
unsigned sl_budget_capped(const struct sl_budget_entry *e);
/* The highest Raft index recorded anywhere in the table (0 when empty). */
uint64_t sl_budget_max_index(const struct sl_budget_table *t);
/* 1 when key is 1..SL_BUDGET_KEY_MAX bytes of A-Z a-z 0-9 . _ - / :, else 0. */
int sl_budget_key_valid(const char *key);

#endif
