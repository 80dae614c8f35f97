#include "raft/fsm_glue.h"

#include <stdlib.h>
#include <string.h>

#include "base/log.h"

static int glue_apply(struct raft_fsm *fsm, const struct raft_buffer *buf, void **result)
{
    struct sl_fsm_glue *g = fsm->data;
    *result = NULL;
    uint64_t index = raft_last_applied(g->raft) + 1;
    return sl_fsm_apply(g->store, index, buf->base, buf->len) == 0 ? 0 : RAFT_IOERR;
}

static int glue_snapshot(struct raft_fsm *fsm, struct raft_buffer *bufs[], unsigned *n_bufs)
{
    struct sl_fsm_glue *g = fsm->data;
    struct raft_buffer *b = malloc(sizeof *b);
    if (!b)
        return RAFT_NOMEM;
    uint8_t *data;
    size_t len;
    if (sl_fsm_snapshot(g->store, &data, &len) != 0) {
        /* raft frees nothing when snapshot() fails. */
        free(b);
        return RAFT_IOERR;
    }
    b->base = data;
    b->len = len;
    *bufs = b;
    *n_bufs = 1;
    return 0;
}

static int glue_snapshot_finalize(struct raft_fsm *fsm, struct raft_buffer *bufs[],
                                  unsigned *n_bufs)
{
    for (unsigned i = 0; i < *n_bufs; i++)
        free((*bufs)[i].base);
    free(*bufs);
    *bufs = NULL;
    *n_bufs = 0;
    return 0;
}

static int glue_restore(struct raft_fsm *fsm, struct raft_buffer *buf)
{
    struct sl_fsm_glue *g = fsm->data;
    uint64_t snap, applied;
    if (sl_fsm_snapshot_applied(buf->base, buf->len, &snap) != 0)
        return RAFT_CORRUPT;
    if (sl_fsm_applied(g->store, &applied) != 0)
        return RAFT_IOERR;
    if (snap > applied) {
        if (sl_fsm_restore(g->store, buf->base, buf->len) != 0)
            return RAFT_CORRUPT;
        /* A node that fell behind the leader's log catches up this way: worth a line. */
        sl_info(0, "configuration restored from a snapshot at index %llu (had %llu)",
                (unsigned long long)snap, (unsigned long long)applied);
    }
    /* On success the buffer is ours to free; on error raft frees it. */
    raft_free(buf->base);
    return 0;
}

void sl_fsm_glue_init(struct sl_fsm_glue *g, struct sl_fsm *store)
{
    memset(g, 0, sizeof *g);
    g->store = store;
    g->fsm.version = 2;
    g->fsm.data = g;
    g->fsm.apply = glue_apply;
    g->fsm.snapshot = glue_snapshot;
    g->fsm.restore = glue_restore;
    g->fsm.snapshot_finalize = glue_snapshot_finalize;
}

void sl_fsm_glue_bind(struct sl_fsm_glue *g, struct raft *r)
{
    g->raft = r;
}
