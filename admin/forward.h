/* Forwarding of admin writes from a follower to the leader: a small HTTP/1.1 client on libuv.
 *
 * sl_fwd_send sends the request as it arrived (method, path and query, Authorization,
 * Content-Type, If-Match, X-Sluice-Origin, body) plus "X-Sluice-Forwarded: 1" and
 * "Connection: close" to the leader's admin URL, reads the whole answer (http_parser in response
 * mode) and answers the original request with the leader's status, Content-Type, ETag,
 * Retry-After, Allow, WWW-Authenticate and body. The client sees one answer, as if it had asked
 * the leader. (The store routes set X-Sluice-Origin to the follower's node id before forwarding,
 * so that the leader can name the node a writer decision was taken on.)
 *
 * Anything that keeps the leader's answer from arriving (no address, refused, reset, a malformed
 * or oversized answer, the timeout) answers 503 with Retry-After: 1: the write may or may not
 * have been applied, and the store's request ids are per proposal, so the client retries (with
 * If-Match when it must not apply twice).
 *
 * https:// URLs go over TLS, the leader's certificate checked against the CA of tls and against
 * the URL's host. Host names are resolved with
 * uv_getaddrinfo (the thread pool), never on the loop. Everything runs on the loop's thread. */
#ifndef SL_ADMIN_FORWARD_H
#define SL_ADMIN_FORWARD_H

#include <openssl/ssl.h>
#include <uv.h>

#include "admin/server.h"

#define SL_FWD_MAX_RESPONSE (4u * 1024u * 1024u) /* answer head and body together */

struct sl_fwd;

/* A client whose requests give up after timeout_ms (connect, send and answer together). tls (a
 * client context that verifies peers, borrowed) enables https:// admin URLs; NULL allows http://
 * only. Returns NULL when memory ran out. */
struct sl_fwd *sl_fwd_new(uv_loop_t *loop, unsigned timeout_ms, SSL_CTX *tls);

/* Send rq to base_url ("http://host[:port]", no path) and answer rq with what comes back. */
void sl_fwd_send(struct sl_fwd *f, struct sl_admin_request *rq, const char *base_url);

/* The answer to sl_fwd_post: the HTTP status and body, or status 0 and a reason in error when no
 * answer arrived (refused, timeout, malformed, or the client is closing). */
typedef void (*sl_fwd_cb)(int status, const char *body, size_t body_len, const char *error,
                          void *arg);

/* POST body (JSON) to base_url + path with "Authorization: Bearer <token>" (node-to-node calls),
 * giving up after timeout_ms; cb runs exactly once, never from inside this call. 0, or -1 (out of
 * memory, closing): no cb. */
int sl_fwd_post(struct sl_fwd *f, const char *base_url, const char *path, const char *token,
                const char *body, size_t body_len, unsigned timeout_ms, sl_fwd_cb cb, void *arg);

/* Answer every request still in flight with 503 and free the client once its handles are closed;
 * done(arg) then runs (done may be NULL). sl_fwd_send must not be called afterwards. */
void sl_fwd_close(struct sl_fwd *f, void (*done)(void *arg), void *arg);

#endif
