#include "pool/kill.h"

#include <ctype.h>
#include <string.h>

/* Skip whitespace and comments (-- , #, C-style). */
static size_t skip_space(const char *s, size_t len, size_t i)
{
    while (i < len) {
        if (isspace((unsigned char)s[i])) {
            i++;
        } else if (s[i] == '#' || (s[i] == '-' && i + 2 < len && s[i + 1] == '-' &&
                                   isspace((unsigned char)s[i + 2]))) {
            while (i < len && s[i] != '\n')
                i++;
        } else if (s[i] == '/' && i + 1 < len && s[i + 1] == '*') {
            const char *end = NULL;
            for (size_t j = i + 2; j + 1 < len; j++)
                if (s[j] == '*' && s[j + 1] == '/') {
                    end = s + j;
                    break;
                }
            if (!end)
                return len;
            i = (size_t)(end - s) + 2;
        } else {
            break;
        }
    }
    return i;
}

/* The word at i (letters, digits, underscore); returns its length. */
static size_t word(const char *s, size_t len, size_t i)
{
    size_t n = 0;
    while (i + n < len && (isalnum((unsigned char)s[i + n]) || s[i + n] == '_'))
        n++;
    return n;
}

static bool is_kw(const char *s, size_t n, const char *kw)
{
    return n == strlen(kw) && strncasecmp(s, kw, n) == 0;
}

enum sl_kill_parse_result sl_kill_parse(const char *sql, size_t len, struct sl_kill *out)
{
    memset(out, 0, sizeof *out);
    size_t i = skip_space(sql, len, 0);
    size_t n = word(sql, len, i);
    if (!is_kw(sql + i, n, "KILL"))
        return SL_KILL_NONE;
    i = skip_space(sql, len, i + n);
    n = word(sql, len, i);
    if (is_kw(sql + i, n, "HARD") || is_kw(sql + i, n, "SOFT")) {
        i = skip_space(sql, len, i + n);
        n = word(sql, len, i);
    }
    if (is_kw(sql + i, n, "USER"))
        return SL_KILL_REFUSED;
    if (is_kw(sql + i, n, "QUERY") || is_kw(sql + i, n, "CONNECTION")) {
        out->query_only = is_kw(sql + i, n, "QUERY");
        i = skip_space(sql, len, i + n);
        n = word(sql, len, i);
        if (is_kw(sql + i, n, "ID"))
            return SL_KILL_REFUSED; /* KILL QUERY ID names a query id, not a connection */
    }
    /* Anything but a literal id could name a database thread that serves someone else. */
    if (n == 0 || n > 19)
        return SL_KILL_REFUSED;
    uint64_t id = 0;
    for (size_t k = 0; k < n; k++) {
        if (!isdigit((unsigned char)sql[i + k]))
            return SL_KILL_REFUSED;
        id = id * 10 + (uint64_t)(sql[i + k] - '0');
    }
    i = skip_space(sql, len, i + n);
    if (i < len && sql[i] == ';')
        i = skip_space(sql, len, i + 1);
    if (i != len)
        return SL_KILL_REFUSED;
    out->id = id;
    return SL_KILL_ID;
}
