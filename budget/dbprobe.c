/* Monitor and fence probes on Connector/C's blocking API, in libuv's thread pool. The work callback
 * touches only its own struct probe; the loop thread touches it again only in after_work. */
#include "budget/dbprobe.h"

#include <arpa/inet.h>
#include <limits.h>
#include <mysqld_error.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <mysql.h>
#include <openssl/crypto.h>

#include "base/log.h"

#define ROUND_PAUSE_MS 50

struct probe {
    uv_work_t work;
    struct sl_dbprobe_request rq; /* fence_ip rewritten in canonical dotted form */
    struct sl_dbprobe_result res;
    uint64_t elapsed_ms;
    sl_dbprobe_cb cb;
    void *arg;
};

static pthread_once_t lib_once = PTHREAD_ONCE_INIT;
static bool lib_ok; /* written once under lib_once, read after pthread_once returns */

static void lib_init(void)
{
    lib_ok = mysql_library_init(0, NULL, NULL) == 0;
}

static uint64_t now_ms(void)
{
    return uv_hrtime() / 1000000u;
}

/* Records the first failure only: later ones are usually its consequences. */
static void fail(struct probe *p, const char *fmt, ...) SL_PRINTF(2, 3);
static void fail(struct probe *p, const char *fmt, ...)
{
    if (p->res.error[0])
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->res.error, sizeof p->res.error, fmt, ap);
    va_end(ap);
}

/* Connector/C's messages name the user and client host, never the password. */
static void fail_mysql(struct probe *p, MYSQL *m, const char *user, const char *what)
{
    if (!p->res.error_code)
        p->res.error_code = mysql_errno(m);
    fail(p, "%s:%u user %s: %s: %s (%u)", p->rq.host, p->rq.port, user, what, mysql_error(m),
         mysql_errno(m));
}

static MYSQL *connect_user(struct probe *p, const struct sl_dbprobe_cred *c, uint64_t deadline)
{
    uint64_t now = now_ms();
    if (now >= deadline) {
        fail(p, "%s:%u user %s: timed out after %u ms before connecting", p->rq.host, p->rq.port,
             c->user, p->rq.timeout_ms);
        return NULL;
    }
    /* Whole seconds, rounded up (so at least 1): what is left of the operation's bound. */
    unsigned secs = (unsigned)((deadline - now + 999) / 1000);
    unsigned proto = MYSQL_PROTOCOL_TCP; /* "localhost" would otherwise mean the unix socket */
    MYSQL *m = mysql_init(NULL);
    if (!m) {
        fail(p, "%s:%u: out of memory", p->rq.host, p->rq.port);
        return NULL;
    }
    mysql_options(m, MYSQL_OPT_CONNECT_TIMEOUT, &secs);
    mysql_options(m, MYSQL_OPT_READ_TIMEOUT, &secs);
    mysql_options(m, MYSQL_OPT_WRITE_TIMEOUT, &secs);
    mysql_options(m, MYSQL_OPT_PROTOCOL, &proto);
    if (p->rq.bind_ip[0])
        mysql_options(m, MYSQL_OPT_BIND, p->rq.bind_ip);
    if (!mysql_real_connect(m, p->rq.host, c->user, c->password, NULL, p->rq.port, NULL, 0)) {
        fail_mysql(p, m, c->user, "connect");
        mysql_close(m);
        return NULL;
    }
    return m;
}

/* The result set of sql (buffered, so the connection is free for other statements meanwhile). */
static MYSQL_RES *query(struct probe *p, MYSQL *m, const char *user, const char *sql)
{
    MYSQL_RES *rs = NULL;
    if (mysql_real_query(m, sql, strlen(sql)) != 0 || !(rs = mysql_store_result(m)))
        fail_mysql(p, m, user, sql);
    return rs;
}

static int read_max_connections(struct probe *p, MYSQL *m, const char *user)
{
    MYSQL_RES *rs = query(p, m, user, "SELECT @@max_connections");
    if (!rs)
        return -1;
    MYSQL_ROW row = mysql_fetch_row(rs);
    char *end = NULL;
    unsigned long v = row && row[0] ? strtoul(row[0], &end, 10) : 0;
    bool valid = v > 0 && v <= UINT_MAX && !*end; /* end points into rs */
    mysql_free_result(rs);
    if (!valid) {
        fail(p, "%s:%u: unexpected @@max_connections", p->rq.host, p->rq.port);
        return -1;
    }
    if (!p->res.max_connections)
        p->res.max_connections = (unsigned)v;
    return 0;
}

static void sleep_ms(uint64_t ms)
{
    struct timespec ts = {.tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL); /* an interrupted pause only makes the next round come sooner */
}

/* Kill c's threads from fence_ip until none is left or the deadline passes; adds to killed and to
 * remaining (what the last check saw). A killed thread can stay listed for a moment (it notices the
 * kill at its next check), so each id is killed once and simply waited for afterwards: killed
 * counts connections, not statements. */
static void fence_user(struct probe *p, const struct sl_dbprobe_cred *c, uint64_t deadline)
{
    MYSQL *m = connect_user(p, c, deadline);
    if (!m)
        return;
    uint64_t *ids = NULL; /* killed by this user; thread ids are never reused while listed */
    size_t n_ids = 0, cap_ids = 0;
    unsigned seen = 0;
    if (read_max_connections(p, m, c->user) != 0)
        goto out;

    /* A user with PROCESS sees every user's threads but may kill only its own (without
     * CONNECTION ADMIN): restrict to the login name (binary: user names are case-sensitive). The
     * address passed inet_pton/inet_ntop, so it holds no quote or LIKE wildcard. */
    char user_esc[2 * SL_SECRET_USER_MAX + 1], sql[sizeof user_esc + 256];
    mysql_real_escape_string(m, user_esc, c->user, (unsigned long)strlen(c->user));
    snprintf(sql, sizeof sql,
             "SELECT ID FROM information_schema.PROCESSLIST WHERE HOST LIKE '%s:%%' "
             "AND ID <> CONNECTION_ID() AND USER = BINARY '%s'",
             p->rq.fence_ip, user_esc);
    for (;;) {
        MYSQL_RES *rs = query(p, m, c->user, sql);
        if (!rs)
            goto out;
        seen = (unsigned)mysql_num_rows(rs);
        if (seen == 0) {
            mysql_free_result(rs);
            goto out;
        }
        if (now_ms() >= deadline) {
            mysql_free_result(rs);
            fail(p, "%s:%u user %s: %u connection(s) from %s still open after %u ms", p->rq.host,
                 p->rq.port, c->user, seen, p->rq.fence_ip, p->rq.timeout_ms);
            goto out;
        }
        MYSQL_ROW row;
        while ((row = mysql_fetch_row(rs))) {
            uint64_t id = row[0] ? strtoull(row[0], NULL, 10) : 0;
            bool skip = id == 0;
            for (size_t i = 0; i < n_ids && !skip; i++)
                skip = ids[i] == id;
            if (skip)
                continue;
            if (n_ids == cap_ids) { /* room first, so that every successful kill is counted */
                size_t cap = cap_ids ? 2 * cap_ids : 16;
                uint64_t *grown = realloc(ids, cap * sizeof *ids);
                if (!grown) {
                    fail(p, "%s:%u: out of memory", p->rq.host, p->rq.port);
                    mysql_free_result(rs);
                    goto out;
                }
                ids = grown;
                cap_ids = cap;
            }
            char kill[64];
            snprintf(kill, sizeof kill, "KILL CONNECTION %llu", (unsigned long long)id);
            if (mysql_real_query(m, kill, strlen(kill)) != 0) {
                if (mysql_errno(m) == ER_NO_SUCH_THREAD) /* it went away by itself */
                    continue;
                fail_mysql(p, m, c->user, kill);
                mysql_free_result(rs);
                goto out;
            }
            ids[n_ids++] = id;
            p->res.killed++;
        }
        mysql_free_result(rs);
        uint64_t now = now_ms(), left = deadline > now ? deadline - now : 0;
        sleep_ms(left < ROUND_PAUSE_MS ? left : ROUND_PAUSE_MS);
    }
out:
    p->res.remaining += seen;
    free(ids);
    mysql_close(m);
}

/* A statement whose failure is an answer, not an error of the probe. */
static bool query_ok(MYSQL *m, const char *sql)
{
    return mysql_real_query(m, sql, strlen(sql)) == 0;
}

/* The replica connections of m's server: 1 when one has its SQL thread running, 0 when none
 * does (or there is none), -1 when the user may not look (SLAVE MONITOR). */
static int replication_running(MYSQL *m)
{
    if (!query_ok(m, "SHOW ALL SLAVES STATUS"))
        return -1;
    MYSQL_RES *rs = mysql_store_result(m);
    if (!rs)
        return -1;
    unsigned n = mysql_num_fields(rs), col = n;
    MYSQL_FIELD *f = mysql_fetch_fields(rs);
    for (unsigned i = 0; i < n; i++)
        if (strcmp(f[i].name, "Slave_SQL_Running") == 0)
            col = i;
    int running = 0;
    MYSQL_ROW row;
    while (col < n && (row = mysql_fetch_row(rs)))
        if (row[col] && strcmp(row[col], "Yes") == 0)
            running = 1;
    mysql_free_result(rs);
    return col < n ? running : -1;
}

static int semi_sync_active(MYSQL *m);

static void check(struct probe *p, uint64_t deadline)
{
    const struct sl_dbprobe_cred *c = &p->rq.creds[0];
    MYSQL *m = connect_user(p, c, deadline);
    if (!m)
        return;
    p->res.connected = true;
    MYSQL_RES *rs =
        query(p, m, c->user, "SELECT @@read_only, @@gtid_current_pos, @@max_connections");
    MYSQL_ROW row = rs ? mysql_fetch_row(rs) : NULL;
    if (row) {
        p->res.read_only = row[0] ? strcmp(row[0], "0") != 0 : -1;
        snprintf(p->res.gtid, sizeof p->res.gtid, "%s", row[1] ? row[1] : "");
        p->res.max_connections = row[2] ? (unsigned)strtoul(row[2], NULL, 10) : 0;
    } else if (rs) {
        fail(p, "%s:%u: no row from the health check", p->rq.host, p->rq.port);
    }
    if (rs)
        mysql_free_result(rs);
    if (row) {
        p->res.replicating = replication_running(m);
        p->res.semi_sync = semi_sync_active(m);
    }
    mysql_close(m);
}

static int semi_sync_active(MYSQL *m)
{
    if (!query_ok(m, "SHOW GLOBAL STATUS LIKE 'Rpl_semi_sync_master_status'"))
        return -1;
    MYSQL_RES *rs = mysql_store_result(m);
    MYSQL_ROW row = rs ? mysql_fetch_row(rs) : NULL;
    int on = row && row[1] ? strcmp(row[1], "ON") == 0 : -1;
    if (rs)
        mysql_free_result(rs);
    return on;
}

/* Run sql; false (and the failure recorded) when it fails. */
static bool run(struct probe *p, MYSQL *m, const char *user, const char *sql)
{
    if (mysql_real_query(m, sql, strlen(sql)) == 0) {
        MYSQL_RES *rs = mysql_store_result(m); /* drain a result set, if any */
        if (rs)
            mysql_free_result(rs);
        return true;
    }
    fail_mysql(p, m, user, sql);
    return false;
}

/* One column of SHOW SLAVE STATUS ("" when not replicating); false when it cannot be read. */
static bool slave_field(struct probe *p, MYSQL *m, const char *user, const char *name, char *out,
                        size_t cap)
{
    out[0] = '\0';
    MYSQL_RES *rs = query(p, m, user, "SHOW SLAVE STATUS");
    if (!rs)
        return false;
    unsigned n = mysql_num_fields(rs);
    MYSQL_FIELD *f = mysql_fetch_fields(rs);
    MYSQL_ROW row = mysql_fetch_row(rs);
    for (unsigned i = 0; row && i < n; i++)
        if (strcmp(f[i].name, name) == 0 && row[i])
            snprintf(out, cap, "%s", row[i]);
    mysql_free_result(rs);
    return true;
}

static void read_gtid(struct probe *p, MYSQL *m, const char *user)
{
    MYSQL_RES *rs = query(p, m, user, "SELECT @@gtid_current_pos");
    MYSQL_ROW row = rs ? mysql_fetch_row(rs) : NULL;
    if (row && row[0])
        snprintf(p->res.gtid, sizeof p->res.gtid, "%s", row[0]);
    if (rs)
        mysql_free_result(rs);
}

static void promote(struct probe *p, MYSQL *m, const char *user, uint64_t deadline)
{
    char io_pos[256], sql[400];
    if (!run(p, m, user, "STOP SLAVE IO_THREAD") ||
        !slave_field(p, m, user, "Gtid_IO_Pos", io_pos, sizeof io_pos))
        return;
    if (io_pos[0]) {
        /* Everything the IO thread received must be applied before the replica takes writes. The
         * position is a list of d-s-n triples: digits, dashes and commas only. */
        if (strspn(io_pos, "0123456789-,") != strlen(io_pos)) {
            fail(p, "%s:%u: unexpected Gtid_IO_Pos", p->rq.host, p->rq.port);
            return;
        }
        uint64_t now = now_ms(), left = deadline > now ? deadline - now : 0;
        snprintf(sql, sizeof sql, "SELECT MASTER_GTID_WAIT('%s', %.3f)", io_pos,
                 (double)left / 1000.0);
        MYSQL_RES *rs = query(p, m, user, sql);
        if (!rs)
            return;
        MYSQL_ROW row = mysql_fetch_row(rs);
        bool applied = row && row[0] && strcmp(row[0], "0") == 0;
        mysql_free_result(rs);
        if (!applied) {
            fail(p, "%s:%u: the relay log (up to %s) was not applied in time", p->rq.host,
                 p->rq.port, io_pos);
            return;
        }
    }
    if (!run(p, m, user, "STOP SLAVE") || !run(p, m, user, "RESET SLAVE ALL"))
        return;
    /* Semi-sync on the new writer's side too, so that the next failover keeps its guarantee; a
     * server without the setting still gets promoted (the health checks then report it off). */
    if (p->rq.semi_sync && !query_ok(m, "SET GLOBAL rpl_semi_sync_master_enabled = ON"))
        sl_warn(0, "%s:%u: semi-sync master not enabled: %s", p->rq.host, p->rq.port,
                mysql_error(m));
    if (run(p, m, user, "SET GLOBAL read_only = 0"))
        read_gtid(p, m, user);
}

static void repoint(struct probe *p, MYSQL *m, const char *user)
{
    char host[2 * sizeof p->rq.source_host + 1], ruser[2 * sizeof p->rq.repl.user + 1];
    char rpass[2 * sizeof p->rq.repl.password + 1];
    char sql[sizeof host + sizeof ruser + sizeof rpass + 200];
    mysql_real_escape_string(m, host, p->rq.source_host, (unsigned long)strlen(p->rq.source_host));
    mysql_real_escape_string(m, ruser, p->rq.repl.user, (unsigned long)strlen(p->rq.repl.user));
    mysql_real_escape_string(m, rpass, p->rq.repl.password,
                             (unsigned long)strlen(p->rq.repl.password));
    snprintf(sql, sizeof sql,
             "CHANGE MASTER TO MASTER_HOST='%s', MASTER_PORT=%u, MASTER_USER='%s', "
             "MASTER_PASSWORD='%s', MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1",
             host, p->rq.source_port, ruser, rpass);
    bool ok = run(p, m, user, "STOP SLAVE");
    if (ok && mysql_real_query(m, sql, strlen(sql)) != 0) {
        /* The statement holds the password: it never goes into the message. */
        fail(p, "%s:%u user %s: CHANGE MASTER failed: %s (%u)", p->rq.host, p->rq.port, user,
             mysql_error(m), mysql_errno(m));
        ok = false;
    }
    OPENSSL_cleanse(rpass, sizeof rpass);
    OPENSSL_cleanse(sql, sizeof sql);
    if (ok && run(p, m, user, "START SLAVE"))
        read_gtid(p, m, user);
}

static void change(struct probe *p, uint64_t deadline)
{
    const struct sl_dbprobe_cred *c = &p->rq.creds[0];
    MYSQL *m = connect_user(p, c, deadline);
    if (!m)
        return;
    p->res.connected = true;
    switch (p->rq.change) {
    case SL_DBPROBE_PROMOTE: promote(p, m, c->user, deadline); break;
    case SL_DBPROBE_REPOINT: repoint(p, m, c->user); break;
    case SL_DBPROBE_DEMOTE: run(p, m, c->user, "SET GLOBAL read_only = 1"); break;
    case SL_DBPROBE_NO_CHANGE: break;
    }
    mysql_close(m);
}

static void monitor(struct probe *p, uint64_t deadline)
{
    MYSQL *m = connect_user(p, &p->rq.creds[0], deadline);
    if (!m)
        return;
    read_max_connections(p, m, p->rq.creds[0].user);
    mysql_close(m);
}

static void on_work(uv_work_t *w)
{
    struct probe *p = w->data;
    uint64_t start = now_ms(), deadline = start + p->rq.timeout_ms;
    pthread_once(&lib_once, lib_init);
    if (!lib_ok) {
        fail(p, "mysql_library_init failed");
    } else {
        mysql_thread_init();
        if (p->rq.change != SL_DBPROBE_NO_CHANGE) {
            change(p, deadline);
        } else if (p->rq.check) {
            check(p, deadline);
        } else if (!p->rq.fence_ip[0]) {
            monitor(p, deadline);
        } else {
            /* Users one after the other: a probe holds at most one connection. A failed user does
             * not stop the others, whose kills still help the next attempt. */
            for (size_t i = 0; i < p->rq.n_creds; i++)
                fence_user(p, &p->rq.creds[i], deadline);
        }
        mysql_thread_end();
    }
    OPENSSL_cleanse(p->rq.creds, sizeof p->rq.creds);
    OPENSSL_cleanse(&p->rq.repl, sizeof p->rq.repl);
    p->res.ok = p->res.error[0] == '\0';
    p->elapsed_ms = now_ms() - start;
}

static void on_after_work(uv_work_t *w, int status)
{
    struct probe *p = w->data;
    if (status != 0) { /* only UV_ECANCELED, and nothing cancels probes: keep the contract anyway */
        p->res.ok = false;
        snprintf(p->res.error, sizeof p->res.error, "probe not run: %s", uv_strerror(status));
    }
    if (p->rq.fence_ip[0]) {
        char fields[512];
        snprintf(fields, sizeof fields, "ip=%s db=%s:%u killed=%u remaining=%u elapsed_ms=%llu",
                 p->rq.fence_ip, p->rq.host, p->rq.port, p->res.killed, p->res.remaining,
                 (unsigned long long)p->elapsed_ms);
        if (p->res.ok)
            sl_logkv(SL_LOG_INFO, 0, fields, "budget: fence done");
        else
            sl_logkv(SL_LOG_WARN, 0, fields, "budget: fence failed: %s", p->res.error);
    }
    p->cb(&p->res, p->arg);
    OPENSSL_cleanse(p, sizeof *p);
    free(p);
}

static bool terminated(const char *s, size_t cap)
{
    return memchr(s, '\0', cap) != NULL;
}

int sl_dbprobe_run(uv_loop_t *loop, const struct sl_dbprobe_request *rq, sl_dbprobe_cb cb,
                   void *arg)
{
    if (!loop || !rq || !cb || rq->n_creds < 1 || rq->n_creds > SL_DBPROBE_USERS_MAX || !rq->port ||
        (rq->check && rq->fence_ip[0]) ||
        (rq->change != SL_DBPROBE_NO_CHANGE && (rq->check || rq->fence_ip[0])) ||
        (rq->change == SL_DBPROBE_REPOINT &&
         (!terminated(rq->source_host, sizeof rq->source_host) || !rq->source_host[0] ||
          !rq->source_port || !terminated(rq->repl.user, sizeof rq->repl.user) ||
          !rq->repl.user[0] || !terminated(rq->repl.password, sizeof rq->repl.password))) ||
        !rq->timeout_ms || !terminated(rq->host, sizeof rq->host) || !rq->host[0] ||
        !terminated(rq->fence_ip, sizeof rq->fence_ip) ||
        !terminated(rq->bind_ip, sizeof rq->bind_ip))
        return -1;
    for (size_t i = 0; i < rq->n_creds; i++) {
        const struct sl_dbprobe_cred *c = &rq->creds[i];
        if (!terminated(c->user, sizeof c->user) || !c->user[0] ||
            !terminated(c->password, sizeof c->password))
            return -1;
    }
    struct in_addr ip;
    struct in_addr src;
    if ((rq->fence_ip[0] && inet_pton(AF_INET, rq->fence_ip, &ip) != 1) ||
        (rq->bind_ip[0] && inet_pton(AF_INET, rq->bind_ip, &src) != 1))
        return -1;

    struct probe *p = calloc(1, sizeof *p);
    if (!p)
        return -1;
    p->rq = *rq;
    /* PROCESSLIST shows the canonical form; inet_pton already refused anything else, but
     * re-printing keeps the pattern independent of what it tolerates. */
    if (rq->fence_ip[0])
        inet_ntop(AF_INET, &ip, p->rq.fence_ip, sizeof p->rq.fence_ip);
    p->res.read_only = -1;
    p->res.replicating = -1;
    p->res.semi_sync = -1;
    p->cb = cb;
    p->arg = arg;
    p->work.data = p;
    if (uv_queue_work(loop, &p->work, on_work, on_after_work) != 0) {
        OPENSSL_cleanse(p, sizeof *p);
        free(p);
        return -1;
    }
    return 0;
}
