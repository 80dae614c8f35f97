/* The statements of one open transaction and a CRC32 of each one's response, kept so that the
 * transaction can run again on another connection when its own is lost (transaction replay,
 * docs/failover.md). Pure bookkeeping over one growing buffer; the session that owns it drives it.
 *
 * Entry layout: u32 length, the command packet exactly as the client sent it, u32 CRC32 of every
 * byte of the server's response (headers included). */
#ifndef SL_POOL_REPLAY_H
#define SL_POOL_REPLAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sl_replay {
    uint8_t *buf;
    size_t len;
    size_t cap;
    size_t open_at;     /* start of the entry whose response is still coming; SIZE_MAX when none */
    size_t max;         /* transaction_replay_max_size */
    const char *broken; /* why this transaction cannot be replayed; NULL while it can */
};

void sl_replay_init(struct sl_replay *r, size_t max);
void sl_replay_free(struct sl_replay *r);
/* The transaction ended (or a new one starts): forget it, replayable again. */
void sl_replay_clear(struct sl_replay *r);
/* Record a command about to be sent. Past the size limit (or out of memory) the transaction is
 * marked broken instead. */
void sl_replay_add(struct sl_replay *r, const uint8_t *pkt, size_t len);
/* The response of the command added last has ended. */
void sl_replay_done(struct sl_replay *r, uint32_t crc);
/* The command added last never got a response and will be sent again: drop it. */
void sl_replay_drop_open(struct sl_replay *r);
/* This transaction cannot be replayed; why is a static string (for logs and the client). */
void sl_replay_break(struct sl_replay *r, const char *why);
/* Something recorded, nothing broken, no response outstanding. */
bool sl_replay_usable(const struct sl_replay *r);
/* The entry at *pos (start with 0): false past the last one. Advances *pos. */
bool sl_replay_next(const struct sl_replay *r, size_t *pos, const uint8_t **pkt, size_t *len,
                    uint32_t *crc);

#endif
