"""The global connection budget with real processes (issue 4, acceptance 1-3).

MariaDB runs with max_connections=60 and the proxy at max_connections_percent=50: a budget of 30 for
the whole fleet (2 of them reserved for the leader's own probes). The proxy's database user is
created WITH MAX_USER_CONNECTIONS 30 as a tripwire: a fleet that overshot would see error 1226.
Client load is spread unevenly over the three nodes (400/150/50 connections running short
transactions), and a sampler counts the user's connections in PROCESSLIST every 50 ms.

The tests share one cluster and run in order:
  1. 60 s of load: no client error, the count never above 30, the busiest node holds most quota;
  2. kill -9 of the busiest node under load: its quota goes to the others within the lease plus a
     few seconds, the invariant holds throughout;
  3. SIGSTOP of the busiest node for longer than its lease: the invariant holds, the others get its
     quota once the leader fenced it, and after SIGCONT it rejoins; its clients see no error: answers
     that arrived while it was frozen are delivered, and transactions whose connection the fence
     killed are replayed (transaction_replay is on for this proxy);
  4. the busiest node cut off from its peers (nft on loopback, tests/lib/netcut.py) while it still
     reaches the database: it closes its connections by its lease's end, the others get its quota,
     and after the heal the quotas converge again.
"""

from __future__ import annotations

import collections
import os
import signal
import sys
import threading
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lib"))
import sluicelab  # noqa: E402
import netcut  # noqa: E402
from clustertools import run_cluster  # noqa: E402
from pooltools import ProcesslistSampler, wait_for  # noqa: E402

BUDGET = 30
RESERVE = 2  # the leader's probe connections (budget/leader.c)
LEASE_S = 5.0  # default lease (budget/agent.c)
LOAD_S = float(os.environ.get("SLUICE_BUDGET_LOAD_SECONDS", "60"))


@pytest.fixture(scope="module")
def budget_user(mariadb):
    return mariadb.create_user("bud", max_user_connections=BUDGET)


@pytest.fixture(scope="module")
def cluster(lab_dir, tls, mariadb, budget_user):
    with mariadb.admin() as c, c.cursor() as cur:
        cur.execute("SET GLOBAL max_connections = 60")
        cur.execute("CREATE TABLE IF NOT EXISTS app.acct (id INT PRIMARY KEY, v BIGINT NOT NULL)")
        cur.execute("INSERT IGNORE INTO app.acct SELECT seq, 0 FROM app.seq_1_to_1000")

    def setup(c):
        leader = c.wait_leader()
        c.create_proxy(leader, user=budget_user)
        sluicelab.admin_write(leader, "PUT", "/v1/proxies/main/target-group",
                              {"connection_pool_config": {"max_connections_percent": 50,
                                                          "max_idle_connections_percent": 50,
                                                          "connection_borrow_timeout": 120,
                                                          "transaction_replay": True}})
        c.wait_serving(timeout=30)

    yield from run_cluster(lab_dir / "raft", tls, mariadb, budget_user, setup=setup)


class Load:
    """Client threads per node, each on its own connection through that node, running short
    transactions until stopped. Errors are recorded per node with their MySQL code.

    Each client updates a row of its own: a transaction replayed after its connection was lost
    then finds what it saw the first time. (A row changed by someone else in between makes the
    replay refuse, with 1213: tests/integ/test_session_recovery.py.)"""

    def __init__(self, cluster, user, per_node: dict):
        self.cluster, self.user = cluster, user
        self.stop_event = threading.Event()
        self.lock = threading.Lock()
        self.commits = collections.Counter()
        self.errors = collections.defaultdict(list)  # node id -> [(time, code, text, in_txn)]
        self.threads = []
        for node, count in per_node.items():
            for _ in range(count):
                key = len(self.threads) % 1000 + 1
                t = threading.Thread(target=self._client, args=(node, key), daemon=True)
                self.threads.append(t)

    def start(self):
        for t in self.threads:
            t.start()
        return self

    def _client(self, node, key):
        import pymysql
        conn = None
        while not self.stop_event.is_set():
            inside = False
            try:
                if conn is None:
                    conn = node.connect(self.user, connect_timeout=30, read_timeout=120,
                                        write_timeout=120, autocommit=True)
                with conn.cursor() as cur:
                    cur.execute("BEGIN")
                    inside = True
                    cur.execute("UPDATE app.acct SET v = v + 1 WHERE id = %s", (key,))
                    cur.execute("SELECT v FROM app.acct WHERE id = %s", (key,))
                    cur.fetchall()
                    cur.execute("COMMIT")
                with self.lock:
                    self.commits[node.id] += 1
                inside = False
            except (pymysql.err.Error, OSError) as e:
                code = e.args[0] if e.args and isinstance(e.args[0], int) else None
                with self.lock:
                    self.errors[node.id].append((time.monotonic(), code, str(e), inside))
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

    def stop(self):
        self.stop_event.set()
        for t in self.threads:
            t.join(150)


def budget_doc(node):
    status, _, doc = node.admin_json("GET", "/v1/budget")
    assert status == 200, doc
    (entry,) = [b for b in doc["budgets"] if b["key"].startswith("main/")]
    return entry


def quotas(node) -> dict:
    return {n["node"]: n["quota"] for n in budget_doc(node)["nodes"]}


def busiest_follower(cluster):
    leader = cluster.wait_leader()
    return leader, [n for n in cluster.nodes if n is not leader]


def uneven_load(cluster, db, user, busy, medium, light):
    """Start the PROCESSLIST sampler (every 50 ms) and 400/150/50 clients on the three nodes."""
    sampler = ProcesslistSampler(db, user, interval=0.05)
    sampler.start()
    return sampler, Load(cluster, user, {busy: 400, medium: 150, light: 50}).start()


def wait_busiest_holds_most(leader, busy):
    wait_for("the busiest node to hold most quota",
             lambda: quotas(leader).get(busy.raft_id, 0) * 2 > BUDGET - RESERVE, timeout=30)


def global_status(db, name: str) -> int:
    with db.admin() as c, c.cursor() as cur:
        cur.execute("SHOW GLOBAL STATUS LIKE %s", (name,))
        return int(cur.fetchone()[1])


def log_mentions(cluster, *needles):
    found = []
    for n in cluster.nodes:
        text = n.log_path.read_text(errors="replace")
        found += [f"{n.id}: {x}" for x in needles if x in text]
    return found


def test_budget_is_visible_on_every_node_and_reports_are_checked(cluster):
    """GET /v1/budget from a follower is the leader's view (forwarded); /metrics and sluicectl show
    the same key; malformed or misdirected reports are refused without changing anything."""
    import subprocess
    leader, (f1, f2) = busiest_follower(cluster)
    wait_for("every node to hold quota", lambda: len(quotas(leader)) == 3, timeout=15)
    status, _, doc = f1.admin_json("GET", "/v1/budget")
    assert status == 200 and doc["leader"] is True and doc["node"] == leader.raft_id, doc
    (entry,) = doc["budgets"]
    assert entry["key"] == f"main/{cluster.db.host}:{cluster.db.port}", entry
    assert (entry["max_connections"], entry["percent"], entry["budget"], entry["reserve"]) == \
        (60, 50, BUDGET, RESERVE), entry
    assert sorted(n["node"] for n in entry["nodes"]) == [1, 2, 3], entry
    assert all(n["lease_expires_ms"] > 0 for n in entry["nodes"]), entry
    status, _, body = f2.admin_request("/metrics")
    text = body.decode()
    assert f'sluice_budget_connections{{key="{entry["key"]}"}} {BUDGET}' in text, text[-2000:]
    assert "sluice_budget_node_quota{" in text and "sluice_budget_lease_remaining_ms " in text
    tool = Path(__file__).resolve().parents[2] / "admin" / "sluicectl"
    r = subprocess.run([str(tool), "--url", f2.admin_url, "--token-file", str(f2.admin_token_file),
                        "budget"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and entry["key"] in r.stdout and "lease expires" in r.stdout, r

    before = budget_doc(leader)
    for body in (b"{not json", {"node": 1}, {"node": 0, "seq": 1, "applied": 1, "keys": []},
                 {"node": 2, "seq": 5, "applied": 1, "keys": [{"key": "bad key!", "open": 1}]},
                 {"node": 2, "seq": 5, "applied": 1, "keys": "x"}):
        status, _, doc = leader.admin_json("POST", "/v1/internal/budget/report", body)
        assert status == 400 and doc["detail"], (body, status, doc)
    good = {"node": 2, "seq": 5, "applied": 1, "keys": []}
    status, hdrs, _ = f1.admin_json("POST", "/v1/internal/budget/report", good)
    assert status == 503 and hdrs.get("Retry-After") == "1", status
    status, _, _ = leader.admin_request("/v1/internal/budget/report", method="POST", body=good,
                                        token=None)
    assert status == 401
    after = budget_doc(leader)
    assert {n["node"]: n["quota"] for n in after["nodes"]} == \
        {n["node"]: n["quota"] for n in before["nodes"]}
    assert all(n.running() for n in cluster.nodes)


def test_stopped_node_hands_its_quota_back_at_once(cluster):
    """A node stopped with SIGTERM drains, closes its database connections and tells the leader,
    which revokes its quota at once instead of after its lease (a rolling restart does not lock
    budget up for a lease length)."""
    leader, (f1, _) = busiest_follower(cluster)
    wait_for("the follower to hold quota", lambda: quotas(leader).get(f1.raft_id, 0) > 0, timeout=15)
    t0 = time.monotonic()
    assert f1.stop() == 0
    wait_for("the stopped node's quota to be revoked",
             lambda: f1.raft_id not in quotas(leader), timeout=LEASE_S + 10)
    took = time.monotonic() - t0
    assert took < LEASE_S / 2, f"revoked only after {took:.1f} s: the last report was not taken"
    assert "left with no connection open" in leader.log_path.read_text(errors="replace")
    f1.start()
    cluster.wait_serving(timeout=30)
    wait_for("the restarted node to hold quota again",
             lambda: quotas(leader).get(f1.raft_id, 0) > 0, timeout=15)


def test_uneven_load_stays_within_the_budget_and_quota_follows_demand(cluster, mariadb, budget_user):
    leader, followers = busiest_follower(cluster)
    busy, medium = followers
    refused_before = global_status(mariadb, "Connection_errors_max_connections")
    sampler, load = uneven_load(cluster, mariadb, budget_user, busy, medium, leader)
    try:
        time.sleep(LOAD_S)
        q = quotas(leader)
    finally:
        load.stop()
        samples = sampler.stop()
    entry = budget_doc(leader)
    assert entry["max_connections"] == 60 and entry["budget"] == BUDGET, entry
    assert len(samples) > LOAD_S * 5, "the sampler hardly ran"
    assert max(samples) <= BUDGET, f"the database saw {max(samples)} connections of the user"
    errors = {k: v for k, v in load.errors.items() if v}
    assert not errors, f"client errors: { {k: v[:3] for k, v in errors.items()} }"
    assert sum(load.commits.values()) > 1000, load.commits
    assert all(load.commits[n.id] > 0 for n in cluster.nodes), load.commits
    assert q[busy.raft_id] * 2 > sum(q.values()), f"the busiest node does not hold most: {q}"
    assert sum(q.values()) <= BUDGET - RESERVE, q
    # No node saw a login refused (1226 max_user_connections, 1040 too many connections): the pool
    # logs every failed login as the target becoming UNAVAILABLE.
    assert not log_mentions(cluster, "max_user_connections", "Too many connections", "UNAVAILABLE")
    # The database itself refused no connection for max_connections (1040) either.
    assert global_status(mariadb, "Connection_errors_max_connections") == refused_before
    # Borrow waits were measured and reported (the busiest node's clients queued).
    busiest = [n for n in budget_doc(leader)["nodes"] if n["node"] == busy.raft_id]
    assert busiest and "borrow_wait_max_ms" in busiest[0], busiest


def test_killed_node_quota_goes_to_the_others(cluster, mariadb, budget_user):
    leader, (busy, medium) = busiest_follower(cluster)
    sampler, load = uneven_load(cluster, mariadb, budget_user, busy, medium, leader)
    try:
        wait_busiest_holds_most(leader, busy)
        before = quotas(leader)
        busy.kill()
        killed_at = time.monotonic()
        wait_for("the killed node's quota to be revoked",
                 lambda: busy.raft_id not in quotas(leader), timeout=LEASE_S + 10)
        revoked_after = time.monotonic() - killed_at
        wait_for("the others to take up the freed quota",
                 lambda: sum(quotas(leader).values()) > before[leader.raft_id] +
                 before[medium.raft_id], timeout=10)
        reused_after = time.monotonic() - killed_at
        time.sleep(3)
    finally:
        load.stop()
        samples = sampler.stop()
    assert max(samples) <= BUDGET, f"the database saw {max(samples)} connections of the user"
    assert revoked_after < LEASE_S * 1.05 + 5, f"revoked only after {revoked_after:.1f} s"
    assert reused_after < LEASE_S * 1.05 + 8, f"reused only after {reused_after:.1f} s"
    survivors = {k: v for k, v in load.errors.items() if k != busy.id and v}
    assert not survivors, f"clients of the surviving nodes saw errors: {survivors}"
    busy.start()  # rejoins with its Raft state; the next test needs three nodes
    cluster.wait_serving(timeout=30)


def test_paused_node_is_fenced_and_rejoins(cluster, mariadb, budget_user):
    leader, (busy, medium) = busiest_follower(cluster)
    sampler, load = uneven_load(cluster, mariadb, budget_user, busy, medium, leader)
    try:
        wait_busiest_holds_most(leader, busy)
        before = quotas(leader)
        others_before = sum(v for k, v in before.items() if k != busy.raft_id)
        os.kill(busy.pid, signal.SIGSTOP)
        stopped_at = time.monotonic()
        try:
            wait_for("the paused node's quota to be revoked after fencing",
                     lambda: busy.raft_id not in quotas(leader), timeout=LEASE_S + 10)
            wait_for("the others to take up its quota",
                     lambda: sum(quotas(leader).values()) > others_before, timeout=10)
            time.sleep(max(0.0, LEASE_S + 3 - (time.monotonic() - stopped_at)))
        finally:
            os.kill(busy.pid, signal.SIGCONT)
        wait_for("the resumed node to get quota again",
                 lambda: quotas(leader).get(busy.raft_id, 0) > 0, timeout=15)
        # Its clients commit again.
        with load.lock:
            commits = load.commits[busy.id]
        wait_for("commits through the resumed node",
                 lambda: load.commits[busy.id] > commits + 50, timeout=30)
    finally:
        load.stop()
        samples = sampler.stop()
    assert max(samples) <= BUDGET, f"the database saw {max(samples)} connections of the user"
    survivors = {k: v for k, v in load.errors.items() if k != busy.id and v}
    assert not survivors, f"clients of the other nodes saw errors: {survivors}"
    # Its clients only waited: the transactions the fence cut were replayed on new connections.
    mine = load.errors.get(busy.id, [])
    assert not mine, f"clients of the resumed node saw errors: {mine[:5]}"
    assert "fenced" in leader.log_path.read_text(errors="replace")


def connections_from(db, address: str) -> int:
    with db.admin() as c, c.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE HOST LIKE %s",
                    (address + ":%",))
        return int(cur.fetchone()[0])


@pytest.mark.skipif(not netcut.available(), reason="needs root, nft and setpriv")
def test_node_cut_off_from_its_peers_closes_its_connections(cluster, mariadb, budget_user):
    """Acceptance 4: a node that still reaches the database but not the other nodes cannot renew
    its lease, so it closes its database connections by the lease's end; the leader fences it and
    hands its quota on; after the heal the quotas converge again."""
    leader, (busy, medium) = busiest_follower(cluster)
    # The node to cut runs with a group of its own, which nft matches (tests/lib/netcut.py).
    assert busy.stop() == 0
    busy.exec_prefix = netcut.exec_prefix(netcut.GID_BASE + busy.raft_id)
    busy.start()
    cluster.wait_serving(timeout=30)
    sampler, load = uneven_load(cluster, mariadb, budget_user, busy, medium, leader)
    cut = netcut.Cut(busy, [leader, medium], netcut.GID_BASE + busy.raft_id)
    try:
        wait_busiest_holds_most(leader, busy)
        others_before = sum(v for k, v in quotas(leader).items() if k != busy.raft_id)
        wait_for("the busiest node's connections on the database",
                 lambda: connections_from(mariadb, busy.data_address) > 0, timeout=10)
        cut.apply()
        cut_at = time.monotonic()
        # By its own lease's end (at most lease * 0.95 - 0.5 s after its last report) the cut-off
        # node holds nothing on the database.
        wait_for("the cut-off node to close its database connections",
                 lambda: connections_from(mariadb, busy.data_address) == 0, timeout=LEASE_S + 2)
        closed_after = time.monotonic() - cut_at
        wait_for("the leader to revoke the cut-off node's quota",
                 lambda: busy.raft_id not in quotas(leader), timeout=LEASE_S + 10)
        wait_for("the others to take up its quota",
                 lambda: sum(quotas(leader).values()) > others_before, timeout=10)
        assert cluster.leader([leader, medium]) is leader, "the majority lost its leader"
        cut.heal()
        wait_for("the healed node to hold quota again",
                 lambda: quotas(leader).get(busy.raft_id, 0) > 0, timeout=20)
        wait_for("quotas to converge again (the busiest node holds most)",
                 lambda: quotas(leader).get(busy.raft_id, 0) * 2 > BUDGET - RESERVE, timeout=30)
        with load.lock:
            commits = load.commits[busy.id]
        wait_for("commits through the healed node",
                 lambda: load.commits[busy.id] > commits + 50, timeout=30)
    finally:
        cut.heal()
        load.stop()
        samples = sampler.stop()
    assert max(samples) <= BUDGET, f"the database saw {max(samples)} connections of the user"
    assert closed_after <= LEASE_S, f"the cut-off node held connections {closed_after:.1f} s"
    survivors = {k: v for k, v in load.errors.items() if k != busy.id and v}
    assert not survivors, f"clients of the other nodes saw errors: {survivors}"
    # The cut-off node's clients waited: it stops lending connections a second before its lease
    # ends, so the transactions still open then are few, and they are replayed after the heal.
    mine = load.errors.get(busy.id, [])
    assert not mine, f"clients of the cut-off node saw errors: {mine[:5]}"
