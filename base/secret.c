#include "base/secret.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/crypto.h>

#define SECRET_DOC_MAX   (64 * 1024)
#define SCHEME_LABEL_MAX 16

/* Copies the string under KEY into DST (capacity CAP, so at most CAP-1 bytes) if it is there.
 * Returns 1 when copied, 0 when absent, -1 on a wrong type or length; messages name only KEY. */
static int copy_string(json_t *root, const char *key, size_t min, char *dst, size_t cap,
                       size_t *len, char *err, size_t errlen)
{
    json_t *v = json_object_get(root, key);

    if (!v)
        return 0;
    if (!json_is_string(v)) {
        snprintf(err, errlen, "%s: must be a string", key);
        return -1;
    }
    /* jansson rejects "\u0000" unless JSON_ALLOW_NUL is given, so the length is also strlen. */
    size_t n = json_string_length(v);
    if (n < min || n >= cap) {
        snprintf(err, errlen, "%s: must be %zu..%zu bytes", key, min, cap - 1);
        return -1;
    }
    memcpy(dst, json_string_value(v), n);
    dst[n] = '\0';
    if (len)
        *len = n;
    return 1;
}

static int parse_object(json_t *root, struct sl_secret *out, char *err, size_t errlen)
{
    json_t *v;
    int rc;

    if (!json_is_object(root)) {
        snprintf(err, errlen, "the document must be a JSON object");
        return -1;
    }
    rc = copy_string(root, "username", 1, out->username, sizeof out->username, NULL, err, errlen);
    if (rc <= 0) {
        if (rc == 0)
            snprintf(err, errlen, "username: required");
        return -1;
    }
    rc = copy_string(root, "password", 0, out->password, sizeof out->password, &out->password_len,
                     err, errlen);
    if (rc <= 0) {
        if (rc == 0)
            snprintf(err, errlen, "password: required");
        return -1;
    }
    v = json_object_get(root, "engine");
    if (v && !json_is_string(v)) {
        snprintf(err, errlen, "engine: must be a string");
        return -1;
    }
    if (copy_string(root, "host", 0, out->host, sizeof out->host, NULL, err, errlen) < 0)
        return -1;
    v = json_object_get(root, "port");
    if (v) {
        if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 65535) {
            snprintf(err, errlen, "port: must be an integer 1..65535");
            return -1;
        }
        out->port = (uint16_t)json_integer_value(v);
    }
    /* Anything else (dbClusterIdentifier, dbname, ...) is what Secrets Manager stores beside the
     * credentials; it is allowed and ignored. */
    return 0;
}

int sl_secret_parse(const char *json, size_t len, struct sl_secret *out, char *err, size_t errlen)
{
    json_error_t jerr;
    json_t *root;
    int rc;

    memset(out, 0, sizeof *out);
    root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        /* jansson's text quotes the document near the error, which may be the password: report
         * the position only, and wipe the text. */
        snprintf(err, errlen, "invalid JSON at line %d column %d", jerr.line, jerr.column);
        OPENSSL_cleanse(&jerr, sizeof jerr);
        return -1;
    }
    rc = parse_object(root, out, err, errlen);
    /* jansson frees its own copies of the strings without wiping them. Accepted: the process keeps
     * the password in *out anyway, and wiping would mean replacing jansson's allocator globally. */
    json_decref(root);
    if (rc)
        sl_secret_wipe(out);
    return rc;
}

static bool is_env_name(const char *s)
{
    if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || *s == '_'))
        return false;
    for (s++; *s; s++) {
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '_'))
            return false;
    }
    return true;
}

/* Parses DOC on behalf of REF, prefixing any reason with the reference (a path or a variable
 * name, never a value). */
static int parse_for(const char *ref, const char *doc, size_t len, struct sl_secret *out, char *err,
                     size_t errlen)
{
    char reason[160];

    if (sl_secret_parse(doc, len, out, reason, sizeof reason) == 0)
        return 0;
    snprintf(err, errlen, "secret %s: %s", ref, reason);
    return -1;
}

/* Read the file behind a "file:" reference into a new buffer (at most SECRET_DOC_MAX bytes). The
 * caller wipes and frees *buf. */
static int read_file_doc(const char *ref, const char *path, char **buf, size_t *len, char *err,
                         size_t errlen)
{
    char ebuf[128];
    size_t n = 0;
    int fd;

    *buf = NULL;
    *len = 0;
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        snprintf(err, errlen, "secret %s: %s", ref, strerror_r(errno, ebuf, sizeof ebuf));
        return -1;
    }
    char *b = malloc(SECRET_DOC_MAX + 1);
    if (!b) {
        snprintf(err, errlen, "secret %s: out of memory", ref);
        close(fd);
        return -1;
    }
    int rc = 0;
    /* Read one byte past the limit to tell "exactly at the limit" from "too large". */
    while (n <= SECRET_DOC_MAX) {
        ssize_t r = read(fd, b + n, SECRET_DOC_MAX + 1 - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            snprintf(err, errlen, "secret %s: %s", ref, strerror_r(errno, ebuf, sizeof ebuf));
            rc = -1;
            break;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    *buf = b;
    *len = n;
    if (rc == 0 && n > SECRET_DOC_MAX) {
        snprintf(err, errlen, "secret %s: larger than %d bytes", ref, SECRET_DOC_MAX);
        rc = -1;
    }
    return rc;
}

static int resolve_file(const char *ref, const char *path, struct sl_secret *out, char *err,
                        size_t errlen)
{
    char *buf;
    size_t n;
    int rc = -1;

    if (read_file_doc(ref, path, &buf, &n, err, errlen) == 0)
        rc = parse_for(ref, buf, n, out, err, errlen);
    if (buf) {
        OPENSSL_cleanse(buf, n);
        free(buf);
    }
    return rc;
}

static int resolve_env(const char *ref, const char *name, struct sl_secret *out, char *err,
                       size_t errlen)
{
    const char *doc;
    size_t len;

    if (!is_env_name(name)) {
        snprintf(err, errlen, "secret %s: variable name must match [A-Za-z_][A-Za-z0-9_]*", ref);
        return -1;
    }
    doc = getenv(name);
    if (!doc) {
        snprintf(err, errlen, "secret %s: variable is not set", ref);
        return -1;
    }
    len = strlen(doc);
    if (len > SECRET_DOC_MAX) {
        snprintf(err, errlen, "secret %s: larger than %d bytes", ref, SECRET_DOC_MAX);
        return -1;
    }
    return parse_for(ref, doc, len, out, err, errlen);
}

/* A reference with an unknown scheme may be a credential pasted into the wrong field, so only a
 * short alphanumeric scheme ("arn", "vault") is echoed, never the rest. */
static void unknown_scheme(const char *ref, char *err, size_t errlen)
{
    size_t n = 0;

    while (n <= SCHEME_LABEL_MAX &&
           ((ref[n] >= 'a' && ref[n] <= 'z') || (ref[n] >= 'A' && ref[n] <= 'Z') ||
            (ref[n] >= '0' && ref[n] <= '9')))
        n++;
    if (n > 0 && n <= SCHEME_LABEL_MAX && ref[n] == ':')
        snprintf(err, errlen, "secret reference: unknown scheme \"%.*s:\" (want file: or env:)",
                 (int)n, ref);
    else
        snprintf(err, errlen, "secret reference: must be \"file:/absolute/path\" or \"env:NAME\"");
}

int sl_secret_resolve(const char *ref, struct sl_secret *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (strncmp(ref, "file:", 5) == 0) {
        if (ref[5] != '/') {
            snprintf(err, errlen, "secret %s: path must be absolute", ref);
            return -1;
        }
        return resolve_file(ref, ref + 5, out, err, errlen);
    }
    if (strncmp(ref, "env:", 4) == 0)
        return resolve_env(ref, ref + 4, out, err, errlen);
    unknown_scheme(ref, err, errlen);
    return -1;
}

bool sl_secret_ref_valid(const char *ref)
{
    if (strncmp(ref, "file:/", 6) == 0) {
        if (ref[6] == '\0')
            return false;
        /* A newline or other control character in a path is a paste error, and would break the
         * log lines that name the reference. */
        for (const char *p = ref; *p; p++)
            if ((unsigned char)*p < 0x20 || *p == 0x7f)
                return false;
        return true;
    }
    return strncmp(ref, "env:", 4) == 0 && is_env_name(ref + 4);
}

int sl_secret_resolve_token(const char *ref, char *out, size_t cap, char *err, size_t errlen)
{
    char *heap = NULL;
    const char *doc = NULL;
    size_t len = 0;
    int rc = -1;

    if (strncmp(ref, "file:/", 6) == 0) {
        if (read_file_doc(ref, ref + 5, &heap, &len, err, errlen) != 0)
            goto out;
        doc = heap;
    } else if (strncmp(ref, "env:", 4) == 0 && is_env_name(ref + 4)) {
        doc = getenv(ref + 4);
        if (!doc) {
            snprintf(err, errlen, "secret %s: variable is not set", ref);
            goto out;
        }
        len = strlen(doc);
    } else {
        unknown_scheme(ref, err, errlen);
        goto out;
    }
    /* A trailing newline from `echo token > file` is not part of the token. */
    while (len > 0 && (doc[len - 1] == '\n' || doc[len - 1] == '\r' || doc[len - 1] == ' ' ||
                       doc[len - 1] == '\t'))
        len--;
    while (len > 0 && (*doc == ' ' || *doc == '\t')) {
        doc++;
        len--;
    }
    if (len < 16 || len > SL_TOKEN_MAX || len >= cap) {
        snprintf(err, errlen, "secret %s: a token must be 16..%d characters", ref, SL_TOKEN_MAX);
        goto out;
    }
    for (size_t i = 0; i < len; i++) {
        if (doc[i] < 0x21 || doc[i] > 0x7e) {
            snprintf(err, errlen, "secret %s: a token must be printable ASCII without spaces", ref);
            goto out;
        }
    }
    memcpy(out, doc, len);
    out[len] = '\0';
    rc = 0;
out:
    if (heap) {
        OPENSSL_cleanse(heap, SECRET_DOC_MAX + 1);
        free(heap);
    }
    return rc;
}

void sl_secret_wipe(struct sl_secret *s)
{
    OPENSSL_cleanse(s, sizeof *s);
}
