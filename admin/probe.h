/* Reachability of the other members, as this node sees it: every interval a TCP connect to each
 * member's admin address (the admin server accepts and closes it like any idle client). A member
 * counts as reachable when its last probe connected within the timeout. This is a view from one
 * node, for operators (GET /v1/cluster); Raft decides leadership on its own. */
#ifndef SL_ADMIN_PROBE_H
#define SL_ADMIN_PROBE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

struct sl_probe;

struct sl_probe_target {
    uint64_t id;
    char admin_url[128]; /* "http://a.b.c.d:port" (numeric IPv4 or [IPv6]; others are skipped) */
};

/* Fill up to cap targets for the next round; returns how many. */
typedef size_t (*sl_probe_source)(void *arg, struct sl_probe_target *out, size_t cap);

/* Start probing every interval_ms; each probe gives up after timeout_ms. NULL when memory ran out.
 */
struct sl_probe *sl_probe_start(uv_loop_t *loop, unsigned interval_ms, unsigned timeout_ms,
                                sl_probe_source source, void *arg);

/* 0 with *reachable and *last_ok_ms_ago (UINT64_MAX when it never answered); -1 when the member
 * was not probed yet. */
int sl_probe_result(const struct sl_probe *p, uint64_t id, bool *reachable,
                    uint64_t *last_ok_ms_ago);

/* Stop; once every handle is closed the prober is freed and done(arg) runs (done may be NULL). */
void sl_probe_close(struct sl_probe *p, void (*done)(void *arg), void *arg);

#endif
