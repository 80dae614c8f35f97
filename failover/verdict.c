#include "failover/verdict.h"

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
    if (out->gone_votes < majority) {
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
