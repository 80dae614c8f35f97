"""Acceptance: the node's life cycle around the data path.

- SIGTERM drain: idle clients are disconnected at once, a client inside a transaction can finish it,
  new connections are refused, the node exits 0; a transaction that never ends is cut at
  node.drain_timeout and the database rolls it back.
- SIGHUP reload: new pool settings apply to new backends and logins, a new proxy starts listening, and
  an invalid file changes nothing (the log says why).
- Secret rotation: after ALTER USER and a rewritten secret file, new logins need the new password
  within about two seconds, the old one is refused, and connected clients keep working.
- sysbench oltp_read_write through sluice, 32 threads for 30 s, finishes with zero errors (slow).
"""

from __future__ import annotations

import json
import os
import re
import select
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pymysql
import pytest

import sluicelab
from pooltools import limits, max_connections, proxy_connections, query1, wait_for

LOST_CONNECTION = (2006, 2013)  # CR_SERVER_GONE_ERROR, CR_SERVER_LOST
BORROW_TIMEOUT_ERROR = (9501, "Timed-out waiting to acquire database connection")


# --------------------------------------------------------------------------------------------
# helpers


def closed_by_peer(conn, timeout: float) -> bool:
    """True when the server side closes `conn` (its socket turns readable: close_notify, EOF) within
    `timeout` seconds."""
    r, _, _ = select.select([conn._sock], [], [], timeout)
    return bool(r)


def assert_lost(conn):
    with pytest.raises(pymysql.err.OperationalError) as ei:
        query1(conn, "SELECT 1")
    assert ei.value.args[0] in LOST_CONNECTION, ei.value.args


def wait_exit(node, timeout: float) -> int:
    """Wait for the node process to exit on its own; returns its exit status."""
    try:
        node.proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"sluice {node.id} still runs {timeout} s after SIGTERM; log:\n{node.log_tail(20)}")
    return node.stop()  # collects the status; the factory checks it (must be 0) and sanitizers


# --------------------------------------------------------------------------------------------
# SIGTERM drain


def test_sigterm_drain(mariadb, sluice_node, app_user):
    with mariadb.admin(database=mariadb.database) as c, c.cursor() as cur:
        cur.execute("CREATE OR REPLACE TABLE drain_t (id INT PRIMARY KEY) ENGINE=InnoDB")
    node = sluice_node(users=[app_user], drain_timeout=20)
    port = node.proxy().port
    idle = node.connect(app_user)
    in_txn = node.connect(app_user)
    assert query1(idle, "SELECT 1") == (1,)
    in_txn.begin()
    query1(in_txn, "INSERT INTO drain_t VALUES (1)")

    t0 = time.monotonic()
    os.kill(node.pid, signal.SIGTERM)
    # The idle client is disconnected promptly.
    assert closed_by_peer(idle, 2.0), "idle client still connected 2 s after SIGTERM"
    assert time.monotonic() - t0 < 2.0
    assert_lost(idle)
    # New connections are refused.
    wait_for("the listener to close", lambda: not sluicelab.port_answers(port), timeout=2)
    with pytest.raises(pymysql.err.OperationalError) as ei:
        node.connect(app_user, connect_timeout=2)
    assert ei.value.args[0] == 2003
    # The open transaction finishes normally.
    query1(in_txn, "INSERT INTO drain_t VALUES (2)")
    in_txn.commit()
    t_commit = time.monotonic()
    # Then the node closes that client too and exits 0, without waiting for the drain deadline.
    assert wait_exit(node, 10) == 0
    assert time.monotonic() - t_commit < 10, "node waited for the drain deadline"
    assert "drain deadline reached" not in node.log_text()
    assert_lost(in_txn)
    with mariadb.admin(database=mariadb.database) as c, c.cursor() as cur:
        cur.execute("SELECT id FROM drain_t ORDER BY id")
        assert cur.fetchall() == ((1,), (2,))
    wait_for("the node's backends to leave the database", lambda: proxy_connections(mariadb, app_user) == [],
             timeout=2)


def test_drain_timeout_rolls_back_unfinished_transaction(mariadb, sluice_node, app_user):
    with mariadb.admin(database=mariadb.database) as c, c.cursor() as cur:
        cur.execute("CREATE OR REPLACE TABLE drain_t2 (id INT PRIMARY KEY) ENGINE=InnoDB")
    node = sluice_node(users=[app_user], drain_timeout=2)
    client = node.connect(app_user)
    client.begin()
    query1(client, "INSERT INTO drain_t2 VALUES (1)")
    backend = query1(client, "SELECT CONNECTION_ID()")[0]
    with mariadb.admin() as c, c.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM information_schema.INNODB_TRX WHERE trx_mysql_thread_id = %s",
                    (backend,))
        assert cur.fetchone()[0] == 1, "the client's transaction is not open on its backend"

    t0 = time.monotonic()
    os.kill(node.pid, signal.SIGTERM)
    status = wait_exit(node, 8)
    took = time.monotonic() - t0
    assert status == 0
    assert 1.8 <= took < 5.0, f"node exited {took:.2f} s after SIGTERM (drain_timeout 2 s)"
    assert "drain deadline reached" in node.log_text()
    assert_lost(client)
    # The database rolled the transaction back: its connection is gone, no transaction is left,
    # and the row was never committed.
    wait_for(f"backend {backend} to disappear from PROCESSLIST",
             lambda: backend not in proxy_connections(mariadb, app_user), timeout=5)
    with mariadb.admin(database=mariadb.database) as c, c.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM information_schema.INNODB_TRX WHERE trx_mysql_thread_id = %s",
                    (backend,))
        assert cur.fetchone()[0] == 0
        cur.execute("SELECT COUNT(*) FROM drain_t2")
        assert cur.fetchone()[0] == 0


# --------------------------------------------------------------------------------------------
# SIGHUP reload


def test_sighup_reload(mariadb, sluice_node, app_user):
    with limits(mariadb, 2) as (pct,):
        node = sluice_node(users=[app_user], pool={"max_connections_percent": pct,
                                                   "max_idle_connections_percent": pct,
                                                   "connection_borrow_timeout": 60})
        conns = []
        try:
            a = node.connect(app_user)
            conns.append(a)
            old_backend = query1(a, "SELECT CONNECTION_ID()")[0]

            # 1. New pool settings: an init_query for new backends and a 1 s borrow timeout.
            main = node.proxy("main")
            main.pool.update(init_query="SET time_zone = '+04:00'", connection_borrow_timeout=1)
            reloads = node.log_text().count("configuration reloaded")
            node.reload()
            wait_for("the reload", lambda: node.log_text().count("configuration reloaded") > reloads,
                     timeout=5)
            a.begin()
            assert query1(a, "SELECT CONNECTION_ID()")[0] == old_backend
            b = node.connect(app_user)  # its login needs the second backend: a new one
            conns.append(b)
            b.begin()
            tz, new_backend = query1(b, "SELECT @@time_zone, CONNECTION_ID()")
            assert new_backend != old_backend
            assert tz == "+04:00", "the reloaded init_query did not run on a new backend"
            c = node.connect(app_user, database=None)  # no backend needed to log in
            conns.append(c)
            t0 = time.monotonic()
            with pytest.raises(pymysql.err.OperationalError) as ei:
                query1(c, "SELECT 1")
            assert ei.value.args == BORROW_TIMEOUT_ERROR
            assert time.monotonic() - t0 < 3.0, "the reloaded 1 s borrow timeout is not in force"
            a.commit()
            b.commit()
            assert query1(c, "SELECT 1") == (1,)

            # 2. A new proxy on a new port.
            second = sluicelab.ProxySpec("second", port=sluicelab.free_port(),
                                         auth=[sluicelab.Auth(app_user)])
            node.proxies.append(second)
            reloads = node.log_text().count("configuration reloaded")
            node.reload()
            wait_for("the second proxy to listen", lambda: sluicelab.port_answers(second.port), timeout=5)
            assert node.log_text().count("configuration reloaded") > reloads
            with node.connect(app_user, proxy="second") as d:
                assert query1(d, "SELECT CURRENT_USER(), DATABASE()") == (f"{app_user.name}@%", "app")
            assert query1(c, "SELECT 'main still serves'") == ("main still serves",)

            # 3. An invalid file (out-of-range value, plus one more proxy) changes nothing.
            third = sluicelab.ProxySpec("third", port=sluicelab.free_port(), auth=[sluicelab.Auth(app_user)])
            node.proxies.append(third)
            main.pool["max_connections_percent"] = 0
            try:
                node.reload()
                wait_for("the reload error in the log",
                         lambda: "reload failed, keeping the running configuration" in node.log_text(),
                         timeout=5)
            finally:
                node.proxies.remove(third)
                main.pool["max_connections_percent"] = pct
            line = [ln for ln in node.log_text().splitlines() if "reload failed" in ln][-1]
            assert "proxies[0].connection_pool_config.max_connections_percent" in line, line
            assert not sluicelab.port_answers(third.port), "the invalid configuration's new proxy listens"
            for proxy in ("main", "second"):
                with node.connect(app_user, proxy=proxy) as d:
                    assert query1(d, "SELECT 1") == (1,)
            # The previous settings stay in force (borrow timeout 1 s, not the default 120 s).
            a.begin()
            query1(a, "SELECT 1")
            b.begin()
            query1(b, "SELECT 1")
            t0 = time.monotonic()
            with pytest.raises(pymysql.err.OperationalError) as ei:
                query1(c, "SELECT 1")
            assert ei.value.args == BORROW_TIMEOUT_ERROR
            assert time.monotonic() - t0 < 3.0
            a.commit()
            b.commit()
        finally:
            for conn in conns:
                conn.close()
            node.stop()


# --------------------------------------------------------------------------------------------
# secret rotation


def test_secret_rotation(mariadb, sluice_node):
    user = mariadb.create_user("rotuser")
    node = sluice_node(users=[user])
    existing = node.connect(user)
    assert query1(existing, "SELECT 1") == (1,)

    new_password = sluicelab.random_password()
    while new_password == user.password:
        new_password = sluicelab.random_password()
    with mariadb.admin() as c, c.cursor() as cur:
        cur.execute("ALTER USER %s@'%%' IDENTIFIED BY %s", (user.name, new_password))
    secret_file = node.secrets_dir / f"{user.name}.json"
    doc = json.loads(secret_file.read_text())
    doc["password"] = new_password
    tmp = secret_file.with_name(secret_file.name + ".tmp")
    sluicelab.write_private(tmp, json.dumps(doc) + "\n")
    os.replace(tmp, secret_file)
    t0 = time.monotonic()

    def new_login():
        try:
            c = node.connect(user.name, new_password)
        except pymysql.err.OperationalError as e:
            if e.args[0] != 1045:
                raise
            return None
        return c

    fresh = wait_for("a login with the new password", new_login, timeout=3, interval=0.1)
    assert time.monotonic() - t0 < 2.5
    assert query1(fresh, "SELECT CURRENT_USER()") == (f"{user.name}@%",)
    with pytest.raises(pymysql.err.OperationalError) as ei:
        node.connect(user.name, user.password)
    assert ei.value.args[0] == 1045
    assert "rotated for user " + user.name in node.log_text()

    # The client connected before the rotation keeps working, also when the pool has to open a new
    # backend (logged in with the new password) because both clients hold one.
    assert query1(existing, "SELECT 2") == (2,)
    existing.begin()
    fresh.begin()
    ids = {query1(existing, "SELECT CONNECTION_ID()")[0], query1(fresh, "SELECT CONNECTION_ID()")[0]}
    assert len(ids) == 2
    existing.commit()
    fresh.commit()
    for i in range(5):
        assert query1(existing, "SELECT %s", (i,)) == (i,)
    existing.close()
    fresh.close()


# --------------------------------------------------------------------------------------------
# sysbench (acceptance 7)


SB_TABLES, SB_TABLE_SIZE, SB_THREADS, SB_TIME = 4, 10000, 32, 30


def _sysbench(args, cwd, timeout):
    # --rand-type=uniform: sysbench's default ("special") sends most writes to a few hot rows, and
    # InnoDB then reports deadlocks (1213) a few times a minute whether or not a proxy is in the
    # path (measured directly against MariaDB: 2-7 per 30 s). Uniform keys make a clean run the
    # norm, so any error left is the proxy's.
    return subprocess.run(["sysbench", "oltp_read_write", "--db-driver=mysql", f"--tables={SB_TABLES}",
                           f"--table-size={SB_TABLE_SIZE}", "--rand-type=uniform", *args],
                          cwd=cwd, capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_sysbench_oltp_read_write(mariadb, tls, sluice_node, lab_dir):
    if not shutil.which("sysbench"):
        pytest.fail("sysbench is not installed (Debian package sysbench; scripts/install-deps)")
    user = mariadb.create_user("sbtest")
    # With prepared statements every thread pins a backend: the pool must allow all of them.
    mc = max_connections(mariadb)
    pct = next((p for p in range(1, 101) if mc * p // 100 >= SB_THREADS + 8), None)
    assert pct, f"@@max_connections={mc} is too small for {SB_THREADS} pinned sysbench threads"
    node = sluice_node(users=[user], pool={"max_connections_percent": pct, "connection_borrow_timeout": 60})

    work = Path(tempfile.mkdtemp(prefix="sysbench-", dir=lab_dir))
    shutil.copy(tls.ca_file, work / "cacert.pem")  # sysbench --mysql-ssl=on reads these three
    shutil.copy(tls.cert_file, work / "client-cert.pem")
    shutil.copy(tls.key_file, work / "client-key.pem")
    creds = [f"--mysql-user={user.name}", f"--mysql-password={user.password}", "--mysql-db=app"]

    prep = _sysbench([f"--mysql-host={mariadb.host}", f"--mysql-port={mariadb.port}", *creds, "prepare"],
                     work, 300)
    assert prep.returncode == 0, f"sysbench prepare (direct) failed:\n{prep.stdout[-2000:]}\n{prep.stderr[-2000:]}"

    def deadlocks():
        with mariadb.admin() as c, c.cursor() as cur:
            cur.execute("SHOW GLOBAL STATUS LIKE 'Innodb_deadlocks'")
            return int(cur.fetchone()[1])

    deadlocks_before = deadlocks()
    p = node.proxy()
    run = _sysbench([f"--mysql-host={p.host}", f"--mysql-port={p.port}", *creds, "--mysql-ssl=on",
                     f"--threads={SB_THREADS}", f"--time={SB_TIME}", "--report-interval=0", "run"],
                    work, SB_TIME + 90)
    out = run.stdout + run.stderr
    assert run.returncode == 0, f"sysbench run exited {run.returncode}:\n{out[-4000:]}"
    assert "FATAL" not in out, out[-4000:]
    m = re.search(r"ignored errors:\s+(\d+)", out)
    assert m, f"no 'ignored errors' line in sysbench output:\n{out[-3000:]}"
    # sysbench ignores deadlocks (1213) and lock wait timeouts; zero errors means none of those either.
    assert int(m.group(1)) == 0, (f"sysbench ignored {m.group(1)} errors; the database counted "
                                  f"{deadlocks() - deadlocks_before} InnoDB deadlocks meanwhile:\n{out[-3000:]}")
    m = re.search(r"transactions:\s+(\d+)", out)
    assert m and int(m.group(1)) > 0, out[-3000:]
    m = re.search(r"reconnects:\s+(\d+)", out)
    assert m and int(m.group(1)) == 0, out[-3000:]


def test_reload_with_other_targets_replaces_the_proxy(mariadb, sluice_node, app_user):
    """A reload that changes a proxy's targets: a session inside a transaction finishes on its
    backend, new sessions get new pools on the new targets, and the old pool's idle connections
    close. (The "new" target is the same database under another name, which is all one MariaDB
    allows; the proxy cannot tell.)"""
    node = sluice_node(users=[app_user])
    idle = node.connect(app_user)
    busy = node.connect(app_user)
    try:
        query1(idle, "SELECT 1")
        with mariadb.admin(database=mariadb.database) as c, c.cursor() as cur:
            cur.execute("CREATE OR REPLACE TABLE reload_t (id INT PRIMARY KEY) ENGINE=InnoDB")
        busy.begin()
        query1(busy, "INSERT INTO reload_t VALUES (1)")
        busy_backend = query1(busy, "SELECT CONNECTION_ID()")[0]
        before = set(proxy_connections(mariadb, app_user))

        node.proxy("main").targets = [("localhost", mariadb.port)]
        node.reload()
        wait_for("the replacement", lambda: "targets changed" in node.log_text(), timeout=5)

        # The transaction goes on where it was and commits.
        assert query1(busy, "SELECT CONNECTION_ID()")[0] == busy_backend
        busy.commit()
        # A new client is served through the new pool: a backend the old pool never had.
        with node.connect(app_user) as c:
            assert query1(c, "SELECT COUNT(*) FROM reload_t")[0] == 1
            assert query1(c, "SELECT CONNECTION_ID()")[0] not in before
        # The retired pool keeps nothing idle: its backends leave the database.
        wait_for("the old pool's backends to close",
                 lambda: not before & set(proxy_connections(mariadb, app_user)), timeout=5)
        # The sessions that were connected keep working (their next statements use the old
        # proxy's pools, which open connections as needed and close them when released).
        assert query1(idle, "SELECT 2")[0] == 2
    finally:
        idle.close()
        busy.close()
