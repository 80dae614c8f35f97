#include "pool/replay.h"

#include <stdlib.h>
#include <string.h>

#include "base/bytes.h"

/* A buffer no larger than this is kept between transactions, so a session running many short
 * transactions does not allocate for each one. */
#define KEEP_BYTES 4096u

void sl_replay_init(struct sl_replay *r, size_t max)
{
    *r = (struct sl_replay){.open_at = SIZE_MAX, .max = max};
}

void sl_replay_free(struct sl_replay *r)
{
    free(r->buf);
    sl_replay_init(r, r->max);
}

void sl_replay_clear(struct sl_replay *r)
{
    if (r->cap > KEEP_BYTES) {
        free(r->buf);
        r->buf = NULL;
        r->cap = 0;
    }
    r->len = 0;
    r->open_at = SIZE_MAX;
    r->broken = NULL;
}

void sl_replay_break(struct sl_replay *r, const char *why)
{
    if (!r->broken)
        r->broken = why;
    r->open_at = SIZE_MAX;
}

void sl_replay_add(struct sl_replay *r, const uint8_t *pkt, size_t len)
{
    if (r->broken)
        return;
    size_t need = r->len + 4 + len + 4;
    if (len > UINT32_MAX || need > r->max) {
        sl_replay_break(r, "the transaction is larger than transaction_replay_max_size");
        return;
    }
    if (need > r->cap) {
        size_t cap = r->cap ? r->cap : 512;
        while (cap < need)
            cap *= 2;
        uint8_t *nb = realloc(r->buf, cap);
        if (!nb) {
            sl_replay_break(r, "out of memory");
            return;
        }
        r->buf = nb;
        r->cap = cap;
    }
    r->open_at = r->len;
    sl_put_u32(r->buf + r->len, (uint32_t)len);
    memcpy(r->buf + r->len + 4, pkt, len);
    r->len = need;
}

void sl_replay_done(struct sl_replay *r, uint32_t crc)
{
    if (r->open_at == SIZE_MAX)
        return;
    sl_put_u32(r->buf + r->len - 4, crc);
    r->open_at = SIZE_MAX;
}

void sl_replay_drop_open(struct sl_replay *r)
{
    if (r->open_at == SIZE_MAX)
        return;
    r->len = r->open_at;
    r->open_at = SIZE_MAX;
}

bool sl_replay_usable(const struct sl_replay *r)
{
    return !r->broken && r->len > 0 && r->open_at == SIZE_MAX;
}

bool sl_replay_next(const struct sl_replay *r, size_t *pos, const uint8_t **pkt, size_t *len,
                    uint32_t *crc)
{
    if (*pos + 8 > r->len)
        return false;
    size_t n = sl_get_u32(r->buf + *pos);
    *pkt = r->buf + *pos + 4;
    *len = n;
    *crc = sl_get_u32(r->buf + *pos + 4 + n);
    *pos += 8 + n;
    return true;
}
