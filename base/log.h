/* Structured logging: one line per event, logfmt, to stderr.
 *
 *   ts=2026-11-27T23:10:00.123Z level=info node=n1 conn=42 msg="client authenticated" user=app
 *
 * Every data-path line carries the connection id (0 = not about one connection). Values that could
 * hold a secret are never passed here: callers log user names and reasons, never passwords. */
#ifndef SL_BASE_LOG_H
#define SL_BASE_LOG_H

#include <stdbool.h>
#include <stdint.h>

#define SL_PRINTF(fmt_idx, arg_idx) __attribute__((format(printf, fmt_idx, arg_idx)))

enum sl_log_level { SL_LOG_DEBUG, SL_LOG_INFO, SL_LOG_WARN, SL_LOG_ERROR };

/* Process-wide settings; set once at start-up (and on reload), before worker threads run. */
void sl_log_set_level(enum sl_log_level level);
void sl_log_set_node(const char *node_id);
int sl_log_parse_level(const char *name, enum sl_log_level *out);
bool sl_log_enabled(enum sl_log_level level);

void sl_log(enum sl_log_level level, uint64_t conn_id, const char *fmt, ...) SL_PRINTF(3, 4);

/* Like sl_log but with a preformatted logfmt field list appended verbatim ("user=app db=x"). */
void sl_logkv(enum sl_log_level level, uint64_t conn_id, const char *fields, const char *fmt, ...)
    SL_PRINTF(4, 5);

#define sl_debug(id, ...)                                                                          \
    do {                                                                                           \
        if (sl_log_enabled(SL_LOG_DEBUG))                                                          \
            sl_log(SL_LOG_DEBUG, (id), __VA_ARGS__);                                               \
    } while (0)
#define sl_info(id, ...)  sl_log(SL_LOG_INFO, (id), __VA_ARGS__)
#define sl_warn(id, ...)  sl_log(SL_LOG_WARN, (id), __VA_ARGS__)
#define sl_error(id, ...) sl_log(SL_LOG_ERROR, (id), __VA_ARGS__)

#endif
