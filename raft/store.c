#include "raft/store.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>
#include <openssl/rand.h>
#include <raft.h>
#include <raft/uv.h>

#include "base/list.h"
#include "base/log.h"
#include "raft/fsm_glue.h"

/* A proposal found not committed is proposed again (same bytes, same request id) at most this
 * many times in all before the caller gets SL_STORE_ERROR. */
#define SUBMIT_MAX 3
#define PATH_MAX_  1024

struct proposal {
    struct raft_apply req;
    struct sl_store *s;
    struct sl_list link; /* s->pending while raft holds req, s->limbo while the outcome is sought */
    uint8_t *bytes;      /* the encoded command, kept to propose it again */
    size_t len;
    uint8_t req_id[SL_RAFT_REQID_LEN];
    raft_index index; /* log index of the latest submission */
    uint64_t deadline;
    unsigned submits;
    sl_store_propose_cb cb;
    void *arg;
};

struct barrier {
    struct raft_barrier req;
    struct sl_store *s;
    struct sl_list link; /* s->barriers */
    sl_store_done_cb cb;
    void *arg;
};

enum change_op {
    CHANGE_NONE,
    CHANGE_ADD,         /* raft_add in flight */
    CHANGE_ASSIGN_WAIT, /* raft_add done, raft_assign deferred to change_timer */
    CHANGE_ASSIGN,      /* raft_assign in flight */
    CHANGE_REMOVE,
    CHANGE_TRANSFER,
};

struct sl_store {
    uv_loop_t *loop;
    struct raft raft;
    struct raft_io io;
    struct raft_uv_transport transport;
    struct sl_fsm *fsm;
    struct sl_fsm_glue glue;
    uint64_t id;
    unsigned outcome_timeout_ms;

    uv_check_t check;        /* after every loop iteration: election wins, limbo, watch */
    uv_timer_t close_timer;  /* raft_close must not run inside a raft callback */
    uv_timer_t change_timer; /* raft_assign is not issued from raft_add's callback */
    unsigned open_handles;
    bool started;
    bool closing;
    sl_store_close_cb close_cb;
    void *close_arg;

    /* Leader warm-up: a barrier per term won (libraft 0.15 appends nothing on election). */
    struct raft_barrier warmup;
    bool warmup_pending;
    raft_term warmup_term; /* term of the barrier in flight */
    raft_term ready_term;  /* term whose barrier was applied; 0 = none */

    struct sl_list pending;  /* proposals raft holds */
    struct sl_list limbo;    /* proposals failed by raft whose outcome is not known yet */
    struct sl_list barriers; /* barriers raft holds */

    raft_index notified; /* applied index last given to the watcher */
    sl_store_watch_cb watch_cb;
    void *watch_arg;

    struct {
        enum change_op op;
        struct raft_change req;
        struct raft_transfer transfer;
        uint64_t id;
        int role; /* RAFT_VOTER/STANDBY/SPARE */
        sl_store_done_cb cb;
        void *arg;
    } change;
};

const char *sl_store_status_name(int status)
{
    switch (status) {
    case SL_STORE_OK: return "ok";
    case SL_STORE_NOT_LEADER: return "not_leader";
    case SL_STORE_BUSY: return "busy";
    case SL_STORE_INVALID: return "invalid";
    case SL_STORE_UNKNOWN: return "unknown";
    case SL_STORE_CLOSING: return "closing";
    case SL_STORE_EXISTS: return "exists";
    case SL_STORE_ERROR: return "error";
    }
    return "?";
}

/* raft_strerror is "unknown error" for 19..23 in 0.15 and raft_errmsg may be empty or stale, so
 * both go to the log with the code. */
static int from_raft(struct sl_store *s, int rv, const char *what)
{
    switch (rv) {
    case RAFT_NOTLEADER: return SL_STORE_NOT_LEADER;
    case RAFT_CANTCHANGE: return SL_STORE_BUSY;
    case RAFT_BADID:
    case RAFT_DUPLICATEID:
    case RAFT_DUPLICATEADDRESS:
    case RAFT_BADROLE:
    case RAFT_NOTFOUND: return SL_STORE_INVALID;
    case RAFT_CANTBOOTSTRAP: return SL_STORE_EXISTS;
    }
    const char *msg = raft_errmsg(&s->raft);
    sl_warn(0, "raft store: %s: %s (%d)%s%s", what, raft_strerror(rv), rv, *msg ? ": " : "", msg);
    return SL_STORE_ERROR;
}

/* "a.b.c.d:port" with a decimal port 1..65535: libraft 0.15 takes no hostnames (raft_start
 * fails later) and silently listens on 8080 when the port is missing. */
static bool address_valid(const char *a)
{
    if (!a)
        return false;
    const char *colon = strrchr(a, ':');
    if (!colon || colon == a || colon - a > 15)
        return false;
    char host[16];
    memcpy(host, a, (size_t)(colon - a));
    host[colon - a] = '\0';
    struct in_addr in;
    if (inet_pton(AF_INET, host, &in) != 1)
        return false;
    const char *p = colon + 1;
    unsigned long port = 0;
    size_t digits = 0;
    for (; *p >= '0' && *p <= '9' && digits < 6; p++, digits++)
        port = port * 10 + (unsigned long)(*p - '0');
    return *p == '\0' && digits >= 1 && digits <= 5 && port >= 1 && port <= 65535;
}

static int raft_role(enum sl_store_role role)
{
    switch (role) {
    case SL_STORE_VOTER: return RAFT_VOTER;
    case SL_STORE_STANDBY: return RAFT_STANDBY;
    case SL_STORE_SPARE: return RAFT_SPARE;
    }
    return -1;
}

static enum sl_store_role store_role(int role)
{
    return role == RAFT_VOTER     ? SL_STORE_VOTER
           : role == RAFT_STANDBY ? SL_STORE_STANDBY
                                  : SL_STORE_SPARE;
}

static void copy_address(char *dst, const char *src)
{
    snprintf(dst, SL_STORE_ADDR_MAX, "%s", src ? src : "");
}

static void leader_of(struct sl_store *s, uint64_t *id, char *address)
{
    raft_id lid = 0;
    const char *laddr = NULL;
    /* The address belongs to raft and changes with the next state change: copied. */
    raft_leader(&s->raft, &lid, &laddr);
    *id = lid;
    copy_address(address, lid ? laddr : NULL);
}

/* libraft 0.15 has no accessor for the term, the commit index or the configuration (later
 * versions make struct raft opaque); these struct reads are the only ones in the store. */
static raft_term current_term(struct sl_store *s)
{
    return s->raft.current_term;
}

static bool leader_ready(struct sl_store *s)
{
    return raft_state(&s->raft) == RAFT_LEADER && s->ready_term == current_term(s);
}

static int make_dir(const char *parent, const char *name, char *out, char *err, size_t errlen)
{
    int n = snprintf(out, PATH_MAX_, "%s/%s", parent, name);
    if (n < 0 || n >= PATH_MAX_) {
        snprintf(err, errlen, "data dir path too long");
        return -1;
    }
    if (mkdir(out, 0700) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "mkdir %s: %s", out, strerror(errno));
        return -1;
    }
    return 0;
}

static void on_check(uv_check_t *h);

int sl_store_open(struct sl_store **out, uv_loop_t *loop, const struct sl_store_options *opt,
                  char *err, size_t errlen)
{
    if (opt->id == 0) {
        snprintf(err, errlen, "node id must be > 0");
        return SL_STORE_INVALID;
    }
    if (!address_valid(opt->address)) {
        snprintf(err, errlen, "raft address must be an IPv4 a.b.c.d:port");
        return SL_STORE_INVALID;
    }
    unsigned election = opt->election_timeout_ms ? opt->election_timeout_ms : 1000;
    unsigned heartbeat = opt->heartbeat_timeout_ms ? opt->heartbeat_timeout_ms : election / 10;
    /* libraft's own check is an assert, compiled out in Debian's build (raft.md, pitfall 9). */
    if (heartbeat == 0 || heartbeat >= election) {
        snprintf(err, errlen, "heartbeat timeout must be > 0 and below the election timeout");
        return SL_STORE_INVALID;
    }
    char raft_dir[PATH_MAX_], lmdb_dir[PATH_MAX_];
    if (!opt->data_dir || make_dir(opt->data_dir, "raft", raft_dir, err, errlen) != 0 ||
        make_dir(opt->data_dir, "lmdb", lmdb_dir, err, errlen) != 0) {
        if (!opt->data_dir)
            snprintf(err, errlen, "no data dir");
        return SL_STORE_INVALID;
    }

    struct sl_store *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return SL_STORE_ERROR;
    }
    s->loop = loop;
    s->id = opt->id;
    s->outcome_timeout_ms = opt->outcome_timeout_ms ? opt->outcome_timeout_ms : 10 * election;
    sl_list_init(&s->pending);
    sl_list_init(&s->limbo);
    sl_list_init(&s->barriers);

    struct sl_fsm_options fopt = {.map_size = opt->lmdb_map_size};
    if (sl_fsm_open(&s->fsm, lmdb_dir, &fopt, err, errlen) != 0) {
        free(s);
        return SL_STORE_ERROR;
    }
    int rv = raft_uv_tcp_init(&s->transport, loop);
    if (rv != 0) {
        snprintf(err, errlen, "raft transport: %s", raft_strerror(rv));
        goto fail_fsm;
    }
    /* raft_uv_init only copies the directory; raft_init below checks it and probes O_DIRECT and
     * AIO support (ramfs and some container filesystems fail here). */
    rv = raft_uv_init(&s->io, loop, raft_dir, &s->transport);
    if (rv != 0) {
        snprintf(err, errlen, "raft io: %s", raft_strerror(rv));
        goto fail_transport;
    }
    sl_fsm_glue_init(&s->glue, s->fsm);
    rv = raft_init(&s->raft, &s->io, &s->glue.fsm, opt->id, opt->address);
    if (rv != 0) {
        snprintf(err, errlen, "raft init: %s (%d)", raft_errmsg(&s->raft), rv);
        raft_uv_close(&s->io);
        goto fail_transport;
    }
    sl_fsm_glue_bind(&s->glue, &s->raft);
    raft_set_election_timeout(&s->raft, election);
    raft_set_heartbeat_timeout(&s->raft, heartbeat);
    raft_set_snapshot_threshold(&s->raft, opt->snapshot_threshold ? opt->snapshot_threshold : 1024);
    raft_set_snapshot_trailing(&s->raft, opt->snapshot_trailing ? opt->snapshot_trailing : 2048);
    /* libraft 0.15 refuses an InstallSnapshot that arrives while the follower takes its own
     * snapshot, without answering; the leader then waits this long before sending it again (30 s
     * by default). A configuration snapshot is small: 5 s is plenty for one transfer. */
    raft_set_install_snapshot_timeout(&s->raft, 5000);
    /* A partitioned node must not inflate terms and depose a healthy leader when it returns. */
    raft_set_pre_vote(&s->raft, true);

    uv_check_init(loop, &s->check);
    uv_timer_init(loop, &s->close_timer);
    uv_timer_init(loop, &s->change_timer);
    s->check.data = s->close_timer.data = s->change_timer.data = s;
    s->open_handles = 3;
    *out = s;
    return SL_STORE_OK;

fail_transport:
    raft_uv_tcp_close(&s->transport);
fail_fsm:
    sl_fsm_close(s->fsm);
    free(s);
    return SL_STORE_ERROR;
}

int sl_store_bootstrap(struct sl_store *s, const struct sl_store_member *voters, size_t n)
{
    if (s->started || s->closing || n == 0)
        return SL_STORE_INVALID;
    bool self = false;
    struct raft_configuration conf;
    raft_configuration_init(&conf);
    int status = SL_STORE_OK;
    for (size_t i = 0; i < n && status == SL_STORE_OK; i++) {
        int role = raft_role(voters[i].role);
        /* raft_configuration_add refuses duplicate ids and addresses. */
        if (voters[i].id == 0 || !address_valid(voters[i].address) || role < 0 ||
            raft_configuration_add(&conf, voters[i].id, voters[i].address, role) != 0)
            status = SL_STORE_INVALID;
        self = self || (voters[i].id == s->id && role == RAFT_VOTER);
    }
    if (status == SL_STORE_OK && !self)
        status = SL_STORE_INVALID;
    if (status == SL_STORE_OK) {
        int rv = raft_bootstrap(&s->raft, &conf);
        if (rv != 0)
            status = from_raft(s, rv, "bootstrap");
    }
    raft_configuration_close(&conf);
    return status;
}

int sl_store_start(struct sl_store *s)
{
    if (s->started || s->closing)
        return SL_STORE_INVALID;
    /* Loads snapshot and log synchronously; a single voter also replays its log here. */
    int rv = raft_start(&s->raft);
    if (rv != 0)
        return from_raft(s, rv, "start");
    s->started = true;
    uv_check_start(&s->check, on_check);
    return SL_STORE_OK;
}

/* --- Proposals ----------------------------------------------------------------------------- */

static void proposal_finish(struct proposal *p, int status, const struct sl_fsm_result *r)
{
    struct sl_store *s = p->s;
    struct sl_store_result res;
    memset(&res, 0, sizeof res);
    res.status = status;
    if (r)
        res.fsm = *r;
    memcpy(res.req_id, p->req_id, sizeof res.req_id);
    if (status == SL_STORE_NOT_LEADER)
        leader_of(s, &res.leader_id, res.leader_address);
    if (sl_list_linked(&p->link))
        sl_list_remove(&p->link);
    sl_store_propose_cb cb = p->cb;
    void *arg = p->arg;
    free(p->bytes);
    free(p);
    cb(s, &res, arg);
}

/* Called once the entry is applied here (or known to be): its outcome by request id. */
static void proposal_resolve(struct proposal *p)
{
    struct sl_fsm_result r;
    int rc = sl_fsm_outcome(p->s->fsm, p->req_id, &r);
    if (rc == 0)
        proposal_finish(p, SL_STORE_OK, &r);
    else
        proposal_finish(p, SL_STORE_ERROR, NULL);
}

static void on_applied(struct raft_apply *req, int status, void *result)
{
    struct proposal *p = req->data;
    struct sl_store *s = p->s;
    sl_list_remove(&p->link);
    if (status == 0) {
        proposal_resolve(p);
        return;
    }
    if (s->closing) {
        proposal_finish(p, SL_STORE_CLOSING, NULL);
        return;
    }
    /* RAFT_LEADERSHIPLOST (or a failed write) does not mean "not committed": the entry may still
     * be committed by the next leader. on_check settles it. */
    sl_debug(0, "raft store: proposal at index %llu failed with %d, waiting for its outcome",
             (unsigned long long)p->index, status);
    p->deadline = uv_now(s->loop) + s->outcome_timeout_ms;
    sl_list_push_back(&s->limbo, &p->link);
}

static int proposal_submit(struct proposal *p)
{
    struct sl_store *s = p->s;
    if (p->submits >= SUBMIT_MAX)
        return SL_STORE_ERROR;
    /* raft_apply takes ownership of a raft_malloc'd buffer only when it succeeds. */
    struct raft_buffer buf = {.base = raft_malloc(p->len), .len = p->len};
    if (!buf.base)
        return SL_STORE_ERROR;
    memcpy(buf.base, p->bytes, p->len);
    p->req.data = p;
    int rv = raft_apply(&s->raft, &p->req, &buf, 1, on_applied);
    if (rv != 0) {
        raft_free(buf.base);
        return from_raft(s, rv, "apply");
    }
    p->index = p->req.index;
    p->submits++;
    sl_list_push_back(&s->pending, &p->link);
    return SL_STORE_OK;
}

int sl_store_propose(struct sl_store *s, const struct sl_store_change *c, sl_store_propose_cb cb,
                     void *arg)
{
    if (s->closing)
        return SL_STORE_CLOSING;
    if (!c->name)
        return SL_STORE_INVALID;
    struct sl_raft_cmd cmd = {.op = c->op, .kind = c->kind, .expected_rev = c->expected_rev};
    cmd.name = c->name;
    cmd.name_len = strlen(c->name);
    cmd.id = c->id;
    cmd.id_len = c->id ? strlen(c->id) : 0;
    cmd.body = c->body;
    cmd.body_len = c->body ? strlen(c->body) : 0;
    if (c->req_id) {
        memcpy(cmd.req_id, c->req_id, SL_RAFT_REQID_LEN);
    } else {
        /* An all-zero id is reserved by the command format. */
        static const uint8_t zero[SL_RAFT_REQID_LEN];
        do {
            if (RAND_bytes(cmd.req_id, SL_RAFT_REQID_LEN) != 1)
                return SL_STORE_ERROR;
        } while (memcmp(cmd.req_id, zero, sizeof zero) == 0);
    }
    size_t len = sl_raft_cmd_size(&cmd);
    if (len == 0)
        return SL_STORE_INVALID;

    struct proposal *p = calloc(1, sizeof *p);
    uint8_t *bytes = malloc(len);
    if (!p || !bytes) {
        free(p);
        free(bytes);
        return SL_STORE_ERROR;
    }
    sl_raft_cmd_encode(&cmd, bytes, len);
    p->s = s;
    sl_list_init(&p->link);
    p->bytes = bytes;
    p->len = len;
    memcpy(p->req_id, cmd.req_id, sizeof p->req_id);
    p->cb = cb;
    p->arg = arg;
    int status = proposal_submit(p);
    if (status != SL_STORE_OK) {
        free(bytes);
        free(p);
    }
    return status;
}

/* Settle proposals that raft failed. Once this node has applied the entry's index, the outcome
 * is in the state machine under the request id, or the index holds another entry and ours can
 * never commit (a committed index never changes). */
static void scan_limbo(struct sl_store *s)
{
    raft_index applied = raft_last_applied(&s->raft);
    uint64_t now = uv_now(s->loop);
    struct sl_list *pos, *tmp;
    sl_list_for_each_safe (pos, tmp, &s->limbo) {
        struct proposal *p = sl_container_of(pos, struct proposal, link);
        struct sl_fsm_result r;
        int rc = sl_fsm_outcome(s->fsm, p->req_id, &r);
        if (rc == 0) {
            proposal_finish(p, SL_STORE_OK, &r);
        } else if (rc < 0) {
            proposal_finish(p, SL_STORE_ERROR, NULL);
        } else if (applied >= p->index && raft_state(&s->raft) != RAFT_LEADER) {
            proposal_finish(p, SL_STORE_NOT_LEADER, NULL);
        } else if (applied >= p->index && leader_ready(s)) {
            sl_list_remove(&p->link);
            int status = proposal_submit(p);
            if (status != SL_STORE_OK)
                proposal_finish(p, status, NULL);
        } else if (now >= p->deadline) {
            proposal_finish(p, SL_STORE_UNKNOWN, NULL);
        }
        /* A callback asked to close: the close timer fails what is left. */
        if (s->closing)
            return;
    }
}

/* --- Barriers and the leader's warm-up ----------------------------------------------------- */

static void barrier_finish(struct barrier *b, int status)
{
    struct sl_store *s = b->s;
    if (sl_list_linked(&b->link))
        sl_list_remove(&b->link);
    sl_store_done_cb cb = b->cb;
    void *arg = b->arg;
    free(b);
    cb(s, status, arg);
}

static void on_barrier(struct raft_barrier *req, int status)
{
    struct barrier *b = req->data;
    struct sl_store *s = b->s;
    if (status == 0)
        barrier_finish(b, SL_STORE_OK);
    else if (s->closing)
        barrier_finish(b, SL_STORE_CLOSING);
    else if (status == RAFT_LEADERSHIPLOST)
        barrier_finish(b, SL_STORE_NOT_LEADER);
    else
        barrier_finish(b, from_raft(s, status, "barrier"));
}

int sl_store_barrier(struct sl_store *s, sl_store_done_cb cb, void *arg)
{
    if (s->closing)
        return SL_STORE_CLOSING;
    struct barrier *b = calloc(1, sizeof *b);
    if (!b)
        return SL_STORE_ERROR;
    b->s = s;
    b->cb = cb;
    b->arg = arg;
    b->req.data = b;
    int rv = raft_barrier(&s->raft, &b->req, on_barrier);
    if (rv != 0) {
        free(b);
        return from_raft(s, rv, "barrier");
    }
    sl_list_push_back(&s->barriers, &b->link);
    return SL_STORE_OK;
}

static void on_warmup(struct raft_barrier *req, int status)
{
    struct sl_store *s = req->data;
    s->warmup_pending = false;
    if (status == 0) {
        s->ready_term = s->warmup_term;
        sl_info(0, "raft store: node %llu leads term %llu", (unsigned long long)s->id,
                (unsigned long long)s->ready_term);
    }
}

/* There is no state-change callback in 0.15: this runs after every loop iteration (raft's tick
 * timer guarantees one per heartbeat). A failed warm-up barrier is retried on the next one. */
static void warm_up(struct sl_store *s)
{
    if (s->warmup_pending || raft_state(&s->raft) != RAFT_LEADER ||
        s->ready_term == current_term(s))
        return;
    s->warmup.data = s;
    if (raft_barrier(&s->raft, &s->warmup, on_warmup) == 0) {
        s->warmup_pending = true;
        s->warmup_term = current_term(s);
    }
}

static void on_check(uv_check_t *h)
{
    struct sl_store *s = h->data;
    if (s->closing)
        return;
    warm_up(s);
    if (!sl_list_empty(&s->limbo))
        scan_limbo(s);
    raft_index applied = raft_last_applied(&s->raft);
    if (!s->closing && s->watch_cb && applied != s->notified) {
        s->notified = applied;
        s->watch_cb(s, applied, s->watch_arg);
    }
}

void sl_store_watch(struct sl_store *s, sl_store_watch_cb cb, void *arg)
{
    s->watch_cb = cb;
    s->watch_arg = arg;
    s->notified = 0; /* the next check reports the current index */
}

/* --- Membership ---------------------------------------------------------------------------- */

static void change_done(struct sl_store *s, int status)
{
    sl_store_done_cb cb = s->change.cb;
    void *arg = s->change.arg;
    s->change.op = CHANGE_NONE;
    cb(s, status, arg);
}

static int change_status(struct sl_store *s, int status, const char *what)
{
    if (status == 0)
        return SL_STORE_OK;
    if (s->closing)
        return SL_STORE_CLOSING;
    /* The change entry may still commit under the next leader. */
    if (status == RAFT_LEADERSHIPLOST)
        return SL_STORE_UNKNOWN;
    return from_raft(s, status, what);
}

static int change_begin(struct sl_store *s, enum change_op op, sl_store_done_cb cb, void *arg)
{
    if (s->closing)
        return SL_STORE_CLOSING;
    if (s->change.op != CHANGE_NONE)
        return SL_STORE_BUSY;
    s->change.op = op;
    s->change.cb = cb;
    s->change.arg = arg;
    s->change.req.data = s;
    s->change.transfer.data = s;
    return SL_STORE_OK;
}

static void on_assigned(struct raft_change *req, int status)
{
    struct sl_store *s = req->data;
    change_done(s, change_status(s, status, "assign"));
}

static void on_assign_timer(uv_timer_t *t)
{
    struct sl_store *s = t->data;
    s->change.op = CHANGE_ASSIGN;
    int rv = raft_assign(&s->raft, &s->change.req, s->change.id, s->change.role, on_assigned);
    if (rv != 0)
        change_done(s, from_raft(s, rv, "assign"));
}

static void on_added(struct raft_change *req, int status)
{
    struct sl_store *s = req->data;
    if (status != 0 || s->change.role == RAFT_SPARE) {
        change_done(s, change_status(s, status, "add"));
        return;
    }
    /* A second change from inside the first one's callback is refused while raft still holds
     * the first (shared/notes/raft.md, section 3): defer it. */
    s->change.op = CHANGE_ASSIGN_WAIT;
    uv_timer_start(&s->change_timer, on_assign_timer, 0, 0);
}

int sl_store_add(struct sl_store *s, uint64_t id, const char *address, enum sl_store_role role,
                 sl_store_done_cb cb, void *arg)
{
    int rrole = raft_role(role);
    if (id == 0 || !address_valid(address) || rrole < 0)
        return SL_STORE_INVALID;
    int status = change_begin(s, CHANGE_ADD, cb, arg);
    if (status != SL_STORE_OK)
        return status;
    s->change.id = id;
    s->change.role = rrole;
    int rv = raft_add(&s->raft, &s->change.req, id, address, on_added);
    if (rv != 0) {
        s->change.op = CHANGE_NONE;
        return from_raft(s, rv, "add");
    }
    return SL_STORE_OK;
}

static void on_removed(struct raft_change *req, int status)
{
    struct sl_store *s = req->data;
    change_done(s, change_status(s, status, "remove"));
}

int sl_store_remove(struct sl_store *s, uint64_t id, sl_store_done_cb cb, void *arg)
{
    if (id == 0)
        return SL_STORE_INVALID;
    int status = change_begin(s, CHANGE_REMOVE, cb, arg);
    if (status != SL_STORE_OK)
        return status;
    int rv = raft_remove(&s->raft, &s->change.req, id, on_removed);
    if (rv != 0) {
        s->change.op = CHANGE_NONE;
        return from_raft(s, rv, "remove");
    }
    return SL_STORE_OK;
}

/* Fires when the target leads or after an election timeout: success is read from raft_leader. */
static void on_transferred(struct raft_transfer *req)
{
    struct sl_store *s = req->data;
    if (s->closing) {
        change_done(s, SL_STORE_CLOSING);
        return;
    }
    raft_id lid = 0;
    const char *laddr = NULL;
    raft_leader(&s->raft, &lid, &laddr);
    bool moved = s->change.id ? lid == s->change.id : lid != 0 && lid != s->id;
    change_done(s, moved ? SL_STORE_OK : SL_STORE_UNKNOWN);
}

int sl_store_transfer(struct sl_store *s, uint64_t id, sl_store_done_cb cb, void *arg)
{
    int status = change_begin(s, CHANGE_TRANSFER, cb, arg);
    if (status != SL_STORE_OK)
        return status;
    s->change.id = id;
    int rv = raft_transfer(&s->raft, &s->change.transfer, id, on_transferred);
    if (rv != 0) {
        s->change.op = CHANGE_NONE;
        return from_raft(s, rv, "transfer");
    }
    return SL_STORE_OK;
}

/* --- Reads --------------------------------------------------------------------------------- */

void sl_store_info(struct sl_store *s, struct sl_store_info *out)
{
    memset(out, 0, sizeof *out);
    out->id = s->id;
    int state = raft_state(&s->raft);
    out->state = state == RAFT_FOLLOWER    ? SL_STORE_FOLLOWER
                 : state == RAFT_CANDIDATE ? SL_STORE_CANDIDATE
                 : state == RAFT_LEADER    ? SL_STORE_LEADER
                                           : SL_STORE_UNAVAILABLE;
    out->leader_ready = leader_ready(s);
    out->term = current_term(s);
    out->last_index = raft_last_index(&s->raft);
    out->commit_index = s->raft.commit_index;
    out->applied_index = raft_last_applied(&s->raft);
    leader_of(s, &out->leader_id, out->leader_address);
}

size_t sl_store_members(struct sl_store *s, struct sl_store_member *out, size_t cap)
{
    const struct raft_configuration *conf = &s->raft.configuration;
    for (unsigned i = 0; i < conf->n && i < cap; i++) {
        out[i].id = conf->servers[i].id;
        copy_address(out[i].address, conf->servers[i].address);
        out[i].role = store_role(conf->servers[i].role);
    }
    return conf->n;
}

int sl_store_get(struct sl_store *s, enum sl_raft_kind kind, const char *name, const char *id,
                 char **json, uint64_t *revision)
{
    return sl_fsm_get(s->fsm, kind, name, id, json, revision);
}

int sl_store_list(struct sl_store *s, enum sl_raft_kind kind, const char *proxy, sl_fsm_list_cb cb,
                  void *arg)
{
    return sl_fsm_list(s->fsm, kind, proxy, cb, arg);
}

int sl_store_dump(struct sl_store *s, char **out)
{
    return sl_fsm_dump_json(s->fsm, out);
}

int sl_store_budget(struct sl_store *s, char **json)
{
    return sl_fsm_budget(s->fsm, json);
}

int sl_store_outcome(struct sl_store *s, const uint8_t req_id[SL_RAFT_REQID_LEN],
                     struct sl_fsm_result *out)
{
    return sl_fsm_outcome(s->fsm, req_id, out);
}

/* --- Close --------------------------------------------------------------------------------- */

static void on_handle_closed(uv_handle_t *h)
{
    struct sl_store *s = h->data;
    if (--s->open_handles > 0)
        return;
    sl_fsm_close(s->fsm);
    sl_store_close_cb cb = s->close_cb;
    void *arg = s->close_arg;
    free(s);
    if (cb)
        cb(arg);
}

/* raft_close fails what it holds (with RAFT_LEADERSHIPLOST, synchronously); anything still listed
 * afterwards was never going to be called back, and is failed here so no caller waits forever. */
static void on_raft_closed(struct raft *r)
{
    struct sl_store *s = sl_container_of(r, struct sl_store, raft);
    raft_uv_close(&s->io);
    raft_uv_tcp_close(&s->transport);
    struct sl_list *pos;
    while ((pos = sl_list_first(&s->pending))) {
        sl_list_remove(pos);
        proposal_finish(sl_container_of(pos, struct proposal, link), SL_STORE_CLOSING, NULL);
    }
    while ((pos = sl_list_first(&s->barriers))) {
        sl_list_remove(pos);
        barrier_finish(sl_container_of(pos, struct barrier, link), SL_STORE_CLOSING);
    }
    if (s->change.op != CHANGE_NONE)
        change_done(s, SL_STORE_CLOSING);
    uv_close((uv_handle_t *)&s->check, on_handle_closed);
    uv_close((uv_handle_t *)&s->close_timer, on_handle_closed);
    uv_close((uv_handle_t *)&s->change_timer, on_handle_closed);
}

static void on_close_timer(uv_timer_t *t)
{
    struct sl_store *s = t->data;
    struct sl_list *pos;
    while ((pos = sl_list_first(&s->limbo))) {
        sl_list_remove(pos);
        proposal_finish(sl_container_of(pos, struct proposal, link), SL_STORE_CLOSING, NULL);
    }
    if (s->change.op == CHANGE_ASSIGN_WAIT) {
        uv_timer_stop(&s->change_timer);
        change_done(s, SL_STORE_CLOSING);
    }
    raft_close(&s->raft, on_raft_closed);
}

void sl_store_close(struct sl_store *s, sl_store_close_cb close_cb, void *arg)
{
    s->closing = true;
    s->close_cb = close_cb;
    s->close_arg = arg;
    uv_check_stop(&s->check);
    /* Never raft_close inside a raft callback (libuv aborts, raft.md pitfall 2), and this may be
     * called from one: always defer. */
    uv_timer_start(&s->close_timer, on_close_timer, 0, 0);
}

char *sl_store_node_field(struct sl_store *s, uint64_t node, const char *field)
{
    char name[24], *text = NULL, *value = NULL;
    uint64_t rev;
    snprintf(name, sizeof name, "%" PRIu64, node);
    if (sl_store_get(s, SL_RAFT_NODE, name, NULL, &text, &rev) != 0)
        return NULL;
    json_t *doc = json_loads(text, 0, NULL);
    const char *v = json_string_value(json_object_get(doc, field));
    value = v ? strdup(v) : NULL;
    json_decref(doc);
    free(text);
    return value;
}
