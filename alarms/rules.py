"""Alarm rules from configuration: thresholds with hysteresis, debounce and flap detection.

A *threshold rule* turns a metric into an alarm condition: "port inbound utilization at or
above 90 % raises a major alarm". A condition decided on a single boundary chatters when the
value hovers around it (89, 91, 90, 88...), so a rule has two boundaries, *hysteresis*: it
raises at `raise_at` and clears only below `clear_below` (90 and 80); in between, whatever
state the alarm is in holds. A rule on a value that must not fall too low (optical receive
power) says `direction = "below"`: it raises at or below `raise_at` and clears only above
`clear_above` (-25 dBm and -23 dBm). Rules apply to an object class (port, device, circuit)
and may be narrowed to an SLA tier ("gold" circuits' ports raise at 70 %; a device's tier is
that of the circuits ending on it); the most specific rule for a metric wins: one for the
object's tier, else one for any tier. Port rules raise only on monitored ports (circuit and
link ends, ports marked `monitor: true`), like every port alarm.

The defaults (`default_thresholds`) cover interface utilization, errors and discards, and
device health (collectors.health): CPU and memory at 90 % (clear below 80 %), the hottest
sensor at 70 °C (clear below 65 °C), any failed fan or power supply, and optical receive
power at or below -25 dBm (clear above -23 dBm).

*Debounce* is about time where hysteresis is about value: a condition raises an alarm only
after it has held for `raise_after_s`, and clears it only after it has been gone for
`clear_after_s`; a port that bounces for a second never pages anyone. *Flapping* is what
debounce cannot absorb: a port that changes state more than `flap_max_changes` times within
`flap_window_s` raises one "flapping" alarm instead of a stream of raises and clears; the
flapping alarm clears after the port has been quiet for a whole window.

The `[alarms]` section of the settings file::

    [alarms]
    raise_after_s = 2
    clear_after_s = 5
    flap_max_changes = 4
    flap_window_s = 60

    [[alarms.thresholds]]
    metric = "if_in_utilization_pct"
    raise_at = 70
    clear_below = 60
    sla_tier = "gold"
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, Field, field_validator, model_validator

from alarms.model import Severity

OBJECT_CLASSES = ("port", "device", "circuit")


class ThresholdRule(BaseModel):
    """Raise when `metric` >= `raise_at`, clear when it is < `clear_below` (hysteresis); with
    `direction` "below", raise when it is <= `raise_at`, clear when it is > `clear_above`."""

    metric: str = Field(min_length=1)
    raise_at: float
    clear_below: float | None = None
    clear_above: float | None = None
    direction: str = "above"
    severity: str = "major"
    object_class: str = "port"
    sla_tier: str | None = None  # None: any tier

    @field_validator("severity")
    @classmethod
    def _severity(cls, value: str) -> str:
        Severity.parse(value)
        return value.lower()

    @field_validator("object_class")
    @classmethod
    def _object_class(cls, value: str) -> str:
        if value not in OBJECT_CLASSES:
            raise ValueError(f"object_class must be one of {', '.join(OBJECT_CLASSES)}")
        return value

    @model_validator(mode="after")
    def _hysteresis(self) -> ThresholdRule:
        if self.direction not in ("above", "below"):
            raise ValueError(f"{self.metric}: direction must be above or below")
        if self.direction == "above":
            if self.clear_below is None or self.clear_above is not None:
                raise ValueError(f"{self.metric}: a rule raising above a value needs "
                                 "clear_below (and no clear_above)")
            if self.clear_below > self.raise_at:
                raise ValueError(f"{self.metric}: clear_below ({self.clear_below}) must not "
                                 f"be above raise_at ({self.raise_at})")
        else:
            if self.clear_above is None or self.clear_below is not None:
                raise ValueError(f"{self.metric}: a rule raising below a value needs "
                                 "clear_above (and no clear_below)")
            if self.clear_above < self.raise_at:
                raise ValueError(f"{self.metric}: clear_above ({self.clear_above}) must not "
                                 f"be below raise_at ({self.raise_at})")
        return self

    def breached(self, value: float) -> bool:
        return value >= self.raise_at if self.direction == "above" else value <= self.raise_at

    def recovered(self, value: float) -> bool:
        if self.direction == "above":
            return value < self.clear_below  # type: ignore[operator]
        return value > self.clear_above  # type: ignore[operator]

    @property
    def level(self) -> Severity:
        return Severity.parse(self.severity)


def default_thresholds() -> list[ThresholdRule]:
    return [
        ThresholdRule(metric="if_in_utilization_pct", raise_at=90, clear_below=80),
        ThresholdRule(metric="if_out_utilization_pct", raise_at=90, clear_below=80),
        ThresholdRule(metric="if_in_errors_per_s", raise_at=10, clear_below=1,
                      severity="minor"),
        ThresholdRule(metric="if_in_discards_per_s", raise_at=100, clear_below=10,
                      severity="warning"),
        ThresholdRule(metric="cpu_pct", raise_at=90, clear_below=80, object_class="device"),
        ThresholdRule(metric="mem_pct", raise_at=90, clear_below=80, object_class="device"),
        ThresholdRule(metric="temperature_c", raise_at=70, clear_below=65,
                      object_class="device"),
        ThresholdRule(metric="fan_failed_count", raise_at=1, clear_below=1,
                      object_class="device"),
        ThresholdRule(metric="psu_failed_count", raise_at=1, clear_below=1,
                      object_class="device"),
        ThresholdRule(metric="optical_rx_dbm", raise_at=-25, clear_above=-23,
                      direction="below"),
    ]


class AlarmSettings(BaseModel):
    """The `[alarms]` settings section (see the module docstring)."""

    raise_after_s: float = Field(2.0, ge=0, le=3600)
    clear_after_s: float = Field(5.0, ge=0, le=3600)
    # an inferred root cause (device lost by all its neighbours, link down at both ends)
    # must hold this long before it is raised (see alarms.stages.correlate)
    infer_after_s: float = Field(2.0, ge=0, le=3600)
    flap_max_changes: int = Field(4, ge=2, le=1000)
    flap_window_s: float = Field(60.0, gt=0, le=86_400)
    # a trap-only event (agent restart) has no clear of its own: it clears after this long
    event_hold_s: float = Field(300.0, gt=0, le=7 * 86_400)
    tick_interval_s: float = Field(0.5, gt=0, le=60)
    thresholds: list[ThresholdRule] = Field(default_factory=default_thresholds)
    # a declared maintenance window lasts at most this long and starts at most this far
    # ahead (alarms.actions.declare_maintenance): a typo such as an end in year 9999 must
    # not exclude a circuit from its SLA for ever; longer work is declared window by window
    maintenance_max_days: float = Field(31.0, gt=0, le=366)
    maintenance_max_ahead_days: float = Field(365.0, gt=0, le=3650)


def rule_for(rules: Sequence[ThresholdRule], metric: str, object_class: str,
             sla_tier: str | None) -> ThresholdRule | None:
    """The rule for this metric on this object: the one for its SLA tier if there is one,
    else the one for any tier; None when no rule covers it."""
    general = None
    for rule in rules:
        if rule.metric != metric or rule.object_class != object_class:
            continue
        if rule.sla_tier is not None and rule.sla_tier == sla_tier:
            return rule
        if rule.sla_tier is None and general is None:
            general = rule
    return general
