"""The committed writer of a proxy through the admin API, on three real sluice nodes.

One cluster for the whole file; the tests run in order and build on each other. The proxy has two
targets at the lab's one MariaDB under two names, db1 = 127.0.0.1 (READ_WRITE, the default writer)
and db2 = localhost (READ_ONLY): the data path resolves host names to TCP addresses itself, so both
reach the same server (which listens on 127.0.0.1 only), while sluice sees two targets and a
writer decision between them is a real switch (logged as "writer moves from ... to ...").

  1. without a decision every node shows the default writer (db1, epoch 0, no ETag);
  2. a decision sent to a follower (forwarded to the leader) commits with an epoch (a Raft index),
     every node shows that epoch, moves its writes within seconds, and a client connected before
     the switch keeps working;
  3. a decision against a stale epoch is 412, "If-Match: 0" 400, the current epoch 200 (back to
     db1);
  4. 404 for an unknown target or proxy, 409 for deleting the committed writer's target;
  5. sluicectl writer shows and sets it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lib"))
import sluicelab  # noqa: E402
from clustertools import run_cluster, wait_converged  # noqa: E402

WRITER = "/v1/proxies/main/writer"


@pytest.fixture(scope="module")
def cluster(lab_dir, tls, mariadb, app_user):
    def setup(c):
        leader = c.wait_leader()
        c.create_proxy(leader)
        sluicelab.admin_write(leader, "POST", "/v1/proxies/main/targets",
                              {"id": "db2", "host": "localhost", "port": c.db.port,
                               "role": "READ_ONLY"})
        wait_converged(c.nodes)
        c.wait_serving(timeout=10.0)

    yield from run_cluster(lab_dir / "raft-writer", tls, mariadb, app_user, setup=setup)


def writer_of(node, min_revision=None):
    path = WRITER + (f"?min_revision={min_revision}" if min_revision else "")
    status, hdrs, doc = node.admin_json("GET", path)
    assert status == 200, (node.id, status, doc)
    return hdrs, doc


def put_writer(node, body, if_match=None):
    headers = {"If-Match": if_match} if if_match is not None else None
    return node.admin_json("PUT", WRITER, body, headers=headers)


def select_one(conn):
    with conn.cursor() as cur:
        cur.execute("SELECT 1")
        return cur.fetchone()


def wait_logged(nodes, offsets, text, timeout=5.0):
    """Every node's log, from its offset on, gets a line containing text within timeout."""
    deadline = time.monotonic() + timeout
    missing = list(nodes)
    while missing:
        missing = [n for n in missing if text not in n.log_text()[offsets[n.id]:]]
        if missing:
            assert time.monotonic() < deadline, \
                f"no \"{text}\" in the log of {', '.join(n.id for n in missing)} after {timeout} s; " \
                f"{missing[0].log_path} ends with:\n{missing[0].log_tail(20)}"
            time.sleep(0.05)


def test_default_writer_on_every_node(cluster):
    for n in cluster.nodes:
        hdrs, doc = writer_of(n)
        assert doc == {"target": "db1", "epoch": 0, "reason": "default"}, (n.id, doc)
        assert "ETag" not in hdrs, (n.id, hdrs)


def test_decision_through_a_follower_moves_every_node(cluster):
    leader = cluster.wait_leader()
    follower = next(n for n in cluster.nodes if n is not leader)
    port = cluster.db.port
    # Clients connected through every node before the decision, each with a query behind it.
    clients = [n.connect(cluster.app_user, connect_timeout=5, read_timeout=30) for n in cluster.nodes]
    try:
        for c in clients:
            assert select_one(c) == (1,)
        offsets = {n.id: len(n.log_text()) for n in cluster.nodes}

        status, hdrs, doc = put_writer(follower, {"target": "db2", "reason": "integration test"})
        assert status == 200, doc
        epoch = doc["epoch"]
        assert isinstance(epoch, int) and epoch > 0, doc
        assert doc["revision"] == epoch and hdrs.get("ETag") == f'"{epoch}"', (doc, hdrs)
        assert (doc["target"], doc["reason"], doc["decided_by"]) == \
            ("db2", "integration test", follower.id), doc

        # Every node applies the same decision: same epoch, same target.
        wait_converged(cluster.nodes)
        for n in cluster.nodes:
            hdrs, got = writer_of(n, min_revision=epoch)
            assert (got["target"], got["epoch"], got["decided_by"]) == ("db2", epoch, follower.id), \
                (n.id, got)
            assert hdrs.get("ETag") == f'"{epoch}"', (n.id, hdrs)

        # ...and moves its writes there in place (the proxy is not replaced).
        wait_logged(cluster.nodes, offsets,
                    f"proxy main: writer moves from 127.0.0.1:{port} to localhost:{port}")
        wait_logged(cluster.nodes, offsets, f"proxy main: writer is target db2 (localhost:{port}), "
                                            f"epoch {epoch}, decided by {follower.id}")
        for n in cluster.nodes:
            assert "proxy main: targets changed" not in n.log_text()[offsets[n.id]:], n.id

        # The clients of before the switch carry on; new ones are served as well.
        for c in clients:
            assert select_one(c) == (1,)
        cluster.wait_serving(timeout=10.0)
    finally:
        for c in clients:
            c.close()


def test_if_match_on_the_epoch(cluster):
    leader = cluster.wait_leader()
    _, current = writer_of(leader)
    epoch = current["epoch"]
    assert epoch > 0 and current["target"] == "db2"

    status, _, doc = put_writer(leader, {"target": "db1"}, if_match=f'"{epoch - 1}"')
    assert status == 412 and doc["revision"] == epoch, (status, doc)
    status, _, doc = put_writer(leader, {"target": "db1"}, if_match='"0"')
    assert status == 400 and doc.get("field") == "If-Match", (status, doc)
    _, after = writer_of(leader)
    assert after == current  # nothing changed

    offsets = {n.id: len(n.log_text()) for n in cluster.nodes}
    follower = next(n for n in cluster.nodes if n is not leader)
    status, hdrs, doc = put_writer(follower, {"target": "db1", "reason": "back"}, if_match=str(epoch))
    assert status == 200, doc
    assert doc["epoch"] > epoch and doc["target"] == "db1" and doc["reason"] == "back", doc
    port = cluster.db.port
    wait_logged(cluster.nodes, offsets,
                f"proxy main: writer moves from localhost:{port} to 127.0.0.1:{port}")
    # The epoch it was taken against is stale now.
    status, _, doc2 = put_writer(follower, {"target": "db2"}, if_match=str(epoch))
    assert status == 412 and doc2["revision"] == doc["epoch"], (status, doc2)
    cluster.wait_serving(timeout=10.0)


def test_unknown_target_or_proxy_and_the_writers_target(cluster):
    leader = cluster.wait_leader()
    follower = next(n for n in cluster.nodes if n is not leader)
    _, before = writer_of(leader)
    status, _, doc = put_writer(follower, {"target": "db9"})
    assert status == 404 and doc["detail"] == 'no target "db9" in proxy "main"', (status, doc)
    status, _, doc = follower.admin_json("PUT", "/v1/proxies/nope/writer", {"target": "db1"})
    assert status == 404 and doc["detail"] == 'no proxy named "nope"', (status, doc)
    status, _, doc = follower.admin_json("GET", "/v1/proxies/nope/writer")
    assert status == 404, (status, doc)
    status, _, doc = follower.admin_json("PUT", WRITER, {"target": "db1", "epoch": 3})
    assert status == 400 and doc.get("field") == "epoch", (status, doc)
    # The committed writer's target stays until another writer is committed.
    status, _, doc = follower.admin_json("DELETE", f"/v1/proxies/main/targets/{before['target']}")
    assert status == 409 and doc["epoch"] == before["epoch"], (status, doc)
    wait_converged(cluster.nodes)
    for n in cluster.nodes:
        assert writer_of(n)[1] == before, n.id


def test_sluicectl_writer(cluster):
    tool = Path(__file__).resolve().parents[2] / "admin" / "sluicectl"
    n1, n2, _ = cluster.nodes

    def ctl(node, *args):
        cmd = [str(tool), "--url", node.admin_url, "--token-file", str(node.admin_token_file), *args]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=30)

    r = ctl(n1, "--json", "writer", "main")
    assert r.returncode == 0, r.stderr
    epoch = json.loads(r.stdout)["epoch"]
    r = ctl(n2, "--json", "writer", "main", "--set", "db2", "--reason", "from sluicectl",
            "--if-match", str(epoch))
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["target"] == "db2" and doc["epoch"] > epoch and doc["decided_by"] == n2.id, doc
    r = ctl(n1, "writer", "main", "--set", "db1", "--if-match", str(epoch))
    assert r.returncode == 3 and "HTTP 412" in r.stderr, (r.returncode, r.stderr)
    wait_converged(cluster.nodes)
    r = ctl(n1, "writer", "main")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["target", "epoch", "reason", "decided_by"], r.stdout
    assert lines[1].split()[:2] == ["db2", str(doc["epoch"])], r.stdout
    r = ctl(n1, "writer", "main", "--reason", "x")
    assert r.returncode == 2 and "go with --set" in r.stderr
    cluster.wait_serving(timeout=10.0)
