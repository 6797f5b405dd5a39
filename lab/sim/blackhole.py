"""Making a simulated device vanish from the network, as a dead router does.

The simulated devices live on loopback addresses (127.0.1.N), and the kernel answers for
any of them whatever snmpsim does: an ICMP echo gets its reply, a datagram to a port nobody
listens on gets "port unreachable". A device the simulation fails ("down") must go quiet on
both, or the collector rightly concludes that only its SNMP agent is silent
(collectors.reachability). With root, an nftables table of the simulation's own drops
everything sent to the addresses of the failed devices: `Blackhole.block(address)` adds one
to the table's set, `unblock` takes it out, `close` deletes the table. Nothing else of the
machine's firewall is touched, and the table's name carries the process id, so two
simulations never share one and a table left behind by a process that died is recognised
and removed by the next one.

Without root (or without the `nft` command) the blackhole is unavailable:
`Blackhole.open()` returns None, and a failed simulated device answers ping: it looks
SNMP-unresponsive, not down.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import shutil
import subprocess
import threading

log = logging.getLogger(__name__)

TABLE_PREFIX = "keyline_sim_"
_TABLE_NAME = re.compile(rf"^table inet ({TABLE_PREFIX}(\d+)_\d+)$", re.MULTILINE)
_counter = itertools.count(1)


def _nft(*arguments: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["nft", *arguments], input=stdin, capture_output=True, text=True,
                          timeout=10, check=False)


def _remove_stale_tables() -> None:
    listing = _nft("list", "tables", "inet")
    for name, pid in _TABLE_NAME.findall(listing.stdout):
        if not os.path.exists(f"/proc/{pid}"):
            _nft("delete", "table", "inet", name)


class Blackhole:
    """An nftables table dropping everything sent to a set of IPv4 addresses."""

    def __init__(self, table: str) -> None:
        self.table = table
        self._lock = threading.Lock()
        self._blocked: set[str] = set()

    @classmethod
    def open(cls) -> Blackhole | None:
        """The block, or None where this process cannot use nftables (not root, no nft)."""
        if os.geteuid() != 0 or shutil.which("nft") is None:
            return None
        _remove_stale_tables()
        table = f"{TABLE_PREFIX}{os.getpid()}_{next(_counter)}"
        script = (f"table inet {table} {{\n"
                  "  set blocked { type ipv4_addr; }\n"
                  "  chain out { type filter hook output priority 0; policy accept;\n"
                  "    ip daddr @blocked drop\n  }\n}\n")
        result = _nft("-f", "-", stdin=script)
        if result.returncode != 0:
            log.warning("cannot make failed simulated devices vanish (nftables): %s",
                        result.stderr.strip())
            return None
        return cls(table)

    def block(self, address: str) -> None:
        with self._lock:
            if address in self._blocked:
                return
            self._run("add", "element", "inet", self.table, "blocked", f"{{ {address} }}")
            self._blocked.add(address)

    def unblock(self, address: str) -> None:
        with self._lock:
            if address not in self._blocked:
                return
            self._run("delete", "element", "inet", self.table, "blocked", f"{{ {address} }}")
            self._blocked.discard(address)

    def blocked(self) -> set[str]:
        with self._lock:
            return set(self._blocked)

    def close(self) -> None:
        with self._lock:
            _nft("delete", "table", "inet", self.table)
            self._blocked.clear()

    def _run(self, *arguments: str) -> None:
        result = _nft(*arguments)
        if result.returncode != 0:
            raise RuntimeError(f"nft {' '.join(arguments)}: {result.stderr.strip()}")
