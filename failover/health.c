#include "failover/health.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "base/log.h"
#include "base/secret.h"
#include "budget/dbprobe.h"

struct target {
    struct sl_health *h;
    char host[256];
    uint16_t port;
    char *secret;
    char *proxy;         /* whose limits the check counts against, or NULL */
    bool running;        /* a check is in flight */
    bool reserved;       /* ... and holds a slot of the quota */
    bool removed;        /* no longer configured: freed when its check returns */
    uint64_t started_ms; /* uv_now when the last check started; 0 = none yet */
    unsigned interval_ms, timeout_ms, failures_max;
    enum sl_health_state state;
    const char *reason;
    int read_only, replicating, semi_sync;
    char gtid[256];
    char error[256];
    unsigned failures;
    uint64_t checked_ms; /* uv_now when the last check finished; 0 = never */
    uint64_t checks;
};

struct sl_health {
    uv_loop_t *loop;
    struct sl_health_options opt;
    uv_timer_t timer;
    struct target **t;
    size_t n;
    unsigned running;
    bool stopping;
    void (*done)(void *arg);
    void *done_arg;
};

const char *sl_health_state_name(enum sl_health_state s)
{
    switch (s) {
    case SL_HEALTH_REGISTERING: return "REGISTERING";
    case SL_HEALTH_AVAILABLE: return "AVAILABLE";
    case SL_HEALTH_UNAVAILABLE: return "UNAVAILABLE";
    case SL_HEALTH_PENDING_CAPACITY: return "PENDING_PROXY_CAPACITY";
    }
    return "UNKNOWN";
}

static void target_free(struct target *t)
{
    free(t->secret);
    free(t->proxy);
    free(t);
}

static void on_timer_closed(uv_handle_t *handle)
{
    struct sl_health *h = handle->data;
    void (*done)(void *) = h->done;
    void *arg = h->done_arg;
    free(h);
    if (done)
        done(arg);
}

static void maybe_finish(struct sl_health *h)
{
    if (!h->stopping || h->running > 0)
        return;
    for (size_t i = 0; i < h->n; i++)
        target_free(h->t[i]);
    free(h->t);
    h->t = NULL;
    h->n = 0;
    uv_close((uv_handle_t *)&h->timer, on_timer_closed);
}

/* Login refused, as opposed to no server answering. */
static bool auth_error(unsigned code)
{
    return code == 1045 /* ER_ACCESS_DENIED_ERROR */ || code == 1044 /* ER_DBACCESS_DENIED */ ||
           code == 1698 /* ER_ACCESS_DENIED_NO_PASSWORD */ || code == 1226 /* user limit */;
}

static void note_failure(struct target *t, unsigned code, const char *error, uint64_t elapsed)
{
    t->failures++;
    snprintf(t->error, sizeof t->error, "%s", error);
    if (t->failures < t->failures_max)
        return;
    const char *reason = auth_error(code)           ? "AUTH_FAILURE"
                         : elapsed >= t->timeout_ms ? "UNREACHABLE"
                                                    : "CONNECTION_FAILED";
    if (t->state != SL_HEALTH_UNAVAILABLE || strcmp(t->reason, reason) != 0)
        sl_warn(0, "health: %s:%u UNAVAILABLE (%s) after %u failed checks: %s", t->host, t->port,
                reason, t->failures, error);
    t->state = SL_HEALTH_UNAVAILABLE;
    t->reason = reason;
}

static void note_success(struct target *t, const struct sl_dbprobe_result *r)
{
    if (t->state != SL_HEALTH_AVAILABLE || t->read_only != r->read_only)
        sl_info(0, "health: %s:%u AVAILABLE (read_only=%d, replicating=%d)", t->host, t->port,
                r->read_only, r->replicating);
    t->state = SL_HEALTH_AVAILABLE;
    t->reason = "";
    t->failures = 0;
    t->error[0] = '\0';
    t->read_only = r->read_only;
    t->replicating = r->replicating;
    t->semi_sync = r->semi_sync;
    snprintf(t->gtid, sizeof t->gtid, "%s", r->gtid);
}

static void view_of(const struct sl_health *h, const struct target *t, struct sl_health_view *out);

static void on_check_done(const struct sl_dbprobe_result *r, void *arg)
{
    struct target *t = arg;
    struct sl_health *h = t->h;
    h->running--;
    t->running = false;
    if (t->reserved && h->opt.release)
        h->opt.release(h->opt.budget_arg, t->proxy, t->host, t->port);
    t->reserved = false;
    if (t->removed) {
        target_free(t);
    } else if (!h->stopping) {
        uint64_t now = uv_now(h->loop);
        t->checks++;
        t->checked_ms = now;
        if (r->ok && r->connected)
            note_success(t, r);
        else
            note_failure(t, r->error_code, r->error, now - t->started_ms);
        if (h->opt.on_check) {
            struct sl_health_view v;
            view_of(h, t, &v);
            h->opt.on_check(h->opt.check_arg, &v);
        }
    }
    maybe_finish(h);
}

static void start_check(struct sl_health *h, struct target *t)
{
    if (t->proxy && h->opt.reserve) {
        if (!h->opt.reserve(h->opt.budget_arg, t->proxy, t->host, t->port)) {
            if (t->state == SL_HEALTH_REGISTERING)
                t->state = SL_HEALTH_PENDING_CAPACITY;
            return;
        }
        t->reserved = true;
    }
    struct sl_dbprobe_request *rq = calloc(1, sizeof *rq);
    struct sl_secret s;
    char err[256];
    int rc = -1;
    if (!rq) {
        snprintf(err, sizeof err, "out of memory");
    } else if (sl_secret_resolve(t->secret, &s, err, sizeof err) == 0) {
        snprintf(rq->creds[0].user, sizeof rq->creds[0].user, "%s", s.username);
        memcpy(rq->creds[0].password, s.password, s.password_len);
        sl_secret_wipe(&s);
        rq->n_creds = 1;
        snprintf(rq->host, sizeof rq->host, "%s", t->host);
        rq->port = t->port;
        rq->timeout_ms = t->timeout_ms;
        rq->check = true;
        snprintf(rq->bind_ip, sizeof rq->bind_ip, "%s", h->opt.bind_ip);
        rc = sl_dbprobe_run(h->loop, rq, on_check_done, t);
        if (rc != 0)
            snprintf(err, sizeof err, "the check could not be started");
    }
    if (rq) {
        OPENSSL_cleanse(rq, sizeof *rq);
        free(rq);
    }
    if (rc != 0) {
        if (t->reserved && h->opt.release)
            h->opt.release(h->opt.budget_arg, t->proxy, t->host, t->port);
        t->reserved = false;
        t->checks++;
        t->checked_ms = uv_now(h->loop);
        note_failure(t, 0, err, 0);
        return;
    }
    t->running = true;
    t->started_ms = uv_now(h->loop);
    h->running++;
}

/* Targets have intervals of their own: the timer ticks at the finest granularity allowed (100
 * ms) and starts each check that is due. */
#define TICK_MS 100

static void on_tick(uv_timer_t *timer)
{
    struct sl_health *h = timer->data;
    uint64_t now = uv_now(h->loop);
    for (size_t i = 0; i < h->n; i++) {
        struct target *t = h->t[i];
        if (!t->running && (t->started_ms == 0 || now - t->started_ms >= t->interval_ms))
            start_check(h, t);
    }
}

int sl_health_start(uv_loop_t *loop, const struct sl_health_options *opt, struct sl_health **out)
{
    struct sl_health *h = calloc(1, sizeof *h);
    if (!h)
        return -1;
    h->loop = loop;
    h->opt = *opt;
    if (!h->opt.interval_ms)
        h->opt.interval_ms = 500;
    if (!h->opt.timeout_ms)
        h->opt.timeout_ms = 1000;
    if (!h->opt.failures)
        h->opt.failures = 2;
    uv_timer_init(loop, &h->timer);
    h->timer.data = h;
    uv_timer_start(&h->timer, on_tick, 0, TICK_MS);
    *out = h;
    return 0;
}

static struct target *find(struct target **list, size_t n, const char *host, uint16_t port)
{
    for (size_t i = 0; i < n; i++)
        if (list[i]->port == port && strcmp(list[i]->host, host) == 0)
            return list[i];
    return NULL;
}

static char *dup_or_null(const char *s, bool *failed)
{
    if (!s)
        return NULL;
    char *d = strdup(s);
    if (!d)
        *failed = true;
    return d;
}

int sl_health_set_targets(struct sl_health *h, const struct sl_health_target_cfg *cfg, size_t n)
{
    struct target **next = calloc(n + 1, sizeof *next);
    size_t m = 0;
    bool failed = !next;
    /* New entries first, so that a failure leaves the current set untouched. */
    for (size_t i = 0; i < n && !failed; i++) {
        if (find(next, m, cfg[i].host, cfg[i].port))
            continue;
        struct target *t = calloc(1, sizeof *t);
        if (!t) {
            failed = true;
            break;
        }
        next[m++] = t;
        t->h = h;
        snprintf(t->host, sizeof t->host, "%s", cfg[i].host);
        t->port = cfg[i].port;
        t->secret = dup_or_null(cfg[i].secret, &failed);
        t->proxy = dup_or_null(cfg[i].proxy, &failed);
        t->state = SL_HEALTH_REGISTERING;
        t->reason = "";
        t->read_only = t->replicating = t->semi_sync = -1;
        t->interval_ms = cfg[i].interval_ms ? cfg[i].interval_ms : h->opt.interval_ms;
        t->timeout_ms = cfg[i].timeout_ms ? cfg[i].timeout_ms : h->opt.timeout_ms;
        t->failures_max = cfg[i].failures ? cfg[i].failures : h->opt.failures;
    }
    if (failed) {
        for (size_t i = 0; i < m; i++)
            target_free(next[i]);
        free(next);
        return -1;
    }
    /* Keep what is known of targets that stay: their observed state carries over. */
    for (size_t i = 0; i < m; i++) {
        struct target *old = find(h->t, h->n, next[i]->host, next[i]->port);
        if (!old)
            continue;
        struct target *t = next[i];
        t->state = old->state;
        t->reason = old->reason;
        t->read_only = old->read_only;
        t->replicating = old->replicating;
        t->semi_sync = old->semi_sync;
        memcpy(t->gtid, old->gtid, sizeof t->gtid);
        memcpy(t->error, old->error, sizeof t->error);
        t->failures = old->failures;
        t->checked_ms = old->checked_ms;
        t->checks = old->checks;
    }
    /* The old entries: a check in flight keeps its target until it returns (then it is freed). */
    for (size_t i = 0; i < h->n; i++) {
        if (h->t[i]->running)
            h->t[i]->removed = true;
        else
            target_free(h->t[i]);
    }
    free(h->t);
    h->t = next;
    h->n = m;
    return 0;
}

static void view_of(const struct sl_health *h, const struct target *t, struct sl_health_view *out)
{
    uint64_t now = uv_now(h->loop);
    *out = (struct sl_health_view){
        .host = t->host,
        .port = t->port,
        .state = t->state,
        .reason = t->reason,
        .read_only = t->read_only,
        .replicating = t->replicating,
        .gtid = t->gtid,
        .semi_sync = t->semi_sync,
        .failures = t->failures,
        .age_ms = t->checked_ms ? now - t->checked_ms : UINT64_MAX,
        .checks = t->checks,
        .error = t->error,
    };
}

void sl_health_each(struct sl_health *h, sl_health_cb cb, void *arg)
{
    for (size_t i = 0; i < h->n; i++) {
        struct sl_health_view v;
        view_of(h, h->t[i], &v);
        cb(&v, arg);
    }
}

void sl_health_stop(struct sl_health *h, void (*done)(void *arg), void *arg)
{
    h->stopping = true;
    h->done = done;
    h->done_arg = arg;
    uv_timer_stop(&h->timer);
    maybe_finish(h);
}
