"""Threshold rules judged on samples as they are written (alarms.thresholds): hysteresis on
the collector's state tracker, rules by class and SLA tier, only crossings as observations;
and those observations through the alarm pipeline (observe, debounce, restore)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from alarms.model import AlarmKey, AlarmType, ObjectKind, Severity
from alarms.pipeline import AlarmPipeline
from alarms.rules import AlarmSettings, ThresholdRule
from alarms.stages import observe
from alarms.thresholds import BREACHED, OK, ThresholdStage, rule_detail, threshold_kind
from collectors.model import Observation, Sample
from collectors.observations import StateTracker

T0 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
UTIL = "if_in_utilization_pct"


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def stage_of(rules: list[ThresholdRule], devices: frozenset[int] = frozenset(),
             tiers: dict[int, str] | None = None) -> tuple[ThresholdStage, StateTracker]:
    tracker = StateTracker()
    stage = ThresholdStage(rules, tracker.state)
    stage.set_objects(devices.__contains__, tiers or {})
    return stage, tracker


def judge(stage: ThresholdStage, tracker: StateTracker, object_id: int, metric: str,
          values: list[float]) -> tuple[list[str | None], list[Observation]]:
    """Each value in turn: the series' state after it, and every crossing observation."""
    seen, crossings = [], []
    for n, value in enumerate(values):
        changes = tracker.apply(stage.crossings([Sample(at(n), object_id, metric, value)]))
        crossings += changes
        seen.append(tracker.state(object_id, threshold_kind(metric)))
    return seen, crossings


def test_hysteresis_raises_at_90_clears_below_80_and_says_only_the_crossings() -> None:
    stage, tracker = stage_of([ThresholdRule(metric=UTIL, raise_at=90, clear_below=80)])
    seen, crossings = judge(stage, tracker, 5, UTIL, [85, 91, 95, 85, 81, 79, 85, 79])
    assert seen == [None, BREACHED, BREACHED, BREACHED, BREACHED, OK, OK, OK]
    assert [(c.time, c.old, c.new) for c in crossings] == [
        (at(1), None, BREACHED), (at(5), BREACHED, OK)]
    raised = crossings[0]
    assert raised.kind == "threshold:if_in_utilization_pct" and raised.object_id == 5
    assert raised.detail == {"metric": UTIL, "value": 91, "raise_at": 90, "clear_below": 80,
                             "direction": "above", "severity": "major",
                             "object_class": "port"}


def test_a_below_rule_raises_at_low_optical_power_and_clears_above_its_level() -> None:
    stage, tracker = stage_of([ThresholdRule(metric="optical_rx_dbm", raise_at=-25,
                                             clear_above=-23, direction="below")])
    seen, crossings = judge(stage, tracker, 5, "optical_rx_dbm",
                            [-20, -26, -24, -23, -22.5, -24])
    assert seen == [None, BREACHED, BREACHED, BREACHED, OK, OK]
    assert len(crossings) == 2
    (signal,) = observe(crossings[0])
    assert signal.active and signal.summary == "optical_rx_dbm -26.0 <= -25"


def test_quiet_series_are_never_announced_and_other_metrics_cost_nothing() -> None:
    stage, tracker = stage_of([ThresholdRule(metric=UTIL, raise_at=90, clear_below=80)])
    samples = [Sample(at(0), port, metric, 50.0) for port in range(100)
               for metric in (UTIL, "if_in_bps", "if_oper_status")]
    assert stage.crossings(samples) == []
    assert tracker.state(1, threshold_kind(UTIL)) is None


def test_a_restarted_collector_keeps_a_breach_from_the_stored_states() -> None:
    """The tracker is seeded from the store's last states: a series still breached is not
    announced again; one that recovered meanwhile is announced as recovered."""
    stage, tracker = stage_of([ThresholdRule(metric=UTIL, raise_at=90, clear_below=80)])
    tracker.seed({(5, threshold_kind(UTIL)): BREACHED, (6, threshold_kind(UTIL)): BREACHED})
    crossings = tracker.apply(stage.crossings([Sample(at(0), 5, UTIL, 85.0),
                                               Sample(at(0), 6, UTIL, 70.0)]))
    assert [(c.object_id, c.old, c.new) for c in crossings] == [(6, BREACHED, OK)]


def test_the_rule_follows_the_object_class_and_sla_tier() -> None:
    rules = [ThresholdRule(metric=UTIL, raise_at=90, clear_below=80),
             ThresholdRule(metric=UTIL, raise_at=70, clear_below=60, sla_tier="gold"),
             ThresholdRule(metric="cpu_pct", raise_at=90, clear_below=80,
                           object_class="device", severity="critical")]
    stage, tracker = stage_of(rules, devices=frozenset({100}), tiers={8: "gold"})
    crossings = tracker.apply(stage.crossings([
        Sample(at(0), 7, UTIL, 75.0), Sample(at(0), 8, UTIL, 75.0),
        Sample(at(0), 100, "cpu_pct", 95.0), Sample(at(0), 7, "cpu_pct", 95.0)]))
    assert [(c.object_id, c.kind, c.detail["raise_at"], c.detail["object_class"])
            for c in crossings] == [(8, threshold_kind(UTIL), 70, "port"),
                                    (100, "threshold:cpu_pct", 90, "device")]
    # a new tier (an import) takes effect with the objects given again: port 8 clears
    # below 80 now, not below 60
    stage.set_objects(frozenset({100}).__contains__, {})
    assert tracker.apply(stage.crossings([Sample(at(1), 8, UTIL, 85.0)])) == []
    (recovered,) = tracker.apply(stage.crossings([Sample(at(2), 8, UTIL, 79.0)]))
    assert (recovered.old, recovered.new) == (BREACHED, OK)


def test_a_crossing_is_a_threshold_alarm_through_the_pipeline_with_debounce() -> None:
    rule = ThresholdRule(metric=UTIL, raise_at=90, clear_below=80, severity="minor")
    pipeline = AlarmPipeline(AlarmSettings(raise_after_s=2, clear_after_s=5,
                                           thresholds=[rule]))
    key = AlarmKey(ObjectKind.PORT, 5, AlarmType.THRESHOLD, UTIL)
    kind = threshold_kind(UTIL)
    pipeline.process([Observation(at(0), 5, kind, None, BREACHED, "poll",
                                  rule_detail(rule, "port", 93.24))], at(0))
    assert key not in pipeline.active  # debounce: not yet held 2 s
    pipeline.tick(at(2))
    alarm = pipeline.active[key]
    assert (alarm.severity, alarm.summary) == (Severity.MINOR, f"{UTIL} 93.2 >= 90")
    assert alarm.detail["clear_below"] == 80 and "object_class" not in alarm.detail
    pipeline.process([Observation(at(10), 5, kind, BREACHED, OK, "poll",
                                  rule_detail(rule, "port", 70.0))], at(10))
    pipeline.tick(at(15))
    assert key not in pipeline.active


def test_the_pipeline_takes_crossings_only_of_metrics_its_rules_name() -> None:
    rule = ThresholdRule(metric=UTIL, raise_at=90, clear_below=80)
    crossing = Observation(at(0), 5, threshold_kind(UTIL), None, BREACHED, "poll",
                           rule_detail(rule, "port", 95.0))
    off = AlarmPipeline(AlarmSettings(raise_after_s=0, thresholds=[]))
    assert off.process([crossing], at(0)) == [] and not off.active
    on = AlarmPipeline(AlarmSettings(raise_after_s=0, thresholds=[rule]))
    (change,) = on.process([crossing], at(0))
    assert change.event == "raised"


def test_a_breach_pending_at_a_restart_is_raised_from_the_latest_states() -> None:
    """The alarm service restores from the store's latest states, threshold states
    included: a breach whose debounce had not run out when it stopped still raises."""
    rule = ThresholdRule(metric=UTIL, raise_at=90, clear_below=80)
    pipeline = AlarmPipeline(AlarmSettings(raise_after_s=2, thresholds=[rule]))
    latest = [Observation(at(0), 5, threshold_kind(UTIL), None, BREACHED, "poll",
                          rule_detail(rule, "port", 95.0))]
    pipeline.restore([], latest, at(1))
    pipeline.tick(at(3))
    assert AlarmKey(ObjectKind.PORT, 5, AlarmType.THRESHOLD, UTIL) in pipeline.active


def test_an_unmonitored_port_raises_no_threshold_alarm() -> None:
    class Ports:
        def monitored(self, port_id: int) -> bool:
            return port_id == 5

        def admin(self, port_id: int) -> str | None:
            return None

        def oper(self, port_id: int) -> str | None:
            return None

    rule = ThresholdRule(metric=UTIL, raise_at=90, clear_below=80)
    for port, expected in ((5, 1), (6, 0)):
        crossing = Observation(at(0), port, threshold_kind(UTIL), None, BREACHED, "poll",
                               rule_detail(rule, "port", 95.0))
        assert len(observe(crossing, Ports())) == expected
