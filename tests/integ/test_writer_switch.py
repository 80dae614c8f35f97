"""The writer moves to another target of the same proxy without replacing it (issue 5, "one
committed writer": the data path's half). Here the move comes from a reload of the node's file
(targets[0] is the writer); in a cluster the same switch follows the committed writer epoch.

Two independent MariaDB instances stand in for a primary and its promoted replica (same users,
same rows). After the switch:
- nothing more reaches the old writer: the node drops every connection it had there at once;
- an idle client's next statement runs on the new writer, without an error;
- a client inside a transaction has it replayed on the new writer (transaction_replay) and commits
  there; its write never lands on the old one.
"""

from __future__ import annotations

import pytest

import sluicelab
from pooltools import wait_for


@pytest.fixture(scope="module")
def second_db(lab_dir, tls):
    db = sluicelab.MariaDB(lab_dir / "second", tls=tls, small=True, preferred_port=None)
    try:
        db.start()
    except sluicelab.LabError as e:
        db.stop()
        pytest.fail(f"could not start the second MariaDB: {e}", pytrace=False)
    yield db
    db.stop()


@pytest.fixture(scope="module")
def dbs(mariadb, second_db):
    for db in (mariadb, second_db):
        with db.admin(database=db.database) as c, c.cursor() as cur:
            cur.execute("CREATE OR REPLACE TABLE sw (id INT PRIMARY KEY, v INT NOT NULL)")
            cur.executemany("INSERT INTO sw VALUES (%s, 0)", [(i,) for i in range(1, 6)])
    return mariadb, second_db


@pytest.fixture(scope="module")
def sw_user(mariadb, second_db):
    user = mariadb.create_user("switcher")
    second_db.create_user(user.name, user.password, password_file=False)
    return user


def user_connections(db, user) -> int:
    with db.admin() as c, c.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = %s",
                    (user.name,))
        return int(cur.fetchone()[0])


def value(db, key: int) -> int:
    with db.admin(database=db.database) as c, c.cursor() as cur:
        cur.execute("SELECT v FROM sw WHERE id = %s", (key,))
        return int(cur.fetchone()[0])


def port_of(conn) -> int:
    with conn.cursor() as cur:
        cur.execute("SELECT @@port")
        return int(cur.fetchone()[0])


def test_sessions_follow_the_writer_and_the_old_one_gets_nothing(sluice_node, dbs, sw_user):
    old, new = dbs
    spec = sluicelab.ProxySpec("main", auth=[sluicelab.Auth(sw_user)],
                               pool={"transaction_replay": True, "connection_borrow_timeout": 20},
                               targets=[(old.host, old.port), (new.host, new.port)])
    node = sluice_node(proxies=[spec])
    idle = node.connect(sw_user, autocommit=True)
    reader = node.connect(sw_user, autocommit=True)
    writer = node.connect(sw_user, autocommit=True)
    assert port_of(idle) == old.port
    with reader.cursor() as cur:
        cur.execute("BEGIN")
        cur.execute("SELECT v FROM sw WHERE id = 1")
        assert cur.fetchone()[0] == 0
    with writer.cursor() as cur:
        cur.execute("BEGIN")
        cur.execute("UPDATE sw SET v = v + 1 WHERE id = 2")
    assert user_connections(old, sw_user) >= 2

    spec.targets = [(new.host, new.port), (old.host, old.port)]
    node.reload()
    wait_for("the node to switch writers", lambda: "writer moves" in node.log_text(), timeout=10)
    wait_for("the old writer to have no connection of the node left",
             lambda: user_connections(old, sw_user) == 0, timeout=10)

    # The idle client notices nothing.
    assert port_of(idle) == new.port
    # The reader's transaction is replayed on the new writer, then goes on there.
    with reader.cursor() as cur:
        cur.execute("SELECT v FROM sw WHERE id = 1")
        assert cur.fetchone()[0] == 0
        cur.execute("SELECT @@port")
        assert cur.fetchone()[0] == new.port
        cur.execute("COMMIT")
    # The writer's transaction too; its change lands on the new writer only.
    with writer.cursor() as cur:
        cur.execute("UPDATE sw SET v = v + 10 WHERE id = 2")
        cur.execute("COMMIT")
    assert value(new, 2) == 11
    assert value(old, 2) == 0, "a write reached the old writer after the switch"
    with idle.cursor() as cur:
        cur.execute("INSERT INTO sw VALUES (6, 6)")
    assert value(new, 6) == 6
    assert user_connections(old, sw_user) == 0
    for c in (idle, reader, writer):
        c.close()
    log = node.log_text()
    assert log.count("transaction replayed; every result matched") == 2, log[-3000:]
