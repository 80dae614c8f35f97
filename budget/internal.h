/* State shared by the files of budget/ (not a public header). One struct sl_budget per node. */
#ifndef SL_BUDGET_INTERNAL_H
#define SL_BUDGET_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "budget/budget.h"
#include "raft/budget.h"

#define KEYS_MAX      64  /* budget keys one node serves */
#define NODES_MAX     32  /* nodes the leader tracks */
#define SENT_RING     128 /* report send times kept: the anchors of leases not yet committed */
#define DEMAND_WINDOW 20  /* reports (10 s) whose peak demand the leader takes the maximum of */
#define USERS_MAX     16

/* A budget key this node serves, with what the leader needs to reach its database. */
struct key_cfg {
    char key[SL_BUDGET_KEY_MAX + 1];
    char host[256];
    uint16_t port;
    unsigned percent;
    char *secrets[USERS_MAX]; /* secret references of the proxy's users */
    size_t n_secrets;
    unsigned probed_max_connections; /* leader: last @@max_connections its probe read, 0 = none */
    uint64_t probed_at_ns;
    bool probing;
};

/* One key of one node's latest report. */
struct key_use {
    char key[SL_BUDGET_KEY_MAX + 1];
    unsigned open, in_use, waiting, max_connections;
    unsigned borrow_wait_max_ms;    /* longest borrow wait since the node's previous report */
    unsigned demand[DEMAND_WINDOW]; /* peaks of the last reports, newest at [0] */
};

/* FENCE_DONE: REVOKE it in the next round; also for a node that left with nothing open. */
enum fence_state { FENCE_NONE, FENCE_RUNNING, FENCE_DONE };

/* The leader's view of one node (volatile: rebuilt in each term). */
struct node_view {
    uint64_t node;
    bool reported;        /* a report arrived in this term */
    uint64_t seq;         /* its latest report */
    uint64_t received_ns; /* when it arrived (leader's clock) */
    uint64_t applied;     /* the node's applied index when it reported */
    uint64_t renewed_seq; /* the last seq a RENEW was proposed for */
    uint64_t expiry_ns;   /* leader's clock: after this the node's lease is over for sure */
    enum fence_state fence;
    unsigned fences_pending; /* probes of the running fence still out */
    bool fence_failed;
    uint64_t fence_retry_ns;
    struct key_use keys[KEYS_MAX];
    size_t n_keys;
};

struct sent {
    uint64_t seq, sent_ns;
};

struct sl_budget {
    uv_loop_t *loop;
    struct sl_store *store;
    struct sl_worker *worker;
    struct sl_fwd *fwd;
    struct sl_budget_options opt;
    char *token;
    bool closing;
    unsigned pending; /* probes and requests whose callbacks are still to come */
    unsigned open_handles;

    struct key_cfg keys[KEYS_MAX];
    size_t n_keys;

    /* Agent (every node). */
    uv_timer_t sample_timer, report_timer, soft_timer, hard_timer;
    uint64_t boot;    /* random high bits of this process's report sequence numbers */
    uint32_t counter; /* low bits */
    struct sent sent[SENT_RING];
    size_t sent_next;
    uint64_t lease_seq;         /* the committed renewal our lease rests on */
    uint64_t lease_deadline_ns; /* 0 = no lease */
    bool soft_expired;          /* quotas already taken down ahead of the deadline */
    bool report_in_flight;
    uint64_t reported_ns; /* when the last report was sent */
    /* Leaving (sl_budget_leave): polled until the connections are gone, then the last report. */
    bool leaving;
    void (*left)(void *arg);
    void *left_arg;
    uint64_t leave_deadline_ns;

    /* Leader (only while this node leads). */
    uv_timer_t round_timer;
    uint64_t led_term; /* the term the views below belong to; 0 = not leading */
    uint64_t takeover_ns;
    struct node_view nodes[NODES_MAX];
    size_t n_nodes;
    bool proposing;
    bool again; /* run another round as soon as the proposal in flight is done */
};

/* leader.c */
void sl_budget_leader_start(struct sl_budget *b);
/* A node's report arrived (parsed JSON). 0, or -1 when it is malformed (reason in err). Only the
 * leader keeps reports; others refuse them with 1 (not leader). */
int sl_budget_leader_report(struct sl_budget *b, json_t *report, char *err, size_t errlen);
/* The leader's figures for GET /v1/budget: per node lease expiry and latest usage. */
const struct node_view *sl_budget_leader_view(const struct sl_budget *b, uint64_t node);
bool sl_budget_leading(const struct sl_budget *b);

/* routes.c */
/* Read and parse the committed table. 0, or -1 (logged). */
int sl_budget_read_table(struct sl_budget *b, struct sl_budget_table *t);
void sl_budget_handle_closed(uv_handle_t *h);
void sl_budget_maybe_free(struct sl_budget *b);

#endif
