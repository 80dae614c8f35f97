#!/usr/bin/python3
"""budget_shift: how fast the fleet-wide connection budget follows a burst of new clients.

Issue 4, acceptance item 6. The bench starts its own lab (tests/lib/sluicelab.py): a MariaDB with
max_connections=200 and a three-node sluice RaftCluster whose proxy `main` runs at
max_connections_percent=50, so the fleet's budget is 100 connections, 2 of them reserved for the
leader's probes (98 usable), with connection_borrow_timeout 120 s. Then:

  1. warm-up: a light steady load on the leader and one follower (--warm-clients per node, short
     transactions with --warm-think-ms between them), so the budget is spread before the burst;
  2. the burst: --clients new client connections opened at once on the other follower, each then
     running short transactions (BEGIN; UPDATE one row of its own; COMMIT) until --duration
     seconds after the burst started; the warm-up load keeps running;
     The clients are PyMySQL connections, one thread each, spread over --client-procs processes
     forked before the bench starts any thread (one interpreter's GIL would pace 2000 clients);
  3. while it runs: GET /v1/budget on the leader every 100 ms (quota per node, waiting), and the
     proxy user's connections in the database's PROCESSLIST every 50 ms.

Reported (printed, and written as JSON to --out):
  - the burst node's proportional fair share: usable × burst clients / all clients (what the
    allocator targets when every client of every node wants a connection), and the time from
    the burst's start until its quota first reaches 80 % and 95 % of it, and until it holds the
    majority (more than half of the usable budget);
  - borrow latency as the client sees it: the round trip of BEGIN (through sluice, BEGIN is the
    statement that borrows a backend), and the whole transaction's latency: p50/p90/p99/max in
    the shift window (burst start until the 95 % point) and after it;
  - connect latency of the burst's clients, commits per second, client errors (must be 0);
  - check: the most connections of the proxy's user the database ever showed (must be <= budget).
Exit status 0 when every check passed, 1 when one failed, 2 when the lab could not be set up.

The sluice binary: --sluice-bin, else $SLUICE_BIN, else build/node/sluice in the repository
(sluicelab.sluice_binary()). For numbers, build a release-like binary, e.g.
  cmake -S . -B build-e -DCMAKE_BUILD_TYPE=RelWithDebInfo && cmake --build build-e -j2
  SLUICE_BIN=build-e/node/sluice tests/bench/budget_shift.py            # 2000 clients, 30 s
  SLUICE_BIN=build-e/node/sluice tests/bench/budget_shift.py --quick    # 300 clients, 10 s
Lab state lives in a temporary directory, removed at the end unless --keep (kept, and named, when
a check failed). Client, proxies and database share this machine's CPUs: the numbers say as much
about the machine as about sluice. This is a benchmark, not a test: nothing in it is a timed
assertion of the test suite.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import resource
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[0] / "lib"))
import sluicelab  # noqa: E402

DEFAULT_OUT = HERE / "results" / "budget_shift.json"
MAX_CONNECTIONS = 200
PERCENT = 50


# ------------------------------------------------------------------------------------------------
# command line


def parse_args(argv=None):
    ap = argparse.ArgumentParser(
        prog="budget_shift.py",
        description="Benchmark: a burst of new clients on one sluice node; how long until the "
                    "fleet's connection quota follows the demand, and the borrow latency "
                    "(BEGIN round trip) while it shifts.",
        epilog="The sluice binary is --sluice-bin, else the SLUICE_BIN environment variable, else "
               "<repo>/build/node/sluice (as tests/lib/sluicelab.py finds it). Build a release-like "
               "one for numbers: cmake -S . -B build-e -DCMAKE_BUILD_TYPE=RelWithDebInfo && "
               "cmake --build build-e -j2; then SLUICE_BIN=build-e/node/sluice "
               "tests/bench/budget_shift.py [--quick]. Runs MariaDB (max_connections=200) and three "
               "nodes (max_connections_percent=50: budget 100, 2 reserved) in a temporary "
               "directory. Exit status: 0 all checks passed, 1 a check failed (client errors, the "
               "database saw more than the budget, the quota never reached 95 % of the fair "
               "share), 2 the lab could not be set up.",
    )
    ap.add_argument("--quick", action="store_true",
                    help="300 clients, 10 s burst, 5 s warm-up (well under a minute in all); "
                         "explicit --clients/--duration/--warmup still win")
    ap.add_argument("--clients", type=int, default=None,
                    help="new client connections in the burst (default 2000; 300 with --quick)")
    ap.add_argument("--duration", type=float, default=None,
                    help="seconds the burst's clients run transactions, from the burst's start "
                         "(default 30; 10 with --quick)")
    ap.add_argument("--warmup", type=float, default=None,
                    help="seconds of warm-up load before the burst (default 12; 5 with --quick)")
    ap.add_argument("--warm-clients", type=int, default=20,
                    help="warm-up clients on each of the two other nodes (they keep running "
                         "through the burst; default %(default)s)")
    ap.add_argument("--warm-think-ms", type=float, default=10.0,
                    help="pause between two transactions of a warm-up client (default %(default)s)")
    ap.add_argument("--client-procs", type=int, default=None,
                    help="processes running the burst's client threads (default: one per 250 "
                         "clients, at least 1)")
    ap.add_argument("--sluice-bin", default=None,
                    help="sluice binary (default: $SLUICE_BIN, else <repo>/build/node/sluice)")
    ap.add_argument("--out", default=str(DEFAULT_OUT), help="JSON result file (default tests/bench/results/budget_shift.json)")
    ap.add_argument("--state-dir", default=None,
                    help="lab state directory (default: a new temporary directory)")
    ap.add_argument("--keep", action="store_true",
                    help="keep the lab state directory (logs, configs, MariaDB data) at the end")
    ap.add_argument("--budget-interval", type=float, default=0.1,
                    help="seconds between two GET /v1/budget samples on the leader (default %(default)s)")
    ap.add_argument("--db-interval", type=float, default=0.05,
                    help="seconds between two PROCESSLIST samples (default %(default)s)")
    ap.add_argument("--log-level", default="info", help="sluice nodes' --log-level (default %(default)s)")
    a = ap.parse_args(argv)
    a.clients = a.clients if a.clients is not None else (300 if a.quick else 2000)
    a.duration = a.duration if a.duration is not None else (10.0 if a.quick else 30.0)
    a.warmup = a.warmup if a.warmup is not None else (5.0 if a.quick else 12.0)
    if a.client_procs is None:
        a.client_procs = max(1, -(-a.clients // 250))
    if a.client_procs < 1:
        ap.error("--client-procs must be >= 1")
    if a.clients < 1 or a.duration <= 0 or a.warmup < 0 or a.warm_clients < 0:
        ap.error("--clients must be >= 1, --duration > 0, --warmup and --warm-clients >= 0")
    return a


# ------------------------------------------------------------------------------------------------
# statistics


def pct(sorted_values, p):
    """Nearest-rank percentile of an ascending list (None when empty)."""
    if not sorted_values:
        return None
    k = max(0, min(len(sorted_values) - 1, int(-(-p * len(sorted_values) // 100)) - 1))
    return sorted_values[k]


def dist_ms(values):
    """{count, p50, p90, p99, max} in milliseconds of a list of seconds."""
    v = sorted(values)
    out = {"count": len(v)}
    for name, p in (("p50", 50), ("p90", 90), ("p99", 99)):
        x = pct(v, p)
        out[name] = None if x is None else round(x * 1000, 2)
    out["max"] = round(v[-1] * 1000, 2) if v else None
    return out


def fmt_ms(x):
    return "-" if x is None else (f"{x:.1f}" if x < 1000 else f"{x:.0f}")


def fmt_s(x):
    return "not reached" if x is None else f"{x:.2f} s"


# ------------------------------------------------------------------------------------------------
# load


def _client(rec, group, node, user, key, think_s, gate, stopping):
    """One client: its own connection through `node`, short transactions on row `key` until
    stopping(). Appends to rec's lists (list.append is atomic)."""
    import pymysql
    conn = None
    phase = "connect"
    gate.wait()
    while not stopping():
        try:
            if conn is None:
                phase = "connect"
                t0 = time.monotonic()
                conn = node.connect(user, connect_timeout=120, read_timeout=300, write_timeout=300,
                                    autocommit=True)
                rec["connects"].append((group, t0, time.monotonic() - t0))
                if stopping():
                    break
            cur = conn.cursor()
            phase = "BEGIN"
            t0 = time.monotonic()
            cur.execute("BEGIN")  # through sluice, the statement that borrows a backend
            t1 = time.monotonic()
            phase = "UPDATE"
            cur.execute("UPDATE app.acct SET v = v + 1 WHERE id = %s", (key,))
            phase = "COMMIT"
            cur.execute("COMMIT")
            t2 = time.monotonic()
            rec["txns"].append((group, t0, t1 - t0, t2 - t0))
            if think_s:
                time.sleep(think_s)
        except (pymysql.err.Error, OSError) as e:
            code = e.args[0] if e.args and isinstance(e.args[0], int) else None
            rec["errors"].append((group, time.monotonic(), node.id, code, str(e)[:300], phase))
            try:
                if conn is not None:
                    conn.close()
            except Exception:
                pass
            conn = None
            time.sleep(0.2)
    if conn is not None:
        try:
            conn.close()
        except Exception:
            pass


def _client_process(group, clients, user, think_s, gate, stop_event, deadline, ready, out):
    """Body of a client process: a thread per (node, key) in `clients`, all started at once and
    waiting at a gate; they stop at `deadline` (shared monotonic time, 0 = not set yet) or when
    stop_event is set. Sends {txns, connects, errors, stuck} through `out` at the end."""
    threading.stack_size(256 * 1024)
    rec = {"txns": [], "connects": [], "errors": []}
    local_gate, local_stop = threading.Event(), threading.Event()

    def stopping():
        d = deadline.value
        return local_stop.is_set() or (d > 0 and time.monotonic() >= d)

    threads = [threading.Thread(target=_client, daemon=True,
                                args=(rec, group, node, user, key, think_s, local_gate, stopping))
               for node, key in clients]
    for t in threads:
        t.start()
    ready.set()
    gate.wait()
    local_gate.set()
    while True:
        alive = [t for t in threads if t.is_alive()]
        if not alive:
            break
        if stop_event.wait(0.2):
            local_stop.set()
            for t in alive:
                t.join(10.0 / len(alive))
            break
    rec["stuck"] = sum(t.is_alive() for t in threads)
    out.send(rec)
    out.close()


class ClientProcess:
    """A child process running the client threads of one group (forked before the parent starts
    any thread: PyMySQL is synchronous, and a few hundred threads per interpreter keep the GIL
    from pacing the clients as 2000 in one would)."""

    def __init__(self, ctx, group, clients, user, think_s=0.0):
        self.group = group
        self.n = len(clients)
        self.gate, self.stop_event, self.ready = ctx.Event(), ctx.Event(), ctx.Event()
        self.deadline = ctx.Value("d", 0.0, lock=False)
        self.reader, writer = ctx.Pipe(duplex=False)
        self.proc = ctx.Process(target=_client_process, daemon=True, name=f"clients-{group}",
                                args=(group, clients, user, think_s, self.gate, self.stop_event,
                                      self.deadline, self.ready, writer))
        self._writer = writer

    def start(self):
        self.proc.start()
        self._writer.close()

    def collect(self, timeout):
        """The child's records; after `timeout` s it is told to stop, then killed."""
        rec = None
        for wait, action in ((timeout, self.stop_event.set), (30.0, self.proc.kill), (5.0, None)):
            try:
                if self.reader.poll(wait):
                    rec = self.reader.recv()
                    break
            except (EOFError, OSError):
                break
            if action:
                action()
        self.proc.join(10)
        if rec is None:
            rec = {"txns": [], "connects": [], "errors": [
                (self.group, time.monotonic(), "-", None,
                 f"client process {self.proc.pid} returned nothing (exit {self.proc.exitcode})",
                 "collect")], "stuck": self.n}
        return rec


class Clients:
    """All client processes and, once collected, their merged records."""

    def __init__(self):
        import multiprocessing
        self.ctx = multiprocessing.get_context("fork")
        self.procs = []
        self.txns, self.connects, self.errors = [], [], []
        self.stuck = 0

    def add(self, group, clients, user, procs=1, think_s=0.0):
        parts = [clients[i::procs] for i in range(procs)]
        out = [ClientProcess(self.ctx, group, part, user, think_s) for part in parts if part]
        self.procs += out
        return out

    def start_all(self, timeout=120.0):
        for p in self.procs:
            p.start()
        deadline = time.monotonic() + timeout
        for p in self.procs:
            if not p.ready.wait(max(0.1, deadline - time.monotonic())):
                raise sluicelab.LabError(f"client process {p.proc.pid} ({p.group}) not ready in time")

    def collect(self, timeout):
        deadline = time.monotonic() + timeout
        for p in self.procs:
            rec = p.collect(max(1.0, deadline - time.monotonic()))
            self.txns += rec["txns"]
            self.connects += rec["connects"]
            self.errors += rec["errors"]
            self.stuck += rec["stuck"]

    def abort(self):
        for p in self.procs:
            p.stop_event.set()
            p.gate.set()
        for p in self.procs:
            p.proc.join(15)
            if p.proc.is_alive():
                p.proc.kill()


# ------------------------------------------------------------------------------------------------
# samplers


class Sampler(threading.Thread):
    def __init__(self, interval):
        super().__init__(daemon=True)
        self.interval = interval
        self.samples = []
        self.failures = []
        self._stop_event = threading.Event()

    def run(self):
        nxt = time.monotonic()
        while not self._stop_event.is_set():
            try:
                self.sample()
            except Exception as e:  # reported; keep sampling
                self.failures.append((time.monotonic(), repr(e)[:300]))
            nxt += self.interval
            delay = nxt - time.monotonic()
            if delay < 0:
                nxt = time.monotonic()
                delay = 0
            self._stop_event.wait(delay)

    def stop(self):
        self._stop_event.set()
        self.join(15)
        return self.samples

    def mean_interval(self):
        if len(self.samples) < 2:
            return None
        return (self.samples[-1][0] - self.samples[0][0]) / (len(self.samples) - 1)


class BudgetSampler(Sampler):
    """GET /v1/budget on the leader: (t, {node: quota}, {node: waiting}, {node: in_use},
    {node: open}, committed). t is the middle of the request."""

    def __init__(self, leader, interval):
        super().__init__(interval)
        self.leader = leader

    def sample(self):
        t0 = time.monotonic()
        status, _, doc = self.leader.admin_json("GET", "/v1/budget")
        t1 = time.monotonic()
        if status != 200:
            raise sluicelab.LabError(f"GET /v1/budget answered {status}: {doc}")
        (e,) = [b for b in doc["budgets"] if b["key"].startswith("main/")]
        nodes = e["nodes"]
        self.samples.append(((t0 + t1) / 2,
                             {n["node"]: n["quota"] for n in nodes},
                             {n["node"]: n.get("waiting", 0) for n in nodes},
                             {n["node"]: n.get("in_use", 0) for n in nodes},
                             {n["node"]: n.get("open", 0) for n in nodes},
                             e.get("committed")))


class DBSampler(Sampler):
    """The proxy user's connections in the database's PROCESSLIST, in all and per source address
    (a node's data address): (t, total, {address: count})."""

    def __init__(self, db, user, interval):
        super().__init__(interval)
        self.db, self.user = db, user
        self.conn = None

    def sample(self):
        if self.conn is None:
            self.conn = self.db.admin()
        with self.conn.cursor() as cur:
            cur.execute("SELECT SUBSTRING_INDEX(HOST, ':', 1), COUNT(*) FROM "
                        "information_schema.PROCESSLIST WHERE USER = %s GROUP BY 1",
                        (self.user.name,))
            rows = {h: int(c) for h, c in cur.fetchall()}
        self.samples.append((time.monotonic(), sum(rows.values()), rows))

    def stop(self):
        s = super().stop()
        if self.conn is not None:
            try:
                self.conn.close()
            except Exception:
                pass
        return s


# ------------------------------------------------------------------------------------------------
# lab


def budget_entry(node):
    try:
        status, _, doc = node.admin_json("GET", "/v1/budget")
    except OSError:
        return None
    if status != 200 or not isinstance(doc, dict):
        return None
    found = [b for b in doc.get("budgets", []) if b["key"].startswith("main/")]
    return found[0] if found else None


def wait_until(what, predicate, timeout, interval=0.1):
    deadline = time.monotonic() + timeout
    while True:
        v = predicate()
        if v:
            return v
        if time.monotonic() > deadline:
            raise sluicelab.LabError(f"timed out after {timeout:.0f} s waiting for {what} "
                                     f"(last value {v!r})")
        time.sleep(interval)


def setup_lab(state_dir, args, n_rows):
    binary = args.sluice_bin or os.environ.get("SLUICE_BIN") or None
    cluster = sluicelab.RaftCluster(state_dir, nodes=3, max_connections=MAX_CONNECTIONS,
                                    db_port=sluicelab.free_port(), proxy_port=sluicelab.free_port(),
                                    binary=binary, log_level=args.log_level)
    cluster.start(create_proxy=True)  # stops what it started when it fails
    try:
        db = cluster.db
        with sluicelab.step(f"loading app.acct ({n_rows} rows)"):
            with db.admin() as c, c.cursor() as cur:
                cur.execute("CREATE TABLE IF NOT EXISTS app.acct (id INT PRIMARY KEY, v BIGINT NOT NULL)")
                cur.execute(f"INSERT IGNORE INTO app.acct SELECT seq, 0 FROM app.seq_1_to_{int(n_rows)}")
        leader = cluster.wait_leader()
        with sluicelab.step(f"setting max_connections_percent={PERCENT}, connection_borrow_timeout=120"):
            sluicelab.admin_write(leader, "PUT", "/v1/proxies/main/target-group",
                                  {"connection_pool_config": {"max_connections_percent": PERCENT,
                                                              "max_idle_connections_percent": PERCENT,
                                                              "connection_borrow_timeout": 120}})
        want = MAX_CONNECTIONS * PERCENT // 100
        with sluicelab.step(f"waiting for the budget ({want}) and a quota on every node"):
            wait_until("the budget on the leader",
                       lambda: (lambda e: e and e["budget"] == want and
                                len([n for n in e["nodes"] if n["quota"] > 0]) == 3)(budget_entry(leader)),
                       timeout=30)
        cluster.wait_serving(timeout=30)
    except BaseException:
        cluster.stop()
        raise
    return cluster, leader


# ------------------------------------------------------------------------------------------------
# analysis


def first_time(samples, t_burst, pred):
    for s in samples:
        if s[0] >= t_burst and pred(s):
            return s[0] - t_burst
    return None


def analyse(args, cluster, leader, burst_node, others, entry, t_burst, t_end, clients,
            budget_samples, db_samples, budget_sampler, db_sampler):
    usable = entry["budget"] - entry["reserve"]
    n_other = args.warm_clients * len(others)
    fair = usable * args.clients / (args.clients + n_other)
    bid = burst_node.raft_id
    q = lambda s: s[1].get(bid, 0)  # noqa: E731
    t80 = first_time(budget_samples, t_burst, lambda s: q(s) >= 0.8 * fair)
    t95 = first_time(budget_samples, t_burst, lambda s: q(s) >= 0.95 * fair)
    tmaj = first_time(budget_samples, t_burst, lambda s: 2 * q(s) > usable)
    # When the leader first saw the burst node's demand (in use + waiting, from its last report)
    # reach its fair share: from then on the client ramp no longer limits the shift.
    tdem = first_time(budget_samples, t_burst,
                      lambda s: s[2].get(bid, 0) + s[3].get(bid, 0) >= fair)
    before = [s for s in budget_samples if s[0] < t_burst]
    during = [s for s in budget_samples if t_burst <= s[0] <= t_end]
    tail = [s for s in during if s[0] >= t_end - 3.0]
    quota_before = {n.id: before[-1][1].get(n.raft_id, 0) for n in cluster.nodes} if before else {}
    quota_final = {n.id: sorted(s[1].get(n.raft_id, 0) for s in tail)[len(tail) // 2]
                   for n in cluster.nodes} if tail else {}

    shift_end = t_burst + t95 if t95 is not None else t_end
    burst_tx = [x for x in clients.txns if x[0] == "burst" and t_burst <= x[1] < t_end]
    warm_tx = [x for x in clients.txns if x[0] == "warm" and t_burst <= x[1] < t_end]

    def window(txs, lo, hi):
        sel = [x for x in txs if lo <= x[1] < hi]
        secs = max(1e-9, hi - lo)
        return {"seconds": round(hi - lo, 3), "transactions": len(sel),
                "commits_per_s": round(len(sel) / secs, 1),
                "borrow_ms": dist_ms([x[2] for x in sel]),
                "transaction_ms": dist_ms([x[3] for x in sel])}

    conn_lat = [x[2] for x in clients.connects if x[0] == "burst"]
    all_connected = None
    burst_connects = sorted(x[1] + x[2] for x in clients.connects if x[0] == "burst")
    if len(burst_connects) >= args.clients:
        all_connected = burst_connects[args.clients - 1] - t_burst

    db_max = max((s[1] for s in db_samples), default=None)
    db_max_t = next((s[0] - t_burst for s in db_samples if s[1] == db_max), None)
    per_addr_max = collections.Counter()
    for s in db_samples:
        for a, c in s[2].items():
            per_addr_max[a] = max(per_addr_max[a], c)

    timeline = []
    if during:
        step_s, nxt = 0.5, 0.0
        limit = (t95 if t95 is not None else args.duration) + 2.0
        for s in during:
            rel = s[0] - t_burst
            if rel > limit:
                break
            if rel >= nxt:
                timeline.append({"t": round(rel, 2),
                                 "quota": {n.id: s[1].get(n.raft_id, 0) for n in cluster.nodes},
                                 "waiting": {n.id: s[2].get(n.raft_id, 0) for n in cluster.nodes},
                                 "committed": s[5]})
                nxt = rel - (rel % step_s) + step_s

    return {
        "setup": {"clients": args.clients, "duration_s": args.duration, "warmup_s": args.warmup,
                  "warm_clients_per_node": args.warm_clients, "warm_think_ms": args.warm_think_ms,
                  "max_connections": entry["max_connections"], "percent": entry["percent"],
                  "budget": entry["budget"], "reserve": entry["reserve"], "usable": usable,
                  "burst_node": burst_node.id, "leader": leader.id,
                  "warm_nodes": [n.id for n in others],
                  "sluice_bin": str(cluster.nodes[0].binary), "cpus": os.cpu_count(),
                  "budget_sample_interval_s": args.budget_interval,
                  "db_sample_interval_s": args.db_interval,
                  "client_procs": args.client_procs, "quick": args.quick},
        "fair_share": round(fair, 2),
        "quota_before_burst": quota_before,
        "quota_final_median_last_3s": quota_final,
        "burst_quota_peak": max((q(s) for s in during), default=None),
        "time_to_80pct_s": None if t80 is None else round(t80, 3),
        "time_to_95pct_s": None if t95 is None else round(t95, 3),
        "time_to_majority_s": None if tmaj is None else round(tmaj, 3),
        "time_to_demand_seen_s": None if tdem is None else round(tdem, 3),
        "demand_seen_to_95pct_s": None if tdem is None or t95 is None else round(t95 - tdem, 3),
        "burst": {
            "connect_ms": dist_ms(conn_lat),
            "all_connected_after_s": None if all_connected is None else round(all_connected, 3),
            "shift": window(burst_tx, t_burst, shift_end),
            "after": window(burst_tx, shift_end, t_end) if shift_end < t_end else None,
        },
        "warm_nodes_during_burst": {
            "shift": window(warm_tx, t_burst, shift_end),
            "after": window(warm_tx, shift_end, t_end) if shift_end < t_end else None,
        },
        "errors": [{"group": g, "t_s": round(t - t_burst, 3), "node": n, "code": c, "message": m,
                    "phase": ph} for g, t, n, c, m, ph in clients.errors],
        "database": {"max_user_connections_seen": db_max,
                     "at_s": None if db_max_t is None else round(db_max_t, 3),
                     "max_per_address": dict(per_addr_max), "samples": len(db_samples),
                     "mean_interval_ms": None if db_sampler.mean_interval() is None
                     else round(db_sampler.mean_interval() * 1000, 1),
                     "sampler_failures": db_sampler.failures[:20]},
        "budget_samples": {"count": len(budget_samples),
                           "mean_interval_ms": None if budget_sampler.mean_interval() is None
                           else round(budget_sampler.mean_interval() * 1000, 1),
                           "failures": budget_sampler.failures[:20]},
        "timeline": timeline,
        "series": [[round(s[0] - t_burst, 3)] + [s[1].get(n.raft_id, 0) for n in cluster.nodes] +
                   [s[2].get(bid, 0)] for s in budget_samples],
        "series_columns": ["t_s"] + [f"quota_{n.id}" for n in cluster.nodes] + [f"waiting_{burst_node.id}"],
    }


def report(r):
    s = r["setup"]
    out = []
    w = out.append
    w("")
    w(f"budget_shift: {s['clients']} new clients on {s['burst_node']} (follower; leader {s['leader']}), "
      f"{s['warm_clients_per_node']} warm-up clients on each of {', '.join(s['warm_nodes'])}")
    w(f"  budget {s['budget']} (max_connections {s['max_connections']} x {s['percent']} %), reserve "
      f"{s['reserve']}, usable {s['usable']}; burst {s['duration_s']:.0f} s after {s['warmup_s']:.0f} s "
      f"warm-up; {s['cpus']} CPUs shared by client, proxies and database")
    w(f"  sluice: {s['sluice_bin']}")
    w("")
    w(f"  proportional fair share of {s['burst_node']}: {r['fair_share']:.1f} "
      f"(usable x {s['clients']} / "
      f"{s['clients'] + s['warm_clients_per_node'] * len(s['warm_nodes'])} clients)")
    w(f"  quota before the burst:          {r['quota_before_burst']}")
    w(f"  quota at the end (median, 3 s):  {r['quota_final_median_last_3s']}   "
      f"(peak of {s['burst_node']}: {r['burst_quota_peak']})")
    w("")
    w(f"  {'from burst start until':44} {'time':>12}")
    w(f"  {'quota >= 80 % of fair share (' + format(0.8 * r['fair_share'], '.1f') + ')':44} "
      f"{fmt_s(r['time_to_80pct_s']):>12}")
    w(f"  {'quota >= 95 % of fair share (' + format(0.95 * r['fair_share'], '.1f') + ')':44} "
      f"{fmt_s(r['time_to_95pct_s']):>12}")
    w(f"  {'holds the majority (quota > ' + format(s['usable'] / 2, 'g') + ')':44} "
      f"{fmt_s(r['time_to_majority_s']):>12}")
    b = r["burst"]
    all_conn = b["all_connected_after_s"]
    w(f"  {'all ' + str(s['clients']) + ' clients connected':44} {fmt_s(all_conn):>12}")
    w(f"  {'leader sees demand >= fair share':44} {fmt_s(r['time_to_demand_seen_s']):>12}")
    w(f"  {'  ... and from then until 95 %':44} {fmt_s(r['demand_seen_to_95pct_s']):>12}")
    w("")
    hdr = f"  {'latency (ms)':34} {'count':>7} {'p50':>8} {'p90':>8} {'p99':>8} {'max':>8} {'tx/s':>8}"
    w(hdr)

    def row(label, d, rate=None):
        w(f"  {label:34} {d['count']:>7} {fmt_ms(d['p50']):>8} {fmt_ms(d['p90']):>8} "
          f"{fmt_ms(d['p99']):>8} {fmt_ms(d['max']):>8} {'' if rate is None else format(rate, '.0f'):>8}")

    row("connect (TLS + login), burst", b["connect_ms"])
    for name, key in (("shift", "shift"), ("after", "after")):
        win = b[key]
        if win is None:
            continue
        row(f"borrow (BEGIN), {name} {win['seconds']:.1f} s", win["borrow_ms"], win["commits_per_s"])
        row(f"transaction, {name}", win["transaction_ms"])
    for name, key in (("shift", "shift"), ("after", "after")):
        win = r["warm_nodes_during_burst"][key]
        if win is None:
            continue
        row(f"warm nodes: borrow, {name}", win["borrow_ms"], win["commits_per_s"])
    w("")
    if r["timeline"]:
        ids = list(r["timeline"][0]["quota"].keys())
        w(f"  quota timeline after the burst start (waiting on {s['burst_node']}):")
        w("  " + f"{'t (s)':>7} " + " ".join(f"{i:>7}" for i in ids) + f" {'waiting':>8} {'committed':>10}")
        for p in r["timeline"]:
            w("  " + f"{p['t']:>7.2f} " + " ".join(f"{p['quota'][i]:>7}" for i in ids) +
              f" {p['waiting'][s['burst_node']]:>8} {str(p['committed']):>10}")
        w("")
    d = r["database"]
    w(f"  budget samples: {r['budget_samples']['count']} (mean interval "
      f"{r['budget_samples']['mean_interval_ms']} ms, failures {len(r['budget_samples']['failures'])}); "
      f"PROCESSLIST samples: {d['samples']} (mean interval {d['mean_interval_ms']} ms)")
    c = r.get("cpu_during_burst")
    if c:
        w(f"  CPU during the burst, in cores of {c['cpus']}: " +
          ", ".join(f"{k} {v:.2f}" for k, v in c["lab_cores"].items()) +
          f"; other processes {c['other_processes_cores']:.2f}" +
          (f" (top: {', '.join(f'{k} {v:.2f}' for k, v in c['other_top'].items())})"
           if c["other_top"] else ""))
    w("")
    w("  checks:")
    for name, ok, detail in r["checks"]:
        w(f"    [{'ok' if ok else 'FAILED'}] {name}: {detail}")
    if r["errors"]:
        w(f"  client errors ({len(r['errors'])}, first 20):")
        for e in r["errors"][:20]:
            w(f"    t={e['t_s']:+.2f} s {e['group']} on {e['node']} during {e['phase']}: "
              f"[{e['code']}] {e['message']}")
    return "\n".join(out)


# ------------------------------------------------------------------------------------------------


def cpu_snapshot():
    """{pid: (ppid, cpu seconds (user + system, all threads), comm)} of every process."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            raw = open(f"/proc/{d}/stat").read()
        except OSError:
            continue
        comm = raw[raw.index("(") + 1:raw.rindex(")")]
        f = raw[raw.rindex(")") + 2:].split()
        out[int(d)] = (int(f[1]), (int(f[11]) + int(f[12])) / tick, comm)
    return out


def cpu_usage(before, after, ours, seconds):
    """CPU used during the burst, in cores (CPU seconds / wall seconds): per part of the lab
    (`ours`: pid -> label; their descendants count for them) and, for the machine's other
    processes, in all and the top three (other work on a shared machine skews the numbers)."""
    def label(pid):
        seen = 0
        while pid and seen < 64:
            if pid in ours:
                return ours[pid]
            pid = after.get(pid, before.get(pid, (0,)))[0]
            seen += 1
        return None
    parts, foreign = collections.Counter(), collections.Counter()
    for pid, (_, t1, comm) in after.items():
        dt = t1 - before[pid][1] if pid in before else 0.0  # new processes: not counted
        if dt <= 0:
            continue
        lab = label(pid)
        if lab is None:
            foreign[f"{comm}[{pid}]"] += dt
        else:
            parts[lab] += dt
    core = lambda x: round(x / seconds, 2)  # noqa: E731
    return {"seconds": round(seconds, 2), "cpus": os.cpu_count(),
            "lab_cores": {k: core(v) for k, v in sorted(parts.items())},
            "other_processes_cores": core(sum(foreign.values())),
            "other_top": {k: core(v) for k, v in foreign.most_common(3) if core(v) >= 0.05}}


def main(argv=None) -> int:
    args = parse_args(argv)
    threading.stack_size(256 * 1024)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = 2 * (args.clients + 2 * args.warm_clients) + 1024  # ours, and the nodes' (inherited)
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(need, soft)), hard))

    state_dir = Path(args.state_dir) if args.state_dir else Path(tempfile.mkdtemp(prefix="sluice-bench-"))
    own_dir = args.state_dir is None
    n_rows = args.clients + 2 * args.warm_clients + 10
    cluster = clients = None
    ok = False
    try:
        try:
            cluster, leader = setup_lab(state_dir, args, n_rows)
        except Exception as e:  # setup_lab stopped what it started
            print(f"budget_shift: could not set up the lab: {e}", file=sys.stderr)
            return 2
        followers = [n for n in cluster.nodes if n is not leader]
        burst_node = followers[-1]
        others = [leader] + followers[:-1]
        user = cluster.app_user

        # Client processes first (fork before this process starts any thread): one for the
        # warm-up clients (rows 1..), --client-procs for the burst (the rows after them).
        clients = Clients()
        warm = [(n, key) for i, n in enumerate(others)
                for key in range(1 + i * args.warm_clients, 1 + (i + 1) * args.warm_clients)]
        first = 1 + len(warm)
        burst = [(burst_node, key) for key in range(first, first + args.clients)]
        warm_procs = clients.add("warm", warm, user, 1, think_s=args.warm_think_ms / 1000)
        burst_procs = clients.add("burst", burst, user, args.client_procs)
        with sluicelab.step(f"starting {len(clients.procs)} client processes "
                            f"({len(warm)} warm-up + {len(burst)} burst clients, waiting at a gate)"):
            clients.start_all()
        pids = {os.getpid(): "bench (samplers)", cluster.db.pid: "mariadb",
                **{n.pid: n.id for n in cluster.nodes},
                **{p.proc.pid: "clients" for p in clients.procs}}

        budget_sampler = BudgetSampler(leader, args.budget_interval)
        db_sampler = DBSampler(cluster.db, user, args.db_interval)
        budget_sampler.start()
        db_sampler.start()

        with sluicelab.step(f"warm-up: {args.warm_clients} clients on each of "
                            f"{', '.join(n.id for n in others)} for {args.warmup:.0f} s"):
            for p in warm_procs:
                p.gate.set()
            time.sleep(args.warmup)
        entry = budget_entry(leader)
        sluicelab.say(f"  quotas before the burst: "
                      f"{ {n['node']: n['quota'] for n in entry['nodes']} } (raft ids; burst node "
                      f"{burst_node.id} = {burst_node.raft_id})")

        with sluicelab.step(f"burst: {args.clients} new clients on {burst_node.id} for "
                            f"{args.duration:.0f} s"):
            cpu0 = cpu_snapshot()
            t_burst = time.monotonic()
            t_end = t_burst + args.duration
            for p in clients.procs:
                p.deadline.value = t_end
            for p in burst_procs:
                p.gate.set()
            while time.monotonic() < t_end:
                time.sleep(0.1)
            cpu1 = cpu_snapshot()
            clients.collect(timeout=330)
        budget_samples = budget_sampler.stop()
        db_samples = db_sampler.stop()
        if clients.stuck:
            sluicelab.say(f"  {clients.stuck} client threads did not finish in time")
        cpu = cpu_usage(cpu0, cpu1, pids, t_end - t_burst)

        r = analyse(args, cluster, leader, burst_node, others, entry, t_burst, t_end, clients,
                    budget_samples, db_samples, budget_sampler, db_sampler)
        r["cpu_during_burst"] = cpu
        db_max = r["database"]["max_user_connections_seen"]
        budget = r["setup"]["budget"]
        r["checks"] = [
            ("client errors", not r["errors"], f"{len(r['errors'])}"),
            ("database never saw more than the budget",
             db_max is not None and db_max <= budget,
             f"max {db_max} connections of user {user.name} in PROCESSLIST (budget {budget}, "
             f"{r['database']['samples']} samples)"),
            ("quota followed demand", r["time_to_95pct_s"] is not None,
             f"95 % of the fair share after {fmt_s(r['time_to_95pct_s'])}"),
            ("every burst client connected", r["burst"]["all_connected_after_s"] is not None,
             f"{len([x for x in clients.connects if x[0] == 'burst'])} of {args.clients}"),
            ("samplers ran", not budget_sampler.failures and not db_sampler.failures,
             f"{len(budget_sampler.failures)} budget / {len(db_sampler.failures)} PROCESSLIST "
             f"sample failures"),
            ("client threads finished", not clients.stuck, f"{clients.stuck} still running"),
        ]
        problems = []
        for n in cluster.nodes:
            n.stop()
            problems += n.problems(0)
        r["checks"].append(("nodes exited cleanly", not problems,
                            "; ".join(p.splitlines()[0] for p in problems) or "yes"))
        ok = all(c[1] for c in r["checks"])
        print(report(r))
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        r["checks"] = [{"check": c[0], "ok": c[1], "detail": c[2]} for c in r["checks"]]
        r["ok"] = ok
        out.write_text(json.dumps(r, indent=1) + "\n")
        print(f"\n  written to {out}")
        return 0 if ok else 1
    finally:
        if clients is not None:
            clients.abort()
        if cluster is not None:
            cluster.stop()
        if args.keep or not ok:
            if state_dir.exists():
                sluicelab.say(f"lab state kept in {state_dir}")
        elif own_dir:
            shutil.rmtree(state_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
