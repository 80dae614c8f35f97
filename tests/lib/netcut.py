"""Cutting one sluice node off from its peers on a single machine, without network namespaces.

The node runs with a group id of its own (`setpriv --regid GID`, uid stays root so it reads its
files), and an nftables table drops, on the loopback interface:
  - every packet that process sends to the other nodes' Raft and admin ports (its Raft traffic and
    its budget reports), matched by the socket's group (`meta skgid`);
  - every packet anyone else sends to its Raft port.
Its database connections and its own admin and proxy ports are untouched: the node still reaches
the database and the test still reaches the node. Heal by deleting the table. Tables are named
sluice_cut_<pid>_<n>; stale ones of a crashed run (their pid gone) are removed on the next cut.
"""

from __future__ import annotations

import itertools
import os
import re
import shutil
import subprocess

GID_BASE = 42400
_seq = itertools.count(1)


def available() -> bool:
    return shutil.which("nft") is not None and shutil.which("setpriv") is not None and os.geteuid() == 0


def exec_prefix(gid: int) -> list:
    return ["setpriv", f"--regid={gid}", "--clear-groups"]


def _nft(*args, input_text=None):
    subprocess.run(["nft", *args], input=input_text, text=True, check=True, capture_output=True)


def _remove_stale():
    out = subprocess.run(["nft", "list", "tables"], text=True, capture_output=True).stdout
    for name in re.findall(r"table inet (sluice_cut_(\d+)_\d+)", out):
        table, pid = name
        if not os.path.exists(f"/proc/{pid}"):
            _nft("delete", "table", "inet", table)


def port_of(address: str) -> int:
    return int(address.rsplit(":", 1)[1])


class Cut:
    """cut = Cut(node, others, gid); cut.apply(); ...; cut.heal(). Also a context manager."""

    def __init__(self, node, others, gid: int):
        self.node, self.others, self.gid = node, list(others), gid
        self.table = f"sluice_cut_{os.getpid()}_{next(_seq)}"
        self.active = False

    def apply(self):
        _remove_stale()
        peer_ports = sorted({port_of(o.raft_address) for o in self.others} |
                            {o.admin_port for o in self.others})
        ports = ", ".join(str(p) for p in peer_ports)
        own_raft = port_of(self.node.raft_address)
        _nft("-f", "-", input_text=f"""
table inet {self.table} {{
  chain out {{
    type filter hook output priority -10; policy accept;
    meta skgid {self.gid} tcp dport {{ {ports} }} drop
    meta skgid != {self.gid} tcp dport {own_raft} drop
  }}
}}
""")
        self.active = True

    def heal(self):
        if self.active:
            _nft("delete", "table", "inet", self.table)
            self.active = False

    def __enter__(self):
        self.apply()
        return self

    def __exit__(self, *exc):
        self.heal()


class DbCut:
    """Cut one node (running with its own gid) off from database ports, and only from them: its
    peers, its clients and its admin API stay reachable. Packets are dropped, not refused, as on a
    real partition. cut = DbCut(gid, [port, ...]); cut.apply(); ...; cut.heal()."""

    def __init__(self, gid: int, ports):
        self.gid, self.ports = gid, sorted(ports)
        self.table = f"sluice_cut_{os.getpid()}_{next(_seq)}"
        self.active = False

    def apply(self):
        _remove_stale()
        ports = ", ".join(str(p) for p in self.ports)
        _nft("-f", "-", input_text=f"""
table inet {self.table} {{
  chain out {{
    type filter hook output priority -10; policy accept;
    meta skgid {self.gid} tcp dport {{ {ports} }} drop
  }}
}}
""")
        self.active = True

    heal = Cut.heal
    __enter__ = Cut.__enter__
    __exit__ = Cut.__exit__
