/* Pin reasons and the SQL scanner for what session tracking cannot see.
 *
 * A session is pinned to its backend while any reason is set; reasons are a bitmask so that metrics
 * and logs can say why. Session tracking (SESSION_STATE_CHANGED without a matching sysvar/schema
 * entry, the trx-state 'L' flag) finds most of them; sl_pinscan finds the rest from the statement
 * text by a cheap lexical scan (comments, string literals and quoted identifiers are skipped,
 * keywords matched case-insensitively on word boundaries). It never allocates. */
#ifndef SL_POOL_PINSCAN_H
#define SL_POOL_PINSCAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum sl_pin_reason {
    SL_PIN_USER_VARIABLE = 1u << 0,   /* SET @x, SELECT @x := ..., SELECT ... INTO @x */
    SL_PIN_SET_VARIABLE = 1u << 1,    /* SET of a session variable that is not transferable */
    SL_PIN_TEMP_TABLE = 1u << 2,      /* CREATE TEMPORARY TABLE */
    SL_PIN_TABLE_LOCK = 1u << 3,      /* LOCK TABLES, FLUSH TABLES ... WITH READ LOCK */
    SL_PIN_GET_LOCK = 1u << 4,        /* GET_LOCK( */
    SL_PIN_PREPARED = 1u << 5,        /* text PREPARE, or binary COM_STMT_PREPARE */
    SL_PIN_LARGE_STATEMENT = 1u << 6, /* statement text over 16 KiB */
    SL_PIN_FOUND_ROWS = 1u << 7,      /* SQL_CALC_FOUND_ROWS / FOUND_ROWS( */
    SL_PIN_ROW_COUNT = 1u << 8,       /* ROW_COUNT( */
    SL_PIN_LAST_INSERT_ID = 1u << 9,  /* LAST_INSERT_ID( */
    SL_PIN_HANDLER = 1u << 10,        /* HANDLER t OPEN */
    SL_PIN_XA = 1u << 11,             /* XA START ... */
    SL_PIN_CURSOR = 1u << 12,         /* server-side cursor open (CURSOR_EXISTS) */
    SL_PIN_UNKNOWN_STATE = 1u << 13,  /* tracking reported a change we cannot describe */
    SL_PIN_LOCAL_INFILE = 1u << 14,   /* LOAD DATA LOCAL in progress */
};
#define SL_PIN_REASON_COUNT      15
#define SL_LARGE_STATEMENT_BYTES (16u * 1024u)

/* Name of one reason bit ("user_variable", "temp_table", ...), for logs and metrics. */
const char *sl_pin_reason_name(uint32_t bit);

/* What a statement's text shows: every reason above that the text alone reveals (never
 * SL_PIN_SET_VARIABLE, SL_PIN_CURSOR, SL_PIN_UNKNOWN_STATE or SL_PIN_LOCAL_INFILE, which come from
 * session tracking and the protocol; SL_PIN_LARGE_STATEMENT is the caller's length check). Multi-
 * statement text is scanned whole. */
uint32_t sl_pinscan(const char *sql, size_t len);

/* What a statement does, as far as running it again after its connection was lost goes. */
enum sl_stmt_kind {
    SL_STMT_UNSCANNED, /* internal to the scanner */
    SL_STMT_OTHER,     /* DDL, SET, CALL, COMMIT, multi-statement text...: effect unknown if lost */
    SL_STMT_READ,      /* SELECT, SHOW, DESC[RIBE], EXPLAIN, HELP */
    SL_STMT_DML,       /* INSERT, UPDATE, DELETE, REPLACE, SAVEPOINT, ROLLBACK TO: undone with
                        * the transaction they ran in when the connection is lost */
    SL_STMT_BEGIN,     /* BEGIN [WORK], START TRANSACTION ... */
    SL_STMT_ROLLBACK,  /* ROLLBACK [WORK] */
};

struct sl_stmt_scan {
    uint32_t pins;          /* as sl_pinscan */
    enum sl_stmt_kind kind; /* of the first statement; OTHER for multi-statement text */
    bool nondeterministic;  /* calls NOW(), RAND(), UUID(), ... or names CURRENT_TIMESTAMP: running
                             * it again may change data differently with the same result */
};

/* One pass over the text for everything above (the pin reasons of sl_pinscan included). */
void sl_stmt_scan(const char *sql, size_t len, struct sl_stmt_scan *out);

#endif
