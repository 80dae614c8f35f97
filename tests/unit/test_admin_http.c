/* HTTP request parser and response builder: fields of a request, bodies (length and chunked),
 * pipelining, every split of a stream across reads, the size limits, malformed input, and the
 * exact bytes of responses and problem documents. Input is parsed from heap buffers of exactly the
 * given length, so ASan reports any read past them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "admin/http.h"

/* Feed src in pieces of at most `step` bytes (0: all at once) and collect up to `max` requests.
 * Returns the number parsed; *res is the result of the last call. */
static size_t parse_steps(struct sl_http_parser *hp, const char *src, size_t step,
                          struct sl_http_request *out, size_t max, enum sl_http_result *res)
{
    size_t len = strlen(src), n = 0, pos = 0, have = 0;
    uint8_t *buf = malloc(len ? len : 1);
    assert_non_null(buf);
    *res = SL_HTTP_NEED_MORE;
    /* buf[pos..have) holds bytes received but not parsed yet, as a connection's buffer would. */
    while (have < len || pos < have) {
        size_t add = step == 0 ? len - have : (len - have < step ? len - have : step);
        memcpy(buf + have, src + have, add);
        have += add;
        for (;;) {
            size_t used;
            uint8_t *exact = malloc(have - pos ? have - pos : 1);
            assert_non_null(exact);
            memcpy(exact, buf + pos, have - pos);
            *res = sl_http_parse(hp, exact, have - pos, &used, &out[n]);
            free(exact);
            assert_true(used <= have - pos);
            pos += used;
            if (*res == SL_HTTP_COMPLETE) {
                assert_true(n < max);
                n++;
                continue;
            }
            break;
        }
        if (*res == SL_HTTP_ERROR || (add == 0 && pos < have))
            break;
    }
    free(buf);
    return n;
}

static void parse_one(const char *src, struct sl_http_request *r)
{
    struct sl_http_parser hp;
    enum sl_http_result res;
    sl_http_parser_init(&hp, 0, 0);
    assert_int_equal(parse_steps(&hp, src, 0, r, 1, &res), 1);
    sl_http_parser_free(&hp);
}

static int parse_error(const char *src, size_t max_header, size_t max_body)
{
    struct sl_http_parser hp;
    struct sl_http_request r[4];
    enum sl_http_result res;
    sl_http_parser_init(&hp, max_header, max_body);
    size_t n = parse_steps(&hp, src, 0, r, 4, &res);
    for (size_t i = 0; i < n; i++)
        sl_http_request_free(&r[i]);
    assert_int_equal(res, SL_HTTP_ERROR);
    assert_non_null(hp.detail);
    int status = hp.status;
    /* A failed parser stays failed. */
    size_t used;
    assert_int_equal(sl_http_parse(&hp, (const uint8_t *)"GET / HTTP/1.1\r\n\r\n", 18, &used, r),
                     SL_HTTP_ERROR);
    assert_int_equal(used, 0);
    sl_http_parser_free(&hp);
    return status;
}

static void test_get_fields(void **state)
{
    struct sl_http_request r;
    parse_one("GET /v1/proxies/app%201?min_revision=7&consistent=true HTTP/1.1\r\n"
              "Host: x\r\n"
              "authorization:   Bearer s3cret  \r\n"
              "If-Match: \"42\"\r\n"
              "X-Other: ignored\r\n"
              "\r\n",
              &r);
    assert_string_equal(r.method, "GET");
    assert_string_equal(r.path, "/v1/proxies/app%201");
    assert_string_equal(r.query, "min_revision=7&consistent=true");
    assert_string_equal(r.authorization, "Bearer s3cret");
    assert_string_equal(r.if_match, "\"42\"");
    assert_null(r.content_type);
    assert_false(r.has_content_length);
    assert_true(r.keep_alive);
    assert_null(r.body);
    assert_int_equal(r.body_len, 0);
    assert_false(r.forwarded);
    sl_http_request_free(&r);

    parse_one("DELETE /metrics HTTP/1.1\r\n\r\n", &r);
    assert_string_equal(r.method, "DELETE");
    assert_string_equal(r.path, "/metrics");
    assert_null(r.query);
    assert_null(r.authorization);
    sl_http_request_free(&r);

    /* Only the exact value "1" marks a forwarded request. */
    parse_one("PUT /v1/secrets/a HTTP/1.1\r\nx-sluice-forwarded: 1 \r\n\r\n", &r);
    assert_true(r.forwarded);
    sl_http_request_free(&r);
    parse_one("PUT /v1/secrets/a HTTP/1.1\r\nX-Sluice-Forwarded: yes\r\n\r\n", &r);
    assert_false(r.forwarded);
    assert_null(r.origin);
    sl_http_request_free(&r);
    /* The node a forwarded write first reached (whether it is believed is the routes' call). */
    parse_one("PUT /v1/proxies/a/writer HTTP/1.1\r\nX-Sluice-Forwarded: 1\r\n"
              "x-sluice-origin: node-b \r\n\r\n",
              &r);
    assert_true(r.forwarded);
    assert_string_equal(r.origin, "node-b");
    sl_http_request_free(&r);
}

static void test_keep_alive(void **state)
{
    struct sl_http_request r;
    parse_one("GET / HTTP/1.1\r\nConnection: close\r\n\r\n", &r);
    assert_false(r.keep_alive);
    sl_http_request_free(&r);
    parse_one("GET / HTTP/1.0\r\n\r\n", &r);
    assert_false(r.keep_alive);
    sl_http_request_free(&r);
    parse_one("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", &r);
    assert_true(r.keep_alive);
    sl_http_request_free(&r);
}

static void test_bodies(void **state)
{
    struct sl_http_request r;
    parse_one("PUT /v1/secrets/a HTTP/1.1\r\nContent-Type: application/json\r\n"
              "Content-Length: 17\r\n\r\n{\"ref\":\"env:PW\"}\n",
              &r);
    assert_string_equal(r.content_type, "application/json");
    assert_true(r.has_content_length);
    assert_int_equal(r.content_length, 17);
    assert_int_equal(r.body_len, 17);
    assert_memory_equal(r.body, "{\"ref\":\"env:PW\"}\n", 17);
    assert_int_equal(r.body[17], '\0');
    sl_http_request_free(&r);

    parse_one("POST /v1/cluster/nodes HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
              "5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nTrailer: x\r\n\r\n",
              &r);
    assert_false(r.has_content_length);
    assert_int_equal(r.body_len, 12);
    assert_memory_equal(r.body, "hello, world", 12);
    sl_http_request_free(&r);

    parse_one("POST /x HTTP/1.1\r\nContent-Length: 0\r\n\r\n", &r);
    assert_true(r.has_content_length);
    assert_null(r.body);
    sl_http_request_free(&r);
}

static const char pipeline[] = "GET /v1/health HTTP/1.1\r\nHost: a\r\n\r\n"
                               "PUT /v1/secrets/s1 HTTP/1.1\r\nContent-Length: 5\r\n"
                               "Authorization: Bearer t\r\n\r\nabcde"
                               "\r\n" /* stray CRLF between requests is tolerated */
                               "POST /v1/x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                               "3\r\nxyz\r\n0\r\n\r\n"
                               "GET /metrics?a=b HTTP/1.1\r\nConnection: close\r\n\r\n";

static void check_pipeline(struct sl_http_request *r)
{
    assert_string_equal(r[0].method, "GET");
    assert_string_equal(r[0].path, "/v1/health");
    assert_null(r[0].authorization);
    assert_string_equal(r[1].method, "PUT");
    assert_string_equal(r[1].path, "/v1/secrets/s1");
    assert_string_equal(r[1].authorization, "Bearer t");
    assert_int_equal(r[1].body_len, 5);
    assert_memory_equal(r[1].body, "abcde", 5);
    assert_string_equal(r[2].method, "POST");
    assert_int_equal(r[2].body_len, 3);
    assert_memory_equal(r[2].body, "xyz", 3);
    assert_null(r[2].authorization);
    assert_string_equal(r[3].path, "/metrics");
    assert_string_equal(r[3].query, "a=b");
    assert_false(r[3].keep_alive);
    for (int i = 0; i < 4; i++)
        sl_http_request_free(&r[i]);
}

static void test_pipelined(void **state)
{
    struct sl_http_parser hp;
    struct sl_http_request r[4];
    enum sl_http_result res;
    sl_http_parser_init(&hp, 0, 0);
    assert_int_equal(parse_steps(&hp, pipeline, 0, r, 4, &res), 4);
    assert_int_equal(res, SL_HTTP_NEED_MORE);
    check_pipeline(r);
    sl_http_parser_free(&hp);
}

/* One byte per read, and every two-piece split: the same four requests each time. */
static void test_split_everywhere(void **state)
{
    size_t len = strlen(pipeline);
    struct sl_http_request r[4];
    enum sl_http_result res;
    struct sl_http_parser hp;

    sl_http_parser_init(&hp, 0, 0);
    assert_int_equal(parse_steps(&hp, pipeline, 1, r, 4, &res), 4);
    check_pipeline(r);
    sl_http_parser_free(&hp);

    for (size_t cut = 1; cut < len; cut++) {
        size_t n = 0, used;
        uint8_t *a = malloc(cut), *b = malloc(len - cut);
        assert_non_null(a);
        assert_non_null(b);
        memcpy(a, pipeline, cut);
        memcpy(b, pipeline + cut, len - cut);
        sl_http_parser_init(&hp, 0, 0);
        /* Whatever the first read leaves unparsed goes in front of the second. */
        size_t off = 0;
        while ((res = sl_http_parse(&hp, a + off, cut - off, &used, &r[n])) == SL_HTTP_COMPLETE) {
            off += used;
            n++;
        }
        assert_int_equal(res, SL_HTTP_NEED_MORE);
        off += used;
        assert_int_equal(off, cut); /* a partial request is taken in, never left in the buffer */
        off = 0;
        while ((res = sl_http_parse(&hp, b + off, len - cut - off, &used, &r[n])) ==
               SL_HTTP_COMPLETE) {
            off += used;
            n++;
        }
        assert_int_equal(res, SL_HTTP_NEED_MORE);
        assert_int_equal(n, 4);
        check_pipeline(r);
        sl_http_parser_free(&hp);
        free(a);
        free(b);
    }
}

static void test_expect_continue(void **state)
{
    struct sl_http_parser hp;
    struct sl_http_request r;
    size_t used;
    const char *head = "PUT /v1/proxies/p HTTP/1.1\r\nExpect: 100-continue\r\n"
                       "Content-Length: 2\r\n\r\n";
    sl_http_parser_init(&hp, 0, 0);
    assert_int_equal(sl_http_parse(&hp, (const uint8_t *)head, strlen(head), &used, &r),
                     SL_HTTP_NEED_MORE);
    assert_true(hp.send_continue);
    hp.send_continue = false;
    assert_int_equal(sl_http_parse(&hp, (const uint8_t *)"{}", 2, &used, &r), SL_HTTP_COMPLETE);
    assert_int_equal(r.body_len, 2);
    assert_false(hp.send_continue);
    sl_http_request_free(&r);
    sl_http_parser_free(&hp);
}

static void test_limits(void **state)
{
    /* Body: announced too large (413 before any body byte), or growing too large chunked. */
    assert_int_equal(parse_error("PUT /a HTTP/1.1\r\nContent-Length: 11\r\n\r\n", 0, 10), 413);
    assert_int_equal(parse_error("PUT /a HTTP/1.1\r\nContent-Length: 1048577\r\n\r\n", 0, 0), 413);
    assert_int_equal(parse_error("PUT /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                                 "6\r\nabcdef\r\n5\r\nghijk\r\n0\r\n\r\n",
                                 0, 10),
                     413);
    /* Exactly at the limit is fine. */
    struct sl_http_parser hp;
    struct sl_http_request r;
    enum sl_http_result res;
    sl_http_parser_init(&hp, 0, 10);
    assert_int_equal(
        parse_steps(&hp, "PUT /a HTTP/1.1\r\nContent-Length: 10\r\n\r\n0123456789", 0, &r, 1, &res),
        1);
    sl_http_request_free(&r);
    sl_http_parser_free(&hp);

    /* Head: one long header, a long target, many small headers. */
    size_t big = 300;
    char *src = malloc(big + 64);
    assert_non_null(src);
    snprintf(src, big + 64, "GET / HTTP/1.1\r\nX-Long: %0*d\r\n\r\n", (int)big, 0);
    assert_int_equal(parse_error(src, 256, 0), 431);
    snprintf(src, big + 64, "GET /%0*d HTTP/1.1\r\n\r\n", (int)big, 0);
    assert_int_equal(parse_error(src, 256, 0), 431);
    free(src);
    char many[4096] = "GET / HTTP/1.1\r\n";
    for (int i = 0; i < 100; i++)
        strcat(many, "a:\r\n");
    strcat(many, "\r\n");
    assert_int_equal(parse_error(many, 256, 0), 431);
}

static void test_malformed(void **state)
{
    assert_int_equal(parse_error("GARBAGE\r\n\r\n", 0, 0), 400);
    assert_int_equal(parse_error("GET / HTTP/1.1\r\nBad Header: x\r\n\r\n", 0, 0), 400);
    assert_int_equal(parse_error("GET http://example.com/ HTTP/1.1\r\n\r\n", 0, 0), 400);
    assert_int_equal(parse_error("GET * HTTP/1.1\r\n\r\n", 0, 0), 400);
    assert_int_equal(parse_error("GET /a#frag HTTP/1.1\r\n\r\n", 0, 0), 400);
    assert_int_equal(parse_error("CONNECT example.com:443 HTTP/1.1\r\n\r\n", 0, 0), 400);
    assert_int_equal(parse_error("GET / HTTP/2.0\r\n\r\n", 0, 0), 505);
    assert_int_equal(
        parse_error("PUT / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 0, 0), 400);
    assert_int_equal(parse_error("PUT / HTTP/1.1\r\nContent-Length: x\r\n\r\n", 0, 0), 400);
    assert_int_equal(
        parse_error("PUT / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 0, 0), 400);
    assert_int_equal(parse_error("GET / HTTP/1.1\r\nAuthorization: Bearer a\r\n"
                                 "Authorization: Bearer b\r\n\r\n",
                                 0, 0),
                     400);
    assert_int_equal(parse_error("GET / HTTP/1.1\r\nIf-Match: 1\r\nif-match: 2\r\n\r\n", 0, 0),
                     400);
    assert_int_equal(
        parse_error("PUT / HTTP/1.1\r\nX-Sluice-Origin: a\r\nX-Sluice-Origin: b\r\n\r\n", 0, 0),
        400);
    /* The first request is served; the broken second one fails. */
    assert_int_equal(parse_error("GET / HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\nX\r\n\r\n", 0, 0), 400);
}

static char *build(const struct sl_http_response *r)
{
    struct sl_buf b = {0};
    assert_int_equal(sl_http_response_build(&b, r), 0);
    assert_int_equal(sl_buf_append(&b, "", 1, SIZE_MAX), 0);
    return (char *)b.data;
}

static void test_response(void **state)
{
    struct sl_http_response r = {
        .status = 503,
        .content_type = "application/json",
        .body = "{}",
        .body_len = 2,
        .etag = "17",
        .retry_after = 2,
        .allow = "GET, PUT",
        .www_authenticate = "Bearer realm=\"sluice\"",
        .close = true,
        .date = 784111777,
    };
    char *s = build(&r);
    assert_string_equal(s, "HTTP/1.1 503 Service Unavailable\r\n"
                           "Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n"
                           "Content-Type: application/json\r\n"
                           "Content-Length: 2\r\n"
                           "ETag: \"17\"\r\n"
                           "Retry-After: 2\r\n"
                           "Allow: GET, PUT\r\n"
                           "WWW-Authenticate: Bearer realm=\"sluice\"\r\n"
                           "Cache-Control: no-store\r\n"
                           "Connection: close\r\n"
                           "\r\n{}");
    free(s);

    struct sl_http_response minimal = {.status = 200};
    s = build(&minimal);
    assert_string_equal(s,
                        "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nCache-Control: no-store\r\n\r\n");
    free(s);

    struct sl_http_response nobody = {
        .status = 204, .content_type = "x/y", .body = "zz", .body_len = 2};
    s = build(&nobody);
    assert_string_equal(s, "HTTP/1.1 204 No Content\r\nCache-Control: no-store\r\n\r\n");
    free(s);

    /* Header injection is refused and leaves the buffer as it was. */
    struct sl_buf b = {0};
    assert_int_equal(sl_buf_append(&b, "keep", 4, SIZE_MAX), 0);
    struct sl_http_response bad = {.status = 200, .etag = "1\r\nSet-Cookie: x"};
    assert_int_equal(sl_http_response_build(&b, &bad), -1);
    bad.etag = "a\"b";
    assert_int_equal(sl_http_response_build(&b, &bad), -1);
    bad.etag = NULL;
    bad.content_type = "text/plain\n";
    assert_int_equal(sl_http_response_build(&b, &bad), -1);
    assert_int_equal(b.len, 4);
    sl_buf_free(&b);

    assert_string_equal(sl_http_reason(413), "Content Too Large");
    assert_string_equal(sl_http_reason(799), "Unknown");
}

static void test_problem(void **state)
{
    json_t *p = sl_http_problem(404, NULL, NULL, "no such proxy");
    char *s = json_dumps(p, JSON_COMPACT);
    assert_string_equal(s, "{\"type\":\"about:blank\",\"title\":\"Not "
                           "Found\",\"status\":404,\"detail\":\"no such proxy\"}");
    free(s);
    json_decref(p);

    p = sl_http_problem(412, "tag:sluice,2026:revision-moved", "Revision moved", NULL);
    s = json_dumps(p, JSON_COMPACT);
    assert_string_equal(s, "{\"type\":\"tag:sluice,2026:revision-moved\",\"title\":\"Revision "
                           "moved\",\"status\":412}");
    free(s);
    json_decref(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_get_fields),       cmocka_unit_test(test_keep_alive),
        cmocka_unit_test(test_bodies),           cmocka_unit_test(test_pipelined),
        cmocka_unit_test(test_split_everywhere), cmocka_unit_test(test_expect_continue),
        cmocka_unit_test(test_limits),           cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_response),         cmocka_unit_test(test_problem),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
