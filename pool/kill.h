/* KILL statements aimed at connection ids the proxy handed out. Clients see the proxy's own
 * connection id (in the handshake), not the database's, so KILL <id> has to be mapped to the
 * backend connection currently serving that session. Pure. */
#ifndef SL_POOL_KILL_H
#define SL_POOL_KILL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum sl_kill_parse_result {
    SL_KILL_NONE = 0,     /* not a KILL statement: relay it as any other */
    SL_KILL_ID = 1,       /* KILL [HARD|SOFT] [CONNECTION|QUERY] <id>: fields set */
    SL_KILL_REFUSED = -1, /* KILL USER, KILL QUERY ID, or no literal id: could reach other clients'
                           * backends */
};

struct sl_kill {
    bool query_only; /* KILL QUERY: the statement, not the connection */
    uint64_t id;
};

/* Recognise a KILL statement (leading whitespace and comments allowed, one trailing ';'). */
enum sl_kill_parse_result sl_kill_parse(const char *sql, size_t len, struct sl_kill *out);

#endif
