#include "admin/server.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include "base/list.h"
#include "base/log.h"
#include "base/stream.h"

/* Read-ahead held by a connection's stream. The parser copies what it takes, so the buffer is
 * empty when a read starts (reading stops while a request is being handled); but one TLS read
 * decrypts up to 64 KiB of ciphertext in 16 KiB steps (base/stream.c), and all of it must fit. */
#define CONN_IN_LIMIT  (128u * 1024u)
#define LISTEN_BACKLOG 128
#define REALM          "Bearer realm=\"sluice\""

struct handler {
    sl_admin_handler fn;
    void *arg;
};

struct sl_admin_server {
    uv_loop_t *loop;
    uv_tcp_t listener;
    SSL_CTX *tls;
    uint8_t token_hash[SHA256_DIGEST_LENGTH];
    unsigned max_connections;
    unsigned idle_timeout_ms;
    size_t max_header, max_body;
    int port;
    struct handler handlers[SL_ROUTE_COUNT];
    struct sl_list conns;
    unsigned nconns;
    uint64_t next_id;
    bool closing, listener_closed;
    void (*done)(void *arg);
    void *done_arg;
};

struct sl_admin_conn {
    struct sl_stream s;
    uv_timer_t timer;
    struct sl_list link;
    struct sl_admin_server *srv;
    struct sl_http_parser parser;
    struct sl_admin_request *pending; /* handed to a handler, not answered yet */
    uint64_t id;
    bool dispatching; /* inside dispatch: a reply then must not re-enter the read loop */
    bool closing;
};

/* ---- server life cycle ------------------------------------------------------------------------
 */

static void server_maybe_done(struct sl_admin_server *srv)
{
    if (!srv->closing || !srv->listener_closed || srv->nconns > 0)
        return;
    void (*done)(void *) = srv->done;
    void *arg = srv->done_arg;
    free(srv);
    if (done)
        done(arg);
}

static void on_listener_closed(uv_handle_t *h)
{
    struct sl_admin_server *srv = h->data;
    srv->listener_closed = true;
    server_maybe_done(srv);
}

/* ---- connections ------------------------------------------------------------------------------
 */

static void on_timer_closed(uv_handle_t *h)
{
    struct sl_admin_conn *c = h->data;
    struct sl_admin_server *srv = c->srv;
    sl_http_parser_free(&c->parser);
    sl_list_remove(&c->link);
    srv->nconns--;
    free(c);
    server_maybe_done(srv);
}

static void on_conn_closed(struct sl_stream *st)
{
    struct sl_admin_conn *c = st->owner;
    uv_close((uv_handle_t *)&c->timer, on_timer_closed);
}

/* Graceful close (pending writes are flushed). A request still with its handler is orphaned: the
 * handler's reply will find conn NULL and only free it. */
static void conn_close(struct sl_admin_conn *c)
{
    if (c->closing)
        return;
    c->closing = true;
    if (c->pending) {
        c->pending->conn = NULL;
        c->pending = NULL;
    }
    uv_timer_stop(&c->timer);
    sl_stream_close(&c->s);
}

static void on_idle_timeout(uv_timer_t *t)
{
    struct sl_admin_conn *c = t->data;
    sl_debug(0, "admin connection %" PRIu64 " idle, closing", c->id);
    conn_close(c);
}

static void arm_idle_timer(struct sl_admin_conn *c)
{
    uv_timer_start(&c->timer, on_idle_timeout, c->srv->idle_timeout_ms, 0);
}

/* Write a complete response; a response that cannot be built (CR/LF in a header value, no memory)
 * becomes a bare 500 and the connection closes. */
static void send_response(struct sl_admin_conn *c, const struct sl_http_response *r)
{
    static const char fallback[] = "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n"
                                   "Connection: close\r\n\r\n";
    struct sl_buf out = {0};
    if (sl_http_response_build(&out, r) == 0) {
        sl_stream_write(&c->s, out.data, out.len);
    } else {
        sl_error(0, "admin connection %" PRIu64 ": could not build a %d response", c->id,
                 r->status);
        sl_stream_write(&c->s, fallback, sizeof fallback - 1);
        conn_close(c);
    }
    sl_buf_free(&out);
}

/* Answer a request the parser refused and close: the byte stream cannot be trusted any more. */
static void conn_fail(struct sl_admin_conn *c, int status, const char *detail)
{
    json_t *p = sl_http_problem(status, NULL, NULL, detail);
    char *body = p ? json_dumps(p, JSON_COMPACT) : NULL;
    struct sl_http_response r = {
        .status = status,
        .content_type = SL_HTTP_PROBLEM_TYPE,
        .body = body,
        .body_len = body ? strlen(body) : 0,
        .close = true,
        .date = time(NULL),
    };
    sl_debug(0, "admin connection %" PRIu64 ": bad request (%d %s)", c->id, status, detail);
    send_response(c, &r);
    free(body);
    json_decref(p);
    conn_close(c);
}

static bool authorized(const struct sl_admin_server *srv, const char *h)
{
    uint8_t digest[SHA256_DIGEST_LENGTH];
    /* RFC 9110: the scheme is case-insensitive and followed by one or more spaces. */
    if (!h || strncasecmp(h, "Bearer", 6) != 0 || h[6] != ' ')
        return false;
    const char *tok = h + 7;
    while (*tok == ' ')
        tok++;
    /* Comparing digests keeps the time independent of where (and whether) the lengths differ. */
    SHA256((const unsigned char *)tok, strlen(tok), digest);
    return CRYPTO_memcmp(digest, srv->token_hash, sizeof digest) == 0;
}

static void dispatch(struct sl_admin_conn *c, struct sl_admin_request *rq)
{
    struct sl_admin_server *srv = c->srv;
    enum sl_route_result rr = sl_route(rq->http.method, rq->http.path, &rq->route);
    bool open_route = rr == SL_ROUTE_OK && rq->route.id == SL_ROUTE_HEALTH;
    char detail[160];

    /* Authentication comes before 404/405 so that an anonymous client learns nothing about paths.
     */
    if (!open_route && !authorized(srv, rq->http.authorization)) {
        bool sent = rq->http.authorization != NULL;
        struct sl_http_response head = {
            .status = 401,
            .content_type = SL_HTTP_PROBLEM_TYPE,
            .www_authenticate = sent ? REALM ", error=\"invalid_token\"" : REALM,
        };
        sl_admin_reply_json(
            rq, &head,
            sl_http_problem(401, NULL, NULL,
                            sent ? "the bearer token is not valid" : "a bearer token is required"));
        return;
    }
    switch (rr) {
    case SL_ROUTE_NOT_FOUND: sl_admin_reply_problem(rq, 404, "no such resource"); return;
    case SL_ROUTE_BAD_PATH:
        sl_admin_reply_problem(rq, 400,
                               "a path segment has an invalid percent escape, a NUL "
                               "byte, invalid UTF-8, or is too long");
        return;
    case SL_ROUTE_BAD_METHOD: {
        struct sl_http_response head = {
            .status = 405, .content_type = SL_HTTP_PROBLEM_TYPE, .allow = rq->route.allow};
        snprintf(detail, sizeof detail, "%s is not allowed here; allowed: %s", rq->http.method,
                 rq->route.allow);
        sl_admin_reply_json(rq, &head, sl_http_problem(405, NULL, NULL, detail));
        return;
    }
    case SL_ROUTE_OK: break;
    }
    const struct handler *h = &srv->handlers[rq->route.id];
    if (!h->fn) {
        /* Routes this server was given no handler for (the configuration store's, on a node that
         * runs from a file): say which, rather than pretending the resource does not exist. */
        snprintf(detail, sizeof detail,
                 "%s needs the configuration store; this node runs from a configuration file",
                 sl_route_name(rq->route.id));
        sl_admin_reply_problem(rq, 501, detail);
        return;
    }
    h->fn(rq, h->arg);
}

/* Parse and dispatch requests from the read buffer, one at a time. */
static void conn_process(struct sl_admin_conn *c)
{
    while (!c->pending && !c->closing) {
        struct sl_http_request req;
        size_t used;
        enum sl_http_result r =
            sl_http_parse(&c->parser, sl_buf_head(&c->s.in), sl_buf_avail(&c->s.in), &used, &req);
        sl_buf_consume(&c->s.in, used);
        if (r == SL_HTTP_ERROR) {
            conn_fail(c, c->parser.status, c->parser.detail);
            return;
        }
        if (r == SL_HTTP_NEED_MORE) {
            if (c->parser.send_continue) {
                static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
                c->parser.send_continue = false;
                sl_stream_write(&c->s, cont, sizeof cont - 1);
            }
            return;
        }
        struct sl_admin_request *rq = calloc(1, sizeof *rq);
        if (!rq) {
            sl_http_request_free(&req);
            conn_fail(c, 500, "out of memory");
            return;
        }
        rq->http = req;
        rq->conn = c;
        c->pending = rq;
        uv_timer_stop(&c->timer);
        c->dispatching = true;
        dispatch(c, rq);
        c->dispatching = false;
        /* Answered later: stop reading so that pipelined bytes wait in the socket. */
        if (c->pending && !c->closing)
            sl_stream_read_stop(&c->s);
    }
}

static void on_conn_read(struct sl_stream *st)
{
    conn_process(st->owner);
}

static void on_conn_error(struct sl_stream *st, int status)
{
    struct sl_admin_conn *c = st->owner;
    if (status != UV_EOF && status != UV_ECONNRESET)
        sl_debug(0, "admin connection %" PRIu64 ": %s", c->id, uv_strerror(status));
    conn_close(c);
}

static const struct sl_stream_ops conn_ops = {
    .on_read = on_conn_read,
    .on_error = on_conn_error,
    .on_closed = on_conn_closed,
};

static void on_connection(uv_stream_t *listener, int status)
{
    struct sl_admin_server *srv = listener->data;
    if (status < 0) {
        sl_warn(0, "admin accept failed: %s", uv_strerror(status));
        return;
    }
    struct sl_admin_conn *c = calloc(1, sizeof *c);
    if (!c || sl_stream_init(srv->loop, &c->s, &conn_ops, c, CONN_IN_LIMIT) != 0) {
        /* Without uv_accept libuv stops watching the listener, so the admin API stops accepting;
         * said loudly, as out of memory leaves the whole process in trouble anyway. */
        free(c);
        sl_error(0, "admin accept failed: out of memory; no further admin connections");
        return;
    }
    c->srv = srv;
    c->id = ++srv->next_id;
    sl_http_parser_init(&c->parser, srv->max_header, srv->max_body);
    uv_timer_init(srv->loop, &c->timer);
    c->timer.data = c;
    sl_list_push_back(&srv->conns, &c->link);
    srv->nconns++;
    int rc = sl_stream_accept(&c->s, listener);
    if (rc == 0 && srv->nconns > srv->max_connections) {
        sl_warn(0, "admin connection refused: %u connections open", srv->nconns - 1);
        rc = UV_EMFILE;
    }
    if (rc == 0 && srv->tls)
        rc = sl_stream_tls_accept(&c->s, srv->tls);
    if (rc < 0) {
        conn_close(c);
        return;
    }
    arm_idle_timer(c);
}

int sl_admin_server_start(uv_loop_t *loop, const struct sl_admin_config *cfg,
                          struct sl_admin_server **out, char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    int rc;

    if (!cfg->token || !*cfg->token) {
        snprintf(err, errlen, "the admin API needs a bearer token");
        return UV_EINVAL;
    }
    if (uv_ip4_addr(cfg->host, cfg->port, (struct sockaddr_in *)&ss) != 0 &&
        uv_ip6_addr(cfg->host, cfg->port, (struct sockaddr_in6 *)&ss) != 0) {
        snprintf(err, errlen, "admin address \"%s\" is not an IP address", cfg->host);
        return UV_EINVAL;
    }
    struct sl_admin_server *srv = calloc(1, sizeof *srv);
    if (!srv) {
        snprintf(err, errlen, "out of memory");
        return UV_ENOMEM;
    }
    srv->loop = loop;
    srv->tls = cfg->tls;
    SHA256((const unsigned char *)cfg->token, strlen(cfg->token), srv->token_hash);
    srv->max_connections =
        cfg->max_connections ? cfg->max_connections : SL_ADMIN_MAX_CONNECTIONS_DEFAULT;
    srv->idle_timeout_ms =
        cfg->idle_timeout_ms ? cfg->idle_timeout_ms : SL_ADMIN_IDLE_TIMEOUT_DEFAULT_MS;
    srv->max_header = cfg->max_header;
    srv->max_body = cfg->max_body;
    sl_list_init(&srv->conns);
    uv_tcp_init(loop, &srv->listener);
    srv->listener.data = srv;
    rc = uv_tcp_bind(&srv->listener, (const struct sockaddr *)&ss, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&srv->listener, LISTEN_BACKLOG, on_connection);
    if (rc == 0) {
        int len = sizeof ss;
        rc = uv_tcp_getsockname(&srv->listener, (struct sockaddr *)&ss, &len);
        srv->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                   : ((struct sockaddr_in *)&ss)->sin_port);
    }
    if (rc < 0) {
        snprintf(err, errlen, "admin listen on %s:%d: %s", cfg->host, cfg->port, uv_strerror(rc));
        /* The handle must be closed before its memory goes: free in the close callback. */
        srv->closing = true;
        uv_close((uv_handle_t *)&srv->listener, on_listener_closed);
        return rc;
    }
    sl_info(0, "admin API listening on %s:%d%s", cfg->host, srv->port, srv->tls ? " (TLS)" : "");
    *out = srv;
    return 0;
}

int sl_admin_server_port(const struct sl_admin_server *srv)
{
    return srv->port;
}

uv_loop_t *sl_admin_server_loop(const struct sl_admin_server *srv)
{
    return srv->loop;
}

void sl_admin_handle(struct sl_admin_server *srv, enum sl_route_id id, sl_admin_handler fn,
                     void *arg)
{
    if ((unsigned)id < SL_ROUTE_COUNT) {
        srv->handlers[id].fn = fn;
        srv->handlers[id].arg = arg;
    }
}

void sl_admin_server_close(struct sl_admin_server *srv, void (*done)(void *arg), void *arg)
{
    struct sl_list *pos, *tmp;
    if (srv->closing)
        return;
    srv->closing = true;
    srv->done = done;
    srv->done_arg = arg;
    sl_list_for_each_safe (pos, tmp, &srv->conns) {
        struct sl_admin_conn *c = sl_container_of(pos, struct sl_admin_conn, link);
        conn_close(c);
    }
    uv_close((uv_handle_t *)&srv->listener, on_listener_closed);
}

/* ---- replies ----------------------------------------------------------------------------------
 */

void sl_admin_reply(struct sl_admin_request *rq, const struct sl_http_response *r)
{
    struct sl_admin_conn *c = rq->conn;
    if (c) {
        struct sl_http_response resp = *r;
        resp.close = resp.close || !rq->http.keep_alive || c->srv->closing;
        resp.date = time(NULL);
        sl_debug(0, "admin connection %" PRIu64 ": %s %s -> %d", c->id, rq->http.method,
                 rq->http.path, resp.status);
        c->pending = NULL;
        send_response(c, &resp);
        if (resp.close) {
            conn_close(c);
        } else if (!c->closing) {
            arm_idle_timer(c);
            /* An asynchronous reply resumes the read loop that dispatch left. */
            if (!c->dispatching) {
                sl_stream_read_start(&c->s);
                conn_process(c);
            }
        }
    }
    sl_http_request_free(&rq->http);
    free(rq);
}

void sl_admin_reply_json(struct sl_admin_request *rq, const struct sl_http_response *head,
                         json_t *body)
{
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (!text) {
        struct sl_http_response r = {.status = 500, .close = true};
        sl_admin_reply(rq, &r);
        return;
    }
    struct sl_http_response r = *head;
    if (!r.content_type)
        r.content_type = "application/json";
    r.body = text;
    r.body_len = strlen(text);
    sl_admin_reply(rq, &r);
    free(text);
}

void sl_admin_reply_problem(struct sl_admin_request *rq, int status, const char *detail)
{
    struct sl_http_response head = {.status = status, .content_type = SL_HTTP_PROBLEM_TYPE};
    sl_admin_reply_json(rq, &head, sl_http_problem(status, NULL, NULL, detail));
}
