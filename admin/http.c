#include "admin/http.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/log.h"

/* Bytes counted per header line on top of its name and value (": " and CRLF), so that a flood of
 * empty headers also reaches the header limit. */
#define HEADER_LINE_OVERHEAD 4

static struct sl_http_parser *parser_of(http_parser *p)
{
    return p->data;
}

static int fail(struct sl_http_parser *hp, int status, const char *detail)
{
    if (hp->status == 0) {
        hp->status = status;
        hp->detail = detail;
    }
    return -1;
}

static int append(struct sl_http_parser *hp, struct sl_buf *b, const char *at, size_t n)
{
    /* memcpy into a still unallocated buffer is undefined even for 0 bytes. */
    if (n > 0 && sl_buf_append(b, at, n, SIZE_MAX) != 0)
        return fail(hp, 500, "out of memory");
    return 0;
}

static int count_head(struct sl_http_parser *hp, size_t n)
{
    hp->head_bytes += n;
    if (hp->head_bytes > hp->max_header)
        return fail(hp, 431, "request line and headers exceed the size limit");
    return 0;
}

static char *dup_bytes(const uint8_t *p, size_t n)
{
    char *s = malloc(n + 1);
    if (s) {
        if (n > 0)
            memcpy(s, p, n);
        s[n] = '\0';
    }
    return s;
}

static bool buf_is(const struct sl_buf *b, const char *name)
{
    size_t n = strlen(name);
    return b->len == n && strncasecmp((const char *)b->data, name, n) == 0;
}

/* Keep the finished header if the admin API uses it. */
static int commit_header(struct sl_http_parser *hp)
{
    struct sl_http_request *r = &hp->req;
    char **slot = NULL;
    const char *dup_detail = NULL;
    int rc = 0;

    if (buf_is(&hp->field, "authorization")) {
        slot = &r->authorization;
        dup_detail = "more than one Authorization header";
    } else if (buf_is(&hp->field, "content-type")) {
        slot = &r->content_type;
        dup_detail = "more than one Content-Type header";
    } else if (buf_is(&hp->field, "if-match")) {
        slot = &r->if_match;
        dup_detail = "more than one If-Match header";
    } else if (buf_is(&hp->field, "x-sluice-origin")) {
        slot = &r->origin;
        dup_detail = "more than one X-Sluice-Origin header";
    }
    /* http_parser drops leading whitespace of a value but keeps trailing whitespace. */
    size_t vlen = hp->value.len;
    while (vlen > 0 && (hp->value.data[vlen - 1] == ' ' || hp->value.data[vlen - 1] == '\t'))
        vlen--;
    if (slot) {
        /* Two credentials or two preconditions are ambiguous; refuse rather than pick one. */
        if (*slot)
            rc = fail(hp, 400, dup_detail);
        else if (!(*slot = dup_bytes(hp->value.data, vlen)))
            rc = fail(hp, 500, "out of memory");
    } else if (buf_is(&hp->field, "x-sluice-forwarded")) {
        /* Any other value is not ours: the request is then treated as coming from a client. */
        r->forwarded = vlen == 1 && hp->value.data[0] == '1';
    } else if (buf_is(&hp->field, "expect")) {
        hp->expect_continue =
            vlen == 12 && strncasecmp((char *)hp->value.data, "100-continue", 12) == 0;
    }
    hp->field.len = hp->value.len = 0;
    hp->in_value = false;
    return rc;
}

static int on_url(http_parser *p, const char *at, size_t n)
{
    struct sl_http_parser *hp = parser_of(p);
    if (count_head(hp, n) != 0)
        return -1;
    return append(hp, &hp->url, at, n);
}

/* RFC 9110 tchar. */
static bool is_token_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static int on_header_field(http_parser *p, const char *at, size_t n)
{
    struct sl_http_parser *hp = parser_of(p);
    /* Debian builds http_parser without strict mode, which lets a space into a name ("Bad Name:");
     * such headers are a request-smuggling classic, so refuse them here. */
    for (size_t i = 0; i < n; i++)
        if (!is_token_char((unsigned char)at[i]))
            return fail(hp, 400, "invalid character in a header name");
    if (hp->in_value && commit_header(hp) != 0)
        return -1;
    if (count_head(hp, n + (hp->field.len == 0 ? HEADER_LINE_OVERHEAD : 0)) != 0)
        return -1;
    return append(hp, &hp->field, at, n);
}

static int on_header_value(http_parser *p, const char *at, size_t n)
{
    struct sl_http_parser *hp = parser_of(p);
    hp->in_value = true;
    if (count_head(hp, n) != 0)
        return -1;
    return append(hp, &hp->value, at, n);
}

/* Split the request target: only origin-form ("/path?query") is accepted. */
static int set_target(struct sl_http_parser *hp)
{
    struct http_parser_url u;
    const uint8_t *url = hp->url.data;

    if (hp->url.len == 0 || url[0] != '/')
        return fail(hp, 400, "the request target must be an absolute path");
    http_parser_url_init(&u);
    if (http_parser_parse_url((const char *)url, hp->url.len, 0, &u) != 0 ||
        !(u.field_set & (1u << UF_PATH)) || (u.field_set & (1u << UF_FRAGMENT)))
        return fail(hp, 400, "invalid request target");
    hp->req.path = dup_bytes(url + u.field_data[UF_PATH].off, u.field_data[UF_PATH].len);
    if (!hp->req.path)
        return fail(hp, 500, "out of memory");
    if (u.field_set & (1u << UF_QUERY)) {
        hp->req.query = dup_bytes(url + u.field_data[UF_QUERY].off, u.field_data[UF_QUERY].len);
        if (!hp->req.query)
            return fail(hp, 500, "out of memory");
    }
    return 0;
}

static int on_headers_complete(http_parser *p)
{
    struct sl_http_parser *hp = parser_of(p);
    struct sl_http_request *r = &hp->req;

    if (hp->in_value && commit_header(hp) != 0)
        return -1;
    if (p->http_major != 1)
        return fail(hp, 505, "only HTTP/1.x is served");
    if (set_target(hp) != 0)
        return -1;
    r->method = http_method_str((enum http_method)p->method);
    r->keep_alive = http_should_keep_alive(p) != 0;
    bool chunked = (p->flags & F_CHUNKED) != 0;
    if (p->flags & F_CONTENTLENGTH) {
        r->has_content_length = true;
        r->content_length = p->content_length;
        if (p->content_length > hp->max_body)
            return fail(hp, 413, "the request body exceeds the size limit");
    }
    /* Answer "100 Continue" only for a body we will accept; an oversized one got its 413 above. */
    hp->send_continue = hp->expect_continue && (chunked || (r->content_length > 0));
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t n)
{
    struct sl_http_parser *hp = parser_of(p);
    if (n > hp->max_body - hp->body.len)
        return fail(hp, 413, "the request body exceeds the size limit");
    return append(hp, &hp->body, at, n);
}

static int on_message_complete(http_parser *p)
{
    struct sl_http_parser *hp = parser_of(p);
    hp->complete = true;
    /* Pausing makes http_parser_execute return right behind this request (pipelining). */
    http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings settings = {
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* Get ready for the next request, keeping buffer capacity. */
static void reset(struct sl_http_parser *hp)
{
    http_parser_init(&hp->p, HTTP_REQUEST);
    hp->p.data = hp;
    hp->head_bytes = 0;
    hp->url.len = hp->field.len = hp->value.len = 0;
    hp->in_value = hp->complete = hp->expect_continue = hp->send_continue = false;
    memset(&hp->req, 0, sizeof hp->req);
}

void sl_http_parser_init(struct sl_http_parser *hp, size_t max_header, size_t max_body)
{
    memset(hp, 0, sizeof *hp);
    hp->max_header = max_header ? max_header : SL_HTTP_MAX_HEADER_DEFAULT;
    hp->max_body = max_body ? max_body : SL_HTTP_MAX_BODY_DEFAULT;
    reset(hp);
}

void sl_http_parser_free(struct sl_http_parser *hp)
{
    sl_http_request_free(&hp->req);
    sl_buf_free(&hp->url);
    sl_buf_free(&hp->field);
    sl_buf_free(&hp->value);
    sl_buf_free(&hp->body);
}

void sl_http_request_free(struct sl_http_request *r)
{
    free(r->path);
    free(r->query);
    free(r->authorization);
    free(r->content_type);
    free(r->if_match);
    free(r->origin);
    free(r->body);
    memset(r, 0, sizeof *r);
}

enum sl_http_result sl_http_parse(struct sl_http_parser *hp, const uint8_t *data, size_t len,
                                  size_t *used, struct sl_http_request *out)
{
    *used = 0;
    if (hp->status != 0)
        return SL_HTTP_ERROR;
    /* A zero length would tell http_parser the connection ended. */
    if (len == 0)
        return SL_HTTP_NEED_MORE;
    *used = http_parser_execute(&hp->p, &settings, (const char *)data, len);
    if (hp->complete) {
        if (hp->body.len > 0) {
            /* The body moves to the request, NUL-terminated for text consumers. */
            if (sl_buf_append(&hp->body, "", 1, SIZE_MAX) != 0) {
                fail(hp, 500, "out of memory");
                return SL_HTTP_ERROR;
            }
            hp->req.body = hp->body.data;
            hp->req.body_len = hp->body.len - 1;
            memset(&hp->body, 0, sizeof hp->body);
        }
        *out = hp->req;
        reset(hp);
        return SL_HTTP_COMPLETE;
    }
    enum http_errno e = HTTP_PARSER_ERRNO(&hp->p);
    if (e != HPE_OK) {
        if (e == HPE_HEADER_OVERFLOW)
            fail(hp, 431, "request line and headers exceed the size limit");
        else
            fail(hp, 400, http_errno_description(e));
        return SL_HTTP_ERROR;
    }
    return SL_HTTP_NEED_MORE;
}

const char *sl_http_reason(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 411: return "Length Required";
    case 412: return "Precondition Failed";
    case 413: return "Content Too Large";
    case 415: return "Unsupported Media Type";
    case 422: return "Unprocessable Content";
    case 428: return "Precondition Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
    }
}

static int appendf(struct sl_buf *b, const char *fmt, ...) SL_PRINTF(2, 3);

static int appendf(struct sl_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || sl_buf_reserve(b, (size_t)n + 1, SIZE_MAX) != 0)
        return -1;
    va_start(ap, fmt);
    vsnprintf((char *)b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

static bool header_safe(const char *v)
{
    return v == NULL || strpbrk(v, "\r\n") == NULL;
}

int sl_http_response_build(struct sl_buf *out, const struct sl_http_response *r)
{
    if (!header_safe(r->content_type) || !header_safe(r->etag) || !header_safe(r->allow) ||
        !header_safe(r->www_authenticate) || (r->etag && strchr(r->etag, '"')))
        return -1;
    size_t start = out->len;
    bool bodyless = r->status < 200 || r->status == 204 || r->status == 304;
    int rc = appendf(out, "HTTP/1.1 %d %s\r\n", r->status, sl_http_reason(r->status));
    if (rc == 0 && r->date != 0) {
        struct tm tm;
        char date[64];
        gmtime_r(&r->date, &tm);
        strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
        rc = appendf(out, "Date: %s\r\n", date);
    }
    if (rc == 0 && r->content_type && !bodyless)
        rc = appendf(out, "Content-Type: %s\r\n", r->content_type);
    if (rc == 0 && !bodyless)
        rc = appendf(out, "Content-Length: %zu\r\n", r->body_len);
    if (rc == 0 && r->etag)
        rc = appendf(out, "ETag: \"%s\"\r\n", r->etag);
    if (rc == 0 && r->retry_after)
        rc = appendf(out, "Retry-After: %u\r\n", r->retry_after);
    if (rc == 0 && r->allow)
        rc = appendf(out, "Allow: %s\r\n", r->allow);
    if (rc == 0 && r->www_authenticate)
        rc = appendf(out, "WWW-Authenticate: %s\r\n", r->www_authenticate);
    /* Answers describe live configuration and credentials' effects: never cache them. */
    if (rc == 0 && r->status >= 200)
        rc = appendf(out, "Cache-Control: no-store\r\n");
    if (rc == 0 && r->close)
        rc = appendf(out, "Connection: close\r\n");
    if (rc == 0)
        rc = appendf(out, "\r\n");
    if (rc == 0 && !bodyless && r->body_len > 0)
        rc = sl_buf_append(out, r->body, r->body_len, SIZE_MAX);
    if (rc != 0) {
        out->len = start;
        return -1;
    }
    return 0;
}

json_t *sl_http_problem(int status, const char *type, const char *title, const char *detail)
{
    json_t *p = json_object();
    if (!p)
        return NULL;
    int rc = json_object_set_new(p, "type", json_string(type ? type : "about:blank"));
    rc |= json_object_set_new(p, "title", json_string(title ? title : sl_http_reason(status)));
    rc |= json_object_set_new(p, "status", json_integer(status));
    if (detail)
        rc |= json_object_set_new(p, "detail", json_string(detail));
    if (rc != 0) {
        json_decref(p);
        return NULL;
    }
    return p;
}
