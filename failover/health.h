/* Health checks: each node checks every database target of its proxies on its own, on the control
 * loop, with short Connector/C connections in libuv's thread pool (budget/dbprobe.h, "check").
 *
 * A check logs in with the credentials of the target's first proxy user, reads @@read_only,
 * @@gtid_current_pos and, where the user may (SLAVE MONITOR), whether replication runs. A target
 * turns UNAVAILABLE after `failures` failed checks in a row and AVAILABLE again at the first
 * good one, so a dead writer is seen within about interval + failures x timeout (defaults 500 ms,
 * 2 x 1 s when packets vanish; a refused connection fails at once). What one node sees is an
 * observation, not a verdict: the leader decides from a majority (issue 5).
 *
 * Limits: a check's connection is a database connection like any other. With a reserve callback,
 * a check runs only when the target's connection limit and the node's quota have room, and the
 * connection counts against both until closed; without room the check waits for the next interval
 * (the target is PENDING_PROXY_CAPACITY until a first check ran). Clock: uv_now (monotonic) for
 * intervals and ages.
 */
#ifndef SL_FAILOVER_HEALTH_H
#define SL_FAILOVER_HEALTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

struct sl_health;
struct sl_health_view;

struct sl_health_target_cfg {
    char host[256];
    uint16_t port;
    const char *secret; /* secret reference of the user to check with (copied) */
    const char *proxy;  /* the proxy whose limits the check counts against (copied) */
    unsigned interval_ms, timeout_ms, failures; /* this target's; 0 = the options' */
};

/* Defaults for targets that bring no settings of their own. */
struct sl_health_options {
    unsigned interval_ms; /* between checks of one target; 0 = 500 */
    unsigned timeout_ms;  /* one check; 0 = 1000 (Connector/C rounds it up to whole seconds) */
    unsigned failures;    /* failed checks in a row before UNAVAILABLE; 0 = 2 */
    char bind_ip[64];     /* source address of the checks ("" = any) */
    /* Limits: called before a check connects (false: no room, skip this turn) and after its
     * connection is closed, with the target's proxy, host and port. Both NULL: no limits. */
    bool (*reserve)(void *arg, const char *proxy, const char *host, uint16_t port);
    void (*release)(void *arg, const char *proxy, const char *host, uint16_t port);
    void *budget_arg;
    /* Called after every finished check with the target's view (may be NULL). */
    void (*on_check)(void *arg, const struct sl_health_view *v);
    void *check_arg;
};

enum sl_health_state {
    SL_HEALTH_REGISTERING,     /* no check finished yet */
    SL_HEALTH_AVAILABLE,       /* the last check logged in */
    SL_HEALTH_UNAVAILABLE,     /* `failures` checks in a row failed; reason says how */
    SL_HEALTH_PENDING_CAPACITY /* no check could run yet: no room in the node's quota */
};

struct sl_health_view {
    const char *host;
    uint16_t port;
    enum sl_health_state state;
    const char *reason; /* UNAVAILABLE: CONNECTION_FAILED, UNREACHABLE or AUTH_FAILURE; else "" */
    int read_only;      /* from the last good check: 1, 0, -1 unknown */
    int replicating;    /* 1, 0, -1 unknown (see budget/dbprobe.h) */
    const char *gtid;   /* @@gtid_current_pos of the last good check */
    int semi_sync;      /* semi-sync master side active at the last good check: 1, 0, -1 */
    unsigned failures;  /* failed checks in a row */
    uint64_t age_ms;    /* since the last check finished; UINT64_MAX if none did */
    uint64_t checks;    /* checks finished */
    const char *error;  /* the last failure's message ("" if none) */
};

int sl_health_start(uv_loop_t *loop, const struct sl_health_options *opt, struct sl_health **out);
/* Replace the targets (deduplicated by host:port; the first entry of a host:port wins). Targets
 * that stay keep their state. 0, or -1 when out of memory (nothing changed). */
int sl_health_set_targets(struct sl_health *h, const struct sl_health_target_cfg *t, size_t n);
typedef void (*sl_health_cb)(const struct sl_health_view *v, void *arg);
void sl_health_each(struct sl_health *h, sl_health_cb cb, void *arg);
/* Stop checking; done(arg) runs once every check in flight has finished and all is freed. */
void sl_health_stop(struct sl_health *h, void (*done)(void *arg), void *arg);
const char *sl_health_state_name(enum sl_health_state s);

#endif
