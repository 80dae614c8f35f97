"""Helpers shared by the integration tests of the Raft cluster: a module-scoped three-node cluster
(started with --init-cluster, every node checked at teardown for sanitizer reports, a non-zero exit
and passwords in its log) and waiting for every node to apply the same index."""

from __future__ import annotations

import time

import pytest

import sluicelab


def run_cluster(state_dir, tls, mariadb, app_user, *, setup=None, **kw):
    """Generator for a module fixture: yields a started RaftCluster (after setup(cluster), if given).
    Random proxy port, not 6033: test files run in parallel. Nodes a test appends to
    cluster.extra_nodes are checked at teardown too."""
    c = sluicelab.RaftCluster(state_dir, nodes=3, tls=tls, db=mariadb, app_user=app_user.name,
                              proxy_port=sluicelab.free_port(), **kw)
    c.app_user = app_user
    c.extra_nodes = []
    c.state_dir.mkdir(parents=True, exist_ok=True)
    try:
        c.make_nodes()
        for n in c.nodes:
            n.start(init_cluster=True)
        if setup:
            setup(c)
    except sluicelab.LabError as e:
        c.stop()
        pytest.fail(str(e), pytrace=False)
    yield c
    problems = []
    for n in c.nodes + c.extra_nodes:
        n.stop()
        mine = n.problems(0)
        if mine:
            problems += mine + [f"{n.log_path} ends with:\n{n.log_tail(40)}"]
    if problems:
        pytest.fail("cluster teardown:\n" + "\n".join(problems), pytrace=False)


def wait_converged(nodes, timeout=10.0) -> int:
    """Wait until every node reports the same applied index; returns it."""
    deadline = time.monotonic() + timeout
    while True:
        applied = [(n.cluster_status() or {}).get("applied_index") for n in nodes]
        if None not in applied and len(set(applied)) == 1:
            return applied[0]
        assert time.monotonic() < deadline, f"applied indexes differ after {timeout} s: {applied}"
        time.sleep(0.05)
