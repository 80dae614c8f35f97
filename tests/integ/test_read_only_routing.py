"""READ_ONLY routing (issue 5, acceptance 6, without the lag bound yet): a proxy with
"routing": "READ_ONLY" (what a READ_ONLY endpoint is rendered as) spreads its sessions over the
targets the health checks see up and read-only, least busy first; a dead replica is skipped; a
promoted one (read_only=0) stops being a reader; with no reader left, reads go to the writer.
Real primary + two replicas (tests/lib/replication.py), one node from a file."""

from __future__ import annotations

import re
import time

import pytest

import sluicelab
from pooltools import wait_for
from replication import ReplicationGroup


@pytest.fixture
def group(lab_dir, tls):
    g = ReplicationGroup(lab_dir / f"ro-rg-{time.monotonic_ns()}", replicas=2, tls=tls)
    try:
        g.start()
    except Exception:
        g.stop()
        raise
    yield g
    g.stop()


def ports_seen(conns, rounds=5) -> set:
    seen = set()
    for _ in range(rounds):
        for c in conns:
            with c.cursor() as cur:
                cur.execute("SELECT @@port")
                seen.add(int(cur.fetchone()[0]))
    return seen


def reader_states(node) -> dict:
    text = node.admin_request("/metrics")[2].decode()
    return {t: int(v) for t, v in re.findall(r'sluice_target_read_only\{target="([^"]+)"\} (\d)',
                                               text)}


def test_reads_spread_over_live_readers_and_fall_back_to_the_writer(sluice_node, group):
    user = group.create_user("ro_app")
    primary, r1, r2 = group.primary, group.replicas[0], group.replicas[1]
    spec = sluicelab.ProxySpec("main", auth=[sluicelab.Auth(user)],
                               targets=[(db.host, db.port) for db in (primary, r1, r2)],
                               extra={"routing": "READ_ONLY"})
    node = sluice_node(proxies=[spec])
    wait_for("the checks to see both replicas read-only",
             lambda: sum(v == 1 for v in reader_states(node).values()) == 2, timeout=10)
    conns = [node.connect(user, autocommit=True) for _ in range(8)]
    # Several sessions at once: each picks the least busy reader; over a few rounds both serve.
    assert ports_seen(conns) == {r1.port, r2.port}

    group.kill(r2)
    wait_for("the dead replica to leave the readers",
             lambda: ports_seen(conns, rounds=2) == {r1.port}, timeout=10)

    group.promote(r1)  # writable now: no longer a reader; none left, so reads go to the writer
    wait_for("reads to fall back to the writer",
             lambda: ports_seen(conns, rounds=2) == {primary.port}, timeout=10)
    for c in conns:
        c.close()
