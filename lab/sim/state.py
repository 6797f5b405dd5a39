"""What changes while a simulated network runs: port status, traffic pauses, LLDP neighbours.

A port is up or down (ifOperStatus). Traffic and LLDP do not belong to a port but to what
joins two ports, so the state is kept per *segment*: a link, or a port without a link. A
segment carries traffic while all its ports are up; while one is down, the counters of every
port on it stop growing (their pause is remembered, so they resume where they stopped), and
for a link each end forgets the other in its LLDP remote table (no LLDPDUs cross a down
port). When the link comes back, each end learns its neighbour again as a new remote-table
row: a new lldpRemIndex and a new lldpRemTimeMark, as a real agent does - a discovery that
caches rows by index must expect that.

Only the port that was set down goes oper-down: the far end of its link stays up (a fault
seen at one end). To cut a link at both ends, set both ports down.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lab.sim.plan import NetworkPlan

# A device learns its interfaces' state and its LLDP neighbours shortly after booting.
INTERFACES_UP_AFTER_BOOT_S = 60.0
NEIGHBOURS_LEARNED_AFTER_BOOT_S = 90.0


@dataclass
class Segment:
    """A link (two ports) or a lone port: it carries traffic while all its ports are up."""

    ports: tuple[str, ...]
    is_link: bool
    paused_s: float = 0.0
    down_since_epoch_s: float | None = None


@dataclass
class Neighbour:
    """A row of a device's lldpRemTable: the neighbour seen on one local port."""

    rem_index: int
    learned_epoch_s: float


@dataclass
class LldpTableStats:
    """lldpStatistics for one device's remote table."""

    last_change_epoch_s: float
    inserts: int = 0
    deletes: int = 0


@dataclass
class NetworkState:
    oper_up: dict[str, bool] = field(default_factory=dict)  # port key -> up
    last_change_epoch_s: dict[str, float] = field(default_factory=dict)  # port key
    segments: dict[str, Segment] = field(default_factory=dict)
    segment_of: dict[str, str] = field(default_factory=dict)  # port key -> segment key
    neighbours: dict[str, Neighbour] = field(default_factory=dict)  # local port key -> row
    lldp_stats: dict[str, LldpTableStats] = field(default_factory=dict)  # device key
    next_rem_index: dict[str, int] = field(default_factory=dict)  # device key

    @classmethod
    def initial(cls, plan: NetworkPlan) -> NetworkState:
        """Every port up since shortly after boot; every link's ends know each other."""
        state = cls()
        for device in plan.devices.values():
            learned = device.boot_epoch_s + NEIGHBOURS_LEARNED_AFTER_BOOT_S
            state.lldp_stats[device.key] = LldpTableStats(last_change_epoch_s=learned)
            state.next_rem_index[device.key] = 1
            for port in device.ports:
                state.oper_up[port.key] = True
                state.last_change_epoch_s[port.key] = (
                    device.boot_epoch_s + INTERFACES_UP_AFTER_BOOT_S
                )
                if port.key not in plan.link_of:
                    state.segments[port.key] = Segment((port.key,), is_link=False)
                    state.segment_of[port.key] = port.key
        for link in plan.links.values():
            state.segments[link.key] = Segment((link.a, link.z), is_link=True)
            state.segment_of[link.a] = state.segment_of[link.z] = link.key
            for local in (link.a, link.z):
                device = plan.device_of(local)
                state._learn(device.key, local, device.boot_epoch_s
                             + NEIGHBOURS_LEARNED_AFTER_BOOT_S)
        return state

    def segment(self, port_key: str) -> Segment:
        return self.segments[self.segment_of[port_key]]

    def _learn(self, device_key: str, local_port_key: str, now_epoch_s: float) -> None:
        index = self.next_rem_index[device_key]
        self.next_rem_index[device_key] = index + 1
        self.neighbours[local_port_key] = Neighbour(index, now_epoch_s)
        stats = self.lldp_stats[device_key]
        stats.inserts += 1
        stats.last_change_epoch_s = now_epoch_s

    def _forget(self, device_key: str, local_port_key: str, now_epoch_s: float) -> None:
        if self.neighbours.pop(local_port_key, None) is not None:
            stats = self.lldp_stats[device_key]
            stats.deletes += 1
            stats.last_change_epoch_s = now_epoch_s

    def set_port(self, plan: NetworkPlan, port_key: str, up: bool,
                 now_epoch_s: float) -> set[str]:
        """Set a port's oper status; returns the keys of the devices whose SNMP data changed
        (none when the port already had that status)."""
        if self.oper_up[port_key] == up:
            return set()
        self.oper_up[port_key] = up
        self.last_change_epoch_s[port_key] = now_epoch_s
        changed = {plan.device_of(port_key).key}
        segment = self.segment(port_key)
        carrying = all(self.oper_up[port] for port in segment.ports)
        if not carrying and segment.down_since_epoch_s is None:
            segment.down_since_epoch_s = now_epoch_s
            if segment.is_link:
                for local in segment.ports:
                    device_key = plan.device_of(local).key
                    self._forget(device_key, local, now_epoch_s)
                    changed.add(device_key)
        elif carrying and segment.down_since_epoch_s is not None:
            segment.paused_s += max(now_epoch_s - segment.down_since_epoch_s, 0.0)
            segment.down_since_epoch_s = None
            if segment.is_link:
                for local in segment.ports:
                    device_key = plan.device_of(local).key
                    self._learn(device_key, local, now_epoch_s)
                    changed.add(device_key)
        return changed
