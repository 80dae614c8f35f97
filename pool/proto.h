/* MySQL/MariaDB wire protocol codec: pure functions over buffers, no I/O, no allocation.
 *
 * Builders write a packet *payload* (no 4-byte header) into a caller buffer and return its length,
 * or 0 when the buffer is too small. Parsers take a complete logical payload and return 0 on
 * success or -1 when the payload is truncated or malformed; they never read outside [p, p+len).
 * Parsed strings point into the input buffer and are NOT NUL-terminated (pointer + length). */
#ifndef SL_POOL_PROTO_H
#define SL_POOL_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/bytes.h"

/* ---- framing ----------------------------------------------------------------------------------
 */
#define SL_PKT_HDR_LEN 4
/* A chunk of exactly this length is continued by the next one. */
#define SL_PKT_MAX_CHUNK 0xFFFFFFu

static inline uint32_t sl_pkt_len(const uint8_t *h)
{
    return (uint32_t)h[0] | (uint32_t)h[1] << 8 | (uint32_t)h[2] << 16;
}
static inline uint8_t sl_pkt_seq(const uint8_t *h)
{
    return h[3];
}
static inline void sl_pkt_hdr_put(uint8_t *h, uint32_t len, uint8_t seq)
{
    h[0] = (uint8_t)len;
    h[1] = (uint8_t)(len >> 8);
    h[2] = (uint8_t)(len >> 16);
    h[3] = seq;
}

/* ---- integers ----------------------------------------------------------------------------------
 */
/* Length-encoded integers. sl_lenenc_get advances *p; returns 0, or -1 when truncated or when the
 * first byte is 0xFB (NULL) or 0xFF (not an integer). */
size_t sl_lenenc_size(uint64_t v);
uint8_t *sl_lenenc_put(uint8_t *p, uint64_t v);
int sl_lenenc_get(const uint8_t **p, const uint8_t *end, uint64_t *v);

/* ---- capabilities, status flags, commands ------------------------------------------------------
 */
#define SL_CLIENT_MYSQL              (1u << 0) /* MySQL: LONG_PASSWORD */
#define SL_CLIENT_FOUND_ROWS         (1u << 1)
#define SL_CLIENT_LONG_FLAG          (1u << 2)
#define SL_CLIENT_CONNECT_WITH_DB    (1u << 3)
#define SL_CLIENT_NO_SCHEMA          (1u << 4)
#define SL_CLIENT_COMPRESS           (1u << 5)
#define SL_CLIENT_ODBC               (1u << 6)
#define SL_CLIENT_LOCAL_FILES        (1u << 7)
#define SL_CLIENT_IGNORE_SPACE       (1u << 8)
#define SL_CLIENT_PROTOCOL_41        (1u << 9)
#define SL_CLIENT_INTERACTIVE        (1u << 10)
#define SL_CLIENT_SSL                (1u << 11)
#define SL_CLIENT_IGNORE_SIGPIPE     (1u << 12)
#define SL_CLIENT_TRANSACTIONS       (1u << 13)
#define SL_CLIENT_RESERVED           (1u << 14)
#define SL_CLIENT_SECURE_CONNECTION  (1u << 15)
#define SL_CLIENT_MULTI_STATEMENTS   (1u << 16)
#define SL_CLIENT_MULTI_RESULTS      (1u << 17)
#define SL_CLIENT_PS_MULTI_RESULTS   (1u << 18)
#define SL_CLIENT_PLUGIN_AUTH        (1u << 19)
#define SL_CLIENT_CONNECT_ATTRS      (1u << 20)
#define SL_CLIENT_PLUGIN_AUTH_LENENC (1u << 21)
#define SL_CLIENT_CAN_HANDLE_EXPIRED (1u << 22)
#define SL_CLIENT_SESSION_TRACK      (1u << 23)
#define SL_CLIENT_DEPRECATE_EOF      (1u << 24)

/* MariaDB extended capabilities (the 4 bytes after the filler when CLIENT_MYSQL is clear). Only
 * EXTENDED_METADATA is relayed: it adds a block to column definitions without changing the shape of
 * a result set (CACHE_METADATA would). */
#define SL_MARIADB_EXT_METADATA (1u << 3)

#define SL_STATUS_IN_TRANS              0x0001
#define SL_STATUS_AUTOCOMMIT            0x0002
#define SL_STATUS_MORE_RESULTS          0x0008
#define SL_STATUS_CURSOR_EXISTS         0x0040
#define SL_STATUS_LAST_ROW_SENT         0x0080
#define SL_STATUS_NO_BACKSLASH_ESCAPES  0x0200
#define SL_STATUS_PS_OUT_PARAMS         0x1000
#define SL_STATUS_IN_TRANS_READONLY     0x2000
#define SL_STATUS_SESSION_STATE_CHANGED 0x4000
#define SL_STATUS_ANSI_QUOTES           0x8000

enum sl_command {
    SL_COM_SLEEP = 0x00,
    SL_COM_QUIT = 0x01,
    SL_COM_INIT_DB = 0x02,
    SL_COM_QUERY = 0x03,
    SL_COM_FIELD_LIST = 0x04,
    SL_COM_CREATE_DB = 0x05,
    SL_COM_DROP_DB = 0x06,
    SL_COM_REFRESH = 0x07,
    SL_COM_SHUTDOWN = 0x08,
    SL_COM_STATISTICS = 0x09,
    SL_COM_PROCESS_INFO = 0x0A,
    SL_COM_CONNECT = 0x0B,
    SL_COM_PROCESS_KILL = 0x0C,
    SL_COM_DEBUG = 0x0D,
    SL_COM_PING = 0x0E,
    SL_COM_CHANGE_USER = 0x11,
    SL_COM_BINLOG_DUMP = 0x12,
    SL_COM_STMT_PREPARE = 0x16,
    SL_COM_STMT_EXECUTE = 0x17,
    SL_COM_STMT_SEND_LONG_DATA = 0x18,
    SL_COM_STMT_CLOSE = 0x19,
    SL_COM_STMT_RESET = 0x1A,
    SL_COM_SET_OPTION = 0x1B,
    SL_COM_STMT_FETCH = 0x1C,
    SL_COM_RESET_CONNECTION = 0x1F,
};

/* ---- handshake --------------------------------------------------------------------------------
 */
#define SL_NONCE_LEN 20

/* Initial Handshake v10. Built by the front end, parsed by the backend client. */
struct sl_greeting {
    char server_version[64]; /* NUL-terminated */
    uint32_t conn_id;
    uint8_t nonce[SL_NONCE_LEN];
    uint32_t caps;     /* capability bits 0-31 */
    uint32_t ext_caps; /* MariaDB extended capabilities (only when CLIENT_MYSQL is clear) */
    uint8_t collation;
    uint16_t status;
    char auth_plugin[64]; /* NUL-terminated, "" when absent */
};
size_t sl_greeting_build(uint8_t *out, size_t cap, const struct sl_greeting *g);
int sl_greeting_parse(const uint8_t *p, size_t len, struct sl_greeting *out);

/* SSLRequest or HandshakeResponse41 (client -> server). A 32-byte payload is an SSLRequest: only
 * caps, max_packet, collation and ext_caps are set and is_ssl_request is true. */
struct sl_handshake_response {
    bool is_ssl_request;
    uint32_t caps;
    uint32_t max_packet;
    uint8_t collation;
    uint32_t ext_caps;
    const char *user;
    size_t user_len;
    const uint8_t *auth;
    size_t auth_len;
    bool has_db;
    const char *db;
    size_t db_len;
    const char *plugin;
    size_t plugin_len; /* 0 length when CLIENT_PLUGIN_AUTH is clear */
    const uint8_t *attrs;
    size_t attrs_len; /* raw attribute block without its lenenc length */
};
int sl_handshake_response_parse(const uint8_t *p, size_t len, struct sl_handshake_response *out);

/* Build an SSLRequest (32 bytes). */
size_t sl_ssl_request_build(uint8_t *out, size_t cap, uint32_t caps, uint32_t max_packet,
                            uint8_t collation);
/* Build a HandshakeResponse41 for the backend login. db may be NULL (then CONNECT_WITH_DB must be
 * clear in caps); plugin may be NULL when CLIENT_PLUGIN_AUTH is clear; attrs is the raw attribute
 * block (may be NULL / 0) used only when CLIENT_CONNECT_ATTRS is set. */
size_t sl_handshake_response_build(uint8_t *out, size_t cap, const struct sl_handshake_response *r);

/* AuthSwitchRequest: 0xFE, plugin name NUL, data (for native/caching_sha2: the 20-byte nonce +
 * NUL). */
size_t sl_auth_switch_build(uint8_t *out, size_t cap, const char *plugin, const uint8_t *data,
                            size_t data_len);
struct sl_auth_switch {
    const char *plugin;
    size_t plugin_len;
    const uint8_t *data;
    size_t data_len; /* trailing NUL, if any, excluded */
};
int sl_auth_switch_parse(const uint8_t *p, size_t len, struct sl_auth_switch *out);

/* COM_CHANGE_USER (client -> server); caps are the client's negotiated capabilities. collation is 0
 * when the packet does not carry one. */
struct sl_change_user {
    const char *user;
    size_t user_len;
    const uint8_t *auth;
    size_t auth_len;
    const char *db;
    size_t db_len;
    uint16_t collation;
    const char *plugin;
    size_t plugin_len;
};
int sl_change_user_parse(const uint8_t *p, size_t len, uint32_t caps, struct sl_change_user *out);

/* ---- OK / ERR / EOF ---------------------------------------------------------------------------
 */
struct sl_ok {
    uint64_t affected_rows;
    uint64_t last_insert_id;
    uint16_t status;
    uint16_t warnings;
    const uint8_t *info;
    size_t info_len;
    const uint8_t *state;
    size_t state_len; /* session-state block (entries), when present */
};
/* caps: the capabilities negotiated on that connection (SESSION_TRACK decides the layout). Accepts
 * both 0x00 and 0xFE headers. */
int sl_ok_parse(const uint8_t *p, size_t len, uint32_t caps, struct sl_ok *out);
size_t sl_ok_build(uint8_t *out, size_t cap, uint64_t affected_rows, uint64_t last_insert_id,
                   uint16_t status, uint16_t warnings);

struct sl_err {
    uint16_t code;
    char sqlstate[6]; /* NUL-terminated; "HY000" when the packet carries none */
    const char *msg;
    size_t msg_len;
};
int sl_err_parse(const uint8_t *p, size_t len, struct sl_err *out);
/* sqlstate: 5 characters. msg is a NUL-terminated string. */
size_t sl_err_build(uint8_t *out, size_t cap, uint16_t code, const char *sqlstate, const char *msg);

/* EOF: 0xFE and payload length < 9. */
static inline bool sl_is_eof(const uint8_t *p, size_t len)
{
    return len > 0 && len < 9 && p[0] == 0xFE;
}
int sl_eof_parse(const uint8_t *p, size_t len, uint16_t *warnings, uint16_t *status);
size_t sl_eof_build(uint8_t *out, size_t cap, uint16_t warnings, uint16_t status);

/* ---- session-state tracking entries (inside an OK's state block)
 * ---------------------------------- */
enum sl_track_type {
    SL_TRACK_SYSVAR = 0,       /* name, value */
    SL_TRACK_SCHEMA = 1,       /* value = schema name */
    SL_TRACK_STATE_CHANGE = 2, /* value = "1" */
    SL_TRACK_GTIDS = 3,
    SL_TRACK_TRX_CHARACTERISTICS = 4, /* value = SQL text */
    SL_TRACK_TRX_STATE = 5,           /* value = 8 characters */
};
struct sl_track_entry {
    uint8_t type;
    const uint8_t *name;
    size_t name_len; /* SYSVAR only */
    const uint8_t *value;
    size_t value_len; /* raw entry data for unknown types */
};
/* Iterate entries of a state block: returns 1 and fills e, 0 at the end, -1 when malformed.
 * Unknown types are returned with their raw data in value. */
int sl_track_next(const uint8_t **p, const uint8_t *end, struct sl_track_entry *e);

/* ---- auth scrambles ---------------------------------------------------------------------------
 */
/* mysql_native_password: SHA1(pw) XOR SHA1(nonce || SHA1(SHA1(pw))). Empty password -> 0 bytes. */
size_t sl_native_token(const uint8_t nonce[SL_NONCE_LEN], const char *pw, size_t pw_len,
                       uint8_t out[20]);
/* caching_sha2_password: SHA256(pw) XOR SHA256(SHA256(SHA256(pw)) || nonce). Empty pw -> 0 bytes.
 */
size_t sl_sha2_token(const uint8_t nonce[SL_NONCE_LEN], const char *pw, size_t pw_len,
                     uint8_t out[32]);
/* Constant-time comparison of a received token against the expected one (lengths must match). */
bool sl_token_equal(const uint8_t *a, size_t a_len, const uint8_t *b, size_t b_len);

#endif
