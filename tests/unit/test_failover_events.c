/* The event ring: order, the after filter, and the oldest dropped once full. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "failover/events.h"

static struct sl_events ev;

static void test_order_and_after(void **state)
{
    (void)state;
    memset(&ev, 0, sizeof ev);
    sl_events_add(&ev, "writer_applied", "main", "db2", 17, "node1", "failover: down");
    sl_events_add(&ev, "promotion_started", "main", "db3", 0, "node1", NULL);
    json_t *j = sl_events_json(&ev, 0);
    json_t *list = json_object_get(j, "events");
    assert_int_equal(json_array_size(list), 2);
    json_t *e0 = json_array_get(list, 0);
    assert_int_equal(json_integer_value(json_object_get(e0, "seq")), 1);
    assert_string_equal(json_string_value(json_object_get(e0, "kind")), "writer_applied");
    assert_string_equal(json_string_value(json_object_get(e0, "target")), "db2");
    assert_int_equal(json_integer_value(json_object_get(e0, "epoch")), 17);
    assert_string_equal(json_string_value(json_object_get(e0, "decided_by")), "node1");
    const char *t = json_string_value(json_object_get(e0, "time"));
    assert_int_equal(strlen(t), 24); /* 2026-11-28T05:00:00.000Z */
    assert_int_equal(t[23], 'Z');
    json_decref(j);
    j = sl_events_json(&ev, 1);
    list = json_object_get(j, "events");
    assert_int_equal(json_array_size(list), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(list, 0), "detail")), "");
    json_decref(j);
}

static void test_ring_drops_the_oldest(void **state)
{
    (void)state;
    memset(&ev, 0, sizeof ev);
    char detail[32];
    for (int i = 1; i <= SL_EVENTS_MAX + 10; i++) {
        snprintf(detail, sizeof detail, "e%d", i);
        sl_events_add(&ev, "k", "p", "t", (uint64_t)i, "n", detail);
    }
    json_t *j = sl_events_json(&ev, 0);
    json_t *list = json_object_get(j, "events");
    assert_int_equal(json_array_size(list), SL_EVENTS_MAX);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(list, 0), "seq")), 11);
    assert_int_equal(
        json_integer_value(json_object_get(json_array_get(list, SL_EVENTS_MAX - 1), "seq")),
        SL_EVENTS_MAX + 10);
    json_decref(j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_order_and_after),
        cmocka_unit_test(test_ring_drops_the_oldest),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
