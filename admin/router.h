/* Routing of the admin API: (method, path) to a route id and its path parameters. Pure.
 *
 * The router knows every route of the API (docs/admin-api.md), including those whose handlers come
 * with the Raft store; which ones answer is the server's business (unregistered ones answer 501).
 * Path segments are split on '/' first and percent-decoded after, so "%2F" inside a name is data,
 * not a separator. A decoded segment must be valid UTF-8 without NUL (names end up in JSON and in
 * C strings); an empty segment (as in "//" or a trailing '/') matches no route. */
#ifndef SL_ADMIN_ROUTER_H
#define SL_ADMIN_ROUTER_H

#include <stddef.h>

enum sl_route_id {
    SL_ROUTE_HEALTH,                      /* GET    /v1/health */
    SL_ROUTE_CLUSTER_GET,                 /* GET    /v1/cluster */
    SL_ROUTE_CLUSTER_NODE_ADD,            /* POST   /v1/cluster/nodes */
    SL_ROUTE_CLUSTER_NODE_REMOVE,         /* DELETE /v1/cluster/nodes/{id} */
    SL_ROUTE_CLUSTER_TRANSFER_LEADERSHIP, /* POST   /v1/cluster/transfer-leadership */
    SL_ROUTE_SECRETS_LIST,                /* GET    /v1/secrets */
    SL_ROUTE_SECRET_PUT,                  /* PUT    /v1/secrets/{name} */
    SL_ROUTE_SECRET_GET,                  /* GET    /v1/secrets/{name} */
    SL_ROUTE_SECRET_DELETE,               /* DELETE /v1/secrets/{name} */
    SL_ROUTE_PROXIES_LIST,                /* GET    /v1/proxies */
    SL_ROUTE_PROXY_PUT,                   /* PUT    /v1/proxies/{name} */
    SL_ROUTE_PROXY_GET,                   /* GET    /v1/proxies/{name} */
    SL_ROUTE_PROXY_DELETE,                /* DELETE /v1/proxies/{name} */
    SL_ROUTE_TARGET_GROUP_PUT,            /* PUT    /v1/proxies/{name}/target-group */
    SL_ROUTE_TARGET_GROUP_GET,            /* GET    /v1/proxies/{name}/target-group */
    SL_ROUTE_TARGETS_ADD,                 /* POST   /v1/proxies/{name}/targets */
    SL_ROUTE_TARGETS_LIST,                /* GET    /v1/proxies/{name}/targets */
    SL_ROUTE_TARGET_REMOVE,               /* DELETE /v1/proxies/{name}/targets/{id} */
    SL_ROUTE_WRITER_PUT,                  /* PUT    /v1/proxies/{name}/writer */
    SL_ROUTE_WRITER_GET,                  /* GET    /v1/proxies/{name}/writer */
    SL_ROUTE_STATS,                       /* GET    /v1/stats */
    SL_ROUTE_METRICS,                     /* GET    /metrics */
    SL_ROUTE_BUDGET_GET,                  /* GET    /v1/budget */
    SL_ROUTE_BUDGET_REPORT,               /* POST   /v1/internal/budget/report */
    SL_ROUTE_FAILOVER_REPORT,             /* POST   /v1/internal/failover/report */
    SL_ROUTE_EVENTS,                      /* GET    /v1/events */
    SL_ROUTE_COUNT
};

enum sl_route_result {
    SL_ROUTE_OK,
    SL_ROUTE_NOT_FOUND,  /* 404 */
    SL_ROUTE_BAD_METHOD, /* 405; match->allow lists the path's methods */
    SL_ROUTE_BAD_PATH,   /* 400: an invalid percent escape, NUL, or invalid UTF-8 */
};

/* A decoded parameter holds at most SL_ROUTE_PARAM_MAX bytes; longer ones are SL_ROUTE_BAD_PATH. */
#define SL_ROUTE_MAX_PARAMS 2
#define SL_ROUTE_PARAM_MAX  255

struct sl_route_param {
    const char *name; /* "name" or "id" (static) */
    char value[SL_ROUTE_PARAM_MAX + 1];
};

struct sl_route_match {
    enum sl_route_id id;
    size_t nparams;
    struct sl_route_param params[SL_ROUTE_MAX_PARAMS];
    char allow[48]; /* "GET, PUT, DELETE" after SL_ROUTE_BAD_METHOD */
};

/* Route method (as sent, case-sensitive) and path (percent-encoded, without the query string). */
enum sl_route_result sl_route(const char *method, const char *path, struct sl_route_match *m);

/* The value of a path parameter of the match, or NULL. */
const char *sl_route_param(const struct sl_route_match *m, const char *name);

/* "GET /v1/proxies/{name}": for messages and logs. */
const char *sl_route_name(enum sl_route_id id);

/* Percent-decode one path segment into out (cap bytes, NUL-terminated). Returns the decoded length,
 * or -1 for an invalid escape, a NUL, invalid UTF-8, or a result that does not fit. */
int sl_route_decode_segment(const char *seg, size_t len, char *out, size_t cap);

#endif
