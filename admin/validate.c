#include "admin/validate.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "base/log.h"
#include "base/secret.h"

#define NAME_RULE "must be 1..63 characters from A-Z a-z 0-9 . _ -"

/* connection_pool_config.max_connections_percent when not given (RDS Proxy's default). */
#define MAX_CONNECTIONS_PERCENT_DEFAULT 100

/* connection_pool_config.transaction_replay_max_size: bytes, as in base/config.c. */
#define REPLAY_MAX_SIZE_MIN     1024
#define REPLAY_MAX_SIZE_MAX     (64 * 1024 * 1024)
#define REPLAY_MAX_SIZE_DEFAULT (1024 * 1024)

/* Field names are built from a prefix ("auth[0]") and a key; keys come from the client, so they
 * are cut to fit rather than trusted to be short. */
#define FIELD_MAX sizeof(((struct sl_validate_error *)0)->field)

static void field_name(char *out, const char *prefix, const char *key)
{
    if (prefix && *prefix)
        snprintf(out, FIELD_MAX, "%s.%.48s", prefix, key);
    else
        snprintf(out, FIELD_MAX, "%.48s", key);
}

SL_PRINTF(3, 4)
static int fail(struct sl_validate_error *e, const char *field, const char *fmt, ...)
{
    char reason[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    e->status = 400;
    snprintf(e->field, sizeof e->field, "%s", field);
    snprintf(e->detail, sizeof e->detail, "%s: %s", field, reason);
    return -1;
}

static int oom(struct sl_validate_error *e)
{
    e->status = 500;
    snprintf(e->field, sizeof e->field, "body");
    snprintf(e->detail, sizeof e->detail, "out of memory");
    return -1;
}

static void clear(struct sl_validate_error *e)
{
    memset(e, 0, sizeof *e);
}

/* Parse the body: a JSON object, duplicate keys refused (which of two values would count is
 * otherwise the parser's choice). */
static json_t *load_object(const char *body, size_t len, struct sl_validate_error *e)
{
    json_error_t je;
    json_t *doc = len ? json_loadb(body, len, JSON_REJECT_DUPLICATES, &je) : NULL;
    if (!doc) {
        if (len)
            fail(e, "body", "not valid JSON (line %d, column %d: %.80s)", je.line, je.column,
                 je.text);
        else
            fail(e, "body", "must be a JSON object");
        return NULL;
    }
    if (!json_is_object(doc)) {
        json_decref(doc);
        fail(e, "body", "must be a JSON object");
        return NULL;
    }
    return doc;
}

/* Every key of obj must be in allowed (NULL-terminated). */
static int check_keys(json_t *obj, const char *prefix, const char *const *allowed,
                      struct sl_validate_error *e)
{
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v)
    {
        size_t i = 0;
        while (allowed[i] && strcmp(allowed[i], key) != 0)
            i++;
        if (!allowed[i]) {
            char f[FIELD_MAX];
            field_name(f, prefix, key);
            return fail(e, f, "unknown field");
        }
    }
    return 0;
}

/* Copy an integer in [min, max] (or the default when absent and has_def) to out. */
static int take_int(json_t *in, json_t *out, const char *prefix, const char *key, json_int_t min,
                    json_int_t max, bool has_def, json_int_t def, json_int_t *got,
                    struct sl_validate_error *e)
{
    char f[FIELD_MAX];
    json_t *v = json_object_get(in, key);
    json_int_t n = def;
    field_name(f, prefix, key);
    if (!v && !has_def)
        return fail(e, f, "required");
    if (v) {
        if (!json_is_integer(v))
            return fail(e, f, "must be an integer");
        n = json_integer_value(v);
        if (n < min || n > max)
            return fail(e, f, "must be %lld..%lld", (long long)min, (long long)max);
    }
    if (got)
        *got = n;
    return json_object_set_new(out, key, json_integer(n)) == 0 ? 0 : oom(e);
}

static int take_bool(json_t *in, json_t *out, const char *prefix, const char *key, bool def,
                     struct sl_validate_error *e)
{
    char f[FIELD_MAX];
    json_t *v = json_object_get(in, key);
    field_name(f, prefix, key);
    if (v && !json_is_boolean(v))
        return fail(e, f, "must be true or false");
    bool b = v ? json_is_true(v) : def;
    return json_object_set_new(out, key, json_boolean(b)) == 0 ? 0 : oom(e);
}

/* A string that must be one of choices (NULL-terminated); def NULL makes it required. */
static int take_enum(json_t *in, json_t *out, const char *prefix, const char *key,
                     const char *const *choices, const char *def, const char *rule,
                     struct sl_validate_error *e)
{
    char f[FIELD_MAX];
    json_t *v = json_object_get(in, key);
    field_name(f, prefix, key);
    if (!v && !def)
        return fail(e, f, "required");
    const char *s = v ? json_string_value(v) : def;
    size_t i = 0;
    while (s && choices[i] && strcmp(choices[i], s) != 0)
        i++;
    if (!s || !choices[i])
        return fail(e, f, "must be %s", rule);
    return json_object_set_new(out, key, json_string(s)) == 0 ? 0 : oom(e);
}

/* A string whose content check() accepts; def NULL makes it required. */
static int take_string(json_t *in, json_t *out, const char *prefix, const char *key,
                       bool (*check)(const char *s), const char *def, const char *rule,
                       const char **got, struct sl_validate_error *e)
{
    char f[FIELD_MAX];
    json_t *v = json_object_get(in, key);
    field_name(f, prefix, key);
    if (!v && !def)
        return fail(e, f, "required");
    const char *s = v ? json_string_value(v) : def;
    if (!s)
        return fail(e, f, "must be a string");
    if (check && !check(s))
        return fail(e, f, "%s", rule);
    if (got)
        *got = s;
    return json_object_set_new(out, key, json_string(s)) == 0 ? 0 : oom(e);
}

static bool name_ok(const char *s)
{
    return sl_raft_name_valid(s, strlen(s)) == 1;
}

static bool any_string(const char *s)
{
    return true;
}

/* A host name or address: 1..255 bytes, printable ASCII without spaces. */
static bool host_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 255)
        return false;
    for (size_t i = 0; i < n; i++)
        if (s[i] <= ' ' || s[i] > '~')
            return false;
    return true;
}

static bool ipv4_ok(const char *s)
{
    struct in_addr a;
    return strlen(s) <= 15 && inet_pton(AF_INET, s, &a) == 1;
}

/* Decimal 1..65535 in s[0..n), no sign, no leading zero. */
static bool port_ok(const char *s, size_t n)
{
    unsigned v = 0;
    if (n == 0 || n > 5 || s[0] == '0')
        return false;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    return v <= 65535;
}

/* "a.b.c.d:port", as the Raft store takes it (no host names). */
static bool raft_address_ok(const char *s)
{
    const char *colon = strrchr(s, ':');
    char host[16];
    if (!colon || colon == s || colon - s > 15)
        return false;
    memcpy(host, s, (size_t)(colon - s));
    host[colon - s] = '\0';
    return ipv4_ok(host) && port_ok(colon + 1, strlen(colon + 1));
}

/* "http://host:port" or "https://host:port": the base URL the other nodes forward writes to. */
static bool admin_url_ok(const char *s)
{
    const char *rest;
    if (strncmp(s, "http://", 7) == 0)
        rest = s + 7;
    else if (strncmp(s, "https://", 8) == 0)
        rest = s + 8;
    else
        return false;
    const char *colon = strrchr(rest, ':');
    if (!colon || colon == rest)
        return false;
    for (const char *p = rest; p < colon; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '.' || *p == '-'))
            return false;
    return port_ok(colon + 1, strlen(colon + 1));
}

/* "name", when present, must be the URL's (a GET, edited, sent back); it is not stored. */
static int check_name_key(json_t *in, const char *name, struct sl_validate_error *e)
{
    json_t *v = json_object_get(in, "name");
    if (v && !(json_is_string(v) && strcmp(json_string_value(v), name) == 0))
        return fail(e, "name", "must be the name in the URL (\"%s\") when present", name);
    return 0;
}

/* Dump out canonically, or NULL. */
static char *finish(json_t *in, json_t *out, int rc, struct sl_validate_error *e)
{
    char *text = NULL;
    if (rc == 0 && !(text = json_dumps(out, JSON_COMPACT | JSON_SORT_KEYS)))
        oom(e);
    json_decref(in);
    json_decref(out);
    return text;
}

int sl_validate_name(const char *what, const char *name, struct sl_validate_error *e)
{
    clear(e);
    return name_ok(name) ? 0 : fail(e, what, NAME_RULE);
}

char *sl_validate_secret(const char *body, size_t len, const char *name,
                         struct sl_validate_error *e)
{
    static const char *const keys[] = {"ref", "name", "revision", NULL};
    clear(e);
    json_t *in = load_object(body, len, e);
    if (!in)
        return NULL;
    json_t *out = json_object();
    if (!out)
        return finish(in, out, oom(e), e);
    int rc = check_keys(in, "", keys, e);
    if (rc == 0)
        rc = check_name_key(in, name, e);
    /* The rule, never the value: a password pasted here by mistake must not come back in a
     * response or a log line. */
    if (rc == 0)
        rc = take_string(in, out, "", "ref", sl_secret_ref_valid, NULL,
                         "must be \"file:\" and an absolute path, or \"env:\" and a variable name",
                         NULL, e);
    return finish(in, out, rc, e);
}

static int take_auth(json_t *in, json_t *out, struct sl_validate_error *e)
{
    static const char *const keys[] = {
        "auth_scheme", "secret", "iam_auth", "client_password_auth_type", "description", NULL};
    static const char *const schemes[] = {"SECRETS", NULL};
    static const char *const iam[] = {"DISABLED", NULL};
    static const char *const types[] = {"MYSQL_NATIVE_PASSWORD", "MYSQL_CACHING_SHA2_PASSWORD",
                                        NULL};
    json_t *list = json_object_get(in, "auth");
    if (!list)
        return fail(e, "auth", "required");
    if (!json_is_array(list) || json_array_size(list) == 0)
        return fail(e, "auth", "must be an array of at least one object");
    json_t *arr = json_array();
    if (!arr || json_object_set_new(out, "auth", arr) != 0)
        return oom(e);
    size_t i;
    json_t *a;
    json_array_foreach(list, i, a)
    {
        char p[FIELD_MAX];
        snprintf(p, sizeof p, "auth[%zu]", i);
        if (!json_is_object(a))
            return fail(e, p, "must be an object");
        json_t *o = json_object();
        if (!o || json_array_append_new(arr, o) != 0)
            return oom(e);
        int rc = check_keys(a, p, keys, e);
        if (rc == 0)
            rc = take_enum(a, o, p, "auth_scheme", schemes, "SECRETS", "SECRETS", e);
        if (rc == 0)
            rc = take_string(a, o, p, "secret", name_ok, NULL,
                             "must name a secret of /v1/secrets (" NAME_RULE ")", NULL, e);
        if (rc == 0)
            rc = take_enum(a, o, p, "iam_auth", iam, "DISABLED", "DISABLED", e);
        if (rc == 0)
            rc = take_enum(a, o, p, "client_password_auth_type", types, "MYSQL_NATIVE_PASSWORD",
                           "MYSQL_NATIVE_PASSWORD or MYSQL_CACHING_SHA2_PASSWORD", e);
        if (rc == 0)
            rc = take_string(a, o, p, "description", any_string, "", "", NULL, e);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static int take_endpoints(json_t *in, json_t *out, struct sl_validate_error *e)
{
    static const char *const keys[] = {"name", "port", "target_role", NULL};
    static const char *const roles[] = {"READ_WRITE", "READ_ONLY", NULL};
    json_t *list = json_object_get(in, "endpoints");
    if (list && !json_is_array(list))
        return fail(e, "endpoints", "must be an array");
    json_t *arr = json_array();
    if (!arr || json_object_set_new(out, "endpoints", arr) != 0)
        return oom(e);
    size_t i;
    json_t *a;
    json_array_foreach(list, i, a)
    {
        char p[FIELD_MAX];
        const char *name = NULL;
        snprintf(p, sizeof p, "endpoints[%zu]", i);
        if (!json_is_object(a))
            return fail(e, p, "must be an object");
        json_t *o = json_object();
        if (!o || json_array_append_new(arr, o) != 0)
            return oom(e);
        int rc = check_keys(a, p, keys, e);
        if (rc == 0)
            rc = take_string(a, o, p, "name", name_ok, NULL, NAME_RULE, &name, e);
        if (rc == 0)
            rc = take_int(a, o, p, "port", 1, 65535, false, 0, NULL, e);
        if (rc == 0)
            rc = take_enum(a, o, p, "target_role", roles, "READ_WRITE", "READ_WRITE or READ_ONLY",
                           e);
        if (rc != 0)
            return rc;
        for (size_t k = 0; k < i; k++) {
            const char *other = json_string_value(json_object_get(json_array_get(list, k), "name"));
            if (strcmp(other, name) == 0) {
                char f[FIELD_MAX];
                snprintf(f, sizeof f, "endpoints[%zu].name", i);
                return fail(e, f, "\"%s\" is already used by endpoints[%zu]", name, k);
            }
        }
    }
    return 0;
}

char *sl_validate_proxy(const char *body, size_t len, const char *name, struct sl_validate_error *e)
{
    static const char *const keys[] = {
        "engine_family", "listen_port", "require_tls", "idle_client_timeout",
        "debug_logging", "auth",        "endpoints",   "name",
        "revision",      NULL};
    static const char *const engines[] = {"MYSQL", NULL};
    clear(e);
    json_t *in = load_object(body, len, e);
    if (!in)
        return NULL;
    json_t *out = json_object();
    if (!out)
        return finish(in, out, oom(e), e);
    int rc = check_keys(in, "", keys, e);
    if (rc == 0)
        rc = check_name_key(in, name, e);
    if (rc == 0)
        rc = take_enum(in, out, "", "engine_family", engines, "MYSQL", "MYSQL", e);
    if (rc == 0)
        rc = take_int(in, out, "", "listen_port", 1, 65535, false, 0, NULL, e);
    if (rc == 0)
        rc = take_bool(in, out, "", "require_tls", true, e);
    if (rc == 0)
        rc = take_int(in, out, "", "idle_client_timeout", 1, 28800, true, 1800, NULL, e);
    if (rc == 0)
        rc = take_bool(in, out, "", "debug_logging", false, e);
    if (rc == 0)
        rc = take_auth(in, out, e);
    if (rc == 0)
        rc = take_endpoints(in, out, e);
    return finish(in, out, rc, e);
}

static int take_filters(json_t *in, json_t *out, const char *prefix, struct sl_validate_error *e)
{
    char f[FIELD_MAX];
    json_t *list = json_object_get(in, "session_pinning_filters");
    field_name(f, prefix, "session_pinning_filters");
    if (list && !json_is_array(list))
        return fail(e, f, "must be an array");
    json_t *arr = json_array();
    if (!arr || json_object_set_new(out, "session_pinning_filters", arr) != 0)
        return oom(e);
    size_t i;
    json_t *v;
    json_array_foreach(list, i, v)
    {
        const char *s = json_string_value(v);
        snprintf(f, sizeof f, "%s.session_pinning_filters[%zu]", prefix, i);
        if (!s || strcmp(s, "EXCLUDE_VARIABLE_SETS") != 0)
            return fail(e, f, "must be EXCLUDE_VARIABLE_SETS");
        if (i > 0)
            return fail(e, f, "EXCLUDE_VARIABLE_SETS is already listed");
        if (json_array_append_new(arr, json_string(s)) != 0)
            return oom(e);
    }
    return 0;
}

/* The target group's "failover" object (docs/failover.md): how the writer moves by itself. */
static int take_failover(json_t *in, json_t *out, struct sl_validate_error *e)
{
    static const char *const keys[] = {"mode",
                                       "admin_secret",
                                       "replication_secret",
                                       "require_semi_sync",
                                       "check_interval_ms",
                                       "check_timeout_ms",
                                       "check_failures",
                                       NULL};
    static const char *const modes[] = {"EXTERNAL", "MANAGED", "DISABLED", NULL};
    static const char *const secrets[] = {"admin_secret", "replication_secret"};
    const char *p = "failover";
    json_t *fo = json_object_get(in, p), *empty = NULL;
    if (fo && !json_is_object(fo))
        return fail(e, p, "must be an object");
    json_t *o = json_object();
    if (!o || json_object_set_new(out, p, o) != 0)
        return oom(e);
    if (!fo && !(fo = empty = json_object()))
        return oom(e);
    int rc = check_keys(fo, p, keys, e);
    if (rc == 0)
        rc = take_enum(fo, o, p, "mode", modes, "EXTERNAL", "EXTERNAL, MANAGED or DISABLED", e);
    /* Managed failover acts on the databases: it needs an administrator and the replication
     * account the other replicas will use. */
    bool managed = rc == 0 && strcmp(json_string_value(json_object_get(o, "mode")), "MANAGED") == 0;
    for (size_t i = 0; rc == 0 && i < 2; i++)
        if (managed || json_object_get(fo, secrets[i]))
            rc = take_string(fo, o, p, secrets[i], name_ok, NULL,
                             "must be the name of a secret (1..63 of A-Z a-z 0-9 . _ -)", NULL, e);
    if (rc == 0)
        rc = take_bool(fo, o, p, "require_semi_sync", true, e);
    /* Health checks of the targets (failover/health.h): how often, how long one may take
     * (Connector/C counts whole seconds), how many failures in a row make a target down. */
    if (rc == 0)
        rc = take_int(fo, o, p, "check_interval_ms", 100, 60000, true, 500, NULL, e);
    if (rc == 0)
        rc = take_int(fo, o, p, "check_timeout_ms", 1000, 60000, true, 1000, NULL, e);
    if (rc == 0)
        rc = take_int(fo, o, p, "check_failures", 1, 10, true, 2, NULL, e);
    json_decref(empty);
    return rc;
}

char *sl_validate_target_group(const char *body, size_t len, struct sl_validate_error *e)
{
    static const char *const keys[] = {"connection_pool_config", "failover", "revision", NULL};
    static const char *const pool_keys[] = {
        "max_connections_percent",     "max_idle_connections_percent",
        "connection_borrow_timeout",   "init_query",
        "session_pinning_filters",     "transaction_replay",
        "transaction_replay_max_size", NULL};
    const char *p = "connection_pool_config";
    clear(e);
    json_t *in = load_object(body, len, e);
    if (!in)
        return NULL;
    json_t *out = json_object(), *pool = json_object();
    if (!out || !pool || json_object_set_new(out, p, pool) != 0)
        return finish(in, out, oom(e), e);
    int rc = check_keys(in, "", keys, e);
    json_t *cfg = json_object_get(in, p);
    json_t *empty = json_object();
    if (rc == 0 && cfg && !json_is_object(cfg))
        rc = fail(e, p, "must be an object");
    if (rc == 0 && !cfg && !(cfg = empty))
        rc = oom(e);
    if (rc == 0)
        rc = check_keys(cfg, p, pool_keys, e);
    json_int_t max = MAX_CONNECTIONS_PERCENT_DEFAULT;
    if (rc == 0)
        rc = take_int(cfg, pool, p, "max_connections_percent", 1, 100, true,
                      MAX_CONNECTIONS_PERCENT_DEFAULT, &max, e);
    /* RDS Proxy's default: half the connection limit, so lowering only the limit stays valid. */
    if (rc == 0)
        rc = take_int(cfg, pool, p, "max_idle_connections_percent", 0, max, true, max / 2, NULL, e);
    if (rc == 0)
        rc = take_int(cfg, pool, p, "connection_borrow_timeout", 0, 3600, true, 120, NULL, e);
    if (rc == 0)
        rc = take_string(cfg, pool, p, "init_query", any_string, "", "", NULL, e);
    if (rc == 0)
        rc = take_filters(cfg, pool, p, e);
    if (rc == 0)
        rc = take_bool(cfg, pool, p, "transaction_replay", false, e);
    if (rc == 0)
        rc = take_int(cfg, pool, p, "transaction_replay_max_size", REPLAY_MAX_SIZE_MIN,
                      REPLAY_MAX_SIZE_MAX, true, REPLAY_MAX_SIZE_DEFAULT, NULL, e);
    if (rc == 0)
        rc = take_failover(in, out, e);
    json_decref(empty);
    return finish(in, out, rc, e);
}

unsigned sl_validate_pool_percent(const char *target_group)
{
    json_t *tg = target_group ? json_loads(target_group, 0, NULL) : NULL;
    json_t *pct =
        json_object_get(json_object_get(tg, "connection_pool_config"), "max_connections_percent");
    json_int_t v = json_is_integer(pct) ? json_integer_value(pct) : MAX_CONNECTIONS_PERCENT_DEFAULT;
    json_decref(tg);
    return (unsigned)v;
}

char *sl_validate_target(const char *body, size_t len, char id_out[SL_RAFT_NAME_MAX + 1],
                         struct sl_validate_error *e)
{
    static const char *const keys[] = {"id", "host", "port", "role", "revision", NULL};
    static const char *const roles[] = {"READ_WRITE", "READ_ONLY", NULL};
    const char *id = NULL;
    clear(e);
    json_t *in = load_object(body, len, e);
    if (!in)
        return NULL;
    json_t *out = json_object();
    if (!out)
        return finish(in, out, oom(e), e);
    int rc = check_keys(in, "", keys, e);
    if (rc == 0)
        rc = take_string(in, out, "", "id", name_ok, NULL, NAME_RULE, &id, e);
    if (rc == 0)
        rc = take_string(in, out, "", "host", host_ok, NULL,
                         "must be 1..255 bytes of printable ASCII without spaces", NULL, e);
    if (rc == 0)
        rc = take_int(in, out, "", "port", 1, 65535, true, 3306, NULL, e);
    if (rc == 0)
        rc = take_enum(in, out, "", "role", roles, "READ_WRITE", "READ_WRITE or READ_ONLY", e);
    if (rc == 0)
        snprintf(id_out, SL_RAFT_NAME_MAX + 1, "%s", id);
    return finish(in, out, rc, e);
}

/* A writer's reason: 1..SL_VALIDATE_REASON_MAX bytes, no control characters (it is logged). */
static bool reason_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > SL_VALIDATE_REASON_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < ' ' || s[i] == 0x7f)
            return false;
    return true;
}

char *sl_validate_writer(const char *body, size_t len, const char *decided_by,
                         char target_out[SL_RAFT_NAME_MAX + 1], struct sl_validate_error *e)
{
    static const char *const keys[] = {"target", "reason", "revision", NULL};
    const char *target = NULL;
    clear(e);
    json_t *in = load_object(body, len, e);
    if (!in)
        return NULL;
    json_t *out = json_object();
    if (!out)
        return finish(in, out, oom(e), e);
    int rc = 0;
    if (json_object_get(in, "epoch"))
        rc = fail(e, "epoch",
                  "read-only (the writer's revision); send If-Match: \"<epoch>\" to make the "
                  "change conditional on it");
    else if (json_object_get(in, "decided_by"))
        rc = fail(e, "decided_by", "read-only (the node that takes the request sets it)");
    if (rc == 0)
        rc = check_keys(in, "", keys, e);
    if (rc == 0)
        rc =
            take_string(in, out, "", "target", name_ok, NULL,
                        "must be the id of one of the proxy's targets (" NAME_RULE ")", &target, e);
    if (rc == 0)
        rc = take_string(in, out, "", "reason", reason_ok, "manual",
                         "must be 1..200 bytes without control characters", NULL, e);
    if (rc == 0 && json_object_set_new(out, "decided_by", json_string(decided_by)) != 0)
        rc = oom(e);
    if (rc == 0)
        snprintf(target_out, SL_RAFT_NAME_MAX + 1, "%s", target);
    return finish(in, out, rc, e);
}

int sl_validate_target_database(const char *target, size_t len, char out[SL_VALIDATE_DATABASE_MAX])
{
    json_t *t = json_loadb(target, len, 0, NULL);
    const char *host = json_string_value(json_object_get(t, "host"));
    json_t *port = json_object_get(t, "port");
    int rc = -1;
    if (host && json_is_integer(port)) {
        snprintf(out, SL_VALIDATE_DATABASE_MAX, "%s:%" JSON_INTEGER_FORMAT, host,
                 json_integer_value(port));
        for (char *c = out; *c; c++)
            *c = (char)tolower((unsigned char)*c);
        rc = 0;
    }
    json_decref(t);
    return rc;
}

char *sl_validate_node(const char *body, size_t len, uint64_t *id_out,
                       char raft_address_out[SL_VALIDATE_ADDR_MAX], struct sl_validate_error *e)
{
    static const char *const keys[] = {"id", "raft_address", "admin_url", "data_address",
                                       "az", "revision",     NULL};
    const char *addr = NULL;
    json_int_t id = 0;
    clear(e);
    json_t *in = load_object(body, len, e);
    if (!in)
        return NULL;
    json_t *out = json_object();
    if (!out)
        return finish(in, out, oom(e), e);
    int rc = check_keys(in, "", keys, e);
    if (rc == 0)
        rc = take_int(in, out, "", "id", 1, INT64_MAX, false, 0, &id, e);
    if (rc == 0)
        rc = take_string(in, out, "", "raft_address", raft_address_ok, NULL,
                         "must be an IPv4 address and a port, as in \"10.0.0.1:7001\"", &addr, e);
    if (rc == 0)
        rc = take_string(in, out, "", "admin_url", admin_url_ok, NULL,
                         "must be \"http://host:port\" or \"https://host:port\"", NULL, e);
    if (rc == 0)
        rc = take_string(in, out, "", "data_address", ipv4_ok, NULL, "must be an IPv4 address",
                         NULL, e);
    if (rc == 0)
        rc = take_string(in, out, "", "az", name_ok, NULL, NAME_RULE, NULL, e);
    if (rc == 0) {
        *id_out = (uint64_t)id;
        snprintf(raft_address_out, SL_VALIDATE_ADDR_MAX, "%s", addr);
    }
    return finish(in, out, rc, e);
}

int sl_validate_transfer(const char *body, size_t len, uint64_t *id, struct sl_validate_error *e)
{
    static const char *const keys[] = {"id", NULL};
    clear(e);
    *id = 0;
    if (len == 0)
        return 0;
    json_t *in = load_object(body, len, e);
    if (!in)
        return -1;
    json_t *out = json_object();
    json_int_t n = 0;
    int rc = out ? check_keys(in, "", keys, e) : oom(e);
    if (rc == 0)
        rc = take_int(in, out, "", "id", 1, INT64_MAX, true, 0, &n, e);
    if (rc == 0)
        *id = (uint64_t)n;
    json_decref(in);
    json_decref(out);
    return rc;
}

/* Decimal digits s[0..n) as a u64; no sign, no leading zero, no overflow. */
static int parse_u64(const char *s, size_t n, uint64_t *out)
{
    uint64_t v = 0;
    if (n == 0 || n > 20 || (s[0] == '0' && n > 1))
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

int sl_validate_node_id(const char *s, uint64_t *id)
{
    return parse_u64(s, strlen(s), id) == 0 && *id > 0 ? 0 : -1;
}

int sl_validate_if_match(const char *value, uint64_t *revision)
{
    size_t n = strlen(value);
    /* Entity tags are quoted (RFC 9110); the bare number is accepted for hand-written calls. */
    if (n >= 2 && value[0] == '"' && value[n - 1] == '"') {
        value++;
        n -= 2;
    }
    return parse_u64(value, n, revision) == 0 && *revision > 0 ? 0 : -1;
}

int sl_validate_query(const char *query, struct sl_read_query *q, struct sl_validate_error *e)
{
    bool seen_consistent = false, seen_min = false;
    clear(e);
    memset(q, 0, sizeof *q);
    if (!query)
        return 0;
    const char *p = query;
    for (;;) {
        const char *end = strchr(p, '&');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        const char *eq = memchr(p, '=', n);
        size_t klen = eq ? (size_t)(eq - p) : n;
        const char *v = eq ? eq + 1 : p + n;
        size_t vlen = (size_t)(p + n - v);
        if (klen == 10 && strncmp(p, "consistent", 10) == 0) {
            if (seen_consistent)
                return fail(e, "consistent", "given more than once");
            seen_consistent = true;
            if (vlen == 4 && strncmp(v, "true", 4) == 0)
                q->consistent = true;
            else if (!(vlen == 5 && strncmp(v, "false", 5) == 0))
                return fail(e, "consistent", "must be true or false");
        } else if (klen == 12 && strncmp(p, "min_revision", 12) == 0) {
            if (seen_min)
                return fail(e, "min_revision", "given more than once");
            seen_min = true;
            if (parse_u64(v, vlen, &q->min_revision) != 0)
                return fail(e, "min_revision", "must be a revision (a decimal number)");
        } else {
            char f[FIELD_MAX];
            snprintf(f, sizeof f, "%.*s", (int)(klen > 48 ? 48 : klen), p);
            return fail(e, f, "unknown query parameter (known: consistent, min_revision)");
        }
        if (!end)
            return 0;
        p = end + 1;
    }
}
