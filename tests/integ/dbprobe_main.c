/* sluice_dbprobe: runs one budget/dbprobe.h probe on a uv loop for tests/integ/test_dbprobe.py and
 * prints its result as one JSON line:
 *   {"ok":true,"max_connections":200,"killed":5,"remaining":0,"error":""}
 * Exit status: 0 when the probe was ok, 1 when it was not, 2 on usage errors or a refused request.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <uv.h>

#include "budget/dbprobe.h"

static const char usage[] =
    "Usage: sluice_dbprobe --host HOST --port PORT --user USER --password-file FILE\n"
    "                      [--user USER2 --password-file FILE2 ...] [--fence-ip IPV4]\n"
    "                      [--bind-ip IPV4] [--timeout-ms N]\n"
    "Without --fence-ip it reads @@max_connections (first user); with it, it kills every\n"
    "connection of the given users from that address and checks that none is left.\n";

static int bad_usage(const char *why)
{
    fprintf(stderr, "sluice_dbprobe: %s\n%s", why, usage);
    return 2;
}

/* The whole file without trailing line breaks (files written by sluicelab end with "\n"). */
static int read_password(const char *path, char *out, size_t cap)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    size_t n = fread(out, 1, cap, f);
    int rc = ferror(f) || n == cap ? -1 : 0; /* n == cap: too long for the buffer */
    fclose(f);
    while (n && (out[n - 1] == '\n' || out[n - 1] == '\r'))
        n--;
    out[n < cap ? n : cap - 1] = '\0';
    return rc;
}

static void print_json_string(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c < 0x20)
            printf("\\u%04x", c);
        else
            putchar(c);
    }
    putchar('"');
}

static void on_done(const struct sl_dbprobe_result *r, void *arg)
{
    printf("{\"ok\":%s,\"max_connections\":%u,\"killed\":%u,\"remaining\":%u,\"error\":",
           r->ok ? "true" : "false", r->max_connections, r->killed, r->remaining);
    print_json_string(r->error);
    printf("}\n");
    *(int *)arg = r->ok ? 0 : 1;
}

int main(int argc, char **argv)
{
    static struct sl_dbprobe_request rq; /* about 18 KiB of credentials: not on the stack */
    rq.timeout_ms = 5000;
    int status = 2;
    for (int i = 1; i < argc; i++) {
        const char *opt = argv[i];
        if (!strcmp(opt, "--help")) {
            fputs(usage, stdout);
            return 0;
        }
        if (i + 1 >= argc)
            return bad_usage("missing value");
        const char *val = argv[++i];
        if (!strcmp(opt, "--host")) {
            snprintf(rq.host, sizeof rq.host, "%s", val);
        } else if (!strcmp(opt, "--port")) {
            rq.port = (uint16_t)strtoul(val, NULL, 10);
        } else if (!strcmp(opt, "--user")) {
            if (rq.n_creds == SL_DBPROBE_USERS_MAX)
                return bad_usage("too many users");
            snprintf(rq.creds[rq.n_creds++].user, sizeof rq.creds[0].user, "%s", val);
        } else if (!strcmp(opt, "--password-file")) {
            if (!rq.n_creds)
                return bad_usage("--password-file before --user");
            struct sl_dbprobe_cred *c = &rq.creds[rq.n_creds - 1];
            if (read_password(val, c->password, sizeof c->password) != 0)
                return bad_usage("cannot read the password file");
        } else if (!strcmp(opt, "--fence-ip")) {
            snprintf(rq.fence_ip, sizeof rq.fence_ip, "%s", val);
        } else if (!strcmp(opt, "--bind-ip")) {
            snprintf(rq.bind_ip, sizeof rq.bind_ip, "%s", val);
        } else if (!strcmp(opt, "--timeout-ms")) {
            rq.timeout_ms = (unsigned)strtoul(val, NULL, 10);
        } else {
            return bad_usage("unknown option");
        }
    }

    uv_loop_t loop;
    if (uv_loop_init(&loop) != 0)
        return 2;
    int rc = sl_dbprobe_run(&loop, &rq, on_done, &status);
    OPENSSL_cleanse(&rq, sizeof rq);
    if (rc != 0)
        fprintf(stderr, "sluice_dbprobe: request refused (invalid or out of memory)\n");
    else
        uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    return status;
}
