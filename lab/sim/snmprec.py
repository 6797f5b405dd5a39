"""Writing snmpsim's `.snmprec` data files.

snmpsim answers SNMP requests from a text file with one managed object a line:

    OID|TAG|VALUE          e.g.   1.3.6.1.2.1.1.5.0|4|pe1

TAG is the BER tag number of the value's type, written in decimal: 2 INTEGER, 4 OCTET STRING,
6 OBJECT IDENTIFIER, 64 IpAddress, 65 Counter32, 66 Gauge32, 67 TimeTicks, 70 Counter64. An
"x" after the tag means VALUE is hexadecimal (`4x|024b4c000001` for a MAC address). A
":module" after the tag hands VALUE to a *variation module* that computes the answer at
request time (`70:keyline_counter|rate=...` is a counter that grows with time).

snmpsim finds the object a GETNEXT or GETBULK asks for by a binary search through the file,
so the lines must be sorted by OID compared number by number (1.3.6.1.2.1.2.2.1.10 comes
before 1.3.6.1.2.1.2.2.1.9 as text, after it as OID). It keeps an index of every file and
rebuilds it when the file's modification time (whole seconds) changes: `write_snmprec`
replaces a file atomically and always moves its mtime forward, so a change is served on the
very next request, even two changes within one second.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

# BER tags of the SNMP types, as snmprec writes them.
INTEGER = "2"
OCTET_STRING = "4"
OBJECT_IDENTIFIER = "6"
IP_ADDRESS = "64"
COUNTER32 = "65"
GAUGE32 = "66"
TIMETICKS = "67"
COUNTER64 = "70"

_PLAIN_BYTES = frozenset(range(0x21, 0x7F)) - {ord("\\")}


@dataclass(frozen=True)
class Record:
    """One managed object: a numeric OID, its snmprec tag and its value as text."""

    oid: tuple[int, ...]
    tag: str
    value: str

    def line(self) -> str:
        return f"{'.'.join(map(str, self.oid))}|{self.tag}|{self.value}"


def oid(text: str, *suffix: int) -> tuple[int, ...]:
    """Parse a dotted OID and append index sub-identifiers: oid("1.3.6.1.2.1.2.2.1.1", 3)."""
    return (*(int(part) for part in text.strip(".").split(".")), *suffix)


def octets_index(data: bytes) -> tuple[int, ...]:
    """An OCTET STRING used as a (non-IMPLIED) table index: its length, then its bytes."""
    return (len(data), *data)


def integer(oid_: tuple[int, ...], value: int) -> Record:
    return Record(oid_, INTEGER, str(int(value)))


def gauge32(oid_: tuple[int, ...], value: int) -> Record:
    return Record(oid_, GAUGE32, str(min(max(int(value), 0), 2**32 - 1)))


def counter32(oid_: tuple[int, ...], value: int) -> Record:
    return Record(oid_, COUNTER32, str(int(value) % 2**32))


def timeticks(oid_: tuple[int, ...], ticks: int) -> Record:
    return Record(oid_, TIMETICKS, str(int(ticks) % 2**32))


def object_identifier(oid_: tuple[int, ...], value: str) -> Record:
    return Record(oid_, OBJECT_IDENTIFIER, value)


def octet_string(oid_: tuple[int, ...], value: str | bytes) -> Record:
    """A string value: plain text when that survives the file format, hexadecimal otherwise
    (control characters, line breaks, backslashes, non-ASCII, leading/trailing blanks)."""
    data = value.encode("utf-8") if isinstance(value, str) else value
    inner_ok = all(byte in _PLAIN_BYTES or byte == 0x20 for byte in data)
    if data and inner_ok and data[0] != 0x20 and data[-1] != 0x20:
        return Record(oid_, OCTET_STRING, data.decode("ascii"))
    return Record(oid_, OCTET_STRING + "x", data.hex())


def varied(oid_: tuple[int, ...], tag: str, module: str, value: str) -> Record:
    """A value computed at request time by the snmpsim variation module `module`."""
    return Record(oid_, f"{tag}:{module}", value)


def render(records: Iterable[Record]) -> str:
    """The file text: records sorted by OID; a duplicate OID is a bug in the caller."""
    ordered = sorted(records, key=lambda record: record.oid)
    for before, after in pairwise(ordered):
        if before.oid == after.oid:
            raise ValueError(f"duplicate OID {'.'.join(map(str, after.oid))} in snmprec data")
    return "".join(record.line() + "\n" for record in ordered)


def write_snmprec(path: Path, records: Iterable[Record]) -> None:
    """Replace `path` atomically with `records`, its mtime moved forward by at least one
    whole second so that snmpsim re-indexes it before the next answer."""
    text = render(records)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        previous_mtime_s = int(path.stat().st_mtime)
    except FileNotFoundError:
        previous_mtime_s = 0
    mtime_s = max(int(time.time()) + 1, previous_mtime_s + 1)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text, encoding="ascii")
    os.utime(temporary, (mtime_s, mtime_s))
    os.replace(temporary, path)
