/* Backend connections: our own non-blocking client half of the protocol, then a raw relay.
 *
 * Why not Connector/C here: it hides packet boundaries and sequence ids, performs TLS handshakes
 * blocking, and always negotiates MariaDB's extended metadata, which would have to be rewritten for
 * every non-MariaDB client (see docs/architecture.md). Our handshake asks for exactly the
 * capabilities the front end offers, so responses can be passed through byte for byte.
 *
 * A backend is either working for itself (setup after login, bringing a borrower's session state
 * over, resetting: "internal" commands whose responses are consumed here) or relaying a client's
 * command, whose response packets are passed to the client unchanged while the response tracker
 * watches for the end. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "base/log.h"
#include "pool/internal.h"

/* Capabilities every backend connection asks for; the client-class ones come from the share. */
#define BACKEND_CAPS                                                                               \
    (SL_CLIENT_LONG_FLAG | SL_CLIENT_PROTOCOL_41 | SL_CLIENT_TRANSACTIONS |                        \
     SL_CLIENT_SECURE_CONNECTION | SL_CLIENT_MULTI_STATEMENTS | SL_CLIENT_PLUGIN_AUTH |            \
     SL_CLIENT_PLUGIN_AUTH_LENENC | SL_CLIENT_SESSION_TRACK | SL_CLIENT_RESERVED)

/* Session tracking is how the relay learns what a statement changed without parsing SQL. */
static const char setup_tracking[] =
    "SET SESSION session_track_schema=ON, session_track_state_change=ON, "
    "session_track_system_variables='*', session_track_transaction_info='CHARACTERISTICS'";
static const char setup_max_connections[] = "SELECT @@max_connections";

enum setup_step { STEP_TRACKING, STEP_MAX_CONNECTIONS, STEP_INIT_QUERY, STEP_DONE };

/* Terminal packets are small; rows stream through. */
#define BACKEND_IN_LIMIT (4u * 1024u * 1024u)

static void on_be_read(struct sl_stream *st);
static void on_be_error(struct sl_stream *st, int status);
static void on_be_connected(struct sl_stream *st);
/* A backend leaves the reset (done, failed or lost): the share stops counting on it. */
static void leave_reset(struct sl_backend *b)
{
    if (b->state == SL_BE_RESETTING)
        b->share->resetting--;
}

static void on_be_closed(struct sl_stream *st);

static const struct sl_stream_ops backend_ops = {
    .on_read = on_be_read,
    .on_error = on_be_error,
    .on_connected = on_be_connected,
    .on_closed = on_be_closed,
};

static uint64_t next_backend_id;

int sl_backend_open(struct sl_share *share)
{
    struct sl_target *t = share->target;
    struct sl_worker *w = t->proxy->worker;
    struct sl_backend *b = calloc(1, sizeof *b);
    if (!b)
        return -1;
    if (sl_stream_init(w->loop, &b->bs, &backend_ops, b, BACKEND_IN_LIMIT) != 0) {
        free(b);
        return -1;
    }
    b->share = share;
    b->id = ++next_backend_id;
    b->state = SL_BE_CONNECTING;
    sl_list_init(&b->link);
    sl_vars_init(&b->have);
    sl_list_push_back(&t->backends, &b->target_link);
    t->open++;
    if (t->quota)
        t->quota->open++;
    share->total++;
    share->connecting++;
    w->stats.backend_connections_opened++;
    w->stats.backend_connections_active++;
    /* In a cluster, backends connect from the node's own address: it is how the leader finds (and
     * fences) this node's connections on the database. */
    int rc = w->bind_source ? uv_tcp_bind(&b->bs.tcp, (const struct sockaddr *)&w->source, 0) : 0;
    if (rc == 0)
        rc = sl_stream_connect(&b->bs, (const struct sockaddr *)&t->addr);
    if (rc < 0) {
        sl_warn(0, "backend %llu: connect to %s:%u failed: %s", (unsigned long long)b->id, t->host,
                t->port, uv_strerror(rc));
        sl_pool_backend_failed(share, "CONNECTION_FAILED", NULL, 0);
        b->state = SL_BE_CLOSING;
        sl_stream_abort(&b->bs);
        return -1;
    }
    return 0;
}

static void on_be_closed(struct sl_stream *st)
{
    struct sl_backend *b = st->owner;
    sl_pool_unlink_affinity(b);
    sl_pool_backend_gone(b);
    sl_vars_clear(&b->have);
    free(b);
}

/* Close for good. A healthy connection says COM_QUIT and waits for the server to hang up, so that
 * the database has released the connection before the pool counts the slot as free again. */
void sl_backend_close(struct sl_backend *b)
{
    if (b->state == SL_BE_CLOSING)
        return;
    bool healthy = b->state == SL_BE_IDLE || b->state == SL_BE_RELAYING;
    leave_reset(b);
    if (b->state == SL_BE_IDLE) {
        sl_list_remove(&b->link);
        b->share->target->idle--;
    }
    if (b->state < SL_BE_SETUP)
        b->share->connecting--;
    b->state = SL_BE_CLOSING;
    b->session = NULL;
    static const uint8_t quit[] = {1, 0, 0, 0, SL_COM_QUIT};
    if (healthy && sl_stream_write(&b->bs, quit, sizeof quit) == 0 &&
        sl_stream_read_start(&b->bs) == 0)
        return; /* on_be_error(UV_EOF) finishes the close */
    sl_stream_abort(&b->bs);
}

void sl_backend_abort(struct sl_backend *b)
{
    if (b->state == SL_BE_CLOSING)
        return;
    struct sl_session *s = b->session;
    if (b->state == SL_BE_IDLE) {
        sl_list_remove(&b->link);
        b->share->target->idle--;
    }
    if (b->state < SL_BE_SETUP)
        b->share->connecting--;
    leave_reset(b);
    b->state = SL_BE_CLOSING;
    b->session = NULL;
    sl_stream_abort(&b->bs);
    if (s)
        sl_session_backend_lost(s);
}

static void fail_login(struct sl_backend *b, const char *reason, const uint8_t *err, size_t len)
{
    struct sl_share *share = b->share;
    share->connecting--;
    b->state = SL_BE_CLOSING;
    sl_pool_backend_failed(share, reason, err, len);
    sl_stream_abort(&b->bs);
}

static void on_be_error(struct sl_stream *st, int status)
{
    struct sl_backend *b = st->owner;
    struct sl_target *t = b->share->target;
    switch (b->state) {
    case SL_BE_CLOSING: sl_stream_abort(&b->bs); return;
    case SL_BE_CONNECTING:
    case SL_BE_GREETING:
    case SL_BE_AUTH:
        sl_warn(0, "backend %llu: connection to %s:%u failed: %s", (unsigned long long)b->id,
                t->host, t->port, uv_strerror(status));
        fail_login(b, "CONNECTION_FAILED", NULL, 0);
        return;
    default: break;
    }
    struct sl_session *s = b->session;
    sl_info(s ? s->id : 0, "backend %llu lost: %s", (unsigned long long)b->id, uv_strerror(status));
    t->last_loss = sl_now(t->proxy->worker);
    if (b->state == SL_BE_IDLE) {
        sl_list_remove(&b->link);
        t->idle--;
    }
    leave_reset(b);
    b->state = SL_BE_CLOSING;
    b->session = NULL;
    sl_stream_abort(&b->bs);
    if (s)
        sl_session_backend_lost(s);
}

static void on_be_connected(struct sl_stream *st)
{
    struct sl_backend *b = st->owner;
    b->state = SL_BE_GREETING;
}

/* ---- commands of our own ------------------------------------------------------------------------
 */

static void on_track_ok(void *arg, const uint8_t *payload, size_t len);

static void begin_response(struct sl_backend *b, enum sl_resp_kind kind, bool internal)
{
    sl_resp_begin(&b->rt, kind, b->caps, b->status);
    b->rt.on_ok = on_track_ok;
    b->rt.on_ok_arg = b;
    b->internal = internal;
    b->packet_index = 0;
}

static void send_internal(struct sl_backend *b, uint8_t cmd, const void *arg, size_t len,
                          enum sl_resp_kind kind)
{
    uint8_t hdr[SL_PKT_HDR_LEN + 1];
    sl_pkt_hdr_put(hdr, (uint32_t)(len + 1), 0);
    hdr[SL_PKT_HDR_LEN] = cmd;
    begin_response(b, kind, true);
    if (sl_stream_write(&b->bs, hdr, sizeof hdr) == 0 && len > 0)
        sl_stream_write(&b->bs, arg, len);
}

void sl_backend_send_command(struct sl_backend *b, const uint8_t *pkt, size_t len,
                             enum sl_resp_kind kind)
{
    begin_response(b, kind, false);
    b->state = SL_BE_RELAYING;
    sl_stream_write(&b->bs, pkt, len);
}

static void run_setup(struct sl_backend *b)
{
    const struct sl_pool_config *pc = &b->share->target->proxy->cfg->pool;
    for (;;) {
        switch (b->setup_step) {
        case STEP_TRACKING:
            send_internal(b, SL_COM_QUERY, setup_tracking, sizeof setup_tracking - 1,
                          SL_RESP_QUERY);
            return;
        case STEP_MAX_CONNECTIONS:
            send_internal(b, SL_COM_QUERY, setup_max_connections, sizeof setup_max_connections - 1,
                          SL_RESP_QUERY);
            return;
        case STEP_INIT_QUERY:
            if (pc->init_query) {
                send_internal(b, SL_COM_QUERY, pc->init_query, strlen(pc->init_query),
                              SL_RESP_QUERY);
                return;
            }
            b->setup_step++;
            break;
        default:
            /* Variables the init query set are this connection's baseline, like the server's own
             * defaults: a session that never set them gets them as they are. */
            if (!b->share->baseline_known) {
                sl_vars_copy(&b->share->baseline, &b->have);
                b->share->baseline_known = true;
            }
            if (b->state == SL_BE_SETUP) {
                b->share->connecting--;
                sl_pool_backend_ready(b);
            } else {
                leave_reset(b);
                b->state = SL_BE_RELAYING;
                sl_pool_release(b, false);
            }
            return;
        }
    }
}

/* A statement run by setup failed: a broken init_query must not give clients half-set-up sessions.
 */
static void setup_failed(struct sl_backend *b, const uint8_t *err, size_t err_len)
{
    struct sl_target *t = b->share->target;
    sl_warn(0, "backend %llu: setup statement %d failed with error %u; closing it",
            (unsigned long long)b->id, b->setup_step, b->rt.error_code);
    if (b->state == SL_BE_SETUP) {
        /* Waiting clients get the database's own error (e.g. a syntax error in init_query)
         * rather than a borrow timeout that hides the cause. */
        snprintf(t->health_reason, sizeof t->health_reason, "INIT_QUERY_FAILED");
        fail_login(b, "INIT_QUERY_FAILED", err_len ? err : NULL, err_len);
    } else {
        sl_backend_close(b);
    }
}

/* ---- preparing for a borrower -------------------------------------------------------------------
 */

/* The state the borrower expects, with the share's baseline where it set nothing itself. */
static const struct sl_vars *wanted(struct sl_backend *b, struct sl_vars *tmp)
{
    struct sl_session *s = b->session;
    const struct sl_vars *base = &b->share->baseline;
    bool needs_overlay = false;
    for (int i = 0; i < SL_VAR_COUNT; i++)
        if (!s->want.values[i] && base->values[i])
            needs_overlay = true;
    if (!needs_overlay)
        return &s->want;
    sl_vars_copy(tmp, &s->want);
    for (int i = 0; i < SL_VAR_COUNT; i++)
        if (!tmp->values[i] && base->values[i])
            sl_vars_set(tmp, (enum sl_var_id)i, base->values[i], strlen(base->values[i]));
    return tmp;
}

/* A backend idle for longer than this is pinged before it is lent out (PgBouncer's
 * server_check_delay): a connection that died without a FIN (network loss, a frozen server) is then
 * found before a client's command is written to it. */
#define CHECK_AFTER_IDLE_S 30.0

/* Send the first preparation step still needed. Returns false when the backend is ready. */
static bool prepare_step(struct sl_backend *b)
{
    struct sl_session *s = b->session;
    /* Also after a connection of the same target died (a failover, a restart): its idle siblings
     * are likely dead too, and a client's command must not be the one to find out. */
    const struct sl_target *t = b->share->target;
    if (b->idle_since > 0 && (sl_now(t->proxy->worker) - b->idle_since > CHECK_AFTER_IDLE_S ||
                              b->idle_since <= t->last_loss)) {
        b->idle_since = 0;
        b->prep = SL_PREP_PING;
        send_internal(b, SL_COM_PING, NULL, 0, SL_RESP_OK_ERR);
        return true;
    }
    b->idle_since = 0;
    if (s->want.schema && sl_vars_schema_differs(&s->want, &b->have)) {
        b->prep = SL_PREP_SCHEMA;
        send_internal(b, SL_COM_INIT_DB, s->want.schema, strlen(s->want.schema), SL_RESP_OK_ERR);
        return true;
    }
    struct sl_vars tmp;
    sl_vars_init(&tmp);
    const struct sl_vars *want = wanted(b, &tmp);
    if (want->hash != b->have.hash || !sl_vars_equal(want, &b->have)) {
        char sql[4096];
        size_t n = sl_vars_diff_sql(want, &b->have, sql, sizeof sql);
        if (n > 0 && n != (size_t)-1) {
            b->prep = SL_PREP_VARS;
            send_internal(b, SL_COM_QUERY, sql, n, SL_RESP_QUERY);
            sl_vars_clear(&tmp);
            return true;
        }
    }
    sl_vars_clear(&tmp);
    if ((int)s->multi_statements != b->multi_statements) {
        uint8_t opt[2];
        sl_put_u16(opt, s->multi_statements ? 0 : 1);
        b->prep = SL_PREP_MULTI;
        send_internal(b, SL_COM_SET_OPTION, opt, sizeof opt, SL_RESP_EOF_ERR);
        return true;
    }
    if (s->replay_pending) {
        /* Last step: the statements of the session's lost transaction, each answer checked
         * against the recorded one (sl_session_backend_ready or sl_session_replay_mismatch). */
        const uint8_t *pkt;
        size_t len;
        if (sl_replay_next(&s->replay, &s->replay_pos, &pkt, &len, &b->crc_expected)) {
            b->prep = SL_PREP_REPLAY;
            begin_response(b, SL_RESP_QUERY, true);
            b->crc_on = true;
            b->crc = 0;
            sl_stream_write(&b->bs, pkt, len);
            return true;
        }
    }
    b->prep = SL_PREP_NONE;
    return false;
}

bool sl_backend_prepare(struct sl_backend *b)
{
    b->state = SL_BE_PREPARING;
    b->prep = SL_PREP_NONE;
    if (prepare_step(b))
        return false;
    b->state = SL_BE_RELAYING;
    return true;
}

static void prepare_done(struct sl_backend *b, const uint8_t *err, size_t err_len)
{
    struct sl_session *s = b->session;
    if (b->prep == SL_PREP_REPLAY) {
        /* An error is fine when the original got the same one: the checksum decides. */
        b->crc_on = false;
        if (b->crc != b->crc_expected) {
            b->state = SL_BE_RELAYING;
            if (s)
                sl_session_replay_mismatch(s);
            return;
        }
    } else if (b->rt.error) {
        b->state = SL_BE_RELAYING;
        if (s)
            sl_session_prepare_failed(s, err, err_len);
        return;
    }
    /* Record what the step achieved even if tracking did not report it. */
    struct sl_vars tmp;
    switch (b->prep) {
    case SL_PREP_SCHEMA:
        sl_vars_set_schema(&b->have, s->want.schema, strlen(s->want.schema));
        break;
    case SL_PREP_VARS: {
        sl_vars_init(&tmp);
        const struct sl_vars *want = wanted(b, &tmp);
        char *schema = b->have.schema ? strdup(b->have.schema) : NULL;
        sl_vars_copy(&b->have, want);
        sl_vars_set_schema(&b->have, schema, schema ? strlen(schema) : 0);
        free(schema);
        sl_vars_clear(&tmp);
        break;
    }
    case SL_PREP_MULTI: b->multi_statements = s->multi_statements ? 1 : 0; break;
    default: break;
    }
    if (prepare_step(b))
        return;
    b->state = SL_BE_RELAYING;
    sl_session_backend_ready(s);
}

/* ---- session tracking ---------------------------------------------------------------------------
 */

/* Record a reported variable on the backend and, for a client's statement, in the client's wanted
 * state. Setting the connection character set also changes the collation and vice versa, but
 * tracking reports only the one named: the partner becomes unknown on both sides (see
 * sl_vars_diff_sql). */
static void track_var(struct sl_backend *b, struct sl_session *s, enum sl_var_id id,
                      const char *value, size_t len)
{
    enum sl_var_id partner = SL_VAR_COUNT;
    if (id == SL_VAR_CHARACTER_SET_CONNECTION)
        partner = SL_VAR_COLLATION_CONNECTION;
    else if (id == SL_VAR_COLLATION_CONNECTION)
        partner = SL_VAR_CHARACTER_SET_CONNECTION;
    sl_vars_set(&b->have, id, value, len);
    if (partner != SL_VAR_COUNT)
        sl_vars_set(&b->have, partner, NULL, 0);
    if (!s)
        return;
    sl_vars_set(&s->want, id, value, len);
    if (partner != SL_VAR_COUNT)
        sl_vars_set(&s->want, partner, NULL, 0);
}

static void on_track_ok(void *arg, const uint8_t *payload, size_t len)
{
    struct sl_backend *b = arg;
    struct sl_session *s = b->internal ? NULL : b->session;
    struct sl_ok ok;
    if (sl_ok_parse(payload, len, b->caps, &ok) != 0 || !ok.state)
        return;
    const uint8_t *p = ok.state, *end = ok.state + ok.state_len;
    struct sl_track_entry e;
    bool changed = false, explained = false;
    bool exclude_sets = b->share->target->proxy->cfg->pool.exclude_variable_sets;
    while (sl_track_next(&p, end, &e) == 1) {
        switch (e.type) {
        case SL_TRACK_SYSVAR: {
            int id = sl_var_lookup((const char *)e.name, e.name_len);
            explained = true;
            if (id >= 0) {
                track_var(b, s, (enum sl_var_id)id, (const char *)e.value, e.value_len);
            } else if (s && !exclude_sets &&
                       !sl_var_server_maintained((const char *)e.name, e.name_len)) {
                sl_session_pin(s, SL_PIN_SET_VARIABLE);
            }
            break;
        }
        case SL_TRACK_SCHEMA:
            explained = true;
            sl_vars_set_schema(&b->have, (const char *)e.value, e.value_len);
            if (s)
                sl_vars_set_schema(&s->want, (const char *)e.value, e.value_len);
            break;
        case SL_TRACK_STATE_CHANGE: changed = true; break;
        case SL_TRACK_TRX_STATE:
            explained = true;
            if (s && e.value_len >= 8 && e.value[7] == 'L')
                sl_session_pin(s, SL_PIN_TABLE_LOCK);
            break;
        default: explained = true; break;
        }
    }
    /* A change that no sysvar, schema or transaction entry describes (user variables, temporary
     * tables, PREPARE, state changed inside a routine) cannot be carried over: pin. */
    if (s && changed && !explained && !s->pins)
        sl_session_pin(s, SL_PIN_UNKNOWN_STATE);
}

/* ---- relaying -----------------------------------------------------------------------------------
 */

static void capture_max_connections(struct sl_backend *b, const uint8_t *p, size_t len)
{
    /* The 4th packet of "SELECT @@max_connections" (count, column, EOF, row) holds one lenenc
     * string: the value. */
    const uint8_t *q = p, *end = p + len;
    uint64_t n;
    if (sl_lenenc_get(&q, end, &n) != 0 || n == 0 || n > 10 || (size_t)(end - q) < n)
        return;
    unsigned v = 0;
    for (uint64_t i = 0; i < n; i++) {
        if (q[i] < '0' || q[i] > '9')
            return;
        v = v * 10 + (unsigned)(q[i] - '0');
    }
    struct sl_target *t = b->share->target;
    if (t->db_max_connections != v)
        sl_info(0, "target %s:%u: max_connections=%u, pool limit %u", t->host, t->port, v,
                (unsigned)((uint64_t)v * t->proxy->cfg->pool.max_connections_percent / 100));
    t->db_max_connections = v;
}

static void response_done(struct sl_backend *b, const uint8_t *last, size_t last_len);

static void protocol_error(struct sl_backend *b)
{
    struct sl_session *s = b->session;
    sl_warn(s ? s->id : 0, "backend %llu: malformed response; closing it",
            (unsigned long long)b->id);
    b->session = NULL;
    leave_reset(b);
    b->state = SL_BE_CLOSING;
    sl_stream_abort(&b->bs);
    if (s)
        sl_session_backend_lost(s);
}

/* Clients do not get CLIENT_SESSION_TRACK (backends always have it, for the proxy's own use), so an
 * OK goes to them as the server would send it without tracking: the info string (length-encoded, as
 * MariaDB writes it either way; omitted when empty), no session-state block, no
 * SESSION_STATE_CHANGED flag. */
static void forward_ok(struct sl_session *s, const uint8_t *pkt, uint32_t len)
{
    struct sl_ok ok;
    uint8_t out[SL_PKT_HDR_LEN + 64];
    if (sl_ok_parse(pkt + SL_PKT_HDR_LEN, len, SL_CLIENT_PROTOCOL_41 | SL_CLIENT_SESSION_TRACK,
                    &ok) != 0) {
        sl_stream_write(&s->cs, pkt, SL_PKT_HDR_LEN + len);
        return;
    }
    size_t n = sl_ok_build(out + SL_PKT_HDR_LEN, sizeof out - SL_PKT_HDR_LEN, ok.affected_rows,
                           ok.last_insert_id,
                           (uint16_t)(ok.status & ~SL_STATUS_SESSION_STATE_CHANGED), ok.warnings);
    if (pkt[SL_PKT_HDR_LEN] == 0xFE)
        out[SL_PKT_HDR_LEN] = 0xFE;
    if (ok.info_len)
        n = (size_t)(sl_lenenc_put(out + SL_PKT_HDR_LEN + n, ok.info_len) - out) - SL_PKT_HDR_LEN;
    sl_pkt_hdr_put(out, (uint32_t)(n + ok.info_len), sl_pkt_seq(pkt));
    sl_stream_write(&s->cs, out, SL_PKT_HDR_LEN + n);
    if (ok.info_len)
        sl_stream_write(&s->cs, ok.info, ok.info_len);
}

/* Bytes to pass to the client are collected while they are contiguous in the read buffer and
 * written with one call (one TLS record, one write) instead of one per packet. */
struct span {
    struct sl_session *s;
    const uint8_t *start;
    size_t len;
};

static void span_add(struct span *sp, struct sl_session *s, const uint8_t *p, size_t n)
{
    if (!s)
        return;
    if (sp->len && (sp->s != s || sp->start + sp->len != p)) {
        sl_stream_write(&sp->s->cs, sp->start, sp->len);
        sp->len = 0;
    }
    if (!sp->len) {
        sp->s = s;
        sp->start = p;
    }
    sp->len += n;
}

/* Must run before anything that may reuse the read buffer or end the response. */
static void span_flush(struct span *sp)
{
    if (sp->len)
        sl_stream_write(&sp->s->cs, sp->start, sp->len);
    sp->len = 0;
}

#define SPAN_MAX (64u * 1024u)

/* Response bytes, headers included, into the CRC32 of a recorded or replayed statement. */
static inline void checksum(struct sl_backend *b, const uint8_t *p, size_t n)
{
    if (b->crc_on)
        b->crc = (uint32_t)crc32(b->crc, p, (uInt)n);
}

/* An ERR the server sends as it drops the connection rather than as the answer to the statement. */
static bool announces_close(const uint8_t *err, size_t len)
{
    if (len < 3)
        return false;
    uint16_t code = sl_get_u16(err + 1);
    return code == 1927 /* ER_CONNECTION_KILLED */ || code == 1053 /* ER_SERVER_SHUTDOWN */;
}

static void relay(struct sl_backend *b)
{
    struct sl_buf *in = &b->bs.in;
    struct span sp = {NULL, NULL, 0};
    while (sl_buf_avail(in) > 0) {
        if (b->state != SL_BE_RELAYING && b->state != SL_BE_PREPARING && b->state != SL_BE_SETUP &&
            b->state != SL_BE_RESETTING)
            break;
        struct sl_session *s = b->internal ? NULL : b->session;
        if (sp.len >= SPAN_MAX) {
            span_flush(&sp);
            if (s && s->cs.above_high_water) {
                /* Back-pressure: the client is slower than the database. */
                sl_stream_read_stop(&b->bs);
                return;
            }
        }
        uint8_t *p = sl_buf_head(in);
        size_t avail = sl_buf_avail(in);
        if (b->chunk_left > 0) {
            size_t n = avail < b->chunk_left ? avail : b->chunk_left;
            span_add(&sp, s, p, n);
            checksum(b, p, n);
            sl_buf_consume(in, n);
            b->chunk_left -= (uint32_t)n;
            if (b->chunk_left == 0 && !b->chunk_continues && b->done_pending) {
                span_flush(&sp);
                response_done(b, NULL, 0);
            }
            continue;
        }
        if (avail < SL_PKT_HDR_LEN)
            break;
        uint32_t len = sl_pkt_len(p);
        size_t have = avail - SL_PKT_HDR_LEN < len ? avail - SL_PKT_HDR_LEN : len;
        if (b->chunk_continues) {
            /* Continuation of a packet of 16 MiB or more: pass through, the tracker saw its head.
             */
            b->chunk_continues = len == SL_PKT_MAX_CHUNK;
            span_add(&sp, s, p, SL_PKT_HDR_LEN + have);
            checksum(b, p, SL_PKT_HDR_LEN + have);
            sl_buf_consume(in, SL_PKT_HDR_LEN + have);
            b->chunk_left = (uint32_t)(len - have);
            if (b->chunk_left == 0 && !b->chunk_continues && b->done_pending) {
                span_flush(&sp);
                response_done(b, NULL, 0);
            }
            continue;
        }
        if (have == 0 && len > 0)
            break; /* the tracker needs at least the first byte */
        enum sl_resp_result r = sl_resp_feed(&b->rt, p + SL_PKT_HDR_LEN, have, len);
        if (r == SL_RESP_NEED_FULL)
            break; /* a terminal packet is split across reads: wait for the rest */
        if (r == SL_RESP_BAD) {
            span_flush(&sp);
            protocol_error(b);
            return;
        }
        if (b->internal && b->setup_step == STEP_MAX_CONNECTIONS && b->packet_index == 3 &&
            have == len)
            capture_max_connections(b, p + SL_PKT_HDR_LEN, have);
        if (b->packet_index == 0 && s && s->cmd_sent) {
            if (r == SL_RESP_DONE && b->rt.error && have == len &&
                announces_close(p + SL_PKT_HDR_LEN, len)) {
                /* The server is dropping the connection (KILL, shutdown) instead of answering:
                 * the loss it announces, so the command may still go elsewhere unnoticed. */
                span_flush(&sp);
                sl_info(s->id, "backend %llu: the server closes the connection",
                        (unsigned long long)b->id);
                b->share->target->last_loss = sl_now(s->proxy->worker);
                sl_backend_abort(b);
                return;
            }
            sl_session_response_started(s);
        }
        checksum(b, p, SL_PKT_HDR_LEN + have);
        b->packet_index++;
        /* The terminal packet is kept for a failed preparation step, whose ERR goes to the client.
         */
        uint8_t last[600];
        size_t last_len = 0;
        if (r == SL_RESP_DONE && have == len && len <= sizeof last) {
            memcpy(last, p + SL_PKT_HDR_LEN, len);
            last_len = len;
        }
        if (s && b->rt.last_ok) {
            span_flush(&sp);
            forward_ok(s, p, len);
        } else {
            span_add(&sp, s, p, SL_PKT_HDR_LEN + have);
        }
        sl_buf_consume(in, SL_PKT_HDR_LEN + have);
        b->chunk_left = (uint32_t)(len - have);
        b->chunk_continues = len == SL_PKT_MAX_CHUNK;
        if (r == SL_RESP_INFILE) {
            span_flush(&sp);
            b->infile = true;
            if (b->session)
                sl_session_pin(b->session, SL_PIN_LOCAL_INFILE);
            continue;
        }
        if (r == SL_RESP_DONE) {
            if (b->chunk_left > 0 || b->chunk_continues) {
                b->done_pending = true;
                continue;
            }
            span_flush(&sp);
            response_done(b, last, last_len);
        }
    }
    span_flush(&sp);
    struct sl_session *s = b->internal ? NULL : b->session;
    if (s && s->cs.above_high_water && b->state != SL_BE_CLOSING)
        sl_stream_read_stop(&b->bs); /* back-pressure */
}

void sl_backend_resume(struct sl_backend *b)
{
    if (b->state == SL_BE_CLOSING)
        return;
    sl_stream_read_start(&b->bs);
    relay(b);
}

static void response_done(struct sl_backend *b, const uint8_t *last, size_t last_len)
{
    b->done_pending = false;
    b->status = b->rt.status;
    if (!b->internal) {
        struct sl_session *s = b->session;
        if (b->session)
            b->session->pins &= ~(uint32_t)SL_PIN_LOCAL_INFILE;
        if (s)
            sl_session_relay_done(s, last, last_len);
        return;
    }
    switch (b->state) {
    case SL_BE_SETUP:
    case SL_BE_RESETTING:
        if (b->rt.error) {
            setup_failed(b, last, last_len);
            return;
        }
        /* A reset runs every setup step again, @@max_connections included: besides refreshing the
         * limit, that SELECT replaces the FOUND_ROWS() the previous client left, which
         * COM_RESET_CONNECTION keeps. */
        b->setup_step++;
        run_setup(b);
        return;
    case SL_BE_PREPARING: prepare_done(b, last, last_len); return;
    default: return;
    }
}

void sl_backend_forward_infile(struct sl_backend *b, struct sl_buf *in)
{
    /* The client streams the file as packets and ends with an empty one; pass them on whole. */
    while (sl_buf_avail(in) >= SL_PKT_HDR_LEN) {
        const uint8_t *p = sl_buf_head(in);
        uint32_t len = sl_pkt_len(p);
        if (sl_buf_avail(in) - SL_PKT_HDR_LEN < len)
            return;
        sl_stream_write(&b->bs, p, SL_PKT_HDR_LEN + len);
        sl_buf_consume(in, SL_PKT_HDR_LEN + len);
        if (len == 0) {
            b->infile = false;
            sl_resp_infile_sent(&b->rt);
            return;
        }
    }
}

/* Bring a backend back to a clean state before another client gets it: COM_RESET_CONNECTION undoes
 * transactions, locks, variables, temporary tables and prepared statements; the setup statements
 * then restore tracking and the init query. */
void sl_backend_reset(struct sl_backend *b)
{
    b->state = SL_BE_RESETTING;
    b->share->resetting++;
    b->setup_step = STEP_TRACKING - 1;
    char *schema = b->have.schema ? strdup(b->have.schema) : NULL;
    sl_vars_clear(&b->have);
    if (schema) {
        sl_vars_set_schema(&b->have, schema, strlen(schema));
        free(schema);
    }
    b->multi_statements = -1;
    send_internal(b, SL_COM_RESET_CONNECTION, NULL, 0, SL_RESP_OK_ERR);
}

/* ---- login --------------------------------------------------------------------------------------
 */

static int next_packet(struct sl_backend *b, const uint8_t **payload, size_t *len)
{
    struct sl_buf *in = &b->bs.in;
    if (sl_buf_avail(in) < SL_PKT_HDR_LEN)
        return 0;
    uint32_t n = sl_pkt_len(sl_buf_head(in));
    if (sl_buf_avail(in) - SL_PKT_HDR_LEN < n)
        return 0;
    *payload = sl_buf_head(in) + SL_PKT_HDR_LEN;
    *len = n;
    sl_buf_consume(in, SL_PKT_HDR_LEN + n);
    return 1;
}

static void send_login_packet(struct sl_backend *b, uint8_t seq, const uint8_t *payload, size_t len)
{
    uint8_t hdr[SL_PKT_HDR_LEN];
    sl_pkt_hdr_put(hdr, (uint32_t)len, seq);
    sl_stream_write(&b->bs, hdr, sizeof hdr);
    sl_stream_write(&b->bs, payload, len);
}

static void handle_greeting(struct sl_backend *b, const uint8_t *p, size_t len)
{
    struct sl_greeting g;
    if (sl_quota_lease_over(b->share->target)) {
        /* The lease ran out between the connect decision and now (the process was paused): this
         * connection may no longer exist on the database. */
        sl_warn(0, "backend %llu: lease over before login; closing", (unsigned long long)b->id);
        sl_backend_abort(b);
        return;
    }
    if (len > 0 && p[0] == 0xFF) {
        fail_login(b, "CONNECTION_FAILED", p, len);
        return;
    }
    if (sl_greeting_parse(p, len, &g) != 0) {
        fail_login(b, "CONNECTION_FAILED", NULL, 0);
        return;
    }
    const struct sl_user *u = b->share->user;
    struct sl_target *t = b->share->target;
    t->ext_caps = (g.caps & SL_CLIENT_MYSQL) ? 0 : g.ext_caps;
    if (b->share->ext_caps & ~t->ext_caps) {
        /* Clients of this share were promised extended metadata this server does not send. */
        fail_login(b, "UNSUPPORTED_SERVER", NULL, 0);
        return;
    }
    b->thread_id = g.conn_id;
    b->caps = (BACKEND_CAPS | b->share->class_caps) & g.caps;
    b->multi_statements = (b->caps & SL_CLIENT_MULTI_STATEMENTS) ? 1 : 0;
    uint8_t token[20];
    size_t tl = sl_native_token(g.nonce, u->secret.password, u->secret.password_len, token);
    struct sl_handshake_response r;
    memset(&r, 0, sizeof r);
    r.caps = b->caps;
    r.ext_caps = b->share->ext_caps & g.ext_caps;
    r.max_packet = 1u << 30;
    r.collation = b->share->collation;
    r.user = u->secret.username;
    r.user_len = strlen(u->secret.username);
    r.auth = token;
    r.auth_len = tl;
    r.plugin = "mysql_native_password";
    r.plugin_len = strlen(r.plugin);
    uint8_t buf[512];
    size_t n = sl_handshake_response_build(buf, sizeof buf, &r);
    if (n == 0) {
        fail_login(b, "CONNECTION_FAILED", NULL, 0);
        return;
    }
    b->login_seq = 2;
    send_login_packet(b, 1, buf, n);
    b->state = SL_BE_AUTH;
}

static void handle_auth_reply(struct sl_backend *b, const uint8_t *p, size_t len)
{
    if (len == 0) {
        fail_login(b, "CONNECTION_FAILED", NULL, 0);
        return;
    }
    switch (p[0]) {
    case 0x00:
        b->state = SL_BE_SETUP;
        b->setup_step = STEP_TRACKING;
        b->share->target->health = SL_TARGET_AVAILABLE;
        b->share->target->health_reason[0] = '\0';
        run_setup(b);
        return;
    case 0xFF: {
        struct sl_err e;
        bool denied = sl_err_parse(p, len, &e) == 0 && e.code == 1045;
        sl_warn(0, "backend %llu: login refused by the database (error %u)",
                (unsigned long long)b->id, denied ? 1045u : e.code);
        fail_login(b, denied ? "AUTH_FAILURE" : "CONNECTION_FAILED", p, len);
        return;
    }
    case 0xFE: {
        struct sl_auth_switch sw;
        const struct sl_user *u = b->share->user;
        if (sl_auth_switch_parse(p, len, &sw) != 0 || sw.plugin_len != 21 ||
            memcmp(sw.plugin, "mysql_native_password", 21) != 0 || sw.data_len < SL_NONCE_LEN) {
            fail_login(b, "AUTH_FAILURE", NULL, 0);
            return;
        }
        uint8_t token[20];
        size_t tl = sl_native_token(sw.data, u->secret.password, u->secret.password_len, token);
        send_login_packet(b, (uint8_t)(b->login_seq + 1), token, tl);
        b->login_seq = (uint8_t)(b->login_seq + 2);
        return;
    }
    case 0x01:
        if (len == 2 && p[1] == 0x03)
            return; /* caching_sha2 fast path succeeded: the OK follows */
        fail_login(b, "AUTH_FAILURE", NULL, 0);
        return;
    default: fail_login(b, "CONNECTION_FAILED", NULL, 0); return;
    }
}

static void on_be_read(struct sl_stream *st)
{
    struct sl_backend *b = st->owner;
    const uint8_t *p;
    size_t len;
    switch (b->state) {
    case SL_BE_GREETING:
        if (next_packet(b, &p, &len))
            handle_greeting(b, p, len);
        return;
    case SL_BE_AUTH:
        while (b->state == SL_BE_AUTH && next_packet(b, &p, &len)) {
            b->login_seq++;
            handle_auth_reply(b, p, len);
        }
        if (b->state == SL_BE_SETUP)
            relay(b);
        return;
    case SL_BE_CLOSING: sl_buf_consume(&b->bs.in, sl_buf_avail(&b->bs.in)); return;
    case SL_BE_IDLE:
        /* An idle backend has nothing to say; a server that speaks up is timing us out. */
        sl_info(0, "backend %llu: unexpected data while idle; closing it",
                (unsigned long long)b->id);
        sl_backend_close(b);
        return;
    default: relay(b); return;
    }
}
