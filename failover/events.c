#include "failover/events.h"

#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

static void now_iso(char *out, size_t cap)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    gmtime_r(&tv.tv_sec, &tm);
    char base[24];
    strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, cap, "%s.%03ldZ", base, (long)(tv.tv_usec / 1000));
}

void sl_events_add(struct sl_events *ev, const char *kind, const char *proxy, const char *target,
                   uint64_t epoch, const char *decided_by, const char *detail)
{
    struct sl_event *e = &ev->ring[ev->next];
    ev->next = (ev->next + 1) % SL_EVENTS_MAX;
    memset(e, 0, sizeof *e);
    e->seq = ++ev->seq;
    now_iso(e->time, sizeof e->time);
    snprintf(e->kind, sizeof e->kind, "%s", kind);
    snprintf(e->proxy, sizeof e->proxy, "%s", proxy ? proxy : "");
    snprintf(e->target, sizeof e->target, "%s", target ? target : "");
    e->epoch = epoch;
    snprintf(e->decided_by, sizeof e->decided_by, "%s", decided_by ? decided_by : "");
    snprintf(e->detail, sizeof e->detail, "%s", detail ? detail : "");
}

json_t *sl_events_json(const struct sl_events *ev, uint64_t after)
{
    json_t *list = json_array();
    size_t n = ev->seq < SL_EVENTS_MAX ? (size_t)ev->seq : SL_EVENTS_MAX;
    size_t first = (ev->next + SL_EVENTS_MAX - n) % SL_EVENTS_MAX;
    for (size_t i = 0; list && i < n; i++) {
        const struct sl_event *e = &ev->ring[(first + i) % SL_EVENTS_MAX];
        if (e->seq <= after)
            continue;
        json_t *o =
            json_pack("{s:I,s:s,s:s,s:s,s:s,s:I,s:s,s:s}", "seq", (json_int_t)e->seq, "time",
                      e->time, "kind", e->kind, "proxy", e->proxy, "target", e->target, "epoch",
                      (json_int_t)e->epoch, "decided_by", e->decided_by, "detail", e->detail);
        if (!o || json_array_append_new(list, o) != 0) {
            json_decref(list);
            return NULL;
        }
    }
    return list ? json_pack("{s:o}", "events", list) : NULL;
}
