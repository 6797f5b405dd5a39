"""Trap receiver under a flood: how many datagrams a second it gets through, by kind.

Two parts, both on loopback against collectors.traps.TrapReceiver as the collector runs it
(default receive buffer, one known device at 127.0.1.5 with the community "bench"):

1. Sustainable rate per kind of datagram. The receiver's event loop is held while `--count`
   datagrams of one kind are sent into its socket (the receive buffer holds them all: the
   kernel drops printed are 0), then released; the rate is the count over the
   time it takes to get through them, so the receiver is never idle and no sender shares
   its CPU. Kinds: random bytes from an unknown source (rejected by the cheap screen),
   SNMP-shaped junk from an unknown source (over the unknown-source decode budget: shed),
   v2c linkDown traps from the known device (the fast path, one observation each), the
   same with a wrong community (rejected), v1 linkDown traps (pysnmp's to decode: v1, v3
   and informs are), and SNMP-shaped junk from the known device (pysnmp tries, fails).
2. The measured incident (issue 11): a sender process floods random bytes at `--rate`
   datagrams/s for `--seconds` from an unknown source with `--traps` real linkDown traps
   from the known device spread inside; printed: datagrams read, kernel drops, traps that
   became observations, log records with a traceback.

    python bench/traps.py [--count 15000] [--rate 10000] [--seconds 10] [--traps 2]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import multiprocessing
import os
import random
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path, and bench/alarms.py there is
# named like the alarms package: take the folder off.
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)

from pyasn1.codec.ber import encoder
from pysnmp.proto import api

from collectors.model import PollTarget, SnmpCredential
from collectors.traps import LINK_DOWN, TrapReceiver, burst_capacity

KNOWN = "127.0.1.5"
UNKNOWN = "127.0.1.200"
COMMUNITY = "bench"
DEVICE = PollTarget(device_id=1, device_key="pe1", host=KNOWN, port=161,
                    credential=SnmpCredential(version="v2c"), poller_group="default",
                    ports_by_if_index={7: 107})


def link_down(community: str = COMMUNITY, request_id: int = 1, if_index: int = 7) -> bytes:
    """A v2c linkDown trap message, BER-encoded."""
    v2c = api.v2c
    pdu = v2c.TrapPDU()
    v2c.apiTrapPDU.set_defaults(pdu)
    v2c.apiTrapPDU.set_request_id(pdu, request_id)
    v2c.apiTrapPDU.set_varbinds(pdu, [
        ((1, 3, 6, 1, 2, 1, 1, 3, 0), v2c.TimeTicks(4200)),
        ((1, 3, 6, 1, 6, 3, 1, 1, 4, 1, 0), v2c.ObjectIdentifier(LINK_DOWN)),
        ((1, 3, 6, 1, 2, 1, 2, 2, 1, 1, if_index), v2c.Integer(if_index)),
    ])
    message = v2c.Message()
    v2c.apiMessage.set_defaults(message)
    v2c.apiMessage.set_community(message, community)
    v2c.apiMessage.set_pdu(message, pdu)
    return encoder.encode(message)


def v1_link_down(community: str = COMMUNITY, if_index: int = 7) -> bytes:
    """A v1 Trap-PDU, generic-trap linkDown: decoded by pysnmp (no fast path for v1)."""
    v1 = api.v1
    pdu = v1.TrapPDU()
    v1.apiTrapPDU.set_defaults(pdu)
    v1.apiTrapPDU.set_enterprise(pdu, (1, 3, 6, 1, 4, 1, 8072, 3, 2, 10))
    v1.apiTrapPDU.set_agent_address(pdu, v1.IpAddress(KNOWN))
    v1.apiTrapPDU.set_generic_trap(pdu, 2)
    v1.apiTrapPDU.set_varbinds(pdu, [((1, 3, 6, 1, 2, 1, 2, 2, 1, 1, if_index),
                                      v1.Integer(if_index))])
    message = v1.Message()
    v1.apiMessage.set_defaults(message)
    v1.apiMessage.set_community(message, community)
    v1.apiMessage.set_pdu(message, pdu)
    return encoder.encode(message)


def random_bytes(rng: random.Random) -> bytes:
    return rng.randbytes(rng.randint(20, 200))


def snmp_shaped(rng: random.Random) -> bytes:
    """Junk behind a valid SEQUENCE / version header: passes the screen, pysnmp fails."""
    body = b"\x02\x01\x01" + rng.randbytes(rng.randint(20, 120))
    return b"\x30" + bytes([len(body)]) + body


def sender_socket(source: str) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((source, 0))
    return sock


async def drain_rate(kind: str, source: str, make: Callable[[int], bytes],
                     count: int) -> None:
    arrived: list[object] = []
    receiver = TrapReceiver({KNOWN: DEVICE}, host="127.0.0.1", port=0,
                            communities=[COMMUNITY], on_observations=arrived.append)
    await receiver.start()
    try:
        capacity = burst_capacity(receiver.stats.receive_buffer_bytes)
        datagrams = [make(number) for number in range(count)]
        sock = sender_socket(source)
        for datagram in datagrams:  # the loop is held: nothing is read meanwhile
            sock.sendto(datagram, receiver.address)
        sock.close()
        wall0, cpu0 = time.perf_counter(), time.process_time()
        while receiver.stats.datagrams < count:
            await asyncio.sleep(0.005)
            if time.perf_counter() - wall0 > 120:
                break
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        receiver.sample_drops()
        stats = receiver.stats
        print(f"  {kind:<44} {stats.datagrams / wall:>9,.0f}/s  "
              f"{cpu / max(stats.datagrams, 1) * 1e6:>6.1f} us CPU each  "
              f"(read {stats.datagrams:,} of {count:,}, kernel drops {stats.kernel_drops},"
              f" observations {stats.observations}; promised burst {capacity:,})")
    finally:
        await receiver.stop()


def flood(address: tuple[str, int], rate: float, seconds: float, traps: int,
          seed: int) -> None:
    """In its own process: random bytes from UNKNOWN at `rate`/s, `traps` linkDowns from KNOWN
    spread evenly inside."""
    rng = random.Random(seed)
    junk = [random_bytes(rng) for _ in range(4096)]
    noise, device = sender_socket(UNKNOWN), sender_socket(KNOWN)
    total = int(rate * seconds)
    trap_at = {int(total * (n + 1) / (traps + 1)): n for n in range(traps)}
    start = time.perf_counter()
    for number in range(total):
        if number in trap_at:
            device.sendto(link_down(request_id=1000 + trap_at[number]), address)
        noise.sendto(junk[number % len(junk)], address)
        if number % 100 == 99:  # pace in steps of 100 datagrams
            ahead = start + (number + 1) / rate - time.perf_counter()
            if ahead > 0:
                time.sleep(ahead)


class TracebackCounter(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.tracebacks = 0
        self.warnings = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.tracebacks += bool(record.exc_info)
        self.warnings += record.levelno >= logging.WARNING


async def incident(rate: float, seconds: float, traps: int) -> None:
    arrived: list[object] = []
    receiver = TrapReceiver({KNOWN: DEVICE}, host="127.0.0.1", port=0,
                            communities=[COMMUNITY], on_observations=arrived.append)
    counter = TracebackCounter()
    logging.getLogger().addHandler(counter)
    await receiver.start()
    try:
        process = multiprocessing.get_context("spawn").Process(
            target=flood, args=(receiver.address, rate, seconds, traps, 11))
        cpu0 = time.process_time()
        process.start()
        while process.is_alive():
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)  # whatever is still queued
        cpu = time.process_time() - cpu0
        receiver.sample_drops()
    finally:
        await receiver.stop()
        logging.getLogger().removeHandler(counter)
    stats = receiver.stats
    sent = int(rate * seconds) + traps
    print(f"  sent {sent:,} in {seconds:g} s ({rate:,.0f}/s), read {stats.datagrams:,},"
          f" kernel drops {stats.kernel_drops:,}; traps that became observations:"
          f" {len(arrived)} of {traps}; log records with a traceback: {counter.tracebacks},"
          f" warnings: {counter.warnings}; receiver CPU {cpu:.1f} s"
          f" ({cpu / seconds * 100:.0f}% of a core)")


async def main_async(args: argparse.Namespace) -> None:
    rng = random.Random(7)
    print(f"receiver on loopback, {os.cpu_count()} cores; {args.count:,} datagrams per kind,"
          " queued while the loop is held, then drained:")
    kinds = [
        ("random bytes, unknown source (screened)", UNKNOWN, lambda n: random_bytes(rng)),
        ("SNMP-shaped junk, unknown source (shed)", UNKNOWN, lambda n: snmp_shaped(rng)),
        ("SNMP-shaped junk, known device (pysnmp fails)", KNOWN, lambda n: snmp_shaped(rng)),
        ("linkDown v2c, wrong community, known device", KNOWN,
         lambda n: link_down("guessed", request_id=n)),
        ("linkDown v2c, known device (observation)", KNOWN, lambda n: link_down(request_id=n)),
        ("linkDown v1, known device (pysnmp; observation)", KNOWN, lambda n: v1_link_down()),
    ]
    for kind, source, make in kinds:
        await drain_rate(kind, source, make, args.count)
    if args.seconds > 0:
        print(f"the incident: random bytes at {args.rate:,.0f}/s for {args.seconds:g} s with"
              f" {args.traps} real traps inside")
        await incident(args.rate, args.seconds, args.traps)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=15_000)
    parser.add_argument("--rate", type=float, default=10_000)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--traps", type=int, default=2)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(main_async(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
