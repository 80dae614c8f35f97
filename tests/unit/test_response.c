/* Response tracker: captured response sequences of every command shape, the NEED_FULL rule,
 * LOCAL INFILE, cursors, progress packets, EOF-vs-row disambiguation and protocol violations.
 *
 * Sequences marked "captured" are payloads recorded from MariaDB 10.11.19 (Debian 12) with a
 * raw-socket client that negotiated SESSION_TRACK, MULTI_RESULTS and LOCAL_FILES but not
 * DEPRECATE_EOF (as the backend connections do). Each sequence is fed twice: whole packets, and
 * first chunks of one byte (completing them when the tracker asks with NEED_FULL). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "pool/proto.h"
#include "pool/response.h"

#define CAPS                                                                                       \
    (SL_CLIENT_PROTOCOL_41 | SL_CLIENT_SECURE_CONNECTION | SL_CLIENT_SESSION_TRACK |               \
     SL_CLIENT_MULTI_RESULTS | SL_CLIENT_MULTI_STATEMENTS | SL_CLIENT_LOCAL_FILES)

#define M SL_RESP_MORE
#define D SL_RESP_DONE

struct step {
    const char *hex;
    enum sl_resp_result want;
};

#define N(a) (sizeof(a) / sizeof((a)[0]))

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

/* Feed one whole packet from an exactly-sized buffer. */
static enum sl_resp_result feed_hex(struct sl_resp_tracker *t, const char *hex)
{
    size_t len;
    uint8_t *p = unhex(hex, &len);
    enum sl_resp_result r = sl_resp_feed(t, p, len, len);
    free(p);
    return r;
}

static void run(struct sl_resp_tracker *t, const struct step *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        assert_int_equal(feed_hex(t, s[i].hex), s[i].want);
}

/* Feed each packet as a 1-byte first chunk. NEED_FULL must come exactly for packets that may end
 * the response (ERR, EOF, OK-shaped 0x00 in a first position), and the retry must then succeed. */
static void run_split(struct sl_resp_tracker *t, const struct step *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        size_t len;
        uint8_t *p = unhex(s[i].hex, &len);
        uint8_t *one = malloc(1);
        enum sl_resp_result r;

        assert_non_null(one);
        one[0] = p[0];
        r = sl_resp_feed(t, one, 1, len);
        if (len > 1 && (p[0] == 0xFF || sl_is_eof(p, len)))
            assert_int_equal(r, SL_RESP_NEED_FULL);
        if (r == SL_RESP_NEED_FULL) {
            assert_true(len > 1);
            assert_true(p[0] == 0x00 || p[0] == 0xFF || sl_is_eof(p, len));
            r = sl_resp_feed(t, p, len, len);
        }
        assert_int_equal(r, s[i].want);
        free(one);
        free(p);
    }
}

/* Run a sequence both ways and check both end alike; t is left as the whole-packet tracker. */
static void run_both(struct sl_resp_tracker *t, enum sl_resp_kind kind, uint16_t prev,
                     const struct step *s, size_t n)
{
    struct sl_resp_tracker split = {0};

    sl_resp_begin(&split, kind, CAPS, prev);
    run_split(&split, s, n);
    memset(t, 0, sizeof(*t));
    sl_resp_begin(t, kind, CAPS, prev);
    run(t, s, n);
    assert_int_equal(split.status, t->status);
    assert_int_equal(split.error, t->error);
    assert_int_equal(split.error_code, t->error_code);
    assert_int_equal(split.stmt_id, t->stmt_id);
}

struct ok_log {
    int calls;
    size_t last_len;
    uint16_t last_status;
};

static void on_ok(void *arg, const uint8_t *payload, size_t len)
{
    struct ok_log *log = arg;
    struct sl_ok ok;

    assert_int_equal(sl_ok_parse(payload, len, CAPS, &ok), 0);
    assert_non_null(ok.state);
    log->calls++;
    log->last_len = len;
    log->last_status = ok.status;
}

/* ---- captured sequences ---------------------------------------------------------------------- */

/* "SELECT 1; SELECT 2" */
static const struct step multi_result[] = {
    {"01", M},         {"036465660000000131000c3f0001000000038100000000", M},
    {"fe00000a00", M}, {"0131", M},
    {"fe00000a00", M}, /* MORE_RESULTS: a second result follows */
    {"01", M},         {"036465660000000132000c3f0001000000038100000000", M},
    {"fe00000200", M}, {"0132", M},
    {"fe00000200", D},
};

static void test_multi_result(void **state)
{
    struct sl_resp_tracker t = {0};
    (void)state;

    run_both(&t, SL_RESP_QUERY, SL_STATUS_AUTOCOMMIT, multi_result, N(multi_result));
    assert_int_equal(t.status, SL_STATUS_AUTOCOMMIT);
    assert_false(t.error);
    assert_false(t.saw_state_change);

    /* stop after the first result: the tracker must know more is coming */
    sl_resp_begin(&t, SL_RESP_QUERY, CAPS, 0);
    run(&t, multi_result, 5);
    assert_true(t.status & SL_STATUS_MORE_RESULTS);
}

/* captured between the `mariadb` CLI and the server: CACHE_METADATA adds a byte to the column
 * count, EXTENDED_METADATA one to the column definition */
static void test_result_with_mariadb_metadata(void **state)
{
    static const struct step s[] = {
        {"0101", M},       {"03646566000000013100000c3f0001000000038100000000", M},
        {"fe00000200", M}, {"0131", M},
        {"fe00000200", D},
    };
    struct sl_resp_tracker t = {0};
    (void)state;
    run_both(&t, SL_RESP_QUERY, 0, s, N(s));
}

static void test_ok_with_session_state(void **state)
{
    /* "SET autocommit=0": sysvar autocommit=OFF + state change; status loses AUTOCOMMIT */
    static const struct step set[] = {
        {"000000004000000014000f0a6175746f636f6d6d6974034f4646020131", D},
    };
    /* "SET autocommit=0; SELECT 1" */
    static const struct step set_select[] = {
        {"000000084000000014000f0a6175746f636f6d6d6974034f4646020131", M},
        {"01", M},
        {"036465660000000131000c3f0001000000038100000000", M},
        {"fe00000000", M},
        {"0131", M},
        {"fe00000000", D},
    };
    struct sl_resp_tracker t = {0};
    struct ok_log log = {0};
    (void)state;

    t.on_ok = on_ok;
    t.on_ok_arg = &log;
    sl_resp_begin(&t, SL_RESP_QUERY, CAPS, SL_STATUS_AUTOCOMMIT);
    assert_ptr_equal(t.on_ok_arg, &log); /* begin keeps the caller's callback */
    run(&t, set, N(set));
    assert_int_equal(log.calls, 1);
    assert_int_equal(log.last_len, 29);
    assert_int_equal(log.last_status, SL_STATUS_SESSION_STATE_CHANGED);
    assert_true(t.saw_state_change);
    assert_int_equal(t.status, SL_STATUS_SESSION_STATE_CHANGED);

    sl_resp_begin(&t, SL_RESP_QUERY, CAPS, SL_STATUS_AUTOCOMMIT);
    assert_false(t.saw_state_change);
    run(&t, set_select, N(set_select));
    assert_int_equal(log.calls, 2);
    assert_int_equal(log.last_status, SL_STATUS_SESSION_STATE_CHANGED | SL_STATUS_MORE_RESULTS);
    assert_true(t.saw_state_change);
    assert_int_equal(t.status, 0); /* from the final EOF */

    /* An OK without state change is not reported. */
    sl_resp_begin(&t, SL_RESP_QUERY, CAPS, 0);
    assert_int_equal(feed_hex(&t, "00010002000000"), D);
    assert_int_equal(log.calls, 2);
    assert_false(t.saw_state_change);
    assert_int_equal(t.status, SL_STATUS_AUTOCOMMIT);

    /* A state change flagged on an EOF counts too (no block to report). */
    sl_resp_begin(&t, SL_RESP_FETCH, CAPS, 0);
    assert_int_equal(feed_hex(&t, "fe00000240"), D);
    assert_true(t.saw_state_change);
    assert_int_equal(log.calls, 2);
}

static void test_begin_transaction(void **state)
{
    static const struct step s[] = {
        {"000000034000000020050908545f5f5f5f5f5f5f0413125354415254205452414e53414354494f4e3b", D},
    };
    struct sl_resp_tracker t = {0};
    (void)state;
    run_both(&t, SL_RESP_QUERY, SL_STATUS_AUTOCOMMIT, s, N(s));
    assert_true(t.status & SL_STATUS_IN_TRANS);
    assert_true(t.saw_state_change);
}

static void test_err_mid_result(void **state)
{
    /* "SELECT a, (SELECT b FROM t.x) FROM t.x": metadata, then 1242 instead of rows */
    static const struct step s[] = {
        {"02", M},
        {"03646566017401780178016101610c3f000b000000030000000000", M},
        {"03646566000000132853454c45435420622046524f4d20742e7829000c2d0050000000fd0000270000", M},
        {"fe00002200", M},
        {"ffda0423323130303053756271756572792072657475726e73206d6f7265207468616e203120726f77", D},
    };
    struct sl_resp_tracker t = {0};
    (void)state;
    run_both(&t, SL_RESP_QUERY, SL_STATUS_AUTOCOMMIT, s, N(s));
    assert_true(t.error);
    assert_int_equal(t.error_code, 1242);
    assert_int_equal(t.status, 0x22); /* from the last EOF; the ERR carries none */
}

static void test_err_in_second_result(void **state)
{
    /* "SELECT 1; SELECT * FROM nosuch" */
    static const struct step s[] = {
        {"01", M},
        {"036465660000000131000c3f0001000000038100000000", M},
        {"fe00000a00", M},
        {"0131", M},
        {"fe00000a00", M},
        {"ff7a042334325330325461626c652027742e6e6f737563682720646f65736e2774206578697374", D},
    };
    struct sl_resp_tracker t = {0};
    (void)state;
    run_both(&t, SL_RESP_QUERY, 0, s, N(s));
    assert_true(t.error);
    assert_int_equal(t.error_code, 1146);
    /* the ERR ended the response: no result follows, whatever the last EOF announced */
    assert_int_equal(t.status, SL_STATUS_AUTOCOMMIT);
}

static void test_err_first(void **state)
{
    struct sl_resp_tracker t = {0};
    (void)state;

    /* "SELEC 1" (1064) inside a transaction: the status is kept from before */
    sl_resp_begin(&t, SL_RESP_QUERY, CAPS, SL_STATUS_IN_TRANS | SL_STATUS_AUTOCOMMIT);
    assert_int_equal(feed_hex(&t, "ff2804233432303030596f75206861766520616e206572726f72"), D);
    assert_true(t.error);
    assert_int_equal(t.error_code, 1064);
    assert_int_equal(t.status, SL_STATUS_IN_TRANS | SL_STATUS_AUTOCOMMIT);
    assert_int_equal(feed_hex(&t, "00000002000000"), SL_RESP_BAD); /* nothing after DONE */
}

static void test_rows(void **state)
{
    /* "SELECT a, b FROM t.x WHERE a < 3" */
    static const struct step s[] = {
        {"02", M},
        {"03646566017401780178016101610c3f000b000000030000000000", M},
        {"03646566017401780178016201620c2d0050000000fd0000000000", M},
        {"fe00002200", M},
        {"0131036f6e65", M},
        {"01320374776f", M},
        {"fb00", M}, /* a row starting with a NULL column */
        {"fe00002200", D},
    };
    struct sl_resp_tracker t = {0};
    (void)state;
    run_both(&t, SL_RESP_QUERY, 0, s, N(s));
    assert_int_equal(t.status, 0x22);
}

static const struct step prepare_full[] = {
    /* "SELECT a, b FROM t.x WHERE a > ? AND b <> ?": id 1, 2 columns, 2 params */
    {"000100000002000200000000", M},
    {"03646566000000013f000c3f0000000000068000000000", M},
    {"03646566000000013f000c3f0000000000068000000000", M},
    {"fe00000200", M},
    {"03646566017401780178016101610c3f000b000000030000000000", M},
    {"03646566017401780178016201620c2d0050000000fd0000000000", M},
    {"fe00000200", D},
};

static void test_prepare(void **state)
{
    static const struct step params_only[] = {
        /* "INSERT INTO t.x VALUES (?, ?)" */
        {"000400000000000200000000", M},
        {"03646566000000013f000c3f0000000000068000000000", M},
        {"03646566000000013f000c3f0000000000068000000000", M},
        {"fe00000200", D},
    };
    static const struct step columns_only[] = {
        /* "SELECT a FROM t.x": synthetic, same layout with 1 column and no params */
        {"000500000001000000000000", M},
        {"03646566017401780178016101610c3f000b000000030000000000", M},
        {"fe00000200", D},
    };
    static const struct step none[] = {{"000300000000000000000000", D}}; /* "DO 1" */
    static const struct step err[] = {
        {"ff1e04233432533232556e6b6e6f776e20636f6c756d6e20276e6f737563682720696e202753454c4543"
         "5427",
         D},
    };
    struct sl_resp_tracker t = {0};
    (void)state;

    run_both(&t, SL_RESP_PREPARE, 0, prepare_full, N(prepare_full));
    assert_int_equal(t.stmt_id, 1);
    assert_int_equal(t.status, SL_STATUS_AUTOCOMMIT);
    assert_false(t.error);
    run_both(&t, SL_RESP_PREPARE, 0, params_only, N(params_only));
    assert_int_equal(t.stmt_id, 4);
    run_both(&t, SL_RESP_PREPARE, 0, columns_only, N(columns_only));
    assert_int_equal(t.stmt_id, 5);
    run_both(&t, SL_RESP_PREPARE, 0, none, N(none));
    assert_int_equal(t.stmt_id, 3);
    run_both(&t, SL_RESP_PREPARE, 0, err, N(err));
    assert_true(t.error);
    assert_int_equal(t.error_code, 1054);
}

static void test_execute_cursor_and_fetch(void **state)
{
    /* COM_STMT_EXECUTE with CURSOR_TYPE_READ_ONLY: metadata only, EOF with CURSOR_EXISTS */
    static const struct step exec[] = {
        {"02", M},
        {"03646566017401780178016101610c3f000b000000030000000000", M},
        {"03646566017401780178016201620c2d0050000000fd0000000000", M},
        {"fe00006200", D},
    };
    /* COM_STMT_FETCH of 2 rows, then of 10 (binary rows start with 0x00) */
    static const struct step fetch2[] = {
        {"000001000000036f6e65", M},
        {"0000020000000374776f", M},
        {"fe00004200", D},
    };
    static const struct step fetch10[] = {
        {"000003000000057468726565", M},
        {"00000400000004666f7572", M},
        {"fe00008200", D},
    };
    /* the same statement without a cursor: binary rows inline */
    static const struct step exec_rows[] = {
        {"02", M},
        {"03646566017401780178016101610c3f000b000000030000000000", M},
        {"03646566017401780178016201620c2d0050000000fd0000000000", M},
        {"fe00002200", M},
        {"0000020000000374776f", M},
        {"000003000000057468726565", M},
        {"00000400000004666f7572", M},
        {"fe00002200", D},
    };
    struct sl_resp_tracker t = {0};
    (void)state;

    run_both(&t, SL_RESP_QUERY, SL_STATUS_AUTOCOMMIT, exec, N(exec));
    assert_true(t.status & SL_STATUS_CURSOR_EXISTS);
    run_both(&t, SL_RESP_FETCH, t.status, fetch2, N(fetch2));
    assert_int_equal(t.status, SL_STATUS_CURSOR_EXISTS | SL_STATUS_AUTOCOMMIT);
    run_both(&t, SL_RESP_FETCH, t.status, fetch10, N(fetch10));
    assert_true(t.status & SL_STATUS_LAST_ROW_SENT);
    /* a FETCH answer is one block of rows, whatever its EOF says */
    sl_resp_begin(&t, SL_RESP_FETCH, CAPS, 0);
    assert_int_equal(feed_hex(&t, "fe00004a00"), D);
    run_both(&t, SL_RESP_QUERY, SL_STATUS_AUTOCOMMIT, exec_rows, N(exec_rows));
    assert_false(t.status & SL_STATUS_CURSOR_EXISTS);

    /* a binary row only partly buffered needs no full payload */
    sl_resp_begin(&t, SL_RESP_FETCH, CAPS, 0);
    {
        static const uint8_t row[] = {0x00, 0x00, 0x01};
        assert_int_equal(sl_resp_feed(&t, row, sizeof(row), 10), M);
    }
    /* FETCH ending in ERR (e.g. statement closed) */
    assert_int_equal(feed_hex(&t, "ff1904233432303030556e6b6e6f776e"), D);
    assert_true(t.error);
}

static void test_simple_commands(void **state)
{
    static const struct step field_list[] = {
        {"03646566017401780178016101610c3f000b000000030000000000fb", M},
        {"03646566017401780178016201620c2d0050000000fd0000000000fb", M},
        {"fe00000200", D},
    };
    static const struct step ping[] = {{"00000002000000", D}};
    static const struct step reset[] = {
        {"00000002400000000e0509085f5f5f5f5f5f5f5f040100", D},
    };
    static const struct step init_db_err[] = {
        {"ff1904233432303030556e6b6e6f776e20646174616261736520276e6f73756368646227", D},
    };
    static const struct step set_option[] = {{"fe00000200", D}};
    static const struct step statistics[] = {
        {"557074696d653a2033382020546872656164733a203120205175657374696f6e733a2032332020", D},
    };
    struct sl_resp_tracker t = {0};
    (void)state;

    run_both(&t, SL_RESP_FIELD_LIST, 0, field_list, N(field_list));
    assert_int_equal(t.status, SL_STATUS_AUTOCOMMIT);
    run_both(&t, SL_RESP_OK_ERR, 0, ping, N(ping));
    assert_int_equal(t.status, SL_STATUS_AUTOCOMMIT);
    run_both(&t, SL_RESP_OK_ERR, SL_STATUS_IN_TRANS, reset, N(reset));
    assert_int_equal(t.status, SL_STATUS_AUTOCOMMIT | SL_STATUS_SESSION_STATE_CHANGED);
    assert_true(t.saw_state_change);
    run_both(&t, SL_RESP_OK_ERR, 0, init_db_err, N(init_db_err));
    assert_int_equal(t.error_code, 1049);
    run_both(&t, SL_RESP_EOF_ERR, 0, set_option, N(set_option));
    assert_int_equal(t.status, SL_STATUS_AUTOCOMMIT);
    assert_false(t.error);
    run_both(&t, SL_RESP_ONE_PACKET, 7, statistics, N(statistics));
    assert_int_equal(t.status, 7);
    assert_false(t.error);

    /* ONE_PACKET: an ERR is recorded, an empty packet is still the one packet */
    sl_resp_begin(&t, SL_RESP_ONE_PACKET, CAPS, 0);
    assert_int_equal(feed_hex(&t, "ff1904233432303030"), D);
    assert_true(t.error);
    assert_int_equal(t.error_code, 1049);
    sl_resp_begin(&t, SL_RESP_ONE_PACKET, CAPS, 0);
    assert_int_equal(sl_resp_feed(&t, NULL, 0, 0), D);
    assert_false(t.error);
}

static void test_local_infile(void **state)
{
    /* "LOAD DATA LOCAL INFILE '/nonexistent/f.txt' INTO TABLE t.x": request, then (after the
     * client's data and empty packet) the OK */
    static const char request[] = "fb2f6e6f6e6578697374656e742f662e747874";
    static const char answer[] = "000200020000002f5265636f7264733a2032202044656c657465643a2030"
                                 "2020536b69707065643a203020205761726e696e67733a2030";
    struct sl_resp_tracker t = {0};
    (void)state;

    sl_resp_begin(&t, SL_RESP_QUERY, CAPS, SL_STATUS_AUTOCOMMIT);
    assert_int_equal(feed_hex(&t, request), SL_RESP_INFILE);
    sl_resp_infile_sent(&t);
    assert_int_equal(feed_hex(&t, answer), D);
    assert_int_equal(t.status, SL_STATUS_AUTOCOMMIT);
    assert_false(t.error);

    /* a progress report while the server loads, then an ERR answer */
    sl_resp_begin(&t, SL_RESP_QUERY, CAPS, 0);
    assert_int_equal(feed_hex(&t, request), SL_RESP_INFILE);
    sl_resp_infile_sent(&t);
    assert_int_equal(feed_hex(&t, "ffffff010110270000056c6f6164"), M);
    assert_int_equal(feed_hex(&t, "ff1204234844303030"), D);
    assert_true(t.error);

    /* a backend packet before the client finished its data is a violation */
    sl_resp_begin(&t, SL_RESP_QUERY, CAPS, 0);
    assert_int_equal(feed_hex(&t, request), SL_RESP_INFILE);
    assert_int_equal(feed_hex(&t, answer), SL_RESP_BAD);

    /* the answer must be OK or ERR */
    sl_resp_begin(&t, SL_RESP_QUERY, CAPS, 0);
    assert_int_equal(feed_hex(&t, request), SL_RESP_INFILE);
    sl_resp_infile_sent(&t);
    assert_int_equal(feed_hex(&t, "fe00000200"), SL_RESP_BAD);

    /* infile_sent without a request puts the tracker out of step */
    sl_resp_begin(&t, SL_RESP_QUERY, CAPS, 0);
    sl_resp_infile_sent(&t);
    assert_int_equal(feed_hex(&t, "00000002000000"), SL_RESP_BAD);
}

static void test_eof_vs_row(void **state)
{
    struct sl_resp_tracker t = {0};
    /* first chunk of a 16 MiB text row: lenenc 0xFE + 8-byte length 0x1000000 */
    static const uint8_t big_row[16] = {0xFE, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00,
                                        0x00, 'x',  'x',  'x',  'x',  'x',  'x',  'x'};
    (void)state;

    sl_resp_begin(&t, SL_RESP_QUERY, CAPS, 0);
    assert_int_equal(feed_hex(&t, "01"), M);
    assert_int_equal(feed_hex(&t, "036465660000000131000c3f0001000000038100000000"), M);
    assert_int_equal(feed_hex(&t, "fe00000200"), M);
    assert_int_equal(sl_resp_feed(&t, big_row, sizeof(big_row), 9 + 0x1000000), M);
    assert_int_equal(feed_hex(&t, "fe000000000000000078"), M); /* 10 bytes: a row */
    assert_int_equal(feed_hex(&t, "fe0000000000000000"), M);   /* 9 bytes: still a row */
    assert_int_equal(feed_hex(&t, "fe000002000000"), D);       /* 7 bytes: EOF */
    assert_int_equal(t.status, SL_STATUS_AUTOCOMMIT);
}

static void test_progress_ignored(void **state)
{
    /* MariaDB progress report: 0xFF, code 0xFFFF, stage 1/2, 10.000 %, "stage" */
    static const char progress[] = "ffffff010210270000057374616765";
    struct sl_resp_tracker t = {0};
    size_t len;
    uint8_t *p = unhex(progress, &len);
    (void)state;

    sl_resp_begin(&t, SL_RESP_QUERY, CAPS, 0);
    assert_int_equal(sl_resp_feed(&t, p, 1, len), SL_RESP_NEED_FULL);
    assert_int_equal(sl_resp_feed(&t, p, len, len), M);
    assert_int_equal(feed_hex(&t, progress), M);
    assert_false(t.error);
    assert_int_equal(feed_hex(&t, "00000002000000"), D);
    assert_false(t.error);

    /* also between rows */
    sl_resp_begin(&t, SL_RESP_FETCH, CAPS, 0);
    assert_int_equal(feed_hex(&t, progress), M);
    assert_int_equal(feed_hex(&t, "fe00000200"), D);
    assert_false(t.error);
    free(p);
}

static void test_need_full_keeps_state(void **state)
{
    static const char ok[] = "000000004000000014000f0a6175746f636f6d6d6974034f4646020131";
    struct sl_resp_tracker t = {0};
    size_t len;
    uint8_t *p = unhex(ok, &len);
    (void)state;

    sl_resp_begin(&t, SL_RESP_QUERY, CAPS, SL_STATUS_AUTOCOMMIT);
    for (size_t avail = 1; avail < len; avail++)
        assert_int_equal(sl_resp_feed(&t, p, avail, len), SL_RESP_NEED_FULL);
    assert_int_equal(t.status, SL_STATUS_AUTOCOMMIT); /* nothing consumed yet */
    assert_int_equal(sl_resp_feed(&t, p, len, len), D);
    assert_int_equal(t.status, SL_STATUS_SESSION_STATE_CHANGED);

    /* a column definition or a text row partly buffered is not asked for in full */
    sl_resp_begin(&t, SL_RESP_QUERY, CAPS, 0);
    assert_int_equal(feed_hex(&t, "01"), M);
    assert_int_equal(sl_resp_feed(&t,
                                  (const uint8_t *)"\x03"
                                                   "def",
                                  4, 23),
                     M);
    assert_int_equal(feed_hex(&t, "fe00000200"), M);
    assert_int_equal(sl_resp_feed(&t, (const uint8_t *)"\x05", 1, 6), M);
    free(p);
}

/* ---- protocol violations --------------------------------------------------------------------- */

static void expect_bad(enum sl_resp_kind kind, const char *const *pkts, size_t n)
{
    struct sl_resp_tracker t = {0};

    sl_resp_begin(&t, kind, CAPS, 0);
    for (size_t i = 0; i + 1 < n; i++)
        assert_int_equal(feed_hex(&t, pkts[i]), M);
    assert_int_equal(feed_hex(&t, pkts[n - 1]), SL_RESP_BAD);
    /* once broken, it stays broken */
    assert_int_equal(feed_hex(&t, "00000002000000"), SL_RESP_BAD);
}

static void test_violations(void **state)
{
    static const char *const eof_first[] = {"fe00000200"};
    static const char *const short_ok[] = {"0000"};
    static const char *const zero_columns[] = {"fc0000"};
    static const char *const cut_count[] = {"fc01"};
    static const char *const short_err[] = {"ff01"};
    static const char *const early_eof[] = {"02", "0364656600", "fe00000200"};
    static const char *const no_eof[] = {"01", "0364656600", "0131"};
    static const char *const cut_eof[] = {"01", "0364656600", "fe00000200", "0131", "fe0000"};
    static const char *const ok_err_eof[] = {"fe00000200"};
    static const char *const ok_err_row[] = {"0131"};
    static const char *const eof_err_ok[] = {"00000002000000"};
    static const char *const short_prepare[] = {"0001000000020002000000"};
    static const char *const prepare_eof[] = {"fe00000200"};
    static const char *const prepare_early[] = {"000100000002000200000000", "0364656600",
                                                "fe00000200"};
    struct sl_resp_tracker t = {0};
    (void)state;

    expect_bad(SL_RESP_QUERY, eof_first, N(eof_first));
    expect_bad(SL_RESP_QUERY, short_ok, N(short_ok));
    expect_bad(SL_RESP_QUERY, zero_columns, N(zero_columns));
    expect_bad(SL_RESP_QUERY, cut_count, N(cut_count));
    expect_bad(SL_RESP_QUERY, short_err, N(short_err));
    expect_bad(SL_RESP_QUERY, early_eof, N(early_eof));
    expect_bad(SL_RESP_QUERY, no_eof, N(no_eof));
    expect_bad(SL_RESP_QUERY, cut_eof, N(cut_eof));
    expect_bad(SL_RESP_OK_ERR, ok_err_eof, N(ok_err_eof));
    expect_bad(SL_RESP_OK_ERR, ok_err_row, N(ok_err_row));
    expect_bad(SL_RESP_EOF_ERR, eof_err_ok, N(eof_err_ok));
    expect_bad(SL_RESP_PREPARE, short_prepare, N(short_prepare));
    expect_bad(SL_RESP_PREPARE, prepare_eof, N(prepare_eof));
    expect_bad(SL_RESP_PREPARE, prepare_early, N(prepare_early));

    /* empty packet where none may be */
    sl_resp_begin(&t, SL_RESP_QUERY, CAPS, 0);
    assert_int_equal(sl_resp_feed(&t, NULL, 0, 0), SL_RESP_BAD);
    sl_resp_begin(&t, SL_RESP_FETCH, CAPS, 0);
    assert_int_equal(sl_resp_feed(&t, NULL, 0, 0), SL_RESP_BAD);
    /* avail beyond len, or nothing available of a non-empty packet */
    sl_resp_begin(&t, SL_RESP_QUERY, CAPS, 0);
    assert_int_equal(sl_resp_feed(&t, (const uint8_t *)"\x01\x01", 2, 1), SL_RESP_BAD);
    sl_resp_begin(&t, SL_RESP_QUERY, CAPS, 0);
    assert_int_equal(sl_resp_feed(&t, (const uint8_t *)"", 0, 5), SL_RESP_BAD);
}

/* An OK cut at every length, fed as complete: only the cut right after the warnings is a valid
 * (shorter) OK; every other length is a violation, and nothing is read past the buffer. */
static void test_truncated_ok(void **state)
{
    static const char ok[] = "000000004000000014000f0a6175746f636f6d6d6974034f4646020131";
    size_t len;
    uint8_t *p = unhex(ok, &len);
    (void)state;

    for (size_t k = 0; k < len; k++) {
        struct sl_resp_tracker t = {0};
        uint8_t *c = malloc(k ? k : 1);
        assert_non_null(c);
        memcpy(c, p, k);
        sl_resp_begin(&t, SL_RESP_QUERY, CAPS, 0);
        assert_int_equal(sl_resp_feed(&t, c, k, k), k == 7 ? D : SL_RESP_BAD);
        free(c);
    }
    free(p);
}

/* The prepare-OK and EOFs of a captured prepare cut short, at every length. */
static void test_truncated_prepare(void **state)
{
    (void)state;
    for (size_t i = 0; i < N(prepare_full); i++) {
        size_t len;
        uint8_t *p = unhex(prepare_full[i].hex, &len);
        if (p[0] == 0x00 || p[0] == 0xFE) {
            for (size_t k = 1; k < len; k++) {
                struct sl_resp_tracker t = {0};
                uint8_t *c = malloc(k);
                assert_non_null(c);
                memcpy(c, p, k);
                sl_resp_begin(&t, SL_RESP_PREPARE, CAPS, 0);
                run(&t, prepare_full, i);
                assert_int_equal(sl_resp_feed(&t, c, k, k), SL_RESP_BAD);
                free(c);
            }
        }
        free(p);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_multi_result),
        cmocka_unit_test(test_result_with_mariadb_metadata),
        cmocka_unit_test(test_ok_with_session_state),
        cmocka_unit_test(test_begin_transaction),
        cmocka_unit_test(test_err_mid_result),
        cmocka_unit_test(test_err_in_second_result),
        cmocka_unit_test(test_err_first),
        cmocka_unit_test(test_rows),
        cmocka_unit_test(test_prepare),
        cmocka_unit_test(test_execute_cursor_and_fetch),
        cmocka_unit_test(test_simple_commands),
        cmocka_unit_test(test_local_infile),
        cmocka_unit_test(test_eof_vs_row),
        cmocka_unit_test(test_progress_ignored),
        cmocka_unit_test(test_need_full_keeps_state),
        cmocka_unit_test(test_violations),
        cmocka_unit_test(test_truncated_ok),
        cmocka_unit_test(test_truncated_prepare),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
