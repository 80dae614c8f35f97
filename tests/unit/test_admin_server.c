/* The admin server over real TCP: three servers (plain; TLS with a throwaway self-signed
 * certificate; plain with one connection at most and a short idle timeout) run on a libuv loop in a
 * second thread, and blocking sockets in the test thread talk to them. Covers auth, the local
 * routes, problem answers (404, 405, 400, 413, 501), keep-alive and pipelining, an asynchronous
 * handler, the connection limit and the idle timeout. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "admin/local.h"
#include "admin/server.h"
#include "base/stream.h"

#define TOKEN "t0ken-for-tests"
#define AUTH  "Authorization: Bearer " TOKEN "\r\n"

/* ---- the server thread ------------------------------------------------------------------------
 */

static struct {
    uv_loop_t loop;
    uv_async_t stop;
    pthread_t thread;
    struct sl_admin_server *plain, *tls, *small;
    int plain_port, tls_port, small_port;
    SSL_CTX *server_ctx;
    char dir[64], cert[96], key[96];
    atomic_bool ready;
    struct sl_admin_node node;
} srv;

static void fake_stats(void *arg, struct sl_admin_stats *out)
{
    out->client_connections_total = 7;
    out->client_connections_active = 2;
    out->queries = 99;
}

static bool fake_ready(void *arg, char *reason, size_t cap)
{
    if (!atomic_load(&srv.ready))
        snprintf(reason, cap, "configuration not loaded");
    return atomic_load(&srv.ready);
}

/* An asynchronous handler: answers GET /v1/cluster 20 ms later (or ?delay_ms=N), from a timer
 * callback. */
static int orphaned_replies;
static atomic_int cluster_calls;
struct deferred {
    uv_timer_t timer;
    struct sl_admin_request *rq;
};

static void on_deferred_closed(uv_handle_t *h)
{
    free(h->data);
}

static void on_deferred(uv_timer_t *t)
{
    struct deferred *d = t->data;
    if (!d->rq->conn)
        orphaned_replies++; /* the server closed meanwhile: this reply only frees the request */
    struct sl_http_response head = {.status = 200, .etag = "5"};
    sl_admin_reply_json(d->rq, &head, json_pack("{s:n,s:i}", "leader", "term", 3));
    uv_close((uv_handle_t *)&d->timer, on_deferred_closed);
}

static void cluster_handler(struct sl_admin_request *rq, void *arg)
{
    struct deferred *d = calloc(1, sizeof *d);
    assert_non_null(d);
    atomic_fetch_add(&cluster_calls, 1);
    d->rq = rq;
    uv_timer_init(&srv.loop, &d->timer);
    d->timer.data = d;
    const char *q = rq->http.query;
    uint64_t delay = q && strncmp(q, "delay_ms=", 9) == 0 ? strtoull(q + 9, NULL, 10) : 20;
    uv_timer_start(&d->timer, on_deferred, delay, 0);
}

static void on_server_closed(void *arg)
{
    (*(int *)arg)--;
}

static int open_servers;

static void on_stop(uv_async_t *a)
{
    sl_admin_server_close(srv.plain, on_server_closed, &open_servers);
    sl_admin_server_close(srv.tls, on_server_closed, &open_servers);
    sl_admin_server_close(srv.small, on_server_closed, &open_servers);
    uv_close((uv_handle_t *)a, NULL);
}

static void *server_main(void *arg)
{
    uv_run(&srv.loop, UV_RUN_DEFAULT);
    return NULL;
}

static struct sl_admin_server *start(const struct sl_admin_config *cfg, int *port)
{
    struct sl_admin_server *s;
    char err[256] = "";
    if (sl_admin_server_start(&srv.loop, cfg, &s, err, sizeof err) != 0)
        fail_msg("start: %s", err);
    sl_admin_local_routes(s, &srv.node);
    sl_admin_handle(s, SL_ROUTE_CLUSTER_GET, cluster_handler, NULL);
    *port = sl_admin_server_port(s);
    assert_true(*port > 0);
    open_servers++;
    return s;
}

/* A self-signed P-256 certificate for localhost, valid for an hour. */
static void make_cert(void)
{
    strcpy(srv.dir, "/tmp/sluice-admin-XXXXXX");
    assert_non_null(mkdtemp(srv.dir));
    snprintf(srv.cert, sizeof srv.cert, "%s/cert.pem", srv.dir);
    snprintf(srv.key, sizeof srv.key, "%s/key.pem", srv.dir);
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    assert_non_null(key);
    assert_non_null(x);
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, key);
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"localhost", -1, -1,
                               0);
    X509_set_issuer_name(x, name);
    assert_true(X509_sign(x, key, EVP_sha256()) > 0);
    FILE *f = fopen(srv.cert, "w");
    assert_non_null(f);
    assert_int_equal(PEM_write_X509(f, x), 1);
    fclose(f);
    f = fopen(srv.key, "w");
    assert_non_null(f);
    assert_int_equal(PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL), 1);
    fclose(f);
    X509_free(x);
    EVP_PKEY_free(key);
}

static int setup(void **state)
{
    char err[256] = "";
    signal(SIGPIPE, SIG_IGN); /* a refused upload may still be in flight when the server closes */
    make_cert();
    srv.server_ctx = sl_tls_server_ctx(srv.cert, srv.key, err, sizeof err);
    if (!srv.server_ctx)
        fail_msg("%s", err);
    atomic_store(&srv.ready, true);
    srv.node = (struct sl_admin_node){
        .node_id = "n1", .stats = fake_stats, .ready = fake_ready, .arg = NULL};
    assert_int_equal(uv_loop_init(&srv.loop), 0);
    assert_int_equal(uv_async_init(&srv.loop, &srv.stop, on_stop), 0);

    struct sl_admin_config cfg = {.host = "127.0.0.1", .port = 0, .token = TOKEN};
    srv.plain = start(&cfg, &srv.plain_port);
    cfg.tls = srv.server_ctx;
    srv.tls = start(&cfg, &srv.tls_port);
    cfg = (struct sl_admin_config){
        .host = "127.0.0.1", .token = TOKEN, .max_connections = 1, .idle_timeout_ms = 300};
    srv.small = start(&cfg, &srv.small_port);

    /* No token, no server. */
    struct sl_admin_server *none;
    cfg.token = "";
    assert_int_equal(sl_admin_server_start(&srv.loop, &cfg, &none, err, sizeof err), UV_EINVAL);
    cfg.token = TOKEN;
    cfg.host = "not-an-ip";
    assert_int_equal(sl_admin_server_start(&srv.loop, &cfg, &none, err, sizeof err), UV_EINVAL);

    assert_int_equal(pthread_create(&srv.thread, NULL, server_main, NULL), 0);
    return 0;
}

static bool stopped;

/* Close the servers and wait until the loop has nothing left. */
static void stop_servers(void)
{
    uv_async_send(&srv.stop);
    pthread_join(srv.thread, NULL);
    stopped = true;
}

static int teardown(void **state)
{
    if (!stopped)
        stop_servers();
    assert_int_equal(open_servers, 0);
    assert_int_equal(uv_loop_close(&srv.loop), 0);
    SSL_CTX_free(srv.server_ctx);
    unlink(srv.cert);
    unlink(srv.key);
    rmdir(srv.dir);
    return 0;
}

/* ---- a blocking client ------------------------------------------------------------------------
 */

struct client {
    int fd;
    SSL_CTX *ctx;
    SSL *ssl;
    char buf[64 * 1024];
    size_t len; /* received, not yet returned */
};

struct response {
    int status;
    char head[4096];
    char *body; /* NUL-terminated */
    size_t body_len;
};

static void cl_open(struct client *c, int port, bool tls)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    struct timeval tv = {.tv_sec = 5};
    memset(c, 0, sizeof *c);
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(c->fd >= 0);
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    assert_int_equal(connect(c->fd, (struct sockaddr *)&a, sizeof a), 0);
    if (tls) {
        char err[256];
        c->ctx = sl_tls_client_ctx(NULL, err, sizeof err);
        assert_non_null(c->ctx);
        c->ssl = SSL_new(c->ctx);
        SSL_set_fd(c->ssl, c->fd);
        assert_int_equal(SSL_connect(c->ssl), 1);
    }
}

static void cl_close(struct client *c)
{
    if (c->ssl)
        SSL_free(c->ssl);
    SSL_CTX_free(c->ctx);
    close(c->fd);
}

static void cl_send(struct client *c, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = c->ssl ? SSL_write(c->ssl, data, (int)len) : send(c->fd, data, len, 0);
        assert_true(n > 0);
        data += n;
        len -= (size_t)n;
    }
}

static void cl_sends(struct client *c, const char *s)
{
    cl_send(c, s, strlen(s));
}

/* Receive more; returns the bytes read, 0 at EOF or on error. */
static size_t cl_fill(struct client *c)
{
    size_t room = sizeof c->buf - 1 - c->len;
    ssize_t n = c->ssl ? SSL_read(c->ssl, c->buf + c->len, (int)room)
                       : recv(c->fd, c->buf + c->len, room, 0);
    if (n <= 0)
        return 0;
    c->len += (size_t)n;
    c->buf[c->len] = '\0';
    return (size_t)n;
}

static bool cl_at_eof(struct client *c)
{
    return c->len == 0 && cl_fill(c) == 0;
}

static void cl_read(struct client *c, struct response *r)
{
    char *end;
    c->buf[c->len] = '\0';
    while (!(end = strstr(c->buf, "\r\n\r\n")))
        if (cl_fill(c) == 0)
            fail_msg("connection ended inside a response head: %s", c->buf);
    size_t head_len = (size_t)(end - c->buf) + 4;
    assert_true(head_len < sizeof r->head);
    memcpy(r->head, c->buf, head_len);
    r->head[head_len] = '\0';
    assert_int_equal(sscanf(r->head, "HTTP/1.1 %d ", &r->status), 1);
    const char *cl = strstr(r->head, "Content-Length: ");
    r->body_len = cl ? strtoul(cl + 16, NULL, 10) : 0;
    while (c->len < head_len + r->body_len)
        if (cl_fill(c) == 0)
            fail_msg("connection ended inside a response body");
    r->body = malloc(r->body_len + 1);
    assert_non_null(r->body);
    memcpy(r->body, c->buf + head_len, r->body_len);
    r->body[r->body_len] = '\0';
    c->len -= head_len + r->body_len;
    memmove(c->buf, c->buf + head_len + r->body_len, c->len);
    c->buf[c->len] = '\0';
}

/* One request on a new connection; returns the response (free r->body). */
static void exchange(int port, bool tls, const char *req, struct response *r)
{
    struct client c;
    cl_open(&c, port, tls);
    cl_sends(&c, req);
    cl_read(&c, r);
    cl_close(&c);
}

static bool has_header(const struct response *r, const char *line)
{
    return strstr(r->head, line) != NULL;
}

/* The body is a problem document with this status; returns its detail (borrowed from *doc). */
static const char *expect_problem(const struct response *r, int status, json_t **doc)
{
    json_error_t e;
    assert_int_equal(r->status, status);
    assert_true(has_header(r, "Content-Type: application/problem+json\r\n"));
    *doc = json_loads(r->body, 0, &e);
    if (!*doc)
        fail_msg("not JSON: %s", r->body);
    assert_string_equal(json_string_value(json_object_get(*doc, "type")), "about:blank");
    assert_string_equal(json_string_value(json_object_get(*doc, "title")), sl_http_reason(status));
    assert_int_equal(json_integer_value(json_object_get(*doc, "status")), status);
    return json_string_value(json_object_get(*doc, "detail"));
}

/* ---- tests ------------------------------------------------------------------------------------
 */

static void test_health(void **state)
{
    struct response r;
    exchange(srv.plain_port, false, "GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n", &r);
    assert_int_equal(r.status, 200);
    assert_true(has_header(&r, "Content-Type: application/json\r\n"));
    assert_true(has_header(&r, "Date: "));
    assert_string_equal(r.body, "{\"status\":\"ok\",\"ready\":true,\"version\":\"" SLUICE_VERSION
                                "\",\"node\":\"n1\"}");
    free(r.body);

    atomic_store(&srv.ready, false);
    exchange(srv.plain_port, false, "GET /v1/health HTTP/1.1\r\n\r\n", &r);
    atomic_store(&srv.ready, true);
    assert_int_equal(r.status, 503);
    assert_non_null(strstr(r.body, "\"status\":\"unavailable\""));
    assert_non_null(strstr(r.body, "\"reason\":\"configuration not loaded\""));
    free(r.body);
}

static void test_auth(void **state)
{
    struct response r;
    json_t *doc;
    exchange(srv.plain_port, false, "GET /v1/stats HTTP/1.1\r\n\r\n", &r);
    assert_string_equal(expect_problem(&r, 401, &doc), "a bearer token is required");
    assert_true(has_header(&r, "WWW-Authenticate: Bearer realm=\"sluice\"\r\n"));
    json_decref(doc);
    free(r.body);

    static const char *wrong[] = {
        "Authorization: Bearer " TOKEN "x\r\n", "Authorization: Bearer t0ken\r\n",
        "Authorization: Basic dDB rZW4=\r\n",   "Authorization: Bearer\r\n",
        "Authorization: " TOKEN "\r\n",
    };
    for (size_t i = 0; i < sizeof wrong / sizeof wrong[0]; i++) {
        char req[256];
        snprintf(req, sizeof req, "GET /v1/stats HTTP/1.1\r\n%s\r\n", wrong[i]);
        exchange(srv.plain_port, false, req, &r);
        assert_string_equal(expect_problem(&r, 401, &doc), "the bearer token is not valid");
        assert_true(has_header(
            &r, "WWW-Authenticate: Bearer realm=\"sluice\", error=\"invalid_token\"\r\n"));
        json_decref(doc);
        free(r.body);
    }
    /* Unknown paths and unregistered routes also ask for the token first. */
    exchange(srv.plain_port, false, "GET /nope HTTP/1.1\r\n\r\n", &r);
    assert_int_equal(r.status, 401);
    free(r.body);
    /* The scheme is case-insensitive. */
    exchange(srv.plain_port, false,
             "GET /v1/stats HTTP/1.1\r\nauthorization: bearer " TOKEN "\r\n\r\n", &r);
    assert_int_equal(r.status, 200);
    free(r.body);
}

static void test_stats_and_metrics(void **state)
{
    struct response r;
    json_error_t e;
    exchange(srv.plain_port, false, "GET /v1/stats HTTP/1.1\r\n" AUTH "\r\n", &r);
    assert_int_equal(r.status, 200);
    assert_true(has_header(&r, "Content-Type: application/json\r\n"));
    assert_true(has_header(&r, "Cache-Control: no-store\r\n"));
    json_t *doc = json_loads(r.body, 0, &e);
    assert_non_null(doc);
    assert_int_equal(json_integer_value(json_object_get(doc, "queries")), 99);
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(doc, "client_connections"), "total")),
        7);
    json_decref(doc);
    free(r.body);

    exchange(srv.plain_port, false, "GET /metrics HTTP/1.1\r\n" AUTH "\r\n", &r);
    assert_int_equal(r.status, 200);
    assert_true(has_header(&r, "Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"));
    assert_non_null(
        strstr(r.body, "# TYPE sluice_queries_total counter\nsluice_queries_total 99\n"));
    assert_non_null(strstr(r.body, "sluice_client_connections_active 2\n"));
    free(r.body);
}

static void test_problems(void **state)
{
    struct response r;
    json_t *doc;
    exchange(srv.plain_port, false, "GET /v1/nothing-here HTTP/1.1\r\n" AUTH "\r\n", &r);
    expect_problem(&r, 404, &doc);
    json_decref(doc);
    free(r.body);

    exchange(srv.plain_port, false, "DELETE /v1/secrets HTTP/1.1\r\n" AUTH "\r\n", &r);
    assert_string_equal(expect_problem(&r, 405, &doc), "DELETE is not allowed here; allowed: GET");
    assert_true(has_header(&r, "Allow: GET\r\n"));
    json_decref(doc);
    free(r.body);

    exchange(srv.plain_port, false, "PUT /v1/proxies/a%ZZ HTTP/1.1\r\n" AUTH "\r\n", &r);
    expect_problem(&r, 400, &doc);
    json_decref(doc);
    free(r.body);

    exchange(srv.plain_port, false, "GET /v1/proxies/p1/targets HTTP/1.1\r\n" AUTH "\r\n", &r);
    assert_string_equal(
        expect_problem(&r, 501, &doc),
        "GET /v1/proxies/{name}/targets needs the configuration store; this node runs "
        "from a configuration file");
    json_decref(doc);
    free(r.body);
}

/* Requests the parser refuses are answered and the connection closes. */
static void test_bad_requests_close(void **state)
{
    static const struct {
        const char *req;
        int status;
    } cases[] = {
        {"NONSENSE\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\nBad Name: x\r\n\r\n", 400},
        {"PUT /v1/secrets/s HTTP/1.1\r\n" AUTH "Content-Length: 1048577\r\n\r\n", 413},
        {"GET / HTTP/3.0\r\n\r\n", 505},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct client c;
        struct response r;
        json_t *doc;
        cl_open(&c, srv.plain_port, false);
        cl_sends(&c, cases[i].req);
        cl_read(&c, &r);
        expect_problem(&r, cases[i].status, &doc);
        assert_true(has_header(&r, "Connection: close\r\n"));
        assert_true(cl_at_eof(&c));
        json_decref(doc);
        free(r.body);
        cl_close(&c);
    }

    /* A chunked body that grows past 1 MiB: 16 chunks of 64 KiB are exactly the limit, one more
     * byte is too many. Nothing follows it, so the server's close cannot turn into a reset that
     * would swallow its answer. */
    struct client c;
    struct response r;
    json_t *doc;
    static char chunk[64 * 1024 + 16];
    cl_open(&c, srv.plain_port, false);
    cl_sends(&c, "PUT /v1/secrets/s HTTP/1.1\r\n" AUTH "Transfer-Encoding: chunked\r\n\r\n");
    int n = snprintf(chunk, sizeof chunk, "%x\r\n", 64 * 1024);
    memset(chunk + n, 'x', 64 * 1024);
    memcpy(chunk + n + 64 * 1024, "\r\n", 2);
    for (int i = 0; i < 16; i++)
        cl_send(&c, chunk, (size_t)n + 64 * 1024 + 2);
    cl_sends(&c, "1\r\nx");
    cl_read(&c, &r);
    expect_problem(&r, 413, &doc);
    json_decref(doc);
    free(r.body);
    cl_close(&c);
}

static void test_keep_alive_and_pipelining(void **state)
{
    struct client c;
    struct response r;
    cl_open(&c, srv.plain_port, false);
    cl_sends(&c, "GET /v1/health HTTP/1.1\r\n\r\n");
    cl_read(&c, &r);
    assert_int_equal(r.status, 200);
    assert_false(has_header(&r, "Connection: close"));
    free(r.body);
    cl_sends(&c, "GET /v1/stats HTTP/1.1\r\n" AUTH "\r\n");
    cl_read(&c, &r);
    assert_int_equal(r.status, 200);
    free(r.body);

    /* Three in one write, the first answered asynchronously: answers come back in order. */
    cl_sends(&c, "GET /v1/cluster HTTP/1.1\r\n" AUTH "\r\n"
                 "GET /nope HTTP/1.1\r\n" AUTH "\r\n"
                 "GET /v1/health HTTP/1.1\r\nConnection: close\r\n\r\n");
    cl_read(&c, &r);
    assert_int_equal(r.status, 200);
    assert_true(has_header(&r, "ETag: \"5\"\r\n"));
    assert_string_equal(r.body, "{\"leader\":null,\"term\":3}");
    free(r.body);
    cl_read(&c, &r);
    assert_int_equal(r.status, 404);
    free(r.body);
    cl_read(&c, &r);
    assert_int_equal(r.status, 200);
    assert_true(has_header(&r, "Connection: close\r\n"));
    free(r.body);
    assert_true(cl_at_eof(&c));
    cl_close(&c);

    /* HTTP/1.0 closes after one answer; Expect: 100-continue gets its interim answer. */
    cl_open(&c, srv.plain_port, false);
    cl_sends(&c, "PUT /v1/secrets/s HTTP/1.1\r\n" AUTH
                 "Expect: 100-continue\r\nContent-Length: 2\r\n\r\n");
    cl_read(&c, &r);
    assert_int_equal(r.status, 100);
    free(r.body);
    cl_sends(&c, "{}");
    cl_read(&c, &r);
    assert_int_equal(r.status, 501);
    free(r.body);
    cl_sends(&c, "GET /v1/health HTTP/1.0\r\n\r\n");
    cl_read(&c, &r);
    assert_int_equal(r.status, 200);
    free(r.body);
    assert_true(cl_at_eof(&c));
    cl_close(&c);
}

static void test_tls(void **state)
{
    struct client c;
    struct response r;
    cl_open(&c, srv.tls_port, true);
    cl_sends(&c, "GET /v1/health HTTP/1.1\r\n\r\n");
    cl_read(&c, &r);
    assert_int_equal(r.status, 200);
    free(r.body);
    cl_sends(&c, "GET /v1/stats HTTP/1.1\r\n\r\n");
    cl_read(&c, &r);
    assert_int_equal(r.status, 401);
    free(r.body);
    cl_sends(&c, "GET /v1/stats HTTP/1.1\r\n" AUTH "\r\n");
    cl_read(&c, &r);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "\"queries\":99"));
    free(r.body);

    /* A body of exactly the limit, in large TLS writes. */
    size_t big = 1024 * 1024;
    char *body = malloc(big);
    assert_non_null(body);
    memset(body, 'b', big);
    cl_sends(&c, "PUT /v1/secrets/s HTTP/1.1\r\n" AUTH "Content-Length: 1048576\r\n\r\n");
    cl_send(&c, body, big);
    free(body);
    cl_read(&c, &r);
    assert_int_equal(r.status, 501);
    free(r.body);
    cl_close(&c);

    /* Plain HTTP to the TLS port gets no answer, only a closed connection. */
    cl_open(&c, srv.tls_port, false);
    cl_sends(&c, "GET /v1/health HTTP/1.1\r\n\r\n");
    size_t got = cl_fill(&c);
    assert_true(got == 0 || strncmp(c.buf, "HTTP/", 5) != 0);
    cl_close(&c);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void test_limits_and_idle(void **state)
{
    struct client a, b;
    struct response r;
    cl_open(&a, srv.small_port, false);
    cl_sends(&a, "GET /v1/health HTTP/1.1\r\n\r\n");
    double t0 = now_s(); /* a's idle time starts with the answer, after this */
    cl_read(&a, &r);     /* a is accepted before b connects */
    assert_int_equal(r.status, 200);
    free(r.body);
    cl_open(&b, srv.small_port, false);
    assert_true(cl_at_eof(&b)); /* over the limit: closed at once */
    cl_close(&b);

    /* a stays idle: closed after about 300 ms. */
    assert_true(cl_at_eof(&a));
    double waited = now_s() - t0;
    assert_true(waited > 0.25 && waited < 4.0);
    cl_close(&a);
}

/* Last: a request still with its handler when the servers close. The connection closes at once;
 * the late reply finds the request orphaned, frees it, and nothing leaks (LSan). */
static void test_orphaned_reply(void **state)
{
    struct client c;
    int before = atomic_load(&cluster_calls);
    cl_open(&c, srv.plain_port, false);
    cl_sends(&c, "GET /v1/cluster?delay_ms=200 HTTP/1.1\r\n" AUTH "\r\n");
    for (int i = 0; i < 5000 && atomic_load(&cluster_calls) == before; i++)
        usleep(1000);
    assert_int_equal(atomic_load(&cluster_calls), before + 1);
    stop_servers();
    assert_true(cl_at_eof(&c));
    assert_int_equal(orphaned_replies, 1);
    cl_close(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_health),
        cmocka_unit_test(test_auth),
        cmocka_unit_test(test_stats_and_metrics),
        cmocka_unit_test(test_problems),
        cmocka_unit_test(test_bad_requests_close),
        cmocka_unit_test(test_keep_alive_and_pipelining),
        cmocka_unit_test(test_tls),
        cmocka_unit_test(test_limits_and_idle),
        cmocka_unit_test(test_orphaned_reply),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
