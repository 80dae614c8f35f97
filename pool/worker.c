/* The worker: listeners, proxies, users and targets built from a configuration snapshot; reload and
 * drain. */
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "pool/internal.h"

static void on_connection(uv_stream_t *server, int status)
{
    struct sl_proxy *p = server->data;
    if (status < 0) {
        sl_warn(0, "proxy %s: accept failed: %s", p->cfg->name, uv_strerror(status));
        return;
    }
    sl_session_accept(p);
}

static int resolve(const char *host, uint16_t port, struct sockaddr_storage *out)
{
    struct addrinfo hints, *res;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    char ports[8];
    snprintf(ports, sizeof ports, "%u", port);
    if (getaddrinfo(host, ports, &hints, &res) != 0)
        return -1;
    memcpy(out, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    return 0;
}

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

static struct sl_user *user_new(const struct sl_auth_config *a)
{
    struct sl_user *u = calloc(1, sizeof *u);
    if (!u)
        return NULL;
    u->cfg.secret = strdup(a->secret);
    u->cfg.client_auth = a->client_auth;
    u->cfg.description = dup_or_null(a->description);
    if (!u->cfg.secret) {
        free(u);
        return NULL;
    }
    return u;
}

static void user_free(struct sl_user *u)
{
    sl_secret_wipe(&u->secret);
    free(u->cfg.secret);
    free(u->cfg.description);
    free(u);
}

/* Make the proxy's users match its configuration; users no longer listed stop accepting logins but
 * stay allocated, since sessions and pools still point at them. */
static int sync_users(struct sl_proxy *p)
{
    const struct sl_proxy_config *pc = p->cfg;
    for (size_t i = 0; i < p->n_users; i++)
        p->users[i]->removed = true;
    for (size_t j = 0; j < pc->n_auth; j++) {
        struct sl_user *found = NULL;
        for (size_t i = 0; i < p->n_users; i++)
            if (strcmp(p->users[i]->cfg.secret, pc->auth[j].secret) == 0)
                found = p->users[i];
        if (!found) {
            struct sl_user **grown = realloc(p->users, (p->n_users + 1) * sizeof *grown);
            if (!grown)
                return -1;
            p->users = grown;
            found = user_new(&pc->auth[j]);
            if (!found)
                return -1;
            p->users[p->n_users++] = found;
        }
        found->removed = false;
        found->cfg.client_auth = pc->auth[j].client_auth;
        found->checked_at = -1e9; /* re-check the secret at the next login */
        if (sl_user_refresh(p->worker, found) != 0)
            sl_warn(0, "proxy %s: secret %s cannot be resolved; its user cannot log in", pc->name,
                    pc->auth[j].secret);
    }
    return 0;
}

static int listen_proxy(struct sl_proxy *p, char *err, size_t errlen)
{
    struct sockaddr_storage addr;
    if (resolve(p->cfg->listen_host, p->cfg->listen_port, &addr) != 0) {
        snprintf(err, errlen, "proxy %s: cannot resolve listen host %s", p->cfg->name,
                 p->cfg->listen_host);
        return -1;
    }
    uv_tcp_init(p->worker->loop, &p->listener);
    p->listener.data = p;
    int rc = uv_tcp_bind(&p->listener, (const struct sockaddr *)&addr, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&p->listener, 1024, on_connection);
    if (rc < 0) {
        snprintf(err, errlen, "proxy %s: cannot listen on %s:%u: %s", p->cfg->name,
                 p->cfg->listen_host, p->cfg->listen_port, uv_strerror(rc));
        uv_close((uv_handle_t *)&p->listener, NULL);
        return -1;
    }
    p->listening = true;
    sl_info(0, "proxy %s listening on %s:%u", p->cfg->name, p->cfg->listen_host,
            p->cfg->listen_port);
    return 0;
}

static void stop_listening(struct sl_proxy *p)
{
    if (p->listening) {
        uv_close((uv_handle_t *)&p->listener, NULL);
        p->listening = false;
    }
}

static struct sl_proxy *proxy_new(struct sl_worker *w, struct sl_proxy_config *pc, char *err,
                                  size_t errlen)
{
    struct sl_proxy *p = calloc(1, sizeof *p);
    if (!p) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    p->worker = w;
    p->cfg = pc;
    p->targets = calloc(pc->n_targets, sizeof *p->targets);
    if (!p->targets) {
        free(p);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    p->n_targets = pc->n_targets;
    for (size_t i = 0; i < pc->n_targets; i++) {
        struct sl_target *t = &p->targets[i];
        t->proxy = p;
        snprintf(t->host, sizeof t->host, "%s", pc->targets[i].host);
        t->port = pc->targets[i].port;
        t->ext_caps = SL_MARIADB_EXT_METADATA;
        sl_list_init(&t->shares);
        sl_list_init(&t->waiters);
        sl_list_init(&t->backends);
        t->quota = sl_quota_for(w, pc, t);
        uv_timer_init(w->loop, &t->retry_timer);
        t->retry_timer.data = t;
        if (resolve(t->host, t->port, &t->addr) != 0)
            sl_warn(0, "proxy %s: cannot resolve target %s yet", pc->name, t->host);
    }
    p->writer = &p->targets[0];
    return p;
}

/* A new init_query sets other defaults: the next backend to finish setup records them. */
static void forget_baselines(struct sl_proxy *p)
{
    for (size_t k = 0; k < p->n_targets; k++) {
        struct sl_list *pos, *tmp;
        sl_list_for_each_safe (pos, tmp, &p->targets[k].shares) {
            struct sl_share *sh = sl_container_of(pos, struct sl_share, link);
            sl_vars_clear(&sh->baseline);
            sh->baseline_known = false;
        }
    }
}

/* A retired proxy keeps no idle connections: only its sessions' own backends remain, and those
 * close when released (sl_pool_release checks the proxy). */
static void close_idle_backends(struct sl_proxy *p)
{
    for (size_t k = 0; k < p->n_targets; k++) {
        struct sl_list *pos, *tmp;
        sl_list_for_each_safe (pos, tmp, &p->targets[k].shares) {
            struct sl_share *sh = sl_container_of(pos, struct sl_share, link);
            while (!sl_list_empty(&sh->idle))
                sl_backend_close(sl_container_of(sh->idle.next, struct sl_backend, link));
        }
    }
}

/* The runtime target of p at tc's address, or NULL. */
static struct sl_target *target_at(struct sl_proxy *p, const struct sl_target_config *tc)
{
    for (size_t k = 0; k < p->n_targets; k++)
        if (strcmp(p->targets[k].host, tc->host) == 0 && p->targets[k].port == tc->port)
            return &p->targets[k];
    return NULL;
}

/* pc names the same targets as p, in any order. */
static bool same_target_set(struct sl_proxy *p, const struct sl_proxy_config *pc)
{
    if (p->n_targets != pc->n_targets)
        return false;
    for (size_t i = 0; i < pc->n_targets; i++)
        if (!target_at(p, &pc->targets[i]))
            return false;
    return true;
}

/* The writer moves to another target of the same proxy. From here on nothing is sent to the old
 * one: sessions borrow on the new writer (sl_pool_borrow), waiters move there, and every
 * connection to the old writer goes now, idle or not. A session that held one recovers as from any
 * lost connection (pool/session.c): its read is sent again, its transaction replayed or failed with
 * a retryable error, its connection to the client kept. */
static void switch_writer(struct sl_proxy *p, struct sl_target *to)
{
    struct sl_target *from = p->writer;
    sl_warn(0, "proxy %s: writer moves from %s:%u to %s:%u", p->cfg->name, from->host, from->port,
            to->host, to->port);
    p->writer = to;
    struct sl_list *pos, *tmp;
    sl_list_for_each_safe (pos, tmp, &from->waiters) {
        struct sl_session *s = sl_container_of(pos, struct sl_session, wait_link);
        sl_pool_cancel_wait(s);
        sl_pool_borrow(s);
    }
    sl_list_for_each_safe (pos, tmp, &from->backends)
        sl_backend_abort(sl_container_of(pos, struct sl_backend, target_link));
}

int sl_worker_start(uv_loop_t *loop, struct sl_config *cfg, struct sl_worker **out, char *err,
                    size_t errlen)
{
    struct sl_worker *w = calloc(1, sizeof *w);
    if (!w) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    w->loop = loop;
    sl_list_init(&w->sessions);
    sl_list_init(&w->quotas);
    uv_timer_init(loop, &w->drain_timer);
    w->drain_timer.data = w;
    if (cfg->tls_cert_file) {
        w->tls = sl_tls_server_ctx(cfg->tls_cert_file, cfg->tls_key_file, err, errlen);
        if (!w->tls)
            goto fail;
    }
    w->cfg = cfg;
    /* One spare slot: a cluster node may start with no proxies, and calloc(0) may return NULL. */
    w->proxies = calloc(cfg->n_proxies + 1, sizeof *w->proxies);
    if (!w->proxies) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < cfg->n_proxies; i++) {
        struct sl_proxy *p = proxy_new(w, &cfg->proxies[i], err, errlen);
        if (!p)
            goto fail;
        w->proxies[w->n_proxies++] = p;
        if (sync_users(p) != 0) {
            snprintf(err, errlen, "out of memory");
            goto fail;
        }
        if (listen_proxy(p, err, errlen) != 0)
            goto fail;
    }
    *out = w;
    return 0;
fail:
    w->cfg = NULL; /* the caller keeps ownership of cfg on failure */
    sl_worker_free(w);
    return -1;
}

int sl_worker_reload(struct sl_worker *w, struct sl_config *cfg, char *err, size_t errlen)
{
    /* Check everything that can fail before changing anything: a reload applies whole or not. */
    SSL_CTX *tls = NULL;
    if (cfg->tls_cert_file) {
        tls = sl_tls_server_ctx(cfg->tls_cert_file, cfg->tls_key_file, err, errlen);
        if (!tls)
            return -1;
    }
    /* + 1: realloc to 0 bytes (no proxies before or after) would free the array. */
    struct sl_proxy **grown =
        realloc(w->proxies, (w->n_proxies + cfg->n_proxies + 1) * sizeof *w->proxies);
    if (!grown) {
        SSL_CTX_free(tls);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    w->proxies = grown;
    if (w->tls)
        SSL_CTX_free(w->tls);
    w->tls = tls;

    size_t old_n = w->n_proxies;
    bool *kept = calloc(old_n + 1, sizeof *kept);
    for (size_t i = 0; i < cfg->n_proxies; i++) {
        struct sl_proxy_config *pc = &cfg->proxies[i];
        struct sl_proxy *p = NULL;
        for (size_t j = 0; j < old_n; j++)
            if (!w->proxies[j]->removed && strcmp(w->proxies[j]->cfg->name, pc->name) == 0)
                p = w->proxies[j], kept[j] = true;
        if (p && !same_target_set(p, pc)) {
            /* Other targets: a new proxy object takes over the listener with new pools, and the
             * old one goes away like a removed proxy (its sessions finish on the old targets).
             * Pools are never re-pointed under a running session. */
            sl_info(0, "proxy %s: targets changed; new sessions use the new targets", pc->name);
            stop_listening(p);
            for (size_t j = 0; j < old_n; j++)
                if (w->proxies[j] == p)
                    kept[j] = false;
            p = NULL;
        }
        if (p) {
            bool moved = strcmp(p->cfg->listen_host, pc->listen_host) != 0 ||
                         p->cfg->listen_port != pc->listen_port;
            const char *oldq = p->cfg->pool.init_query, *newq = pc->pool.init_query;
            if ((oldq == NULL) != (newq == NULL) || (oldq && strcmp(oldq, newq) != 0))
                forget_baselines(p);
            p->cfg = pc;
            struct sl_target *writer = target_at(p, &pc->targets[0]);
            if (writer != p->writer)
                switch_writer(p, writer);
            if (moved) {
                stop_listening(p);
                if (listen_proxy(p, err, errlen) != 0)
                    sl_error(0, "%s", err);
            }
        } else {
            p = proxy_new(w, pc, err, errlen);
            if (!p) {
                sl_error(0, "%s", err);
                continue;
            }
            w->proxies[w->n_proxies++] = p;
            if (listen_proxy(p, err, errlen) != 0)
                sl_error(0, "%s", err);
        }
        sync_users(p);
    }
    for (size_t j = 0; j < old_n; j++) {
        if (!kept || kept[j] || w->proxies[j]->removed)
            continue;
        struct sl_proxy *p = w->proxies[j];
        sl_info(0, "proxy %s retired; its sessions finish on their own", p->cfg->name);
        stop_listening(p);
        p->removed = true;
        for (size_t k = 0; k < p->n_users; k++)
            p->users[k]->removed = true;
        close_idle_backends(p);
    }
    free(kept);
    /* Removed proxies keep reading their (still valid) old settings through a private copy. */
    for (size_t j = 0; j < w->n_proxies; j++) {
        struct sl_proxy *p = w->proxies[j];
        if (p->removed && !p->own_cfg) {
            p->own_cfg = malloc(sizeof *p->own_cfg);
            if (p->own_cfg) {
                *p->own_cfg = *p->cfg;
                p->own_cfg->name = strdup(p->cfg->name);
                p->own_cfg->listen_host = strdup(p->cfg->listen_host);
                p->own_cfg->pool.init_query = dup_or_null(p->cfg->pool.init_query);
                p->own_cfg->auth = NULL;
                p->own_cfg->n_auth = 0;
                p->own_cfg->targets = NULL;
                p->own_cfg->n_targets = 0;
            }
            p->cfg = p->own_cfg;
        }
    }
    sl_config_free(w->cfg);
    w->cfg = cfg;
    sl_info(0, "configuration reloaded: %zu proxies", cfg->n_proxies);
    return 0;
}

static void maybe_drained(struct sl_worker *w)
{
    if (!w->draining || !w->drain_done || !sl_list_empty(&w->sessions))
        return;
    /* Close every idle backend; when the loop has nothing left, the daemon exits. */
    for (size_t i = 0; i < w->n_proxies; i++) {
        struct sl_proxy *p = w->proxies[i];
        for (size_t k = 0; k < p->n_targets; k++)
            uv_timer_stop(&p->targets[k].retry_timer);
        close_idle_backends(p);
    }
    uv_timer_stop(&w->drain_timer);
    void (*done)(void *) = w->drain_done;
    w->drain_done = NULL;
    done(w->drain_arg);
}

void sl_worker_session_gone(struct sl_worker *w)
{
    maybe_drained(w);
}

static void on_drain_deadline(uv_timer_t *timer)
{
    struct sl_worker *w = timer->data;
    sl_info(0, "drain deadline reached; closing the remaining client sessions");
    struct sl_list *pos, *tmp;
    sl_list_for_each_safe (pos, tmp, &w->sessions) {
        struct sl_session *s = sl_container_of(pos, struct sl_session, link);
        sl_session_close(s);
    }
    maybe_drained(w);
}

void sl_worker_drain(struct sl_worker *w, uint64_t timeout_ms, void (*done)(void *arg), void *arg)
{
    w->draining = true;
    w->drain_done = done;
    w->drain_arg = arg;
    for (size_t i = 0; i < w->n_proxies; i++)
        stop_listening(w->proxies[i]);
    /* Sessions between transactions go now (pinned or not); the others when their transaction
     * ends. */
    struct sl_list *pos, *tmp;
    sl_list_for_each_safe (pos, tmp, &w->sessions) {
        struct sl_session *s = sl_container_of(pos, struct sl_session, link);
        if (s->state == SL_SS_WAITING && s->pending == SL_PENDING_COMMAND)
            sl_session_fail(s, 1053, "08S01", "Server shutdown in progress");
        else if (s->state != SL_SS_BUSY && !(s->status & SL_STATUS_IN_TRANS))
            sl_session_close(s);
    }
    sl_info(0, "draining: %s",
            sl_list_empty(&w->sessions) ? "no sessions left" : "waiting for open transactions");
    uv_timer_start(&w->drain_timer, on_drain_deadline, timeout_ms, 0);
    maybe_drained(w);
}

static void free_target(struct sl_target *t)
{
    struct sl_list *pos, *tmp;
    sl_list_for_each_safe (pos, tmp, &t->shares) {
        struct sl_share *sh = sl_container_of(pos, struct sl_share, link);
        sl_list_remove(&sh->link);
        sl_vars_clear(&sh->baseline);
        free(sh);
    }
}

void sl_worker_free(struct sl_worker *w)
{
    if (!w)
        return;
    for (size_t i = 0; i < w->n_proxies; i++) {
        struct sl_proxy *p = w->proxies[i];
        for (size_t k = 0; k < p->n_targets; k++)
            free_target(&p->targets[k]);
        free(p->targets);
        for (size_t k = 0; k < p->n_users; k++)
            user_free(p->users[k]);
        free(p->users);
        if (p->own_cfg) {
            free(p->own_cfg->name);
            free(p->own_cfg->listen_host);
            free(p->own_cfg->pool.init_query);
            free(p->own_cfg);
        }
        free(p);
    }
    free(w->proxies);
    sl_quotas_free(w);
    if (w->tls)
        SSL_CTX_free(w->tls);
    sl_config_free(w->cfg);
    free(w);
}

void sl_worker_state_counts(struct sl_worker *w, struct sl_worker_state_counts *out)
{
    memset(out, 0, sizeof *out);
    struct sl_list *pos, *tmp;
    sl_list_for_each_safe (pos, tmp, &w->sessions) {
        const struct sl_session *s = sl_container_of(pos, struct sl_session, link);
        if (s->state < SL_SS_IDLE)
            out->clients_handshake++;
        else if (s->state == SL_SS_IDLE)
            out->clients_idle++;
        else if (s->state == SL_SS_WAITING)
            out->clients_waiting++;
        else if (s->state == SL_SS_BUSY)
            out->clients_busy++;
    }
    for (size_t i = 0; i < w->n_proxies; i++) {
        struct sl_proxy *p = w->proxies[i];
        for (size_t k = 0; k < p->n_targets; k++) {
            struct sl_target *t = &p->targets[k];
            unsigned connecting = 0;
            /* Closing backends count as in use until the database has let them go. */
            sl_list_for_each_safe (pos, tmp, &t->shares) {
                const struct sl_share *sh = sl_container_of(pos, struct sl_share, link);
                connecting += sh->connecting;
            }
            out->backends_connecting += connecting;
            out->backends_idle += t->idle;
            out->backends_in_use += t->open - t->idle - connecting;
        }
    }
}

_Static_assert(SL_WORKER_PIN_REASONS == SL_PIN_REASON_COUNT, "one stats counter per pin reason");

int sl_worker_target_health(const struct sl_worker *w, const char *proxy, const char *host,
                            uint16_t port, const char **state, const char **reason)
{
    static const char *const names[] = {[SL_TARGET_REGISTERING] = "REGISTERING",
                                        [SL_TARGET_AVAILABLE] = "AVAILABLE",
                                        [SL_TARGET_UNAVAILABLE] = "UNAVAILABLE"};
    for (size_t i = 0; i < w->n_proxies; i++) {
        const struct sl_proxy *p = w->proxies[i];
        if (p->removed || strcmp(p->cfg->name, proxy) != 0)
            continue;
        for (size_t k = 0; k < p->n_targets; k++) {
            const struct sl_target *t = &p->targets[k];
            if (t->port == port && strcmp(t->host, host) == 0) {
                *state = names[t->health];
                *reason = t->health_reason;
                return 0;
            }
        }
    }
    return -1;
}

const struct sl_worker_stats *sl_worker_stats(const struct sl_worker *w)
{
    return &w->stats;
}
