/* Secret documents and references: fields, limits, file and env resolution, wiping, and that no
 * error message ever carries the password. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/secret.h"

/* Distinctive enough that finding it in a message can only mean it leaked. */
#define PW "Zq9-leak-canary-7Hx"

static void parse_ok(const char *json, struct sl_secret *s)
{
    char err[256] = "";

    if (sl_secret_parse(json, strlen(json), s, err, sizeof err) != 0)
        fail_msg("unexpected error: %s", err);
}

/* Expects failure with exactly EXPECT, no trace of the canary password anywhere in the message,
 * and an output left wiped. */
static void parse_err(const char *json, const char *expect)
{
    struct sl_secret s;
    char err[256] = "";

    assert_int_equal(sl_secret_parse(json, strlen(json), &s, err, sizeof err), -1);
    if (strcmp(err, expect) != 0)
        fail_msg("error \"%s\", expected \"%s\"\nfor %s", err, expect, json);
    assert_null(strstr(err, PW));
    assert_null(strstr(err, "leak"));
    assert_int_equal(s.password_len, 0);
    assert_int_equal(s.password[0], '\0');
    assert_int_equal(s.username[0], '\0');
}

static void test_parse_full(void **state)
{
    struct sl_secret s;

    parse_ok("{\"username\": \"app\", \"password\": \"" PW "\", \"engine\": \"mariadb\","
             " \"host\": \"db.internal\", \"port\": 3307}",
             &s);
    assert_string_equal(s.username, "app");
    assert_string_equal(s.password, PW);
    assert_int_equal(s.password_len, strlen(PW));
    assert_string_equal(s.host, "db.internal");
    assert_int_equal(s.port, 3307);
    sl_secret_wipe(&s);
}

static void test_parse_minimal_and_extra_keys(void **state)
{
    struct sl_secret s;

    parse_ok("{\"username\": \"app\", \"password\": \"\"}", &s);
    assert_string_equal(s.username, "app");
    assert_int_equal(s.password_len, 0);
    assert_string_equal(s.password, "");
    assert_string_equal(s.host, "");
    assert_int_equal(s.port, 0);

    /* Keys Secrets Manager adds, of any type, are ignored. */
    parse_ok("{\"dbClusterIdentifier\": \"c1\", \"username\": \"u\", \"password\": \"p\\\"q\","
             " \"dbname\": null, \"extra\": {\"nested\": [1, 2.5, true]}, \"port\": 1}",
             &s);
    assert_string_equal(s.username, "u");
    assert_string_equal(s.password, "p\"q");
    assert_int_equal(s.password_len, 3);
    assert_int_equal(s.port, 1);
    sl_secret_wipe(&s);
}

/* Builds {"username": "<ulen x u>", "password": "<plen x p>", "host": "<hlen x h>"}. */
static char *doc_with_lengths(size_t ulen, size_t plen, size_t hlen)
{
    size_t cap = ulen + plen + hlen + 64;
    char *doc = malloc(cap);
    char *p = doc;

    assert_non_null(doc);
    p += sprintf(p, "{\"username\": \"");
    memset(p, 'u', ulen);
    p += ulen;
    p += sprintf(p, "\", \"password\": \"");
    memset(p, 'p', plen);
    p += plen;
    p += sprintf(p, "\", \"host\": \"");
    memset(p, 'h', hlen);
    p += hlen;
    sprintf(p, "\"}");
    return doc;
}

static void test_length_limits(void **state)
{
    struct sl_secret s;
    char *doc;

    doc = doc_with_lengths(SL_SECRET_USER_MAX, SL_SECRET_PASSWORD_MAX, 255);
    parse_ok(doc, &s);
    assert_int_equal(strlen(s.username), SL_SECRET_USER_MAX);
    assert_int_equal(s.password_len, SL_SECRET_PASSWORD_MAX);
    assert_int_equal(strlen(s.password), SL_SECRET_PASSWORD_MAX);
    assert_int_equal(strlen(s.host), 255);
    sl_secret_wipe(&s);
    free(doc);

    doc = doc_with_lengths(1, 0, 0);
    parse_ok(doc, &s);
    assert_string_equal(s.username, "u");
    free(doc);

    doc = doc_with_lengths(0, 4, 1);
    parse_err(doc, "username: must be 1..128 bytes");
    free(doc);
    doc = doc_with_lengths(SL_SECRET_USER_MAX + 1, 4, 1);
    parse_err(doc, "username: must be 1..128 bytes");
    free(doc);
    doc = doc_with_lengths(4, SL_SECRET_PASSWORD_MAX + 1, 1);
    parse_err(doc, "password: must be 0..1024 bytes");
    free(doc);
    doc = doc_with_lengths(4, 4, 256);
    parse_err(doc, "host: must be 0..255 bytes");
    free(doc);
}

static void test_field_errors(void **state)
{
    static const char *const cases[][2] = {
        {"{\"password\": \"" PW "\"}", "username: required"},
        {"{\"username\": \"app\"}", "password: required"},
        {"{\"username\": 7, \"password\": \"" PW "\"}", "username: must be a string"},
        {"{\"username\": \"app\", \"password\": [\"" PW "\"]}", "password: must be a string"},
        {"{\"username\": \"app\", \"password\": null}", "password: must be a string"},
        {"{\"username\": \"app\", \"password\": \"" PW "\", \"engine\": 5}",
         "engine: must be a string"},
        {"{\"username\": \"app\", \"password\": \"" PW "\", \"host\": false}",
         "host: must be a string"},
        {"{\"username\": \"app\", \"password\": \"" PW "\", \"port\": 0}",
         "port: must be an integer 1..65535"},
        {"{\"username\": \"app\", \"password\": \"" PW "\", \"port\": 65536}",
         "port: must be an integer 1..65535"},
        {"{\"username\": \"app\", \"password\": \"" PW "\", \"port\": \"3306\"}",
         "port: must be an integer 1..65535"},
        {"{\"username\": \"app\", \"password\": \"" PW "\", \"port\": 3306.0}",
         "port: must be an integer 1..65535"},
        {"[\"app\", \"" PW "\"]", "the document must be a JSON object"},
    };
    struct sl_secret s;

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        parse_err(cases[i][0], cases[i][1]);

    parse_ok("{\"username\": \"app\", \"password\": \"x\", \"port\": 65535}", &s);
    assert_int_equal(s.port, 65535);
}

/* jansson's own message quotes the text near the error; none of it may reach the caller. */
static void test_invalid_json_hides_text(void **state)
{
    static const char *const docs[] = {
        "{\"username\": \"app\", \"password\": " PW "}",
        "{\"username\": \"app\", \"password\": \"" PW "",
        "{\"username\": \"app\", \"password\": \"" PW "\"} " PW,
        "{\"username\": \"app\", \"password\": \"" PW "\\u0000\"}",
        "{\"username\": \"app\", \"password\": \"" PW "\", \"password\": \"" PW "\"}",
        "{\"username\": \"app\", \"password\": \"" PW "\\q\"}",
        "",
    };
    struct sl_secret s;
    char err[256];

    for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++) {
        memset(err, 0, sizeof err);
        assert_int_equal(sl_secret_parse(docs[i], strlen(docs[i]), &s, err, sizeof err), -1);
        assert_ptr_equal(strstr(err, "invalid JSON at line 1 column "), err);
        assert_null(strstr(err, PW));
        assert_null(strstr(err, "near"));
        assert_int_equal(s.password_len, 0);
    }
    /* A NUL byte inside the buffer (not just as an escape) is rejected too. */
    static const char raw[] = "{\"username\": \"app\", \"password\": \"a\0b\"}";
    assert_int_equal(sl_secret_parse(raw, sizeof raw - 1, &s, err, sizeof err), -1);
}

static void test_wipe(void **state)
{
    struct sl_secret s;
    static const struct sl_secret zero;

    parse_ok("{\"username\": \"app\", \"password\": \"" PW "\", \"host\": \"h\", \"port\": 9}", &s);
    sl_secret_wipe(&s);
    assert_memory_equal(&s, &zero, sizeof s);
}

static char *write_temp(const char *data, size_t len)
{
    char *path = strdup("/tmp/sluice-secret-XXXXXX");
    assert_non_null(path);
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, len), (ssize_t)len);
    assert_int_equal(close(fd), 0);
    return path;
}

static void test_resolve_token(void **state)
{
    char tok[SL_TOKEN_MAX + 1], err[256], ref[300];
    /* A file written with `echo token > file`: the newline is not part of the token. */
    char *path = write_temp("  abcdefghijklmnop-0123456789\n", 30);
    snprintf(ref, sizeof ref, "file:%s", path);
    assert_int_equal(sl_secret_resolve_token(ref, tok, sizeof tok, err, sizeof err), 0);
    assert_string_equal(tok, "abcdefghijklmnop-0123456789");
    unlink(path);
    free(path);

    setenv("SLUICE_TEST_TOKEN", "0123456789abcdef", 1);
    assert_int_equal(
        sl_secret_resolve_token("env:SLUICE_TEST_TOKEN", tok, sizeof tok, err, sizeof err), 0);
    assert_string_equal(tok, "0123456789abcdef");

    /* Too short, inner spaces, unset: refused, and the message never holds the value. */
    setenv("SLUICE_TEST_TOKEN", "short-token", 1);
    assert_int_equal(
        sl_secret_resolve_token("env:SLUICE_TEST_TOKEN", tok, sizeof tok, err, sizeof err), -1);
    assert_null(strstr(err, "short-token"));
    setenv("SLUICE_TEST_TOKEN", "0123456789 abcdef-ghij", 1);
    assert_int_equal(
        sl_secret_resolve_token("env:SLUICE_TEST_TOKEN", tok, sizeof tok, err, sizeof err), -1);
    assert_null(strstr(err, "abcdef-ghij"));
    unsetenv("SLUICE_TEST_TOKEN");
    assert_int_equal(
        sl_secret_resolve_token("env:SLUICE_TEST_TOKEN", tok, sizeof tok, err, sizeof err), -1);
    assert_string_equal(err, "secret env:SLUICE_TEST_TOKEN: variable is not set");
    assert_int_equal(
        sl_secret_resolve_token("file:/nonexistent/token", tok, sizeof tok, err, sizeof err), -1);
    assert_int_equal(sl_secret_resolve_token("vault:x", tok, sizeof tok, err, sizeof err), -1);
}

static void resolve_err(const char *ref, const char *expect)
{
    struct sl_secret s;
    char err[512] = "";

    assert_int_equal(sl_secret_resolve(ref, &s, err, sizeof err), -1);
    if (strcmp(err, expect) != 0)
        fail_msg("error \"%s\", expected \"%s\"", err, expect);
    assert_null(strstr(err, PW));
    assert_int_equal(s.password_len, 0);
}

static void test_resolve_file(void **state)
{
    static const char doc[] = "{\"username\": \"app\", \"password\": \"" PW "\", \"port\": 3306}";
    char ref[64], expect[256];
    struct sl_secret s;
    char err[256];
    char *path = write_temp(doc, sizeof doc - 1);

    snprintf(ref, sizeof ref, "file:%s", path);
    assert_int_equal(sl_secret_resolve(ref, &s, err, sizeof err), 0);
    assert_string_equal(s.username, "app");
    assert_string_equal(s.password, PW);
    assert_int_equal(s.port, 3306);
    sl_secret_wipe(&s);
    unlink(path);
    free(path);

    /* Errors in the document are reported with the reference, and still without the value. */
    static const char bad[] = "{\"username\": \"app\", \"password\": \"" PW "\", \"port\": -1}";
    path = write_temp(bad, sizeof bad - 1);
    snprintf(ref, sizeof ref, "file:%s", path);
    snprintf(expect, sizeof expect, "secret %s: port: must be an integer 1..65535", ref);
    resolve_err(ref, expect);
    unlink(path);
    free(path);

    static const char broken[] = "{\"username\": \"app\",\n \"password\": " PW "}";
    path = write_temp(broken, sizeof broken - 1);
    snprintf(ref, sizeof ref, "file:%s", path);
    snprintf(expect, sizeof expect, "secret %s: invalid JSON at line 2 column 15", ref);
    resolve_err(ref, expect);

    unlink(path);
    snprintf(expect, sizeof expect, "secret %s: No such file or directory", ref);
    resolve_err(ref, expect);
    free(path);

    resolve_err("file:/tmp", "secret file:/tmp: Is a directory");
    resolve_err("file:secret.json", "secret file:secret.json: path must be absolute");
}

static void test_resolve_file_size_limit(void **state)
{
    const size_t limit = 64 * 1024;
    static const char doc[] = "{\"username\": \"app\", \"password\": \"" PW "\"}";
    char ref[64], expect[256];
    struct sl_secret s;
    char err[256];
    char *buf = malloc(limit + 1);

    /* A valid document padded with whitespace to exactly the limit is read in full. */
    assert_non_null(buf);
    memset(buf, ' ', limit + 1);
    memcpy(buf, doc, sizeof doc - 1);
    char *path = write_temp(buf, limit);
    snprintf(ref, sizeof ref, "file:%s", path);
    assert_int_equal(sl_secret_resolve(ref, &s, err, sizeof err), 0);
    assert_string_equal(s.password, PW);
    sl_secret_wipe(&s);
    unlink(path);
    free(path);

    path = write_temp(buf, limit + 1);
    snprintf(ref, sizeof ref, "file:%s", path);
    snprintf(expect, sizeof expect, "secret %s: larger than 65536 bytes", ref);
    resolve_err(ref, expect);
    unlink(path);
    free(path);
    free(buf);
}

static void test_resolve_env(void **state)
{
    struct sl_secret s;
    char err[256];

    assert_int_equal(setenv("SLUICE_TEST_SECRET",
                            "{\"username\": \"env-user\", \"password\": \"" PW "\","
                            " \"host\": \"10.0.0.5\", \"dbInstanceIdentifier\": \"db-1\"}",
                            1),
                     0);
    assert_int_equal(sl_secret_resolve("env:SLUICE_TEST_SECRET", &s, err, sizeof err), 0);
    assert_string_equal(s.username, "env-user");
    assert_string_equal(s.password, PW);
    assert_string_equal(s.host, "10.0.0.5");
    sl_secret_wipe(&s);

    /* Rotation as seen from here: resolving again reads the current value. */
    assert_int_equal(
        setenv("SLUICE_TEST_SECRET", "{\"username\": \"env-user\", \"password\": \"v2\"}", 1), 0);
    assert_int_equal(sl_secret_resolve("env:SLUICE_TEST_SECRET", &s, err, sizeof err), 0);
    assert_string_equal(s.password, "v2");
    sl_secret_wipe(&s);

    assert_int_equal(setenv("SLUICE_TEST_SECRET", PW, 1), 0);
    resolve_err("env:SLUICE_TEST_SECRET",
                "secret env:SLUICE_TEST_SECRET: invalid JSON at line 1 column 2");

    assert_int_equal(unsetenv("SLUICE_TEST_SECRET"), 0);
    resolve_err("env:SLUICE_TEST_SECRET", "secret env:SLUICE_TEST_SECRET: variable is not set");
    resolve_err("env:1BAD", "secret env:1BAD: variable name must match [A-Za-z_][A-Za-z0-9_]*");
    resolve_err("env:", "secret env:: variable name must match [A-Za-z_][A-Za-z0-9_]*");

    /* Over the size limit. */
    char *big = malloc(64 * 1024 + 2);
    assert_non_null(big);
    memset(big, ' ', 64 * 1024 + 1);
    big[64 * 1024 + 1] = '\0';
    assert_int_equal(setenv("SLUICE_TEST_SECRET", big, 1), 0);
    resolve_err("env:SLUICE_TEST_SECRET", "secret env:SLUICE_TEST_SECRET: larger than 65536 bytes");
    assert_int_equal(unsetenv("SLUICE_TEST_SECRET"), 0);
    free(big);
}

static void test_resolve_unknown_scheme(void **state)
{
    resolve_err("arn:aws:secretsmanager:eu-west-1:123:secret:app",
                "secret reference: unknown scheme \"arn:\" (want file: or env:)");
    /* A password pasted where a reference belongs is not echoed back. */
    resolve_err(PW, "secret reference: must be \"file:/absolute/path\" or \"env:NAME\"");
    resolve_err("averyveryverylongscheme:" PW,
                "secret reference: must be \"file:/absolute/path\" or \"env:NAME\"");
    resolve_err("", "secret reference: must be \"file:/absolute/path\" or \"env:NAME\"");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_full),
        cmocka_unit_test(test_parse_minimal_and_extra_keys),
        cmocka_unit_test(test_length_limits),
        cmocka_unit_test(test_field_errors),
        cmocka_unit_test(test_invalid_json_hides_text),
        cmocka_unit_test(test_wipe),
        cmocka_unit_test(test_resolve_file),
        cmocka_unit_test(test_resolve_file_size_limit),
        cmocka_unit_test(test_resolve_env),
        cmocka_unit_test(test_resolve_unknown_scheme),
        cmocka_unit_test(test_resolve_token),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
