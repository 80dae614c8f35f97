/* Raft command codec: round trips of every op and kind, the exact byte layout, rejection of every
 * malformed variant, and truncation at every offset. Each decode reads from a heap buffer of
 * exactly the given length, so ASan reports any read past it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "raft/cmd.h"

static struct sl_raft_cmd sample(enum sl_raft_op op, enum sl_raft_kind kind)
{
    struct sl_raft_cmd c = {.op = op, .kind = kind, .expected_rev = 0x0102030405060708ull};
    for (int i = 0; i < SL_RAFT_REQID_LEN; i++)
        c.req_id[i] = (uint8_t)(0xa0 + i);
    c.name = "app-1";
    c.name_len = 5;
    if (kind == SL_RAFT_TARGET) {
        c.id = "db.primary_1";
        c.id_len = 12;
    }
    if (op == SL_RAFT_PUT) {
        c.body = "{\"port\":3306}";
        c.body_len = strlen(c.body);
    }
    return c;
}

static uint8_t *encode(const struct sl_raft_cmd *c, size_t *len)
{
    *len = sl_raft_cmd_size(c);
    assert_true(*len > 0);
    uint8_t *p = malloc(*len);
    assert_non_null(p);
    assert_int_equal(sl_raft_cmd_encode(c, p, *len), *len);
    return p;
}

/* Decode a copy of exactly n bytes. */
static int decode_exact(const uint8_t *src, size_t n, struct sl_raft_cmd *c)
{
    uint8_t *p = malloc(n ? n : 1);
    assert_non_null(p);
    memcpy(p, src, n);
    int rc = sl_raft_cmd_decode(p, n, c);
    free(p);
    return rc;
}

static void assert_same(const struct sl_raft_cmd *a, const struct sl_raft_cmd *b)
{
    assert_int_equal(a->op, b->op);
    assert_int_equal(a->kind, b->kind);
    assert_memory_equal(a->req_id, b->req_id, SL_RAFT_REQID_LEN);
    assert_true(a->expected_rev == b->expected_rev);
    assert_int_equal(a->name_len, b->name_len);
    assert_memory_equal(a->name, b->name, a->name_len);
    assert_int_equal(a->id_len, b->id_len);
    if (a->id_len)
        assert_memory_equal(a->id, b->id, a->id_len);
    assert_int_equal(a->body_len, b->body_len);
    if (a->body_len)
        assert_memory_equal(a->body, b->body, a->body_len);
}

static void test_round_trip_all(void **state)
{
    for (int op = SL_RAFT_PUT; op <= SL_RAFT_DELETE; op++) {
        for (int kind = SL_RAFT_PROXY; kind <= SL_RAFT_KIND_MAX; kind++) {
            struct sl_raft_cmd c = sample((enum sl_raft_op)op, (enum sl_raft_kind)kind), d;
            size_t len;
            uint8_t *p = encode(&c, &len);
            assert_int_equal(len % 8, 0);
            assert_int_equal(sl_raft_cmd_decode(p, len, &d), 0);
            assert_same(&c, &d);
            free(p);
        }
    }
}

static void test_layout(void **state)
{
    struct sl_raft_cmd c = sample(SL_RAFT_PUT, SL_RAFT_TARGET);
    size_t len;
    uint8_t *p = encode(&c, &len);
    /* 36 + 5 + 12 + 13 = 66 -> padded to 72 */
    assert_int_equal(len, 72);
    static const uint8_t head[] = {1, 1, 3, 5, 12, 0, 0, 0};
    assert_memory_equal(p, head, sizeof head);
    assert_memory_equal(p + 8, c.req_id, SL_RAFT_REQID_LEN);
    static const uint8_t rev[] = {8, 7, 6, 5, 4, 3, 2, 1, 13, 0, 0, 0};
    assert_memory_equal(p + 24, rev, sizeof rev);
    assert_memory_equal(p + 36, "app-1db.primary_1{\"port\":3306}", 30);
    for (size_t i = 66; i < 72; i++)
        assert_int_equal(p[i], 0);
    free(p);

    /* A command that fills a multiple of 8 exactly gets no padding. */
    c = sample(SL_RAFT_DELETE, SL_RAFT_PROXY);
    c.name = "abcd";
    c.name_len = 4;
    assert_int_equal(sl_raft_cmd_size(&c), 40);
}

static void test_truncation_every_offset(void **state)
{
    struct sl_raft_cmd c = sample(SL_RAFT_PUT, SL_RAFT_TARGET), d;
    size_t len;
    uint8_t *p = encode(&c, &len);
    for (size_t n = 0; n < len; n++)
        assert_int_equal(decode_exact(p, n, &d), -1);
    assert_int_equal(decode_exact(p, len, &d), 0);
    free(p);
}

static void test_trailing_garbage(void **state)
{
    struct sl_raft_cmd c = sample(SL_RAFT_PUT, SL_RAFT_SECRET), d;
    size_t len;
    uint8_t *p = encode(&c, &len);
    uint8_t *q = calloc(1, len + 8);
    assert_non_null(q);
    memcpy(q, p, len);
    /* Another 8 zero bytes: no longer the minimal padding. */
    assert_int_equal(decode_exact(q, len + 8, &d), -1);
    /* Any non-zero padding byte. */
    size_t used = SL_RAFT_CMD_HEADER + c.name_len + c.body_len;
    assert_true(used < len);
    for (size_t i = used; i < len; i++) {
        memcpy(q, p, len);
        q[i] = 0x20;
        assert_int_equal(decode_exact(q, len, &d), -1);
    }
    free(q);
    free(p);
}

/* Flip one header field of a valid encoding and expect rejection. */
static void expect_bad(const uint8_t *p, size_t len, size_t off, uint8_t val)
{
    uint8_t *q = malloc(len);
    assert_non_null(q);
    memcpy(q, p, len);
    q[off] = val;
    struct sl_raft_cmd d;
    assert_int_equal(sl_raft_cmd_decode(q, len, &d), -1);
    free(q);
}

static void test_bad_fields(void **state)
{
    struct sl_raft_cmd c = sample(SL_RAFT_PUT, SL_RAFT_PROXY);
    size_t len;
    uint8_t *p = encode(&c, &len);
    expect_bad(p, len, 0, 2);              /* version */
    expect_bad(p, len, 0, 0);              /* version */
    expect_bad(p, len, 1, 0);              /* op */
    expect_bad(p, len, 1, 3);              /* op */
    expect_bad(p, len, 2, 0);              /* kind */
    expect_bad(p, len, 2, 8);              /* kind */
    expect_bad(p, len, 2, 3);              /* target without an id */
    expect_bad(p, len, 3, 0);              /* empty name */
    expect_bad(p, len, 3, 4);              /* name length disagrees with the total */
    expect_bad(p, len, 3, 200);            /* name past the end */
    expect_bad(p, len, 4, 1);              /* id for a proxy */
    expect_bad(p, len, 5, 1);              /* reserved */
    expect_bad(p, len, 7, 1);              /* reserved */
    expect_bad(p, len, 32, 0);             /* body length */
    expect_bad(p, len, 35, 1);             /* body length huge */
    expect_bad(p, len, 36, '/');           /* name alphabet */
    expect_bad(p, len, 36, 0);             /* NUL in a name */
    expect_bad(p, len, 1, SL_RAFT_DELETE); /* DELETE with a body */
    free(p);

    /* All-zero request id. */
    uint8_t *q = encode(&c, &len);
    memset(q + 8, 0, SL_RAFT_REQID_LEN);
    struct sl_raft_cmd d;
    assert_int_equal(decode_exact(q, len, &d), -1);
    free(q);
}

static void test_encode_refuses_invalid(void **state)
{
    uint8_t out[256];
    struct sl_raft_cmd c = sample(SL_RAFT_PUT, SL_RAFT_PROXY);
    size_t size = sl_raft_cmd_size(&c);
    assert_int_equal(sl_raft_cmd_encode(&c, out, size - 1), 0); /* too small */

    struct sl_raft_cmd bad = c;
    bad.body_len = 0;
    assert_int_equal(sl_raft_cmd_size(&bad), 0);
    bad = sample(SL_RAFT_DELETE, SL_RAFT_PROXY);
    bad.body = "{}";
    bad.body_len = 2;
    assert_int_equal(sl_raft_cmd_size(&bad), 0);
    bad = c;
    bad.name = "a name";
    bad.name_len = 6;
    assert_int_equal(sl_raft_cmd_encode(&bad, out, sizeof out), 0);
    bad = c;
    bad.name_len = SL_RAFT_NAME_MAX + 1;
    bad.name = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    assert_int_equal(sl_raft_cmd_size(&bad), 0);
    bad.name_len = SL_RAFT_NAME_MAX;
    assert_true(sl_raft_cmd_size(&bad) > 0);
    bad = sample(SL_RAFT_PUT, SL_RAFT_TARGET);
    bad.id_len = 0;
    assert_int_equal(sl_raft_cmd_size(&bad), 0);
    bad = c;
    bad.kind = (enum sl_raft_kind)9;
    assert_int_equal(sl_raft_cmd_size(&bad), 0);
    bad = c;
    bad.body_len = SL_RAFT_BODY_MAX + 1;
    assert_int_equal(sl_raft_cmd_size(&bad), 0);
    bad = c;
    memset(bad.req_id, 0, sizeof bad.req_id);
    assert_int_equal(sl_raft_cmd_size(&bad), 0);
}

/* A budget command: PUT, kind 6, name "budget", no id, the ops JSON as body. */
static void test_budget_command(void **state)
{
    static const char body[] = "{\"ops\":[{\"node\":3,\"op\":\"revoke\"}]}";
    struct sl_raft_cmd c = {.op = SL_RAFT_PUT, .kind = SL_RAFT_BUDGET}, d;
    memset(c.req_id, 0x5a, SL_RAFT_REQID_LEN);
    c.name = SL_RAFT_BUDGET_NAME;
    c.name_len = strlen(SL_RAFT_BUDGET_NAME);
    c.body = body;
    c.body_len = strlen(body);
    size_t len;
    uint8_t *p = encode(&c, &len);
    /* 36 + 6 + 33 = 75 -> padded to 80 */
    assert_int_equal(len, 80);
    static const uint8_t head[] = {1, 1, 6, 6, 0, 0, 0, 0};
    assert_memory_equal(p, head, sizeof head);
    assert_memory_equal(p + 36, "budget{\"ops\"", 12);
    assert_int_equal(decode_exact(p, len, &d), 0);
    assert_same(&c, &d);
    free(p);
    /* As for every kind but targets, an id is refused. */
    c.id = "x";
    c.id_len = 1;
    assert_int_equal(sl_raft_cmd_size(&c), 0);
}

static void test_names(void **state)
{
    assert_string_equal(sl_raft_kind_name(SL_RAFT_TARGET_GROUP), "target_group");
    assert_string_equal(sl_raft_kind_name(SL_RAFT_NODE), "node");
    assert_null(sl_raft_kind_name((enum sl_raft_kind)0));
    assert_string_equal(sl_raft_kind_name(SL_RAFT_BUDGET), "budget");
    assert_string_equal(sl_raft_kind_name(SL_RAFT_WRITER), "writer");
    assert_null(sl_raft_kind_name((enum sl_raft_kind)8));
    assert_true(sl_raft_name_valid("Az09._-", 7));
    assert_false(sl_raft_name_valid("", 0));
    assert_false(sl_raft_name_valid("a b", 3));
    assert_false(sl_raft_name_valid("a\0b", 3));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_all),
        cmocka_unit_test(test_layout),
        cmocka_unit_test(test_truncation_every_offset),
        cmocka_unit_test(test_trailing_garbage),
        cmocka_unit_test(test_bad_fields),
        cmocka_unit_test(test_encode_refuses_invalid),
        cmocka_unit_test(test_budget_command),
        cmocka_unit_test(test_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
