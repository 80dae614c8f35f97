/* libFuzzer target for the admin API's HTTP request parser and router.
 *
 * Input: byte 0 picks how the rest is cut into reads (0: one read; otherwise reads of that many
 * bytes), byte 1 scales the limits down so that 413 and 431 are reached. Every read is a heap
 * buffer of exactly its size, so ASan reports any read past it. Invariants: the parser never
 * claims more bytes than it was given, a complete request has an origin-form path and a
 * NUL-terminated body of the stated length, a failed parser reports an error status and stays
 * failed, and routing a parsed path never fails in a way other than the router's own results.
 *
 * Build: clang -fsanitize=fuzzer,address -I. tests/fuzz/fuzz_http.c admin/http.c admin/router.c
 *        base/buf.c -lhttp_parser -ljansson */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "admin/http.h"
#include "admin/router.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c))                                                                                  \
            __builtin_trap();                                                                      \
    } while (0)

static void check_request(const struct sl_http_request *r, size_t max_body)
{
    struct sl_route_match m;
    CHECK(r->method != NULL && r->path != NULL && r->path[0] == '/');
    CHECK(r->body_len <= max_body);
    CHECK((r->body == NULL) == (r->body_len == 0));
    if (r->body)
        CHECK(r->body[r->body_len] == '\0');
    enum sl_route_result rr = sl_route(r->method, r->path, &m);
    CHECK(rr == SL_ROUTE_OK || rr == SL_ROUTE_NOT_FOUND || rr == SL_ROUTE_BAD_METHOD ||
          rr == SL_ROUTE_BAD_PATH);
    if (rr == SL_ROUTE_OK) {
        CHECK(m.id < SL_ROUTE_COUNT && m.nparams <= SL_ROUTE_MAX_PARAMS);
        for (size_t i = 0; i < m.nparams; i++)
            CHECK(strlen(m.params[i].value) <= SL_ROUTE_PARAM_MAX);
    }
    if (rr == SL_ROUTE_BAD_METHOD)
        CHECK(m.allow[0] != '\0');
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct sl_http_parser hp;
    if (size < 2)
        return 0;
    size_t step = data[0] ? data[0] : size;
    size_t max_header = 64 + (size_t)data[1] * 16, max_body = (size_t)data[1] * 8;
    data += 2;
    size -= 2;
    sl_http_parser_init(&hp, max_header, max_body + 1);
    bool failed = false;
    for (size_t off = 0; off < size && !failed;) {
        size_t n = size - off < step ? size - off : step;
        uint8_t *buf = malloc(n);
        CHECK(buf != NULL);
        memcpy(buf, data + off, n);
        size_t pos = 0;
        for (;;) {
            struct sl_http_request r;
            size_t used;
            enum sl_http_result res = sl_http_parse(&hp, buf + pos, n - pos, &used, &r);
            CHECK(used <= n - pos);
            pos += used;
            if (res == SL_HTTP_COMPLETE) {
                check_request(&r, max_body + 1);
                sl_http_request_free(&r);
                continue;
            }
            if (res == SL_HTTP_ERROR) {
                CHECK(hp.status >= 400 && hp.status < 600 && hp.detail != NULL);
                CHECK(sl_http_parse(&hp, buf, n, &used, &r) == SL_HTTP_ERROR && used == 0);
                failed = true;
            } else {
                CHECK(pos == n); /* a partial request is always taken in whole */
            }
            break;
        }
        free(buf);
        off += n;
    }
    sl_http_parser_free(&hp);
    return 0;
}
