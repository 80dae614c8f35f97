"""One proxy node cut off from the database, not from its peers, causes no failover (issue 5,
acceptance 4).

Three sluice nodes in front of a primary and a replica (tests/lib/replication.py), EXTERNAL mode.
One node runs with a group id of its own and nftables drops what it sends to the primary's port
(tests/lib/netcut.py DbCut): its health checks see the primary UNREACHABLE, the other two see it
up. Then:
- the writer does not move: one node's observation is not a verdict (the leader logs that only
  1 of 3 voters sees the writer gone);
- the other nodes keep serving writes;
- the cut-off node's client waits (its statement cannot reach the writer) and completes once the
  cut heals, without an error (docs/failover.md: what a node cut off from the writer does).
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lib"))
import netcut  # noqa: E402
import sluicelab  # noqa: E402
from clustertools import run_cluster, wait_converged  # noqa: E402
from pooltools import wait_for  # noqa: E402
from replication import ReplicationGroup  # noqa: E402

pytestmark = pytest.mark.skipif(not netcut.available(), reason="needs root, nft and setpriv")


@pytest.fixture(scope="module")
def group(lab_dir, tls):
    g = ReplicationGroup(lab_dir / "partition-rg", replicas=1, tls=tls)
    try:
        g.start()
    except Exception:
        g.stop()
        raise
    with g.primary.admin(database=g.primary.database) as c, c.cursor() as cur:
        cur.execute("CREATE TABLE pt (node VARCHAR(16) NOT NULL, seq INT NOT NULL, "
                    "PRIMARY KEY (node, seq)) ENGINE=InnoDB")
    g.wait_all_caught_up()
    yield g
    g.stop()


@pytest.fixture(scope="module")
def pt_user(group):
    return group.create_user("pt_app")


@pytest.fixture(scope="module")
def cluster(lab_dir, tls, mariadb, pt_user, group):
    primary, replica = group.primary, group.replicas[0]

    def setup(c):
        leader = c.wait_leader()
        sluicelab.admin_write(leader, "PUT", f"/v1/secrets/{pt_user.name}",
                              {"ref": leader._secret_ref(pt_user)})
        sluicelab.admin_write(leader, "PUT", "/v1/proxies/main", {
            "engine_family": "MYSQL", "listen_port": c.proxy_port, "require_tls": True,
            "auth": [{"auth_scheme": "SECRETS", "secret": pt_user.name,
                      "client_password_auth_type": "MYSQL_NATIVE_PASSWORD"}]})
        sluicelab.admin_write(leader, "PUT", "/v1/proxies/main/target-group",
                              {"connection_pool_config": {"max_connections_percent": 100,
                                                          "connection_borrow_timeout": 60}})
        for i, db in enumerate((primary, replica), start=1):
            sluicelab.admin_write(leader, "POST", "/v1/proxies/main/targets",
                                  {"id": f"db{i}", "host": db.host, "port": db.port,
                                   "role": "READ_WRITE" if i == 1 else "READ_ONLY"})
        for n in c.nodes:
            n.proxies.append(sluicelab.ProxySpec("main", port=c.proxy_port, host=n.data_address,
                                                 auth=[sluicelab.Auth(pt_user)]))
        wait_converged(c.nodes)
        c.wait_serving(timeout=20)

    yield from run_cluster(lab_dir / "raft-partition", tls, mariadb, pt_user, setup=setup)


def writer_doc(node):
    status, _, doc = node.admin_json("GET", "/v1/proxies/main/writer")
    assert status == 200, doc
    return doc


def health_of(node, db) -> str:
    text = node.admin_request("/metrics")[2].decode()
    for state in ("AVAILABLE", "UNAVAILABLE", "REGISTERING", "PENDING_PROXY_CAPACITY"):
        if f'sluice_target_health{{target="{db.host}:{db.port}",state="{state}"}} 1' in text:
            return state
    return ""


def insert(conn, node_id, seq):
    with conn.cursor() as cur:
        cur.execute("INSERT INTO pt VALUES (%s, %s)", (node_id, seq))


def test_a_node_cut_from_the_database_causes_no_failover(cluster, group, pt_user):
    primary = group.primary
    leader = cluster.leader()
    cut_node = next(n for n in cluster.nodes if n is not leader)
    others = [n for n in cluster.nodes if n is not cut_node]
    # The node to cut runs with a group of its own, which nft matches.
    gid = netcut.GID_BASE + 50 + cut_node.raft_id
    assert cut_node.stop() == 0
    cut_node.exec_prefix = netcut.exec_prefix(gid)
    cut_node.start()
    cluster.wait_serving(timeout=30)
    wait_for("every node to see the primary up",
             lambda: all(health_of(n, primary) == "AVAILABLE" for n in cluster.nodes), timeout=15)

    mine = cut_node.connect(pt_user, autocommit=True, read_timeout=120)
    insert(mine, cut_node.id, 0)
    theirs = [n.connect(pt_user, autocommit=True) for n in others]
    epoch_before = writer_doc(leader)["epoch"]

    cut = netcut.DbCut(gid, [primary.port])
    cut.apply()
    try:
        wait_for("the cut-off node to see the primary UNAVAILABLE",
                 lambda: health_of(cut_node, primary) == "UNAVAILABLE", timeout=15)
        # Its client's next statement cannot reach the writer: it waits.
        box = {}

        def run():
            try:
                insert(mine, cut_node.id, 1)
                box["done"] = time.monotonic()
            except Exception as e:  # reported by the assertion below
                box["error"] = e
        waiter = threading.Thread(target=run, daemon=True)
        waiter.start()
        for seq in range(1, 21):  # the other nodes keep serving writes
            for n, c in zip(others, theirs):
                insert(c, n.id, seq)
            time.sleep(0.1)
        assert health_of(others[0], primary) == "AVAILABLE"
        assert all(writer_doc(n)["epoch"] == epoch_before for n in cluster.nodes), \
            "one node's view moved the writer"
        assert "1 of 3 voters see the writer gone" in leader.log_text()
        assert waiter.is_alive(), f"the cut-off node's client did not wait: {box}"
        healed_at = time.monotonic()
    finally:
        cut.heal()
    waiter.join(90)
    assert "error" not in box, box["error"]
    assert box["done"] >= healed_at
    with primary.admin(database=primary.database) as c, c.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM pt WHERE node = %s", (cut_node.id,))
        assert cur.fetchone()[0] == 2
    for c in theirs + [mine]:
        c.close()
