/* Wire-protocol codec: builders, parsers, lenenc, session-state entries and scrambles.
 *
 * Packet vectors marked "captured" are payloads recorded from MariaDB 10.11.19 (Debian 12) with a
 * raw-socket client, or between the Debian `mariadb` CLI and that server (the CLI's login token is
 * therefore a known answer for mysql_native_password). Every parser is also run on every proper
 * prefix of its vectors, each copied into a buffer of exactly that size so ASan catches
 * over-reads. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "pool/proto.h"

/* ---- helpers --------------------------------------------------------------------------------- */

/* Decode a hex string into a heap buffer of exactly the decoded size (1 byte when empty). */
static uint8_t *unhex(const char *h, size_t *len)
{
    size_t n = strlen(h) / 2;
    uint8_t *p = malloc(n ? n : 1);
    assert_non_null(p);
    for (size_t i = 0; i < n; i++) {
        char b[3] = {h[2 * i], h[2 * i + 1], 0};
        p[i] = (uint8_t)strtoul(b, NULL, 16);
    }
    *len = n;
    return p;
}

/* Copy the first n bytes into their own exactly-sized allocation. */
static uint8_t *prefix(const uint8_t *p, size_t n)
{
    uint8_t *q = malloc(n ? n : 1);
    assert_non_null(q);
    if (n > 0)
        memcpy(q, p, n);
    return q;
}

static void assert_str_n(const void *s, size_t len, const char *want)
{
    assert_int_equal(len, strlen(want));
    assert_memory_equal(s, want, len);
}

/* captured: greeting of MariaDB 10.11.19 as seen by the `mariadb` CLI */
static const char greeting_maria_hex[] =
    "0a352e352e352d31302e31312e31392d4d6172696144422d302b6465623132753100050000003d604a3156407a"
    "6900fef7080240ff81150000000000001d0000007d5928565c4a403f5a27534d006d7973716c5f6e617469766"
    "55f70617373776f726400";
/* MySQL 8.0 layout (bit 0 set, the 4 extended bytes reserved), caching_sha2_password default */
static const char greeting_mysql8_hex[] = "0a382e302e333600"
                                          "0b000000"
                                          "0102030405060708"
                                          "00"
                                          "ffff"
                                          "ff"
                                          "0200"
                                          "ffdf"
                                          "15"
                                          "00000000000000000000"
                                          "090a0b0c0d0e0f101112131400"
                                          "63616368696e675f736861325f7061737377"
                                          "6f726400";
/* captured: the `mariadb` CLI's HandshakeResponse41 to greeting_maria_hex (user u, password pw,
 * database t, connect attributes) */
static const char response_cli_hex[] =
    "8ca2bf000000100021000000000000000000000000000000000000001d000000750014fb20d6a1788e9954aa5f75"
    "3ff694da2e4985d99174006d7973716c5f6e61746976655f70617373776f7264007e035f6f73054c696e75780c"
    "5f636c69656e745f6e616d650a6c69626d617269616462045f70696404353338370f5f636c69656e745f76657273"
    "696f6e06332e332e3230095f706c6174666f726d067838365f36340c70726f6772616d5f6e616d65056d7973716c"
    "0c5f7365727665725f686f7374093132372e302e302e31";
/* captured OKs (client had SESSION_TRACK) */
/* after login with db t: schema, state change, trx state and characteristics */
static const char ok_login_hex[] = "000000024000000015010201740201310509085f5f5f5f5f5f5f5f040100";
static const char ok_autocommit0_hex[] = /* SET autocommit=0 */
    "000000004000000014000f0a6175746f636f6d6d6974034f4646020131";
static const char ok_begin_hex[] = /* BEGIN */
    "000000034000000020050908545f5f5f5f5f5f5f0413125354415254205452414e53414354494f4e3b";
static const char ok_insert_hex[] = /* INSERT of one row: ends right after the warnings */
    "00010002000000";
static const char ok_infile_hex[] = /* LOAD DATA LOCAL INFILE answer: info string */
    "000200020000002f5265636f7264733a2032202044656c657465643a20302020536b69707065643a2030202057"
    "61726e696e67733a2030";
/* captured ERR for "SELEC 1" */
static const char err_syntax_hex[] =
    "ff2804233432303030596f75206861766520616e206572726f7220696e20796f75722053514c2073796e7461783b"
    "20636865636b20746865206d616e75616c207468617420636f72726573706f6e647320746f20796f7572204d6172"
    "69614442207365727665722076657273696f6e20666f72207468652072696768742073796e74617820746f207573"
    "65206e656172202753454c4543203127206174206c696e652031";
/* captured AuthSwitchRequest answering COM_CHANGE_USER */
static const char auth_switch_hex[] =
    "fe6d7973716c5f6e61746976655f70617373776f7264007d4b41436968503557374a523d76605b2a5d745000";

/* ---- lenenc ---------------------------------------------------------------------------------- */

static void test_lenenc_edges(void **state)
{
    static const struct {
        uint64_t v;
        const char *hex;
    } cases[] = {
        {0, "00"},
        {250, "fa"},
        {251, "fcfb00"},
        {0xFFFF, "fcffff"},
        {0x10000, "fd000001"},
        {0xFFFFFF, "fdffffff"},
        {0x1000000, "fe0000000100000000"},
        {UINT64_MAX, "feffffffffffffffff"},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t n;
        uint8_t *want = unhex(cases[i].hex, &n);
        uint8_t buf[9];
        const uint8_t *p;
        uint64_t v = 0;

        assert_int_equal(sl_lenenc_size(cases[i].v), n);
        assert_ptr_equal(sl_lenenc_put(buf, cases[i].v), buf + n);
        assert_memory_equal(buf, want, n);

        p = want;
        assert_int_equal(sl_lenenc_get(&p, want + n, &v), 0);
        assert_true(v == cases[i].v);
        assert_ptr_equal(p, want + n);

        for (size_t k = 0; k < n; k++) {
            uint8_t *t = prefix(want, k);
            p = t;
            assert_int_equal(sl_lenenc_get(&p, t + k, &v), -1);
            assert_ptr_equal(p, t); /* not advanced on failure */
            free(t);
        }
        free(want);
    }
}

static void test_lenenc_rejects_null_and_err(void **state)
{
    static const uint8_t fb[] = {0xFB, 0x00}, ff[] = {0xFF, 0x00, 0x00};
    const uint8_t *p;
    uint64_t v;
    (void)state;

    p = fb;
    assert_int_equal(sl_lenenc_get(&p, fb + sizeof(fb), &v), -1);
    p = ff;
    assert_int_equal(sl_lenenc_get(&p, ff + sizeof(ff), &v), -1);
}

/* ---- greeting -------------------------------------------------------------------------------- */

static void test_greeting_parse_mariadb(void **state)
{
    size_t len;
    uint8_t *p = unhex(greeting_maria_hex, &len);
    struct sl_greeting g;
    static const uint8_t nonce[] = {0x3d, 0x60, 0x4a, 0x31, 0x56, 0x40, 0x7a, 0x69, 0x7d, 0x59,
                                    0x28, 0x56, 0x5c, 0x4a, 0x40, 0x3f, 0x5a, 0x27, 0x53, 0x4d};
    (void)state;

    assert_int_equal(sl_greeting_parse(p, len, &g), 0);
    assert_string_equal(g.server_version, "5.5.5-10.11.19-MariaDB-0+deb12u1");
    assert_int_equal(g.conn_id, 5);
    assert_memory_equal(g.nonce, nonce, SL_NONCE_LEN);
    assert_int_equal(g.caps, 0x81FFF7FE);
    assert_int_equal(g.ext_caps, 0x1D);
    assert_int_equal(g.collation, 8);
    assert_int_equal(g.status, SL_STATUS_AUTOCOMMIT | SL_STATUS_SESSION_STATE_CHANGED);
    assert_string_equal(g.auth_plugin, "mysql_native_password");
    free(p);
}

static void test_greeting_parse_mysql8(void **state)
{
    size_t len;
    uint8_t *p = unhex(greeting_mysql8_hex, &len);
    struct sl_greeting g;
    (void)state;

    assert_int_equal(sl_greeting_parse(p, len, &g), 0);
    assert_string_equal(g.server_version, "8.0.36");
    assert_int_equal(g.conn_id, 11);
    for (int i = 0; i < SL_NONCE_LEN; i++)
        assert_int_equal(g.nonce[i], i + 1);
    assert_int_equal(g.caps, 0xDFFFFFFF);
    assert_int_equal(g.ext_caps, 0);
    assert_int_equal(g.collation, 255);
    assert_string_equal(g.auth_plugin, "caching_sha2_password");

    /* With bit 0 set, whatever sits in the 4 reserved bytes is not extended capabilities. */
    p[8 + 4 + 8 + 1 + 2 + 1 + 2 + 2 + 1 + 6] = 0x1D;
    assert_int_equal(sl_greeting_parse(p, len, &g), 0);
    assert_int_equal(g.ext_caps, 0);
    free(p);
}

static void test_greeting_roundtrip_exact(void **state)
{
    size_t len;
    uint8_t *p = unhex(greeting_maria_hex, &len);
    struct sl_greeting g;
    uint8_t out[256];
    (void)state;

    assert_int_equal(sl_greeting_parse(p, len, &g), 0);
    assert_int_equal(sl_greeting_build(out, sizeof(out), &g), len);
    assert_memory_equal(out, p, len);
    free(p);

    p = unhex(greeting_mysql8_hex, &len);
    assert_int_equal(sl_greeting_parse(p, len, &g), 0);
    assert_int_equal(sl_greeting_build(out, sizeof(out), &g), len);
    assert_memory_equal(out, p, len);
    free(p);
}

static void test_greeting_build_fields(void **state)
{
    struct sl_greeting g, back;
    uint8_t out[128];
    size_t n;
    (void)state;

    memset(&g, 0, sizeof(g));
    strcpy(g.server_version, "10.11.99-sluice");
    g.conn_id = 0x01020304;
    for (int i = 0; i < SL_NONCE_LEN; i++)
        g.nonce[i] = (uint8_t)(0x41 + i);
    g.caps = SL_CLIENT_PROTOCOL_41 | SL_CLIENT_SECURE_CONNECTION | SL_CLIENT_PLUGIN_AUTH |
             SL_CLIENT_SESSION_TRACK;
    g.ext_caps = 0x1D;
    g.collation = 45;
    g.status = SL_STATUS_AUTOCOMMIT;
    strcpy(g.auth_plugin, "caching_sha2_password");

    n = sl_greeting_build(out, sizeof(out), &g);
    assert_int_equal(n, 1 + 16 + 4 + 8 + 1 + 2 + 1 + 2 + 2 + 1 + 6 + 4 + 13 + 22);
    assert_int_equal(out[0], 10);
    assert_int_equal(out[17 + 4 + 8], 0);                      /* filler */
    assert_int_equal(out[17 + 4 + 8 + 1 + 2 + 1 + 2 + 2], 21); /* auth data length */
    assert_int_equal(sl_get_u32(out + 17 + 4 + 8 + 1 + 2 + 1 + 2 + 2 + 1 + 6), 0x1D);
    assert_int_equal(sl_greeting_parse(out, n, &back), 0);
    assert_memory_equal(&back, &g, sizeof(g));

    /* MySQL-style: the extended bytes are written as zeros. */
    g.caps |= SL_CLIENT_MYSQL;
    n = sl_greeting_build(out, sizeof(out), &g);
    assert_int_equal(sl_get_u32(out + 17 + 4 + 8 + 1 + 2 + 1 + 2 + 2 + 1 + 6), 0);
    assert_int_equal(sl_greeting_parse(out, n, &back), 0);
    assert_int_equal(back.ext_caps, 0);

    /* Every buffer too small by at least one byte is refused without writing past it. */
    for (size_t cap = 0; cap < n; cap++) {
        uint8_t *small = malloc(cap ? cap : 1);
        assert_int_equal(sl_greeting_build(small, cap, &g), 0);
        free(small);
    }
}

static void test_greeting_truncated(void **state)
{
    const char *vectors[] = {greeting_maria_hex, greeting_mysql8_hex};
    (void)state;

    for (size_t v = 0; v < 2; v++) {
        size_t len;
        uint8_t *p = unhex(vectors[v], &len);
        struct sl_greeting full;
        /* The plugin name may lack its NUL (old servers), so only cuts before it must fail. */
        size_t plugin_at;

        assert_int_equal(sl_greeting_parse(p, len, &full), 0);
        plugin_at = len - strlen(full.auth_plugin) - 1;
        for (size_t k = 0; k < len; k++) {
            uint8_t *t = prefix(p, k);
            struct sl_greeting g;
            int rc = sl_greeting_parse(t, k, &g);
            if (k < plugin_at) {
                assert_int_equal(rc, -1);
            } else {
                assert_int_equal(rc, 0);
                assert_int_equal(strlen(g.auth_plugin), k - plugin_at);
                assert_memory_equal(g.nonce, full.nonce, SL_NONCE_LEN);
            }
            free(t);
        }
        free(p);
    }
}

static void test_greeting_malformed(void **state)
{
    size_t len;
    uint8_t *p = unhex(greeting_maria_hex, &len);
    struct sl_greeting g;
    const size_t auth_len_at = 1 + 33 + 4 + 8 + 1 + 2 + 1 + 2 + 2;
    (void)state;

    p[0] = 9; /* protocol version */
    assert_int_equal(sl_greeting_parse(p, len, &g), -1);
    p[0] = 10;
    p[auth_len_at] = 30; /* a 30-byte nonce cannot be stored */
    assert_int_equal(sl_greeting_parse(p, len, &g), -1);
    p[auth_len_at] = 0; /* no auth length announced: the 13-byte second part is still read */
    assert_int_equal(sl_greeting_parse(p, len, &g), 0);
    free(p);

    /* An over-long version string is cut (it is informational) ... */
    {
        uint8_t buf[200];
        size_t vlen = 70;
        struct sl_greeting ref;
        p = unhex(greeting_maria_hex, &len);
        assert_int_equal(sl_greeting_parse(p, len, &ref), 0);
        buf[0] = 10;
        memset(buf + 1, 'v', vlen);
        memcpy(buf + 1 + vlen, p + 33, len - 33); /* from the version's NUL on */
        assert_int_equal(sl_greeting_parse(buf, 1 + vlen + len - 33, &g), 0);
        assert_int_equal(strlen(g.server_version), sizeof(g.server_version) - 1);
        assert_int_equal(g.server_version[0], 'v');
        assert_memory_equal(g.nonce, ref.nonce, SL_NONCE_LEN);
        assert_string_equal(g.auth_plugin, ref.auth_plugin);
        free(p);
    }
    /* ... an over-long plugin name is refused, since it decides the authentication. */
    {
        uint8_t buf[400];
        struct sl_greeting big;
        size_t n;
        memset(&big, 0, sizeof(big));
        strcpy(big.server_version, "1");
        big.caps = SL_CLIENT_PLUGIN_AUTH | SL_CLIENT_PROTOCOL_41;
        memset(big.auth_plugin, 'p', sizeof(big.auth_plugin) - 1);
        n = sl_greeting_build(buf, sizeof(buf), &big);
        assert_true(n > 0);
        assert_int_equal(sl_greeting_parse(buf, n, &g), 0);
        assert_int_equal(strlen(g.auth_plugin), sizeof(g.auth_plugin) - 1);
        /* grow the plugin name by one byte in place */
        buf[n - 1] = 'p';
        buf[n] = 0;
        assert_int_equal(sl_greeting_parse(buf, n + 1, &g), -1);
    }
}

/* ---- handshake response ---------------------------------------------------------------------- */

static void test_response_parse_cli(void **state)
{
    size_t len, glen;
    uint8_t *p = unhex(response_cli_hex, &len);
    uint8_t *gp = unhex(greeting_maria_hex, &glen);
    struct sl_handshake_response r;
    struct sl_greeting g;
    uint8_t token[20];
    (void)state;

    assert_int_equal(sl_handshake_response_parse(p, len, &r), 0);
    assert_false(r.is_ssl_request);
    assert_int_equal(r.caps, 0x00BFA28C);
    assert_int_equal(r.max_packet, 0x100000);
    assert_int_equal(r.collation, 33);
    assert_int_equal(r.ext_caps, 0x1D);
    assert_str_n(r.user, r.user_len, "u");
    assert_int_equal(r.auth_len, 20);
    assert_true(r.has_db);
    assert_str_n(r.db, r.db_len, "t");
    assert_str_n(r.plugin, r.plugin_len, "mysql_native_password");
    assert_int_equal(r.attrs_len, 0x7E);
    assert_ptr_equal(r.attrs + r.attrs_len, p + len);
    assert_memory_equal(r.attrs, "\x03_os\x05Linux", 10);

    /* The server accepted this token for password "pw": a known answer for the native scramble. */
    assert_int_equal(sl_greeting_parse(gp, glen, &g), 0);
    assert_int_equal(sl_native_token(g.nonce, "pw", 2, token), 20);
    assert_true(sl_token_equal(token, 20, r.auth, r.auth_len));
    assert_int_equal(sl_native_token(g.nonce, "pX", 2, token), 20);
    assert_false(sl_token_equal(token, 20, r.auth, r.auth_len));
    free(p);
    free(gp);
}

static void test_response_roundtrip_exact(void **state)
{
    size_t len;
    uint8_t *p = unhex(response_cli_hex, &len);
    struct sl_handshake_response r;
    uint8_t out[300];
    (void)state;

    assert_int_equal(sl_handshake_response_parse(p, len, &r), 0);
    assert_int_equal(sl_handshake_response_build(out, sizeof(out), &r), len);
    assert_memory_equal(out, p, len);
    for (size_t cap = 0; cap < len; cap++) {
        uint8_t *small = malloc(cap ? cap : 1);
        assert_int_equal(sl_handshake_response_build(small, cap, &r), 0);
        free(small);
    }
    free(p);
}

static void test_response_truncated(void **state)
{
    size_t len;
    uint8_t *p = unhex(response_cli_hex, &len);
    (void)state;

    for (size_t k = 0; k < len; k++) {
        uint8_t *t = prefix(p, k);
        struct sl_handshake_response r;
        int rc = sl_handshake_response_parse(t, k, &r);
        if (k == 32) {
            /* exactly the size of an SSLRequest */
            assert_int_equal(rc, 0);
            assert_true(r.is_ssl_request);
        } else {
            assert_int_equal(rc, -1);
        }
        free(t);
    }
    free(p);
}

/* Build with each auth-length encoding and each optional part, parse back, compare. */
static void test_response_variants(void **state)
{
    static const uint8_t auth[] = {1, 2, 3, 0, 5}; /* contains a NUL: fine for counted forms */
    static const uint8_t attrs[] = {3, 'k', 'e', 'y', 1, 'v'};
    const uint32_t base = SL_CLIENT_PROTOCOL_41;
    const uint32_t variants[] = {
        base | SL_CLIENT_SECURE_CONNECTION,
        base | SL_CLIENT_SECURE_CONNECTION | SL_CLIENT_PLUGIN_AUTH_LENENC,
        base | SL_CLIENT_SECURE_CONNECTION | SL_CLIENT_CONNECT_WITH_DB | SL_CLIENT_PLUGIN_AUTH,
        base | SL_CLIENT_PLUGIN_AUTH_LENENC | SL_CLIENT_CONNECT_ATTRS | SL_CLIENT_MYSQL,
        base | SL_CLIENT_PLUGIN_AUTH_LENENC | SL_CLIENT_CONNECT_ATTRS | SL_CLIENT_PLUGIN_AUTH |
            SL_CLIENT_CONNECT_WITH_DB,
    };
    (void)state;

    for (size_t i = 0; i < sizeof(variants) / sizeof(variants[0]); i++) {
        struct sl_handshake_response r = {0}, back;
        uint8_t out[200];
        size_t n;

        r.caps = variants[i];
        r.max_packet = 0x01000000;
        r.collation = 45;
        r.ext_caps = 0x1D;
        r.user = "app";
        r.user_len = 3;
        r.auth = auth;
        r.auth_len = sizeof(auth);
        r.db = "shop";
        r.db_len = 4;
        r.plugin = "mysql_native_password";
        r.plugin_len = strlen(r.plugin);
        r.attrs = attrs;
        r.attrs_len = sizeof(attrs);
        n = sl_handshake_response_build(out, sizeof(out), &r);
        assert_true(n > 32);
        assert_int_equal(sl_handshake_response_parse(out, n, &back), 0);
        assert_int_equal(back.caps, r.caps);
        assert_int_equal(back.max_packet, r.max_packet);
        assert_int_equal(back.collation, 45);
        assert_int_equal(back.ext_caps, (r.caps & SL_CLIENT_MYSQL) ? 0 : 0x1D);
        assert_str_n(back.user, back.user_len, "app");
        assert_int_equal(back.auth_len, sizeof(auth));
        assert_memory_equal(back.auth, auth, sizeof(auth));
        assert_int_equal(back.has_db, (r.caps & SL_CLIENT_CONNECT_WITH_DB) != 0);
        if (back.has_db)
            assert_str_n(back.db, back.db_len, "shop");
        else
            assert_null(back.db);
        if (r.caps & SL_CLIENT_PLUGIN_AUTH)
            assert_str_n(back.plugin, back.plugin_len, "mysql_native_password");
        else
            assert_int_equal(back.plugin_len, 0);
        if (r.caps & SL_CLIENT_CONNECT_ATTRS) {
            assert_int_equal(back.attrs_len, sizeof(attrs));
            assert_memory_equal(back.attrs, attrs, sizeof(attrs));
        } else {
            assert_int_equal(back.attrs_len, 0);
        }
        /* truncation anywhere past the SSLRequest size fails */
        for (size_t k = 33; k < n; k++) {
            uint8_t *t = prefix(out, k);
            assert_int_equal(sl_handshake_response_parse(t, k, &back), -1);
            free(t);
        }
    }
}

static void test_response_auth_encodings(void **state)
{
    struct sl_handshake_response r = {0}, back;
    uint8_t big[300], out[400];
    size_t n;
    (void)state;

    memset(big, 0xAB, sizeof(big));
    r.caps = SL_CLIENT_PROTOCOL_41 | SL_CLIENT_SECURE_CONNECTION;
    r.user = "u";
    r.user_len = 1;
    r.auth = big;
    r.auth_len = sizeof(big);
    /* 300 bytes do not fit a 1-byte length ... */
    assert_int_equal(sl_handshake_response_build(out, sizeof(out), &r), 0);
    /* ... but do with lenenc (0xFC + 2 bytes) */
    r.caps |= SL_CLIENT_PLUGIN_AUTH_LENENC;
    n = sl_handshake_response_build(out, sizeof(out), &r);
    assert_int_equal(n, 32 + 2 + 3 + 300);
    assert_int_equal(out[34], 0xFC);
    assert_int_equal(sl_handshake_response_parse(out, n, &back), 0);
    assert_int_equal(back.auth_len, 300);

    /* Neither SECURE_CONNECTION nor LENENC: a NUL-terminated auth response (parse only). */
    {
        static const uint8_t old[] = {0x00, 0x02, 0x00, 0x00, 0, 0, 0,   1, 8,   0,   0, 0, 0,
                                      0,    0,    0,    0,    0, 0, 0,   0, 0,   0,   0, 0, 0,
                                      0,    0,    0,    0,    0, 0, 'u', 0, 'x', 'y', 0};
        assert_int_equal(sl_handshake_response_parse(old, sizeof(old), &back), 0);
        assert_str_n(back.user, back.user_len, "u");
        assert_str_n(back.auth, back.auth_len, "xy");
        assert_int_equal(sl_handshake_response_parse(old, sizeof(old) - 1, &back), -1);
    }

    /* Contract violations of the builder: CONNECT_WITH_DB without a name, NUL inside the user. */
    r.caps |= SL_CLIENT_CONNECT_WITH_DB;
    r.auth_len = 0;
    assert_int_equal(sl_handshake_response_build(out, sizeof(out), &r), 0);
    r.caps &= ~SL_CLIENT_CONNECT_WITH_DB;
    r.user = "a\0b";
    r.user_len = 3;
    assert_int_equal(sl_handshake_response_build(out, sizeof(out), &r), 0);
}

static void test_response_rejects_pre41(void **state)
{
    size_t len;
    uint8_t *p = unhex(response_cli_hex, &len);
    struct sl_handshake_response r;
    (void)state;

    p[1] &= (uint8_t) ~(SL_CLIENT_PROTOCOL_41 >> 8);
    assert_int_equal(sl_handshake_response_parse(p, len, &r), -1);
    assert_int_equal(sl_handshake_response_parse(p, 32, &r), -1);
    free(p);
}

static void test_ssl_request(void **state)
{
    const uint32_t caps = SL_CLIENT_PROTOCOL_41 | SL_CLIENT_SSL | SL_CLIENT_SECURE_CONNECTION;
    uint8_t out[32], zero[23] = {0};
    struct sl_handshake_response r;
    (void)state;

    assert_int_equal(sl_ssl_request_build(out, sizeof(out), caps, 0x01000000, 45), 32);
    assert_int_equal(sl_get_u32(out), caps);
    assert_int_equal(sl_get_u32(out + 4), 0x01000000);
    assert_int_equal(out[8], 45);
    assert_memory_equal(out + 9, zero, 23);
    assert_int_equal(sl_handshake_response_parse(out, 32, &r), 0);
    assert_true(r.is_ssl_request);
    assert_int_equal(r.caps, caps);
    assert_int_equal(r.max_packet, 0x01000000);
    assert_int_equal(r.collation, 45);
    assert_int_equal(r.ext_caps, 0);
    assert_null(r.user);
    assert_int_equal(sl_ssl_request_build(out, 31, caps, 0, 0), 0);

    /* A MariaDB client's SSLRequest carries its extended capabilities at the end. */
    sl_put_u32(out + 28, 0x1D);
    assert_int_equal(sl_handshake_response_parse(out, 32, &r), 0);
    assert_int_equal(r.ext_caps, 0x1D);
}

/* ---- auth switch ----------------------------------------------------------------------------- */

static void test_auth_switch(void **state)
{
    size_t len;
    uint8_t *p = unhex(auth_switch_hex, &len);
    struct sl_auth_switch a;
    uint8_t out[64], nonce[SL_NONCE_LEN + 1];
    (void)state;

    assert_int_equal(sl_auth_switch_parse(p, len, &a), 0);
    assert_str_n(a.plugin, a.plugin_len, "mysql_native_password");
    assert_int_equal(a.data_len, SL_NONCE_LEN); /* trailing NUL excluded */
    assert_ptr_equal(a.data, p + 1 + 22);

    /* Rebuild from the nonce plus its NUL: identical bytes. */
    memcpy(nonce, a.data, SL_NONCE_LEN);
    nonce[SL_NONCE_LEN] = 0;
    assert_int_equal(
        sl_auth_switch_build(out, sizeof(out), "mysql_native_password", nonce, sizeof(nonce)), len);
    assert_memory_equal(out, p, len);
    for (size_t cap = 0; cap < len; cap++) {
        uint8_t *small = malloc(cap ? cap : 1);
        assert_int_equal(
            sl_auth_switch_build(small, cap, "mysql_native_password", nonce, sizeof(nonce)), 0);
        free(small);
    }

    /* Cut anywhere before the plugin's NUL: malformed; after it: data shrinks. */
    for (size_t k = 0; k < len; k++) {
        uint8_t *t = prefix(p, k);
        int rc = sl_auth_switch_parse(t, k, &a);
        if (k < 1 + 22) {
            assert_int_equal(rc, -1);
        } else {
            assert_int_equal(rc, 0);
            assert_int_equal(a.data_len, k - 23);
        }
        free(t);
    }

    /* No data at all (mysql_clear_password switch). */
    assert_int_equal(sl_auth_switch_build(out, sizeof(out), "mysql_clear_password", NULL, 0), 22);
    assert_int_equal(sl_auth_switch_parse(out, 22, &a), 0);
    assert_str_n(a.plugin, a.plugin_len, "mysql_clear_password");
    assert_int_equal(a.data_len, 0);

    p[0] = 0x01; /* AuthMoreData is not an AuthSwitchRequest */
    assert_int_equal(sl_auth_switch_parse(p, len, &a), -1);
    free(p);
}

/* ---- OK -------------------------------------------------------------------------------------- */

static void test_ok_parse_captured(void **state)
{
    size_t len;
    uint8_t *p;
    struct sl_ok ok;
    (void)state;

    p = unhex(ok_autocommit0_hex, &len);
    assert_int_equal(sl_ok_parse(p, len, SL_CLIENT_SESSION_TRACK, &ok), 0);
    assert_int_equal(ok.affected_rows, 0);
    assert_int_equal(ok.status, SL_STATUS_SESSION_STATE_CHANGED);
    assert_int_equal(ok.warnings, 0);
    assert_int_equal(ok.info_len, 0);
    assert_int_equal(ok.state_len, 0x14);
    assert_ptr_equal(ok.state, p + 9);
    free(p);

    p = unhex(ok_begin_hex, &len);
    assert_int_equal(sl_ok_parse(p, len, SL_CLIENT_SESSION_TRACK, &ok), 0);
    assert_int_equal(ok.status,
                     SL_STATUS_SESSION_STATE_CHANGED | SL_STATUS_IN_TRANS | SL_STATUS_AUTOCOMMIT);
    assert_int_equal(ok.state_len, 0x20);
    free(p);

    p = unhex(ok_insert_hex, &len);
    assert_int_equal(sl_ok_parse(p, len, SL_CLIENT_SESSION_TRACK, &ok), 0);
    assert_int_equal(ok.affected_rows, 1);
    assert_int_equal(ok.status, SL_STATUS_AUTOCOMMIT);
    assert_null(ok.info);
    assert_null(ok.state);
    free(p);

    p = unhex(ok_infile_hex, &len);
    assert_int_equal(sl_ok_parse(p, len, SL_CLIENT_SESSION_TRACK, &ok), 0);
    assert_int_equal(ok.affected_rows, 2);
    assert_str_n(ok.info, ok.info_len, "Records: 2  Deleted: 0  Skipped: 0  Warnings: 0");
    assert_int_equal(ok.state_len, 0);
    free(p);
}

static void test_ok_without_session_track(void **state)
{
    /* Without SESSION_TRACK the info is the rest of the packet, not a lenenc string. */
    static const uint8_t pkt[] = {0x00, 0x03, 0xFC, 0x10, 0x27, 0x22, 0x00,
                                  0x01, 0x00, 'R',  'o',  'w',  's'};
    struct sl_ok ok;
    (void)state;

    assert_int_equal(sl_ok_parse(pkt, sizeof(pkt), 0, &ok), 0);
    assert_int_equal(ok.affected_rows, 3);
    assert_int_equal(ok.last_insert_id, 10000);
    assert_int_equal(ok.status, 0x22);
    assert_int_equal(ok.warnings, 1);
    assert_str_n(ok.info, ok.info_len, "Rows");
    assert_null(ok.state);
    /* the same bytes read as lenenc info ('R' = 82 bytes) are truncated */
    assert_int_equal(sl_ok_parse(pkt, sizeof(pkt), SL_CLIENT_SESSION_TRACK, &ok), -1);
}

static void test_ok_build_roundtrip(void **state)
{
    static const uint64_t values[] = {0,       250,      251,       0xFFFF,
                                      0x10000, 0xFFFFFF, 0x1000000, UINT64_MAX};
    uint8_t out[32];
    struct sl_ok ok;
    (void)state;

    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
        uint64_t a = values[i], id = values[sizeof(values) / sizeof(values[0]) - 1 - i];
        size_t n = sl_ok_build(out, sizeof(out), a, id, 0x4003, 7);
        assert_int_equal(n, 1 + sl_lenenc_size(a) + sl_lenenc_size(id) + 4);
        assert_int_equal(out[0], 0x00);
        for (int caps = 0; caps < 2; caps++) {
            assert_int_equal(sl_ok_parse(out, n, caps ? SL_CLIENT_SESSION_TRACK : 0, &ok), 0);
            assert_true(ok.affected_rows == a);
            assert_true(ok.last_insert_id == id);
            assert_int_equal(ok.status, 0x4003);
            assert_int_equal(ok.warnings, 7);
            assert_int_equal(ok.info_len, 0);
            assert_int_equal(ok.state_len, 0);
        }
        for (size_t cap = 0; cap < n; cap++) {
            uint8_t *small = malloc(cap ? cap : 1);
            assert_int_equal(sl_ok_build(small, cap, a, id, 0, 0), 0);
            free(small);
        }
    }
}

static void test_ok_truncated(void **state)
{
    const char *vectors[] = {ok_login_hex, ok_autocommit0_hex, ok_begin_hex, ok_infile_hex};
    (void)state;

    for (size_t v = 0; v < sizeof(vectors) / sizeof(vectors[0]); v++) {
        size_t len;
        uint8_t *p = unhex(vectors[v], &len);
        /* all four have 1-byte affected rows and insert id: warnings end at byte 7 */
        for (size_t k = 0; k < len; k++) {
            uint8_t *t = prefix(p, k);
            struct sl_ok ok;
            assert_int_equal(sl_ok_parse(t, k, SL_CLIENT_SESSION_TRACK, &ok), k == 7 ? 0 : -1);
            free(t);
        }
        free(p);
    }
}

static void test_ok_malformed(void **state)
{
    static const uint8_t not_ok[] = {0x01, 0, 0, 2, 0, 0, 0};
    static const uint8_t null_rows[] = {0x00, 0xFB, 0, 2, 0, 0, 0};
    static const uint8_t eof_hdr[] = {0xFE, 0, 0, 2, 0, 0, 0};
    /* SESSION_STATE_CHANGED with info but no block */
    static const uint8_t no_block[] = {0x00, 0, 0, 0x00, 0x40, 0, 0, 0x00};
    struct sl_ok ok;
    (void)state;

    assert_int_equal(sl_ok_parse(not_ok, sizeof(not_ok), 0, &ok), -1);
    assert_int_equal(sl_ok_parse(null_rows, sizeof(null_rows), 0, &ok), -1);
    assert_int_equal(sl_ok_parse(eof_hdr, sizeof(eof_hdr), 0, &ok), 0); /* 0xFE header accepted */
    assert_int_equal(sl_ok_parse(no_block, sizeof(no_block), SL_CLIENT_SESSION_TRACK, &ok), -1);
}

/* ---- ERR / EOF ------------------------------------------------------------------------------- */

static void test_err_parse(void **state)
{
    size_t len;
    uint8_t *p = unhex(err_syntax_hex, &len);
    struct sl_err e;
    /* before PROTOCOL_41 is agreed there is no '#' + state */
    static const uint8_t bare[] = {0xFF, 0x10, 0x04, 'T', 'o', 'o', ' ', 'm', 'a', 'n', 'y'};
    (void)state;

    assert_int_equal(sl_err_parse(p, len, &e), 0);
    assert_int_equal(e.code, 1064);
    assert_string_equal(e.sqlstate, "42000");
    assert_int_equal(e.msg_len, len - 9);
    assert_memory_equal(e.msg, "You have an error in your SQL syntax", 36);

    assert_int_equal(sl_err_parse(bare, sizeof(bare), &e), 0);
    assert_int_equal(e.code, 1040);
    assert_string_equal(e.sqlstate, "HY000");
    assert_str_n(e.msg, e.msg_len, "Too many");

    /* Cuts before the code fail; later cuts still parse (message or state shrink away). */
    for (size_t k = 0; k < len; k++) {
        uint8_t *t = prefix(p, k);
        assert_int_equal(sl_err_parse(t, k, &e), k < 3 ? -1 : 0);
        if (k >= 3)
            assert_int_equal(e.code, 1064);
        if (k >= 9)
            assert_string_equal(e.sqlstate, "42000");
        free(t);
    }
    p[0] = 0x00;
    assert_int_equal(sl_err_parse(p, len, &e), -1);
    free(p);
}

static void test_err_build(void **state)
{
    uint8_t out[64];
    struct sl_err e;
    size_t n;
    (void)state;

    n = sl_err_build(out, sizeof(out), 1045, "28000", "Access denied");
    assert_int_equal(n, 9 + 13);
    assert_memory_equal(out, "\xFF\x15\x04#28000Access denied", n);
    assert_int_equal(sl_err_parse(out, n, &e), 0);
    assert_int_equal(e.code, 1045);
    assert_string_equal(e.sqlstate, "28000");
    assert_str_n(e.msg, e.msg_len, "Access denied");

    assert_int_equal(sl_err_build(out, sizeof(out), 1, "2800", "x"), 0);   /* state too short */
    assert_int_equal(sl_err_build(out, sizeof(out), 1, "280000", "x"), 0); /* too long */
    for (size_t cap = 0; cap < n; cap++) {
        uint8_t *small = malloc(cap ? cap : 1);
        assert_int_equal(sl_err_build(small, cap, 1045, "28000", "Access denied"), 0);
        free(small);
    }
}

static void test_eof(void **state)
{
    uint8_t out[5];
    uint16_t w = 0, s = 0;
    static const uint8_t captured[] = {0xFE, 0x00, 0x00, 0x22, 0x00};
    (void)state;

    assert_int_equal(sl_eof_build(out, sizeof(out), 3, 0x000A), 5);
    assert_true(sl_is_eof(out, 5));
    assert_int_equal(sl_eof_parse(out, 5, &w, &s), 0);
    assert_int_equal(w, 3);
    assert_int_equal(s, 0x000A);
    assert_int_equal(sl_eof_build(out, 4, 0, 0), 0);

    assert_int_equal(sl_eof_parse(captured, sizeof(captured), &w, &s), 0);
    assert_int_equal(s, 0x22);
    assert_int_equal(sl_eof_parse(captured, sizeof(captured), NULL, NULL), 0);
    for (size_t k = 0; k < sizeof(captured); k++) {
        uint8_t *t = prefix(captured, k);
        assert_int_equal(sl_eof_parse(t, k, &w, &s), -1);
        free(t);
    }
    /* 9 bytes starting with 0xFE is a row, not an EOF */
    {
        static const uint8_t row[9] = {0xFE, 0, 0, 0, 1, 0, 0, 0, 0};
        assert_false(sl_is_eof(row, sizeof(row)));
        assert_int_equal(sl_eof_parse(row, sizeof(row), &w, &s), -1);
        assert_true(sl_is_eof(row, 8));
    }
}

/* ---- session-state entries ------------------------------------------------------------------- */

static void test_track_login(void **state)
{
    size_t len;
    uint8_t *p = unhex(ok_login_hex, &len);
    struct sl_ok ok;
    struct sl_track_entry e;
    const uint8_t *q, *end;
    (void)state;

    assert_int_equal(sl_ok_parse(p, len, SL_CLIENT_SESSION_TRACK, &ok), 0);
    q = ok.state;
    end = ok.state + ok.state_len;
    assert_int_equal(sl_track_next(&q, end, &e), 1);
    assert_int_equal(e.type, SL_TRACK_SCHEMA);
    assert_null(e.name);
    assert_str_n(e.value, e.value_len, "t");
    /* state change: 02 01 31, the outer length then the raw '1' */
    assert_int_equal(sl_track_next(&q, end, &e), 1);
    assert_int_equal(e.type, SL_TRACK_STATE_CHANGE);
    assert_str_n(e.value, e.value_len, "1");
    assert_int_equal(sl_track_next(&q, end, &e), 1);
    assert_int_equal(e.type, SL_TRACK_TRX_STATE);
    assert_str_n(e.value, e.value_len, "________");
    assert_int_equal(sl_track_next(&q, end, &e), 1);
    assert_int_equal(e.type, SL_TRACK_TRX_CHARACTERISTICS);
    assert_int_equal(e.value_len, 0);
    assert_int_equal(sl_track_next(&q, end, &e), 0);
    assert_ptr_equal(q, end);
    free(p);
}

static void test_track_sysvar_and_trx(void **state)
{
    size_t len;
    uint8_t *p = unhex(ok_autocommit0_hex, &len);
    struct sl_ok ok;
    struct sl_track_entry e;
    const uint8_t *q, *end;
    (void)state;

    assert_int_equal(sl_ok_parse(p, len, SL_CLIENT_SESSION_TRACK, &ok), 0);
    q = ok.state;
    end = ok.state + ok.state_len;
    assert_int_equal(sl_track_next(&q, end, &e), 1);
    assert_int_equal(e.type, SL_TRACK_SYSVAR);
    assert_str_n(e.name, e.name_len, "autocommit");
    assert_str_n(e.value, e.value_len, "OFF");
    assert_int_equal(sl_track_next(&q, end, &e), 1);
    assert_int_equal(e.type, SL_TRACK_STATE_CHANGE);
    assert_str_n(e.value, e.value_len, "1");
    assert_int_equal(sl_track_next(&q, end, &e), 0);
    free(p);

    p = unhex(ok_begin_hex, &len);
    assert_int_equal(sl_ok_parse(p, len, SL_CLIENT_SESSION_TRACK, &ok), 0);
    q = ok.state;
    end = ok.state + ok.state_len;
    assert_int_equal(sl_track_next(&q, end, &e), 1);
    assert_int_equal(e.type, SL_TRACK_TRX_STATE);
    assert_str_n(e.value, e.value_len, "T_______");
    assert_int_equal(sl_track_next(&q, end, &e), 1);
    assert_int_equal(e.type, SL_TRACK_TRX_CHARACTERISTICS);
    assert_str_n(e.value, e.value_len, "START TRANSACTION;");
    assert_int_equal(sl_track_next(&q, end, &e), 0);
    free(p);
}

static void test_track_unknown_and_malformed(void **state)
{
    /* GTIDS and an unknown type 0x09 come back raw; parsing continues after them. */
    static const uint8_t blk[] = {0x03, 0x03, 0x00, 0x01, 'g',  0x09, 0x02,
                                  'x',  'y',  0x01, 0x02, 0x01, 'd'};
    /* sysvar whose value runs past the entry; sysvar with a stray byte; schema cut short */
    static const uint8_t over[] = {0x00, 0x04, 0x01, 'a', 0x05, 'b'};
    static const uint8_t stray[] = {0x00, 0x05, 0x01, 'a', 0x01, 'b', 'c'};
    static const uint8_t bad_len[] = {0x01, 0xFB};
    struct sl_track_entry e;
    const uint8_t *q = blk, *end = blk + sizeof(blk);
    (void)state;

    assert_int_equal(sl_track_next(&q, end, &e), 1);
    assert_int_equal(e.type, SL_TRACK_GTIDS);
    assert_int_equal(e.value_len, 3);
    assert_int_equal(sl_track_next(&q, end, &e), 1);
    assert_int_equal(e.type, 9);
    assert_str_n(e.value, e.value_len, "xy");
    assert_int_equal(sl_track_next(&q, end, &e), 1);
    assert_int_equal(e.type, SL_TRACK_SCHEMA);
    assert_str_n(e.value, e.value_len, "d");
    assert_int_equal(sl_track_next(&q, end, &e), 0);

    q = over;
    assert_int_equal(sl_track_next(&q, over + sizeof(over), &e), -1);
    assert_ptr_equal(q, over);
    q = stray;
    assert_int_equal(sl_track_next(&q, stray + sizeof(stray), &e), -1);
    q = bad_len;
    assert_int_equal(sl_track_next(&q, bad_len + sizeof(bad_len), &e), -1);

    /* Every cut of a block fails, unless it falls between two entries. */
    for (size_t k = 0; k < sizeof(blk); k++) {
        uint8_t *t = prefix(blk, k);
        const uint8_t *c = t;
        int rc, count = 0;
        while ((rc = sl_track_next(&c, t + k, &e)) == 1)
            count++;
        if (k == 0 || k == 5 || k == 9)
            assert_int_equal(rc, 0);
        else
            assert_int_equal(rc, -1);
        assert_int_equal(count, k >= 9 ? 2 : k >= 5 ? 1 : 0);
        free(t);
    }
}

/* ---- scrambles ------------------------------------------------------------------------------- */

static void test_sha2_token(void **state)
{
    uint8_t nonce[SL_NONCE_LEN], out[32];
    /* computed independently with Python hashlib:
     * xor(sha256(pw), sha256(sha256(sha256(pw)) + nonce)), pw "secret", nonce 01..14 */
    static const char want_hex[] =
        "746ebe205d56a0707acb3e796e834e0dd7b1d61743b26bd5202c7a623230c7c9";
    size_t wlen;
    uint8_t *want = unhex(want_hex, &wlen);
    (void)state;

    for (int i = 0; i < SL_NONCE_LEN; i++)
        nonce[i] = (uint8_t)(i + 1);
    assert_int_equal(sl_sha2_token(nonce, "secret", 6, out), 32);
    assert_memory_equal(out, want, 32);
    assert_true(sl_token_equal(out, 32, want, wlen));
    nonce[0] ^= 1;
    assert_int_equal(sl_sha2_token(nonce, "secret", 6, out), 32);
    assert_false(sl_token_equal(out, 32, want, wlen));
    assert_int_equal(sl_sha2_token(nonce, "", 0, out), 0);
    free(want);
}

static void test_native_token_empty(void **state)
{
    uint8_t nonce[SL_NONCE_LEN] = {0}, out[20];
    (void)state;
    assert_int_equal(sl_native_token(nonce, "", 0, out), 0);
}

static void test_token_equal(void **state)
{
    static const uint8_t a[4] = {1, 2, 3, 4}, b[4] = {1, 2, 3, 5};
    (void)state;

    assert_true(sl_token_equal(a, 4, a, 4));
    assert_false(sl_token_equal(a, 4, b, 4));
    assert_false(sl_token_equal(a, 4, a, 3));
    assert_false(sl_token_equal(a, 0, a, 4));
    assert_true(sl_token_equal(a, 0, b, 0));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lenenc_edges),
        cmocka_unit_test(test_lenenc_rejects_null_and_err),
        cmocka_unit_test(test_greeting_parse_mariadb),
        cmocka_unit_test(test_greeting_parse_mysql8),
        cmocka_unit_test(test_greeting_roundtrip_exact),
        cmocka_unit_test(test_greeting_build_fields),
        cmocka_unit_test(test_greeting_truncated),
        cmocka_unit_test(test_greeting_malformed),
        cmocka_unit_test(test_response_parse_cli),
        cmocka_unit_test(test_response_roundtrip_exact),
        cmocka_unit_test(test_response_truncated),
        cmocka_unit_test(test_response_variants),
        cmocka_unit_test(test_response_auth_encodings),
        cmocka_unit_test(test_response_rejects_pre41),
        cmocka_unit_test(test_ssl_request),
        cmocka_unit_test(test_auth_switch),
        cmocka_unit_test(test_ok_parse_captured),
        cmocka_unit_test(test_ok_without_session_track),
        cmocka_unit_test(test_ok_build_roundtrip),
        cmocka_unit_test(test_ok_truncated),
        cmocka_unit_test(test_ok_malformed),
        cmocka_unit_test(test_err_parse),
        cmocka_unit_test(test_err_build),
        cmocka_unit_test(test_eof),
        cmocka_unit_test(test_track_login),
        cmocka_unit_test(test_track_sysvar_and_trx),
        cmocka_unit_test(test_track_unknown_and_malformed),
        cmocka_unit_test(test_sha2_token),
        cmocka_unit_test(test_native_token_empty),
        cmocka_unit_test(test_token_equal),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
