#include "failover/promote.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "base/log.h"

struct job {
    uv_loop_t *loop;
    struct sl_promote_request rq;
    sl_promote_cb cb;
    void *arg;
    unsigned pending; /* repoint and demote steps in flight */
    char error[256];
};

static void finish(struct job *j)
{
    sl_promote_cb cb = j->cb;
    void *arg = j->arg;
    bool ok = j->error[0] == '\0';
    char error[256];
    snprintf(error, sizeof error, "%s", j->error);
    OPENSSL_cleanse(j, sizeof *j);
    free(j);
    cb(ok, error, arg);
}

static void fill(struct sl_dbprobe_request *p, const struct job *j, const struct sl_promote_host *h,
                 enum sl_dbprobe_change change)
{
    memset(p, 0, sizeof *p);
    p->creds[0] = j->rq.admin;
    p->n_creds = 1;
    snprintf(p->host, sizeof p->host, "%s", h->host);
    p->port = h->port;
    snprintf(p->bind_ip, sizeof p->bind_ip, "%s", j->rq.bind_ip);
    p->timeout_ms = j->rq.timeout_ms;
    p->change = change;
}

static void on_side_step(const struct sl_dbprobe_result *r, void *arg)
{
    struct job *j = arg;
    if (!r->ok)
        sl_warn(0, "failover: %s (left to the operator)", r->error);
    if (--j->pending == 0)
        finish(j);
}

static void start_side_step(struct job *j, const struct sl_promote_host *h,
                            enum sl_dbprobe_change change)
{
    struct sl_dbprobe_request *p = malloc(sizeof *p);
    if (!p)
        return;
    fill(p, j, h, change);
    if (change == SL_DBPROBE_REPOINT) {
        p->repl = j->rq.repl;
        snprintf(p->source_host, sizeof p->source_host, "%s", j->rq.candidate.host);
        p->source_port = j->rq.candidate.port;
    }
    if (sl_dbprobe_run(j->loop, p, on_side_step, j) == 0)
        j->pending++;
    else
        sl_warn(0, "failover: %s:%u: the step could not be started", h->host, h->port);
    OPENSSL_cleanse(p, sizeof *p);
    free(p);
}

static void on_promoted(const struct sl_dbprobe_result *r, void *arg)
{
    struct job *j = arg;
    if (!r->ok) {
        snprintf(j->error, sizeof j->error, "%s", r->error);
        finish(j);
        return;
    }
    sl_warn(0, "failover: %s:%u promoted (gtid %s)", j->rq.candidate.host, j->rq.candidate.port,
            r->gtid);
    /* The others' steps run side by side; pending counts one extra until all are started, so a
     * step that returns at once cannot finish the job early. */
    j->pending = 1;
    for (size_t i = 0; i < j->rq.n_others; i++)
        start_side_step(j, &j->rq.others[i], SL_DBPROBE_REPOINT);
    if (j->rq.demote_old)
        start_side_step(j, &j->rq.old, SL_DBPROBE_DEMOTE);
    if (--j->pending == 0)
        finish(j);
}

int sl_promote_run(uv_loop_t *loop, const struct sl_promote_request *rq, sl_promote_cb cb,
                   void *arg)
{
    struct job *j = calloc(1, sizeof *j);
    struct sl_dbprobe_request *p = malloc(sizeof *p);
    int rc = -1;
    if (j && p) {
        j->loop = loop;
        j->rq = *rq;
        j->cb = cb;
        j->arg = arg;
        fill(p, j, &rq->candidate, SL_DBPROBE_PROMOTE);
        p->semi_sync = rq->n_others > 0; /* the others are repointed before any write comes */
        rc = sl_dbprobe_run(loop, p, on_promoted, j);
    }
    if (p) {
        OPENSSL_cleanse(p, sizeof *p);
        free(p);
    }
    if (rc != 0 && j) {
        OPENSSL_cleanse(j, sizeof *j);
        free(j);
    }
    return rc;
}
