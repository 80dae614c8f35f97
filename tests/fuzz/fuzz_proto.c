/* libFuzzer target for the wire-protocol codec and the response tracker.
 *
 * Input: byte 0 selects the tracker kind (low 3 bits) and whether SESSION_TRACK was negotiated
 * (bit 7); the rest is (1) handed to every parser as one payload, and (2) cut into packets for the
 * tracker: each record is len(2, LE) + avail hint(1) + up to len payload bytes. Every buffer is
 * heap-allocated at its exact size so ASan reports any read past it. Parsed results are rebuilt
 * and parsed again where the format allows an exact round trip; a mismatch traps.
 *
 * Build: clang -fsanitize=fuzzer,address -I. tests/fuzz/fuzz_proto.c pool/proto.c pool/response.c
 *        -lcrypto */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pool/proto.h"
#include "pool/response.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c))                                                                                  \
            __builtin_trap();                                                                      \
    } while (0)

static uint8_t *dup_exact(const uint8_t *p, size_t n)
{
    uint8_t *q = malloc(n ? n : 1);
    CHECK(q != NULL);
    if (n > 0)
        memcpy(q, p, n);
    return q;
}

static void fuzz_lenenc(const uint8_t *p, size_t len)
{
    const uint8_t *q = p;
    uint64_t v;
    uint8_t buf[9];

    while (sl_lenenc_get(&q, p + len, &v) == 0) {
        const uint8_t *r = buf;
        uint64_t back;
        size_t n = (size_t)(sl_lenenc_put(buf, v) - buf);
        CHECK(n == sl_lenenc_size(v));
        CHECK(sl_lenenc_get(&r, buf + n, &back) == 0 && back == v && r == buf + n);
    }
}

static void fuzz_greeting(const uint8_t *p, size_t len)
{
    struct sl_greeting g, back;
    uint8_t out[256];
    size_t n;

    if (sl_greeting_parse(p, len, &g) < 0)
        return;
    n = sl_greeting_build(out, sizeof(out), &g);
    CHECK(n > 0);
    CHECK(sl_greeting_parse(out, n, &back) == 0);
    CHECK(memcmp(&g, &back, sizeof(g)) == 0);
}

static void fuzz_handshake_response(const uint8_t *p, size_t len)
{
    struct sl_handshake_response r, back;
    uint8_t *out;
    size_t n, cap = len + 16;

    if (sl_handshake_response_parse(p, len, &r) < 0)
        return;
    out = malloc(cap);
    CHECK(out != NULL);
    if (r.is_ssl_request) {
        n = sl_ssl_request_build(out, cap, r.caps, r.max_packet, r.collation);
        CHECK(n == 32);
        CHECK(sl_handshake_response_parse(out, n, &back) == 0 && back.is_ssl_request);
        CHECK(back.caps == r.caps && back.max_packet == r.max_packet);
        CHECK(back.collation == r.collation);
    } else if (r.caps & (SL_CLIENT_SECURE_CONNECTION | SL_CLIENT_PLUGIN_AUTH_LENENC)) {
        /* Only the counted auth encodings round-trip; the NUL-terminated one is parse-only. */
        n = sl_handshake_response_build(out, cap, &r);
        CHECK(n > 0);
        CHECK(sl_handshake_response_parse(out, n, &back) == 0 && !back.is_ssl_request);
        CHECK(back.caps == r.caps && back.max_packet == r.max_packet);
        CHECK(back.collation == r.collation && back.ext_caps == r.ext_caps);
        CHECK(back.user_len == r.user_len && memcmp(back.user, r.user, r.user_len) == 0);
        CHECK(back.auth_len == r.auth_len &&
              (r.auth_len == 0 || memcmp(back.auth, r.auth, r.auth_len) == 0));
        CHECK(back.has_db == r.has_db && back.db_len == r.db_len);
        CHECK(back.plugin_len == r.plugin_len && back.attrs_len == r.attrs_len);
    }
    free(out);
}

static void fuzz_ok(const uint8_t *p, size_t len, uint32_t caps)
{
    struct sl_ok ok;
    struct sl_track_entry e;
    const uint8_t *q;

    if (sl_ok_parse(p, len, caps, &ok) < 0)
        return;
    if (ok.state) {
        q = ok.state;
        while (sl_track_next(&q, ok.state + ok.state_len, &e) == 1)
            CHECK(q <= ok.state + ok.state_len);
    }
}

static void fuzz_misc(const uint8_t *p, size_t len)
{
    struct sl_auth_switch a;
    struct sl_err err;
    struct sl_track_entry e;
    const uint8_t *q = p;
    uint16_t w, s;
    int rc;

    if (sl_auth_switch_parse(p, len, &a) == 0)
        CHECK(a.plugin_len + a.data_len < len);
    if (sl_err_parse(p, len, &err) == 0)
        CHECK(strlen(err.sqlstate) <= 5);
    if (sl_eof_parse(p, len, &w, &s) == 0)
        CHECK(len >= 5 && len < 9);
    while ((rc = sl_track_next(&q, p + len, &e)) == 1)
        CHECK(q <= p + len);
    CHECK(rc == 0 || rc == -1);
}

static void fuzz_builders(const uint8_t *p, size_t len)
{
    uint8_t out[64], tok[32], tok2[32];
    struct sl_ok ok;
    uint64_t a, id;
    size_t n;

    if (len < 20)
        return;
    memcpy(&a, p, 8);
    memcpy(&id, p + 8, 8);
    n = sl_ok_build(out, sizeof(out), a, id, sl_get_u16(p + 16), sl_get_u16(p + 18));
    CHECK(n > 0);
    CHECK(sl_ok_parse(out, n, SL_CLIENT_SESSION_TRACK, &ok) == 0);
    CHECK(ok.affected_rows == a && ok.last_insert_id == id);
    CHECK(ok.status == sl_get_u16(p + 16) && ok.warnings == sl_get_u16(p + 18));

    /* scrambles: deterministic, and compare equal to themselves only */
    n = sl_native_token(p, (const char *)p + 20, len - 20, tok);
    CHECK(n == (len > 20 ? 20u : 0u));
    CHECK(sl_native_token(p, (const char *)p + 20, len - 20, tok2) == n);
    CHECK(sl_token_equal(tok, n, tok2, n));
    n = sl_sha2_token(p, (const char *)p + 20, len - 20, tok);
    CHECK(n == (len > 20 ? 32u : 0u));
    CHECK(sl_sha2_token(p, (const char *)p + 20, len - 20, tok2) == n);
    CHECK(sl_token_equal(tok, n, tok2, n));
}

static void fuzz_tracker(uint8_t selector, const uint8_t *p, size_t len)
{
    struct sl_resp_tracker t;
    bool ended = false;

    memset(&t, 0, sizeof(t));
    sl_resp_begin(&t, (enum sl_resp_kind)((selector & 7) % 7),
                  (selector & 0x80) ? SL_CLIENT_SESSION_TRACK : 0, 0x0002);
    while (len >= 3) {
        size_t plen = sl_get_u16(p), hint = p[2], avail;
        uint8_t *buf;
        enum sl_resp_result r;

        p += 3;
        len -= 3;
        if (plen == 0xFFFF) {
            /* out-of-band: the relay says the client's LOCAL INFILE data went out */
            sl_resp_infile_sent(&t);
            continue;
        }
        if (plen > len)
            plen = len;
        avail = hint == 0 || hint > plen ? plen : hint;
        buf = dup_exact(p, avail);
        r = sl_resp_feed(&t, buf, avail, plen);
        free(buf);
        if (r == SL_RESP_NEED_FULL) {
            CHECK(avail < plen);
            buf = dup_exact(p, plen);
            r = sl_resp_feed(&t, buf, plen, plen);
            free(buf);
            CHECK(r != SL_RESP_NEED_FULL);
        }
        p += plen;
        len -= plen;
        if (r == SL_RESP_INFILE)
            sl_resp_infile_sent(&t);
        if (ended)
            CHECK(r == SL_RESP_BAD); /* nothing may follow the end */
        if (r == SL_RESP_DONE || r == SL_RESP_BAD)
            ended = true;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *p;
    size_t len;

    if (size < 1)
        return 0;
    len = size - 1;
    p = dup_exact(data + 1, len);
    fuzz_lenenc(p, len);
    fuzz_greeting(p, len);
    fuzz_handshake_response(p, len);
    fuzz_ok(p, len, 0);
    fuzz_ok(p, len, SL_CLIENT_SESSION_TRACK);
    fuzz_misc(p, len);
    fuzz_builders(p, len);
    fuzz_tracker(data[0], p, len);
    free(p);
    return 0;
}
