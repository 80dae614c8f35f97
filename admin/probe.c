#include "admin/probe.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PROBE_MAX 16 /* members followed; Raft clusters are small */

struct probe_conn;

struct result {
    uint64_t id;
    bool known, reachable, in_flight;
    uint64_t last_ok;        /* loop time (ms) of the last successful probe; 0 = never */
    struct probe_conn *conn; /* the probe in flight, if any */
};

struct sl_probe {
    uv_loop_t *loop;
    uv_timer_t round;
    unsigned interval_ms, timeout_ms;
    sl_probe_source source;
    void *arg;
    struct result results[PROBE_MAX];
    unsigned live; /* probe connections not freed yet */
    bool closing, round_closed;
    void (*done)(void *arg);
    void *done_arg;
};

/* One probe: its own handles, so that a slow member never holds up the others. */
struct probe_conn {
    struct sl_probe *p;
    uint64_t id;
    uv_tcp_t tcp;
    uv_connect_t req;
    uv_timer_t timer;
    bool finished;
    int open_handles;
};

static void maybe_free(struct sl_probe *p)
{
    if (!p->closing || !p->round_closed || p->live > 0)
        return;
    void (*done)(void *) = p->done;
    void *arg = p->done_arg;
    free(p);
    if (done)
        done(arg);
}

static struct result *slot(struct sl_probe *p, uint64_t id, bool create)
{
    for (size_t i = 0; i < PROBE_MAX; i++)
        if (p->results[i].known && p->results[i].id == id)
            return &p->results[i];
    if (!create)
        return NULL;
    for (size_t i = 0; i < PROBE_MAX; i++) {
        if (!p->results[i].known) {
            memset(&p->results[i], 0, sizeof p->results[i]);
            p->results[i].id = id;
            p->results[i].known = true;
            return &p->results[i];
        }
    }
    return NULL;
}

static void on_conn_closed(uv_handle_t *h)
{
    struct probe_conn *c = h->data;
    if (--c->open_handles > 0)
        return;
    struct sl_probe *p = c->p;
    free(c);
    p->live--;
    maybe_free(p);
}

/* Record the outcome once (connect and timeout race) and close the probe's handles. */
static void finish(struct probe_conn *c, bool reachable)
{
    if (c->finished)
        return;
    c->finished = true;
    struct result *r = slot(c->p, c->id, false);
    if (r) {
        r->in_flight = false;
        r->conn = NULL;
        r->reachable = reachable;
        if (reachable)
            r->last_ok = uv_now(c->p->loop);
    }
    uv_close((uv_handle_t *)&c->timer, on_conn_closed);
    uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
}

static void on_connect(uv_connect_t *req, int status)
{
    struct probe_conn *c = req->data;
    finish(c, status == 0);
}

static void on_timeout(uv_timer_t *t)
{
    finish(t->data, false);
}

/* "http://1.2.3.4:80" or "http://[::1]:80" into an address; host names are not resolved here (the
 * loop must not block), so such members stay "not probed". */
static int parse_url(const char *url, struct sockaddr_storage *out)
{
    char host[64];
    unsigned port;
    if (sscanf(url, "http://[%63[0-9a-fA-F:]]:%u", host, &port) == 2)
        return uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)out) == 0 && port <= 65535 ? 0
                                                                                              : -1;
    if (sscanf(url, "http://%63[0-9.]:%u", host, &port) == 2)
        return uv_ip4_addr(host, (int)port, (struct sockaddr_in *)out) == 0 && port <= 65535 ? 0
                                                                                             : -1;
    return -1;
}

static void probe_one(struct sl_probe *p, const struct sl_probe_target *t)
{
    struct sockaddr_storage addr;
    if (parse_url(t->admin_url, &addr) != 0)
        return; /* stays "not probed" */
    struct result *r = slot(p, t->id, true);
    if (!r || r->in_flight)
        return;
    struct probe_conn *c = calloc(1, sizeof *c);
    if (!c)
        return;
    c->p = p;
    c->id = t->id;
    uv_tcp_init(p->loop, &c->tcp);
    uv_timer_init(p->loop, &c->timer);
    c->tcp.data = c->timer.data = c->req.data = c;
    c->open_handles = 2;
    p->live++;
    r->in_flight = true;
    r->conn = c;
    if (uv_tcp_connect(&c->req, &c->tcp, (const struct sockaddr *)&addr, on_connect) != 0) {
        finish(c, false);
        return;
    }
    uv_timer_start(&c->timer, on_timeout, p->timeout_ms, 0);
}

static void on_round(uv_timer_t *t)
{
    struct sl_probe *p = t->data;
    struct sl_probe_target targets[PROBE_MAX];
    size_t n = p->source(p->arg, targets, PROBE_MAX);
    for (size_t i = 0; i < n && i < PROBE_MAX; i++)
        probe_one(p, &targets[i]);
}

struct sl_probe *sl_probe_start(uv_loop_t *loop, unsigned interval_ms, unsigned timeout_ms,
                                sl_probe_source source, void *arg)
{
    struct sl_probe *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->loop = loop;
    p->interval_ms = interval_ms;
    p->timeout_ms = timeout_ms;
    p->source = source;
    p->arg = arg;
    uv_timer_init(loop, &p->round);
    p->round.data = p;
    uv_timer_start(&p->round, on_round, 0, interval_ms);
    return p;
}

int sl_probe_result(const struct sl_probe *p, uint64_t id, bool *reachable,
                    uint64_t *last_ok_ms_ago)
{
    for (size_t i = 0; i < PROBE_MAX; i++) {
        const struct result *r = &p->results[i];
        if (!r->known || r->id != id || (!r->reachable && r->last_ok == 0 && r->in_flight))
            continue;
        *reachable = r->reachable;
        *last_ok_ms_ago = r->last_ok ? uv_now(p->loop) - r->last_ok : UINT64_MAX;
        return 0;
    }
    return -1;
}

static void on_round_closed(uv_handle_t *h)
{
    struct sl_probe *p = h->data;
    p->round_closed = true;
    maybe_free(p);
}

void sl_probe_close(struct sl_probe *p, void (*done)(void *arg), void *arg)
{
    p->closing = true;
    p->done = done;
    p->done_arg = arg;
    uv_close((uv_handle_t *)&p->round, on_round_closed);
    /* Probes in flight end now; each frees itself and the last one frees the prober. */
    for (size_t i = 0; i < PROBE_MAX; i++)
        if (p->results[i].known && p->results[i].conn)
            finish(p->results[i].conn, false);
}
