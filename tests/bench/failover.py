#!/usr/bin/python3
"""failover: write unavailability and client-visible errors over repeated managed failovers.

Issue 5, acceptance item 7. The bench starts its own lab (tests/lib/): a MariaDB primary with
--replicas replicas (GTID, semi-synchronous replication AFTER_SYNC, tests/lib/replication.py) and
three sluice nodes whose proxy `main` has MANAGED failover and transaction replay
(tests/lib/failovertools.py, the same setup as tests/integ/test_failover_managed.py). Then:

  1. load: --writers clients per node run short write transactions (BEGIN; INSERT; COMMIT) in a
     loop, and --idle clients per node stay connected doing nothing;
  2. --rounds times: kill -9 the current primary; sluice detects it (health checks every 500 ms,
     two failures), promotes the most advanced replica, repoints the others and commits the new
     writer; the bench then brings the old primary back as a replica of the new one
     (init-rpl-role=SLAVE drops its unacknowledged tail) and waits until the new primary has
     semi-sync active again as the nodes see it (otherwise the next promotion is refused);
  3. at the end: every idle client runs SELECT 1; every acknowledged INSERT must be on the final
     primary.

Reported per round (printed, and as JSON to --out): seconds from the kill until every node
applied the new writer, until the first transaction begun after the kill committed (write
unavailability), and until every writing client has committed again; over the rounds p50 and
max; client-visible errors by MySQL error code, per round and in total; dropped client
connections (must be none); committed transactions per second over the whole run.
Exit status 0 when every check passed, 1 when one failed, 2 when the lab could not be set up.

The sluice binary: --sluice-bin, else $SLUICE_BIN, else <repo>/build/node/sluice. The test
suite's ASan/UBSan build is several times slower than a release-like one; clients, nodes and three
MariaDB servers share this machine's CPUs. This is a benchmark, not a test: nothing in it is a
timed assertion of the test suite.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[0] / "lib"))
import sluicelab  # noqa: E402
from failovertools import ADMIN_GRANTS, Writers, setup_managed_proxy, writer_doc  # noqa: E402
from replication import ReplicationGroup, wait_caught_up  # noqa: E402

DEFAULT_OUT = HERE / "results" / "failover.json"


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 epilog="See the module docstring for the method.")
    ap.add_argument("--quick", action="store_true", help="2 rounds, 3 writers and 3 idle per node")
    ap.add_argument("--rounds", type=int, help="failovers (default 5; 2 with --quick)")
    ap.add_argument("--writers", type=int, help="writing clients per node (default 10; 3 quick)")
    ap.add_argument("--idle", type=int, help="idle clients per node (default 10; 3 with --quick)")
    ap.add_argument("--replicas", type=int, default=2, help="replicas (default 2)")
    ap.add_argument("--sluice-bin", help="sluice binary (default: $SLUICE_BIN, else build/)")
    ap.add_argument("--out", default=str(DEFAULT_OUT), help=f"JSON report (default {DEFAULT_OUT})")
    ap.add_argument("--keep", action="store_true", help="keep the lab's state directory")
    a = ap.parse_args(argv)
    a.rounds = a.rounds or (2 if a.quick else 5)
    a.writers = a.writers or (3 if a.quick else 10)
    a.idle = a.idle if a.idle is not None else (3 if a.quick else 10)
    return a


def wait_until(what, cond, timeout):
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.05)
    return time.monotonic()


def semi_sync_seen(nodes, db) -> bool:
    needle = f'sluice_target_semi_sync{{target="{db.host}:{db.port}"}} 1'
    return all(needle in n.admin_request("/metrics")[2].decode() for n in nodes)


def pct(values, p):
    v = sorted(values)
    return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))] if v else None


def setup_lab(state_dir, args):
    tls = sluicelab.ensure_tls(state_dir / "tls")
    group = ReplicationGroup(state_dir / "rg", replicas=args.replicas, tls=tls)
    group.start()
    try:
        with group.primary.admin(database=group.primary.database) as c, c.cursor() as cur:
            cur.execute("CREATE TABLE fb (client INT NOT NULL, seq INT NOT NULL, "
                        "PRIMARY KEY (client, seq)) ENGINE=InnoDB")
        group.wait_all_caught_up()
        app = group.create_user("fb_app")
        admin = group.create_user("fb_admin", grants=ADMIN_GRANTS + ("ALL PRIVILEGES ON `{db}`.*",))
        binary = args.sluice_bin or os.environ.get("SLUICE_BIN") or None
        cluster = sluicelab.RaftCluster(state_dir / "raft", nodes=3, tls=tls, db=group.primary,
                                        app_user=app.name, proxy_port=sluicelab.free_port(),
                                        binary=binary)
        cluster.app_user = app  # what wait_serving logs in with (clustertools.run_cluster does it)
        cluster.state_dir.mkdir(parents=True, exist_ok=True)
        try:
            cluster.make_nodes()
            for n in cluster.nodes:
                n.start(init_cluster=True)
            setup_managed_proxy(cluster, group, app, admin)
        except BaseException:
            cluster.stop()
            raise
    except BaseException:
        group.stop()
        raise
    return group, cluster, app


def one_round(group, cluster, writers, number):
    nodes = cluster.nodes
    old = group.primary
    old_id = f"db{group.members.index(old) + 1}"
    t0 = time.monotonic()
    group.kill(old)
    t_switch = wait_until("every node to apply a new writer",
                          lambda: all(writer_doc(n)["target"] != old_id for n in nodes), 30)
    new_id = writer_doc(nodes[0])["target"]
    new = group.members[int(new_id[2:]) - 1]
    wait_until("a transaction begun after the kill to commit",
               lambda: writers.first_commit_after(t0) is not None, 30)
    wait_until("every writing client to commit again",
               lambda: writers.all_committed_after(t0) is not None, 30)
    # Bookkeeping of what sluice did, then the old primary back as a replica.
    group.primary = new
    for m in group.members:
        group.source[m] = None if m is new or m is old else new
    group.rejoin(old, new)
    for m in group.members:
        if m is not new:
            wait_caught_up(m, new, timeout=30)
    wait_until("the nodes to see semi-sync active on the new primary",
               lambda: semi_sync_seen(nodes, new), 30)
    first = writers.first_commit_after(t0) - t0
    every = writers.all_committed_after(t0) - t0
    sluicelab.say(f"  round {number}: {old_id} killed -> {new_id}; every node switched "
                  f"{t_switch - t0:.2f} s, first write {first:.2f} s, every writer {every:.2f} s")
    return {"killed": old_id, "new_writer": new_id, "switched_s": round(t_switch - t0, 3),
            "first_write_s": round(first, 3), "every_writer_s": round(every, 3),
            "t0": t0, "t_end": time.monotonic()}


def main(argv=None) -> int:
    args = parse_args(argv)
    state_dir = Path(tempfile.mkdtemp(prefix="sluice-bench-failover-"))
    try:
        group, cluster, app = setup_lab(state_dir, args)
    except Exception as e:
        print(f"failover: could not set up the lab: {e} (state in {state_dir})", file=sys.stderr)
        return 2
    ok = False
    report = {}
    try:
        nodes = cluster.nodes
        idle = [n.connect(app, autocommit=True) for n in nodes for _ in range(args.idle)]
        writers = Writers(nodes, app, per_node=args.writers, table="fb").start()
        t_start = time.monotonic()
        time.sleep(2.0)
        rounds = []
        failed_round = None
        with sluicelab.step(f"{args.rounds} failovers under {len(writers.clients)} writing and "
                            f"{len(idle)} idle clients"):
            for r in range(1, args.rounds + 1):
                try:
                    rounds.append(one_round(group, cluster, writers, r))
                except Exception as e:  # reported; the lab's state is unknown: stop here
                    sluicelab.say(f"  round {r} failed: {e}")
                    failed_round = {"round": r, "error": str(e)}
                    break
                time.sleep(1.0)
        t_stop = time.monotonic()
        writers.stop()
        idle_ok = 0
        for c in idle:
            with c.cursor() as cur:
                cur.execute("SELECT 1")
                idle_ok += cur.fetchone() == (1,)
            c.close()
        missing = 0
        with group.primary.admin(database=group.primary.database) as c, c.cursor() as cur:
            for i, seqs in writers.acked.items():
                cur.execute("SELECT seq FROM fb WHERE client = %s", (i,))
                have = {row[0] for row in cur.fetchall()}
                missing += sum(1 for s in seqs if s not in have)
        errors = collections.Counter(e[1] for errs in writers.errors.values() for e in errs)
        for rd in rounds:
            rd["errors"] = dict(collections.Counter(
                e[1] for errs in writers.errors.values() for e in errs
                if rd["t0"] <= e[0] <= rd["t_end"]))
            del rd["t0"], rd["t_end"]
        commits = sum(len(v) for v in writers.acked.values())
        checks = [("every round completed", failed_round is None and len(rounds) == args.rounds),
                  ("no client connection dropped", not writers.lost),
                  ("every idle client answers", idle_ok == len(idle)),
                  ("every acknowledged commit is on the final primary", missing == 0),
                  ("only retryable or outcome-unknown errors",
                   set(errors) <= {1180, 1213})]
        ok = all(c[1] for c in checks)
        def summary(key):
            vals = [rd[key] for rd in rounds]
            return {"p50": pct(vals, 50), "max": max(vals) if vals else None}
        report = {
            "bench": "failover", "sluice_bin": str(nodes[0].binary), "cpus": os.cpu_count(),
            "replicas": args.replicas, "writers": len(writers.clients), "idle": len(idle),
            "rounds": rounds, "failed_round": failed_round, "switched_s": summary("switched_s"),
            "first_write_s": summary("first_write_s"), "every_writer_s": summary("every_writer_s"),
            "errors": {str(k): v for k, v in sorted(errors.items())},
            "commits_per_s": round(commits / (t_stop - t_start), 1),
            "dropped_connections": len(writers.lost), "lost_acknowledged_commits": missing,
            "checks": [{"check": c[0], "ok": c[1]} for c in checks],
        }
        print(json.dumps({k: report[k] for k in ("switched_s", "first_write_s", "every_writer_s",
                                                 "errors", "commits_per_s")}, indent=2))
        for name, good in checks:
            print(f"  {'ok  ' if good else 'FAIL'} {name}")
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
        print(f"report written to {args.out}")
    finally:
        cluster.stop()
        group.stop()
        if args.keep or not ok:
            print(f"lab state kept in {state_dir}")
        else:
            shutil.rmtree(state_dir, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
