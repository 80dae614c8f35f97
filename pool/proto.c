/* MySQL/MariaDB wire-protocol codec. See proto.h for the contract; layouts follow
 * /work/shared/notes/mysql-protocol.md section 1. */
#include "pool/proto.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

/* ---- reading helpers: a cursor *p that never passes end -------------------------------------- */

static size_t left(const uint8_t *p, const uint8_t *end)
{
    return (size_t)(end - p);
}

static int take(const uint8_t **p, const uint8_t *end, size_t n, const uint8_t **out)
{
    if (left(*p, end) < n)
        return -1;
    *out = *p;
    *p += n;
    return 0;
}

static int take_u8(const uint8_t **p, const uint8_t *end, uint8_t *v)
{
    if (*p == end)
        return -1;
    *v = *(*p)++;
    return 0;
}

static int take_u16(const uint8_t **p, const uint8_t *end, uint16_t *v)
{
    const uint8_t *b;
    if (take(p, end, 2, &b) < 0)
        return -1;
    *v = sl_get_u16(b);
    return 0;
}

static int take_u32(const uint8_t **p, const uint8_t *end, uint32_t *v)
{
    const uint8_t *b;
    if (take(p, end, 4, &b) < 0)
        return -1;
    *v = sl_get_u32(b);
    return 0;
}

/* NUL-terminated string; the NUL must lie inside the buffer and is consumed but not counted. */
static int take_nulstr(const uint8_t **p, const uint8_t *end, const uint8_t **s, size_t *len)
{
    const uint8_t *nul = memchr(*p, 0, left(*p, end));
    if (nul == NULL)
        return -1;
    *s = *p;
    *len = (size_t)(nul - *p);
    *p = nul + 1;
    return 0;
}

static int take_lenenc_str(const uint8_t **p, const uint8_t *end, const uint8_t **s, size_t *len)
{
    const uint8_t *q = *p;
    uint64_t n;
    if (sl_lenenc_get(&q, end, &n) < 0 || n > left(q, end))
        return -1;
    *s = q;
    *len = (size_t)n;
    *p = q + n;
    return 0;
}

/* Copy a string into a fixed NUL-terminated field; -1 when it does not fit. */
static int copy_field(char *dst, size_t cap, const uint8_t *s, size_t len)
{
    if (len >= cap)
        return -1;
    memcpy(dst, s, len);
    dst[len] = '\0';
    return 0;
}

/* ---- writing helpers: a writer that remembers overflow so builders check once at the end ----- */

struct wr {
    uint8_t *p;
    uint8_t *end;
    bool ok;
};

static void put_bytes(struct wr *w, const void *s, size_t n)
{
    if (!w->ok || left(w->p, w->end) < n) {
        w->ok = false;
        return;
    }
    if (n > 0)
        memcpy(w->p, s, n);
    w->p += n;
}

static void put_zero(struct wr *w, size_t n)
{
    if (!w->ok || left(w->p, w->end) < n) {
        w->ok = false;
        return;
    }
    memset(w->p, 0, n);
    w->p += n;
}

static void put_u8(struct wr *w, uint8_t v)
{
    put_bytes(w, &v, 1);
}

static void put_u16(struct wr *w, uint16_t v)
{
    uint8_t b[2];
    sl_put_u16(b, v);
    put_bytes(w, b, 2);
}

static void put_u32(struct wr *w, uint32_t v)
{
    uint8_t b[4];
    sl_put_u32(b, v);
    put_bytes(w, b, 4);
}

static void put_lenenc(struct wr *w, uint64_t v)
{
    uint8_t b[9];
    size_t n = (size_t)(sl_lenenc_put(b, v) - b);
    put_bytes(w, b, n);
}

/* A string written NUL-terminated must not contain a NUL itself, or a reader would cut it short. */
static void put_nulstr(struct wr *w, const void *s, size_t n)
{
    if (n > 0 && memchr(s, 0, n) != NULL) {
        w->ok = false;
        return;
    }
    put_bytes(w, s, n);
    put_u8(w, 0);
}

static size_t wr_done(const struct wr *w, const uint8_t *start)
{
    return w->ok ? (size_t)(w->p - start) : 0;
}

static struct wr wr_init(uint8_t *out, size_t cap)
{
    return (struct wr){.p = out, .end = out ? out + cap : NULL, .ok = out != NULL};
}

/* Bounded strlen for the fixed-size char arrays of the structs (they should be NUL-terminated). */
static size_t field_len(const char *s, size_t cap)
{
    const char *nul = memchr(s, 0, cap);
    return nul ? (size_t)(nul - s) : cap;
}

/* ---- length-encoded integers ----------------------------------------------------------------- */

size_t sl_lenenc_size(uint64_t v)
{
    if (v < 251)
        return 1;
    if (v <= 0xFFFF)
        return 3;
    if (v <= 0xFFFFFF)
        return 4;
    return 9;
}

uint8_t *sl_lenenc_put(uint8_t *p, uint64_t v)
{
    size_t n;
    if (v < 251) {
        *p++ = (uint8_t)v;
        return p;
    }
    if (v <= 0xFFFF) {
        *p++ = 0xFC;
        n = 2;
    } else if (v <= 0xFFFFFF) {
        *p++ = 0xFD;
        n = 3;
    } else {
        *p++ = 0xFE;
        n = 8;
    }
    for (size_t i = 0; i < n; i++)
        *p++ = (uint8_t)(v >> (8 * i));
    return p;
}

int sl_lenenc_get(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
    const uint8_t *q = *p;
    size_t n;
    uint64_t r = 0;

    if (q >= end)
        return -1;
    switch (*q) {
    case 0xFB: /* NULL marker in rows, not an integer */
    case 0xFF: /* ERR header, not an integer */ return -1;
    case 0xFC: n = 2; break;
    case 0xFD: n = 3; break;
    case 0xFE: n = 8; break;
    default:
        *v = *q;
        *p = q + 1;
        return 0;
    }
    q++;
    if (left(q, end) < n)
        return -1;
    for (size_t i = 0; i < n; i++)
        r |= (uint64_t)q[i] << (8 * i);
    *v = r;
    *p = q + n;
    return 0;
}

/* ---- greeting -------------------------------------------------------------------------------- */

/* Auth data length announced in the greeting: nonce + NUL, as MySQL and MariaDB send it. */
#define GREETING_AUTH_DATA_LEN (SL_NONCE_LEN + 1)

size_t sl_greeting_build(uint8_t *out, size_t cap, const struct sl_greeting *g)
{
    struct wr w = wr_init(out, cap);

    put_u8(&w, 10);
    put_nulstr(&w, g->server_version, field_len(g->server_version, sizeof(g->server_version)));
    put_u32(&w, g->conn_id);
    put_bytes(&w, g->nonce, 8);
    put_u8(&w, 0);
    put_u16(&w, (uint16_t)g->caps);
    put_u8(&w, g->collation);
    put_u16(&w, g->status);
    put_u16(&w, (uint16_t)(g->caps >> 16));
    put_u8(&w, GREETING_AUTH_DATA_LEN);
    put_zero(&w, 6);
    /* MariaDB puts its extended capabilities in the last 4 reserved bytes, but only when it
     * presents itself as MariaDB (CLIENT_MYSQL clear). */
    put_u32(&w, (g->caps & SL_CLIENT_MYSQL) ? 0 : g->ext_caps);
    put_bytes(&w, g->nonce + 8, SL_NONCE_LEN - 8);
    put_u8(&w, 0);
    put_nulstr(&w, g->auth_plugin, field_len(g->auth_plugin, sizeof(g->auth_plugin)));
    return wr_done(&w, out);
}

int sl_greeting_parse(const uint8_t *p, size_t len, struct sl_greeting *out)
{
    const uint8_t *end = p + len;
    const uint8_t *s, *nonce1, *nonce2, *ext;
    size_t slen, part2;
    uint8_t proto, filler, auth_len;
    uint16_t caps_lo, caps_hi;

    memset(out, 0, sizeof(*out));
    if (take_u8(&p, end, &proto) < 0 || proto != 10)
        return -1;
    if (take_nulstr(&p, end, &s, &slen) < 0)
        return -1;
    /* The version is informational: keep what fits rather than refuse an unusual server. */
    if (slen >= sizeof(out->server_version))
        slen = sizeof(out->server_version) - 1;
    memcpy(out->server_version, s, slen);
    if (take_u32(&p, end, &out->conn_id) < 0 || take(&p, end, 8, &nonce1) < 0 ||
        take_u8(&p, end, &filler) < 0 || take_u16(&p, end, &caps_lo) < 0 ||
        take_u8(&p, end, &out->collation) < 0 || take_u16(&p, end, &out->status) < 0 ||
        take_u16(&p, end, &caps_hi) < 0 || take_u8(&p, end, &auth_len) < 0 ||
        take(&p, end, 6, &s) < 0 || take(&p, end, 4, &ext) < 0)
        return -1;
    out->caps = (uint32_t)caps_lo | (uint32_t)caps_hi << 16;
    /* MySQL sets bit 0 and leaves these 4 bytes reserved. */
    out->ext_caps = (out->caps & SL_CLIENT_MYSQL) ? 0 : sl_get_u32(ext);

    /* Second nonce part: max(13, auth_len - 8) bytes including a trailing NUL. Anything else than
     * a 20-byte nonce cannot be represented (and no supported plugin uses one). */
    part2 = auth_len > 8 ? (size_t)auth_len - 8 : 0;
    if (part2 < 13)
        part2 = 13;
    if (part2 != 13 || take(&p, end, part2, &nonce2) < 0)
        return -1;
    memcpy(out->nonce, nonce1, 8);
    memcpy(out->nonce + 8, nonce2, SL_NONCE_LEN - 8);

    if (out->caps & SL_CLIENT_PLUGIN_AUTH) {
        /* Some old servers omit the final NUL: then the name runs to the end of the packet. */
        const uint8_t *nul = memchr(p, 0, left(p, end));
        slen = nul ? (size_t)(nul - p) : left(p, end);
        if (copy_field(out->auth_plugin, sizeof(out->auth_plugin), p, slen) < 0)
            return -1;
    }
    return 0;
}

/* ---- handshake response ---------------------------------------------------------------------- */

#define SSL_REQUEST_LEN     32
#define RESPONSE_FILLER_LEN 23

int sl_handshake_response_parse(const uint8_t *p, size_t len, struct sl_handshake_response *out)
{
    const uint8_t *end = p + len;
    const uint8_t *filler, *s;
    size_t n;

    memset(out, 0, sizeof(*out));
    if (take_u32(&p, end, &out->caps) < 0 || take_u32(&p, end, &out->max_packet) < 0 ||
        take_u8(&p, end, &out->collation) < 0 || take(&p, end, RESPONSE_FILLER_LEN, &filler) < 0)
        return -1;
    if (!(out->caps & SL_CLIENT_PROTOCOL_41))
        return -1;
    /* MariaDB clients put their extended capabilities in the last 4 filler bytes. */
    if (!(out->caps & SL_CLIENT_MYSQL))
        out->ext_caps = sl_get_u32(filler + RESPONSE_FILLER_LEN - 4);
    if (len == SSL_REQUEST_LEN) {
        out->is_ssl_request = true;
        return 0;
    }

    if (take_nulstr(&p, end, &s, &out->user_len) < 0)
        return -1;
    out->user = (const char *)s;

    if (out->caps & SL_CLIENT_PLUGIN_AUTH_LENENC) {
        if (take_lenenc_str(&p, end, &out->auth, &out->auth_len) < 0)
            return -1;
    } else if (out->caps & SL_CLIENT_SECURE_CONNECTION) {
        uint8_t alen;
        if (take_u8(&p, end, &alen) < 0 || take(&p, end, alen, &out->auth) < 0)
            return -1;
        out->auth_len = alen;
    } else if (take_nulstr(&p, end, &out->auth, &out->auth_len) < 0) {
        return -1;
    }

    if (out->caps & SL_CLIENT_CONNECT_WITH_DB) {
        if (take_nulstr(&p, end, &s, &out->db_len) < 0)
            return -1;
        out->db = (const char *)s;
        out->has_db = true;
    }
    if (out->caps & SL_CLIENT_PLUGIN_AUTH) {
        if (take_nulstr(&p, end, &s, &out->plugin_len) < 0)
            return -1;
        out->plugin = (const char *)s;
    }
    if (out->caps & SL_CLIENT_CONNECT_ATTRS) {
        if (take_lenenc_str(&p, end, &out->attrs, &n) < 0)
            return -1;
        out->attrs_len = n;
    }
    /* Anything after this (MySQL's zstd level) is of no interest. */
    return 0;
}

size_t sl_ssl_request_build(uint8_t *out, size_t cap, uint32_t caps, uint32_t max_packet,
                            uint8_t collation)
{
    struct wr w = wr_init(out, cap);

    put_u32(&w, caps);
    put_u32(&w, max_packet);
    put_u8(&w, collation);
    put_zero(&w, RESPONSE_FILLER_LEN);
    return wr_done(&w, out);
}

size_t sl_handshake_response_build(uint8_t *out, size_t cap, const struct sl_handshake_response *r)
{
    struct wr w = wr_init(out, cap);

    put_u32(&w, r->caps);
    put_u32(&w, r->max_packet);
    put_u8(&w, r->collation);
    put_zero(&w, RESPONSE_FILLER_LEN - 4);
    put_u32(&w, (r->caps & SL_CLIENT_MYSQL) ? 0 : r->ext_caps);
    put_nulstr(&w, r->user, r->user_len);
    if (r->caps & SL_CLIENT_PLUGIN_AUTH_LENENC) {
        put_lenenc(&w, r->auth_len);
    } else if (r->auth_len > 0xFF) {
        w.ok = false; /* a 1-byte length cannot say it */
    } else {
        put_u8(&w, (uint8_t)r->auth_len);
    }
    put_bytes(&w, r->auth, r->auth_len);
    if (r->caps & SL_CLIENT_CONNECT_WITH_DB) {
        if (r->db == NULL)
            w.ok = false; /* contract: CONNECT_WITH_DB requires a database name */
        else
            put_nulstr(&w, r->db, r->db_len);
    }
    if (r->caps & SL_CLIENT_PLUGIN_AUTH)
        put_nulstr(&w, r->plugin ? r->plugin : "", r->plugin ? r->plugin_len : 0);
    if (r->caps & SL_CLIENT_CONNECT_ATTRS) {
        size_t alen = r->attrs ? r->attrs_len : 0;
        put_lenenc(&w, alen);
        put_bytes(&w, r->attrs, alen);
    }
    return wr_done(&w, out);
}

/* ---- auth switch ----------------------------------------------------------------------------- */

size_t sl_auth_switch_build(uint8_t *out, size_t cap, const char *plugin, const uint8_t *data,
                            size_t data_len)
{
    struct wr w = wr_init(out, cap);

    put_u8(&w, 0xFE);
    put_nulstr(&w, plugin, strlen(plugin));
    /* Written verbatim: callers include the trailing NUL native/caching_sha2 clients expect. */
    put_bytes(&w, data, data_len);
    return wr_done(&w, out);
}

int sl_auth_switch_parse(const uint8_t *p, size_t len, struct sl_auth_switch *out)
{
    const uint8_t *end = p + len;
    const uint8_t *s;
    uint8_t hdr;

    memset(out, 0, sizeof(*out));
    if (take_u8(&p, end, &hdr) < 0 || hdr != 0xFE)
        return -1;
    if (take_nulstr(&p, end, &s, &out->plugin_len) < 0)
        return -1;
    out->plugin = (const char *)s;
    out->data = p;
    out->data_len = left(p, end);
    if (out->data_len > 0 && p[out->data_len - 1] == 0)
        out->data_len--;
    return 0;
}

/* ---- OK / ERR / EOF -------------------------------------------------------------------------- */

int sl_ok_parse(const uint8_t *p, size_t len, uint32_t caps, struct sl_ok *out)
{
    const uint8_t *end = p + len;
    uint8_t hdr;

    memset(out, 0, sizeof(*out));
    if (take_u8(&p, end, &hdr) < 0 || (hdr != 0x00 && hdr != 0xFE))
        return -1;
    if (sl_lenenc_get(&p, end, &out->affected_rows) < 0 ||
        sl_lenenc_get(&p, end, &out->last_insert_id) < 0 || take_u16(&p, end, &out->status) < 0 ||
        take_u16(&p, end, &out->warnings) < 0)
        return -1;
    if (!(caps & SL_CLIENT_SESSION_TRACK)) {
        if (p < end) {
            out->info = p;
            out->info_len = left(p, end);
        }
        return 0;
    }
    /* Servers may end the OK right after the warnings (no info, no state block). */
    if (p == end)
        return 0;
    if (take_lenenc_str(&p, end, &out->info, &out->info_len) < 0)
        return -1;
    if (out->status & SL_STATUS_SESSION_STATE_CHANGED) {
        if (take_lenenc_str(&p, end, &out->state, &out->state_len) < 0)
            return -1;
    }
    return 0;
}

size_t sl_ok_build(uint8_t *out, size_t cap, uint64_t affected_rows, uint64_t last_insert_id,
                   uint16_t status, uint16_t warnings)
{
    struct wr w = wr_init(out, cap);

    put_u8(&w, 0x00);
    put_lenenc(&w, affected_rows);
    put_lenenc(&w, last_insert_id);
    put_u16(&w, status);
    put_u16(&w, warnings);
    return wr_done(&w, out);
}

#define SQLSTATE_LEN 5

int sl_err_parse(const uint8_t *p, size_t len, struct sl_err *out)
{
    const uint8_t *end = p + len;
    uint8_t hdr;

    memset(out, 0, sizeof(*out));
    if (take_u8(&p, end, &hdr) < 0 || hdr != 0xFF || take_u16(&p, end, &out->code) < 0)
        return -1;
    /* '#' + SQLSTATE is present once PROTOCOL_41 was agreed; errors sent before that lack it. */
    if (left(p, end) >= 1 + SQLSTATE_LEN && p[0] == '#') {
        memcpy(out->sqlstate, p + 1, SQLSTATE_LEN);
        p += 1 + SQLSTATE_LEN;
    } else {
        memcpy(out->sqlstate, "HY000", SQLSTATE_LEN);
    }
    out->sqlstate[SQLSTATE_LEN] = '\0';
    out->msg = (const char *)p;
    out->msg_len = left(p, end);
    return 0;
}

size_t sl_err_build(uint8_t *out, size_t cap, uint16_t code, const char *sqlstate, const char *msg)
{
    struct wr w = wr_init(out, cap);

    /* A state that is not exactly 5 characters would corrupt the layout: refuse it like an
     * undersized buffer. */
    if (field_len(sqlstate, SQLSTATE_LEN + 1) != SQLSTATE_LEN)
        return 0;
    put_u8(&w, 0xFF);
    put_u16(&w, code);
    put_u8(&w, '#');
    put_bytes(&w, sqlstate, SQLSTATE_LEN);
    put_bytes(&w, msg, strlen(msg));
    return wr_done(&w, out);
}

int sl_eof_parse(const uint8_t *p, size_t len, uint16_t *warnings, uint16_t *status)
{
    /* The 4.1 EOF carries warnings and status; the 1-byte pre-4.1 form is not accepted. */
    if (!sl_is_eof(p, len) || len < 5)
        return -1;
    if (warnings)
        *warnings = sl_get_u16(p + 1);
    if (status)
        *status = sl_get_u16(p + 3);
    return 0;
}

size_t sl_eof_build(uint8_t *out, size_t cap, uint16_t warnings, uint16_t status)
{
    struct wr w = wr_init(out, cap);

    put_u8(&w, 0xFE);
    put_u16(&w, warnings);
    put_u16(&w, status);
    return wr_done(&w, out);
}

/* ---- session-state entries ------------------------------------------------------------------- */

int sl_track_next(const uint8_t **p, const uint8_t *end, struct sl_track_entry *e)
{
    const uint8_t *q = *p;
    const uint8_t *data, *dend;
    size_t dlen;
    uint8_t type;

    memset(e, 0, sizeof(*e));
    if (q >= end)
        return 0;
    if (take_u8(&q, end, &type) < 0 || take_lenenc_str(&q, end, &data, &dlen) < 0)
        return -1;
    e->type = type;
    dend = data + dlen;
    switch (type) {
    case SL_TRACK_SYSVAR:
        if (take_lenenc_str(&data, dend, &e->name, &e->name_len) < 0 ||
            take_lenenc_str(&data, dend, &e->value, &e->value_len) < 0)
            return -1;
        break;
    case SL_TRACK_SCHEMA:
    case SL_TRACK_TRX_CHARACTERISTICS:
    case SL_TRACK_TRX_STATE:
        if (take_lenenc_str(&data, dend, &e->value, &e->value_len) < 0)
            return -1;
        break;
    default:
        /* STATE_CHANGE ('1' without inner length), GTIDS and unknown types: the raw entry data. */
        e->value = data;
        e->value_len = dlen;
        data = dend;
        break;
    }
    /* The inner fields must fill the entry exactly, otherwise our reading of it is wrong. */
    if (data != dend) {
        memset(e, 0, sizeof(*e));
        return -1;
    }
    *p = q;
    return 1;
}

/* ---- scrambles ------------------------------------------------------------------------------- */

/* A digest failure cannot be reported through these signatures without looking like an empty
 * password (0 bytes), which would let an empty token pass verification; libcrypto failing on SHA is
 * not recoverable anyway. */
static void digest(const EVP_MD *md, const void *in, size_t n, uint8_t *out)
{
    if (EVP_Digest(in, n, out, NULL, md, NULL) != 1)
        abort();
}

size_t sl_native_token(const uint8_t nonce[SL_NONCE_LEN], const char *pw, size_t pw_len,
                       uint8_t out[20])
{
    uint8_t h1[20], buf[SL_NONCE_LEN + 20], h3[20];

    if (pw_len == 0)
        return 0;
    digest(EVP_sha1(), pw, pw_len, h1);
    memcpy(buf, nonce, SL_NONCE_LEN);
    digest(EVP_sha1(), h1, sizeof(h1), buf + SL_NONCE_LEN);
    digest(EVP_sha1(), buf, sizeof(buf), h3);
    for (size_t i = 0; i < 20; i++)
        out[i] = h1[i] ^ h3[i];
    /* h1 is password-equivalent for native auth. */
    OPENSSL_cleanse(h1, sizeof(h1));
    OPENSSL_cleanse(buf, sizeof(buf));
    OPENSSL_cleanse(h3, sizeof(h3));
    return 20;
}

size_t sl_sha2_token(const uint8_t nonce[SL_NONCE_LEN], const char *pw, size_t pw_len,
                     uint8_t out[32])
{
    uint8_t h1[32], buf[32 + SL_NONCE_LEN], h3[32];

    if (pw_len == 0)
        return 0;
    digest(EVP_sha256(), pw, pw_len, h1);
    /* Unlike native auth, the nonce goes after the double hash. */
    digest(EVP_sha256(), h1, sizeof(h1), buf);
    memcpy(buf + 32, nonce, SL_NONCE_LEN);
    digest(EVP_sha256(), buf, sizeof(buf), h3);
    for (size_t i = 0; i < 32; i++)
        out[i] = h1[i] ^ h3[i];
    OPENSSL_cleanse(h1, sizeof(h1));
    OPENSSL_cleanse(buf, sizeof(buf));
    OPENSSL_cleanse(h3, sizeof(h3));
    return 32;
}

bool sl_token_equal(const uint8_t *a, size_t a_len, const uint8_t *b, size_t b_len)
{
    /* The lengths are not secret (fixed per plugin); only the contents are compared in constant
     * time. */
    if (a_len != b_len)
        return false;
    return a_len == 0 || CRYPTO_memcmp(a, b, a_len) == 0;
}
