/* Transferable session state: lookup, set/copy/equal, the state hash and the SET builder. The
 * expected SET texts were checked against MariaDB 10.11 (they run and leave the session as
 * intended); here they are pinned byte for byte. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "pool/sessvars.h"

static void set(struct sl_vars *v, enum sl_var_id id, const char *value)
{
    assert_int_equal(sl_vars_set(v, id, value, strlen(value)), 0);
}

/* Runs the builder into a buffer that is large enough and returns it as a C string. */
static const char *diff(const struct sl_vars *want, const struct sl_vars *have)
{
    static char out[4096];
    memset(out, 'Z', sizeof out);
    size_t n = sl_vars_diff_sql(want, have, out, sizeof out);
    assert_int_not_equal(n, (size_t)-1);
    assert_int_equal(strlen(out), n);
    return out;
}

static void test_lookup_every_name(void **state)
{
    for (int i = 0; i < SL_VAR_COUNT; i++) {
        const char *name = sl_var_name((enum sl_var_id)i);
        assert_non_null(name);
        assert_int_equal(sl_var_lookup(name, strlen(name)), i);
    }
    assert_string_equal(sl_var_name(SL_VAR_TX_ISOLATION), "tx_isolation");
    assert_string_equal(sl_var_name(SL_VAR_TX_READ_ONLY), "tx_read_only");
    assert_string_equal(sl_var_name(SL_VAR_COLLATION_CONNECTION), "collation_connection");
    assert_null(sl_var_name(SL_VAR_COUNT));
    assert_null(sl_var_name((enum sl_var_id) - 1));
}

static void test_lookup_case_aliases_and_length(void **state)
{
    assert_int_equal(sl_var_lookup("AUTOCOMMIT", 10), SL_VAR_AUTOCOMMIT);
    assert_int_equal(sl_var_lookup("Sql_Mode", 8), SL_VAR_SQL_MODE);
    assert_int_equal(sl_var_lookup("transaction_isolation", 21), SL_VAR_TX_ISOLATION);
    assert_int_equal(sl_var_lookup("TRANSACTION_READ_ONLY", 21), SL_VAR_TX_READ_ONLY);
    /* Only len bytes count: the name need not be NUL-terminated. */
    assert_int_equal(sl_var_lookup("time_zone=+00:00", 9), SL_VAR_TIME_ZONE);
    assert_int_equal(sl_var_lookup("autocommi", 9), -1);
    assert_int_equal(sl_var_lookup("autocommitx", 11), -1);
    assert_int_equal(sl_var_lookup("max_statement_time", 18), -1);
    assert_int_equal(sl_var_lookup("transaction_isolation_x", 23), -1);
    assert_int_equal(sl_var_lookup("", 0), -1);
    assert_int_equal(sl_var_lookup(NULL, 0), -1);
}

static void test_server_maintained(void **state)
{
    (void)state;
    assert_true(sl_var_server_maintained("last_gtid", 9));
    assert_true(sl_var_server_maintained("LAST_GTID", 9));
    assert_false(sl_var_server_maintained("last_gtid_x", 11));
    assert_false(sl_var_server_maintained("gtid_seq_no", 11));
    assert_false(sl_var_server_maintained(NULL, 0));
    assert_int_equal(sl_var_lookup("last_gtid", 9), -1); /* and never transferred */
}

static void test_init_clear(void **state)
{
    struct sl_vars a, b;
    sl_vars_init(&a);
    sl_vars_init(&b);
    for (int i = 0; i < SL_VAR_COUNT; i++)
        assert_null(a.values[i]);
    assert_null(a.schema);
    assert_true(sl_vars_equal(&a, &b));

    set(&a, SL_VAR_SQL_MODE, "ANSI_QUOTES");
    assert_int_equal(sl_vars_set_schema(&a, "db", 2), 0);
    assert_false(sl_vars_equal(&a, &b));
    sl_vars_clear(&a);
    assert_null(a.values[SL_VAR_SQL_MODE]);
    assert_null(a.schema);
    assert_true(sl_vars_equal(&a, &b));
    assert_int_equal(a.hash, b.hash);
    sl_vars_clear(&b);
}

static void test_set_copies_len_bytes(void **state)
{
    struct sl_vars v;
    sl_vars_init(&v);
    char src[] = "+01:00 and more";
    assert_int_equal(sl_vars_set(&v, SL_VAR_TIME_ZONE, src, 6), 0);
    src[0] = '-';
    assert_string_equal(v.values[SL_VAR_TIME_ZONE], "+01:00");

    assert_int_equal(sl_vars_set(&v, SL_VAR_TIME_ZONE, "SYSTEM", 6), 0);
    assert_string_equal(v.values[SL_VAR_TIME_ZONE], "SYSTEM");

    assert_int_equal(sl_vars_set(&v, SL_VAR_TIME_ZONE, NULL, 0), 0);
    assert_null(v.values[SL_VAR_TIME_ZONE]);
    sl_vars_clear(&v);
}

static void test_empty_value_is_not_default(void **state)
{
    struct sl_vars a, b;
    sl_vars_init(&a);
    sl_vars_init(&b);
    assert_int_equal(sl_vars_set(&a, SL_VAR_SQL_MODE, "", 0), 0);
    assert_non_null(a.values[SL_VAR_SQL_MODE]);
    assert_string_equal(a.values[SL_VAR_SQL_MODE], "");
    assert_false(sl_vars_equal(&a, &b));
    assert_int_not_equal(a.hash, b.hash);

    assert_int_equal(sl_vars_set_schema(&b, "", 0), 0);
    assert_string_equal(b.schema, "");
    assert_true(sl_vars_schema_differs(&a, &b));
    sl_vars_clear(&a);
    sl_vars_clear(&b);
}

static void test_set_refusals_leave_state(void **state)
{
    struct sl_vars v;
    sl_vars_init(&v);
    set(&v, SL_VAR_SQL_MODE, "TRADITIONAL");
    assert_int_equal(sl_vars_set_schema(&v, "app", 3), 0);
    uint64_t hash = v.hash;

    char *big = malloc(SL_VAR_VALUE_MAX + 1);
    assert_non_null(big);
    memset(big, 'A', SL_VAR_VALUE_MAX + 1);
    assert_int_equal(sl_vars_set(&v, SL_VAR_SQL_MODE, big, SL_VAR_VALUE_MAX + 1), -1);
    assert_int_equal(sl_vars_set_schema(&v, big, SL_VAR_VALUE_MAX + 1), -1);
    assert_int_equal(sl_vars_set(&v, SL_VAR_SQL_MODE, "A\0B", 3), -1);
    assert_int_equal(sl_vars_set(&v, SL_VAR_SQL_MODE, NULL, 3), -1);
    assert_int_equal(sl_vars_set(&v, SL_VAR_COUNT, "x", 1), -1);
    assert_string_equal(v.values[SL_VAR_SQL_MODE], "TRADITIONAL");
    assert_string_equal(v.schema, "app");
    assert_int_equal(v.hash, hash);

    /* The limit itself is allowed. */
    assert_int_equal(sl_vars_set(&v, SL_VAR_SQL_MODE, big, SL_VAR_VALUE_MAX), 0);
    assert_int_equal(strlen(v.values[SL_VAR_SQL_MODE]), SL_VAR_VALUE_MAX);
    assert_int_not_equal(v.hash, hash);
    free(big);
    sl_vars_clear(&v);
}

static void test_hash_follows_state(void **state)
{
    struct sl_vars a, b;
    sl_vars_init(&a);
    sl_vars_init(&b);
    /* Same state reached in a different order, through intermediate values. */
    set(&a, SL_VAR_AUTOCOMMIT, "OFF");
    set(&a, SL_VAR_TIME_ZONE, "+00:00");
    assert_int_equal(sl_vars_set_schema(&a, "db", 2), 0);
    assert_int_equal(sl_vars_set_schema(&b, "other", 5), 0);
    set(&b, SL_VAR_TIME_ZONE, "SYSTEM");
    set(&b, SL_VAR_TIME_ZONE, "+00:00");
    assert_int_equal(sl_vars_set_schema(&b, "db", 2), 0);
    set(&b, SL_VAR_AUTOCOMMIT, "OFF");
    assert_int_equal(a.hash, b.hash);
    assert_true(sl_vars_equal(&a, &b));

    set(&b, SL_VAR_AUTOCOMMIT, "ON");
    assert_int_not_equal(a.hash, b.hash);
    assert_false(sl_vars_equal(&a, &b));
    sl_vars_clear(&a);
    sl_vars_clear(&b);
}

/* States that a hash without tags or length prefixes would confuse. */
static void test_hash_separates_entries(void **state)
{
    struct sl_vars a, b;
    sl_vars_init(&a);
    sl_vars_init(&b);

    set(&a, SL_VAR_AUTOCOMMIT, "ON");
    set(&b, SL_VAR_TX_READ_ONLY, "ON");
    assert_int_not_equal(a.hash, b.hash);
    sl_vars_clear(&a);
    sl_vars_clear(&b);

    set(&a, SL_VAR_SQL_MODE, "ab");
    set(&a, SL_VAR_TIME_ZONE, "");
    set(&b, SL_VAR_SQL_MODE, "a");
    set(&b, SL_VAR_TIME_ZONE, "b");
    assert_int_not_equal(a.hash, b.hash);
    sl_vars_clear(&a);
    sl_vars_clear(&b);

    set(&a, SL_VAR_SQL_MODE, "db");
    assert_int_equal(sl_vars_set_schema(&b, "db", 2), 0);
    assert_int_not_equal(a.hash, b.hash);
    sl_vars_clear(&a);
    sl_vars_clear(&b);
}

static void test_equal_compares_values_not_just_hash(void **state)
{
    struct sl_vars a, b;
    sl_vars_init(&a);
    sl_vars_init(&b);
    set(&a, SL_VAR_SQL_MODE, "ANSI");
    set(&b, SL_VAR_SQL_MODE, "TRADITIONAL");
    b.hash = a.hash; /* a collision */
    assert_false(sl_vars_equal(&a, &b));

    sl_vars_clear(&b);
    set(&b, SL_VAR_SQL_MODE, "ANSI");
    assert_int_equal(sl_vars_set_schema(&a, "x", 1), 0);
    b.hash = a.hash;
    assert_false(sl_vars_equal(&a, &b));
    sl_vars_clear(&a);
    sl_vars_clear(&b);
}

static void test_copy_is_deep_and_replaces(void **state)
{
    struct sl_vars src, dst;
    sl_vars_init(&src);
    sl_vars_init(&dst);
    set(&src, SL_VAR_CHARACTER_SET_CLIENT, "utf8mb4");
    set(&src, SL_VAR_WAIT_TIMEOUT, "600");
    assert_int_equal(sl_vars_set_schema(&src, "app", 3), 0);
    /* dst already holds values: they must be released (ASan reports a leak otherwise). */
    set(&dst, SL_VAR_SQL_MODE, "ANSI");
    assert_int_equal(sl_vars_set_schema(&dst, "old", 3), 0);

    assert_int_equal(sl_vars_copy(&dst, &src), 0);
    assert_true(sl_vars_equal(&dst, &src));
    assert_null(dst.values[SL_VAR_SQL_MODE]);
    assert_ptr_not_equal(dst.values[SL_VAR_WAIT_TIMEOUT], src.values[SL_VAR_WAIT_TIMEOUT]);
    assert_ptr_not_equal(dst.schema, src.schema);

    set(&src, SL_VAR_WAIT_TIMEOUT, "1");
    assert_string_equal(dst.values[SL_VAR_WAIT_TIMEOUT], "600");
    assert_false(sl_vars_equal(&dst, &src));

    assert_int_equal(sl_vars_copy(&src, &src), 0);
    assert_string_equal(src.values[SL_VAR_WAIT_TIMEOUT], "1");
    sl_vars_clear(&src);
    sl_vars_clear(&dst);
}

static void test_diff_nothing(void **state)
{
    struct sl_vars a, b;
    sl_vars_init(&a);
    sl_vars_init(&b);
    set(&a, SL_VAR_SQL_MODE, "ANSI");
    set(&b, SL_VAR_SQL_MODE, "ANSI");
    /* The schema is not the SET's business. */
    assert_int_equal(sl_vars_set_schema(&a, "db", 2), 0);

    char out[1] = {'Z'};
    assert_int_equal(sl_vars_diff_sql(&a, &b, out, sizeof out), 0);
    assert_int_equal(out[0], '\0');
    assert_int_equal(sl_vars_diff_sql(&a, &b, NULL, 0), 0);
    sl_vars_clear(&a);
    sl_vars_clear(&b);
}

static void test_diff_values_and_defaults(void **state)
{
    struct sl_vars want, have;
    sl_vars_init(&want);
    sl_vars_init(&have);
    set(&want, SL_VAR_WAIT_TIMEOUT, "600");
    assert_string_equal(diff(&want, &have), "SET SESSION wait_timeout=600");

    set(&have, SL_VAR_WAIT_TIMEOUT, "600");
    set(&have, SL_VAR_AUTOCOMMIT, "OFF");
    set(&have, SL_VAR_TX_ISOLATION, "READ-COMMITTED");
    assert_string_equal(diff(&want, &have), "SET SESSION autocommit=DEFAULT, tx_isolation=DEFAULT");

    set(&want, SL_VAR_AUTOCOMMIT, "OFF");
    set(&want, SL_VAR_TX_ISOLATION, "SERIALIZABLE");
    set(&want, SL_VAR_TX_READ_ONLY, "ON");
    set(&want, SL_VAR_TIME_ZONE, "+00:00");
    set(&want, SL_VAR_SQL_MODE, "STRICT_TRANS_TABLES,NO_ZERO_DATE");
    set(&want, SL_VAR_AUTO_INCREMENT_OFFSET, "3");
    assert_string_equal(diff(&want, &have),
                        "SET SESSION auto_increment_offset=3, "
                        "sql_mode='STRICT_TRANS_TABLES,NO_ZERO_DATE', time_zone='+00:00', "
                        "tx_isolation='SERIALIZABLE', tx_read_only='ON'");
    sl_vars_clear(&want);
    sl_vars_clear(&have);
}

/* collation_connection must follow character_set_connection, which resets it. */
static void test_diff_charset_order(void **state)
{
    struct sl_vars want, have;
    sl_vars_init(&want);
    sl_vars_init(&have);
    set(&want, SL_VAR_COLLATION_CONNECTION, "utf8mb4_unicode_ci");
    set(&want, SL_VAR_CHARACTER_SET_RESULTS, "utf8mb4");
    set(&want, SL_VAR_CHARACTER_SET_CONNECTION, "utf8mb4");
    set(&want, SL_VAR_CHARACTER_SET_CLIENT, "utf8mb4");
    set(&have, SL_VAR_CHARACTER_SET_CLIENT, "latin1");
    set(&have, SL_VAR_CHARACTER_SET_CONNECTION, "latin1");
    set(&have, SL_VAR_CHARACTER_SET_RESULTS, "latin1");
    set(&have, SL_VAR_COLLATION_CONNECTION, "latin1_swedish_ci");
    assert_string_equal(diff(&want, &have),
                        "SET SESSION character_set_client='utf8mb4', "
                        "character_set_connection='utf8mb4', character_set_results='utf8mb4', "
                        "collation_connection='utf8mb4_unicode_ci'");
    assert_string_equal(diff(&have, &want),
                        "SET SESSION character_set_client='latin1', "
                        "character_set_connection='latin1', character_set_results='latin1', "
                        "collation_connection='latin1_swedish_ci'");
    sl_vars_clear(&want);
    assert_string_equal(diff(&want, &have),
                        "SET SESSION character_set_client=DEFAULT, "
                        "character_set_connection=DEFAULT, character_set_results=DEFAULT, "
                        "collation_connection=DEFAULT");
    sl_vars_clear(&have);
}

static void test_diff_literal_forms(void **state)
{
    struct sl_vars want, have;
    sl_vars_init(&want);
    sl_vars_init(&have);

    set(&want, SL_VAR_TIME_ZONE, "a'b\\c");
    assert_string_equal(diff(&want, &have), "SET SESSION time_zone='a''b\\\\c'");

    /* Outside printable ASCII: a hex literal, whatever the backend's client charset. */
    set(&want, SL_VAR_TIME_ZONE, "\xc3\xa9\n");
    assert_string_equal(diff(&want, &have), "SET SESSION time_zone=X'C3A90A'");

    /* Only pure digit strings go unquoted. */
    set(&want, SL_VAR_TIME_ZONE, "-05:00");
    set(&want, SL_VAR_AUTO_INCREMENT_INCREMENT, "0012");
    set(&want, SL_VAR_NET_READ_TIMEOUT, "1e3");
    assert_string_equal(diff(&want, &have),
                        "SET SESSION auto_increment_increment=0012, net_read_timeout='1e3', "
                        "time_zone='-05:00'");
    sl_vars_clear(&want);

    /* An empty sql_mode is a value; an empty character_set_results is how tracking reports
     * NULL, which is the only spelling MariaDB accepts for it. */
    set(&want, SL_VAR_SQL_MODE, "");
    set(&want, SL_VAR_CHARACTER_SET_RESULTS, "");
    assert_string_equal(diff(&want, &have), "SET SESSION character_set_results=NULL, sql_mode=''");
    sl_vars_clear(&want);
}

/* Every capacity from 0 up: too small returns -1 and leaves everything from out[cap] on alone. */
static void test_diff_capacity(void **state)
{
    struct sl_vars want, have;
    sl_vars_init(&want);
    sl_vars_init(&have);
    set(&want, SL_VAR_SQL_MODE, "it's");
    set(&want, SL_VAR_WAIT_TIMEOUT, "10");
    set(&have, SL_VAR_AUTOCOMMIT, "OFF");
    const char *expect = "SET SESSION autocommit=DEFAULT, sql_mode='it''s', wait_timeout=10";
    size_t len = strlen(expect);

    for (size_t cap = 0; cap <= len + 2; cap++) {
        /* cap usable bytes plus one canary that must survive. */
        char *out = malloc(cap + 1);
        assert_non_null(out);
        memset(out, 'Z', cap + 1);
        size_t n = sl_vars_diff_sql(&want, &have, cap ? out : NULL, cap);
        if (cap <= len) {
            assert_int_equal(n, (size_t)-1);
        } else {
            assert_int_equal(n, len);
            assert_string_equal(out, expect);
        }
        assert_int_equal(out[cap], 'Z');
        free(out);
    }
    sl_vars_clear(&want);
    sl_vars_clear(&have);
}

static void test_schema_differs(void **state)
{
    struct sl_vars a, b;
    sl_vars_init(&a);
    sl_vars_init(&b);
    assert_false(sl_vars_schema_differs(&a, &b));
    assert_int_equal(sl_vars_set_schema(&a, "app", 3), 0);
    assert_true(sl_vars_schema_differs(&a, &b));
    assert_true(sl_vars_schema_differs(&b, &a));
    assert_int_equal(sl_vars_set_schema(&b, "app", 3), 0);
    assert_false(sl_vars_schema_differs(&a, &b));
    assert_int_equal(sl_vars_set_schema(&b, "App", 3), 0);
    assert_true(sl_vars_schema_differs(&a, &b));
    assert_int_equal(sl_vars_set_schema(&b, NULL, 0), 0);
    assert_null(b.schema);
    sl_vars_clear(&a);
    sl_vars_clear(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lookup_every_name),
        cmocka_unit_test(test_lookup_case_aliases_and_length),
        cmocka_unit_test(test_server_maintained),
        cmocka_unit_test(test_init_clear),
        cmocka_unit_test(test_set_copies_len_bytes),
        cmocka_unit_test(test_empty_value_is_not_default),
        cmocka_unit_test(test_set_refusals_leave_state),
        cmocka_unit_test(test_hash_follows_state),
        cmocka_unit_test(test_hash_separates_entries),
        cmocka_unit_test(test_equal_compares_values_not_just_hash),
        cmocka_unit_test(test_copy_is_deep_and_replaces),
        cmocka_unit_test(test_diff_nothing),
        cmocka_unit_test(test_diff_values_and_defaults),
        cmocka_unit_test(test_diff_charset_order),
        cmocka_unit_test(test_diff_literal_forms),
        cmocka_unit_test(test_diff_capacity),
        cmocka_unit_test(test_schema_differs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
