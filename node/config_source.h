/* Where the node's configuration comes from. Today a JSON file (re-read on SIGHUP); the Raft store
 * will be another implementation of the same interface, publishing a snapshot each time a change is
 * committed. The data path (pool/) only ever sees struct sl_config snapshots through
 * sl_worker_start / sl_worker_reload, so swapping the source touches node/ alone. */
#ifndef SL_NODE_CONFIG_SOURCE_H
#define SL_NODE_CONFIG_SOURCE_H

#include <stddef.h>

#include "base/config.h"

struct sl_config_source {
    const char *description; /* for logs, e.g. "file /etc/sluice.json" */
    /* Produce a fresh, validated snapshot (caller owns it) or fail with a reason. */
    int (*load)(struct sl_config_source *src, struct sl_config **out, char *err, size_t errlen);
    void *impl;
};

/* A source that reads `path` on every load. */
void sl_config_source_file(struct sl_config_source *src, const char *path);

#endif
