"""SLA figures end to end on the simulated network: a link cut for a measured time changes
the month's availability and credits of exactly the circuits routed over it, by exactly what
the cut's duration implies, and nothing else's.

Polls and traps become observations (CollectionService), observations become alarms and
circuit states (AlarmService), the ticket service runs beside them; the figures are built
from the store (sla/reports.py) before the cut and after the circuits are back, both
measured to the end of the month (the state in force then counts to the month's end), so
that the only difference is the cut. The circuits expected to go down are those whose
declared path crosses the cut link, read from the inventory files, independently of the
topology and alarm code. The duration is what the store measured: from the circuit's down
state to its next up state.
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction

from config.inventory.loader import load_inventory
from keyline.wiring import EXAMPLE_INVENTORY
from lab.sim.network import SimulatedNetwork
from sla import reports, statement
from sla.calendar import business_microseconds, calendar_of
from sla.service import TicketService
from store.database import Database
from tests.test_alarms_scenarios import circuit_states_now
from tests.test_collection_service import wait_for
from tests.test_sla_scenario import environ, inventory, network, services, store, trap_port

__all__ = ["environ", "inventory", "network", "services", "store", "trap_port"]

CUT = ("pe-sh1", "GigabitEthernet0/0/0")  # the access link ce-hsbank-sh-hq Gi0/0/0 - pe-sh1


def circuits_over_the_cut() -> set[str]:
    """The circuits whose declared path leaves or enters a device on the cut port."""
    device, port = CUT
    found = set()
    for circuit in load_inventory([EXAMPLE_INVENTORY]).circuits.values():
        for hop in circuit.path or ():
            if hop.device == device and port in (hop.in_port, hop.out_port):
                found.add(circuit.key)
    return found


def credit_of(steps: list[tuple[Decimal, Decimal, bool]], charge: Decimal,
              availability: Fraction) -> str | None:
    """The amount of the largest credit step whose threshold the availability is below (or
    at or below, with that wording), to the cent."""
    applying = [pct for pct, threshold, inclusive in steps
                if (availability * 100 <= Fraction(threshold) if inclusive
                    else availability * 100 < Fraction(threshold))]
    if not applying:
        return None
    return str((charge * max(applying) / 100).quantize(Decimal("0.01")))


def month_statement(store: Database, month: str, as_of: datetime) -> dict:
    with store.pool.connection() as conn:
        return reports.build_statement(conn, month=month, as_of=as_of)


def outage_of(document: dict, key: str) -> tuple[datetime, datetime]:
    """(down, up) of the circuit's one outage, from the statement's states."""
    spans = next(c for c in document["circuits"] if c["key"] == key)["states"]
    down = [s for s in spans if s["state"] in ("down", "unknown", "degraded")
            and s["end"] is not None and s["start"] > spans[0]["start"]]
    assert len(down) >= 1, spans
    return (datetime.fromisoformat(down[0]["start"]), datetime.fromisoformat(down[-1]["end"]))


def test_a_link_cut_costs_exactly_its_duration_to_exactly_its_circuits(
        network: SimulatedNetwork, store: Database, services: TicketService) -> None:
    expected = circuits_over_the_cut()
    assert expected, "the example inventory routes circuits over the cut link"
    now = datetime.now(UTC)
    month = f"{now.year:04d}-{now.month:02d}"
    # measured to the month's end (UTC+14 is the latest any month ends)
    _start, month_end = statement.month_period(month, "Pacific/Kiritimati")
    as_of = max(month_end, now)
    before = month_statement(store, month, as_of)
    try:
        network.set_port_status(*CUT, "down")
        wait_for(lambda: all(circuit_states_now(store)[key][0] == "down" for key in expected),
                 30)
    finally:
        network.set_port_status(*CUT, "up")
    wait_for(lambda: {state for state, _cause in circuit_states_now(store).values()} == {"up"},
             30)
    after = month_statement(store, month, as_of)
    # the statements recompute exactly from their inputs alone, through JSON, as
    # `keyline sla compute` reads them, for every circuit
    for document in (before, after):
        assert statement.check(json.loads(json.dumps(document)))[1] == []
    old, new = before["figures"]["circuits"], after["figures"]["circuits"]
    assert set(old) == set(new)
    changed = {key for key in new if new[key] != old[key]}
    assert changed == expected, (changed, expected)
    for key in expected:
        contract = after["contracts"][new[key]["contract"]]
        calendar = calendar_of(contract["calendar"])
        down_at, up_at = outage_of(after, key)
        # the cut's scheduled duration, on the contract's calendar
        cut_us = business_microseconds(calendar, down_at, up_at)
        old_up, old_down = Decimal(old[key]["up_s"]), Decimal(old[key]["down_s"])
        assert old_down == 0
        assert Decimal(new[key]["down_s"]) == Decimal(cut_us) / 1_000_000
        assert Decimal(new[key]["up_s"]) == old_up - Decimal(cut_us) / 1_000_000
        # availability = (up - cut) / (up + down), with up + down unchanged
        total_us = int(old_up * 1_000_000)
        availability = Fraction(total_us - cut_us, total_us)
        assert Fraction(new[key]["availability"]) == availability
        # the credit: the largest step whose threshold the availability is below
        steps = [(Decimal(step["credit_pct"]), Decimal(step.get("below_pct")
                                                       or step["at_or_below_pct"]),
                  "at_or_below_pct" in step) for step in contract["credits"]]
        charge = Decimal(next(c for c in after["circuits"] if c["key"] == key)
                         ["monthly_charge"])
        assert credit_of(steps, charge, availability) == (new[key]["credit"] or {}).get("amount")
        assert new[key]["outage_count"] == (1 if cut_us else 0)
        # the month is long and the cut short: the same stored states over a window from
        # the cut to a minute after it earn the credit their availability implies
        window = {"start": down_at.isoformat(),
                  "end": (up_at + timedelta(minutes=1)).isoformat()}
        narrowed = copy.deepcopy(after)
        narrowed["circuits"] = [dict(c, period=window) for c in narrowed["circuits"]
                                if c["key"] == key]
        narrowed["as_of"] = window["end"]
        figures = statement.figures_json(statement.compute(narrowed))["circuits"][key]
        window_us = business_microseconds(calendar, down_at, up_at + timedelta(minutes=1))
        if window_us:
            availability = Fraction(window_us - cut_us, window_us)
            assert Fraction(figures["availability"]) == availability
            assert credit_of(steps, charge, availability) == (figures["credit"] or {}).get("amount")
            assert figures["credit"] is not None  # a second in a minute is below 99.5 %
    # the customers' totals moved by the same amounts
    for customer, totals in after["figures"]["customers"].items():
        moved = sum(Decimal(new[k]["down_s"]) - Decimal(old[k]["down_s"]) for k in new
                    if next(c for c in after["circuits"] if c["key"] == k)["customer"]
                    == customer)
        assert Decimal(totals["down_s"]) - Decimal(
            before["figures"]["customers"][customer]["down_s"]) == moved
