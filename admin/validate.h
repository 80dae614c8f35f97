/* Validation of the admin API's store writes, before anything is proposed. Pure: text in, a
 * canonical body or a reason out.
 *
 * Each sl_validate_<kind> takes a request body (JSON text) and returns the body to store: a JSON
 * object with every default filled in, compact with sorted keys (json_dumps JSON_COMPACT |
 * JSON_SORT_KEYS, the form the state machine stores), or NULL with err set. Bodies are strict:
 * unknown keys, duplicate keys, wrong types and out-of-range values are refused, naming the field
 * ("auth[0].client_password_auth_type: must be MYSQL_NATIVE_PASSWORD or
 * MYSQL_CACHING_SHA2_PASSWORD"). Two keys are accepted so that a document read back with GET can be
 * sent again: "revision" (read-only, dropped: use If-Match for compare-and-set) and, for proxies
 * and secrets, "name" when it equals the name in the URL (dropped: the URL names the resource).
 *
 * The accepted bodies, fields and defaults are listed in docs/admin-api.md ("Resources"). */
#ifndef SL_ADMIN_VALIDATE_H
#define SL_ADMIN_VALIDATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "raft/cmd.h"

struct sl_validate_error {
    int status;       /* 400, or 500 when memory ran out */
    char field[96];   /* "auth[0].secret"; "body" for the document as a whole */
    char detail[256]; /* "<field>: <reason>", for a problem's detail */
};

/* {"ref": "file:/abs/path" | "env:NAME"}. The reference's value never appears in err. */
char *sl_validate_secret(const char *body, size_t len, const char *name,
                         struct sl_validate_error *err);
/* See docs/admin-api.md; auth[].secret names a secret (whether it exists is the caller's check). */
char *sl_validate_proxy(const char *body, size_t len, const char *name,
                        struct sl_validate_error *err);
/* {"connection_pool_config": {...}, "failover": {...}}: the pool with the ranges and defaults of
 * docs/configuration.md; failover {"mode" EXTERNAL (default) | MANAGED | DISABLED, "admin_secret",
 * "replication_secret" (names of secrets, required with MANAGED; whether they exist is the
 * caller's check), "require_semi_sync" (default true)}, always present in the result. */
char *sl_validate_target_group(const char *body, size_t len, struct sl_validate_error *err);
/* {"id", "host", "port", "role"}; the id is copied to id_out. */
char *sl_validate_target(const char *body, size_t len, char id_out[SL_RAFT_NAME_MAX + 1],
                         struct sl_validate_error *err);

/* Longest writer "reason", in bytes. */
#define SL_VALIDATE_REASON_MAX 200
/* The writer decision of a proxy: {"target": id, "reason": text} ("reason" defaults to "manual",
 * 1..SL_VALIDATE_REASON_MAX bytes without control characters). The stored body adds "decided_by"
 * (the node taking the decision: the caller gives its id). "revision" is dropped as elsewhere;
 * "epoch" and "decided_by", which GET shows, are refused rather than ignored: an epoch in the
 * body would read as a condition that is not checked (If-Match is). The target id is copied to
 * target_out; whether the proxy has that target is the caller's check (and the state machine's). */
char *sl_validate_writer(const char *body, size_t len, const char *decided_by,
                         char target_out[SL_RAFT_NAME_MAX + 1], struct sl_validate_error *err);

/* max_connections_percent of a stored target group (a body sl_validate_target_group returned);
 * NULL, for a proxy without a target group, gives the default (100). */
unsigned sl_validate_pool_percent(const char *target_group);

/* Longest "host:port" with its NUL: a 255-byte host, ':' and 5 digits. */
#define SL_VALIDATE_DATABASE_MAX 262
/* The database a stored target (a body sl_validate_target returned) points at, as "host:port"
 * with the host in lower case, since host names compare case-insensitively. Nothing is resolved:
 * "localhost" and "127.0.0.1" are two databases. Returns 0, or -1 when the text is not a target. */
int sl_validate_target_database(const char *target, size_t len, char out[SL_VALIDATE_DATABASE_MAX]);

/* Longest "a.b.c.d:port" with its NUL (as SL_STORE_ADDR_MAX). */
#define SL_VALIDATE_ADDR_MAX 32
/* {"id", "raft_address", "admin_url", "data_address", "az"}; id and Raft address copied out. */
char *sl_validate_node(const char *body, size_t len, uint64_t *id_out,
                       char raft_address_out[SL_VALIDATE_ADDR_MAX], struct sl_validate_error *err);

/* POST /v1/cluster/transfer-leadership: an empty body or {} (*id = 0: any voter) or {"id": n}.
 * Returns 0, or -1 with err set. */
int sl_validate_transfer(const char *body, size_t len, uint64_t *id, struct sl_validate_error *err);

/* A resource name from the URL: 1..63 bytes of A-Z a-z 0-9 . _ -. what is "name" or "id". */
int sl_validate_name(const char *what, const char *name, struct sl_validate_error *err);
/* A node id from the URL: decimal, 1..UINT64_MAX, no sign, no leading zero. 0 or -1. */
int sl_validate_node_id(const char *s, uint64_t *id);
/* (Secret references are checked with sl_secret_ref_valid, base/secret.h.) */

/* An If-Match value: a revision > 0, quoted as in ETag ("42") or bare (42). 0 or -1. */
int sl_validate_if_match(const char *value, uint64_t *revision);

struct sl_read_query {
    bool consistent;       /* consistent=true */
    uint64_t min_revision; /* min_revision=N; 0 when absent */
};
/* A read's query string (NULL: none): consistent=true|false and min_revision=N, each at most once;
 * anything else is refused. Returns 0, or -1 with err set. */
int sl_validate_query(const char *query, struct sl_read_query *q, struct sl_validate_error *err);

#endif
