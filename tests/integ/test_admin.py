"""The node's admin API as far as it exists without the Raft store: health (no token), stats and
Prometheus metrics (bearer token), errors as application/problem+json."""

from __future__ import annotations

import json

import pytest


@pytest.fixture(scope="module")
def node(module_sluice_node, app_user):
    return module_sluice_node(users=[app_user])


def test_health_needs_no_token(node):
    status, headers, body = node.admin_request("/v1/health", token=None)
    assert status == 200
    doc = json.loads(body)
    assert doc["status"] == "ok" and doc["ready"] is True and doc["node"] == node.id


def test_stats_need_the_token(node):
    status, headers, body = node.admin_request("/v1/stats", token=None)
    assert status == 401
    assert headers["Content-Type"].startswith("application/problem+json")
    assert headers["WWW-Authenticate"].startswith("Bearer")
    status, _, _ = node.admin_request("/v1/stats", token="not-the-token-0123456789")
    assert status == 401


def test_stats_and_metrics_count_the_data_path(node, app_user):
    before = json.loads(node.admin_request("/v1/stats")[2])
    with node.connect(app_user) as c, c.cursor() as cur:
        for _ in range(3):
            cur.execute("SELECT 1")
        cur.execute("SET @pinned = 1")  # a user variable pins the session
    with pytest.raises(Exception):
        node.connect(app_user.name, "wrong-password")
    status, headers, body = node.admin_request("/v1/stats")
    assert status == 200 and headers["Content-Type"].startswith("application/json")
    after = json.loads(body)
    assert after["client_connections"]["total"] - before["client_connections"]["total"] == 2
    assert after["auth_failures"] - before["auth_failures"] == 1
    assert after["queries"] - before["queries"] >= 3
    assert after["backend_connections"]["opened"] >= 1
    assert after["pins"]["user_variable"] - before["pins"]["user_variable"] == 1
    assert "raft" not in after  # no configuration store on a file-configured node

    status, headers, body = node.admin_request("/metrics")
    assert status == 200 and headers["Content-Type"].startswith("text/plain")
    text = body.decode()
    assert "# TYPE sluice_client_connections_total counter" in text
    total = [line for line in text.splitlines() if line.startswith("sluice_client_connections_total ")]
    assert total and int(total[0].split()[1]) == after["client_connections"]["total"]
    assert 'sluice_session_pins_total{reason="user_variable"} ' in text


def test_unknown_route_and_store_routes(node):
    status, headers, body = node.admin_request("/v1/nope")
    assert status == 404 and json.loads(body)["status"] == 404
    # Routes of the configuration store exist in the router but answer 501 until Raft is wired.
    status, headers, body = node.admin_request("/v1/proxies")
    assert status == 501
    assert "/v1/proxies" in json.loads(body)["detail"]
    # Only GET /v1/health is open; any other method needs the token, and then gets 405.
    status, _, _ = node.admin_request("/v1/health", method="DELETE", token=None)
    assert status == 401
    status, headers, _ = node.admin_request("/v1/health", method="DELETE")
    assert status == 405 and headers["Allow"] == "GET"


def sluicectl(node, *args, token=True):
    import subprocess
    from pathlib import Path
    tool = Path(__file__).resolve().parents[2] / "admin" / "sluicectl"
    cmd = [str(tool), "--url", node.admin_url]
    if token:
        cmd += ["--token-file", str(node.admin_token_file)]
    return subprocess.run(cmd + list(args), capture_output=True, text=True, timeout=30)


def test_sluicectl_health_and_stats(node):
    r = sluicectl(node, "health")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0].split() == ["status", "ready", "node", "version"]
    assert node.id in r.stdout
    r = sluicectl(node, "--json", "stats")
    assert r.returncode == 0, r.stderr
    assert "client_connections" in json.loads(r.stdout)
    r = sluicectl(node, "stats", token=False)
    assert r.returncode == 3 and "HTTP 401" in r.stderr  # API errors exit 3, with the reason


def test_connections_by_state_and_borrow_waits(sluice_node, app_user, mariadb):
    """With a pool of one connection held in a transaction, a second client's query waits: the stats
    show the waiting client, the holder idle between its statements, one backend in use, and the
    wait counted."""
    from pooltools import limits
    with limits(mariadb, 1) as (pct,):
        node = sluice_node(users=[app_user], pool={"max_connections_percent": pct,
                                                   "max_idle_connections_percent": pct,
                                                   "connection_borrow_timeout": 10})
        try:
            _by_state_scenario(node, app_user)
        finally:
            node.stop()


def _by_state_scenario(node, app_user):
    import threading
    import time
    holder, waiter = node.connect(app_user), node.connect(app_user)
    try:
        before = json.loads(node.admin_request("/v1/stats")[2])
        holder.begin()
        with holder.cursor() as cur:
            cur.execute("SELECT 1")
        t = threading.Thread(target=lambda: waiter.cursor().execute("SELECT 2"))
        t.start()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            st = json.loads(node.admin_request("/v1/stats")[2])
            if st["client_connections"]["by_state"]["waiting"] == 1:
                break
            time.sleep(0.05)
        assert st["client_connections"]["by_state"]["waiting"] == 1, st
        assert st["client_connections"]["by_state"]["idle"] == 1, st  # the holder, between queries
        assert st["backend_connections"]["by_state"]["in_use"] == 1, st
        assert st["borrow_waits"] - before["borrow_waits"] == 1, st
        holder.commit()
        t.join(10)
        text = node.admin_request("/metrics")[2].decode()
        assert 'sluice_backend_connections{state="in_use"}' in text
    finally:
        holder.close()
        waiter.close()
