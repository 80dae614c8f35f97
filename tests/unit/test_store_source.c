/* node/store_source: rendering the data path's configuration from a store dump (pure part). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "base/config.h"
#include "node/store_source.h"

static const char file_json[] =
    "{\"node\": {\"id\": \"n2\"},"
    " \"tls\": {\"cert_file\": \"/c.pem\", \"key_file\": \"/k.pem\"},"
    " \"admin\": {\"port\": 8401, \"token\": \"env:TOKEN\"},"
    " \"cluster\": {\"id\": 2, \"raft_address\": \"127.0.0.1:7002\", \"data_dir\": \"/d\","
    "  \"data_address\": \"127.0.0.2\"}}";

/* A dump as sl_store_dump gives it: the demo proxy, plus proxies that cannot be served. */
static const char dump_json[] =
    "{\"nodes\":{},"
    "\"proxies\":{"
    " \"main\":{\"auth\":[{\"auth_scheme\":\"SECRETS\",\"client_password_auth_type\":"
    "\"MYSQL_NATIVE_PASSWORD\",\"description\":\"app\",\"iam_auth\":\"DISABLED\",\"secret\":"
    "\"app\"}],"
    "  \"debug_logging\":false,\"endpoints\":[],\"engine_family\":\"MYSQL\","
    "  \"idle_client_timeout\":900,\"listen_port\":6033,\"require_tls\":true,\"revision\":3},"
    " \"nosecret\":{\"auth\":[{\"secret\":\"gone\"}],\"listen_port\":6034,\"revision\":4},"
    " \"notargets\":{\"auth\":[{\"secret\":\"app\"}],\"listen_port\":6035,\"revision\":5},"
    " \"sameport\":{\"auth\":[{\"secret\":\"app\"}],\"listen_port\":6033,\"revision\":6},"
    " \"badtimeout\":{\"auth\":[{\"secret\":\"app\"}],\"listen_port\":6036,"
    "  \"idle_client_timeout\":0,\"revision\":7}},"
    "\"secrets\":{\"app\":{\"ref\":\"file:/s/app.json\",\"revision\":2}},"
    "\"target_groups\":{\"main\":{\"connection_pool_config\":{\"max_connections_percent\":40,"
    "  \"transaction_replay\":true,\"transaction_replay_max_size\":65536},"
    " \"failover\":{\"check_failures\":3,\"check_interval_ms\":250,\"mode\":\"EXTERNAL\"},"
    " \"revision\":8}},"
    "\"targets\":{"
    " \"main\":{\"a-reader\":{\"host\":\"10.0.0.2\",\"id\":\"a-reader\",\"port\":3307,"
    "  \"role\":\"READ_ONLY\",\"revision\":9},"
    "  \"b-writer\":{\"host\":\"10.0.0.1\",\"id\":\"b-writer\",\"port\":3306,"
    "  \"role\":\"READ_WRITE\",\"revision\":10}},"
    " \"nosecret\":{\"t\":{\"host\":\"h\",\"port\":1,\"revision\":11}},"
    " \"sameport\":{\"t\":{\"host\":\"h\",\"port\":1,\"revision\":12}},"
    " \"badtimeout\":{\"t\":{\"host\":\"h\",\"port\":1,\"revision\":13}}}}";

static struct sl_config *parse(enum sl_config_origin origin, const char *json)
{
    struct sl_config *cfg = NULL;
    char err[256] = "";
    if (sl_config_parse_from(origin, json, strlen(json), &cfg, err, sizeof err) != 0)
        fail_msg("unexpected error: %s\nin %s", err, json);
    return cfg;
}

static void test_render(void **state)
{
    struct sl_config *file = parse(SL_CONFIG_FILE, file_json);
    struct sl_store_render r;
    char err[256];

    assert_int_equal(sl_store_render_config(file, dump_json, &r, err, sizeof err), 0);
    struct sl_config *cfg = parse(SL_CONFIG_STORE, r.doc);
    assert_string_equal(cfg->node_id, "n2");
    assert_string_equal(cfg->tls_cert_file, "/c.pem");
    assert_null(cfg->cluster);
    assert_int_equal(cfg->n_proxies, 1); /* only main can be served */
    const struct sl_proxy_config *p = &cfg->proxies[0];
    assert_string_equal(p->name, "main");
    assert_string_equal(p->listen_host, "127.0.0.2"); /* this node's data address */
    assert_int_equal(p->listen_port, 6033);
    assert_int_equal(p->idle_client_timeout, 900);
    assert_int_equal(p->n_auth, 1);
    assert_string_equal(p->auth[0].secret, "file:/s/app.json"); /* name resolved */
    assert_string_equal(p->auth[0].description, "app");
    assert_int_equal(p->pool.max_connections_percent, 40);
    assert_int_equal(p->pool.max_idle_connections_percent, 20);
    assert_true(p->pool.transaction_replay); /* the stored pool settings, as they are */
    assert_int_equal(p->pool.transaction_replay_max_size, 65536);
    /* The target group's failover.check_* as the proxy's health checks; the rest defaults. */
    assert_int_equal(p->health_check.interval_ms, 250);
    assert_int_equal(p->health_check.failures, 3);
    assert_int_equal(p->health_check.timeout_ms, 1000);
    assert_int_equal(p->n_targets, 2);
    assert_string_equal(p->targets[0].host, "10.0.0.1"); /* READ_WRITE first */
    assert_string_equal(p->targets[1].host, "10.0.0.2");
    assert_int_equal(p->targets[1].port, 3307);
    assert_non_null(strstr(r.notes, "proxy nosecret: not served: auth[0].secret names no secret "
                                    "in the store\n"));
    assert_non_null(strstr(r.notes, "proxy notargets: not served: no targets registered\n"));
    assert_non_null(strstr(r.notes, "proxy sameport: not served: listen_port 6033 is already used "
                                    "by proxy main\n"));
    assert_non_null(
        strstr(r.notes, "proxy badtimeout: not served: idle_client_timeout: must be 1..28800\n"));

    sl_config_free(cfg);
    sl_store_render_free(&r);
    sl_config_free(file);
}

/* Endpoints: both reach the proxy's targets (the writer first); a READ_ONLY one is rendered with
 * READ_ONLY routing (the data path picks readers from the health checks), and is served without
 * readers too (its reads then go to the writer). */
static void test_endpoints(void **state)
{
    static const char dump[] =
        "{\"nodes\":{},\"proxies\":{\"main\":{\"auth\":[{\"secret\":\"app\"}],\"listen_port\":6033,"
        "\"endpoints\":[{\"name\":\"rw\",\"port\":6040,\"target_role\":\"READ_WRITE\"},"
        "{\"name\":\"ro\",\"port\":6041,\"target_role\":\"READ_ONLY\"}],\"revision\":3},"
        "\"solo\":{\"auth\":[{\"secret\":\"app\"}],\"listen_port\":6050,"
        "\"endpoints\":[{\"name\":\"ro\",\"port\":6051,\"target_role\":\"READ_ONLY\"}],"
        "\"revision\":4}},"
        "\"secrets\":{\"app\":{\"ref\":\"env:APP\",\"revision\":2}},\"target_groups\":{},"
        "\"targets\":{\"main\":{\"r1\":{\"host\":\"10.0.0.2\",\"port\":3306,\"role\":\"READ_ONLY\"}"
        ","
        "\"w1\":{\"host\":\"10.0.0.1\",\"port\":3306,\"role\":\"READ_WRITE\"}},"
        "\"solo\":{\"w\":{\"host\":\"10.0.0.9\",\"port\":3306,\"role\":\"READ_WRITE\"}}}}";
    struct sl_config *file = parse(SL_CONFIG_FILE, file_json);
    struct sl_store_render r;
    char err[256];
    assert_int_equal(sl_store_render_config(file, dump, &r, err, sizeof err), 0);
    struct sl_config *cfg = parse(SL_CONFIG_STORE, r.doc);
    assert_int_equal(cfg->n_proxies, 5); /* main, main.rw, main.ro, solo, solo.ro */
    /* Proxies come in name order of the store, each followed by its endpoints. */
    const struct sl_proxy_config *rw = &cfg->proxies[1], *ro = &cfg->proxies[2];
    assert_string_equal(rw->name, "main.rw");
    assert_string_equal(ro->name, "main.ro");
    assert_int_equal(rw->listen_port, 6040);
    assert_string_equal(rw->targets[0].host, "10.0.0.1"); /* the writer */
    assert_false(rw->read_only_routing);
    assert_int_equal(ro->listen_port, 6041);
    assert_true(ro->read_only_routing);
    assert_int_equal(ro->n_targets, 2);
    assert_string_equal(ro->targets[0].host, "10.0.0.1"); /* the writer, the fallback */
    assert_string_equal(ro->targets[1].host, "10.0.0.2");
    assert_string_equal(ro->auth[0].secret, "env:APP");
    assert_string_equal(cfg->proxies[4].name, "solo.ro");
    assert_true(cfg->proxies[4].read_only_routing);
    assert_string_equal(r.notes, "");
    sl_config_free(cfg);
    sl_store_render_free(&r);
    sl_config_free(file);
}

/* Writers: the committed writer first, then every other target (READ_WRITE, then READ_ONLY, by
 * id), so a writer decision only changes targets[0], on endpoints too (READ_ONLY ones pick their
 * readers from the health checks, never the writer). */
static const char writer_dump[] =
    "{\"nodes\":{},\"proxies\":{\"main\":{\"auth\":[{\"secret\":\"app\"}],\"listen_port\":6033,"
    "\"endpoints\":[{\"name\":\"rw\",\"port\":6040,\"target_role\":\"READ_WRITE\"},"
    "{\"name\":\"ro\",\"port\":6041,\"target_role\":\"READ_ONLY\"}],\"revision\":3}},"
    "\"secrets\":{\"app\":{\"ref\":\"env:APP\",\"revision\":2}},\"target_groups\":{},"
    "\"targets\":{\"main\":{"
    "\"r1\":{\"host\":\"10.0.0.11\",\"id\":\"r1\",\"port\":3306,\"role\":\"READ_ONLY\"},"
    "\"r2\":{\"host\":\"10.0.0.12\",\"id\":\"r2\",\"port\":3306,\"role\":\"READ_ONLY\"},"
    "\"w1\":{\"host\":\"10.0.0.1\",\"id\":\"w1\",\"port\":3306,\"role\":\"READ_WRITE\"},"
    "\"w2\":{\"host\":\"10.0.0.2\",\"id\":\"w2\",\"port\":3306,\"role\":\"READ_WRITE\"}}},"
    "\"writers\":{}}";

/* Render writer_dump with "writers" replaced by writers (JSON text) and, unless keep is NULL,
 * only the targets whose ids are in keep (a space-separated list). */
static struct sl_config *render_writers(const struct sl_config *file, const char *writers,
                                        const char *keep, struct sl_store_render *r)
{
    json_t *d = json_loads(writer_dump, 0, NULL);
    assert_non_null(d);
    json_object_set_new(d, "writers", json_loads(writers, 0, NULL));
    json_t *targets = json_object_get(json_object_get(d, "targets"), "main");
    const char *id;
    json_t *t;
    void *tmp;
    json_object_foreach_safe(targets, tmp, id, t)
    {
        char word[8];
        snprintf(word, sizeof word, " %s ", id);
        char list[64];
        snprintf(list, sizeof list, " %s ", keep ? keep : "");
        if (keep && !strstr(list, word))
            json_object_del(targets, id);
    }
    char *text = json_dumps(d, JSON_COMPACT);
    char err[256];
    assert_int_equal(sl_store_render_config(file, text, r, err, sizeof err), 0);
    free(text);
    json_decref(d);
    return parse(SL_CONFIG_STORE, r->doc);
}

/* The hosts of a rendered proxy's targets, space-separated. */
static const char *hosts(const struct sl_proxy_config *p)
{
    static char out[256];
    out[0] = '\0';
    for (size_t i = 0; i < p->n_targets; i++) {
        strcat(out, i ? " " : "");
        strcat(out, p->targets[i].host);
    }
    return out;
}

static const struct sl_proxy_config *proxy_named(const struct sl_config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->n_proxies; i++)
        if (strcmp(cfg->proxies[i].name, name) == 0)
            return &cfg->proxies[i];
    return NULL;
}

static void test_writer(void **state)
{
    struct sl_config *file = parse(SL_CONFIG_FILE, file_json);
    struct sl_store_render r;

    /* No committed writer: the first READ_WRITE target writes; every other target follows. */
    struct sl_config *cfg = render_writers(file, "{}", NULL, &r);
    assert_int_equal(cfg->n_proxies, 3);
    assert_string_equal(hosts(proxy_named(cfg, "main")), "10.0.0.1 10.0.0.2 10.0.0.11 10.0.0.12");
    assert_string_equal(hosts(proxy_named(cfg, "main.rw")),
                        "10.0.0.1 10.0.0.2 10.0.0.11 10.0.0.12");
    assert_string_equal(hosts(proxy_named(cfg, "main.ro")),
                        "10.0.0.1 10.0.0.2 10.0.0.11 10.0.0.12");
    assert_string_equal(r.writers, "");
    assert_string_equal(r.notes, "");
    sl_config_free(cfg);
    sl_store_render_free(&r);

    /* The committed writer first, whatever its role; the set of targets is the same. */
    static const char promoted[] =
        "{\"main\":{\"decided_by\":\"n1\",\"reason\":\"w1 lost\",\"revision\":42,"
        "\"target\":\"r2\"}}";
    cfg = render_writers(file, promoted, NULL, &r);
    assert_string_equal(hosts(proxy_named(cfg, "main")), "10.0.0.12 10.0.0.1 10.0.0.2 10.0.0.11");
    assert_string_equal(hosts(proxy_named(cfg, "main.rw")),
                        "10.0.0.12 10.0.0.1 10.0.0.2 10.0.0.11");
    /* On the READ_ONLY endpoint too: the promoted reader is its writer now (the checks see it
     * writable, so it is no reader any more). */
    assert_string_equal(hosts(proxy_named(cfg, "main.ro")),
                        "10.0.0.12 10.0.0.1 10.0.0.2 10.0.0.11");
    assert_string_equal(r.writers, "proxy main: writer is target r2 (10.0.0.12:3306), epoch 42, "
                                   "decided by n1: w1 lost\n");
    assert_string_equal(r.notes, "");
    sl_config_free(cfg);
    sl_store_render_free(&r);

    /* A READ_WRITE writer other than the default one. */
    cfg = render_writers(file, "{\"main\":{\"revision\":7,\"target\":\"w2\"}}", NULL, &r);
    assert_string_equal(hosts(proxy_named(cfg, "main")), "10.0.0.2 10.0.0.1 10.0.0.11 10.0.0.12");
    assert_string_equal(hosts(proxy_named(cfg, "main.ro")),
                        "10.0.0.2 10.0.0.1 10.0.0.11 10.0.0.12");
    sl_config_free(cfg);
    sl_store_render_free(&r);

    /* The only reader promoted: the READ_ONLY endpoint is still served (its reads go to the
     * writer). */
    cfg = render_writers(file, "{\"main\":{\"revision\":9,\"target\":\"r1\"}}", "w1 r1", &r);
    assert_int_equal(cfg->n_proxies, 3);
    assert_string_equal(hosts(proxy_named(cfg, "main")), "10.0.0.11 10.0.0.1");
    assert_string_equal(hosts(proxy_named(cfg, "main.ro")), "10.0.0.11 10.0.0.1");
    assert_string_equal(r.notes, "");
    sl_config_free(cfg);
    sl_store_render_free(&r);

    /* No reader at all: served as well. */
    cfg = render_writers(file, "{\"main\":{\"revision\":9,\"target\":\"w2\"}}", "w1 w2", &r);
    assert_string_equal(hosts(proxy_named(cfg, "main")), "10.0.0.2 10.0.0.1");
    assert_string_equal(hosts(proxy_named(cfg, "main.ro")), "10.0.0.2 10.0.0.1");
    assert_string_equal(r.notes, "");
    sl_config_free(cfg);
    sl_store_render_free(&r);

    /* A writer naming a target the proxy does not have: the default writer, and a note. */
    cfg = render_writers(file, "{\"main\":{\"revision\":9,\"target\":\"gone\"}}", NULL, &r);
    assert_string_equal(hosts(proxy_named(cfg, "main")), "10.0.0.1 10.0.0.2 10.0.0.11 10.0.0.12");
    assert_string_equal(hosts(proxy_named(cfg, "main.ro")),
                        "10.0.0.1 10.0.0.2 10.0.0.11 10.0.0.12");
    assert_string_equal(r.writers, "");
    assert_string_equal(r.notes, "proxy main: the committed writer names no target of the proxy "
                                 "(gone); writing to the default writer\n");
    sl_config_free(cfg);
    sl_store_render_free(&r);

    /* Only readers and no decision: the first of them writes, as before. */
    cfg = render_writers(file, "{}", "r1 r2", &r);
    assert_string_equal(hosts(proxy_named(cfg, "main")), "10.0.0.11 10.0.0.12");
    assert_string_equal(hosts(proxy_named(cfg, "main.ro")), "10.0.0.11 10.0.0.12");
    sl_config_free(cfg);
    sl_store_render_free(&r);
    sl_config_free(file);
}

static void test_empty_store(void **state)
{
    static const char empty[] =
        "{\"nodes\":{},\"proxies\":{},\"secrets\":{},\"target_groups\":{},\"targets\":{}}";
    struct sl_config *file = parse(SL_CONFIG_FILE, file_json);
    struct sl_store_render r;
    char err[256];

    assert_int_equal(sl_store_render_config(file, empty, &r, err, sizeof err), 0);
    struct sl_config *cfg = parse(SL_CONFIG_STORE, r.doc);
    assert_int_equal(cfg->n_proxies, 0);
    assert_string_equal(r.notes, "");
    sl_config_free(cfg);
    sl_store_render_free(&r);

    assert_int_equal(sl_store_render_config(file, "[]", &r, err, sizeof err), -1);
    assert_string_equal(err, "the store's dump is not a configuration document");
    sl_config_free(file);
}

/* require_tls (the default) on a node without a "tls" block: left out, not fatal. */
static void test_no_tls(void **state)
{
    static const char dump[] =
        "{\"proxies\":{\"p\":{\"auth\":[{\"secret\":\"s\"}],\"listen_port\":6033},"
        " \"q\":{\"auth\":[{\"secret\":\"s\"}],\"listen_port\":6034,\"require_tls\":false}},"
        "\"secrets\":{\"s\":{\"ref\":\"env:S\"}},\"target_groups\":{},"
        "\"targets\":{\"p\":{\"t\":{\"host\":\"h\"}},\"q\":{\"t\":{\"host\":\"h\"}}}}";
    json_t *f = json_loads(file_json, 0, NULL);
    json_object_del(f, "tls");
    char *text = json_dumps(f, 0);
    struct sl_config *file = parse(SL_CONFIG_FILE, text);
    struct sl_store_render r;
    char err[256];

    assert_int_equal(sl_store_render_config(file, dump, &r, err, sizeof err), 0);
    struct sl_config *cfg = parse(SL_CONFIG_STORE, r.doc);
    assert_int_equal(cfg->n_proxies, 1);
    assert_string_equal(cfg->proxies[0].name, "q");
    assert_int_equal(cfg->proxies[0].targets[0].port, 3306);
    assert_string_equal(r.notes, "proxy p: not served: require_tls is true but this node has no "
                                 "\"tls\" block\n");
    sl_config_free(cfg);
    sl_store_render_free(&r);
    sl_config_free(file);
    free(text);
    json_decref(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_render), cmocka_unit_test(test_endpoints),
        cmocka_unit_test(test_writer), cmocka_unit_test(test_empty_store),
        cmocka_unit_test(test_no_tls),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
