"""External failover on three real sluice nodes in front of a real primary + replica (GTID,
semi-synchronous replication; issue 5, acceptance 2 in its first form).

The test plays the orchestrator: it kills the primary (kill -9) and promotes the replica itself.
Sluice must see the primary down from a majority of nodes, see the replica become writable, commit
it as the writer (a new epoch, decided by the leader) and move every node's sessions there:
- the writer resource on every node names the replica, with an epoch and "failover: ..." as reason;
- clients that were idle through it all run their next statement on the new writer, no error;
- writers keep writing: each client's autocommit INSERTs resume on the new writer; a statement in
  flight at the kill may get one error (1180, outcome unknown) and nothing else, and no client
  connection is dropped;
- every INSERT acknowledged before or after the kill is on the new writer (semi-sync: an
  acknowledged commit reached the replica).
"""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lib"))
import sluicelab  # noqa: E402
from clustertools import run_cluster, wait_converged  # noqa: E402
from pooltools import wait_for  # noqa: E402
from replication import ReplicationGroup  # noqa: E402

OUTCOME_UNKNOWN = 1180


@pytest.fixture(scope="module")
def group(lab_dir, tls):
    g = ReplicationGroup(lab_dir / "failover-rg", replicas=1, tls=tls)
    try:
        g.start()
    except Exception:
        g.stop()
        raise
    with g.primary.admin(database=g.primary.database) as c, c.cursor() as cur:
        cur.execute("CREATE TABLE fo (client INT NOT NULL, seq INT NOT NULL, "
                    "PRIMARY KEY (client, seq)) ENGINE=InnoDB")
    g.wait_all_caught_up()
    yield g
    g.stop()


@pytest.fixture(scope="module")
def fo_user(group):
    return group.create_user("fo_app")


@pytest.fixture(scope="module")
def cluster(lab_dir, tls, mariadb, fo_user, group):
    primary, replica = group.primary, group.replicas[0]

    def setup(c):
        leader = c.wait_leader()
        sluicelab.admin_write(leader, "PUT", f"/v1/secrets/{fo_user.name}",
                              {"ref": leader._secret_ref(fo_user)})
        sluicelab.admin_write(leader, "PUT", "/v1/proxies/main", {
            "engine_family": "MYSQL", "listen_port": c.proxy_port, "require_tls": True,
            "auth": [{"auth_scheme": "SECRETS", "secret": fo_user.name,
                      "client_password_auth_type": "MYSQL_NATIVE_PASSWORD"}]})
        sluicelab.admin_write(leader, "PUT", "/v1/proxies/main/target-group",
                              {"connection_pool_config": {"max_connections_percent": 100,
                                                          "connection_borrow_timeout": 30,
                                                          "transaction_replay": True}})
        sluicelab.admin_write(leader, "POST", "/v1/proxies/main/targets",
                              {"id": "db1", "host": primary.host, "port": primary.port,
                               "role": "READ_WRITE"})
        sluicelab.admin_write(leader, "POST", "/v1/proxies/main/targets",
                              {"id": "db2", "host": replica.host, "port": replica.port,
                               "role": "READ_ONLY"})
        for n in c.nodes:
            n.proxies.append(sluicelab.ProxySpec("main", port=c.proxy_port, host=n.data_address,
                                                 auth=[sluicelab.Auth(fo_user)]))
        wait_converged(c.nodes)
        c.wait_serving(timeout=20)

    yield from run_cluster(lab_dir / "raft-failover", tls, mariadb, fo_user, setup=setup)


class Writers:
    """One client per node inserting (client, seq) rows in autocommit until stopped."""

    def __init__(self, nodes, user):
        self.nodes, self.user = nodes, user
        self.stop_event = threading.Event()
        self.acked = {i: [] for i in range(len(nodes))}
        self.errors = {i: [] for i in range(len(nodes))}
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True)
                        for i in range(len(nodes))]

    def start(self):
        for t in self.threads:
            t.start()
        return self

    def _run(self, i):
        import pymysql
        conn = self.nodes[i].connect(self.user, autocommit=True, read_timeout=60)
        seq = 0
        while not self.stop_event.is_set():
            seq += 1
            try:
                with conn.cursor() as cur:
                    cur.execute("INSERT INTO fo VALUES (%s, %s)", (i, seq))
                self.acked[i].append(seq)
            except pymysql.err.MySQLError as e:
                self.errors[i].append((time.monotonic(), e.args[0], str(e)))
                if not isinstance(e, pymysql.err.OperationalError) or e.args[0] in (2006, 2013):
                    raise  # the connection is gone: that is a failure of the test
            time.sleep(0.01)
        conn.close()

    def stop(self):
        self.stop_event.set()
        for t in self.threads:
            t.join(60)
            assert not t.is_alive()


def writer_doc(node):
    status, _, doc = node.admin_json("GET", "/v1/proxies/main/writer")
    assert status == 200, doc
    return doc


def port_of(conn) -> int:
    with conn.cursor() as cur:
        cur.execute("SELECT @@port")
        return int(cur.fetchone()[0])


def test_sessions_follow_an_external_promotion(cluster, group, fo_user):
    primary, replica = group.primary, group.replicas[0]
    nodes = cluster.nodes
    for n in nodes:
        assert writer_doc(n)["target"] == "db1"
    idle = [n.connect(fo_user, autocommit=True) for n in nodes]
    for c in idle:
        assert port_of(c) == primary.port
    writers = Writers(nodes, fo_user).start()
    time.sleep(1.0)

    # Writes on a primary with a binary log report last_gtid through session tracking: that
    # must not pin (a pinned session would lose its state with the connection).
    for n in nodes:
        stats = json.loads(n.admin_request("/v1/stats")[2])
        assert stats["pins"]["set_variable"] == 0, (n.id, stats["pins"])
    killed_at = time.monotonic()
    group.kill(primary)
    time.sleep(0.5)  # the orchestrator takes its time
    group.promote(replica)
    wait_for("every node to commit and apply the replica as the writer",
             lambda: all(writer_doc(n)["target"] == "db2" for n in nodes), timeout=15)
    switched_after = time.monotonic() - killed_at
    doc = writer_doc(nodes[0])
    assert doc["epoch"] > 0 and doc["reason"].startswith("failover:"), doc

    # Writes resume on the new writer through every node.
    counts = {i: len(writers.acked[i]) for i in writers.acked}
    wait_for("writes through every node after the switch",
             lambda: all(len(writers.acked[i]) > counts[i] + 5 for i in counts), timeout=15)
    writers.stop()

    # Idle clients: no error, and their statements now run on the new writer.
    for c in idle:
        assert port_of(c) == replica.port
        c.close()

    for i, errs in writers.errors.items():
        assert all(e[1] == OUTCOME_UNKNOWN for e in errs), errs
        assert len(errs) <= 1, errs
    # Every acknowledged INSERT is on the new writer.
    with replica.admin(database=replica.database) as c, c.cursor() as cur:
        for i, seqs in writers.acked.items():
            cur.execute("SELECT seq FROM fo WHERE client = %s", (i,))
            have = {r[0] for r in cur.fetchall()}
            missing = [s for s in seqs if s not in have]
            assert not missing, f"client {i}: acknowledged but lost: {missing[:10]}"
    assert switched_after < 15
