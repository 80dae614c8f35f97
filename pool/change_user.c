/* COM_CHANGE_USER parsing (kept apart from proto.c, which has the handshake packets). */
#include <string.h>

#include "pool/proto.h"

/* A NUL-terminated string at *p; advances past the NUL. */
static int take_cstr(const uint8_t **p, const uint8_t *end, const char **s, size_t *len)
{
    const uint8_t *nul = memchr(*p, 0, (size_t)(end - *p));
    if (!nul)
        return -1;
    *s = (const char *)*p;
    *len = (size_t)(nul - *p);
    *p = nul + 1;
    return 0;
}

int sl_change_user_parse(const uint8_t *p, size_t len, uint32_t caps, struct sl_change_user *out)
{
    const uint8_t *end = p + len;
    memset(out, 0, sizeof *out);
    if (len < 1 || p[0] != SL_COM_CHANGE_USER)
        return -1;
    p++;
    if (take_cstr(&p, end, &out->user, &out->user_len) != 0)
        return -1;
    if (caps & SL_CLIENT_SECURE_CONNECTION) {
        if (p >= end || (size_t)(end - p) < 1u + p[0])
            return -1;
        out->auth_len = p[0];
        out->auth = p + 1;
        p += 1 + out->auth_len;
    } else {
        const char *a;
        if (take_cstr(&p, end, &a, &out->auth_len) != 0)
            return -1;
        out->auth = (const uint8_t *)a;
    }
    if (take_cstr(&p, end, &out->db, &out->db_len) != 0)
        return -1;
    if (p == end)
        return 0;
    if (end - p < 2)
        return -1;
    out->collation = sl_get_u16(p);
    p += 2;
    if ((caps & SL_CLIENT_PLUGIN_AUTH) && p < end &&
        take_cstr(&p, end, &out->plugin, &out->plugin_len) != 0)
        return -1;
    return 0; /* connection attributes, if any, are informational */
}
