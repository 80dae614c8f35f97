#include "raft/budget.h"

#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

/* --- Ops: kinds and fields ------------------------------------------------------------------ */

enum field { F_KEY, F_NODE, F_MAX_CONNECTIONS, F_PERCENT, F_RESERVE, F_QUOTA, F_APPLIED, F_SEQ };
#define N_FIELDS (F_SEQ + 1)
#define BIT(f)   (1u << (f))

/* Ranges of the integer fields (F_KEY is a string). Node ids and sequence numbers stop at
 * INT64_MAX because jansson integers are signed 64-bit. */
static const struct {
    const char *name;
    uint64_t min, max;
} fields[N_FIELDS] = {
    [F_KEY] = {"key", 0, 0},
    [F_NODE] = {"node", 1, INT64_MAX},
    [F_MAX_CONNECTIONS] = {"max_connections", 0, SL_BUDGET_COUNT_MAX},
    [F_PERCENT] = {"percent", 1, 100},
    [F_RESERVE] = {"reserve", 0, SL_BUDGET_COUNT_MAX},
    [F_QUOTA] = {"quota", 0, SL_BUDGET_COUNT_MAX},
    [F_APPLIED] = {"applied", 0, INT64_MAX},
    [F_SEQ] = {"seq", 1, INT64_MAX},
};

static const struct {
    const char *name;
    unsigned fields; /* BIT(field) of each field the op has, all required */
} kinds[SL_BUDGET_FORGET + 1] = {
    [SL_BUDGET_LIMIT] = {"limit",
                         BIT(F_KEY) | BIT(F_MAX_CONNECTIONS) | BIT(F_PERCENT) | BIT(F_RESERVE)},
    [SL_BUDGET_SET] = {"set", BIT(F_KEY) | BIT(F_NODE) | BIT(F_QUOTA)},
    [SL_BUDGET_CONFIRM] = {"confirm", BIT(F_KEY) | BIT(F_NODE) | BIT(F_APPLIED)},
    [SL_BUDGET_RENEW] = {"renew", BIT(F_NODE) | BIT(F_SEQ)},
    [SL_BUDGET_REVOKE] = {"revoke", BIT(F_NODE)},
    [SL_BUDGET_FORGET] = {"forget", BIT(F_KEY)},
};

static int kind_known(enum sl_budget_op_kind k)
{
    return k >= SL_BUDGET_LIMIT && k <= SL_BUDGET_FORGET;
}

static uint64_t field_get(const struct sl_budget_op *op, enum field f)
{
    switch (f) {
    case F_NODE: return op->node;
    case F_MAX_CONNECTIONS: return op->max_connections;
    case F_PERCENT: return op->percent;
    case F_RESERVE: return op->reserve;
    case F_QUOTA: return op->quota;
    case F_APPLIED: return op->applied;
    case F_SEQ: return op->seq;
    case F_KEY: break;
    }
    return 0;
}

/* v is within the field's range (checked by the caller), so the casts keep it. */
static void field_set(struct sl_budget_op *op, enum field f, uint64_t v)
{
    switch (f) {
    case F_NODE: op->node = v; break;
    case F_MAX_CONNECTIONS: op->max_connections = (unsigned)v; break;
    case F_PERCENT: op->percent = (unsigned)v; break;
    case F_RESERVE: op->reserve = (unsigned)v; break;
    case F_QUOTA: op->quota = (unsigned)v; break;
    case F_APPLIED: op->applied = v; break;
    case F_SEQ: op->seq = v; break;
    case F_KEY: break;
    }
}

static int key_valid_n(const char *s, size_t len)
{
    if (len == 0 || len > SL_BUDGET_KEY_MAX)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char ch = s[i];
        if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
              ch == '.' || ch == '_' || ch == '-' || ch == '/' || ch == ':'))
            return 0;
    }
    return 1;
}

int sl_budget_key_valid(const char *key)
{
    return key_valid_n(key, strnlen(key, SL_BUDGET_KEY_MAX + 1));
}

/* What sl_budget_ops_parse accepts; apply ignores anything else. */
static int op_valid(const struct sl_budget_op *op)
{
    if (!kind_known(op->kind))
        return 0;
    unsigned mask = kinds[op->kind].fields;
    for (int f = 0; f < N_FIELDS; f++) {
        if (!(mask & BIT(f)))
            continue;
        if (f == F_KEY) {
            if (!key_valid_n(op->key, strnlen(op->key, sizeof op->key)))
                return 0;
            continue;
        }
        uint64_t v = field_get(op, (enum field)f);
        if (v < fields[f].min || v > fields[f].max)
            return 0;
    }
    return 1;
}

/* --- Table primitives ------------------------------------------------------------------------ */

void sl_budget_table_init(struct sl_budget_table *t)
{
    memset(t, 0, sizeof *t);
}

void sl_budget_table_free(struct sl_budget_table *t)
{
    for (size_t i = 0; i < t->n_entries; i++)
        free(t->entries[i].holders);
    free(t->entries);
    free(t->leases);
    sl_budget_table_init(t);
}

/* Binary searches: the position of the element, or where it would be inserted. */
static size_t entry_pos(const struct sl_budget_table *t, const char *key, int *found)
{
    size_t lo = 0, hi = t->n_entries;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(t->entries[mid].key, key);
        if (c == 0) {
            *found = 1;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = 0;
    return lo;
}

static size_t holder_pos(const struct sl_budget_entry *e, uint64_t node, int *found)
{
    size_t lo = 0, hi = e->n_holders;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (e->holders[mid].node < node)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = lo < e->n_holders && e->holders[lo].node == node;
    return lo;
}

static size_t lease_pos(const struct sl_budget_table *t, uint64_t node, int *found)
{
    size_t lo = 0, hi = t->n_leases;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (t->leases[mid].node < node)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = lo < t->n_leases && t->leases[lo].node == node;
    return lo;
}

const struct sl_budget_entry *sl_budget_find(const struct sl_budget_table *t, const char *key)
{
    int found;
    size_t i = entry_pos(t, key, &found);
    return found ? &t->entries[i] : NULL;
}

const struct sl_budget_holder *sl_budget_holder_of(const struct sl_budget_entry *e, uint64_t node)
{
    int found;
    size_t i = holder_pos(e, node, &found);
    return found ? &e->holders[i] : NULL;
}

const struct sl_budget_lease *sl_budget_lease_of(const struct sl_budget_table *t, uint64_t node)
{
    int found;
    size_t i = lease_pos(t, node, &found);
    return found ? &t->leases[i] : NULL;
}

static uint64_t capped_except(const struct sl_budget_entry *e, uint64_t node)
{
    uint64_t sum = 0;
    for (size_t i = 0; i < e->n_holders; i++)
        if (e->holders[i].node != node)
            sum += e->holders[i].cap;
    return sum;
}

unsigned sl_budget_capped(const struct sl_budget_entry *e)
{
    uint64_t sum = capped_except(e, 0); /* node 0 never holds anything */
    return sum > UINT_MAX ? UINT_MAX : (unsigned)sum;
}

uint64_t sl_budget_max_index(const struct sl_budget_table *t)
{
    uint64_t m = 0;
    for (size_t i = 0; i < t->n_entries; i++) {
        const struct sl_budget_entry *e = &t->entries[i];
        m = e->index > m ? e->index : m;
        for (size_t j = 0; j < e->n_holders; j++)
            m = e->holders[j].index > m ? e->holders[j].index : m;
    }
    for (size_t i = 0; i < t->n_leases; i++)
        m = t->leases[i].index > m ? t->leases[i].index : m;
    return m;
}

/* Arrays are sized exactly; the tables are small and change rarely. insert_at returns the new
 * array with an uninitialised slot at pos, or NULL (arr untouched) when memory ran out. */
static void *insert_at(void *arr, size_t n, size_t pos, size_t size)
{
    char *p = realloc(arr, (n + 1) * size);
    if (p)
        memmove(p + (pos + 1) * size, p + pos * size, (n - pos) * size);
    return p;
}

static void remove_at(void *arr, size_t *n, size_t pos, size_t size)
{
    char *p = arr;
    memmove(p + pos * size, p + (pos + 1) * size, (*n - pos - 1) * size);
    (*n)--;
}

/* Copy n elements; *out = NULL for n == 0. */
static int dup_array(void **out, const void *src, size_t n, size_t size)
{
    *out = NULL;
    if (n == 0)
        return 0;
    *out = malloc(n * size);
    if (!*out)
        return -1;
    memcpy(*out, src, n * size);
    return 0;
}

static int table_copy(struct sl_budget_table *dst, const struct sl_budget_table *src)
{
    sl_budget_table_init(dst);
    void *p;
    if (dup_array(&p, src->leases, src->n_leases, sizeof *src->leases) != 0)
        return -1;
    dst->leases = p;
    dst->n_leases = src->n_leases;
    if (src->n_entries == 0)
        return 0;
    dst->entries = calloc(src->n_entries, sizeof *dst->entries);
    if (!dst->entries)
        goto fail;
    for (size_t i = 0; i < src->n_entries; i++) {
        const struct sl_budget_entry *e = &src->entries[i];
        if (dup_array(&p, e->holders, e->n_holders, sizeof *e->holders) != 0)
            goto fail;
        dst->entries[i] = *e;
        dst->entries[i].holders = p;
        dst->n_entries = i + 1; /* so that a failure frees exactly what was copied */
    }
    return 0;
fail:
    sl_budget_table_free(dst);
    return -1;
}

/* --- Apply ------------------------------------------------------------------------------------ */

/* Store h at position pos of e (found: h replaces that holder; else it is inserted there), or
 * remove it when both its quota and cap are 0. */
static int put_holder(struct sl_budget_entry *e, size_t pos, int found,
                      const struct sl_budget_holder *h)
{
    if (h->quota == 0 && h->cap == 0) {
        if (found)
            remove_at(e->holders, &e->n_holders, pos, sizeof *e->holders);
        return 0;
    }
    if (!found) {
        struct sl_budget_holder *p = insert_at(e->holders, e->n_holders, pos, sizeof *p);
        if (!p)
            return -1;
        e->holders = p;
        e->n_holders++;
    }
    e->holders[pos] = *h;
    return 0;
}

static int apply_limit(struct sl_budget_table *t, const struct sl_budget_op *op, uint64_t index)
{
    int found;
    size_t i = entry_pos(t, op->key, &found);
    if (!found) {
        struct sl_budget_entry *p = insert_at(t->entries, t->n_entries, i, sizeof *p);
        if (!p)
            return -1;
        t->entries = p;
        t->n_entries++;
        memset(&p[i], 0, sizeof p[i]);
        snprintf(p[i].key, sizeof p[i].key, "%s", op->key);
    }
    struct sl_budget_entry *e = &t->entries[i];
    e->max_connections = op->max_connections;
    e->percent = op->percent;
    /* Below SL_BUDGET_COUNT_MAX * 100 / 100, so it fits the unsigned field. */
    e->budget = (unsigned)((uint64_t)op->max_connections * op->percent / 100);
    e->reserve = op->reserve < e->budget ? op->reserve : e->budget;
    e->index = index;
    return 0;
}

static int apply_set(struct sl_budget_table *t, const struct sl_budget_op *op, uint64_t index)
{
    int found;
    size_t i = entry_pos(t, op->key, &found);
    if (!found)
        return 0;
    struct sl_budget_entry *e = &t->entries[i];
    size_t pos = holder_pos(e, op->node, &found);
    struct sl_budget_holder h = {.node = op->node};
    if (found)
        h = e->holders[pos];
    unsigned before = h.quota;
    if (op->quota <= h.quota) {
        h.quota = op->quota; /* a shrink: the cap stays until the node confirms */
    } else {
        uint64_t others = capped_except(e, op->node);
        uint64_t usable = e->budget - e->reserve; /* reserve <= budget */
        unsigned room = others >= usable ? 0 : (unsigned)(usable - others);
        unsigned lift = h.quota > room ? h.quota : room;
        h.quota = op->quota < lift ? op->quota : lift;
        h.cap = h.cap > h.quota ? h.cap : h.quota;
    }
    if (h.quota != before) {
        h.index = index;
        e->index = index;
    }
    return put_holder(e, pos, found, &h);
}

static void apply_confirm(struct sl_budget_table *t, const struct sl_budget_op *op)
{
    int found;
    size_t i = entry_pos(t, op->key, &found);
    if (!found)
        return;
    struct sl_budget_entry *e = &t->entries[i];
    size_t pos = holder_pos(e, op->node, &found);
    if (!found || op->applied < e->holders[pos].index)
        return;
    struct sl_budget_holder h = e->holders[pos];
    h.cap = h.quota;
    put_holder(e, pos, 1, &h); /* replaces or removes: cannot fail */
}

static int apply_renew(struct sl_budget_table *t, const struct sl_budget_op *op, uint64_t index)
{
    int found;
    size_t i = lease_pos(t, op->node, &found);
    if (!found) {
        struct sl_budget_lease *p = insert_at(t->leases, t->n_leases, i, sizeof *p);
        if (!p)
            return -1;
        t->leases = p;
        t->n_leases++;
        t->leases[i].node = op->node;
    }
    t->leases[i].seq = op->seq;
    t->leases[i].index = index;
    return 0;
}

static void apply_revoke(struct sl_budget_table *t, const struct sl_budget_op *op, uint64_t index)
{
    int found;
    for (size_t i = 0; i < t->n_entries; i++) {
        struct sl_budget_entry *e = &t->entries[i];
        size_t pos = holder_pos(e, op->node, &found);
        if (!found)
            continue;
        /* quota = cap = 0: the holder goes away. */
        remove_at(e->holders, &e->n_holders, pos, sizeof *e->holders);
        e->index = index;
    }
    size_t i = lease_pos(t, op->node, &found);
    if (found)
        remove_at(t->leases, &t->n_leases, i, sizeof *t->leases);
}

static void apply_forget(struct sl_budget_table *t, const struct sl_budget_op *op)
{
    int found;
    size_t i = entry_pos(t, op->key, &found);
    if (!found || capped_except(&t->entries[i], 0) != 0)
        return;
    free(t->entries[i].holders);
    remove_at(t->entries, &t->n_entries, i, sizeof *t->entries);
}

static int apply_one(struct sl_budget_table *t, const struct sl_budget_op *op, uint64_t index)
{
    if (!op_valid(op))
        return 0;
    switch (op->kind) {
    case SL_BUDGET_LIMIT: return apply_limit(t, op, index);
    case SL_BUDGET_SET: return apply_set(t, op, index);
    case SL_BUDGET_CONFIRM: apply_confirm(t, op); return 0;
    case SL_BUDGET_RENEW: return apply_renew(t, op, index);
    case SL_BUDGET_REVOKE: apply_revoke(t, op, index); return 0;
    case SL_BUDGET_FORGET: apply_forget(t, op); return 0;
    }
    return 0;
}

int sl_budget_apply(struct sl_budget_table *t, const struct sl_budget_op *ops, size_t n,
                    uint64_t index)
{
    if (n == 0)
        return 0;
    /* Work on a copy so that running out of memory half-way leaves t as it was. */
    struct sl_budget_table w;
    if (table_copy(&w, t) != 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (apply_one(&w, &ops[i], index) != 0) {
            sl_budget_table_free(&w);
            return -1;
        }
    }
    sl_budget_table_free(t);
    *t = w;
    return 0;
}

/* --- JSON helpers ---------------------------------------------------------------------------- */

/* Format a one-line reason into err (control characters from the input become '?'); -1. */
__attribute__((format(printf, 3, 4))) static int errf(char *err, size_t errlen, const char *fmt,
                                                      ...)
{
    if (!err || errlen == 0)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    for (char *p = err; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
    return -1;
}

static int oom(char *err, size_t errlen)
{
    errf(err, errlen, "out of memory");
    return -2;
}

/* Load JSON text: 0 with *root, -1 (not JSON) or -2 (out of memory) with a reason. */
static int load(const char *json, size_t len, json_t **root, char *err, size_t errlen)
{
    json_error_t jerr;
    *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    if (*root)
        return 0;
    if (json_error_code(&jerr) == json_error_out_of_memory)
        return oom(err, errlen);
    return errf(err, errlen, "not JSON: %s at offset %d", jerr.text, jerr.position);
}

/* 0 when o is an object whose keys are exactly names[0..n). */
static int exact_keys(json_t *o, const char *const *names, size_t n, const char *path, char *err,
                      size_t errlen)
{
    if (!json_is_object(o))
        return errf(err, errlen, "%s: not an object", path);
    const char *k;
    json_t *v;
    json_object_foreach(o, k, v)
    {
        size_t i = 0;
        while (i < n && strcmp(k, names[i]) != 0)
            i++;
        if (i == n)
            return errf(err, errlen, "%s: unknown field \"%.40s\"", path, k);
    }
    for (size_t i = 0; i < n; i++)
        if (!json_object_get(o, names[i]))
            return errf(err, errlen, "%s.%s: missing", path, names[i]);
    return 0;
}

/* o[name] as an integer in min..max (max <= INT64_MAX). */
static int get_int(json_t *o, const char *name, uint64_t min, uint64_t max, uint64_t *out,
                   const char *path, char *err, size_t errlen)
{
    json_t *v = json_object_get(o, name);
    json_int_t i = json_is_integer(v) ? json_integer_value(v) : -1;
    if (i < 0 || (uint64_t)i < min || (uint64_t)i > max)
        return errf(err, errlen, "%s.%s: expected an integer in %" PRIu64 "..%" PRIu64, path, name,
                    min, max);
    *out = (uint64_t)i;
    return 0;
}

static int set_int(json_t *o, const char *name, uint64_t v)
{
    /* Values are at most INT64_MAX (see budget.h), so json_int_t holds them. */
    return json_object_set_new(o, name, json_integer((json_int_t)v));
}

/* A node id as an object key: canonical decimal (no sign, no leading zero), 1..INT64_MAX. */
static int parse_node(const char *s, uint64_t *out)
{
    size_t n = strlen(s);
    if (n == 0 || n > 19 || s[0] == '0')
        return -1;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (uint64_t)(s[i] - '0'); /* 19 digits stay below 2^64 */
    }
    if (v > INT64_MAX)
        return -1;
    *out = v;
    return 0;
}

static void node_key(char *b, size_t size, uint64_t node)
{
    snprintf(b, size, "%" PRIu64, node);
}

/* --- Ops JSON -------------------------------------------------------------------------------- */

static int parse_op(json_t *o, size_t idx, struct sl_budget_op *op, char *err, size_t errlen)
{
    char path[32];
    snprintf(path, sizeof path, "ops[%zu]", idx);
    if (!json_is_object(o))
        return errf(err, errlen, "%s: not an object", path);
    const char *name = json_string_value(json_object_get(o, "op"));
    if (!name)
        return errf(err, errlen, "%s.op: missing or not a string", path);
    int k = SL_BUDGET_LIMIT;
    while (k <= SL_BUDGET_FORGET && strcmp(name, kinds[k].name) != 0)
        k++;
    if (k > SL_BUDGET_FORGET)
        return errf(err, errlen, "%s.op: unknown op \"%.40s\"", path, name);
    op->kind = (enum sl_budget_op_kind)k;

    const char *names[N_FIELDS + 1] = {"op"};
    size_t n = 1;
    for (int f = 0; f < N_FIELDS; f++)
        if (kinds[k].fields & BIT(f))
            names[n++] = fields[f].name;
    if (exact_keys(o, names, n, path, err, errlen) != 0)
        return -1;

    for (int f = 0; f < N_FIELDS; f++) {
        if (!(kinds[k].fields & BIT(f)))
            continue;
        if (f == F_KEY) {
            json_t *v = json_object_get(o, "key");
            const char *key = json_string_value(v);
            if (!key || !key_valid_n(key, json_string_length(v)))
                return errf(err, errlen,
                            "%s.key: expected 1..%d characters of A-Z a-z 0-9 . _ - / :", path,
                            SL_BUDGET_KEY_MAX);
            memcpy(op->key, key, json_string_length(v) + 1);
            continue;
        }
        uint64_t v;
        if (get_int(o, fields[f].name, fields[f].min, fields[f].max, &v, path, err, errlen) != 0)
            return -1;
        field_set(op, (enum field)f, v);
    }
    return 0;
}

int sl_budget_ops_parse(const char *json, size_t len, struct sl_budget_op **ops, size_t *n,
                        char *err, size_t errlen)
{
    json_t *root;
    int rc = load(json, len, &root, err, errlen);
    if (rc != 0)
        return rc;
    static const char *const top[] = {"ops"};
    json_t *arr = json_object_get(root, "ops");
    size_t count = json_array_size(arr);
    struct sl_budget_op *out = NULL;
    if ((rc = exact_keys(root, top, 1, "body", err, errlen)) != 0)
        goto done;
    if (!json_is_array(arr)) {
        rc = errf(err, errlen, "ops: not an array");
        goto done;
    }
    if (count > SL_BUDGET_OPS_MAX) {
        rc = errf(err, errlen, "ops: %zu ops, at most %d", count, SL_BUDGET_OPS_MAX);
        goto done;
    }
    out = calloc(count ? count : 1, sizeof *out);
    if (!out) {
        rc = oom(err, errlen);
        goto done;
    }
    for (size_t i = 0; i < count; i++) {
        if ((rc = parse_op(json_array_get(arr, i), i, &out[i], err, errlen)) != 0) {
            free(out);
            goto done;
        }
    }
    *ops = out;
    *n = count;
done:
    json_decref(root);
    return rc;
}

char *sl_budget_ops_json(const struct sl_budget_op *ops, size_t n)
{
    json_t *root = json_object(), *arr = NULL;
    char *text = NULL;
    /* A NULL value makes json_object_set_new fail, so one check covers both allocations. */
    if (!root || json_object_set_new(root, "ops", json_array()) != 0)
        goto done;
    arr = json_object_get(root, "ops");
    for (size_t i = 0; i < n; i++) {
        const struct sl_budget_op *op = &ops[i];
        if (!kind_known(op->kind))
            goto done;
        json_t *o = json_object();
        if (json_array_append_new(arr, o) != 0 ||
            json_object_set_new(o, "op", json_string(kinds[op->kind].name)) != 0)
            goto done;
        for (int f = 0; f < N_FIELDS; f++) {
            if (!(kinds[op->kind].fields & BIT(f)))
                continue;
            int rc = f == F_KEY ? json_object_set_new(o, "key", json_string(op->key))
                                : set_int(o, fields[f].name, field_get(op, (enum field)f));
            if (rc != 0)
                goto done;
        }
    }
    text = json_dumps(root, JSON_COMPACT | JSON_SORT_KEYS);
done:
    json_decref(root);
    return text;
}

/* --- Table JSON ------------------------------------------------------------------------------ */

static json_t *holder_json(const struct sl_budget_holder *h)
{
    json_t *o = json_object();
    if (o && (set_int(o, "cap", h->cap) != 0 || set_int(o, "index", h->index) != 0 ||
              set_int(o, "quota", h->quota) != 0)) {
        json_decref(o);
        o = NULL;
    }
    return o;
}

static json_t *entry_json(const struct sl_budget_entry *e)
{
    json_t *o = json_object(), *holders = NULL;
    if (!o || json_object_set_new(o, "holders", json_object()) != 0 ||
        set_int(o, "budget", e->budget) != 0 || set_int(o, "index", e->index) != 0 ||
        set_int(o, "max_connections", e->max_connections) != 0 ||
        set_int(o, "percent", e->percent) != 0 || set_int(o, "reserve", e->reserve) != 0)
        goto fail;
    holders = json_object_get(o, "holders");
    for (size_t i = 0; i < e->n_holders; i++) {
        char nk[24];
        node_key(nk, sizeof nk, e->holders[i].node);
        if (json_object_set_new(holders, nk, holder_json(&e->holders[i])) != 0)
            goto fail;
    }
    return o;
fail:
    json_decref(o);
    return NULL;
}

char *sl_budget_table_json(const struct sl_budget_table *t)
{
    json_t *root = json_object(), *entries = NULL, *leases = NULL;
    char *text = NULL;
    if (!root || json_object_set_new(root, "entries", json_object()) != 0 ||
        json_object_set_new(root, "leases", json_object()) != 0)
        goto done;
    entries = json_object_get(root, "entries");
    leases = json_object_get(root, "leases");
    for (size_t i = 0; i < t->n_entries; i++)
        if (json_object_set_new(entries, t->entries[i].key, entry_json(&t->entries[i])) != 0)
            goto done;
    for (size_t i = 0; i < t->n_leases; i++) {
        char nk[24];
        json_t *o = json_object();
        node_key(nk, sizeof nk, t->leases[i].node);
        if (json_object_set_new(leases, nk, o) != 0 ||
            set_int(o, "index", t->leases[i].index) != 0 ||
            set_int(o, "seq", t->leases[i].seq) != 0)
            goto done;
    }
    text = json_dumps(root, JSON_COMPACT | JSON_SORT_KEYS);
done:
    json_decref(root);
    return text;
}

static int cmp_entry(const void *a, const void *b)
{
    return strcmp(((const struct sl_budget_entry *)a)->key,
                  ((const struct sl_budget_entry *)b)->key);
}

static int cmp_holder(const void *a, const void *b)
{
    uint64_t x = ((const struct sl_budget_holder *)a)->node;
    uint64_t y = ((const struct sl_budget_holder *)b)->node;
    return (x > y) - (x < y);
}

static int cmp_lease(const void *a, const void *b)
{
    uint64_t x = ((const struct sl_budget_lease *)a)->node;
    uint64_t y = ((const struct sl_budget_lease *)b)->node;
    return (x > y) - (x < y);
}

static int parse_holders(json_t *o, struct sl_budget_entry *e, const char *path, char *err,
                         size_t errlen)
{
    static const char *const names[] = {"cap", "index", "quota"};
    char hpath[SL_BUDGET_KEY_MAX + 64];
    if (!json_is_object(o))
        return errf(err, errlen, "%s.holders: not an object", path);
    size_t n = json_object_size(o);
    if (n == 0)
        return 0;
    e->holders = calloc(n, sizeof *e->holders);
    if (!e->holders)
        return oom(err, errlen);
    const char *k;
    json_t *v;
    json_object_foreach(o, k, v)
    {
        struct sl_budget_holder *h = &e->holders[e->n_holders];
        uint64_t cap, quota;
        if (parse_node(k, &h->node) != 0)
            return errf(err, errlen, "%s.holders: bad node id \"%.40s\"", path, k);
        snprintf(hpath, sizeof hpath, "%s.holders.%s", path, k);
        /* quota <= cap and not both 0, as apply leaves them; a holder changes the entry. */
        if (exact_keys(v, names, 3, hpath, err, errlen) != 0 ||
            get_int(v, "cap", 1, SL_BUDGET_COUNT_MAX, &cap, hpath, err, errlen) != 0 ||
            get_int(v, "quota", 0, cap, &quota, hpath, err, errlen) != 0 ||
            get_int(v, "index", 0, e->index, &h->index, hpath, err, errlen) != 0)
            return -1;
        h->cap = (unsigned)cap;
        h->quota = (unsigned)quota;
        e->n_holders++;
    }
    qsort(e->holders, e->n_holders, sizeof *e->holders, cmp_holder);
    return 0;
}

static int parse_entry(const char *key, json_t *o, struct sl_budget_entry *e, char *err,
                       size_t errlen)
{
    static const char *const names[] = {"budget",          "holders", "index",
                                        "max_connections", "percent", "reserve"};
    char path[SL_BUDGET_KEY_MAX + 16];
    if (!key_valid_n(key, strlen(key)))
        return errf(err, errlen, "entries: invalid key \"%.40s\"", key);
    snprintf(path, sizeof path, "entries.%s", key);
    memcpy(e->key, key, strlen(key) + 1);
    uint64_t mc, pct, budget, reserve;
    if (exact_keys(o, names, 6, path, err, errlen) != 0 ||
        get_int(o, "max_connections", 0, SL_BUDGET_COUNT_MAX, &mc, path, err, errlen) != 0 ||
        get_int(o, "percent", 1, 100, &pct, path, err, errlen) != 0)
        return -1;
    /* budget and reserve are what LIMIT computes from the limits. */
    uint64_t want = mc * pct / 100;
    if (get_int(o, "budget", want, want, &budget, path, err, errlen) != 0 ||
        get_int(o, "reserve", 0, budget, &reserve, path, err, errlen) != 0 ||
        get_int(o, "index", 0, INT64_MAX, &e->index, path, err, errlen) != 0)
        return -1;
    e->max_connections = (unsigned)mc;
    e->percent = (unsigned)pct;
    e->budget = (unsigned)budget;
    e->reserve = (unsigned)reserve;
    return parse_holders(json_object_get(o, "holders"), e, path, err, errlen);
}

static int parse_leases(json_t *o, struct sl_budget_table *t, char *err, size_t errlen)
{
    static const char *const names[] = {"index", "seq"};
    size_t n = json_object_size(o);
    if (n == 0)
        return 0;
    t->leases = calloc(n, sizeof *t->leases);
    if (!t->leases)
        return oom(err, errlen);
    const char *k;
    json_t *v;
    json_object_foreach(o, k, v)
    {
        char path[48];
        struct sl_budget_lease *l = &t->leases[t->n_leases];
        if (parse_node(k, &l->node) != 0)
            return errf(err, errlen, "leases: bad node id \"%.20s\"", k);
        snprintf(path, sizeof path, "leases.%s", k);
        if (exact_keys(v, names, 2, path, err, errlen) != 0 ||
            get_int(v, "seq", 1, INT64_MAX, &l->seq, path, err, errlen) != 0 ||
            get_int(v, "index", 0, INT64_MAX, &l->index, path, err, errlen) != 0)
            return -1;
        t->n_leases++;
    }
    qsort(t->leases, t->n_leases, sizeof *t->leases, cmp_lease);
    return 0;
}

int sl_budget_table_parse(const char *json, size_t len, struct sl_budget_table *t, char *err,
                          size_t errlen)
{
    static const char *const top[] = {"entries", "leases"};
    sl_budget_table_init(t);
    json_t *root;
    int rc = load(json, len, &root, err, errlen);
    if (rc != 0)
        return rc;
    json_t *entries = json_object_get(root, "entries"), *leases = json_object_get(root, "leases");
    size_t n = json_object_size(entries);
    if ((rc = exact_keys(root, top, 2, "table", err, errlen)) != 0)
        goto done;
    if (!json_is_object(entries) || !json_is_object(leases)) {
        rc = errf(err, errlen, "table: entries and leases must be objects");
        goto done;
    }
    if (n > 0 && !(t->entries = calloc(n, sizeof *t->entries))) {
        rc = oom(err, errlen);
        goto done;
    }
    const char *k;
    json_t *v;
    json_object_foreach(entries, k, v)
    {
        /* Count the entry first so that its holders are freed if parsing it fails. */
        struct sl_budget_entry *e = &t->entries[t->n_entries++];
        if ((rc = parse_entry(k, v, e, err, errlen)) != 0)
            goto done;
    }
    if (t->n_entries > 0) /* qsort wants a non-NULL array even for 0 elements */
        qsort(t->entries, t->n_entries, sizeof *t->entries, cmp_entry);
    rc = parse_leases(leases, t, err, errlen);
done:
    json_decref(root);
    if (rc != 0)
        sl_budget_table_free(t);
    return rc;
}
