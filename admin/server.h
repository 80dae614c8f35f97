/* The admin HTTP server: HTTP/1.1 on libuv (base/stream.h), optional TLS, bearer-token auth.
 *
 * One connection object per client; requests on a connection are answered one at a time, in order
 * (keep-alive and pipelining). Every request is routed (admin/router.h) and then:
 *   - 401 with "WWW-Authenticate: Bearer" unless it carries the token, except GET /v1/health;
 *   - 404 / 405 (with Allow) / 400 for unknown paths, wrong methods and undecodable paths;
 *   - 501 for a route of the API that has no handler registered on this server;
 *   - otherwise the registered handler runs.
 * Errors are RFC 9457 problem documents (application/problem+json).
 *
 * A handler answers with one of the sl_admin_reply* calls, at once or later (after a Raft commit,
 * say): the connection keeps the request, stops reading and does not time out until the reply.
 * Exactly one reply per request; the request is freed by it. If the client or the server goes away
 * first, the request stays valid and its reply is dropped.
 *
 * Everything runs on the loop's thread; handlers and replies must too. */
#ifndef SL_ADMIN_SERVER_H
#define SL_ADMIN_SERVER_H

#include <stddef.h>

#include <jansson.h>
#include <openssl/ssl.h>
#include <uv.h>

#include "admin/http.h"
#include "admin/router.h"

#define SL_ADMIN_MAX_CONNECTIONS_DEFAULT 64
#define SL_ADMIN_IDLE_TIMEOUT_DEFAULT_MS 30000

struct sl_admin_config {
    const char *host;         /* IPv4 or IPv6 literal to listen on */
    int port;                 /* 0: any free port (see sl_admin_server_port) */
    const char *token;        /* required, non-empty; only its SHA-256 is kept */
    SSL_CTX *tls;             /* NULL: plain HTTP. Borrowed: must outlive the server */
    unsigned max_connections; /* 0: default. Connections beyond it are closed at once */
    unsigned idle_timeout_ms; /* 0: default. Each request must arrive whole within it */
    size_t max_header;        /* 0: SL_HTTP_MAX_HEADER_DEFAULT (431 beyond) */
    size_t max_body;          /* 0: SL_HTTP_MAX_BODY_DEFAULT (413 beyond) */
};

struct sl_admin_server;
struct sl_admin_conn;

struct sl_admin_request {
    struct sl_http_request http;
    struct sl_route_match route; /* id and path parameters (sl_route_param) */
    struct sl_admin_conn *conn;  /* private: NULL once the connection is gone */
};

typedef void (*sl_admin_handler)(struct sl_admin_request *rq, void *arg);

/* Listen. Returns 0, or a negative libuv code with a reason in err (nothing is left open). */
int sl_admin_server_start(uv_loop_t *loop, const struct sl_admin_config *cfg,
                          struct sl_admin_server **out, char *err, size_t errlen);

/* The port actually bound (useful with port 0). */
int sl_admin_server_port(const struct sl_admin_server *srv);

/* The loop the server runs on (for handlers that need timers of their own). */
uv_loop_t *sl_admin_server_loop(const struct sl_admin_server *srv);

/* Register (or replace) the handler of a route. */
void sl_admin_handle(struct sl_admin_server *srv, enum sl_route_id id, sl_admin_handler fn,
                     void *arg);

/* Stop listening and close every connection; when all handles are closed the server is freed and
 * done(arg) runs (done may be NULL). Requests still waiting for a reply stay valid (see above). */
void sl_admin_server_close(struct sl_admin_server *srv, void (*done)(void *arg), void *arg);

/* Answer with r as given (status, headers, body; the body is copied). */
void sl_admin_reply(struct sl_admin_request *rq, const struct sl_http_response *r);

/* Answer with a JSON body (the reference is stolen; NULL answers 500). head gives the status and
 * any extra headers (ETag, Retry-After...); its content_type defaults to application/json and its
 * body is ignored. */
void sl_admin_reply_json(struct sl_admin_request *rq, const struct sl_http_response *head,
                         json_t *body);

/* Answer with an RFC 9457 problem: type "about:blank", title the reason phrase, the detail given.
 */
void sl_admin_reply_problem(struct sl_admin_request *rq, int status, const char *detail);

#endif
