/* Response tracker: a small state machine over the first byte (and, for terminal packets, the whole
 * payload) of each packet of one backend response. See response.h for the contract and
 * /work/shared/notes/mysql-protocol.md section 1.7-1.10 for the shapes. */
#include "pool/response.h"

#include "pool/proto.h"

enum {
    ST_FIRST,         /* first packet of a result: OK | ERR | LOCAL INFILE | column count */
    ST_INFILE_WAIT,   /* client is sending the file; nothing from the backend is expected */
    ST_INFILE_ANSWER, /* OK | ERR answering the file data */
    ST_COLDEFS,       /* `remaining` column definitions */
    ST_COLDEFS_EOF,   /* EOF closing the column definitions */
    ST_ROWS,          /* rows until EOF | ERR */
    ST_PREP_FIRST,    /* prepare-OK | ERR */
    ST_PREP_PARAMS,   /* `remaining` parameter definitions */
    ST_PREP_PARAMS_EOF,
    ST_PREP_COLS, /* `remaining` column definitions */
    ST_PREP_COLS_EOF,
    ST_FIELDS, /* COM_FIELD_LIST: column definitions until EOF | ERR */
    ST_OK_ERR,
    ST_EOF_ERR,
    ST_ONE,
    ST_DONE,   /* response complete: any further packet is a violation */
    ST_BROKEN, /* the tracker was driven out of order */
};

#define PREPARE_OK_LEN 12
#define PROGRESS_CODE  0xFFFF

void sl_resp_begin(struct sl_resp_tracker *t, enum sl_resp_kind kind, uint32_t caps,
                   uint16_t prev_status)
{
    /* on_ok / on_ok_arg belong to the caller and survive across commands. */
    t->kind = kind;
    t->caps = caps;
    t->remaining = 0;
    t->columns = 0;
    t->status = prev_status;
    t->warnings = 0;
    t->error = false;
    t->error_code = 0;
    t->saw_state_change = false;
    t->stmt_id = 0;
    switch (kind) {
    case SL_RESP_QUERY: t->state = ST_FIRST; break;
    case SL_RESP_PREPARE: t->state = ST_PREP_FIRST; break;
    case SL_RESP_FETCH: t->state = ST_ROWS; break;
    case SL_RESP_FIELD_LIST: t->state = ST_FIELDS; break;
    case SL_RESP_OK_ERR: t->state = ST_OK_ERR; break;
    case SL_RESP_EOF_ERR: t->state = ST_EOF_ERR; break;
    case SL_RESP_ONE_PACKET: t->state = ST_ONE; break;
    default: t->state = ST_BROKEN; break;
    }
}

void sl_resp_infile_sent(struct sl_resp_tracker *t)
{
    /* Called without a pending request, the relay and the tracker disagree about the stream. */
    t->state = t->state == ST_INFILE_WAIT ? ST_INFILE_ANSWER : ST_BROKEN;
}

static enum sl_resp_result fail(struct sl_resp_tracker *t)
{
    t->state = ST_BROKEN;
    return SL_RESP_BAD;
}

static enum sl_resp_result done(struct sl_resp_tracker *t)
{
    t->state = ST_DONE;
    return SL_RESP_DONE;
}

static void note_status(struct sl_resp_tracker *t, uint16_t status, uint16_t warnings)
{
    t->status = status;
    t->warnings = warnings;
    if (status & SL_STATUS_SESSION_STATE_CHANGED)
        t->saw_state_change = true;
}

/* A possible terminal packet: OK, EOF or ERR. Callers have checked avail == len. */
static enum sl_resp_result on_err(struct sl_resp_tracker *t, const uint8_t *p, size_t len)
{
    struct sl_err err;

    /* MariaDB progress reports are ERR-shaped with code 0xFFFF and do not end anything. */
    if (len >= 3 && sl_get_u16(p + 1) == PROGRESS_CODE)
        return SL_RESP_MORE;
    if (sl_err_parse(p, len, &err) < 0)
        return fail(t);
    t->error = true;
    t->error_code = err.code;
    /* The ERR ends the whole response, so a MORE_RESULTS left over from an earlier result of it
     * no longer holds; the other flags stay as last seen. */
    t->status &= (uint16_t)~SL_STATUS_MORE_RESULTS;
    return done(t);
}

static enum sl_resp_result on_ok(struct sl_resp_tracker *t, const uint8_t *p, size_t len)
{
    struct sl_ok ok;

    if (sl_ok_parse(p, len, t->caps, &ok) < 0)
        return fail(t);
    t->last_ok = true;
    note_status(t, ok.status, ok.warnings);
    if ((ok.status & SL_STATUS_SESSION_STATE_CHANGED) && t->on_ok)
        t->on_ok(t->on_ok_arg, p, len);
    if (t->kind == SL_RESP_QUERY && (ok.status & SL_STATUS_MORE_RESULTS)) {
        t->state = ST_FIRST;
        return SL_RESP_MORE;
    }
    return done(t);
}

static enum sl_resp_result on_eof(struct sl_resp_tracker *t, const uint8_t *p, size_t len,
                                  uint16_t *status)
{
    uint16_t warnings;

    if (sl_eof_parse(p, len, &warnings, status) < 0)
        return fail(t);
    note_status(t, *status, warnings);
    return SL_RESP_MORE;
}

/* Column count packet: a lenenc integer >= 1 (MariaDB may append a metadata-follows byte). */
static enum sl_resp_result on_column_count(struct sl_resp_tracker *t, const uint8_t *p,
                                           size_t avail, size_t len)
{
    const uint8_t *q = p;
    uint64_t n;

    if (sl_lenenc_get(&q, p + avail, &n) < 0) {
        /* 0xFB/0xFF were handled by the caller, so this is truncation: of the buffered part only
         * (then the rest is needed, an exception to "terminal packets only") or of the packet. */
        return avail < len ? SL_RESP_NEED_FULL : fail(t);
    }
    if (n == 0)
        return fail(t);
    t->remaining = n;
    t->state = ST_COLDEFS;
    return SL_RESP_MORE;
}

static enum sl_resp_result on_prepare_ok(struct sl_resp_tracker *t, const uint8_t *p, size_t len)
{
    uint16_t params;

    if (len < PREPARE_OK_LEN)
        return fail(t);
    t->stmt_id = sl_get_u32(p + 1);
    t->columns = sl_get_u16(p + 5);
    params = sl_get_u16(p + 7);
    t->warnings = sl_get_u16(p + 10);
    if (params > 0) {
        t->remaining = params;
        t->state = ST_PREP_PARAMS;
    } else if (t->columns > 0) {
        t->remaining = t->columns;
        t->state = ST_PREP_COLS;
    } else {
        return done(t);
    }
    return SL_RESP_MORE;
}

/* One definition of a counted block; an EOF here means the count was wrong. */
static enum sl_resp_result on_definition(struct sl_resp_tracker *t, bool eof, int next_state)
{
    if (eof)
        return fail(t);
    if (--t->remaining == 0)
        t->state = next_state;
    return SL_RESP_MORE;
}

enum sl_resp_result sl_resp_feed(struct sl_resp_tracker *t, const uint8_t *payload, size_t avail,
                                 size_t len)
{
    uint8_t first;
    bool eof;
    uint16_t status = 0;
    enum sl_resp_result r;

    t->last_ok = false;
    if (avail > len || (avail == 0 && len > 0) || t->state == ST_DONE || t->state == ST_BROKEN ||
        t->state == ST_INFILE_WAIT)
        return fail(t);
    if (t->state == ST_ONE) {
        /* COM_STATISTICS: one packet of text, possibly empty; an ERR is still recorded. */
        if (len >= 3 && payload[0] == 0xFF) {
            if (avail < len)
                return SL_RESP_NEED_FULL;
            t->error = true;
            t->error_code = sl_get_u16(payload + 1);
        }
        return done(t);
    }
    /* Empty packets only occur inside LOCAL INFILE data, which is never fed here. */
    if (len == 0)
        return fail(t);

    first = payload[0];
    eof = first == 0xFE && len < 9;
    /* Decide whether the whole payload is needed before looking any further: OK and ERR anywhere
     * they may end the response, and any EOF. */
    if ((first == 0xFF || eof ||
         (first == 0x00 && (t->state == ST_FIRST || t->state == ST_INFILE_ANSWER ||
                            t->state == ST_PREP_FIRST || t->state == ST_OK_ERR))) &&
        avail < len)
        return SL_RESP_NEED_FULL;
    /* No column definition, row or count starts with 0xFF: it is an ERR (or progress) anywhere. */
    if (first == 0xFF)
        return on_err(t, payload, len);

    switch (t->state) {
    case ST_FIRST:
        if (first == 0x00)
            return on_ok(t, payload, len);
        if (first == 0xFB) {
            t->state = ST_INFILE_WAIT;
            return SL_RESP_INFILE;
        }
        if (eof)
            return fail(t);
        return on_column_count(t, payload, avail, len);
    case ST_INFILE_ANSWER:
    case ST_OK_ERR: return first == 0x00 ? on_ok(t, payload, len) : fail(t);
    case ST_COLDEFS: return on_definition(t, eof, ST_COLDEFS_EOF);
    case ST_COLDEFS_EOF:
        if (!eof)
            return fail(t);
        r = on_eof(t, payload, len, &status);
        if (r != SL_RESP_MORE)
            return r;
        /* COM_STMT_EXECUTE with a cursor: rows come later through COM_STMT_FETCH. */
        if (status & SL_STATUS_CURSOR_EXISTS)
            return done(t);
        t->state = ST_ROWS;
        return SL_RESP_MORE;
    case ST_ROWS:
        /* A row may start with 0xFE (8-byte lenenc) but is then at least 9 bytes long. */
        if (!eof)
            return SL_RESP_MORE;
        r = on_eof(t, payload, len, &status);
        if (r != SL_RESP_MORE)
            return r;
        if (t->kind == SL_RESP_QUERY && (status & SL_STATUS_MORE_RESULTS)) {
            t->state = ST_FIRST;
            return SL_RESP_MORE;
        }
        return done(t);
    case ST_PREP_FIRST: return first == 0x00 ? on_prepare_ok(t, payload, len) : fail(t);
    case ST_PREP_PARAMS: return on_definition(t, eof, ST_PREP_PARAMS_EOF);
    case ST_PREP_PARAMS_EOF:
        if (!eof)
            return fail(t);
        r = on_eof(t, payload, len, &status);
        if (r != SL_RESP_MORE)
            return r;
        if (t->columns == 0)
            return done(t);
        t->remaining = t->columns;
        t->state = ST_PREP_COLS;
        return SL_RESP_MORE;
    case ST_PREP_COLS: return on_definition(t, eof, ST_PREP_COLS_EOF);
    case ST_PREP_COLS_EOF:
    case ST_EOF_ERR:
        if (!eof)
            return fail(t);
        r = on_eof(t, payload, len, &status);
        return r == SL_RESP_MORE ? done(t) : r;
    case ST_FIELDS:
        if (!eof)
            return SL_RESP_MORE;
        r = on_eof(t, payload, len, &status);
        return r == SL_RESP_MORE ? done(t) : r;
    default: return fail(t);
    }
}
