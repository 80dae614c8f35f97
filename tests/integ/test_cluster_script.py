"""scripts/cluster with --replicas (issue 5): `up --detach --replicas 1` starts a primary and a
replica (GTID, semi-sync) behind three sluice nodes with MANAGED failover; cluster.json lists every
database host with its role and pid; a query through each node reaches the primary; killing the
primary moves the writer to the replica; `down` records the roles and stops everything; a later `up`
of the same state dir (without --replicas) brings the members back in their new roles."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.request

import pytest

import sluicelab
from pooltools import wait_for

SCRIPT = sluicelab.REPO_ROOT / "scripts" / "cluster"


@pytest.fixture(scope="module")
def state_dir(lab_dir):
    binary = sluicelab.sluice_binary()
    if not binary.exists():
        pytest.skip(f"no sluice binary at {binary} (build it, or set SLUICE_BIN)")
    d = lab_dir / "script-cluster"
    yield d
    run("down", "--state-dir", str(d))  # whatever happened


def run(*args, timeout=120):
    env = dict(os.environ, SLUICE_BIN=str(sluicelab.sluice_binary()))
    return subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout,
                          env=env, stdin=subprocess.DEVNULL)


def up(state_dir, *extra):
    r = run("up", "--detach", "--no-deps", "--no-build", "--state-dir", str(state_dir), *extra)
    assert r.returncode == 0, f"up failed:\n{r.stdout}\n{r.stderr}"
    return r, sluicelab.read_cluster_json(state_dir)


def admin_get(info, path, node=0):
    token = open(info["admin_token_file"]).read().strip()
    req = urllib.request.Request(info["nodes"][node]["admin_url"] + path,
                                 headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def query_each_node(info, sql_args=None):
    """(node id, @@port, @@read_only) through every node, after an INSERT through it."""
    pw = open(info["database"]["app_password_file"]).read().strip()
    port = info["proxies"][0]["port"]
    out = []
    for n in info["nodes"]:
        with sluicelab.connect(n["data_address"], port, info["database"]["app_user"], pw,
                               ca_file=info["tls_ca_file"]) as c, c.cursor() as cur:
            cur.execute("CREATE TABLE IF NOT EXISTS script_t (id INT AUTO_INCREMENT PRIMARY KEY, "
                        "node VARCHAR(16) NOT NULL)")
            cur.execute("INSERT INTO script_t (node) VALUES (%s)", (n["id"],))
            cur.execute("SELECT @@port, @@read_only")
            out.append((n["id"], *cur.fetchone()))
    return out


def count_rows(info, member):
    pw = open(info["database"]["app_password_file"]).read().strip()
    with sluicelab.connect(member["host"], member["port"], info["database"]["app_user"], pw,
                           ca_file=info["tls_ca_file"]) as c, c.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM script_t")
        return cur.fetchone()[0]


def member_runs(m):
    return sluicelab.pid_alive(m["pid"]) and "mariadbd" in sluicelab.pid_cmdline(m["pid"])


def test_up_with_a_replica_failover_down_and_up_again(state_dir):
    r, info = up(state_dir, "--replicas", "1", "--port", str(sluicelab.free_port()))
    assert "MariaDB db1 (primary)" in r.stdout and "MariaDB db2 (replica of db1)" in r.stdout

    # cluster.json: the primary as before, and every member with role and pid.
    db = info["database"]
    members = db["members"]
    assert [(m["name"], m["role"], m["source"]) for m in members] == \
        [("db1", "primary", None), ("db2", "replica", "db1")]
    assert db["port"] == members[0]["port"] and db["pid"] == members[0]["pid"]
    for m in members:
        assert member_runs(m), m
        assert str(state_dir / m["name"] / "mariadb" / "my.cnf") in sluicelab.pid_cmdline(m["pid"])
    assert info["replication"]["failover_mode"] == "MANAGED" and info["replication"]["replicas"] == 1

    # The proxy as the admin API has it: MANAGED failover, the primary READ_WRITE.
    tg = admin_get(info, "/v1/proxies/main/target-group")
    assert tg["failover"]["mode"] == "MANAGED" and tg["failover"]["require_semi_sync"] is True
    assert tg["connection_pool_config"]["transaction_replay"] is True
    targets = {t["id"]: (t["port"], t["role"]) for t in admin_get(info, "/v1/proxies/main/targets")}
    assert targets == {"db1": (members[0]["port"], "READ_WRITE"), "db2": (members[1]["port"], "READ_ONLY")}

    # Through every node to the primary; what is written reaches the replica.
    assert [(p, ro) for _, p, ro in query_each_node(info)] == [(members[0]["port"], 0)] * 3
    wait_for("the rows on the replica", lambda: count_rows(info, members[1]) == 3, timeout=10)

    st = run("status", "--json", "--state-dir", str(state_dir))
    assert st.returncode == 0, st.stdout + st.stderr
    dbs = {p["member"]: p for p in json.loads(st.stdout)["processes"] if p.get("member")}
    assert {k: (p["role"], p["alive"]) for k, p in dbs.items()} == \
        {"db1": ("primary", True), "db2": ("replica", True)}

    # Managed failover is on: kill -9 of the primary, sluice promotes db2.
    os.kill(members[0]["pid"], signal.SIGKILL)
    wait_for("every node to move the writer to db2",
             lambda: all(admin_get(info, "/v1/proxies/main/writer", i)["target"] == "db2"
                         for i in range(len(info["nodes"]))), timeout=20)
    assert [(p, ro) for _, p, ro in query_each_node(info)] == [(members[1]["port"], 0)] * 3

    r = run("down", "--state-dir", str(state_dir))
    assert r.returncode == 0, r.stderr
    assert not any(member_runs(m) for m in members)
    for n in info["nodes"]:
        assert not sluicelab.pid_alive(n["pid"]) or n["config_file"] not in sluicelab.pid_cmdline(n["pid"])
    saved = json.loads((state_dir / "replication.json").read_text())
    assert saved["primary"] == "db2"

    # The state dir keeps its kind of database.
    r = run("up", "--detach", "--no-deps", "--no-build", "--replicas", "0", "--state-dir", str(state_dir))
    assert r.returncode == 1 and "--fresh" in r.stderr, r.stderr

    # Up again: db2 is the primary, db1 (the killed primary) rejoins as its replica.
    t0 = time.monotonic()
    r, info = up(state_dir)
    members = info["database"]["members"]
    assert [(m["name"], m["role"], m["source"]) for m in members] == \
        [("db1", "replica", "db2"), ("db2", "primary", None)]
    assert info["database"]["port"] == members[1]["port"]
    assert all(member_runs(m) for m in members)
    assert [(p, ro) for _, p, ro in query_each_node(info)] == [(members[1]["port"], 0)] * 3
    wait_for("every row on the rejoined replica", lambda: count_rows(info, members[0]) == 9, timeout=10)
    print(f"\nsecond up took {time.monotonic() - t0:.1f} s")

    r = run("down", "--state-dir", str(state_dir))
    assert r.returncode == 0, r.stderr
    assert not any(member_runs(m) for m in members)
    for n in info["nodes"]:
        log = open(n["log_file"], errors="replace").read()
        assert sluicelab.sanitizer_report(log) is None, f"{n['log_file']}:\n{log[-4000:]}"
