#include "base/buf.h"

#include <stdlib.h>
#include <string.h>

int sl_buf_reserve(struct sl_buf *b, size_t need, size_t limit)
{
    if (b->cap - b->len >= need)
        return 0;
    if (b->off > 0) {
        memmove(b->data, b->data + b->off, b->len - b->off);
        b->len -= b->off;
        b->off = 0;
        if (b->cap - b->len >= need)
            return 0;
    }
    size_t want = b->len + need;
    if (want > limit)
        return -1;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < want)
        cap *= 2;
    if (cap > limit)
        cap = limit;
    uint8_t *d = realloc(b->data, cap);
    if (!d)
        return -1;
    b->data = d;
    b->cap = cap;
    return 0;
}

int sl_buf_append(struct sl_buf *b, const void *p, size_t n, size_t limit)
{
    if (sl_buf_reserve(b, n, limit) != 0)
        return -1;
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

void sl_buf_shrink(struct sl_buf *b, size_t keep)
{
    if (b->off == b->len && b->cap > keep) {
        free(b->data);
        b->data = NULL;
        b->cap = b->off = b->len = 0;
    }
}

void sl_buf_free(struct sl_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->cap = b->off = b->len = 0;
}
