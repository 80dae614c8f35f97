#include "base/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

static enum sl_log_level log_level = SL_LOG_INFO;
static char log_node[64] = "-";

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void sl_log_set_level(enum sl_log_level level)
{
    log_level = level;
}

void sl_log_set_node(const char *node_id)
{
    snprintf(log_node, sizeof log_node, "%s", node_id);
}

int sl_log_parse_level(const char *name, enum sl_log_level *out)
{
    for (int i = 0; i < 4; i++) {
        if (strcmp(name, level_names[i]) == 0) {
            *out = (enum sl_log_level)i;
            return 0;
        }
    }
    return -1;
}

bool sl_log_enabled(enum sl_log_level level)
{
    return level >= log_level;
}

/* Escape the message so the line stays one logfmt record whatever the text holds. */
static size_t quote_into(char *dst, size_t cap, const char *src)
{
    size_t n = 0;
    for (; *src && n + 2 < cap; src++) {
        unsigned char c = (unsigned char)*src;
        if (c == '"' || c == '\\') {
            dst[n++] = '\\';
            dst[n++] = (char)c;
        } else if (c < 0x20) {
            dst[n++] = ' ';
        } else {
            dst[n++] = (char)c;
        }
    }
    dst[n] = '\0';
    return n;
}

static void log_emit(enum sl_log_level level, uint64_t conn_id, const char *fields, const char *fmt,
                     va_list ap)
{
    if (!sl_log_enabled(level))
        return;
    char msg[1024], quoted[2100], ts[40];
    vsnprintf(msg, sizeof msg, fmt, ap);
    quote_into(quoted, sizeof quoted, msg);

    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    gmtime_r(&tv.tv_sec, &tm);
    strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);

    /* One fprintf per line: stdio's lock keeps lines from different threads whole. */
    fprintf(stderr, "ts=%s.%03ldZ level=%s node=%s conn=%llu msg=\"%s\"%s%s\n", ts,
            (long)(tv.tv_usec / 1000), level_names[level], log_node, (unsigned long long)conn_id,
            quoted, fields && *fields ? " " : "", fields ? fields : "");
}

void sl_log(enum sl_log_level level, uint64_t conn_id, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_emit(level, conn_id, NULL, fmt, ap);
    va_end(ap);
}

void sl_logkv(enum sl_log_level level, uint64_t conn_id, const char *fields, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_emit(level, conn_id, fields, fmt, ap);
    va_end(ap);
}
