#include "failover/verdict.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define DOMAINS_MAX 32

struct gtid_pos {
    uint32_t domain[DOMAINS_MAX];
    uint64_t seq[DOMAINS_MAX];
    size_t n;
};

/* 0, or -1 when s is not a list of d-s-n triples (one per domain). */
static int gtid_parse(const char *s, struct gtid_pos *out)
{
    out->n = 0;
    while (*s) {
        char *end;
        unsigned long long d, srv, n;
        if (*s < '0' || *s > '9')
            return -1;
        d = strtoull(s, &end, 10);
        if (*end != '-' || end[1] < '0' || end[1] > '9')
            return -1;
        srv = strtoull(end + 1, &end, 10);
        if (*end != '-' || end[1] < '0' || end[1] > '9')
            return -1;
        n = strtoull(end + 1, &end, 10);
        (void)srv;
        if (d > UINT32_MAX || out->n == DOMAINS_MAX)
            return -1;
        for (size_t i = 0; i < out->n; i++)
            if (out->domain[i] == d)
                return -1;
        out->domain[out->n] = (uint32_t)d;
        out->seq[out->n++] = n;
        if (*end == ',')
            end++;
        else if (*end != '\0')
            return -1;
        s = end;
    }
    return 0;
}

static uint64_t seq_of(const struct gtid_pos *p, uint32_t domain)
{
    for (size_t i = 0; i < p->n; i++)
        if (p->domain[i] == domain)
            return p->seq[i];
    return 0;
}

/* Every domain of b is in a at an equal or higher sequence. */
static bool contains(const struct gtid_pos *a, const struct gtid_pos *b)
{
    for (size_t i = 0; i < b->n; i++)
        if (seq_of(a, b->domain[i]) < b->seq[i])
            return false;
    return true;
}

int sl_gtid_compare(const char *a, const char *b)
{
    struct gtid_pos pa, pb;
    if (!a || !b || gtid_parse(a, &pa) != 0 || gtid_parse(b, &pb) != 0)
        return 2;
    bool ab = contains(&pa, &pb), ba = contains(&pb, &pa);
    return ab && ba ? 0 : ab ? 1 : ba ? -1 : 2;
}

static size_t count(const struct sl_verdict_input *in, size_t t, enum sl_obs a, enum sl_obs b)
{
    size_t n = 0;
    for (size_t k = 0; k < in->nodes && k < SL_VERDICT_NODES_MAX; k++)
        n += in->targets[t].obs[k] == a || in->targets[t].obs[k] == b;
    return n;
}

static int seen_replicating(const struct sl_verdict_input *in, size_t t)
{
    for (size_t k = 0; k < in->nodes && k < SL_VERDICT_NODES_MAX; k++)
        if (in->targets[t].replicating[k] == 1)
            return 1;
    return 0;
}

void sl_verdict_external(const struct sl_verdict_input *in, struct sl_verdict *out)
{
    size_t majority = in->voters / 2 + 1;
    *out = (struct sl_verdict){.kind = SL_VERDICT_KEEP};
    if (in->writer >= in->n_targets) {
        out->why = "no committed writer among the targets";
        return;
    }
    out->gone_votes = count(in, in->writer, SL_OBS_DOWN, SL_OBS_READ_ONLY);
    out->writer_gone = out->gone_votes >= majority;
    if (!out->writer_gone) {
        out->why = "the writer is not down for a majority";
        return;
    }
    size_t found = 0, pick = 0, votes = 0;
    for (size_t t = 0; t < in->n_targets; t++) {
        if (t == in->writer)
            continue;
        size_t ready = count(in, t, SL_OBS_WRITABLE, SL_OBS_WRITABLE);
        if (ready >= majority && !seen_replicating(in, t)) {
            found++;
            pick = t;
            votes = ready;
        }
    }
    if (found == 0) {
        out->why = "the writer is down; no other target is writable yet";
        return;
    }
    if (found > 1) {
        out->why = "the writer is down and several targets are writable: not choosing";
        return;
    }
    out->kind = SL_VERDICT_SWITCH;
    out->target = pick;
    out->ready_votes = votes;
    out->why = "the writer is down for a majority and one other target is writable";
}

size_t sl_verdict_pick_replica(const struct sl_verdict_input *in, const char *const *gtids)
{
    size_t majority = in->voters / 2 + 1, best = SIZE_MAX;
    for (size_t t = 0; t < in->n_targets; t++) {
        if (t == in->writer)
            continue;
        size_t up = 0;
        for (size_t k = 0; k < in->nodes && k < SL_VERDICT_NODES_MAX; k++) {
            enum sl_obs o = in->targets[t].obs[k];
            up += o == SL_OBS_WRITABLE || o == SL_OBS_READ_ONLY || o == SL_OBS_UP;
        }
        if (up < majority || !gtids[t])
            continue;
        if (best == SIZE_MAX) {
            best = t;
            continue;
        }
        int c = sl_gtid_compare(gtids[t], gtids[best]);
        if (c == 2)
            return SIZE_MAX;
        if (c == 1)
            best = t;
    }
    return best;
}
