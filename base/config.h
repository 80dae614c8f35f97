/* The node's configuration model: what a configuration source (today a JSON file, later the Raft
 * store) hands to the data path. Parsing is a pure function over a buffer; the result is immutable
 * once published and freed with sl_config_free().
 *
 * Field names follow RDS Proxy (DBProxy, DBProxyTargetGroup.ConnectionPoolConfig) in snake_case so
 * that operators who know RDS Proxy recognise them. Secrets are references only: a config never
 * holds a password. */
#ifndef SL_BASE_CONFIG_H
#define SL_BASE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum sl_client_auth_type {
    SL_AUTH_MYSQL_NATIVE_PASSWORD, /* "MYSQL_NATIVE_PASSWORD" */
    SL_AUTH_MYSQL_CACHING_SHA2,    /* "MYSQL_CACHING_SHA2_PASSWORD" */
};

/* One entry of a proxy's "auth" list: one database user. */
struct sl_auth_config {
    char *secret;                         /* "file:/abs/path.json" or "env:NAME"; required */
    enum sl_client_auth_type client_auth; /* "client_password_auth_type", default NATIVE */
    char *description;                    /* optional, may be NULL */
};

/* "connection_pool_config": names, ranges and defaults of RDS Proxy. */
struct sl_pool_config {
    unsigned max_connections_percent;      /* 1..100, default 100 */
    unsigned max_idle_connections_percent; /* 0..max_connections_percent, default 50 */
    unsigned connection_borrow_timeout;    /* seconds, 0..3600, default 120; 0 = fail at once */
    char *init_query;                      /* run on every new backend connection; NULL = none */
    bool exclude_variable_sets; /* "session_pinning_filters": ["EXCLUDE_VARIABLE_SETS"] */
    bool transaction_replay;    /* default false: replay a transaction cut off by a lost backend */
    uint32_t transaction_replay_max_size; /* bytes, 1024..64 MiB, default 1 MiB */
};

/* A database instance behind a proxy. */
struct sl_target_config {
    char *host;    /* required */
    uint16_t port; /* default 3306 */
};

struct sl_proxy_config {
    char *name;                   /* required, [A-Za-z0-9-]{1,63}, unique */
    char *listen_host;            /* default "127.0.0.1" */
    uint16_t listen_port;         /* required */
    bool require_tls;             /* default true */
    unsigned idle_client_timeout; /* seconds, 1..28800, default 1800 */
    bool debug_logging;           /* default false */
    uint32_t
        max_packet_size; /* largest client packet accepted, bytes; 1024..1 GiB, default 64 MiB */
    struct sl_auth_config *auth; /* at least one */
    size_t n_auth;
    struct sl_pool_config pool;       /* "connection_pool_config" */
    struct sl_target_config *targets; /* at least one; targets[0] is the writer */
    /* "routing": "READ_ONLY" (a READ_ONLY endpoint): sessions go to the least busy target that
     * the health checks see up and read-only, and to the writer when there is none. */
    bool read_only_routing;
    /* "health_check": the node's checks of these targets (failover/health.h); in a cluster the
     * target group's failover.check_* settings. */
    struct sl_health_check_config {
        unsigned interval_ms; /* 100..60000, default 500 */
        unsigned timeout_ms;  /* 1000..60000, default 1000 */
        unsigned failures;    /* 1..10, default 2 */
    } health_check;
    size_t n_targets;
};

/* "admin": the node's HTTP admin API (optional; absent = no admin listener). */
struct sl_admin_listen_config {
    char *host;    /* default "127.0.0.1" */
    uint16_t port; /* required */
    char *token;   /* required: secret reference ("file:/..." or "env:NAME") to the bearer token */
    bool tls;      /* default false; true serves HTTPS with the node's "tls" certificate */
    /* CA of the other nodes' admin certificates, to check the leader when forwarding writes over
     * https; NULL when absent; required with "cluster" and "tls": true. */
    char *ca_file;
};

/* One entry of "cluster": {"initial_members": [...]}: a voter of a cluster being initialised, and
 * the node resource the first leader registers for it. */
struct sl_cluster_member {
    uint64_t id;        /* Raft id, > 0, unique */
    char *raft_address; /* IPv4 "a.b.c.d:port", unique */
    char *admin_url;    /* "http://host:port" or "https://host:port" */
    char *data_address; /* IPv4 address the member's proxies listen on */
    char *az;           /* availability zone, [A-Za-z0-9._-]{1,63} */
};

/* "cluster": this node is a member of a Raft cluster whose store holds the proxies. */
struct sl_cluster_config {
    uint64_t id;        /* this node's Raft id, > 0 */
    char *raft_address; /* IPv4 "a.b.c.d:port" (libraft 0.15 takes no host names) */
    char *data_dir;     /* absolute path; "raft" and "lmdb" live inside */
    char *data_address; /* IPv4 address this node's proxies listen on */
    struct sl_cluster_member *initial_members; /* voters for --init-cluster; may be empty */
    size_t n_initial_members;
    unsigned snapshot_threshold; /* applied entries between snapshots: 16..1000000, default 1024 */
    unsigned snapshot_trailing;  /* entries kept behind a snapshot: 1..1000000, default 2048 */
};

/* Where a document comes from, which decides the rules about "proxies" and "cluster". */
enum sl_config_origin {
    /* The node's file: either "proxies" (at least one) or "cluster" (then no "proxies", and
     * "admin" is required). */
    SL_CONFIG_FILE,
    /* Generated by the node from its store (node/store_source.h): "proxies" is required but may
     * be empty (a new cluster has none); "cluster" is not allowed. */
    SL_CONFIG_STORE,
};

struct sl_config {
    char *node_id;          /* "node": {"id"}, default "node1" */
    char *az;               /* "node": {"az"}, default "local" */
    char *tls_cert_file;    /* "tls": {"cert_file"}; required when any proxy requires TLS */
    char *tls_key_file;     /* "tls": {"key_file"} */
    unsigned drain_timeout; /* "node": {"drain_timeout"} seconds for SIGTERM drain, default 30 */
    struct sl_admin_listen_config *admin; /* NULL when the config has no "admin" block */
    struct sl_cluster_config *cluster;    /* NULL when the config has no "cluster" block */
    struct sl_proxy_config *proxies;      /* at least one, except in cluster mode (see origin) */
    size_t n_proxies;
};

/* Parse and validate a whole configuration document. On success returns 0 and *out owns the result.
 * On failure returns -1, leaves *out NULL, and writes a one-line reason naming the offending field
 * (e.g. "proxies[0].connection_pool_config.max_connections_percent: must be 1..100") into err. */
int sl_config_parse(const char *json, size_t len, struct sl_config **out, char *err, size_t errlen);

/* The same for a document of the given origin (sl_config_parse is SL_CONFIG_FILE). */
int sl_config_parse_from(enum sl_config_origin origin, const char *json, size_t len,
                         struct sl_config **out, char *err, size_t errlen);

/* Read FILE and parse it (same contract; the reason names the file on I/O errors). */
int sl_config_load(const char *path, struct sl_config **out, char *err, size_t errlen);

void sl_config_free(struct sl_config *cfg);

const char *sl_client_auth_type_name(enum sl_client_auth_type t);

#endif
