/* Admin routing: every route of the API with its method and parameters, 405 with the path's
 * methods, 404 for unknown paths, and percent-decoding with its rejections. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "admin/router.h"

struct expect {
    const char *method, *path;
    enum sl_route_id id;
    const char *name, *id_param; /* expected parameters, NULL when absent */
};

static const struct expect every_route[] = {
    {"GET", "/v1/health", SL_ROUTE_HEALTH, NULL, NULL},
    {"GET", "/v1/cluster", SL_ROUTE_CLUSTER_GET, NULL, NULL},
    {"POST", "/v1/cluster/nodes", SL_ROUTE_CLUSTER_NODE_ADD, NULL, NULL},
    {"DELETE", "/v1/cluster/nodes/n2", SL_ROUTE_CLUSTER_NODE_REMOVE, NULL, "n2"},
    {"POST", "/v1/cluster/transfer-leadership", SL_ROUTE_CLUSTER_TRANSFER_LEADERSHIP, NULL, NULL},
    {"GET", "/v1/secrets", SL_ROUTE_SECRETS_LIST, NULL, NULL},
    {"PUT", "/v1/secrets/app-pw", SL_ROUTE_SECRET_PUT, "app-pw", NULL},
    {"GET", "/v1/secrets/app-pw", SL_ROUTE_SECRET_GET, "app-pw", NULL},
    {"DELETE", "/v1/secrets/app-pw", SL_ROUTE_SECRET_DELETE, "app-pw", NULL},
    {"GET", "/v1/proxies", SL_ROUTE_PROXIES_LIST, NULL, NULL},
    {"PUT", "/v1/proxies/p1", SL_ROUTE_PROXY_PUT, "p1", NULL},
    {"GET", "/v1/proxies/p1", SL_ROUTE_PROXY_GET, "p1", NULL},
    {"DELETE", "/v1/proxies/p1", SL_ROUTE_PROXY_DELETE, "p1", NULL},
    {"PUT", "/v1/proxies/p1/target-group", SL_ROUTE_TARGET_GROUP_PUT, "p1", NULL},
    {"GET", "/v1/proxies/p1/target-group", SL_ROUTE_TARGET_GROUP_GET, "p1", NULL},
    {"POST", "/v1/proxies/p1/targets", SL_ROUTE_TARGETS_ADD, "p1", NULL},
    {"GET", "/v1/proxies/p1/targets", SL_ROUTE_TARGETS_LIST, "p1", NULL},
    {"DELETE", "/v1/proxies/p1/targets/db-2", SL_ROUTE_TARGET_REMOVE, "p1", "db-2"},
    {"PUT", "/v1/proxies/p1/writer", SL_ROUTE_WRITER_PUT, "p1", NULL},
    {"GET", "/v1/proxies/p1/writer", SL_ROUTE_WRITER_GET, "p1", NULL},
    {"GET", "/v1/stats", SL_ROUTE_STATS, NULL, NULL},
    {"GET", "/metrics", SL_ROUTE_METRICS, NULL, NULL},
    {"GET", "/v1/budget", SL_ROUTE_BUDGET_GET, NULL, NULL},
    {"POST", "/v1/internal/budget/report", SL_ROUTE_BUDGET_REPORT, NULL, NULL},
    {"POST", "/v1/internal/failover/report", SL_ROUTE_FAILOVER_REPORT, NULL, NULL},
    {"GET", "/v1/events", SL_ROUTE_EVENTS, NULL, NULL},
};

static void test_every_route(void **state)
{
    bool seen[SL_ROUTE_COUNT] = {false};
    for (size_t i = 0; i < sizeof every_route / sizeof every_route[0]; i++) {
        const struct expect *e = &every_route[i];
        struct sl_route_match m;
        assert_int_equal(sl_route(e->method, e->path, &m), SL_ROUTE_OK);
        assert_int_equal(m.id, e->id);
        seen[m.id] = true;
        size_t nparams = (e->name != NULL) + (e->id_param != NULL);
        assert_int_equal(m.nparams, nparams);
        if (e->name)
            assert_string_equal(sl_route_param(&m, "name"), e->name);
        else
            assert_null(sl_route_param(&m, "name"));
        if (e->id_param)
            assert_string_equal(sl_route_param(&m, "id"), e->id_param);
        else
            assert_null(sl_route_param(&m, "id"));
        /* The route's name starts with its method. */
        assert_memory_equal(sl_route_name(m.id), e->method, strlen(e->method));
    }
    for (int i = 0; i < SL_ROUTE_COUNT; i++)
        assert_true(seen[i]);
    assert_string_equal(sl_route_name(SL_ROUTE_TARGET_REMOVE),
                        "DELETE /v1/proxies/{name}/targets/{id}");
}

static void bad_method(const char *method, const char *path, const char *allow)
{
    struct sl_route_match m;
    assert_int_equal(sl_route(method, path, &m), SL_ROUTE_BAD_METHOD);
    assert_string_equal(m.allow, allow);
    assert_int_equal(m.nparams, 0);
}

static void test_wrong_method(void **state)
{
    bad_method("POST", "/v1/health", "GET");
    bad_method("HEAD", "/v1/health", "GET");
    bad_method("PUT", "/v1/cluster", "GET");
    bad_method("GET", "/v1/cluster/nodes", "POST");
    bad_method("GET", "/v1/cluster/nodes/n1", "DELETE");
    bad_method("GET", "/v1/cluster/transfer-leadership", "POST");
    bad_method("POST", "/v1/secrets", "GET");
    bad_method("POST", "/v1/secrets/x", "PUT, GET, DELETE");
    bad_method("DELETE", "/v1/proxies", "GET");
    bad_method("PATCH", "/v1/proxies/x", "PUT, GET, DELETE");
    bad_method("DELETE", "/v1/proxies/x/target-group", "PUT, GET");
    bad_method("PUT", "/v1/proxies/x/targets", "POST, GET");
    bad_method("GET", "/v1/proxies/x/targets/t", "DELETE");
    bad_method("DELETE", "/v1/proxies/x/writer", "PUT, GET");
    bad_method("POST", "/v1/proxies/x/writer", "PUT, GET");
    bad_method("POST", "/v1/stats", "GET");
    bad_method("get", "/metrics", "GET"); /* methods are case-sensitive */
}

static void test_not_found(void **state)
{
    static const char *paths[] = {
        "/",
        "",
        "/v1",
        "/v2/health",
        "/v1/health/",
        "/v1//health",
        "/v1/proxies/",
        "/v1/proxies//targets",
        "/v1/proxies/a/b",
        "/v1/proxies/a/targets/b/c",
        "/v1/proxies/a/writer/",
        "/v1/proxies/a/writer/b",
        "/V1/health",
        "/metrics/x",
        "/v1/cluster/nodes/",
        "/v1/%68ealth", /* literal segments are not decoded */
    };
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        struct sl_route_match m;
        if (sl_route("GET", paths[i], &m) != SL_ROUTE_NOT_FOUND)
            fail_msg("%s should be 404", paths[i]);
    }
}

static void test_decoding(void **state)
{
    struct sl_route_match m;
    assert_int_equal(sl_route("GET", "/v1/proxies/a%20b%2Fc%25", &m), SL_ROUTE_OK);
    assert_string_equal(sl_route_param(&m, "name"), "a b/c%");
    assert_int_equal(sl_route("GET", "/v1/proxies/%C3%A9t%c3%A9+x", &m), SL_ROUTE_OK);
    assert_string_equal(sl_route_param(&m, "name"), "\xc3\xa9t\xc3\xa9+x");
    assert_int_equal(sl_route("DELETE", "/v1/proxies/p/targets/%F0%9F%90%AC", &m), SL_ROUTE_OK);
    assert_string_equal(sl_route_param(&m, "id"), "\xf0\x9f\x90\xac");

    static const char *bad[] = {
        "/v1/proxies/%",
        "/v1/proxies/%4",
        "/v1/proxies/%zz",
        "/v1/proxies/a%00b",
        "/v1/proxies/%C3",
        "/v1/proxies/%C3%28",
        "/v1/proxies/%C0%AF",
        "/v1/proxies/%ED%A0%80",
        "/v1/proxies/%F4%90%80%80",
        "/v1/proxies/%FF",
        "/v1/secrets/x%G0",
        "/v1/proxies/p/targets/%80",
        "/v1/cluster/nodes/%E2%82",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (sl_route("GET", bad[i], &m) != SL_ROUTE_BAD_PATH &&
            sl_route("DELETE", bad[i], &m) != SL_ROUTE_BAD_PATH)
            fail_msg("%s should be refused", bad[i]);

    /* Length: exactly SL_ROUTE_PARAM_MAX decoded bytes fit, one more does not. */
    char path[1024] = "/v1/secrets/";
    size_t base = strlen(path);
    memset(path + base, 'a', SL_ROUTE_PARAM_MAX);
    path[base + SL_ROUTE_PARAM_MAX] = '\0';
    assert_int_equal(sl_route("GET", path, &m), SL_ROUTE_OK);
    assert_int_equal(strlen(sl_route_param(&m, "name")), SL_ROUTE_PARAM_MAX);
    strcat(path, "a");
    assert_int_equal(sl_route("GET", path, &m), SL_ROUTE_BAD_PATH);
    /* ...counted after decoding. */
    strcpy(path + base, "%61");
    memset(path + base + 3, 'a', SL_ROUTE_PARAM_MAX - 1);
    path[base + 3 + SL_ROUTE_PARAM_MAX - 1] = '\0';
    assert_int_equal(sl_route("GET", path, &m), SL_ROUTE_OK);

    char out[8];
    assert_int_equal(sl_route_decode_segment("ab%41", 5, out, sizeof out), 3);
    assert_string_equal(out, "abA");
    assert_int_equal(sl_route_decode_segment("", 0, out, sizeof out), 0);
    assert_int_equal(sl_route_decode_segment("12345678", 8, out, sizeof out), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_route),
        cmocka_unit_test(test_wrong_method),
        cmocka_unit_test(test_not_found),
        cmocka_unit_test(test_decoding),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
