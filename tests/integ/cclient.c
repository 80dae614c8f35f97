/* sluice_cclient: a MariaDB Connector/C client for the integration tests
 * (tests/integ/test_clients.py).
 *
 * It connects with TLS, runs a file of SQL blocks and prints everything the client library hands
 * back (column metadata, row values, OK-packet fields, errors, transaction status) in a canonical
 * text form on stdout, so that a run straight against MariaDB and a run through sluice can be
 * compared byte for byte. Connection details go to stderr: they legitimately differ.
 *
 * Input format: blocks separated by lines holding only ";;". A plain block is sent as one
 * mysql_real_query() (so "SELECT 1; SELECT 2" is a multi-statement) and every result is walked with
 * mysql_next_result(). A block starting with a "!prepare SQL" line is a server-side prepared
 * statement (mysql_stmt_prepare); SQL may continue on the following lines; each "!exec" line then
 * executes it once with tab-separated TYPE:VALUE parameters:
 *   int:-5  uint:18446744073709551615  double:1.5  str:text  hex:00ff0a (bytes, sent as BLOB)
 *   date:2024-02-29  datetime:2024-02-29 23:59:58.123456  time:-838:59:59  null:
 *   long:N:C (N bytes of character C, streamed with mysql_stmt_send_long_data)
 * A "!cursor" line before "!prepare" opens a read-only cursor (rows come by COM_STMT_FETCH).
 * Lines starting with "#" at the top of a block are comments.
 *
 * Exit status: 0 when the file ran (SQL errors are part of the output), 1 when connecting or
 * reading failed, 2 on usage errors. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mysql.h>

static const char usage[] = "Usage: sluice_cclient --host HOST --port PORT --user USER (--password "
                            "PW | --password-file F)\n"
                            "                      [--ca CA_FILE] [--database DB] SQL_FILE\n"
                            "       sluice_cclient --help\n";

static const char help_text[] =
    "Runs the SQL blocks in SQL_FILE over one TLS connection (verified against CA_FILE; without\n"
    "--ca the connection is plain TCP) and prints results in a canonical form for byte "
    "comparison.\n"
    "Blocks are separated by lines holding only ';;'. A block starting with '!prepare SQL' is a\n"
    "prepared statement executed once per following '!exec' line with tab-separated TYPE:VALUE\n"
    "parameters (int uint double str hex date datetime time null long:N:C); '!cursor' before\n"
    "'!prepare' fetches through a read-only cursor. See the comment at the top of cclient.c.\n";

static void die(const char *what)
{
    fprintf(stderr, "sluice_cclient: %s\n", what);
    exit(1);
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        die("out of memory");
    return p;
}

/* ---- canonical printing ------------------------------------------------------------------ */

static void print_bytes(const char *p, unsigned long len)
{
    putchar('\'');
    for (unsigned long i = 0; i < len; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c == '\\' || c == '\'')
            printf("\\%c", c);
        else if (c >= 0x20 && c < 0x7f)
            putchar(c);
        else
            printf("\\x%02x", c);
    }
    putchar('\'');
}

static void print_cstr(const char *p)
{
    print_bytes(p ? p : "", p ? (unsigned long)strlen(p) : 0);
}

static void print_status(MYSQL *m)
{
    unsigned int st = 0;
    mariadb_get_infov(m, MARIADB_CONNECTION_SERVER_STATUS, &st);
    printf("status: in_trans=%u autocommit=%u in_trans_readonly=%u\n",
           (st & SERVER_STATUS_IN_TRANS) ? 1u : 0u, (st & SERVER_STATUS_AUTOCOMMIT) ? 1u : 0u,
           (st & SERVER_STATUS_IN_TRANS_READONLY) ? 1u : 0u);
}

static void print_error(const char *what, unsigned int code, const char *sqlstate, const char *msg)
{
    printf("error (%s): %u (%s) ", what, code, sqlstate);
    print_cstr(msg);
    putchar('\n');
}

static void print_fields(MYSQL_FIELD *f, unsigned int n)
{
    printf("fields: %u\n", n);
    for (unsigned int i = 0; i < n; i++) {
        printf("field %u: name=", i);
        print_cstr(f[i].name);
        printf(" org_name=");
        print_cstr(f[i].org_name);
        printf(" table=");
        print_cstr(f[i].table);
        printf(" org_table=");
        print_cstr(f[i].org_table);
        printf(" db=");
        print_cstr(f[i].db);
        printf(" catalog=");
        print_cstr(f[i].catalog);
        printf(" type=%d length=%lu max_length=%lu decimals=%u charsetnr=%u flags=0x%x\n",
               (int)f[i].type, f[i].length, f[i].max_length, f[i].decimals, f[i].charsetnr,
               f[i].flags);
    }
}

static void print_ok(MYSQL *m, unsigned long long affected, unsigned long long insert_id)
{
    printf("ok: affected_rows=%llu insert_id=%llu warnings=%u info=", affected, insert_id,
           mysql_warning_count(m));
    print_cstr(mysql_info(m));
    putchar('\n');
}

/* ---- text protocol ------------------------------------------------------------------------- */

static void run_query(MYSQL *m, const char *sql, size_t len)
{
    if (mysql_real_query(m, sql, (unsigned long)len)) {
        print_error("query", mysql_errno(m), mysql_sqlstate(m), mysql_error(m));
        print_status(m);
        return;
    }
    int status;
    unsigned int k = 0;
    do {
        MYSQL_RES *res = mysql_store_result(m);
        printf("result %u\n", k++);
        if (res) {
            unsigned int n = mysql_num_fields(res);
            print_fields(mysql_fetch_fields(res), n);
            MYSQL_ROW row;
            while ((row = mysql_fetch_row(res))) {
                unsigned long *lens = mysql_fetch_lengths(res);
                printf("row:");
                for (unsigned int i = 0; i < n; i++) {
                    putchar(' ');
                    if (row[i])
                        print_bytes(row[i], lens[i]);
                    else
                        printf("NULL");
                }
                putchar('\n');
            }
            printf("rows: %llu warnings=%u\n", (unsigned long long)mysql_num_rows(res),
                   mysql_warning_count(m));
            mysql_free_result(res);
        } else if (mysql_field_count(m) == 0) {
            print_ok(m, mysql_affected_rows(m), mysql_insert_id(m));
        } else {
            print_error("store_result", mysql_errno(m), mysql_sqlstate(m), mysql_error(m));
            print_status(m);
            return;
        }
        print_status(m);
        status = mysql_next_result(m);
        if (status > 0) {
            print_error("next_result", mysql_errno(m), mysql_sqlstate(m), mysql_error(m));
            print_status(m);
        }
    } while (status == 0);
}

/* ---- binary protocol (prepared statements) --------------------------------------------------- */

struct param {
    long long i;
    double d;
    MYSQL_TIME t;
    char *data; /* str/hex bytes */
    unsigned long len;
    my_bool is_null;
    size_t long_n; /* long:N:C */
    char long_c;
};

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static int parse_time(const char *s, MYSQL_TIME *t, enum enum_mysql_timestamp_type type)
{
    memset(t, 0, sizeof *t);
    t->time_type = type;
    unsigned int y = 0, mo = 0, d = 0, h = 0, mi = 0, sec = 0;
    int n = 0;
    if (type != MYSQL_TIMESTAMP_TIME) {
        if (sscanf(s, "%u-%u-%u%n", &y, &mo, &d, &n) != 3)
            return -1;
        s += n;
        t->year = y;
        t->month = mo;
        t->day = d;
        if (type == MYSQL_TIMESTAMP_DATE)
            return *s ? -1 : 0;
        if (*s++ != ' ')
            return -1;
    } else if (*s == '-') {
        t->neg = 1;
        s++;
    }
    if (sscanf(s, "%u:%u:%u%n", &h, &mi, &sec, &n) != 3)
        return -1;
    s += n;
    if (type == MYSQL_TIMESTAMP_TIME) { /* the binary protocol carries days + hours (0..23) */
        t->day = h / 24;
        t->hour = h % 24;
    } else {
        t->hour = h;
    }
    t->minute = mi;
    t->second = sec;
    if (*s == '.') {
        unsigned long us = 0;
        int digits = 0;
        for (s++; *s >= '0' && *s <= '9' && digits < 6; s++, digits++)
            us = us * 10 + (unsigned long)(*s - '0');
        for (; digits < 6; digits++)
            us *= 10;
        t->second_part = us;
    }
    return *s ? -1 : 0;
}

/* Parse "TYPE:VALUE" into b/p. Returns 0 or -1. */
static int parse_param(char *spec, MYSQL_BIND *b, struct param *p)
{
    char *colon = strchr(spec, ':');
    if (!colon)
        return -1;
    *colon = '\0';
    const char *type = spec, *val = colon + 1;
    memset(b, 0, sizeof *b);
    memset(p, 0, sizeof *p);
    if (strcmp(type, "int") == 0 || strcmp(type, "uint") == 0) {
        errno = 0;
        if (type[0] == 'u')
            p->i = (long long)strtoull(val, NULL, 10);
        else
            p->i = strtoll(val, NULL, 10);
        if (errno)
            return -1;
        b->buffer_type = MYSQL_TYPE_LONGLONG;
        b->buffer = &p->i;
        b->is_unsigned = type[0] == 'u';
    } else if (strcmp(type, "double") == 0) {
        p->d = strtod(val, NULL);
        b->buffer_type = MYSQL_TYPE_DOUBLE;
        b->buffer = &p->d;
    } else if (strcmp(type, "str") == 0) {
        p->len = (unsigned long)strlen(val);
        p->data = xmalloc(p->len + 1);
        memcpy(p->data, val, p->len + 1);
        b->buffer_type = MYSQL_TYPE_STRING;
        b->buffer = p->data;
        b->buffer_length = p->len;
        b->length = &p->len;
    } else if (strcmp(type, "hex") == 0) {
        size_t n = strlen(val);
        if (n % 2)
            return -1;
        p->data = xmalloc(n / 2 + 1);
        for (size_t i = 0; i < n / 2; i++) {
            int hi = hexval(val[2 * i]), lo = hexval(val[2 * i + 1]);
            if (hi < 0 || lo < 0)
                return -1;
            p->data[i] = (char)(hi * 16 + lo);
        }
        p->len = (unsigned long)(n / 2);
        b->buffer_type = MYSQL_TYPE_BLOB;
        b->buffer = p->data;
        b->buffer_length = p->len;
        b->length = &p->len;
    } else if (strcmp(type, "date") == 0 || strcmp(type, "datetime") == 0 ||
               strcmp(type, "time") == 0) {
        enum enum_mysql_timestamp_type tt = type[1] == 'i'      ? MYSQL_TIMESTAMP_TIME
                                            : strlen(type) == 4 ? MYSQL_TIMESTAMP_DATE
                                                                : MYSQL_TIMESTAMP_DATETIME;
        if (parse_time(val, &p->t, tt) != 0)
            return -1;
        b->buffer_type = tt == MYSQL_TIMESTAMP_TIME   ? MYSQL_TYPE_TIME
                         : tt == MYSQL_TIMESTAMP_DATE ? MYSQL_TYPE_DATE
                                                      : MYSQL_TYPE_DATETIME;
        b->buffer = &p->t;
    } else if (strcmp(type, "null") == 0) {
        p->is_null = 1;
        b->buffer_type = MYSQL_TYPE_NULL;
        b->is_null = &p->is_null;
    } else if (strcmp(type, "long") == 0) {
        char *end;
        p->long_n = (size_t)strtoull(val, &end, 10);
        if (*end != ':' || !end[1])
            return -1;
        p->long_c = end[1];
        b->buffer_type = MYSQL_TYPE_BLOB;
    } else {
        return -1;
    }
    return 0;
}

static void print_stmt_error(MYSQL_STMT *st, const char *what)
{
    print_error(what, mysql_stmt_errno(st), mysql_stmt_sqlstate(st), mysql_stmt_error(st));
}

static void print_time(const MYSQL_TIME *t, enum enum_field_types type)
{
    if (type == MYSQL_TYPE_DATE)
        printf("DATE(%04u-%02u-%02u)", t->year, t->month, t->day);
    else if (type == MYSQL_TYPE_TIME)
        printf("TIME(%s%u:%02u:%02u.%06lu)", t->neg ? "-" : "", t->day * 24 + t->hour, t->minute,
               t->second, t->second_part);
    else
        printf("DATETIME(%04u-%02u-%02u %02u:%02u:%02u.%06lu)", t->year, t->month, t->day, t->hour,
               t->minute, t->second, t->second_part);
}

enum col_kind { COL_INT, COL_FLOAT, COL_DOUBLE, COL_TIME, COL_BYTES };

struct column {
    enum col_kind kind;
    enum enum_field_types type;
    long long i;
    float f;
    double d;
    MYSQL_TIME t;
    char small[64];
    unsigned long len;
    my_bool is_null, error;
};

static void print_column(MYSQL_STMT *st, struct column *c, MYSQL_BIND *b, unsigned int i)
{
    if (c->is_null) {
        printf("NULL");
        return;
    }
    switch (c->kind) {
    case COL_INT:
        if (b->is_unsigned)
            printf("%llu", (unsigned long long)c->i);
        else
            printf("%lld", c->i);
        break;
    case COL_FLOAT: printf("%.9g", (double)c->f); break;
    case COL_DOUBLE: printf("%.17g", c->d); break;
    case COL_TIME: print_time(&c->t, c->type); break;
    case COL_BYTES:
        if (c->len <= sizeof c->small) {
            print_bytes(c->small, c->len);
        } else { /* truncated: fetch the whole value */
            char *buf = xmalloc(c->len);
            MYSQL_BIND one;
            unsigned long got = 0;
            memset(&one, 0, sizeof one);
            one.buffer_type = MYSQL_TYPE_BLOB;
            one.buffer = buf;
            one.buffer_length = c->len;
            one.length = &got;
            if (mysql_stmt_fetch_column(st, &one, i, 0))
                print_stmt_error(st, "fetch_column");
            else
                print_bytes(buf, got);
            free(buf);
        }
        break;
    }
}

static void bind_column(struct column *c, MYSQL_BIND *b, const MYSQL_FIELD *f)
{
    c->type = f->type;
    b->is_null = &c->is_null;
    b->error = &c->error;
    b->length = &c->len;
    switch (f->type) {
    case MYSQL_TYPE_TINY:
    case MYSQL_TYPE_SHORT:
    case MYSQL_TYPE_INT24:
    case MYSQL_TYPE_LONG:
    case MYSQL_TYPE_LONGLONG:
    case MYSQL_TYPE_YEAR:
        c->kind = COL_INT;
        b->buffer_type = MYSQL_TYPE_LONGLONG;
        b->buffer = &c->i;
        b->is_unsigned = (f->flags & UNSIGNED_FLAG) != 0;
        break;
    case MYSQL_TYPE_FLOAT:
        c->kind = COL_FLOAT;
        b->buffer_type = MYSQL_TYPE_FLOAT;
        b->buffer = &c->f;
        break;
    case MYSQL_TYPE_DOUBLE:
        c->kind = COL_DOUBLE;
        b->buffer_type = MYSQL_TYPE_DOUBLE;
        b->buffer = &c->d;
        break;
    case MYSQL_TYPE_DATE:
    case MYSQL_TYPE_TIME:
    case MYSQL_TYPE_DATETIME:
    case MYSQL_TYPE_TIMESTAMP:
        c->kind = COL_TIME;
        b->buffer_type = f->type;
        b->buffer = &c->t;
        break;
    default:
        c->kind = COL_BYTES;
        b->buffer_type = MYSQL_TYPE_BLOB;
        b->buffer = c->small;
        b->buffer_length = sizeof c->small;
        break;
    }
}

static void fetch_rows(MYSQL_STMT *st, struct column *cols, MYSQL_BIND *rb, unsigned int n,
                       int cursor)
{
    if (mysql_stmt_bind_result(st, rb)) {
        print_stmt_error(st, "bind_result");
        return;
    }
    if (!cursor && mysql_stmt_store_result(st)) {
        print_stmt_error(st, "store_result");
        return;
    }
    unsigned long long rows = 0;
    int rc;
    while ((rc = mysql_stmt_fetch(st)) == 0 || rc == MYSQL_DATA_TRUNCATED) {
        rows++;
        printf("row:");
        for (unsigned int i = 0; i < n; i++) {
            putchar(' ');
            print_column(st, &cols[i], &rb[i], i);
        }
        putchar('\n');
    }
    if (rc == 1)
        print_stmt_error(st, "fetch");
    printf("rows: %llu warnings=%u\n", rows, mysql_warning_count(st->mysql));
}

/* Print one result set of an executed statement: metadata, then every row. */
static void print_stmt_result(MYSQL_STMT *st, MYSQL_RES *meta, int cursor)
{
    unsigned int n = mysql_num_fields(meta);
    MYSQL_FIELD *f = mysql_fetch_fields(meta);
    print_fields(f, n);
    size_t cnt = n ? n : 1;
    struct column *cols = xmalloc(sizeof *cols * cnt);
    MYSQL_BIND *rb = xmalloc(sizeof *rb * cnt);
    memset(cols, 0, sizeof *cols * cnt);
    memset(rb, 0, sizeof *rb * cnt);
    for (unsigned int i = 0; i < n; i++)
        bind_column(&cols[i], &rb[i], &f[i]);
    fetch_rows(st, cols, rb, n, cursor);
    free(cols);
    free(rb);
}

/* Stream long:N:C parameters, execute, print every result. */
static void execute_bound(MYSQL_STMT *st, const struct param *pv, unsigned long n, int cursor)
{
    for (unsigned long i = 0; i < n; i++) {
        if (!pv[i].long_n)
            continue;
        char chunk[65536];
        memset(chunk, pv[i].long_c, sizeof chunk);
        for (size_t sent = 0; sent < pv[i].long_n;) {
            size_t len = pv[i].long_n - sent < sizeof chunk ? pv[i].long_n - sent : sizeof chunk;
            if (mysql_stmt_send_long_data(st, (unsigned int)i, chunk, (unsigned long)len)) {
                print_stmt_error(st, "send_long_data");
                return;
            }
            sent += len;
        }
    }
    if (mysql_stmt_execute(st)) {
        print_stmt_error(st, "execute");
        print_status(st->mysql);
        return;
    }
    int rc;
    unsigned int k = 0;
    do {
        printf("result %u\n", k++);
        MYSQL_RES *meta = mysql_stmt_result_metadata(st);
        if (meta) {
            print_stmt_result(st, meta, cursor);
            mysql_free_result(meta);
        } else if (mysql_stmt_field_count(st) == 0) {
            print_ok(st->mysql, mysql_stmt_affected_rows(st), mysql_stmt_insert_id(st));
        }
        print_status(st->mysql);
        mysql_stmt_free_result(st);
        rc = mysql_stmt_next_result(st);
        if (rc > 0)
            print_stmt_error(st, "next_result");
    } while (rc == 0);
}

/* Parse the tab-separated parameters of one "!exec" line into binds; returns how many, or -1
 * (printed). */
static long parse_params(char *line, MYSQL_BIND *pb, struct param *pv, unsigned long want)
{
    unsigned long got = 0;
    char *save = NULL;
    for (char *tok = strtok_r(line, "\t", &save); tok; tok = strtok_r(NULL, "\t", &save)) {
        if (got >= want) {
            printf("exec: too many parameters (statement has %lu)\n", want);
            return -1;
        }
        if (parse_param(tok, &pb[got], &pv[got]) != 0) {
            fprintf(stderr, "sluice_cclient: bad parameter '%s'\n", tok);
            exit(2);
        }
        got++;
    }
    return (long)got;
}

static void run_execute(MYSQL_STMT *st, char *line, int cursor)
{
    unsigned long want = mysql_stmt_param_count(st);
    size_t cnt = want ? want : 1;
    MYSQL_BIND *pb = xmalloc(sizeof *pb * cnt);
    struct param *pv = xmalloc(sizeof *pv * cnt);
    memset(pb, 0, sizeof *pb * cnt);
    memset(pv, 0, sizeof *pv * cnt);
    long got = parse_params(line, pb, pv, want);
    if (got >= 0 && (unsigned long)got != want) {
        printf("exec: %ld parameters given, statement has %lu\n", got, want);
    } else if (got >= 0) {
        printf("execute: params=%lu\n", want);
        if (want && mysql_stmt_bind_param(st, pb))
            print_stmt_error(st, "bind_param");
        else
            execute_bound(st, pv, want, cursor);
    }
    for (unsigned long i = 0; i < want; i++)
        free(pv[i].data);
    free(pb);
    free(pv);
}

/* lines[0..n): "!cursor"?, "!prepare ...", SQL continuation lines, "!exec ..." lines. */
static void run_prepared(MYSQL *m, char **lines, size_t n)
{
    size_t i = 0;
    int cursor = 0;
    if (i < n && strcmp(lines[i], "!cursor") == 0) {
        cursor = 1;
        i++;
    }
    size_t cap = 1, len = 0;
    for (size_t j = i; j < n && strncmp(lines[j], "!exec", 5) != 0; j++)
        cap += strlen(lines[j]) + 1;
    char *sql = xmalloc(cap);
    sql[0] = '\0';
    for (; i < n && strncmp(lines[i], "!exec", 5) != 0; i++) {
        const char *part = lines[i];
        if (strncmp(part, "!prepare", 8) == 0)
            part += part[8] == ' ' ? 9 : 8;
        if (len)
            sql[len++] = '\n';
        size_t pl = strlen(part);
        memcpy(sql + len, part, pl + 1);
        len += pl;
    }
    MYSQL_STMT *st = mysql_stmt_init(m);
    if (!st)
        die("mysql_stmt_init failed");
    if (cursor) {
        unsigned long type = CURSOR_TYPE_READ_ONLY, prefetch = 2;
        mysql_stmt_attr_set(st, STMT_ATTR_CURSOR_TYPE, &type);
        mysql_stmt_attr_set(st, STMT_ATTR_PREFETCH_ROWS, &prefetch);
    }
    if (mysql_stmt_prepare(st, sql, (unsigned long)len)) {
        print_stmt_error(st, "prepare");
    } else {
        printf("prepared: params=%lu fields=%u cursor=%d\n", mysql_stmt_param_count(st),
               mysql_stmt_field_count(st), cursor);
        for (; i < n; i++) {
            if (strncmp(lines[i], "!exec", 5) != 0)
                continue;
            char *args = lines[i] + 5;
            if (*args == ' ' || *args == '\t')
                args++;
            run_execute(st, args, cursor);
        }
    }
    mysql_stmt_close(st);
    free(sql);
}

/* ---- main ------------------------------------------------------------------------------------ */

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "sluice_cclient: cannot open %s: %s\n", path, strerror(errno));
        exit(1);
    }
    size_t cap = 1 << 16, n = 0;
    char *buf = xmalloc(cap);
    size_t r;
    while ((r = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += r;
        if (cap - n - 1 == 0) {
            cap *= 2;
            char *nb = realloc(buf, cap);
            if (!nb)
                die("out of memory");
            buf = nb;
        }
    }
    if (ferror(f))
        die("read error");
    fclose(f);
    buf[n] = '\0';
    *len = n;
    return buf;
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1", *user = NULL, *password = NULL, *password_file = NULL,
               *ca = NULL;
    const char *database = NULL, *sql_file = NULL;
    unsigned int port = 3306;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            printf("%s\n%s", usage, help_text);
            return 0;
        }
        const char **slot = NULL;
        if (strcmp(a, "--host") == 0)
            slot = &host;
        else if (strcmp(a, "--user") == 0)
            slot = &user;
        else if (strcmp(a, "--password") == 0)
            slot = &password;
        else if (strcmp(a, "--password-file") == 0)
            slot = &password_file;
        else if (strcmp(a, "--ca") == 0)
            slot = &ca;
        else if (strcmp(a, "--database") == 0)
            slot = &database;
        if (slot) {
            if (++i >= argc) {
                fprintf(stderr, "sluice_cclient: %s needs a value\n%s", a, usage);
                return 2;
            }
            *slot = argv[i];
        } else if (strcmp(a, "--port") == 0) {
            if (++i >= argc) {
                fprintf(stderr, "sluice_cclient: --port needs a value\n%s", usage);
                return 2;
            }
            port = (unsigned int)strtoul(argv[i], NULL, 10);
        } else if (a[0] == '-' || sql_file) {
            fprintf(stderr, "sluice_cclient: unexpected argument '%s'\n%s", a, usage);
            return 2;
        } else {
            sql_file = a;
        }
    }
    if (!user || (!password && !password_file) || !sql_file) {
        fprintf(stderr, "%s", usage);
        return 2;
    }
    char *pw_buf = NULL;
    if (password_file) {
        size_t n;
        pw_buf = read_file(password_file, &n);
        while (n && (pw_buf[n - 1] == '\n' || pw_buf[n - 1] == '\r'))
            pw_buf[--n] = '\0';
        password = pw_buf;
    }
    size_t sql_len;
    char *text = read_file(sql_file, &sql_len);

    MYSQL *m = mysql_init(NULL);
    if (!m)
        die("mysql_init failed");
    my_bool on = 1;
    unsigned int connect_timeout = 10, rw_timeout = 120;
    mysql_optionsv(m, MYSQL_SET_CHARSET_NAME, "utf8mb4");
    mysql_optionsv(m, MYSQL_OPT_CONNECT_TIMEOUT, &connect_timeout);
    mysql_optionsv(m, MYSQL_OPT_READ_TIMEOUT, &rw_timeout);
    mysql_optionsv(m, MYSQL_OPT_WRITE_TIMEOUT, &rw_timeout);
    mysql_optionsv(m, MYSQL_OPT_LOCAL_INFILE, &on);
    if (ca) {
        mysql_optionsv(m, MYSQL_OPT_SSL_CA, ca);
        mysql_optionsv(m, MYSQL_OPT_SSL_ENFORCE, &on);
        mysql_optionsv(m, MYSQL_OPT_SSL_VERIFY_SERVER_CERT, &on);
    }
    if (!mysql_real_connect(m, host, user, password, database, port, NULL,
                            CLIENT_MULTI_STATEMENTS | CLIENT_MULTI_RESULTS)) {
        fprintf(stderr, "sluice_cclient: connect to %s:%u as %s failed: %u (%s) %s\n", host, port,
                user, mysql_errno(m), mysql_sqlstate(m), mysql_error(m));
        mysql_close(m);
        mysql_library_end();
        free(text);
        free(pw_buf);
        return 1;
    }
    const char *cipher = mysql_get_ssl_cipher(m);
    if (ca && !cipher) {
        fprintf(stderr, "sluice_cclient: connected to %s:%u without TLS\n", host, port);
        mysql_close(m);
        mysql_library_end();
        free(text);
        free(pw_buf);
        return 1;
    }
    fprintf(stderr, "sluice_cclient: connected to %s:%u as %s, server %s, tls %s\n", host, port,
            user, mysql_get_server_info(m), cipher ? cipher : "off");

    /* Split into lines, then into blocks at ";;" lines. */
    size_t n_lines = 1;
    for (size_t i = 0; i < sql_len; i++)
        n_lines += text[i] == '\n';
    char **lines = xmalloc(sizeof *lines * n_lines);
    size_t nl = 0;
    for (char *p = text; p;) {
        char *nlp = strchr(p, '\n');
        if (nlp)
            *nlp = '\0';
        lines[nl++] = p;
        p = nlp ? nlp + 1 : NULL;
    }
    unsigned int block = 0;
    for (size_t i = 0; i < nl;) {
        size_t j = i;
        while (j < nl && strcmp(lines[j], ";;") != 0)
            j++;
        size_t b = i;
        while (b < j && (lines[b][0] == '#' || lines[b][0] == '\0'))
            b++;
        if (b < j) {
            printf("== block %u\n", block++);
            if (lines[b][0] == '!') {
                run_prepared(m, lines + b, j - b);
            } else {
                /* re-join the block's lines into one query text */
                size_t len = 0;
                for (size_t k = b; k < j; k++)
                    len += strlen(lines[k]) + 1;
                char *q = xmalloc(len + 1);
                size_t off = 0;
                for (size_t k = b; k < j; k++) {
                    size_t l = strlen(lines[k]);
                    memcpy(q + off, lines[k], l);
                    off += l;
                    if (k + 1 < j)
                        q[off++] = '\n';
                }
                q[off] = '\0';
                run_query(m, q, off);
                free(q);
            }
            fflush(stdout);
        }
        i = j + 1;
    }
    free(lines);
    free(text);
    free(pw_buf);
    mysql_close(m);
    mysql_library_end();
    return fflush(stdout) == 0 ? 0 : 1;
}
