#include "node/store_source.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "base/buf.h"
#include "base/log.h"
#include "raft/store.h"

/* Notes collected while rendering; a failed append only loses a note. */
static void note(struct sl_buf *notes, const char *proxy, const char *fmt, ...) SL_PRINTF(3, 4);

static void note(struct sl_buf *notes, const char *proxy, const char *fmt, ...)
{
    char line[512];
    int n = snprintf(line, sizeof line, "proxy %s: ", proxy);
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    va_end(ap);
    size_t len = strlen(line);
    if (len + 1 < sizeof line) {
        line[len++] = '\n';
        line[len] = '\0';
    }
    sl_buf_append(notes, line, len, SIZE_MAX);
}

/* Copies src[key] into dst when present: absent keys keep the file format's default, and a
 * value of the wrong type is reported by the parser like in a file. */
static int copy_key(json_t *dst, json_t *src, const char *key)
{
    json_t *v = json_object_get(src, key);
    return v ? json_object_set(dst, key, v) : 0;
}

/* The proxy's auth list with each secret NAME replaced by the store's reference for it. Returns
 * NULL with a reason noted when a name does not resolve. */
static json_t *render_auth(json_t *body, json_t *secrets, const char *name, struct sl_buf *notes)
{
    static const char *const keys[] = {"auth_scheme", "client_password_auth_type", "description"};
    json_t *auth = json_object_get(body, "auth");
    json_t *out = json_array();
    size_t i;
    json_t *entry;

    if (!out)
        return NULL;
    if (!json_is_array(auth)) {
        note(notes, name, "not served: \"auth\" is not a list");
        json_decref(out);
        return NULL;
    }
    json_array_foreach(auth, i, entry)
    {
        const char *secret = json_string_value(json_object_get(entry, "secret"));
        const char *ref =
            secret ? json_string_value(json_object_get(json_object_get(secrets, secret), "ref"))
                   : NULL;
        json_t *e = json_object();
        if (!ref) {
            note(notes, name, "not served: auth[%zu].secret names no secret in the store", i);
            json_decref(e);
            json_decref(out);
            return NULL;
        }
        if (!e || json_object_set_new(e, "secret", json_string(ref)) != 0 ||
            json_array_append_new(out, e) != 0) {
            json_decref(out);
            return NULL;
        }
        for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++)
            if (copy_key(e, entry, keys[k]) != 0) {
                json_decref(out);
                return NULL;
            }
    }
    return out;
}

/* The registered targets, READ_WRITE ones first (targets[0] is the writer), each group in id
 * order; with readers_only, the READ_ONLY ones alone (a READ_ONLY endpoint). Entries without a
 * usable host or port are rendered as they are for the parser to reject. */
static json_t *render_targets(json_t *targets, bool readers_only)
{
    json_t *out = json_array();
    const char *id;
    json_t *t;

    for (int pass = readers_only ? 1 : 0; out && pass < 2; pass++) {
        json_object_foreach(targets, id, t)
        {
            const char *role = json_string_value(json_object_get(t, "role"));
            bool writer = !role || strcmp(role, "READ_WRITE") == 0;
            if (writer != (pass == 0))
                continue;
            json_t *e = json_object();
            if (!e || copy_key(e, t, "host") != 0 || copy_key(e, t, "port") != 0 ||
                json_array_append_new(out, e) != 0) {
                json_decref(out);
                return NULL;
            }
        }
    }
    return out;
}

/* The document around a list of proxies: this node's settings from its file. */
static json_t *render_root(const struct sl_config *file, json_t *proxies)
{
    json_t *root = json_pack("{s:{s:s,s:s,s:i},s:O}", "node", "id", file->node_id, "az", file->az,
                             "drain_timeout", (int)file->drain_timeout, "proxies", proxies);
    if (root && file->tls_cert_file &&
        json_object_set_new(root, "tls",
                            json_pack("{s:s,s:s}", "cert_file", file->tls_cert_file, "key_file",
                                      file->tls_key_file)) != 0) {
        json_decref(root);
        return NULL;
    }
    return root;
}

/* Checks one proxy alone with the file parser, so that one bad proxy cannot keep the others from
 * being served. 0 when it parses; otherwise the parser's reason is noted. */
static int check_alone(const struct sl_config *file, json_t *entry, const char *name,
                       struct sl_buf *notes)
{
    json_t *list = json_pack("[O]", entry);
    json_t *root = list ? render_root(file, list) : NULL;
    char *text = root ? json_dumps(root, JSON_COMPACT) : NULL;
    struct sl_config *cfg = NULL;
    char err[256];
    int rc = -1;

    if (!text)
        snprintf(err, sizeof err, "out of memory");
    else
        rc = sl_config_parse_from(SL_CONFIG_STORE, text, strlen(text), &cfg, err, sizeof err);
    if (rc != 0) {
        /* "proxies[0].listen.port: ..." reads better as "listen.port: ..." here. */
        const char *why = strncmp(err, "proxies[0].", 11) == 0 ? err + 11 : err;
        note(notes, name, "not served: %s", why);
    }
    sl_config_free(cfg);
    free(text);
    json_decref(root);
    json_decref(list);
    return rc;
}

/* One proxy entry in the file format, or NULL (with a note) when it cannot be served. */
static json_t *render_proxy(const struct sl_config *file, json_t *state, const char *name,
                            json_t *body, struct sl_buf *notes)
{
    static const char *const keys[] = {"require_tls", "idle_client_timeout", "debug_logging"};
    json_t *targets = json_object_get(json_object_get(state, "targets"), name);
    json_t *pool = json_object_get(json_object_get(json_object_get(state, "target_groups"), name),
                                   "connection_pool_config");
    json_t *require_tls = json_object_get(body, "require_tls");

    if (json_object_size(targets) == 0) {
        note(notes, name, "not served: no targets registered");
        return NULL;
    }
    if (!file->tls_cert_file && (!require_tls || json_is_true(require_tls))) {
        note(notes, name, "not served: require_tls is true but this node has no \"tls\" block");
        return NULL;
    }
    json_t *auth = render_auth(body, json_object_get(state, "secrets"), name, notes);
    if (!auth)
        return NULL;
    json_t *e = json_pack("{s:s,s:{s:s,s:O*},s:o}", "name", name, "listen", "host",
                          file->cluster->data_address, "port", json_object_get(body, "listen_port"),
                          "auth", auth);
    json_t *list = e ? render_targets(targets, false) : NULL;
    bool ok = list && json_object_set_new(e, "targets", list) == 0;
    for (size_t k = 0; ok && k < sizeof keys / sizeof keys[0]; k++)
        ok = copy_key(e, body, keys[k]) == 0;
    if (ok && pool)
        ok = json_object_set(e, "connection_pool_config", pool) == 0;
    if (!ok) {
        json_decref(e);
        return NULL;
    }
    return e;
}

/* Whether e's listen port is taken by an entry already in proxies (noted if so). */
static bool port_taken(json_t *proxies, json_t *e, const char *name, struct sl_buf *notes)
{
    json_t *port = json_object_get(json_object_get(e, "listen"), "port");
    size_t i;
    json_t *other;

    json_array_foreach(proxies, i, other)
    {
        if (json_equal(port, json_object_get(json_object_get(other, "listen"), "port"))) {
            note(notes, name, "not served: listen_port %lld is already used by proxy %s",
                 (long long)json_integer_value(port),
                 json_string_value(json_object_get(other, "name")));
            return true;
        }
    }
    return false;
}

/* Add a rendered proxy (or endpoint) unless its port is taken or the parser refuses it alone.
 * Returns 0, or -1 when memory ran out. */
static int add_rendered(const struct sl_config *file, json_t *proxies, json_t *e, const char *name,
                        struct sl_buf *notes)
{
    int rc = 0;
    if (!port_taken(proxies, e, name, notes) && check_alone(file, e, name, notes) == 0 &&
        json_array_append(proxies, e) != 0)
        rc = -1;
    json_decref(e);
    return rc;
}

/* A proxy's extra endpoints (RDS's DBProxyEndpoint): each is served as a proxy of its own named
 * "<proxy>.<endpoint>", on the endpoint's port, with the proxy's users and pool settings. A
 * READ_WRITE endpoint reaches the proxy's targets like the proxy itself; a READ_ONLY one reaches
 * the READ_ONLY targets (the first of them: reads are not balanced across readers yet). */
static int render_endpoints(const struct sl_config *file, json_t *state, const char *name,
                            json_t *body, json_t *proxy, json_t *proxies, struct sl_buf *notes)
{
    size_t i;
    json_t *ep;
    json_t *targets = json_object_get(json_object_get(state, "targets"), name);
    json_array_foreach(json_object_get(body, "endpoints"), i, ep)
    {
        const char *ep_name = json_string_value(json_object_get(ep, "name"));
        const char *role = json_string_value(json_object_get(ep, "target_role"));
        char full[128];
        if (!ep_name)
            continue;
        snprintf(full, sizeof full, "%s.%s", name, ep_name);
        if (strlen(full) > 63) {
            note(notes, full, "endpoint not served: the name \"proxy.endpoint\" is over 63 bytes");
            continue;
        }
        bool readers = role && strcmp(role, "READ_ONLY") == 0;
        json_t *list = render_targets(targets, readers);
        if (!list)
            return -1;
        if (json_array_size(list) == 0) {
            json_decref(list);
            note(notes, full, "endpoint not served: no READ_ONLY targets registered");
            continue;
        }
        json_t *e = json_deep_copy(proxy);
        if (!e || json_object_set_new(e, "name", json_string(full)) != 0 ||
            json_object_set(json_object_get(e, "listen"), "port", json_object_get(ep, "port")) !=
                0 ||
            json_object_set_new(e, "targets", list) != 0) {
            json_decref(e);
            return -1;
        }
        if (add_rendered(file, proxies, e, full, notes) != 0)
            return -1;
    }
    return 0;
}

int sl_store_render_config(const struct sl_config *file, const char *dump,
                           struct sl_store_render *out, char *err, size_t errlen)
{
    struct sl_buf notes;
    json_error_t jerr;
    json_t *state = json_loads(dump, 0, &jerr);
    json_t *proxies = json_array();
    json_t *root = NULL;
    const char *name;
    json_t *body;

    memset(out, 0, sizeof *out);
    memset(&notes, 0, sizeof notes);
    if (!state || !json_is_object(json_object_get(state, "proxies"))) {
        snprintf(err, errlen, "the store's dump is not a configuration document");
        goto done;
    }
    if (!proxies)
        goto oom;
    json_object_foreach(json_object_get(state, "proxies"), name, body)
    {
        json_t *e = render_proxy(file, state, name, body, &notes);
        if (!e)
            continue;
        json_incref(e);
        if (add_rendered(file, proxies, e, name, &notes) != 0 ||
            render_endpoints(file, state, name, body, e, proxies, &notes) != 0) {
            json_decref(e);
            goto oom;
        }
        json_decref(e);
    }
    root = render_root(file, proxies);
    out->doc = root ? json_dumps(root, JSON_COMPACT) : NULL;
    out->notes = strndup(notes.len ? (const char *)notes.data : "", notes.len);
    if (out->doc && out->notes)
        goto done;
oom:
    sl_store_render_free(out);
    snprintf(err, errlen, "out of memory");
done:
    json_decref(root);
    json_decref(proxies);
    json_decref(state);
    sl_buf_free(&notes);
    return out->doc ? 0 : -1;
}

void sl_store_render_free(struct sl_store_render *r)
{
    free(r->doc);
    free(r->notes);
    r->doc = r->notes = NULL;
}

void sl_store_source_init(struct sl_store_source *src, const struct sl_config *file,
                          struct sl_store *store)
{
    *src = (struct sl_store_source){.file = file, .store = store};
}

void sl_store_source_forget(struct sl_store_source *src)
{
    free(src->last_doc);
    src->last_doc = NULL;
}

void sl_store_source_free(struct sl_store_source *src)
{
    sl_store_source_forget(src);
    free(src->last_notes);
    src->last_notes = NULL;
}

static void log_notes(const char *notes)
{
    while (*notes) {
        const char *nl = strchr(notes, '\n');
        int len = nl ? (int)(nl - notes) : (int)strlen(notes);
        sl_warn(0, "%.*s", len, notes);
        notes += len + (nl ? 1 : 0);
    }
}

int sl_store_source_load(struct sl_store_source *src, struct sl_config **out, char *err,
                         size_t errlen)
{
    struct sl_store_render r;
    char *dump = NULL;

    *out = NULL;
    if (sl_store_dump(src->store, &dump) != 0) {
        snprintf(err, errlen, "cannot read the store");
        return -1;
    }
    int rc = sl_store_render_config(src->file, dump, &r, err, errlen);
    free(dump);
    if (rc != 0)
        return -1;
    if (!src->last_notes || strcmp(src->last_notes, r.notes) != 0) {
        log_notes(r.notes);
        free(src->last_notes);
        src->last_notes = r.notes;
        r.notes = NULL;
    }
    if (src->last_doc && strcmp(src->last_doc, r.doc) == 0) {
        sl_store_render_free(&r);
        return 0;
    }
    if (sl_config_parse_from(SL_CONFIG_STORE, r.doc, strlen(r.doc), out, err, errlen) != 0) {
        sl_store_render_free(&r);
        return -1;
    }
    free(src->last_doc);
    src->last_doc = r.doc;
    r.doc = NULL;
    sl_store_render_free(&r);
    return 0;
}
