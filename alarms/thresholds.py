"""Threshold crossings, judged on the samples as the collector writes them.

A threshold rule (alarms.rules: raise at 90 %, clear below 80 %) is about a series, one
object's one metric. Its state is one of two words: "breached" (the value reached
`raise_at` and has not come back past the clearing level since) or "ok". Hysteresis is
that state: a value between the two levels leaves it as it is.

The collector keeps that state per series where the samples are made, so the judgement
costs a dictionary look-up per sample and nothing is read back from the store: every
sample a poll gives is offered to `ThresholdStage.crossings`, which returns an observation
("threshold:<metric>", old -> new state) only when a series crosses, with the rule's
levels, the value and the severity in its detail. Those observations travel as every other
state change does (the spool, the store, an "observation" event), so the alarm pipeline,
wherever it runs, turns them into threshold alarms (alarms.stages.observe) with its usual
debounce; a restarted collector starts from the store's last states, so a series that was
breached stays breached and is not announced again; and a series never breached is never
announced at all (no "ok" for the thousands of quiet ports at start).

Which rule applies is decided here too: the rule for the object's class (device or port)
and SLA tier, the most specific first (alarms.rules.rule_for). The tiers come from the
store (store.alarms.sla_tiers) and change with an inventory import.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from alarms.rules import ThresholdRule, rule_for
from collectors.model import Observation, Sample

KIND_PREFIX = "threshold:"
BREACHED = "breached"
OK = "ok"


def threshold_kind(metric: str) -> str:
    """The observation kind of a metric's threshold state."""
    return KIND_PREFIX + metric


def is_threshold_kind(kind: str) -> bool:
    return kind.startswith(KIND_PREFIX)


def rule_detail(rule: ThresholdRule, object_class: str, value: float) -> dict[str, Any]:
    """What a crossing observation carries: enough for the alarm (severity, summary, the
    levels) without the rules at hand."""
    return {"metric": rule.metric, "value": value, "raise_at": rule.raise_at,
            "direction": rule.direction, "severity": rule.severity,
            "object_class": object_class,
            **({"clear_below": rule.clear_below} if rule.clear_below is not None else {}),
            **({"clear_above": rule.clear_above} if rule.clear_above is not None else {})}


def summary_of(detail: Mapping[str, Any]) -> str:
    """The alarm summary of a breach: "if_in_utilization_pct 93.0 >= 90"."""
    sign = ">=" if detail.get("direction", "above") == "above" else "<="
    return f"{detail['metric']} {float(detail['value']):.1f} {sign} {detail['raise_at']:g}"


class ThresholdStage:
    """The rules applied to samples (see the module docstring). `state(object_id, kind)`
    gives a series' last known state (the collector's StateTracker, seeded from the store):
    the stage keeps no state of its own, so there is one answer to "is it breached"."""

    def __init__(self, rules: Sequence[ThresholdRule],
                 state: Callable[[int, str], str | None]) -> None:
        self.rules = list(rules)
        self.metrics = frozenset(rule.metric for rule in self.rules)
        self._state = state
        self._is_device: Callable[[int], bool] = lambda _object_id: False
        self._tiers: Mapping[int, str] = {}
        self._rule_of: dict[tuple[int, str], ThresholdRule | None] = {}
        self._kinds = {metric: threshold_kind(metric) for metric in self.metrics}

    def set_objects(self, is_device: Callable[[int], bool], tiers: Mapping[int, str]) -> None:
        """Which objects are devices (the others are ports: asked once per series) and each
        object's SLA tier."""
        self._is_device = is_device
        self._tiers = dict(tiers)
        self._rule_of.clear()

    def rule(self, object_id: int, metric: str) -> ThresholdRule | None:
        key = (object_id, metric)
        try:
            return self._rule_of[key]
        except KeyError:
            object_class = "device" if self._is_device(object_id) else "port"
            found = self._rule_of[key] = rule_for(self.rules, metric, object_class,
                                                  self._tiers.get(object_id))
            return found

    def crossings(self, samples: Iterable[Sample], source: str = "poll") -> list[Observation]:
        """The observations of the series these samples move across a rule's levels."""
        if not self.metrics:
            return []
        metrics, kinds, state = self.metrics, self._kinds, self._state
        found: list[Observation] = []
        for sample in samples:
            if sample.metric not in metrics:
                continue
            rule = self.rule(sample.object_id, sample.metric)
            if rule is None:
                continue
            kind = kinds[sample.metric]
            known = state(sample.object_id, kind)
            if known == BREACHED:
                if not rule.recovered(sample.value):
                    continue
                new = OK
            elif rule.breached(sample.value):
                new = BREACHED
            else:
                continue
            found.append(Observation(sample.time, sample.object_id, kind, known, new, source,
                                     rule_detail(rule, rule.object_class, sample.value)))
        return found
