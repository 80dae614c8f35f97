/* HTTP/1.1 for the admin API: an incremental request parser over http_parser and a response
 * builder. Both are pure: bytes in, a request out; a response description in, bytes out.
 *
 * The parser stops right behind each complete request, so pipelined requests are handed out one at
 * a time and the caller keeps the rest of its buffer. Limits are checked while parsing: the request
 * line and headers together (431), the body (413, checked against Content-Length as soon as the
 * headers are in, and while a chunked body arrives). Everything else http_parser refuses is a 400.
 */
#ifndef SL_ADMIN_HTTP_H
#define SL_ADMIN_HTTP_H

#include <http_parser.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <jansson.h>

#include "base/buf.h"

#define SL_HTTP_MAX_BODY_DEFAULT   (1024u * 1024u)
#define SL_HTTP_MAX_HEADER_DEFAULT (16u * 1024u)

/* A parsed request. Strings are NUL-terminated and owned by the request; absent headers are NULL.
 * Only the headers the admin API uses are kept; Connection (and the HTTP version) end up in
 * keep_alive, X-Sluice-Forwarded in forwarded, X-Sluice-Origin in origin. */
struct sl_http_request {
    const char *method; /* "GET", "PUT", ... (a static string) */
    char *path;         /* origin-form path as sent, still percent-encoded; starts with '/' */
    char *query;        /* the part after '?', NULL when there is none */
    char *authorization, *content_type, *if_match;
    bool forwarded; /* "X-Sluice-Forwarded: 1": sent by a follower forwarding a write */
    char *origin;   /* "X-Sluice-Origin": the node a forwarded write first reached (its node id) */
    bool has_content_length;
    uint64_t content_length;
    bool keep_alive;
    uint8_t *body; /* NULL when empty; otherwise NUL-terminated behind body_len bytes */
    size_t body_len;
};

void sl_http_request_free(struct sl_http_request *r);

enum sl_http_result { SL_HTTP_NEED_MORE, SL_HTTP_COMPLETE, SL_HTTP_ERROR };

struct sl_http_parser {
    http_parser p;
    size_t max_header, max_body;
    size_t head_bytes; /* request target + header names and values + 4 per header */
    struct sl_buf url, field, value, body;
    bool in_value;              /* the last header callback was a value */
    bool complete;              /* on_message_complete ran during this execute */
    bool expect_continue;       /* "Expect: 100-continue" was sent */
    bool send_continue;         /* the caller should answer "100 Continue" now (it clears this) */
    int status;                 /* after SL_HTTP_ERROR: the status to answer with */
    const char *detail;         /* after SL_HTTP_ERROR: why (a static string) */
    struct sl_http_request req; /* being filled */
};

/* Limits of 0 take the defaults above. */
void sl_http_parser_init(struct sl_http_parser *hp, size_t max_header, size_t max_body);
void sl_http_parser_free(struct sl_http_parser *hp);

/* Feed len bytes. *used is set to the bytes parsed, which on SL_HTTP_COMPLETE ends right behind the
 * request: the rest belongs to the next one. On SL_HTTP_COMPLETE the request moves to *out (the
 * caller frees it) and the parser is ready for the next request. After SL_HTTP_ERROR the parser
 * stays failed (hp->status, hp->detail); the connection cannot be resynchronised and must close. */
enum sl_http_result sl_http_parse(struct sl_http_parser *hp, const uint8_t *data, size_t len,
                                  size_t *used, struct sl_http_request *out);

/* A response. Header values must not contain CR or LF (sl_http_response_build refuses them). */
struct sl_http_response {
    int status;
    const char *content_type; /* NULL: none */
    const void *body;
    size_t body_len;
    const char *etag;             /* unquoted entity tag; sent quoted. NULL: none */
    unsigned retry_after;         /* seconds; 0: none */
    const char *allow;            /* NULL: none */
    const char *www_authenticate; /* NULL: none */
    bool close;                   /* "Connection: close" */
    time_t date;                  /* 0: no Date header */
};

/* The reason phrase of a status ("Not Found"); "Unknown" for codes we never send. */
const char *sl_http_reason(int status);

/* Append the whole response (head and body) to out. Returns 0, or -1 when a header value holds CR
 * or LF or memory ran out (out is then unchanged). 1xx, 204 and 304 carry no body and no
 * Content-Length. */
int sl_http_response_build(struct sl_buf *out, const struct sl_http_response *r);

#define SL_HTTP_PROBLEM_TYPE "application/problem+json"

/* An RFC 9457 problem document: type (NULL: "about:blank"), title (NULL: the reason phrase),
 * status, and detail (NULL: omitted). Callers may add extension members before sending it. Returns
 * NULL only when memory ran out. */
json_t *sl_http_problem(int status, const char *type, const char *title, const char *detail);

#endif
