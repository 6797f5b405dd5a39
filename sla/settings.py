"""The `[sla]` settings: how tickets are prioritised, escalated, reopened and closed.

Priorities come from rules that are data: each rule names an impact (how much of the
customer's service the fault takes, worked out by sla/tickets.py `impact_of`) and optionally
the contracts it applies to; the first rule that matches gives the priority. The impacts:

- ``all_down``: every circuit of the customer is out of service;
- ``partial_down``: some are, and at least one site pair has no circuit left in service;
- ``redundancy_lost``: the circuits out of service all have an in-service circuit of the same
  customer between the same sites (the customer is still connected, without protection);
- ``degraded``: a circuit whose contract counts degraded as a fault is degraded;
- ``monitoring_gap``: the NOC's ticket for a circuit whose state is unknown;
- ``reported`` / ``complaint``: a fault or a complaint a person reported.

Escalation levels (a contract's own `escalation`, else these) are percentages of a deadline
(response, resolution, or both): when a clock has used that share of its time the level's
recipients are told. Recipients are
``customer`` (the customer's contact), ``account_manager`` (the customer's), ``role:NAME``
(every active user with that role and an e-mail), ``user:LOGIN``, and ``webhook:NAME`` (a
webhook of the `[notify]` settings).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, field_validator

from config.inventory.model import recipient_problem

Priority = Literal["P1", "P2", "P3", "P4"]
Impact = Literal["all_down", "partial_down", "redundancy_lost", "degraded", "monitoring_gap",
                 "reported", "complaint"]


def _check_recipients(values: list[str]) -> list[str]:
    for value in values:
        problem = recipient_problem(value)
        if problem:
            raise ValueError(problem)
    return values


class PriorityRule(BaseModel):
    impact: Impact
    contracts: list[str] = Field(default_factory=list)  # contract keys; empty: any
    priority: Priority


class EscalationLevel(BaseModel):
    at_pct: float = Field(gt=0, le=1000)
    clock: Literal["response", "resolution", "both"] = "both"
    notify: list[str] = Field(default_factory=list)

    _recipients = field_validator("notify")(_check_recipients)


class PriorityTimes(BaseModel):
    response_min: int = Field(gt=0)
    resolution_min: int = Field(gt=0)


def default_priority_rules() -> list[PriorityRule]:
    return [PriorityRule(impact="all_down", priority="P1"),
            PriorityRule(impact="partial_down", priority="P2"),
            PriorityRule(impact="redundancy_lost", priority="P3"),
            PriorityRule(impact="degraded", priority="P3"),
            PriorityRule(impact="monitoring_gap", priority="P3"),
            PriorityRule(impact="reported", priority="P3"),
            PriorityRule(impact="complaint", priority="P4")]


def default_escalation() -> list[EscalationLevel]:
    return [EscalationLevel(at_pct=50, notify=["role:noc"]),
            EscalationLevel(at_pct=75, notify=["role:noc", "account_manager"]),
            EscalationLevel(at_pct=100, notify=["role:noc", "account_manager", "customer"])]


def default_times() -> dict[str, PriorityTimes]:
    """For a circuit without a contract (and the NOC's monitoring-gap tickets): 24x7 UTC."""
    return {"P1": PriorityTimes(response_min=15, resolution_min=240),
            "P2": PriorityTimes(response_min=30, resolution_min=480),
            "P3": PriorityTimes(response_min=120, resolution_min=1440),
            "P4": PriorityTimes(response_min=480, resolution_min=4320)}


class SlaSettings(BaseModel):
    """The `[sla]` settings section (see the module docstring)."""

    priority_rules: list[PriorityRule] = Field(default_factory=default_priority_rules)
    escalation: list[EscalationLevel] = Field(default_factory=default_escalation)
    # deadlines of tickets whose circuit has no contract
    default_times: dict[Priority, PriorityTimes] = Field(default_factory=default_times)
    # who is told when a ticket opens and when it is resolved
    notify_opened: list[str] = Field(default_factory=lambda: ["customer", "account_manager"])
    notify_resolved: list[str] = Field(default_factory=lambda: ["customer", "account_manager"])
    # the language of the messages a customer's contact gets ("zh_CN" or "en")
    customer_language: Literal["zh_CN", "en"] = "zh_CN"
    # a resolved ticket may be reopened (customer's rejection, NOC) this long after
    reopen_window_h: float = Field(72.0, ge=0, le=24 * 90)
    # a resolved ticket nobody answers is closed after this long
    auto_close_after_h: float = Field(72.0, gt=0, le=24 * 90)
    # a circuit must stay unknown this long before the NOC gets a monitoring-gap ticket (a
    # device restarting, or the collector's start, leaves circuits unknown for seconds)
    monitoring_gap_after_s: float = Field(300.0, ge=0, le=86_400)
    # how often the ticket service looks for crossed escalation levels and deadlines
    tick_interval_s: float = Field(5.0, gt=0, le=300)
    # the monthly SLA reports are issued this long after the month's end (UTC; a contract
    # whose time zone ends the month later is issued once it is over there too), so that
    # late data (a collector's spool replayed after an outage) is in them
    reports_issue_after_h: float = Field(1.0, ge=0, le=24 * 7)
    # how often the ticket service looks for a month whose reports are due
    reports_check_interval_s: float = Field(600.0, gt=0, le=86_400)

    _opened = field_validator("notify_opened", "notify_resolved")(_check_recipients)

    @field_validator("default_times")
    @classmethod
    def _all_priorities(cls, value: dict[str, PriorityTimes]) -> dict[str, PriorityTimes]:
        missing = [p for p in ("P1", "P2", "P3", "P4") if p not in value]
        if missing:
            raise ValueError(f"default_times needs P1, P2, P3 and P4 (missing {missing})")
        return value

    @field_validator("priority_rules")
    @classmethod
    def _every_impact(cls, value: list[PriorityRule]) -> list[PriorityRule]:
        general = {rule.impact for rule in value if not rule.contracts}
        missing = [i for i in Impact.__args__ if i not in general]  # type: ignore[attr-defined]
        if missing:
            raise ValueError("priority_rules needs a rule without contracts for every impact"
                             f" (missing {', '.join(missing)})")
        return value
