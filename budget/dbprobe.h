/* Database-side operations of the budget and failover leaders and of the nodes' health checks, each
 * on short-lived Connector/C connections run in libuv's thread pool (uv_queue_work), so the loop
 * never blocks on the database:
 *
 *   monitor  read @@max_connections (creds[0]);
 *   check    a health check (creds[0]): connect, read @@read_only, @@gtid_current_pos and
 *            @@max_connections in one statement, then the replica threads (SHOW ALL SLAVES
 *            STATUS), which need the SLAVE MONITOR privilege: without it that part stays unknown,
 *            and whether semi-synchronous replication is active (Rpl_semi_sync_master_status);
 *   promote  (creds[0] an administrator: READ_ONLY ADMIN, REPLICATION SLAVE ADMIN, SLAVE MONITOR)
 *            make a replica the writer without losing what it received: stop its IO thread, wait
 *            (MASTER_GTID_WAIT) until the SQL thread applied everything the IO thread got, stop and
 *            forget replication, optionally enable the semi-sync master side, read_only=0;
 *   repoint  (creds[0] an administrator) replicate from source_host:source_port with the repl
 *            account, using GTID (MASTER_USE_GTID=slave_pos);
 *   demote   (creds[0] an administrator) read_only=1: a fence for a writer that lost its role;
 *   fence    for each user in creds, one after the other: connect, read @@max_connections, then
 *            until no row is left or the deadline passes: list that user's threads whose
 *            information_schema.PROCESSLIST.HOST is '<fence_ip>:<port>' (skip-name-resolve), KILL
 *            CONNECTION each, sleep ~50 ms, list again. A user sees and may kill its own threads
 *            without privileges; one with PROCESS also sees other users' threads but may not kill
 *            them, so each user's query is restricted to its own threads.
 *
 * Connections are plain TCP (MYSQL_PROTOCOL_TCP even for "localhost"), with no default database; a
 * probe holds at most one connection at a time. Connector/C's connect/read/write timeouts are whole
 * seconds: each connection gets the time left until the deadline, rounded up, at least 1 s; they
 * bound each network wait, not the sum, so a server that stalls late in a fence can hold the probe
 * (and its thread-pool thread) past timeout_ms by up to that many seconds.
 *
 * One log line per fence (ip, database, killed, remaining, elapsed), from the loop thread. Neither
 * the log nor error[] ever holds a password. */
#ifndef SL_BUDGET_DBPROBE_H
#define SL_BUDGET_DBPROBE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "base/secret.h"

#define SL_DBPROBE_USERS_MAX 16

struct sl_dbprobe_cred {
    char user[SL_SECRET_USER_MAX + 1];
    char password[SL_SECRET_PASSWORD_MAX + 1];
};

struct sl_dbprobe_request {
    char host[256]; /* IPv4 literal or name */
    uint16_t port;
    struct sl_dbprobe_cred creds[SL_DBPROBE_USERS_MAX];
    size_t n_creds;    /* >= 1; monitor uses creds[0] */
    char fence_ip[64]; /* "" = monitor only; else kill and verify connections from this IPv4 address
                        */
    char bind_ip[64];  /* "" = any; else the local IPv4 address to connect from (the leader's data
                        * address, so that a fence of the leader would find its probes too) */
    unsigned timeout_ms; /* whole operation bound; connect/read/write timeouts derive from it */
    bool check;          /* a health check instead of a monitor probe (fence_ip must be "") */
    enum sl_dbprobe_change {
        SL_DBPROBE_NO_CHANGE,
        SL_DBPROBE_PROMOTE,
        SL_DBPROBE_REPOINT,
        SL_DBPROBE_DEMOTE,
    } change;              /* a topology change instead (check false, fence_ip "") */
    char source_host[256]; /* repoint: the new source */
    uint16_t source_port;
    struct sl_dbprobe_cred repl; /* repoint: the replication account */
    bool semi_sync;              /* promote: turn the semi-sync master side on (only when
                                  * replicas will follow: with none, every commit would wait for
                                  * rpl_semi_sync_master_timeout) */
};

struct sl_dbprobe_result {
    bool ok;                  /* monitor: max_connections read; fence: no connection from fence_ip
                                 remains for any user */
    unsigned max_connections; /* 0 if not read */
    unsigned killed;          /* connections killed (fence) */
    unsigned remaining;       /* connections still seen at the last check (fence) */
    char error[256];          /* when !ok: what failed (never contains a password) */
    /* check: */
    unsigned error_code; /* Connector/C or server error number of the failure, 0 if none */
    bool connected;      /* the login succeeded */
    int read_only;       /* @@read_only: 1, 0, or -1 when not read */
    int replicating;     /* a replica connection whose SQL thread runs: 1, 0 (none, or all
                          * stopped), -1 unknown (no privilege) */
    char gtid[256];      /* @@gtid_current_pos ("" when not read); after a change, its value then */
    int semi_sync;       /* check: Rpl_semi_sync_master_status ON 1, OFF 0, -1 not read */
};

/* Called on the loop thread; r is valid only during the call. */
typedef void (*sl_dbprobe_cb)(const struct sl_dbprobe_result *r, void *arg);

/* Copy rq (the copy is wiped after use; the caller wipes its own), run it on the thread pool, then
 * call cb(result, arg) on the loop thread, exactly once. Returns 0, or -1 without calling cb: out
 * of memory, or an invalid request (n_creds not in 1..SL_DBPROBE_USERS_MAX, empty host or user,
 * port or timeout_ms 0, a string not terminated inside its array, fence_ip not a dotted IPv4
 * address). The loop must keep running until cb has been called (uv_loop_close fails before). */
int sl_dbprobe_run(uv_loop_t *loop, const struct sl_dbprobe_request *rq, sl_dbprobe_cb cb,
                   void *arg);

#endif
