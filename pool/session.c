/* Client sessions: the server half of the MySQL protocol.
 *
 * A session greets the client, upgrades to TLS, authenticates it against the proxy's users, and
 * then runs one command at a time: commands that need no database are answered here (PING,
 * SET_OPTION, RESET_CONNECTION while no backend is held, QUIT); the others borrow a backend from
 * the pool (or keep the one held while in a transaction or pinned), which relays the response
 * unchanged. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

#include "base/log.h"
#include "pool/errors.h"
#include "pool/internal.h"
#include "pool/kill.h"

#define HANDSHAKE_TIMEOUT_MS 10000
#define PIPELINE_BUFFER      (64u * 1024u) /* pipelined bytes read ahead while a command runs */
/* "MariaDB" in the version lets Connector/C expect MariaDB capabilities. */
#define SERVER_VERSION "11.0.0-sluice-MariaDB"

/* What the front end offers. No DEPRECATE_EOF, compression or query attributes: backends never
 * negotiate them, and responses are relayed as they are. No SESSION_TRACK either: backends track
 * for the proxy (every variable, state changes) and the client would see entries it never asked
 * for. */
#define OFFERED_CAPS                                                                               \
    (SL_CLIENT_FOUND_ROWS | SL_CLIENT_LONG_FLAG | SL_CLIENT_CONNECT_WITH_DB |                      \
     SL_CLIENT_NO_SCHEMA | SL_CLIENT_ODBC | SL_CLIENT_LOCAL_FILES | SL_CLIENT_IGNORE_SPACE |       \
     SL_CLIENT_PROTOCOL_41 | SL_CLIENT_INTERACTIVE | SL_CLIENT_SSL | SL_CLIENT_IGNORE_SIGPIPE |    \
     SL_CLIENT_TRANSACTIONS | SL_CLIENT_RESERVED | SL_CLIENT_SECURE_CONNECTION |                   \
     SL_CLIENT_MULTI_STATEMENTS | SL_CLIENT_MULTI_RESULTS | SL_CLIENT_PS_MULTI_RESULTS |           \
     SL_CLIENT_PLUGIN_AUTH | SL_CLIENT_CONNECT_ATTRS | SL_CLIENT_PLUGIN_AUTH_LENENC)

static void on_client_read(struct sl_stream *st);
static bool change_user_failed(struct sl_session *s);
static void on_client_error(struct sl_stream *st, int status);
static void on_client_tls_done(struct sl_stream *st);
static void on_client_drained(struct sl_stream *st);
static void on_client_closed(struct sl_stream *st);

static const struct sl_stream_ops client_ops = {
    .on_read = on_client_read,
    .on_error = on_client_error,
    .on_tls_done = on_client_tls_done,
    .on_drained = on_client_drained,
    .on_closed = on_client_closed,
};

static struct sl_session *session_of(struct sl_stream *st)
{
    return st->owner;
}

/* ---- sending ------------------------------------------------------------------------------------
 */

static void send_packet(struct sl_session *s, uint8_t seq, const uint8_t *payload, size_t len)
{
    uint8_t hdr[SL_PKT_HDR_LEN];
    sl_pkt_hdr_put(hdr, (uint32_t)len, seq);
    if (sl_stream_write(&s->cs, hdr, sizeof hdr) == 0)
        sl_stream_write(&s->cs, payload, len);
}

static void send_err(struct sl_session *s, uint8_t seq, uint16_t code, const char *sqlstate,
                     const char *msg)
{
    uint8_t buf[600];
    size_t n = sl_err_build(buf, sizeof buf, code, sqlstate, msg);
    send_packet(s, seq, buf, n);
}

static void send_ok(struct sl_session *s, uint8_t seq)
{
    uint8_t buf[32];
    size_t n = sl_ok_build(buf, sizeof buf, 0, 0, s->status, 0);
    send_packet(s, seq, buf, n);
}

void sl_session_send_err_packet(struct sl_session *s, const uint8_t *payload, size_t len)
{
    send_packet(s, 1, payload, len);
}

/* ---- life cycle ---------------------------------------------------------------------------------
 */

static void on_timer_closed(uv_handle_t *h)
{
    struct sl_session *s = h->data;
    struct sl_worker *w = s->proxy->worker;
    sl_vars_clear(&s->want);
    free(s);
    sl_worker_session_gone(w);
}

static void on_client_closed(struct sl_stream *st)
{
    struct sl_session *s = session_of(st);
    uv_close((uv_handle_t *)&s->timer, on_timer_closed);
}

void sl_session_close(struct sl_session *s)
{
    if (s->state == SL_SS_CLOSING)
        return;
    struct sl_worker *w = s->proxy->worker;
    if (s->state == SL_SS_WAITING)
        sl_pool_cancel_wait(s);
    if (s->be) {
        struct sl_backend *b = s->be;
        s->be = NULL;
        b->session = NULL;
        /* Whatever the client left on the backend (transaction, locks, variables) must not reach
         * the next borrower; a backend in the middle of a response cannot be reused at all. */
        if (s->state == SL_SS_BUSY || b->state != SL_BE_RELAYING)
            sl_backend_close(b);
        else
            sl_pool_release(b, s->pins != 0 || (b->status & SL_STATUS_IN_TRANS));
    }
    if (s->affine) {
        s->affine->affine = NULL;
        s->affine = NULL;
    }
    if (s->prev.active) {
        s->prev.active = false;
        sl_vars_clear(&s->prev.want);
    }
    sl_replay_free(&s->replay);
    uv_timer_stop(&s->timer);
    s->state = SL_SS_CLOSING;
    sl_list_remove(&s->link);
    s->proxy->sessions--;
    w->stats.client_connections_active--;
    sl_debug(s->id, "client closed");
    sl_stream_close(&s->cs);
}

/* The sequence id an error sent now must carry: 1 in the command phase; during the handshake the
 * one after the client packet we expect (s->seq); while a login waits for its database check, the
 * next id of the login exchange (s->seq). */
static uint8_t answer_seq(const struct sl_session *s)
{
    if (s->state == SL_SS_WAITING && s->pending == SL_PENDING_LOGIN_DB)
        return s->seq;
    if (s->state >= SL_SS_IDLE)
        return 1;
    return (uint8_t)(s->seq + 1);
}

void sl_session_fail(struct sl_session *s, uint16_t code, const char *sqlstate, const char *msg)
{
    send_err(s, answer_seq(s), code, sqlstate, msg);
    sl_session_close(s);
}

static void on_client_error(struct sl_stream *st, int status)
{
    struct sl_session *s = session_of(st);
    if (status != UV_EOF && status != UV_ECONNRESET)
        sl_info(s->id, "client connection error: %s", uv_strerror(status));
    if (status == UV_ENOBUFS) {
        send_err(s, answer_seq(s), SL_ER_NET_PACKET_TOO_LARGE, "08S01",
                 "Got a packet bigger than 'max_allowed_packet' bytes");
    }
    sl_session_close(s);
}

static void fail_transaction(struct sl_session *s, const char *why);

static void on_timer(uv_timer_t *t)
{
    struct sl_session *s = t->data;
    switch (s->state) {
    case SL_SS_WAITING:
        sl_pool_cancel_wait(s);
        s->proxy->worker->stats.borrow_timeouts++;
        sl_info(s->id, "borrow timeout after %u s", s->proxy->cfg->pool.connection_borrow_timeout);
        if (s->pending == SL_PENDING_LOGIN_DB) {
            /* The database named at login could not be checked: the login fails. */
            send_err(s, s->seq, SL_ER_BORROW_TIMEOUT, "HY000", SL_MSG_BORROW_TIMEOUT);
            if (!change_user_failed(s))
                sl_session_close(s);
            break;
        }
        if (s->replay_pending) {
            /* The transaction could not be rebuilt in time: it is lost, say so. */
            fail_transaction(s, "no database connection became free within "
                                "connection_borrow_timeout");
            break;
        }
        sl_buf_consume(&s->cs.in, s->cmd_len);
        s->cmd_len = 0;
        s->state = SL_SS_IDLE;
        send_err(s, 1, SL_ER_BORROW_TIMEOUT, "HY000", SL_MSG_BORROW_TIMEOUT);
        uv_timer_start(&s->timer, on_timer, (uint64_t)s->proxy->cfg->idle_client_timeout * 1000, 0);
        if (sl_buf_avail(&s->cs.in) > 0)
            on_client_read(&s->cs);
        break;
    case SL_SS_IDLE:
        sl_info(s->id, "closing idle client after %u s", s->proxy->cfg->idle_client_timeout);
        sl_session_close(s);
        break;
    case SL_SS_BUSY:
    case SL_SS_CLOSING: break;
    default:
        sl_info(s->id, "handshake timeout");
        sl_session_close(s);
        break;
    }
}

static void arm_idle_timer(struct sl_session *s)
{
    uv_timer_start(&s->timer, on_timer, (uint64_t)s->proxy->cfg->idle_client_timeout * 1000, 0);
}

void sl_session_accept(struct sl_proxy *p)
{
    struct sl_worker *w = p->worker;
    struct sl_session *s = calloc(1, sizeof *s);
    if (!s)
        return;
    /* The input limit bounds one buffered client packet (plus its header and a little slack). */
    size_t limit = (size_t)p->cfg->max_packet_size + 4 * PIPELINE_BUFFER;
    if (sl_stream_init(w->loop, &s->cs, &client_ops, s, limit) != 0) {
        free(s);
        return;
    }
    uv_timer_init(w->loop, &s->timer);
    s->timer.data = s;
    s->proxy = p;
    sl_list_init(&s->wait_link);
    sl_vars_init(&s->want);
    sl_replay_init(&s->replay, p->cfg->pool.transaction_replay_max_size);
    s->id = ++w->next_conn_id;
    sl_list_push_back(&w->sessions, &s->link);
    p->sessions++;
    w->stats.client_connections_total++;
    w->stats.client_connections_active++;
    s->state = SL_SS_GREETING;
    if (sl_stream_accept(&s->cs, (uv_stream_t *)&p->listener) != 0) {
        sl_session_close(s);
        return;
    }
    sl_stream_peer(&s->cs, s->peer, sizeof s->peer);

    struct sl_greeting g;
    memset(&g, 0, sizeof g);
    snprintf(g.server_version, sizeof g.server_version, "%s", SERVER_VERSION);
    g.conn_id = (uint32_t)s->id;
    /* Nonce bytes from the CSPRNG, mapped to 1..127: clients treat the nonce as a C string. */
    RAND_bytes(s->nonce, sizeof s->nonce);
    for (size_t i = 0; i < sizeof s->nonce; i++)
        s->nonce[i] = (uint8_t)(1 + s->nonce[i] % 127);
    memcpy(g.nonce, s->nonce, sizeof g.nonce);
    g.caps = OFFERED_CAPS;
    g.ext_caps = p->writer->ext_caps & SL_MARIADB_EXT_METADATA;
    if (!w->tls)
        g.caps &= ~SL_CLIENT_SSL;
    g.collation = 45; /* utf8mb4_general_ci */
    g.status = SL_STATUS_AUTOCOMMIT;
    snprintf(g.auth_plugin, sizeof g.auth_plugin, "mysql_native_password");
    uint8_t buf[256];
    size_t n = sl_greeting_build(buf, sizeof buf, &g);
    s->seq = 1;
    send_packet(s, 0, buf, n);
    uv_timer_start(&s->timer, on_timer, HANDSHAKE_TIMEOUT_MS, 0);
    sl_logkv(SL_LOG_INFO, s->id, "", "client connected from %s to proxy %s", s->peer, p->cfg->name);
}

/* ---- framing ------------------------------------------------------------------------------------
 */

/* Find one complete logical packet at the head of the buffer. Returns 1 with *total (bytes
 * including every chunk header) and the first chunk's payload; 0 when more bytes are needed; -1
 * when the packet exceeds max. */
static int frame(const struct sl_buf *in, size_t max, size_t *total, const uint8_t **payload,
                 size_t *first_len, size_t *logical_len)
{
    const uint8_t *p = sl_buf_head(in);
    size_t avail = sl_buf_avail(in), off = 0, logical = 0;
    for (;;) {
        if (avail - off < SL_PKT_HDR_LEN)
            return 0;
        uint32_t len = sl_pkt_len(p + off);
        logical += len;
        if (logical > max)
            return -1;
        if (off == 0)
            *first_len = len;
        if (avail - off - SL_PKT_HDR_LEN < len)
            return 0;
        off += SL_PKT_HDR_LEN + len;
        if (len < SL_PKT_MAX_CHUNK)
            break;
    }
    *total = off;
    *payload = p + SL_PKT_HDR_LEN;
    *logical_len = logical;
    return 1;
}

/* ---- authentication -----------------------------------------------------------------------------
 */

static void arm_idle_timer(struct sl_session *s);

/* A failed COM_CHANGE_USER (its error already sent) leaves the previous user logged in with its
 * session, as on MariaDB. Returns false when no change was in progress. */
static bool change_user_failed(struct sl_session *s)
{
    if (!s->prev.active)
        return false;
    s->prev.active = false;
    s->user = s->prev.user;
    s->share = s->prev.share;
    s->collation = s->prev.collation;
    s->multi_statements = s->prev.multi_statements;
    sl_vars_clear(&s->want);
    s->want = s->prev.want;
    sl_vars_init(&s->prev.want);
    s->state = SL_SS_IDLE;
    s->pending = SL_PENDING_COMMAND;
    arm_idle_timer(s);
    return true;
}

/* The change succeeded: what the previous user left on a held backend must not survive. */
static void change_user_succeeded(struct sl_session *s)
{
    if (!s->prev.active)
        return;
    s->prev.active = false;
    sl_vars_clear(&s->prev.want);
}

static void deny(struct sl_session *s, const char *user, size_t user_len, bool with_password)
{
    char msg[300];
    char host[64];
    snprintf(host, sizeof host, "%s", s->peer);
    char *colon = strrchr(host, ':');
    if (colon)
        *colon = '\0';
    snprintf(msg, sizeof msg, "Access denied for user '%.*s'@'%s' (using password: %s)",
             (int)(user_len > 128 ? 128 : user_len), user, host, with_password ? "YES" : "NO");
    s->proxy->worker->stats.auth_failures++;
    sl_info(s->id, "authentication failed for user %.*s", (int)(user_len > 128 ? 128 : user_len),
            user);
    send_err(s, s->seq, SL_ER_ACCESS_DENIED, "28000", msg);
    if (!change_user_failed(s))
        sl_session_close(s);
}

static void login_complete(struct sl_session *s);
static void drop_backend(struct sl_session *s);

static void auth_switch(struct sl_session *s, const char *plugin)
{
    uint8_t buf[128], data[SL_NONCE_LEN + 1];
    memcpy(data, s->nonce, SL_NONCE_LEN);
    data[SL_NONCE_LEN] = 0; /* clients expect the nonce NUL-terminated, as the server sends it */
    size_t n = sl_auth_switch_build(buf, sizeof buf, plugin, data, sizeof data);
    s->auth_sha2 = strcmp(plugin, "caching_sha2_password") == 0;
    send_packet(s, s->seq, buf, n);
    s->seq++; /* from here on s->seq is the id the client's answer must carry */
    s->state = SL_SS_AUTH_SWITCH;
}

static void sha2_double(const char *pw, size_t len, uint8_t out[32]);

/* Check the client's answer for the plugin the exchange runs. */
static void check_auth(struct sl_session *s, const char *plugin, size_t plugin_len,
                       const uint8_t *auth, size_t auth_len)
{
    struct sl_user *u = s->user;
    const char *pw = u->secret.password;
    size_t pw_len = u->secret.password_len;
    const char *name = u->secret.username;
#define IS(lit) (plugin_len == sizeof lit - 1 && memcmp(plugin, lit, plugin_len) == 0)
    if (IS("mysql_clear_password")) {
        /* Only inside TLS: the password travels as it is. */
        if (!s->tls) {
            deny(s, name, strlen(name), true);
            return;
        }
        size_t n = auth_len > 0 && auth[auth_len - 1] == 0 ? auth_len - 1 : auth_len;
        if (sl_token_equal(auth, n, (const uint8_t *)pw, pw_len))
            login_complete(s);
        else
            deny(s, name, strlen(name), n > 0);
        return;
    }
    if (u->cfg.client_auth == SL_AUTH_MYSQL_NATIVE_PASSWORD) {
        if (!IS("mysql_native_password")) {
            auth_switch(s, "mysql_native_password");
            return;
        }
        uint8_t want[20];
        size_t wl = sl_native_token(s->nonce, pw, pw_len, want);
        if (sl_token_equal(auth, auth_len, want, wl))
            login_complete(s);
        else
            deny(s, name, strlen(name), auth_len > 0);
        return;
    }
    /* caching_sha2_password */
    if (!IS("caching_sha2_password")) {
        auth_switch(s, "caching_sha2_password");
        return;
    }
    uint8_t dbl[32];
    sha2_double(pw, pw_len, dbl);
    if (pw_len == 0 && auth_len == 0) {
        login_complete(s);
        return;
    }
    if (u->sha2_cached && memcmp(u->sha2_cache, dbl, sizeof dbl) == 0) {
        uint8_t want[32];
        size_t wl = sl_sha2_token(s->nonce, pw, pw_len, want);
        if (sl_token_equal(auth, auth_len, want, wl)) {
            static const uint8_t fast_ok[] = {0x01, 0x03};
            send_packet(s, s->seq, fast_ok, sizeof fast_ok);
            s->seq++;
            login_complete(s);
            return;
        }
        /* A scramble that does not match falls back to full authentication, as on the MySQL
         * server (some clients scramble with the nonce's trailing NUL after an AuthSwitch). */
    }
    /* Full authentication needs the password in clear, hence TLS. */
    if (!s->tls) {
        deny(s, name, strlen(name), auth_len > 0);
        return;
    }
    static const uint8_t full[] = {0x01, 0x04};
    send_packet(s, s->seq, full, sizeof full);
    s->seq++;
    s->state = SL_SS_AUTH_FULL;
#undef IS
}

static void sha2_double(const char *pw, size_t len, uint8_t out[32])
{
    uint8_t once[32];
    unsigned int n = 0;
    EVP_Digest(pw, len, once, &n, EVP_sha256(), NULL);
    EVP_Digest(once, sizeof once, out, &n, EVP_sha256(), NULL);
}

static void handle_full_auth(struct sl_session *s, const uint8_t *p, size_t len)
{
    struct sl_user *u = s->user;
    size_t n = len > 0 && p[len - 1] == 0 ? len - 1 : len;
    if (!sl_token_equal(p, n, (const uint8_t *)u->secret.password, u->secret.password_len)) {
        deny(s, u->secret.username, strlen(u->secret.username), true);
        return;
    }
    sha2_double(u->secret.password, u->secret.password_len, u->sha2_cache);
    u->sha2_cached = true;
    login_complete(s);
}

static void handle_handshake_response(struct sl_session *s, const uint8_t *p, size_t len)
{
    struct sl_handshake_response r;
    struct sl_worker *w = s->proxy->worker;
    /* From here s->seq is the id of our answer (or, after an SSLRequest, of the client's next
     * packet: the HandshakeResponse inside TLS). */
    s->seq++;
    if (sl_handshake_response_parse(p, len, &r) != 0) {
        send_err(s, s->seq, SL_ER_HANDSHAKE, "08S01", "Bad handshake");
        sl_session_close(s);
        return;
    }
    if (r.is_ssl_request) {
        if (s->state != SL_SS_GREETING || !w->tls) {
            send_err(s, s->seq, SL_ER_HANDSHAKE, "08S01", "Bad handshake");
            sl_session_close(s);
            return;
        }
        s->state = SL_SS_TLS;
        if (sl_stream_tls_accept(&s->cs, w->tls) != 0)
            sl_session_close(s);
        return;
    }
    if (!s->tls && s->proxy->cfg->require_tls) {
        send_err(s, s->seq, SL_ER_SECURE_TRANSPORT, "08004",
                 "Connections using insecure transport are prohibited: this proxy requires TLS");
        sl_session_close(s);
        return;
    }
    s->caps = r.caps & OFFERED_CAPS;
    s->ext_caps = (r.caps & SL_CLIENT_MYSQL) ? 0 : r.ext_caps & SL_MARIADB_EXT_METADATA;
    s->collation = r.collation ? r.collation : 45;
    s->multi_statements = (s->caps & SL_CLIENT_MULTI_STATEMENTS) != 0;
    s->status = SL_STATUS_AUTOCOMMIT;
    s->user = sl_user_find(s->proxy, r.user, r.user_len);
    if (!s->user) {
        deny(s, r.user, r.user_len, r.auth_len > 0);
        return;
    }
    if (r.has_db && r.db_len > 0 && sl_vars_set_schema(&s->want, r.db, r.db_len) != 0) {
        deny(s, r.user, r.user_len, r.auth_len > 0);
        return;
    }
    const char *plugin = r.plugin_len ? r.plugin : "mysql_native_password";
    size_t plugin_len = r.plugin_len ? r.plugin_len : strlen(plugin);
    check_auth(s, plugin, plugin_len, r.auth, r.auth_len);
}

static void login_complete(struct sl_session *s)
{
    struct sl_proxy *p = s->proxy;
    if (s->prev.active) {
        drop_backend(s);
        s->pins = 0;
        s->status = SL_STATUS_AUTOCOMMIT;
        if (!s->want.schema)
            change_user_succeeded(s);
    }
    uint32_t class_caps = s->caps & SL_CLASS_CAPS;
    s->share = sl_share_get(p->writer, s->user, s->collation, class_caps, s->ext_caps);
    if (!s->share) {
        send_err(s, s->seq, 1040, "08004", "Too many connections");
        sl_session_close(s);
        return;
    }
    sl_logkv(SL_LOG_INFO, s->id, "", "client authenticated as %s%s", s->user->secret.username,
             s->tls ? " over TLS" : "");
    if (s->want.schema) {
        /* The database named at login must exist and be allowed: ask the database, as a direct
         * connection would, before telling the client it is in. */
        s->pending = SL_PENDING_LOGIN_DB;
        s->state = SL_SS_WAITING;
        s->cmd_len = 0;
        sl_pool_borrow(s);
        return;
    }
    send_ok(s, s->seq);
    s->state = SL_SS_IDLE;
    arm_idle_timer(s);
}

/* ---- commands -----------------------------------------------------------------------------------
 */

static const char *command_name(uint8_t cmd)
{
    switch (cmd) {
    case SL_COM_QUERY: return "QUERY";
    case SL_COM_INIT_DB: return "INIT_DB";
    case SL_COM_PING: return "PING";
    case SL_COM_STMT_PREPARE: return "STMT_PREPARE";
    case SL_COM_STMT_EXECUTE: return "STMT_EXECUTE";
    case SL_COM_STMT_SEND_LONG_DATA: return "STMT_SEND_LONG_DATA";
    case SL_COM_STMT_CLOSE: return "STMT_CLOSE";
    case SL_COM_STMT_RESET: return "STMT_RESET";
    case SL_COM_STMT_FETCH: return "STMT_FETCH";
    case SL_COM_SET_OPTION: return "SET_OPTION";
    case SL_COM_RESET_CONNECTION: return "RESET_CONNECTION";
    case SL_COM_FIELD_LIST: return "FIELD_LIST";
    case SL_COM_STATISTICS: return "STATISTICS";
    case SL_COM_PROCESS_KILL: return "PROCESS_KILL";
    default: return "OTHER";
    }
}

/* debug_logging (per proxy, as in RDS Proxy): one line per command and per backend hand-over, with
 * the pin reasons. Statement text is never logged: it can carry passwords (ALTER USER ...). */
static void debug_command(const struct sl_session *s, size_t len)
{
    if (!s->proxy->cfg->debug_logging)
        return;
    char pins[256] = "";
    size_t n = 0;
    for (uint32_t bit = 1; bit && bit < (1u << SL_PIN_REASON_COUNT); bit <<= 1)
        if ((s->pins & bit) && n < sizeof pins)
            n += (size_t)snprintf(pins + n, sizeof pins - n, "%s%s", n ? "," : "",
                                  sl_pin_reason_name(bit));
    sl_info(s->id, "command %s bytes=%zu backend=%llu pins=%s", command_name(s->cmd), len,
            s->be ? (unsigned long long)s->be->id : 0ULL, n ? pins : "none");
}

static enum sl_resp_kind kind_of(uint8_t cmd)
{
    switch (cmd) {
    case SL_COM_QUERY:
    case SL_COM_STMT_EXECUTE: return SL_RESP_QUERY;
    case SL_COM_STMT_PREPARE: return SL_RESP_PREPARE;
    case SL_COM_STMT_FETCH: return SL_RESP_FETCH;
    case SL_COM_FIELD_LIST: return SL_RESP_FIELD_LIST;
    case SL_COM_STATISTICS: return SL_RESP_ONE_PACKET;
    case SL_COM_SET_OPTION: return SL_RESP_EOF_ERR;
    default: return SL_RESP_OK_ERR;
    }
}

/* Commands the server does not answer. */
static bool no_response(uint8_t cmd)
{
    return cmd == SL_COM_STMT_CLOSE || cmd == SL_COM_STMT_SEND_LONG_DATA;
}

/* Give the backend back when the client no longer needs it: outside a transaction, not pinned.
 * After a statement that generated an insert id the backend stays affine to the session: it waits
 * in the pool, and the session's next command gets it back unless another session needed it
 * meanwhile, so that a following SELECT LAST_INSERT_ID() usually sees the same connection without
 * pinning. */
static void maybe_release(struct sl_session *s, bool insert_id)
{
    struct sl_backend *b = s->be;
    if (!b || (s->status & SL_STATUS_IN_TRANS) || s->pins)
        return;
    s->be = NULL;
    b->session = NULL;
    sl_pool_release(b, false);
    if (insert_id && b->state == SL_BE_IDLE) {
        b->affine = s;
        s->affine = b;
    }
}

static void finish_command(struct sl_session *s, bool insert_id)
{
    s->state = SL_SS_IDLE;
    s->borrowed = false;
    maybe_release(s, insert_id);
    if (s->proxy->worker->draining && !(s->status & SL_STATUS_IN_TRANS)) {
        sl_session_close(s);
        return;
    }
    arm_idle_timer(s);
    sl_stream_read_start(&s->cs);
    if (sl_buf_avail(&s->cs.in) > 0)
        on_client_read(&s->cs);
}

/* ---- surviving a lost backend (docs/failover.md) ------------------------------------------------
 *
 * A backend can die under a session: the database failed over, a fence killed it, an operator ran
 * KILL. What the client notices depends on what was on it:
 * - nothing (between transactions): nothing; the next command borrows another connection;
 * - a command whose answer had not started: sent again when that cannot change data twice (a read;
 *   a statement inside a transaction, which the lost connection rolled back, after replaying the
 *   transaction; BEGIN); a COMMIT or autocommit write may have run: 1180 / 08007, outcome unknown;
 * - an open transaction: replayed when transaction_replay is on and every recorded result matches
 *   again, otherwise 1213 / 40001 (retry the transaction) at the next command;
 * - pinned state (temporary tables, locks, prepared statements, user variables): 1927 naming it at
 *   the next command, then the session goes on as a fresh one.
 * The client keeps its connection in every case but one: an answer already partly relayed. */

/* Backends lost with the command sent before the session gives up on it. */
#define MAX_RECOVERIES 3

/* What a command other than COM_QUERY does if it runs twice. */
static enum sl_stmt_kind command_kind(uint8_t cmd)
{
    switch (cmd) {
    case SL_COM_PING:
    case SL_COM_STATISTICS:
    case SL_COM_FIELD_LIST:
    case SL_COM_INIT_DB:
    case SL_COM_SET_OPTION:
    case SL_COM_RESET_CONNECTION: return SL_STMT_READ;
    default: return SL_STMT_OTHER;
    }
}

/* Record the command about to be sent when the session may be inside a transaction (or about to
 * open one) and replay is on. Returns whether the response is to be checksummed. */
static bool record_for_replay(struct sl_session *s, const uint8_t *pkt)
{
    const struct sl_pool_config *pool = &s->proxy->cfg->pool;
    if (!pool->transaction_replay)
        return false;
    bool may_be_in_trans = (s->status & SL_STATUS_IN_TRANS) || !(s->status & SL_STATUS_AUTOCOMMIT);
    if (!may_be_in_trans && s->stmt_kind != SL_STMT_BEGIN)
        return false;
    if (s->cmd == SL_COM_PING)
        return false; /* changes nothing; its answer is not part of the transaction */
    if (!may_be_in_trans)
        sl_replay_clear(&s->replay);
    s->replay.max = pool->transaction_replay_max_size;
    if (s->cmd != SL_COM_QUERY)
        sl_replay_break(&s->replay, "the transaction used a command other than COM_QUERY");
    else if (s->stmt_nondet)
        sl_replay_break(&s->replay, "the transaction called a non-deterministic function");
    else if (s->pins)
        sl_replay_break(&s->replay, "the session is pinned");
    else
        sl_replay_add(&s->replay, pkt, s->cmd_len);
    return s->replay.open_at != SIZE_MAX;
}

/* The command at the head of cs.in is answered by sluice and dropped; the session is idle. */
static void answer_instead(struct sl_session *s)
{
    sl_buf_consume(&s->cs.in, s->cmd_len);
    s->cmd_len = 0;
    s->cmd_sent = false;
    s->replay_pending = false;
    finish_command(s, false);
}

static void fail_transaction(struct sl_session *s, const char *why)
{
    char msg[300];
    snprintf(msg, sizeof msg,
             "sluice: the transaction was rolled back because its database connection was lost "
             "(%s); retry the transaction",
             why);
    sl_info(s->id, "transaction lost: %s", why);
    s->proxy->worker->stats.transactions_lost++;
    s->status &= (uint16_t)~SL_STATUS_IN_TRANS;
    sl_replay_clear(&s->replay);
    send_err(s, 1, SL_ER_TRANSACTION_LOST, "40001", msg);
    answer_instead(s);
}

static void outcome_unknown(struct sl_session *s)
{
    sl_info(s->id, "backend lost with a COMMIT or write in flight: outcome unknown");
    s->proxy->worker->stats.outcomes_unknown++;
    s->status &= (uint16_t)~SL_STATUS_IN_TRANS;
    sl_replay_clear(&s->replay);
    send_err(s, 1, SL_ER_OUTCOME_UNKNOWN, "08007",
             "sluice: the database connection was lost while this statement was running; "
             "whether it took effect is unknown");
    answer_instead(s);
}

static void state_lost(struct sl_session *s, uint32_t pins)
{
    char what[200] = "";
    size_t n = 0;
    for (unsigned i = 0; i < SL_PIN_REASON_COUNT && n < sizeof what; i++)
        if (pins & (1u << i))
            n += (size_t)snprintf(what + n, sizeof what - n, "%s%s", n ? ", " : "",
                                  sl_pin_reason_name(1u << i));
    char msg[400];
    snprintf(msg, sizeof msg,
             "sluice: the database connection was lost, and with it this session's state (%s)%s; "
             "the session continues as a new one",
             what, (s->status & SL_STATUS_IN_TRANS) ? " and its open transaction" : "");
    sl_info(s->id, "session state lost: %s", what);
    s->proxy->worker->stats.session_states_lost++;
    s->pins = 0;
    s->status &= (uint16_t)~SL_STATUS_IN_TRANS;
    sl_replay_clear(&s->replay);
    send_err(s, 1, SL_ER_STATE_LOST, "70100", msg);
    answer_instead(s);
}

/* Too many connections died under one command. */
static void give_up(struct sl_session *s)
{
    if (s->status & SL_STATUS_IN_TRANS) {
        fail_transaction(s, "lost again while recovering");
        return;
    }
    if (s->stmt_kind == SL_STMT_READ || s->stmt_kind == SL_STMT_BEGIN) {
        send_err(s, 1, SL_ER_TARGET_UNAVAILABLE, "HY000",
                 "sluice: the database connection was lost repeatedly while running this "
                 "statement");
        answer_instead(s);
        return;
    }
    outcome_unknown(s);
}

static bool replayable(const struct sl_session *s)
{
    return s->proxy->cfg->pool.transaction_replay && sl_replay_usable(&s->replay);
}

/* Send the buffered command again on another backend, after replaying the transaction when one is
 * open. */
static void send_again(struct sl_session *s, bool replay)
{
    s->state = SL_SS_WAITING;
    s->borrowed = false;
    s->cmd_sent = false;
    s->replay_pending = replay;
    s->proxy->worker->stats.statements_retried++;
    sl_pool_borrow(s);
}

/* The backend died with the client's command sent and none of its answer relayed. */
static void recover_in_flight(struct sl_session *s)
{
    bool in_trans = s->status & SL_STATUS_IN_TRANS; /* as the client last saw it */
    enum sl_stmt_kind k = s->stmt_kind;
    sl_replay_drop_open(&s->replay);
    if (++s->recoveries > MAX_RECOVERIES) {
        give_up(s);
        return;
    }
    if (s->pins) {
        state_lost(s, s->pins);
        return;
    }
    if (!in_trans) {
        /* Reads change nothing; BEGIN opened nothing that survived; with autocommit off a
         * statement's implicit transaction went with the connection. */
        if (k == SL_STMT_READ || k == SL_STMT_BEGIN ||
            (k == SL_STMT_DML && !(s->status & SL_STATUS_AUTOCOMMIT))) {
            sl_info(s->id, "backend lost before the answer; sending the statement again");
            sl_replay_clear(&s->replay);
            send_again(s, false);
            return;
        }
        outcome_unknown(s);
        return;
    }
    if (k == SL_STMT_ROLLBACK) {
        /* The lost connection rolled the transaction back: what the client asked for. */
        s->status &= (uint16_t)~SL_STATUS_IN_TRANS;
        sl_replay_clear(&s->replay);
        send_ok(s, 1);
        answer_instead(s);
        return;
    }
    if (k != SL_STMT_READ && k != SL_STMT_DML) {
        outcome_unknown(s); /* COMMIT, DDL, SET autocommit=1, ...: may have committed */
        return;
    }
    if (!replayable(s)) {
        fail_transaction(s, s->replay.broken ? s->replay.broken : "transaction_replay is off");
        return;
    }
    sl_info(s->id, "backend lost inside a transaction; replaying it");
    send_again(s, true);
}

/* The backend held between commands (open transaction or pinned state) died: remember what went
 * with it for the client's next command. */
static void note_loss(struct sl_session *s)
{
    if (s->pins) {
        s->lost = SL_LOST_STATE;
        s->lost_pins = s->pins;
    } else if (s->status & SL_STATUS_IN_TRANS) {
        s->lost = SL_LOST_TRANSACTION;
    }
    sl_info(s->id, "backend lost between commands%s",
            s->lost == SL_LOST_STATE         ? "; session state lost"
            : s->lost == SL_LOST_TRANSACTION ? "; open transaction lost"
                                             : "");
}

/* The client's first command after a loss it has not been told about. Returns true when the
 * command goes on (after a replay when one is set up), false when it has been answered. */
static bool resume_after_loss(struct sl_session *s)
{
    enum sl_lost lost = s->lost;
    s->lost = SL_LOST_NONE;
    if (lost == SL_LOST_STATE) {
        state_lost(s, s->lost_pins);
        return false;
    }
    if (s->stmt_kind == SL_STMT_ROLLBACK) {
        s->status &= (uint16_t)~SL_STATUS_IN_TRANS;
        sl_replay_clear(&s->replay);
        send_ok(s, 1);
        answer_instead(s);
        return false;
    }
    if (!replayable(s)) {
        fail_transaction(s, s->replay.broken ? s->replay.broken : "transaction_replay is off");
        return false;
    }
    sl_info(s->id, "replaying the transaction lost between commands");
    s->replay_pending = true;
    return true;
}

void sl_session_replay_mismatch(struct sl_session *s)
{
    struct sl_backend *b = s->be;
    s->proxy->worker->stats.replay_mismatches++;
    if (b) {
        /* The replayed part of the transaction is rolled back by the reset. */
        s->be = NULL;
        b->session = NULL;
        sl_pool_release(b, true);
    }
    s->borrowed = false;
    fail_transaction(s, "a replayed statement answered differently than the first time");
}

static void forward_pending(struct sl_session *s)
{
    struct sl_backend *b = s->be;
    const uint8_t *pkt = sl_buf_head(&s->cs.in);
    s->state = SL_SS_BUSY;
    s->proxy->worker->stats.queries++;
    debug_command(s, s->cmd_len);
    if (no_response(s->cmd)) {
        sl_stream_write(&b->bs, pkt, s->cmd_len);
        sl_buf_consume(&s->cs.in, s->cmd_len);
        s->cmd_len = 0;
        finish_command(s, false);
        return;
    }
    if (s->rewrite_len) {
        /* A KILL aimed at a proxy connection id, rewritten to name the database thread. */
        uint8_t pkt2[SL_PKT_HDR_LEN + sizeof s->rewrite];
        sl_pkt_hdr_put(pkt2, (uint32_t)s->rewrite_len, 0);
        memcpy(pkt2 + SL_PKT_HDR_LEN, s->rewrite, s->rewrite_len);
        sl_backend_send_command(b, pkt2, SL_PKT_HDR_LEN + s->rewrite_len, SL_RESP_OK_ERR);
        s->rewrite_len = 0;
        sl_buf_consume(&s->cs.in, s->cmd_len);
        s->cmd_len = 0;
        return;
    }
    bool recording = record_for_replay(s, pkt);
    sl_backend_send_command(b, pkt, s->cmd_len, kind_of(s->cmd));
    b->crc_on = recording;
    b->crc = 0;
    s->cmd_sent = true; /* consumed when the answer starts (sl_session_response_started) */
}

void sl_session_response_started(struct sl_session *s)
{
    if (!s->cmd_sent)
        return;
    s->cmd_sent = false;
    sl_buf_consume(&s->cs.in, s->cmd_len);
    s->cmd_len = 0;
}

void sl_session_got_backend(struct sl_session *s, struct sl_backend *b)
{
    uv_timer_stop(&s->timer);
    sl_quota_note_borrow(b->share->target, sl_now(s->proxy->worker) - s->wait_started);
    s->be = b;
    s->borrowed = true;
    s->replay_pos = 0;
    b->session = s;
    if (sl_backend_prepare(b))
        sl_session_backend_ready(s);
}

void sl_session_backend_ready(struct sl_session *s)
{
    if (s->pending == SL_PENDING_LOGIN_DB) {
        s->pending = SL_PENDING_COMMAND;
        change_user_succeeded(s);
        send_ok(s, s->seq);
        s->state = SL_SS_IDLE;
        maybe_release(s, false);
        arm_idle_timer(s);
        if (sl_buf_avail(&s->cs.in) > 0)
            on_client_read(&s->cs);
        return;
    }
    if (s->replay_pending) {
        s->replay_pending = false;
        s->proxy->worker->stats.transactions_replayed++;
        s->status = s->be->rt.status;
        sl_info(s->id, "transaction replayed; every result matched");
    }
    forward_pending(s);
}

void sl_session_relay_done(struct sl_session *s, const uint8_t *last, size_t last_len)
{
    s->status = s->be ? s->be->rt.status : s->status;
    if (s->proxy->cfg->pool.transaction_replay) {
        bool recorded = s->replay.open_at != SIZE_MAX;
        if (recorded && s->be)
            sl_replay_done(&s->replay, s->be->crc);
        if (s->be)
            s->be->crc_on = false;
        if (!(s->status & SL_STATUS_IN_TRANS))
            sl_replay_clear(&s->replay);
        else if (!recorded)
            sl_replay_break(&s->replay, "the transaction began with a statement that is not "
                                        "recorded");
    }
    struct sl_ok ok;
    bool insert_id = last && last_len > 0 && last[0] == 0x00 && s->be &&
                     sl_ok_parse(last, last_len, s->be->caps, &ok) == 0 && ok.last_insert_id != 0;
    finish_command(s, insert_id);
}

void sl_session_backend_lost(struct sl_session *s)
{
    s->be = NULL;
    s->proxy->worker->stats.backends_lost_under_session++;
    if (s->state == SL_SS_WAITING && s->borrowed) {
        /* Lost while being prepared (or replaying): nothing of the command reached it, and what
         * the session had there is rebuilt on the next one. Not counted against MAX_RECOVERIES:
         * after a failover the pool may hold many dead idle connections, each found by a ping
         * here, and only so many (new connections to a dead server fail to log in instead). A
         * replay that loses its connection again and again does count. */
        s->borrowed = false;
        if (s->replay_pending && ++s->recoveries > MAX_RECOVERIES) {
            give_up(s);
            return;
        }
        sl_info(s->id, "backend lost before the command was sent; borrowing another");
        sl_pool_borrow(s);
        return;
    }
    if (s->state == SL_SS_BUSY && s->cmd_sent) {
        recover_in_flight(s);
        return;
    }
    if (s->state == SL_SS_IDLE) {
        note_loss(s);
        return;
    }
    sl_info(s->id, "backend connection lost with part of the answer sent; closing the client "
                   "session");
    sl_session_close(s);
}

/* Answer an error a preparation step got (e.g. COM_INIT_DB refused) as the reply to the client's
 * command, or to its login. */
void sl_session_prepare_failed(struct sl_session *s, const uint8_t *err, size_t len)
{
    if (s->pending == SL_PENDING_LOGIN_DB) {
        send_packet(s, s->seq, err, len);
        drop_backend(s);
        if (!change_user_failed(s))
            sl_session_close(s);
        return;
    }
    send_packet(s, 1, err, len);
    sl_buf_consume(&s->cs.in, s->cmd_len);
    s->cmd_len = 0;
    finish_command(s, false);
}

static void reply_local(struct sl_session *s, uint8_t cmd, const uint8_t *payload, size_t len)
{
    switch (cmd) {
    case SL_COM_PING: send_ok(s, 1); break;
    case SL_COM_SET_OPTION: {
        if (len < 3) {
            send_err(s, 1, SL_ER_UNKNOWN_COM, "08S01", "Malformed COM_SET_OPTION");
            break;
        }
        uint16_t opt = sl_get_u16(payload + 1);
        if (opt > 1) {
            send_err(s, 1, SL_ER_UNKNOWN_COM, "08S01", "Unknown COM_SET_OPTION option");
            break;
        }
        s->multi_statements = opt == 0;
        uint8_t eof[8];
        size_t n = sl_eof_build(eof, sizeof eof, 0, s->status);
        send_packet(s, 1, eof, n);
        break;
    }
    case SL_COM_RESET_CONNECTION: {
        /* A held backend goes back to the pool, which resets it (COM_RESET_CONNECTION plus setup:
         * tracking and init_query, which a plain reset would undo). The client's logical session
         * is reset here; the schema stays, as it does on the server. */
        if (s->be) {
            struct sl_backend *b = s->be;
            s->be = NULL;
            b->session = NULL;
            sl_pool_release(b, true);
        }
        char *schema = s->want.schema ? strdup(s->want.schema) : NULL;
        sl_vars_clear(&s->want);
        if (schema) {
            sl_vars_set_schema(&s->want, schema, strlen(schema));
            free(schema);
        }
        s->pins = 0;
        s->status = SL_STATUS_AUTOCOMMIT;
        send_ok(s, 1);
        break;
    }
    default: break;
    }
}

static bool answered_locally(const struct sl_session *s, uint8_t cmd)
{
    if (s->be) /* a held backend answers PING itself (it proves the pinned session is alive) */
        return cmd == SL_COM_SET_OPTION || cmd == SL_COM_RESET_CONNECTION;
    return cmd == SL_COM_PING || cmd == SL_COM_SET_OPTION || cmd == SL_COM_RESET_CONNECTION;
}

/* Give back (or reset) the held backend: the client's session is about to start over. */
static void drop_backend(struct sl_session *s)
{
    struct sl_backend *b = s->be;
    if (!b)
        return;
    s->be = NULL;
    b->session = NULL;
    sl_pool_release(b, s->pins != 0 || (s->status & SL_STATUS_IN_TRANS));
}

/* COM_CHANGE_USER: a full re-authentication as another (or the same) user, with a fresh nonce as
 * MariaDB does, and a session that starts from scratch. */
static void handle_change_user(struct sl_session *s, const uint8_t *payload, size_t len,
                               size_t total)
{
    struct sl_change_user cu;
    if (sl_change_user_parse(payload, len, s->caps, &cu) != 0) {
        send_err(s, 1, SL_ER_HANDSHAKE, "08S01", "Bad handshake");
        sl_session_close(s);
        return;
    }
    sl_buf_consume(&s->cs.in, total); /* the fields stay readable: nothing writes the buffer now */
    s->prev.active = true;
    s->prev.user = s->user;
    s->prev.share = s->share;
    s->prev.want = s->want;
    s->prev.collation = s->collation;
    s->prev.multi_statements = s->multi_statements;
    sl_vars_init(&s->want);
    if (cu.collation)
        s->collation = (uint8_t)cu.collation;
    s->multi_statements = (s->caps & SL_CLIENT_MULTI_STATEMENTS) != 0;
    s->seq = 1;
    s->state = SL_SS_AUTH_RESPONSE;
    uv_timer_start(&s->timer, on_timer, HANDSHAKE_TIMEOUT_MS, 0);
    s->user = sl_user_find(s->proxy, cu.user, cu.user_len);
    if (!s->user || (cu.db_len && sl_vars_set_schema(&s->want, cu.db, cu.db_len) != 0)) {
        deny(s, cu.user, cu.user_len, cu.auth_len > 0);
        return;
    }
    /* Clients scramble the change-user response with the nonce of the original handshake (the
     * server checks it as it is when the plugin matches); a plugin that differs gets an
     * AuthSwitchRequest as at login. */
    const char *plugin = cu.plugin_len ? cu.plugin : "mysql_native_password";
    size_t plugin_len = cu.plugin_len ? cu.plugin_len : strlen(plugin);
    check_auth(s, plugin, plugin_len, cu.auth, cu.auth_len);
}

static struct sl_session *find_session(struct sl_worker *w, uint64_t id)
{
    struct sl_list *pos, *tmp;
    sl_list_for_each_safe (pos, tmp, &w->sessions) {
        struct sl_session *t = sl_container_of(pos, struct sl_session, link);
        if (t->id == id)
            return t;
    }
    return NULL;
}

/* KILL [QUERY] <proxy connection id>. Returns true when answered here; false when the (rewritten)
 * statement goes to the database through the requester's backend. */
static bool handle_kill(struct sl_session *s, const struct sl_kill *k)
{
    char msg[96];
    struct sl_session *t = find_session(s->proxy->worker, k->id);
    if (!t || t->state == SL_SS_CLOSING || t->state < SL_SS_IDLE) {
        snprintf(msg, sizeof msg, "Unknown thread id: %llu", (unsigned long long)k->id);
        send_err(s, 1, 1094, "HY000", msg);
        return true;
    }
    if (t->user != s->user) {
        snprintf(msg, sizeof msg, "You are not owner of thread %llu", (unsigned long long)k->id);
        send_err(s, 1, 1095, "HY000", msg);
        return true;
    }
    if (t == s) {
        if (k->query_only) {
            /* The KILL QUERY is itself the running statement, as on the server. */
            send_err(s, 1, 1317, "70100", "Query execution was interrupted");
            return true;
        }
        send_err(s, 1, 1927, "70100", "Connection was killed");
        sl_session_close(s);
        return true;
    }
    if (!t->be) {
        /* Nothing runs on the database for it: a connection kill is ours alone. */
        if (!k->query_only)
            sl_session_close(t);
        send_ok(s, 1);
        return true;
    }
    s->rewrite_len = (size_t)snprintf((char *)s->rewrite + 1, sizeof s->rewrite - 1, "KILL %s %u",
                                      k->query_only ? "QUERY" : "CONNECTION", t->be->thread_id) +
                     1;
    s->rewrite[0] = SL_COM_QUERY;
    if (!k->query_only)
        sl_session_close(t);
    return false;
}

static void handle_command(struct sl_session *s, const uint8_t *payload, size_t first_len,
                           size_t logical_len, size_t total)
{
    uint8_t cmd = first_len ? payload[0] : 0xFF;
    uv_timer_stop(&s->timer);
    if (sl_pkt_seq(sl_buf_head(&s->cs.in)) != 0) {
        send_err(s, 1, SL_ER_NET_PACKETS_OUT_OF_ORDER, "08S01", "Got packets out of order");
        sl_session_close(s);
        return;
    }
    switch (cmd) {
    case SL_COM_QUIT: sl_session_close(s); return;
    case SL_COM_CHANGE_USER: handle_change_user(s, payload, first_len, total); return;
    case SL_COM_PROCESS_KILL:
        if (first_len < 5) {
            sl_buf_consume(&s->cs.in, total);
            send_err(s, 1, SL_ER_UNKNOWN_COM, "08S01", "Malformed COM_PROCESS_KILL");
            arm_idle_timer(s);
            return;
        }
        break;
    case SL_COM_QUERY:
    case SL_COM_STMT_PREPARE:
    case SL_COM_STMT_EXECUTE:
    case SL_COM_STMT_SEND_LONG_DATA:
    case SL_COM_STMT_CLOSE:
    case SL_COM_STMT_RESET:
    case SL_COM_STMT_FETCH:
    case SL_COM_INIT_DB:
    case SL_COM_FIELD_LIST:
    case SL_COM_STATISTICS:
    case SL_COM_PING:
    case SL_COM_SET_OPTION:
    case SL_COM_RESET_CONNECTION: break;
    default:
        sl_buf_consume(&s->cs.in, total);
        send_err(s, 1, SL_ER_UNKNOWN_COM, "08S01", "Unknown command");
        arm_idle_timer(s);
        return;
    }
    if (answered_locally(s, cmd)) {
        reply_local(s, cmd, payload, first_len);
        sl_buf_consume(&s->cs.in, total);
        arm_idle_timer(s);
        return;
    }
    if (cmd == SL_COM_QUERY || cmd == SL_COM_PROCESS_KILL) {
        struct sl_kill k = {.query_only = false, .id = 0};
        enum sl_kill_parse_result kr = SL_KILL_ID;
        if (cmd == SL_COM_PROCESS_KILL)
            k.id = sl_get_u32(payload + 1);
        else
            kr = sl_kill_parse((const char *)payload + 1, first_len - 1, &k);
        if (kr == SL_KILL_REFUSED) {
            sl_buf_consume(&s->cs.in, total);
            send_err(s, 1, SL_ER_NOT_SUPPORTED, "42000",
                     "This version of sluice doesn't yet support this form of KILL: use KILL "
                     "[QUERY] <connection id>");
            arm_idle_timer(s);
            return;
        }
        if (kr == SL_KILL_ID && handle_kill(s, &k)) {
            if (s->state != SL_SS_CLOSING) {
                sl_buf_consume(&s->cs.in, total);
                arm_idle_timer(s);
            }
            return;
        }
    }
    s->stmt_kind = command_kind(cmd);
    s->stmt_nondet = false;
    if (cmd == SL_COM_QUERY) {
        if (logical_len - 1 > SL_LARGE_STATEMENT_BYTES) {
            sl_session_pin(s, SL_PIN_LARGE_STATEMENT);
            s->stmt_kind = SL_STMT_OTHER;
        } else {
            struct sl_stmt_scan scan;
            sl_stmt_scan((const char *)payload + 1, first_len - 1, &scan);
            sl_session_pin(s, scan.pins);
            s->stmt_kind = scan.kind;
            s->stmt_nondet = scan.nondeterministic;
        }
    } else if (cmd == SL_COM_STMT_PREPARE) {
        sl_session_pin(s, SL_PIN_PREPARED);
    }
    s->cmd = cmd;
    s->cmd_len = total;
    s->pending = SL_PENDING_COMMAND;
    s->recoveries = 0;
    /* A connection held over from a lease that has run out may have been fenced (killed on the
     * database) while this process was paused: nothing is written to it any more. */
    if (s->be && sl_quota_lease_over(s->be->share->target))
        sl_backend_abort(s->be);
    if (s->lost != SL_LOST_NONE && !resume_after_loss(s))
        return;
    if (s->be) {
        if (sl_backend_prepare(s->be))
            forward_pending(s);
        else
            s->state = SL_SS_WAITING;
        return;
    }
    s->state = SL_SS_WAITING;
    sl_pool_borrow(s);
}

void sl_session_pin(struct sl_session *s, uint32_t reasons)
{
    uint32_t fresh = reasons & ~s->pins;
    s->pins |= reasons;
    for (unsigned i = 0; fresh && i < SL_PIN_REASON_COUNT; i++)
        if (fresh & (1u << i))
            s->proxy->worker->stats.pins[i]++;
}

void sl_session_arm_borrow_timer(struct sl_session *s)
{
    unsigned secs = s->proxy->cfg->pool.connection_borrow_timeout;
    uv_timer_start(&s->timer, on_timer, (uint64_t)secs * 1000, 0);
}

static void on_client_read(struct sl_stream *st)
{
    struct sl_session *s = session_of(st);
    size_t max = s->proxy->cfg->max_packet_size;
    while (s->state != SL_SS_CLOSING) {
        if (s->be && s->be->infile) {
            sl_backend_forward_infile(s->be, &s->cs.in);
            return;
        }
        if (s->state == SL_SS_WAITING || s->state == SL_SS_BUSY) {
            /* Pipelined commands wait until the current one is done; past a bound the client is
             * no longer read (back-pressure) rather than buffered without limit. */
            if (sl_buf_avail(&s->cs.in) > s->cmd_len + PIPELINE_BUFFER)
                sl_stream_read_stop(&s->cs);
            return;
        }
        if (s->state == SL_SS_TLS)
            return;
        if (s->state < SL_SS_IDLE && sl_buf_avail(&s->cs.in) >= SL_PKT_HDR_LEN &&
            sl_pkt_seq(sl_buf_head(&s->cs.in)) != s->seq) {
            /* Checked on the header, as the server does: garbage or a misplaced command is
             * answered at once instead of waiting for a packet length that may never arrive. */
            send_err(s, (uint8_t)(sl_pkt_seq(sl_buf_head(&s->cs.in)) + 1),
                     SL_ER_NET_PACKETS_OUT_OF_ORDER, "08S01", "Got packets out of order");
            sl_session_close(s);
            return;
        }
        size_t total, first_len, logical_len;
        const uint8_t *payload;
        int r = frame(&s->cs.in, max, &total, &payload, &first_len, &logical_len);
        if (r == 0)
            return;
        if (r < 0) {
            send_err(s, answer_seq(s), SL_ER_NET_PACKET_TOO_LARGE, "08S01",
                     "Got a packet bigger than 'max_allowed_packet' bytes");
            sl_session_close(s);
            return;
        }
        switch (s->state) {
        case SL_SS_GREETING:
        case SL_SS_AUTH_RESPONSE:
        case SL_SS_AUTH_SWITCH:
        case SL_SS_AUTH_FULL: {
            uint8_t seq = sl_pkt_seq(sl_buf_head(&s->cs.in));
            if (logical_len != first_len) {
                send_err(s, (uint8_t)(seq + 1), SL_ER_HANDSHAKE, "08S01", "Bad handshake");
                sl_session_close(s);
                return;
            }
            /* Consumed before it is handled: the bytes stay readable (nothing writes into the
             * buffer meanwhile), and a TLS upgrade must only see what follows the SSLRequest. */
            sl_buf_consume(&s->cs.in, total);
            if (s->state == SL_SS_AUTH_SWITCH) {
                const char *pl = s->auth_sha2 ? "caching_sha2_password" : "mysql_native_password";
                s->seq++;
                check_auth(s, pl, strlen(pl), payload, first_len);
            } else if (s->state == SL_SS_AUTH_FULL) {
                s->seq++;
                handle_full_auth(s, payload, first_len);
            } else {
                handle_handshake_response(s, payload, first_len);
            }
            break;
        }
        case SL_SS_IDLE: handle_command(s, payload, first_len, logical_len, total); break;
        default: return;
        }
    }
}

static void on_client_tls_done(struct sl_stream *st)
{
    struct sl_session *s = session_of(st);
    s->tls = true;
    s->state = SL_SS_AUTH_RESPONSE;
}

static void on_client_drained(struct sl_stream *st)
{
    struct sl_session *s = session_of(st);
    if (s->be)
        sl_backend_resume(s->be);
}
