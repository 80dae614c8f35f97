/* Managed failover's database work (private to failover/): promote one replica, then repoint the
 * other replicas at it and set the old writer read-only, each step a Connector/C probe in libuv's
 * thread pool (budget/dbprobe.h). Only the promotion decides the outcome: a replica that could not
 * be repointed, or an old writer that could not be reached, is logged and left to the operator
 * (the new writer takes writes either way; nothing is routed to the old one once the new epoch is
 * committed). */
#ifndef SL_FAILOVER_PROMOTE_H
#define SL_FAILOVER_PROMOTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "budget/dbprobe.h"

#define SL_PROMOTE_OTHERS_MAX 31

struct sl_promote_host {
    char host[256];
    uint16_t port;
};

struct sl_promote_request {
    struct sl_dbprobe_cred admin; /* may promote, repoint and set read_only */
    struct sl_dbprobe_cred repl;  /* the replication account the others use */
    struct sl_promote_host candidate;
    struct sl_promote_host others[SL_PROMOTE_OTHERS_MAX]; /* replicas to repoint */
    size_t n_others;
    struct sl_promote_host old; /* the old writer, set read-only when demote_old */
    bool demote_old;
    char bind_ip[64];
    unsigned timeout_ms; /* per step; the promotion's wait for the relay log is bounded by it */
};

/* cb(ok, error, arg) once every step has returned: ok when the candidate was promoted (error
 * then ""). The request is copied and wiped after use. 0, or -1 (nothing started, no cb). */
typedef void (*sl_promote_cb)(bool ok, const char *error, void *arg);
int sl_promote_run(uv_loop_t *loop, const struct sl_promote_request *rq, sl_promote_cb cb,
                   void *arg);

#endif
