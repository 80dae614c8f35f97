#!/usr/bin/python3
"""replication: a MariaDB primary + N replicas (GTID, semi-sync) for the test lab.

    group = ReplicationGroup(DIR, replicas=2, tls=tls)   # members DIR/db1 (primary), DIR/db2, DIR/db3
    group.start()                                         # ... replicating, semi-sync clients == 2
    app = group.create_user("app")                        # on the primary; replicated to every member
    with group.primary.connect(app) as c: ...             # sluicelab.MariaDB API on every member
    group.wait_caught_up(group.replicas[0])
    group.kill_primary(); new = group.promote(group.replicas[0]); group.repoint(other, new)
    group.rejoin(old_primary, new)                        # old primary back as a replica
    group.stop()

Every member is a sluicelab.MariaDB with server_id=i (db1 = 1, ...) under its own state dir DIR/dbI
(so DIR/dbI/mariadb/{my.cnf,data,error.log,...}; sluicelab.stop_state_dir(DIR/dbI) stops it from
another process). The replication settings live in sluicelab.MariaDB._replication_settings(): binlog
mariadb-bin (ROW, log_slave_updates, gtid_strict_mode), relay log mariadb-relay-bin, report_host /
report_port, semi-sync with wait point AFTER_SYNC and rpl_semi_sync_master_timeout, skip_slave_start.
The role of a member is kept in its extra_settings, so a restart (which rewrites my.cnf) keeps it:
    primary:  read_only=OFF, rpl_semi_sync_master_enabled=ON (OFF when semi_sync=False), init-rpl-role=MASTER
    replica:  read_only=ON,  rpl_semi_sync_master_enabled=OFF,                           init-rpl-role=SLAVE
rpl_semi_sync_slave_enabled is ON everywhere (it only matters when an IO thread connects).
Why the master side is OFF on replicas: with log_slave_updates a replica binlogs what its SQL thread
applies, and with rpl_semi_sync_master_enabled=ON (and no semi-sync clients of its own) every such
commit waits rpl_semi_sync_master_timeout for an ACK: the replica lags by the timeout.
Why init-rpl-role=SLAVE: a primary killed while a transaction waited for its semi-sync ACK (AFTER_SYNC:
in the binary log and prepared in InnoDB, invisible to other sessions, not on any replica) commits it
during crash recovery when it starts as MASTER, so it would rejoin with an errant GTID; started with
init-rpl-role=SLAVE, recovery rolls such prepared transactions back and truncates the binary log
("Successfully truncated binlog file ... to remove transactions starting from GTID ...").

Bootstrap and GTID state. Every member is bootstrapped on its own, identically (mariadb-install-db,
then sluicelab's _bootstrap: root password, root@127.0.0.1, database `app`); with a binary log those
statements run with sql_log_bin=0 (sluicelab does that for server_id instances), so they create no
GTID, and neither does the CREATE DATABASE IF NOT EXISTS that _bootstrap repeats at every restart
(a GTID of the replica's own server_id would break gtid_strict_mode as soon as the primary sends the
same sequence number). The replication user is also created on every member with sql_log_bin=0:
it must exist on whichever member becomes primary later, and a replicated CREATE USER issued before
any replica is connected would wait rpl_semi_sync_master_timeout for an acknowledgement. Then
RESET MASTER and SET GLOBAL gtid_slave_pos='' on every member, so all start from the same empty GTID
state, and replicas connect with MASTER_USE_GTID=slave_pos. Everything written afterwards on the
primary (create_user(), test tables) is replicated, domain 0, server_id of the writing primary.
Each member's root password differs (DIR/dbI/mariadb/admin.password); root is not replicated.

Never write on a replica as root (root has READ_ONLY ADMIN, read_only does not stop it): it would
create an errant GTID with the replica's server_id and strict mode stops replication later.

Standard library + PyMySQL only; run with /usr/bin/python3.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional, Union

import sluicelab
from sluicelab import DBUser, LabError, MariaDB, TLSFiles, random_password, say, step

PRIMARY_SETTINGS = {"read_only": "OFF", "rpl_semi_sync_master_enabled": "ON", "init-rpl-role": "MASTER"}
REPLICA_SETTINGS = {"read_only": "ON", "rpl_semi_sync_master_enabled": "OFF", "init-rpl-role": "SLAVE"}
RUNTIME_SETTINGS = ("read_only", "rpl_semi_sync_master_enabled")  # the others only apply at startup


# --------------------------------------------------------------------------------------------
# queries on one member (root over the unix socket)


def query(db: MariaDB, sql: str, args=None) -> list:
    """All rows (tuples) of one statement run as root on db."""
    with db.admin() as c, c.cursor() as cur:
        cur.execute(sql, args)
        return list(cur.fetchall())


def query_value(db: MariaDB, sql: str, args=None):
    """The first column of the first row (None when there is no row)."""
    rows = query(db, sql, args)
    return rows[0][0] if rows else None


def replica_status(db: MariaDB) -> dict:
    """SHOW SLAVE STATUS as a dict (column name -> value); {} when db replicates from nobody."""
    import pymysql.cursors
    with db.admin(cursorclass=pymysql.cursors.DictCursor) as c, c.cursor() as cur:
        cur.execute("SHOW SLAVE STATUS")
        row = cur.fetchone()
    return dict(row) if row else {}


def global_status(db: MariaDB, like: str) -> dict:
    """SHOW GLOBAL STATUS LIKE pattern as a dict."""
    return dict(query(db, "SHOW GLOBAL STATUS LIKE %s", (like,)))


def semi_sync_status(db: MariaDB) -> dict:
    """{"master_enabled", "master_status", "master_clients", "slave_enabled", "slave_status",
    "yes_tx", "no_tx"} of db (booleans and ints)."""
    st = global_status(db, "Rpl_semi_sync%")
    v = dict(query(db, "SHOW GLOBAL VARIABLES LIKE 'rpl_semi_sync%'"))
    return {"master_enabled": v.get("rpl_semi_sync_master_enabled") == "ON",
            "master_status": st.get("Rpl_semi_sync_master_status") == "ON",
            "master_clients": int(st.get("Rpl_semi_sync_master_clients", 0)),
            "slave_enabled": v.get("rpl_semi_sync_slave_enabled") == "ON",
            "slave_status": st.get("Rpl_semi_sync_slave_status") == "ON",
            "yes_tx": int(st.get("Rpl_semi_sync_master_yes_tx", 0)),
            "no_tx": int(st.get("Rpl_semi_sync_master_no_tx", 0))}


def gtid_positions(db: MariaDB) -> dict:
    """{"binlog": @@gtid_binlog_pos, "current": @@gtid_current_pos, "slave": @@gtid_slave_pos}."""
    b, c, s = query(db, "SELECT @@gtid_binlog_pos, @@gtid_current_pos, @@gtid_slave_pos")[0]
    return {"binlog": b, "current": c, "slave": s}


def replicating(status: dict) -> bool:
    """Both threads of a SHOW SLAVE STATUS dict run (Slave_IO_Running is Yes, not Connecting)."""
    return status.get("Slave_IO_Running") == "Yes" and status.get("Slave_SQL_Running") == "Yes"


def describe(status: dict) -> str:
    """The parts of a SHOW SLAVE STATUS dict that explain a problem, on one line."""
    if not status:
        return "not a replica (SHOW SLAVE STATUS is empty)"
    keys = ("Master_Host", "Master_Port", "Slave_IO_Running", "Slave_SQL_Running", "Last_IO_Errno",
            "Last_IO_Error", "Last_SQL_Errno", "Last_SQL_Error", "Using_Gtid", "Gtid_IO_Pos",
            "Gtid_Slave_Pos", "Slave_SQL_Running_State")
    return ", ".join(f"{k}={status.get(k)!r}" for k in keys if k in status)


def wait_gtid(replica: MariaDB, pos: str, timeout: float = 10.0) -> None:
    """Wait until replica's @@gtid_slave_pos includes pos (MASTER_GTID_WAIT, in short slices so that a
    replication error is reported at once instead of after the timeout)."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if query_value(replica, "SELECT MASTER_GTID_WAIT(%s, %s)", (pos, max(0.0, min(0.5, left)))) == 0:
            return
        st = replica_status(replica)
        if st.get("Last_SQL_Errno") or (st.get("Last_IO_Errno") and st.get("Slave_IO_Running") == "No"):
            raise LabError(f"replica {replica.port} stopped while catching up to {pos}: {describe(st)}")
        if time.monotonic() >= deadline:
            raise LabError(f"replica {replica.port} did not reach GTID {pos} within {timeout:.0f} s: "
                           f"{describe(st)}")


def wait_caught_up(replica: MariaDB, primary: MariaDB, timeout: float = 10.0) -> str:
    """Wait until replica has applied everything in primary's binary log (its @@gtid_binlog_pos now);
    returns that position."""
    pos = query_value(primary, "SELECT @@gtid_binlog_pos")
    wait_gtid(replica, pos, timeout)
    return pos


def wait_replicating(replica: MariaDB, timeout: float = 10.0) -> dict:
    """Wait until both replication threads of replica run; returns its SHOW SLAVE STATUS."""
    deadline = time.monotonic() + timeout
    while True:
        st = replica_status(replica)
        if replicating(st):
            return st
        io_failed = st.get("Slave_IO_Running") == "No" and st.get("Last_IO_Errno")
        if st.get("Last_SQL_Errno") or io_failed or time.monotonic() > deadline:
            raise LabError(f"replica {replica.port} is not replicating: {describe(st)}\n"
                           f"{replica.error_log}:\n{sluicelab.tail(replica.error_log, 15)}")
        time.sleep(0.05)


def wait_semi_sync(primary: MariaDB, clients: int, timeout: float = 10.0) -> dict:
    """Wait until primary has semi-sync on (Rpl_semi_sync_master_status ON) with exactly `clients`
    semi-sync replicas connected (Rpl_semi_sync_master_clients); returns semi_sync_status()."""
    deadline = time.monotonic() + timeout
    while True:
        st = semi_sync_status(primary)
        if st["master_status"] and st["master_clients"] == clients:
            return st
        if time.monotonic() > deadline:
            raise LabError(f"semi-sync on {primary.port}: wanted status ON with {clients} clients, have {st}")
        time.sleep(0.05)


# --------------------------------------------------------------------------------------------
# the group


class ReplicationGroup:
    """A primary and `replicas` replicas (N >= 1), members DIR/db1 .. DIR/db<N+1>, server_id 1..N+1.

    Attributes: members (every MariaDB, db1 first), primary (the current one), source[m] (the member m
    replicates from, None for the primary and for members out of the topology), repl_user (DBUser
    of the replication account, the same on every member). semi_sync=False gives plain asynchronous
    replication. replication_tls=True makes replicas connect with TLS verified against the lab CA."""

    def __init__(self, state_dir: Union[str, Path], *, replicas: int = 1, tls: Optional[TLSFiles] = None,
                 semi_sync: bool = True, semi_sync_timeout_ms: int = 10000, replication_tls: bool = False,
                 connect_retry: int = 1, small: bool = True, max_connections: int = 200,
                 extra_settings: Optional[dict] = None):
        if replicas < 1:
            raise LabError("a replication group needs at least one replica")
        self.state_dir = Path(state_dir).resolve()
        self.n_replicas = replicas
        self.tls = tls
        self.semi_sync = semi_sync
        self.semi_sync_timeout_ms = semi_sync_timeout_ms
        self.replication_tls = replication_tls
        self.connect_retry = connect_retry  # MASTER_CONNECT_RETRY (s); MariaDB's default is 60
        self.small = small
        self.max_connections = max_connections
        self.extra_settings = dict(extra_settings or {})
        self.members: list = []
        self.primary: Optional[MariaDB] = None
        self.source: dict = {}
        self.repl_user = DBUser("repl", random_password())

    # -- topology

    @property
    def replicas(self) -> list:
        """The members replicating from the current primary."""
        return [m for m in self.members if self.source.get(m) is self.primary and m is not self.primary]

    def member(self, server_id: int) -> MariaDB:
        return self.members[server_id - 1]

    def name(self, db: MariaDB) -> str:
        return f"db{db.server_id} (port {db.port})"

    def _settings_for(self, primary: bool) -> dict:
        s = dict(PRIMARY_SETTINGS if primary else REPLICA_SETTINGS)
        if not self.semi_sync:
            s["rpl_semi_sync_master_enabled"] = "OFF"
        return s

    def _set_role(self, db: MariaDB, primary: bool) -> None:
        """Record the role in db's settings (kept by restarts) and apply it when db runs."""
        s = self._settings_for(primary)
        db.extra_settings.update(s)
        if db.running():
            with db.admin() as c, c.cursor() as cur:
                for k in RUNTIME_SETTINGS:
                    cur.execute(f"SET GLOBAL {k} = {s[k]}")

    # -- lifecycle

    def start(self, timeout: float = 60.0) -> "ReplicationGroup":
        """Start every member in a fresh DIR, wire the replicas to db1, wait until they replicate and
        (with semi_sync) the primary counts them all as semi-sync clients. Stops everything on failure."""
        if self.members:
            raise LabError("this group was started already (restart() starts one member again)")
        self.state_dir.mkdir(parents=True, exist_ok=True)
        if self.tls is None:
            self.tls = sluicelab.ensure_tls(self.state_dir / "tls")
        for i in range(1, self.n_replicas + 2):
            d = self.state_dir / f"db{i}"
            if (d / "mariadb" / "data").exists():
                raise LabError(f"{d} holds a MariaDB already; a replication group starts in a fresh dir")
            db = MariaDB(d, tls=self.tls, small=self.small, preferred_port=None, server_id=i,
                         semi_sync_timeout_ms=self.semi_sync_timeout_ms,
                         max_connections=self.max_connections, extra_settings=self.extra_settings)
            self.members.append(db)
        self.primary = self.members[0]
        try:
            for db in self.members:
                self._set_role(db, db is self.primary)
                db.start(timeout)
                self._prepare(db)
            for db in self.members[1:]:
                self.repoint(db, self.primary, timeout=timeout)
            self.wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _prepare(self, db: MariaDB) -> None:
        """The replication account, unlogged; then an empty GTID state."""
        with db.admin() as c, c.cursor() as cur:
            cur.execute("SET SESSION sql_log_bin = 0")
            cur.execute("CREATE OR REPLACE USER %s@'%%' IDENTIFIED VIA mysql_native_password "
                        "USING PASSWORD(%s)", (self.repl_user.name, self.repl_user.password))
            cur.execute("GRANT REPLICATION SLAVE, SLAVE MONITOR ON *.* TO %s@'%%'", (self.repl_user.name,))
            cur.execute("RESET MASTER")
            cur.execute("SET GLOBAL gtid_slave_pos = ''")

    def wait_ready(self, timeout: float = 10.0) -> None:
        """Every replica of the primary replicates and has caught up; semi-sync counts them all."""
        with step(f"waiting for {len(self.replicas)} replica(s) of {self.name(self.primary)}", ok="replicating"):
            for r in self.replicas:
                wait_replicating(r, timeout)
                wait_caught_up(r, self.primary, timeout)
            if self.semi_sync:
                wait_semi_sync(self.primary, len(self.replicas), timeout)

    def stop(self) -> None:
        """Stop every member that runs (replicas first), whatever happened before."""
        for db in reversed(self.members):
            try:
                db.stop()
            except Exception as e:  # keep stopping the others
                say(f"  stopping db{db.server_id} failed: {e}")

    def kill(self, db: MariaDB) -> None:
        """kill -9 of db's mariadbd. Its replicas keep retrying (MASTER_CONNECT_RETRY)."""
        with step(f"killing {self.name(db)} (SIGKILL)"):
            db.kill()

    def kill_primary(self) -> MariaDB:
        """kill -9 of the current primary; returns it (group.primary still names it until promote())."""
        db = self.primary
        self.kill(db)
        return db

    def restart(self, db: MariaDB, timeout: float = 60.0, wait: bool = True) -> MariaDB:
        """Start a stopped or killed member again with its role (same port, same settings). A replica
        starts its replication threads (skip_slave_start keeps them off until then); with wait, a
        replica waits until it replicates and has caught up, the primary until its replicas have
        reconnected as semi-sync clients. A former primary (replaced by promote()) comes back with
        rejoin(), not here: it would start writable."""
        src = self.source.get(db)
        if src is None and db is not self.primary:
            raise LabError(f"{self.name(db)} is no longer part of the topology: use rejoin()")
        db.start(timeout)
        if src is not None:
            query(db, "START SLAVE")
            if wait:
                wait_replicating(db, timeout)
                if src.running():
                    wait_caught_up(db, src, timeout)
        elif db is self.primary and wait:
            with step(f"waiting for the replicas of {self.name(db)} to reconnect", ok="replicating"):
                for r in self.replicas:
                    if r.running():
                        wait_replicating(r, timeout)
                if self.semi_sync:
                    wait_semi_sync(db, sum(1 for r in self.replicas if r.running()), timeout)
        return db

    # -- replication operations

    def repoint(self, replica: MariaDB, new_source: MariaDB, *, use_gtid: str = "slave_pos",
                timeout: float = 10.0, wait: bool = True) -> dict:
        """STOP SLAVE; CHANGE MASTER TO new_source (MASTER_USE_GTID=use_gtid, MASTER_CONNECT_RETRY);
        START SLAVE; with wait, until both threads run. Returns SHOW SLAVE STATUS."""
        if replica is self.primary:
            raise LabError(f"{self.name(replica)} is the primary; promote() another member first")
        u = self.repl_user
        opts = [f"MASTER_HOST='{new_source.host}'", f"MASTER_PORT={int(new_source.port)}",
                "MASTER_USER=%s", "MASTER_PASSWORD=%s", f"MASTER_USE_GTID={use_gtid}",
                f"MASTER_CONNECT_RETRY={int(self.connect_retry)}"]
        if self.replication_tls:
            opts += ["MASTER_SSL=1", "MASTER_SSL_CA=%s", "MASTER_SSL_VERIFY_SERVER_CERT=1"]
            args = (u.name, u.password, str(self.tls.ca_file))
        else:
            opts += ["MASTER_SSL=0"]
            args = (u.name, u.password)
        with step(f"pointing {self.name(replica)} at {self.name(new_source)}"):
            with replica.admin() as c, c.cursor() as cur:
                cur.execute("STOP SLAVE")
                cur.execute("CHANGE MASTER TO " + ", ".join(opts), args)
                cur.execute("START SLAVE")
            self.source[replica] = new_source
            self._set_role(replica, primary=False)
            return wait_replicating(replica, timeout) if wait else replica_status(replica)

    def promote(self, replica: MariaDB, timeout: float = 10.0) -> MariaDB:
        """Make replica the primary: stop its IO thread, let the SQL thread apply what was received
        (Gtid_IO_Pos), STOP SLAVE, RESET SLAVE ALL, read_only=OFF, semi-sync master on. The other
        members keep replicating from the old source until repoint(). The caller picks the most
        advanced replica: a member whose gtid_slave_pos is ahead of the new primary's binary log
        cannot connect to it (strict mode, error 1236). Semi-sync is ON at once with 0 clients, so
        the first commit before a replica is repointed waits rpl_semi_sync_master_timeout: repoint
        first (wait_ready()), then write."""
        with step(f"promoting {self.name(replica)}"):
            st = replica_status(replica)
            if st:
                query(replica, "STOP SLAVE IO_THREAD")
                io_pos = replica_status(replica).get("Gtid_IO_Pos") or ""
                if io_pos and st.get("Slave_SQL_Running") == "Yes":
                    wait_gtid(replica, io_pos, timeout)
                query(replica, "STOP SLAVE")
                query(replica, "RESET SLAVE ALL")
            self.source[replica] = None
            self._set_role(replica, primary=True)
            self.primary = replica
        return replica

    def rejoin(self, old: MariaDB, new_source: MariaDB, timeout: float = 60.0) -> dict:
        """Bring a former primary (stopped, killed or still running) back as a replica of new_source:
        role replica (read_only ON before it takes any connection), gtid_slave_pos = its own
        @@gtid_binlog_pos, then repoint with MASTER_USE_GTID=slave_pos. A killed primary starts with
        init-rpl-role=SLAVE, which rolls back and cuts from its binary log the transactions that were
        still waiting for a semi-sync ACK. Fails (strict mode, error 1236) when old has other
        transactions new_source never got (e.g. asynchronous commits after a semi-sync timeout)."""
        if old is self.primary:
            raise LabError(f"{self.name(old)} is the primary; promote() another member first")
        self._set_role(old, primary=False)
        if not old.running():
            old.start(timeout)
        with old.admin() as c, c.cursor() as cur:
            cur.execute("STOP SLAVE")
            cur.execute("SET GLOBAL gtid_slave_pos = @@gtid_binlog_pos")
        return self.repoint(old, new_source, timeout=timeout)

    # -- data

    def create_user(self, name: Optional[str] = None, password: Optional[str] = None, *,
                    wait: bool = True, **kw) -> DBUser:
        """MariaDB.create_user on the primary (replicated); with wait, until every running replica
        has it. The password file goes to the primary's state dir (see MariaDB.create_user)."""
        user = self.primary.create_user(name, password, **kw)
        if wait:
            self.wait_all_caught_up()
        return user

    def wait_caught_up(self, replica: MariaDB, timeout: float = 10.0) -> str:
        """Wait until replica has applied the current primary's whole binary log; returns the GTID
        position waited for."""
        return wait_caught_up(replica, self.primary, timeout)

    def wait_all_caught_up(self, timeout: float = 10.0) -> str:
        pos = query_value(self.primary, "SELECT @@gtid_binlog_pos")
        for r in self.replicas:
            if r.running():
                wait_gtid(r, pos, timeout)
        return pos

    def info(self) -> dict:
        return {"primary": self.primary.server_id if self.primary else None,
                "members": [dict(db.info(), server_id=db.server_id,
                                 source=self.source[db].server_id if self.source.get(db) else None)
                            for db in self.members]}
