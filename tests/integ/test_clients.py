"""Acceptance: the mariadb CLI, a Connector/C program and PyMySQL connect through sluice with TLS using
both mysql_native_password and caching_sha2_password users, run queries, transactions, prepared
statements and multi-statements, and get byte-identical results to the same workload sent directly
to MariaDB.

Every workload runs twice from the same starting state (reset_tables() recreates the tables, so
auto-increment ids match): once straight to MariaDB over TLS, once through a sluice node; the outputs
must be equal. Both database users are plain mysql_native_password users in MariaDB; what differs is
the auth type the proxy offers the client ('app': MYSQL_NATIVE_PASSWORD, 'app_sha2':
MYSQL_CACHING_SHA2_PASSWORD). The test_direct_* tests check that each workload is meaningful on its
own (they need no sluice). Values that legitimately differ (CONNECTION_ID(), @@port, @@hostname,
timings) are never queried.
"""

from __future__ import annotations

import hashlib
import ssl
import subprocess

import pymysql
import pymysql.constants.CLIENT as CLIENT
import pytest

import sluicelab

USER_KINDS = ["native", "sha2"]

# --------------------------------------------------------------------------------------------
# shared state


SETUP_SQL = [
    "DROP TABLE IF EXISTS types, accounts, blobs, loaded",
    "DROP PROCEDURE IF EXISTS two_results",
    """CREATE TABLE types (
        id INT NOT NULL PRIMARY KEY,
        ti TINYINT, uti TINYINT UNSIGNED, si SMALLINT, mi MEDIUMINT, i INT, bi BIGINT, ubi BIGINT UNSIGNED,
        de DECIMAL(20,6), dbig DECIMAL(65,30), f FLOAT, d DOUBLE,
        b BIT(12), y YEAR, dt DATE, tm TIME(3), dtm DATETIME(6), ts TIMESTAMP(6) NULL DEFAULT NULL,
        c CHAR(10), vc VARCHAR(200), tx TEXT, lt LONGTEXT, lat VARCHAR(20) CHARACTER SET latin1,
        bn BINARY(8), vb VARBINARY(64), bl BLOB, lb LONGBLOB,
        e ENUM('a','b','c'), st SET('x','y','z'), j JSON, u UUID, ip INET6
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE utf8mb4_general_ci""",
    """INSERT INTO types VALUES
      (1, 1, 2, 3, 4, 5, 6, 7, 12345.678901, 3.141592653589793238462643383279, 1.5, 2.25,
       b'101010101010', 2024, '2024-02-29', '12:34:56.789', '2024-02-29 23:59:58.123456',
       '2024-02-29 23:59:58.654321', 'char', 'varchar', 'text', 'longtext', 'latin',
       X'0102030405060708', X'00FF0A0D5C27225C00', X'DEADBEEF00', X'00',
       'b', 'x,z', '{"k": [1, 2.5, "s", null, true]}', '123e4567-e89b-12d3-a456-426614174000', '2001:db8::1'),
      (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
       NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
      (3, -128, 255, -32768, -8388608, -2147483648, -9223372036854775808, 18446744073709551615,
       -99999999999999.999999, 99999999999999999999999999999999999.999999999999999999999999999999,
       -3.40282e38, 1.7976931348623157e308, b'111111111111', 2155, '9999-12-31', '-838:59:59.000',
       '9999-12-31 23:59:59.999999', '2038-01-19 03:14:07.999999', '', '', '', '', '',
       X'0000000000000000', X'', X'', X'',
       'c', '', '[]', '00000000-0000-0000-0000-000000000000', '::ffff:127.0.0.1'),
      (4, 127, 0, 32767, 8388607, 2147483647, 9223372036854775807, 0, 0.000001, -0.000000000000000000000000000001,
       1.17549e-38, 4.9e-324, b'000000000001', 1901, '1000-01-01', '838:59:59.999',
       '1000-01-01 00:00:00.000000', '1970-01-01 00:00:01.000000',
       'ü€😀', 'utf8mb4: 😀 🚀 日本語 Ελληνικά e\u0301 \\\\ '' " %% \t end', REPEAT('ab😀', 1000),
       REPEAT('0123456789', 10000), CONVERT(X'E9E8FC' USING latin1),
       X'FFFEFDFC00010203', REPEAT(X'00FF', 32), REPEAT(X'00010203FCFDFEFF', 1000), REPEAT(X'5A00', 70000),
       'a', 'x,y,z', '{"emoji": "😀", "nested": {"a": [{}]}}', NULL, NULL)""",
    """CREATE TABLE accounts (
        id INT AUTO_INCREMENT PRIMARY KEY, owner VARCHAR(50) NOT NULL UNIQUE, balance DECIMAL(12,2) NOT NULL
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
    "INSERT INTO accounts (owner, balance) VALUES ('alice', 100.00), ('bob', 50.50), ('carol', 0.00)",
    """CREATE TABLE blobs (id INT AUTO_INCREMENT PRIMARY KEY, data LONGBLOB) ENGINE=InnoDB""",
    """CREATE TABLE loaded (a INT, b VARCHAR(50), c DATE) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
    """CREATE PROCEDURE two_results(IN n INT)
       BEGIN
         SELECT n AS n, n * 2 AS twice;
         SELECT id, owner, balance FROM accounts ORDER BY id;
       END""",
]

LOAD_DATA_CSV = "1,one,2024-01-01\n2,two 😀,2024-01-02\n3,\\N,\\N\n"


def reset_tables(db: sluicelab.MariaDB) -> None:
    with db.admin(database=db.database) as c, c.cursor() as cur:
        for stmt in SETUP_SQL:
            cur.execute(stmt)


def table_contents(db: sluicelab.MariaDB, table: str):
    with db.admin(database=db.database) as c, c.cursor() as cur:
        cur.execute(f"SELECT * FROM {table} ORDER BY 1")
        return cur.fetchall()


@pytest.fixture(scope="module")
def users(app_user, sha2_user):
    return {"native": (app_user, sluicelab.AUTH_NATIVE), "sha2": (sha2_user, sluicelab.AUTH_CACHING_SHA2)}


@pytest.fixture(scope="module")
def node(module_sluice_node, users):
    """One sluice node with proxy 'main' offering both users (native and caching_sha2)."""
    return module_sluice_node(users=list(users.values()))


@pytest.fixture(scope="module")
def csv_file(lab_dir):
    p = lab_dir / "load.csv"
    p.write_text(LOAD_DATA_CSV, encoding="utf-8")
    return p


class Endpoint:
    """Where a workload connects: straight to MariaDB or through a sluice proxy (both TLS)."""

    def __init__(self, name, host, port, ca_file):
        self.name, self.host, self.port, self.ca_file = name, host, port, ca_file

    def connect(self, user: sluicelab.DBUser, **kw):
        return sluicelab.connect(self.host, self.port, user.name, user.password,
                                 ca_file=self.ca_file, **kw)

    def __repr__(self):
        return f"{self.name}({self.host}:{self.port})"


@pytest.fixture(scope="module")
def direct(mariadb, tls):
    return Endpoint("direct", mariadb.host, mariadb.port, tls.ca_file)


@pytest.fixture(scope="module")
def proxied(node, tls):
    p = node.proxy("main")
    return Endpoint("sluice", p.host, p.port, tls.ca_file)


def run_both(mariadb, direct, proxied, workload, *args):
    """Run workload from a fresh state against MariaDB, then through sluice; return both outputs."""
    reset_tables(mariadb)
    want = workload(direct, *args)
    reset_tables(mariadb)
    got = workload(proxied, *args)
    return want, got


def assert_same(want, got, what):
    if want == got:
        return
    if isinstance(want, (bytes, str)):
        wl = want.splitlines() if isinstance(want, str) else want.decode("utf-8", "replace").splitlines()
        gl = got.splitlines() if isinstance(got, str) else got.decode("utf-8", "replace").splitlines()
        for i, (a, b) in enumerate(zip(wl, gl)):
            if a != b:
                pytest.fail(f"{what}: first difference at line {i + 1}:\n direct: {a[:400]!r}\n sluice: {b[:400]!r}")
        pytest.fail(f"{what}: outputs differ in length ({len(wl)} vs {len(gl)} lines)")
    if isinstance(want, list) and isinstance(got, list):
        for i, (a, b) in enumerate(zip(want, got)):
            if a != b:
                pytest.fail(f"{what}: first difference at step {i}:\n direct: {repr(a)[:600]}\n sluice: {repr(b)[:600]}")
        pytest.fail(f"{what}: different number of steps ({len(want)} vs {len(got)})")
    assert want == got, what


# --------------------------------------------------------------------------------------------
# PyMySQL workloads: each returns a list of plain-data records describing everything the client saw


def _fields(cur):
    res = cur._result  # PyMySQL keeps the full column definitions here
    if res is None or not getattr(res, "fields", None):
        return None
    return [(f.catalog, f.db, f.table_name, f.org_table, f.name, f.org_name, f.charsetnr, f.length,
             f.type_code, f.flags, f.scale) for f in res.fields]


def _record(conn, cur, label):
    res = cur._result
    return {
        "label": label,
        "description": cur.description,
        "fields": _fields(cur),
        "rows": cur.fetchall(),
        "rowcount": cur.rowcount,
        "lastrowid": cur.lastrowid,
        "warnings": res.warning_count if res else None,
        "message": res.message if res else None,
        "in_trans": bool(conn.server_status & pymysql.constants.SERVER_STATUS.SERVER_STATUS_IN_TRANS),
        "autocommit": bool(conn.server_status & pymysql.constants.SERVER_STATUS.SERVER_STATUS_AUTOCOMMIT),
    }


def _run(conn, cur, sql, args=None, label=None):
    try:
        cur.execute(sql, args)
    except pymysql.err.Error as e:
        return {"label": label or sql[:80], "error": e.__class__.__name__, "args": e.args}
    return _record(conn, cur, label or sql[:80])


TYPE_QUERIES = [
    "SELECT * FROM types ORDER BY id",
    "SELECT id, b + 0, HEX(bl), LENGTH(lb), CHAR_LENGTH(lt), JSON_EXTRACT(j, '$.emoji') FROM types ORDER BY id",
    "SELECT 1/0 AS div0, CAST('x' AS INT) AS bad_cast",
    "SHOW WARNINGS",
    "SELECT NULL, 0, -1, 1.5e300, 0.1 + 0.2, 'tab\there', X'00', _latin1 X'E9', _utf8mb4 'é' COLLATE utf8mb4_bin",
    "SELECT DATE '2024-01-01', TIME '-01:02:03.5', TIMESTAMP '2024-01-01 00:00:00.000001', INTERVAL 1 DAY + DATE '2024-12-31'",
    "SELECT CAST(18446744073709551615 AS UNSIGNED) AS u, CAST(-9223372036854775808 AS SIGNED) AS s, 1e-300 * 1e-300 AS tiny",
    "SET STATEMENT max_recursive_iterations = 100000 FOR WITH RECURSIVE s(n) AS "
    "(SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < 50000) SELECT n, MD5(n), REPEAT('x', n % 97) FROM s",
    "SELECT * FROM types WHERE 1 = 0",
    "SELECT * FROM no_such_table",
    "SELEC 1",
]


def wl_pymysql_types(ep: Endpoint, user):
    out = []
    for raw in (False, True):
        kw = {"conv": {}} if raw else {}  # raw: no decoding, bytes/str exactly as sent
        with ep.connect(user, **kw) as c, c.cursor() as cur:
            for q in TYPE_QUERIES:
                out.append(_run(c, cur, q, label=("raw " if raw else "") + q[:80]))
    return out


def wl_pymysql_transactions(ep: Endpoint, user):
    out = []
    with ep.connect(user) as c, c.cursor() as cur:
        for sql in [
            "BEGIN",
            "UPDATE accounts SET balance = balance - 10 WHERE owner = 'alice'",
            "UPDATE accounts SET balance = balance + 10 WHERE owner = 'bob'",
            "INSERT INTO accounts (owner, balance) VALUES ('dave', 1.25)",
            "SELECT * FROM accounts ORDER BY id",
            "COMMIT",
            "START TRANSACTION",
            "DELETE FROM accounts WHERE owner = 'carol'",
            "INSERT INTO accounts (owner, balance) VALUES ('eve', 99)",
            "SELECT COUNT(*) FROM accounts",
            "ROLLBACK",
            "SELECT * FROM accounts ORDER BY id",
            "START TRANSACTION READ ONLY",
            "SELECT SUM(balance) FROM accounts",
            "UPDATE accounts SET balance = 0",  # error 1792: read-only transaction
            "COMMIT",
            "BEGIN",
            "INSERT INTO accounts (owner, balance) VALUES ('frank', 5)",
            "SAVEPOINT sp1",
            "INSERT INTO accounts (owner, balance) VALUES ('grace', 6)",
            "ROLLBACK TO SAVEPOINT sp1",
            "INSERT INTO accounts (owner, balance) VALUES ('alice', 1)",  # duplicate key, txn stays open
            "COMMIT",
        ]:
            out.append(_run(c, cur, sql))
    # PyMySQL's own transaction API (autocommit off: SET AUTOCOMMIT=0, COMMIT, ROLLBACK)
    with ep.connect(user, autocommit=False) as c, c.cursor() as cur:
        out.append(_run(c, cur, "UPDATE accounts SET balance = balance * 2 WHERE owner = %s", ("bob",)))
        c.rollback()
        out.append(_run(c, cur, "SELECT balance FROM accounts WHERE owner = 'bob'"))
        out.append(_run(c, cur, "INSERT INTO accounts (owner, balance) VALUES (%s, %s)", ("heidi", "7.50")))
        c.commit()
        out.append(_run(c, cur, "SELECT @@autocommit, @@in_transaction"))
        c.commit()
    return out


MULTI = [
    "SELECT 1 AS a; SELECT 'two' AS b, NULL AS c; SELECT * FROM accounts ORDER BY id",
    "INSERT INTO accounts (owner, balance) VALUES ('m1', 1); UPDATE accounts SET balance = balance + 1; "
    "SELECT LAST_INSERT_ID(), ROW_COUNT(); DELETE FROM accounts WHERE owner = 'm1'",
    "SET @x = 5; SELECT @x * 2 AS y; DO 1",
    "CALL two_results(21)",
    "BEGIN; INSERT INTO accounts (owner, balance) VALUES ('m2', 2); ROLLBACK; SELECT COUNT(*) FROM accounts",
    "SELECT 1; SELECT * FROM no_such_table; SELECT 3",
]


def wl_pymysql_multi(ep: Endpoint, user):
    out = []
    with ep.connect(user, client_flag=CLIENT.MULTI_STATEMENTS) as c:
        for sql in MULTI:
            cur = c.cursor()
            sets = []
            try:
                cur.execute(sql)
                sets.append(_record(c, cur, sql[:60]))
                while cur.nextset():
                    sets.append(_record(c, cur, sql[:60]))
            except pymysql.err.Error as e:
                sets.append({"error": e.__class__.__name__, "args": e.args})
            cur.close()
            out.append(sets)
        with c.cursor() as cur:  # the connection is still usable after the failed multi-statement
            out.append(_run(c, cur, "SELECT 'still here'"))
    return out


def wl_pymysql_large(ep: Endpoint, user):
    """A row bigger than one 16 MiB protocol packet, both directions."""
    payload = bytes(range(256)) * (65536 + 8) + b"tail"  # 16 MiB + 2052 bytes
    with ep.connect(user, read_timeout=120, write_timeout=120) as c, c.cursor() as cur:
        cur.execute("INSERT INTO blobs (data) VALUES (%s)", (payload,))
        cur.execute("SELECT id, data, LENGTH(data), SHA2(data, 256) FROM blobs")
        rid, data, length, sha = cur.fetchone()
    return [rid, hashlib.sha256(data).hexdigest(), len(data), length, sha,
            hashlib.sha256(payload).hexdigest(), len(payload)]


def wl_pymysql_load_data(ep: Endpoint, user, csv_file):
    with ep.connect(user, local_infile=True) as c, c.cursor() as cur:
        out = [_run(c, cur, f"LOAD DATA LOCAL INFILE '{csv_file}' INTO TABLE loaded "
                            "FIELDS TERMINATED BY ',' LINES TERMINATED BY '\\n'")]
        out.append(_run(c, cur, "SELECT * FROM loaded ORDER BY a"))
    return out


# --------------------------------------------------------------------------------------------
# Connector/C (text and binary protocol) and mariadb CLI workloads

CCLIENT_SQL = """\
# text protocol: many types, both encodings of the same table
SELECT * FROM types ORDER BY id
;;
SELECT id, b + 0, HEX(bl), LENGTH(lb), JSON_EXTRACT(j, '$.emoji') FROM types ORDER BY id
;;
SELECT 1/0 AS div0; SHOW WARNINGS
;;
# multi-statement with DML, OK packets and several result sets
INSERT INTO accounts (owner, balance) VALUES ('c1', 1), ('c2', 2); UPDATE accounts SET balance = balance + 1 WHERE id > 1; SELECT * FROM accounts ORDER BY id; DELETE FROM accounts WHERE owner LIKE 'c_'
;;
SELECT 1; SELECT * FROM no_such_table; SELECT 3
;;
SELEC 1
;;
# transactions
BEGIN
;;
UPDATE accounts SET balance = balance - 5 WHERE owner = 'alice'
;;
SELECT @@in_transaction, balance FROM accounts WHERE owner = 'alice'
;;
ROLLBACK
;;
START TRANSACTION; INSERT INTO accounts (owner, balance) VALUES ('zed', 3.5); COMMIT
;;
SELECT * FROM accounts ORDER BY id
;;
CALL two_results(7)
;;
SET STATEMENT max_recursive_iterations = 100000 FOR WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < 20000) SELECT n, SHA1(n) FROM s
;;
LOAD DATA LOCAL INFILE '@CSV@' INTO TABLE loaded FIELDS TERMINATED BY ',' LINES TERMINATED BY '\\n'
;;
SELECT * FROM loaded ORDER BY a
;;
# SQL-level prepared statements
PREPARE s1 FROM 'SELECT owner, balance FROM accounts WHERE balance > ? ORDER BY id'; SET @min = 10; EXECUTE s1 USING @min; DEALLOCATE PREPARE s1
;;
# binary protocol: server-side prepared statements (mysql_stmt_*)
!prepare SELECT * FROM types WHERE id >= ? ORDER BY id
!exec int:1
!exec int:4
;;
!prepare SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ?
!exec int:-5	uint:18446744073709551615	double:1.5	str:héllo 😀	hex:00ff0a5c27	date:2024-02-29	datetime:2024-02-29 23:59:58.123456	time:-838:59:59	null:	str:
;;
!prepare INSERT INTO accounts (owner, balance) VALUES (?, ?)
!exec str:ps1	str:10.50
!exec str:ps2	double:20.25
!exec str:alice	int:1
;;
!prepare UPDATE accounts SET balance = balance + ? WHERE owner LIKE ?
!exec int:1	str:ps%
;;
!prepare SELECT id, owner, balance FROM accounts WHERE owner = ?
!exec str:ps1
!exec str:nobody
!exec null:
;;
!prepare INSERT INTO blobs (data) VALUES (?)
!exec long:1048577:Q
;;
SELECT id, LENGTH(data), SHA2(data, 256) FROM blobs
;;
!prepare CALL two_results(?)
!exec int:3
;;
!cursor
!prepare SELECT id, owner, balance FROM accounts WHERE id >= ? ORDER BY id
!exec int:1
;;
!prepare SELECT * FROM no_such_table WHERE id = ?
;;
!prepare SELECT 1 AS one
!exec
!exec
"""

CLI_SQL = """\
SELECT * FROM types ORDER BY id;
SELECT id, b + 0, HEX(bl), LENGTH(lb) FROM types ORDER BY id;
SELECT 1/0 AS div0;
SELECT * FROM no_such_table;
BEGIN;
UPDATE accounts SET balance = balance - 1 WHERE owner = 'alice';
SELECT ROW_COUNT(), @@in_transaction;
ROLLBACK;
START TRANSACTION;
INSERT INTO accounts (owner, balance) VALUES ('cli', 4.5);
COMMIT;
SELECT * FROM accounts ORDER BY id;
DELIMITER //
SELECT 'multi' AS a; SELECT 2 AS b; UPDATE accounts SET balance = balance + 1 WHERE owner = 'cli'; SELECT ROW_COUNT() AS rc//
CALL two_results(5)//
DELIMITER ;
PREPARE s FROM 'SELECT owner FROM accounts WHERE id = ?';
SET @id = 2;
EXECUTE s USING @id;
DEALLOCATE PREPARE s;
LOAD DATA LOCAL INFILE '@CSV@' INTO TABLE loaded FIELDS TERMINATED BY ',' LINES TERMINATED BY '\\n';
SELECT * FROM loaded ORDER BY a;
SELECT 'utf8mb4 😀 日本語' AS s, X'00FF0A5C' AS bin, NULL AS n;
"""


def wl_cclient(ep: Endpoint, user, cclient, sql_file):
    r = subprocess.run([str(cclient), "--host", ep.host, "--port", str(ep.port), "--user", user.name,
                        "--password", user.password, "--ca", str(ep.ca_file), "--database", "app",
                        str(sql_file)], capture_output=True, timeout=300)
    assert r.returncode == 0, f"sluice_cclient against {ep} exited {r.returncode}: {r.stderr.decode(errors='replace')}"
    return r.stdout


def wl_cli(ep: Endpoint, user, sql_text):
    r = subprocess.run(["mariadb", "-h", ep.host, "-P", str(ep.port), "-u", user.name,
                        f"-p{user.password}", "--ssl", "--ssl-ca", str(ep.ca_file), "--ssl-verify-server-cert",
                        "--table", "--raw", "--column-type-info", "--show-warnings", "--force",
                        "--local-infile=1", "--default-character-set=utf8mb4", "app"],
                       input=sql_text.encode(), capture_output=True, timeout=300)
    if r.returncode != 0 and b"ERROR 2" in r.stderr:  # 2xxx: client/connection errors, not SQL errors
        pytest.fail(f"mariadb CLI could not connect to {ep}: {r.stderr.decode(errors='replace')}")
    return r.returncode, r.stdout, r.stderr


@pytest.fixture(scope="module")
def cclient_sql(lab_dir, csv_file):
    p = lab_dir / "cclient.sql"
    p.write_text(CCLIENT_SQL.replace("@CSV@", str(csv_file)), encoding="utf-8")
    return p


@pytest.fixture(scope="module")
def cli_sql(csv_file):
    return CLI_SQL.replace("@CSV@", str(csv_file))


# --------------------------------------------------------------------------------------------
# direct-only checks: the workloads are meaningful (need no sluice)


def test_direct_pymysql_workloads(mariadb, direct, app_user, csv_file):
    reset_tables(mariadb)
    with direct.connect(app_user) as c:
        assert isinstance(c._sock, ssl.SSLSocket)
    types = wl_pymysql_types(direct, app_user)
    by_label = {r["label"]: r for r in types}
    rows = by_label["SELECT * FROM types ORDER BY id"]["rows"]
    assert [r[0] for r in rows] == [1, 2, 3, 4]
    assert rows[1][1:] == (None,) * 31
    assert rows[2][7] == 18446744073709551615 and rows[2][6] == -9223372036854775808
    assert rows[3][19].startswith("utf8mb4: 😀") and rows[0][24] == b"\x00\xff\n\r\\'\"\\\x00"
    big = [r for label, r in by_label.items() if label.startswith("SET STATEMENT max_recursive")]
    assert len(big[0]["rows"]) == 50000 and big[0]["warnings"] == 0
    assert by_label["SELECT * FROM no_such_table"]["args"][0] == 1146
    raw_rows = by_label["raw SELECT * FROM types ORDER BY id"]["rows"]
    assert raw_rows[0][1] == "1" and raw_rows[0][24] == b"\x00\xff\n\r\\'\"\\\x00"

    reset_tables(mariadb)
    tx = wl_pymysql_transactions(direct, app_user)
    assert [r.get("args", [None])[0] for r in tx if "error" in r] == [1792, 1062]
    assert [(r[0], r[1], str(r[2])) for r in table_contents(mariadb, "accounts")] == [
        (1, "alice", "90.00"), (2, "bob", "60.50"), (3, "carol", "0.00"), (4, "dave", "1.25"),
        (6, "frank", "5.00"), (9, "heidi", "7.50")]

    reset_tables(mariadb)
    multi = wl_pymysql_multi(direct, app_user)
    assert [len(sets) for sets in multi[:-1]] == [3, 4, 3, 3, 4, 2]
    assert multi[-2][-1]["args"][0] == 1146 and multi[-1]["rows"] == (("still here",),)

    reset_tables(mariadb)
    big = wl_pymysql_large(direct, app_user)
    assert big[1] == big[4] == big[5] and big[2] == big[3] == big[6] > 16 * 1024 * 1024

    reset_tables(mariadb)
    loaded = wl_pymysql_load_data(direct, app_user, csv_file)
    assert loaded[0]["rowcount"] == 3 and len(loaded[1]["rows"]) == 3


def test_direct_cclient_workload(mariadb, direct, app_user, cclient, cclient_sql):
    reset_tables(mariadb)
    out = wl_cclient(direct, app_user, cclient, cclient_sql).decode()
    assert out.count("== block ") == CCLIENT_SQL.count("\n;;\n") + 1
    errors = [line for line in out.splitlines() if line.startswith("error")]
    assert len(errors) == 4, errors  # missing table (text), syntax, duplicate key, missing table (prepare)
    assert "prepared: params=10 fields=10 cursor=0" in out
    assert ("row: -5 18446744073709551615 1.5 'h\\xc3\\xa9llo \\xf0\\x9f\\x98\\x80' '\\x00\\xff\\x0a\\\\\\'' "
            "DATE(2024-02-29) DATETIME(2024-02-29 23:59:58.123456) TIME(-838:59:59.000000) NULL ''") in out
    assert "prepared: params=1 fields=3 cursor=1" in out
    assert "row: '1' '1048577' '" in out  # long data arrived whole
    assert "rows: 20000 " in out
    assert "ok: affected_rows=3 insert_id=0 warnings=0 info='Records: 3  Deleted: 0  Skipped: 0  Warnings: 0'" in out


def test_direct_cli_workload(mariadb, direct, app_user, cli_sql):
    reset_tables(mariadb)
    rc, out, err = wl_cli(direct, app_user, cli_sql)
    assert err.count(b"ERROR ") == 1 and b"ERROR 1146" in err, err  # --force: the rest still runs
    assert out.count(b"Field   1:") >= 12
    assert "utf8mb4 😀 日本語".encode() in out


# --------------------------------------------------------------------------------------------
# the acceptance comparisons (need the sluice data path)


def test_pymysql_tls_login(node, direct, proxied, users):
    for kind in USER_KINDS:
        user, _ = users[kind]
        with proxied.connect(user) as c, c.cursor() as cur:
            assert isinstance(c._sock, ssl.SSLSocket)
            cur.execute("SELECT CURRENT_USER(), DATABASE()")
            assert cur.fetchone() == (f"{user.name}@%", "app")


@pytest.mark.parametrize("kind", USER_KINDS)
def test_pymysql_types(mariadb, direct, proxied, users, kind):
    want, got = run_both(mariadb, direct, proxied, wl_pymysql_types, users[kind][0])
    assert_same(want, got, "PyMySQL type queries")


@pytest.mark.parametrize("kind", USER_KINDS)
def test_pymysql_transactions(mariadb, direct, proxied, users, kind):
    reset_tables(mariadb)
    want = wl_pymysql_transactions(direct, users[kind][0])
    want_table = table_contents(mariadb, "accounts")
    reset_tables(mariadb)
    got = wl_pymysql_transactions(proxied, users[kind][0])
    assert_same(want, got, "PyMySQL transactions")
    assert table_contents(mariadb, "accounts") == want_table


@pytest.mark.parametrize("kind", USER_KINDS)
def test_pymysql_multi_statements(mariadb, direct, proxied, users, kind):
    want, got = run_both(mariadb, direct, proxied, wl_pymysql_multi, users[kind][0])
    assert_same(want, got, "PyMySQL multi-statements")


def test_pymysql_large_row(mariadb, direct, proxied, users):
    want, got = run_both(mariadb, direct, proxied, wl_pymysql_large, users["native"][0])
    assert_same(want, got, "16 MiB row")


def test_pymysql_load_data_local(mariadb, direct, proxied, users, csv_file):
    want, got = run_both(mariadb, direct, proxied, wl_pymysql_load_data, users["native"][0], csv_file)
    assert_same(want, got, "LOAD DATA LOCAL INFILE")


@pytest.mark.parametrize("kind", USER_KINDS)
def test_cclient_identical(mariadb, direct, proxied, users, kind, cclient, cclient_sql):
    reset_tables(mariadb)
    want = wl_cclient(direct, users[kind][0], cclient, cclient_sql)
    want_table = table_contents(mariadb, "accounts")
    reset_tables(mariadb)
    got = wl_cclient(proxied, users[kind][0], cclient, cclient_sql)
    assert_same(want, got, "Connector/C output")
    assert table_contents(mariadb, "accounts") == want_table


@pytest.mark.parametrize("kind", USER_KINDS)
def test_cli_identical(mariadb, direct, proxied, users, kind, cli_sql):
    want, got = run_both(mariadb, direct, proxied, wl_cli, users[kind][0], cli_sql)
    assert want[0] == got[0], f"exit status: direct {want[0]}, sluice {got[0]}; sluice stderr: {got[2]!r}"
    assert_same(want[2], got[2], "mariadb CLI stderr")
    assert_same(want[1], got[1], "mariadb CLI stdout")
