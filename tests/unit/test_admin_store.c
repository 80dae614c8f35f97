/* The store-backed admin routes (admin/store_routes.h) over real TCP and real stores: libraft
 * with raft_uv, each store with its own data dir under /tmp and its own 127.0.0.1 port, the admin
 * servers on 127.0.0.1:0, all on one uv loop. The client is asynchronous on the same loop (the
 * stores are not thread-safe), so several requests can be in flight at once.
 *
 * test_single: a one-node cluster; secrets, proxies, target groups and targets through their
 * whole life (validation 400s, 404s, the secrets a proxy or a target group's failover names must
 * exist, If-Match 412, ETags, cascading delete), ?consistent=true,
 * ?min_revision (satisfied by a later write, and timing out), GET /v1/cluster, 401.
 * test_writer: a one-node cluster; a proxy's writer: the default one, decisions with their epoch,
 * If-Match on the epoch, 404s naming the proxy or the target, decided_by (also when forwarded),
 * the writer's target kept (409), deleted with the proxy.
 * test_follower: a two-node cluster; writes and consistent reads on the follower without a
 * forwarder (503 + Retry-After), with one (called with the leader's id and the follower as the
 * origin), already forwarded (503);
 * a third node added and removed through POST/DELETE /v1/cluster/nodes on the leader. */
#include <arpa/inet.h>
#include <ftw.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#include <uv.h>

#include "admin/server.h"
#include "admin/store_routes.h"
#include "raft/store.h"
#include "tests/unit/support.h"

#define TOKEN   "t0ken-for-store-tests"
#define WAIT_MS 8000
#define N_MAX   3

struct node {
    struct sl_store *s;
    char dir[128];
    char addr[SL_STORE_ADDR_MAX];
};

struct admin {
    struct sl_admin_server *srv;
    struct sl_admin_store_routes *routes;
    int port;
};

static struct {
    uv_loop_t loop;
    char root[64];
    struct node n[N_MAX];
    struct admin a[N_MAX];
    int closing; /* close callbacks still to come */
} t;

/* ---- loop helpers ------------------------------------------------------------------------------
 */

typedef bool (*pred_fn)(void *arg);

static bool run_until(pred_fn pred, void *arg, unsigned ms)
{
    uint64_t deadline = uv_hrtime() + (uint64_t)ms * 1000000u;
    while (!pred(arg)) {
        if (uv_hrtime() > deadline)
            return false;
        uv_run(&t.loop, UV_RUN_ONCE);
    }
    return true;
}

/* ---- stores and servers ------------------------------------------------------------------------
 */

static void open_store(unsigned i)
{
    struct sl_store_options o = {
        .id = i + 1,
        .address = t.n[i].addr,
        .data_dir = t.n[i].dir,
        .election_timeout_ms = 300,
        .heartbeat_timeout_ms = 30,
        .lmdb_map_size = 8 << 20,
    };
    char err[256] = "";
    if (sl_store_open(&t.n[i].s, &t.loop, &o, err, sizeof err) != SL_STORE_OK)
        fail_msg("open store %u: %s", i, err);
}

/* Bootstrap stores 0..n-1 as the voters and start them. */
static void start_cluster(unsigned n)
{
    struct sl_store_member v[N_MAX];
    for (unsigned i = 0; i < n; i++) {
        v[i].id = i + 1;
        snprintf(v[i].address, sizeof v[i].address, "%s", t.n[i].addr);
        v[i].role = SL_STORE_VOTER;
    }
    for (unsigned i = 0; i < n; i++) {
        open_store(i);
        assert_int_equal(sl_store_bootstrap(t.n[i].s, v, n), SL_STORE_OK);
        assert_int_equal(sl_store_start(t.n[i].s), SL_STORE_OK);
    }
}

/* Index of a ready leader known to every other store in the first n; -1 if none. */
static int leader_of(unsigned n)
{
    int leader = -1;
    struct sl_store_info info;
    for (unsigned i = 0; i < n; i++) {
        sl_store_info(t.n[i].s, &info);
        if (info.state == SL_STORE_LEADER && info.leader_ready)
            leader = (int)i;
    }
    for (unsigned i = 0; leader >= 0 && i < n; i++) {
        sl_store_info(t.n[i].s, &info);
        if (info.leader_id != (uint64_t)leader + 1)
            return -1;
    }
    return leader;
}

static bool has_leader(void *arg)
{
    return leader_of(*(unsigned *)arg) >= 0;
}

static int wait_leader(unsigned n)
{
    assert_true(run_until(has_leader, &n, WAIT_MS));
    return leader_of(n);
}

static void start_admin(unsigned i, const struct sl_admin_forwarder *fwd)
{
    struct sl_admin_config cfg = {.host = "127.0.0.1", .port = 0, .token = TOKEN};
    char err[256] = "";
    if (sl_admin_server_start(&t.loop, &cfg, &t.a[i].srv, err, sizeof err) != 0)
        fail_msg("admin %u: %s", i, err);
    t.a[i].port = sl_admin_server_port(t.a[i].srv);
    t.a[i].routes = sl_admin_store_routes(t.a[i].srv, t.n[i].s, fwd);
    assert_non_null(t.a[i].routes);
    sl_admin_store_routes_set_wait(t.a[i].routes, 200);
}

static void on_closed(void *arg)
{
    t.closing--;
}

static bool all_closed(void *arg)
{
    return t.closing == 0;
}

static void rm_store(unsigned i)
{
    t.closing++;
    sl_store_close(t.n[i].s, on_closed, NULL);
    t.n[i].s = NULL;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    return remove(path);
}

static int setup(void **state)
{
    memset(&t, 0, sizeof t);
    assert_int_equal(uv_loop_init(&t.loop), 0);
    snprintf(t.root, sizeof t.root, "/tmp/sl_admin_store_XXXXXX");
    assert_non_null(mkdtemp(t.root));
    for (unsigned i = 0; i < N_MAX; i++) {
        snprintf(t.n[i].dir, sizeof t.n[i].dir, "%s/n%u", t.root, i + 1);
        assert_int_equal(mkdir(t.n[i].dir, 0700), 0);
        snprintf(t.n[i].addr, sizeof t.n[i].addr, "127.0.0.1:%d", free_port());
    }
    return 0;
}

/* The documented order: servers, then the routes' state, then the stores. */
static int teardown(void **state)
{
    for (unsigned i = 0; i < N_MAX; i++) {
        if (t.a[i].srv) {
            t.closing++;
            sl_admin_server_close(t.a[i].srv, on_closed, NULL);
            sl_admin_store_routes_close(t.a[i].routes);
        }
    }
    for (unsigned i = 0; i < N_MAX; i++)
        if (t.n[i].s)
            rm_store(i);
    assert_true(run_until(all_closed, NULL, WAIT_MS));
    assert_int_equal(uv_run(&t.loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&t.loop), 0);
    assert_int_equal(nftw(t.root, rm_entry, 16, FTW_DEPTH | FTW_PHYS), 0);
    return 0;
}

/* ---- an asynchronous HTTP client ---------------------------------------------------------------
 */

struct call {
    uv_tcp_t tcp;
    uv_connect_t connect;
    uv_write_t write;
    char req[4096];
    char in[64 * 1024];
    size_t len;
    bool done;
    /* the response */
    int status;
    char head[4096];
    const char *body; /* into in[] */
    json_t *json;
};

static void on_call_closed(uv_handle_t *h)
{
    struct call *c = h->data;
    c->in[c->len] = '\0';
    char *end = strstr(c->in, "\r\n\r\n");
    if (!end)
        fail_msg("no response head: %s", c->in);
    size_t head_len = (size_t)(end - c->in) + 4;
    memcpy(c->head, c->in, head_len < sizeof c->head ? head_len : sizeof c->head - 1);
    assert_int_equal(sscanf(c->in, "HTTP/1.1 %d ", &c->status), 1);
    c->body = c->in + head_len;
    c->json = *c->body ? json_loads(c->body, 0, NULL) : NULL;
    c->done = true;
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    struct call *c = h->data;
    *buf = uv_buf_init(c->in + c->len, (unsigned)(sizeof c->in - 1 - c->len));
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    struct call *c = s->data;
    if (n > 0)
        c->len += (size_t)n;
    else if (n < 0)
        uv_close((uv_handle_t *)s, on_call_closed); /* the server closes after its answer */
}

static void on_written(uv_write_t *w, int status)
{
    assert_int_equal(status, 0);
}

static void on_connected(uv_connect_t *req, int status)
{
    struct call *c = req->data;
    assert_int_equal(status, 0);
    uv_buf_t b = uv_buf_init(c->req, (unsigned)strlen(c->req));
    assert_int_equal(uv_write(&c->write, (uv_stream_t *)&c->tcp, &b, 1, on_written), 0);
    assert_int_equal(uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read), 0);
}

/* Start a request: method and target, extra header lines (each ending in CRLF), a body or NULL. */
static struct call *call_start(unsigned node, const char *method, const char *target,
                               const char *headers, const char *body)
{
    struct call *c = calloc(1, sizeof *c);
    assert_non_null(c);
    snprintf(c->req, sizeof c->req,
             "%s %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n%sContent-Length: %zu\r\n\r\n%s",
             method, target, headers ? headers : "Authorization: Bearer " TOKEN "\r\n",
             body ? strlen(body) : 0, body ? body : "");
    struct sockaddr_in a;
    assert_int_equal(uv_ip4_addr("127.0.0.1", t.a[node].port, &a), 0);
    assert_int_equal(uv_tcp_init(&t.loop, &c->tcp), 0);
    c->tcp.data = c->connect.data = c;
    assert_int_equal(uv_tcp_connect(&c->connect, &c->tcp, (struct sockaddr *)&a, on_connected), 0);
    return c;
}

static bool call_done(void *arg)
{
    return ((struct call *)arg)->done;
}

static void call_wait(struct call *c)
{
    assert_true(run_until(call_done, c, WAIT_MS));
}

static void call_free(struct call *c)
{
    json_decref(c->json);
    free(c);
}

#define AUTH_H "Authorization: Bearer " TOKEN "\r\n"

static struct call *call(unsigned node, const char *method, const char *target, const char *body)
{
    struct call *c = call_start(node, method, target, NULL, body);
    call_wait(c);
    return c;
}

/* One call, its status checked; the response is freed. */
static void expect(unsigned node, const char *method, const char *target, const char *body,
                   int status)
{
    struct call *c = call(node, method, target, body);
    if (c->status != status)
        fail_msg("%s %s: %d, not %d: %s", method, target, c->status, status, c->body);
    call_free(c);
}

static bool has_header(const struct call *c, const char *line)
{
    return strstr(c->head, line) != NULL;
}

static const char *jstr(json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

static json_int_t jint(json_t *o, const char *key)
{
    return json_integer_value(json_object_get(o, key));
}

/* A 4xx/5xx problem with this status whose detail contains part; returns nothing, frees c. */
static void expect_problem(struct call *c, int status, const char *part)
{
    if (c->status != status)
        fail_msg("%d, not %d: %s", c->status, status, c->body);
    assert_true(has_header(c, "Content-Type: application/problem+json\r\n"));
    const char *detail = jstr(c->json, "detail");
    if (!detail || !strstr(detail, part))
        fail_msg("detail \"%s\" lacks \"%s\"", detail ? detail : "", part);
    call_free(c);
}

static uint64_t applied(unsigned i)
{
    struct sl_store_info info;
    sl_store_info(t.n[i].s, &info);
    return info.applied_index;
}

/* ---- test_single ------------------------------------------------------------------------------
 */

#define PROXY_BODY                                                                                 \
    "{\"listen_port\":6033,\"auth\":[{\"secret\":\"app-user\",\"client_password_auth_type\":"      \
    "\"MYSQL_CACHING_SHA2_PASSWORD\"}]}"

static void test_single(void **state)
{
    start_cluster(1);
    wait_leader(1);
    start_admin(0, NULL);
    struct call *c;
    char etag[64], hdr[128];

    /* The server's auth still applies. */
    c = call_start(0, "GET", "/v1/proxies", "", NULL);
    call_wait(c);
    assert_int_equal(c->status, 401);
    call_free(c);

    /* Secrets: references only, validated, ETag = revision. */
    expect_problem(call(0, "PUT", "/v1/secrets/app-user", "{\"ref\":\"s3cret\"}"), 400, "ref: ");
    expect_problem(call(0, "PUT", "/v1/secrets/bad%20name", "{\"ref\":\"env:A\"}"), 400,
                   "name: must be");
    c = call(0, "PUT", "/v1/secrets/app-user", "{\"ref\":\"env:APP_USER\"}");
    assert_int_equal(c->status, 200);
    uint64_t srev = (uint64_t)jint(c->json, "revision");
    assert_true(srev > 0);
    assert_string_equal(jstr(c->json, "name"), "app-user");
    assert_string_equal(jstr(c->json, "ref"), "env:APP_USER");
    snprintf(etag, sizeof etag, "ETag: \"%llu\"\r\n", (unsigned long long)srev);
    assert_true(has_header(c, etag));
    call_free(c);
    expect(0, "PUT", "/v1/secrets/other", "{\"ref\":\"file:/etc/other\"}", 200);
    c = call(0, "GET", "/v1/secrets", NULL);
    assert_int_equal(c->status, 200);
    assert_int_equal(json_array_size(c->json), 2);
    assert_string_equal(jstr(json_array_get(c->json, 0), "name"), "app-user");
    assert_string_equal(jstr(json_array_get(c->json, 1), "name"), "other");
    call_free(c);

    /* Proxies: 400 naming the field, the secret must exist, 404 below a missing proxy. */
    expect_problem(call(0, "PUT", "/v1/proxies/app", "{\"listen_port\":0}"), 400,
                   "listen_port: must be 1..65535");
    c = call(0, "PUT", "/v1/proxies/app",
             "{\"listen_port\":6033,\"auth\":[{\"secret\":\"app-user\"},{\"secret\":\"nope\"}]}");
    assert_string_equal(jstr(c->json, "field"), "auth[1].secret");
    expect_problem(c, 400, "no secret named \"nope\"");
    expect_problem(call(0, "PUT", "/v1/proxies/app/target-group", "{}"), 404,
                   "no proxy named \"app\"");
    expect_problem(call(0, "POST", "/v1/proxies/app/targets", "{\"id\":\"db1\",\"host\":\"h\"}"),
                   404, "no proxy named \"app\"");
    expect_problem(call(0, "GET", "/v1/proxies/app", NULL), 404, "no proxy named \"app\"");

    c = call(0, "PUT", "/v1/proxies/app", PROXY_BODY);
    assert_int_equal(c->status, 200);
    uint64_t prev = (uint64_t)jint(c->json, "revision");
    assert_true(prev > srev);
    assert_string_equal(jstr(c->json, "name"), "app");
    assert_int_equal(jint(c->json, "idle_client_timeout"), 1800);
    assert_true(json_is_true(json_object_get(c->json, "require_tls")));
    call_free(c);

    /* A proxy without a target group has the defaults (no revision, no ETag). */
    c = call(0, "GET", "/v1/proxies/app/target-group", NULL);
    assert_int_equal(c->status, 200);
    assert_false(has_header(c, "ETag"));
    assert_null(json_object_get(c->json, "revision"));
    assert_int_equal(
        jint(json_object_get(c->json, "connection_pool_config"), "max_idle_connections_percent"),
        50);
    assert_true(json_is_false(
        json_object_get(json_object_get(c->json, "connection_pool_config"), "transaction_replay")));
    assert_int_equal(
        jint(json_object_get(c->json, "connection_pool_config"), "transaction_replay_max_size"),
        1048576);
    json_t *fo = json_object_get(c->json, "failover");
    assert_string_equal(jstr(fo, "mode"), "EXTERNAL");
    assert_true(json_is_true(json_object_get(fo, "require_semi_sync")));
    assert_int_equal(jint(fo, "check_interval_ms"), 500);
    assert_int_equal(jint(fo, "check_timeout_ms"), 1000);
    assert_int_equal(jint(fo, "check_failures"), 2);
    assert_int_equal(json_object_size(fo), 5);
    call_free(c);

    /* Failover: the secrets it names must exist (400 naming the field), whatever the mode. */
    c = call(0, "PUT", "/v1/proxies/app/target-group",
             "{\"failover\":{\"mode\":\"MANAGED\",\"admin_secret\":\"app-user\","
             "\"replication_secret\":\"nope\"}}");
    assert_string_equal(jstr(c->json, "field"), "failover.replication_secret");
    expect_problem(c, 400, "failover.replication_secret: no secret named \"nope\"");
    c = call(0, "PUT", "/v1/proxies/app/target-group",
             "{\"failover\":{\"mode\":\"DISABLED\",\"admin_secret\":\"nope\"}}");
    assert_string_equal(jstr(c->json, "field"), "failover.admin_secret");
    expect_problem(c, 400, "failover.admin_secret: no secret named \"nope\"");
    expect_problem(call(0, "PUT", "/v1/proxies/app/target-group",
                        "{\"failover\":{\"mode\":\"MANAGED\",\"admin_secret\":\"app-user\"}}"),
                   400, "failover.replication_secret: required");
    c = call(0, "GET", "/v1/proxies/app/target-group", NULL);
    assert_null(json_object_get(c->json, "revision")); /* nothing was stored */
    call_free(c);
    c = call(0, "PUT", "/v1/proxies/app/target-group",
             "{\"failover\":{\"mode\":\"MANAGED\",\"admin_secret\":\"app-user\","
             "\"replication_secret\":\"other\",\"require_semi_sync\":false}}");
    assert_int_equal(c->status, 200);
    call_free(c);
    c = call(0, "GET", "/v1/proxies/app/target-group", NULL);
    assert_true(jint(c->json, "revision") > 0);
    fo = json_object_get(c->json, "failover");
    assert_string_equal(jstr(fo, "mode"), "MANAGED");
    assert_string_equal(jstr(fo, "admin_secret"), "app-user");
    assert_string_equal(jstr(fo, "replication_secret"), "other");
    assert_true(json_is_false(json_object_get(fo, "require_semi_sync")));
    assert_int_equal(
        jint(json_object_get(c->json, "connection_pool_config"), "max_connections_percent"), 100);
    call_free(c);
    c = call(0, "PUT", "/v1/proxies/app/target-group",
             "{\"connection_pool_config\":{\"max_connections_percent\":80,"
             "\"transaction_replay\":true,\"transaction_replay_max_size\":65536}}");
    assert_int_equal(c->status, 200);
    assert_int_equal(
        jint(json_object_get(c->json, "connection_pool_config"), "max_idle_connections_percent"),
        40);
    call_free(c);
    c = call(0, "GET", "/v1/proxies/app/target-group", NULL);
    assert_true(has_header(c, "ETag: \""));
    assert_true(jint(c->json, "revision") > 0);
    assert_true(json_is_true(
        json_object_get(json_object_get(c->json, "connection_pool_config"), "transaction_replay")));
    assert_int_equal(
        jint(json_object_get(c->json, "connection_pool_config"), "transaction_replay_max_size"),
        65536);
    call_free(c);

    /* Targets, listed by id. */
    expect(0, "POST", "/v1/proxies/app/targets", "{\"id\":\"db2\",\"host\":\"10.0.0.2\"}", 200);
    c = call(0, "POST", "/v1/proxies/app/targets",
             "{\"id\":\"db1\",\"host\":\"10.0.0.1\",\"role\":\"READ_ONLY\"}");
    assert_int_equal(c->status, 200);
    assert_int_equal(jint(c->json, "port"), 3306);
    call_free(c);
    expect_problem(call(0, "POST", "/v1/proxies/app/targets", "{\"id\":\"db3\"}"), 400,
                   "host: required");
    c = call(0, "GET", "/v1/proxies/app/targets", NULL);
    assert_int_equal(c->status, 200);
    assert_int_equal(json_array_size(c->json), 2);
    assert_string_equal(jstr(json_array_get(c->json, 0), "id"), "db1");
    assert_string_equal(jstr(json_array_get(c->json, 1), "id"), "db2");
    call_free(c);
    expect(0, "DELETE", "/v1/proxies/app/targets/db2", NULL, 200);
    expect_problem(call(0, "DELETE", "/v1/proxies/app/targets/db2", NULL), 404,
                   "no target \"db2\" in proxy \"app\"");

    /* If-Match: a stale revision is 412 and changes nothing; the current one succeeds. */
    snprintf(hdr, sizeof hdr, AUTH_H "If-Match: \"%llu\"\r\n", (unsigned long long)srev);
    c = call_start(0, "PUT", "/v1/proxies/app", hdr, PROXY_BODY);
    call_wait(c);
    assert_int_equal(jint(c->json, "revision"), (json_int_t)prev);
    expect_problem(c, 412, "If-Match: the revision is");
    snprintf(hdr, sizeof hdr, AUTH_H "If-Match: \"%llu\"\r\n", (unsigned long long)prev);
    c = call_start(0, "PUT", "/v1/proxies/app", hdr, PROXY_BODY);
    call_wait(c);
    assert_int_equal(c->status, 200);
    uint64_t prev2 = (uint64_t)jint(c->json, "revision");
    assert_true(prev2 > prev);
    call_free(c);
    c = call_start(0, "PUT", "/v1/proxies/app", AUTH_H "If-Match: W/\"1\"\r\n", PROXY_BODY);
    call_wait(c);
    expect_problem(c, 400, "If-Match");

    /* Reads: list, consistent, query errors. */
    c = call(0, "GET", "/v1/proxies?consistent=true", NULL);
    assert_int_equal(c->status, 200);
    assert_int_equal(json_array_size(c->json), 1);
    assert_string_equal(jstr(json_array_get(c->json, 0), "name"), "app");
    call_free(c);
    c = call(0, "GET", "/v1/proxies/app?consistent=true", NULL);
    assert_int_equal(c->status, 200);
    snprintf(etag, sizeof etag, "ETag: \"%llu\"\r\n", (unsigned long long)prev2);
    assert_true(has_header(c, etag));
    call_free(c);
    expect_problem(call(0, "GET", "/v1/proxies?limit=3", NULL), 400, "limit: unknown");

    /* ?min_revision: already applied answers at once; ahead waits for the write that reaches it;
     * too far ahead gives up after the (200 ms) wait with 503. */
    char target[96];
    snprintf(target, sizeof target, "/v1/secrets/app-user?min_revision=%llu",
             (unsigned long long)applied(0));
    expect(0, "GET", target, NULL, 200);
    snprintf(target, sizeof target, "/v1/secrets/late?min_revision=%llu",
             (unsigned long long)applied(0) + 1);
    struct call *waiting = call_start(0, "GET", target, NULL, NULL);
    struct call *write = call_start(0, "PUT", "/v1/secrets/late", NULL, "{\"ref\":\"env:LATE\"}");
    call_wait(waiting);
    call_wait(write);
    assert_int_equal(write->status, 200);
    assert_int_equal(waiting->status, 200);
    assert_string_equal(jstr(waiting->json, "ref"), "env:LATE");
    call_free(waiting);
    call_free(write);
    snprintf(target, sizeof target, "/v1/proxies?min_revision=%llu",
             (unsigned long long)applied(0) + 100);
    uint64_t t0 = uv_hrtime();
    c = call(0, "GET", target, NULL);
    assert_true(uv_hrtime() - t0 >= 150000000u);
    assert_true(has_header(c, "Retry-After: 1\r\n"));
    expect_problem(c, 503, "not applied here within 200 ms");

    /* The cluster as this node sees it. */
    c = call(0, "GET", "/v1/cluster", NULL);
    assert_int_equal(c->status, 200);
    assert_int_equal(jint(c->json, "leader"), 1);
    assert_true(json_is_true(json_object_get(c->json, "leader_ready")));
    assert_true(jint(c->json, "term") >= 1);
    assert_true(jint(c->json, "applied_index") >= (json_int_t)prev2);
    json_t *nodes = json_object_get(c->json, "nodes");
    assert_int_equal(json_array_size(nodes), 1);
    assert_string_equal(jstr(json_array_get(nodes, 0), "role"), "voter");
    assert_string_equal(jstr(json_array_get(nodes, 0), "raft_address"), t.n[0].addr);
    call_free(c);

    /* Deleting a proxy deletes its target group and targets. */
    c = call(0, "DELETE", "/v1/proxies/app", NULL);
    assert_int_equal(c->status, 200);
    assert_true(jint(c->json, "index") > (json_int_t)prev2);
    call_free(c);
    expect(0, "GET", "/v1/proxies/app/targets", NULL, 404);
    expect(0, "GET", "/v1/proxies/app/target-group", NULL, 404);
    char *dump = NULL;
    assert_int_equal(sl_store_dump(t.n[0].s, &dump), 0);
    assert_null(strstr(dump, "db1"));
    assert_null(strstr(dump, "connection_pool_config"));
    free(dump);
    expect(0, "DELETE", "/v1/secrets/other", NULL, 200);
    expect_problem(call(0, "DELETE", "/v1/secrets/other", NULL), 404, "no secret named \"other\"");
    expect_problem(call(0, "DELETE", "/v1/proxies/app", NULL), 404, "no proxy named \"app\"");
}

/* ---- test_writer ------------------------------------------------------------------------------
 */

static void test_writer(void **state)
{
    start_cluster(1);
    wait_leader(1);
    start_admin(0, NULL);
    sl_admin_store_routes_set_node(t.a[0].routes, "node-a");
    struct call *c;
    char hdr[128];

    expect_problem(call(0, "GET", "/v1/proxies/app/writer", NULL), 404, "no proxy named \"app\"");
    expect_problem(call(0, "PUT", "/v1/proxies/app/writer", "{\"target\":\"db1\"}"), 404,
                   "no proxy named \"app\"");
    expect(0, "PUT", "/v1/secrets/app-user", "{\"ref\":\"env:APP_USER\"}", 200);
    expect(0, "PUT", "/v1/proxies/app", PROXY_BODY, 200);
    expect_problem(call(0, "GET", "/v1/proxies/app/writer", NULL), 404,
                   "proxy \"app\" has no targets");

    /* The default writer: targets[0] as the data path renders it (the first READ_WRITE target by
     * id, else the first target), epoch 0, no revision and no ETag. */
    expect(0, "POST", "/v1/proxies/app/targets",
           "{\"id\":\"db1\",\"host\":\"10.0.0.1\",\"role\":\"READ_ONLY\"}", 200);
    c = call(0, "GET", "/v1/proxies/app/writer", NULL);
    assert_int_equal(c->status, 200);
    assert_string_equal(jstr(c->json, "target"), "db1");
    call_free(c);
    expect(0, "POST", "/v1/proxies/app/targets", "{\"id\":\"db3\",\"host\":\"10.0.0.3\"}", 200);
    expect(0, "POST", "/v1/proxies/app/targets", "{\"id\":\"db2\",\"host\":\"10.0.0.2\"}", 200);
    c = call(0, "GET", "/v1/proxies/app/writer", NULL);
    assert_int_equal(c->status, 200);
    assert_false(has_header(c, "ETag"));
    assert_string_equal(jstr(c->json, "target"), "db2");
    assert_int_equal(jint(c->json, "epoch"), 0);
    assert_string_equal(jstr(c->json, "reason"), "default");
    assert_null(json_object_get(c->json, "revision"));
    call_free(c);

    /* Validation, and the target must be one of the proxy's. */
    expect_problem(call(0, "PUT", "/v1/proxies/app/writer", "{}"), 400, "target: required");
    expect_problem(call(0, "PUT", "/v1/proxies/app/writer", "{\"target\":\"db1\",\"epoch\":3}"),
                   400, "epoch: read-only");
    expect_problem(call(0, "PUT", "/v1/proxies/app/writer", "{\"target\":\"db9\"}"), 404,
                   "no target \"db9\" in proxy \"app\"");
    c = call_start(0, "PUT", "/v1/proxies/app/writer", AUTH_H "If-Match: \"0\"\r\n",
                   "{\"target\":\"db1\"}");
    call_wait(c);
    expect_problem(c, 400, "If-Match");

    /* A decision: its revision is the epoch, in the body and the ETag. */
    c = call(0, "PUT", "/v1/proxies/app/writer",
             "{\"target\":\"db1\",\"reason\":\"db2 lost; db1 promoted\"}");
    assert_int_equal(c->status, 200);
    uint64_t epoch = (uint64_t)jint(c->json, "epoch");
    assert_true(epoch > 0);
    assert_int_equal(jint(c->json, "revision"), (json_int_t)epoch);
    assert_string_equal(jstr(c->json, "target"), "db1");
    assert_string_equal(jstr(c->json, "reason"), "db2 lost; db1 promoted");
    assert_string_equal(jstr(c->json, "decided_by"), "node-a");
    char etag[64];
    snprintf(etag, sizeof etag, "ETag: \"%llu\"\r\n", (unsigned long long)epoch);
    assert_true(has_header(c, etag));
    call_free(c);
    c = call(0, "GET", "/v1/proxies/app/writer", NULL);
    assert_int_equal(c->status, 200);
    assert_true(has_header(c, etag));
    assert_int_equal(jint(c->json, "epoch"), (json_int_t)epoch);
    assert_int_equal(jint(c->json, "revision"), (json_int_t)epoch);
    assert_string_equal(jstr(c->json, "target"), "db1");
    assert_string_equal(jstr(c->json, "decided_by"), "node-a");
    call_free(c);

    /* Compare-and-set on the epoch: a stale one is 412 and changes nothing. */
    snprintf(hdr, sizeof hdr, AUTH_H "If-Match: \"%llu\"\r\n", (unsigned long long)epoch - 1);
    c = call_start(0, "PUT", "/v1/proxies/app/writer", hdr, "{\"target\":\"db3\"}");
    call_wait(c);
    assert_int_equal(jint(c->json, "revision"), (json_int_t)epoch);
    expect_problem(c, 412, "the writer's epoch (revision) is");
    snprintf(hdr, sizeof hdr, AUTH_H "If-Match: %llu\r\n", (unsigned long long)epoch);
    c = call_start(0, "PUT", "/v1/proxies/app/writer", hdr, "{\"target\":\"db3\"}");
    call_wait(c);
    assert_int_equal(c->status, 200);
    uint64_t epoch2 = (uint64_t)jint(c->json, "epoch");
    assert_true(epoch2 > epoch);
    assert_string_equal(jstr(c->json, "reason"), "manual");
    call_free(c);

    /* Forwarded from a follower: the follower is the node the decision was taken on. Not
     * forwarded: the origin header is not believed. */
    c = call_start(0, "PUT", "/v1/proxies/app/writer",
                   AUTH_H "X-Sluice-Forwarded: 1\r\nX-Sluice-Origin: node-b\r\n",
                   "{\"target\":\"db2\"}");
    call_wait(c);
    assert_int_equal(c->status, 200);
    assert_string_equal(jstr(c->json, "decided_by"), "node-b");
    call_free(c);
    c = call_start(0, "PUT", "/v1/proxies/app/writer", AUTH_H "X-Sluice-Origin: node-c\r\n",
                   "{\"target\":\"db2\"}");
    call_wait(c);
    assert_int_equal(c->status, 200);
    assert_string_equal(jstr(c->json, "decided_by"), "node-a");
    call_free(c);

    /* The committed writer's target stays until another writer is committed (409); the others go.
     */
    c = call(0, "DELETE", "/v1/proxies/app/targets/db2", NULL);
    assert_true(jint(c->json, "epoch") > (json_int_t)epoch2);
    expect_problem(c, 409, "target \"db2\" is the committed writer of proxy \"app\"");
    expect(0, "DELETE", "/v1/proxies/app/targets/db3", NULL, 200);
    /* A writer PUT is not refused by the connection-share rule (targets and target groups are). */
    expect(0, "PUT", "/v1/proxies/app/target-group",
           "{\"connection_pool_config\":{\"max_connections_percent\":100}}", 200);
    expect(0, "PUT", "/v1/proxies/app/writer", "{\"target\":\"db1\"}", 200);
    expect(0, "DELETE", "/v1/proxies/app/targets/db2", NULL, 200);

    /* Deleting the proxy deletes its writer. */
    expect(0, "DELETE", "/v1/proxies/app", NULL, 200);
    expect(0, "GET", "/v1/proxies/app/writer", NULL, 404);
    char *text = NULL;
    uint64_t rev;
    assert_int_equal(sl_store_get(t.n[0].s, SL_RAFT_WRITER, "app", NULL, &text, &rev), 1);
}

/* ---- test_follower ----------------------------------------------------------------------------
 */

struct forwarded {
    int calls;
    uint64_t leader_id;
    char origin[64]; /* X-Sluice-Origin of the last forwarded request */
};

/* Records the call and answers as a forwarder would after talking to the leader. */
static void test_forward(void *arg, struct sl_admin_request *rq, uint64_t leader_id)
{
    struct forwarded *f = arg;
    f->calls++;
    f->leader_id = leader_id;
    snprintf(f->origin, sizeof f->origin, "%s", rq->http.origin ? rq->http.origin : "");
    struct sl_http_response head = {.status = 200};
    sl_admin_reply_json(rq, &head, json_pack("{s:b}", "forwarded", 1));
}

static bool node_applied(void *arg)
{
    uint64_t *want = arg;
    return applied(2) >= *want;
}

static void test_follower(void **state)
{
    start_cluster(2);
    int leader = wait_leader(2);
    unsigned fol = 1 - (unsigned)leader;
    struct forwarded fw = {0};
    struct sl_admin_forwarder fwd = {test_forward, &fw};
    /* Admin 0..1 serve stores 0..1; admin 2 is a second server on the follower's store, with
     * the forwarder. */
    start_admin(0, NULL);
    start_admin(1, NULL);
    t.a[2].srv = NULL;
    {
        struct sl_admin_config cfg = {.host = "127.0.0.1", .port = 0, .token = TOKEN};
        char err[256] = "";
        if (sl_admin_server_start(&t.loop, &cfg, &t.a[2].srv, err, sizeof err) != 0)
            fail_msg("admin 2: %s", err);
        t.a[2].port = sl_admin_server_port(t.a[2].srv);
        t.a[2].routes = sl_admin_store_routes(t.a[2].srv, t.n[fol].s, &fwd);
        assert_non_null(t.a[2].routes);
    }

    /* No forwarder: 503 + Retry-After, naming the leader. */
    struct call *c = call(fol, "PUT", "/v1/secrets/s", "{\"ref\":\"env:S\"}");
    assert_true(has_header(c, "Retry-After: 1\r\n"));
    assert_int_equal(jint(c->json, "leader"), leader + 1);
    expect_problem(c, 503, "does not lead");
    /* Invalid bodies are refused on the follower itself. */
    expect_problem(call(fol, "PUT", "/v1/secrets/s", "{}"), 400, "ref: required");
    c = call(fol, "GET", "/v1/secrets?consistent=true", NULL);
    assert_true(has_header(c, "Retry-After: 1\r\n"));
    expect_problem(c, 503, "does not lead");

    /* With a forwarder: called with the leader's id, for writes and consistent reads. */
    expect(2, "PUT", "/v1/secrets/s", "{\"ref\":\"env:S\"}", 200);
    assert_int_equal(fw.calls, 1);
    assert_true(fw.leader_id == (uint64_t)leader + 1);
    expect(2, "DELETE", "/v1/proxies/p", NULL, 200);
    expect(2, "GET", "/v1/proxies?consistent=true", NULL, 200);
    assert_int_equal(fw.calls, 3);
    /* The follower names itself as the origin (its Raft id until the node gives its id). */
    char fol_id[8];
    snprintf(fol_id, sizeof fol_id, "%u", fol + 1);
    assert_string_equal(fw.origin, fol_id);
    sl_admin_store_routes_set_node(t.a[2].routes, "node-b");
    expect(2, "PUT", "/v1/proxies/p/writer", "{\"target\":\"db1\"}", 200);
    assert_int_equal(fw.calls, 4);
    assert_string_equal(fw.origin, "node-b");
    expect_problem(call(2, "PUT", "/v1/proxies/p/writer", "{\"target\":\"db 1\"}"), 400,
                   "target: must be");
    assert_int_equal(fw.calls, 4);
    /* Already forwarded: no second hop. */
    c = call_start(2, "PUT", "/v1/secrets/s", AUTH_H "X-Sluice-Forwarded: 1\r\n",
                   "{\"ref\":\"env:S\"}");
    call_wait(c);
    assert_true(has_header(c, "Retry-After: 1\r\n"));
    expect_problem(c, 503, "forwarded here");
    assert_int_equal(fw.calls, 4);

    /* Plain reads are served by the follower from its applied state. */
    expect(leader, "PUT", "/v1/secrets/s", "{\"ref\":\"env:S\"}", 200);
    c = call(fol, "GET", "/v1/cluster", NULL);
    assert_int_equal(jint(c->json, "leader"), leader + 1);
    assert_int_equal(json_array_size(json_object_get(c->json, "nodes")), 2);
    call_free(c);

    /* Membership through the leader: a third node (started, never bootstrapped) joins... */
    open_store(2);
    assert_int_equal(sl_store_start(t.n[2].s), SL_STORE_OK);
    char body[256];
    snprintf(body, sizeof body,
             "{\"id\":3,\"raft_address\":\"%s\",\"admin_url\":\"http://127.0.0.1:1\","
             "\"data_address\":\"127.0.0.3\",\"az\":\"az-c\"}",
             t.n[2].addr);
    expect_problem(call(leader, "POST", "/v1/cluster/nodes", "{\"id\":3}"), 400,
                   "raft_address: required");
    c = call(leader, "POST", "/v1/cluster/nodes", body);
    if (c->status != 200)
        fail_msg("add: %d %s", c->status, c->body);
    assert_string_equal(jstr(c->json, "az"), "az-c");
    call_free(c);
    c = call(leader, "GET", "/v1/cluster", NULL);
    json_t *nodes = json_object_get(c->json, "nodes");
    assert_int_equal(json_array_size(nodes), 3);
    json_t *third = json_array_get(nodes, 2);
    assert_int_equal(jint(third, "id"), 3);
    assert_string_equal(jstr(third, "role"), "voter");
    assert_string_equal(jstr(third, "az"), "az-c");
    assert_string_equal(jstr(third, "admin_url"), "http://127.0.0.1:1");
    uint64_t want = (uint64_t)jint(c->json, "commit_index");
    call_free(c);
    assert_true(run_until(node_applied, &want, WAIT_MS));
    /* POST again: only the description changes; the same id elsewhere is a conflict. */
    snprintf(body, sizeof body,
             "{\"id\":3,\"raft_address\":\"%s\",\"admin_url\":\"http://127.0.0.1:1\","
             "\"data_address\":\"127.0.0.3\",\"az\":\"az-d\"}",
             t.n[2].addr);
    c = call(leader, "POST", "/v1/cluster/nodes", body);
    assert_int_equal(c->status, 200);
    assert_string_equal(jstr(c->json, "az"), "az-d");
    call_free(c);
    expect_problem(call(leader, "POST", "/v1/cluster/nodes",
                        "{\"id\":3,\"raft_address\":\"127.0.0.1:1\",\"admin_url\":\"http://h:1\","
                        "\"data_address\":\"127.0.0.3\",\"az\":\"a\"}"),
                   409, "node 3 is a member at");

    /* ...and leaves; its description goes with it. */
    expect_problem(call(leader, "DELETE", "/v1/cluster/nodes/0", NULL), 400, "id: must be");
    expect_problem(call(leader, "DELETE", "/v1/cluster/nodes/9", NULL), 404, "no node 9");
    expect(leader, "DELETE", "/v1/cluster/nodes/3", NULL, 200);
    c = call(leader, "GET", "/v1/cluster", NULL);
    assert_int_equal(json_array_size(json_object_get(c->json, "nodes")), 2);
    call_free(c);
    expect(leader, "GET", "/v1/secrets", NULL, 200);
    char *text = NULL;
    uint64_t rev;
    assert_int_equal(sl_store_get(t.n[leader].s, SL_RAFT_NODE, "3", NULL, &text, &rev), 1);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN); /* raft_uv writes to peers that may have gone */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_single, setup, teardown),
        cmocka_unit_test_setup_teardown(test_writer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_follower, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
