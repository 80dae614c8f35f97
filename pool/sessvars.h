/* Transferable session state: what a client expects its session to look like (schema, character
 * set, sql_mode, time zone, autocommit, isolation, ...) and what a backend connection currently
 * has. Instead of pinning a client to one backend when it changes these, the pool brings whichever
 * backend serves its next transaction to the same state with one combined SET (plus COM_INIT_DB for
 * the schema). Pure; values come from the server's own session tracking, so they are canonical.
 *
 * An unset variable means "the server's default for a fresh connection": sl_vars_diff_sql emits
 * `x = DEFAULT` when a backend carries a value the client never set. */
#ifndef SL_POOL_SESSVARS_H
#define SL_POOL_SESSVARS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The tracked (transferable) variables: RDS Proxy's MySQL list, in MariaDB spelling. Character set
 * variables are kept individually because tracking reports them individually. */
enum sl_var_id {
    SL_VAR_AUTOCOMMIT,
    SL_VAR_AUTO_INCREMENT_INCREMENT,
    SL_VAR_AUTO_INCREMENT_OFFSET,
    SL_VAR_CHARACTER_SET_CLIENT,
    SL_VAR_CHARACTER_SET_CONNECTION,
    SL_VAR_CHARACTER_SET_RESULTS,
    SL_VAR_COLLATION_CONNECTION,
    SL_VAR_INTERACTIVE_TIMEOUT,
    SL_VAR_NET_READ_TIMEOUT,
    SL_VAR_NET_WRITE_TIMEOUT,
    SL_VAR_QUERY_CACHE_TYPE,
    SL_VAR_SQL_MODE,
    SL_VAR_TIME_ZONE,
    SL_VAR_TX_ISOLATION, /* also reported as transaction_isolation */
    SL_VAR_TX_READ_ONLY, /* also reported as transaction_read_only */
    SL_VAR_WAIT_TIMEOUT,
    SL_VAR_COUNT
};

#define SL_VAR_VALUE_MAX 1024 /* longer values (huge sql_mode lists do not exist) are refused */

struct sl_vars {
    char *values[SL_VAR_COUNT]; /* heap strings; NULL = server default */
    char *schema;               /* current database; NULL = none selected */
    uint64_t hash;              /* over all values and schema; equal states have equal hashes */
};

/* Look up a variable name as reported by session tracking (case-insensitive, aliases included).
 * Returns the id, or -1 when the variable is not transferable. */
int sl_var_lookup(const char *name, size_t len);
const char *sl_var_name(enum sl_var_id id);
/* A variable the server itself changes and reports (last_gtid, after every commit logged to the
 * binary log): it says nothing about the state a client set, so it neither pins nor transfers. */
bool sl_var_server_maintained(const char *name, size_t len);

void sl_vars_init(struct sl_vars *v);
void sl_vars_clear(struct sl_vars *v); /* frees values, back to all defaults */
/* Set one variable (value copied) or the schema; len 0 with value NULL resets to default.
 * Return 0, or -1 on allocation failure or an over-long value (state unchanged). */
int sl_vars_set(struct sl_vars *v, enum sl_var_id id, const char *value, size_t len);
int sl_vars_set_schema(struct sl_vars *v, const char *schema, size_t len);
int sl_vars_copy(struct sl_vars *dst, const struct sl_vars *src);
bool sl_vars_equal(const struct sl_vars *a, const struct sl_vars *b);

/* Build one "SET SESSION a='v', b=DEFAULT, ..." statement that turns `have` into `want` (schema is
 * not part of it: compare with sl_vars_schema_differs and send COM_INIT_DB). Values are quoted as
 * SQL string literals with every quote and backslash escaped, except for purely numeric values.
 * Returns the statement length, 0 when nothing differs, or (size_t)-1 when cap is too small. */
size_t sl_vars_diff_sql(const struct sl_vars *want, const struct sl_vars *have, char *out,
                        size_t cap);
bool sl_vars_schema_differs(const struct sl_vars *want, const struct sl_vars *have);

#endif
