#!/usr/bin/python3
"""sluicelab: run the pieces of a local sluice deployment (TLS files, MariaDB, sluice nodes).

Used by scripts/cluster (the demo cluster) and tests/integ/conftest.py (pytest fixtures).
Standard library + PyMySQL only; run with /usr/bin/python3 (Debian's python3-pymysql).

Everything lives under one state directory DIR:

    DIR/tls/ca.pem, ca-key.pem, server.pem, server-key.pem   generated with the openssl CLI
    DIR/mariadb/my.cnf, data/, mariadb.sock, mariadb.pid, error.log, admin.password
    DIR/secrets/<user>.json, DIR/<user>.password               (0600)
    DIR/nodeN.json (config), nodeN.log (stderr), nodeN.pid
    DIR/cluster.json                                           written by scripts/cluster

Nothing here is a system service: processes are started detached (own session) and stopped by pid.
"""

from __future__ import annotations

import json
import os
import random
import secrets
import shutil
import signal
import socket
import string
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence, Union

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_SLUICE_BIN = REPO_ROOT / "build" / "node" / "sluice"

# Lines that mean a sanitizer fired in a sluice (or test helper) process.
SANITIZER_MARKERS = (
    "ERROR: AddressSanitizer",
    "runtime error:",
    "LeakSanitizer",
    "ERROR: ThreadSanitizer",
    "SUMMARY: UndefinedBehaviorSanitizer",
)

AUTH_NATIVE = "MYSQL_NATIVE_PASSWORD"
AUTH_CACHING_SHA2 = "MYSQL_CACHING_SHA2_PASSWORD"

# Progress messages go to stderr; callers (e.g. quiet tools) may turn them off.
VERBOSE = True


class LabError(RuntimeError):
    """Something in the lab failed to start or stop; the message says what and shows log tails."""


# --------------------------------------------------------------------------------------------
# small helpers


def say(msg: str, end: str = "\n") -> None:
    if VERBOSE:
        sys.stderr.write(msg + end)
        sys.stderr.flush()


class step:
    """Context manager printing "doing X ... ready (2.1 s)" / "... FAILED (0.3 s)"."""

    def __init__(self, what: str, ok: str = "done"):
        self.what, self.ok = what, ok

    def __enter__(self):
        self.t0 = time.monotonic()
        say(f"{self.what} ...", end=" ")
        return self

    def __exit__(self, exc_type, exc, tb):
        dt = time.monotonic() - self.t0
        say(f"{'FAILED' if exc_type else self.ok} ({dt:.1f} s)")
        return False


def random_password(n: int = 24) -> str:
    """Alphanumeric only, so it can be pasted into a shell command line unquoted."""
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(n))


def random_name(prefix: str = "u") -> str:
    return prefix + "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(8))


def write_private(path: Union[str, Path], text: str) -> Path:
    """Write a file readable by its owner only (0600), replacing any previous content."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, text.encode())
    finally:
        os.close(fd)
    return path


def tail(path: Union[str, Path], lines: int = 40) -> str:
    try:
        data = Path(path).read_text(errors="replace").splitlines()
    except OSError as e:
        return f"(cannot read {path}: {e})"
    return "\n".join(data[-lines:])


def port_bindable(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


_handed_out: set = set()


def free_port(preferred: Optional[int] = None, host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on: `preferred` if it is free, else a random one in 20000..32767
    (below Linux's ephemeral range, so outgoing connections do not grab it in the meantime).
    Ports handed out by this process are not handed out twice."""
    if preferred and preferred not in _handed_out and port_bindable(preferred, host):
        _handed_out.add(preferred)
        return preferred
    for _ in range(500):
        p = random.randint(20000, 32767)
        if p not in _handed_out and port_bindable(p, host):
            _handed_out.add(p)
            return p
    raise LabError("no free TCP port found in 20000..32767")


def port_answers(port: int, host: str = "127.0.0.1", timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def pid_alive(pid: Optional[int]) -> bool:
    """True when pid exists and is not a zombie."""
    if not pid or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        state = stat[stat.rindex(")") + 2]
        return state not in ("Z", "X")
    except (OSError, ValueError, IndexError):
        return True


def pid_cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def read_pid_file(path: Union[str, Path]) -> Optional[int]:
    try:
        return int(Path(path).read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def stop_pid(pid: int, timeout: float, proc: Optional[subprocess.Popen] = None,
             sig: int = signal.SIGTERM) -> Optional[int]:
    """Send `sig`, wait up to `timeout` s, then SIGKILL. Returns the exit status when `proc` (our
    child) is given, else None. Returns at once if the process is already gone."""
    if proc is not None and proc.poll() is not None:
        return proc.returncode
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return proc.wait() if proc is not None else None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None:
            if proc.poll() is not None:
                return proc.returncode
        elif not pid_alive(pid):
            return None
        time.sleep(0.05)
    say(f"  pid {pid} still running after {timeout:.0f} s, sending SIGKILL")
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    if proc is not None:
        return proc.wait(timeout=10)
    for _ in range(200):
        if not pid_alive(pid):
            break
        time.sleep(0.05)
    return None


def find_program(name: str, *extra: str) -> str:
    for cand in (name, *extra):
        p = shutil.which(cand) or shutil.which(cand, path="/usr/sbin:/sbin:/usr/bin:/bin")
        if p:
            return p
    raise LabError(f"{name} not found (run scripts/install-deps)")


# --------------------------------------------------------------------------------------------
# TLS


@dataclass
class TLSFiles:
    dir: Path

    @property
    def ca_file(self) -> Path:
        return self.dir / "ca.pem"

    @property
    def ca_key_file(self) -> Path:
        return self.dir / "ca-key.pem"

    @property
    def cert_file(self) -> Path:
        return self.dir / "server.pem"

    @property
    def key_file(self) -> Path:
        return self.dir / "server-key.pem"

    def exists(self) -> bool:
        return all(p.exists() for p in (self.ca_file, self.ca_key_file, self.cert_file, self.key_file))


_SERVER_EXT = """[v3]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1,IP:127.0.0.2,IP:127.0.0.3,IP:127.0.0.4,IP:127.0.0.5,DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
"""


def _cert_has_ip(cert: Path, ip: str) -> bool:
    r = subprocess.run([find_program("openssl"), "x509", "-in", str(cert), "-noout", "-ext",
                        "subjectAltName"], capture_output=True, text=True)
    return r.returncode == 0 and f"IP Address:{ip}" in r.stdout


def ensure_tls(tls_dir: Union[str, Path]) -> TLSFiles:
    """A CA and a server certificate (ECDSA P-256, SAN IP:127.0.0.1..127.0.0.5, the data addresses
    of cluster nodes, + DNS:localhost) in tls_dir; existing files are reused when their certificate
    has those SANs."""
    t = TLSFiles(Path(tls_dir))
    if t.exists() and _cert_has_ip(t.cert_file, "127.0.0.5"):
        return t
    t.dir.mkdir(parents=True, exist_ok=True)
    openssl = find_program("openssl")

    def run(*args: str) -> None:
        r = subprocess.run([openssl, *args], cwd=t.dir, capture_output=True, text=True)
        if r.returncode != 0:
            raise LabError(f"openssl {' '.join(args)} failed:\n{r.stderr.strip()}")

    with step(f"generating TLS CA and server certificate in {t.dir}"):
        old = os.umask(0o077)
        try:
            ec = ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"]
            run("genpkey", *ec, "-out", t.ca_key_file.name)
            run("req", "-x509", "-new", "-key", t.ca_key_file.name, "-sha256", "-days", "3650",
                "-subj", "/CN=sluice lab CA", "-addext", "basicConstraints=critical,CA:TRUE",
                "-addext", "keyUsage=critical,keyCertSign,cRLSign", "-out", t.ca_file.name)
            run("genpkey", *ec, "-out", t.key_file.name)
            run("req", "-new", "-key", t.key_file.name, "-subj", "/CN=localhost", "-out", "server.csr")
            (t.dir / "server-ext.cnf").write_text(_SERVER_EXT)
            run("x509", "-req", "-in", "server.csr", "-CA", t.ca_file.name, "-CAkey", t.ca_key_file.name,
                "-set_serial", "0x" + secrets.token_hex(16), "-days", "825", "-sha256",
                "-extfile", "server-ext.cnf", "-extensions", "v3", "-out", t.cert_file.name)
        finally:
            os.umask(old)
        for f in ("server.csr", "server-ext.cnf"):
            (t.dir / f).unlink(missing_ok=True)
        os.chmod(t.ca_file, 0o644)
        os.chmod(t.cert_file, 0o644)
    return t


# --------------------------------------------------------------------------------------------
# MariaDB


@dataclass
class DBUser:
    name: str
    password: str
    password_file: Optional[Path] = None


class MariaDB:
    """One mariadbd under DIR/mariadb, TCP on 127.0.0.1:port, TLS and session tracking on.

    With server_id=N the instance can be a member of a replication group (tests/lib/replication.py):
    binary log on (ROW, log_slave_updates, GTID strict mode, binlog and relay log named explicitly
    inside its datadir), report_host/report_port, semi-sync (master and slave sides enabled,
    wait point AFTER_SYNC, timeout semi_sync_timeout_ms), skip_slave_start. Without server_id
    (the default) the binary log stays off, exactly as before. extra_settings still override
    everything (replication.py uses them for the role: read_only, rpl_semi_sync_master_enabled)."""

    admin_user = "root"

    def __init__(self, state_dir: Union[str, Path], *, tls: TLSFiles, port: Optional[int] = None,
                 max_connections: int = 200, database: str = "app",
                 extra_settings: Optional[dict] = None, small: bool = False,
                 preferred_port: Optional[int] = 13306, server_id: Optional[int] = None,
                 semi_sync_timeout_ms: int = 10000):
        self.state_dir = Path(state_dir)
        self.dir = self.state_dir / "mariadb"
        self.datadir = self.dir / "data"
        self.cnf = self.dir / "my.cnf"
        self.pid_file = self.dir / "mariadb.pid"
        self.error_log = self.dir / "error.log"
        self.admin_password_file = self.dir / "admin.password"
        self.socket = self.dir / "mariadb.sock"
        if len(str(self.socket)) > 100:  # sun_path is 108 bytes
            self.socket = Path(f"/tmp/sluicelab-{abs(hash(str(self.dir))) & 0xffffffff:08x}.sock")
        self.tls = tls
        self.host = "127.0.0.1"
        self.port = port
        self._port_given = port is not None
        self.preferred_port = preferred_port  # tried first when port is None (None: a random free one)
        self.max_connections = max_connections
        self.database = database
        self.extra_settings = dict(extra_settings or {})
        self.small = small  # smaller InnoDB files for the tests
        self.server_id = server_id  # None: standalone, no binary log
        self.semi_sync_timeout_ms = semi_sync_timeout_ms
        self.proc: Optional[subprocess.Popen] = None
        self.pid: Optional[int] = None

    # -- configuration

    def _settings(self) -> dict:
        s = {
            "datadir": self.datadir,
            "socket": self.socket,
            "pid-file": self.pid_file,
            "log-error": self.error_log,
            "port": self.port,
            "bind-address": "127.0.0.1",
            "skip-name-resolve": None,
            "skip-log-bin": None,
            "character-set-server": "utf8mb4",
            "collation-server": "utf8mb4_general_ci",
            "ssl-ca": self.tls.ca_file,
            "ssl-cert": self.tls.cert_file,
            "ssl-key": self.tls.key_file,
            # Session tracking is left at the server's defaults on purpose: sluice turns it on for
            # its own connections, and tests must show that it does (and redoes it after resets).
            "tmpdir": self.dir,  # MariaDB's temporary files stay in the state dir
            "max_connections": self.max_connections,
            "local_infile": "ON",
            "max_allowed_packet": "1G",
            "innodb_flush_log_at_trx_commit": 2,
        }
        if self.small:
            s.update({"innodb_buffer_pool_size": "64M", "innodb_log_file_size": "16M"})
        if self.server_id is not None:
            s.pop("skip-log-bin")
            s.update(self._replication_settings())
        if os.geteuid() == 0:
            s["user"] = "root"  # mariadbd refuses to run as root otherwise
        s.update(self.extra_settings)
        return s

    def _replication_settings(self) -> dict:
        """Settings of a replication group member (server_id given). Names are explicit rather than
        log_basename: log_basename also resets pid-file and log-error when it comes after them."""
        return {
            "server_id": self.server_id,
            "log-bin": "mariadb-bin",  # relative: inside datadir
            "log-bin-index": "mariadb-bin.index",
            "relay-log": "mariadb-relay-bin",  # default would contain the host name
            "relay-log-index": "mariadb-relay-bin.index",
            "binlog_format": "ROW",
            "log_slave_updates": "ON",
            "gtid_strict_mode": "ON",
            "report_host": self.host,
            "report_port": self.port,
            "rpl_semi_sync_master_enabled": "ON",
            "rpl_semi_sync_slave_enabled": "ON",
            "rpl_semi_sync_master_timeout": self.semi_sync_timeout_ms,
            "rpl_semi_sync_master_wait_point": "AFTER_SYNC",
            # replication starts when the lab says so (START SLAVE), not on every restart
            "skip_slave_start": None,
        }

    @property
    def binlog(self) -> bool:
        """True when this instance writes a binary log (a replication group member)."""
        return self.server_id is not None

    def write_cnf(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        lines = ["# written by tests/lib/sluicelab.py", "[mariadbd]"]
        for k, v in self._settings().items():
            lines.append(k if v is None else f"{k} = {v}")
        lines += ["", "[client]", f"socket = {self.socket}", f"port = {self.port}", ""]
        self.cnf.write_text("\n".join(lines))

    @property
    def admin_password(self) -> str:
        return self.admin_password_file.read_text().strip()

    def installed(self) -> bool:
        return (self.datadir / "mysql").is_dir()

    # -- lifecycle

    def install(self) -> None:
        if self.installed():
            return
        self.admin_password_file.unlink(missing_ok=True)  # stale: belongs to a removed datadir
        if self.port is None:
            self.port = free_port(self.preferred_port)
        self.write_cnf()
        self.datadir.mkdir(parents=True, exist_ok=True)
        cmd = [find_program("mariadb-install-db", "mysql_install_db"), f"--defaults-file={self.cnf}",
               f"--datadir={self.datadir}", "--auth-root-authentication-method=normal",
               "--skip-test-db"]
        if os.geteuid() == 0:
            cmd.append("--user=root")
        log = self.dir / "install.log"
        with step(f"initialising MariaDB data directory {self.datadir}"):
            with open(log, "w") as f:
                r = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            if r.returncode != 0:
                raise LabError(f"mariadb-install-db failed (exit {r.returncode}); {log}:\n{tail(log)}")

    def start(self, timeout: float = 60.0) -> "MariaDB":
        self.install()
        for attempt in range(4):
            if self.port is None or (attempt > 0 and not self._port_given):
                self.port = free_port(self.preferred_port if attempt == 0 else None)
            self.write_cnf()
            log_size = self.error_log.stat().st_size if self.error_log.exists() else 0
            try:
                self._start_once(timeout, log_size)
                break
            except LabError as e:
                new_log = self._log_since(log_size)
                if self._port_given or attempt == 3 or "already in use" not in new_log:
                    raise
                say(f"  port {self.port} was taken meanwhile, retrying on another ({e.__class__.__name__})")
        if self.binlog:
            self._port_given = True  # replicas point at this port: a restart must keep it
        self._bootstrap()
        return self

    def _log_since(self, offset: int) -> str:
        try:
            with open(self.error_log, "rb") as f:
                f.seek(offset)
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def _start_once(self, timeout: float, log_offset: int) -> None:
        mariadbd = find_program("mariadbd", "mysqld")
        self.pid_file.unlink(missing_ok=True)
        with step(f"starting MariaDB on 127.0.0.1:{self.port}", ok="ready"):
            with open(self.dir / "mariadbd.out", "ab") as out:
                self.proc = subprocess.Popen([mariadbd, f"--defaults-file={self.cnf}"],
                                             stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                             start_new_session=True, close_fds=True)
            self.pid = self.proc.pid
            deadline = time.monotonic() + timeout
            while True:
                if self.proc.poll() is not None:
                    code = self.proc.returncode
                    self.proc = None
                    raise LabError(f"mariadbd exited with status {code} while starting; "
                                   f"{self.error_log}:\n{self._log_since(log_offset)[-4000:]}")
                if self._ping():
                    return
                if time.monotonic() > deadline:
                    self.stop()
                    raise LabError(f"MariaDB did not answer within {timeout:.0f} s; "
                                   f"{self.error_log}:\n{tail(self.error_log)}")
                time.sleep(0.1)

    def _ping(self) -> bool:
        import pymysql
        pws = [self.admin_password] if self.admin_password_file.exists() else [""]
        for pw in pws:
            try:
                c = pymysql.connect(unix_socket=str(self.socket), user="root", password=pw,
                                    connect_timeout=2)
                c.close()
                return True
            except pymysql.err.OperationalError as e:
                if e.args and e.args[0] == 1045:  # access denied: it answers
                    return True
            except OSError:
                pass
        return False

    def _bootstrap(self) -> None:
        """First start: give root a random password (also root@127.0.0.1 for TCP), drop anonymous and
        passwordless accounts, create the test database. Later starts: just make sure the database exists.
        With a binary log (server_id given) none of this is logged (sql_log_bin=0): every member of a
        replication group bootstraps itself, and a restart must not add a GTID of its own."""
        import pymysql
        if not self.admin_password_file.exists():
            pw = random_password()
            c = pymysql.connect(unix_socket=str(self.socket), user="root", password="", autocommit=True)
            with c.cursor() as cur:
                if self.binlog:
                    cur.execute("SET SESSION sql_log_bin = 0")
                cur.execute("SELECT User, Host FROM mysql.user WHERE User = '' OR "
                            "(User = 'root' AND Host NOT IN ('localhost', '127.0.0.1'))")
                for user, host in cur.fetchall():
                    cur.execute("DROP USER %s@%s", (user, host))
                cur.execute("CREATE USER IF NOT EXISTS 'root'@'127.0.0.1'")
                for host in ("localhost", "127.0.0.1"):
                    cur.execute("ALTER USER 'root'@%s IDENTIFIED VIA mysql_native_password USING PASSWORD(%s)",
                                (host, pw))
                cur.execute("GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION")
                cur.execute("FLUSH PRIVILEGES")
            c.close()
            write_private(self.admin_password_file, pw + "\n")
        with self.admin() as c, c.cursor() as cur:
            if self.binlog:
                cur.execute("SET SESSION sql_log_bin = 0")
            cur.execute(f"CREATE DATABASE IF NOT EXISTS `{self.database}` CHARACTER SET utf8mb4")

    def running(self) -> bool:
        if self.proc is not None:
            return self.proc.poll() is None
        pid = self.pid or read_pid_file(self.pid_file)
        return pid_alive(pid) and "mariadbd" in pid_cmdline(pid)

    def stop(self, timeout: float = 60.0) -> None:
        pid = self.pid or read_pid_file(self.pid_file)
        if not pid or not pid_alive(pid):
            self.proc, self.pid = None, None
            return
        if self.proc is None and str(self.cnf) not in pid_cmdline(pid):
            say(f"  pid {pid} is not our mariadbd ({pid_cmdline(pid)!r}); not stopping it")
            return
        with step(f"stopping MariaDB (pid {pid})"):
            stop_pid(pid, timeout, self.proc)
        self.proc, self.pid = None, None

    def kill(self) -> None:
        """SIGKILL (a crash): no shutdown, InnoDB and binlog recovery run at the next start()."""
        pid = self.pid or read_pid_file(self.pid_file)
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait()
        elif pid_alive(pid) and str(self.cnf) in pid_cmdline(pid):
            os.kill(pid, signal.SIGKILL)
            for _ in range(200):
                if not pid_alive(pid):
                    break
                time.sleep(0.05)
        self.proc, self.pid = None, None

    # -- users and connections

    def admin(self, **kw):
        """A pymysql connection as root over the unix socket (autocommit)."""
        import pymysql
        kw.setdefault("autocommit", True)
        kw.setdefault("charset", "utf8mb4")
        return pymysql.connect(unix_socket=str(self.socket), user=self.admin_user,
                               password=self.admin_password, **kw)

    def create_user(self, name: Optional[str] = None, password: Optional[str] = None, *,
                    max_user_connections: Optional[int] = None,
                    grants: Sequence[str] = ("ALL PRIVILEGES ON `{db}`.*",),
                    password_file: Union[bool, str, Path] = True) -> DBUser:
        """Create (or reset) name@'%' with mysql_native_password. name and password default to
        random ones. password_file: True = DIR/<name>.password (0600), a path, or False."""
        name = name or random_name("app")
        password = password or random_password()
        limit = f" WITH MAX_USER_CONNECTIONS {int(max_user_connections)}" if max_user_connections else ""
        with self.admin() as c, c.cursor() as cur:
            cur.execute(f"CREATE OR REPLACE USER %s@'%%' IDENTIFIED VIA mysql_native_password "
                        f"USING PASSWORD(%s){limit}", (name, password))
            for g in grants:
                cur.execute(f"GRANT {g.format(db=self.database)} TO %s@'%%'", (name,))
        pf = None
        if password_file:
            pf = self.state_dir / f"{name}.password" if password_file is True else Path(password_file)
            write_private(pf, password + "\n")
        return DBUser(name, password, pf)

    def connect(self, user: Union[DBUser, str], password: Optional[str] = None, *,
                database: Optional[str] = None, tls: bool = True, **kw):
        """A pymysql connection straight to MariaDB over TCP (TLS verified against the lab CA)."""
        if isinstance(user, DBUser):
            user, password = user.name, user.password
        return connect(self.host, self.port, user, password or "",
                       ca_file=self.tls.ca_file if tls else None,
                       database=self.database if database is None else database, **kw)

    def info(self) -> dict:
        return {"host": self.host, "port": self.port, "pid": self.pid or read_pid_file(self.pid_file),
                "datadir": str(self.datadir), "socket": str(self.socket),
                "admin_user": self.admin_user, "admin_password_file": str(self.admin_password_file),
                "database": self.database}


def connect(host: str, port: int, user: str, password: str, *, ca_file: Union[str, Path, None],
            database: Optional[str] = "app", **kw):
    """pymysql.connect with the lab's defaults: TLS verified against ca_file (None = plain TCP),
    utf8mb4, autocommit on, 10 s connect timeout. Extra keyword arguments go to pymysql.connect
    (e.g. client_flag=pymysql.constants.CLIENT.MULTI_STATEMENTS)."""
    import pymysql
    kw.setdefault("charset", "utf8mb4")
    kw.setdefault("autocommit", True)
    kw.setdefault("connect_timeout", 10)
    if ca_file is not None:
        kw.setdefault("ssl", {"ca": str(ca_file)})
    return pymysql.connect(host=host, port=port, user=user, password=password, database=database, **kw)


# --------------------------------------------------------------------------------------------
# sluice nodes


def sluice_binary() -> Path:
    return Path(os.environ.get("SLUICE_BIN") or DEFAULT_SLUICE_BIN)


@dataclass
class Auth:
    """One entry of a proxy's "auth" list."""
    user: DBUser
    auth_type: str = AUTH_NATIVE  # AUTH_NATIVE or AUTH_CACHING_SHA2


@dataclass
class ProxySpec:
    name: str = "main"
    port: Optional[int] = None  # None: a free one (6033+N-1 preferred for the first proxy of nodeN)
    host: str = "127.0.0.1"
    auth: list = field(default_factory=list)  # Auth entries, or (DBUser, auth_type) tuples
    pool: dict = field(default_factory=dict)  # connection_pool_config keys to set (others: daemon defaults)
    targets: Optional[list] = None  # [(host, port)], default: the lab MariaDB
    require_tls: bool = True
    idle_client_timeout: int = 1800
    debug_logging: bool = False
    extra: dict = field(default_factory=dict)  # more keys for this proxy's JSON object


# Only the pool keys a caller sets are written: the daemon applies the RDS Proxy defaults itself
# (max_idle_connections_percent defaults to half of max_connections_percent, so writing a fixed 50
# would make max_connections_percent < 50 invalid). A None value means "leave the key out".


class SluiceNode:
    """One sluice daemon: DIR/nodeN.json, secrets under DIR/secrets, stderr in DIR/nodeN.log."""

    def __init__(self, state_dir: Union[str, Path], *, index: int = 1, proxies: Sequence[ProxySpec],
                 tls: TLSFiles, db: Optional[MariaDB] = None, binary: Union[str, Path, None] = None,
                 node_id: Optional[str] = None, az: str = "local", drain_timeout: int = 5,
                 log_level: str = "info", extra_config: Optional[dict] = None,
                 env: Optional[dict] = None):
        self.state_dir = Path(state_dir)
        self.index = index
        self.id = node_id or f"node{index}"
        self.az = az
        self.tls = tls
        self.db = db
        self.binary = Path(binary) if binary else sluice_binary()
        self.drain_timeout = drain_timeout
        self.log_level = log_level
        self.extra_config = dict(extra_config or {})
        self.env = dict(env or {})
        self.proxies = list(proxies)
        for i, p in enumerate(self.proxies):
            if p.port is None:
                p.port = free_port(6033 + index - 1 if i == 0 else None)
        self.config_path = self.state_dir / f"{self.id}.json"
        self.log_path = self.state_dir / f"{self.id}.log"
        self.pid_file = self.state_dir / f"{self.id}.pid"
        self.secrets_dir = self.state_dir / "secrets"
        self.proc: Optional[subprocess.Popen] = None
        self.pid: Optional[int] = None
        self.returncode: Optional[int] = None
        self.killed = False  # True when stop() had to SIGKILL
        self.admin_port = free_port()
        self.admin_token_file = self.state_dir / "admin.token"  # one token per state dir

    # -- configuration

    def proxy(self, name: str = "main") -> ProxySpec:
        for p in self.proxies:
            if p.name == name:
                return p
        raise KeyError(name)

    def _secret_ref(self, user: DBUser) -> str:
        doc = {"username": user.name, "password": user.password, "engine": "mariadb"}
        if self.db is not None:
            doc.update(host=self.db.host, port=self.db.port)
        path = write_private(self.secrets_dir / f"{user.name}.json", json.dumps(doc, indent=2) + "\n")
        return f"file:{path.resolve()}"

    def build_config(self) -> dict:
        proxies = []
        for p in self.proxies:
            auth = []
            for a in p.auth:
                if not isinstance(a, Auth):
                    a = Auth(*a)
                auth.append({"auth_scheme": "SECRETS", "secret": self._secret_ref(a.user),
                             "client_password_auth_type": a.auth_type})
            targets = p.targets
            if targets is None:
                if self.db is None:
                    raise LabError(f"proxy {p.name}: no targets and no MariaDB given")
                targets = [(self.db.host, self.db.port)]
            proxies.append({
                "name": p.name,
                "listen": {"host": p.host, "port": p.port},
                "require_tls": p.require_tls,
                "idle_client_timeout": p.idle_client_timeout,
                "debug_logging": p.debug_logging,
                "auth": auth,
                "connection_pool_config": {k: v for k, v in p.pool.items() if v is not None},
                "targets": [{"host": h, "port": port} for h, port in targets],
                **p.extra,
            })
        if not self.admin_token_file.exists():
            write_private(self.admin_token_file, random_password(32) + "\n")
        cfg = {
            "node": {"id": self.id, "az": self.az, "drain_timeout": self.drain_timeout},
            "tls": {"cert_file": str(self.tls.cert_file.resolve()), "key_file": str(self.tls.key_file.resolve())},
            "admin": {"host": "127.0.0.1", "port": self.admin_port,
                      "token": f"file:{self.admin_token_file.resolve()}"},
            "proxies": proxies,
        }
        for k, v in self.extra_config.items():
            if isinstance(v, dict) and isinstance(cfg.get(k), dict):
                cfg[k] = {**cfg[k], **v}
            else:
                cfg[k] = v
        return cfg

    def write_config(self) -> Path:
        write_private(self.config_path, json.dumps(self.build_config(), indent=2) + "\n")
        return self.config_path

    # -- lifecycle

    def _env(self) -> dict:
        env = dict(os.environ)
        env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0:halt_on_error=1")
        env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
        env.update(self.env)
        return env

    def start(self, timeout: float = 20.0) -> "SluiceNode":
        """Start the daemon and wait until every proxy port accepts TCP. Raises LabError with the log
        tail if it exits first or does not listen within `timeout` seconds."""
        if not self.binary.exists():
            raise LabError(f"sluice binary {self.binary} does not exist (build it, or set SLUICE_BIN)")
        self.write_config()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        ports = ", ".join(f"{p.host}:{p.port}" for p in self.proxies)
        cmd = [str(self.binary), "--config", str(self.config_path), "--log-level", self.log_level]
        self.returncode, self.killed = None, False
        with step(f"starting sluice {self.id} on {ports}", ok="ready"):
            with open(self.log_path, "ab") as log:
                self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                             env=self._env(), start_new_session=True, close_fds=True)
            self.pid = self.proc.pid
            self.pid_file.write_text(f"{self.pid}\n")
            deadline = time.monotonic() + timeout
            waiting = list(self.proxies)
            while waiting:
                if self.proc.poll() is not None:
                    self.returncode = self.proc.returncode
                    self.pid_file.unlink(missing_ok=True)
                    raise LabError(
                        f"sluice {self.id} exited with status {self.returncode} before listening on "
                        f"{', '.join(f'{p.host}:{p.port}' for p in waiting)}; {self.log_path} ends with:\n"
                        f"{self.log_text()[-4000:] or '(empty log)'}")
                waiting = [p for p in waiting if not port_answers(p.port, p.host)]
                if waiting and time.monotonic() > deadline:
                    self.stop()
                    raise LabError(f"sluice {self.id} did not listen on "
                                   f"{', '.join(f'{p.host}:{p.port}' for p in waiting)} within "
                                   f"{timeout:.0f} s; {self.log_path} ends with:\n{self.log_tail()}")
                if waiting:
                    time.sleep(0.05)
        return self

    def running(self) -> bool:
        if self.proc is not None:
            return self.proc.poll() is None
        pid = read_pid_file(self.pid_file)
        return pid_alive(pid) and str(self.config_path) in pid_cmdline(pid)

    def stop(self, timeout: Optional[float] = None) -> Optional[int]:
        """SIGTERM, wait for the drain (drain_timeout + 10 s by default), SIGKILL fallback.
        Returns the exit status (None if it was not our child)."""
        pid = self.pid or read_pid_file(self.pid_file)
        if timeout is None:
            timeout = self.drain_timeout + 10
        if self.proc is None:
            if pid and pid_alive(pid) and str(self.config_path) in pid_cmdline(pid):
                with step(f"stopping sluice {self.id} (pid {pid})"):
                    stop_pid(pid, timeout)
            self.pid_file.unlink(missing_ok=True)
            return None
        if self.proc.poll() is None:
            with step(f"stopping sluice {self.id} (pid {pid})"):
                t0 = time.monotonic()
                self.returncode = stop_pid(self.proc.pid, timeout, self.proc)
                self.killed = time.monotonic() - t0 >= timeout
        else:
            self.returncode = self.proc.returncode
        self.proc = None
        self.pid_file.unlink(missing_ok=True)
        return self.returncode

    def reload(self, rewrite_config: bool = True) -> None:
        """Rewrite the config (after changing self.proxies) and send SIGHUP."""
        if rewrite_config:
            self.write_config()
        pid = self.pid or read_pid_file(self.pid_file)
        if not pid or not pid_alive(pid):
            raise LabError(f"sluice {self.id} is not running; cannot reload")
        os.kill(pid, signal.SIGHUP)

    # -- logs

    def log_text(self, since_start: bool = True) -> str:
        try:
            with open(self.log_path, "rb") as f:
                if since_start:
                    f.seek(getattr(self, "log_offset", 0))
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def sanitizer_report(self) -> Optional[str]:
        """The log from the first sanitizer line on, or None when no sanitizer fired."""
        return sanitizer_report(self.log_text())

    def problems(self, allow_exit_status: Optional[int] = 0) -> list:
        """Reasons this node's run was not clean: sanitizer reports, an exit status other than
        allow_exit_status (None: any status is fine), SIGKILL needed."""
        out = []
        rep = self.sanitizer_report()
        if rep:
            out.append(f"sanitizer report in {self.log_path}:\n{rep[:6000]}")
        # Passwords must never reach the log, whatever happened (logins, failures, rotation).
        log = self.log_text(since_start=False)
        for p in self.proxies:
            for a in p.auth:
                pw = a.user.password
                if pw and len(pw) >= 6 and pw in log:
                    out.append(f"the password of user {a.user.name} appears in {self.log_path}")
        if self.killed:
            out.append(f"sluice {self.id} did not exit within the drain timeout and was SIGKILLed")
        elif self.returncode is not None and allow_exit_status is not None \
                and self.returncode != allow_exit_status:
            out.append(f"sluice {self.id} exited with status {self.returncode}")
        return out

    # -- clients

    def connect(self, user: Union[DBUser, str], password: Optional[str] = None, *,
                proxy: str = "main", database: Optional[str] = "app", **kw):
        """A pymysql connection through this node's proxy, TLS verified against the lab CA."""
        if isinstance(user, DBUser):
            user, password = user.name, user.password
        p = self.proxy(proxy)
        kw.setdefault("ca_file", self.tls.ca_file)
        return connect(p.host, p.port, user, password or "", database=database, **kw)

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    def admin_request(self, path: str, *, token: Optional[str] = "default", method: str = "GET",
                      body=None, headers: Optional[dict] = None):
        """(status, headers, body bytes) of an admin API request; token None sends none. body: a
        dict/list (sent as JSON), bytes, or None."""
        import urllib.error
        import urllib.request
        if body is not None and not isinstance(body, bytes):
            body = json.dumps(body).encode()
        req = urllib.request.Request(self.admin_url + path, method=method, data=body)
        if body is not None:
            req.add_header("Content-Type", "application/json")
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        if token == "default":
            token = self.admin_token_file.read_text().strip()
        if token is not None:
            req.add_header("Authorization", f"Bearer {token}")
        ctx = None
        if self.admin_url.startswith("https://"):
            import ssl
            ctx = ssl.create_default_context(cafile=str(self.tls.ca_file))
        try:
            with urllib.request.urlopen(req, timeout=10, context=ctx) as r:
                return r.status, dict(r.headers), r.read()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read()

    def info(self) -> dict:
        return {"id": self.id, "pid": self.pid, "az": self.az, "admin_url": self.admin_url,
                "raft_address": None,
                "config_file": str(self.config_path), "log_file": str(self.log_path),
                "proxies": [{"name": p.name, "host": p.host, "port": p.port} for p in self.proxies]}


def sanitizer_report(text: str) -> Optional[str]:
    idx = [text.find(m) for m in SANITIZER_MARKERS]
    idx = [i for i in idx if i >= 0]
    if not idx:
        return None
    start = text.rfind("\n", 0, min(idx)) + 1
    return text[start:]


# --------------------------------------------------------------------------------------------
# cluster.json


def database_member(db: MariaDB, name: str = "db1", role: str = "primary",
                    source: Optional[str] = None) -> dict:
    """One entry of cluster.json's database.members: a database host, its role and pid."""
    return {"name": name, "host": db.host, "port": db.port, "role": role,
            "pid": db.pid or read_pid_file(db.pid_file), "source": source,
            "datadir": str(db.datadir), "error_log": str(db.error_log),
            "admin_password_file": str(db.admin_password_file)}


def cluster_info(nodes: Sequence[SluiceNode], db: MariaDB, tls: TLSFiles, app_user: DBUser, *,
                 members: Optional[list] = None, replication: Optional[dict] = None) -> dict:
    """What cluster.json holds. "database" describes the primary (db: the one the proxy writes to);
    database.members lists every database host ({"name", "host", "port", "role": "primary" or
    "replica", "pid", "source": the member it replicates from or null, ...}); without `members` it is
    db alone, as db1. "replication" (null without replicas) names the failover and replication users."""
    first = nodes[0] if nodes else None
    return {
        "nodes": [n.info() for n in nodes],
        "admin_token_file": str(first.admin_token_file.resolve()) if first else None,
        "tls_ca_file": str(tls.ca_file.resolve()),
        "proxies": [{"name": p.name, "port": p.port} for p in (first.proxies if first else [])],
        "database": {**db.info(), "app_user": app_user.name,
                     "app_password_file": str(app_user.password_file) if app_user.password_file else None,
                     "members": members if members is not None else [database_member(db)]},
        "replication": replication,
    }


def write_cluster_json(path: Union[str, Path], info: dict) -> Path:
    path = Path(path)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(info, indent=2) + "\n")
    os.replace(tmp, path)
    return path


def read_cluster_json(path: Union[str, Path]) -> dict:
    path = Path(path)
    if path.is_dir():
        path = path / "cluster.json"
    return json.loads(path.read_text())


# --------------------------------------------------------------------------------------------
# a whole lab: TLS + MariaDB + N sluice nodes (what scripts/cluster runs)


class Cluster:
    def __init__(self, state_dir: Union[str, Path], *, nodes: int = 1, db_port: Optional[int] = None,
                 proxy_port: Optional[int] = None, max_connections: int = 200,
                 app_user: str = "app", binary: Union[str, Path, None] = None, log_level: str = "info",
                 drain_timeout: int = 5):
        self.state_dir = Path(state_dir).resolve()
        self.n_nodes = nodes
        self.db_port = db_port
        self.proxy_port = proxy_port
        self.max_connections = max_connections
        self.app_user_name = app_user
        self.binary = binary
        self.log_level = log_level
        self.drain_timeout = drain_timeout
        self.tls: Optional[TLSFiles] = None
        self.db: Optional[MariaDB] = None
        self.nodes: list = []
        self.app_user: Optional[DBUser] = None

    @property
    def json_path(self) -> Path:
        return self.state_dir / "cluster.json"

    def running_pids(self) -> list:
        """(what, pid) of recorded processes that are alive in this state dir."""
        out = []
        pid = read_pid_file(self.state_dir / "mariadb" / "mariadb.pid")
        if pid_alive(pid) and "mariadbd" in pid_cmdline(pid):
            out.append(("mariadbd", pid))
        for pf in sorted(self.state_dir.glob("node*.pid")):
            pid = read_pid_file(pf)
            if pid_alive(pid) and str(self.state_dir / (pf.stem + ".json")) in pid_cmdline(pid):
                out.append((f"sluice {pf.stem}", pid))
        return out

    def start(self) -> dict:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.json_path.unlink(missing_ok=True)
        self.tls = ensure_tls(self.state_dir / "tls")
        self.db = MariaDB(self.state_dir, tls=self.tls, port=self.db_port, max_connections=self.max_connections)
        try:
            self.db.start()
            pw_file = self.state_dir / f"{self.app_user_name}.password"
            pw = pw_file.read_text().strip() if pw_file.exists() else None
            with step(f"creating database user {self.app_user_name} and database {self.db.database}"):
                self.app_user = self.db.create_user(self.app_user_name, pw)
            for i in range(1, self.n_nodes + 1):
                port = self.proxy_port + (i - 1) if self.proxy_port else None
                if port is not None and not port_bindable(port):
                    raise LabError(f"port {port} is taken")
                node = SluiceNode(self.state_dir, index=i, tls=self.tls, db=self.db, binary=self.binary,
                                  log_level=self.log_level, drain_timeout=self.drain_timeout,
                                  proxies=[ProxySpec("main", port=port, auth=[Auth(self.app_user, AUTH_NATIVE)])])
                self.nodes.append(node)
                node.start()
            self.check_serves()
        except BaseException:
            self.stop()
            raise
        info = cluster_info(self.nodes, self.db, self.tls, self.app_user)
        write_cluster_json(self.json_path, info)
        return info

    def check_serves(self) -> None:
        """Log in through every node and run SELECT 1, so `up` fails clearly when the data path does not work."""
        import pymysql
        for n in self.nodes:
            with step(f"checking a TLS login through {n.id} (127.0.0.1:{n.proxy().port})", ok="ok"):
                try:
                    with n.connect(self.app_user, connect_timeout=5, read_timeout=10) as c, c.cursor() as cur:
                        cur.execute("SELECT 1")
                        if cur.fetchone() != (1,):
                            raise LabError("SELECT 1 through sluice returned the wrong result")
                except (pymysql.err.Error, OSError) as e:
                    raise LabError(f"sluice {n.id} listens on 127.0.0.1:{n.proxy().port} but does not serve "
                                   f"clients yet ({e}); {n.log_path} ends with:\n{n.log_tail(20)}") from None

    def alive(self) -> list:
        """Names of started processes that died."""
        dead = [n.id for n in self.nodes if not n.running()]
        if self.db is not None and not self.db.running():
            dead.append("mariadb")
        return dead

    def stop(self) -> None:
        for n in reversed(self.nodes):
            try:
                n.stop()
            except Exception as e:  # keep going: stop everything we can
                say(f"  stopping {n.id} failed: {e}")
        if self.db is not None:
            self.db.stop()
        self.json_path.unlink(missing_ok=True)



# --------------------------------------------------------------------------------------------
# cluster mode: nodes with a Raft configuration store, proxies created through the admin API


class ClusterNode(SluiceNode):
    """A sluice node with a "cluster" block: no proxies in its file; they come from the Raft store.
    `proxies` lists what the cluster is expected to serve (for connect() and the password check);
    their host is this node's data address."""

    def __init__(self, state_dir: Union[str, Path], *, index: int, data_address: str,
                 raft_port: int, az: str, tls: TLSFiles, db: Optional[MariaDB] = None,
                 members: Optional[list] = None, admin_tls: bool = False, **kw):
        super().__init__(state_dir, index=index, proxies=[], tls=tls, db=db, az=az, **kw)
        self.admin_tls = admin_tls  # HTTPS admin API; writes forwarded between nodes over TLS
        self.raft_id = index
        self.data_address = data_address
        self.raft_address = f"127.0.0.1:{raft_port}"
        self.data_dir = self.state_dir / f"{self.id}.data"
        self.members = members if members is not None else []  # shared list of member dicts
        # Run the daemon through this command (e.g. setpriv with a group of its own, so that a test
        # can cut its traffic with nft's skgid match: tests/lib/netcut.py). Empty: run it directly.
        self.exec_prefix: list = []

    @property
    def admin_url(self) -> str:
        return f"{'https' if self.admin_tls else 'http'}://127.0.0.1:{self.admin_port}"

    def member(self) -> dict:
        return {"id": self.raft_id, "raft_address": self.raft_address, "admin_url": self.admin_url,
                "data_address": self.data_address, "az": self.az}

    def build_config(self) -> dict:
        if not self.admin_token_file.exists():
            write_private(self.admin_token_file, random_password(32) + "\n")
        cfg = {
            "node": {"id": self.id, "az": self.az, "drain_timeout": self.drain_timeout},
            "tls": {"cert_file": str(self.tls.cert_file.resolve()), "key_file": str(self.tls.key_file.resolve())},
            "admin": {"host": "127.0.0.1", "port": self.admin_port,
                      "token": f"file:{self.admin_token_file.resolve()}",
                      **({"tls": True, "ca_file": str(self.tls.ca_file.resolve())}
                         if self.admin_tls else {})},
            "cluster": {"id": self.raft_id, "raft_address": self.raft_address,
                        "data_dir": str(self.data_dir.resolve()), "data_address": self.data_address,
                        "initial_members": list(self.members)},
        }
        cfg.update(self.extra_config)
        return cfg

    def start(self, timeout: float = 20.0, init_cluster: bool = False) -> "ClusterNode":
        """Start the daemon (with --init-cluster when asked) and wait until its admin API answers."""
        if not self.binary.exists():
            raise LabError(f"sluice binary {self.binary} does not exist (build it, or set SLUICE_BIN)")
        self.write_config()
        self.log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        cmd = [*self.exec_prefix, str(self.binary), "--config", str(self.config_path),
               "--log-level", self.log_level]
        if init_cluster:
            cmd.append("--init-cluster")
        self.returncode, self.killed = None, False
        with step(f"starting sluice {self.id} (raft {self.raft_address}, admin {self.admin_url})", ok="ready"):
            with open(self.log_path, "ab") as log:
                self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                             env=self._env(), start_new_session=True, close_fds=True)
            self.pid = self.proc.pid
            self.pid_file.write_text(f"{self.pid}\n")
            deadline = time.monotonic() + timeout
            while not port_answers(self.admin_port):
                if self.proc.poll() is not None:
                    self.returncode = self.proc.returncode
                    self.pid_file.unlink(missing_ok=True)
                    raise LabError(f"sluice {self.id} exited with status {self.returncode} while starting; "
                                   f"{self.log_path} ends with:\n{self.log_text()[-4000:] or '(empty log)'}")
                if time.monotonic() > deadline:
                    self.stop()
                    raise LabError(f"sluice {self.id}'s admin API did not answer within {timeout:.0f} s; "
                                   f"{self.log_path} ends with:\n{self.log_tail()}")
                time.sleep(0.05)
        return self

    def kill(self) -> None:
        """SIGKILL (a crash): no drain, no clean close of the store."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.returncode, self.proc, self.killed = None, None, False
        self.pid_file.unlink(missing_ok=True)

    def admin_json(self, method: str, path: str, body=None, headers: Optional[dict] = None):
        """(status, headers, decoded JSON or None) of an admin request."""
        status, hdrs, raw = self.admin_request(path, method=method, body=body, headers=headers)
        try:
            doc = json.loads(raw) if raw else None
        except ValueError:
            doc = None
        return status, hdrs, doc

    def cluster_status(self) -> Optional[dict]:
        try:
            status, _, doc = self.admin_json("GET", "/v1/cluster")
        except OSError:
            return None
        return doc if status == 200 else None

    def info(self) -> dict:
        d = super().info()
        d.update(raft_id=self.raft_id, raft_address=self.raft_address, data_address=self.data_address,
                 data_dir=str(self.data_dir))
        return d


def admin_write(node: ClusterNode, method: str, path: str, body=None, timeout: float = 10.0):
    """A write through node's admin API, retried while the answer is 503 (no leader yet, election).
    Returns (status, headers, JSON); raises LabError when it does not succeed (2xx) in time."""
    deadline = time.monotonic() + timeout
    while True:
        status, hdrs, doc = node.admin_json(method, path, body)
        if 200 <= status < 300:
            return status, hdrs, doc
        if status != 503 or time.monotonic() > deadline:
            raise LabError(f"{method} {path} through {node.id} answered {status}: {doc}")
        time.sleep(0.1)


# The database user managed failover promotes with (docs/failover.md), and its grants.
FAILOVER_ADMIN_USER = "sluice_admin"
FAILOVER_ADMIN_GRANTS = ("RELOAD, READ_ONLY ADMIN, REPLICATION SLAVE ADMIN, REPLICATION MASTER ADMIN, "
                         "SLAVE MONITOR, BINLOG MONITOR ON *.*", "ALL PRIVILEGES ON `{db}`.*")
REPLICATION_USER = "repl"


class RaftCluster:
    """TLS + MariaDB + N cluster nodes (ids 1..N, data addresses 127.0.0.1..N, one proxy port on
    all, raft on 127.0.0.1:<free port>, azs az-a, az-b, az-c, ...). start() bootstraps them with
    --init-cluster and identical initial_members, waits for a leader, creates the demo proxy
    through the admin API and waits until every node serves it.

    With replicas=N (N >= 1) the database is a tests/lib/replication.py ReplicationGroup instead:
    a primary and N replicas under DIR/db1 .. DIR/db<N+1> (GTID, semi-synchronous replication),
    and the proxy's target group has targets db1..db<N+1> and MANAGED failover (admin user
    FAILOVER_ADMIN_USER, replication user REPLICATION_USER, passwords in DIR/<user>.password).
    The roles are recorded in DIR/replication.json (at start, and from what the running members
    say at stop() and record_replication()), so a restarted lab brings each member back in its role."""

    def __init__(self, state_dir: Union[str, Path], *, nodes: int = 3, db_port: Optional[int] = None,
                 proxy_port: Optional[int] = None, max_connections: int = 200, app_user: str = "app",
                 binary: Union[str, Path, None] = None, log_level: str = "info", drain_timeout: int = 5,
                 tls: Optional[TLSFiles] = None, db: Optional[MariaDB] = None,
                 admin_tls: bool = False, replicas: int = 0):
        if not 1 <= nodes <= 5:
            raise LabError("a lab cluster has 1..5 nodes (data addresses 127.0.0.1..127.0.0.5)")
        if replicas < 0:
            raise LabError("replicas must be >= 0")
        if replicas and db is not None:
            raise LabError("replicas: the cluster starts its own replication group; do not pass db")
        if replicas and db_port is not None:
            raise LabError("db_port applies to a single MariaDB; the members of a replication group "
                           "take free ports (recorded in replication.json and cluster.json)")
        self.state_dir = Path(state_dir).resolve()
        self.n_nodes = nodes
        self.db_port = db_port
        self.proxy_port = proxy_port
        self.max_connections = max_connections
        self.app_user_name = app_user
        self.binary = binary
        self.log_level = log_level
        self.drain_timeout = drain_timeout
        self.tls, self.db = tls, db
        self.admin_tls = admin_tls
        self._own_db = db is None
        self.n_replicas = replicas
        self.group = None  # the replication.ReplicationGroup when replicas > 0
        self.admin_user: Optional[DBUser] = None  # the failover admin user (replicas > 0)
        self.nodes: list = []
        self.members: list = []
        self.app_user: Optional[DBUser] = None

    @property
    def json_path(self) -> Path:
        return self.state_dir / "cluster.json"

    def running_pids(self) -> list:
        out = Cluster.running_pids(self)  # same files, same rules
        for pf in sorted(self.state_dir.glob("db*/mariadb/mariadb.pid")):  # replication group members
            pid = read_pid_file(pf)
            if pid_alive(pid) and str(pf.parent / "my.cnf") in pid_cmdline(pid):
                out.append((f"mariadbd {pf.parent.parent.name}", pid))
        return out

    def _proxy_port(self) -> int:
        addrs = [f"127.0.0.{i}" for i in range(1, self.n_nodes + 1)]
        if self.proxy_port:
            if not all(port_bindable(self.proxy_port, a) for a in addrs):
                raise LabError(f"port {self.proxy_port} is taken on one of {', '.join(addrs)}")
            return self.proxy_port
        for cand in [6033] + [None] * 50:
            p = free_port(cand)
            if all(port_bindable(p, a) for a in addrs):
                return p
        raise LabError("no proxy port free on every data address")

    @property
    def ports_path(self) -> Path:
        return self.state_dir / "cluster-ports.json"

    def make_nodes(self) -> None:
        """The node objects. Ports are kept in DIR/cluster-ports.json: the Raft log of a node that
        ran before holds its members' addresses, so a restarted lab must use the same ones."""
        azs = ["az-a", "az-b", "az-c", "az-d", "az-e"]
        try:
            saved = json.loads(self.ports_path.read_text())
            if len(saved["nodes"]) != self.n_nodes:
                raise LabError(f"{self.state_dir} holds a {len(saved['nodes'])}-node cluster; "
                               f"use --nodes {len(saved['nodes'])} or --fresh")
        except (OSError, ValueError, KeyError):
            saved = None
        self.proxy_port = saved["proxy_port"] if saved else self._proxy_port()
        for i in range(1, self.n_nodes + 1):
            raft_port = saved["nodes"][i - 1]["raft_port"] if saved else free_port()
            node = ClusterNode(self.state_dir, index=i, data_address=f"127.0.0.{i}", raft_port=raft_port,
                               az=azs[i - 1], tls=self.tls, db=self.db, binary=self.binary,
                               log_level=self.log_level, drain_timeout=self.drain_timeout,
                               members=self.members, admin_tls=self.admin_tls)
            if saved:
                node.admin_port = saved["nodes"][i - 1]["admin_port"]
            self.members.append(node.member())
            self.nodes.append(node)
        write_cluster_json(self.ports_path, {
            "proxy_port": self.proxy_port,
            "nodes": [{"raft_port": int(n.raft_address.rsplit(":", 1)[1]), "admin_port": n.admin_port}
                      for n in self.nodes]})

    def start(self, create_proxy: bool = True) -> dict:
        if self._own_db:
            self.check_database_shape()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.json_path.unlink(missing_ok=True)
        if self.tls is None:
            self.tls = ensure_tls(self.state_dir / "tls")
        if self.db is None and not self.n_replicas:
            self.db = MariaDB(self.state_dir, tls=self.tls, port=self.db_port,
                              max_connections=self.max_connections)
        try:
            if self.n_replicas:
                self.start_group()
            elif self._own_db:
                self.db.start()
            pw_file = self.state_dir / f"{self.app_user_name}.password"
            pw = pw_file.read_text().strip() if pw_file.exists() else None
            with step(f"creating database user {self.app_user_name} and database {self.db.database}"):
                if self.group is not None:  # on the primary, replicated; password file in DIR as before
                    self.app_user = self.group.create_user(self.app_user_name, pw, password_file=pw_file)
                else:
                    self.app_user = self.db.create_user(self.app_user_name, pw)
            if self.group is not None:
                admin_pf = self.state_dir / f"{FAILOVER_ADMIN_USER}.password"
                with step(f"creating database user {FAILOVER_ADMIN_USER} (managed failover)"):
                    self.admin_user = self.group.create_user(
                        FAILOVER_ADMIN_USER, admin_pf.read_text().strip() if admin_pf.exists() else None,
                        grants=FAILOVER_ADMIN_GRANTS, password_file=admin_pf)
            self.make_nodes()
            for n in self.nodes:
                n.start(init_cluster=True)
            self.wait_leader()
            if create_proxy:
                self.create_proxy(self.nodes[0])
                self.wait_serving(timeout=20 if self.group is not None else 10)
                if self.group is not None:
                    self.wait_failover_ready()
        except BaseException:
            self.stop()
            raise
        info = self.info()
        write_cluster_json(self.json_path, info)
        return info

    def leader(self, nodes: Optional[Sequence[ClusterNode]] = None) -> Optional[ClusterNode]:
        """The node that every given running node names as leader, if it is one of them; else None."""
        nodes = [n for n in (nodes or self.nodes) if n.running()]
        ids = set()
        for n in nodes:
            st = n.cluster_status()
            ids.add(st.get("leader") if st else None)
        if len(ids) != 1 or None in ids:
            return None
        lid = ids.pop()
        return next((n for n in nodes if n.raft_id == lid), None)  # a dead leader is no leader

    def wait_leader(self, timeout: float = 10.0, nodes=None) -> ClusterNode:
        with step("waiting for a Raft leader", ok="elected"):
            deadline = time.monotonic() + timeout
            while True:
                lead = self.leader(nodes)
                if lead is not None:
                    return lead
                if time.monotonic() > deadline:
                    raise LabError(f"no leader within {timeout:.0f} s")
                time.sleep(0.05)

    def create_proxy(self, via: ClusterNode, name: str = "main", user: Optional[DBUser] = None,
                     auth_type: str = AUTH_NATIVE) -> None:
        """PUT secret, PUT proxy, PUT target group, POST target through `via`'s admin API.
        With a replication group: also the secrets of the failover admin and replication users,
        a target group with MANAGED failover (require_semi_sync: default) and transaction_replay,
        and targets db1..dbN (the primary READ_WRITE, the replicas READ_ONLY)."""
        user = user or self.app_user
        ref = via._secret_ref(user)
        pool = {"max_connections_percent": 100, "connection_borrow_timeout": 120}
        group_doc = {"connection_pool_config": pool}
        if self.group is not None:
            targets = [{"id": f"db{db.server_id}", "host": db.host, "port": db.port,
                        "role": "READ_WRITE" if db is self.group.primary else "READ_ONLY"}
                       for db in self.group.members]
            pool["transaction_replay"] = True
            group_doc["failover"] = {"mode": "MANAGED", "admin_secret": self.admin_user.name,
                                     "replication_secret": self.group.repl_user.name}
            extra_secrets = [self.admin_user, self.group.repl_user]
        else:
            targets = [{"id": "db1", "host": self.db.host, "port": self.db.port, "role": "READ_WRITE"}]
            extra_secrets = []
        with step(f"creating proxy {name} on port {self.proxy_port} through {via.id}'s admin API"):
            admin_write(via, "PUT", f"/v1/secrets/{user.name}", {"ref": ref})
            for u in extra_secrets:
                admin_write(via, "PUT", f"/v1/secrets/{u.name}", {"ref": via._secret_ref(u)})
            admin_write(via, "PUT", f"/v1/proxies/{name}", {
                "engine_family": "MYSQL", "listen_port": self.proxy_port, "require_tls": True,
                "auth": [{"auth_scheme": "SECRETS", "secret": user.name, "iam_auth": "DISABLED",
                          "client_password_auth_type": auth_type, "description": "lab user"}]})
            admin_write(via, "PUT", f"/v1/proxies/{name}/target-group", group_doc)
            status, _, doc = via.admin_json("GET", f"/v1/proxies/{name}/targets")
            registered = {t.get("id"): t for t in (doc if isinstance(doc, list) else [])}
            for target in targets:
                known = registered.get(target["id"])
                if known and known.get("host") == target["host"] and known.get("port") == target["port"]:
                    continue  # a restarted lab: registered already (its role as first registered)
                if known:
                    admin_write(via, "DELETE", f"/v1/proxies/{name}/targets/{target['id']}")
                admin_write(via, "POST", f"/v1/proxies/{name}/targets", target)
        for n in self.nodes:
            if not any(p.name == name for p in n.proxies):
                n.proxies.append(ProxySpec(name, port=self.proxy_port, host=n.data_address,
                                           auth=[Auth(user, auth_type)]))

    def serves(self, node: ClusterNode, name: str = "main") -> bool:
        import pymysql
        try:
            with node.connect(self.app_user, proxy=name, connect_timeout=2, read_timeout=5) as c, \
                    c.cursor() as cur:
                cur.execute("SELECT 1")
                return cur.fetchone() == (1,)
        except (pymysql.err.Error, OSError):
            return False

    def wait_serving(self, timeout: float = 10.0, name: str = "main", nodes=None) -> float:
        """Wait until every (given) node serves proxy `name`; returns the seconds it took."""
        t0 = time.monotonic()
        with step(f"waiting until every node serves proxy {name}", ok="serving"):
            waiting = list(nodes or self.nodes)
            while waiting:
                waiting = [n for n in waiting if not (port_answers(self.proxy_port, n.data_address, 0.2)
                                                      and self.serves(n, name))]
                if waiting and time.monotonic() - t0 > timeout:
                    raise LabError(f"{', '.join(n.id for n in waiting)} do not serve {name} after "
                                   f"{timeout:.0f} s; {waiting[0].log_path} ends with:\n{waiting[0].log_tail(20)}")
                if waiting:
                    time.sleep(0.02)
        return time.monotonic() - t0

    def info(self) -> dict:
        first = self.nodes[0] if self.nodes else None
        members = replication = None
        if self.group is not None:
            g = self.group
            members = [database_member(db, f"db{db.server_id}",
                                       "primary" if db is g.primary else "replica",
                                       f"db{g.source[db].server_id}" if g.source.get(db) else None)
                       for db in g.members]
            replication = {"replicas": self.n_replicas, "semi_sync": g.semi_sync,
                           "failover_mode": "MANAGED",
                           "admin_user": self.admin_user.name if self.admin_user else None,
                           "admin_password_file": str(self.admin_user.password_file)
                           if self.admin_user else None,
                           "replication_user": g.repl_user.name,
                           "replication_password_file": str(g.repl_user.password_file),
                           "state_file": str(self.replication_path)}
        info = cluster_info(self.nodes, self.db, self.tls, self.app_user, members=members,
                            replication=replication)
        info["proxies"] = [{"name": p.name, "port": p.port} for p in (first.proxies if first else [])]
        return info

    def alive(self) -> list:
        """Names of started processes that died. Members of a replication group are not counted:
        losing one is what managed failover is for (see dead_members())."""
        if self.group is None:
            return Cluster.alive(self)
        return [n.id for n in self.nodes if not n.running()]

    def wait_failover_ready(self, timeout: float = 10.0) -> bool:
        """Wait until every node's health checks saw the primary up with semi-synchronous replication
        active (/metrics: sluice_target_semi_sync 1): a leader that never saw that refuses to promote
        (require_semi_sync), so until then killing the primary would not fail over. Warns (and
        returns False) when it does not happen within timeout."""
        key = f'sluice_target_semi_sync{{target="{self.db.host}:{self.db.port}"}} 1'
        try:
            with step("waiting until every node saw the primary with semi-sync active", ok="ready for failover"):
                deadline = time.monotonic() + timeout
                waiting = list(self.nodes)
                while waiting:
                    waiting = [n for n in waiting if key not in n.admin_request("/metrics")[2].decode(errors="replace")]
                    if waiting and time.monotonic() > deadline:
                        raise LabError(f"{', '.join(n.id for n in waiting)} did not see semi-sync active on "
                                       f"the primary within {timeout:.0f} s: managed failover would refuse to "
                                       f"promote (see their logs)")
                    if waiting:
                        time.sleep(0.1)
        except LabError as e:
            say(f"  warning: {e}")
            return False
        return True

    def dead_members(self) -> list:
        """Names (db1, ...) of replication group members that no longer run."""
        return [f"db{db.server_id}" for db in (self.group.members if self.group else []) if not db.running()]

    def stop(self) -> None:
        for n in reversed(self.nodes):
            try:
                n.stop()
            except Exception as e:  # keep going: stop everything we can
                say(f"  stopping {n.id} failed: {e}")
        if self._own_db and self.group is not None:
            try:
                self.record_replication(self.state_dir)
            except Exception as e:  # the last recorded roles stay
                say(f"  recording the replication roles failed: {e}")
            self.group.stop()
        elif self._own_db and self.db is not None:
            self.db.stop()
        self.json_path.unlink(missing_ok=True)

    # -- a primary with replicas (replicas >= 1)

    @property
    def replication_path(self) -> Path:
        return self.state_dir / "replication.json"

    @staticmethod
    def saved_replicas(state_dir: Union[str, Path]) -> Optional[int]:
        """The number of replicas of the lab in state_dir: N from DIR/replication.json, 0 when DIR
        holds a single MariaDB, None when it holds no database yet."""
        state_dir = Path(state_dir)
        try:
            return int(json.loads((state_dir / "replication.json").read_text())["replicas"])
        except (OSError, ValueError, KeyError, TypeError):
            pass
        return 0 if (state_dir / "mariadb" / "data" / "mysql").is_dir() else None

    def check_database_shape(self) -> None:
        """Refuse to start a lab whose state dir holds another kind of database (a single MariaDB
        vs a replication group, or another number of replicas)."""
        saved = self.saved_replicas(self.state_dir)
        if saved is None:
            if self.n_replicas and any(self.state_dir.glob("db*/mariadb/data")):
                raise LabError(f"{self.state_dir} holds the data of a replication group whose first "
                               f"start did not finish; start over with --fresh")
            return
        if saved == self.n_replicas:
            return
        if saved == 0:
            raise LabError(f"{self.state_dir} holds a lab with a single MariaDB (no replicas); "
                           f"start it with --replicas 0, or start over with --fresh "
                           f"--replicas {self.n_replicas} (new data, passwords, certificates)")
        raise LabError(f"{self.state_dir} holds a lab with {saved} replica(s); use --replicas {saved} "
                       f"or --fresh")

    def _password_user(self, name: str) -> DBUser:
        """DBUser name with the password kept in DIR/<name>.password (created when missing)."""
        pf = self.state_dir / f"{name}.password"
        pw = pf.read_text().strip() if pf.exists() else ""
        if not pw:
            pw = random_password()
            write_private(pf, pw + "\n")
        return DBUser(name, pw, pf)

    def _new_group(self):
        from replication import ReplicationGroup  # imports this module: not at the top
        g = ReplicationGroup(self.state_dir, replicas=self.n_replicas, tls=self.tls,
                             max_connections=self.max_connections)
        g.repl_user = self._password_user(REPLICATION_USER)  # kept: replicas and secrets use it
        return g

    def start_group(self) -> None:
        """Start the replication group: a new one, or the recorded one again with its roles."""
        if not self.replication_path.exists():
            g = self._new_group()
            g.start()  # stops its members when it fails
            self.group, self.db = g, g.primary
        else:
            self._restart_group()
        self._save_replication(self._group_state())

    def _group_state(self) -> dict:
        g = self.group
        return {"replicas": self.n_replicas, "semi_sync": g.semi_sync,
                "primary": f"db{g.primary.server_id}",
                "replication_user": g.repl_user.name,
                "replication_password_file": str(g.repl_user.password_file),
                "members": [{"name": f"db{db.server_id}", "server_id": db.server_id, "host": db.host,
                             "port": db.port, "role": "primary" if db is g.primary else "replica",
                             "source": f"db{g.source[db].server_id}" if g.source.get(db) else None,
                             "rejoin": False}
                            for db in g.members]}

    def _save_replication(self, state: dict) -> None:
        write_cluster_json(self.replication_path, state)

    def _restart_group(self) -> None:
        """Start the members recorded in DIR/replication.json in their roles (same ports): the
        primary, then each replica (replicating from the primary again); a member marked "rejoin"
        (a former primary, or one that no longer replicated) comes back with
        ReplicationGroup.rejoin() (read-only, GTID position from its own binary log)."""
        import pymysql
        state = json.loads(self.replication_path.read_text())
        g = self._new_group()
        g.repl_user = DBUser(state["replication_user"], g.repl_user.password, g.repl_user.password_file)
        recorded = sorted(state["members"], key=lambda m: m["server_id"])
        for m in recorded:
            g.members.append(MariaDB(self.state_dir / m["name"], tls=self.tls, small=g.small,
                                     port=m["port"], preferred_port=None, server_id=m["server_id"],
                                     semi_sync_timeout_ms=g.semi_sync_timeout_ms,
                                     max_connections=self.max_connections,
                                     extra_settings=g.extra_settings))
        by_name = {m["name"]: db for m, db in zip(recorded, g.members)}
        if state.get("primary") not in by_name:
            raise LabError(f"{self.replication_path}: primary {state.get('primary')!r} is not a member")
        g.primary = by_name[state["primary"]]
        for db in g.members:
            g.source[db] = None if db is g.primary else g.primary
            g._set_role(db, db is g.primary)
        self.group, self.db = g, g.primary  # from here on, stop() stops what started
        say(f"restarting the replication group: primary {state['primary']}, replicas "
            f"{', '.join(m['name'] for m in recorded if m['name'] != state['primary'])}")
        try:
            g.restart(g.primary, wait=False)
            for m, db in zip(recorded, g.members):
                if db is g.primary:
                    continue
                if m.get("rejoin") or m.get("source") != state["primary"]:
                    g.rejoin(db, g.primary)
                else:
                    g.restart(db)
            g.wait_ready()
        except (pymysql.err.Error, LabError) as e:
            raise LabError(f"restarting the replication group with the roles recorded in "
                           f"{self.replication_path} (primary {state['primary']}) failed: {e}\n"
                           f"If the roles changed after they were recorded (a failover, then no "
                           f"`scripts/cluster down`), correct that file or start over with --fresh") from None

    @classmethod
    def record_replication(cls, state_dir: Union[str, Path]) -> Optional[dict]:
        """Update DIR/replication.json with what the running members say (SHOW SLAVE STATUS,
        @@read_only), so that roles changed since the start (a managed failover) survive a
        restart: the one running writable member that replicates from nobody is the primary
        (with none or several, the recorded primary stays); a former primary that is down, or a
        member that no longer replicates, is marked to rejoin as a replica. Returns the state
        (None when DIR has no replication group)."""
        state = cls.observe_replication(state_dir)
        if state is not None:
            saved = dict(state, members=[{k: v for k, v in m.items() if k not in ("pid", "alive")}
                                         for m in state["members"]])
            write_cluster_json(Path(state_dir).resolve() / "replication.json", saved)
        return state

    @staticmethod
    def _member_db(state_dir: Path, m: dict) -> MariaDB:
        """A MariaDB object for a member started by another process (to query or stop it)."""
        db = MariaDB(state_dir / m["name"], tls=TLSFiles(state_dir / "tls"), port=m["port"],
                     server_id=m["server_id"])
        try:  # the socket it was started with (a long path is replaced by a per-process name)
            for line in db.cnf.read_text().splitlines():
                if line.startswith("socket = "):
                    db.socket = Path(line.split("=", 1)[1].strip())
                    break
        except OSError:
            pass
        return db

    @classmethod
    def observe_replication(cls, state_dir: Union[str, Path]) -> Optional[dict]:
        """The recorded state (DIR/replication.json) corrected by what the running members say;
        each member also gets "pid" and "alive". Writes nothing."""
        from replication import query_value, replica_status
        state_dir = Path(state_dir).resolve()
        try:
            state = json.loads((state_dir / "replication.json").read_text())
        except (OSError, ValueError):
            return None
        by_port = {m["port"]: m["name"] for m in state["members"]}
        seen = {}
        for m in state["members"]:
            db = cls._member_db(state_dir, m)
            pid = read_pid_file(db.pid_file)
            m["pid"] = pid
            m["alive"] = pid_alive(pid) and str(db.cnf) in pid_cmdline(pid)
            if not m["alive"]:
                continue
            try:
                st = replica_status(db)
                read_only = query_value(db, "SELECT @@read_only")
            except Exception:  # does not answer (yet): keep what was recorded
                continue
            if st:
                seen[m["name"]] = ("replica", by_port.get(int(st.get("Master_Port") or 0)))
            else:
                seen[m["name"]] = ("primary" if not read_only else "detached", None)
        writable = [n for n, (role, _) in seen.items() if role == "primary"]
        if len(writable) > 1:
            say(f"  several writable members that replicate from nobody ({', '.join(writable)}); "
                f"keeping {state['primary']} as the primary")
        primary = writable[0] if len(writable) == 1 else state["primary"]
        for m in state["members"]:
            name = m["name"]
            if name == primary:
                m.update(role="primary", source=None, rejoin=False)
            elif name in seen:
                role, src = seen[name]
                ok = role == "replica" and src is not None
                m.update(role="replica", source=src if ok else primary, rejoin=not ok)
            elif m.get("role") == "primary":  # down, and replaced: comes back as a replica
                m.update(role="replica", source=primary, rejoin=True)
        state["primary"] = primary
        return state

    @classmethod
    def stop_replication_group(cls, state_dir: Union[str, Path], timeout: float = 60.0) -> int:
        """Record the roles (record_replication), then stop the members running in state_dir,
        replicas first. Returns how many were stopped."""
        state_dir = Path(state_dir).resolve()
        try:
            state = cls.record_replication(state_dir)
        except Exception as e:  # stop them anyway
            say(f"  recording the replication roles failed: {e}")
            state = cls.observe_replication(state_dir)
        if state is None:
            return 0
        stopped = 0
        for m in sorted(state["members"], key=lambda m: m["name"] == state["primary"]):
            db = cls._member_db(state_dir, m)
            pid = read_pid_file(db.pid_file)
            if pid_alive(pid) and str(db.cnf) in pid_cmdline(pid):
                with step(f"stopping MariaDB {m['name']} ({m['role']}, pid {pid})"):
                    stop_pid(pid, timeout)
                stopped += 1
        return stopped


def stop_state_dir(state_dir: Union[str, Path], timeout: float = 60.0) -> int:
    """Stop what a (possibly other) process started in state_dir, by recorded pids. Returns how many
    processes were stopped."""
    state_dir = Path(state_dir).resolve()
    stopped = 0
    for pf in sorted(state_dir.glob("node*.pid")):
        pid = read_pid_file(pf)
        if pid_alive(pid) and str(state_dir / (pf.stem + ".json")) in pid_cmdline(pid):
            with step(f"stopping sluice {pf.stem} (pid {pid})"):
                stop_pid(pid, timeout)
            stopped += 1
        pf.unlink(missing_ok=True)
    pid = read_pid_file(state_dir / "mariadb" / "mariadb.pid")
    if pid_alive(pid) and str(state_dir / "mariadb" / "my.cnf") in pid_cmdline(pid):
        with step(f"stopping MariaDB (pid {pid})"):
            stop_pid(pid, timeout)
        stopped += 1
    (state_dir / "cluster.json").unlink(missing_ok=True)
    return stopped


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] in ("-h", "--help"):
        print(__doc__.strip())
        print("\nThis is a library; the command line is scripts/cluster (see scripts/cluster --help).")
        sys.exit(0)
    print("sluicelab is a library: use scripts/cluster (--help) or import it", file=sys.stderr)
    sys.exit(2)
