"""Managed failover on three real sluice nodes in front of a real primary and two replicas (GTID,
semi-synchronous replication, AFTER_SYNC; issue 5, acceptance 1 in its first form).

Nothing but sluice acts: the test kills the primary (kill -9) under load and checks that
- the leader promotes the most advanced replica, repoints the other one at it and commits it as the
  writer (a new epoch, reason "failover: ... sluice promoted ...") on every node;
- writes resume on the new writer within a few seconds of the kill (the time is printed; the
  benchmark reports it over repeated failovers);
- idle clients' next statements succeed, on the new writer; no client connection is dropped; a
  writing client sees at most one error (1180, outcome unknown, for the statement in flight);
- every acknowledged INSERT is on the new writer, and replicates to the repointed replica;
- the old primary, brought back as a replica, holds no transaction the new writer lacks: nothing
  reached it after the switch.
A second test shows the refusal: with semi-synchronous replication off on the writer and
require_semi_sync (the default), sluice does not promote, and says why; with require_semi_sync
false it promotes, and reports that acknowledged commits may be lost.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lib"))
import sluicelab  # noqa: E402
from clustertools import run_cluster  # noqa: E402
from failovertools import (ADMIN_GRANTS, Writers, events, setup_managed_proxy,  # noqa: E402
                           writer_doc)
from pooltools import wait_for  # noqa: E402
from replication import ReplicationGroup, replica_status, wait_caught_up  # noqa: E402

OUTCOME_UNKNOWN = 1180
@pytest.fixture(scope="module")
def group(lab_dir, tls):
    g = ReplicationGroup(lab_dir / "managed-rg", replicas=2, tls=tls)
    try:
        g.start()
    except Exception:
        g.stop()
        raise
    with g.primary.admin(database=g.primary.database) as c, c.cursor() as cur:
        cur.execute("CREATE TABLE mf (client INT NOT NULL, seq INT NOT NULL, "
                    "PRIMARY KEY (client, seq)) ENGINE=InnoDB")
    g.wait_all_caught_up()
    yield g
    g.stop()


@pytest.fixture(scope="module")
def users(group):
    app = group.create_user("mf_app")
    admin = group.create_user("mf_admin", grants=ADMIN_GRANTS + ("ALL PRIVILEGES ON `{db}`.*",))
    return app, admin


@pytest.fixture(scope="module")
def cluster(lab_dir, tls, mariadb, users, group):
    app, admin = users
    yield from run_cluster(lab_dir / "raft-managed", tls, mariadb, app,
                           setup=lambda c: setup_managed_proxy(c, group, app, admin))


WRITERS_PER_NODE = 34  # about 100 writing clients over the three nodes (acceptance 1)
IDLE_PER_NODE = 34     # and about 100 idle ones


def port_of(conn) -> int:
    with conn.cursor() as cur:
        cur.execute("SELECT @@port")
        return int(cur.fetchone()[0])


def test_sluice_promotes_the_most_advanced_replica(cluster, group, users):
    app, _ = users
    nodes = cluster.nodes
    old = group.primary
    r1, r2 = group.replicas
    idle = [n.connect(app, autocommit=True) for n in nodes for _ in range(IDLE_PER_NODE)]
    for c in idle:
        assert port_of(c) == old.port
    # Make db3 (r2) the most advanced: db2's SQL thread stops applying (its IO thread keeps
    # acknowledging, so semi-sync stays on), so promoting it would need its relay log first;
    # sluice must pick db3 by GTID.
    with r1.admin() as c, c.cursor() as cur:
        cur.execute("STOP SLAVE SQL_THREAD")
    writers = Writers(nodes, app, per_node=WRITERS_PER_NODE, table="mf").start()
    time.sleep(3.0)
    for n in nodes:
        stats = json.loads(n.admin_request("/v1/stats")[2])
        assert stats["pins"]["set_variable"] == 0, stats["pins"]

    killed_at = time.monotonic()
    group.kill(old)
    wait_for("every node to apply the promoted replica as the writer",
             lambda: all(writer_doc(n)["target"] == "db3" for n in nodes), timeout=20)
    doc = writer_doc(nodes[0])
    assert doc["epoch"] > 0 and "promoted" in doc["reason"], doc
    # Who decided what, at which index and when: every node applied that epoch; the leader
    # started the promotion and committed it.
    for n in nodes:
        evs = events(n)
        applied = [e for e in evs if e["kind"] == "writer_applied" and e["epoch"] == doc["epoch"]]
        assert applied and applied[0]["target"] == "db3", evs
        assert applied[0]["decided_by"] == doc["decided_by"]
    leader = next(n for n in nodes if n.id == doc["decided_by"])
    kinds = [e["kind"] for e in events(leader)]
    assert kinds.index("promotion_started") < kinds.index("writer_committed"), kinds
    acked_before = {i: len(writers.acked[i]) for i in writers.acked}
    wait_for("writes through every client after the switch",
             lambda: all(len(writers.acked[i]) > acked_before[i] + 3 for i in writers.acked),
             timeout=20)
    writers.stop()
    first_after = writers.first_commit_after(killed_at)
    print(f"\nwrites resumed {first_after - killed_at:.2f} s after the kill")
    assert not writers.lost, writers.lost

    for c in idle:
        assert port_of(c) == r2.port
        c.close()
    codes = [e[1] for errs in writers.errors.values() for e in errs]
    print(f"{len(writers.acked)} writers, {len(idle)} idle clients; client errors by code: "
          f"{ {c: codes.count(c) for c in set(codes)} }")
    for i, errs in writers.errors.items():
        assert len(errs) <= 1 and all(e[1] == OUTCOME_UNKNOWN for e in errs), errs

    # Every acknowledged INSERT is on the new writer and on the repointed replica.
    st = replica_status(r1)
    assert int(st["Master_Port"]) == r2.port, st
    with r1.admin() as c, c.cursor() as cur:
        cur.execute("START SLAVE SQL_THREAD")
    wait_caught_up(r1, r2, timeout=20)
    for db in (r2, r1):
        with db.admin(database=db.database) as c, c.cursor() as cur:
            for i, seqs in writers.acked.items():
                cur.execute("SELECT seq FROM mf WHERE client = %s", (i,))
                have = {r[0] for r in cur.fetchall()}
                missing = [s for s in seqs if s not in have]
                assert not missing, f"client {i}: acknowledged but missing on port {db.port}"

    # The old primary comes back as a replica: it has nothing the new writer lacks.
    group.primary = r2
    group.source[r1] = r2
    group.rejoin(old, r2)
    wait_caught_up(old, r2, timeout=20)
    with old.admin() as c, c.cursor() as cur:
        cur.execute("SELECT @@gtid_binlog_pos")
        old_pos = cur.fetchone()[0]
    with r2.admin() as c, c.cursor() as cur:
        cur.execute("SELECT @@gtid_binlog_pos")
        new_pos = cur.fetchone()[0]
    assert old_pos == new_pos, (old_pos, new_pos)
    log = "".join(n.log_text() for n in nodes)
    assert "promoted" in log and "writer is now target db3" in log


@pytest.fixture(scope="module")
def async_group(lab_dir, tls):
    g = ReplicationGroup(lab_dir / "managed-async-rg", replicas=1, tls=tls, semi_sync=False)
    try:
        g.start()
    except Exception:
        g.stop()
        raise
    yield g
    g.stop()


@pytest.fixture(scope="module")
def async_cluster(lab_dir, tls, mariadb, async_group):
    app = async_group.create_user("mfa_app")
    admin = async_group.create_user("mfa_admin",
                                    grants=ADMIN_GRANTS + ("ALL PRIVILEGES ON `{db}`.*",))
    yield from run_cluster(lab_dir / "raft-managed-async", tls, mariadb, app,
                           setup=lambda c: setup_managed_proxy(c, async_group, app, admin))


def test_no_promotion_without_semi_sync(async_cluster, async_group):
    """Asynchronous replication: an acknowledged commit may be on the writer alone, so with
    require_semi_sync (the default) sluice does not promote, and says why. With require_semi_sync
    false it promotes, and reports the possible loss."""
    nodes = async_cluster.nodes
    old, replica = async_group.primary, async_group.replicas[0]
    wait_for("the nodes to see the writer without semi-sync",
             lambda: all(f'sluice_target_semi_sync{{target="{old.host}:{old.port}"}} 0'
                         in n.admin_request("/metrics")[2].decode() for n in nodes), timeout=10)
    async_group.kill(old)
    wait_for("the leader to refuse, saying why",
             lambda: any("not promoting: semi-synchronous replication was off" in n.log_text()
                         for n in nodes), timeout=15)
    time.sleep(2.0)
    assert all(writer_doc(n)["target"] == "db1" for n in nodes)
    with replica.admin() as c, c.cursor() as cur:
        cur.execute("SELECT @@read_only")
        assert cur.fetchone()[0] == 1, "the replica was promoted anyway"
    assert any(e["kind"] == "promotion_refused" and "semi-synchronous" in e["detail"]
               for n in nodes for e in events(n))
    # The operator accepts the risk: the promotion goes ahead, and says what may be lost.
    status, _, tg = nodes[0].admin_json("GET", "/v1/proxies/main/target-group")
    assert status == 200, tg
    tg["failover"]["require_semi_sync"] = False
    tg.pop("revision", None)
    sluicelab.admin_write(nodes[0], "PUT", "/v1/proxies/main/target-group", tg)
    wait_for("sluice to promote the replica",
             lambda: all(writer_doc(n)["target"] == "db2" for n in nodes), timeout=15)
    with replica.admin() as c, c.cursor() as cur:
        cur.execute("SELECT @@read_only")
        assert cur.fetchone()[0] == 0
    leader = next(n for n in nodes if n.id == writer_doc(nodes[0])["decided_by"])
    started = [e for e in events(leader) if e["kind"] == "promotion_started"]
    assert started and "acknowledged commits may be lost" in started[-1]["detail"], started
