/* Runtime objects of the data path, shared by the files of pool/ only (not a public header).
 *
 * Ownership: a worker owns its proxies; a proxy owns its listener, users and targets; a target owns
 * its pool shares, and every backend connection (idle or lent out) and its FIFO of waiting
 * sessions; a session owns its client stream and, while it holds one, borrows a backend. Everything
 * here runs on the worker's loop thread: no locks. */
#ifndef SL_POOL_INTERNAL_H
#define SL_POOL_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "base/config.h"
#include "base/list.h"
#include "base/secret.h"
#include "base/stream.h"
#include "pool/pinscan.h"
#include "pool/proto.h"
#include "pool/replay.h"
#include "pool/response.h"
#include "pool/sessvars.h"
#include "pool/worker.h"

struct sl_session;
struct sl_backend;
struct sl_proxy;

/* One database user of a proxy: its secret reference and the resolved credentials. */
struct sl_user {
    struct sl_auth_config cfg; /* copy; strings owned here */
    bool removed;              /* no longer in the configuration: refuses new logins */
    struct sl_secret secret;   /* resolved; wiped on free */
    bool resolved;
    struct timespec secret_mtime; /* file secrets: re-read when the file changes */
    double checked_at; /* loop time (s) of the last check, to stat at most once a second */
    /* caching_sha2_password: SHA256(SHA256(password)) of the last full authentication, so later
     * logins take the fast path (as the MySQL server's cache does). */
    uint8_t sha2_cache[32];
    bool sha2_cached;
};

enum sl_target_health { SL_TARGET_REGISTERING, SL_TARGET_AVAILABLE, SL_TARGET_UNAVAILABLE };

/* A database instance behind a proxy and its connection limit. */
struct sl_target {
    struct sl_proxy *proxy;
    char host[256];
    uint16_t port;
    struct sockaddr_storage addr;
    unsigned db_max_connections; /* @@max_connections, 0 until read from the database */
    uint32_t ext_caps;           /* MariaDB extended capabilities the server offered (offered to
                                  * clients; assumed until the first backend login tells) */
    unsigned open;               /* backends connected or connecting */
    unsigned idle;               /* backends parked in a share's idle list */
    struct sl_list shares;       /* struct sl_share */
    struct sl_list waiters;      /* sessions waiting for a backend, first come first served */
    struct sl_quota *quota;      /* the node's budget quota this target counts against; NULL
                                  * when no budget is enforced (a node without a cluster) */
    struct sl_list backends;     /* every struct sl_backend of the target, any state */
    enum sl_target_health health;
    char health_reason[32]; /* CONNECTION_FAILED, AUTH_FAILURE, ... */
    uv_timer_t retry_timer; /* reconnect back-off while unavailable */
    bool reader; /* the health checks see it up and read-only: a READ_ONLY endpoint may use it */
    double last_loss; /* loop time (s) a connection of this target last died under use:
                       * the ones idle since before then are pinged before being lent */
    bool retry_armed;
};

/* Backends of one target that are interchangeable: same user, handshake collation and the client
 * capabilities that change how the server answers. */
struct sl_share {
    struct sl_list link; /* in target->shares */
    struct sl_target *target;
    struct sl_user *user;
    uint8_t collation;
    uint32_t class_caps;     /* SL_CLASS_CAPS bits the clients of this share negotiated */
    uint32_t ext_caps;       /* MariaDB extended capabilities (SL_MARIADB_EXT_METADATA) */
    struct sl_list idle;     /* struct sl_backend, most recently used first */
    unsigned total;          /* backends of this share, any state */
    unsigned connecting;     /* of which still logging in or running setup */
    unsigned promised;       /* scratch: connecting backends not yet matched to a waiter */
    unsigned resetting;      /* being reset before reuse: soon idle again */
    struct sl_vars baseline; /* variables the init query sets on every new backend */
    bool baseline_known;
};

/* Client capabilities that partition pools (the backend must have the same ones). */
#define SL_CLASS_CAPS                                                                              \
    (SL_CLIENT_FOUND_ROWS | SL_CLIENT_LOCAL_FILES | SL_CLIENT_IGNORE_SPACE |                       \
     SL_CLIENT_MULTI_RESULTS | SL_CLIENT_PS_MULTI_RESULTS | SL_CLIENT_INTERACTIVE)

struct sl_proxy {
    struct sl_worker *worker;
    struct sl_proxy_config *cfg; /* points into the worker's current config */
    uv_tcp_t listener;
    bool listening;
    struct sl_user **users; /* stable pointers: sessions and shares refer to them */
    size_t n_users;
    bool removed;                    /* gone from the configuration; kept until its sessions end */
    struct sl_proxy_config *own_cfg; /* settings kept for a removed proxy's remaining sessions */
    struct sl_target *targets;
    size_t n_targets;
    /* The writer: where sessions borrow. It is targets[0] of the configuration in force, which
     * may move to another target of the same set without replacing the proxy (a writer switch,
     * pool/worker.c); p->targets keeps its first order, so look targets up by address. */
    struct sl_target *writer;
    size_t next_reader; /* READ_ONLY routing: where the next search starts (ties rotate) */
    unsigned sessions;
};

/* The node's share of one database budget (cluster mode): every target of every proxy with the same
 * budget key (pool/quota.c) counts its connections here, in any state, from the moment a connect
 * starts until the database has closed the connection. */
struct sl_quota {
    struct sl_list link; /* worker->quotas */
    char key[SL_WORKER_BUDGET_KEY_MAX + 1];
    unsigned limit;       /* connections this node may have open: its granted quota */
    unsigned open;        /* backends of all its targets, any state */
    unsigned peak_demand; /* highest (lent out + waiting) seen by sl_worker_budget_sample */
    unsigned checked;     /* 1 once health checks connect under this quota: one more wanted */
    uint64_t borrows;     /* borrows that got a backend */
    uint64_t borrow_wait_us;
    unsigned borrow_wait_max_ms; /* since the last report */
};

struct sl_worker {
    uv_loop_t *loop;
    struct sl_config *cfg;
    SSL_CTX *tls;
    struct sl_proxy **proxies;
    size_t n_proxies;
    uv_timer_t drain_timer;
    void (*drain_done)(void *arg);
    void *drain_arg;
    uint32_t next_conn_id;
    struct sl_list sessions; /* every live session, for drain and KILL */
    bool draining;
    struct sl_worker_stats stats;
    /* Budget (cluster mode only): quotas per budget key, the lease that backs them and the local
     * address backends connect from. */
    bool budget;
    struct sl_list quotas;      /* struct sl_quota */
    uint64_t lease_deadline_ns; /* uv_hrtime(): no connection may start at or after it */
    struct sockaddr_in source;
    bool bind_source;
};

/* ---- backend connections ----------------------------------------------------------------------
 */
enum sl_backend_state {
    SL_BE_CONNECTING,
    SL_BE_GREETING,  /* waiting for the server's handshake */
    SL_BE_AUTH,      /* HandshakeResponse sent */
    SL_BE_SETUP,     /* running the setup statements (tracking, init_query, @@max_connections) */
    SL_BE_IDLE,      /* parked in its share */
    SL_BE_PREPARING, /* lent out, bringing session state over before the client's command */
    SL_BE_RELAYING,  /* lent out, client command in flight or between commands */
    SL_BE_RESETTING, /* COM_RESET_CONNECTION before going back to the pool */
    SL_BE_CLOSING,
};

struct sl_backend {
    struct sl_stream bs;
    struct sl_list link; /* share->idle while idle */
    struct sl_share *share;
    struct sl_session *session; /* the borrower, or NULL */
    enum sl_backend_state state;
    uint64_t id;          /* for logs */
    uint32_t thread_id;   /* server's connection id, for KILL */
    uint32_t caps;        /* negotiated */
    uint16_t status;      /* last status flags */
    struct sl_vars have;  /* session state on this connection */
    int multi_statements; /* COM_SET_OPTION state: 1 on, 0 off, -1 unknown (after reset) */
    bool internal;        /* the response in flight answers our own command: swallow it */
    int setup_step;
    struct sl_resp_tracker rt;
    uint32_t chunk_left;   /* bytes of a packet chunk still to pass through unparsed */
    bool chunk_continues;  /* the current chunk is 0xFFFFFF long: the packet continues */
    bool infile;           /* LOCAL INFILE data is flowing from the client */
    bool done_pending;     /* the response ended in a packet still being passed through */
    unsigned packet_index; /* packets of the current response seen so far */
    uint8_t login_seq;     /* next sequence id expected during login */
    enum sl_prep {
        SL_PREP_NONE,
        SL_PREP_PING,
        SL_PREP_SCHEMA,
        SL_PREP_VARS,
        SL_PREP_MULTI,
        SL_PREP_REPLAY, /* running a statement of the borrower's lost transaction again */
    } prep;
    /* CRC32 of the response in flight, while a transaction is recorded or replayed. */
    bool crc_on;
    uint32_t crc;
    uint32_t crc_expected; /* SL_PREP_REPLAY: what the recorded response had */
    double idle_since;
    struct sl_session *affine;  /* idle, but kept for this session's next command if possible */
    struct sl_list target_link; /* in target->backends, any state */
};

/* ---- client sessions --------------------------------------------------------------------------
 */
enum sl_session_state {
    SL_SS_GREETING,      /* handshake sent, waiting for SSLRequest or HandshakeResponse */
    SL_SS_TLS,           /* TLS handshake running */
    SL_SS_AUTH_RESPONSE, /* waiting for the HandshakeResponse inside TLS */
    SL_SS_AUTH_SWITCH,   /* AuthSwitchRequest sent */
    SL_SS_AUTH_FULL,     /* caching_sha2 full authentication: waiting for the password */
    SL_SS_IDLE,          /* authenticated, no command in flight */
    SL_SS_WAITING,       /* command buffered, waiting for a backend */
    SL_SS_BUSY,          /* command sent to the backend, response being relayed */
    SL_SS_CLOSING,
};

/* What went with a backend connection that was lost while the session held it between commands;
 * the client learns at its next command. */
enum sl_lost {
    SL_LOST_NONE,
    SL_LOST_TRANSACTION, /* an open transaction: replayed, or failed with a retryable error */
    SL_LOST_STATE,       /* pinned state (temporary tables, locks, prepared statements, ...) */
};

/* What a session waits for a backend to do. */
enum sl_pending { SL_PENDING_COMMAND, SL_PENDING_LOGIN_DB };

struct sl_session {
    struct sl_stream cs;
    struct sl_list link;      /* worker->sessions */
    struct sl_list wait_link; /* target->waiters while waiting */
    struct sl_proxy *proxy;
    struct sl_user *user;
    struct sl_share *share;
    struct sl_backend *be;     /* held backend, or NULL */
    struct sl_backend *affine; /* idle backend that served our last INSERT (LAST_INSERT_ID()) */
    bool borrowed;             /* be was borrowed for the command in flight (not held over) */
    enum sl_session_state state;
    enum sl_pending pending;
    uint64_t id; /* also the connection id shown to the client */
    uint8_t nonce[SL_NONCE_LEN];
    uint8_t seq;       /* next sequence id during the handshake */
    uint32_t caps;     /* negotiated with the client */
    uint32_t ext_caps; /* MariaDB extended capabilities negotiated with the client */
    uint8_t collation;
    bool tls;
    bool auth_sha2;      /* the running auth exchange is caching_sha2_password */
    struct sl_vars want; /* session state the client expects */
    bool multi_statements;
    uint32_t pins;   /* enum sl_pin_reason bits */
    uint16_t status; /* status flags the client last saw */
    uint8_t cmd;     /* command in flight */
    size_t cmd_len;  /* bytes of the buffered command (headers included) */
    /* COM_CHANGE_USER in progress: the session as it was, restored if the change fails (as MariaDB
     * keeps the previous user logged in). */
    struct sl_change_prev {
        bool active;
        struct sl_user *user;
        struct sl_share *share;
        struct sl_vars want;
        uint8_t collation;
        bool multi_statements;
    } prev;
    /* Surviving the loss of the backend (docs/failover.md). */
    enum sl_stmt_kind stmt_kind; /* of the command in flight */
    bool stmt_nondet;            /* it calls NOW(), RAND(), ... (sl_stmt_scan) */
    bool cmd_sent; /* the command went to the backend and nothing of the answer reached the client
                    * yet: it is still at the head of cs.in, so it can be sent again */
    enum sl_lost lost;
    uint32_t lost_pins;      /* SL_LOST_STATE: the pin reasons whose state went with it */
    bool replay_pending;     /* the next backend replays the transaction before the command */
    size_t replay_pos;       /* next entry of replay to send */
    uint8_t recoveries;      /* backends lost during the current command */
    struct sl_replay replay; /* the open transaction, when transaction_replay is on */
    uint8_t rewrite[48];     /* a command sent instead of the buffered one (KILL mapping) */
    size_t rewrite_len;
    uv_timer_t timer; /* idle-client and borrow timeouts */
    double wait_started;
    char peer[64];
};

/* backend.c */
int sl_backend_open(struct sl_share *share);
void sl_backend_send_command(struct sl_backend *b, const uint8_t *pkt, size_t len,
                             enum sl_resp_kind kind);
void sl_backend_close(struct sl_backend *b);
/* Close at once without COM_QUIT, whatever the state; a session holding it loses it. */
void sl_backend_abort(struct sl_backend *b);
void sl_backend_reset(struct sl_backend *b);
/* The client drained its write queue: read and relay again. */
void sl_backend_resume(struct sl_backend *b);
/* Bring the backend to its session's state (schema, variables, multi-statements). Returns true when
 * nothing had to be sent; otherwise sl_session_backend_ready (or sl_session_prepare_failed)
 * follows. */
bool sl_backend_prepare(struct sl_backend *b);
/* LOCAL INFILE: pass the client's data packets through until the empty one that ends them. */
void sl_backend_forward_infile(struct sl_backend *b, struct sl_buf *in);

/* pool.c */
struct sl_share *sl_share_get(struct sl_target *t, struct sl_user *u, uint8_t collation,
                              uint32_t class_caps, uint32_t ext_caps);
void sl_pool_borrow(struct sl_session *s);
void sl_pool_cancel_wait(struct sl_session *s);
/* READ_ONLY routing: t is no longer the place to wait (down, or not a reader): its waiters borrow
 * again where the routing now sends them. */
void sl_pool_reroute_waiters(struct sl_target *t);
void sl_pool_release(struct sl_backend *b, bool reset);
void sl_pool_unlink_affinity(struct sl_backend *b);
void sl_pool_backend_ready(struct sl_backend *b);
void sl_pool_backend_gone(struct sl_backend *b);
void sl_pool_backend_failed(struct sl_share *share, const char *reason, const uint8_t *err_pkt,
                            size_t err_len);
/* Hand idle backends to t's waiters and open connections for the rest, within the limits. */
void sl_pool_dispatch(struct sl_target *t);
/* The least recently used idle backend of any share of t, or NULL. */
struct sl_backend *sl_pool_oldest_idle(struct sl_target *t);
unsigned sl_pool_lent(struct sl_target *t);    /* backends lent to sessions */
unsigned sl_pool_waiting(struct sl_target *t); /* sessions waiting for one */
unsigned sl_target_limit(const struct sl_target *t);

/* quota.c */
/* The quota of a new target (NULL when the worker enforces no budget). */
struct sl_quota *sl_quota_for(struct sl_worker *w, const struct sl_proxy_config *pc,
                              const struct sl_target *t);
/* No new connection may start on t now: its quota is used up or its lease has run out. */
bool sl_quota_full(const struct sl_target *t);
/* t counts against a quota whose lease has run out. */
bool sl_quota_lease_over(const struct sl_target *t);
/* A connection counted against t's quota is gone: let waiters of its other targets in. */
void sl_quota_released(struct sl_target *t);
/* The least recently used idle backend of any target sharing t's quota, or NULL. */
struct sl_backend *sl_quota_oldest_idle(struct sl_target *t);
void sl_quota_note_borrow(struct sl_target *t, double waited_s);
/* Sessions of another target with t's quota are waiting. */
bool sl_quota_waiting(const struct sl_target *t);
void sl_quotas_free(struct sl_worker *w);

/* session.c */
void sl_session_accept(struct sl_proxy *p);
void sl_session_got_backend(struct sl_session *s, struct sl_backend *b);
void sl_session_backend_ready(struct sl_session *s);
/* last: the response's terminal packet when it is small (NULL otherwise). */
void sl_session_relay_done(struct sl_session *s, const uint8_t *last, size_t last_len);
void sl_session_backend_lost(struct sl_session *s);
/* The first packet of the answer to the client's command arrived: from now on it cannot be sent
 * again. */
void sl_session_response_started(struct sl_session *s);
/* A replayed statement answered differently from the original. */
void sl_session_replay_mismatch(struct sl_session *s);
void sl_session_fail(struct sl_session *s, uint16_t code, const char *sqlstate, const char *msg);
void sl_session_send_err_packet(struct sl_session *s, const uint8_t *payload, size_t len);
void sl_session_prepare_failed(struct sl_session *s, const uint8_t *err, size_t len);
void sl_session_arm_borrow_timer(struct sl_session *s);
/* Pin the session for the given reasons; each reason newly set is counted in the worker's stats. */
void sl_session_pin(struct sl_session *s, uint32_t reasons);
void sl_session_close(struct sl_session *s);

/* worker.c */
void sl_worker_session_gone(struct sl_worker *w);

/* auth.c */
int sl_user_refresh(struct sl_worker *w, struct sl_user *u);
struct sl_user *sl_user_find(struct sl_proxy *p, const char *name, size_t len);

static inline double sl_now(const struct sl_worker *w)
{
    return (double)uv_now(w->loop) / 1000.0;
}

#endif
