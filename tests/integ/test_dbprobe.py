"""The budget leader's database probes (budget/dbprobe.h) against a real MariaDB, through the
sluice_dbprobe driver (tests/integ/dbprobe_main.c: one probe, one JSON line, exit 0 when ok).

- monitor: @@max_connections as the database reports it;
- fence: kills every connection of the given users from one source address and leaves the others
  alone (connections come from 127.0.0.2 via pymysql's bind_address; the server runs with
  skip-name-resolve, so PROCESSLIST.HOST is 'ip:port'); one busy in a statement; with two users; with a user holding PROCESS
  (sees other users' threads, may not kill them); with a wrong password (fails, says access
  denied, the password appears nowhere); of an address without connections; against a server that
  never answers (bounded by the timeout);
- requests the API refuses (exit 2).

The driver binary: SLUICE_DBPROBE, else tests/sluice_dbprobe in the build directory next to
SLUICE_BIN / SLUICE_CCLIENT, SLUICE_BUILD_DIR, build-test or build.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pymysql
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lib"))
import sluicelab  # noqa: E402

FENCED_IP = "127.0.0.2"
OTHER_IP = "127.0.0.1"
TIMEOUT_MS = 5000
LOST = (pymysql.err.OperationalError, pymysql.err.InterfaceError)


@pytest.fixture(scope="session")
def dbprobe_bin():
    env = os.environ.get("SLUICE_DBPROBE")
    if env:
        if not Path(env).exists():
            pytest.fail(f"SLUICE_DBPROBE={env} does not exist", pytrace=False)
        return Path(env)
    dirs = [os.environ.get("SLUICE_BUILD_DIR"), sluicelab.REPO_ROOT / "build-test",
            sluicelab.REPO_ROOT / "build"]
    for var in ("SLUICE_CCLIENT", "SLUICE_BIN"):  # .../tests/sluice_cclient, .../node/sluice
        if os.environ.get(var):
            dirs.insert(0, Path(os.environ[var]).parent.parent)
    for d in dirs:
        if d and (Path(d) / "tests" / "sluice_dbprobe").exists():
            return Path(d) / "tests" / "sluice_dbprobe"
    pytest.skip("sluice_dbprobe is not built (cmake --build BUILD --target sluice_dbprobe, "
                "or set SLUICE_DBPROBE)")


class Probe:
    """One finished sluice_dbprobe run: result (the JSON line), status, stdout + stderr text."""

    def __init__(self, proc: subprocess.CompletedProcess, elapsed: float):
        self.status = proc.returncode
        self.stdout = proc.stdout.decode(errors="replace")
        self.stderr = proc.stderr.decode(errors="replace")
        self.output = self.stdout + self.stderr
        self.elapsed = elapsed
        lines = self.stdout.splitlines()
        self.result = json.loads(lines[0]) if lines else None

    def __repr__(self):
        return f"Probe(status={self.status}, stdout={self.stdout!r}, stderr={self.stderr[-2000:]!r})"


@pytest.fixture
def probe(dbprobe_bin, mariadb, tmp_path):
    """probe(users, fence_ip=None, host=..., port=..., timeout_ms=...) -> Probe. users: DBUser or
    (name, password) pairs. Fails the test on a sanitizer report."""

    def run(users, fence_ip=None, *, host="127.0.0.1", port=None, timeout_ms=TIMEOUT_MS,
            bind_ip=None):
        cmd = [str(dbprobe_bin), "--host", host, "--port", str(port or mariadb.port),
               "--timeout-ms", str(timeout_ms)]
        for i, u in enumerate(users):
            name, password = (u.name, u.password) if isinstance(u, sluicelab.DBUser) else u
            pf = sluicelab.write_private(tmp_path / f"probe-{i}.password", password + "\n")
            cmd += ["--user", name, "--password-file", str(pf)]
        if fence_ip is not None:
            cmd += ["--fence-ip", fence_ip]
        if bind_ip is not None:
            cmd += ["--bind-ip", bind_ip]
        env = dict(os.environ, ASAN_OPTIONS="detect_leaks=1:abort_on_error=1",
                   UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1")
        t0 = time.monotonic()
        proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, env=env,
                              timeout=60)
        p = Probe(proc, time.monotonic() - t0)
        report = sluicelab.sanitizer_report(p.stderr)
        if report:
            pytest.fail(f"sanitizer report from sluice_dbprobe:\n{report[:6000]}", pytrace=False)
        return p

    return run


def open_conns(mariadb, user, n, source):
    """n plain-TCP pymysql connections as user from source address source."""
    return [mariadb.connect(user, tls=False, bind_address=source) for _ in range(n)]


def hosts_of(mariadb, *users):
    """PROCESSLIST.HOST of the users' threads, as root sees them."""
    with mariadb.admin() as c, c.cursor() as cur:
        marks = ", ".join(["%s"] * len(users))
        cur.execute(f"SELECT HOST FROM information_schema.PROCESSLIST WHERE USER IN ({marks})",
                    [u.name for u in users])
        return [r[0] for r in cur.fetchall()]


def from_ip(hosts, ip):
    return [h for h in hosts if h.rsplit(":", 1)[0] == ip]


def busy_seen(mariadb, user) -> bool:
    """Whether one of user's threads is running SELECT SLEEP."""
    with mariadb.admin() as c, c.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = %s "
                    "AND INFO LIKE 'SELECT SLEEP%%'", (user.name,))
        return cur.fetchone()[0] == 1


def alive(conn) -> bool:
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 1")
            return cur.fetchone() == (1,)
    except LOST:
        return False


def close_all(conns):
    for c in conns:
        try:
            c.close()
        except Exception:  # already killed
            pass


def max_connections(mariadb) -> int:
    with mariadb.admin() as c, c.cursor() as cur:
        cur.execute("SELECT @@max_connections")
        return int(cur.fetchone()[0])


# --------------------------------------------------------------------------------------------


def test_monitor_reads_max_connections(probe, mariadb, app_user):
    p = probe([app_user])
    assert p.status == 0, p
    assert p.result == {"ok": True, "max_connections": max_connections(mariadb), "killed": 0,
                        "remaining": 0, "error": ""}, p
    assert "fence" not in p.stderr  # the per-fence log line is for fences only


def test_monitor_localhost_uses_tcp(probe, mariadb, app_user):
    # "localhost" would make Connector/C use the unix socket (which the driver does not know).
    p = probe([app_user], host="localhost")
    assert p.status == 0 and p.result["max_connections"] == max_connections(mariadb), p


def test_fence_kills_only_that_address(probe, mariadb):
    user = mariadb.create_user()
    fenced = open_conns(mariadb, user, 5, FENCED_IP)
    kept = open_conns(mariadb, user, 3, OTHER_IP)
    try:
        assert len(from_ip(hosts_of(mariadb, user), FENCED_IP)) == 5
        p = probe([user], FENCED_IP)
        assert p.status == 0, p
        assert p.result == {"ok": True, "max_connections": max_connections(mariadb), "killed": 5,
                            "remaining": 0, "error": ""}, p
        hosts = hosts_of(mariadb, user)
        assert from_ip(hosts, FENCED_IP) == [], hosts
        assert len(from_ip(hosts, OTHER_IP)) == 3, hosts
        assert all(alive(c) for c in kept)
        assert not any(alive(c) for c in fenced)
        # One structured line per fence, on stderr.
        line = [ln for ln in p.stderr.splitlines() if "fence done" in ln]
        assert len(line) == 1, p
        for field in (f"ip={FENCED_IP}", f"db=127.0.0.1:{mariadb.port}", "killed=5", "remaining=0",
                      "elapsed_ms="):
            assert field in line[0], line[0]
        assert user.password not in p.output
    finally:
        close_all(fenced + kept)


def test_fence_from_a_bound_address_kills_only_the_fenced_one(probe, mariadb):
    """The leader probes from its own data address: the fence must still match the fenced node's
    address, not the one it connects from (a regression: they once got mixed up)."""
    user = mariadb.create_user()
    fenced = open_conns(mariadb, user, 4, FENCED_IP)
    kept = open_conns(mariadb, user, 3, OTHER_IP)
    try:
        p = probe([user], FENCED_IP, bind_ip=OTHER_IP)
        assert p.status == 0 and p.result["killed"] == 4, p
        assert f"ip={FENCED_IP}" in p.stderr, p
        hosts = hosts_of(mariadb, user)
        assert from_ip(hosts, FENCED_IP) == [] and len(from_ip(hosts, OTHER_IP)) == 3, hosts
        assert all(alive(c) for c in kept)
    finally:
        close_all(fenced + kept)


def test_monitor_from_a_bound_address(probe, mariadb):
    # Binding to a local address works; an address that is not IPv4 is refused before anything runs.
    user = mariadb.create_user()
    p = probe([user], bind_ip=OTHER_IP)
    assert p.status == 0 and p.result["max_connections"] == max_connections(mariadb), p
    bad = probe([user], bind_ip="127.0.0.256")
    assert bad.status == 2, bad


def test_fence_busy_connection(probe, mariadb):
    # A connection in the middle of a statement is killed too (KILL interrupts SLEEP at once).
    user = mariadb.create_user()
    busy = open_conns(mariadb, user, 1, FENCED_IP)[0]
    outcome = []

    def sleeper():
        try:
            with busy.cursor() as cur:
                cur.execute("SELECT SLEEP(30)")
                outcome.append(cur.fetchone())
        except LOST as e:
            outcome.append(e)

    t = threading.Thread(target=sleeper, daemon=True)
    t.start()
    try:
        deadline = time.monotonic() + 10
        while not busy_seen(mariadb, user):
            assert time.monotonic() < deadline, "SLEEP never showed up in PROCESSLIST"
            time.sleep(0.05)
        p = probe([user], FENCED_IP)
        assert p.status == 0 and p.result["killed"] == 1 and p.result["remaining"] == 0, p
        t.join(10)
        # SLEEP() returns 1 when interrupted, or the client sees the connection go: either way it
        # did not run its 30 s.
        assert outcome and not t.is_alive(), outcome
        assert from_ip(hosts_of(mariadb, user), FENCED_IP) == []
    finally:
        close_all([busy])


def test_fence_two_users(probe, mariadb):
    a, b = mariadb.create_user(), mariadb.create_user()
    fenced = open_conns(mariadb, a, 2, FENCED_IP) + open_conns(mariadb, b, 3, FENCED_IP)
    kept = open_conns(mariadb, a, 1, OTHER_IP) + open_conns(mariadb, b, 1, OTHER_IP)
    try:
        p = probe([a, b], FENCED_IP)
        assert p.status == 0, p
        assert p.result["ok"] and p.result["killed"] == 5 and p.result["remaining"] == 0, p
        hosts = hosts_of(mariadb, a, b)
        assert from_ip(hosts, FENCED_IP) == [], hosts
        assert len(from_ip(hosts, OTHER_IP)) == 2, hosts
        assert all(alive(c) for c in kept)
    finally:
        close_all(fenced + kept)


def test_fence_user_with_process_privilege(probe, mariadb):
    # PROCESS shows every user's threads, but KILL of another user's thread needs CONNECTION ADMIN:
    # each user handles its own threads, so the others' neither fail the fence nor stall it.
    watcher = mariadb.create_user(grants=("ALL PRIVILEGES ON `{db}`.*", "PROCESS ON *.*"))
    other = mariadb.create_user()
    mine = open_conns(mariadb, watcher, 2, FENCED_IP)
    theirs = open_conns(mariadb, other, 2, FENCED_IP)
    try:
        p = probe([watcher], FENCED_IP)
        assert p.status == 0, p
        assert p.result["ok"] and p.result["killed"] == 2, p
        assert len(from_ip(hosts_of(mariadb, other), FENCED_IP)) == 2
        assert all(alive(c) for c in theirs)

        p = probe([watcher, other], FENCED_IP)
        assert p.status == 0 and p.result["killed"] == 2, p
        assert from_ip(hosts_of(mariadb, watcher, other), FENCED_IP) == []
    finally:
        close_all(mine + theirs)


def test_fence_wrong_password(probe, mariadb):
    bad, good = mariadb.create_user(), mariadb.create_user()
    wrong = sluicelab.random_password(32)
    conns = open_conns(mariadb, good, 2, FENCED_IP)
    try:
        p = probe([(bad.name, wrong), good], FENCED_IP)
        assert p.status == 1, p
        assert p.result["ok"] is False, p
        assert "access denied" in p.result["error"].lower(), p
        assert "1045" in p.result["error"] and bad.name in p.result["error"], p
        # The other user's threads could still be checked: they are fenced all the same.
        assert p.result["killed"] == 2, p
        assert from_ip(hosts_of(mariadb, good), FENCED_IP) == []
        for secret in (wrong, bad.password, good.password):
            assert secret not in p.output
        assert "fence failed" in p.stderr, p
    finally:
        close_all(conns)


def test_fence_address_without_connections(probe, mariadb, app_user):
    kept = open_conns(mariadb, app_user, 1, OTHER_IP)
    try:
        p = probe([app_user], "127.0.0.3")
        assert p.status == 0, p
        assert p.result == {"ok": True, "max_connections": max_connections(mariadb), "killed": 0,
                            "remaining": 0, "error": ""}, p
        assert alive(kept[0])
    finally:
        close_all(kept)


def test_silent_server_is_bounded_by_the_timeout(probe, app_user):
    # A listener that never accepts: TCP connects, the greeting never comes.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(4)
        p = probe([app_user], FENCED_IP, port=s.getsockname()[1], timeout_ms=500)
    assert p.status == 1 and p.result["ok"] is False and p.result["error"], p
    # Connector/C's timeouts are whole seconds: 500 ms rounds up to 1 s.
    assert p.elapsed < 3.0, p


@pytest.mark.parametrize("fence_ip", ["127.0.0.%", "127.0.0.1'", "::1", "host.example"])
def test_invalid_request_is_refused(probe, app_user, fence_ip):
    p = probe([app_user], fence_ip)
    assert p.status == 2 and p.result is None, p
    assert "refused" in p.stderr
