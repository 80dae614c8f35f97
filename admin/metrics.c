#include "admin/metrics.h"

#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

void sl_metrics_init(struct sl_metrics *m)
{
    memset(m, 0, sizeof *m);
}

void sl_metrics_free(struct sl_metrics *m)
{
    sl_buf_free(&m->out);
}

static void put(struct sl_metrics *m, const char *s, size_t n)
{
    if (m->err == 0 && sl_buf_append(&m->out, s, n, SIZE_MAX) != 0)
        m->err = -1;
}

static void puts_(struct sl_metrics *m, const char *s)
{
    put(m, s, strlen(s));
}

/* Metric names: [a-zA-Z_:][a-zA-Z0-9_:]*; label names the same without ':'. */
static bool name_valid(const char *s, bool colon_ok)
{
    if (!s || !*s || (*s >= '0' && *s <= '9'))
        return false;
    for (; *s; s++) {
        char c = *s;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || (colon_ok && c == ':');
        if (!ok)
            return false;
    }
    return true;
}

/* HELP text escapes backslash and newline; label values also escape the double quote. */
static void put_escaped(struct sl_metrics *m, const char *s, bool quote)
{
    const char *run = s;
    for (; *s; s++) {
        const char *esc = NULL;
        if (*s == '\\')
            esc = "\\\\";
        else if (*s == '\n')
            esc = "\\n";
        else if (quote && *s == '"')
            esc = "\\\"";
        if (esc) {
            put(m, run, (size_t)(s - run));
            puts_(m, esc);
            run = s + 1;
        }
    }
    put(m, run, (size_t)(s - run));
}

void sl_metrics_family(struct sl_metrics *m, const char *name, enum sl_metric_type type,
                       const char *help)
{
    if (!name_valid(name, true)) {
        m->err = -1;
        return;
    }
    puts_(m, "# HELP ");
    puts_(m, name);
    puts_(m, " ");
    put_escaped(m, help, false);
    puts_(m, "\n# TYPE ");
    puts_(m, name);
    puts_(m, type == SL_METRIC_COUNTER ? " counter\n" : " gauge\n");
}

static void put_name_labels(struct sl_metrics *m, const char *name,
                            const struct sl_metric_label *labels, size_t nlabels)
{
    if (!name_valid(name, true)) {
        m->err = -1;
        return;
    }
    puts_(m, name);
    for (size_t i = 0; i < nlabels; i++) {
        /* Names starting with "__" are reserved for Prometheus itself. */
        if (!name_valid(labels[i].name, false) || strncmp(labels[i].name, "__", 2) == 0) {
            m->err = -1;
            return;
        }
        puts_(m, i == 0 ? "{" : ",");
        puts_(m, labels[i].name);
        puts_(m, "=\"");
        put_escaped(m, labels[i].value, true);
        puts_(m, "\"");
    }
    if (nlabels > 0)
        puts_(m, "}");
}

void sl_metrics_u64(struct sl_metrics *m, const char *name, const struct sl_metric_label *labels,
                    size_t nlabels, uint64_t value)
{
    char num[32];
    put_name_labels(m, name, labels, nlabels);
    snprintf(num, sizeof num, " %" PRIu64 "\n", value);
    puts_(m, num);
}

void sl_metrics_double(struct sl_metrics *m, const char *name, const struct sl_metric_label *labels,
                       size_t nlabels, double value)
{
    char num[40];
    put_name_labels(m, name, labels, nlabels);
    if (isnan(value))
        snprintf(num, sizeof num, " NaN\n");
    else if (isinf(value))
        snprintf(num, sizeof num, value > 0 ? " +Inf\n" : " -Inf\n");
    else
        snprintf(num, sizeof num, " %.17g\n", value); /* round-trips every double */
    puts_(m, num);
}

void sl_metrics_single(struct sl_metrics *m, const char *name, enum sl_metric_type type,
                       const char *help, uint64_t value)
{
    sl_metrics_family(m, name, type, help);
    sl_metrics_u64(m, name, NULL, 0, value);
}

int sl_metrics_finish(const struct sl_metrics *m)
{
    return m->err;
}
