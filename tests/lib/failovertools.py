"""Shared by the managed-failover test and benchmark: a three-node cluster's proxy in front of a
tests/lib/replication.py ReplicationGroup with MANAGED failover, writing clients that record what
was acknowledged, and small admin-API readers."""

from __future__ import annotations

import threading
import time

import sluicelab
from clustertools import wait_converged

# What managed failover's database user needs (MariaDB 10.11; docs/failover.md).
ADMIN_GRANTS = ("RELOAD, READ_ONLY ADMIN, REPLICATION SLAVE ADMIN, REPLICATION MASTER ADMIN, "
                "SLAVE MONITOR, BINLOG MONITOR ON *.*",)


def setup_managed_proxy(c, group, app, admin, semi_sync_required=True, borrow_timeout=30):
    """Secrets (app, admin, replication), proxy "main", a MANAGED target group with transaction
    replay, targets db1..dbN (db1 the primary); then wait until every node serves it."""
    leader = c.wait_leader()
    for user in (app, admin, group.repl_user):
        sluicelab.admin_write(leader, "PUT", f"/v1/secrets/{user.name}",
                              {"ref": leader._secret_ref(user)})
    sluicelab.admin_write(leader, "PUT", "/v1/proxies/main", {
        "engine_family": "MYSQL", "listen_port": c.proxy_port, "require_tls": True,
        "auth": [{"auth_scheme": "SECRETS", "secret": app.name,
                  "client_password_auth_type": "MYSQL_NATIVE_PASSWORD"}]})
    sluicelab.admin_write(leader, "PUT", "/v1/proxies/main/target-group", {
        "connection_pool_config": {"max_connections_percent": 100,
                                   "connection_borrow_timeout": borrow_timeout,
                                   "transaction_replay": True},
        "failover": {"mode": "MANAGED", "admin_secret": admin.name,
                     "replication_secret": group.repl_user.name,
                     "require_semi_sync": semi_sync_required}})
    for i, db in enumerate(group.members, start=1):
        sluicelab.admin_write(leader, "POST", "/v1/proxies/main/targets",
                              {"id": f"db{i}", "host": db.host, "port": db.port,
                               "role": "READ_WRITE" if db is group.primary else "READ_ONLY"})
    for n in c.nodes:
        n.proxies.append(sluicelab.ProxySpec("main", port=c.proxy_port, host=n.data_address,
                                             auth=[sluicelab.Auth(app)]))
    wait_converged(c.nodes)
    c.wait_serving(timeout=20)


class Writers:
    """Clients running short write transactions (BEGIN; INSERT (client, seq) INTO table; COMMIT)
    through the nodes until stopped. acked[i]: sequence numbers acknowledged; times[i]: (start,
    end) of each; errors[i]: (time, MySQL code, text). A lost client connection (2006, 2013) ends
    that client with the exception recorded in lost."""

    def __init__(self, nodes, user, per_node, table, pause=0.05):
        self.clients = [n for n in nodes for _ in range(per_node)]
        self.user, self.table, self.pause = user, table, pause
        self.stop_event = threading.Event()
        self.acked = {i: [] for i in range(len(self.clients))}
        self.times = {i: [] for i in range(len(self.clients))}
        self.errors = {i: [] for i in range(len(self.clients))}
        self.lost = {}
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True)
                        for i in range(len(self.clients))]

    def start(self):
        for t in self.threads:
            t.start()
        return self

    def _run(self, i):
        import pymysql
        conn = self.clients[i].connect(self.user, autocommit=True, read_timeout=60)
        seq = 0
        while not self.stop_event.is_set():
            seq += 1
            started = time.monotonic()
            try:
                with conn.cursor() as cur:
                    cur.execute("BEGIN")
                    cur.execute(f"INSERT INTO {self.table} VALUES (%s, %s)", (i, seq))
                    cur.execute("COMMIT")
                self.acked[i].append(seq)
                self.times[i].append((started, time.monotonic()))
            except pymysql.err.MySQLError as e:
                self.errors[i].append((time.monotonic(), e.args[0], str(e)))
                if not isinstance(e, pymysql.err.OperationalError) or e.args[0] in (2006, 2013):
                    self.lost[i] = e
                    return
            time.sleep(self.pause)
        conn.close()

    def stop(self):
        self.stop_event.set()
        for t in self.threads:
            t.join(60)

    def first_commit_after(self, t0):
        """End time of the first transaction begun after t0 that committed, or None."""
        ends = [end for ts in self.times.values() for start, end in ts if start > t0]
        return min(ends) if ends else None

    def all_committed_after(self, t0):
        """When every client has committed a transaction begun after t0, or None."""
        firsts = []
        for ts in self.times.values():
            after = [end for start, end in ts if start > t0]
            if not after:
                return None
            firsts.append(min(after))
        return max(firsts)


def writer_doc(node):
    status, _, doc = node.admin_json("GET", "/v1/proxies/main/writer")
    assert status == 200, doc
    return doc


def events(node) -> list:
    status, _, doc = node.admin_json("GET", "/v1/events")
    assert status == 200, doc
    return doc["events"]
