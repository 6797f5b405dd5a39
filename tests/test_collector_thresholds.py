"""The collection service judges threshold rules on the samples it writes
(alarms.thresholds): against real agents (snmpsim) and a real store, a breached series is
recorded once as a crossing, whatever the number of polls, is not announced again by a
restarted collector, becomes a threshold alarm through the alarm service; the first
states of a start reach the store in a few batches, not one per device, and the first polls
of many devices are spread wider; skipped polls are logged in one line a minute, not one
per device."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from alarms.rules import AlarmSettings, ThresholdRule
from alarms.service import AlarmService
from collectors.service import CollectionService
from config.inventory.loader import load_inventory
from keyline.wiring import threshold_judge
from store.database import Database
from store.inventory import apply_inventory
from tests.snmp_agents import COMMUNITY, SnmpsimAgents, if_indexes, snmpsim_installed

pytestmark = pytest.mark.skipif(not snmpsim_installed(), reason="snmpsim is not installed")

DEVICES = 3
INTERFACES = 4
INTERVAL_S = 1.0
# every port is up (if_oper_status 1): a rule raising at 1 holds on every port; the
# device's response time is above 0 ms: a device rule raising at 0 holds on every device
RULES = [ThresholdRule(metric="if_oper_status", raise_at=1, clear_below=1, severity="minor"),
         ThresholdRule(metric="snmp_response_ms", raise_at=0, clear_below=0,
                       object_class="device")]


def wait_for(condition: Callable[[], bool], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout_s} s")
        time.sleep(0.1)


@pytest.fixture(scope="module")
def agents() -> Iterator[SnmpsimAgents]:
    with SnmpsimAgents(interfaces=INTERFACES, v2c_count=DEVICES) as served:
        yield served


def inventory_yaml(agents: SnmpsimAgents) -> str:
    lines = ["credentials:",
             "  - {id: sim, kind: snmp_v2c, community: {env: KEYLINE_TEST_COMMUNITY}}",
             "devices:"]
    for number, port in enumerate(agents.v2c_ports):
        lines += [f"  - name: dev-{number}", "    role: PE", "    platform: cisco_ios",
                  "    management_address: 127.0.0.1", f"    snmp_port: {port}",
                  "    snmp_credential: sim", "    ports:"]
        lines += [f"      - {{name: GigabitEthernet0/0/{i}, speed_bps: 1G, monitor: true}}"
                  for i in if_indexes(INTERFACES)]
    return "\n".join(lines) + "\n"


def service(db: Database, tmp_path: Path, flush_interval_s: float = 0.2) -> CollectionService:
    return CollectionService(
        db.pool, spool_dir=tmp_path / "spool", interval_s_for=lambda _group: INTERVAL_S,
        environ={"KEYLINE_TEST_COMMUNITY": COMMUNITY}, timeout_s=2.0, retries=1,
        traps_enabled=False, startup_spread_s=INTERVAL_S, flush_interval_s=flush_interval_s,
        health_interval_s=None, icmp_check=False, thresholds=threshold_judge(RULES))


def import_agents(db: Database, agents: SnmpsimAgents, tmp_path: Path
                  ) -> tuple[list[int], list[int]]:
    """Import the agents' inventory; the ids of its ports and devices."""
    folder = tmp_path / "inventory"
    folder.mkdir()
    (folder / "devices.yaml").write_text(inventory_yaml(agents))
    with db.pool.connection() as conn:
        apply_inventory(conn, load_inventory([folder]))
        ports = [row[0] for row in conn.execute("SELECT id FROM ports ORDER BY id")]
        devices = [row[0] for row in conn.execute("SELECT id FROM devices ORDER BY id")]
    return ports, devices


def crossings(db: Database) -> list[tuple[int, str, str | None, str]]:
    with db.pool.connection() as conn:
        return conn.execute(
            "SELECT object_id, kind, old, new FROM observations"
            " WHERE kind LIKE 'threshold:%' ORDER BY id").fetchall()


def test_a_breach_is_recorded_once_survives_a_restart_and_raises_an_alarm(
        agents: SnmpsimAgents, db: Database, tmp_path: Path) -> None:
    ports, devices = import_agents(db, agents, tmp_path)
    alarms = AlarmService(db.pool, db.url, AlarmSettings(raise_after_s=0, clear_after_s=0,
                                                         tick_interval_s=0.1,
                                                         thresholds=RULES))
    first = service(db, tmp_path)
    with alarms, first:
        wait_for(lambda: min(first.stats().device_polls.values(), default=0) >= 3, 30)
        first.drain(10)
        wait_for(alarms.idle, 10)
        with db.pool.connection() as conn:
            raised = conn.execute(
                "SELECT object_kind, object_id, qualifier, severity FROM alarms"
                " WHERE type = 'threshold' AND state = 'active'").fetchall()
    # one crossing per series, after three polls of each
    recorded = crossings(db)
    assert sorted((o, k) for o, k, _, _ in recorded) == sorted(
        [(p, "threshold:if_oper_status") for p in ports]
        + [(d, "threshold:snmp_response_ms") for d in devices])
    assert {(old, new) for _, _, old, new in recorded} == {(None, "breached")}
    assert sorted(raised) == sorted(
        [("port", p, "if_oper_status", "minor") for p in ports]
        + [("device", d, "snmp_response_ms", "major") for d in devices])
    # a restarted collector starts from the stored states: nothing announced again; a
    # restarted alarm service restores the breached series with their rules: the same
    # alarms, none raised twice
    second = service(db, tmp_path)
    again = AlarmService(db.pool, db.url, alarms.settings)
    with again, second:
        wait_for(lambda: min(second.stats().device_polls.values(), default=0) >= 2, 30)
        second.drain(10)
        wait_for(again.idle, 10)
        time.sleep(0.5)  # a few ticks: debounce would have cleared what it forgot
        with db.pool.connection() as conn:
            after = conn.execute(
                "SELECT object_kind, object_id, qualifier, severity, state FROM alarms"
                " WHERE type = 'threshold'").fetchall()
    assert crossings(db) == recorded
    assert sorted(after) == sorted((*row, "active") for row in raised)


def test_the_first_states_of_a_start_are_written_in_a_few_batches(
        agents: SnmpsimAgents, db: Database, tmp_path: Path) -> None:
    import_agents(db, agents, tmp_path)
    # every first poll comes within the first second, the first flush after 2 s
    collector = service(db, tmp_path, flush_interval_s=2.0)
    with collector:
        wait_for(lambda: min(collector.stats().device_polls.values(), default=0) >= 2, 30)
        collector.drain(10)
    with db.pool.connection() as conn:
        states, events = conn.execute(
            """SELECT count(*), count(DISTINCT e.id) FROM observations o
                 JOIN events e ON e.topic = 'observation'
                  AND (e.payload->'observations') @> jsonb_build_array(
                        jsonb_build_object('id', o.id))
                WHERE o.old IS NULL AND o.kind IN ('oper_status', 'admin_status',
                                                   'reachability')""").fetchone()
    # every port's oper and admin status and every device's reachability, first seen
    assert states == DEVICES * (2 * INTERFACES + 1)
    # written with a flush, not one batch per device poll
    assert events <= 2


def test_skipped_polls_are_logged_in_one_line_at_most_every_minute(
        db: Database, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A saturated collector skips hundreds of polls a minute: one line says how many and
    of which devices, instead of a line per device (the counts are in the stats)."""
    from collectors import service as service_module

    collector = service(db, tmp_path)
    with caplog.at_level("WARNING", logger="collectors.service"):
        for round_ in range(2):
            for number in range(300):
                collector._count_skip(f"dev-{number}")
            if round_ == 0:  # a minute later
                collector._next_skip_log -= service_module.SKIP_LOG_INTERVAL_S
    lines = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
    assert len(lines) == 2, lines
    assert lines[0].startswith("1 polls of 1 devices skipped: ")
    assert lines[1].startswith("300 polls of 300 devices skipped in the last 60 s: ")
    assert lines[1].endswith(", ...") and lines[1].count("dev-") == 5
    assert sum(collector.stats().skipped_polls.values()) == 600


def test_the_first_polls_of_many_devices_are_spread_wider(db: Database,
                                                         tmp_path: Path) -> None:
    """A start asks at most STARTUP_POLLS_PER_S first polls a second: 2,000 devices are
    spread over 40 s, not the configured 10 s; a few devices keep the configured spread."""
    from collectors import service as service_module

    collector = service(db, tmp_path)
    collector._startup_spread_s = 10.0
    assert collector.startup_spread_s == 10.0
    collector._group_targets = dict.fromkeys(range(2000))
    assert collector.startup_spread_s == 2000 / service_module.STARTUP_POLLS_PER_S == 40.0


def test_the_collector_keyline_collect_runs_judges_with_the_alarms_settings_rules(
        agents: SnmpsimAgents, db: Database, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The collectors know nothing of alarms: the rules come from the composition root.
    The collection service as `keyline collect` builds it (keyline.wiring) judges its
    samples with `[alarms] thresholds`: every series they breach is recorded."""
    from config.settings import load_settings
    from keyline.wiring import _collection_service

    ports, devices = import_agents(db, agents, tmp_path)
    monkeypatch.setenv("KEYLINE_TEST_COMMUNITY", COMMUNITY)
    settings = load_settings(None, overrides={
        "data_dir": tmp_path / "data", "database_url": db.url,
        "poll": {"default_interval_s": int(INTERVAL_S), "groups": {}, "timeout_s": 2.0,
                 "retries": 1, "icmp_check": False},
        "traps": {"enabled": False}, "health": {"enabled": False},
        "topology": {"discovery_interval_s": 0},
        "alarms": {"thresholds": [rule.model_dump() for rule in RULES]}})
    with _collection_service(settings, db) as collector:
        # the first polls are spread over the collector's start-up spread (10 s)
        wait_for(lambda: min(collector.stats().device_polls.values(),  # type: ignore[attr-defined]
                             default=0) >= 2, 60)
        collector.drain(10)  # type: ignore[attr-defined]
    assert sorted((o, k) for o, k, _, _ in crossings(db)) == sorted(
        [(p, "threshold:if_oper_status") for p in ports]
        + [(d, "threshold:snmp_response_ms") for d in devices])
