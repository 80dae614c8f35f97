/* The pin scanner: every reason with positive and negative texts, comment and quoting rules,
 * statement boundaries, and truncated input. Every text is handed over in a heap buffer of
 * exactly its length (no NUL after it), so ASan reports any read past len. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "pool/pinscan.h"

/* What the scanner must never report: those reasons come from tracking, the protocol or the
 * caller's length check. */
#define NEVER_SCANNED                                                                              \
    (SL_PIN_SET_VARIABLE | SL_PIN_CURSOR | SL_PIN_UNKNOWN_STATE | SL_PIN_LOCAL_INFILE |            \
     SL_PIN_LARGE_STATEMENT)

static uint32_t scan_n(const char *text, size_t len)
{
    char *buf = malloc(len ? len : 1);
    assert_non_null(buf);
    memcpy(buf, text, len);
    uint32_t r = sl_pinscan(buf, len);
    free(buf);
    assert_int_equal(r & NEVER_SCANNED, 0);
    return r;
}

static uint32_t scan(const char *text)
{
    return scan_n(text, strlen(text));
}

/* Each text must yield exactly `expect` (not merely contain it), so stray reasons show up. */
static void expect_all(const char *const *texts, size_t n, uint32_t expect)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t got = scan(texts[i]);
        if (got != expect)
            fail_msg("\"%s\": got 0x%x, want 0x%x", texts[i], (unsigned)got, (unsigned)expect);
    }
}

#define EXPECT_ALL(texts, reason) expect_all(texts, sizeof(texts) / sizeof(texts[0]), reason)

static void test_reason_names(void **state)
{
    static const char *const names[SL_PIN_REASON_COUNT] = {
        "user_variable", "set_variable",   "temp_table",      "table_lock",
        "get_lock",      "prepared",       "large_statement", "found_rows",
        "row_count",     "last_insert_id", "handler",         "xa",
        "cursor",        "unknown_state",  "local_infile",
    };
    for (unsigned i = 0; i < SL_PIN_REASON_COUNT; i++)
        assert_string_equal(sl_pin_reason_name(1u << i), names[i]);
    assert_string_equal(sl_pin_reason_name(SL_PIN_TABLE_LOCK), "table_lock");
    assert_null(sl_pin_reason_name(0));
    assert_null(sl_pin_reason_name(SL_PIN_XA | SL_PIN_HANDLER));
    assert_null(sl_pin_reason_name(1u << SL_PIN_REASON_COUNT));
    assert_null(sl_pin_reason_name(1u << 31));
}

static void test_nothing_to_see(void **state)
{
    static const char *const texts[] = {
        "",
        " ",
        " \t\r\n\f\v ",
        ";",
        " ; ;; ",
        "-- only a comment",
        "# hash comment",
        "/* block */",
        "SELECT 1",
        "SELECT * FROM t WHERE a = 1 FOR UPDATE",
        "INSERT INTO t VALUES (1, 'x')",
        "UPDATE t SET c = 1 WHERE id = 2",
        "BEGIN",
        "COMMIT",
        "USE db",
        "SET NAMES utf8mb4",
        "SET SESSION sql_mode = 'ANSI'",
        "SELECT @@version, @@session.autocommit",
    };
    EXPECT_ALL(texts, 0);
    assert_int_equal(sl_pinscan(NULL, 0), 0);
}

static void test_user_variable(void **state)
{
    static const char *const pos[] = {
        "SET @x = 1",
        "set @x:=1",
        "SET@x=1",
        "SET @x := 1, @y = 2",
        "SET sql_mode = '', @a = 1",
        "SET @'quoted name' = 1",
        "SET @`q` = 1",
        "SELECT @a := 5",
        "SELECT a:=1",
        "UPDATE t SET c = (@n := @n + 1)",
        "SELECT 1 INTO @v",
        "select a, b into @a, @b from t",
        "SELECT 1 INTO /* comment */ @v",
        "SELECT 1 INTO\n@v",
        "/*!40101 SET @OLD_SQL_MODE=@@SQL_MODE */",
        "SELECT 1; SET @x = 2",
    };
    static const char *const neg[] = {
        "SET @@session.sql_mode = ''",    "SET @@autocommit = 0",
        "SET SESSION wait_timeout=10",    "SELECT @x",
        "SELECT * FROM t WHERE a = @x",   "SELECT @@x",
        "SELECT 'SET @x := 1'",           "SELECT \"a:=b\"",
        "SELECT `a:=b` FROM t",           "SELECT 1 -- SET @x = 1",
        "# SET @x = 1\nSELECT 1",         "/* SET @x := 1 */ SELECT 1",
        "SELECT 1 INTO OUTFILE '/tmp/x'", "SELECT a : = b",
        "SET x = 1; SELECT @y",           "SELECT 1 INTO, @v",
    };
    EXPECT_ALL(pos, SL_PIN_USER_VARIABLE);
    EXPECT_ALL(neg, 0);
}

static void test_temp_table(void **state)
{
    static const char *const pos[] = {
        "CREATE TEMPORARY TABLE t (a int)",
        "create temporary table t like u",
        "CREATE OR REPLACE TEMPORARY TABLE t (a int)",
        "CREATE /* c */ TEMPORARY TABLE t (a int)",
        "CREATE TEMPORARY TABLE IF NOT EXISTS t (a int)",
        "CREATE TEMPORARY SEQUENCE s",
        "/*!CREATE TEMPORARY TABLE t (a int)*/",
    };
    static const char *const neg[] = {
        "DROP TEMPORARY TABLE t",
        "CREATE TABLE temporary (a int)",
        "SELECT 'CREATE TEMPORARY TABLE t'",
        "CREATE `TEMPORARY` TABLE t (a int)",
        "CREATE, TEMPORARY TABLE",
        "REPLACE TEMPORARY TABLE",
        "CREATE TABLE t (a int)",
        "-- CREATE TEMPORARY TABLE t\nSELECT 1",
    };
    EXPECT_ALL(pos, SL_PIN_TEMP_TABLE);
    EXPECT_ALL(neg, 0);
}

static void test_table_lock(void **state)
{
    static const char *const pos[] = {
        "LOCK TABLES t WRITE",
        "lock table t read",
        "LOCK TABLE t1 READ, t2 WRITE",
        "FLUSH TABLES WITH READ LOCK",
        "flush table t1, t2 with read lock",
        "FLUSH NO_WRITE_TO_BINLOG TABLES t WITH READ LOCK",
        "FLUSH TABLES t FOR EXPORT",
        "BACKUP STAGE START",
        "BACKUP LOCK t",
        "/*!40000 LOCK TABLES t WRITE */",
    };
    static const char *const neg[] = {
        "UNLOCK TABLES",
        "SELECT * FROM t LOCK IN SHARE MODE",
        "SELECT 'LOCK TABLES t'",
        "FLUSH TABLES",
        "FLUSH PRIVILEGES",
        "SELECT * FROM t WITH READ LOCK",
        "FLUSH LOGS; SELECT 1 WITH READ LOCK",
        "SELECT lock, tables FROM t",
        "SELECT c FOR EXPORT",
        "ALTER TABLE t ADD c int, LOCK=NONE",
        "BACKUP UNLOCK",
    };
    EXPECT_ALL(pos, SL_PIN_TABLE_LOCK);
    EXPECT_ALL(neg, 0);
}

static void test_get_lock(void **state)
{
    static const char *const pos[] = {
        "SELECT GET_LOCK('a', 10)",
        "select get_lock ('a', 1)",
        "DO GET_LOCK/**/('a', 1)",
        "SELECT GET_LOCK\n\t('a', 1)",
        "SELECT 1 WHERE GET_LOCK('a',0) = 1",
        "SELECT GET_LOCK -- c\n('a', 1)",
    };
    static const char *const neg[] = {
        "SELECT MY_GET_LOCK('a')", "SELECT GET_LOCKS('a')", "SELECT get_lock FROM t",
        "SELECT `GET_LOCK`('a')",  "SELECT 'GET_LOCK('",    "SELECT RELEASE_LOCK('a')",
        "SELECT GET_LOCK, ('a')",  "SELECT $GET_LOCK('a')", "SELECT \xc3\xa9GET_LOCK('a')",
        "SELECT @get_lock ('a')",
    };
    EXPECT_ALL(pos, SL_PIN_GET_LOCK);
    EXPECT_ALL(neg, 0);
}

static void test_prepared(void **state)
{
    static const char *const pos[] = {
        "PREPARE s FROM 'SELECT 1'",  "  prepare s from 'x'", "SELECT 1; PREPARE s FROM 'x'",
        "/* c */ PREPARE s FROM 'x'", ";;PREPARE s FROM 'x'",
    };
    static const char *const neg[] = {
        "EXECUTE s",
        "DEALLOCATE PREPARE s",
        "SELECT prepare FROM t",
        "SELECT 1 ; SELECT 'PREPARE'",
        "(PREPARE s FROM 'x')",
    };
    EXPECT_ALL(pos, SL_PIN_PREPARED);
    EXPECT_ALL(neg, 0);
    /* PREPARE as the second word of XA PREPARE is not a prepared statement. */
    assert_int_equal(scan("XA PREPARE 'x'"), SL_PIN_XA);
}

static void test_found_rows(void **state)
{
    static const char *const pos[] = {
        "SELECT SQL_CALC_FOUND_ROWS * FROM t LIMIT 1",
        "select sql_calc_found_rows a from t",
        "SELECT FOUND_ROWS()",
        "SELECT found_rows ( )",
    };
    static const char *const neg[] = {
        "SELECT found_rows FROM t",     "SELECT 'SQL_CALC_FOUND_ROWS'",
        "SELECT SQL_CALC_FOUND_ROWS_X", "SELECT XSQL_CALC_FOUND_ROWS",
        "SELECT NOT_FOUND_ROWS()",
    };
    EXPECT_ALL(pos, SL_PIN_FOUND_ROWS);
    EXPECT_ALL(neg, 0);
}

static void test_row_count_and_last_insert_id(void **state)
{
    static const char *const rc_pos[] = {"SELECT ROW_COUNT()", "select row_count ()"};
    static const char *const lii_pos[] = {
        "SELECT LAST_INSERT_ID()",
        "INSERT INTO t VALUES (LAST_INSERT_ID(5))",
        "select last_insert_id\n()",
    };
    static const char *const neg[] = {
        "SELECT row_count FROM t", "SELECT t.last_insert_id FROM t", "SELECT last_insert_idx()",
        "SELECT 'ROW_COUNT()'",    "SELECT \"LAST_INSERT_ID()\"",    "SELECT x_row_count()",
    };
    EXPECT_ALL(rc_pos, SL_PIN_ROW_COUNT);
    EXPECT_ALL(lii_pos, SL_PIN_LAST_INSERT_ID);
    EXPECT_ALL(neg, 0);
}

static void test_handler_and_xa(void **state)
{
    static const char *const handler_pos[] = {
        "HANDLER t OPEN",
        "handler t read first",
        "SELECT 1;HANDLER t CLOSE",
    };
    static const char *const xa_pos[] = {"XA START 'x'", "xa end 'x'",
                                         "SELECT 1 ;\n XA COMMIT 'x'"};
    static const char *const neg[] = {
        "SELECT handler FROM t",
        "SELECT xa FROM t",
        "SELECT 1; SELECT 'XA START'",
        "CREATE PROCEDURE p() BEGIN DECLARE EXIT HANDLER FOR SQLEXCEPTION BEGIN END; END",
        "SELECT `HANDLER`",
        "XAX START 'x'",
    };
    EXPECT_ALL(handler_pos, SL_PIN_HANDLER);
    EXPECT_ALL(xa_pos, SL_PIN_XA);
    EXPECT_ALL(neg, 0);
}

/* Executable comments run on the server; plain comments do not. */
static void test_comments(void **state)
{
    static const char *const pos[] = {
        "/*! SELECT GET_LOCK('a', 1) */",          "/*!50000GET_LOCK('a', 1)*/",
        "/*M!100100 SELECT GET_LOCK('a', 1) */",   "/*M! SELECT GET_LOCK('a', 1) */",
        "SELECT 1 /*!50000 , GET_LOCK('a', 1) */", "/*! SELECT 1 /* c */ , GET_LOCK('a', 1) */",
        "SELECT 5--1, GET_LOCK('a', 1)",           "SELECT 1 -- c\nSELECT GET_LOCK('a', 1)",
        "SELECT 1 # c\n, GET_LOCK('a', 1)",        "SELECT '*/', GET_LOCK('a', 1)",
        "/*!SELECT 1*/ , GET_LOCK('a', 1)",
    };
    static const char *const neg[] = {
        "/* GET_LOCK('a', 1) */",          "/**/ /* GET_LOCK( */ SELECT 1",
        "SELECT 1 --\tGET_LOCK('a', 1)",   "SELECT 1 --\nSELECT 1",
        "SELECT 1 -- GET_LOCK('a', 1)",    "SELECT 1 #GET_LOCK('a', 1)",
        "/*! SELECT /* GET_LOCK( */ 1 */", "/*!SELECT 1*/ /* GET_LOCK('a', 1) */",
        "/* /*! GET_LOCK('a', 1) */",      "/* '*/ SELECT 1",
    };
    EXPECT_ALL(pos, SL_PIN_GET_LOCK);
    EXPECT_ALL(neg, 0);
}

static void test_quoting(void **state)
{
    static const char *const pos[] = {
        "SELECT 'a''b', GET_LOCK('x', 1)",
        "SELECT 'a\\\\', GET_LOCK('x', 1)",
        "SELECT \"a\"\"b\", GET_LOCK('x', 1)",
        "SELECT `x`, GET_LOCK('a', 1)",
        "SELECT `a``b`, GET_LOCK('a', 1)",
        /* Only under NO_BACKSLASH_ESCAPES does the first literal end at the second quote; the
         * scanner cannot know the sql_mode, so it pins. */
        "SELECT 'C:\\', GET_LOCK('x', 1)",
        /* Same with ANSI_QUOTES, where "..." is an identifier without escapes. */
        "SELECT \"a\\\", GET_LOCK('x', 1)",
        /* ANSI_QUOTES without NO_BACKSLASH_ESCAPES: only that mixed reading sees the call. */
        "SELECT \"a\\\", 'it\\'s', GET_LOCK('x', 1)",
    };
    static const char *const neg[] = {
        "SELECT 'a'' GET_LOCK(''x'')'",
        "SELECT \"it's GET_LOCK(\"",
        "SELECT `a``GET_LOCK(` FROM t",
        /* The usual escaped text does not pin under any reading. */
        "INSERT INTO t VALUES ('it\\'s', 'O\\'Brien')",
    };
    EXPECT_ALL(pos, SL_PIN_GET_LOCK);
    EXPECT_ALL(neg, 0);
}

static void test_multi_statement_and_case(void **state)
{
    assert_int_equal(scan("SET @a=1; LOCK TABLES t WRITE; SELECT FOUND_ROWS()"),
                     SL_PIN_USER_VARIABLE | SL_PIN_TABLE_LOCK | SL_PIN_FOUND_ROWS);
    assert_int_equal(scan("Lock Tables t Write;sElEcT gEt_LoCk('a',1);hAnDlEr t oPeN;Xa StArT 'x'"),
                     SL_PIN_TABLE_LOCK | SL_PIN_GET_LOCK | SL_PIN_HANDLER | SL_PIN_XA);
    assert_int_equal(scan("PREPARE s FROM 'x'; EXECUTE s; SELECT ROW_COUNT(), LAST_INSERT_ID()"),
                     SL_PIN_PREPARED | SL_PIN_ROW_COUNT | SL_PIN_LAST_INSERT_ID);
    assert_int_equal(scan("CREATE TEMPORARY TABLE t (a int); SELECT SQL_CALC_FOUND_ROWS 1 INTO @v"),
                     SL_PIN_TEMP_TABLE | SL_PIN_FOUND_ROWS | SL_PIN_USER_VARIABLE);
    /* A ';' inside a string or comment does not start a statement. */
    assert_int_equal(scan("SELECT ';HANDLER t OPEN'"), 0);
    assert_int_equal(scan("SELECT 1 /* ; */ HANDLER"), 0);
    /* SET context ends with its statement. */
    assert_int_equal(scan("SET NAMES utf8mb4; SELECT @x"), 0);
}

/* The statement length is the caller's business. */
static void test_large_statement_not_reported(void **state)
{
    size_t len = SL_LARGE_STATEMENT_BYTES * 2;
    char *big = malloc(len);
    assert_non_null(big);
    memcpy(big, "SELECT '", 8);
    memset(big + 8, 'x', len - 9);
    big[len - 1] = '\'';
    assert_int_equal(scan_n(big, len), 0);
    free(big);
}

/* Unterminated constructs stop at len; nothing after them is code. */
static void test_truncated(void **state)
{
    static const char *const neg[] = {
        "SELECT 'unterminated GET_LOCK(",
        "SELECT \"unterminated GET_LOCK(",
        "SELECT `unterminated GET_LOCK(",
        "/* unterminated GET_LOCK(",
        "SELECT 'abc\\",
        "SELECT 1 -",
        "SELECT 1 --",
        "SELECT @",
        "SELECT @@",
        "SELECT a :",
        "SELECT /",
        "SELECT /*",
        "SELECT /*!",
        "SELECT /*M",
        "SELECT /*M!",
        "SELECT 'a''",
        "GET_LOCK",
        "SELECT GET_LOCK /* (",
        "SET",
        "INTO",
    };
    EXPECT_ALL(neg, 0);
    assert_int_equal(scan("/*! SELECT GET_LOCK('a', 1)"), SL_PIN_GET_LOCK);
    assert_int_equal(scan("/*!50000"), 0);
    assert_int_equal(scan("SET @"), SL_PIN_USER_VARIABLE);
    assert_int_equal(scan("SELECT a :="), SL_PIN_USER_VARIABLE);

    /* Every prefix of texts full of tricky constructs, each in an exact-size buffer. */
    static const char *const texts[] = {
        "/*!40101 SET @a := 'x\\'y' */; SELECT `q``r`, \"s\"\"t\" -- c\n# d\nFROM t",
        "SELECT 'a''b\\\\', /*M!100100 GET_LOCK ( 'l', 1) */ 1--1; LOCK TABLES t WRITE",
        "/**/;/*!*/;/*M!*/-- \n--\t#\n'\\''\"\\\"\"`\\``@@a@b:=(;",
    };
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        size_t len = strlen(texts[i]);
        for (size_t n = 0; n <= len; n++)
            scan_n(texts[i], n);
    }
}

static struct sl_stmt_scan stmt_n(const char *text)
{
    size_t len = strlen(text);
    char *buf = malloc(len ? len : 1);
    assert_non_null(buf);
    memcpy(buf, text, len);
    struct sl_stmt_scan scan;
    sl_stmt_scan(buf, len, &scan);
    free(buf);
    assert_int_equal(scan.pins, sl_pinscan(text, len));
    return scan;
}

static enum sl_stmt_kind kind(const char *text)
{
    return stmt_n(text).kind;
}

static void test_statement_kinds(void **state)
{
    (void)state;
    assert_int_equal(kind("SELECT 1"), SL_STMT_READ);
    assert_int_equal(kind("  /* hint */ select * from t for update"), SL_STMT_READ);
    assert_int_equal(kind("SHOW TABLES"), SL_STMT_READ);
    assert_int_equal(kind("desc t"), SL_STMT_READ);
    assert_int_equal(kind("DESCRIBE t"), SL_STMT_READ);
    assert_int_equal(kind("EXPLAIN SELECT 1"), SL_STMT_READ);
    assert_int_equal(kind("SELECT 1;"), SL_STMT_READ);
    assert_int_equal(kind("INSERT INTO t VALUES (1)"), SL_STMT_DML);
    assert_int_equal(kind("update t set a = 1"), SL_STMT_DML);
    assert_int_equal(kind("DELETE FROM t"), SL_STMT_DML);
    assert_int_equal(kind("REPLACE INTO t VALUES (1)"), SL_STMT_DML);
    assert_int_equal(kind("SAVEPOINT a"), SL_STMT_DML);
    assert_int_equal(kind("ROLLBACK TO SAVEPOINT a"), SL_STMT_DML);
    assert_int_equal(kind("ROLLBACK WORK TO a"), SL_STMT_DML);
    assert_int_equal(kind("BEGIN"), SL_STMT_BEGIN);
    assert_int_equal(kind("begin work"), SL_STMT_BEGIN);
    assert_int_equal(kind("START TRANSACTION"), SL_STMT_BEGIN);
    assert_int_equal(kind("START TRANSACTION READ ONLY"), SL_STMT_BEGIN);
    assert_int_equal(kind("ROLLBACK"), SL_STMT_ROLLBACK);
    assert_int_equal(kind("rollback work"), SL_STMT_ROLLBACK);
    /* Anything whose effect a lost connection does not undo. */
    assert_int_equal(kind("COMMIT"), SL_STMT_OTHER);
    assert_int_equal(kind("ROLLBACK AND CHAIN"), SL_STMT_OTHER);
    assert_int_equal(kind("ROLLBACK RELEASE"), SL_STMT_OTHER);
    assert_int_equal(kind("START SLAVE"), SL_STMT_OTHER);
    assert_int_equal(kind("BEGIN NOT ATOMIC SELECT 1; END"), SL_STMT_OTHER);
    assert_int_equal(kind("SET autocommit = 1"), SL_STMT_OTHER);
    assert_int_equal(kind("CREATE TABLE t (a INT)"), SL_STMT_OTHER);
    assert_int_equal(kind("CALL p()"), SL_STMT_OTHER);
    assert_int_equal(kind("DO 1"), SL_STMT_OTHER);
    assert_int_equal(kind("(SELECT 1)"), SL_STMT_OTHER);
    assert_int_equal(kind(""), SL_STMT_OTHER);
    assert_int_equal(kind("-- only a comment\n"), SL_STMT_OTHER);
    /* A second statement makes the text OTHER, whatever the first one was. */
    assert_int_equal(kind("SELECT 1; UPDATE t SET a = 1"), SL_STMT_OTHER);
    assert_int_equal(kind("SELECT 1; SELECT 2"), SL_STMT_OTHER);
    assert_int_equal(kind("(SELECT 1); SELECT 2"), SL_STMT_OTHER);
    assert_int_equal(kind("SELECT ';UPDATE t'"), SL_STMT_READ);
    /* The readings of a backslash disagree: one sees an UPDATE after the literal. */
    assert_int_equal(kind("SELECT 'a\\'; UPDATE t SET b = 1 -- '"), SL_STMT_OTHER);
}

static void test_nondeterministic(void **state)
{
    (void)state;
    assert_true(stmt_n("INSERT INTO t VALUES (NOW())").nondeterministic);
    assert_true(stmt_n("insert into t values (now ())").nondeterministic);
    assert_true(stmt_n("UPDATE t SET a = RAND()").nondeterministic);
    assert_true(stmt_n("INSERT INTO t VALUES (UUID())").nondeterministic);
    assert_true(stmt_n("INSERT INTO t VALUES (CURRENT_TIMESTAMP)").nondeterministic);
    assert_true(stmt_n("SELECT SYSDATE()").nondeterministic);
    assert_true(stmt_n("SELECT CONNECTION_ID()").nondeterministic);
    assert_true(stmt_n("SELECT NEXTVAL(s)").nondeterministic);
    assert_true(stmt_n("SELECT 1 /*!100000 , UUID_SHORT() */").nondeterministic);
    assert_false(stmt_n("SELECT now FROM t").nondeterministic);
    assert_false(stmt_n("SELECT 'NOW()', `rand`(1)").nondeterministic);
    assert_false(stmt_n("SELECT v FROM t WHERE id = 1").nondeterministic);
    assert_false(stmt_n("UPDATE t SET v = v + 1 /* NOW() */").nondeterministic);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reason_names),
        cmocka_unit_test(test_nothing_to_see),
        cmocka_unit_test(test_user_variable),
        cmocka_unit_test(test_temp_table),
        cmocka_unit_test(test_table_lock),
        cmocka_unit_test(test_get_lock),
        cmocka_unit_test(test_prepared),
        cmocka_unit_test(test_found_rows),
        cmocka_unit_test(test_row_count_and_last_insert_id),
        cmocka_unit_test(test_handler_and_xa),
        cmocka_unit_test(test_comments),
        cmocka_unit_test(test_quoting),
        cmocka_unit_test(test_multi_statement_and_case),
        cmocka_unit_test(test_large_statement_not_reported),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_statement_kinds),
        cmocka_unit_test(test_nondeterministic),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
