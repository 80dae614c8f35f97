/* Prometheus text builder: exact output of families and samples, label and HELP escaping, number
 * formats, name validation, and the node's stats in both of their forms. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "admin/local.h"
#include "admin/metrics.h"

static char *text(struct sl_metrics *m)
{
    assert_int_equal(sl_metrics_finish(m), 0);
    assert_int_equal(sl_buf_append(&m->out, "", 1, SIZE_MAX), 0);
    return (char *)m->out.data;
}

static void test_families_and_samples(void **state)
{
    struct sl_metrics m;
    const struct sl_metric_label labels[] = {{"proxy", "p1"}, {"reason", "a\"b\\c\nd"}};
    sl_metrics_init(&m);
    sl_metrics_family(&m, "sluice_pins_total", SL_METRIC_COUNTER, "Pins by\\reason\n\"x\".");
    sl_metrics_u64(&m, "sluice_pins_total", labels, 2, UINT64_MAX);
    sl_metrics_u64(&m, "sluice_pins_total", labels, 1, 0);
    sl_metrics_family(&m, "raft:term", SL_METRIC_GAUGE, "");
    sl_metrics_double(&m, "raft:term", NULL, 0, 0.5);
    sl_metrics_double(&m, "raft:term", NULL, 0, 1.0 / 0.0);
    sl_metrics_double(&m, "raft:term", NULL, 0, -1.0 / 0.0);
    sl_metrics_double(&m, "raft:term", NULL, 0, 0.0 / 0.0);
    sl_metrics_double(&m, "raft:term", NULL, 0, 0.1);
    sl_metrics_single(&m, "up", SL_METRIC_GAUGE, "Up.", 1);
    assert_string_equal(text(&m), "# HELP sluice_pins_total Pins by\\\\reason\\n\"x\".\n"
                                  "# TYPE sluice_pins_total counter\n"
                                  "sluice_pins_total{proxy=\"p1\",reason=\"a\\\"b\\\\c\\nd\"} "
                                  "18446744073709551615\n"
                                  "sluice_pins_total{proxy=\"p1\"} 0\n"
                                  "# HELP raft:term \n"
                                  "# TYPE raft:term gauge\n"
                                  "raft:term 0.5\n"
                                  "raft:term +Inf\n"
                                  "raft:term -Inf\n"
                                  "raft:term NaN\n"
                                  "raft:term 0.10000000000000001\n"
                                  "# HELP up Up.\n"
                                  "# TYPE up gauge\n"
                                  "up 1\n");
    sl_metrics_free(&m);
}

static void expect_invalid(const char *name, const char *label)
{
    struct sl_metrics m;
    const struct sl_metric_label l = {label, "v"};
    sl_metrics_init(&m);
    if (label)
        sl_metrics_u64(&m, name, &l, 1, 1);
    else
        sl_metrics_family(&m, name, SL_METRIC_GAUGE, "h");
    /* The error sticks through later valid calls. */
    sl_metrics_single(&m, "ok", SL_METRIC_GAUGE, "h", 1);
    assert_int_equal(sl_metrics_finish(&m), -1);
    sl_metrics_free(&m);
}

static void test_invalid_names(void **state)
{
    expect_invalid("", NULL);
    expect_invalid("1abc", NULL);
    expect_invalid("a-b", NULL);
    expect_invalid("a b", NULL);
    expect_invalid("ok", "");
    expect_invalid("ok", "a:b");
    expect_invalid("ok", "__name__");
    expect_invalid("ok", "9x");
}

static void test_stats_forms(void **state)
{
    struct sl_admin_stats st = {
        .client_connections_total = 10,
        .client_connections_active = 3,
        .auth_failures = 2,
        .backend_connections_opened = 5,
        .backend_connections_active = 4,
        .borrow_timeouts = 1,
        .borrow_waits = 6,
        .queries = 1234,
        .clients_idle = 2,
        .clients_busy = 1,
        .backends_idle = 3,
        .backends_in_use = 1,
        .pins = {{"user_variable", 7}, {"temp_table", 0}},
        .n_pins = 2,
        .backends_lost = 9,
        .recoveries = {1, 2, 3, 4, 5, 6},
    };
    json_t *j = sl_admin_stats_json(&st);
    char *s = json_dumps(j, JSON_COMPACT);
    assert_string_equal(
        s, "{\"client_connections\":{\"total\":10,\"active\":3,\"by_state\":{\"handshake\":0,"
           "\"idle\":2,\"waiting\":0,\"busy\":1}},\"auth_failures\":2,\"backend_connections\":"
           "{\"opened\":5,\"active\":4,\"by_state\":{\"connecting\":0,\"idle\":3,\"in_use\":1}},"
           "\"borrow_timeouts\":1,\"borrow_waits\":6,\"queries\":1234,"
           "\"pins\":{\"user_variable\":7,\"temp_table\":0},\"backend_losses\":{\"total\":9,"
           "\"outcomes\":{\"retried\":1,\"replayed\":2,\"replay_refused\":3,"
           "\"transaction_lost\":4,\"outcome_unknown\":5,\"state_lost\":6}}}");
    free(s);
    json_decref(j);
    /* A node with a configuration store adds its Raft state. */
    st.has_store = true;
    st.is_leader = true;
    st.raft_term = 3;
    st.raft_commit_index = 42;
    st.raft_applied_index = 41;
    j = sl_admin_stats_json(&st);
    s = json_dumps(json_object_get(j, "raft"), JSON_COMPACT);
    assert_string_equal(s, "{\"leader\":true,\"term\":3,\"commit_index\":42,\"applied_index\":41}");
    free(s);
    json_decref(j);

    struct sl_metrics m;
    sl_metrics_init(&m);
    assert_int_equal(sl_admin_stats_metrics(&st, &m), 0);
    const char *t = text(&m);
    assert_non_null(strstr(t, "sluice_build_info{version=\"" SLUICE_VERSION "\"} 1\n"));
    assert_non_null(strstr(t, "# TYPE sluice_queries_total counter\nsluice_queries_total 1234\n"));
    assert_non_null(strstr(t, "# TYPE sluice_client_connections_active gauge\n"
                              "sluice_client_connections_active 3\n"));
    assert_non_null(strstr(t, "sluice_backend_connections_opened_total 5\n"));
    assert_non_null(strstr(t, "sluice_borrow_timeouts_total 1\n"));
    assert_non_null(strstr(t, "sluice_auth_failures_total 2\n"));
    assert_non_null(strstr(t, "# TYPE sluice_session_pins_total counter\n"
                              "sluice_session_pins_total{reason=\"user_variable\"} 7\n"
                              "sluice_session_pins_total{reason=\"temp_table\"} 0\n"));
    assert_non_null(strstr(t, "sluice_borrow_waits_total 6\n"));
    assert_non_null(strstr(t, "sluice_backend_losses_total 9\n"));
    assert_non_null(strstr(t, "# TYPE sluice_session_recoveries_total counter\n"
                              "sluice_session_recoveries_total{outcome=\"retried\"} 1\n"
                              "sluice_session_recoveries_total{outcome=\"replayed\"} 2\n"
                              "sluice_session_recoveries_total{outcome=\"replay_refused\"} 3\n"
                              "sluice_session_recoveries_total{outcome=\"transaction_lost\"} 4\n"
                              "sluice_session_recoveries_total{outcome=\"outcome_unknown\"} 5\n"
                              "sluice_session_recoveries_total{outcome=\"state_lost\"} 6\n"));
    assert_non_null(strstr(t, "sluice_client_connections{state=\"idle\"} 2\n"));
    assert_non_null(strstr(t, "sluice_backend_connections{state=\"in_use\"} 1\n"));
    assert_non_null(strstr(t, "sluice_raft_leader 1\n"));
    assert_non_null(strstr(t, "sluice_raft_commit_index 42\n"));
    assert_non_null(strstr(t, "sluice_raft_applied_index 41\n"));
    sl_metrics_free(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_families_and_samples),
        cmocka_unit_test(test_invalid_names),
        cmocka_unit_test(test_stats_forms),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
