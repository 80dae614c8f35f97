/* KILL statement recognition and COM_CHANGE_USER parsing: the two small parsers the session uses
 * to map proxy connection ids and to re-authenticate. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "pool/kill.h"
#include "pool/proto.h"

static enum sl_kill_parse_result parse(const char *sql, struct sl_kill *k)
{
    /* An exact-size heap copy, so that ASan catches any read past the end. */
    size_t len = strlen(sql);
    char *buf = malloc(len ? len : 1);
    memcpy(buf, sql, len);
    enum sl_kill_parse_result r = sl_kill_parse(buf, len, k);
    free(buf);
    return r;
}

static void test_kill_forms(void **state)
{
    struct sl_kill k;
    assert_int_equal(parse("KILL 42", &k), SL_KILL_ID);
    assert_false(k.query_only);
    assert_int_equal(k.id, 42);
    assert_int_equal(parse("  kill connection 7 ;  ", &k), SL_KILL_ID);
    assert_false(k.query_only);
    assert_int_equal(k.id, 7);
    assert_int_equal(parse("KILL QUERY 9", &k), SL_KILL_ID);
    assert_true(k.query_only);
    assert_int_equal(k.id, 9);
    assert_int_equal(parse("/* c */ KILL HARD QUERY 11", &k), SL_KILL_ID);
    assert_true(k.query_only);
    assert_int_equal(k.id, 11);
    assert_int_equal(parse("KILL SOFT 12 -- why\n", &k), SL_KILL_ID);
    assert_int_equal(k.id, 12);
    assert_int_equal(parse("# lead\nKILL 18446744073709551615", &k),
                     SL_KILL_REFUSED); /* 20 digits */
    assert_int_equal(parse("KILL 1844674407370955161", &k), SL_KILL_ID);
}

static void test_kill_refused(void **state)
{
    struct sl_kill k;
    assert_int_equal(parse("KILL USER app", &k), SL_KILL_REFUSED);
    assert_int_equal(parse("KILL HARD USER app", &k), SL_KILL_REFUSED);
    assert_int_equal(parse("KILL QUERY ID 5", &k), SL_KILL_REFUSED);
    assert_int_equal(parse("KILL (SELECT 5)", &k), SL_KILL_REFUSED);
    assert_int_equal(parse("KILL 5; SELECT 1", &k), SL_KILL_REFUSED);
    assert_int_equal(parse("KILL 5x", &k), SL_KILL_REFUSED);
    assert_int_equal(parse("KILL", &k), SL_KILL_REFUSED);
}

static void test_not_kill(void **state)
{
    struct sl_kill k;
    assert_int_equal(parse("SELECT 'KILL 5'", &k), SL_KILL_NONE);
    assert_int_equal(parse("KILLS 5", &k), SL_KILL_NONE);
    assert_int_equal(parse("", &k), SL_KILL_NONE);
    assert_int_equal(parse("/* unterminated", &k), SL_KILL_NONE);
    assert_int_equal(parse("-- KILL 5", &k), SL_KILL_NONE);
}

/* A COM_CHANGE_USER as Connector/C 3.3 sends it: user, 1-byte auth length, db, collation, plugin.
 */
static const uint8_t change_user_pkt[] = {
    0x11, 'b', 'o', 'b', 0,   3,   0xAA, 0xBB, 0xCC, 'd', 'b', 0,   45,  0,   'm', 'y', 's', 'q',
    'l',  '_', 'n', 'a', 't', 'i', 'v',  'e',  '_',  'p', 'a', 's', 's', 'w', 'o', 'r', 'd', 0,
};

static void test_change_user_parse(void **state)
{
    struct sl_change_user cu;
    uint32_t caps = SL_CLIENT_SECURE_CONNECTION | SL_CLIENT_PLUGIN_AUTH | SL_CLIENT_PROTOCOL_41;
    assert_int_equal(sl_change_user_parse(change_user_pkt, sizeof change_user_pkt, caps, &cu), 0);
    assert_int_equal(cu.user_len, 3);
    assert_memory_equal(cu.user, "bob", 3);
    assert_int_equal(cu.auth_len, 3);
    assert_int_equal(cu.auth[0], 0xAA);
    assert_int_equal(cu.db_len, 2);
    assert_memory_equal(cu.db, "db", 2);
    assert_int_equal(cu.collation, 45);
    assert_int_equal(cu.plugin_len, strlen("mysql_native_password"));
    /* Without collation and plugin (an older client) the packet ends after the database. */
    assert_int_equal(sl_change_user_parse(change_user_pkt, 12, caps, &cu), 0);
    assert_int_equal(cu.collation, 0);
    assert_int_equal(cu.plugin_len, 0);
}

static void test_change_user_truncated(void **state)
{
    uint32_t caps = SL_CLIENT_SECURE_CONNECTION | SL_CLIENT_PLUGIN_AUTH | SL_CLIENT_PROTOCOL_41;
    struct sl_change_user cu;
    /* Every prefix that cuts a field short is refused; the shapes that end after the database (12
     * bytes) or after the collation (14) are complete packets of older clients. */
    for (size_t n = 0; n < sizeof change_user_pkt; n++) {
        uint8_t *buf = malloc(n ? n : 1);
        memcpy(buf, change_user_pkt, n);
        int r = sl_change_user_parse(buf, n, caps, &cu);
        free(buf);
        if (n == 12 || n == 14)
            assert_int_equal(r, 0);
        else
            assert_int_equal(r, -1);
    }
    uint8_t wrong[] = {0x03, 'x', 0};
    assert_int_equal(sl_change_user_parse(wrong, sizeof wrong, caps, &cu), -1);
    /* An auth length reaching past the packet. */
    uint8_t lying[] = {0x11, 'u', 0, 200, 1, 2};
    assert_int_equal(sl_change_user_parse(lying, sizeof lying, caps, &cu), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kill_forms),
        cmocka_unit_test(test_kill_refused),
        cmocka_unit_test(test_not_kill),
        cmocka_unit_test(test_change_user_parse),
        cmocka_unit_test(test_change_user_truncated),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
