#include "admin/forward.h"

#include <http_parser.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/buf.h"
#include "base/list.h"
#include "base/log.h"
#include "base/stream.h"

struct sl_fwd {
    uv_loop_t *loop;
    unsigned timeout_ms;
    SSL_CTX *tls;         /* for https:// admin URLs; NULL: only http:// */
    struct sl_list calls; /* struct fwd_call.link, until each is freed */
    bool closing;
    void (*done)(void *arg);
    void *done_arg;
};

/* One forwarded request. It lives until its reply is sent and every handle it opened is closed. */
struct fwd_call {
    struct sl_fwd *f;
    struct sl_list link;
    bool pending;                /* no answer given yet */
    struct sl_admin_request *rq; /* a forwarded request; or: */
    sl_fwd_cb cb;                /* the caller of sl_fwd_post */
    void *cb_arg;
    char *post_auth; /* sl_fwd_post: "Bearer <token>" */
    char host[256], port[8];
    uv_getaddrinfo_t gai;
    bool resolving; /* gai callback still to come */
    uv_timer_t timer;
    struct sl_stream st; /* TCP, with TLS for https:// */
    bool st_open, https;
    int open_handles;  /* close callbacks still to come */
    struct sl_buf out; /* the request as sent */
    http_parser parser;
    struct sl_buf field, value, body;
    bool in_value, complete;
    size_t received;
    char *content_type, *etag, *retry_after, *allow, *www_authenticate;
};

static void call_maybe_free(struct fwd_call *c)
{
    if (c->open_handles > 0 || c->resolving || c->pending)
        return;
    struct sl_fwd *f = c->f;
    sl_list_remove(&c->link);
    sl_buf_free(&c->out);
    sl_buf_free(&c->field);
    sl_buf_free(&c->value);
    sl_buf_free(&c->body);
    free(c->content_type);
    free(c->etag);
    free(c->retry_after);
    free(c->allow);
    free(c->www_authenticate);
    free(c->post_auth);
    free(c);
    if (f->closing && sl_list_empty(&f->calls)) {
        if (f->done)
            f->done(f->done_arg);
        free(f);
    }
}

static void on_handle_closed(uv_handle_t *h)
{
    struct fwd_call *c = h->data;
    c->open_handles--;
    call_maybe_free(c);
}

static void on_stream_closed(struct sl_stream *st)
{
    struct fwd_call *c = st->owner;
    c->open_handles--;
    call_maybe_free(c);
}

/* Stop everything the call still has going; it is freed once the callbacks are in. */
static void call_stop(struct fwd_call *c)
{
    if (!uv_is_closing((uv_handle_t *)&c->timer))
        uv_close((uv_handle_t *)&c->timer, on_handle_closed);
    if (c->st_open && !c->st.closing)
        sl_stream_abort(&c->st);
    if (c->resolving)
        uv_cancel((uv_req_t *)&c->gai); /* the callback still comes, with UV_ECANCELED */
}

static void answer_unavailable(struct fwd_call *c, const char *detail)
{
    struct sl_admin_request *rq = c->rq;
    if (!c->pending)
        return;
    c->pending = false;
    if (c->cb) {
        c->cb(0, NULL, 0, detail, c->cb_arg);
        return;
    }
    sl_warn(0, "admin: forwarding %s %s to the leader at %s:%s failed: %s", rq->http.method,
            rq->http.path, c->host, c->port, detail);
    struct sl_http_response head = {
        .status = 503, .content_type = SL_HTTP_PROBLEM_TYPE, .retry_after = 1};
    sl_admin_reply_json(rq, &head, sl_http_problem(503, NULL, NULL, detail));
}

static void fail_call(struct fwd_call *c, const char *detail)
{
    answer_unavailable(c, detail);
    call_stop(c);
    call_maybe_free(c);
}

static void relay_answer(struct fwd_call *c)
{
    struct sl_admin_request *rq = c->rq;
    c->pending = false;
    if (c->cb) {
        c->cb((int)c->parser.status_code, (const char *)c->body.data, c->body.len, NULL, c->cb_arg);
        call_stop(c);
        call_maybe_free(c);
        return;
    }
    unsigned retry = c->retry_after ? (unsigned)strtoul(c->retry_after, NULL, 10) : 0;
    struct sl_http_response r = {
        .status = (int)c->parser.status_code,
        .content_type = c->content_type,
        .body = c->body.data,
        .body_len = c->body.len,
        .etag = c->etag,
        .retry_after = retry,
        .allow = c->allow,
        .www_authenticate = c->www_authenticate,
    };
    sl_admin_reply(rq, &r);
    call_stop(c);
    call_maybe_free(c);
}

/* --- Response parsing ----------------------------------------------------------------------- */

static struct fwd_call *call_of(http_parser *p)
{
    return p->data;
}

static int append(struct sl_buf *b, const char *at, size_t n)
{
    return sl_buf_append(b, at, n, SL_FWD_MAX_RESPONSE) == 0 ? 0 : -1;
}

static char *dup_value(const struct sl_buf *v)
{
    return strndup(v->len ? (const char *)v->data : "", v->len);
}

/* Keep the headers that are relayed; an entity tag loses its quotes (the server adds them). */
static int commit_header(struct fwd_call *c)
{
    static const struct {
        const char *name;
        size_t off;
    } kept[] = {
        {"Content-Type", offsetof(struct fwd_call, content_type)},
        {"ETag", offsetof(struct fwd_call, etag)},
        {"Retry-After", offsetof(struct fwd_call, retry_after)},
        {"Allow", offsetof(struct fwd_call, allow)},
        {"WWW-Authenticate", offsetof(struct fwd_call, www_authenticate)},
    };
    for (size_t i = 0; i < sizeof kept / sizeof kept[0]; i++) {
        if (c->field.len != strlen(kept[i].name) ||
            strncasecmp((const char *)c->field.data, kept[i].name, c->field.len) != 0)
            continue;
        char **slot = (char **)(void *)((char *)c + kept[i].off);
        free(*slot);
        if (!(*slot = dup_value(&c->value)))
            return -1;
        size_t len = strlen(*slot);
        if (slot == &c->etag && len >= 2 && (*slot)[0] == '"' && (*slot)[len - 1] == '"') {
            memmove(*slot, *slot + 1, len - 2);
            (*slot)[len - 2] = '\0';
        }
    }
    c->field.len = c->value.len = 0;
    c->in_value = false;
    return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t n)
{
    struct fwd_call *c = call_of(p);
    if (c->in_value && commit_header(c) != 0)
        return -1;
    return append(&c->field, at, n);
}

static int on_header_value(http_parser *p, const char *at, size_t n)
{
    struct fwd_call *c = call_of(p);
    c->in_value = true;
    return append(&c->value, at, n);
}

static int on_headers_complete(http_parser *p)
{
    struct fwd_call *c = call_of(p);
    return c->in_value ? commit_header(c) : 0;
}

static int on_body(http_parser *p, const char *at, size_t n)
{
    return append(&call_of(p)->body, at, n);
}

static int on_message_complete(http_parser *p)
{
    call_of(p)->complete = true;
    return 0;
}

static const http_parser_settings response_settings = {
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* --- I/O -------------------------------------------------------------------------------------- */

/* The leader's answer: fed to http_parser as it arrives. */
static void on_st_read(struct sl_stream *st)
{
    struct fwd_call *c = st->owner;
    size_t n = sl_buf_avail(&st->in);
    if (!c->pending)
        return;
    c->received += n;
    size_t used =
        http_parser_execute(&c->parser, &response_settings, (const char *)sl_buf_head(&st->in), n);
    sl_buf_consume(&st->in, n);
    if (c->complete) {
        relay_answer(c);
    } else if (c->received > SL_FWD_MAX_RESPONSE) {
        fail_call(c, "the leader's answer is too large");
    } else if (used != n || HTTP_PARSER_ERRNO(&c->parser) != HPE_OK) {
        fail_call(c, "the leader's answer is not valid HTTP");
    }
}

static void on_st_error(struct sl_stream *st, int status)
{
    struct fwd_call *c = st->owner;
    if (!c->pending) {
        call_stop(c);
        return;
    }
    if (status == UV_EOF) {
        /* Tells http_parser the answer ended; a body delimited by the close completes here. */
        http_parser_execute(&c->parser, &response_settings, NULL, 0);
        if (c->complete)
            relay_answer(c);
        else
            fail_call(c, "the leader closed the connection before answering");
        return;
    }
    fail_call(c, status == UV_EPROTO ? "TLS with the leader failed" : uv_strerror(status));
}

static void send_request(struct fwd_call *c)
{
    int rc = sl_stream_write(&c->st, c->out.data, c->out.len);
    if (rc < 0)
        fail_call(c, uv_strerror(rc));
}

static void on_st_tls_done(struct sl_stream *st)
{
    send_request(st->owner);
}

static void on_st_connected(struct sl_stream *st)
{
    struct fwd_call *c = st->owner;
    if (!c->pending)
        return;
    if (!c->https) {
        send_request(c);
        return;
    }
    /* The leader's certificate must name the host of its admin URL (IP or DNS name). */
    if (sl_stream_tls_connect(&c->st, c->f->tls, c->host) != 0)
        fail_call(c, "TLS with the leader failed");
}

static const struct sl_stream_ops fwd_stream_ops = {
    .on_read = on_st_read,
    .on_error = on_st_error,
    .on_tls_done = on_st_tls_done,
    .on_connected = on_st_connected,
    .on_closed = on_stream_closed,
};

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    struct fwd_call *c = req->data;
    c->resolving = false;
    if (!c->pending || status < 0) {
        uv_freeaddrinfo(res);
        if (c->pending)
            fail_call(c, status == UV_ECANCELED ? "cancelled" : uv_strerror(status));
        else
            call_maybe_free(c);
        return;
    }
    int rc = sl_stream_init(c->f->loop, &c->st, &fwd_stream_ops, c, SL_FWD_MAX_RESPONSE);
    if (rc == 0) {
        c->st_open = true;
        c->open_handles++;
        rc = sl_stream_connect(&c->st, res->ai_addr);
    }
    uv_freeaddrinfo(res);
    if (rc < 0)
        fail_call(c, uv_strerror(rc));
}

static void on_timeout(uv_timer_t *t)
{
    fail_call(t->data, "the leader did not answer in time");
}

/* --- Requests -------------------------------------------------------------------------------- */

/* "http[s]://host[:port]" or "http[s]://[v6]:port" into c->host and c->port (default 80 / 443). */
static const char *parse_url(struct fwd_call *c, const char *url)
{
    const char *auth;
    if (strncmp(url, "https://", 8) == 0) {
        if (!c->f->tls)
            return "the leader's admin URL is https but this node has no admin.ca_file to check it";
        c->https = true;
        auth = url + 8;
    } else if (strncmp(url, "http://", 7) == 0) {
        auth = url + 7;
    } else {
        return "the leader's admin URL is neither http:// nor https://";
    }
    const char *end = auth + strcspn(auth, "/?#"), *colon, *hend;
    if (*auth == '[') {
        hend = memchr(auth, ']', (size_t)(end - auth));
        if (!hend)
            return "the leader's admin URL is malformed";
        auth++;
        colon = hend + 1 < end && hend[1] == ':' ? hend + 1 : NULL;
    } else {
        colon = memchr(auth, ':', (size_t)(end - auth));
        hend = colon ? colon : end;
    }
    size_t hlen = (size_t)(hend - auth), plen = colon ? (size_t)(end - colon - 1) : 2;
    if (hlen == 0 || hlen >= sizeof c->host || plen == 0 || plen >= sizeof c->port)
        return "the leader's admin URL is malformed";
    memcpy(c->host, auth, hlen);
    c->host[hlen] = '\0';
    if (colon) {
        memcpy(c->port, colon + 1, plen);
        c->port[plen] = '\0';
    } else {
        snprintf(c->port, sizeof c->port, "%s", c->https ? "443" : "80");
    }
    return NULL;
}

static int put_header(struct sl_buf *b, const char *name, const char *value)
{
    if (!value)
        return 0;
    return sl_buf_append(b, name, strlen(name), SIZE_MAX) || sl_buf_append(b, ": ", 2, SIZE_MAX) ||
           sl_buf_append(b, value, strlen(value), SIZE_MAX) ||
           sl_buf_append(b, "\r\n", 2, SIZE_MAX);
}

/* What goes out: the forwarded request's parts, or sl_fwd_post's. */
struct out_request {
    const char *method, *path, *query, *authorization, *content_type, *if_match, *origin;
    const void *body;
    size_t body_len;
};

static int build_request(struct fwd_call *c, const struct out_request *h)
{
    char line[64];
    struct sl_buf *b = &c->out;

    snprintf(line, sizeof line, "%zu", h->body_len);
    if (sl_buf_append(b, h->method, strlen(h->method), SIZE_MAX) ||
        sl_buf_append(b, " ", 1, SIZE_MAX) ||
        sl_buf_append(b, h->path, strlen(h->path), SIZE_MAX) ||
        (h->query && (sl_buf_append(b, "?", 1, SIZE_MAX) ||
                      sl_buf_append(b, h->query, strlen(h->query), SIZE_MAX))) ||
        sl_buf_append(b, " HTTP/1.1\r\nHost: ", 17, SIZE_MAX) ||
        sl_buf_append(b, c->host, strlen(c->host), SIZE_MAX) ||
        sl_buf_append(b, ":", 1, SIZE_MAX) ||
        sl_buf_append(b, c->port, strlen(c->port), SIZE_MAX) ||
        sl_buf_append(b, "\r\n", 2, SIZE_MAX) || put_header(b, "Authorization", h->authorization) ||
        put_header(b, "Content-Type", h->content_type) || put_header(b, "If-Match", h->if_match) ||
        put_header(b, "Content-Length", line) ||
        (c->rq && put_header(b, "X-Sluice-Forwarded", "1")) ||
        put_header(b, "X-Sluice-Origin", h->origin) || put_header(b, "Connection", "close") ||
        sl_buf_append(b, "\r\n", 2, SIZE_MAX) ||
        (h->body_len && sl_buf_append(b, h->body, h->body_len, SIZE_MAX)))
        return -1;
    return 0;
}

struct sl_fwd *sl_fwd_new(uv_loop_t *loop, unsigned timeout_ms, SSL_CTX *tls)
{
    struct sl_fwd *f = calloc(1, sizeof *f);
    if (!f)
        return NULL;
    f->loop = loop;
    f->timeout_ms = timeout_ms;
    f->tls = tls;
    sl_list_init(&f->calls);
    return f;
}

/* Send the request h of call c (rq or cb already set) to base_url. */
static void start_call(struct sl_fwd *f, struct fwd_call *c, const char *base_url,
                       const struct out_request *h, unsigned timeout_ms)
{
    c->f = f;
    c->pending = true;
    sl_list_push_back(&f->calls, &c->link);
    uv_timer_init(f->loop, &c->timer);
    c->timer.data = c;
    c->open_handles = 1;
    const char *bad = parse_url(c, base_url);
    if (bad) {
        fail_call(c, bad);
        return;
    }
    if (build_request(c, h) != 0) {
        fail_call(c, "out of memory");
        return;
    }
    http_parser_init(&c->parser, HTTP_RESPONSE);
    c->parser.data = c;
    uv_timer_start(&c->timer, on_timeout, timeout_ms, 0);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    c->gai.data = c;
    int rc = uv_getaddrinfo(f->loop, &c->gai, on_resolved, c->host, c->port, &hints);
    if (rc < 0) {
        fail_call(c, uv_strerror(rc));
        return;
    }
    c->resolving = true;
}

void sl_fwd_send(struct sl_fwd *f, struct sl_admin_request *rq, const char *base_url)
{
    struct fwd_call *c = calloc(1, sizeof *c);
    if (!c) {
        sl_admin_reply_problem(rq, 503, "out of memory");
        return;
    }
    c->rq = rq;
    const struct sl_http_request *in = &rq->http;
    struct out_request h = {
        .method = in->method,
        .path = in->path,
        .query = in->query,
        .authorization = in->authorization,
        .content_type = in->content_type,
        .if_match = in->if_match,
        .origin = in->origin,
        .body = in->body,
        .body_len = in->body_len,
    };
    start_call(f, c, base_url, &h, f->timeout_ms);
}

int sl_fwd_post(struct sl_fwd *f, const char *base_url, const char *path, const char *token,
                const char *body, size_t body_len, unsigned timeout_ms, sl_fwd_cb cb, void *arg)
{
    struct fwd_call *c = calloc(1, sizeof *c);
    char *auth = NULL;
    if (!c || f->closing || asprintf(&auth, "Bearer %s", token) < 0) {
        free(c);
        return -1;
    }
    c->post_auth = auth;
    c->cb = cb;
    c->cb_arg = arg;
    struct out_request h = {
        .method = "POST",
        .path = path,
        .authorization = auth,
        .content_type = "application/json",
        .body = body,
        .body_len = body_len,
    };
    start_call(f, c, base_url, &h, timeout_ms);
    return 0;
}

void sl_fwd_close(struct sl_fwd *f, void (*done)(void *arg), void *arg)
{
    f->closing = true;
    f->done = done;
    f->done_arg = arg;
    if (sl_list_empty(&f->calls)) {
        if (done)
            done(arg);
        free(f);
        return;
    }
    struct sl_list *pos, *tmp;
    sl_list_for_each_safe (pos, tmp, &f->calls) {
        struct fwd_call *c = sl_container_of(pos, struct fwd_call, link);
        answer_unavailable(c, "the node is shutting down");
        call_stop(c);
    }
}
