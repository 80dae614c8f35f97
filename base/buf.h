/* A growable byte buffer with a consumed prefix: bytes are appended at the end and consumed from
 * the front; sl_buf_compact moves the unconsumed tail to the start so capacity is reused. */
#ifndef SL_BASE_BUF_H
#define SL_BASE_BUF_H

#include <stddef.h>
#include <stdint.h>

struct sl_buf {
    uint8_t *data;
    size_t off; /* first unconsumed byte */
    size_t len; /* end of valid bytes */
    size_t cap;
};

static inline uint8_t *sl_buf_head(const struct sl_buf *b)
{
    return b->data + b->off;
}
static inline size_t sl_buf_avail(const struct sl_buf *b)
{
    return b->len - b->off;
}
static inline void sl_buf_consume(struct sl_buf *b, size_t n)
{
    b->off += n;
    if (b->off == b->len)
        b->off = b->len = 0;
}

/* Make room for at least `need` more bytes at the end (compacting first). Returns 0 or -1 (ENOMEM
 * or the buffer would exceed `limit` bytes). */
int sl_buf_reserve(struct sl_buf *b, size_t need, size_t limit);
int sl_buf_append(struct sl_buf *b, const void *p, size_t n, size_t limit);
/* Release memory when the buffer is empty and larger than `keep` bytes (idle connections stay
 * small). */
void sl_buf_shrink(struct sl_buf *b, size_t keep);
void sl_buf_free(struct sl_buf *b);

#endif
