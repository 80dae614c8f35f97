/* Raft command format: the bytes of one configuration change as they travel in the Raft log.
 *
 * A command changes one resource: PUT (create or replace) or DELETE of a proxy, a proxy's target
 * group, a proxy's target (named by the proxy and the target id), a secret (name -> "file:..." or
 * "env:..." reference, never a password) or a node. A budget command (raft/budget.h) is a PUT of
 * kind SL_RAFT_BUDGET named "budget" (SL_RAFT_BUDGET_NAME) whose body is the ops JSON; the codec
 * treats it like any other kind and the state machine enforces the rest. Layout, integers
 * little-endian:
 *
 *    0  u8       format version (SL_RAFT_CMD_VERSION)
 *    1  u8       op (enum sl_raft_op)
 *    2  u8       kind (enum sl_raft_kind)
 *    3  u8       name length, 1..SL_RAFT_NAME_MAX
 *    4  u8       id length: 1..SL_RAFT_NAME_MAX for targets, 0 for every other kind
 *    5  u8[3]    zero
 *    8  u8[16]   request id: random, chosen by the proposer, never all zero. The state machine
 *                remembers it, so a command proposed again after RAFT_LEADERSHIPLOST (which
 *                may still commit) takes effect once.
 *   24  u64      expected revision: 0 = unconditional; otherwise the change applies only if the
 *                resource's revision (Raft index of its last change, 0 when absent) equals it
 *   32  u32      body length: 1..SL_RAFT_BODY_MAX for PUT, 0 for DELETE
 *   36  name, id, body (JSON object text, validated by the proposer)
 *       zero bytes up to a multiple of 8
 *
 * The padding is not optional: libraft 0.15 writes log entries whose length is not a multiple of
 * 8 in a form it cannot read back (shared/notes/raft.md, pitfall 1). Names and ids use the
 * alphabet A-Z a-z 0-9 . _ - so they are safe as LMDB keys (no NUL) and in log lines.
 *
 * Both functions are pure. The decoder accepts exactly what the encoder produces: anything else
 * (truncated, bad lengths, unknown op/kind, non-zero reserved or padding bytes, trailing bytes)
 * gives -1, and it never reads outside [buf, buf + len). */
#ifndef SL_RAFT_CMD_H
#define SL_RAFT_CMD_H

#include <stddef.h>
#include <stdint.h>

#define SL_RAFT_CMD_VERSION 1
#define SL_RAFT_REQID_LEN   16
#define SL_RAFT_NAME_MAX    63
#define SL_RAFT_BODY_MAX    (1u << 20)
#define SL_RAFT_CMD_HEADER  36

enum sl_raft_op { SL_RAFT_PUT = 1, SL_RAFT_DELETE = 2 };

enum sl_raft_kind {
    SL_RAFT_PROXY = 1,
    SL_RAFT_TARGET_GROUP = 2, /* one per proxy, named by the proxy */
    SL_RAFT_TARGET = 3,       /* per proxy: name = proxy, id = target id */
    SL_RAFT_SECRET = 4,
    SL_RAFT_NODE = 5,
    SL_RAFT_BUDGET = 6, /* the connection-budget table; not a resource of the read API */
    SL_RAFT_WRITER = 7, /* one per proxy, named by the proxy: its committed writer; the
                         * revision (Raft index of the decision) is the writer epoch */
};
#define SL_RAFT_KIND_MAX    SL_RAFT_WRITER
#define SL_RAFT_BUDGET_NAME "budget"

/* Decoded pointers point into the decoded buffer; strings are not NUL-terminated. */
struct sl_raft_cmd {
    enum sl_raft_op op;
    enum sl_raft_kind kind;
    uint8_t req_id[SL_RAFT_REQID_LEN];
    uint64_t expected_rev;
    const char *name;
    size_t name_len;
    const char *id;
    size_t id_len;
    const char *body;
    size_t body_len;
};

/* Encoded size (a multiple of 8) of a valid command, 0 when the command is not valid. */
size_t sl_raft_cmd_size(const struct sl_raft_cmd *c);
/* Write the command to out[0..sl_raft_cmd_size(c)). Returns the size, or 0 when the command is
 * not valid or cap is too small. */
size_t sl_raft_cmd_encode(const struct sl_raft_cmd *c, uint8_t *out, size_t cap);
/* Returns 0 and fills *c, or -1 when buf is not exactly one well-formed command. */
int sl_raft_cmd_decode(const uint8_t *buf, size_t len, struct sl_raft_cmd *c);

/* "proxy", "target_group", ...; NULL for an unknown kind. */
const char *sl_raft_kind_name(enum sl_raft_kind kind);
/* 1 when s[0..len) is a valid name or id (1..SL_RAFT_NAME_MAX bytes of A-Z a-z 0-9 . _ -). */
int sl_raft_name_valid(const char *s, size_t len);

#endif
