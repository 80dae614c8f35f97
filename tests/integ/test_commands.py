"""Acceptance: every client command through sluice behaves as it does on a direct connection.

COM_PING, COM_INIT_DB, COM_CHANGE_USER, COM_RESET_CONNECTION, COM_SET_OPTION, COM_STATISTICS,
COM_PROCESS_KILL and KILL [QUERY], COM_STMT_* (prepare, execute, send_long_data, fetch through a
cursor, reset, close), multi-statements and multi-results, LOAD DATA LOCAL INFILE, and packets of
16 MiB and more in both directions (exact 0xFFFFFF boundaries). Where a direct connection gives a
reference, the same sequence runs against MariaDB and through sluice and the answers must be equal.

PyMySQL drives what it can; the rest goes through tests/integ/cmdclient.c (sluice_cmdclient, the
`cmdclient_bin` fixture), an interactive Connector/C client answering one JSON line per command.
"""

from __future__ import annotations

import hashlib
import re
import threading
import time

import pymysql
import pymysql.constants.CLIENT as CLIENT
import pytest

import sluicelab
from conftest import CmdClient

STATUS_SESSION_STATE_CHANGED = 0x4000  # only direct clients ask for session tracking


# --------------------------------------------------------------------------------------------
# fixtures


@pytest.fixture(scope="module")
def db(mariadb, app_user):
    with mariadb.admin(database=mariadb.database) as c, c.cursor() as cur:
        for stmt in [
            "DROP TABLE IF EXISTS cmd_acc, cmd_blob, cmd_loaded",
            "DROP PROCEDURE IF EXISTS cmd_two_results",
            "CREATE TABLE cmd_acc (id INT AUTO_INCREMENT PRIMARY KEY, owner VARCHAR(20) NOT NULL, "
            "balance DECIMAL(10,2) NOT NULL) ENGINE=InnoDB",
            "CREATE TABLE cmd_blob (id INT AUTO_INCREMENT PRIMARY KEY, data LONGBLOB) ENGINE=InnoDB",
            "CREATE TABLE cmd_loaded (a INT, b VARCHAR(50)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
            """CREATE PROCEDURE cmd_two_results(IN n INT)
               BEGIN
                 SELECT n AS n, n * 2 AS twice;
                 SELECT id, owner, balance FROM cmd_acc ORDER BY id;
               END""",
            "CREATE DATABASE IF NOT EXISTS cmd_other",
        ]:
            cur.execute(stmt)
        cur.execute("GRANT ALL PRIVILEGES ON cmd_other.* TO %s@'%%'", (app_user.name,))
    return mariadb


def reset_tables(mariadb):
    with mariadb.admin(database=mariadb.database) as c, c.cursor() as cur:
        for stmt in ["DELETE FROM cmd_acc", "ALTER TABLE cmd_acc AUTO_INCREMENT = 1", "DELETE FROM cmd_blob",
                     "ALTER TABLE cmd_blob AUTO_INCREMENT = 1", "DELETE FROM cmd_loaded",
                     "INSERT INTO cmd_acc (owner, balance) VALUES ('alice', 100), ('bob', 50.5), "
                     "('carol', 0), ('dave', 7.25), ('erin', 3)"]:
            cur.execute(stmt)


@pytest.fixture(scope="module")
def global_user(mariadb):
    """A user with a global privilege: an unknown database is 1049 for it, not 1044."""
    return mariadb.create_user("app_global", grants=("ALL PRIVILEGES ON `{db}`.*", "SELECT ON *.*"))


@pytest.fixture(scope="module")
def node(module_sluice_node, db, app_user, sha2_user, global_user):
    return module_sluice_node(users=[app_user, (sha2_user, sluicelab.AUTH_CACHING_SHA2), global_user])


def pool_of(mariadb, limit: int, **extra) -> dict:
    with mariadb.admin() as c, c.cursor() as cur:
        cur.execute("SELECT @@max_connections")
        maxc = int(cur.fetchone()[0])
    for pct in range(1, 101):
        if maxc * pct // 100 == limit:
            return {"max_connections_percent": pct, "max_idle_connections_percent": pct, **extra}
    pytest.skip(f"no max_connections_percent gives a pool of {limit} with max_connections={maxc}")


@pytest.fixture(scope="module")
def small(module_sluice_node, db, app_user, sha2_user):
    """A node whose pool has exactly two backends (for showing moves between backends)."""
    return module_sluice_node(users=[app_user, (sha2_user, sluicelab.AUTH_CACHING_SHA2)],
                              pool=pool_of(db, 2, connection_borrow_timeout=2))


class Endpoint:
    def __init__(self, name, host, port, ca_file):
        self.name, self.host, self.port, self.ca_file = name, host, port, ca_file

    def connect(self, user, **kw):
        return sluicelab.connect(self.host, self.port, user.name, user.password, ca_file=self.ca_file, **kw)

    def cmd(self, binary, user, **kw) -> CmdClient:
        c = CmdClient(binary, self.host, self.port, user.name, user.password, ca_file=self.ca_file, **kw)
        assert c.ok, f"sluice_cmdclient could not connect to {self}: {c.connect_info}"
        return c

    def __repr__(self):
        return f"{self.name}({self.host}:{self.port})"


@pytest.fixture(scope="module")
def direct(mariadb, tls):
    return Endpoint("direct", mariadb.host, mariadb.port, tls.ca_file)


@pytest.fixture(scope="module")
def proxied(node, tls):
    p = node.proxy()
    return Endpoint("sluice", p.host, p.port, tls.ca_file)


@pytest.fixture(scope="module")
def proxied_small(small, tls):
    p = small.proxy()
    return Endpoint("sluice-small", p.host, p.port, tls.ca_file)


def norm(answer):
    """A cmdclient answer without what legitimately differs between direct and proxied connections."""
    if isinstance(answer, list):
        return [norm(a) for a in answer]
    a = dict(answer)
    a.pop("stmt_id", None)
    a.pop("thread_id", None)
    if "status" in a:
        a["status"] &= ~STATUS_SESSION_STATE_CHANGED
    return a


def run(c, sql, args=None):
    with c.cursor() as cur:
        try:
            cur.execute(sql, args)
        except pymysql.err.MySQLError as e:
            return ("error",) + tuple(e.args)
        return tuple(cur.fetchall())


def run_strict(c, sql):
    """Rows of sql; errors raise."""
    with c.cursor() as cur:
        cur.execute(sql)
        return cur.fetchall()


def all_results(c, sql):
    """Every result of a (multi-)statement: description, rows, rowcount, insert id; or the error."""
    out = []
    with c.cursor() as cur:
        try:
            cur.execute(sql)
            while True:
                out.append((cur.description, cur.fetchall(), cur.rowcount, cur.lastrowid))
                if not cur.nextset():
                    break
        except pymysql.err.MySQLError as e:
            out.append(("error",) + tuple(e.args))
    return out


# --------------------------------------------------------------------------------------------
# COM_PING


def test_ping_is_answered_without_a_backend(sluice_node, app_user, tls, cmdclient_bin):
    """The only target is a port nobody listens on: login (no database) and COM_PING succeed, a query
    waits for a backend and fails."""
    dead = sluicelab.free_port()
    proxy = sluicelab.ProxySpec("main", auth=[sluicelab.Auth(app_user)], targets=[("127.0.0.1", dead)],
                                pool={"connection_borrow_timeout": 1})
    n = sluice_node(proxies=[proxy])
    with n.connect(app_user, database=None) as c:
        c.ping(reconnect=False)
        c.ping(reconnect=False)
        with pytest.raises(pymysql.err.MySQLError) as e:
            run_strict(c, "SELECT 1")
        assert e.value.args[0] == 9501, e.value.args  # no backend within connection_borrow_timeout
        c.ping(reconnect=False)  # still answered
    p = n.proxy()
    cc = CmdClient(cmdclient_bin, p.host, p.port, app_user.name, app_user.password, ca_file=tls.ca_file,
                   database=None)
    with cc:
        assert cc.ok, cc.connect_info
        assert cc.send("ping")["ok"]


# --------------------------------------------------------------------------------------------
# COM_INIT_DB


@pytest.mark.parametrize("who,target", [("app", "cmd_other"), ("app", "no_such_db"), ("app", "mysql"),
                                        ("global", "no_such_db"), ("global", "cmd_other")])
def test_init_db_same_as_direct(direct, proxied, app_user, global_user, who, target):
    user = app_user if who == "app" else global_user
    out = {}
    for ep in (direct, proxied):
        with ep.connect(user) as c:
            try:
                c.select_db(target)
                res = ("ok",)
            except pymysql.err.MySQLError as e:
                res = ("error",) + tuple(e.args)
            out[ep.name] = (res, run(c, "SELECT DATABASE()"))
    assert out["sluice"] == out["direct"]
    if who == "global" and target == "no_such_db":
        assert out["direct"][0][1] == 1049
    elif target in ("no_such_db", "mysql"):
        assert out["direct"][0][1] == 1044


def test_init_db_connector_c_same_as_direct(direct, proxied, app_user, cmdclient_bin):
    steps = [("select_db", "cmd_other"), ("query", "SELECT DATABASE()"), ("select_db", "no_such_db"),
             ("query", "SELECT DATABASE()"), ("select_db", "app"), ("query", "SELECT DATABASE()")]
    out = {}
    for ep in (direct, proxied):
        with ep.cmd(cmdclient_bin, app_user) as c:
            out[ep.name] = norm([c.send(*s) for s in steps])
    assert out["sluice"] == out["direct"]
    assert out["sluice"][1]["results"][0]["rows"] == [["cmd_other"]]


# --------------------------------------------------------------------------------------------
# COM_CHANGE_USER


def test_change_user_native_to_sha2_and_back(proxied, app_user, sha2_user, cmdclient_bin):
    with proxied.cmd(cmdclient_bin, app_user) as c:
        tid = c.thread_id
        assert c.rows("SELECT CURRENT_USER()") == [["app@%"]]
        r = c.send("change_user", sha2_user.name, sha2_user.password, "app")
        assert r["ok"], r
        assert c.rows("SELECT CURRENT_USER(), DATABASE()") == [[f"{sha2_user.name}@%", "app"]]
        r = c.send("change_user", app_user.name, app_user.password, "cmd_other")
        assert r["ok"], r
        assert c.rows("SELECT CURRENT_USER(), DATABASE()") == [["app@%", "cmd_other"]]
        r = c.send("change_user", sha2_user.name, sha2_user.password, "")
        assert r["ok"], r
        assert c.rows("SELECT CURRENT_USER(), DATABASE()") == [[f"{sha2_user.name}@%", None]]
        assert c.send("thread_id")["thread_id"] == tid  # the same (proxy) connection throughout


@pytest.mark.parametrize("case", ["bad_password", "unknown_user", "forbidden_db"])
def test_change_user_failure_same_as_direct(direct, proxied, app_user, sha2_user, cmdclient_bin, case):
    """A failed COM_CHANGE_USER answers 1045/1044 as MariaDB does, and leaves the connection in the same
    state as on a direct connection (MariaDB keeps the previous user logged in)."""
    bad = {"bad_password": (app_user.name, "wrong-password", "app"),
           "unknown_user": ("nobody_here", "x", "app"),
           "forbidden_db": (sha2_user.name, sha2_user.password, "mysql")}[case]
    out = {}
    for ep in (direct, proxied):
        with ep.cmd(cmdclient_bin, app_user) as c:
            steps = [c.send("change_user", sha2_user.name, sha2_user.password, "app"),
                     c.send("change_user", *bad)]
            try:
                steps.append(c.query("SELECT CURRENT_USER(), DATABASE()"))
            except (EOFError, TimeoutError) as e:
                steps.append({"client ended": str(e)})
            out[ep.name] = norm(steps)
    assert out["direct"][1]["errno"] == (1044 if case == "forbidden_db" else 1045)
    assert out["sluice"][1] == out["direct"][1]
    assert out["sluice"][2] == out["direct"][2], "the connection after the failed change differs"


def test_change_user_resets_session_state(direct, proxied_small, app_user, sha2_user, cmdclient_bin):
    """After COM_CHANGE_USER: user variables, temporary tables and changed variables are gone, as on a
    direct connection, and the session (pinned before) moves between backends again. (The change goes
    to the caching_sha2 user, which works through sluice; see test_change_user_native_to_sha2_and_back
    for changes to a native user.)"""
    setup = ["SET @cu = 5", "CREATE TEMPORARY TABLE cu_tmp (a INT)", "SET SESSION sql_mode = 'ANSI_QUOTES'",
             "SET SESSION sql_select_limit = 3"]
    probe = "SELECT @cu, @@sql_mode, @@sql_select_limit"
    out = {}
    for ep in (direct, proxied_small):
        with ep.cmd(cmdclient_bin, app_user) as c:
            for s in setup:
                assert c.query(s)["ok"], s
            before = c.rows(probe)
            r = c.send("change_user", sha2_user.name, sha2_user.password, "app")
            assert r["ok"], r
            out[ep.name] = (before, c.rows(probe), norm(c.query("SELECT COUNT(*) FROM cu_tmp")))
    assert out["sluice-small"] == out["direct"]
    assert out["direct"][1][0][0] is None and out["direct"][2]["errno"] == 1146
    with proxied_small.cmd(cmdclient_bin, app_user) as c, proxied_small.cmd(cmdclient_bin, sha2_user) as h:
        for s in setup:
            assert c.query(s)["ok"]
        assert c.send("change_user", sha2_user.name, sha2_user.password, "app")["ok"]
        assert_moves(c, h)


def assert_moves(c, h, rounds=2):
    """c (a cmdclient) continues on another backend while h (same capability class) holds the one c used
    last: c is not pinned."""
    ids = []
    for _ in range(rounds):
        ids.append(c.rows("SELECT CONNECTION_ID()")[0][0])
        assert h.query("BEGIN")["ok"]
        h_id = h.rows("SELECT CONNECTION_ID()")[0][0]
        now = c.rows("SELECT CONNECTION_ID()")[0][0]
        assert now != h_id
        ids.append(now)
        assert h.query("COMMIT")["ok"]
    assert len(set(ids)) >= 2, f"the session stayed on backend {ids[0]}: still pinned"


# --------------------------------------------------------------------------------------------
# COM_RESET_CONNECTION


@pytest.mark.parametrize("pinned", [True, False], ids=["while_pinned", "not_pinned"])
def test_reset_connection_same_as_direct(direct, proxied_small, app_user, cmdclient_bin, pinned):
    """mysql_reset_connection: user variables and temporary tables are gone, changed variables are back
    to their defaults, the schema stays; then the session is no longer pinned."""
    setup = ["SET SESSION sql_mode = 'ANSI_QUOTES'", "SET time_zone = '+03:00'", "USE cmd_other"]
    # (H, the helper that forces moves, must be in the state the session has after the reset: the
    # schema stays.)
    if pinned:
        setup += ["SET @rc = 1", "CREATE TEMPORARY TABLE rc_tmp (a INT)"]
    probe = "SELECT @rc, @@sql_mode, @@time_zone, DATABASE()"
    out = {}
    for ep in (direct, proxied_small):
        with ep.cmd(cmdclient_bin, app_user) as c:
            for s in setup:
                assert c.query(s)["ok"], s
            before = c.rows(probe)
            r = norm(c.send("reset_connection"))
            out[ep.name] = (before, r, c.rows(probe), norm(c.query("SELECT COUNT(*) FROM rc_tmp")))
    assert out["sluice-small"] == out["direct"]
    assert out["direct"][2][0][1] != "ANSI_QUOTES"
    with proxied_small.cmd(cmdclient_bin, app_user) as c, proxied_small.cmd(cmdclient_bin, app_user) as h:
        for s in setup:
            assert c.query(s)["ok"]
        assert c.send("reset_connection")["ok"]
        assert h.query("USE cmd_other")["ok"]
        assert_moves(c, h)
        # ... and what was reset stays reset on every backend it lands on
        default = out["direct"][2][0]
        for _ in range(2):
            assert c.rows(probe)[0] == default
            assert h.query("BEGIN")["ok"]
            assert c.rows(probe)[0] == default
            assert h.query("COMMIT")["ok"]


# --------------------------------------------------------------------------------------------
# COM_SET_OPTION, COM_STATISTICS


def test_set_option_multi_statements_same_as_direct(direct, proxied, app_user, cmdclient_bin):
    steps = [("query", "SELECT 1; SELECT 2"), ("set_option", "off"), ("query", "SELECT 1; SELECT 2"),
             ("query", "SELECT 3"), ("set_option", "on"), ("query", "SELECT 1; SELECT 2")]
    out = {}
    for ep in (direct, proxied):
        with ep.cmd(cmdclient_bin, app_user) as c:
            out[ep.name] = norm([c.send(*s) for s in steps])
    assert out["sluice"] == out["direct"]
    assert out["direct"][2]["errno"] == 1064 and len(out["direct"][5]["results"]) == 2


def test_set_option_follows_the_session_to_other_backends(proxied_small, app_user, cmdclient_bin):
    with proxied_small.cmd(cmdclient_bin, app_user) as c, proxied_small.cmd(cmdclient_bin, app_user) as h:
        assert c.send("set_option", "off")["ok"]
        ids = set()
        for _ in range(2):
            assert c.query("SELECT 1; SELECT 2")["errno"] == 1064
            ids.add(c.rows("SELECT CONNECTION_ID()")[0][0])
            assert h.query("BEGIN")["ok"]
            assert c.query("SELECT 1; SELECT 2")["errno"] == 1064
            ids.add(c.rows("SELECT CONNECTION_ID()")[0][0])
            assert h.query("COMMIT")["ok"]
        assert len(ids) == 2
        assert c.send("set_option", "on")["ok"]
        for _ in range(2):
            assert len(c.query("SELECT 1; SELECT 2")["results"]) == 2
            assert h.query("BEGIN")["ok"]
            assert len(c.query("SELECT 1; SELECT 2")["results"]) == 2
            assert h.query("COMMIT")["ok"]


STAT_RE = re.compile(r"^Uptime: \d+  Threads: \d+  Questions: \d+  Slow queries: \d+  Opens: \d+  "
                     r"Open tables: \d+  Queries per second avg: \d+\.\d+$")


def test_statistics_same_as_direct(direct, proxied, app_user, cmdclient_bin):
    for ep in (direct, proxied):
        with ep.cmd(cmdclient_bin, app_user) as c:
            r = c.send("stat")
            assert r["ok"], r
            assert STAT_RE.match(r["stat"]), f"{ep}: {r['stat']!r}"
            assert c.rows("SELECT 1") == [["1"]]  # the connection goes on normally


# --------------------------------------------------------------------------------------------
# KILL


def _sleep_in_thread(conn, seconds, out, key):
    def go():
        t0 = time.monotonic()
        try:
            with conn.cursor() as cur:
                cur.execute(f"SELECT SLEEP({seconds})")
                out[key] = (cur.fetchall(), time.monotonic() - t0)
        except pymysql.err.MySQLError as e:
            out[key] = (("error", e.args[0]), time.monotonic() - t0)
    t = threading.Thread(target=go, daemon=True)
    t.start()
    return t


def _wait_sleeping(mariadb, n, timeout=10.0):
    """Wait until n SLEEP queries run on the database."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with mariadb.admin() as c, c.cursor() as cur:
            cur.execute("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE INFO LIKE 'SELECT SLEEP(%'")
            if cur.fetchone()[0] >= n:
                return
        time.sleep(0.05)
    pytest.fail(f"{n} SLEEP queries did not start within {timeout} s")


def test_kill_query_interrupts_only_its_target(mariadb, direct, proxied, app_user):
    """KILL QUERY <proxy id> (sluice) interrupts exactly that client's statement, as KILL QUERY
    <thread id> does directly; another client's SLEEP runs to its end; the killed client goes on."""
    results = {}
    for ep in (direct, proxied):
        with ep.connect(app_user) as v, ep.connect(app_user) as w, ep.connect(app_user) as k:
            out = {}
            tv = _sleep_in_thread(v, 10, out, "v")
            tw = _sleep_in_thread(w, 2, out, "w")
            _wait_sleeping(mariadb, 2)
            assert run(k, f"KILL QUERY {v.thread_id()}") == ()
            tv.join(15)
            tw.join(15)
            v_rows, v_took = out["v"]
            w_rows, w_took = out["w"]
            assert w_rows == ((0,),) and w_took >= 1.9, f"{ep}: the other client's SLEEP was disturbed"
            assert v_took < 5, f"{ep}: the SLEEP was not interrupted"
            after = run(v, "SELECT 1") if v.open else "closed"
            results[ep.name] = (v_rows, after)
    assert results["sluice"] == results["direct"]


def test_kill_query_result_direct_reference(mariadb, direct, app_user):
    """What the comparison above compares against: the interrupted SLEEP gives 1317 and the connection
    stays usable."""
    with direct.connect(app_user) as v, direct.connect(app_user) as k:
        out = {}
        t = _sleep_in_thread(v, 10, out, "v")
        _wait_sleeping(mariadb, 1)
        run(k, f"KILL QUERY {v.thread_id()}")
        t.join(15)
        assert out["v"][0] == ("error", 1317)
        assert run(v, "SELECT 1") == ((1,),)


@pytest.mark.parametrize("how", ["sql", "com_process_kill"])
def test_kill_connection_disconnects_its_target(mariadb, direct, proxied, app_user, how):
    results = {}
    for ep in (direct, proxied):
        with ep.connect(app_user) as v, ep.connect(app_user) as w, ep.connect(app_user) as k:
            out = {}
            tv = _sleep_in_thread(v, 10, out, "v")
            tw = _sleep_in_thread(w, 2, out, "w")
            _wait_sleeping(mariadb, 2)
            if how == "sql":
                assert run(k, f"KILL {v.thread_id()}") == ()
            else:
                k.kill(v.thread_id())  # COM_PROCESS_KILL
            tv.join(15)
            tw.join(15)
            assert out["w"][0] == ((0,),) and out["w"][1] >= 1.9, f"{ep}: the other client was disturbed"
            assert out["v"][1] < 5, f"{ep}: the SLEEP was not interrupted"
            with pytest.raises(pymysql.err.Error):
                run_strict(v, "SELECT 1")
            results[ep.name] = out["v"][0]
            assert run(k, "SELECT 1") == ((1,),)  # the killer goes on
    assert results["sluice"] == results["direct"]


@pytest.mark.parametrize("how", ["sql", "com_process_kill"])
def test_kill_idle_connection(direct, proxied, app_user, how):
    results = {}
    for ep in (direct, proxied):
        with ep.connect(app_user) as v, ep.connect(app_user) as k:
            assert run(v, "SELECT 1") == ((1,),)
            if how == "sql":
                assert run(k, f"KILL CONNECTION {v.thread_id()}") == ()
            else:
                k.kill(v.thread_id())
            with pytest.raises(pymysql.err.Error) as e:
                run_strict(v, "SELECT 1")
            results[ep.name] = e.value.args[0]
    assert results["sluice"] == results["direct"]


@pytest.mark.parametrize("stmt", ["KILL {unknown}", "KILL QUERY {unknown}", "KILL CONNECTION {unknown}",
                                  "KILL {other}", "KILL QUERY {other}", "KILL QUERY {self}", "KILL {self}"])
def test_kill_errors_same_as_direct(direct, proxied, app_user, sha2_user, stmt):
    results = {}
    for ep in (direct, proxied):
        with ep.connect(app_user) as k, ep.connect(sha2_user) as o:
            ids = {"unknown": 987654321, "other": o.thread_id(), "self": k.thread_id()}
            r = run(k, stmt.format(**ids))
            if r and r[0] == "error":  # messages repeat the id given, which differs by nature
                msg = r[2]
                for name, value in ids.items():
                    msg = re.sub(rf"\b{value}\b", f"<{name}>", msg)
                r = r[:2] + (msg,)
            results[ep.name] = r
    assert results["sluice"] == results["direct"]


def test_com_process_kill_unknown_id(direct, proxied, app_user):
    for ep in (direct, proxied):
        with ep.connect(app_user) as k:
            with pytest.raises(pymysql.err.MySQLError) as e:
                k.kill(987654321)
            assert e.value.args == (1094, "Unknown thread id: 987654321"), ep


@pytest.mark.parametrize("stmt", ["KILL USER app", "KILL QUERY ID 5", "KILL CONNECTION USER app",
                                  "KILL (SELECT 1)"])
def test_kill_forms_that_could_reach_other_clients_are_refused(proxied, app_user, stmt):
    with proxied.connect(app_user) as k, proxied.connect(app_user) as victim:
        assert run(victim, "SELECT 1") == ((1,),)
        r = run(k, stmt)
        assert r[0] == "error" and r[1] == 1235, r
        assert "KILL" in r[2] and "connection id" in r[2], r
        assert run(victim, "SELECT 1") == ((1,),)  # nobody was killed


def test_mysql_kill_from_connector_c(mariadb, proxied, app_user, cmdclient_bin):
    """mysql_kill() (COM_PROCESS_KILL from Connector/C) with a proxy connection id."""
    with proxied.cmd(cmdclient_bin, app_user) as k, proxied.connect(app_user) as v:
        out = {}
        t = _sleep_in_thread(v, 10, out, "v")
        _wait_sleeping(mariadb, 1)
        assert k.send("kill", v.thread_id())["ok"]
        t.join(15)
        assert out["v"][1] < 5
        with pytest.raises(pymysql.err.Error):
            run_strict(v, "SELECT 1")
        r = k.send("kill", 987654321)
        assert (r["errno"], r["error"]) == (1094, "Unknown thread id: 987654321")


# --------------------------------------------------------------------------------------------
# COM_STMT_*


def stmt_workload(c):
    steps = [
        ("prepare", 0, "SELECT id, owner, balance FROM cmd_acc WHERE id >= ? ORDER BY id"),
        ("execute", 0, "i:2"),
        ("execute", 0, "i:5"),
        ("prepare", 1, "INSERT INTO cmd_blob (data) VALUES (?)"),
        ("long", 1, 0, 1048577, "Q"),
        ("long", 1, 0, 3, "R"),
        ("execute", 1, "l:"),
        ("query", "SELECT id, LENGTH(data), SHA2(data, 256) FROM cmd_blob"),
        ("prepare", 2, "SELECT id, owner FROM cmd_acc WHERE id >= ? ORDER BY id", "cursor"),
        ("execute", 2, "i:1"),
        ("fetch", 2, 2),
        ("fetch", 2, 2),
        ("stmt_reset", 2),
        ("execute", 2, "i:3"),
        ("fetch", 2, 10),
        ("stmt_close", 2),
        ("prepare", 3, "CALL cmd_two_results(?)"),
        ("execute", 3, "i:4"),
        ("prepare", 4, "UPDATE cmd_acc SET balance = balance + ? WHERE owner LIKE ?"),
        ("execute", 4, "d:1.5", "s:%a%"),
        ("execute", 4, "n:", "s:bob"),
        ("prepare", 5, "SELECT * FROM no_such_table WHERE id = ?"),
        ("prepare", 6, "SELECT ?, ?, ?"),
        ("execute", 6, "i:1"),  # too few parameters: the client refuses
        ("stmt_close", 0),
        ("stmt_close", 1),
        ("query", "SELECT owner, balance FROM cmd_acc ORDER BY id"),
    ]
    return [c.send(*s) for s in steps]


def test_prepared_statements_same_as_direct(mariadb, direct, proxied, app_user, sha2_user, cmdclient_bin):
    for user in (app_user, sha2_user):
        out = {}
        for ep in (direct, proxied):
            reset_tables(mariadb)
            with ep.cmd(cmdclient_bin, user) as c:
                out[ep.name] = norm(stmt_workload(c))
        want, got = out["direct"], out["sluice"]
        for i, (a, b) in enumerate(zip(want, got)):
            assert b == a, f"{user.name}: step {i} differs:\n direct: {a}\n sluice: {b}"
        assert len(got) == len(want)
    # the workload is meaningful
    assert want[1]["results"][0]["rows"] == [["2", "bob", "50.50"], ["3", "carol", "0.00"],
                                              ["4", "dave", "7.25"], ["5", "erin", "3.00"]]
    assert want[7]["results"][0]["rows"][0][1] == "1048580"
    assert [len(want[10]["rows"]), want[10]["done"], len(want[11]["rows"])] == [2, False, 2]
    assert [r[0] for r in want[14]["rows"]] == ["3", "4", "5"] and want[14]["done"]
    assert len(want[17]["results"]) == 3  # two result sets and the CALL's OK
    assert want[21]["errno"] == 1146


def test_prepared_statement_long_data_is_not_lost_between_backends(mariadb, proxied_small, app_user,
                                                                   cmdclient_bin):
    """COM_STMT_SEND_LONG_DATA has no answer; it must reach the backend that holds the statement even
    when other clients use the pool meanwhile."""
    reset_tables(mariadb)
    with proxied_small.cmd(cmdclient_bin, app_user) as c, proxied_small.cmd(cmdclient_bin, app_user) as h:
        assert c.send("prepare", 0, "INSERT INTO cmd_blob (data) VALUES (?)")["ok"]
        assert c.send("long", 0, 0, 70000, "a")["ok"]
        assert h.query("BEGIN")["ok"] and h.rows("SELECT 1")
        assert c.send("long", 0, 0, 5, "b")["ok"]
        r = c.send("execute", 0, "l:")
        assert r["ok"], r
        assert h.query("COMMIT")["ok"]
        want = hashlib.sha256(b"a" * 70000 + b"b" * 5).hexdigest()
        assert c.rows("SELECT LENGTH(data), SHA2(data, 256) FROM cmd_blob") == [["70005", want]]


# --------------------------------------------------------------------------------------------
# multi-statements and multi-results


MULTI = [
    "SELECT 1 AS a; SELECT 'two' AS b, NULL AS c; UPDATE cmd_acc SET balance = balance + 1 WHERE id <= 2; "
    "SELECT ROW_COUNT() AS rc",
    "CALL cmd_two_results(3)",
    "INSERT INTO cmd_acc (owner, balance) VALUES ('m1', 1); SELECT LAST_INSERT_ID(); DELETE FROM cmd_acc "
    "WHERE owner = 'm1'",
    "SELECT 1; SELECT * FROM no_such_table; SELECT 3",
    "SELECT 'still here'",
]


def test_multi_statements_and_results_same_as_direct(mariadb, direct, proxied, app_user, cmdclient_bin):
    out = {}
    for ep in (direct, proxied):
        reset_tables(mariadb)
        with ep.connect(app_user, client_flag=CLIENT.MULTI_STATEMENTS) as c:
            out[ep.name] = [all_results(c, sql) for sql in MULTI]
    assert out["sluice"] == out["direct"]
    assert [len(r) for r in out["direct"]] == [4, 3, 3, 2, 1]
    cout = {}
    for ep in (direct, proxied):
        reset_tables(mariadb)
        with ep.cmd(cmdclient_bin, app_user) as c:
            cout[ep.name] = norm([c.query(sql) for sql in MULTI])
    assert cout["sluice"] == cout["direct"]


# --------------------------------------------------------------------------------------------
# LOAD DATA LOCAL INFILE


def test_load_data_local_infile_same_as_direct(mariadb, direct, proxied, app_user, lab_dir):
    path = lab_dir / "cmd_load.csv"
    path.write_bytes("1,one\n2,two 😀\n3,\\N\n".encode())
    sql = f"LOAD DATA LOCAL INFILE '{path}' INTO TABLE cmd_loaded FIELDS TERMINATED BY ','"
    out = {}
    for ep in (direct, proxied):
        reset_tables(mariadb)
        with ep.connect(app_user, local_infile=True) as c:
            with c.cursor() as cur:
                cur.execute(sql)
                loaded = (cur.rowcount, cur._result.message, cur._result.warning_count)
            out[ep.name] = (loaded, run(c, "SELECT a, b FROM cmd_loaded ORDER BY a"), run(c, "SELECT 1"))
    assert out["sluice"] == out["direct"]
    assert out["direct"][1] == ((1, "one"), (2, "two 😀"), (3, None))


def test_load_data_local_refused_without_client_permission(mariadb, direct, proxied, app_user, lab_dir,
                                                           cmdclient_bin):
    path = lab_dir / "cmd_load2.csv"
    path.write_text("7,seven\n")
    sql = f"LOAD DATA LOCAL INFILE '{path}' INTO TABLE cmd_loaded FIELDS TERMINATED BY ','"
    out = {}
    for ep in (direct, proxied):
        reset_tables(mariadb)
        with ep.connect(app_user) as c:  # PyMySQL without local_infile
            out[ep.name] = [run(c, sql), run(c, "SELECT COUNT(*) FROM cmd_loaded")]
        with ep.cmd(cmdclient_bin, app_user, local_infile=False) as c:
            out[ep.name] += norm([c.query(sql), c.query("SELECT COUNT(*) FROM cmd_loaded")])
    assert out["sluice"] == out["direct"]
    assert out["direct"][0][:2] == ("error", 4166) and out["direct"][1] == ((0,),)


# --------------------------------------------------------------------------------------------
# packets of 16 MiB and more


MAX_CHUNK = 0xFFFFFF
BIG_HEAD, BIG_TAIL = "SET @big = '", "'"


def big_statement(payload_len: int):
    """A statement whose COM_QUERY payload (command byte + text) is exactly payload_len bytes, and the
    string it stores in @big. (No derived table: MariaDB would write it to a temporary file.)"""
    n = payload_len - 1 - len(BIG_HEAD) - len(BIG_TAIL)
    pattern = "abcdefghijklmnopqrstuvwxyz0123456789"
    pad = (pattern * (n // len(pattern) + 1))[:n]
    return BIG_HEAD + pad + BIG_TAIL, pad


@pytest.mark.parametrize("payload", [MAX_CHUNK - 1, MAX_CHUNK, MAX_CHUNK + 1, 2 * MAX_CHUNK, 17 * 2**20],
                         ids=["ffffff-1", "ffffff", "ffffff+1", "2xffffff", "17MiB"])
def test_large_query_same_as_direct(direct, proxied, app_user, payload):
    sql, pad = big_statement(payload)
    assert len(sql.encode()) + 1 == payload
    want = ((), ((len(pad), hashlib.sha256(pad.encode()).hexdigest()),), (("next",),))
    out = {}
    for ep in (direct, proxied):
        with ep.connect(app_user, read_timeout=120, write_timeout=120) as c:
            out[ep.name] = (run(c, sql), run(c, "SELECT LENGTH(@big), SHA2(@big, 256)"), run(c, "SELECT 'next'"))
    assert out["direct"] == want
    assert out["sluice"] == out["direct"]


# A row packet's payload here: the value's length prefix (4 bytes below 2^24, 9 from there), the value,
# then 6 bytes for the second column ('after').
ROW_EXTRA = 6


def row_value_len(payload: int) -> int:
    n = payload - ROW_EXTRA - 4
    return n if n < 2**24 else payload - ROW_EXTRA - 9


@pytest.mark.parametrize("payload", [MAX_CHUNK - 1, MAX_CHUNK, MAX_CHUNK + 1, MAX_CHUNK + 5, 2**24 + 15,
                                     2 * MAX_CHUNK, 2 * MAX_CHUNK + 1],
                         ids=["row-ffffff-1", "row-ffffff", "row-ffffff+1", "row-ffffff+5", "row-2^24-value",
                              "row-2xffffff", "row-2xffffff+1"])
def test_large_row_same_as_direct(direct, proxied, app_user, payload):
    length = row_value_len(payload)
    sql = f"SELECT LEFT(REPEAT('0123456789abcdef', {length // 16 + 1}), {length}) AS v, 'after' AS w"
    value = (b"0123456789abcdef" * (length // 16 + 1))[:length]
    out = {}
    for ep in (direct, proxied):
        with ep.connect(app_user, read_timeout=120, write_timeout=120) as c, c.cursor() as cur:
            cur.execute(sql)
            rows = [(hashlib.sha256(v.encode()).hexdigest(), len(v), w) for v, w in cur.fetchall()]
            out[ep.name] = (cur.description, rows, run(c, "SELECT 'next'"))
    assert out["direct"][1] == [(hashlib.sha256(value).hexdigest(), length, "after")]
    assert out["sluice"] == out["direct"]


# --------------------------------------------------------------------------------------------
# logging in while the pool is exhausted


def test_login_with_database_times_out_cleanly_when_pool_is_full(small, app_user):
    """A login naming a database needs a backend (the database checks the name); when none frees up
    within connection_borrow_timeout the client gets error 9501, not a protocol error."""
    holders = [small.connect(app_user) for _ in range(2)]
    try:
        for h in holders:
            assert run(h, "BEGIN") == () and run(h, "SELECT 1") == ((1,),)
        t0 = time.monotonic()
        with pytest.raises(pymysql.err.MySQLError) as e:
            small.connect(app_user, database="app")
        assert e.value.args[0] == 9501, f"{type(e.value).__name__}: {e.value.args}"
        assert time.monotonic() - t0 >= 1.5
    finally:
        for h in holders:
            h.close()
    with small.connect(app_user) as c:
        assert run(c, "SELECT 1") == ((1,),)
