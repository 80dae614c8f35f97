#include "pool/sessvars.h"

#include <stdlib.h>
#include <string.h>

/* Names in enum order, spelled as MariaDB 10.11 reports and accepts them: it knows only the tx_
 * forms (`SET transaction_isolation=...` fails with "Unknown system variable"). */
static const char *const var_names[SL_VAR_COUNT] = {
    [SL_VAR_AUTOCOMMIT] = "autocommit",
    [SL_VAR_AUTO_INCREMENT_INCREMENT] = "auto_increment_increment",
    [SL_VAR_AUTO_INCREMENT_OFFSET] = "auto_increment_offset",
    [SL_VAR_CHARACTER_SET_CLIENT] = "character_set_client",
    [SL_VAR_CHARACTER_SET_CONNECTION] = "character_set_connection",
    [SL_VAR_CHARACTER_SET_RESULTS] = "character_set_results",
    [SL_VAR_COLLATION_CONNECTION] = "collation_connection",
    [SL_VAR_INTERACTIVE_TIMEOUT] = "interactive_timeout",
    [SL_VAR_NET_READ_TIMEOUT] = "net_read_timeout",
    [SL_VAR_NET_WRITE_TIMEOUT] = "net_write_timeout",
    [SL_VAR_QUERY_CACHE_TYPE] = "query_cache_type",
    [SL_VAR_SQL_MODE] = "sql_mode",
    [SL_VAR_TIME_ZONE] = "time_zone",
    [SL_VAR_TX_ISOLATION] = "tx_isolation",
    [SL_VAR_TX_READ_ONLY] = "tx_read_only",
    [SL_VAR_WAIT_TIMEOUT] = "wait_timeout",
};

/* MySQL 8 and MariaDB 11.1+ report these spellings for the same variables. */
static const struct {
    const char *name;
    enum sl_var_id id;
} var_aliases[] = {
    {"transaction_isolation", SL_VAR_TX_ISOLATION},
    {"transaction_read_only", SL_VAR_TX_READ_ONLY},
};

static int ascii_lower(int c)
{
    return c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c;
}

/* ASCII-only on purpose: variable names are ASCII and the locale must not change the answer. */
static bool name_matches(const char *name, size_t len, const char *lower)
{
    size_t n = strlen(lower);
    if (n != len)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (ascii_lower((unsigned char)name[i]) != lower[i])
            return false;
    }
    return true;
}

int sl_var_lookup(const char *name, size_t len)
{
    if (name == NULL)
        return -1;
    for (int i = 0; i < SL_VAR_COUNT; i++) {
        if (name_matches(name, len, var_names[i]))
            return i;
    }
    for (size_t i = 0; i < sizeof var_aliases / sizeof var_aliases[0]; i++) {
        if (name_matches(name, len, var_aliases[i].name))
            return (int)var_aliases[i].id;
    }
    return -1;
}

bool sl_var_server_maintained(const char *name, size_t len)
{
    return name != NULL && name_matches(name, len, "last_gtid");
}

const char *sl_var_name(enum sl_var_id id)
{
    if ((unsigned)id >= SL_VAR_COUNT)
        return NULL;
    return var_names[id];
}

#define FNV_OFFSET 0xcbf29ce484222325ull
#define FNV_PRIME  0x100000001b3ull

static uint64_t fnv_bytes(uint64_t h, const void *data, size_t len)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= FNV_PRIME;
    }
    return h;
}

/* Each set entry is hashed as tag, length, bytes. The length prefix makes the encoding
 * unambiguous (no separator byte a value could contain), and unset entries contribute nothing,
 * so NULL and "" hash differently. The schema uses tag SL_VAR_COUNT. */
static uint64_t fnv_entry(uint64_t h, uint32_t tag, const char *value)
{
    uint32_t len = (uint32_t)strlen(value);
    h = fnv_bytes(h, &tag, sizeof tag);
    h = fnv_bytes(h, &len, sizeof len);
    return fnv_bytes(h, value, len);
}

static void rehash(struct sl_vars *v)
{
    uint64_t h = FNV_OFFSET;
    for (uint32_t i = 0; i < SL_VAR_COUNT; i++) {
        if (v->values[i] != NULL)
            h = fnv_entry(h, i, v->values[i]);
    }
    if (v->schema != NULL)
        h = fnv_entry(h, SL_VAR_COUNT, v->schema);
    v->hash = h;
}

void sl_vars_init(struct sl_vars *v)
{
    memset(v, 0, sizeof *v);
    rehash(v);
}

void sl_vars_clear(struct sl_vars *v)
{
    for (int i = 0; i < SL_VAR_COUNT; i++) {
        free(v->values[i]);
        v->values[i] = NULL;
    }
    free(v->schema);
    v->schema = NULL;
    rehash(v);
}

/* Make the heap copy for a slot. *out is NULL for a reset. Values are C strings compared with
 * strcmp, so embedded NULs would silently truncate them: refused like over-long ones. */
static int dup_value(const char *value, size_t len, char **out)
{
    *out = NULL;
    if (value == NULL)
        return len == 0 ? 0 : -1;
    if (len > SL_VAR_VALUE_MAX || memchr(value, '\0', len) != NULL)
        return -1;
    char *copy = malloc(len + 1);
    if (copy == NULL)
        return -1;
    memcpy(copy, value, len);
    copy[len] = '\0';
    *out = copy;
    return 0;
}

static int set_slot(struct sl_vars *v, char **slot, const char *value, size_t len)
{
    char *copy;
    if (dup_value(value, len, &copy) != 0)
        return -1;
    free(*slot);
    *slot = copy;
    rehash(v);
    return 0;
}

int sl_vars_set(struct sl_vars *v, enum sl_var_id id, const char *value, size_t len)
{
    if ((unsigned)id >= SL_VAR_COUNT)
        return -1;
    return set_slot(v, &v->values[id], value, len);
}

int sl_vars_set_schema(struct sl_vars *v, const char *schema, size_t len)
{
    return set_slot(v, &v->schema, schema, len);
}

static int dup_str(const char *s, char **out)
{
    return dup_value(s, s == NULL ? 0 : strlen(s), out);
}

/* dst must be initialised (sl_vars_init or earlier use); its old values are released. All copies
 * are made before dst is touched, so on failure dst is unchanged. */
int sl_vars_copy(struct sl_vars *dst, const struct sl_vars *src)
{
    if (dst == src)
        return 0;
    struct sl_vars tmp;
    sl_vars_init(&tmp);
    for (int i = 0; i < SL_VAR_COUNT; i++) {
        if (dup_str(src->values[i], &tmp.values[i]) != 0)
            goto fail;
    }
    if (dup_str(src->schema, &tmp.schema) != 0)
        goto fail;
    tmp.hash = src->hash;
    sl_vars_clear(dst);
    *dst = tmp;
    return 0;
fail:
    sl_vars_clear(&tmp);
    return -1;
}

static bool str_equal(const char *a, const char *b)
{
    if (a == NULL || b == NULL)
        return a == b;
    return strcmp(a, b) == 0;
}

bool sl_vars_equal(const struct sl_vars *a, const struct sl_vars *b)
{
    if (a->hash != b->hash)
        return false;
    for (int i = 0; i < SL_VAR_COUNT; i++) {
        if (!str_equal(a->values[i], b->values[i]))
            return false;
    }
    return str_equal(a->schema, b->schema);
}

bool sl_vars_schema_differs(const struct sl_vars *want, const struct sl_vars *have)
{
    return !str_equal(want->schema, have->schema);
}

/* Bounded writer: remembers overflow instead of failing at every call site. */
struct sqlbuf {
    char *out;
    size_t cap;
    size_t len;
    bool overflow;
};

static void put(struct sqlbuf *b, const char *s, size_t n)
{
    /* One byte stays reserved for the terminating NUL. */
    if (b->overflow || n >= b->cap - b->len) {
        b->overflow = true;
        return;
    }
    memcpy(b->out + b->len, s, n);
    b->len += n;
}

static void put_str(struct sqlbuf *b, const char *s)
{
    put(b, s, strlen(s));
}

static bool is_numeric(const char *s)
{
    if (*s == '\0')
        return false;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return false;
    }
    return true;
}

static bool is_printable_ascii(const char *s)
{
    for (; *s; s++) {
        if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
            return false;
    }
    return true;
}

/* Doubling backslashes is right when the backend parses with backslash escapes and, under
 * NO_BACKSLASH_ESCAPES, still ends the literal at the right quote (only the value changes, and no
 * valid value of these variables holds a backslash). Not doubling would be the unsafe mistake. */
static void put_quoted(struct sqlbuf *b, const char *s)
{
    put(b, "'", 1);
    for (; *s; s++) {
        if (*s == '\'')
            put(b, "''", 2);
        else if (*s == '\\')
            put(b, "\\\\", 2);
        else
            put(b, s, 1);
    }
    put(b, "'", 1);
}

/* Anything outside printable ASCII goes out as a hex literal, which MariaDB accepts for these
 * variables: its meaning does not depend on the backend's character_set_client, so a multibyte
 * character ending in 0x5c cannot swallow our escaping. Canonical values never need it. */
static void put_hex(struct sqlbuf *b, const char *s)
{
    static const char digits[] = "0123456789ABCDEF";
    put(b, "X'", 2);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        char pair[2] = {digits[c >> 4], digits[c & 0x0f]};
        put(b, pair, 2);
    }
    put(b, "'", 1);
}

static void put_value(struct sqlbuf *b, enum sl_var_id id, const char *value)
{
    if (value == NULL) {
        put_str(b, "DEFAULT");
    } else if (id == SL_VAR_CHARACTER_SET_RESULTS && *value == '\0') {
        /* Tracking reports character_set_results=NULL as an empty value, and MariaDB rejects
         * '' as an unknown character set. */
        put_str(b, "NULL");
    } else if (is_numeric(value)) {
        /* Integer variables refuse quoted values ("Incorrect argument type"). */
        put_str(b, value);
    } else if (is_printable_ascii(value)) {
        put_quoted(b, value);
    } else {
        put_hex(b, value);
    }
}

/* character_set_connection and collation_connection each change the other. Tracking reports only
 * the one a statement named, so the session code forgets the other (sets it to "unset"); here an
 * unset member of the pair is not reset to DEFAULT while its partner carries a value, because that
 * DEFAULT would undo the partner. */
static bool couple_set(const struct sl_vars *want, enum sl_var_id id)
{
    if (id == SL_VAR_COLLATION_CONNECTION)
        return want->values[SL_VAR_CHARACTER_SET_CONNECTION] != NULL;
    if (id == SL_VAR_CHARACTER_SET_CONNECTION)
        return want->values[SL_VAR_COLLATION_CONNECTION] != NULL;
    return false;
}

/* Enum order matters: character_set_connection resets collation_connection to the charset's
 * default, so collation_connection has to come after it (checked on MariaDB 10.11). */
size_t sl_vars_diff_sql(const struct sl_vars *want, const struct sl_vars *have, char *out,
                        size_t cap)
{
    struct sqlbuf b = {.out = out, .cap = cap};
    size_t n = 0;
    for (int i = 0; i < SL_VAR_COUNT; i++) {
        if (str_equal(want->values[i], have->values[i]))
            continue;
        if (!want->values[i] && couple_set(want, (enum sl_var_id)i))
            continue;
        put_str(&b, n++ == 0 ? "SET SESSION " : ", ");
        put_str(&b, var_names[i]);
        put(&b, "=", 1);
        put_value(&b, (enum sl_var_id)i, want->values[i]);
    }
    if (b.overflow)
        return (size_t)-1;
    if (cap > 0)
        out[b.len] = '\0';
    return b.len;
}
