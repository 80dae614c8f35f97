/* Pools: which backend a session gets, when connections open and close, who waits.
 *
 * Limits are per target: at most sl_target_limit() connections (max_connections_percent of the
 * database's @@max_connections) counting every state, from the moment a connect starts until the
 * database has closed the connection; idle ones beyond max_idle_connections_percent of
 * @@max_connections are closed when they come back. Sessions that find nothing wait in one FIFO per
 * target, so the first to ask is the first served whatever its share; each waits at most
 * connection_borrow_timeout (then error 9501). */
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "pool/internal.h"

#define RETRY_MS 500 /* reconnect back-off while a target is unavailable */

unsigned sl_target_limit(const struct sl_target *t)
{
    /* Until the database has told us its max_connections, one connection finds out. */
    if (t->db_max_connections == 0)
        return 1;
    uint64_t n =
        (uint64_t)t->db_max_connections * t->proxy->cfg->pool.max_connections_percent / 100;
    return n ? (unsigned)n : 1;
}

static unsigned idle_limit(const struct sl_target *t)
{
    if (t->db_max_connections == 0)
        return 1;
    return (unsigned)((uint64_t)t->db_max_connections *
                      t->proxy->cfg->pool.max_idle_connections_percent / 100);
}

struct sl_share *sl_share_get(struct sl_target *t, struct sl_user *u, uint8_t collation,
                              uint32_t class_caps, uint32_t ext_caps)
{
    struct sl_list *pos, *tmp;
    sl_list_for_each_safe (pos, tmp, &t->shares) {
        struct sl_share *sh = sl_container_of(pos, struct sl_share, link);
        if (sh->user == u && sh->collation == collation && sh->class_caps == class_caps &&
            sh->ext_caps == ext_caps)
            return sh;
    }
    struct sl_share *sh = calloc(1, sizeof *sh);
    if (!sh)
        return NULL;
    sh->target = t;
    sh->user = u;
    sh->collation = collation;
    sh->class_caps = class_caps;
    sh->ext_caps = ext_caps;
    sl_list_init(&sh->idle);
    sl_vars_init(&sh->baseline);
    sl_list_push_back(&t->shares, &sh->link);
    return sh;
}

void sl_pool_unlink_affinity(struct sl_backend *b)
{
    if (b->affine) {
        b->affine->affine = NULL;
        b->affine = NULL;
    }
}

/* A session that has no current database cannot use a backend that has one: there is no command
 * that deselects a database (COM_RESET_CONNECTION keeps it), and unqualified names would resolve
 * in it. Such a session gets a backend without one, a new one if need be. */
static bool usable(const struct sl_backend *b, const struct sl_vars *want)
{
    return want->schema || !b->have.schema;
}

/* An idle backend for session s: the one affine to it if still idle; otherwise one already in the
 * session's state, then any other, preferring those no other session is affine to. */
static struct sl_backend *take_idle(struct sl_session *s)
{
    struct sl_share *sh = s->share;
    const struct sl_vars *want = &s->want;
    struct sl_list *pos, *tmp;
    struct sl_backend *first = NULL, *best = NULL, *claimed = NULL;
    if (s->affine && s->affine->share == sh && s->affine->state == SL_BE_IDLE &&
        usable(s->affine, want))
        best = s->affine;
    sl_list_for_each_safe (pos, tmp, &sh->idle) {
        if (best)
            break;
        struct sl_backend *b = sl_container_of(pos, struct sl_backend, link);
        if (!usable(b, want))
            continue;
        if (b->affine) {
            if (!claimed)
                claimed = b;
            continue;
        }
        if (!first)
            first = b;
        if (b->have.hash == want->hash && sl_vars_equal(&b->have, want))
            best = b;
    }
    /* Only backends others are affine to: take one, unless one of this share is being reset and
     * will be idle in a moment (waiting for it keeps the others' LAST_INSERT_ID()). */
    if (!best && !first && claimed && sh->resetting > 0)
        return NULL;
    if (!best)
        best = first ? first : claimed;
    if (best) {
        sl_pool_unlink_affinity(best);
        sl_list_remove(&best->link);
        sh->target->idle--;
        best->state = SL_BE_RELAYING;
    }
    return best;
}

struct sl_backend *sl_pool_oldest_idle(struct sl_target *t)
{
    struct sl_backend *oldest = NULL;
    struct sl_list *pos, *tmp;
    sl_list_for_each_safe (pos, tmp, &t->shares) {
        struct sl_share *sh = sl_container_of(pos, struct sl_share, link);
        if (sl_list_empty(&sh->idle))
            continue;
        struct sl_backend *b = sl_container_of(sh->idle.prev, struct sl_backend, link);
        if (!oldest || b->idle_since < oldest->idle_since)
            oldest = b;
    }
    return oldest;
}

static void on_retry(uv_timer_t *timer);

/* Open connections for waiters that no connection in progress will serve, within the limit. */
static void open_for_waiters(struct sl_target *t)
{
    struct sl_list *pos, *tmp;
    sl_list_for_each_safe (pos, tmp, &t->shares) {
        struct sl_share *sh = sl_container_of(pos, struct sl_share, link);
        sh->promised = sh->connecting + sh->resetting; /* both are idle soon */
    }
    sl_list_for_each_safe (pos, tmp, &t->waiters) {
        struct sl_session *s = sl_container_of(pos, struct sl_session, wait_link);
        struct sl_share *sh = s->share;
        if (sh->promised > 0) {
            sh->promised--;
            continue;
        }
        if (t->health == SL_TARGET_UNAVAILABLE && t->retry_armed)
            return; /* wait for the back-off before trying again */
        bool at_limit = t->open >= sl_target_limit(t);
        if (at_limit || sl_quota_full(t)) {
            /* Make room by closing an idle backend another share (or, for the node's quota,
             * another proxy of the same budget) does not need right now. */
            struct sl_backend *victim = at_limit ? sl_pool_oldest_idle(t) : sl_quota_oldest_idle(t);
            if (!victim)
                return;
            sl_backend_close(victim); /* its slot frees once the database let it go */
            return;
        }
        if (sl_backend_open(sh) != 0)
            return;
    }
}

/* Hand idle backends to waiters, first come first served. */
void sl_pool_dispatch(struct sl_target *t)
{
    struct sl_list *pos, *tmp;
    sl_list_for_each_safe (pos, tmp, &t->waiters) {
        struct sl_session *s = sl_container_of(pos, struct sl_session, wait_link);
        struct sl_backend *b = take_idle(s);
        if (!b)
            continue;
        sl_list_remove(&s->wait_link);
        sl_session_got_backend(s, b);
    }
    open_for_waiters(t);
}

/* Where a session's next transaction goes: the writer; for a READ_ONLY endpoint the reader with
 * the fewest connections in use (or waited for), and the writer when no reader is up. */
static struct sl_target *route(struct sl_proxy *p)
{
    if (!p->cfg->read_only_routing)
        return p->writer;
    struct sl_target *best = NULL;
    unsigned best_load = 0;
    /* Equally busy readers take turns: the search starts one further each time. */
    size_t start = p->next_reader++;
    for (size_t i = 0; i < p->n_targets; i++) {
        struct sl_target *t = &p->targets[(start + i) % p->n_targets];
        if (!t->reader || t == p->writer || t->health == SL_TARGET_UNAVAILABLE)
            continue;
        unsigned load = t->open - t->idle + sl_pool_waiting(t);
        if (!best || load < best_load) {
            best = t;
            best_load = load;
        }
    }
    return best ? best : p->writer;
}

void sl_pool_borrow(struct sl_session *s)
{
    struct sl_target *t = s->share->target, *want = route(s->proxy);
    if (t != want) {
        /* The writer moved since this session last borrowed (or, on a READ_ONLY endpoint,
         * another reader is less busy): its next command goes there, with the same user,
         * collation and capabilities. */
        const struct sl_share *old = s->share;
        struct sl_share *sh =
            sl_share_get(want, s->user, old->collation, old->class_caps, old->ext_caps);
        if (sh) {
            s->share = sh;
            t = sh->target;
        }
    }
    s->wait_started = sl_now(s->proxy->worker);
    if (sl_list_empty(&t->waiters)) {
        struct sl_backend *b = take_idle(s);
        if (b) {
            sl_session_got_backend(s, b);
            return;
        }
    }
    sl_list_push_back(&t->waiters, &s->wait_link);
    s->proxy->worker->stats.borrow_waits++;
    sl_session_arm_borrow_timer(s);
    if (s->proxy->cfg->pool.connection_borrow_timeout == 0 &&
        (t->open >= sl_target_limit(t) || sl_quota_full(t)) && !sl_quota_oldest_idle(t)) {
        return; /* the timer fires at once with error 9501 */
    }
    open_for_waiters(t);
}

void sl_pool_reroute_waiters(struct sl_target *t)
{
    if (!t->proxy->cfg->read_only_routing)
        return;
    struct sl_list *pos, *tmp;
    sl_list_for_each_safe (pos, tmp, &t->waiters) {
        struct sl_session *s = sl_container_of(pos, struct sl_session, wait_link);
        if (route(t->proxy) == t)
            return; /* still the best place: the rest wait here too */
        sl_pool_cancel_wait(s);
        sl_pool_borrow(s);
    }
}

void sl_pool_cancel_wait(struct sl_session *s)
{
    if (sl_list_linked(&s->wait_link))
        sl_list_remove(&s->wait_link);
}

/* The node's quota for t's budget is used up while sessions of another target of the same budget
 * wait: a connection coming back should close rather than idle. */
static bool quota_wanted_elsewhere(const struct sl_target *t)
{
    const struct sl_quota *q = t->quota;
    return q && q->open >= q->limit && sl_quota_waiting(t);
}

void sl_pool_release(struct sl_backend *b, bool reset)
{
    struct sl_share *sh = b->share;
    struct sl_target *t = sh->target;
    b->session = NULL;
    if (reset) {
        sl_backend_reset(b);
        return;
    }
    if (sl_buf_avail(&b->bs.in) > 0 || b->chunk_left || b->infile) {
        sl_backend_close(b); /* out of step with the protocol: never lend it again */
        return;
    }
    /* The limit or the node's quota shrank: connections close as they come back, even with sessions
     * waiting (they get one once the count is under the new limit). */
    if (t->open > sl_target_limit(t) || (t->quota && t->quota->open > t->quota->limit)) {
        sl_backend_close(b);
        return;
    }
    /* A waiter of the same share takes it as it is. */
    struct sl_list *pos, *tmp;
    sl_list_for_each_safe (pos, tmp, &t->waiters) {
        struct sl_session *s = sl_container_of(pos, struct sl_session, wait_link);
        if (s->share != sh)
            break; /* the first waiter belongs elsewhere: FIFO order wins */
        sl_list_remove(&s->wait_link);
        b->state = SL_BE_RELAYING;
        sl_session_got_backend(s, b);
        return;
    }
    if (!sl_list_empty(&t->waiters) || t->idle >= idle_limit(t) || quota_wanted_elsewhere(t) ||
        t->proxy->worker->draining || t->proxy->removed) {
        /* Someone of another share waits, the idle allowance is used up, another proxy of the
         * budget waits for the slot, the proxy was retired, or the node is shutting down. */
        sl_backend_close(b);
        return;
    }
    b->state = SL_BE_IDLE;
    b->idle_since = sl_now(t->proxy->worker);
    sl_list_push_front(&sh->idle, &b->link);
    t->idle++;
    sl_buf_shrink(&b->bs.in, 0);
}

void sl_pool_backend_ready(struct sl_backend *b)
{
    b->state = SL_BE_RELAYING;
    sl_pool_release(b, false);
    sl_pool_dispatch(b->share->target);
}

void sl_pool_backend_gone(struct sl_backend *b)
{
    struct sl_share *sh = b->share;
    struct sl_target *t = sh->target;
    t->open--;
    sh->total--;
    sl_list_remove(&b->target_link);
    t->proxy->worker->stats.backend_connections_active--;
    if (t->quota)
        t->quota->open--;
    if (!t->proxy->worker->draining) {
        sl_pool_dispatch(t);
        sl_quota_released(t);
    }
}

static void on_retry(uv_timer_t *timer)
{
    struct sl_target *t = timer->data;
    t->retry_armed = false;
    open_for_waiters(t);
}

void sl_pool_backend_failed(struct sl_share *share, const char *reason, const uint8_t *err_pkt,
                            size_t err_len)
{
    struct sl_target *t = share->target;
    if (t->health != SL_TARGET_UNAVAILABLE || strcmp(t->health_reason, reason) != 0)
        sl_warn(0, "target %s:%u is UNAVAILABLE (%s)", t->host, t->port, reason);
    t->health = SL_TARGET_UNAVAILABLE;
    snprintf(t->health_reason, sizeof t->health_reason, "%s", reason);
    if (err_pkt) {
        /* The database refused the login (wrong secret, too many connections): waiters of this
         * share get its answer now rather than a timeout later. */
        struct sl_list *pos, *tmp;
        sl_list_for_each_safe (pos, tmp, &t->waiters) {
            struct sl_session *s = sl_container_of(pos, struct sl_session, wait_link);
            if (s->share != share)
                continue;
            sl_list_remove(&s->wait_link);
            sl_session_prepare_failed(s, err_pkt, err_len);
        }
    }
    if (!t->retry_armed && !t->proxy->worker->draining) {
        t->retry_armed = true;
        uv_timer_start(&t->retry_timer, on_retry, RETRY_MS, 0);
    }
    sl_pool_reroute_waiters(t); /* a READ_ONLY endpoint's readers can stand in for each other */
}

unsigned sl_pool_lent(struct sl_target *t)
{
    unsigned n = 0;
    struct sl_list *pos, *tmp;
    sl_list_for_each_safe (pos, tmp, &t->backends) {
        const struct sl_backend *b = sl_container_of(pos, struct sl_backend, target_link);
        n += b->state == SL_BE_PREPARING || b->state == SL_BE_RELAYING ||
             b->state == SL_BE_RESETTING;
    }
    return n;
}

unsigned sl_pool_waiting(struct sl_target *t)
{
    unsigned n = 0;
    struct sl_list *pos, *tmp;
    sl_list_for_each_safe (pos, tmp, &t->waiters)
        n++;
    return n;
}
