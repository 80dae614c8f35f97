/* Prometheus text exposition format 0.0.4: a builder over a byte buffer. Pure.
 *
 *   # HELP sluice_queries_total Commands relayed to a database.
 *   # TYPE sluice_queries_total counter
 *   sluice_queries_total 42
 *
 * A family (HELP and TYPE) is started once, then its samples follow. Names are checked against the
 * format's grammar and label values are escaped; the first error sticks and sl_metrics_finish
 * reports it, so call sites need not check every line. */
#ifndef SL_ADMIN_METRICS_H
#define SL_ADMIN_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"

#define SL_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

enum sl_metric_type { SL_METRIC_COUNTER, SL_METRIC_GAUGE };

struct sl_metric_label {
    const char *name;
    const char *value; /* any UTF-8; escaped on output */
};

struct sl_metrics {
    struct sl_buf out;
    int err;
};

void sl_metrics_init(struct sl_metrics *m);
void sl_metrics_free(struct sl_metrics *m);

/* "# HELP name help" and "# TYPE name type". */
void sl_metrics_family(struct sl_metrics *m, const char *name, enum sl_metric_type type,
                       const char *help);
/* One sample line; nlabels may be 0. Integers are written exactly (no float rounding). */
void sl_metrics_u64(struct sl_metrics *m, const char *name, const struct sl_metric_label *labels,
                    size_t nlabels, uint64_t value);
void sl_metrics_double(struct sl_metrics *m, const char *name, const struct sl_metric_label *labels,
                       size_t nlabels, double value);
/* A family with one unlabelled sample. */
void sl_metrics_single(struct sl_metrics *m, const char *name, enum sl_metric_type type,
                       const char *help, uint64_t value);

/* 0 when every call succeeded; -1 after an invalid name or a failed allocation. */
int sl_metrics_finish(const struct sl_metrics *m);

#endif
