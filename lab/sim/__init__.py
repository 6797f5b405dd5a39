"""The simulated network: every device of an inventory as a live SNMP agent on loopback.

Keyline's demo and its tests need a network to watch: devices that answer SNMP on their
management addresses with the interfaces the inventory declares, counters that grow with
traffic, LLDP neighbour tables from which a topology can be discovered, and faults that can
be injected on demand (a port goes down: its status changes, its traffic stops, its LLDP
neighbour disappears, and a linkDown trap arrives at the trap receiver).

snmpsim plays the agents: one process, one SNMP engine per device, each listening on the
device's own address in 127.0.0.0/8 (all of which is loopback on Linux). What each agent
answers is generated from the inventory into snmpsim data files:

    plan.py      what the inventory does not say, made up deterministically: sysDescr and
                 sysObjectID per platform, uptime, MAC addresses, traffic per link direction
    state.py     what changes while running: port status, paused traffic, LLDP rows
    agent.py     one device's SNMP data: system group, IF-MIB, LLDP-MIB (the OIDs are here)
    traffic.py   counters as a function of time; served by variation/keyline_counter.py
    snmprec.py   the data file format, sorted and atomically replaced
    access.py    the credential each agent accepts (SNMPv2c community or SNMPv3 user)
    traps.py     linkDown/linkUp traps, sent from the device's own address
    ssh.py       each device's CLI over SSH (asyncssh), as netmiko meets it, with fault modes
    cli_outputs.py  what those CLIs print, per platform: prompts, errors, `show interfaces`
                 and its kin from the same state and counters, running configurations
    network.py   SimulatedNetwork: runs snmpsim, waits until every agent answers, injects
                 faults
    control.py   a Unix socket through which `python -m lab.sim fault` reaches a running
                 network
    cli.py       `python -m lab.sim` (`keyline lab sim`)

    with SimulatedNetwork(inventory, work_dir, environ=env, cli=True) as network:
        host, port = network.endpoint("pe1")          # ("127.0.1.1", 1161)
        network.set_port_status("pe1", "GigabitEthernet0/0/1", "down")
        host, port = network.cli_endpoint("pe1")      # ("127.0.1.1", 2222): SSH
        network.cli_mode("pe1", "auth-fail")
"""

from __future__ import annotations

from typing import Any

__all__ = ["SimulatedNetwork", "SimulatorError", "main", "snmpsim_available"]


def __getattr__(name: str) -> Any:
    # Imported on first use: snmpsim's process imports lab.sim.traffic (for the variation
    # module) and should not pay for the network, pysnmp's client side and the inventory.
    if name == "main":
        from lab.sim.cli import main

        return main
    if name in __all__:
        from lab.sim import network

        return getattr(network, name)
    raise AttributeError(f"module 'lab.sim' has no attribute {name!r}")
