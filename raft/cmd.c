#include "raft/cmd.h"

#include <string.h>

#include "base/bytes.h"

static const char *const kind_names[SL_RAFT_KIND_MAX + 1] = {
    [SL_RAFT_PROXY] = "proxy",   [SL_RAFT_TARGET_GROUP] = "target_group",
    [SL_RAFT_TARGET] = "target", [SL_RAFT_SECRET] = "secret",
    [SL_RAFT_NODE] = "node",     [SL_RAFT_BUDGET] = "budget",
    [SL_RAFT_WRITER] = "writer",
};

const char *sl_raft_kind_name(enum sl_raft_kind kind)
{
    if (kind < SL_RAFT_PROXY || kind > SL_RAFT_KIND_MAX)
        return NULL;
    return kind_names[kind];
}

int sl_raft_name_valid(const char *s, size_t len)
{
    if (len == 0 || len > SL_RAFT_NAME_MAX)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char ch = s[i];
        if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
              ch == '.' || ch == '_' || ch == '-'))
            return 0;
    }
    return 1;
}

/* The rules shared by encoder and decoder, so that everything encoded also decodes. */
static int cmd_valid(const struct sl_raft_cmd *c)
{
    if (c->op != SL_RAFT_PUT && c->op != SL_RAFT_DELETE)
        return 0;
    if (!sl_raft_kind_name(c->kind))
        return 0;
    if (!sl_raft_name_valid(c->name, c->name_len))
        return 0;
    if (c->kind == SL_RAFT_TARGET ? !sl_raft_name_valid(c->id, c->id_len) : c->id_len != 0)
        return 0;
    if (c->op == SL_RAFT_PUT ? c->body_len == 0 || c->body_len > SL_RAFT_BODY_MAX
                             : c->body_len != 0)
        return 0;
    static const uint8_t zero[SL_RAFT_REQID_LEN];
    return memcmp(c->req_id, zero, sizeof zero) != 0;
}

static size_t pad8(size_t n)
{
    return (n + 7) & ~(size_t)7;
}

size_t sl_raft_cmd_size(const struct sl_raft_cmd *c)
{
    if (!cmd_valid(c))
        return 0;
    return pad8(SL_RAFT_CMD_HEADER + c->name_len + c->id_len + c->body_len);
}

size_t sl_raft_cmd_encode(const struct sl_raft_cmd *c, uint8_t *out, size_t cap)
{
    size_t size = sl_raft_cmd_size(c);
    if (size == 0 || size > cap)
        return 0;
    memset(out, 0, size);
    out[0] = SL_RAFT_CMD_VERSION;
    out[1] = (uint8_t)c->op;
    out[2] = (uint8_t)c->kind;
    out[3] = (uint8_t)c->name_len;
    out[4] = (uint8_t)c->id_len;
    memcpy(out + 8, c->req_id, SL_RAFT_REQID_LEN);
    sl_put_u64(out + 24, c->expected_rev);
    sl_put_u32(out + 32, (uint32_t)c->body_len);
    uint8_t *p = out + SL_RAFT_CMD_HEADER;
    memcpy(p, c->name, c->name_len);
    p += c->name_len;
    if (c->id_len > 0)
        memcpy(p, c->id, c->id_len);
    p += c->id_len;
    if (c->body_len > 0)
        memcpy(p, c->body, c->body_len);
    return size;
}

int sl_raft_cmd_decode(const uint8_t *buf, size_t len, struct sl_raft_cmd *c)
{
    if (len < SL_RAFT_CMD_HEADER || len % 8 != 0)
        return -1;
    if (buf[0] != SL_RAFT_CMD_VERSION || buf[5] != 0 || buf[6] != 0 || buf[7] != 0)
        return -1;
    struct sl_raft_cmd d;
    d.op = (enum sl_raft_op)buf[1];
    d.kind = (enum sl_raft_kind)buf[2];
    d.name_len = buf[3];
    d.id_len = buf[4];
    memcpy(d.req_id, buf + 8, SL_RAFT_REQID_LEN);
    d.expected_rev = sl_get_u64(buf + 24);
    d.body_len = sl_get_u32(buf + 32);
    /* Each length is below 2^32, so the sum cannot overflow size_t; compare before pointing. */
    size_t used = SL_RAFT_CMD_HEADER + d.name_len + d.id_len + d.body_len;
    if (used > len || pad8(used) != len)
        return -1;
    for (size_t i = used; i < len; i++)
        if (buf[i] != 0)
            return -1;
    d.name = (const char *)buf + SL_RAFT_CMD_HEADER;
    d.id = d.name + d.name_len;
    d.body = d.id + d.id_len;
    if (!cmd_valid(&d))
        return -1;
    *c = d;
    return 0;
}
