#include "base/config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "base/log.h"
#include "base/secret.h"

#define CONFIG_FILE_MAX    (1024 * 1024)
#define NAME_MAX_LEN       63
#define HOST_MAX_LEN       255
#define PATH_LABEL_MAX     160
#define KEY_LABEL_MAX      64
#define DEFAULT_LISTEN     "127.0.0.1"
#define DEFAULT_MAX_PACKET (64u * 1024 * 1024)
#define MAX_PACKET_LIMIT   (1024LL * 1024 * 1024)
#define DEFAULT_REPLAY_MAX (1024 * 1024) /* connection_pool_config.transaction_replay_max_size */
#define REPLAY_MAX_LIMIT   (64LL * 1024 * 1024)

/* One JSON object being read: the object (NULL when the key was absent, which every getter treats
 * as "all fields absent"), its dotted path for messages ("" for the root) and the error sink. */
struct jobj {
    json_t *obj;
    const char *path;
    char *err;
    size_t errlen;
};

static void join_path(char *dst, size_t cap, const char *path, const char *key)
{
    snprintf(dst, cap, "%s%s%s", path, *path ? "." : "", key);
}

/* Writes "<path>.<key>: <reason>" (the key part only when KEY is given) and returns -1. */
static int fail(const struct jobj *o, const char *key, const char *fmt, ...) SL_PRINTF(3, 4);

static int fail(const struct jobj *o, const char *key, const char *fmt, ...)
{
    char where[PATH_LABEL_MAX];
    char reason[256];
    va_list ap;

    if (key)
        join_path(where, sizeof where, o->path, key);
    else
        snprintf(where, sizeof where, "%s", o->path);
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    if (*where)
        snprintf(o->err, o->errlen, "%s: %s", where, reason);
    else
        snprintf(o->err, o->errlen, "%s", reason);
    return -1;
}

static int fail_oom(const struct jobj *o)
{
    return fail(o, NULL, "out of memory");
}

/* Object keys come from the operator's file: keep them short and printable in messages so a
 * stray control character or a megabyte-long key cannot mangle the log line. */
static void key_label(char *dst, size_t cap, const char *key)
{
    size_t n = 0;
    for (; *key && n + 4 < cap; key++) /* room left for "..." and the NUL */
        dst[n++] = (*key >= 0x20 && *key < 0x7f) ? *key : '?';
    snprintf(dst + n, cap - n, "%s", *key ? "..." : "");
}

/* Rejects keys not in ALLOWED (NULL-terminated): a mistyped option must not be silently ignored. */
static int check_keys(const struct jobj *o, const char *const *allowed)
{
    const char *key;
    json_t *v;

    if (!o->obj)
        return 0;
    json_object_foreach(o->obj, key, v)
    {
        size_t i = 0;
        while (allowed[i] && strcmp(allowed[i], key) != 0)
            i++;
        if (!allowed[i]) {
            char label[KEY_LABEL_MAX + 4];
            key_label(label, sizeof label, key);
            return fail(o, label, "unknown key");
        }
    }
    return 0;
}

/* *out is the value of KEY, or NULL when absent (an error if REQUIRED). JSON null counts as
 * a wrong type rather than "absent" so that {"port": null} is reported, not defaulted. */
static int get_value(const struct jobj *o, const char *key, bool required, json_t **out)
{
    *out = o->obj ? json_object_get(o->obj, key) : NULL;
    if (!*out && required)
        return fail(o, key, "required");
    return 0;
}

/* Getters leave *out untouched when the key is absent, so callers preset the default. */
static int get_string(const struct jobj *o, const char *key, bool required, const char **out)
{
    json_t *v;

    if (get_value(o, key, required, &v))
        return -1;
    if (!v)
        return 0;
    if (!json_is_string(v))
        return fail(o, key, "must be a string");
    *out = json_string_value(v);
    return 0;
}

static int get_int(const struct jobj *o, const char *key, bool required, long long lo, long long hi,
                   long long *out)
{
    json_t *v;

    if (get_value(o, key, required, &v))
        return -1;
    if (!v)
        return 0;
    if (!json_is_integer(v))
        return fail(o, key, "must be an integer");
    json_int_t n = json_integer_value(v);
    if (n < lo || n > hi)
        return fail(o, key, "must be %lld..%lld", lo, hi);
    *out = n;
    return 0;
}

static int get_bool(const struct jobj *o, const char *key, bool *out)
{
    json_t *v;

    if (get_value(o, key, false, &v))
        return -1;
    if (!v)
        return 0;
    if (!json_is_boolean(v))
        return fail(o, key, "must be true or false");
    *out = json_is_true(v);
    return 0;
}

/* Opens the object under KEY as CHILD; PATH is the caller's storage for the child's path. */
static int get_object(const struct jobj *o, const char *key, bool required, char *path, size_t cap,
                      struct jobj *child)
{
    json_t *v;

    if (get_value(o, key, required, &v))
        return -1;
    if (v && !json_is_object(v))
        return fail(o, key, "must be an object");
    join_path(path, cap, o->path, key);
    *child = (struct jobj){.obj = v, .path = path, .err = o->err, .errlen = o->errlen};
    return 0;
}

/* A required, non-empty array. */
static int get_list(const struct jobj *o, const char *key, json_t **out)
{
    if (get_value(o, key, true, out))
        return -1;
    if (!json_is_array(*out))
        return fail(o, key, "must be an array");
    if (json_array_size(*out) == 0)
        return fail(o, key, "must have at least one entry");
    return 0;
}

/* Element I of the array under KEY, which must be an object, as CHILD at "<path>.<key>[i]". */
static int list_object(const struct jobj *o, const char *key, json_t *arr, size_t i, char *path,
                       size_t cap, struct jobj *child)
{
    json_t *v = json_array_get(arr, i);

    snprintf(path, cap, "%s%s%s[%zu]", o->path, *o->path ? "." : "", key, i);
    *child = (struct jobj){.obj = v, .path = path, .err = o->err, .errlen = o->errlen};
    if (!json_is_object(v))
        return fail(child, NULL, "must be an object");
    return 0;
}

static int dup_string(const struct jobj *o, const char *s, char **out)
{
    *out = strdup(s);
    return *out ? 0 : fail_oom(o);
}

/* 1..63 characters from [A-Za-z0-9] plus EXTRA. Names end up in logfmt lines and metric labels
 * unquoted, hence the narrow alphabet. */
static bool is_name(const char *s, const char *extra)
{
    size_t n = strlen(s);

    if (n == 0 || n > NAME_MAX_LEN)
        return false;
    for (; *s; s++) {
        bool alnum =
            (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9');
        if (!alnum && !strchr(extra, *s))
            return false;
    }
    return true;
}

static int get_name(const struct jobj *o, const char *key, bool required, const char *def,
                    const char *extra, char **out)
{
    const char *s = def;

    if (get_string(o, key, required, &s))
        return -1;
    if (!is_name(s, extra))
        return fail(o, key, "must be 1..%d characters from [A-Za-z0-9%s]", NAME_MAX_LEN, extra);
    return dup_string(o, s, out);
}

static int get_host(const struct jobj *o, const char *key, bool required, const char *def,
                    char **out)
{
    const char *s = def;

    if (get_string(o, key, required, &s))
        return -1;
    size_t n = strlen(s);
    if (n == 0 || n > HOST_MAX_LEN)
        return fail(o, key, "must be 1..%d bytes", HOST_MAX_LEN);
    return dup_string(o, s, out);
}

static int get_port(const struct jobj *o, const char *key, bool required, uint16_t def,
                    uint16_t *out)
{
    long long v = def;

    if (get_int(o, key, required, 1, 65535, &v))
        return -1;
    *out = (uint16_t)v;
    return 0;
}

static int parse_node(const struct jobj *root, struct sl_config *cfg)
{
    static const char *const keys[] = {"id", "az", "drain_timeout", NULL};
    char path[PATH_LABEL_MAX];
    struct jobj node;
    long long drain = 30;

    if (get_object(root, "node", false, path, sizeof path, &node) || check_keys(&node, keys) ||
        get_name(&node, "id", false, "node1", "._-", &cfg->node_id) ||
        get_name(&node, "az", false, "local", "._-", &cfg->az) ||
        get_int(&node, "drain_timeout", false, 0, 3600, &drain))
        return -1;
    cfg->drain_timeout = (unsigned)drain;
    return 0;
}

/* Both files or neither: a lone certificate or key is a half-finished edit, not a choice. */
static int parse_tls(const struct jobj *root, struct sl_config *cfg)
{
    static const char *const keys[] = {"cert_file", "key_file", NULL};
    char **dst[] = {&cfg->tls_cert_file, &cfg->tls_key_file};
    char path[PATH_LABEL_MAX];
    struct jobj tls;

    if (get_object(root, "tls", false, path, sizeof path, &tls) || check_keys(&tls, keys))
        return -1;
    if (!tls.obj)
        return 0;
    for (size_t i = 0; i < 2; i++) {
        const char *s = NULL;
        if (get_string(&tls, keys[i], true, &s))
            return -1;
        if (!*s)
            return fail(&tls, keys[i], "must not be empty");
        if (dup_string(&tls, s, dst[i]))
            return -1;
    }
    return 0;
}

static int parse_admin(const struct jobj *root, struct sl_config *cfg)
{
    static const char *const keys[] = {"host", "port", "token", "tls", "ca_file", NULL};
    char path[PATH_LABEL_MAX];
    struct jobj admin;
    const char *token = NULL;

    if (get_object(root, "admin", false, path, sizeof path, &admin) || check_keys(&admin, keys))
        return -1;
    if (!admin.obj)
        return 0;
    if (!(cfg->admin = calloc(1, sizeof *cfg->admin)))
        return fail_oom(&admin);
    if (get_host(&admin, "host", false, DEFAULT_LISTEN, &cfg->admin->host) ||
        get_port(&admin, "port", true, 0, &cfg->admin->port) ||
        get_bool(&admin, "tls", &cfg->admin->tls) || get_string(&admin, "token", true, &token))
        return -1;
    if (!sl_secret_ref_valid(token))
        return fail(&admin, "token", "must be a secret reference: \"file:/path\" or \"env:NAME\"");
    if (dup_string(&admin, token, &cfg->admin->token))
        return -1;
    const char *ca = NULL;
    if (get_string(&admin, "ca_file", false, &ca))
        return -1;
    if (ca && !*ca)
        return fail(&admin, "ca_file", "must not be empty");
    if (ca && dup_string(&admin, ca, &cfg->admin->ca_file))
        return -1;
    if (cfg->admin->tls && !cfg->tls_cert_file)
        return fail(root, "tls", "required because admin.tls is true");
    return 0;
}

/* Allocates a zeroed array for the entries of ARR; *n is set first so that sl_config_free() can
 * walk a partly filled array after an error. */
static void *alloc_list(const struct jobj *o, json_t *arr, size_t size, size_t *n)
{
    void *p = calloc(json_array_size(arr), size);

    if (!p) {
        fail_oom(o);
        return NULL;
    }
    *n = json_array_size(arr);
    return p;
}

/* A dotted-quad IPv4 address: libraft 0.15 takes no host names (shared/notes/raft.md, item 11),
 * and data addresses are compared and bound as given. */
static bool is_ipv4(const char *s, size_t len)
{
    char buf[INET_ADDRSTRLEN];
    struct in_addr a;

    if (len == 0 || len >= sizeof buf)
        return false;
    memcpy(buf, s, len);
    buf[len] = '\0';
    return inet_pton(AF_INET, buf, &a) == 1;
}

/* "a.b.c.d:port" with a port of 1..65535 in plain digits. Without a port libraft would silently
 * listen on 8080, hence required. */
static bool is_raft_address(const char *s)
{
    const char *colon = strrchr(s, ':');
    unsigned long port = 0;

    if (!colon || !is_ipv4(s, (size_t)(colon - s)) || !colon[1] || strlen(colon + 1) > 5)
        return false;
    for (const char *c = colon + 1; *c; c++) {
        if (*c < '0' || *c > '9')
            return false;
        port = port * 10 + (unsigned long)(*c - '0');
    }
    return port >= 1 && port <= 65535;
}

/* "http://authority" or "https://authority": no path, query, fragment, blanks or control bytes,
 * so that the forwarder can append a request target to it. */
static bool is_admin_url(const char *s)
{
    const char *rest;

    if (strncmp(s, "http://", 7) == 0)
        rest = s + 7;
    else if (strncmp(s, "https://", 8) == 0)
        rest = s + 8;
    else
        return false;
    if (!*rest || strlen(s) > HOST_MAX_LEN)
        return false;
    for (; *rest; rest++) {
        if (*rest <= 0x20 || *rest >= 0x7f || strchr("/?#@", *rest))
            return false;
    }
    return true;
}

static int get_checked(const struct jobj *o, const char *key, bool (*valid)(const char *),
                       const char *expected, char **out)
{
    const char *s = NULL;

    if (get_string(o, key, true, &s))
        return -1;
    if (!valid(s))
        return fail(o, key, "must be %s", expected);
    return dup_string(o, s, out);
}

static bool is_ipv4_string(const char *s)
{
    return is_ipv4(s, strlen(s));
}

static bool is_abs_path(const char *s)
{
    return s[0] == '/' && strlen(s) <= 4000;
}

static int get_raft_id(const struct jobj *o, uint64_t *out)
{
    long long id = 0;

    if (get_int(o, "id", true, 1, INT64_MAX, &id))
        return -1;
    *out = (uint64_t)id;
    return 0;
}

static int parse_member(const struct jobj *m, struct sl_cluster_member *mem)
{
    static const char *const keys[] = {"id",           "raft_address", "admin_url",
                                       "data_address", "az",           NULL};

    if (check_keys(m, keys) || get_raft_id(m, &mem->id) ||
        get_checked(m, "raft_address", is_raft_address, "an IPv4 \"a.b.c.d:port\"",
                    &mem->raft_address) ||
        get_checked(m, "admin_url", is_admin_url, "\"http://host:port\" or \"https://host:port\"",
                    &mem->admin_url) ||
        get_checked(m, "data_address", is_ipv4_string, "an IPv4 address", &mem->data_address) ||
        get_name(m, "az", false, "local", "._-", &mem->az))
        return -1;
    return 0;
}

/* initial_members: unique ids and raft addresses, and this node among them (with its own raft
 * address), since the list becomes the voter set this node bootstraps with. */
static int check_members(const struct jobj *cl, const struct sl_cluster_config *c)
{
    char path[PATH_LABEL_MAX];
    struct jobj at = *cl;
    bool self = false;

    at.path = path;
    for (size_t i = 0; i < c->n_initial_members; i++) {
        const struct sl_cluster_member *m = &c->initial_members[i];
        snprintf(path, sizeof path, "%s.initial_members[%zu]", cl->path, i);
        for (size_t j = 0; j < i; j++) {
            if (m->id == c->initial_members[j].id)
                return fail(&at, "id", "%llu is already used by initial_members[%zu]",
                            (unsigned long long)m->id, j);
            if (strcmp(m->raft_address, c->initial_members[j].raft_address) == 0)
                return fail(&at, "raft_address", "already used by initial_members[%zu]", j);
        }
        if (m->id == c->id) {
            if (strcmp(m->raft_address, c->raft_address) != 0)
                return fail(&at, "raft_address", "must equal cluster.raft_address for this node");
            self = true;
        }
    }
    if (c->n_initial_members > 0 && !self)
        return fail(cl, "initial_members", "must include this node (id %llu)",
                    (unsigned long long)c->id);
    return 0;
}

static int parse_cluster(const struct jobj *root, struct sl_config *cfg)
{
    static const char *const keys[] = {"id",
                                       "raft_address",
                                       "data_dir",
                                       "data_address",
                                       "initial_members",
                                       "snapshot_threshold",
                                       "snapshot_trailing",
                                       NULL};
    long long threshold = 1024, trailing = 2048;
    char path[PATH_LABEL_MAX], mpath[PATH_LABEL_MAX];
    struct jobj cl, child;
    json_t *members;

    if (get_object(root, "cluster", false, path, sizeof path, &cl) || check_keys(&cl, keys))
        return -1;
    if (!cl.obj)
        return 0;
    struct sl_cluster_config *c = cfg->cluster = calloc(1, sizeof *cfg->cluster);
    if (!c)
        return fail_oom(&cl);
    if (get_raft_id(&cl, &c->id) ||
        get_checked(&cl, "raft_address", is_raft_address, "an IPv4 \"a.b.c.d:port\"",
                    &c->raft_address) ||
        get_checked(&cl, "data_dir", is_abs_path, "an absolute path", &c->data_dir) ||
        get_checked(&cl, "data_address", is_ipv4_string, "an IPv4 address", &c->data_address) ||
        get_int(&cl, "snapshot_threshold", false, 16, 1000000, &threshold) ||
        get_int(&cl, "snapshot_trailing", false, 1, 1000000, &trailing) ||
        get_value(&cl, "initial_members", false, &members))
        return -1;
    c->snapshot_threshold = (unsigned)threshold;
    c->snapshot_trailing = (unsigned)trailing;
    if (members) {
        if (!json_is_array(members))
            return fail(&cl, "initial_members", "must be an array");
        if (json_array_size(members) > 0 &&
            !(c->initial_members =
                  alloc_list(&cl, members, sizeof *c->initial_members, &c->n_initial_members)))
            return -1;
        for (size_t i = 0; i < c->n_initial_members; i++) {
            if (list_object(&cl, "initial_members", members, i, mpath, sizeof mpath, &child) ||
                parse_member(&child, &c->initial_members[i]))
                return -1;
        }
    }
    return check_members(&cl, c);
}

static int parse_listen(const struct jobj *px, struct sl_proxy_config *p)
{
    static const char *const keys[] = {"host", "port", NULL};
    char path[PATH_LABEL_MAX];
    struct jobj listen;

    if (get_object(px, "listen", true, path, sizeof path, &listen) || check_keys(&listen, keys) ||
        get_host(&listen, "host", false, DEFAULT_LISTEN, &p->listen_host) ||
        get_port(&listen, "port", true, 0, &p->listen_port))
        return -1;
    return 0;
}

static int parse_auth_entry(const struct jobj *a, struct sl_auth_config *auth)
{
    static const char *const keys[] = {"auth_scheme", "secret", "client_password_auth_type",
                                       "description", NULL};
    const char *scheme = "SECRETS";
    const char *secret = NULL;
    const char *type = "MYSQL_NATIVE_PASSWORD";
    const char *desc = NULL;

    if (check_keys(a, keys) || get_string(a, "auth_scheme", false, &scheme))
        return -1;
    if (strcmp(scheme, "SECRETS") != 0)
        return fail(a, "auth_scheme", "must be \"SECRETS\"");
    if (get_string(a, "secret", true, &secret))
        return -1;
    if (!sl_secret_ref_valid(secret))
        return fail(a, "secret", "must be \"file:/absolute/path\" or \"env:NAME\"");
    if (get_string(a, "client_password_auth_type", false, &type))
        return -1;
    if (strcmp(type, "MYSQL_NATIVE_PASSWORD") == 0)
        auth->client_auth = SL_AUTH_MYSQL_NATIVE_PASSWORD;
    else if (strcmp(type, "MYSQL_CACHING_SHA2_PASSWORD") == 0)
        auth->client_auth = SL_AUTH_MYSQL_CACHING_SHA2;
    else
        return fail(a, "client_password_auth_type",
                    "must be \"MYSQL_NATIVE_PASSWORD\" or \"MYSQL_CACHING_SHA2_PASSWORD\"");
    if (get_string(a, "description", false, &desc) || dup_string(a, secret, &auth->secret))
        return -1;
    return desc ? dup_string(a, desc, &auth->description) : 0;
}

static int parse_pinning_filters(const struct jobj *pc, struct sl_pool_config *pool)
{
    json_t *arr;

    if (get_value(pc, "session_pinning_filters", false, &arr))
        return -1;
    if (!arr)
        return 0;
    if (!json_is_array(arr))
        return fail(pc, "session_pinning_filters", "must be an array");
    for (size_t i = 0; i < json_array_size(arr); i++) {
        const char *s = json_string_value(json_array_get(arr, i));
        if (!s || strcmp(s, "EXCLUDE_VARIABLE_SETS") != 0) {
            char key[64];
            snprintf(key, sizeof key, "session_pinning_filters[%zu]", i);
            return fail(pc, key, "must be \"EXCLUDE_VARIABLE_SETS\"");
        }
        pool->exclude_variable_sets = true;
    }
    return 0;
}

static int parse_health_check(const struct jobj *px, struct sl_health_check_config *hc)
{
    static const char *const keys[] = {"interval_ms", "timeout_ms", "failures", NULL};
    char path[PATH_LABEL_MAX];
    struct jobj o;
    long long interval = 500, timeout = 1000, failures = 2;
    if (get_object(px, "health_check", false, path, sizeof path, &o) || check_keys(&o, keys) ||
        get_int(&o, "interval_ms", false, 100, 60000, &interval) ||
        get_int(&o, "timeout_ms", false, 1000, 60000, &timeout) ||
        get_int(&o, "failures", false, 1, 10, &failures))
        return -1;
    hc->interval_ms = (unsigned)interval;
    hc->timeout_ms = (unsigned)timeout;
    hc->failures = (unsigned)failures;
    return 0;
}

static int parse_pool(const struct jobj *px, struct sl_pool_config *pool)
{
    static const char *const keys[] = {
        "max_connections_percent",     "max_idle_connections_percent",
        "connection_borrow_timeout",   "init_query",
        "session_pinning_filters",     "transaction_replay",
        "transaction_replay_max_size", NULL};
    char path[PATH_LABEL_MAX];
    struct jobj pc;
    long long max = 100, idle, borrow = 120, replay_max = DEFAULT_REPLAY_MAX;
    const char *init = NULL;

    if (get_object(px, "connection_pool_config", false, path, sizeof path, &pc) ||
        check_keys(&pc, keys) || get_int(&pc, "max_connections_percent", false, 1, 100, &max))
        return -1;
    /* RDS Proxy's default is half of max_connections_percent, i.e. 50 when that is left at 100;
     * a fixed 50 would make a config that only lowers max_connections_percent invalid. */
    idle = max / 2;
    if (get_int(&pc, "max_idle_connections_percent", false, 0, 100, &idle))
        return -1;
    if (idle > max)
        return fail(&pc, "max_idle_connections_percent",
                    "must be 0..max_connections_percent (%lld)", max);
    if (get_int(&pc, "connection_borrow_timeout", false, 0, 3600, &borrow) ||
        get_string(&pc, "init_query", false, &init) || parse_pinning_filters(&pc, pool))
        return -1;
    if (get_bool(&pc, "transaction_replay", &pool->transaction_replay) ||
        get_int(&pc, "transaction_replay_max_size", false, 1024, REPLAY_MAX_LIMIT, &replay_max))
        return -1;
    pool->max_connections_percent = (unsigned)max;
    pool->max_idle_connections_percent = (unsigned)idle;
    pool->connection_borrow_timeout = (unsigned)borrow;
    pool->transaction_replay_max_size = (uint32_t)replay_max;
    /* An empty init_query means "none", so the pool never sends an empty statement. */
    return init && *init ? dup_string(&pc, init, &pool->init_query) : 0;
}

static int parse_target(const struct jobj *t, struct sl_target_config *target)
{
    static const char *const keys[] = {"host", "port", NULL};

    if (check_keys(t, keys) || get_host(t, "host", true, NULL, &target->host) ||
        get_port(t, "port", false, 3306, &target->port))
        return -1;
    return 0;
}

static int parse_proxy(const struct jobj *px, struct sl_proxy_config *p)
{
    static const char *const keys[] = {
        "name",          "listen",          "require_tls",  "idle_client_timeout",
        "debug_logging", "max_packet_size", "auth",         "connection_pool_config",
        "targets",       "routing",         "health_check", NULL};
    char path[PATH_LABEL_MAX];
    struct jobj child;
    long long idle = 1800, max_packet = DEFAULT_MAX_PACKET;
    json_t *auth, *targets;

    p->require_tls = true;
    if (check_keys(px, keys) || get_name(px, "name", true, NULL, "._-", &p->name) ||
        parse_listen(px, p) || get_bool(px, "require_tls", &p->require_tls) ||
        get_int(px, "idle_client_timeout", false, 1, 28800, &idle) ||
        get_bool(px, "debug_logging", &p->debug_logging) ||
        get_int(px, "max_packet_size", false, 1024, MAX_PACKET_LIMIT, &max_packet))
        return -1;
    const char *routing = "READ_WRITE";
    if (get_string(px, "routing", false, &routing))
        return -1;
    if (strcmp(routing, "READ_ONLY") == 0)
        p->read_only_routing = true;
    else if (strcmp(routing, "READ_WRITE") != 0)
        return fail(px, "routing", "must be \"READ_WRITE\" or \"READ_ONLY\"");
    p->idle_client_timeout = (unsigned)idle;
    p->max_packet_size = (uint32_t)max_packet;

    if (get_list(px, "auth", &auth) ||
        !(p->auth = alloc_list(px, auth, sizeof *p->auth, &p->n_auth)))
        return -1;
    for (size_t i = 0; i < p->n_auth; i++) {
        if (list_object(px, "auth", auth, i, path, sizeof path, &child) ||
            parse_auth_entry(&child, &p->auth[i]))
            return -1;
    }
    if (parse_pool(px, &p->pool) || parse_health_check(px, &p->health_check) ||
        get_list(px, "targets", &targets) ||
        !(p->targets = alloc_list(px, targets, sizeof *p->targets, &p->n_targets)))
        return -1;
    for (size_t i = 0; i < p->n_targets; i++) {
        if (list_object(px, "targets", targets, i, path, sizeof path, &child) ||
            parse_target(&child, &p->targets[i]))
            return -1;
    }
    return 0;
}

/* Rules that span proxies: unique names and ports, and TLS material for any proxy requiring it. */
static int check_proxies(const struct jobj *root, const struct sl_config *cfg)
{
    char path[PATH_LABEL_MAX];
    struct jobj at = *root;

    at.path = path;
    for (size_t i = 0; i < cfg->n_proxies; i++) {
        const struct sl_proxy_config *p = &cfg->proxies[i];
        snprintf(path, sizeof path, "proxies[%zu]", i);
        for (size_t j = 0; j < i; j++) {
            if (strcmp(p->name, cfg->proxies[j].name) == 0)
                return fail(&at, "name", "\"%s\" is already used by proxies[%zu]", p->name, j);
            if (p->listen_port == cfg->proxies[j].listen_port)
                return fail(&at, "listen.port", "%u is already used by proxies[%zu]",
                            (unsigned)p->listen_port, j);
        }
        if (p->require_tls && !cfg->tls_cert_file)
            return fail(root, "tls", "required because proxies[%zu].require_tls is true", i);
    }
    return 0;
}

/* The "proxies" array: required except in a cluster node's file, where it must be absent (the
 * store is the only source of proxies); empty only in a document generated from the store. */
static int get_proxies(const struct jobj *root, enum sl_config_origin origin,
                       const struct sl_config *cfg, json_t **out)
{
    if (cfg->cluster) {
        if (json_object_get(root->obj, "proxies"))
            return fail(root, "proxies",
                        "not allowed with \"cluster\" (the cluster's store holds the proxies)");
        if (!cfg->admin)
            return fail(root, "admin", "required with \"cluster\"");
        /* Followers forward writes to the leader's admin API: over https they must be able to
         * check the leader's certificate. */
        if (cfg->admin->tls && !cfg->admin->ca_file)
            return fail(root, "admin.ca_file",
                        "required with \"cluster\" and admin.tls (to check the other nodes' "
                        "certificates when writes are forwarded)");
        *out = NULL;
        return 0;
    }
    if (origin == SL_CONFIG_FILE)
        return get_list(root, "proxies", out);
    if (get_value(root, "proxies", true, out))
        return -1;
    return json_is_array(*out) ? 0 : fail(root, "proxies", "must be an array");
}

static int parse_root(const struct jobj *root, enum sl_config_origin origin, struct sl_config *cfg)
{
    static const char *const file_keys[] = {"node", "tls", "admin", "cluster", "proxies", NULL};
    static const char *const store_keys[] = {"node", "tls", "admin", "proxies", NULL};
    char path[PATH_LABEL_MAX];
    struct jobj child;
    json_t *proxies;

    if (check_keys(root, origin == SL_CONFIG_FILE ? file_keys : store_keys) ||
        parse_node(root, cfg) || parse_tls(root, cfg) || parse_admin(root, cfg) ||
        parse_cluster(root, cfg) || get_proxies(root, origin, cfg, &proxies))
        return -1;
    if (!proxies || json_array_size(proxies) == 0)
        return 0;
    if (!(cfg->proxies = alloc_list(root, proxies, sizeof *cfg->proxies, &cfg->n_proxies)))
        return -1;
    for (size_t i = 0; i < cfg->n_proxies; i++) {
        if (list_object(root, "proxies", proxies, i, path, sizeof path, &child) ||
            parse_proxy(&child, &cfg->proxies[i]))
            return -1;
    }
    return check_proxies(root, cfg);
}

int sl_config_parse(const char *json, size_t len, struct sl_config **out, char *err, size_t errlen)
{
    return sl_config_parse_from(SL_CONFIG_FILE, json, len, out, err, errlen);
}

int sl_config_parse_from(enum sl_config_origin origin, const char *json, size_t len,
                         struct sl_config **out, char *err, size_t errlen)
{
    struct jobj root = {.path = "", .err = err, .errlen = errlen};
    json_error_t jerr;
    struct sl_config *cfg;
    int rc = -1;

    *out = NULL;
    root.obj = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root.obj) {
        /* jansson's text may quote the document; a config holds no secrets, so that is fine. */
        return fail(&root, NULL, "invalid JSON at line %d column %d: %s", jerr.line, jerr.column,
                    jerr.text);
    }
    if (!json_is_object(root.obj)) {
        fail(&root, NULL, "the document must be a JSON object");
    } else if (!(cfg = calloc(1, sizeof *cfg))) {
        fail_oom(&root);
    } else if (parse_root(&root, origin, cfg)) {
        sl_config_free(cfg); /* frees whatever the failed parse had filled in */
    } else {
        *out = cfg;
        rc = 0;
    }
    json_decref(root.obj);
    return rc;
}

int sl_config_load(const char *path, struct sl_config **out, char *err, size_t errlen)
{
    char ebuf[128];
    size_t n = 0;
    char *buf;
    int fd, rc;

    *out = NULL;
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror_r(errno, ebuf, sizeof ebuf));
        return -1;
    }
    /* Read up to one byte past the limit rather than trusting st_size, so pipes work too. */
    buf = malloc(CONFIG_FILE_MAX + 1);
    if (!buf) {
        snprintf(err, errlen, "%s: out of memory", path);
        close(fd);
        return -1;
    }
    while (n <= CONFIG_FILE_MAX) {
        ssize_t r = read(fd, buf + n, CONFIG_FILE_MAX + 1 - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            snprintf(err, errlen, "%s: %s", path, strerror_r(errno, ebuf, sizeof ebuf));
            goto fail;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    if (n > CONFIG_FILE_MAX) {
        snprintf(err, errlen, "%s: larger than %d bytes", path, CONFIG_FILE_MAX);
        goto fail;
    }
    close(fd);
    rc = sl_config_parse(buf, n, out, err, errlen);
    free(buf);
    return rc;

fail:
    close(fd);
    free(buf);
    return -1;
}

void sl_config_free(struct sl_config *cfg)
{
    if (!cfg)
        return;
    for (size_t i = 0; i < cfg->n_proxies; i++) {
        struct sl_proxy_config *p = &cfg->proxies[i];
        free(p->name);
        free(p->listen_host);
        for (size_t j = 0; j < p->n_auth; j++) {
            free(p->auth[j].secret);
            free(p->auth[j].description);
        }
        free(p->auth);
        free(p->pool.init_query);
        for (size_t j = 0; j < p->n_targets; j++)
            free(p->targets[j].host);
        free(p->targets);
    }
    free(cfg->proxies);
    if (cfg->cluster) {
        for (size_t i = 0; i < cfg->cluster->n_initial_members; i++) {
            struct sl_cluster_member *m = &cfg->cluster->initial_members[i];
            free(m->raft_address);
            free(m->admin_url);
            free(m->data_address);
            free(m->az);
        }
        free(cfg->cluster->initial_members);
        free(cfg->cluster->raft_address);
        free(cfg->cluster->data_dir);
        free(cfg->cluster->data_address);
        free(cfg->cluster);
    }
    if (cfg->admin) {
        free(cfg->admin->host);
        free(cfg->admin->token);
        free(cfg->admin->ca_file);
        free(cfg->admin);
    }
    free(cfg->node_id);
    free(cfg->az);
    free(cfg->tls_cert_file);
    free(cfg->tls_key_file);
    free(cfg);
}

const char *sl_client_auth_type_name(enum sl_client_auth_type t)
{
    switch (t) {
    case SL_AUTH_MYSQL_NATIVE_PASSWORD: return "MYSQL_NATIVE_PASSWORD";
    case SL_AUTH_MYSQL_CACHING_SHA2: return "MYSQL_CACHING_SHA2_PASSWORD";
    }
    return "UNKNOWN"; /* only for a value outside the enum */
}
