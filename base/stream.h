/* A TCP connection on libuv with optional TLS through OpenSSL memory BIOs.
 *
 * Received plaintext accumulates in `in` and the owner is told through ops->on_read; the owner
 * consumes what it handled. Writes never block: what the socket does not take at once is copied
 * into a write request and queued (`queued` counts those bytes so that owners can apply
 * back-pressure).
 *
 * Life cycle: sl_stream_init -> (sl_stream_accept | sl_stream_connect) -> ... -> sl_stream_close
 * (graceful: TLS close_notify, pending writes flushed, then the handle is closed) or
 * sl_stream_abort (at once). ops->on_closed runs exactly once, after the handle is closed; only
 * then may the owner free the memory holding the stream. No other callback runs after
 * sl_stream_close/abort. */
#ifndef SL_BASE_STREAM_H
#define SL_BASE_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>
#include <uv.h>

#include "base/buf.h"

struct sl_stream;

struct sl_stream_ops {
    /* New plaintext is in s->in. */
    void (*on_read)(struct sl_stream *s);
    /* The connection failed or the peer closed it (status is a libuv error code, UV_EOF for an
     * orderly close, UV_EPROTO for a TLS failure). The owner must close or abort the stream. */
    void (*on_error)(struct sl_stream *s, int status);
    /* The TLS handshake completed (optional). */
    void (*on_tls_done)(struct sl_stream *s);
    /* Outgoing connection established (sl_stream_connect only). */
    void (*on_connected)(struct sl_stream *s);
    /* queued fell to 0 after having been above SL_STREAM_HIGH_WATER (optional). */
    void (*on_drained)(struct sl_stream *s);
    /* The handle is closed; the owner may free the stream now. */
    void (*on_closed)(struct sl_stream *s);
};

#define SL_STREAM_HIGH_WATER (256u * 1024u)

struct sl_stream {
    uv_tcp_t tcp;
    uv_connect_t connect_req;
    uv_shutdown_t shutdown_req;
    SSL *ssl;
    struct sl_buf in;
    size_t
        in_limit; /* largest amount of unconsumed plaintext held; beyond it: on_error(UV_ENOBUFS) */
    size_t queued;
    bool handshaking, reading, closing, above_high_water;
    const struct sl_stream_ops *ops;
    void *owner;
};

int sl_stream_init(uv_loop_t *loop, struct sl_stream *s, const struct sl_stream_ops *ops,
                   void *owner, size_t in_limit);
/* Accept a pending connection from a listening handle and start reading. */
int sl_stream_accept(struct sl_stream *s, uv_stream_t *server);
/* Connect to addr; on_connected or on_error follows. */
int sl_stream_connect(struct sl_stream *s, const struct sockaddr *addr);
int sl_stream_read_start(struct sl_stream *s);
/* Plain streams only: take what the kernel has already received, without waiting and outside the
 * loop's turn, and hand it to on_read. For a connection about to be dropped whose last answer may
 * already be here (pool/quota.c). */
int sl_stream_read_arrived(struct sl_stream *s);
void sl_stream_read_stop(struct sl_stream *s);

/* Switch to TLS as server (after an SSLRequest) or client. As client, server_name (a DNS name or
 * an IP literal, may be NULL) is what the peer's certificate must name when ctx verifies peers.
 * Plaintext already buffered in `in` is treated as the first TLS bytes (a client may send its
 * ClientHello right behind the SSLRequest).
 */
int sl_stream_tls_accept(struct sl_stream *s, SSL_CTX *ctx);
int sl_stream_tls_connect(struct sl_stream *s, SSL_CTX *ctx, const char *server_name);

/* Queue bytes for sending. Returns 0, or a negative libuv code (the stream is then broken and the
 * owner will also get on_error). */
int sl_stream_write(struct sl_stream *s, const void *data, size_t len);

void sl_stream_close(struct sl_stream *s);
void sl_stream_abort(struct sl_stream *s);

/* "1.2.3.4:5678" of the peer, for logs. */
void sl_stream_peer(const struct sl_stream *s, char *out, size_t cap);

/* A server-side TLS context from PEM files (TLS 1.2 minimum). Returns NULL with a reason in err. */
SSL_CTX *sl_tls_server_ctx(const char *cert_file, const char *key_file, char *err, size_t errlen);
/* A client-side TLS context (TLS 1.2 minimum; verifies against ca_file when given). */
SSL_CTX *sl_tls_client_ctx(const char *ca_file, char *err, size_t errlen);

#endif
