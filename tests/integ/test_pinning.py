"""Acceptance: pinning and session-state transfer.

Each pinning condition (docs/architecture.md, pool/pinscan.h) has a test showing that the session is
pinned (its state stays visible, on the same backend, while other clients use the pool in between) and
that the backend is reset before anyone else gets it (a second client that lands on the very same
backend, same CONNECTION_ID(), sees none of the state). Each transferable variable (pool/sessvars.h)
has a test showing that it follows the client to a different backend without pinning.

How the tests force or rule out a move. The node's pool is capped at exactly two backends (X and Y).
CONNECTION_ID() is the backend's thread id. A helper client H starts a transaction (BEGIN + SELECT), so
it holds one backend; when the session under test has released its backend, H's state matches it and it
is the most recently released one, so H takes it and the session under test must continue on the other
backend (test_unpinned_session_moves shows this on a plain session). A pinned session keeps its backend:
H gets the other one, and the session's next statements still run on its own backend and see its
state. For the reset check, H holds the other backend while the pinned client disconnects, so the next
client can only get the pinned client's backend, after sluice has reset it.
"""

from __future__ import annotations

import threading
import time

import pymysql
import pytest

POOL_LIMIT = 2
RESET_ROUNDS = 3  # load rounds per pinned session


# --------------------------------------------------------------------------------------------
# database objects, users and nodes


@pytest.fixture(scope="module")
def db(mariadb, app_user):
    """Tables and a second schema for the tests; query_cache_type made settable per session."""
    with mariadb.admin(database=mariadb.database) as c, c.cursor() as cur:
        for stmt in [
            "DROP TABLE IF EXISTS pin_rows, pin_locked, pin_scratch, pin_ids, pin_xa",
            "CREATE TABLE pin_rows (id INT PRIMARY KEY, v INT NOT NULL) ENGINE=InnoDB",
            "INSERT INTO pin_rows VALUES (1, 10), (2, 20), (3, 30)",
            "CREATE TABLE pin_locked (a INT) ENGINE=InnoDB",
            "CREATE TABLE pin_scratch (a INT) ENGINE=InnoDB",
            "CREATE TABLE pin_ids (id INT AUTO_INCREMENT PRIMARY KEY, conn BIGINT, pad TEXT) ENGINE=InnoDB",
            "CREATE TABLE pin_xa (a INT) ENGINE=InnoDB",
            "CREATE DATABASE IF NOT EXISTS pin_other",
        ]:
            cur.execute(stmt)
        cur.execute("GRANT ALL PRIVILEGES ON pin_other.* TO %s@'%%'", (app_user.name,))
        # The server starts with the query cache type OFF, which forbids turning it on per session
        # (error 1925); a global DEMAND makes query_cache_type a variable clients can change.
        cur.execute("SELECT @@GLOBAL.query_cache_type")
        old_qct = cur.fetchone()[0]
        cur.execute("SET GLOBAL query_cache_type = DEMAND")
    yield mariadb
    with mariadb.admin() as c, c.cursor() as cur:
        cur.execute(f"SET GLOBAL query_cache_type = {old_qct}")


@pytest.fixture(scope="module")
def reload_user(mariadb):
    """A user allowed FLUSH TABLES WITH READ LOCK (RELOAD)."""
    return mariadb.create_user("app_reload", grants=("ALL PRIVILEGES ON `{db}`.*", "RELOAD ON *.*"))


def pool_of(mariadb, limit: int, **extra) -> dict:
    """connection_pool_config keys giving exactly `limit` backends for this database."""
    with mariadb.admin() as c, c.cursor() as cur:
        cur.execute("SELECT @@max_connections")
        maxc = int(cur.fetchone()[0])
    for pct in range(1, 101):
        if maxc * pct // 100 == limit:
            return {"max_connections_percent": pct, "max_idle_connections_percent": pct,
                    "connection_borrow_timeout": 10, **extra}
    pytest.skip(f"no max_connections_percent gives a pool of {limit} with max_connections={maxc}")


@pytest.fixture(scope="module")
def node(module_sluice_node, db, app_user, reload_user):
    return module_sluice_node(users=[app_user, reload_user], pool=pool_of(db, POOL_LIMIT))


@pytest.fixture(scope="module")
def exclude_node(module_sluice_node, db, app_user):
    return module_sluice_node(users=[app_user], pool=pool_of(
        db, POOL_LIMIT, session_pinning_filters=["EXCLUDE_VARIABLE_SETS"]))


# --------------------------------------------------------------------------------------------
# helpers


_open_clients: list = []


def connect(node, user, **kw):
    """A PyMySQL client of the node, closed at the end of the test whatever happens (a pinned client
    left open would hold one of the two backends and starve the following tests)."""
    c = node.connect(user, **kw)
    _open_clients.append(c)
    return c


@pytest.fixture(autouse=True)
def _close_clients():
    yield
    while _open_clients:
        c = _open_clients.pop()
        if c.open:
            c.close()


class Error(tuple):
    """(errno,) of a statement that failed, so that an expected error compares like a result."""


def run(c, sql):
    """Every row of sql's result as a tuple of tuples (() for statements without rows), or Error."""
    with c.cursor() as cur:
        try:
            cur.execute(sql)
        except pymysql.err.MySQLError as e:
            return Error((e.args[0],))
        return tuple(cur.fetchall())


def one(c, sql):
    """The single row of sql's result; fails the test on an error."""
    r = run(c, sql)
    assert not isinstance(r, Error), f"{sql[:120]!r} failed with error {r[0]}"
    assert len(r) == 1, f"{sql[:120]!r} returned {r!r}"
    return r[0]


def conn_id(c) -> int:
    return one(c, "SELECT CONNECTION_ID()")[0]


class Holder:
    """Another client of the same node that holds a backend inside a transaction on demand."""

    def __init__(self, node, user):
        self.c = connect(node, user)

    def hold(self) -> int:
        run(self.c, "BEGIN")
        return conn_id(self.c)

    def release(self) -> None:
        assert run(self.c, "COMMIT") == ()

    def close(self):
        self.c.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def assert_pinned(node, user, a, probe, expect, refresh=(), rounds=RESET_ROUNDS) -> int:
    """While H holds a backend, `a` still runs on its own backend and its probe gives expect(i) in each
    round i (after the refresh statements); then a transaction still runs there. Returns a's backend
    thread id."""
    a_id = conn_id(a)
    with Holder(node, user) as h:
        for i in range(rounds):
            for stmt in refresh:
                r = run(a, stmt)
                assert not isinstance(r, Error), f"{stmt!r} failed with error {r[0]}"
            h_id = h.hold()
            assert h_id != a_id, "the other client got the pinned session's backend"
            got = run(a, probe)
            assert got == expect(i), f"round {i}: {probe!r} gave {got!r}"
            assert conn_id(a) == a_id, f"round {i}: the pinned session moved to another backend"
            h.release()
        h.hold()
        assert run(a, "BEGIN") == ()
        assert conn_id(a) == a_id, "a transaction of the pinned session ran on another backend"
        assert run(a, "COMMIT") == ()
        h.release()
    return a_id


def reuse_after_disconnect(node, user, a, a_id, check_sql):
    """H holds the other backend while `a` (pinned to backend a_id) goes away; the next client must get
    backend a_id. Returns (check_sql's result as that client's first statement, the client)."""
    h = Holder(node, user)
    try:
        assert h.hold() != a_id
        a.close()
        b = connect(node, user)
        got = run(b, check_sql)
        b_id = conn_id(b)
        assert b_id == a_id, f"the next client got backend {b_id}, not the pinned client's {a_id}"
        return got, b
    finally:
        h.release()
        h.close()


def direct_first(mariadb, user, sql):
    """What sql gives as the first statement of a fresh direct connection (the database's default)."""
    with mariadb.connect(user) as c:
        return run(c, sql)


def same(v):
    return lambda i: v


# --------------------------------------------------------------------------------------------
# the method itself


def test_unpinned_session_moves(node, app_user):
    """Control: a session with nothing pinned continues on another backend while H holds the one it
    used last, so the pinned tests below would see the same move if the session were not pinned."""
    with connect(node, app_user) as a, Holder(node, app_user) as h:
        ids = set()
        for _ in range(RESET_ROUNDS):
            last = conn_id(a)
            h.hold()
            now = conn_id(a)
            assert now != last
            ids |= {last, now}
            h.release()
        assert len(ids) == POOL_LIMIT


# --------------------------------------------------------------------------------------------
# pinning conditions


@pytest.mark.parametrize("stmt", ["SET @pin = 42", "SELECT @pin := 42", "SELECT 42 INTO @pin"],
                         ids=["set", "select_assign", "select_into"])
def test_user_variable_pins_and_is_reset(node, app_user, stmt):
    a = connect(node, app_user)
    run(a, stmt)
    a_id = assert_pinned(node, app_user, a, "SELECT @pin", same(((42,),)))
    got, b = reuse_after_disconnect(node, app_user, a, a_id, "SELECT @pin")
    assert got == ((None,),)
    b.close()


NON_TRANSFERABLE = [
    # (variable, value, what @@SESSION.variable then shows, a statement showing its effect, its result)
    ("sql_select_limit", "2", ((2,),), "SELECT id FROM pin_rows ORDER BY id", ((1,), (2,))),
    ("max_statement_time", "7", ((7.0,),), None, None),
    ("group_concat_max_len", "5", ((5,),), "SELECT GROUP_CONCAT(id * 10 ORDER BY id) FROM pin_rows",
     (("10,20",),)),
]


@pytest.mark.parametrize("var,value,shown,effect_sql,effect", NON_TRANSFERABLE,
                         ids=[v[0] for v in NON_TRANSFERABLE])
def test_non_transferable_variable_pins_and_is_reset(node, mariadb, app_user, var, value, shown,
                                                     effect_sql, effect):
    default = direct_first(mariadb, app_user, f"SELECT @@SESSION.{var}")
    assert default != shown
    a = connect(node, app_user)
    assert run(a, f"SET SESSION {var} = {value}") == ()
    a_id = assert_pinned(node, app_user, a, f"SELECT @@SESSION.{var}", same(shown))
    if effect_sql:
        assert run(a, effect_sql) == effect
    got, b = reuse_after_disconnect(node, app_user, a, a_id, f"SELECT @@SESSION.{var}")
    assert got == default
    b.close()


def test_temporary_table_pins_and_is_reset(node, app_user):
    a = connect(node, app_user)
    assert run(a, "CREATE TEMPORARY TABLE pin_tmp (a INT)") == ()
    assert run(a, "INSERT INTO pin_tmp VALUES (1), (2)") == ()
    a_id = assert_pinned(node, app_user, a, "SELECT COUNT(*) FROM pin_tmp", same(((2,),)))
    got, b = reuse_after_disconnect(node, app_user, a, a_id, "SELECT COUNT(*) FROM pin_tmp")
    assert got == Error((1146,))  # no such table
    b.close()


def _write_within(mariadb, user, seconds=5):
    """A direct connection inserts into pin_locked, waiting at most `seconds` for table locks."""
    with mariadb.connect(user) as c:
        assert run(c, f"SET SESSION lock_wait_timeout = {seconds}") == ()
        t0 = time.monotonic()
        r = run(c, "INSERT INTO pin_locked VALUES (1)")
        return r, time.monotonic() - t0


def test_lock_tables_pins_and_is_reset(node, mariadb, app_user):
    a = connect(node, app_user)
    assert run(a, "LOCK TABLES pin_locked WRITE") == ()
    # Only a session under LOCK TABLES gets 1100 for a table it did not lock.
    a_id = assert_pinned(node, app_user, a, "SELECT COUNT(*) FROM pin_rows", same(Error((1100,))))
    assert run(a, "INSERT INTO pin_locked VALUES (0)") == ()
    got, b = reuse_after_disconnect(node, app_user, a, a_id, "SELECT COUNT(*) FROM pin_rows")
    assert got == ((3,),)
    r, took = _write_within(mariadb, app_user)
    assert r == (), f"the table stayed locked after the pinned client left: {r!r} after {took:.1f} s"
    b.close()


def test_flush_tables_with_read_lock_pins_and_is_reset(node, mariadb, reload_user):
    a = connect(node, reload_user)
    assert run(a, "FLUSH TABLES WITH READ LOCK") == ()
    # 1223: "Can't execute the query because you have a conflicting read lock" (the holder itself).
    a_id = assert_pinned(node, reload_user, a, "INSERT INTO pin_scratch VALUES (1)", same(Error((1223,))))
    got, b = reuse_after_disconnect(node, reload_user, a, a_id, "INSERT INTO pin_scratch VALUES (2)")
    assert got == ()
    r, took = _write_within(mariadb, reload_user)
    assert r == (), f"the global read lock survived the pinned client: {r!r} after {took:.1f} s"
    b.close()


def test_get_lock_pins_and_is_reset(node, mariadb, app_user):
    a = connect(node, app_user)
    assert run(a, "SELECT GET_LOCK('pin_lock', 0)") == ((1,),)
    a_id = assert_pinned(node, app_user, a, "SELECT IS_USED_LOCK('pin_lock') = CONNECTION_ID()",
                         same(((1,),)))
    got, b = reuse_after_disconnect(node, app_user, a, a_id, "SELECT IS_FREE_LOCK('pin_lock')")
    assert got == ((1,),)
    with mariadb.connect(app_user) as other:
        assert run(other, "SELECT GET_LOCK('pin_lock', 5)") == ((1,),)
        assert run(other, "SELECT RELEASE_LOCK('pin_lock')") == ((1,),)
    b.close()


def test_text_prepare_pins_and_is_reset(node, app_user):
    a = connect(node, app_user)
    assert run(a, "PREPARE pin_ps FROM 'SELECT ? + 1'") == ()
    a_id = assert_pinned(node, app_user, a, "EXECUTE pin_ps USING 41", same(((42,),)))
    got, b = reuse_after_disconnect(node, app_user, a, a_id, "EXECUTE pin_ps USING 41")
    assert got == Error((1243,))  # unknown prepared statement handler
    b.close()


def prepared_stmt_count(mariadb) -> int:
    with mariadb.admin() as c, c.cursor() as cur:
        cur.execute("SHOW GLOBAL STATUS LIKE 'Prepared_stmt_count'")
        return int(cur.fetchone()[1])


def test_binary_prepared_statement_pins_and_is_reset(node, mariadb, app_user, tls, cmdclient_bin):
    from conftest import CmdClient
    p = node.proxy()
    before = prepared_stmt_count(mariadb)
    a = CmdClient(cmdclient_bin, p.host, p.port, app_user.name, app_user.password, ca_file=tls.ca_file)
    try:
        assert a.ok, a.connect_info
        r = a.send("prepare", 0, "SELECT ? + 1, CONNECTION_ID()")
        assert r["ok"] and r["params"] == 1, r
        assert prepared_stmt_count(mariadb) == before + 1
        a_id = int(a.rows("SELECT CONNECTION_ID()")[0][0])
        with Holder(node, app_user) as h:
            for i in range(RESET_ROUNDS):
                assert h.hold() != a_id
                r = a.send("execute", 0, f"i:{40 + i}")
                assert r["ok"], r
                assert r["results"][0]["rows"] == [[str(41 + i), str(a_id)]]
                h.release()
            # Reset: the client goes away without closing its statement; H holds the other backend.
            # The next client is a Connector/C one too: same capability class, so the same share.
            assert h.hold() != a_id
            a.close(abrupt=True)
            with CmdClient(cmdclient_bin, p.host, p.port, app_user.name, app_user.password,
                           ca_file=tls.ca_file) as b:
                assert b.ok, b.connect_info
                assert int(b.rows("SELECT CONNECTION_ID()")[0][0]) == a_id
                assert prepared_stmt_count(mariadb) == before, "the statement outlived the pinned client"
            h.release()
    finally:
        a.close()


LARGE_PAD = "x" * (17 * 1024)


def test_large_statement_pins_and_is_reset(node, app_user):
    """A statement over 16 KiB is not scanned; it pins. Its insert id stays readable through
    @@last_insert_id (no LAST_INSERT_ID( call, so nothing else pins) on its backend only."""
    a = connect(node, app_user)
    with a.cursor() as cur:
        cur.execute(f"INSERT INTO pin_ids (conn, pad) VALUES (CONNECTION_ID(), '{LARGE_PAD}')")
        new_id = cur.lastrowid
    assert new_id > 0
    a_id = assert_pinned(node, app_user, a, "SELECT @@last_insert_id", same(((new_id,),)))
    got, b = reuse_after_disconnect(node, app_user, a, a_id, "SELECT @@last_insert_id")
    assert got == ((0,),)
    b.close()


def test_large_statement_warnings_stay_with_it(node, app_user):
    """The warnings of a pinned >16 KiB statement are still there for SHOW WARNINGS after other clients
    used the pool."""
    a = connect(node, app_user)
    assert run(a, f"SELECT 1/0 AS d /* {LARGE_PAD} */") == ((None,),)
    a_id = assert_pinned(node, app_user, a, "SHOW WARNINGS", same((("Warning", 1365, "Division by 0"),)))
    got, b = reuse_after_disconnect(node, app_user, a, a_id, "SHOW WARNINGS")
    assert got == ()
    b.close()


def test_found_rows_pins_and_is_reset(node, app_user):
    a = connect(node, app_user)
    a_id = assert_pinned(node, app_user, a, "SELECT FOUND_ROWS()", same(((3,),)),
                         refresh=["SELECT SQL_CALC_FOUND_ROWS id FROM pin_rows ORDER BY id LIMIT 1"])
    assert run(a, "SELECT SQL_CALC_FOUND_ROWS id FROM pin_rows ORDER BY id LIMIT 1") == ((1,),)
    # The pinned client's last statement found 3 rows; the next client's first FOUND_ROWS() must not
    # report them (a fresh connection says 1 on this MariaDB; so does a new sluice backend).
    got, b = reuse_after_disconnect(node, app_user, a, a_id, "SELECT FOUND_ROWS()")
    assert got != ((3,),), "FOUND_ROWS() of the pinned client's last statement reached the next client"
    b.close()


def test_row_count_pins_and_is_reset(node, app_user):
    a = connect(node, app_user)
    run(a, "SELECT ROW_COUNT()")  # the statement that pins
    a_id = assert_pinned(node, app_user, a, "SELECT ROW_COUNT()", same(((3,),)),
                         refresh=["UPDATE pin_rows SET v = v + 1"])
    assert run(a, "UPDATE pin_rows SET v = id * 10") == ()
    # The pinned client's last statement changed 3 rows; the next client must see a fresh session's
    # value (0), or -1 (the last statement sluice's own setup ran was a SELECT), not 3.
    got, b = reuse_after_disconnect(node, app_user, a, a_id, "SELECT ROW_COUNT()")
    assert got in (((0,),), ((-1,),)), f"the next client's first ROW_COUNT() gave {got!r}"
    b.close()


def test_last_insert_id_call_pins_and_is_reset(node, app_user):
    a = connect(node, app_user)
    with a.cursor() as cur:
        cur.execute("INSERT INTO pin_ids (conn) VALUES (CONNECTION_ID())")
        new_id = cur.lastrowid
    assert one(a, "SELECT LAST_INSERT_ID()") == (new_id,)  # pins from here on
    # Statements without an insert id in between: only the pin keeps the backend (no affinity).
    a_id = assert_pinned(node, app_user, a, "SELECT LAST_INSERT_ID()", same(((new_id,),)))
    got, b = reuse_after_disconnect(node, app_user, a, a_id, "SELECT LAST_INSERT_ID()")
    assert got == ((0,),)
    b.close()


def test_handler_pins_and_is_reset(node, app_user):
    a = connect(node, app_user)
    assert run(a, "HANDLER pin_rows OPEN") == ()
    assert run(a, "HANDLER pin_rows READ `PRIMARY` FIRST") == ((1, 10),)
    # The handler's position is session state: each round reads the next row, then nothing is left.
    a_id = assert_pinned(node, app_user, a, "HANDLER pin_rows READ `PRIMARY` NEXT",
                         lambda i: [((2, 20),), ((3, 30),), ()][i])
    got, b = reuse_after_disconnect(node, app_user, a, a_id, "HANDLER pin_rows READ `PRIMARY` FIRST")
    assert got == Error((1109,))  # unknown table in HANDLER
    b.close()


def test_xa_pins_and_is_reset(node, app_user):
    a = connect(node, app_user)
    with Holder(node, app_user) as h:
        assert run(a, "XA START 'pin_xa_1'") == ()
        a_id = conn_id(a)
        steps = ["INSERT INTO pin_xa VALUES (1)", "XA END 'pin_xa_1'", "XA PREPARE 'pin_xa_1'",
                 "XA COMMIT 'pin_xa_1'"]
        for stmt in steps:
            assert h.hold() != a_id
            assert run(a, stmt) == (), stmt
            assert conn_id(a) == a_id, f"after {stmt!r} the session moved"
            h.release()
    # Still pinned after the XA transaction ended.
    assert_pinned(node, app_user, a, "SELECT COUNT(*) FROM pin_xa", same(((1,),)))
    assert run(a, "XA START 'pin_xa_2'") == ()
    assert run(a, "INSERT INTO pin_xa VALUES (2)") == ()
    got, b = reuse_after_disconnect(node, app_user, a, a_id, "XA RECOVER")
    assert got == ()  # the unfinished XA transaction went with the pinned client
    assert run(b, "SELECT a FROM pin_xa ORDER BY a") == ((1,),)
    assert run(b, "XA START 'pin_xa_2'") == ()  # the xid is free again
    assert run(b, "XA END 'pin_xa_2'") == ()
    assert run(b, "XA ROLLBACK 'pin_xa_2'") == ()
    b.close()


def test_set_variable_with_exclude_variable_sets_does_not_pin(exclude_node, mariadb, app_user):
    """With session_pinning_filters ["EXCLUDE_VARIABLE_SETS"] a SET of a non-transferable variable does
    not pin, and the value is NOT carried: the session continues on another backend with the
    database's default."""
    default = direct_first(mariadb, app_user, "SELECT @@SESSION.sql_select_limit")
    assert default != ((2,),)
    with connect(exclude_node, app_user) as a, Holder(exclude_node, app_user) as h:
        assert run(a, "SET SESSION sql_select_limit = 2") == ()
        limit, a_id = one(a, "SELECT @@SESSION.sql_select_limit, CONNECTION_ID()")
        assert limit == 2  # still on the backend where it was set
        h.hold()
        limit, now = one(a, "SELECT @@SESSION.sql_select_limit, CONNECTION_ID()")
        assert now != a_id, "the session was pinned despite EXCLUDE_VARIABLE_SETS"
        assert (limit,) == default[0], "the non-transferable variable was carried to another backend"
        h.release()


def test_user_variable_still_pins_with_exclude_variable_sets(exclude_node, app_user):
    a = connect(exclude_node, app_user)
    assert run(a, "SET @pin = 7") == ()
    assert_pinned(exclude_node, app_user, a, "SELECT @pin", same(((7,),)))
    a.close()


def test_last_insert_id_follows_the_insert_under_concurrency(node, app_user):
    """Affinity: SELECT LAST_INSERT_ID() as the next statement after an INSERT runs where the INSERT ran,
    although another client borrows in between (deterministic rounds) or all along (a thread), with a
    pool of two. Each round uses a new client (the SELECT then pins)."""
    with Holder(node, app_user) as h:
        for _ in range(3):
            with connect(node, app_user) as a, a.cursor() as cur:
                cur.execute("INSERT INTO pin_ids (conn) VALUES (CONNECTION_ID())")
                new_id = cur.lastrowid
                h.hold()  # borrows between the INSERT and the SELECT
                cur.execute("SELECT LAST_INSERT_ID(), CONNECTION_ID(), (SELECT conn FROM pin_ids WHERE id = %s)",
                            (new_id,))
                lid, cid, ins_cid = cur.fetchone()
                assert (lid, cid) == (new_id, ins_cid)
                h.release()

    stop = threading.Event()
    load_count = [0]
    errors = []

    def load():
        try:
            with connect(node, app_user) as c, c.cursor() as cur:
                while not stop.is_set():
                    cur.execute("SELECT CONNECTION_ID()")
                    load_count[0] += 1
        except Exception as e:  # reported by the main thread
            errors.append(e)

    t = threading.Thread(target=load, daemon=True)
    t.start()
    try:
        wrong = []
        for _ in range(15):
            with connect(node, app_user) as a, a.cursor() as cur:
                cur.execute("INSERT INTO pin_ids (conn) VALUES (CONNECTION_ID())")
                new_id = cur.lastrowid
                cur.execute("SELECT LAST_INSERT_ID()")
                lid = cur.fetchone()[0]
                if lid != new_id:
                    wrong.append((new_id, lid))
    finally:
        stop.set()
        t.join(timeout=30)
    assert not errors, errors
    assert load_count[0] > 15, "the load thread hardly ran: no concurrency was tested"
    assert not wrong, f"SELECT LAST_INSERT_ID() after INSERT gave (expected, got): {wrong}"


# --------------------------------------------------------------------------------------------
# tracked (transferable) variables: carried to another backend without pinning


TRACKED = [
    # (id, statement, probe expression, value the probe then shows)
    ("autocommit", "SET autocommit = 0", "@@autocommit", 0),
    ("auto_increment_increment", "SET SESSION auto_increment_increment = 5", "@@auto_increment_increment", 5),
    ("auto_increment_offset", "SET SESSION auto_increment_offset = 3", "@@auto_increment_offset", 3),
    ("character_set_client", "SET character_set_client = latin1", "@@character_set_client", "latin1"),
    ("character_set_connection", "SET character_set_connection = latin1",
     "CONCAT(@@character_set_connection, '/', @@collation_connection)", "latin1/latin1_swedish_ci"),
    ("character_set_results", "SET character_set_results = latin1", "@@character_set_results", "latin1"),
    ("collation_connection", "SET collation_connection = utf8mb4_bin",
     "CONCAT(@@character_set_connection, '/', @@collation_connection)", "utf8mb4/utf8mb4_bin"),
    ("interactive_timeout", "SET SESSION interactive_timeout = 1234", "@@interactive_timeout", 1234),
    ("net_read_timeout", "SET SESSION net_read_timeout = 45", "@@net_read_timeout", 45),
    ("net_write_timeout", "SET SESSION net_write_timeout = 67", "@@net_write_timeout", 67),
    ("query_cache_type", "SET SESSION query_cache_type = ON", "@@query_cache_type", "ON"),
    ("sql_mode", "SET SESSION sql_mode = 'ANSI_QUOTES,NO_ZERO_DATE'", "@@sql_mode", "ANSI_QUOTES,NO_ZERO_DATE"),
    ("time_zone", "SET time_zone = '+05:30'", "@@time_zone", "+05:30"),
    ("tx_isolation", "SET SESSION TRANSACTION ISOLATION LEVEL SERIALIZABLE", "@@tx_isolation", "SERIALIZABLE"),
    ("tx_isolation_var", "SET SESSION tx_isolation = 'READ-COMMITTED'", "@@tx_isolation", "READ-COMMITTED"),
    ("tx_read_only", "SET SESSION TRANSACTION READ ONLY", "@@tx_read_only", 1),
    ("tx_read_only_var", "SET SESSION tx_read_only = 1", "@@tx_read_only", 1),
    ("wait_timeout", "SET SESSION wait_timeout = 4321", "@@wait_timeout", 4321),
    ("schema_use", "USE pin_other", "DATABASE()", "pin_other"),
    ("schema_init_db", "COM_INIT_DB pin_other", "DATABASE()", "pin_other"),
]


def apply_setting(c, stmt):
    if stmt.startswith("COM_INIT_DB "):
        c.select_db(stmt.split(" ", 1)[1])
    else:
        assert run(c, stmt) == ()


@pytest.mark.parametrize("stmt,probe,value", [t[1:] for t in TRACKED], ids=[t[0] for t in TRACKED])
def test_tracked_variable_follows_client_to_another_backend(node, mariadb, app_user, stmt, probe, value):
    default = direct_first(mariadb, app_user, f"SELECT {probe}")[0][0]
    assert default != value
    sql = f"SELECT {probe}, CONNECTION_ID()"
    with connect(node, app_user) as a, Holder(node, app_user) as h:
        apply_setting(a, stmt)
        apply_setting(h.c, stmt)  # H in the same state: it takes a's backend whenever a released it
        seen = []
        for _ in range(RESET_ROUNDS):
            seen.append(one(a, sql))
            run(a, "COMMIT")  # with autocommit=0 the probe opened a transaction
            h.hold()
            seen.append(one(a, sql))
            run(a, "COMMIT")
            h.release()
        assert [v for v, _ in seen] == [value] * len(seen), seen
        ids = {i for _, i in seen}
        assert len(ids) >= 2, f"the session never changed backend (not carried, or pinned): {seen}"
    # A client that never set it sees the database's default, on a backend that carried the value.
    with connect(node, app_user) as d:
        v, d_id = one(d, sql)
        assert d_id in ids
        assert v == default


def test_set_names_collate_carries_charset_with_default_collation(node, app_user):
    """Documented limitation: SET NAMES x COLLATE y carries x, with x's default collation, to other
    backends; only the backend where it ran keeps y."""
    probe = ("SELECT @@character_set_client, @@character_set_connection, @@character_set_results, "
             "@@collation_connection, CONNECTION_ID()")
    with connect(node, app_user) as a, Holder(node, app_user) as h:
        assert run(a, "SET NAMES latin1 COLLATE latin1_bin") == ()
        assert run(h.c, "SET NAMES latin1 COLLATE latin1_bin") == ()
        first = one(a, probe)
        assert first[:4] == ("latin1", "latin1", "latin1", "latin1_bin")
        h.hold()
        moved = one(a, probe)
        h.release()
        assert moved[4] != first[4], "the session did not move"
        assert moved[:4] == ("latin1", "latin1", "latin1", "latin1_swedish_ci")


def test_set_to_default_is_carried_too(node, mariadb, app_user):
    """SET x = DEFAULT after a change is carried as well: the session moves and shows the default."""
    default = direct_first(mariadb, app_user, "SELECT @@sql_mode")[0][0]
    with connect(node, app_user) as a, Holder(node, app_user) as h:
        for c in (a, h.c):
            assert run(c, "SET SESSION sql_mode = 'ANSI_QUOTES'") == ()
            assert run(c, "SET SESSION sql_mode = DEFAULT") == ()
        seen = []
        for _ in range(2):
            seen.append(one(a, "SELECT @@sql_mode, CONNECTION_ID()"))
            h.hold()
            seen.append(one(a, "SELECT @@sql_mode, CONNECTION_ID()"))
            h.release()
        assert [v for v, _ in seen] == [default] * len(seen)
        assert len({i for _, i in seen}) == 2, seen
