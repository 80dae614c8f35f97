#include "base/stream.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

/* A queued write: the bytes live right behind the request until libuv is done with them. */
struct write_req {
    uv_write_t req;
    struct sl_stream *s;
    size_t len;
    uint8_t data[];
};

/* Ciphertext is read into one scratch buffer per thread (each loop runs on its own thread) and fed
 * to OpenSSL at once, so TLS connections hold no receive buffer of their own while idle. */
static _Thread_local uint8_t tls_scratch[64 * 1024];

#define PLAIN_READ_CHUNK (16u * 1024u)

static struct sl_stream *stream_of(void *handle)
{
    return (struct sl_stream *)((uv_handle_t *)handle)->data;
}

static void on_write_done(uv_write_t *req, int status)
{
    struct write_req *w = (struct write_req *)req;
    struct sl_stream *s = w->s;
    s->queued -= w->len;
    free(w);
    if (s->closing)
        return;
    if (status < 0) {
        s->ops->on_error(s, status);
        return;
    }
    if (s->queued == 0 && s->above_high_water) {
        s->above_high_water = false;
        if (s->ops->on_drained)
            s->ops->on_drained(s);
    }
}

/* Send raw bytes on the socket: try at once, queue the rest. */
static int raw_write(struct sl_stream *s, const uint8_t *data, size_t len)
{
    if (len == 0)
        return 0;
    if (s->queued == 0) {
        uv_buf_t b = uv_buf_init((char *)(uintptr_t)data, (unsigned)len);
        int n = uv_try_write((uv_stream_t *)&s->tcp, &b, 1);
        if (n > 0) {
            data += n;
            len -= (size_t)n;
            if (len == 0)
                return 0;
        } else if (n != UV_EAGAIN) {
            return n;
        }
    }
    struct write_req *w = malloc(sizeof *w + len);
    if (!w)
        return UV_ENOMEM;
    memcpy(w->data, data, len);
    w->s = s;
    w->len = len;
    uv_buf_t b = uv_buf_init((char *)w->data, (unsigned)len);
    int rc = uv_write(&w->req, (uv_stream_t *)&s->tcp, &b, 1, on_write_done);
    if (rc < 0) {
        free(w);
        return rc;
    }
    s->queued += len;
    if (s->queued > SL_STREAM_HIGH_WATER)
        s->above_high_water = true;
    return 0;
}

/* Move whatever OpenSSL produced (records, alerts, tickets) to the socket. */
static int tls_flush(struct sl_stream *s)
{
    BIO *wbio = SSL_get_wbio(s->ssl);
    char *p;
    long n = BIO_get_mem_data(wbio, &p);
    if (n <= 0)
        return 0;
    int rc = raw_write(s, (const uint8_t *)p, (size_t)n);
    (void)BIO_reset(wbio);
    return rc;
}

static void fail(struct sl_stream *s, int status)
{
    if (!s->closing)
        s->ops->on_error(s, status);
}

/* Run the handshake and decrypt everything available into s->in. Returns 0, or a negative code. */
static int tls_pump(struct sl_stream *s, bool *got_data)
{
    /* OpenSSL's error queue is per thread and shared by every connection of this loop: an error
     * left by one session's failed handshake would turn another session's harmless WANT_READ into
     * SSL_ERROR_SSL. Clear it before each call whose outcome is read through SSL_get_error. */
    if (s->handshaking) {
        ERR_clear_error();
        int r = SSL_do_handshake(s->ssl);
        int e = r == 1 ? SSL_ERROR_NONE : SSL_get_error(s->ssl, r);
        int frc = tls_flush(s);
        if (frc < 0)
            return frc;
        if (r != 1) {
            if (e == SSL_ERROR_WANT_READ)
                return 0;
            return UV_EPROTO;
        }
        s->handshaking = false;
        if (s->ops->on_tls_done)
            s->ops->on_tls_done(s);
        if (s->closing)
            return 0;
    }
    for (;;) {
        if (sl_buf_reserve(&s->in, PLAIN_READ_CHUNK, s->in_limit) != 0)
            return UV_ENOBUFS;
        size_t room = s->in.cap - s->in.len;
        ERR_clear_error();
        int n = SSL_read(s->ssl, s->in.data + s->in.len, room > INT32_MAX ? INT32_MAX : (int)room);
        if (n > 0) {
            s->in.len += (size_t)n;
            *got_data = true;
            continue;
        }
        /* SSL_get_error must come right after the failing call, before any BIO is touched. */
        int e = SSL_get_error(s->ssl, n);
        int frc = tls_flush(s);
        if (frc < 0)
            return frc;
        if (e == SSL_ERROR_WANT_READ)
            return 0;
        if (e == SSL_ERROR_ZERO_RETURN)
            return UV_EOF;
        return UV_EPROTO;
    }
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct sl_stream *s = stream_of(h);
    if (s->ssl) {
        *buf = uv_buf_init((char *)tls_scratch, sizeof tls_scratch);
        return;
    }
    if (sl_buf_reserve(&s->in, PLAIN_READ_CHUNK, s->in_limit) != 0) {
        *buf = uv_buf_init(NULL, 0); /* read_cb then reports UV_ENOBUFS */
        return;
    }
    *buf = uv_buf_init((char *)s->in.data + s->in.len, (unsigned)(s->in.cap - s->in.len));
}

static void on_read(uv_stream_t *h, ssize_t n, const uv_buf_t *buf)
{
    struct sl_stream *s = stream_of(h);
    if (s->closing)
        return;
    if (n == 0)
        return;
    if (n < 0) {
        fail(s, (int)n);
        return;
    }
    if (!s->ssl) {
        s->in.len += (size_t)n;
        s->ops->on_read(s);
        return;
    }
    BIO_write(SSL_get_rbio(s->ssl), buf->base, (int)n);
    bool got = false;
    int rc = tls_pump(s, &got);
    if (s->closing)
        return;
    if (got)
        s->ops->on_read(s);
    if (rc < 0)
        fail(s, rc);
}

int sl_stream_read_arrived(struct sl_stream *s)
{
    if (s->ssl || s->closing)
        return UV_EINVAL;
    uv_os_fd_t fd;
    if (uv_fileno((uv_handle_t *)&s->tcp, &fd) != 0)
        return UV_EBADF;
    size_t got = 0;
    for (;;) {
        if (sl_buf_reserve(&s->in, PLAIN_READ_CHUNK, s->in_limit) != 0)
            break; /* full: what is buffered is handed over below */
        ssize_t n = recv(fd, s->in.data + s->in.len, s->in.cap - s->in.len, MSG_DONTWAIT);
        if (n > 0) {
            s->in.len += (size_t)n;
            got += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        break; /* nothing more yet (EAGAIN), the peer closed (0) or an error: the loop reports
                * the last two as usual */
    }
    if (got > 0)
        s->ops->on_read(s);
    return 0;
}

int sl_stream_init(uv_loop_t *loop, struct sl_stream *s, const struct sl_stream_ops *ops,
                   void *owner, size_t in_limit)
{
    memset(s, 0, sizeof *s);
    s->ops = ops;
    s->owner = owner;
    s->in_limit = in_limit;
    int rc = uv_tcp_init(loop, &s->tcp);
    if (rc < 0)
        return rc;
    s->tcp.data = s;
    return 0;
}

int sl_stream_read_start(struct sl_stream *s)
{
    if (s->reading || s->closing)
        return 0;
    int rc = uv_read_start((uv_stream_t *)&s->tcp, on_alloc, on_read);
    if (rc == 0)
        s->reading = true;
    return rc;
}

void sl_stream_read_stop(struct sl_stream *s)
{
    if (s->reading && !s->closing)
        uv_read_stop((uv_stream_t *)&s->tcp);
    s->reading = false;
}

int sl_stream_accept(struct sl_stream *s, uv_stream_t *server)
{
    int rc = uv_accept(server, (uv_stream_t *)&s->tcp);
    if (rc < 0)
        return rc;
    uv_tcp_nodelay(&s->tcp, 1);
    return sl_stream_read_start(s);
}

static void on_connect(uv_connect_t *req, int status)
{
    struct sl_stream *s = stream_of(req->handle);
    if (s->closing)
        return;
    if (status < 0) {
        fail(s, status);
        return;
    }
    uv_tcp_nodelay(&s->tcp, 1);
    int rc = sl_stream_read_start(s);
    if (rc < 0) {
        fail(s, rc);
        return;
    }
    s->ops->on_connected(s);
}

int sl_stream_connect(struct sl_stream *s, const struct sockaddr *addr)
{
    return uv_tcp_connect(&s->connect_req, &s->tcp, addr, on_connect);
}

static int tls_start(struct sl_stream *s, SSL_CTX *ctx)
{
    s->ssl = SSL_new(ctx);
    if (!s->ssl)
        return UV_ENOMEM;
    BIO *rbio = BIO_new(BIO_s_mem()), *wbio = BIO_new(BIO_s_mem());
    if (!rbio || !wbio) {
        BIO_free(rbio);
        BIO_free(wbio);
        SSL_free(s->ssl);
        s->ssl = NULL;
        return UV_ENOMEM;
    }
    SSL_set_bio(s->ssl, rbio, wbio);
    s->handshaking = true;
    /* Bytes that arrived behind the SSLRequest are the start of the TLS stream. */
    if (sl_buf_avail(&s->in) > 0) {
        BIO_write(rbio, sl_buf_head(&s->in), (int)sl_buf_avail(&s->in));
        sl_buf_consume(&s->in, sl_buf_avail(&s->in));
    }
    sl_buf_shrink(&s->in, 0);
    return 0;
}

int sl_stream_tls_accept(struct sl_stream *s, SSL_CTX *ctx)
{
    int rc = tls_start(s, ctx);
    if (rc < 0)
        return rc;
    SSL_set_accept_state(s->ssl);
    if (BIO_ctrl_pending(SSL_get_rbio(s->ssl)) > 0) {
        bool got = false;
        rc = tls_pump(s, &got);
        if (rc == 0 && got && !s->closing)
            s->ops->on_read(s);
    }
    return rc;
}

int sl_stream_tls_connect(struct sl_stream *s, SSL_CTX *ctx, const char *server_name)
{
    int rc = tls_start(s, ctx);
    if (rc < 0)
        return rc;
    SSL_set_connect_state(s->ssl);
    if (server_name) {
        /* The peer's certificate must name the host we asked for (checked when the context
         * verifies peers); SNI is only sent for DNS names. */
        X509_VERIFY_PARAM *vp = SSL_get0_param(s->ssl);
        unsigned char ip[16];
        if (inet_pton(AF_INET, server_name, ip) == 1 || inet_pton(AF_INET6, server_name, ip) == 1) {
            X509_VERIFY_PARAM_set1_ip_asc(vp, server_name);
        } else {
            X509_VERIFY_PARAM_set1_host(vp, server_name, 0);
            SSL_set_tlsext_host_name(s->ssl, server_name);
        }
    }
    bool got = false;
    return tls_pump(s, &got); /* sends the ClientHello */
}

int sl_stream_write(struct sl_stream *s, const void *data, size_t len)
{
    if (s->closing)
        return UV_ECANCELED;
    if (!s->ssl)
        return raw_write(s, data, len);
    /* Memory BIOs take everything: SSL_write only fails on a broken session. */
    while (len > 0) {
        int chunk = len > (1u << 30) ? (1 << 30) : (int)len;
        ERR_clear_error();
        int n = SSL_write(s->ssl, data, chunk);
        if (n <= 0)
            return UV_EPROTO;
        data = (const uint8_t *)data + n;
        len -= (size_t)n;
    }
    return tls_flush(s);
}

static void on_handle_closed(uv_handle_t *h)
{
    struct sl_stream *s = stream_of(h);
    if (s->ssl) {
        SSL_free(s->ssl);
        s->ssl = NULL;
    }
    sl_buf_free(&s->in);
    s->ops->on_closed(s);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    struct sl_stream *s = stream_of(req->handle);
    uv_close((uv_handle_t *)&s->tcp, on_handle_closed);
}

void sl_stream_abort(struct sl_stream *s)
{
    if (s->closing)
        return;
    s->closing = true;
    uv_close((uv_handle_t *)&s->tcp, on_handle_closed);
}

void sl_stream_close(struct sl_stream *s)
{
    if (s->closing)
        return;
    /* close_notify lets TLS clients report a lost connection (2013) rather than a TLS error. */
    if (s->ssl && !s->handshaking) {
        ERR_clear_error();
        SSL_shutdown(s->ssl);
        tls_flush(s);
    }
    s->closing = true;
    if (uv_is_active((uv_handle_t *)&s->tcp) || s->queued > 0) {
        if (uv_shutdown(&s->shutdown_req, (uv_stream_t *)&s->tcp, on_shutdown) == 0)
            return;
    }
    uv_close((uv_handle_t *)&s->tcp, on_handle_closed);
}

void sl_stream_peer(const struct sl_stream *s, char *out, size_t cap)
{
    struct sockaddr_storage ss;
    int len = sizeof ss;
    char host[64] = "?";
    int port = 0;
    if (uv_tcp_getpeername(&s->tcp, (struct sockaddr *)&ss, &len) == 0) {
        if (ss.ss_family == AF_INET) {
            const struct sockaddr_in *in = (const struct sockaddr_in *)&ss;
            uv_ip4_name(in, host, sizeof host);
            port = ntohs(in->sin_port);
        } else if (ss.ss_family == AF_INET6) {
            const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&ss;
            uv_ip6_name(in6, host, sizeof host);
            port = ntohs(in6->sin6_port);
        }
    }
    snprintf(out, cap, "%s:%d", host, port);
}

static void ssl_reason(char *err, size_t errlen, const char *what, const char *file)
{
    unsigned long e = ERR_get_error();
    char buf[256] = "unknown error";
    if (e)
        ERR_error_string_n(e, buf, sizeof buf);
    snprintf(err, errlen, "%s %s: %s", what, file ? file : "", buf);
    ERR_clear_error();
}

SSL_CTX *sl_tls_server_ctx(const char *cert_file, const char *key_file, char *err, size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        ssl_reason(err, errlen, "creating TLS context", NULL);
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    /* Idle clients should not each keep tens of KiB of TLS buffers. */
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
        ssl_reason(err, errlen, "loading certificate", cert_file);
        SSL_CTX_free(ctx);
        return NULL;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1) {
        ssl_reason(err, errlen, "loading private key", key_file);
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

SSL_CTX *sl_tls_client_ctx(const char *ca_file, char *err, size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) {
        ssl_reason(err, errlen, "creating TLS context", NULL);
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    if (ca_file) {
        if (SSL_CTX_load_verify_locations(ctx, ca_file, NULL) != 1) {
            ssl_reason(err, errlen, "loading CA file", ca_file);
            SSL_CTX_free(ctx);
            return NULL;
        }
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    }
    return ctx;
}
