#include "pool/pinscan.h"

#include <stdbool.h>

static const char *const reason_names[SL_PIN_REASON_COUNT] = {
    "user_variable",   "set_variable",  "temp_table",   "table_lock",     "get_lock", "prepared",
    "large_statement", "found_rows",    "row_count",    "last_insert_id", "handler",  "xa",
    "cursor",          "unknown_state", "local_infile",
};

const char *sl_pin_reason_name(uint32_t bit)
{
    /* Exactly one known bit, so that a whole mask is never mistaken for one reason. */
    if (bit == 0 || (bit & (bit - 1)) != 0)
        return NULL;
    for (unsigned i = 0; i < SL_PIN_REASON_COUNT; i++) {
        if (bit == 1u << i)
            return reason_names[i];
    }
    return NULL;
}

/* Keywords the rules below look at; every other word is KW_OTHER. */
enum kw {
    KW_NONE, /* no word: start of statement, or a non-word token came in between */
    KW_OTHER,
    KW_BACKUP,
    KW_BEGIN,
    KW_CREATE,
    KW_DELETE,
    KW_EXPLAIN,
    KW_EXPORT,
    KW_FLUSH,
    KW_FOR,
    KW_FOUND_ROWS,
    KW_GET_LOCK,
    KW_HANDLER,
    KW_INSERT,
    KW_INTO,
    KW_LAST_INSERT_ID,
    KW_LOCK,
    KW_OR,
    KW_PREPARE,
    KW_NONDET_CALL, /* NOW(, RAND(, UUID(, ...: differs from one run to the next */
    KW_NONDET_WORD, /* CURRENT_TIMESTAMP and friends, which need no parentheses */
    KW_READ,
    KW_READ_VERB, /* SELECT, SHOW, DESC, DESCRIBE, HELP */
    KW_RELEASE,
    KW_REPLACE,
    KW_ROLLBACK,
    KW_ROW_COUNT,
    KW_SAVEPOINT,
    KW_SET,
    KW_SQL_CALC_FOUND_ROWS,
    KW_STAGE,
    KW_START,
    KW_TABLE,
    KW_TABLES,
    KW_TEMPORARY,
    KW_TO,
    KW_TRANSACTION,
    KW_UPDATE,
    KW_WITH,
    KW_WORK,
    KW_XA,
};

static const struct {
    const char *upper;
    unsigned char len;
    enum kw kw;
} keywords[] = {
    {"BACKUP", 6, KW_BACKUP},
    {"BEGIN", 5, KW_BEGIN},
    {"CONNECTION_ID", 13, KW_NONDET_CALL},
    {"CREATE", 6, KW_CREATE},
    {"CURDATE", 7, KW_NONDET_CALL},
    {"CURRENT_DATE", 12, KW_NONDET_WORD},
    {"CURRENT_TIME", 12, KW_NONDET_WORD},
    {"CURRENT_TIMESTAMP", 17, KW_NONDET_WORD},
    {"CURTIME", 7, KW_NONDET_CALL},
    {"DELETE", 6, KW_DELETE},
    {"DESC", 4, KW_READ_VERB},
    {"DESCRIBE", 8, KW_READ_VERB},
    {"EXPLAIN", 7, KW_EXPLAIN},
    {"EXPORT", 6, KW_EXPORT},
    {"FLUSH", 5, KW_FLUSH},
    {"FOR", 3, KW_FOR},
    {"FOUND_ROWS", 10, KW_FOUND_ROWS},
    {"GET_LOCK", 8, KW_GET_LOCK},
    {"HANDLER", 7, KW_HANDLER},
    {"HELP", 4, KW_READ_VERB},
    {"INSERT", 6, KW_INSERT},
    {"INTO", 4, KW_INTO},
    {"LASTVAL", 7, KW_NONDET_CALL},
    {"LAST_INSERT_ID", 14, KW_LAST_INSERT_ID},
    {"LOCALTIME", 9, KW_NONDET_WORD},
    {"LOCALTIMESTAMP", 14, KW_NONDET_WORD},
    {"LOCK", 4, KW_LOCK},
    {"NEXTVAL", 7, KW_NONDET_CALL},
    {"NOW", 3, KW_NONDET_CALL},
    {"OR", 2, KW_OR},
    {"PREPARE", 7, KW_PREPARE},
    {"RAND", 4, KW_NONDET_CALL},
    {"RANDOM_BYTES", 12, KW_NONDET_CALL},
    {"READ", 4, KW_READ},
    {"RELEASE", 7, KW_RELEASE},
    {"REPLACE", 7, KW_REPLACE},
    {"ROLLBACK", 8, KW_ROLLBACK},
    {"ROW_COUNT", 9, KW_ROW_COUNT},
    {"SAVEPOINT", 9, KW_SAVEPOINT},
    {"SELECT", 6, KW_READ_VERB},
    {"SET", 3, KW_SET},
    {"SETVAL", 6, KW_NONDET_CALL},
    {"SHOW", 4, KW_READ_VERB},
    {"SQL_CALC_FOUND_ROWS", 19, KW_SQL_CALC_FOUND_ROWS},
    {"STAGE", 5, KW_STAGE},
    {"START", 5, KW_START},
    {"SYSDATE", 7, KW_NONDET_CALL},
    {"SYS_GUID", 8, KW_NONDET_CALL},
    {"TABLE", 5, KW_TABLE},
    {"TABLES", 6, KW_TABLES},
    {"TEMPORARY", 9, KW_TEMPORARY},
    {"TO", 2, KW_TO},
    {"TRANSACTION", 11, KW_TRANSACTION},
    {"UNIX_TIMESTAMP", 14, KW_NONDET_CALL},
    {"UPDATE", 6, KW_UPDATE},
    {"UTC_DATE", 8, KW_NONDET_WORD},
    {"UTC_TIME", 8, KW_NONDET_WORD},
    {"UTC_TIMESTAMP", 13, KW_NONDET_WORD},
    {"UUID", 4, KW_NONDET_CALL},
    {"UUID_SHORT", 10, KW_NONDET_CALL},
    {"WITH", 4, KW_WITH},
    {"WORK", 4, KW_WORK},
    {"XA", 2, KW_XA},
};

/* ASCII case folding only: the locale must not change what matches. */
static char ascii_upper(char c)
{
    return c >= 'a' && c <= 'z' ? (char)(c - 'a' + 'A') : c;
}

static enum kw classify(const char *w, size_t len)
{
    for (size_t i = 0; i < sizeof keywords / sizeof keywords[0]; i++) {
        if (keywords[i].len != len)
            continue;
        size_t j = 0;
        while (j < len && ascii_upper(w[j]) == keywords[i].upper[j])
            j++;
        if (j == len)
            return keywords[i].kw;
    }
    return KW_OTHER;
}

enum tok {
    TOK_END,
    TOK_WORD,    /* keyword or unquoted identifier or number */
    TOK_USERVAR, /* @name (the name may also follow as a quoted token) */
    TOK_SYSVAR,  /* @@name */
    TOK_ASSIGN,  /* := */
    TOK_LPAREN,
    TOK_SEMI,
    TOK_OTHER, /* string literal, quoted identifier, any other punctuation */
};

/* How backslashes behave in string literals: on by default, off for both quote kinds under
 * NO_BACKSLASH_ESCAPES, off for "..." alone under ANSI_QUOTES (they are identifiers then). */
struct lexer {
    const char *p;
    const char *end;
    bool sq_escapes;
    bool dq_escapes;
    bool in_exec;      /* inside a MariaDB executable comment */
    bool sq_backslash; /* a backslash was seen inside '...' */
    bool dq_backslash; /* a backslash was seen inside "..." */
    const char *word;  /* TOK_WORD text */
    size_t word_len;
};

static bool is_word_byte(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '$' || c >= 0x80;
}

static bool is_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

static bool at(const struct lexer *lx, size_t off, char c)
{
    return (size_t)(lx->end - lx->p) > off && lx->p[off] == c;
}

static void skip_to_eol(struct lexer *lx)
{
    while (lx->p < lx->end && *lx->p != '\n')
        lx->p++;
}

/* Past the end of a block comment, or to the end of the text if it is unterminated. */
static void skip_block_comment(struct lexer *lx)
{
    while (lx->p < lx->end && !(at(lx, 0, '*') && at(lx, 1, '/')))
        lx->p++;
    lx->p = lx->p < lx->end ? lx->p + 2 : lx->end;
}

/* lx->p is on the opening quote. A doubled quote stands for itself; with escapes a backslash
 * takes the next byte along, whatever it is. */
static void skip_quoted(struct lexer *lx, bool escapes, bool *saw_backslash)
{
    char q = *lx->p++;
    while (lx->p < lx->end) {
        char c = *lx->p;
        if (c == '\\' && saw_backslash != NULL)
            *saw_backslash = true;
        if (c == '\\' && escapes) {
            lx->p += lx->end - lx->p >= 2 ? 2 : 1;
        } else if (c == q && at(lx, 1, q)) {
            lx->p += 2;
        } else {
            lx->p++;
            if (c == q)
                return;
        }
    }
}

static void skip_word(struct lexer *lx)
{
    while (lx->p < lx->end && is_word_byte((unsigned char)*lx->p))
        lx->p++;
}

static enum tok next_token(struct lexer *lx)
{
    while (lx->p < lx->end) {
        unsigned char c = (unsigned char)*lx->p;
        if (is_space(c)) {
            lx->p++;
        } else if (lx->in_exec && at(lx, 0, '*') && at(lx, 1, '/')) {
            lx->in_exec = false;
            lx->p += 2;
        } else if (c == '/' && at(lx, 1, '*')) {
            /* Executable comments (slash-star-bang and slash-star-M-bang, optionally followed by
             * a version number) are run by the server: their contents are code. A nested opener
             * just stays in that mode and the first closer ends it, which can only make more
             * text count as code. */
            size_t bang = 0;
            if (at(lx, 2, '!'))
                bang = 2;
            else if ((at(lx, 2, 'M') || at(lx, 2, 'm')) && at(lx, 3, '!'))
                bang = 3;
            if (bang != 0) {
                lx->p += bang + 1;
                while (lx->p < lx->end && *lx->p >= '0' && *lx->p <= '9')
                    lx->p++;
                lx->in_exec = true;
            } else {
                lx->p += 2;
                skip_block_comment(lx);
            }
        } else if (c == '#') {
            skip_to_eol(lx);
        } else if (c == '-' && at(lx, 1, '-') &&
                   (lx->end - lx->p == 2 || (unsigned char)lx->p[2] <= ' ')) {
            /* "--" starts a comment only before whitespace or a control byte: 1--1 is 1-(-1). */
            skip_to_eol(lx);
        } else if (c == '\'') {
            skip_quoted(lx, lx->sq_escapes, &lx->sq_backslash);
            return TOK_OTHER;
        } else if (c == '"') {
            skip_quoted(lx, lx->dq_escapes, &lx->dq_backslash);
            return TOK_OTHER;
        } else if (c == '`') {
            skip_quoted(lx, false, NULL);
            return TOK_OTHER;
        } else if (c == '@') {
            bool sys = at(lx, 1, '@');
            lx->p += sys ? 2 : 1;
            /* The name belongs to the variable so it is never read as a keyword. */
            skip_word(lx);
            return sys ? TOK_SYSVAR : TOK_USERVAR;
        } else if (c == ':' && at(lx, 1, '=')) {
            lx->p += 2;
            return TOK_ASSIGN;
        } else if (is_word_byte(c)) {
            lx->word = lx->p;
            skip_word(lx);
            lx->word_len = (size_t)(lx->p - lx->word);
            return TOK_WORD;
        } else {
            lx->p++;
            return c == '(' ? TOK_LPAREN : c == ';' ? TOK_SEMI : TOK_OTHER;
        }
    }
    return TOK_END;
}

/* Per-statement parser state. prev1/prev2 are the last two words when nothing but whitespace and
 * comments separates them from the current token (multi-word rules need adjacency). */
struct scanner {
    uint32_t reasons;
    enum sl_stmt_kind kind; /* of the first statement; OTHER once a second one starts */
    bool nondeterministic;
    unsigned statements; /* statements begun so far */
    unsigned words;      /* words of the current statement so far */
    enum kw first;       /* its first word */
    bool pending_nondet; /* a NOW-like name: non-deterministic if '(' comes next */
    bool stmt_start;
    bool stmt_set;
    bool stmt_flush;
    enum kw prev1;
    enum kw prev2;
    uint32_t pending_call; /* reason to report if '(' comes next */
};

static uint32_t call_reason(enum kw k)
{
    switch (k) {
    case KW_GET_LOCK: return SL_PIN_GET_LOCK;
    case KW_FOUND_ROWS: return SL_PIN_FOUND_ROWS;
    case KW_ROW_COUNT: return SL_PIN_ROW_COUNT;
    case KW_LAST_INSERT_ID: return SL_PIN_LAST_INSERT_ID;
    default: return 0;
    }
}

static uint32_t first_word_reason(enum kw k)
{
    switch (k) {
    case KW_PREPARE: return SL_PIN_PREPARED;
    case KW_HANDLER: return SL_PIN_HANDLER;
    case KW_XA: return SL_PIN_XA;
    default: return 0;
    }
}

static enum sl_stmt_kind first_word_kind(enum kw k)
{
    switch (k) {
    case KW_READ_VERB:
    case KW_EXPLAIN: return SL_STMT_READ;
    case KW_INSERT:
    case KW_UPDATE:
    case KW_DELETE:
    case KW_REPLACE:
    case KW_SAVEPOINT: return SL_STMT_DML;
    case KW_BEGIN:
    case KW_START: return SL_STMT_BEGIN;
    case KW_ROLLBACK: return SL_STMT_ROLLBACK;
    default: return SL_STMT_OTHER;
    }
}

/* The kind is settled by the first words: START must be START TRANSACTION (not START SLAVE),
 * BEGIN may only be followed by WORK (BEGIN NOT ATOMIC opens a compound statement), ROLLBACK TO is
 * a partial undo inside the transaction and any other word after ROLLBACK (AND CHAIN, RELEASE)
 * makes it more than a rollback. A second statement makes the whole text OTHER. */
static void stmt_kind_word(struct scanner *s, enum kw k)
{
    if (s->stmt_start) {
        s->kind = s->statements++ == 0 ? first_word_kind(k) : SL_STMT_OTHER;
        s->first = k;
        s->words = 1;
        return;
    }
    unsigned n = ++s->words;
    if (s->statements != 1)
        return;
    switch (s->kind) {
    case SL_STMT_BEGIN:
        if (s->first == KW_START ? n == 2 && k != KW_TRANSACTION : n > 2 || k != KW_WORK)
            s->kind = SL_STMT_OTHER;
        break;
    case SL_STMT_ROLLBACK:
        if (k == KW_TO)
            s->kind = SL_STMT_DML;
        else if (k != KW_WORK)
            s->kind = SL_STMT_OTHER;
        break;
    default: break;
    }
}

static void on_word(struct scanner *s, enum kw k)
{
    enum kw p1 = s->prev1, p2 = s->prev2;

    if (s->stmt_start)
        s->reasons |= first_word_reason(k);
    stmt_kind_word(s, k);
    if (k == KW_NONDET_WORD)
        s->nondeterministic = true;
    switch (k) {
    case KW_SET:
        /* Conservative: any @var later in a SET statement counts, so `SET a = 1, @x = 2` and
         * SET inside compound statements are caught; a mere read there is pinned too. */
        s->stmt_set = true;
        break;
    case KW_FLUSH: s->stmt_flush = true; break;
    case KW_SQL_CALC_FOUND_ROWS: s->reasons |= SL_PIN_FOUND_ROWS; break;
    case KW_TABLE:
    case KW_TABLES:
        if (p1 == KW_LOCK)
            s->reasons |= SL_PIN_TABLE_LOCK;
        break;
    case KW_TEMPORARY:
        /* CREATE [OR REPLACE] TEMPORARY {TABLE|SEQUENCE}: both are session-local objects. */
        if (p1 == KW_CREATE || (p1 == KW_REPLACE && p2 == KW_OR))
            s->reasons |= SL_PIN_TEMP_TABLE;
        break;
    case KW_LOCK:
        /* FLUSH TABLE(S) [t, ...] WITH READ LOCK; BACKUP LOCK t (MariaDB backup lock, held by
         * the session and invisible to session tracking). */
        if ((s->stmt_flush && p1 == KW_READ && p2 == KW_WITH) || p1 == KW_BACKUP)
            s->reasons |= SL_PIN_TABLE_LOCK;
        break;
    case KW_EXPORT:
        /* FLUSH TABLES t FOR EXPORT holds its table locks until UNLOCK TABLES. */
        if (s->stmt_flush && p1 == KW_FOR)
            s->reasons |= SL_PIN_TABLE_LOCK;
        break;
    case KW_STAGE:
        /* BACKUP STAGE START: per-session backup locks, not reported by tracking either. */
        if (p1 == KW_BACKUP)
            s->reasons |= SL_PIN_TABLE_LOCK;
        break;
    default: break;
    }
    s->pending_call = call_reason(k);
    s->pending_nondet = k == KW_NONDET_CALL;
    s->prev2 = p1;
    s->prev1 = k;
}

static void on_token(struct scanner *s, enum tok t)
{
    switch (t) {
    case TOK_USERVAR:
        if (s->prev1 == KW_INTO || s->stmt_set)
            s->reasons |= SL_PIN_USER_VARIABLE;
        break;
    case TOK_ASSIGN: s->reasons |= SL_PIN_USER_VARIABLE; break;
    case TOK_LPAREN:
        s->reasons |= s->pending_call;
        s->nondeterministic |= s->pending_nondet;
        break;
    default: break;
    }
    if (s->stmt_start && t != TOK_SEMI) { /* a statement that starts with "(", a string, ... */
        s->statements++;
        s->kind = SL_STMT_OTHER;
    }
    if (t == TOK_SEMI) {
        s->stmt_set = false;
        s->stmt_flush = false;
    }
    s->stmt_start = t == TOK_SEMI;
    s->prev1 = s->prev2 = KW_NONE;
    s->pending_call = 0;
    s->pending_nondet = false;
}

static void scan_pass(const char *sql, size_t len, bool sq_escapes, bool dq_escapes,
                      bool *sq_backslash, bool *dq_backslash, struct sl_stmt_scan *out)
{
    struct lexer lx = {
        .p = sql, .end = sql + len, .sq_escapes = sq_escapes, .dq_escapes = dq_escapes};
    struct scanner s = {.stmt_start = true, .kind = SL_STMT_OTHER};
    enum tok t;
    while ((t = next_token(&lx)) != TOK_END) {
        if (t == TOK_WORD) {
            on_word(&s, classify(lx.word, lx.word_len));
            s.stmt_start = false;
        } else {
            on_token(&s, t);
        }
    }
    *sq_backslash = lx.sq_backslash;
    *dq_backslash = lx.dq_backslash;
    out->pins |= s.reasons;
    out->nondeterministic |= s.nondeterministic;
    /* Readings that disagree about what the text is make it OTHER: the safe answer. */
    if (out->kind != s.kind)
        out->kind = out->kind == SL_STMT_UNSCANNED ? s.kind : SL_STMT_OTHER;
}

/* The scanner does not know the session's sql_mode, and a backslash ends a string literal early
 * or not depending on it. Rather than guess, the text is scanned again under each other reading
 * that could differ and the results are joined: a spurious pin costs a little multiplexing, a
 * missed one loses session state. The extra passes only run when a quoted string held a
 * backslash, and each pass is linear. */
void sl_stmt_scan(const char *sql, size_t len, struct sl_stmt_scan *out)
{
    *out = (struct sl_stmt_scan){.kind = SL_STMT_UNSCANNED};
    if (sql == NULL) {
        out->kind = SL_STMT_OTHER;
        return;
    }
    bool sq_bs, dq_bs, ignored_sq, ignored_dq;
    scan_pass(sql, len, true, true, &sq_bs, &dq_bs, out);
    if (dq_bs) /* ANSI_QUOTES: "..." is an identifier, where backslash is plain */
        scan_pass(sql, len, true, false, &ignored_sq, &ignored_dq, out);
    if (sq_bs || dq_bs) /* NO_BACKSLASH_ESCAPES */
        scan_pass(sql, len, false, false, &ignored_sq, &ignored_dq, out);
}

uint32_t sl_pinscan(const char *sql, size_t len)
{
    struct sl_stmt_scan scan;
    sl_stmt_scan(sql, len, &scan);
    return scan.pins;
}
