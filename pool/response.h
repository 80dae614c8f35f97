/* Response tracker: follows the packets of one backend response to find where it ends and what
 * state the backend is left in, without decoding result sets. Pure; fed one logical packet at a
 * time by the relay, which forwards the bytes unchanged.
 *
 * The connection never negotiates CLIENT_DEPRECATE_EOF, so result sets end with EOF packets. Status
 * flags come from the terminal OK / EOF packets. */
#ifndef SL_POOL_RESPONSE_H
#define SL_POOL_RESPONSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What shape of answer the command that was sent expects. */
enum sl_resp_kind {
    SL_RESP_QUERY,   /* COM_QUERY, COM_STMT_EXECUTE: OK | ERR | LOCAL INFILE | result set(s) */
    SL_RESP_PREPARE, /* COM_STMT_PREPARE: prepare-OK + param defs + EOF + column defs + EOF | ERR */
    SL_RESP_FETCH,   /* COM_STMT_FETCH: rows + EOF | ERR */
    SL_RESP_FIELD_LIST, /* COM_FIELD_LIST: column defs + EOF | ERR */
    SL_RESP_OK_ERR, /* COM_PING, COM_INIT_DB, COM_RESET_CONNECTION, COM_STMT_RESET, ...: OK | ERR */
    SL_RESP_EOF_ERR,    /* COM_SET_OPTION: EOF | ERR */
    SL_RESP_ONE_PACKET, /* COM_STATISTICS: exactly one packet of any content */
};

enum sl_resp_result {
    SL_RESP_MORE = 0,  /* response continues: relay and feed the next packet */
    SL_RESP_DONE,      /* this packet ended the response */
    SL_RESP_NEED_FULL, /* call again with the whole payload (avail == len) */
    SL_RESP_INFILE,    /* backend asked for a LOCAL INFILE: the client now sends data packets ending
                        * with an empty one; then call sl_resp_infile_sent() and keep feeding */
    SL_RESP_BAD,       /* protocol violation: the backend must be closed */
};

struct sl_resp_tracker {
    enum sl_resp_kind kind;
    uint32_t caps;      /* negotiated on the backend connection */
    int state;          /* private */
    uint64_t remaining; /* private: column / param definitions left in this block */
    uint64_t columns;   /* private: prepare: column definitions after the params */
    /* Results, valid once SL_RESP_DONE was returned (and updated as packets pass): */
    uint16_t status;   /* last status flags seen (kept from before when none was seen) */
    uint16_t warnings; /* from the last OK/EOF */
    bool error;        /* the response (or its last result) was an ERR */
    uint16_t error_code;
    bool saw_state_change; /* any OK in the response had SESSION_STATE_CHANGED */
    uint32_t stmt_id;      /* SL_RESP_PREPARE: statement id from the prepare-OK */
    bool last_ok;          /* the packet just fed was an OK packet (not a prepare-OK) */
    /* Each OK that carries a session-state block is reported to this callback (may be NULL) with
     * the parsed OK, so the caller can update its tracked session state. */
    void (*on_ok)(void *arg, const uint8_t *payload, size_t len);
    void *on_ok_arg;
};

/* Start tracking the response to a command. prev_status seeds .status (ERR carries none). */
void sl_resp_begin(struct sl_resp_tracker *t, enum sl_resp_kind kind, uint32_t caps,
                   uint16_t prev_status);

/* Feed the first chunk of one logical packet: payload holds `avail` bytes of a payload `len` bytes
 * long (avail >= 1 unless len == 0; avail <= len). Continuation chunks of a packet of 16 MiB or
 * more are not fed. When the tracker must see the whole payload (possible terminal packets: OK,
 * EOF, ERR), it returns SL_RESP_NEED_FULL if avail < len; such packets are small in practice. */
enum sl_resp_result sl_resp_feed(struct sl_resp_tracker *t, const uint8_t *payload, size_t avail,
                                 size_t len);

/* The client finished sending LOCAL INFILE data (empty packet relayed); the backend answers next.
 */
void sl_resp_infile_sent(struct sl_resp_tracker *t);

#endif
