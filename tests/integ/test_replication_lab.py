"""The lab's MariaDB replication group (tests/lib/replication.py): a primary and two replicas with GTID
replication (strict mode) and semi-synchronous replication (AFTER_SYNC), for the failover work.

- every member bootstraps itself without binlogging it: the GTID state starts empty and identical,
  and only what is written on the primary after that is replicated;
- a write on the primary reaches both replicas (MASTER_GTID_WAIT on the primary's @@gtid_binlog_pos);
- semi-sync is ON on the primary with 2 clients, transactions are acknowledged, replicas are semi-sync
  slaves and not semi-sync masters;
- replicas are read_only: a user without READ_ONLY ADMIN gets error 1290, reads work;
- kill -9 of the primary: replicas keep retrying, a restart (same port) brings them back as semi-sync
  clients without adding a GTID of its own, and replication goes on;
- failover: a transaction waiting for its ACK when the primary dies is invisible before; one replica is
  promoted, the other repointed to it, writes on the new primary reach it; the old primary rejoins as
  a replica, its unacknowledged transaction rolled back and cut from its binary log.

The group is started once for the module (about 5 s); the tests run in file order and the last one
changes the topology. No sluice node is started.
"""

from __future__ import annotations

import threading
import time

import pymysql
import pytest

import sluicelab
import replication
from replication import gtid_positions, query, query_value, replica_status, semi_sync_status

ER_OPTION_PREVENTS_STATEMENT = 1290  # "... running with the --read-only option ..."


@pytest.fixture(scope="module")
def group(lab_dir, tls):
    g = replication.ReplicationGroup(lab_dir / "repl", replicas=2, tls=tls, replication_tls=True)
    try:
        g.start()
    except sluicelab.LabError as e:
        g.stop()
        pytest.fail(f"could not start the replication group: {e}", pytrace=False)
    try:
        yield g
    finally:
        g.stop()
        still = [f"db{m.server_id}" for m in g.members if m.running()]
        assert not still, f"still running after stop: {still}"


@pytest.fixture(scope="module")
def app(group):
    """The app user, created on the primary (replicated; waits until every replica has it)."""
    return group.create_user("app")


@pytest.fixture(scope="module")
def table(group, app):
    with group.primary.connect(app) as c, c.cursor() as cur:
        cur.execute("CREATE TABLE repl_t (id INT PRIMARY KEY, v VARCHAR(40), "
                    "from_server INT NOT NULL DEFAULT @@server_id)")
    group.wait_all_caught_up()
    return "repl_t"


def insert(db, user, row_id, v):
    with db.connect(user) as c, c.cursor() as cur:
        cur.execute("INSERT INTO repl_t (id, v) VALUES (%s, %s)", (row_id, v))


def rows(db, where="TRUE"):
    return query(db, f"SELECT id, v FROM app.repl_t WHERE {where} ORDER BY id")


def wait_for(cond, timeout=10.0, what="condition"):
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


# --------------------------------------------------------------------------------------------


def test_bootstrap_is_local_and_gtid_state_aligned(group, app):
    p, r1, r2 = group.members
    assert group.primary is p and group.replicas == [r1, r2]
    assert [m.server_id for m in group.members] == [1, 2, 3]
    pos = {m.server_id: gtid_positions(m) for m in group.members}
    # Only the app user (CREATE OR REPLACE USER + GRANT) has been written: every GTID is the primary's.
    assert pos[1]["binlog"] and pos[1]["binlog"].startswith("0-1-"), pos
    assert pos[2]["binlog"] == pos[3]["binlog"] == pos[1]["binlog"], pos
    assert pos[2]["slave"] == pos[3]["slave"] == pos[1]["binlog"], pos
    for m in group.members:
        assert query_value(m, "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = 'app'") == 1
        assert query_value(m, "SELECT COUNT(*) FROM mysql.user WHERE User = 'app'") == 1
        assert query_value(m, "SELECT COUNT(*) FROM mysql.user WHERE User = 'repl'") == 1
        assert query(m, "SELECT @@server_id, @@log_bin, @@binlog_format, @@log_slave_updates, "
                        "@@gtid_strict_mode, @@report_port")[0] == (m.server_id, 1, "ROW", 1, 1, m.port)
    for r in (r1, r2):
        st = replica_status(r)
        assert replication.replicating(st), replication.describe(st)
        assert (st["Master_Port"], st["Using_Gtid"], st["Master_SSL_Allowed"],
                st["Master_SSL_Verify_Server_Cert"]) == (p.port, "Slave_Pos", "Yes", "Yes")
        assert st["Last_IO_Errno"] == st["Last_SQL_Errno"] == 0
    hosts = {row[0]: row[2] for row in query(p, "SHOW SLAVE HOSTS")}  # report_host / report_port
    assert hosts == {2: r1.port, 3: r2.port}


def test_write_on_primary_reaches_replicas(group, app, table):
    insert(group.primary, app, 1, "one")
    for r in group.replicas:
        pos = group.wait_caught_up(r, timeout=10)
        assert query_value(r, "SELECT @@gtid_slave_pos") == pos
        assert rows(r, "id = 1") == [(1, "one")]
        assert query_value(r, "SELECT from_server FROM app.repl_t WHERE id = 1") == 1


def test_semi_sync_on_with_two_clients(group, app, table):
    before = semi_sync_status(group.primary)
    assert before["master_enabled"] and before["master_status"] and before["master_clients"] == 2, before
    t0 = time.monotonic()
    insert(group.primary, app, 2, "acked")
    assert time.monotonic() - t0 < 5  # acknowledged, not released by the 10 s timeout
    after = semi_sync_status(group.primary)
    assert after["yes_tx"] == before["yes_tx"] + 1 and after["no_tx"] == before["no_tx"], after
    for r in group.replicas:
        st = semi_sync_status(r)
        assert st["slave_enabled"] and st["slave_status"], st
        assert not st["master_enabled"], st  # else its SQL thread would wait for ACKs of its own
    assert query(group.primary, "SELECT @@rpl_semi_sync_master_wait_point, @@rpl_semi_sync_master_timeout")[0] \
        == ("AFTER_SYNC", 10000)


def test_replicas_are_read_only(group, app, table):
    group.wait_all_caught_up()
    for r in group.replicas:
        assert query_value(r, "SELECT @@read_only") == 1
        with r.connect(app) as c, c.cursor() as cur:
            cur.execute("SELECT COUNT(*) FROM repl_t")
            assert cur.fetchone()[0] >= 2
            with pytest.raises(pymysql.err.Error) as ei:
                cur.execute("INSERT INTO repl_t (id, v) VALUES (100, 'on a replica')")
            assert ei.value.args[0] == ER_OPTION_PREVENTS_STATEMENT, ei.value.args
    assert query_value(group.primary, "SELECT @@read_only") == 0


def test_kill_primary_and_restart(group, app, table):
    p = group.primary
    before = gtid_positions(p)["binlog"]
    group.kill_primary()
    assert not p.running()
    for r in group.replicas:
        wait_for(lambda: replica_status(r)["Slave_IO_Running"] == "Connecting", 10,
                 f"db{r.server_id}'s IO thread to notice the dead primary")
        st = replica_status(r)
        assert st["Slave_SQL_Running"] == "Yes" and st["Last_SQL_Errno"] == 0, replication.describe(st)
    t0 = time.monotonic()
    group.restart(p)  # same port; waits until both replicas are semi-sync clients again
    assert time.monotonic() - t0 < 15
    assert gtid_positions(p)["binlog"] == before  # the restart's bootstrap wrote no GTID
    assert semi_sync_status(p)["master_clients"] == 2
    insert(p, app, 3, "after restart")
    for r in group.replicas:
        group.wait_caught_up(r)
        assert rows(r, "id = 3") == [(3, "after restart")]


def test_failover_promote_repoint_rejoin(group, app, table):
    old, (r1, r2) = group.primary, group.replicas
    group.wait_all_caught_up()

    # A transaction that no replica acknowledges: both IO threads stopped, so the commit waits
    # (rpl_semi_sync_master_wait_no_slave=ON) after it is in the binary log (AFTER_SYNC).
    for r in (r1, r2):
        query(r, "STOP SLAVE IO_THREAD")
    wait_for(lambda: semi_sync_status(old)["master_clients"] == 0, 10, "0 semi-sync clients")
    errors = []

    def unacked():
        try:
            insert(old, app, 4, "never acknowledged")
        except pymysql.err.Error as e:
            errors.append(e.args[0])

    th = threading.Thread(target=unacked)
    th.start()
    wait_for(lambda: query_value(old, "SELECT COUNT(*) FROM information_schema.PROCESSLIST "
                                      "WHERE STATE = 'Waiting for semi-sync ACK from slave'") == 1,
             5, "the insert to wait for its ACK")
    assert rows(old, "id = 4") == []  # not visible to others before the ACK
    unacked_pos = gtid_positions(old)["binlog"]  # ... but already in @@gtid_binlog_pos
    group.kill_primary()
    th.join(10)
    assert errors == [2013]  # the client lost its connection: the outcome is unknown to it
    for r in (r1, r2):
        query(r, "START SLAVE IO_THREAD")  # they retry the dead primary until repointed

    new = group.promote(r1)
    assert group.primary is new
    assert replica_status(new) == {}
    assert query_value(new, "SELECT @@read_only") == 0
    group.repoint(r2, new)
    group.wait_ready()  # r2 replicates from new, which counts it as semi-sync client
    assert semi_sync_status(new)["master_clients"] == 1
    insert(new, app, 5, "on the new primary")
    group.wait_caught_up(r2)
    assert rows(r2, "id >= 3") == [(3, "after restart"), (5, "on the new primary")]
    assert query_value(r2, "SELECT from_server FROM app.repl_t WHERE id = 5") == new.server_id
    assert replica_status(r2)["Master_Port"] == new.port

    # The old primary comes back as a replica of the new one: started with init-rpl-role=SLAVE, its
    # crash recovery rolls back the unacknowledged insert and cuts it from the binary log.
    log_offset = old.error_log.stat().st_size
    group.rejoin(old, new)
    assert query_value(old, "SELECT @@read_only") == 1
    group.wait_caught_up(old)
    assert rows(old, "id >= 3") == [(3, "after restart"), (5, "on the new primary")]
    assert f"remove transactions starting from GTID {unacked_pos}" in old._log_since(log_offset)
    group.wait_ready()
    assert semi_sync_status(new)["master_clients"] == 2
    assert group.replicas == [old, r2]
    pos = {m.server_id: gtid_positions(m)["binlog"] for m in group.members}
    assert len(set(pos.values())) == 1 and pos[1].startswith(f"0-{new.server_id}-"), pos
