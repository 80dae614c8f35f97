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

/* Appends target t's address to out. 0, or -1 when memory ran out. */
static int append_target(json_t *out, json_t *t)
{
    json_t *e = json_object();
    if (!e || copy_key(e, t, "host") != 0 || copy_key(e, t, "port") != 0 ||
        json_array_append_new(out, e) != 0) {
        json_decref(e);
        return -1;
    }
    return 0;
}

/* The id of the proxy's committed writer (the "writers" resource of the store) when it names one
 * of the proxy's targets, else NULL: the default writer then (the first READ_WRITE target). */
static const char *committed_writer(json_t *state, const char *name, json_t *targets)
{
    json_t *w = json_object_get(json_object_get(state, "writers"), name);
    const char *id = json_string_value(json_object_get(w, "target"));
    return id && json_object_get(targets, id) ? id : NULL;
}

/* A proxy's targets for the data path, whose targets[0] is the writer.
 *
 * Every registered target is listed, whoever writes: first the writer (the committed one, when
 * there is one), then the others, READ_WRITE ones then READ_ONLY ones, each group in id order.
 * Without a committed writer that is the first READ_WRITE target (else the first target), as
 * before writers were committed. Why all of them, always: the data path treats a change of
 * targets[0] within the same set of targets as a writer switch in place (pool/worker.c,
 * switch_writer: every connection to the old writer goes at once, sessions follow to the new
 * one), whereas a change of the set replaces the proxy and lets the old sessions finish on the
 * old pools, which would keep writing to a demoted writer. Keeping the set stable across writer
 * decisions makes each of them a switch in place. Entries without a usable host or port are
 * rendered as they are for the parser to reject. */
static json_t *render_targets(json_t *targets, const char *writer)
{
    json_t *out = json_array();
    const char *id;
    json_t *t;

    if (out && writer && append_target(out, json_object_get(targets, writer)))
        goto oom;
    for (int pass = 0; out && pass < 2; pass++) {
        json_object_foreach(targets, id, t)
        {
            const char *role = json_string_value(json_object_get(t, "role"));
            bool rw = !role || strcmp(role, "READ_WRITE") == 0;
            if (rw != (pass == 0) || (writer && strcmp(id, writer) == 0))
                continue;
            if (append_target(out, t) != 0)
                goto oom;
        }
    }
    return out;
oom:
    json_decref(out);
    return NULL;
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

/* The committed writer of a served proxy, one line in writers (the node logs it when it changes:
 * the epoch is not part of the data path's configuration); a committed writer that names no
 * target of the proxy (the state machine does not let that happen) is noted. */
static void note_writer(json_t *state, const char *name, json_t *targets, const char *writer,
                        struct sl_buf *notes, struct sl_buf *writers)
{
    json_t *w = json_object_get(json_object_get(state, "writers"), name);
    if (!w)
        return;
    if (!writer) {
        const char *id = json_string_value(json_object_get(w, "target"));
        note(notes, name,
             "the committed writer names no target of the proxy (%s); writing to "
             "the default writer",
             id ? id : "none");
        return;
    }
    const char *by = json_string_value(json_object_get(w, "decided_by"));
    const char *reason = json_string_value(json_object_get(w, "reason"));
    json_t *t = json_object_get(targets, writer);
    const char *host = json_string_value(json_object_get(t, "host"));
    note(writers, name, "writer is target %s (%s:%lld), epoch %lld, decided by %s: %s", writer,
         host ? host : "?", (long long)json_integer_value(json_object_get(t, "port")),
         (long long)json_integer_value(json_object_get(w, "revision")), by ? by : "?",
         reason ? reason : "");
}

/* One proxy entry in the file format, or NULL (with a note) when it cannot be served. */
/* The target group's failover.check_* settings as the proxy's "health_check" (the ones given). */
static int render_health_check(json_t *e, json_t *failover)
{
    static const char *const from[] = {"check_interval_ms", "check_timeout_ms", "check_failures"};
    static const char *const to[] = {"interval_ms", "timeout_ms", "failures"};
    json_t *hc = json_object();
    if (!hc || json_object_set_new(e, "health_check", hc) != 0)
        return -1;
    for (size_t i = 0; i < 3; i++) {
        json_t *v = json_object_get(failover, from[i]);
        if (v && json_object_set(hc, to[i], v) != 0)
            return -1;
    }
    return 0;
}

static json_t *render_proxy(const struct sl_config *file, json_t *state, const char *name,
                            json_t *body, struct sl_buf *notes, struct sl_buf *writers)
{
    static const char *const keys[] = {"require_tls", "idle_client_timeout", "debug_logging"};
    json_t *targets = json_object_get(json_object_get(state, "targets"), name);
    json_t *group = json_object_get(json_object_get(state, "target_groups"), name);
    json_t *pool = json_object_get(group, "connection_pool_config");
    json_t *failover = json_object_get(group, "failover");
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
    const char *writer = committed_writer(state, name, targets);
    note_writer(state, name, targets, writer, notes, writers);
    json_t *list = e ? render_targets(targets, writer) : NULL;
    bool ok = list && json_object_set_new(e, "targets", list) == 0;
    for (size_t k = 0; ok && k < sizeof keys / sizeof keys[0]; k++)
        ok = copy_key(e, body, keys[k]) == 0;
    if (ok && pool)
        ok = json_object_set(e, "connection_pool_config", pool) == 0;
    if (ok && failover)
        ok = render_health_check(e, failover) == 0;
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
 * "<proxy>.<endpoint>", on the endpoint's port, with the proxy's users and pool settings and the
 * proxy's targets (the writer first). A READ_WRITE endpoint uses them like the proxy itself; a
 * READ_ONLY one is rendered with "routing": "READ_ONLY": its sessions go to the least busy target
 * the health checks see up and read-only, and to the writer when there is none (pool/pool.c). The
 * same stable set as the proxy's: a promotion changes what is a reader, not the endpoint. */
static int render_endpoints(const struct sl_config *file, json_t *state, const char *name,
                            json_t *body, json_t *proxy, json_t *proxies, struct sl_buf *notes)
{
    size_t i;
    json_t *ep;
    json_t *targets = json_object_get(json_object_get(state, "targets"), name);
    const char *writer = committed_writer(state, name, targets);
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
        json_t *list = render_targets(targets, writer);
        if (!list)
            return -1;
        json_t *e = json_deep_copy(proxy);
        if (!e || json_object_set_new(e, "name", json_string(full)) != 0 ||
            json_object_set(json_object_get(e, "listen"), "port", json_object_get(ep, "port")) !=
                0 ||
            json_object_set_new(e, "targets", list) != 0 ||
            (readers && json_object_set_new(e, "routing", json_string("READ_ONLY")) != 0)) {
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
    struct sl_buf notes, writers;
    json_error_t jerr;
    json_t *state = json_loads(dump, 0, &jerr);
    json_t *proxies = json_array();
    json_t *root = NULL;
    const char *name;
    json_t *body;

    memset(out, 0, sizeof *out);
    memset(&notes, 0, sizeof notes);
    memset(&writers, 0, sizeof writers);
    if (!state || !json_is_object(json_object_get(state, "proxies"))) {
        snprintf(err, errlen, "the store's dump is not a configuration document");
        goto done;
    }
    if (!proxies)
        goto oom;
    json_object_foreach(json_object_get(state, "proxies"), name, body)
    {
        json_t *e = render_proxy(file, state, name, body, &notes, &writers);
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
    out->writers = strndup(writers.len ? (const char *)writers.data : "", writers.len);
    if (out->doc && out->notes && out->writers)
        goto done;
oom:
    sl_store_render_free(out);
    snprintf(err, errlen, "out of memory");
done:
    json_decref(root);
    json_decref(proxies);
    json_decref(state);
    sl_buf_free(&notes);
    sl_buf_free(&writers);
    return out->doc ? 0 : -1;
}

void sl_store_render_free(struct sl_store_render *r)
{
    free(r->doc);
    free(r->notes);
    free(r->writers);
    r->doc = r->notes = r->writers = NULL;
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
    free(src->last_writers);
    src->last_notes = src->last_writers = NULL;
}

static void log_lines(const char *lines, bool warn)
{
    while (*lines) {
        const char *nl = strchr(lines, '\n');
        int len = nl ? (int)(nl - lines) : (int)strlen(lines);
        if (warn)
            sl_warn(0, "%.*s", len, lines);
        else
            sl_info(0, "%.*s", len, lines);
        lines += len + (nl ? 1 : 0);
    }
}

/* The lines of now that were not in before (both '\n'-terminated lines, or before NULL). */
static void log_new_lines(const char *before, const char *now)
{
    while (*now) {
        const char *nl = strchr(now, '\n');
        size_t len = nl ? (size_t)(nl - now) + 1 : strlen(now);
        bool seen = false;
        for (const char *b = before; b && *b && !seen;) {
            const char *bnl = strchr(b, '\n');
            size_t blen = bnl ? (size_t)(bnl - b) + 1 : strlen(b);
            seen = blen == len && memcmp(b, now, len) == 0;
            b += blen;
        }
        if (!seen)
            sl_info(0, "%.*s", (int)(nl ? len - 1 : len), now);
        now += len;
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
        log_lines(r.notes, true);
        free(src->last_notes);
        src->last_notes = r.notes;
        r.notes = NULL;
    }
    /* Each committed writer once per epoch (a new decision is a new line). */
    if (!src->last_writers || strcmp(src->last_writers, r.writers) != 0) {
        log_new_lines(src->last_writers, r.writers);
        free(src->last_writers);
        src->last_writers = r.writers;
        r.writers = NULL;
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
