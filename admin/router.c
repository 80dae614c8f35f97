#include "admin/router.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

struct route {
    const char *method;
    const char *pattern; /* segments; "{name}" captures one */
    const char *name;    /* method + pattern, for messages */
};

/* Indexed by enum sl_route_id. */
static const struct route routes[SL_ROUTE_COUNT] = {
#define R(id, m, p) [id] = {m, p, m " " p}
    R(SL_ROUTE_HEALTH, "GET", "/v1/health"),
    R(SL_ROUTE_CLUSTER_GET, "GET", "/v1/cluster"),
    R(SL_ROUTE_CLUSTER_NODE_ADD, "POST", "/v1/cluster/nodes"),
    R(SL_ROUTE_CLUSTER_NODE_REMOVE, "DELETE", "/v1/cluster/nodes/{id}"),
    R(SL_ROUTE_CLUSTER_TRANSFER_LEADERSHIP, "POST", "/v1/cluster/transfer-leadership"),
    R(SL_ROUTE_SECRETS_LIST, "GET", "/v1/secrets"),
    R(SL_ROUTE_SECRET_PUT, "PUT", "/v1/secrets/{name}"),
    R(SL_ROUTE_SECRET_GET, "GET", "/v1/secrets/{name}"),
    R(SL_ROUTE_SECRET_DELETE, "DELETE", "/v1/secrets/{name}"),
    R(SL_ROUTE_PROXIES_LIST, "GET", "/v1/proxies"),
    R(SL_ROUTE_PROXY_PUT, "PUT", "/v1/proxies/{name}"),
    R(SL_ROUTE_PROXY_GET, "GET", "/v1/proxies/{name}"),
    R(SL_ROUTE_PROXY_DELETE, "DELETE", "/v1/proxies/{name}"),
    R(SL_ROUTE_TARGET_GROUP_PUT, "PUT", "/v1/proxies/{name}/target-group"),
    R(SL_ROUTE_TARGET_GROUP_GET, "GET", "/v1/proxies/{name}/target-group"),
    R(SL_ROUTE_TARGETS_ADD, "POST", "/v1/proxies/{name}/targets"),
    R(SL_ROUTE_TARGETS_LIST, "GET", "/v1/proxies/{name}/targets"),
    R(SL_ROUTE_TARGET_REMOVE, "DELETE", "/v1/proxies/{name}/targets/{id}"),
    R(SL_ROUTE_WRITER_PUT, "PUT", "/v1/proxies/{name}/writer"),
    R(SL_ROUTE_WRITER_GET, "GET", "/v1/proxies/{name}/writer"),
    R(SL_ROUTE_STATS, "GET", "/v1/stats"),
    R(SL_ROUTE_METRICS, "GET", "/metrics"),
    R(SL_ROUTE_BUDGET_GET, "GET", "/v1/budget"),
    R(SL_ROUTE_BUDGET_REPORT, "POST", "/v1/internal/budget/report"),
    R(SL_ROUTE_FAILOVER_REPORT, "POST", "/v1/internal/failover/report"),
    R(SL_ROUTE_EVENTS, "GET", "/v1/events"),
#undef R
};

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* RFC 3629: shortest form only, no surrogates, nothing above U+10FFFF. */
static bool utf8_valid(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        size_t len;
        uint32_t cp, min;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xE0) == 0xC0) {
            len = 2, cp = c & 0x1Fu, min = 0x80;
        } else if ((c & 0xF0) == 0xE0) {
            len = 3, cp = c & 0x0Fu, min = 0x800;
        } else if ((c & 0xF8) == 0xF0) {
            len = 4, cp = c & 0x07u, min = 0x10000;
        } else {
            return false;
        }
        if (n - i < len)
            return false;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return false;
            cp = (cp << 6) | (s[i + k] & 0x3Fu);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += len;
    }
    return true;
}

int sl_route_decode_segment(const char *seg, size_t len, char *out, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        int c = (unsigned char)seg[i];
        if (c == '%') {
            int hi = i + 2 < len ? hex_value(seg[i + 1]) : -1;
            int lo = hi >= 0 ? hex_value(seg[i + 2]) : -1;
            if (lo < 0)
                return -1;
            c = hi * 16 + lo;
            i += 2;
        }
        if (c == 0 || n + 1 >= cap)
            return -1;
        out[n++] = (char)c;
    }
    out[n] = '\0';
    if (!utf8_valid((const uint8_t *)out, n))
        return -1;
    return (int)n;
}

/* Next segment of a path at *p (which points at a '/'); false at the end. */
static bool next_segment(const char **p, const char **seg, size_t *len)
{
    if (**p != '/')
        return false;
    *seg = *p + 1;
    const char *end = strchr(*seg, '/');
    *len = end ? (size_t)(end - *seg) : strlen(*seg);
    *p = *seg + *len;
    return true;
}

/* Match path against a pattern; fills params (decoded). Returns 1 on a match, 0 on none, -1 for
 * an undecodable parameter. */
static int match_pattern(const char *pattern, const char *path, struct sl_route_match *m)
{
    const char *pp = pattern, *xp = path, *pseg, *xseg;
    size_t plen, xlen;
    m->nparams = 0;
    for (;;) {
        bool more_p = next_segment(&pp, &pseg, &plen);
        bool more_x = next_segment(&xp, &xseg, &xlen);
        if (!more_p || !more_x)
            return more_p == more_x && *xp == '\0' ? 1 : 0;
        if (xlen == 0)
            return 0;
        if (pseg[0] == '{') {
            struct sl_route_param *prm = &m->params[m->nparams];
            prm->name = plen == 4 && memcmp(pseg, "{id}", 4) == 0 ? "id" : "name";
            if (sl_route_decode_segment(xseg, xlen, prm->value, sizeof prm->value) < 0)
                return -1;
            m->nparams++;
        } else if (plen != xlen || memcmp(pseg, xseg, plen) != 0) {
            return 0;
        }
    }
}

enum sl_route_result sl_route(const char *method, const char *path, struct sl_route_match *m)
{
    bool path_known = false;
    memset(m, 0, sizeof *m);
    for (int i = 0; i < SL_ROUTE_COUNT; i++) {
        struct sl_route_match tmp = {0};
        int r = match_pattern(routes[i].pattern, path, &tmp);
        if (r < 0)
            return SL_ROUTE_BAD_PATH;
        if (r == 0)
            continue;
        if (strcmp(routes[i].method, method) == 0) {
            tmp.id = (enum sl_route_id)i;
            *m = tmp;
            return SL_ROUTE_OK;
        }
        /* Routes sharing a pattern list each method once (the table has no duplicates). */
        size_t used = strlen(m->allow);
        const char *sep = path_known ? ", " : "";
        if (used + strlen(sep) + strlen(routes[i].method) < sizeof m->allow) {
            strcat(m->allow, sep);
            strcat(m->allow, routes[i].method);
        }
        path_known = true;
    }
    if (!path_known)
        return SL_ROUTE_NOT_FOUND;
    m->nparams = 0;
    return SL_ROUTE_BAD_METHOD;
}

const char *sl_route_param(const struct sl_route_match *m, const char *name)
{
    for (size_t i = 0; i < m->nparams; i++)
        if (strcmp(m->params[i].name, name) == 0)
            return m->params[i].value;
    return NULL;
}

const char *sl_route_name(enum sl_route_id id)
{
    return (unsigned)id < SL_ROUTE_COUNT ? routes[id].name : "unknown route";
}
