"""A three-node cluster whose admin API speaks HTTPS only: writes sent to a follower are forwarded
to the leader over TLS (the leader's certificate checked against admin.ca_file and against the
host of its admin URL), and every node serves what was written."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lib"))
from clustertools import run_cluster  # noqa: E402


@pytest.fixture(scope="module")
def cluster(lab_dir, tls, mariadb, app_user):
    yield from run_cluster(lab_dir / "raft-tls", tls, mariadb, app_user, admin_tls=True)


def test_writes_forwarded_over_tls_are_served_everywhere(cluster):
    leader = cluster.wait_leader()
    follower = next(n for n in cluster.nodes if n is not leader)
    assert follower.admin_url.startswith("https://")
    cluster.create_proxy(follower)  # every write goes follower -> leader over HTTPS
    cluster.wait_serving(timeout=5.0)
    for n in cluster.nodes:
        with n.connect(cluster.app_user, connect_timeout=5) as c, c.cursor() as cur:
            cur.execute("SELECT 40 + 2")
            assert cur.fetchone() == (42,)
    status, hdrs, doc = follower.admin_json("PUT", "/v1/secrets/over-tls", {"ref": "env:OVER_TLS"})
    assert status == 200 and hdrs.get("ETag"), (status, doc)
    # Plain HTTP is not served on the admin port.
    import urllib.error
    import urllib.request
    with pytest.raises((urllib.error.URLError, ConnectionError, OSError)):
        urllib.request.urlopen(f"http://127.0.0.1:{leader.admin_port}/v1/health", timeout=3).read()
