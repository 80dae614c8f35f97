/* admin/validate: every resource body's fields, bounds, defaults and errors; URL names, node ids,
 * If-Match and read query strings. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "admin/validate.h"
#include "base/secret.h"

enum kind { SECRET, PROXY, GROUP, TARGET, NODE, WRITER };

static char *run(enum kind k, const char *body, struct sl_validate_error *e)
{
    char id[SL_RAFT_NAME_MAX + 1];
    char addr[SL_VALIDATE_ADDR_MAX];
    uint64_t nid;
    size_t len = strlen(body);
    switch (k) {
    case SECRET: return sl_validate_secret(body, len, "app", e);
    case PROXY: return sl_validate_proxy(body, len, "app", e);
    case GROUP: return sl_validate_target_group(body, len, e);
    case TARGET: return sl_validate_target(body, len, id, e);
    case NODE: return sl_validate_node(body, len, &nid, addr, e);
    case WRITER: return sl_validate_writer(body, len, "n2", id, e);
    }
    return NULL;
}

static void ok(enum kind k, const char *body, const char *want)
{
    struct sl_validate_error e;
    char *got = run(k, body, &e);
    if (!got)
        fail_msg("refused %s: %s", body, e.detail);
    assert_string_equal(got, want);
    free(got);
}

/* Refused with this field and exactly this detail. */
static void bad(enum kind k, const char *body, const char *field, const char *detail)
{
    struct sl_validate_error e;
    char *got = run(k, body, &e);
    if (got)
        fail_msg("accepted %s as %s", body, got);
    assert_int_equal(e.status, 400);
    assert_string_equal(e.field, field);
    assert_string_equal(e.detail, detail);
}

static void test_bodies(void **state)
{
    bad(SECRET, "", "body", "body: must be a JSON object");
    bad(SECRET, "[1]", "body", "body: must be a JSON object");
    bad(SECRET, "{\"ref\":", "body",
        "body: not valid JSON (line 1, column 7: unexpected token near end of file)");
    bad(SECRET, "{\"ref\":\"env:A\",\"ref\":\"env:B\"}", "body",
        "body: not valid JSON (line 1, column 20: duplicate object key near '\"ref\"')");
}

static void test_secret(void **state)
{
    ok(SECRET, "{\"ref\":\"file:/etc/sluice/app.json\"}",
       "{\"ref\":\"file:/etc/sluice/app.json\"}");
    ok(SECRET, "{\"ref\":\"env:_APP_1\"}", "{\"ref\":\"env:_APP_1\"}");
    /* What GET returns can be sent back. */
    ok(SECRET, "{\"name\":\"app\",\"ref\":\"env:A\",\"revision\":7}", "{\"ref\":\"env:A\"}");
    const char *rule =
        "ref: must be \"file:\" and an absolute path, or \"env:\" and a variable name";
    static const char *const refs[] = {
        "{\"ref\":\"hunter2\"}", "{\"ref\":\"file:relative\"}", "{\"ref\":\"file:/\"}",
        "{\"ref\":\"file:\"}",   "{\"ref\":\"env:\"}",          "{\"ref\":\"env:1A\"}",
        "{\"ref\":\"env:A-B\"}", "{\"ref\":\"ENV:A\"}",
    };
    for (size_t i = 0; i < sizeof refs / sizeof refs[0]; i++) {
        struct sl_validate_error e;
        assert_null(run(SECRET, refs[i], &e));
        assert_string_equal(e.detail, rule);
    }
    /* The rejected value is never echoed. */
    struct sl_validate_error e;
    assert_null(run(SECRET, "{\"ref\":\"p4ssw0rd!\"}", &e));
    assert_null(strstr(e.detail, "p4ssw0rd"));
    bad(SECRET, "{\"ref\":42}", "ref", "ref: must be a string");
    bad(SECRET, "{}", "ref", "ref: required");
    bad(SECRET, "{\"ref\":\"env:A\",\"password\":\"x\"}", "password", "password: unknown field");
    bad(SECRET, "{\"ref\":\"env:A\",\"name\":\"other\"}", "name",
        "name: must be the name in the URL (\"app\") when present");
}

#define AUTH "\"auth\":[{\"secret\":\"app-user\"}]"
#define PROXY_DEFAULTS                                                                             \
    "{\"auth\":[{\"auth_scheme\":\"SECRETS\",\"client_password_auth_type\":"                       \
    "\"MYSQL_NATIVE_PASSWORD\",\"description\":\"\",\"iam_auth\":\"DISABLED\",\"secret\":"         \
    "\"app-user\"}],\"debug_logging\":false,\"endpoints\":[],\"engine_family\":\"MYSQL\","         \
    "\"idle_client_timeout\":1800,\"listen_port\":6033,\"require_tls\":true}"

static void test_proxy(void **state)
{
    ok(PROXY, "{\"listen_port\":6033," AUTH "}", PROXY_DEFAULTS);
    ok(PROXY, "{\"name\":\"app\",\"revision\":3,\"listen_port\":6033," AUTH "}", PROXY_DEFAULTS);
    ok(PROXY,
       "{\"engine_family\":\"MYSQL\",\"listen_port\":1,\"require_tls\":false,"
       "\"idle_client_timeout\":28800,\"debug_logging\":true,\"auth\":[{\"auth_scheme\":"
       "\"SECRETS\",\"secret\":\"a\",\"iam_auth\":\"DISABLED\",\"client_password_auth_type\":"
       "\"MYSQL_CACHING_SHA2_PASSWORD\",\"description\":\"app user\"},{\"secret\":\"b\"}],"
       "\"endpoints\":[{\"name\":\"ro\",\"port\":6034,\"target_role\":\"READ_ONLY\"},{\"name\":"
       "\"rw\",\"port\":65535}]}",
       "{\"auth\":[{\"auth_scheme\":\"SECRETS\",\"client_password_auth_type\":"
       "\"MYSQL_CACHING_SHA2_PASSWORD\",\"description\":\"app user\",\"iam_auth\":\"DISABLED\","
       "\"secret\":\"a\"},{\"auth_scheme\":\"SECRETS\",\"client_password_auth_type\":"
       "\"MYSQL_NATIVE_PASSWORD\",\"description\":\"\",\"iam_auth\":\"DISABLED\",\"secret\":\"b\"}"
       "],\"debug_logging\":true,\"endpoints\":[{\"name\":\"ro\",\"port\":6034,\"target_role\":"
       "\"READ_ONLY\"},{\"name\":\"rw\",\"port\":65535,\"target_role\":\"READ_WRITE\"}],"
       "\"engine_family\":\"MYSQL\",\"idle_client_timeout\":28800,\"listen_port\":1,"
       "\"require_tls\":false}");

    bad(PROXY, "{" AUTH "}", "listen_port", "listen_port: required");
    bad(PROXY, "{\"listen_port\":0," AUTH "}", "listen_port", "listen_port: must be 1..65535");
    bad(PROXY, "{\"listen_port\":65536," AUTH "}", "listen_port", "listen_port: must be 1..65535");
    bad(PROXY, "{\"listen_port\":6033.0," AUTH "}", "listen_port",
        "listen_port: must be an integer");
    bad(PROXY, "{\"listen_port\":\"6033\"," AUTH "}", "listen_port",
        "listen_port: must be an integer");
    bad(PROXY, "{\"engine_family\":\"POSTGRESQL\",\"listen_port\":1," AUTH "}", "engine_family",
        "engine_family: must be MYSQL");
    bad(PROXY, "{\"require_tls\":1,\"listen_port\":1," AUTH "}", "require_tls",
        "require_tls: must be true or false");
    bad(PROXY, "{\"debug_logging\":null,\"listen_port\":1," AUTH "}", "debug_logging",
        "debug_logging: must be true or false");
    bad(PROXY, "{\"idle_client_timeout\":0,\"listen_port\":1," AUTH "}", "idle_client_timeout",
        "idle_client_timeout: must be 1..28800");
    bad(PROXY, "{\"idle_client_timeout\":28801,\"listen_port\":1," AUTH "}", "idle_client_timeout",
        "idle_client_timeout: must be 1..28800");
    bad(PROXY, "{\"listen_port\":1,\"tls\":true," AUTH "}", "tls", "tls: unknown field");
    bad(PROXY, "{\"name\":\"other\",\"listen_port\":1," AUTH "}", "name",
        "name: must be the name in the URL (\"app\") when present");

    bad(PROXY, "{\"listen_port\":1}", "auth", "auth: required");
    bad(PROXY, "{\"listen_port\":1,\"auth\":[]}", "auth",
        "auth: must be an array of at least one object");
    bad(PROXY, "{\"listen_port\":1,\"auth\":{}}", "auth",
        "auth: must be an array of at least one object");
    bad(PROXY, "{\"listen_port\":1,\"auth\":[{\"secret\":\"a\"},7]}", "auth[1]",
        "auth[1]: must be an object");
    bad(PROXY, "{\"listen_port\":1,\"auth\":[{}]}", "auth[0].secret", "auth[0].secret: required");
    bad(PROXY, "{\"listen_port\":1,\"auth\":[{\"secret\":\"file:/x\"}]}", "auth[0].secret",
        "auth[0].secret: must name a secret of /v1/secrets (must be 1..63 characters from A-Z "
        "a-z 0-9 . _ -)");
    bad(PROXY, "{\"listen_port\":1,\"auth\":[{\"secret\":\"a\",\"auth_scheme\":\"IAM\"}]}",
        "auth[0].auth_scheme", "auth[0].auth_scheme: must be SECRETS");
    bad(PROXY, "{\"listen_port\":1,\"auth\":[{\"secret\":\"a\",\"iam_auth\":\"REQUIRED\"}]}",
        "auth[0].iam_auth", "auth[0].iam_auth: must be DISABLED");
    bad(PROXY,
        "{\"listen_port\":1,\"auth\":[{\"secret\":\"a\"},{\"secret\":\"b\","
        "\"client_password_auth_type\":\"SHA256\"}]}",
        "auth[1].client_password_auth_type",
        "auth[1].client_password_auth_type: must be MYSQL_NATIVE_PASSWORD or "
        "MYSQL_CACHING_SHA2_PASSWORD");
    bad(PROXY, "{\"listen_port\":1,\"auth\":[{\"secret\":\"a\",\"description\":1}]}",
        "auth[0].description", "auth[0].description: must be a string");
    bad(PROXY, "{\"listen_port\":1,\"auth\":[{\"secret\":\"a\",\"username\":\"u\"}]}",
        "auth[0].username", "auth[0].username: unknown field");

    bad(PROXY, "{\"listen_port\":1," AUTH ",\"endpoints\":{}}", "endpoints",
        "endpoints: must be an array");
    bad(PROXY, "{\"listen_port\":1," AUTH ",\"endpoints\":[1]}", "endpoints[0]",
        "endpoints[0]: must be an object");
    bad(PROXY, "{\"listen_port\":1," AUTH ",\"endpoints\":[{\"port\":1}]}", "endpoints[0].name",
        "endpoints[0].name: required");
    bad(PROXY, "{\"listen_port\":1," AUTH ",\"endpoints\":[{\"name\":\"a b\",\"port\":1}]}",
        "endpoints[0].name", "endpoints[0].name: must be 1..63 characters from A-Z a-z 0-9 . _ -");
    bad(PROXY, "{\"listen_port\":1," AUTH ",\"endpoints\":[{\"name\":\"a\"}]}", "endpoints[0].port",
        "endpoints[0].port: required");
    bad(PROXY, "{\"listen_port\":1," AUTH ",\"endpoints\":[{\"name\":\"a\",\"port\":0}]}",
        "endpoints[0].port", "endpoints[0].port: must be 1..65535");
    bad(PROXY,
        "{\"listen_port\":1," AUTH
        ",\"endpoints\":[{\"name\":\"a\",\"port\":2,\"target_role\":\"WRITER\"}]}",
        "endpoints[0].target_role", "endpoints[0].target_role: must be READ_WRITE or READ_ONLY");
    bad(PROXY,
        "{\"listen_port\":1," AUTH
        ",\"endpoints\":[{\"name\":\"a\",\"port\":2},{\"name\":\"a\",\"port\":3}]}",
        "endpoints[1].name", "endpoints[1].name: \"a\" is already used by endpoints[0]");
    bad(PROXY, "{\"listen_port\":1," AUTH ",\"endpoints\":[{\"name\":\"a\",\"port\":2,\"x\":1}]}",
        "endpoints[0].x", "endpoints[0].x: unknown field");
}

#define POOL       "{\"connection_pool_config\":"
#define FO_CHECKS  "\"check_failures\":2,\"check_interval_ms\":500,\"check_timeout_ms\":1000,"
#define FO_DEFAULT ",\"failover\":{" FO_CHECKS "\"mode\":\"EXTERNAL\",\"require_semi_sync\":true}}"
#define POOL_DEFAULTS                                                                              \
    "{\"connection_borrow_timeout\":120,\"init_query\":\"\",\"max_connections_percent\":100,"      \
    "\"max_idle_connections_percent\":50,\"session_pinning_filters\":[],"                          \
    "\"transaction_replay\":false,\"transaction_replay_max_size\":1048576}"

static void test_target_group(void **state)
{
    const char *defaults = POOL "{\"connection_borrow_timeout\":120,\"init_query\":\"\","
                                "\"max_connections_percent\":100,\"max_idle_connections_percent\""
                                ":50,\"session_pinning_filters\":[],\"transaction_replay\":false,"
                                "\"transaction_replay_max_size\":1048576}" FO_DEFAULT;
    ok(GROUP, "{}", defaults);
    ok(GROUP, POOL "{}}", defaults);
    ok(GROUP, POOL "{},\"revision\":9}", defaults);
    /* The idle default follows the limit: half of it, rounded down. */
    ok(GROUP, POOL "{\"max_connections_percent\":1}}",
       POOL "{\"connection_borrow_timeout\":120,\"init_query\":\"\",\"max_connections_percent\":1,"
            "\"max_idle_connections_percent\":0,\"session_pinning_filters\":[],"
            "\"transaction_replay\":false,\"transaction_replay_max_size\":1048576}" FO_DEFAULT);
    ok(GROUP,
       POOL "{\"max_connections_percent\":80,\"max_idle_connections_percent\":80,"
            "\"connection_borrow_timeout\":3600,\"init_query\":\"SET time_zone = '+00:00'\","
            "\"session_pinning_filters\":[\"EXCLUDE_VARIABLE_SETS\"]}}",
       POOL "{\"connection_borrow_timeout\":3600,\"init_query\":\"SET time_zone = '+00:00'\","
            "\"max_connections_percent\":80,\"max_idle_connections_percent\":80,"
            "\"session_pinning_filters\":[\"EXCLUDE_VARIABLE_SETS\"],\"transaction_replay\":false,"
            "\"transaction_replay_max_size\":1048576}" FO_DEFAULT);
    ok(GROUP, POOL "{\"max_idle_connections_percent\":0,\"connection_borrow_timeout\":0}}",
       POOL "{\"connection_borrow_timeout\":0,\"init_query\":\"\",\"max_connections_percent\":100,"
            "\"max_idle_connections_percent\":0,\"session_pinning_filters\":[],"
            "\"transaction_replay\":false,\"transaction_replay_max_size\":1048576}" FO_DEFAULT);

    /* Transaction replay: off by default; the size bounds are inclusive and apply whether or not
     * replay is on. */
    ok(GROUP, POOL "{\"transaction_replay\":true}}",
       POOL "{\"connection_borrow_timeout\":120,\"init_query\":\"\","
            "\"max_connections_percent\":100,\"max_idle_connections_percent\":50,"
            "\"session_pinning_filters\":[],\"transaction_replay\":true,"
            "\"transaction_replay_max_size\":1048576}" FO_DEFAULT);
    ok(GROUP, POOL "{\"transaction_replay\":true,\"transaction_replay_max_size\":67108864}}",
       POOL "{\"connection_borrow_timeout\":120,\"init_query\":\"\","
            "\"max_connections_percent\":100,\"max_idle_connections_percent\":50,"
            "\"session_pinning_filters\":[],\"transaction_replay\":true,"
            "\"transaction_replay_max_size\":67108864}" FO_DEFAULT);
    ok(GROUP, POOL "{\"transaction_replay\":false,\"transaction_replay_max_size\":1024}}",
       POOL "{\"connection_borrow_timeout\":120,\"init_query\":\"\","
            "\"max_connections_percent\":100,\"max_idle_connections_percent\":50,"
            "\"session_pinning_filters\":[],\"transaction_replay\":false,"
            "\"transaction_replay_max_size\":1024}" FO_DEFAULT);

    bad(GROUP, "{\"targets\":[]}", "targets", "targets: unknown field");
    bad(GROUP, POOL "[]}", "connection_pool_config", "connection_pool_config: must be an object");
    bad(GROUP, POOL "{\"max_connections_percent\":0}}",
        "connection_pool_config.max_connections_percent",
        "connection_pool_config.max_connections_percent: must be 1..100");
    bad(GROUP, POOL "{\"max_connections_percent\":101}}",
        "connection_pool_config.max_connections_percent",
        "connection_pool_config.max_connections_percent: must be 1..100");
    bad(GROUP, POOL "{\"max_connections_percent\":40,\"max_idle_connections_percent\":41}}",
        "connection_pool_config.max_idle_connections_percent",
        "connection_pool_config.max_idle_connections_percent: must be 0..40");
    bad(GROUP, POOL "{\"max_idle_connections_percent\":-1}}",
        "connection_pool_config.max_idle_connections_percent",
        "connection_pool_config.max_idle_connections_percent: must be 0..100");
    bad(GROUP, POOL "{\"connection_borrow_timeout\":3601}}",
        "connection_pool_config.connection_borrow_timeout",
        "connection_pool_config.connection_borrow_timeout: must be 0..3600");
    bad(GROUP, POOL "{\"init_query\":false}}", "connection_pool_config.init_query",
        "connection_pool_config.init_query: must be a string");
    bad(GROUP, POOL "{\"session_pinning_filters\":\"EXCLUDE_VARIABLE_SETS\"}}",
        "connection_pool_config.session_pinning_filters",
        "connection_pool_config.session_pinning_filters: must be an array");
    bad(GROUP, POOL "{\"session_pinning_filters\":[\"EXCLUDE_ALL\"]}}",
        "connection_pool_config.session_pinning_filters[0]",
        "connection_pool_config.session_pinning_filters[0]: must be EXCLUDE_VARIABLE_SETS");
    bad(GROUP,
        POOL "{\"session_pinning_filters\":[\"EXCLUDE_VARIABLE_SETS\",\"EXCLUDE_VARIABLE_SETS\"]}}",
        "connection_pool_config.session_pinning_filters[1]",
        "connection_pool_config.session_pinning_filters[1]: EXCLUDE_VARIABLE_SETS is already "
        "listed");
    bad(GROUP, POOL "{\"transaction_replay\":1}}", "connection_pool_config.transaction_replay",
        "connection_pool_config.transaction_replay: must be true or false");
    bad(GROUP, POOL "{\"transaction_replay\":\"true\"}}",
        "connection_pool_config.transaction_replay",
        "connection_pool_config.transaction_replay: must be true or false");
    bad(GROUP, POOL "{\"transaction_replay\":null}}", "connection_pool_config.transaction_replay",
        "connection_pool_config.transaction_replay: must be true or false");
    bad(GROUP, POOL "{\"transaction_replay_max_size\":1023}}",
        "connection_pool_config.transaction_replay_max_size",
        "connection_pool_config.transaction_replay_max_size: must be 1024..67108864");
    bad(GROUP, POOL "{\"transaction_replay\":true,\"transaction_replay_max_size\":67108865}}",
        "connection_pool_config.transaction_replay_max_size",
        "connection_pool_config.transaction_replay_max_size: must be 1024..67108864");
    bad(GROUP, POOL "{\"transaction_replay_max_size\":1048576.0}}",
        "connection_pool_config.transaction_replay_max_size",
        "connection_pool_config.transaction_replay_max_size: must be an integer");
    bad(GROUP, POOL "{\"transaction_replay_max_size\":\"1M\"}}",
        "connection_pool_config.transaction_replay_max_size",
        "connection_pool_config.transaction_replay_max_size: must be an integer");
    bad(GROUP, POOL "{\"max_connections\":5}}", "connection_pool_config.max_connections",
        "connection_pool_config.max_connections: unknown field");

    /* Failover: EXTERNAL unless said otherwise; MANAGED needs both secrets. */
    ok(GROUP, "{\"failover\":{\"mode\":\"DISABLED\"}}",
       "{\"connection_pool_config\":" POOL_DEFAULTS ",\"failover\":{" FO_CHECKS
       "\"mode\":\"DISABLED\",\"require_semi_sync\":true}}");
    ok(GROUP,
       "{\"failover\":{\"mode\":\"MANAGED\",\"admin_secret\":\"db-admin\","
       "\"replication_secret\":\"repl\",\"require_semi_sync\":false}}",
       "{\"connection_pool_config\":" POOL_DEFAULTS
       ",\"failover\":{\"admin_secret\":\"db-admin\"," FO_CHECKS "\"mode\":\"MANAGED\","
       "\"replication_secret\":\"repl\",\"require_semi_sync\":false}}");
    bad(GROUP, "{\"failover\":{\"mode\":\"MANAGED\",\"admin_secret\":\"a\"}}",
        "failover.replication_secret", "failover.replication_secret: required");
    bad(GROUP, "{\"failover\":{\"mode\":\"MANAGED\",\"replication_secret\":\"r\"}}",
        "failover.admin_secret", "failover.admin_secret: required");
    bad(GROUP, "{\"failover\":{\"mode\":\"AUTO\"}}", "failover.mode",
        "failover.mode: must be EXTERNAL, MANAGED or DISABLED");
    bad(GROUP, "{\"failover\":{\"admin_secret\":\"no spaces\"}}", "failover.admin_secret",
        "failover.admin_secret: must be the name of a secret (1..63 of A-Z a-z 0-9 . _ -)");
    bad(GROUP, "{\"failover\":{\"require_semi_sync\":\"yes\"}}", "failover.require_semi_sync",
        "failover.require_semi_sync: must be true or false");
    bad(GROUP, "{\"failover\":{\"check_interval_ms\":99}}", "failover.check_interval_ms",
        "failover.check_interval_ms: must be 100..60000");
    bad(GROUP, "{\"failover\":{\"check_timeout_ms\":999}}", "failover.check_timeout_ms",
        "failover.check_timeout_ms: must be 1000..60000");
    bad(GROUP, "{\"failover\":{\"check_failures\":0}}", "failover.check_failures",
        "failover.check_failures: must be 1..10");
    ok(GROUP,
       "{\"failover\":{\"check_interval_ms\":200,\"check_timeout_ms\":2000,"
       "\"check_failures\":1}}",
       "{\"connection_pool_config\":" POOL_DEFAULTS
       ",\"failover\":{\"check_failures\":1,\"check_interval_ms\":200,\"check_timeout_ms\":2000,"
       "\"mode\":\"EXTERNAL\",\"require_semi_sync\":true}}");
    bad(GROUP, "{\"failover\":{\"timeout\":1}}", "failover.timeout",
        "failover.timeout: unknown field");
    bad(GROUP, "{\"failover\":\"MANAGED\"}", "failover", "failover: must be an object");
    /* Secrets are optional outside MANAGED (kept for a later switch), and checked when given. */
    ok(GROUP, "{\"failover\":{\"admin_secret\":\"db-admin\",\"require_semi_sync\":false}}",
       "{\"connection_pool_config\":" POOL_DEFAULTS
       ",\"failover\":{\"admin_secret\":\"db-admin\"," FO_CHECKS "\"mode\":\"EXTERNAL\","
       "\"require_semi_sync\":false}}");
    ok(GROUP, "{\"failover\":{}}", "{\"connection_pool_config\":" POOL_DEFAULTS FO_DEFAULT);
    bad(GROUP, "{\"failover\":{\"mode\":\"MANAGED\"}}", "failover.admin_secret",
        "failover.admin_secret: required");
    bad(GROUP,
        "{\"failover\":{\"mode\":\"MANAGED\",\"admin_secret\":\"a\","
        "\"replication_secret\":\"r/1\"}}",
        "failover.replication_secret",
        "failover.replication_secret: must be the name of a secret (1..63 of A-Z a-z 0-9 . _ -)");
    bad(GROUP,
        "{\"failover\":{\"mode\":\"MANAGED\",\"admin_secret\":7,\"replication_secret\":\"r\"}}",
        "failover.admin_secret", "failover.admin_secret: must be a string");
    bad(GROUP, "{\"failover\":{\"mode\":\"managed\"}}", "failover.mode",
        "failover.mode: must be EXTERNAL, MANAGED or DISABLED");
    bad(GROUP, "{\"failover\":{\"require_semi_sync\":1}}", "failover.require_semi_sync",
        "failover.require_semi_sync: must be true or false");
}

static void test_target(void **state)
{
    ok(TARGET, "{\"id\":\"db1\",\"host\":\"db1.internal\"}",
       "{\"host\":\"db1.internal\",\"id\":\"db1\",\"port\":3306,\"role\":\"READ_WRITE\"}");
    ok(TARGET, "{\"id\":\"r.1_x-2\",\"host\":\"10.0.0.2\",\"port\":65535,\"role\":\"READ_ONLY\"}",
       "{\"host\":\"10.0.0.2\",\"id\":\"r.1_x-2\",\"port\":65535,\"role\":\"READ_ONLY\"}");
    char id[SL_RAFT_NAME_MAX + 1];
    struct sl_validate_error e;
    const char *body = "{\"id\":\"db9\",\"host\":\"h\"}";
    char *t = sl_validate_target(body, strlen(body), id, &e);
    assert_non_null(t);
    assert_string_equal(id, "db9");
    free(t);

    bad(TARGET, "{\"host\":\"h\"}", "id", "id: required");
    bad(TARGET, "{\"id\":\"a/b\",\"host\":\"h\"}", "id",
        "id: must be 1..63 characters from A-Z a-z 0-9 . _ -");
    bad(TARGET,
        "{\"id\":\"0123456789012345678901234567890123456789012345678901234567890123\",\"host\":"
        "\"h\"}",
        "id", "id: must be 1..63 characters from A-Z a-z 0-9 . _ -");
    bad(TARGET, "{\"id\":\"a\"}", "host", "host: required");
    bad(TARGET, "{\"id\":\"a\",\"host\":\"\"}", "host",
        "host: must be 1..255 bytes of printable ASCII without spaces");
    bad(TARGET, "{\"id\":\"a\",\"host\":\"db 1\"}", "host",
        "host: must be 1..255 bytes of printable ASCII without spaces");
    bad(TARGET, "{\"id\":\"a\",\"host\":\"h\",\"port\":0}", "port", "port: must be 1..65535");
    bad(TARGET, "{\"id\":\"a\",\"host\":\"h\",\"port\":70000}", "port", "port: must be 1..65535");
    bad(TARGET, "{\"id\":\"a\",\"host\":\"h\",\"role\":\"WRITER\"}", "role",
        "role: must be READ_WRITE or READ_ONLY");
    bad(TARGET, "{\"id\":\"a\",\"host\":\"h\",\"weight\":1}", "weight", "weight: unknown field");
}

static void test_writer(void **state)
{
    ok(WRITER, "{\"target\":\"db2\"}",
       "{\"decided_by\":\"n2\",\"reason\":\"manual\",\"target\":\"db2\"}");
    ok(WRITER, "{\"target\":\"r.1_x-2\",\"reason\":\"db1 lost its disk; db2 promoted\"}",
       "{\"decided_by\":\"n2\",\"reason\":\"db1 lost its disk; db2 promoted\",\"target\":"
       "\"r.1_x-2\"}");
    /* "revision" is dropped as elsewhere (If-Match is the condition). */
    ok(WRITER, "{\"target\":\"db2\",\"revision\":9}",
       "{\"decided_by\":\"n2\",\"reason\":\"manual\",\"target\":\"db2\"}");
    char id[SL_RAFT_NAME_MAX + 1] = "";
    struct sl_validate_error e;
    const char *body = "{\"target\":\"db9\"}";
    char *w = sl_validate_writer(body, strlen(body), "node-a", id, &e);
    assert_non_null(w);
    assert_string_equal(id, "db9");
    assert_string_equal(w, "{\"decided_by\":\"node-a\",\"reason\":\"manual\",\"target\":\"db9\"}");
    free(w);
    /* The longest reason fits; one byte more does not. */
    char big[300];
    char reason[SL_VALIDATE_REASON_MAX + 2];
    memset(reason, 'r', SL_VALIDATE_REASON_MAX);
    reason[SL_VALIDATE_REASON_MAX] = '\0';
    snprintf(big, sizeof big, "{\"target\":\"db1\",\"reason\":\"%s\"}", reason);
    w = sl_validate_writer(big, strlen(big), "n1", id, &e);
    assert_non_null(w);
    free(w);
    strcat(reason, "r");
    snprintf(big, sizeof big, "{\"target\":\"db1\",\"reason\":\"%s\"}", reason);
    const char *rule = "reason: must be 1..200 bytes without control characters";
    bad(WRITER, big, "reason", rule);

    bad(WRITER, "{}", "target", "target: required");
    bad(WRITER, "{\"reason\":\"x\"}", "target", "target: required");
    bad(WRITER, "{\"target\":1}", "target", "target: must be a string");
    bad(WRITER, "{\"target\":\"a/b\"}", "target",
        "target: must be the id of one of the proxy's targets (must be 1..63 characters from A-Z "
        "a-z 0-9 . _ -)");
    bad(WRITER, "{\"target\":\"\"}", "target",
        "target: must be the id of one of the proxy's targets (must be 1..63 characters from A-Z "
        "a-z 0-9 . _ -)");
    bad(WRITER, "{\"target\":\"db1\",\"reason\":\"\"}", "reason", rule);
    bad(WRITER, "{\"target\":\"db1\",\"reason\":\"a\\nb\"}", "reason", rule);
    bad(WRITER, "{\"target\":\"db1\",\"reason\":7}", "reason", "reason: must be a string");
    bad(WRITER, "{\"target\":\"db1\",\"weight\":1}", "weight", "weight: unknown field");
    /* What GET shows but a PUT must not carry: an epoch would read as an unchecked condition. */
    bad(WRITER, "{\"target\":\"db1\",\"epoch\":12}", "epoch",
        "epoch: read-only (the writer's revision); send If-Match: \"<epoch>\" to make the change "
        "conditional on it");
    bad(WRITER, "{\"target\":\"db1\",\"decided_by\":\"n1\"}", "decided_by",
        "decided_by: read-only (the node that takes the request sets it)");
    bad(WRITER, "[\"db1\"]", "body", "body: must be a JSON object");
}

#define NODE_OK "\"raft_address\":\"127.0.0.1:7001\",\"admin_url\":\"http://127.0.0.1:8001\""

static void test_node(void **state)
{
    const char *full = "{\"id\":2," NODE_OK ",\"data_address\":\"127.0.0.2\",\"az\":\"az-b\"}";
    ok(NODE, full,
       "{\"admin_url\":\"http://127.0.0.1:8001\",\"az\":\"az-b\",\"data_address\":\"127.0.0.2\","
       "\"id\":2,\"raft_address\":\"127.0.0.1:7001\"}");
    uint64_t id = 0;
    char addr[SL_VALIDATE_ADDR_MAX];
    struct sl_validate_error e;
    char *t = sl_validate_node(full, strlen(full), &id, addr, &e);
    assert_non_null(t);
    assert_true(id == 2);
    assert_string_equal(addr, "127.0.0.1:7001");
    free(t);
    ok(NODE,
       "{\"id\":9223372036854775807,\"raft_address\":\"10.0.0.1:65535\",\"admin_url\":"
       "\"https://node-3.example:443\",\"data_address\":\"10.0.0.3\",\"az\":\"c\"}",
       "{\"admin_url\":\"https://node-3.example:443\",\"az\":\"c\",\"data_address\":\"10.0.0.3\","
       "\"id\":9223372036854775807,\"raft_address\":\"10.0.0.1:65535\"}");

#define REST ",\"data_address\":\"127.0.0.2\",\"az\":\"a\"}"
    bad(NODE, "{" NODE_OK REST, "id", "id: required");
    bad(NODE, "{\"id\":0," NODE_OK REST, "id", "id: must be 1..9223372036854775807");
    bad(NODE, "{\"id\":\"2\"," NODE_OK REST, "id", "id: must be an integer");
    static const char *const addrs[] = {"localhost:7001",  "127.0.0.1",       "127.0.0.1:0",
                                        "127.0.0.1:65536", "127.0.0.1:07001", "1.2.3:7",
                                        "::1:7001"};
    for (size_t i = 0; i < sizeof addrs / sizeof addrs[0]; i++) {
        char body[256];
        snprintf(body, sizeof body,
                 "{\"id\":1,\"raft_address\":\"%s\",\"admin_url\":\"http://h:1\"" REST, addrs[i]);
        bad(NODE, body, "raft_address",
            "raft_address: must be an IPv4 address and a port, as in \"10.0.0.1:7001\"");
    }
    static const char *const urls[] = {"ftp://h:1",  "http://h",        "http://:1",
                                       "http://h:0", "http://h:1/path", "http://u@h:1"};
    for (size_t i = 0; i < sizeof urls / sizeof urls[0]; i++) {
        char body[256];
        snprintf(body, sizeof body,
                 "{\"id\":1,\"raft_address\":\"1.2.3.4:5\",\"admin_url\":\"%s\"" REST, urls[i]);
        bad(NODE, body, "admin_url",
            "admin_url: must be \"http://host:port\" or \"https://host:port\"");
    }
    bad(NODE, "{\"id\":1," NODE_OK ",\"data_address\":\"node1\",\"az\":\"a\"}", "data_address",
        "data_address: must be an IPv4 address");
    bad(NODE, "{\"id\":1," NODE_OK ",\"az\":\"a\"}", "data_address", "data_address: required");
    bad(NODE, "{\"id\":1," NODE_OK ",\"data_address\":\"1.2.3.4\"}", "az", "az: required");
    bad(NODE, "{\"id\":1," NODE_OK ",\"data_address\":\"1.2.3.4\",\"az\":\"eu west\"}", "az",
        "az: must be 1..63 characters from A-Z a-z 0-9 . _ -");
    bad(NODE, "{\"id\":1," NODE_OK ",\"data_address\":\"1.2.3.4\",\"az\":\"a\",\"role\":\"x\"}",
        "role", "role: unknown field");
#undef REST
}

static void test_transfer(void **state)
{
    struct sl_validate_error e;
    uint64_t id = 99;
    assert_int_equal(sl_validate_transfer("", 0, &id, &e), 0);
    assert_true(id == 0);
    assert_int_equal(sl_validate_transfer("{}", 2, &id, &e), 0);
    assert_true(id == 0);
    assert_int_equal(sl_validate_transfer("{\"id\":3}", 8, &id, &e), 0);
    assert_true(id == 3);
    assert_int_equal(sl_validate_transfer("{\"id\":0}", 8, &id, &e), -1);
    assert_string_equal(e.detail, "id: must be 1..9223372036854775807");
    assert_int_equal(sl_validate_transfer("{\"to\":3}", 8, &id, &e), -1);
    assert_string_equal(e.detail, "to: unknown field");
    assert_int_equal(sl_validate_transfer("3", 1, &id, &e), -1);
    assert_string_equal(e.field, "body");
}

static void test_names_and_ids(void **state)
{
    struct sl_validate_error e;
    assert_int_equal(sl_validate_name("name", "app-1.x_Y", &e), 0);
    assert_int_equal(sl_validate_name("name", "", &e), -1);
    assert_int_equal(sl_validate_name("id", "caf\xc3\xa9", &e), -1);
    assert_string_equal(e.detail, "id: must be 1..63 characters from A-Z a-z 0-9 . _ -");

    uint64_t id;
    assert_int_equal(sl_validate_node_id("1", &id), 0);
    assert_true(id == 1);
    assert_int_equal(sl_validate_node_id("18446744073709551615", &id), 0);
    assert_true(id == UINT64_MAX);
    static const char *const bad_ids[] = {
        "0", "", "01", "-1", "+1", "1x", "18446744073709551616", "99999999999999999999"};
    for (size_t i = 0; i < sizeof bad_ids / sizeof bad_ids[0]; i++)
        assert_int_equal(sl_validate_node_id(bad_ids[i], &id), -1);

    assert_true(sl_secret_ref_valid("file:/a"));
    assert_true(sl_secret_ref_valid("env:a1"));
    assert_false(sl_secret_ref_valid("file:/"));
    assert_false(sl_secret_ref_valid("env:a b"));
    assert_false(sl_secret_ref_valid("file:/etc/app.json\n")); /* a pasted newline */
}

static void test_if_match(void **state)
{
    uint64_t rev;
    assert_int_equal(sl_validate_if_match("\"42\"", &rev), 0);
    assert_true(rev == 42);
    assert_int_equal(sl_validate_if_match("7", &rev), 0);
    assert_true(rev == 7);
    static const char *const bad_values[] = {"\"0\"", "*",      "W/\"4\"", "\"4",   "\"\"",
                                             "\"a\"", "\"4 \"", "",        "\"-1\""};
    for (size_t i = 0; i < sizeof bad_values / sizeof bad_values[0]; i++)
        assert_int_equal(sl_validate_if_match(bad_values[i], &rev), -1);
}

static void test_query(void **state)
{
    struct sl_read_query q;
    struct sl_validate_error e;
    assert_int_equal(sl_validate_query(NULL, &q, &e), 0);
    assert_false(q.consistent);
    assert_true(q.min_revision == 0);
    assert_int_equal(sl_validate_query("consistent=true&min_revision=12", &q, &e), 0);
    assert_true(q.consistent);
    assert_true(q.min_revision == 12);
    assert_int_equal(sl_validate_query("consistent=false", &q, &e), 0);
    assert_false(q.consistent);

    static const struct {
        const char *q, *detail;
    } cases[] = {
        {"consistent=1", "consistent: must be true or false"},
        {"consistent", "consistent: must be true or false"},
        {"consistent=true&consistent=true", "consistent: given more than once"},
        {"min_revision=", "min_revision: must be a revision (a decimal number)"},
        {"min_revision=-3", "min_revision: must be a revision (a decimal number)"},
        {"min_revision=1&min_revision=2", "min_revision: given more than once"},
        {"limit=5", "limit: unknown query parameter (known: consistent, min_revision)"},
        {"", ": unknown query parameter (known: consistent, min_revision)"},
        {"min_revision=1&", ": unknown query parameter (known: consistent, min_revision)"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        assert_int_equal(sl_validate_query(cases[i].q, &q, &e), -1);
        assert_string_equal(e.detail, cases[i].detail);
        assert_int_equal(e.status, 400);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bodies),   cmocka_unit_test(test_secret),
        cmocka_unit_test(test_proxy),    cmocka_unit_test(test_target_group),
        cmocka_unit_test(test_target),   cmocka_unit_test(test_node),
        cmocka_unit_test(test_transfer), cmocka_unit_test(test_names_and_ids),
        cmocka_unit_test(test_if_match), cmocka_unit_test(test_query),
        cmocka_unit_test(test_writer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
