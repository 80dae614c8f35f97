"""Acceptance: pooling and pool settings of the data path.

- 200 concurrent clients, each running 50 short transactions (mixed reads and writes, autocommit and
  explicit BEGIN/COMMIT), through one node whose pool is capped at 10 backend connections: every
  transaction succeeds, the database never sees more than 10 connections from the proxy user
  (information_schema.PROCESSLIST sampled on the database itself, plus MAX_USER_CONNECTIONS 10 on the
  user as a tripwire), and the tables hold exactly what the clients expect.
- connection_borrow_timeout: a client that waits longer gets error 9501 and keeps its session.
- idle_client_timeout closes idle clients and leaves active ones alone.
- init_query runs on every new backend; a client that never set a variable sees the init_query's value
  even on a backend another client changed; a broken init_query fails clients instead of hanging them.
- max_idle_connections_percent trims idle backends after a burst.

Pool caps are percentages of the database's @@max_connections. `limits()` picks the percentages that
give exact connection counts for the fixture database's @@max_connections and, when no integer
percentage does, sets @@max_connections to 100 for the duration of one test (restored afterwards; the
nodes started under it are stopped before that).
"""

from __future__ import annotations

import select
import threading
import time

import pymysql
import pytest

import sluicelab
from pooltools import ProcesslistSampler, limits, proxy_connections, query1, wait_for

BORROW_TIMEOUT_ERROR = (9501, "Timed-out waiting to acquire database connection")
LOST_CONNECTION = (2006, 2013)  # CR_SERVER_GONE_ERROR, CR_SERVER_LOST

# --------------------------------------------------------------------------------------------
# (3) 200 clients x 50 transactions over a pool of 10


POOL_CAP = 10
IDLE_CAP = 2
N_CLIENTS = 200
N_TXNS = 50


@pytest.fixture(scope="module")
def capped_user(mariadb):
    """The proxy user of the capped pool, limited to POOL_CAP connections by the database itself."""
    return mariadb.create_user("pool10", max_user_connections=POOL_CAP)


@pytest.fixture(scope="module")
def capped_pcts(mariadb):
    """(max_connections_percent, max_idle_connections_percent) for POOL_CAP and IDLE_CAP. When the
    database's @@max_connections allows no such integer percentages, it is set to 100 for this
    module; the other tests' limits() work relative to whatever value is current and restore it."""
    with limits(mariadb, POOL_CAP, IDLE_CAP) as pcts:
        yield tuple(pcts)


@pytest.fixture(scope="module")
def capped_node(module_sluice_node, capped_user, capped_pcts):
    """Pool capped at POOL_CAP backends, at most IDLE_CAP of them idle."""
    pct, idle_pct = capped_pcts
    return module_sluice_node(users=[capped_user], pool={
        "max_connections_percent": pct, "max_idle_connections_percent": idle_pct,
        "connection_borrow_timeout": 60})


def _reset_pool_tables(db):
    with db.admin(database=db.database) as c, c.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS pool_rows, pool_clients, pool_totals")
        cur.execute("CREATE TABLE pool_rows (client INT NOT NULL, seq INT NOT NULL, val INT NOT NULL, "
                    "PRIMARY KEY (client, seq)) ENGINE=InnoDB")
        cur.execute("CREATE TABLE pool_clients (client INT PRIMARY KEY, txns INT NOT NULL) ENGINE=InnoDB")
        cur.execute("CREATE TABLE pool_totals (id INT PRIMARY KEY, n INT NOT NULL) ENGINE=InnoDB")
        cur.execute("INSERT INTO pool_totals VALUES (1, 0)")
        cur.executemany("INSERT INTO pool_clients VALUES (%s, 0)", [(i,) for i in range(N_CLIENTS)])


class Client(threading.Thread):
    """One application client: N_TXNS transactions of five kinds in rotation. Remembers what it
    wrote, so the table can be checked row by row afterwards."""

    def __init__(self, node, user, cid, start_barrier):
        super().__init__(daemon=True)
        self.node, self.user, self.cid, self.start_barrier = node, user, cid, start_barrier
        self.rows = {}  # seq -> val, what pool_rows must hold for this client
        self.explicit_txns = 0  # increments of pool_clients.txns
        self.total_incs = 0  # increments of the shared pool_totals row
        self.done = 0  # transactions that succeeded
        self.error = None

    def run(self):
        try:
            conn = self.node.connect(self.user, connect_timeout=60, read_timeout=120, write_timeout=120)
        except Exception as e:
            self.error = f"client {self.cid}: connect failed: {e!r}"
            self.start_barrier.abort()
            return
        try:
            self.start_barrier.wait(120)
            with conn, conn.cursor() as cur:
                for i in range(N_TXNS):
                    self.txn(conn, cur, i)
                    self.done += 1
        except Exception as e:
            self.error = f"client {self.cid}, transaction {self.done}: {e!r}"

    def txn(self, conn, cur, i):
        cid = self.cid
        kind = (i + cid) % 5
        if kind == 0:  # autocommit write
            val = cid * 1000 + i
            cur.execute("INSERT INTO pool_rows (client, seq, val) VALUES (%s, %s, %s)", (cid, i, val))
            self.rows[i] = val
        elif kind == 1:  # explicit transaction: two writes
            cur.execute("BEGIN")
            cur.execute("INSERT INTO pool_rows (client, seq, val) VALUES (%s, %s, %s)", (cid, i, -i))
            cur.execute("UPDATE pool_clients SET txns = txns + 1 WHERE client = %s", (cid,))
            conn.commit()
            self.rows[i] = -i
            self.explicit_txns += 1
        elif kind == 2:  # autocommit read: sees everything this client committed, on any backend
            cur.execute("SELECT COUNT(*), COALESCE(SUM(val), 0) FROM pool_rows WHERE client = %s", (cid,))
            got = tuple(int(x) for x in cur.fetchone())
            want = (len(self.rows), sum(self.rows.values()))
            if got != want:
                raise AssertionError(f"read {got}, expected {want}")
        elif kind == 3:  # explicit read-modify-write
            cur.execute("START TRANSACTION")
            cur.execute("SELECT seq, val FROM pool_rows WHERE client = %s ORDER BY seq DESC LIMIT 1 FOR UPDATE",
                        (cid,))
            row = cur.fetchone()
            if self.rows:
                last = max(self.rows)
                if row is None or (row[0], row[1]) != (last, self.rows[last]):
                    raise AssertionError(f"read {row}, expected {(last, self.rows[last])}")
                cur.execute("UPDATE pool_rows SET val = val + 7 WHERE client = %s AND seq = %s", (cid, last))
                conn.commit()
                self.rows[last] += 7
            else:
                if row is not None:
                    raise AssertionError(f"read {row}, expected no row")
                conn.commit()
        else:  # a rolled-back write, then an autocommit increment of a row every client updates
            cur.execute("BEGIN")
            cur.execute("INSERT INTO pool_rows (client, seq, val) VALUES (%s, %s, 1)", (cid, 1000 + i))
            conn.rollback()
            cur.execute("UPDATE pool_totals SET n = n + 1 WHERE id = 1")
            if cur.rowcount != 1:
                raise AssertionError(f"UPDATE pool_totals affected {cur.rowcount} rows")
            self.total_incs += 1


def test_200_clients_over_10_backends(mariadb, capped_node, capped_user):
    _reset_pool_tables(mariadb)
    sampler = ProcesslistSampler(mariadb, capped_user, interval=0.01)
    sampler.start()
    barrier = threading.Barrier(N_CLIENTS)
    clients = [Client(capped_node, capped_user, cid, barrier) for cid in range(N_CLIENTS)]
    t0 = time.monotonic()
    try:
        for c in clients:
            c.start()
        for c in clients:
            c.join(timeout=max(1.0, 150 - (time.monotonic() - t0)))
    finally:
        samples = sampler.stop()
    elapsed = time.monotonic() - t0
    hung = [c.cid for c in clients if c.is_alive()]
    assert not hung, f"{len(hung)} clients still running after {elapsed:.0f} s: {hung[:10]}"
    errors = [c.error for c in clients if c.error]
    assert not errors, f"{len(errors)} clients failed; first ones:\n" + "\n".join(errors[:10])
    assert sum(c.done for c in clients) == N_CLIENTS * N_TXNS

    print(f"{N_CLIENTS * N_TXNS} transactions in {elapsed:.1f} s; {len(samples)} PROCESSLIST samples, "
          f"max {max(samples, default=0)} proxy connections")
    # The database itself never saw more than the cap, and the pool was really used.
    assert len(samples) > 20, f"only {len(samples)} PROCESSLIST samples in {elapsed:.1f} s"
    assert max(samples) <= POOL_CAP, f"database saw {max(samples)} proxy connections (cap {POOL_CAP})"
    assert max(samples) > 1, f"the pool never had more than {max(samples)} backend"

    # Exactly the rows the clients wrote, with the values they expect.
    want_rows = sorted((c.cid, seq, val) for c in clients for seq, val in c.rows.items())
    with mariadb.admin(database=mariadb.database) as conn, conn.cursor() as cur:
        cur.execute("SELECT client, seq, val FROM pool_rows ORDER BY client, seq")
        got_rows = [tuple(r) for r in cur.fetchall()]
        cur.execute("SELECT client, txns FROM pool_clients ORDER BY client")
        got_txns = [tuple(r) for r in cur.fetchall()]
        cur.execute("SELECT n FROM pool_totals WHERE id = 1")
        got_total = cur.fetchone()[0]
    assert len(got_rows) == len(want_rows)
    assert got_rows == want_rows
    assert got_txns == [(c.cid, c.explicit_txns) for c in clients]
    assert got_total == sum(c.total_incs for c in clients)
    # The workload is what it claims: every kind ran many times.
    assert sum(c.explicit_txns for c in clients) == N_CLIENTS * N_TXNS // 5
    assert got_total == N_CLIENTS * N_TXNS // 5


def test_idle_backends_trimmed_after_burst(mariadb, capped_node, capped_user):
    """max_idle_connections_percent: after POOL_CAP concurrent transactions end, the database sees
    at most IDLE_CAP connections of the proxy user."""
    conns = [capped_node.connect(capped_user) for _ in range(POOL_CAP)]
    try:
        for c in conns:
            query1(c, "BEGIN")
        ids = [query1(c, "SELECT CONNECTION_ID()")[0] for c in conns]
        assert len(set(ids)) == POOL_CAP, f"{POOL_CAP} open transactions share backends: {ids}"
        during = proxy_connections(mariadb, capped_user)
        assert sorted(ids) == during, "PROCESSLIST does not show the transactions' backends"
        assert len(during) > IDLE_CAP
        for c in conns:
            c.commit()

        def trimmed():
            return len(proxy_connections(mariadb, capped_user)) <= IDLE_CAP

        wait_for(f"at most {IDLE_CAP} proxy connections on the database", trimmed, timeout=10)
        # The clients still work after the trim.
        for c in conns:
            assert query1(c, "SELECT 1") == (1,)
    finally:
        for c in conns:
            c.close()


# --------------------------------------------------------------------------------------------
# (5) connection_borrow_timeout


def test_borrow_timeout_gives_9501_and_keeps_session(mariadb, sluice_node, app_user):
    with limits(mariadb, 1) as (pct,):
        node = sluice_node(users=[app_user], pool={"max_connections_percent": pct,
                                                   "max_idle_connections_percent": pct,
                                                   "connection_borrow_timeout": 1})
        with mariadb.admin(database=mariadb.database) as c, c.cursor() as cur:
            cur.execute("CREATE OR REPLACE TABLE borrow_t (id INT PRIMARY KEY) ENGINE=InnoDB")
        # Both log in first (a login naming a database borrows a backend too).
        waiter = node.connect(app_user)
        holder = node.connect(app_user)
        try:
            query1(waiter, "SET time_zone = '+02:00'")
            query1(holder, "BEGIN")
            query1(holder, "INSERT INTO borrow_t VALUES (1)")
            t0 = time.monotonic()
            with pytest.raises(pymysql.err.OperationalError) as ei:
                query1(waiter, "SELECT 1")
            waited = time.monotonic() - t0
            assert ei.value.args == BORROW_TIMEOUT_ERROR
            assert 0.8 <= waited < 3.0, f"error came after {waited:.2f} s (borrow timeout 1 s)"

            holder.commit()
            # Same connection, same session: the next query runs, with the session's own state.
            assert query1(waiter, "SELECT @@time_zone, COUNT(*) FROM borrow_t") == ("+02:00", 1)
            assert query1(holder, "SELECT 'holder ok'") == ("holder ok",)
            assert "borrow timeout after 1 s" in node.log_text()
        finally:
            waiter.close()
            holder.close()
            node.stop()


def test_waiters_served_first_come_first_served(mariadb, sluice_node, app_user):
    """With one backend busy, queued statements run in the order the clients asked."""
    with limits(mariadb, 1) as (pct,):
        node = sluice_node(users=[app_user], pool={"max_connections_percent": pct,
                                                   "max_idle_connections_percent": pct,
                                                   "connection_borrow_timeout": 20})
        with mariadb.admin(database=mariadb.database) as c, c.cursor() as cur:
            cur.execute("CREATE OR REPLACE TABLE fifo_t (seq INT AUTO_INCREMENT PRIMARY KEY, who INT)")
        holder = node.connect(app_user)
        waiters = [node.connect(app_user) for _ in range(6)]
        errors = []

        def run(i):
            try:
                query1(waiters[i], "INSERT INTO fifo_t (who) VALUES (%s)", (i,))
            except Exception as e:  # reported below
                errors.append((i, repr(e)))

        try:
            query1(holder, "BEGIN")
            query1(holder, "SELECT 1")
            threads = []
            for i in range(len(waiters)):
                t = threading.Thread(target=run, args=(i,))
                t.start()
                threads.append(t)
                time.sleep(0.15)  # arrival order: each client asks after the previous one queued
            holder.commit()
            for t in threads:
                t.join(timeout=30)
            assert not errors, errors
            with mariadb.admin(database=mariadb.database) as c, c.cursor() as cur:
                cur.execute("SELECT who FROM fifo_t ORDER BY seq")
                assert [r[0] for r in cur.fetchall()] == list(range(len(waiters)))
        finally:
            holder.close()
            for w in waiters:
                w.close()
            node.stop()


def test_borrow_timeout_during_login_with_database(mariadb, sluice_node, app_user):
    """A login that names a database needs a backend (the database checks the name); when none comes
    within connection_borrow_timeout the login fails with error 9501, as a proper MySQL error."""
    with limits(mariadb, 1) as (pct,):
        node = sluice_node(users=[app_user], pool={"max_connections_percent": pct,
                                                   "max_idle_connections_percent": pct,
                                                   "connection_borrow_timeout": 1})
        holder = node.connect(app_user)
        try:
            query1(holder, "BEGIN")
            query1(holder, "SELECT 1")
            t0 = time.monotonic()
            with pytest.raises(pymysql.err.MySQLError) as ei:
                node.connect(app_user, database="app")
            waited = time.monotonic() - t0
            assert ei.value.args == BORROW_TIMEOUT_ERROR
            assert isinstance(ei.value, pymysql.err.OperationalError)
            assert 0.8 <= waited < 3.0, f"login failed after {waited:.2f} s (borrow timeout 1 s)"
            holder.commit()
            with node.connect(app_user, database="app") as c:
                assert query1(c, "SELECT DATABASE()") == ("app",)
        finally:
            holder.close()
            node.stop()


# --------------------------------------------------------------------------------------------
# (5) idle_client_timeout


def test_idle_client_timeout(sluice_node, app_user):
    node = sluice_node(proxies=[sluicelab.ProxySpec("main", auth=[sluicelab.Auth(app_user)],
                                                    idle_client_timeout=1)])
    idle = node.connect(app_user)
    busy = node.connect(app_user)
    assert query1(idle, "SELECT 1") == (1,)
    t_idle = time.monotonic()
    closed_at = None
    busy_queries = 0
    while time.monotonic() - t_idle < 2.5:
        assert query1(busy, "SELECT 2") == (2,)
        busy_queries += 1
        # The proxy closing the idle client makes its socket readable (close_notify, then EOF).
        r, _, _ = select.select([idle._sock], [], [], 0.3)
        if r and closed_at is None:
            closed_at = time.monotonic() - t_idle
    assert closed_at is not None, "the idle client's connection was not closed within 2.5 s"
    assert 0.9 <= closed_at <= 2.2, f"idle client closed after {closed_at:.2f} s (timeout 1 s)"
    with pytest.raises(pymysql.err.OperationalError) as ei:
        query1(idle, "SELECT 1")
    assert ei.value.args[0] in LOST_CONNECTION
    # The client that kept querying every 0.3 s outlived the timeout twice over and still works.
    assert busy_queries >= 6
    assert query1(busy, "SELECT 3") == (3,)
    assert "closing idle client after 1 s" in node.log_text()
    busy.close()


# --------------------------------------------------------------------------------------------
# (5) init_query


INIT_QUERY = "SET SESSION sql_mode='ANSI_QUOTES', time_zone='+03:00'"


def test_init_query_on_every_backend(mariadb, sluice_node, app_user):
    with limits(mariadb, 4) as (pct,):
        node = sluice_node(users=[app_user], pool={"max_connections_percent": pct,
                                                   "max_idle_connections_percent": pct,
                                                   "init_query": INIT_QUERY})
        conns = []
        try:
            # Three concurrent transactions: three backends, each set up by the init query.
            trio = [node.connect(app_user) for _ in range(3)]
            conns += trio
            seen = []
            for c in trio:
                query1(c, "BEGIN")
                seen.append(query1(c, "SELECT @@session.time_zone, @@session.sql_mode, CONNECTION_ID()"))
            assert [s[:2] for s in seen] == [("+03:00", "ANSI_QUOTES")] * 3
            ids = [s[2] for s in seen]
            assert len(set(ids)) == 3, f"three open transactions on backends {ids}"
            assert set(ids) <= set(proxy_connections(mariadb, app_user))
            for c in trio:
                c.commit()

            # Carrying: with 3 of the 4 backends held, two clients share the last one. The one that
            # set time_zone itself keeps '+05:00'; the other, which never set it, sees the init
            # query's '+03:00' on the very backend the first one changed.
            holders = [node.connect(app_user) for _ in range(3)]
            conns += holders
            setter, other = node.connect(app_user), node.connect(app_user)
            conns += [setter, other]
            held = []
            for h in holders:
                query1(h, "BEGIN")
                held.append(query1(h, "SELECT CONNECTION_ID()")[0])
            assert len(set(held)) == 3
            query1(setter, "SET time_zone = '+05:00'")
            tz, setter_be = query1(setter, "SELECT @@time_zone, CONNECTION_ID()")
            assert tz == "+05:00"
            assert setter_be not in held
            tz, mode, other_be = query1(other, "SELECT @@time_zone, @@sql_mode, CONNECTION_ID()")
            assert other_be == setter_be, "with 3 of 4 backends held, both clients must share the 4th"
            assert (tz, mode) == ("+03:00", "ANSI_QUOTES")
            assert query1(setter, "SELECT @@time_zone, @@sql_mode, CONNECTION_ID()") == \
                ("+05:00", "ANSI_QUOTES", setter_be)
            for h in holders:
                h.commit()
            # ANSI_QUOTES is really in force: "x" names a column, not a string.
            with pytest.raises(pymysql.err.OperationalError) as ei:
                query1(other, 'SELECT "no_such_column"')
            assert ei.value.args[0] == 1054
        finally:
            for c in conns:
                c.close()
            node.stop()


def test_broken_init_query_fails_clients(sluice_node, app_user):
    """An init_query the database rejects: waiting clients get the database's error at once instead
    of hanging until the borrow timeout, and the log says why."""
    node = sluice_node(users=[app_user], pool={"init_query": "SELEC 1", "connection_borrow_timeout": 1})
    # A login without a database needs no backend; its first query does.
    c = node.connect(app_user, database=None, read_timeout=10)
    t0 = time.monotonic()
    with pytest.raises(pymysql.err.MySQLError) as ei:
        query1(c, "SELECT 1")
    waited = time.monotonic() - t0
    assert waited < 3.0, f"error came after {waited:.2f} s (borrow timeout 1 s)"
    # The database's own answer to the broken init_query reaches the client (not a timeout).
    assert ei.value.args[0] == 1064 and "SELEC 1" in ei.value.args[1], f"unexpected error {ei.value!r}"
    c.close()
    log = node.log_text()
    assert "INIT_QUERY_FAILED" in log
    assert "failed with error 1064" in log
    # A login naming a database fails the same way, with a MySQL error (not a protocol error).
    t0 = time.monotonic()
    with pytest.raises(pymysql.err.MySQLError) as ei:
        node.connect(app_user, database="app", read_timeout=10)
    waited = time.monotonic() - t0
    assert waited < 3.0, f"login failed after {waited:.2f} s (borrow timeout 1 s)"
    # The database's own answer to the broken init_query reaches the client (not a timeout).
    assert ei.value.args[0] == 1064 and "SELEC 1" in ei.value.args[1], f"unexpected error {ei.value!r}"


# --------------------------------------------------------------------------------------------
# A backend that dies


def test_dead_backends_dropped_and_idle_clients_never_see_it(mariadb, sluice_node, app_user):
    """The database kills every pooled connection while the clients are idle: the pool drops them
    and the clients' next statements run on fresh backends, without any error."""
    node = sluice_node(users=[app_user])
    clients = [node.connect(app_user) for _ in range(3)]
    try:
        for c in clients:
            query1(c, "SET time_zone = '+01:00'")
        before = proxy_connections(mariadb, app_user)
        assert before, "the clients' backends should be in PROCESSLIST"
        with mariadb.admin() as a, a.cursor() as cur:
            for tid in before:
                cur.execute(f"KILL {int(tid)}")
        wait_for("the killed backends to leave PROCESSLIST",
                 lambda: not set(before) & set(proxy_connections(mariadb, app_user)), 5)
        for c in clients:
            # Same session state, a backend the database did not kill.
            tz, backend = query1(c, "SELECT @@time_zone, CONNECTION_ID()")
            assert tz == "+01:00"
            assert backend not in before
        assert "lost" in node.log_text()
    finally:
        for c in clients:
            c.close()
