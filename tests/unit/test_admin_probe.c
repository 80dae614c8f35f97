/* admin/probe: a member whose admin address accepts connections is reachable, one that refuses
 * is not, one never probed is unknown; closing frees everything (LSan). Real sockets on
 * 127.0.0.1, one loop. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <uv.h>

#include "admin/probe.h"

static int listen_port, dead_port;

static size_t targets(void *arg, struct sl_probe_target *out, size_t cap)
{
    snprintf(out[0].admin_url, sizeof out[0].admin_url, "http://127.0.0.1:%d", listen_port);
    out[0].id = 2;
    snprintf(out[1].admin_url, sizeof out[1].admin_url, "http://127.0.0.1:%d", dead_port);
    out[1].id = 3;
    snprintf(out[2].admin_url, sizeof out[2].admin_url, "http://db.example:80"); /* not numeric */
    out[2].id = 4;
    return 3;
}

static void free_handle(uv_handle_t *h)
{
    free(h);
}

static void on_conn(uv_stream_t *server, int status)
{
    uv_tcp_t *c = malloc(sizeof *c);
    uv_tcp_init(server->loop, c);
    uv_accept(server, (uv_stream_t *)c); /* accepted or not, closed at once, as the probe expects */
    uv_close((uv_handle_t *)c, free_handle);
}

static int bound_port(uv_tcp_t *t)
{
    struct sockaddr_storage ss;
    int len = sizeof ss;
    uv_tcp_getsockname(t, (struct sockaddr *)&ss, &len);
    return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

static bool closed;
static void on_closed(void *arg)
{
    closed = true;
}

static void on_stop(uv_timer_t *t)
{
    uv_stop(t->loop);
}

static void test_reachability(void **state)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    uv_tcp_t server, dead;
    struct sockaddr_in any;
    uv_ip4_addr("127.0.0.1", 0, &any);
    uv_tcp_init(&loop, &server);
    assert_int_equal(uv_tcp_bind(&server, (const struct sockaddr *)&any, 0), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&server, 8, on_conn), 0);
    listen_port = bound_port(&server);
    /* A port that was bound and released: nothing listens there. */
    uv_tcp_init(&loop, &dead);
    assert_int_equal(uv_tcp_bind(&dead, (const struct sockaddr *)&any, 0), 0);
    dead_port = bound_port(&dead);
    uv_close((uv_handle_t *)&dead, NULL);

    struct sl_probe *p = sl_probe_start(&loop, 100, 300, targets, NULL);
    assert_non_null(p);
    uv_timer_t stop;
    uv_timer_init(&loop, &stop);
    uv_timer_start(&stop, on_stop, 500, 0);
    uv_run(&loop, UV_RUN_DEFAULT);

    bool up;
    uint64_t ago;
    assert_int_equal(sl_probe_result(p, 2, &up, &ago), 0);
    assert_true(up);
    assert_true(ago < 500);
    assert_int_equal(sl_probe_result(p, 3, &up, &ago), 0);
    assert_false(up);
    assert_true(ago == UINT64_MAX);                         /* never answered */
    assert_int_equal(sl_probe_result(p, 4, &up, &ago), -1); /* host names are not probed */
    assert_int_equal(sl_probe_result(p, 9, &up, &ago), -1);

    sl_probe_close(p, on_closed, NULL);
    uv_close((uv_handle_t *)&stop, NULL);
    uv_close((uv_handle_t *)&server, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_true(closed);
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_reachability)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
