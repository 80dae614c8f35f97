"""rawmysql: a minimal MySQL/MariaDB client over a plain socket, for feeding a server bad input.

Standard library only. It does exactly what it is told, byte for byte: send arbitrary bytes or
packets with any sequence id, upgrade to TLS after an SSLRequest (ssl.SSLContext.wrap_socket), log in
with mysql_native_password given the greeting's nonce, and read packets with a timeout. It never
retries, never fixes sequence ids and never hides a close.

    c = RawConn("127.0.0.1", port)           # connects and reads the greeting (c.greeting)
    c.start_tls(ca_file)                      # SSLRequest (seq 1) + TLS handshake
    resp = c.login("app", "pw", database="app")   # HandshakeResponse41, returns the server's answer
    c.send_packet(b"\\x03SELECT 1", seq=0)   # a COM_QUERY
    seq, payload = c.read_packet()
    err = parse_err(payload)                  # ErrPacket(code, sqlstate, message) or None
    assert c.wait_closed()                    # True when the peer closed (EOF, TLS close, reset)
"""

from __future__ import annotations

import hashlib
import select
import socket
import ssl
import struct
import time
from dataclasses import dataclass
from typing import Optional, Tuple, Union

# Capability flags (the low 32 bits; MariaDB's extended ones live in the handshake filler).
CLIENT_LONG_PASSWORD = 1 << 0
CLIENT_FOUND_ROWS = 1 << 1
CLIENT_LONG_FLAG = 1 << 2
CLIENT_CONNECT_WITH_DB = 1 << 3
CLIENT_PROTOCOL_41 = 1 << 9
CLIENT_SSL = 1 << 11
CLIENT_TRANSACTIONS = 1 << 13
CLIENT_SECURE_CONNECTION = 1 << 15
CLIENT_MULTI_STATEMENTS = 1 << 16
CLIENT_MULTI_RESULTS = 1 << 17
CLIENT_PLUGIN_AUTH = 1 << 19
CLIENT_CONNECT_ATTRS = 1 << 20
CLIENT_PLUGIN_AUTH_LENENC = 1 << 21

DEFAULT_CAPS = (CLIENT_LONG_PASSWORD | CLIENT_LONG_FLAG | CLIENT_PROTOCOL_41 | CLIENT_TRANSACTIONS
                | CLIENT_SECURE_CONNECTION | CLIENT_MULTI_RESULTS | CLIENT_PLUGIN_AUTH
                | CLIENT_PLUGIN_AUTH_LENENC)

COM_QUIT = 0x01
COM_INIT_DB = 0x02
COM_QUERY = 0x03
COM_PING = 0x0E

SERVER_STATUS_IN_TRANS = 0x0001
SERVER_STATUS_AUTOCOMMIT = 0x0002

MAX_CHUNK = 0xFFFFFF
COLLATION_UTF8MB4_GENERAL_CI = 45


class Closed(ConnectionError):
    """The peer closed the connection (EOF, TLS close_notify or reset) before a whole packet came."""

    def __init__(self, msg: str, partial: bytes = b"", kind: str = "eof"):
        super().__init__(msg)
        self.partial = partial
        self.kind = kind  # "eof" (FIN or TLS close_notify), "reset" or "tls-error"


@dataclass
class Greeting:
    protocol: int
    server_version: str
    conn_id: int
    nonce: bytes            # the 20 scramble bytes (without the trailing NUL)
    caps: int               # low 32 bits
    collation: int
    status: int
    plugin: str
    raw: bytes


@dataclass
class ErrPacket:
    code: int
    sqlstate: Optional[str]  # None when the packet has no '#' marker (pre-4.1 form)
    message: str

    def __str__(self):
        return f"ERROR {self.code} ({self.sqlstate}): {self.message}"


@dataclass
class OkPacket:
    affected_rows: int
    last_insert_id: int
    status: int
    warnings: int


# --------------------------------------------------------------------------------------------
# encoding helpers


def header(length: int, seq: int) -> bytes:
    return struct.pack("<I", length)[:3] + bytes([seq & 0xFF])


def packet(payload: bytes, seq: int) -> bytes:
    """One packet (payload < 16 MiB - 1) with its 4-byte header."""
    if len(payload) >= MAX_CHUNK:
        raise ValueError("payload needs splitting; use packets()")
    return header(len(payload), seq) + payload


def packets(payload: bytes, seq: int) -> bytes:
    """A logical packet split into 16 MiB - 1 chunks, as the protocol wants."""
    out, off = [], 0
    while True:
        chunk = payload[off:off + MAX_CHUNK]
        out.append(header(len(chunk), seq) + chunk)
        seq += 1
        off += len(chunk)
        if len(chunk) < MAX_CHUNK:
            return b"".join(out)


def lenenc_int(v: int) -> bytes:
    if v < 251:
        return bytes([v])
    if v < 1 << 16:
        return b"\xfc" + struct.pack("<H", v)
    if v < 1 << 24:
        return b"\xfd" + struct.pack("<I", v)[:3]
    return b"\xfe" + struct.pack("<Q", v)


def read_lenenc_int(p: bytes, off: int) -> Tuple[Optional[int], int]:
    b = p[off]
    if b < 0xFB:
        return b, off + 1
    if b == 0xFB:
        return None, off + 1
    if b == 0xFC:
        return struct.unpack_from("<H", p, off + 1)[0], off + 3
    if b == 0xFD:
        return int.from_bytes(p[off + 1:off + 4], "little"), off + 4
    return struct.unpack_from("<Q", p, off + 1)[0], off + 9


def native_token(password: Union[str, bytes], nonce: bytes) -> bytes:
    """mysql_native_password: SHA1(pw) XOR SHA1(nonce + SHA1(SHA1(pw))); empty for an empty password."""
    if isinstance(password, str):
        password = password.encode()
    if not password:
        return b""
    h1 = hashlib.sha1(password).digest()
    h2 = hashlib.sha1(h1).digest()
    h3 = hashlib.sha1(nonce[:20] + h2).digest()
    return bytes(a ^ b for a, b in zip(h1, h3))


def ssl_request(caps: int = DEFAULT_CAPS, max_packet: int = 1 << 24,
                collation: int = COLLATION_UTF8MB4_GENERAL_CI) -> bytes:
    """The 32-byte SSLRequest payload."""
    return struct.pack("<IIB", caps | CLIENT_SSL, max_packet, collation) + b"\0" * 23


def handshake_response(user: Union[str, bytes], auth: bytes, *, database: Union[str, bytes, None] = None,
                       plugin: Union[str, bytes, None] = "mysql_native_password", caps: int = DEFAULT_CAPS,
                       max_packet: int = 1 << 24, collation: int = COLLATION_UTF8MB4_GENERAL_CI,
                       tls: bool = False) -> bytes:
    """A HandshakeResponse41 payload, well formed for the given capabilities."""
    if isinstance(user, str):
        user = user.encode()
    if isinstance(database, str):
        database = database.encode()
    if isinstance(plugin, str):
        plugin = plugin.encode()
    if database is not None:
        caps |= CLIENT_CONNECT_WITH_DB
    if plugin is None:
        caps &= ~CLIENT_PLUGIN_AUTH
    if tls:
        caps |= CLIENT_SSL
    out = struct.pack("<IIB", caps, max_packet, collation) + b"\0" * 23 + user + b"\0"
    if caps & CLIENT_PLUGIN_AUTH_LENENC:
        out += lenenc_int(len(auth)) + auth
    elif caps & CLIENT_SECURE_CONNECTION:
        out += bytes([len(auth)]) + auth
    else:
        out += auth + b"\0"
    if caps & CLIENT_CONNECT_WITH_DB:
        out += (database or b"") + b"\0"  # empty: no database
    if caps & CLIENT_PLUGIN_AUTH:
        out += plugin + b"\0"
    return out


# --------------------------------------------------------------------------------------------
# decoding helpers


def parse_greeting(p: bytes) -> Greeting:
    if not p or p[0] == 0xFF:
        err = parse_err(p)
        raise ValueError(f"server sent an error instead of a greeting: {err}")
    if p[0] != 10:
        raise ValueError(f"not a v10 greeting: {p[:16]!r}")
    end = p.index(b"\0", 1)
    version = p[1:end].decode(errors="replace")
    off = end + 1
    conn_id = struct.unpack_from("<I", p, off)[0]
    off += 4
    nonce1 = p[off:off + 8]
    off += 9  # + filler
    caps_lo = struct.unpack_from("<H", p, off)[0]
    off += 2
    collation = p[off]
    status = struct.unpack_from("<H", p, off + 1)[0]
    caps_hi = struct.unpack_from("<H", p, off + 3)[0]
    auth_len = p[off + 5]
    off += 6 + 10
    caps = caps_lo | caps_hi << 16
    n2 = max(13, auth_len - 8)
    nonce2 = p[off:off + n2]
    off += n2
    nonce = (nonce1 + nonce2).rstrip(b"\0")[:20]
    plugin = ""
    if caps & CLIENT_PLUGIN_AUTH and off < len(p):
        plugin = p[off:].split(b"\0", 1)[0].decode(errors="replace")
    return Greeting(p[0], version, conn_id, nonce, caps, collation, status, plugin, p)


def parse_err(p: bytes) -> Optional[ErrPacket]:
    """The ERR packet in p, or None when p is not one."""
    if len(p) < 3 or p[0] != 0xFF:
        return None
    code = struct.unpack_from("<H", p, 1)[0]
    if len(p) >= 9 and p[3:4] == b"#":
        return ErrPacket(code, p[4:9].decode(errors="replace"), p[9:].decode(errors="replace"))
    return ErrPacket(code, None, p[3:].decode(errors="replace"))


def parse_ok(p: bytes) -> Optional[OkPacket]:
    if not p or p[0] != 0x00 or len(p) < 7:
        return None
    affected, off = read_lenenc_int(p, 1)
    insert_id, off = read_lenenc_int(p, off)
    status, warnings = struct.unpack_from("<HH", p, off)
    return OkPacket(affected, insert_id, status, warnings)


def is_eof(p: bytes) -> bool:
    return len(p) < 9 and len(p) >= 1 and p[0] == 0xFE


# --------------------------------------------------------------------------------------------
# the connection


class RawConn:
    """One client connection. All reads take a timeout (seconds) and raise socket.timeout /
    TimeoutError when nothing (or not enough) arrives in time, Closed when the peer hangs up."""

    def __init__(self, host: str, port: int, *, timeout: float = 10.0, read_greeting: bool = True):
        self.host, self.port, self.timeout = host, port, timeout
        self.sock: Union[socket.socket, ssl.SSLSocket] = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._buf = bytearray()
        self.tls = False
        self.greeting: Optional[Greeting] = None
        self.close_kind: Optional[str] = None  # set by wait_closed()
        self.greeting_seq: Optional[int] = None
        if read_greeting:
            self.greeting_seq, payload = self.read_packet()
            self.greeting = parse_greeting(payload)

    # -- context manager

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def abort(self) -> None:
        """Close with a TCP reset (SO_LINGER 0): a client that vanishes without saying goodbye."""
        try:
            raw = self.sock
            if isinstance(raw, ssl.SSLSocket):
                raw = socket.socket(fileno=raw.detach())
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            raw.close()
        except OSError:
            pass

    # -- sending

    def send(self, data: bytes) -> None:
        """Send raw bytes (through TLS when upgraded)."""
        self.sock.sendall(data)

    def send_lenient(self, data: bytes) -> Optional[OSError]:
        """Send raw bytes; a peer that closed meanwhile (EPIPE, reset) is returned, not raised."""
        try:
            self.sock.sendall(data)
            return None
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError) as e:
            return e

    def send_packet(self, payload: bytes, seq: int) -> None:
        self.send(packets(payload, seq))

    def command(self, cmd: int, arg: bytes = b"") -> None:
        self.send_packet(bytes([cmd]) + arg, 0)

    # -- receiving

    def _fill(self, deadline: float) -> None:
        """Read at least one more byte into the buffer, or raise Closed / TimeoutError."""
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("timed out waiting for data from the server")
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except (socket.timeout, ssl.SSLWantReadError):
                raise TimeoutError("timed out waiting for data from the server") from None
            except ConnectionResetError as e:
                raise Closed(f"connection reset: {e}", bytes(self._buf), "reset") from None
            except ssl.SSLError as e:
                raise Closed(f"TLS error: {e}", bytes(self._buf), "tls-error") from None
            if not data:
                raise Closed("server closed the connection", bytes(self._buf))
            self._buf += data
            return

    def read_exact(self, n: int, timeout: Optional[float] = None) -> bytes:
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while len(self._buf) < n:
            self._fill(deadline)
        out = bytes(self._buf[:n])
        del self._buf[:n]
        return out

    def read_chunk(self, timeout: Optional[float] = None) -> Tuple[int, bytes]:
        """One wire packet (no reassembly): (seq, payload)."""
        h = self.read_exact(4, timeout)
        length = int.from_bytes(h[:3], "little")
        return h[3], self.read_exact(length, timeout)

    def read_packet(self, timeout: Optional[float] = None) -> Tuple[int, bytes]:
        """One logical packet (16 MiB chunks joined): (seq of the first chunk, payload)."""
        seq, payload = self.read_chunk(timeout)
        if len(payload) < MAX_CHUNK:
            return seq, payload
        parts = [payload]
        while len(parts[-1]) == MAX_CHUNK:
            parts.append(self.read_chunk(timeout)[1])
        return seq, b"".join(parts)

    def read_err(self, timeout: Optional[float] = None) -> Tuple[int, ErrPacket]:
        """Read one packet that must be an ERR packet: (seq, ErrPacket); AssertionError otherwise."""
        seq, p = self.read_packet(timeout)
        err = parse_err(p)
        if err is None:
            raise AssertionError(f"expected an ERR packet, got seq {seq} payload {p[:64]!r}")
        return seq, err

    def wait_closed(self, timeout: float = 5.0) -> bool:
        """True when the peer closes within timeout with nothing more to say (EOF, TLS close_notify or a
        reset: self.close_kind says which); False on timeout. Bytes that arrive instead raise
        AssertionError."""
        deadline = time.monotonic() + timeout
        try:
            while True:
                self._fill(deadline)
                if self._buf:
                    raise AssertionError(f"expected the connection to close, got {bytes(self._buf[:64])!r}")
        except Closed as e:
            if e.partial:
                raise AssertionError(f"expected the connection to close, got {e.partial[:64]!r}") from None
            self.close_kind = e.kind
            return True
        except TimeoutError:
            return False

    def closed_now(self) -> bool:
        """Non-blocking check: has the peer closed (EOF or reset)? Pending bytes make it False."""
        try:
            r, _, _ = select.select([self.sock], [], [], 0)
            if not r:
                return False
            self.sock.settimeout(0.001)
            try:
                data = self.sock.recv(65536)
            except (socket.timeout, ssl.SSLWantReadError):
                return False
            except (ConnectionResetError, ssl.SSLError):
                return True
            if not data:
                return True
            self._buf += data
            return False
        finally:
            self.sock.settimeout(self.timeout)

    # -- TLS and login

    def start_tls(self, ca_file=None, *, caps: int = DEFAULT_CAPS | CLIENT_CONNECT_WITH_DB, seq: int = 1,
                  server_hostname: str = "127.0.0.1") -> None:
        """Send an SSLRequest and run the TLS handshake (certificate verified when ca_file is given).
        login() then uses the same capabilities: MariaDB keeps the SSLRequest's and ignores changes."""
        self.send_packet(ssl_request(caps), seq)
        self.caps = caps | CLIENT_SSL
        ctx = ssl.create_default_context(cafile=str(ca_file)) if ca_file else ssl._create_unverified_context()
        self.sock.settimeout(self.timeout)
        self.sock = ctx.wrap_socket(self.sock, server_hostname=server_hostname)
        self.tls = True
        self._seq_after_tls = seq + 1

    def login(self, user: str, password: str, *, database: Optional[str] = None, caps: Optional[int] = None,
              seq: Optional[int] = None, timeout: Optional[float] = None) -> Tuple[int, bytes]:
        """Send a native-password HandshakeResponse41 and return the server's answer (seq, payload).
        An AuthSwitchRequest to mysql_native_password is followed."""
        assert self.greeting is not None
        if seq is None:
            seq = getattr(self, "_seq_after_tls", 1) if self.tls else 1
        if caps is None:
            caps = self.caps if self.tls else DEFAULT_CAPS
        token = native_token(password, self.greeting.nonce)
        self.send_packet(handshake_response(user, token, database=database, caps=caps, tls=self.tls), seq)
        rseq, p = self.read_packet(timeout)
        if p[:1] == b"\xfe" and len(p) > 1:  # AuthSwitchRequest
            end = p.index(b"\0", 1)
            plugin = p[1:end]
            data = p[end + 1:].rstrip(b"\0")
            if plugin != b"mysql_native_password":
                raise AssertionError(f"server asks for plugin {plugin!r}; rawmysql speaks native only")
            self.send_packet(native_token(password, data), rseq + 1)
            rseq, p = self.read_packet(timeout)
        return rseq, p

    # -- commands

    def query(self, sql: Union[str, bytes], timeout: Optional[float] = None) -> dict:
        """Run a COM_QUERY and read its whole (single) response:
        {"ok": OkPacket} | {"err": ErrPacket} | {"columns": n, "rows": [[bytes|None, ...]], "status": int}."""
        if isinstance(sql, str):
            sql = sql.encode()
        self.send_packet(bytes([COM_QUERY]) + sql, 0)
        return self.read_response(timeout)

    def read_response(self, timeout: Optional[float] = None) -> dict:
        _, p = self.read_packet(timeout)
        if p[:1] == b"\x00":
            return {"ok": parse_ok(p)}
        if p[:1] == b"\xff":
            return {"err": parse_err(p)}
        ncols, _ = read_lenenc_int(p, 0)
        for _ in range(ncols):
            self.read_packet(timeout)
        _, p = self.read_packet(timeout)
        assert is_eof(p), f"expected EOF after the column definitions, got {p[:16]!r}"
        rows = []
        while True:
            _, p = self.read_packet(timeout)
            if is_eof(p):
                return {"columns": ncols, "rows": rows, "status": struct.unpack_from("<H", p, 3)[0]}
            if p[:1] == b"\xff":
                return {"err": parse_err(p), "rows": rows}
            row, off = [], 0
            for _ in range(ncols):
                if p[off] == 0xFB:
                    row.append(None)
                    off += 1
                    continue
                n, off = read_lenenc_int(p, off)
                row.append(p[off:off + n])
                off += n
            rows.append(row)

    def scalar(self, sql: str, timeout: Optional[float] = None):
        """The first column of the first row, decoded as text (None for NULL)."""
        r = self.query(sql, timeout)
        if "err" in r:
            raise AssertionError(f"{sql}: {r['err']}")
        v = r["rows"][0][0]
        return None if v is None else v.decode()
