"""The admin API keeps the proxies sharing one database within its connections (issue 4): the
max_connections_percent of the proxies with a target at one host:port add up to at most 100, and a
write that would raise the sum above it is refused with 409 naming the database, the proxies and the
sum (docs/admin-api.md). Three real nodes and the session MariaDB; one cluster for the file, and the
tests run in order, each starting from the state the previous one left:

  1. proxies a (60 %) and b (40 %) with a target at the database are accepted and served;
  2. a third proxy c (1 %) gets no target there: 409 on the leader and through a follower, and
     nothing is stored on any node;
  3. raising a to 61 % is refused the same way and leaves its target group as it was;
  4. pointing b's target at another database frees b's 40 %: c's target is accepted, and a can go
     up to 99 % but not 100 %;
  5. the check reads the leader's applied state, so two writes in flight at once can each pass and
     together exceed 100 (documented); a write that lowers such a sum is accepted, one that raises
     it is not.
"""

from __future__ import annotations

import http.client
import json
import sys
import threading
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lib"))
import sluicelab  # noqa: E402
from clustertools import run_cluster, wait_converged  # noqa: E402


@pytest.fixture(scope="module")
def cluster(lab_dir, tls, mariadb, app_user):
    def setup(c):
        leader = c.wait_leader()
        sluicelab.admin_write(leader, "PUT", f"/v1/secrets/{app_user.name}",
                              {"ref": leader._secret_ref(app_user)})
    yield from run_cluster(lab_dir / "raft", tls, mariadb, app_user, setup=setup)


def write(node, method, path, body=None, timeout=10.0):
    """(status, JSON) of a write, sent again while the answer is 503 (an election)."""
    deadline = time.monotonic() + timeout
    while True:
        status, _, doc = node.admin_json(method, path, body)
        if status != 503 or time.monotonic() > deadline:
            return status, doc
        time.sleep(0.1)


def roles(cluster):
    leader = cluster.wait_leader()
    return leader, next(n for n in cluster.nodes if n is not leader)


def database(mariadb) -> str:
    return f"{mariadb.host}:{mariadb.port}".lower()


def create_proxy(cluster, via, name, percent, app_user):
    """Proxy `name` with its own listen port and `percent` as its max_connections_percent; no target
    yet. Every node learns how to connect to it (for cluster.serves)."""
    port = sluicelab.free_port()
    sluicelab.admin_write(via, "PUT", f"/v1/proxies/{name}", {
        "listen_port": port, "require_tls": True,
        "auth": [{"secret": app_user.name, "client_password_auth_type": sluicelab.AUTH_NATIVE}]})
    sluicelab.admin_write(via, "PUT", f"/v1/proxies/{name}/target-group", pool_of(percent))
    for n in cluster.nodes:
        n.proxies.append(sluicelab.ProxySpec(name, port=port, host=n.data_address,
                                             auth=[sluicelab.Auth(app_user)]))


def target_at(mariadb, port=None) -> dict:
    return {"id": "db1", "host": mariadb.host, "port": port or mariadb.port, "role": "READ_WRITE"}


def pool_of(percent) -> dict:
    return {"connection_pool_config": {"max_connections_percent": percent}}


def percent_of(node, name) -> int:
    status, _, doc = node.admin_json("GET", f"/v1/proxies/{name}/target-group")
    assert status == 200, doc
    return doc["connection_pool_config"]["max_connections_percent"]


def assert_refused(status, doc, mariadb, shares: dict):
    """409 naming the database, every proxy counted with its percentage, and their sum."""
    total = sum(shares.values())
    assert status == 409, (status, doc)
    assert doc["type"] == "about:blank" and doc["title"] == "Conflict", doc
    assert doc["database"] == database(mariadb), doc
    assert doc["sum"] == total, doc
    assert doc["proxies"] == shares, doc
    assert database(mariadb) in doc["detail"] and f"add up to {total}" in doc["detail"], doc
    for name, pct in shares.items():
        assert f"{name} {pct}%" in doc["detail"], doc


def test_shares_adding_up_to_100_are_accepted(cluster, mariadb, app_user):
    leader, follower = roles(cluster)
    create_proxy(cluster, leader, "a", 60, app_user)
    create_proxy(cluster, follower, "b", 40, app_user)
    assert write(leader, "POST", "/v1/proxies/a/targets", target_at(mariadb))[0] == 200
    status, doc = write(follower, "POST", "/v1/proxies/b/targets", target_at(mariadb))
    assert status == 200, doc
    wait_converged(cluster.nodes)
    deadline = time.monotonic() + 10
    for n in cluster.nodes:
        for name in ("a", "b"):
            while not cluster.serves(n, name):
                assert time.monotonic() < deadline, f"{n.id} does not serve {name}"
                time.sleep(0.05)


def test_a_third_share_is_refused_and_nothing_changes(cluster, mariadb, app_user):
    leader, follower = roles(cluster)
    create_proxy(cluster, leader, "c", 1, app_user)  # no target yet: no share, accepted
    applied = wait_converged(cluster.nodes)
    for via in (leader, follower):  # the follower relays the leader's answer
        status, doc = write(via, "POST", "/v1/proxies/c/targets", target_at(mariadb))
        assert_refused(status, doc, mariadb, {"a": 60, "b": 40, "c": 1})
    assert wait_converged(cluster.nodes) == applied  # nothing was proposed
    for n in cluster.nodes:
        status, _, doc = n.admin_json("GET", "/v1/proxies/c/targets")
        assert (status, doc) == (200, []), n.id


def test_raising_a_share_above_the_sum_is_refused(cluster, mariadb):
    leader, follower = roles(cluster)
    applied = wait_converged(cluster.nodes)
    for via in (follower, leader):
        status, doc = write(via, "PUT", "/v1/proxies/a/target-group", pool_of(61))
        assert_refused(status, doc, mariadb, {"a": 61, "b": 40})
    assert wait_converged(cluster.nodes) == applied
    assert {percent_of(n, "a") for n in cluster.nodes} == {60}
    # Writes that do not raise the sum still pass: the same percentage, other pool settings.
    status, doc = write(leader, "PUT", "/v1/proxies/a/target-group",
                        {"connection_pool_config": {"max_connections_percent": 60,
                                                    "connection_borrow_timeout": 30}})
    assert status == 200, doc


def test_moving_a_target_to_another_database_frees_its_share(cluster, mariadb):
    leader, follower = roles(cluster)
    elsewhere = sluicelab.free_port()  # another database as far as the rule goes (none listens)
    status, doc = write(follower, "POST", "/v1/proxies/b/targets", target_at(mariadb, elsewhere))
    assert status == 200, doc
    status, doc = write(follower, "POST", "/v1/proxies/c/targets", target_at(mariadb))
    assert status == 200, doc  # 60 + 1
    status, doc = write(leader, "PUT", "/v1/proxies/a/target-group", pool_of(99))
    assert status == 200, doc  # 99 + 1
    status, doc = write(leader, "PUT", "/v1/proxies/a/target-group", pool_of(100))
    assert_refused(status, doc, mariadb, {"a": 100, "c": 1})
    wait_converged(cluster.nodes)
    assert {percent_of(n, "a") for n in cluster.nodes} == {99}
    # b alone at the other database: 40 % there, nothing refused.
    status, doc = write(leader, "PUT", "/v1/proxies/b/target-group", pool_of(100))
    assert status == 200, doc


def at_once(node, writes):
    """Send the writes [(method, path, body)] to node at the same moment, each on a connection
    opened beforehand; returns [(status, JSON)] in the same order."""
    token = node.admin_token_file.read_text().strip()
    conns = [http.client.HTTPConnection("127.0.0.1", node.admin_port, timeout=30) for _ in writes]
    for c in conns:
        c.connect()
    start = threading.Barrier(len(writes))
    results = [None] * len(writes)

    def send(i):
        method, path, body = writes[i]
        start.wait()
        conns[i].request(method, path, body=json.dumps(body),
                         headers={"Authorization": f"Bearer {token}",
                                  "Content-Type": "application/json"})
        r = conns[i].getresponse()
        results[i] = (r.status, json.loads(r.read()))

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(writes))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for c in conns:
        c.close()
    return results


def test_writes_in_flight_together_can_exceed_and_then_only_come_down(cluster, mariadb):
    leader, _ = roles(cluster)
    away = target_at(mariadb, sluicelab.free_port())
    for _ in range(5):
        # At the database: a 50 + c 1; b 30 elsewhere. Alone, a -> 80 (81) and b's target moving
        # here (81) both fit; together they make 111.
        for method, path, body in (("PUT", "/v1/proxies/a/target-group", pool_of(50)),
                                   ("PUT", "/v1/proxies/b/target-group", pool_of(30)),
                                   ("POST", "/v1/proxies/b/targets", away)):
            assert write(leader, method, path, body)[0] == 200
        wait_converged(cluster.nodes)
        answers = at_once(leader, [("PUT", "/v1/proxies/a/target-group", pool_of(80)),
                                   ("POST", "/v1/proxies/b/targets", target_at(mariadb))])
        statuses = sorted(status for status, _ in answers)
        assert statuses in ([200, 200], [200, 409]), answers
        if statuses == [200, 200]:
            break
    else:
        pytest.fail("the two writes were never in flight at the same time in 5 tries "
                    "(each is checked before the other commits when they arrive together)")
    wait_converged(cluster.nodes)
    status, doc = write(leader, "PUT", "/v1/proxies/a/target-group", pool_of(81))
    assert_refused(status, doc, mariadb, {"a": 81, "b": 30, "c": 1})  # 112 > 111
    status, doc = write(leader, "PUT", "/v1/proxies/a/target-group", pool_of(75))
    assert status == 200, doc  # 106: still above 100, but lower
    status, doc = write(leader, "POST", "/v1/proxies/b/targets", away)
    assert status == 200, doc  # a target leaving only lowers the sum
