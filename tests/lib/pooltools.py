"""Helpers shared by the integration tests that look at pools from the database's side: limits
expressed as percentages of @@max_connections, the proxy's backends in PROCESSLIST, polling."""

from __future__ import annotations

import contextlib
import threading
import time

import pytest

import sluicelab


def max_connections(db: sluicelab.MariaDB) -> int:
    with db.admin() as c, c.cursor() as cur:
        cur.execute("SELECT @@GLOBAL.max_connections")
        return int(cur.fetchone()[0])


def pct_for(max_conn: int, count: int):
    """The smallest integer percentage p with floor(max_conn * p / 100) == count, or None."""
    for p in range(1, 101):
        if max_conn * p // 100 == count:
            return p
    return None


@contextlib.contextmanager
def limits(db: sluicelab.MariaDB, *counts: int):
    """Percentages giving exactly `counts` connections of the database's @@max_connections. If the
    current value allows no such integer percentages, @@max_connections is set to 100 (where p% is p
    connections) until the block ends. Stop the nodes started inside the block before it ends."""
    original = max_connections(db)
    pcts = [pct_for(original, n) for n in counts]
    if None not in pcts:
        yield pcts
        return
    assert all(1 <= n <= 100 for n in counts)
    with db.admin() as c, c.cursor() as cur:
        cur.execute("SET GLOBAL max_connections = 100")
    try:
        yield list(counts)
    finally:
        with db.admin() as c, c.cursor() as cur:
            cur.execute("SET GLOBAL max_connections = %s", (original,))


def proxy_connections(db: sluicelab.MariaDB, user: sluicelab.DBUser, admin=None) -> list:
    """Thread ids of the database connections of `user` (the proxy's backends), from PROCESSLIST."""
    own = admin is None
    c = admin or db.admin()
    try:
        with c.cursor() as cur:
            cur.execute("SELECT ID FROM information_schema.PROCESSLIST WHERE USER = %s", (user.name,))
            return sorted(r[0] for r in cur.fetchall())
    finally:
        if own:
            c.close()


class ProcesslistSampler(threading.Thread):
    """Counts the user's connections in PROCESSLIST every `interval` seconds until stopped."""

    def __init__(self, db, user, interval=0.01):
        super().__init__(daemon=True)
        self.db, self.user, self.interval = db, user, interval
        self.samples = []
        self.error = None
        self._stop_event = threading.Event()

    def run(self):
        try:
            with self.db.admin() as c, c.cursor() as cur:
                while not self._stop_event.is_set():
                    cur.execute("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = %s",
                                (self.user.name,))
                    self.samples.append(int(cur.fetchone()[0]))
                    self._stop_event.wait(self.interval)
        except Exception as e:  # reported by the test
            self.error = e

    def stop(self):
        self._stop_event.set()
        self.join(10)
        assert self.error is None, f"PROCESSLIST sampler failed: {self.error!r}"
        return self.samples


def wait_for(what, predicate, timeout, interval=0.05):
    """Poll predicate() until it returns a true value; fail with `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        v = predicate()
        if v:
            return v
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what} (last value {v!r})")
        time.sleep(interval)


def query1(conn, sql, args=None):
    with conn.cursor() as cur:
        cur.execute(sql, args)
        return cur.fetchone()
