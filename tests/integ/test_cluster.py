"""Three sluice nodes with the Raft configuration store, as real processes (issue 3, acceptance 1-3).

One cluster for the whole file; the tests run in order and build on each other:
  1. a proxy created through a follower's admin API (forwarded to the leader) is served by all three
     nodes within a second;
  2. kill -9 of the leader: a new leader within 3 s, writes through a survivor work, and the old
     leader restarted without --init-cluster catches up (same applied index, GET /v1/proxies equal
     byte for byte);
  3. all three restarted: the configuration is intact and nothing was applied again.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lib"))
import sluicelab  # noqa: E402
from clustertools import run_cluster, wait_converged  # noqa: E402


@pytest.fixture(scope="module")
def cluster(lab_dir, tls, mariadb, app_user):
    yield from run_cluster(lab_dir / "raft", tls, mariadb, app_user)


def query_through(cluster, node) -> tuple:
    with node.connect(cluster.app_user, connect_timeout=5, read_timeout=10) as c, c.cursor() as cur:
        cur.execute("SELECT CURRENT_USER(), DATABASE(), 40 + 2")
        return cur.fetchone()


def proxies_bytes(node) -> bytes:
    status, _, body = node.admin_request("/v1/proxies")
    assert status == 200, body
    return body



def test_proxy_created_through_a_follower_is_served_by_every_node(cluster):
    leader = cluster.wait_leader()
    follower = next(n for n in cluster.nodes if n is not leader)
    cluster.create_proxy(follower)  # every write is forwarded by the follower to the leader
    took = cluster.wait_serving(timeout=5.0)
    assert took < 1.0, f"the proxy was served by every node only after {took:.2f} s"
    for n in cluster.nodes:
        user, db, answer = query_through(cluster, n)
        assert (user.split("@")[0], db, answer) == (cluster.app_user.name, "app", 42), n.id
    # The follower's forwarded answer carries the revision like the leader's own.
    status, hdrs, doc = follower.admin_json("PUT", "/v1/proxies/main/target-group",
                                            {"connection_pool_config": {"max_connections_percent": 90}})
    assert status == 200, doc
    assert hdrs.get("ETag"), hdrs
    # Forwarded writes are not forwarded again: a node that is not leader answers 503 instead.
    status, hdrs, doc = follower.admin_json("PUT", "/v1/secrets/loop", {"ref": "env:LOOP"},
                                            headers={"X-Sluice-Forwarded": "1"})
    assert status == 503 and hdrs.get("Retry-After") == "1", (status, doc)
    wait_converged(cluster.nodes)
    assert len({proxies_bytes(n) for n in cluster.nodes}) == 1
    # Exactly one node says it leads, in /metrics as in /v1/stats.
    leaders = []
    for n in cluster.nodes:
        status, _, body = n.admin_request("/metrics")
        assert status == 200
        leaders += [n.id for line in body.decode().splitlines() if line == "sluice_raft_leader 1"]
    assert leaders == [leader.id]


def test_target_health_as_each_node_sees_it(cluster):
    """GET .../targets carries RDS's target_health from the node asked: after clients went through
    every node, the database target is AVAILABLE everywhere; a registered replica that no pool has
    tried yet is REGISTERING (pools open lazily)."""
    leader = cluster.wait_leader()
    status, _, doc = leader.admin_json("POST", "/v1/proxies/main/targets",
                                       {"id": "replica1", "host": "127.0.0.1", "port": 1,
                                        "role": "READ_ONLY"})
    assert status == 200, doc
    wait_converged(cluster.nodes)
    for n in cluster.nodes:
        query_through(cluster, n)
        status, _, doc = n.admin_json("GET", "/v1/proxies/main/targets")
        assert status == 200, doc
        health = {t["id"]: t["target_health"] for t in doc}
        assert health["db1"]["state"] == "AVAILABLE", (n.id, health)
        assert health["replica1"]["state"] == "REGISTERING", (n.id, health)
    status, _, doc = leader.admin_json("DELETE", "/v1/proxies/main/targets/replica1")
    assert status == 200, doc
    wait_converged(cluster.nodes)


def test_endpoint_served_by_every_node(cluster):
    """A READ_WRITE endpoint added to the proxy listens on its own port on every node and reaches
    the database; removing it closes that port again."""
    leader = cluster.wait_leader()
    status, _, proxy = leader.admin_json("GET", "/v1/proxies/main")
    assert status == 200, proxy
    port = sluicelab.free_port()
    body = {k: v for k, v in proxy.items() if k not in ("name", "revision")}
    body["endpoints"] = [{"name": "rw", "port": port, "target_role": "READ_WRITE"}]
    status, _, doc = leader.admin_json("PUT", "/v1/proxies/main", body)
    assert status == 200, doc
    wait_converged(cluster.nodes)
    for n in cluster.nodes:
        deadline = time.monotonic() + 5
        while True:
            try:
                with sluicelab.connect(n.data_address, port, cluster.app_user.name,
                                       cluster.app_user.password, ca_file=n.tls.ca_file) as c:
                    with c.cursor() as cur:
                        cur.execute("SELECT 40 + 2")
                        assert cur.fetchone() == (42,)
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
    body["endpoints"] = []
    status, _, doc = leader.admin_json("PUT", "/v1/proxies/main", body)
    assert status == 200, doc
    wait_converged(cluster.nodes)
    for n in cluster.nodes:
        deadline = time.monotonic() + 5
        while sluicelab.port_answers(port, host=n.data_address):
            assert time.monotonic() < deadline, f"{n.id} still listens on the removed endpoint"
            time.sleep(0.05)


def reachability(node) -> dict:
    status, _, doc = node.admin_json("GET", "/v1/cluster")
    assert status == 200, doc
    return {m["id"]: m.get("reachable") for m in doc["nodes"]}


def wait_reachability(node, member_id, want, timeout=5.0):
    deadline = time.monotonic() + timeout
    while (seen := reachability(node).get(member_id)) is not want:
        assert time.monotonic() < deadline, f"{node.id} sees member {member_id} as {seen}"
        time.sleep(0.1)


def test_leader_killed_new_leader_and_old_one_catches_up(cluster):
    old = cluster.wait_leader()
    survivors = [n for n in cluster.nodes if n is not old]
    # Every node reaches every other one (its admin address answers).
    for n in cluster.nodes:
        for m in cluster.nodes:
            wait_reachability(n, m.raft_id, True)
    old.kill()
    t0 = time.monotonic()
    new = cluster.wait_leader(timeout=3.0, nodes=survivors)
    assert time.monotonic() - t0 < 3.0
    assert new is not old
    # Writes through either survivor keep working (one of them forwards).
    via = next(n for n in survivors if n is not new)
    sluicelab.admin_write(via, "PUT", "/v1/secrets/after-failover", {"ref": "env:AFTER_FAILOVER"})
    sluicelab.admin_write(new, "PUT", "/v1/proxies/main/target-group",
                          {"connection_pool_config": {"max_connections_percent": 80}})
    for n in survivors:
        assert query_through(cluster, n)[2] == 42
        wait_reachability(n, old.raft_id, False)  # the survivors see the dead one as unreachable
    old.start()  # no --init-cluster: a restarted node never bootstraps again
    wait_converged(cluster.nodes)
    assert len({proxies_bytes(n) for n in cluster.nodes}) == 1
    status, _, doc = old.admin_json("GET", "/v1/secrets/after-failover")
    assert status == 200 and doc["ref"] == "env:AFTER_FAILOVER", doc
    cluster.wait_serving(timeout=5.0, nodes=[old])


def test_all_nodes_restarted_keep_the_configuration(cluster):
    wait_converged(cluster.nodes)
    before = proxies_bytes(cluster.nodes[0])
    secrets_before = cluster.nodes[0].admin_request("/v1/secrets")[2]
    for n in cluster.nodes:
        assert n.stop() == 0
    for n in cluster.nodes:
        n.start()
    cluster.wait_leader()
    wait_converged(cluster.nodes)
    for n in cluster.nodes:
        # Same bytes, revisions included: nothing was applied a second time.
        assert proxies_bytes(n) == before, n.id
        assert n.admin_request("/v1/secrets")[2] == secrets_before, n.id
    cluster.wait_serving(timeout=5.0)


def test_sluicectl_against_the_cluster(cluster):
    """sluicectl writes through a follower (forwarded), reads from another node, and reports an
    If-Match conflict as an API error."""
    import json
    import subprocess
    tool = Path(__file__).resolve().parents[2] / "admin" / "sluicectl"

    def ctl(node, *args):
        cmd = [str(tool), "--url", node.admin_url, "--token-file", str(node.admin_token_file), *args]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=30)

    n1, n2, n3 = cluster.nodes
    r = ctl(n2, "--json", "put", "secret", "ctl-secret", '{"ref": "env:SLUICECTL_TEST"}')
    assert r.returncode == 0, r.stderr
    rev = json.loads(r.stdout)["revision"]
    wait_converged(cluster.nodes)
    r = ctl(n3, "list", "secrets")
    assert r.returncode == 0 and "ctl-secret" in r.stdout and "env:SLUICECTL_TEST" in r.stdout
    r = ctl(n1, "put", "secret", "ctl-secret", '{"ref": "env:OTHER"}', "--if-match", str(rev + 100))
    assert r.returncode == 3 and "HTTP 412" in r.stderr
    r = ctl(n1, "cluster")
    assert r.returncode == 0 and r.stdout.startswith("leader: ") and "az-a" in r.stdout
    r = ctl(n3, "delete", "secret", "ctl-secret", "--if-match", str(rev))
    assert r.returncode == 0, r.stderr


def test_transfer_leadership_through_the_api(cluster):
    """POST /v1/cluster/transfer-leadership, sent to a follower (forwarded), hands leadership to the
    node it names; writes keep working afterwards."""
    old = cluster.wait_leader()
    target = next(n for n in cluster.nodes if n is not old)
    via = next(n for n in cluster.nodes if n is not old and n is not target) or target
    status, _, doc = via.admin_json("POST", "/v1/cluster/transfer-leadership", {"id": target.raft_id})
    assert status == 200, doc
    deadline = time.monotonic() + 5
    while cluster.leader() is not target:
        assert time.monotonic() < deadline, f"leadership did not move to {target.id}"
        time.sleep(0.05)
    sluicelab.admin_write(old, "PUT", "/v1/secrets/after-transfer", {"ref": "env:AFTER_TRANSFER"})
    wait_converged(cluster.nodes)
