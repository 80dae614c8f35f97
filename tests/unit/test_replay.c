/* The transaction-replay log: entries come back in order with their checksums, the size limit and
 * a break make the transaction unreplayable, a command without an answer is dropped, and a clear
 * starts afresh. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "pool/replay.h"

static void add_done(struct sl_replay *r, const char *text, uint32_t crc)
{
    sl_replay_add(r, (const uint8_t *)text, strlen(text));
    assert_int_not_equal(r->open_at, SIZE_MAX);
    assert_false(sl_replay_usable(r)); /* an answer is outstanding */
    sl_replay_done(r, crc);
}

static void expect(const struct sl_replay *r, size_t *pos, const char *text, uint32_t crc)
{
    const uint8_t *pkt;
    size_t len;
    uint32_t got;
    assert_true(sl_replay_next(r, pos, &pkt, &len, &got));
    assert_int_equal(len, strlen(text));
    assert_memory_equal(pkt, text, len);
    assert_int_equal(got, crc);
}

static void test_entries_in_order(void **state)
{
    (void)state;
    struct sl_replay r;
    sl_replay_init(&r, 1 << 20);
    assert_false(sl_replay_usable(&r)); /* nothing recorded */
    add_done(&r, "BEGIN", 1);
    add_done(&r, "UPDATE t SET v = v + 1", 0xdeadbeef);
    add_done(&r, "", 7);
    assert_true(sl_replay_usable(&r));
    size_t pos = 0;
    expect(&r, &pos, "BEGIN", 1);
    expect(&r, &pos, "UPDATE t SET v = v + 1", 0xdeadbeef);
    expect(&r, &pos, "", 7);
    const uint8_t *pkt;
    size_t len;
    uint32_t crc;
    assert_false(sl_replay_next(&r, &pos, &pkt, &len, &crc));
    sl_replay_free(&r);
}

static void test_growth_keeps_entries(void **state)
{
    (void)state;
    struct sl_replay r;
    sl_replay_init(&r, 1 << 20);
    char text[100];
    for (uint32_t i = 0; i < 1000; i++) {
        snprintf(text, sizeof text, "INSERT INTO t VALUES (%u)", i);
        add_done(&r, text, i * 2654435761u);
    }
    size_t pos = 0;
    for (uint32_t i = 0; i < 1000; i++) {
        snprintf(text, sizeof text, "INSERT INTO t VALUES (%u)", i);
        expect(&r, &pos, text, i * 2654435761u);
    }
    sl_replay_free(&r);
}

static void test_drop_open(void **state)
{
    (void)state;
    struct sl_replay r;
    sl_replay_init(&r, 1 << 20);
    add_done(&r, "BEGIN", 1);
    sl_replay_add(&r, (const uint8_t *)"SELECT 1", 8);
    sl_replay_drop_open(&r);
    assert_true(sl_replay_usable(&r));
    size_t pos = 0;
    expect(&r, &pos, "BEGIN", 1);
    assert_int_equal(pos, r.len);
    sl_replay_free(&r);
}

static void test_size_limit_breaks(void **state)
{
    (void)state;
    struct sl_replay r;
    sl_replay_init(&r, 64);
    add_done(&r, "BEGIN", 1);
    char big[80];
    memset(big, 'x', sizeof big);
    sl_replay_add(&r, (const uint8_t *)big, sizeof big);
    assert_non_null(r.broken);
    assert_false(sl_replay_usable(&r));
    /* Once broken, later statements are not recorded either. */
    size_t len = r.len;
    sl_replay_add(&r, (const uint8_t *)"SELECT 1", 8);
    assert_int_equal(r.len, len);
    /* A new transaction is replayable again. */
    sl_replay_clear(&r);
    assert_null(r.broken);
    add_done(&r, "BEGIN", 2);
    assert_true(sl_replay_usable(&r));
    sl_replay_free(&r);
}

static void test_break_and_clear(void **state)
{
    (void)state;
    struct sl_replay r;
    sl_replay_init(&r, 1 << 20);
    add_done(&r, "BEGIN", 1);
    sl_replay_break(&r, "non-deterministic");
    sl_replay_break(&r, "second reason is not kept");
    assert_string_equal(r.broken, "non-deterministic");
    assert_false(sl_replay_usable(&r));
    sl_replay_clear(&r);
    assert_int_equal(r.len, 0);
    assert_false(sl_replay_usable(&r));
    sl_replay_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_entries_in_order), cmocka_unit_test(test_growth_keeps_entries),
        cmocka_unit_test(test_drop_open),        cmocka_unit_test(test_size_limit_breaks),
        cmocka_unit_test(test_break_and_clear),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
