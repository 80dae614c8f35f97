/* Configuration model: defaults, bounds, types, unknown keys, cross-proxy rules, file loading.
 *
 * Most cases start from a minimal valid document, change one value at a dotted path
 * ("proxies[0].listen.port") and check either the parsed field or the exact error message. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "base/config.h"

static const char minimal_json[] =
    "{\"tls\": {\"cert_file\": \"/etc/sluice/cert.pem\", \"key_file\": \"/etc/sluice/key.pem\"},"
    " \"proxies\": [{\"name\": \"main\", \"listen\": {\"port\": 6033},"
    "  \"auth\": [{\"secret\": \"env:APP_SECRET\"}], \"targets\": [{\"host\": \"db.local\"}]}]}";

/* The example of docs/configuration.md, with two proxies. */
static const char full_json[] =
    "{\"node\": {\"id\": \"node-2.a\", \"az\": \"eu-west-1b\", \"drain_timeout\": 45},\n"
    " \"tls\": {\"cert_file\": \"/etc/sluice/cert.pem\", \"key_file\": \"/etc/sluice/key.pem\"},\n"
    " \"proxies\": [\n"
    "  {\"name\": \"main\", \"listen\": {\"host\": \"0.0.0.0\", \"port\": 6033},\n"
    "   \"require_tls\": true, \"idle_client_timeout\": 900, \"debug_logging\": true,\n"
    "   \"max_packet_size\": 16777216,\n"
    "   \"auth\": [{\"auth_scheme\": \"SECRETS\", \"secret\": \"file:/etc/sluice/app.json\",\n"
    "             \"client_password_auth_type\": \"MYSQL_CACHING_SHA2_PASSWORD\",\n"
    "             \"description\": \"app user\"},\n"
    "            {\"secret\": \"env:REPORTING\"}],\n"
    "   \"connection_pool_config\": {\"max_connections_percent\": 80,\n"
    "      \"max_idle_connections_percent\": 20, \"connection_borrow_timeout\": 5,\n"
    "      \"init_query\": \"SET time_zone = '+00:00'\",\n"
    "      \"session_pinning_filters\": [\"EXCLUDE_VARIABLE_SETS\"],\n"
    "      \"transaction_replay\": true, \"transaction_replay_max_size\": 4194304},\n"
    "   \"targets\": [{\"host\": \"db1.internal\", \"port\": 3307}, {\"host\": "
    "\"db2.internal\"}]},\n"
    "  {\"name\": \"batch-1\", \"listen\": {\"port\": 6034}, \"require_tls\": false,\n"
    "   \"auth\": [{\"secret\": \"env:BATCH\"}], \"targets\": [{\"host\": \"db1.internal\"}]}\n"
    " ]}\n";

/* Follows one path segment ("node", "proxies[1]"), creating missing objects on the way so that
 * "node.drain_timeout" works on a document without "node". */
static json_t *descend(json_t *cur, char *seg)
{
    char *bracket = strchr(seg, '[');
    json_t *next;

    if (bracket) {
        *bracket = '\0';
        next = json_array_get(json_object_get(cur, seg), strtoul(bracket + 1, NULL, 10));
    } else {
        next = json_object_get(cur, seg);
        if (!next) {
            next = json_object();
            json_object_set_new(cur, seg, next);
        }
    }
    assert_non_null(next);
    return next;
}

/* Returns (malloc'd) BASE with PATH set to the JSON text VALUE, or removed when VALUE is NULL. */
static char *edit(const char *base, const char *path, const char *value)
{
    json_error_t jerr;
    json_t *doc = json_loads(base, 0, &jerr);
    json_t *cur = doc;
    char buf[256];
    char *seg = buf, *dot;

    assert_non_null(doc);
    snprintf(buf, sizeof buf, "%s", path);
    while ((dot = strchr(seg, '.'))) {
        *dot = '\0';
        cur = descend(cur, seg);
        seg = dot + 1;
    }
    if (value) {
        json_t *v = json_loads(value, JSON_DECODE_ANY, &jerr);
        assert_non_null(v);
        assert_int_equal(json_object_set_new(cur, seg, v), 0);
    } else {
        assert_int_equal(json_object_del(cur, seg), 0);
    }
    char *out = json_dumps(doc, 0);
    assert_non_null(out);
    json_decref(doc);
    return out;
}

/* Preset into out-parameters to check that a failing call resets them to NULL. */
static struct sl_config sentinel;

static struct sl_config *parse_ok(const char *json)
{
    struct sl_config *cfg = NULL;
    char err[256] = "";

    if (sl_config_parse(json, strlen(json), &cfg, err, sizeof err) != 0)
        fail_msg("unexpected error: %s\nin %s", err, json);
    assert_non_null(cfg);
    return cfg;
}

static void parse_err(const char *json, const char *expect)
{
    struct sl_config *cfg = &sentinel;
    char err[256] = "";

    assert_int_equal(sl_config_parse(json, strlen(json), &cfg, err, sizeof err), -1);
    assert_null(cfg);
    if (strcmp(err, expect) != 0)
        fail_msg("error \"%s\", expected \"%s\"\nin %s", err, expect, json);
}

static struct sl_config *set_ok(const char *path, const char *value)
{
    char *json = edit(minimal_json, path, value);
    struct sl_config *cfg = parse_ok(json);
    free(json);
    return cfg;
}

static void set_err(const char *path, const char *value, const char *expect)
{
    char *json = edit(minimal_json, path, value);
    parse_err(json, expect);
    free(json);
}

static void test_health_check(void **state)
{
    (void)state;
    struct sl_config *cfg = parse_ok(minimal_json);
    assert_int_equal(cfg->proxies[0].health_check.interval_ms, 500);
    assert_int_equal(cfg->proxies[0].health_check.timeout_ms, 1000);
    assert_int_equal(cfg->proxies[0].health_check.failures, 2);
    sl_config_free(cfg);
    cfg = set_ok("proxies[0].health_check",
                 "{\"interval_ms\": 100, \"timeout_ms\": 60000, \"failures\": 10}");
    assert_int_equal(cfg->proxies[0].health_check.interval_ms, 100);
    assert_int_equal(cfg->proxies[0].health_check.timeout_ms, 60000);
    assert_int_equal(cfg->proxies[0].health_check.failures, 10);
    sl_config_free(cfg);
    set_err("proxies[0].health_check", "{\"interval_ms\": 99}",
            "proxies[0].health_check.interval_ms: must be 100..60000");
    set_err("proxies[0].health_check", "{\"timeout_ms\": 999}",
            "proxies[0].health_check.timeout_ms: must be 1000..60000");
    set_err("proxies[0].health_check", "{\"failures\": 0}",
            "proxies[0].health_check.failures: must be 1..10");
    set_err("proxies[0].health_check", "{\"every\": 1}",
            "proxies[0].health_check.every: unknown key");
}

static void test_routing(void **state)
{
    (void)state;
    struct sl_config *cfg = parse_ok(minimal_json);
    assert_false(cfg->proxies[0].read_only_routing); /* READ_WRITE by default */
    sl_config_free(cfg);
    cfg = set_ok("proxies[0].routing", "\"READ_ONLY\"");
    assert_true(cfg->proxies[0].read_only_routing);
    sl_config_free(cfg);
    cfg = set_ok("proxies[0].routing", "\"READ_WRITE\"");
    assert_false(cfg->proxies[0].read_only_routing);
    sl_config_free(cfg);
    set_err("proxies[0].routing", "\"READERS\"",
            "proxies[0].routing: must be \"READ_WRITE\" or \"READ_ONLY\"");
    set_err("proxies[0].routing", "1", "proxies[0].routing: must be a string");
}

static void test_admin_block(void **state)
{
    struct sl_config *cfg = parse_ok(minimal_json);
    assert_null(cfg->admin); /* no block, no admin listener */
    sl_config_free(cfg);

    cfg = set_ok("admin", "{\"port\": 8080, \"token\": \"file:/etc/sluice/admin.token\"}");
    assert_non_null(cfg->admin);
    assert_string_equal(cfg->admin->host, "127.0.0.1");
    assert_int_equal(cfg->admin->port, 8080);
    assert_string_equal(cfg->admin->token, "file:/etc/sluice/admin.token");
    assert_false(cfg->admin->tls);
    sl_config_free(cfg);

    cfg = set_ok("admin", "{\"host\": \"0.0.0.0\", \"port\": 8443, \"token\": \"env:ADMIN\", "
                          "\"tls\": true}");
    assert_string_equal(cfg->admin->host, "0.0.0.0");
    assert_true(cfg->admin->tls);
    sl_config_free(cfg);

    set_err("admin", "{\"port\": 8080}", "admin.token: required");
    set_err("admin", "{\"port\": 8080, \"token\": \"s3cret-token-in-clear\"}",
            "admin.token: must be a secret reference: \"file:/path\" or \"env:NAME\"");
    set_err("admin", "{\"token\": \"env:A\"}", "admin.port: required");
    set_err("admin", "{\"port\": 8080, \"token\": \"env:A\", \"tsl\": true}",
            "admin.tsl: unknown key");
}

/* A cluster node's file: "cluster" instead of "proxies", and "admin" required. */
static const char cluster_json[] =
    "{\"admin\": {\"port\": 8401, \"token\": \"env:TOKEN\"},"
    " \"cluster\": {\"id\": 2, \"raft_address\": \"127.0.0.1:7002\", \"data_dir\": \"/var/lib/s\","
    "  \"data_address\": \"127.0.0.2\", \"initial_members\": ["
    "   {\"id\": 1, \"raft_address\": \"127.0.0.1:7001\", \"admin_url\": \"http://127.0.0.1:8400\","
    "    \"data_address\": \"127.0.0.1\", \"az\": \"az-a\"},"
    "   {\"id\": 2, \"raft_address\": \"127.0.0.1:7002\", \"admin_url\": \"http://127.0.0.1:8401\","
    "    \"data_address\": \"127.0.0.2\", \"az\": \"az-b\"}]}}";

static void cluster_err(const char *path, const char *value, const char *expect)
{
    char *json = edit(cluster_json, path, value);
    parse_err(json, expect);
    free(json);
}

static void test_cluster_block(void **state)
{
    struct sl_config *cfg = parse_ok(cluster_json);
    assert_int_equal(cfg->n_proxies, 0);
    assert_null(cfg->proxies);
    assert_non_null(cfg->cluster);
    assert_int_equal(cfg->cluster->id, 2);
    assert_string_equal(cfg->cluster->raft_address, "127.0.0.1:7002");
    assert_string_equal(cfg->cluster->data_dir, "/var/lib/s");
    assert_string_equal(cfg->cluster->data_address, "127.0.0.2");
    assert_int_equal(cfg->cluster->n_initial_members, 2);
    assert_int_equal(cfg->cluster->initial_members[0].id, 1);
    assert_string_equal(cfg->cluster->initial_members[0].admin_url, "http://127.0.0.1:8400");
    assert_string_equal(cfg->cluster->initial_members[1].data_address, "127.0.0.2");
    assert_string_equal(cfg->cluster->initial_members[1].az, "az-b");
    assert_int_equal(cfg->cluster->snapshot_threshold, 1024); /* defaults */
    assert_int_equal(cfg->cluster->snapshot_trailing, 2048);
    sl_config_free(cfg);

    char *json = edit(cluster_json, "cluster.snapshot_threshold", "64");
    cfg = parse_ok(json);
    assert_int_equal(cfg->cluster->snapshot_threshold, 64);
    sl_config_free(cfg);
    free(json);
    cluster_err("cluster.snapshot_threshold", "15",
                "cluster.snapshot_threshold: must be 16..1000000");
    cluster_err("cluster.snapshot_trailing", "0", "cluster.snapshot_trailing: must be 1..1000000");

    json = edit(cluster_json, "cluster.initial_members", NULL);
    cfg = parse_ok(json); /* a node that joins later needs no initial members */
    assert_int_equal(cfg->cluster->n_initial_members, 0);
    sl_config_free(cfg);
    free(json);

    cfg = parse_ok(minimal_json);
    assert_null(cfg->cluster); /* no block, single node */
    sl_config_free(cfg);

    cluster_err("proxies", "[]",
                "proxies: not allowed with \"cluster\" (the cluster's store holds the proxies)");
    cluster_err("admin", NULL, "admin: required with \"cluster\"");
    char *with_tls =
        edit(cluster_json, "tls", "{\"cert_file\": \"/c.pem\", \"key_file\": \"/k.pem\"}");
    char *admin_tls = edit(with_tls, "admin.tls", "true");
    parse_err(admin_tls, "admin.ca_file: required with \"cluster\" and admin.tls (to check the "
                         "other nodes' certificates when writes are forwarded)");
    char *with_ca = edit(admin_tls, "admin.ca_file", "\"/etc/sluice/ca.pem\"");
    cfg = parse_ok(with_ca);
    assert_true(cfg->admin->tls);
    assert_string_equal(cfg->admin->ca_file, "/etc/sluice/ca.pem");
    sl_config_free(cfg);
    free(with_ca);
    free(admin_tls);
    free(with_tls);
    cluster_err("cluster.id", "0", "cluster.id: must be 1..9223372036854775807");
    cluster_err("cluster.raft_address", "\"node1:7001\"",
                "cluster.raft_address: must be an IPv4 \"a.b.c.d:port\"");
    cluster_err("cluster.raft_address", "\"127.0.0.1\"",
                "cluster.raft_address: must be an IPv4 \"a.b.c.d:port\"");
    cluster_err("cluster.raft_address", "\"127.0.0.1:65536\"",
                "cluster.raft_address: must be an IPv4 \"a.b.c.d:port\"");
    cluster_err("cluster.data_dir", "\"rel/dir\"", "cluster.data_dir: must be an absolute path");
    cluster_err("cluster.data_address", "\"::1\"", "cluster.data_address: must be an IPv4 address");
    cluster_err("cluster.raft", "1", "cluster.raft: unknown key");
    cluster_err("cluster.initial_members", "{}", "cluster.initial_members: must be an array");
    cluster_err("cluster.initial_members[1].admin_url", "\"ftp://x\"",
                "cluster.initial_members[1].admin_url: must be \"http://host:port\" or "
                "\"https://host:port\"");
    cluster_err("cluster.initial_members[1].admin_url", "\"http://h:1/path\"",
                "cluster.initial_members[1].admin_url: must be \"http://host:port\" or "
                "\"https://host:port\"");
    cluster_err("cluster.initial_members[1].id", "1",
                "cluster.initial_members[1].id: 1 is already used by initial_members[0]");
    cluster_err("cluster.initial_members[1].raft_address", "\"127.0.0.1:7001\"",
                "cluster.initial_members[1].raft_address: already used by initial_members[0]");
    cluster_err("cluster.raft_address", "\"127.0.0.1:7009\"",
                "cluster.initial_members[1].raft_address: must equal cluster.raft_address for "
                "this node");
    cluster_err("cluster.id", "3", "cluster.initial_members: must include this node (id 3)");
}

/* A document generated from the store may have no proxies; a file may not. */
static void test_store_origin(void **state)
{
    static const char doc[] = "{\"node\": {\"id\": \"n1\"}, \"proxies\": []}";
    struct sl_config *cfg = &sentinel;
    char err[256] = "";

    assert_int_equal(sl_config_parse_from(SL_CONFIG_STORE, doc, strlen(doc), &cfg, err, sizeof err),
                     0);
    assert_int_equal(cfg->n_proxies, 0);
    sl_config_free(cfg);
    parse_err(doc, "proxies: must have at least one entry");
    assert_int_equal(sl_config_parse_from(SL_CONFIG_STORE, cluster_json, strlen(cluster_json), &cfg,
                                          err, sizeof err),
                     -1);
    assert_string_equal(err, "cluster: unknown key");
    static const char none[] = "{\"node\": {\"id\": \"n1\"}}";
    assert_int_equal(
        sl_config_parse_from(SL_CONFIG_STORE, none, strlen(none), &cfg, err, sizeof err), -1);
    assert_string_equal(err, "proxies: required");
}

static void test_defaults(void **state)
{
    struct sl_config *cfg = parse_ok(minimal_json);

    assert_string_equal(cfg->node_id, "node1");
    assert_string_equal(cfg->az, "local");
    assert_int_equal(cfg->drain_timeout, 30);
    assert_string_equal(cfg->tls_cert_file, "/etc/sluice/cert.pem");
    assert_string_equal(cfg->tls_key_file, "/etc/sluice/key.pem");
    assert_int_equal(cfg->n_proxies, 1);
    const struct sl_proxy_config *p = &cfg->proxies[0];
    assert_string_equal(p->name, "main");
    assert_string_equal(p->listen_host, "127.0.0.1");
    assert_int_equal(p->listen_port, 6033);
    assert_true(p->require_tls);
    assert_int_equal(p->idle_client_timeout, 1800);
    assert_false(p->debug_logging);
    assert_int_equal(p->max_packet_size, 64 * 1024 * 1024);
    assert_int_equal(p->n_auth, 1);
    assert_string_equal(p->auth[0].secret, "env:APP_SECRET");
    assert_int_equal(p->auth[0].client_auth, SL_AUTH_MYSQL_NATIVE_PASSWORD);
    assert_null(p->auth[0].description);
    assert_int_equal(p->pool.max_connections_percent, 100);
    assert_int_equal(p->pool.max_idle_connections_percent, 50);
    assert_int_equal(p->pool.connection_borrow_timeout, 120);
    assert_null(p->pool.init_query);
    assert_false(p->pool.exclude_variable_sets);
    assert_false(p->pool.transaction_replay);
    assert_int_equal(p->pool.transaction_replay_max_size, 1048576);
    assert_int_equal(p->n_targets, 1);
    assert_string_equal(p->targets[0].host, "db.local");
    assert_int_equal(p->targets[0].port, 3306);
    sl_config_free(cfg);
}

static void test_full_example(void **state)
{
    struct sl_config *cfg = parse_ok(full_json);

    assert_string_equal(cfg->node_id, "node-2.a");
    assert_string_equal(cfg->az, "eu-west-1b");
    assert_int_equal(cfg->drain_timeout, 45);
    assert_int_equal(cfg->n_proxies, 2);
    const struct sl_proxy_config *p = &cfg->proxies[0];
    assert_string_equal(p->listen_host, "0.0.0.0");
    assert_int_equal(p->idle_client_timeout, 900);
    assert_true(p->debug_logging);
    assert_int_equal(p->max_packet_size, 16777216);
    assert_int_equal(p->n_auth, 2);
    assert_string_equal(p->auth[0].secret, "file:/etc/sluice/app.json");
    assert_int_equal(p->auth[0].client_auth, SL_AUTH_MYSQL_CACHING_SHA2);
    assert_string_equal(p->auth[0].description, "app user");
    assert_string_equal(p->auth[1].secret, "env:REPORTING");
    assert_int_equal(p->pool.max_connections_percent, 80);
    assert_int_equal(p->pool.max_idle_connections_percent, 20);
    assert_int_equal(p->pool.connection_borrow_timeout, 5);
    assert_string_equal(p->pool.init_query, "SET time_zone = '+00:00'");
    assert_true(p->pool.exclude_variable_sets);
    assert_true(p->pool.transaction_replay);
    assert_int_equal(p->pool.transaction_replay_max_size, 4194304);
    assert_int_equal(p->n_targets, 2);
    assert_int_equal(p->targets[0].port, 3307);
    assert_string_equal(p->targets[1].host, "db2.internal");
    assert_int_equal(p->targets[1].port, 3306);
    p = &cfg->proxies[1];
    assert_string_equal(p->name, "batch-1");
    assert_false(p->require_tls);
    assert_int_equal(p->listen_port, 6034);
    /* The second proxy's pool takes the defaults, independent of the first one's. */
    assert_int_equal(p->pool.max_connections_percent, 100);
    assert_int_equal(p->pool.max_idle_connections_percent, 50);
    assert_false(p->pool.transaction_replay);
    assert_int_equal(p->pool.transaction_replay_max_size, 1048576);
    sl_config_free(cfg);
}

static long long get_drain(const struct sl_config *c)
{
    return c->drain_timeout;
}

static long long get_listen_port(const struct sl_config *c)
{
    return c->proxies[0].listen_port;
}

static long long get_idle_client(const struct sl_config *c)
{
    return c->proxies[0].idle_client_timeout;
}

static long long get_max_packet(const struct sl_config *c)
{
    return c->proxies[0].max_packet_size;
}

static long long get_max_conn(const struct sl_config *c)
{
    return c->proxies[0].pool.max_connections_percent;
}

static long long get_max_idle(const struct sl_config *c)
{
    return c->proxies[0].pool.max_idle_connections_percent;
}

static long long get_borrow(const struct sl_config *c)
{
    return c->proxies[0].pool.connection_borrow_timeout;
}

static long long get_replay_max(const struct sl_config *c)
{
    return c->proxies[0].pool.transaction_replay_max_size;
}

static long long get_target_port(const struct sl_config *c)
{
    return c->proxies[0].targets[0].port;
}

static void test_integer_bounds(void **state)
{
    static const struct {
        const char *path;
        long long min, max;
        long long (*get)(const struct sl_config *);
    } cases[] = {
        {"node.drain_timeout", 0, 3600, get_drain},
        {"proxies[0].listen.port", 1, 65535, get_listen_port},
        {"proxies[0].idle_client_timeout", 1, 28800, get_idle_client},
        {"proxies[0].max_packet_size", 1024, 1073741824, get_max_packet},
        {"proxies[0].connection_pool_config.max_connections_percent", 1, 100, get_max_conn},
        {"proxies[0].connection_pool_config.max_idle_connections_percent", 0, 100, get_max_idle},
        {"proxies[0].connection_pool_config.connection_borrow_timeout", 0, 3600, get_borrow},
        {"proxies[0].connection_pool_config.transaction_replay_max_size", 1024, 67108864,
         get_replay_max},
        {"proxies[0].targets[0].port", 1, 65535, get_target_port},
    };

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char value[32], msg[160];
        long long ok[] = {cases[i].min, cases[i].max};
        long long bad[] = {cases[i].min - 1, cases[i].max + 1};

        for (size_t k = 0; k < 2; k++) {
            snprintf(value, sizeof value, "%lld", ok[k]);
            struct sl_config *cfg = set_ok(cases[i].path, value);
            assert_int_equal(cases[i].get(cfg), ok[k]);
            sl_config_free(cfg);
        }
        snprintf(msg, sizeof msg, "%s: must be %lld..%lld", cases[i].path, cases[i].min,
                 cases[i].max);
        for (size_t k = 0; k < 2; k++) {
            snprintf(value, sizeof value, "%lld", bad[k]);
            set_err(cases[i].path, value, msg);
        }
    }
}

static void test_wrong_types(void **state)
{
    static const char *const cases[][3] = {
        {"node", "[]", "node: must be an object"},
        {"node.id", "1", "node.id: must be a string"},
        {"node.drain_timeout", "30.0", "node.drain_timeout: must be an integer"},
        {"node.drain_timeout", "\"30\"", "node.drain_timeout: must be an integer"},
        {"node.drain_timeout", "null", "node.drain_timeout: must be an integer"},
        {"tls", "\"/etc/cert.pem\"", "tls: must be an object"},
        {"tls.cert_file", "1", "tls.cert_file: must be a string"},
        {"proxies", "{}", "proxies: must be an array"},
        {"proxies", "[1]", "proxies[0]: must be an object"},
        {"proxies[0].name", "1", "proxies[0].name: must be a string"},
        {"proxies[0].listen", "6033", "proxies[0].listen: must be an object"},
        {"proxies[0].listen.host", "[]", "proxies[0].listen.host: must be a string"},
        {"proxies[0].listen.port", "6033.0", "proxies[0].listen.port: must be an integer"},
        {"proxies[0].listen.port", "true", "proxies[0].listen.port: must be an integer"},
        {"proxies[0].require_tls", "1", "proxies[0].require_tls: must be true or false"},
        {"proxies[0].require_tls", "\"true\"", "proxies[0].require_tls: must be true or false"},
        {"proxies[0].debug_logging", "null", "proxies[0].debug_logging: must be true or false"},
        {"proxies[0].idle_client_timeout", "1e3",
         "proxies[0].idle_client_timeout: must be an integer"},
        {"proxies[0].max_packet_size", "\"64M\"", "proxies[0].max_packet_size: must be an integer"},
        {"proxies[0].auth", "{}", "proxies[0].auth: must be an array"},
        {"proxies[0].auth", "[\"env:APP\"]", "proxies[0].auth[0]: must be an object"},
        {"proxies[0].auth[0].secret", "1", "proxies[0].auth[0].secret: must be a string"},
        {"proxies[0].auth[0].auth_scheme", "1", "proxies[0].auth[0].auth_scheme: must be a string"},
        {"proxies[0].auth[0].client_password_auth_type", "0",
         "proxies[0].auth[0].client_password_auth_type: must be a string"},
        {"proxies[0].auth[0].description", "false",
         "proxies[0].auth[0].description: must be a string"},
        {"proxies[0].connection_pool_config", "[]",
         "proxies[0].connection_pool_config: must be an object"},
        {"proxies[0].connection_pool_config.max_connections_percent", "50.5",
         "proxies[0].connection_pool_config.max_connections_percent: must be an integer"},
        {"proxies[0].connection_pool_config.init_query", "1",
         "proxies[0].connection_pool_config.init_query: must be a string"},
        {"proxies[0].connection_pool_config.transaction_replay", "1",
         "proxies[0].connection_pool_config.transaction_replay: must be true or false"},
        {"proxies[0].connection_pool_config.transaction_replay", "\"false\"",
         "proxies[0].connection_pool_config.transaction_replay: must be true or false"},
        {"proxies[0].connection_pool_config.transaction_replay", "null",
         "proxies[0].connection_pool_config.transaction_replay: must be true or false"},
        {"proxies[0].connection_pool_config.transaction_replay_max_size", "1048576.0",
         "proxies[0].connection_pool_config.transaction_replay_max_size: must be an integer"},
        {"proxies[0].connection_pool_config.transaction_replay_max_size", "\"1M\"",
         "proxies[0].connection_pool_config.transaction_replay_max_size: must be an integer"},
        {"proxies[0].connection_pool_config.session_pinning_filters", "\"EXCLUDE_VARIABLE_SETS\"",
         "proxies[0].connection_pool_config.session_pinning_filters: must be an array"},
        {"proxies[0].connection_pool_config.session_pinning_filters", "[1]",
         "proxies[0].connection_pool_config.session_pinning_filters[0]: "
         "must be \"EXCLUDE_VARIABLE_SETS\""},
        {"proxies[0].targets", "{}", "proxies[0].targets: must be an array"},
        {"proxies[0].targets", "[null]", "proxies[0].targets[0]: must be an object"},
        {"proxies[0].targets[0].host", "1", "proxies[0].targets[0].host: must be a string"},
        {"proxies[0].targets[0].port", "\"3306\"",
         "proxies[0].targets[0].port: must be an integer"},
    };

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        set_err(cases[i][0], cases[i][1], cases[i][2]);
}

static void test_unknown_keys(void **state)
{
    static const char *const paths[] = {
        "extra",
        "node.name",
        "tls.ca_file",
        "proxies[0].engine_family",
        "proxies[0].listen.address",
        "proxies[0].auth[0].username",
        "proxies[0].auth[0].iam_auth",
        "proxies[0].connection_pool_config.max_connection_percent",
        "proxies[0].connection_pool_config.transaction_replay_max_bytes",
        "proxies[0].targets[0].role",
    };

    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        char msg[160];
        snprintf(msg, sizeof msg, "%s: unknown key", paths[i]);
        set_err(paths[i], "1", msg);
    }
}

/* Keys are echoed shortened and with unprintable bytes replaced, so the message stays one line. */
static void test_unknown_key_label(void **state)
{
    char json[512], expect[160];
    char longkey[101];

    memset(longkey, 'k', 100);
    longkey[100] = '\0';
    snprintf(json, sizeof json, "{\"%s\": 1, \"proxies\": []}", longkey);
    snprintf(expect, sizeof expect, "%.64s...: unknown key", longkey);
    parse_err(json, expect);
    parse_err("{\"a\\u0001\\nb\": 1}", "a??b: unknown key");
}

static void test_missing_required(void **state)
{
    static const char *const cases[][2] = {
        {"proxies", "proxies: required"},
        {"proxies[0].name", "proxies[0].name: required"},
        {"proxies[0].listen", "proxies[0].listen: required"},
        {"proxies[0].listen.port", "proxies[0].listen.port: required"},
        {"proxies[0].auth", "proxies[0].auth: required"},
        {"proxies[0].auth[0].secret", "proxies[0].auth[0].secret: required"},
        {"proxies[0].targets", "proxies[0].targets: required"},
        {"proxies[0].targets[0].host", "proxies[0].targets[0].host: required"},
        {"tls.cert_file", "tls.cert_file: required"},
        {"tls.key_file", "tls.key_file: required"},
        {"tls", "tls: required because proxies[0].require_tls is true"},
    };

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        set_err(cases[i][0], NULL, cases[i][1]);
    set_err("proxies", "[]", "proxies: must have at least one entry");
    set_err("proxies[0].auth", "[]", "proxies[0].auth: must have at least one entry");
    set_err("proxies[0].targets", "[]", "proxies[0].targets: must have at least one entry");
}

static void test_tls_rules(void **state)
{
    struct sl_config *cfg;
    char *json;

    set_err("tls.cert_file", "\"\"", "tls.cert_file: must not be empty");
    set_err("tls.key_file", "\"\"", "tls.key_file: must not be empty");

    /* No proxy requires TLS: the tls section may be left out. */
    json = edit(minimal_json, "proxies[0].require_tls", "false");
    char *no_tls = edit(json, "tls", NULL);
    cfg = parse_ok(no_tls);
    assert_false(cfg->proxies[0].require_tls);
    assert_null(cfg->tls_cert_file);
    assert_null(cfg->tls_key_file);
    sl_config_free(cfg);
    free(no_tls);

    /* ... and may still be given, so TLS is offered without being required. */
    cfg = parse_ok(json);
    assert_string_equal(cfg->tls_cert_file, "/etc/sluice/cert.pem");
    sl_config_free(cfg);
    free(json);

    /* The message names the first proxy that needs TLS. */
    json = edit(full_json, "tls", NULL);
    char *swapped = edit(json, "proxies[0].require_tls", "false");
    char *second = edit(swapped, "proxies[1].require_tls", "true");
    parse_err(second, "tls: required because proxies[1].require_tls is true");
    free(second);
    free(swapped);
    free(json);
}

static void test_auth_values(void **state)
{
    struct sl_config *cfg;

    cfg = set_ok("proxies[0].auth[0].auth_scheme", "\"SECRETS\"");
    sl_config_free(cfg);
    set_err("proxies[0].auth[0].auth_scheme", "\"IAM_AUTH\"",
            "proxies[0].auth[0].auth_scheme: must be \"SECRETS\"");
    set_err("proxies[0].auth[0].auth_scheme", "\"secrets\"",
            "proxies[0].auth[0].auth_scheme: must be \"SECRETS\"");

    cfg = set_ok("proxies[0].auth[0].client_password_auth_type", "\"MYSQL_NATIVE_PASSWORD\"");
    assert_int_equal(cfg->proxies[0].auth[0].client_auth, SL_AUTH_MYSQL_NATIVE_PASSWORD);
    sl_config_free(cfg);
    cfg = set_ok("proxies[0].auth[0].client_password_auth_type", "\"MYSQL_CACHING_SHA2_PASSWORD\"");
    assert_int_equal(cfg->proxies[0].auth[0].client_auth, SL_AUTH_MYSQL_CACHING_SHA2);
    sl_config_free(cfg);
    set_err("proxies[0].auth[0].client_password_auth_type", "\"POSTGRES_SCRAM_SHA_256\"",
            "proxies[0].auth[0].client_password_auth_type: "
            "must be \"MYSQL_NATIVE_PASSWORD\" or \"MYSQL_CACHING_SHA2_PASSWORD\"");

    cfg = set_ok("proxies[0].auth[0].description", "\"\"");
    assert_string_equal(cfg->proxies[0].auth[0].description, "");
    sl_config_free(cfg);

    assert_string_equal(sl_client_auth_type_name(SL_AUTH_MYSQL_NATIVE_PASSWORD),
                        "MYSQL_NATIVE_PASSWORD");
    assert_string_equal(sl_client_auth_type_name(SL_AUTH_MYSQL_CACHING_SHA2),
                        "MYSQL_CACHING_SHA2_PASSWORD");
}

static void test_secret_refs(void **state)
{
    static const char *const good[] = {"\"file:/etc/sluice/app.json\"", "\"file:/a\"", "\"env:A\"",
                                       "\"env:_x9\"", "\"env:APP_SECRET_2\""};
    static const char *const bad[] = {
        "\"file:app.json\"", "\"file:/\"",  "\"file:\"",   "\"env:\"", "\"env:1A\"",
        "\"env:A-B\"",       "\"env:A B\"", "\"vault:x\"", "\"\"",     "\"/etc/sluice/app.json\"",
        "\"FILE:/x\""};

    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        struct sl_config *cfg = set_ok("proxies[0].auth[0].secret", good[i]);
        /* Stored verbatim (the JSON text minus its quotes). */
        assert_int_equal(strlen(cfg->proxies[0].auth[0].secret), strlen(good[i]) - 2);
        assert_memory_equal(cfg->proxies[0].auth[0].secret, good[i] + 1, strlen(good[i]) - 2);
        sl_config_free(cfg);
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        set_err("proxies[0].auth[0].secret", bad[i],
                "proxies[0].auth[0].secret: must be \"file:/absolute/path\" or \"env:NAME\"");
}

static void test_names(void **state)
{
    static const char name63[] =
        "\"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-\"";
    static const char name64[] =
        "\"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-x\"";
    /* The same alphabet as the admin API's resource names, so a proxy created there is served. */
    static const char *const bad_proxy[] = {"\"\"", name64, "\"a b\"", "\"a/b\"", "\"caf\\u00e9\""};
    static const char *const bad_node[] = {"\"\"", "\"a b\"", "\"a/b\"", "\"a=b\""};
    struct sl_config *cfg;

    cfg = set_ok("proxies[0].name", name63);
    assert_int_equal(strlen(cfg->proxies[0].name), 63);
    sl_config_free(cfg);
    cfg = set_ok("proxies[0].name", "\"a\"");
    assert_string_equal(cfg->proxies[0].name, "a");
    sl_config_free(cfg);
    for (size_t i = 0; i < sizeof bad_proxy / sizeof bad_proxy[0]; i++)
        set_err("proxies[0].name", bad_proxy[i],
                "proxies[0].name: must be 1..63 characters from [A-Za-z0-9._-]");
    cfg = set_ok("proxies[0].name", "\"app_main.v2\"");
    assert_string_equal(cfg->proxies[0].name, "app_main.v2");
    sl_config_free(cfg);

    cfg = set_ok("node.id", "\"n_1.eu-west\"");
    assert_string_equal(cfg->node_id, "n_1.eu-west");
    sl_config_free(cfg);
    cfg = set_ok("node.az", name63);
    assert_int_equal(strlen(cfg->az), 63);
    sl_config_free(cfg);
    for (size_t i = 0; i < sizeof bad_node / sizeof bad_node[0]; i++) {
        set_err("node.id", bad_node[i], "node.id: must be 1..63 characters from [A-Za-z0-9._-]");
        set_err("node.az", bad_node[i], "node.az: must be 1..63 characters from [A-Za-z0-9._-]");
    }
    set_err("node.id", name64, "node.id: must be 1..63 characters from [A-Za-z0-9._-]");
}

static void test_hosts(void **state)
{
    static const char *const paths[] = {"proxies[0].listen.host", "proxies[0].targets[0].host"};
    char host[300];

    for (size_t i = 0; i < 2; i++) {
        char msg[128];
        snprintf(msg, sizeof msg, "%s: must be 1..255 bytes", paths[i]);
        set_err(paths[i], "\"\"", msg);

        host[0] = '"';
        memset(host + 1, 'h', 255);
        snprintf(host + 256, sizeof host - 256, "\"");
        struct sl_config *cfg = set_ok(paths[i], host);
        sl_config_free(cfg);
        snprintf(host + 256, sizeof host - 256, "h\"");
        set_err(paths[i], host, msg);
    }
}

static void test_pool_values(void **state)
{
    struct sl_config *cfg;
    char *json;

    cfg = set_ok("proxies[0].connection_pool_config.init_query", "\"\"");
    assert_null(cfg->proxies[0].pool.init_query);
    sl_config_free(cfg);
    cfg = set_ok("proxies[0].connection_pool_config.init_query", "\"SET autocommit=1\"");
    assert_string_equal(cfg->proxies[0].pool.init_query, "SET autocommit=1");
    sl_config_free(cfg);

    cfg = set_ok("proxies[0].connection_pool_config.session_pinning_filters", "[]");
    assert_false(cfg->proxies[0].pool.exclude_variable_sets);
    sl_config_free(cfg);
    cfg = set_ok("proxies[0].connection_pool_config.session_pinning_filters",
                 "[\"EXCLUDE_VARIABLE_SETS\"]");
    assert_true(cfg->proxies[0].pool.exclude_variable_sets);
    sl_config_free(cfg);
    set_err("proxies[0].connection_pool_config.session_pinning_filters",
            "[\"EXCLUDE_VARIABLE_SETS\", \"EXCLUDE_TEMP_TABLES\"]",
            "proxies[0].connection_pool_config.session_pinning_filters[1]: "
            "must be \"EXCLUDE_VARIABLE_SETS\"");

    /* Transaction replay: defaults in an empty pool object, either value of the switch, and a
     * size given while replay stays off (accepted; it applies once replay is turned on). */
    cfg = set_ok("proxies[0].connection_pool_config", "{}");
    assert_false(cfg->proxies[0].pool.transaction_replay);
    assert_int_equal(cfg->proxies[0].pool.transaction_replay_max_size, 1048576);
    sl_config_free(cfg);
    cfg = set_ok("proxies[0].connection_pool_config.transaction_replay", "true");
    assert_true(cfg->proxies[0].pool.transaction_replay);
    assert_int_equal(cfg->proxies[0].pool.transaction_replay_max_size, 1048576);
    sl_config_free(cfg);
    cfg = set_ok("proxies[0].connection_pool_config.transaction_replay", "false");
    assert_false(cfg->proxies[0].pool.transaction_replay);
    sl_config_free(cfg);
    cfg = set_ok("proxies[0].connection_pool_config.transaction_replay_max_size", "65536");
    assert_false(cfg->proxies[0].pool.transaction_replay);
    assert_int_equal(cfg->proxies[0].pool.transaction_replay_max_size, 65536);
    sl_config_free(cfg);

    /* Without an explicit value the idle cap is half the connection cap (RDS Proxy's rule). */
    cfg = set_ok("proxies[0].connection_pool_config.max_connections_percent", "30");
    assert_int_equal(cfg->proxies[0].pool.max_idle_connections_percent, 15);
    sl_config_free(cfg);
    cfg = set_ok("proxies[0].connection_pool_config.max_connections_percent", "1");
    assert_int_equal(cfg->proxies[0].pool.max_idle_connections_percent, 0);
    sl_config_free(cfg);

    /* Idle equal to max is fine; one more is not, and the message names the limit in force. */
    json = edit(full_json, "proxies[1].connection_pool_config.max_connections_percent", "80");
    char *eq = edit(json, "proxies[1].connection_pool_config.max_idle_connections_percent", "80");
    cfg = parse_ok(eq);
    assert_int_equal(cfg->proxies[1].pool.max_idle_connections_percent, 80);
    sl_config_free(cfg);
    char *over = edit(json, "proxies[1].connection_pool_config.max_idle_connections_percent", "81");
    parse_err(over, "proxies[1].connection_pool_config.max_idle_connections_percent: "
                    "must be 0..max_connections_percent (80)");
    free(over);
    free(eq);
    free(json);
}

static void test_duplicates(void **state)
{
    char *json;

    json = edit(full_json, "proxies[1].name", "\"main\"");
    parse_err(json, "proxies[1].name: \"main\" is already used by proxies[0]");
    free(json);

    json = edit(full_json, "proxies[1].listen", "{\"host\": \"10.0.0.1\", \"port\": 6033}");
    parse_err(json, "proxies[1].listen.port: 6033 is already used by proxies[0]");
    free(json);

    /* Same port, distinct names and hosts: still one port per proxy. Distinct ports are fine. */
    json = edit(full_json, "proxies[1].listen", "{\"port\": 6035}");
    struct sl_config *cfg = parse_ok(json);
    assert_int_equal(cfg->proxies[1].listen_port, 6035);
    sl_config_free(cfg);
    free(json);
}

static void test_invalid_json(void **state)
{
    static const char *const docs[] = {
        "",
        "{",
        "{\"proxies\": [}",
        "{\"proxies\": []} trailing",
        "{\"proxies\": [], \"proxies\": []}",
        "\"just a string\"",
        "{'proxies': []}",
    };
    struct sl_config *cfg;
    char err[256];

    for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++) {
        cfg = &sentinel;
        assert_int_equal(sl_config_parse(docs[i], strlen(docs[i]), &cfg, err, sizeof err), -1);
        assert_null(cfg);
        assert_ptr_equal(strstr(err, "invalid JSON at line 1 column "), err);
    }
    assert_int_equal(sl_config_parse(docs[4], strlen(docs[4]), &cfg, err, sizeof err), -1);
    assert_non_null(strstr(err, "duplicate"));
    parse_err("[]", "the document must be a JSON object");

    /* Only LEN bytes are read: trailing garbage past it is not seen, a NUL inside it is. */
    size_t n = strlen(minimal_json);
    char *buf = malloc(n + 16);
    assert_non_null(buf);
    memcpy(buf, minimal_json, n);
    memcpy(buf + n, "garbage", 8);
    assert_int_equal(sl_config_parse(buf, n, &cfg, err, sizeof err), 0);
    sl_config_free(cfg);
    buf[n - 1] = '\0';
    assert_int_equal(sl_config_parse(buf, n, &cfg, err, sizeof err), -1);
    assert_null(cfg);
    free(buf);
}

/* A short error buffer gets a truncated, terminated message and nothing beyond it is written. */
static void test_short_error_buffer(void **state)
{
    struct sl_config *cfg;
    char err[12];

    memset(err, 'x', sizeof err);
    assert_int_equal(sl_config_parse("[]", 2, &cfg, err, 8), -1);
    assert_string_equal(err, "the doc");
    assert_int_equal(err[8], 'x');
}

static void write_file(const char *path, const char *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

static void test_load(void **state)
{
    const size_t limit = 1024 * 1024;
    char path[] = "/tmp/sluice-config-XXXXXX";
    char err[512], expect[512];
    struct sl_config *cfg;
    int fd = mkstemp(path);

    assert_true(fd >= 0);
    close(fd);

    write_file(path, full_json, strlen(full_json));
    assert_int_equal(sl_config_load(path, &cfg, err, sizeof err), 0);
    assert_int_equal(cfg->n_proxies, 2);
    sl_config_free(cfg);

    /* Parse errors keep their field path. */
    write_file(path, "{\"proxies\": 1}", 14);
    assert_int_equal(sl_config_load(path, &cfg, err, sizeof err), -1);
    assert_string_equal(err, "proxies: must be an array");

    /* Exactly at the size limit (a valid document padded with spaces) loads; one byte more not. */
    char *big = malloc(limit + 1);
    assert_non_null(big);
    memset(big, ' ', limit + 1);
    memcpy(big, minimal_json, strlen(minimal_json));
    write_file(path, big, limit);
    assert_int_equal(sl_config_load(path, &cfg, err, sizeof err), 0);
    sl_config_free(cfg);
    write_file(path, big, limit + 1);
    cfg = &sentinel;
    assert_int_equal(sl_config_load(path, &cfg, err, sizeof err), -1);
    assert_null(cfg);
    snprintf(expect, sizeof expect, "%s: larger than 1048576 bytes", path);
    assert_string_equal(err, expect);
    free(big);

    unlink(path);
    assert_int_equal(sl_config_load(path, &cfg, err, sizeof err), -1);
    assert_null(cfg);
    snprintf(expect, sizeof expect, "%s: No such file or directory", path);
    assert_string_equal(err, expect);

    assert_int_equal(sl_config_load("/tmp", &cfg, err, sizeof err), -1);
    assert_string_equal(err, "/tmp: Is a directory");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_full_example),
        cmocka_unit_test(test_integer_bounds),
        cmocka_unit_test(test_wrong_types),
        cmocka_unit_test(test_unknown_keys),
        cmocka_unit_test(test_unknown_key_label),
        cmocka_unit_test(test_missing_required),
        cmocka_unit_test(test_tls_rules),
        cmocka_unit_test(test_auth_values),
        cmocka_unit_test(test_secret_refs),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_hosts),
        cmocka_unit_test(test_pool_values),
        cmocka_unit_test(test_duplicates),
        cmocka_unit_test(test_invalid_json),
        cmocka_unit_test(test_short_error_buffer),
        cmocka_unit_test(test_load),
        cmocka_unit_test(test_routing),
        cmocka_unit_test(test_health_check),
        cmocka_unit_test(test_admin_block),
        cmocka_unit_test(test_cluster_block),
        cmocka_unit_test(test_store_origin),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
