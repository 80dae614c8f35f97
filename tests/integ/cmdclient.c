/* sluice_cmdclient: an interactive MariaDB Connector/C client for the integration tests
 * (tests/integ/test_commands.py, tests/integ/test_pinning.py).
 *
 * It connects once (TLS when --ca is given), prints one JSON line describing the connection, then
 * reads commands from stdin, one per line, and answers each with exactly one JSON line on stdout.
 * This lets a test interleave protocol commands that only Connector/C sends (COM_STMT_*,
 * COM_CHANGE_USER, COM_RESET_CONNECTION, COM_SET_OPTION, COM_STATISTICS, COM_PROCESS_KILL) with
 * other clients' work.
 *
 * Command line: fields separated by TAB; inside a field \\ \t \n \r \0 stand for backslash, tab,
 * newline, carriage return and NUL.
 *   query SQL                    mysql_real_query, every result (multi-statements, CALL)
 *   prepare ID SQL [cursor]      mysql_stmt_prepare into slot ID (0..15); "cursor": read-only
 * cursor, prefetch 2 rows execute ID [P...]            bind and execute; P is i:N u:N d:X s:TEXT n:
 * (NULL) l: (long data sent before with "long"); without a cursor every result is fetched long ID
 * PARAM N C            mysql_stmt_send_long_data: N bytes of character C, 64 KiB at a time fetch ID
 * N                   fetch up to N rows of the open cursor stmt_reset ID / stmt_close ID
 *   change_user USER PW [DB]     mysql_change_user (no DB or "" = none)
 *   reset_connection             mysql_reset_connection
 *   set_option on|off            mysql_set_server_option(MULTI_STATEMENTS_ON/OFF)
 *   stat / ping / thread_id      mysql_stat, mysql_ping, mysql_thread_id
 *   select_db DB                 mysql_select_db (COM_INIT_DB)
 *   kill ID                      mysql_kill (COM_PROCESS_KILL)
 *   quit                         mysql_close, then exit 0
 *   exit                         exit at once without COM_QUIT (the socket just closes)
 *
 * Answers: {"ok":true,...} or {"ok":false,"errno":N,"sqlstate":"...","error":"..."}. Strings are
 * byte strings: printable ASCII as is, every other byte as \u00XX (decode with latin-1).
 * Result sets: {"fields":[{"name":..,"type":..,...}],"rows":[[value or null,...]]}; OK results:
 * {"affected":N,"insert_id":N,"warnings":N,"info":..}. "status" is the server status word.
 *
 * Exit status: 0 after quit/exit/end of input, 1 when connecting failed, 2 on usage errors. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <mysql.h>

#define MAX_STMTS  16
#define MAX_FIELDS 64

static const char usage[] =
    "Usage: sluice_cmdclient --host HOST --port PORT --user USER --password PW [--ca CA_FILE]\n"
    "                        [--database DB] [--charset CS] [--no-local-infile] [--no-multi]\n"
    "Reads commands from stdin and answers each with one JSON line (see cmdclient.c).\n";

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "sluice_cmdclient: out of memory\n");
        exit(1);
    }
    return p;
}

/* ---- JSON output --------------------------------------------------------------------------- */

static void jbytes(const char *p, unsigned long len)
{
    putchar('"');
    for (unsigned long i = 0; i < len; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c >= 0x20 && c < 0x7f)
            putchar(c);
        else
            printf("\\u%04x", c);
    }
    putchar('"');
}

static void jstr(const char *s)
{
    if (!s)
        printf("null");
    else
        jbytes(s, (unsigned long)strlen(s));
}

static unsigned int server_status(MYSQL *m)
{
    unsigned int st = 0;
    mariadb_get_infov(m, MARIADB_CONNECTION_SERVER_STATUS, &st);
    return st;
}

static void jerror_fields(unsigned int code, const char *sqlstate, const char *msg)
{
    printf("\"errno\":%u,\"sqlstate\":", code);
    jstr(sqlstate);
    printf(",\"error\":");
    jstr(msg);
}

static void answer_error(MYSQL *m)
{
    printf("{\"ok\":false,");
    jerror_fields(mysql_errno(m), mysql_sqlstate(m), mysql_error(m));
    printf(",\"status\":%u}\n", server_status(m));
}

static void answer_stmt_error(MYSQL_STMT *st)
{
    printf("{\"ok\":false,");
    jerror_fields(mysql_stmt_errno(st), mysql_stmt_sqlstate(st), mysql_stmt_error(st));
    printf(",\"status\":%u}\n", server_status(st->mysql));
}

static void jfields(MYSQL_FIELD *f, unsigned int n)
{
    printf("\"fields\":[");
    for (unsigned int i = 0; i < n; i++) {
        printf("%s{\"name\":", i ? "," : "");
        jstr(f[i].name);
        printf(",\"org_name\":");
        jstr(f[i].org_name);
        printf(",\"table\":");
        jstr(f[i].table);
        printf(",\"org_table\":");
        jstr(f[i].org_table);
        printf(",\"db\":");
        jstr(f[i].db);
        printf(",\"type\":%d,\"length\":%lu,\"decimals\":%u,\"charsetnr\":%u,\"flags\":%u}",
               (int)f[i].type, f[i].length, f[i].decimals, f[i].charsetnr, f[i].flags);
    }
    putchar(']');
}

static void jok(MYSQL *m, unsigned long long affected, unsigned long long insert_id)
{
    printf("{\"affected\":%llu,\"insert_id\":%llu,\"warnings\":%u,\"info\":", affected, insert_id,
           mysql_warning_count(m));
    jstr(mysql_info(m));
    putchar('}');
}

/* ---- text protocol --------------------------------------------------------------------------- */

static void cmd_query(MYSQL *m, const char *sql, size_t len)
{
    if (mysql_real_query(m, sql, (unsigned long)len)) {
        answer_error(m);
        return;
    }
    printf("{\"ok\":true,\"results\":[");
    int status, k = 0;
    do {
        MYSQL_RES *res = mysql_store_result(m);
        if (k++)
            putchar(',');
        if (res) {
            unsigned int n = mysql_num_fields(res);
            putchar('{');
            jfields(mysql_fetch_fields(res), n);
            printf(",\"rows\":[");
            MYSQL_ROW row;
            int r = 0;
            while ((row = mysql_fetch_row(res))) {
                unsigned long *lens = mysql_fetch_lengths(res);
                printf("%s[", r++ ? "," : "");
                for (unsigned int i = 0; i < n; i++) {
                    if (i)
                        putchar(',');
                    if (row[i])
                        jbytes(row[i], lens[i]);
                    else
                        printf("null");
                }
                putchar(']');
            }
            printf("],\"warnings\":%u}", mysql_warning_count(m));
            mysql_free_result(res);
        } else if (mysql_field_count(m) == 0) {
            jok(m, mysql_affected_rows(m), mysql_insert_id(m));
        } else {
            printf("{\"error\":{");
            jerror_fields(mysql_errno(m), mysql_sqlstate(m), mysql_error(m));
            printf("}}");
            break;
        }
        status = mysql_next_result(m);
        if (status > 0) {
            printf(",{\"error\":{");
            jerror_fields(mysql_errno(m), mysql_sqlstate(m), mysql_error(m));
            printf("}}");
        }
    } while (status == 0);
    printf("],\"status\":%u}\n", server_status(m));
}

/* ---- prepared statements -----------------------------------------------------------------------
 */

struct slot {
    MYSQL_STMT *st;
    int cursor;
    int has_result; /* a result set is open for fetch */
    unsigned int nfields;
    MYSQL_BIND rb[MAX_FIELDS];
    char *buf[MAX_FIELDS];
    unsigned long len[MAX_FIELDS];
    my_bool is_null[MAX_FIELDS];
    my_bool err[MAX_FIELDS];
};

static struct slot slots[MAX_STMTS];

#define COL_BUF 256

static MYSQL *g_mysql;

static struct slot *get_slot(const char *id)
{
    char *end;
    long n = strtol(id ? id : "", &end, 10);
    if (!id || *end || n < 0 || n >= MAX_STMTS)
        return NULL;
    return &slots[n];
}

static void free_result_binds(struct slot *s)
{
    for (unsigned int i = 0; i < MAX_FIELDS; i++) {
        free(s->buf[i]);
        s->buf[i] = NULL;
    }
    s->has_result = 0;
    s->nfields = 0;
}

static void answer_plain_error(const char *msg)
{
    printf("{\"ok\":false,\"errno\":0,\"sqlstate\":\"\",\"error\":");
    jstr(msg);
    printf("}\n");
}

static void cmd_prepare(const char *id, const char *sql, size_t len, const char *opt)
{
    struct slot *s = get_slot(id);
    if (!s) {
        answer_plain_error("bad statement slot");
        return;
    }
    if (s->st) {
        mysql_stmt_close(s->st);
        free_result_binds(s);
    }
    s->st = mysql_stmt_init(g_mysql);
    s->cursor = opt && strcmp(opt, "cursor") == 0;
    if (s->cursor) {
        unsigned long type = CURSOR_TYPE_READ_ONLY, prefetch = 2;
        mysql_stmt_attr_set(s->st, STMT_ATTR_CURSOR_TYPE, &type);
        mysql_stmt_attr_set(s->st, STMT_ATTR_PREFETCH_ROWS, &prefetch);
    }
    if (mysql_stmt_prepare(s->st, sql, (unsigned long)len)) {
        answer_stmt_error(s->st);
        mysql_stmt_close(s->st);
        s->st = NULL;
        return;
    }
    printf("{\"ok\":true,\"params\":%lu,\"field_count\":%u,\"stmt_id\":%lu,\"status\":%u}\n",
           mysql_stmt_param_count(s->st), mysql_stmt_field_count(s->st), s->st->stmt_id,
           server_status(g_mysql));
}

/* Bind every column as a string (Connector/C converts); longer values are fetched again whole. */
static int bind_result(struct slot *s, MYSQL_RES *meta)
{
    free_result_binds(s);
    unsigned int n = mysql_num_fields(meta);
    if (n > MAX_FIELDS)
        return -1;
    memset(s->rb, 0, sizeof s->rb);
    for (unsigned int i = 0; i < n; i++) {
        s->buf[i] = xmalloc(COL_BUF);
        s->rb[i].buffer_type = MYSQL_TYPE_STRING;
        s->rb[i].buffer = s->buf[i];
        s->rb[i].buffer_length = COL_BUF;
        s->rb[i].length = &s->len[i];
        s->rb[i].is_null = &s->is_null[i];
        s->rb[i].error = &s->err[i];
    }
    s->nfields = n;
    s->has_result = 1;
    return mysql_stmt_bind_result(s->st, s->rb) ? -2 : 0;
}

static void print_row(struct slot *s)
{
    putchar('[');
    for (unsigned int i = 0; i < s->nfields; i++) {
        if (i)
            putchar(',');
        if (s->is_null[i]) {
            printf("null");
        } else if (s->len[i] <= COL_BUF) {
            jbytes(s->buf[i], s->len[i]);
        } else {
            char *big = xmalloc(s->len[i]);
            unsigned long got = 0;
            MYSQL_BIND one;
            memset(&one, 0, sizeof one);
            one.buffer_type = MYSQL_TYPE_STRING;
            one.buffer = big;
            one.buffer_length = s->len[i];
            one.length = &got;
            if (mysql_stmt_fetch_column(s->st, &one, i, 0))
                printf("\"<fetch_column failed>\"");
            else
                jbytes(big, got);
            free(big);
        }
    }
    putchar(']');
}

/* Fetch up to max rows (0 = all); prints "rows":[...],"done":bool. Returns the fetch error or 0. */
static int print_rows(struct slot *s, unsigned long max)
{
    printf("\"rows\":[");
    unsigned long n = 0;
    int rc = 0;
    while (max == 0 || n < max) {
        rc = mysql_stmt_fetch(s->st);
        if (rc != 0 && rc != MYSQL_DATA_TRUNCATED)
            break;
        if (n++)
            putchar(',');
        print_row(s);
        rc = 0;
    }
    printf("],\"done\":%s", rc == MYSQL_NO_DATA ? "true" : "false");
    if (rc == 1) {
        printf(",\"error\":{");
        jerror_fields(mysql_stmt_errno(s->st), mysql_stmt_sqlstate(s->st), mysql_stmt_error(s->st));
        putchar('}');
    }
    return rc == 1;
}

struct pval {
    long long i;
    double d;
    my_bool is_null;
    unsigned long len;
};

static void cmd_execute(char **f, int nf)
{
    struct slot *s = get_slot(nf > 1 ? f[1] : NULL);
    if (!s || !s->st) {
        answer_plain_error("no such statement");
        return;
    }
    int np = nf - 2;
    if ((unsigned long)np != mysql_stmt_param_count(s->st)) {
        /* Connector/C reads param_count binds: refuse here, as cclient.c does. */
        printf("{\"ok\":false,\"errno\":0,\"sqlstate\":\"\",\"error\":\"%d parameters given, "
               "statement has %lu\"}\n",
               np, mysql_stmt_param_count(s->st));
        return;
    }
    MYSQL_BIND *pb = xmalloc(sizeof *pb * (size_t)(np ? np : 1));
    struct pval *pv = xmalloc(sizeof *pv * (size_t)(np ? np : 1));
    memset(pb, 0, sizeof *pb * (size_t)(np ? np : 1));
    memset(pv, 0, sizeof *pv * (size_t)(np ? np : 1));
    for (int i = 0; i < np; i++) {
        char *p = f[i + 2];
        char *v = p + 2;
        if (strlen(p) < 2 || p[1] != ':') {
            answer_plain_error("bad parameter");
            free(pb);
            free(pv);
            return;
        }
        switch (p[0]) {
        case 'i':
        case 'u':
            pv[i].i = p[0] == 'u' ? (long long)strtoull(v, NULL, 10) : strtoll(v, NULL, 10);
            pb[i].buffer_type = MYSQL_TYPE_LONGLONG;
            pb[i].buffer = &pv[i].i;
            pb[i].is_unsigned = p[0] == 'u';
            break;
        case 'd':
            pv[i].d = strtod(v, NULL);
            pb[i].buffer_type = MYSQL_TYPE_DOUBLE;
            pb[i].buffer = &pv[i].d;
            break;
        case 's':
            pv[i].len = (unsigned long)strlen(v);
            pb[i].buffer_type = MYSQL_TYPE_STRING;
            pb[i].buffer = v;
            pb[i].buffer_length = pv[i].len;
            pb[i].length = &pv[i].len;
            break;
        case 'l': pb[i].buffer_type = MYSQL_TYPE_BLOB; break;
        default:
            pv[i].is_null = 1;
            pb[i].buffer_type = MYSQL_TYPE_NULL;
            pb[i].is_null = &pv[i].is_null;
            break;
        }
    }
    free_result_binds(s);
    if ((np && mysql_stmt_bind_param(s->st, pb)) || mysql_stmt_execute(s->st)) {
        answer_stmt_error(s->st);
        free(pb);
        free(pv);
        return;
    }
    free(pb);
    free(pv);
    printf("{\"ok\":true,\"results\":[");
    int k = 0, rc;
    do {
        if (k++)
            putchar(',');
        MYSQL_RES *meta = mysql_stmt_result_metadata(s->st);
        if (meta) {
            putchar('{');
            jfields(mysql_fetch_fields(meta), mysql_num_fields(meta));
            int br = bind_result(s, meta);
            mysql_free_result(meta);
            if (br != 0) {
                printf(",\"error\":\"bind_result failed\"}");
                break;
            }
            if (s->cursor) {
                printf(",\"cursor\":true}");
                break; /* rows come with "fetch" */
            }
            if (mysql_stmt_store_result(s->st)) {
                printf(",\"error\":{");
                jerror_fields(mysql_stmt_errno(s->st), mysql_stmt_sqlstate(s->st),
                              mysql_stmt_error(s->st));
                printf("}}");
                break;
            }
            putchar(',');
            print_rows(s, 0);
            putchar('}');
            mysql_stmt_free_result(s->st);
            s->has_result = 0;
        } else {
            jok(s->st->mysql, mysql_stmt_affected_rows(s->st), mysql_stmt_insert_id(s->st));
        }
        rc = mysql_stmt_next_result(s->st);
        if (rc > 0) {
            printf(",{\"error\":{");
            jerror_fields(mysql_stmt_errno(s->st), mysql_stmt_sqlstate(s->st),
                          mysql_stmt_error(s->st));
            printf("}}");
        }
    } while (rc == 0);
    printf("],\"status\":%u}\n", server_status(s->st->mysql));
}

static void cmd_fetch(char **f, int nf)
{
    struct slot *s = get_slot(nf > 1 ? f[1] : NULL);
    if (!s || !s->st || !s->has_result) {
        answer_plain_error("no open result");
        return;
    }
    unsigned long max = nf > 2 ? strtoul(f[2], NULL, 10) : 0;
    printf("{\"ok\":true,");
    print_rows(s, max);
    printf(",\"status\":%u}\n", server_status(s->st->mysql));
}

static void cmd_long(char **f, int nf)
{
    struct slot *s = get_slot(nf > 1 ? f[1] : NULL);
    if (!s || !s->st || nf < 5) {
        answer_plain_error("usage: long ID PARAM N C");
        return;
    }
    unsigned int param = (unsigned int)strtoul(f[2], NULL, 10);
    size_t total = strtoull(f[3], NULL, 10);
    static char chunk[65536];
    memset(chunk, f[4][0], sizeof chunk);
    for (size_t sent = 0; sent < total;) {
        size_t n = total - sent < sizeof chunk ? total - sent : sizeof chunk;
        if (mysql_stmt_send_long_data(s->st, param, chunk, (unsigned long)n)) {
            answer_stmt_error(s->st);
            return;
        }
        sent += n;
    }
    printf("{\"ok\":true}\n");
}

/* ---- input parsing ------------------------------------------------------------------------- */

/* Split a line at TABs and unescape each field in place; returns the number of fields. */
static int split(char *line, char **f, size_t *flen, int max)
{
    int n = 0;
    char *p = line;
    while (n < max) {
        f[n] = p;
        char *w = p;
        while (*p && *p != '\t') {
            if (*p == '\\' && p[1]) {
                p++;
                switch (*p) {
                case 't': *w++ = '\t'; break;
                case 'n': *w++ = '\n'; break;
                case 'r': *w++ = '\r'; break;
                case '0': *w++ = '\0'; break;
                default: *w++ = *p; break;
                }
                p++;
            } else {
                *w++ = *p++;
            }
        }
        int last = *p == '\0';
        flen[n] = (size_t)(w - f[n]);
        *w = '\0';
        n++;
        if (last)
            break;
        p++;
    }
    return n;
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1", *user = NULL, *password = "", *ca = NULL, *database = NULL;
    const char *charset = "utf8mb4";
    unsigned int port = 3306;
    int local_infile = 1, multi = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char **slot = NULL;
        if (strcmp(a, "--help") == 0) {
            printf("%s", usage);
            return 0;
        } else if (strcmp(a, "--host") == 0) {
            slot = &host;
        } else if (strcmp(a, "--user") == 0) {
            slot = &user;
        } else if (strcmp(a, "--password") == 0) {
            slot = &password;
        } else if (strcmp(a, "--ca") == 0) {
            slot = &ca;
        } else if (strcmp(a, "--database") == 0) {
            slot = &database;
        } else if (strcmp(a, "--charset") == 0) {
            slot = &charset;
        } else if (strcmp(a, "--no-local-infile") == 0) {
            local_infile = 0;
            continue;
        } else if (strcmp(a, "--no-multi") == 0) {
            multi = 0;
            continue;
        } else if (strcmp(a, "--port") == 0 && i + 1 < argc) {
            port = (unsigned int)strtoul(argv[++i], NULL, 10);
            continue;
        } else {
            fprintf(stderr, "sluice_cmdclient: unexpected argument '%s'\n%s", a, usage);
            return 2;
        }
        if (++i >= argc) {
            fprintf(stderr, "sluice_cmdclient: %s needs a value\n%s", a, usage);
            return 2;
        }
        *slot = argv[i];
    }
    if (!user) {
        fprintf(stderr, "%s", usage);
        return 2;
    }
    MYSQL *m = mysql_init(NULL);
    g_mysql = m;
    my_bool on = 1;
    unsigned int infile = (unsigned int)local_infile; /* Connector/C reads an unsigned int here */
    unsigned int connect_timeout = 10, rw_timeout = 120;
    mysql_optionsv(m, MYSQL_SET_CHARSET_NAME, charset);
    mysql_optionsv(m, MYSQL_OPT_CONNECT_TIMEOUT, &connect_timeout);
    mysql_optionsv(m, MYSQL_OPT_READ_TIMEOUT, &rw_timeout);
    mysql_optionsv(m, MYSQL_OPT_WRITE_TIMEOUT, &rw_timeout);
    mysql_optionsv(m, MYSQL_OPT_LOCAL_INFILE, &infile);
    if (ca) {
        mysql_optionsv(m, MYSQL_OPT_SSL_CA, ca);
        mysql_optionsv(m, MYSQL_OPT_SSL_ENFORCE, &on);
        mysql_optionsv(m, MYSQL_OPT_SSL_VERIFY_SERVER_CERT, &on);
    }
    unsigned long flags = CLIENT_MULTI_RESULTS | (multi ? CLIENT_MULTI_STATEMENTS : 0);
    if (!mysql_real_connect(m, host, user, password, database, port, NULL, flags)) {
        answer_error(m);
        fflush(stdout);
        mysql_close(m);
        mysql_library_end();
        return 1;
    }
    const char *cipher = mysql_get_ssl_cipher(m);
    printf("{\"ok\":true,\"thread_id\":%lu,\"server\":", mysql_thread_id(m));
    jstr(mysql_get_server_info(m));
    printf(",\"tls\":%s}\n", cipher ? "true" : "false");
    fflush(stdout);

    size_t cap = 0;
    char *line = NULL;
    ssize_t got;
    int quit = 0;
    while (!quit && (got = getline(&line, &cap, stdin)) >= 0) {
        while (got > 0 && (line[got - 1] == '\n' || line[got - 1] == '\r'))
            line[--got] = '\0';
        char *f[MAX_FIELDS];
        size_t fl[MAX_FIELDS];
        int nf = split(line, f, fl, MAX_FIELDS);
        const char *c = f[0];
        if (strcmp(c, "query") == 0 && nf >= 2) {
            cmd_query(m, f[1], fl[1]);
        } else if (strcmp(c, "prepare") == 0 && nf >= 3) {
            cmd_prepare(f[1], f[2], fl[2], nf > 3 ? f[3] : NULL);
        } else if (strcmp(c, "execute") == 0) {
            cmd_execute(f, nf);
        } else if (strcmp(c, "fetch") == 0) {
            cmd_fetch(f, nf);
        } else if (strcmp(c, "long") == 0) {
            cmd_long(f, nf);
        } else if (strcmp(c, "stmt_reset") == 0 || strcmp(c, "stmt_close") == 0) {
            struct slot *s = get_slot(nf > 1 ? f[1] : NULL);
            if (!s || !s->st) {
                answer_plain_error("no such statement");
            } else if (c[5] == 'r') {
                if (mysql_stmt_reset(s->st))
                    answer_stmt_error(s->st);
                else
                    printf("{\"ok\":true,\"status\":%u}\n", server_status(m));
                s->has_result = 0;
            } else {
                my_bool rc = mysql_stmt_close(s->st);
                s->st = NULL;
                free_result_binds(s);
                printf("{\"ok\":%s}\n", rc ? "false" : "true");
            }
        } else if (strcmp(c, "change_user") == 0 && nf >= 3) {
            const char *db = nf > 3 && fl[3] ? f[3] : NULL;
            if (mysql_change_user(m, f[1], f[2], db))
                answer_error(m);
            else
                printf("{\"ok\":true,\"thread_id\":%lu,\"status\":%u}\n", mysql_thread_id(m),
                       server_status(m));
        } else if (strcmp(c, "reset_connection") == 0) {
            if (mysql_reset_connection(m))
                answer_error(m);
            else
                printf("{\"ok\":true,\"status\":%u}\n", server_status(m));
        } else if (strcmp(c, "set_option") == 0 && nf >= 2) {
            enum enum_mysql_set_option o = strcmp(f[1], "on") == 0
                                               ? MYSQL_OPTION_MULTI_STATEMENTS_ON
                                               : MYSQL_OPTION_MULTI_STATEMENTS_OFF;
            if (mysql_set_server_option(m, o))
                answer_error(m);
            else
                printf("{\"ok\":true,\"status\":%u}\n", server_status(m));
        } else if (strcmp(c, "stat") == 0) {
            const char *st = mysql_stat(m);
            if (!st || mysql_errno(m)) {
                answer_error(m);
            } else {
                printf("{\"ok\":true,\"stat\":");
                jstr(st);
                printf("}\n");
            }
        } else if (strcmp(c, "ping") == 0) {
            if (mysql_ping(m))
                answer_error(m);
            else
                printf("{\"ok\":true,\"status\":%u}\n", server_status(m));
        } else if (strcmp(c, "thread_id") == 0) {
            printf("{\"ok\":true,\"thread_id\":%lu}\n", mysql_thread_id(m));
        } else if (strcmp(c, "select_db") == 0 && nf >= 2) {
            if (mysql_select_db(m, f[1]))
                answer_error(m);
            else
                printf("{\"ok\":true,\"status\":%u}\n", server_status(m));
        } else if (strcmp(c, "kill") == 0 && nf >= 2) {
            if (mysql_kill(m, strtoul(f[1], NULL, 10)))
                answer_error(m);
            else
                printf("{\"ok\":true}\n");
        } else if (strcmp(c, "quit") == 0) {
            quit = 1;
            printf("{\"ok\":true}\n");
        } else if (strcmp(c, "exit") == 0) {
            printf("{\"ok\":true}\n");
            fflush(stdout);
            _exit(0); /* no COM_QUIT, no statement close: the socket just closes */
        } else {
            answer_plain_error("unknown command");
        }
        fflush(stdout);
    }
    free(line);
    for (int i = 0; i < MAX_STMTS; i++) {
        if (slots[i].st)
            mysql_stmt_close(slots[i].st);
        free_result_binds(&slots[i]);
    }
    mysql_close(m);
    mysql_library_end();
    return 0;
}
