/* The configuration source of a cluster node: the data path's struct sl_config built from the
 * node's own file (node, tls, cluster) and the Raft store's applied state (proxies, their target
 * groups, targets and secrets).
 *
 * The store's resources are rendered into a document in the configuration-file format and parsed
 * with sl_config_parse_from(SL_CONFIG_STORE), so the data path gets exactly the validation a file
 * gets. Each proxy listens on this node's cluster.data_address at its listen_port. A proxy that
 * cannot be served here is left out with a note saying why, and comes back by itself once the
 * store is fixed:
 *   - no target registered yet;
 *   - an auth entry names a secret that is not in the store;
 *   - require_tls while this node's file has no "tls" block;
 *   - its listen_port is already taken by a proxy earlier in name order;
 *   - anything else the file parser refuses (the parser's message is quoted).
 * A proxy whose targets change is replaced by the data path on reload (new sessions use the new
 * targets; sessions already running finish on the old ones). A proxy lists every registered
 * target, its writer first: the committed writer (the store's "writers" resource, whose revision
 * is the writer epoch) or, without one, the first READ_WRITE target; so a writer decision changes
 * targets[0] only, which the data path applies in place (pool/worker.c, switch_writer). */
#ifndef SL_NODE_STORE_SOURCE_H
#define SL_NODE_STORE_SOURCE_H

#include <stddef.h>

#include "base/config.h"

struct sl_store;

struct sl_store_render {
    char *doc;     /* the data path's configuration (SL_CONFIG_STORE document), compact JSON */
    char *notes;   /* one line per proxy left out or held back, each ending in '\n'; "" if none */
    char *writers; /* one line per served proxy with a committed writer ("proxy p: writer is
                    * target t (host:port), epoch N, decided by n: reason\n"); "" if none */
};

/* Pure: render from file (a cluster node's file configuration) and dump (the store's state as
 * sl_store_dump returns it). Returns 0 with out filled (free it with sl_store_render_free), or -1
 * with a reason in err (a dump that is not the store's format, or no memory). */
int sl_store_render_config(const struct sl_config *file, const char *dump,
                           struct sl_store_render *out, char *err, size_t errlen);
void sl_store_render_free(struct sl_store_render *r);

/* The stateful part the node uses: remembers the last document and notes. */
struct sl_store_source {
    const struct sl_config *file; /* borrowed; must have a "cluster" block */
    struct sl_store *store;       /* borrowed */
    char *last_doc, *last_notes, *last_writers;
};

void sl_store_source_init(struct sl_store_source *src, const struct sl_config *file,
                          struct sl_store *store);
void sl_store_source_free(struct sl_store_source *src);
/* Forget the last document, so the next load returns a configuration even if nothing changed
 * (after the data path refused the previous one). */
void sl_store_source_forget(struct sl_store_source *src);

/* Render the store's applied state. Returns 0 with *out the new configuration (the caller owns
 * it), or 0 with *out NULL when the document is the same as at the previous successful call; -1
 * with a reason in err on failure. Notes are logged as warnings whenever they change; a committed
 * writer (with its epoch) is logged once when it appears or changes. */
int sl_store_source_load(struct sl_store_source *src, struct sl_config **out, char *err,
                         size_t errlen);

#endif
