"""pytest fixtures for the integration tests: a real MariaDB and real sluice nodes.

Each test file runs in its own pytest process (one ctest entry per file), so "session" scope means
one MariaDB per test file: it starts once (about a second) in a fresh temporary directory with TLS
and session tracking on, and is removed afterwards unless a test failed or SLUICE_KEEP_STATE=1.

Fixtures:
  lab_dir, tls, mariadb          session: state directory, TLS files, the MariaDB (sluicelab.MariaDB)
  app_user, sha2_user            session: database users 'app' and 'app_sha2' (both native in MariaDB;
                                 the proxy offers them MYSQL_NATIVE_PASSWORD / MYSQL_CACHING_SHA2_PASSWORD)
  sluice_node                    function: factory starting sluice nodes, stopped after the test
  module_sluice_node             module:   the same, stopped after the test file
  cclient                        path of the Connector/C test client (skips when it is not built)

The node factory:  node = sluice_node(users=[app_user, (sha2_user, sluicelab.AUTH_CACHING_SHA2)],
                                      pool={"max_connections_percent": 10}, proxies=None, **SluiceNode kw)
Teardown stops every node (SIGTERM, drain) and fails the test when a node's log holds a sanitizer report,
when it exited non-zero, or when it needed SIGKILL; the failure shows the log tail. Pass
allow_exit_status=N (or None for "anything") to accept a non-zero exit that a test provokes on purpose.
"""

from __future__ import annotations

import itertools
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lib"))
import sluicelab  # noqa: E402

REPO_ROOT = sluicelab.REPO_ROOT
_node_ids = itertools.count(1)


@pytest.fixture(scope="session")
def lab_dir(request):
    d = Path(tempfile.mkdtemp(prefix="sluice-integ-"))
    yield d
    if request.session.testsfailed == 0 and not os.environ.get("SLUICE_KEEP_STATE"):
        shutil.rmtree(d, ignore_errors=True)
    else:
        sys.stderr.write(f"\nintegration state (MariaDB data, node configs and logs) kept in {d}\n")


@pytest.fixture(scope="session")
def tls(lab_dir):
    return sluicelab.ensure_tls(lab_dir / "tls")


@pytest.fixture(scope="session")
def mariadb(lab_dir, tls):
    db = sluicelab.MariaDB(lab_dir, tls=tls, small=True, preferred_port=None,  # random: files run in parallel
                           max_connections=int(os.environ.get("SLUICE_TEST_MAX_CONNECTIONS", "200")))
    try:
        db.start()
    except sluicelab.LabError as e:
        db.stop()
        pytest.fail(f"could not start MariaDB: {e}", pytrace=False)
    yield db
    db.stop()


@pytest.fixture(scope="session")
def app_user(mariadb):
    return mariadb.create_user("app")


@pytest.fixture(scope="session")
def sha2_user(mariadb):
    return mariadb.create_user("app_sha2")


class NodeFactory:
    """Starts sluice nodes against the session MariaDB; finish() stops them and lists problems."""

    def __init__(self, lab_dir: Path, tls, db):
        self.lab_dir, self.tls, self.db = lab_dir, tls, db
        self.nodes = []

    def __call__(self, users=None, *, pool=None, proxies=None, start=True, allow_exit_status=0,
                 start_timeout=20.0, **kw) -> sluicelab.SluiceNode:
        if proxies is None:
            auth = []
            for u in users or []:
                auth.append(sluicelab.Auth(u) if isinstance(u, sluicelab.DBUser) else sluicelab.Auth(*u))
            if not auth:
                raise ValueError("sluice_node: give users=[...] or proxies=[...]")
            proxies = [sluicelab.ProxySpec("main", auth=auth, pool=dict(pool or {}))]
        for p in proxies:
            if p.port is None:
                p.port = sluicelab.free_port()  # random: test files run in parallel
        node = sluicelab.SluiceNode(self.lab_dir, index=next(_node_ids), proxies=proxies, tls=self.tls,
                                    db=self.db, **kw)
        node.allow_exit_status = allow_exit_status
        self.nodes.append(node)
        error = None
        if start:
            try:
                node.start(timeout=start_timeout)
            except sluicelab.LabError as e:
                error = str(e)
                node.allow_exit_status = None  # reported here already; teardown still checks sanitizers
        if error:
            pytest.fail(error, pytrace=False)
        return node

    def finish(self) -> list:
        problems = []
        for node in self.nodes:
            try:
                node.stop()
            except Exception as e:  # keep stopping the others
                problems.append(f"stopping {node.id} failed: {e}")
            mine = node.problems(getattr(node, "allow_exit_status", 0))
            if mine:
                problems += mine
                problems.append(f"{node.log_path} ends with:\n{node.log_tail(40)}")
        return problems


def _node_factory(lab_dir, tls, mariadb):
    f = NodeFactory(lab_dir, tls, mariadb)
    yield f
    problems = f.finish()
    if problems:
        pytest.fail("sluice node teardown:\n" + "\n".join(problems), pytrace=False)


@pytest.fixture
def sluice_node(lab_dir, tls, mariadb):
    yield from _node_factory(lab_dir, tls, mariadb)


@pytest.fixture(scope="module")
def module_sluice_node(lab_dir, tls, mariadb):
    yield from _node_factory(lab_dir, tls, mariadb)


@pytest.fixture(scope="session")
def cclient():
    """The Connector/C test client (tests/integ/cclient.c), as built by CMake."""
    env = os.environ.get("SLUICE_CCLIENT")
    if env:
        if not Path(env).exists():
            pytest.fail(f"SLUICE_CCLIENT={env} does not exist", pytrace=False)
        return Path(env)
    dirs = [os.environ.get("SLUICE_BUILD_DIR"), REPO_ROOT / "build-test", REPO_ROOT / "build"]
    for d in dirs:
        if d and (Path(d) / "tests" / "sluice_cclient").exists():
            return Path(d) / "tests" / "sluice_cclient"
    pytest.skip("sluice_cclient is not built (cmake --build BUILD --target sluice_cclient, or set SLUICE_CCLIENT)")


# ---------------------------------------------------------------------------------------------
# The interactive Connector/C client (tests/integ/cmdclient.c): one JSON answer per command.


class CmdClient:
    """A running sluice_cmdclient connected to host:port. Every method sends one command and returns
    its decoded JSON answer (a dict with "ok"; byte strings come back as latin-1 str: use b() to get
    the bytes). connect_info is the first line: {"ok", "thread_id", "server", "tls"} or the error."""

    def __init__(self, binary, host, port, user, password, *, ca_file=None, database="app",
                 charset=None, local_infile=True, multi=True, timeout=60.0):
        import subprocess
        cmd = [str(binary), "--host", host, "--port", str(port), "--user", user, "--password", password]
        if ca_file:
            cmd += ["--ca", str(ca_file)]
        if database:
            cmd += ["--database", database]
        if charset:
            cmd += ["--charset", charset]
        if not local_infile:
            cmd.append("--no-local-infile")
        if not multi:
            cmd.append("--no-multi")
        self.timeout = timeout
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
        self.connect_info = self._answer()
        self.ok = bool(self.connect_info.get("ok"))
        self.thread_id = self.connect_info.get("thread_id")

    @staticmethod
    def _escape(field) -> str:
        s = field.decode("latin-1") if isinstance(field, bytes) else str(field)
        return (s.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")
                .replace("\r", "\\r").replace("\0", "\\0"))

    def _answer(self) -> dict:
        import json
        import select
        ready, _, _ = select.select([self.proc.stdout], [], [], self.timeout)
        if not ready:
            raise TimeoutError(f"sluice_cmdclient gave no answer within {self.timeout} s")
        line = self.proc.stdout.readline()
        if not line:
            err = self.proc.stderr.read().decode(errors="replace") if self.proc.poll() is not None else ""
            raise EOFError(f"sluice_cmdclient ended (status {self.proc.poll()}): {err}")
        return json.loads(line)

    def send(self, *fields) -> dict:
        line = "\t".join(self._escape(f) for f in fields) + "\n"
        self.proc.stdin.write(line.encode("latin-1"))
        self.proc.stdin.flush()
        return self._answer()

    def query(self, sql) -> dict:
        return self.send("query", sql)

    def rows(self, sql) -> list:
        """Rows of the first result of a query that must succeed."""
        r = self.query(sql)
        assert r["ok"], f"{sql!r} failed: {r}"
        return r["results"][0]["rows"]

    def close(self, abrupt=False) -> None:
        """quit (COM_QUIT) or exit (the socket just closes); waits for the process."""
        if self.proc.poll() is None:
            try:
                self.send("exit" if abrupt else "quit")
            except (OSError, EOFError, TimeoutError):
                pass
            try:
                self.proc.stdin.close()
            except OSError:
                pass
            try:
                self.proc.wait(timeout=30)
            except Exception:
                self.proc.kill()
                self.proc.wait()
        for f in (self.proc.stdout, self.proc.stderr):
            f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    @staticmethod
    def b(value):
        return None if value is None else value.encode("latin-1")


@pytest.fixture(scope="session")
def cmdclient_bin():
    """The interactive Connector/C client (tests/integ/cmdclient.c), as built by CMake."""
    env = os.environ.get("SLUICE_CMDCLIENT")
    if env:
        if not Path(env).exists():
            pytest.fail(f"SLUICE_CMDCLIENT={env} does not exist", pytrace=False)
        return Path(env)
    dirs = [os.environ.get("SLUICE_BUILD_DIR"), REPO_ROOT / "build-test", REPO_ROOT / "build"]
    for var in ("SLUICE_CCLIENT", "SLUICE_BIN"):  # .../tests/sluice_cclient, .../node/sluice
        if os.environ.get(var):
            dirs.insert(0, Path(os.environ[var]).parent.parent)
    for d in dirs:
        if d and (Path(d) / "tests" / "sluice_cmdclient").exists():
            return Path(d) / "tests" / "sluice_cmdclient"
    pytest.skip("sluice_cmdclient is not built (cmake --build BUILD --target sluice_cmdclient, "
                "or set SLUICE_CMDCLIENT)")


# ---------------------------------------------------------------------------------------------
# Markers


def pytest_configure(config):
    # slow: long acceptance runs (e.g. sysbench for 30 s). They still run by default; deselect
    # them with -m "not slow".
    config.addinivalue_line("markers", "slow: long-running acceptance test (runs by default)")
