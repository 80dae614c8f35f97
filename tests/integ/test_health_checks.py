"""Health checks (issue 5: "each node health-checks every target ... learns roles from read_only"):
a node checks every target of a proxy that has a writer to choose (more than one target), with the
proxy's user, and shows what it sees in /metrics. Against a real primary + replica (GTID,
semi-synchronous replication, tests/lib/replication.py):
- both targets become AVAILABLE, the primary with read_only 0, the replica with read_only 1;
- kill -9 of the primary: it is UNAVAILABLE (CONNECTION_FAILED) within about a second and a half
  (checks every 500 ms, two failures in a row);
- promoting the replica shows up as read_only 0 at the next check;
- a check's connection counts like a backend: while clients hold every connection the pool may
  open on the writer, no check of it runs; when they let go, checks run again.
"""

from __future__ import annotations

import re
import time

import pytest

import sluicelab
from pooltools import wait_for
from replication import ReplicationGroup


@pytest.fixture
def group(lab_dir, tls):
    g = ReplicationGroup(lab_dir / f"rg-{time.monotonic_ns()}", replicas=1, tls=tls)
    try:
        g.start()
    except Exception:
        g.stop()
        raise
    yield g
    g.stop()


def health(node) -> dict:
    """{target: (state, read_only or None)} from the node's /metrics."""
    status, _, body = node.admin_request("/metrics")
    assert status == 200
    text = body.decode()
    out = {}
    for target, state in re.findall(r'sluice_target_health\{target="([^"]+)",state="([^"]+)"\} 1',
                                    text):
        out[target] = [state, None]
    for target, ro in re.findall(r'sluice_target_read_only\{target="([^"]+)"\} (\d+)', text):
        out.setdefault(target, [None, None])[1] = int(ro)
    return {k: tuple(v) for k, v in out.items()}


def checks(node, db) -> int:
    text = node.admin_request("/metrics")[2].decode()
    m = re.search(r'sluice_target_checks_total\{target="%s"\} (\d+)' % re.escape(addr(db)), text)
    return int(m.group(1)) if m else 0


def addr(db) -> str:
    return f"{db.host}:{db.port}"


def test_checks_see_roles_failures_and_promotions(sluice_node, group):
    user = group.create_user("checker")
    primary, replica = group.primary, group.replicas[0]
    # Checks every 200 ms, a target down at its first failed check (the defaults are 500 ms, 2).
    spec = sluicelab.ProxySpec("main", auth=[sluicelab.Auth(user)],
                               targets=[(primary.host, primary.port), (replica.host, replica.port)],
                               extra={"health_check": {"interval_ms": 200, "failures": 1}})
    node = sluice_node(proxies=[spec])
    wait_for("both targets AVAILABLE with their roles",
             lambda: health(node).get(addr(primary)) == ("AVAILABLE", 0) and
             health(node).get(addr(replica)) == ("AVAILABLE", 1), timeout=10)

    killed_at = time.monotonic()
    group.kill_primary()
    wait_for("the dead primary to be UNAVAILABLE",
             lambda: health(node).get(addr(primary), ("",))[0] == "UNAVAILABLE", timeout=10)
    seen_after = time.monotonic() - killed_at
    assert seen_after < 3.0, f"a dead writer took {seen_after:.1f} s to be seen"
    assert health(node)[addr(replica)] == ("AVAILABLE", 1)
    assert re.search(rf"{re.escape(addr(primary))} UNAVAILABLE \(CONNECTION_FAILED\) after 1 "
                     "failed checks", node.log_text())

    group.promote(replica)
    wait_for("the promoted replica to show read_only 0",
             lambda: health(node).get(addr(replica)) == ("AVAILABLE", 0), timeout=10)


def test_a_check_counts_like_a_backend(sluice_node, group):
    user = group.create_user("checker2")
    primary, replica = group.primary, group.replicas[0]
    # One connection per target: @@max_connections is 200 in the lab, so 1 % is 2; the test
    # holds both with two clients in transactions on the writer before any check could run.
    spec = sluicelab.ProxySpec("main", auth=[sluicelab.Auth(user)],
                               pool={"max_connections_percent": 1,
                                     "max_idle_connections_percent": 0},
                               targets=[(primary.host, primary.port), (replica.host, replica.port)])
    node = sluice_node(proxies=[spec])
    wait_for("the writer to be checked once",
             lambda: health(node).get(addr(primary), ("",))[0] == "AVAILABLE", timeout=10)
    clients = [node.connect(user, autocommit=True) for _ in range(2)]
    for c in clients:
        with c.cursor() as cur:
            cur.execute("BEGIN")
            cur.execute("SELECT 1")
    # The pool is full: checks of the writer find no room and do not run (each would be a third
    # connection of the user); once the clients let go, they run again.
    held = checks(node, primary)
    time.sleep(2.0)
    assert checks(node, primary) == held, "a check ran while the pool was full"
    with primary.admin() as a, a.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = %s",
                    (user.name,))
        assert cur.fetchone()[0] <= 2
    for c in clients:
        c.close()
    wait_for("checks of the writer to run again", lambda: checks(node, primary) > held, timeout=5)
