/* The node's failover events, newest last, in a fixed ring (the oldest are dropped): what the
 * leader decided (a writer proposed, a promotion started, failed or refused) and what this node
 * applied (a new writer epoch), each with this node's wall-clock time. Served by GET /v1/events.
 * Pure bookkeeping, on the control loop. */
#ifndef SL_FAILOVER_EVENTS_H
#define SL_FAILOVER_EVENTS_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#define SL_EVENTS_MAX 256

struct sl_event {
    uint64_t seq;  /* 1, 2, ... on this node since it started */
    char time[32]; /* UTC, ISO 8601 with milliseconds */
    char kind[32]; /* "writer_applied", "writer_proposed", "promotion_started", ... */
    char proxy[64];
    char target[64]; /* the target the event is about ("" if none) */
    uint64_t epoch;  /* the writer epoch (Raft index) the event is about, 0 if none */
    char decided_by[64];
    char detail[200];
};

struct sl_events {
    struct sl_event ring[SL_EVENTS_MAX];
    size_t next;  /* slot of the next event */
    uint64_t seq; /* events recorded so far */
};

/* Record one event (strings are truncated to fit). */
void sl_events_add(struct sl_events *ev, const char *kind, const char *proxy, const char *target,
                   uint64_t epoch, const char *decided_by, const char *detail);
/* {"events": [...]} oldest first, only those with seq > after. NULL when out of memory. */
json_t *sl_events_json(const struct sl_events *ev, uint64_t after);

#endif
