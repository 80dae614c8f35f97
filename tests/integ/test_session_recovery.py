"""Sessions outlive their database connection (issue 5 "sessions move", issue 4 acceptance 3).

A backend connection can die under a client session: the database fails over, a fence kills it, an
operator runs KILL. Each test kills the backend a session is using, from the database side (KILL
CONNECTION on an admin connection, as a fence does), and checks what the client sees:

- a transaction open on it is replayed on another connection when transaction_replay is on and every
  recorded result matches; the client sees nothing, and the work is applied exactly once;
- a replayed result that differs is refused: 1213 (40001), nothing of the transaction applied, the
  session goes on;
- without replay the transaction fails with 1213 at the next statement, the session goes on;
  a ROLLBACK then is simply answered;
- an autocommit read in flight is sent again; an autocommit write in flight gets 1180 (08007,
  outcome unknown); the client keeps its connection either way;
- a pinned session's state (a temporary table) is reported lost by name (1927), then the session
  goes on as a fresh one.
"""

from __future__ import annotations

import threading
import time

import pymysql
import pytest

from pooltools import wait_for

TRANSACTION_LOST = 1213
OUTCOME_UNKNOWN = 1180
STATE_LOST = 1927


@pytest.fixture(scope="module")
def rec_user(mariadb):
    return mariadb.create_user("recovery")


@pytest.fixture(scope="module")
def replay_node(module_sluice_node, rec_user):
    return module_sluice_node(users=[rec_user], pool={"transaction_replay": True,
                                                      "connection_borrow_timeout": 20})


@pytest.fixture(scope="module")
def plain_node(module_sluice_node, rec_user):
    return module_sluice_node(users=[rec_user], pool={"connection_borrow_timeout": 20})


@pytest.fixture
def table(mariadb):
    with mariadb.admin(database=mariadb.database) as c, c.cursor() as cur:
        cur.execute("CREATE OR REPLACE TABLE rec (id INT PRIMARY KEY, v INT NOT NULL) ENGINE=InnoDB")
        cur.executemany("INSERT INTO rec VALUES (%s, 0)", [(i,) for i in range(1, 11)])
    return "rec"


def value(db, key: int) -> int:
    with db.admin(database=db.database) as c, c.cursor() as cur:
        cur.execute("SELECT v FROM rec WHERE id = %s", (key,))
        return int(cur.fetchone()[0])


def kill_transaction_holder(db) -> int:
    """KILL CONNECTION the one live connection of the test's user with an open InnoDB transaction
    that changed rows (a connection killed before may still be rolling back: not live)."""
    with db.admin() as c, c.cursor() as cur:
        # InnoDB refreshes what INNODB_TRX shows only when it was not read for 0.1 s: wait that
        # long before each look, or an earlier test's transaction is shown.
        deadline = time.monotonic() + 5
        while True:
            time.sleep(0.15)
            cur.execute("SELECT t.trx_mysql_thread_id FROM information_schema.INNODB_TRX t "
                        "JOIN information_schema.PROCESSLIST p ON p.ID = t.trx_mysql_thread_id "
                        "WHERE t.trx_rows_modified > 0 AND p.USER = 'recovery' "
                        "AND p.COMMAND <> 'Killed'")
            rows = cur.fetchall()
            if len(rows) == 1 or time.monotonic() > deadline:
                break
        assert len(rows) == 1, f"expected one open writing transaction, found {rows}"
        cur.execute(f"KILL CONNECTION {int(rows[0][0])}")
        return int(rows[0][0])


def kill_running(db, marker: str, timeout: float = 10.0) -> int:
    """KILL CONNECTION the connection whose running statement contains marker."""
    deadline = time.monotonic() + timeout
    with db.admin() as c, c.cursor() as cur:
        while time.monotonic() < deadline:
            cur.execute("SELECT ID FROM information_schema.PROCESSLIST WHERE INFO LIKE %s "
                        "AND ID <> CONNECTION_ID()", ("%" + marker + "%",))
            row = cur.fetchone()
            if row:
                cur.execute(f"KILL CONNECTION {int(row[0])}")
                return int(row[0])
            time.sleep(0.02)
    raise AssertionError(f"no running statement with {marker!r}")


def wait_gone(db, thread_id: int) -> None:
    def gone():
        with db.admin() as c, c.cursor() as cur:
            cur.execute("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = %s",
                        (thread_id,))
            return cur.fetchone()[0] == 0
    wait_for(f"connection {thread_id} to be gone", gone, timeout=10)


def in_background(fn):
    """Run fn in a thread; the returned function joins it and re-raises what it raised."""
    box = {}

    def run():
        try:
            box["value"] = fn()
        except BaseException as e:  # re-raised in the test's thread
            box["error"] = e
    t = threading.Thread(target=run, daemon=True)
    t.start()

    def join():
        t.join(30)
        assert not t.is_alive(), "the background statement did not finish"
        if "error" in box:
            raise box["error"]
        return box.get("value")
    return join


def error_of(fn) -> tuple:
    with pytest.raises(pymysql.err.MySQLError) as info:
        fn()
    return info.value.args[0], info.value.args[1]


def still_serves(conn) -> None:
    with conn.cursor() as cur:
        cur.execute("SELECT 41 + 1")
        assert cur.fetchone()[0] == 42


def test_open_transaction_is_replayed_unnoticed(replay_node, rec_user, mariadb, table):
    conn = replay_node.connect(rec_user, autocommit=True)
    with conn.cursor() as cur:
        cur.execute("BEGIN")
        cur.execute("UPDATE rec SET v = v + 1 WHERE id = 1")
        cur.execute("SELECT v FROM rec WHERE id = 1")
        assert cur.fetchone()[0] == 1
        killed = kill_transaction_holder(mariadb)
        wait_gone(mariadb, killed)
        # The next statement runs after the transaction was rebuilt on another connection.
        cur.execute("UPDATE rec SET v = v + 10 WHERE id = 1")
        cur.execute("SELECT v FROM rec WHERE id = 1")
        assert cur.fetchone()[0] == 11
        cur.execute("COMMIT")
    assert value(mariadb, 1) == 11, "the replayed transaction was not applied exactly once"
    still_serves(conn)
    conn.close()
    assert "transaction replayed; every result matched" in replay_node.log_text()


def test_statement_in_flight_inside_a_transaction_is_replayed(replay_node, rec_user, mariadb, table):
    conn = replay_node.connect(rec_user, autocommit=True)
    with conn.cursor() as cur:
        cur.execute("BEGIN")
        cur.execute("UPDATE rec SET v = v + 1 WHERE id = 2")
        # Killed while it runs: the connection rolled the transaction back, so replaying it and
        # sending the statement again applies everything once.
        join = in_background(lambda: cur.execute(
            "UPDATE rec SET v = v + 100 WHERE id = 2 AND SLEEP(1) = 0 /* inflight-trx */"))
        kill_running(mariadb, "inflight-trx")
        join()
        cur.execute("COMMIT")
    assert value(mariadb, 2) == 101
    still_serves(conn)
    conn.close()


def test_replay_refused_when_a_result_differs(replay_node, rec_user, mariadb, table):
    conn = replay_node.connect(rec_user, autocommit=True)
    with conn.cursor() as cur:
        cur.execute("BEGIN")
        cur.execute("UPDATE rec SET v = v + 1 WHERE id = 3")
        cur.execute("SELECT v FROM rec WHERE id = 4")
        assert cur.fetchone()[0] == 0
        # Someone else changes what the transaction read; then its connection is lost.
        with mariadb.admin(database=mariadb.database) as c, c.cursor() as other:
            other.execute("UPDATE rec SET v = 7 WHERE id = 4")
        wait_gone(mariadb, kill_transaction_holder(mariadb))
        code, msg = error_of(lambda: cur.execute("UPDATE rec SET v = v + 1 WHERE id = 5"))
        assert code == TRANSACTION_LOST, msg
        assert "answered differently" in msg
    # Nothing of the refused transaction is applied, and the session goes on outside it.
    assert value(mariadb, 3) == 0 and value(mariadb, 5) == 0
    still_serves(conn)
    with conn.cursor() as cur:
        cur.execute("SELECT @@in_transaction")
        assert cur.fetchone()[0] == 0
    conn.close()


def test_non_deterministic_transaction_is_not_replayed(replay_node, rec_user, mariadb, table):
    conn = replay_node.connect(rec_user, autocommit=True)
    with conn.cursor() as cur:
        cur.execute("BEGIN")
        cur.execute("UPDATE rec SET v = UNIX_TIMESTAMP(NOW()) WHERE id = 6")
        wait_gone(mariadb, kill_transaction_holder(mariadb))
        code, msg = error_of(lambda: cur.execute("SELECT v FROM rec WHERE id = 6"))
        assert code == TRANSACTION_LOST and "non-deterministic" in msg, msg
    assert value(mariadb, 6) == 0
    still_serves(conn)
    conn.close()


def test_without_replay_the_transaction_fails_once_and_the_session_goes_on(plain_node, rec_user,
                                                                          mariadb, table):
    conn = plain_node.connect(rec_user, autocommit=True)
    with conn.cursor() as cur:
        cur.execute("BEGIN")
        cur.execute("UPDATE rec SET v = v + 1 WHERE id = 7")
        wait_gone(mariadb, kill_transaction_holder(mariadb))
        code, msg = error_of(lambda: cur.execute("SELECT v FROM rec WHERE id = 7"))
        assert code == TRANSACTION_LOST and "transaction_replay is off" in msg, msg
        # One error for the transaction, then business as usual.
        cur.execute("SELECT v FROM rec WHERE id = 7")
        assert cur.fetchone()[0] == 0
        # A client that answers the loss with ROLLBACK just gets its OK.
        cur.execute("BEGIN")
        cur.execute("UPDATE rec SET v = v + 1 WHERE id = 8")
        wait_gone(mariadb, kill_transaction_holder(mariadb))
        cur.execute("ROLLBACK")
        cur.execute("BEGIN")
        cur.execute("UPDATE rec SET v = v + 5 WHERE id = 8")
        cur.execute("COMMIT")
    assert value(mariadb, 7) == 0 and value(mariadb, 8) == 5
    conn.close()


def test_autocommit_read_in_flight_is_sent_again(plain_node, rec_user, mariadb):
    conn = plain_node.connect(rec_user, autocommit=True)
    with conn.cursor() as cur:
        join = in_background(lambda: (cur.execute("SELECT SLEEP(1), 'read-again' /* retry-me */"),
                                      cur.fetchall())[1])
        kill_running(mariadb, "retry-me")
        rows = join()
    assert rows == ((0, "read-again"),), rows
    still_serves(conn)
    conn.close()
    assert "sending the statement again" in plain_node.log_text()


def test_autocommit_write_in_flight_reports_unknown_outcome(plain_node, rec_user, mariadb, table):
    conn = plain_node.connect(rec_user, autocommit=True)
    with conn.cursor() as cur:
        join = in_background(lambda: cur.execute(
            "UPDATE rec SET v = v + 1 WHERE id = 9 AND SLEEP(1) = 0 /* write-lost */"))
        kill_running(mariadb, "write-lost")
        with pytest.raises(pymysql.err.MySQLError) as info:
            join()
    code, msg = info.value.args[0], info.value.args[1]
    assert code == OUTCOME_UNKNOWN and "unknown" in msg, msg
    still_serves(conn)
    conn.close()


def test_pinned_session_reports_the_state_it_lost(plain_node, rec_user, mariadb):
    conn = plain_node.connect(rec_user, autocommit=True)
    with conn.cursor() as cur:
        cur.execute("CREATE TEMPORARY TABLE scratch (a INT)")
        cur.execute("INSERT INTO scratch VALUES (1)")
        join = in_background(lambda: cur.execute("SELECT SLEEP(1) /* pinned-lost */"))
        kill_running(mariadb, "pinned-lost")
        with pytest.raises(pymysql.err.MySQLError) as info:
            join()
        code, msg = info.value.args[0], info.value.args[1]
        assert code == STATE_LOST and "temp_table" in msg, msg
        # A fresh session: the temporary table is gone, everything else works.
        code, msg = error_of(lambda: cur.execute("SELECT * FROM scratch"))
        assert code == 1146, msg
    still_serves(conn)
    conn.close()
