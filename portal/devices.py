"""A device's page: what it is, whether it answers, its health, and each of its ports.

`GET /devices/<id>` and its state as JSON, `GET /devices/<id>/status`, are served to every
viewer who may read the device's samples (store.queries.device_detail, which applies
object_visible: staff any device; a customer the devices at its own sites; an account
manager those of its customers); any other id is 404 like an id that does not exist. Both
come from one function (`device_state`), so the page and its JSON never disagree; the page's
script (portal/static/device.js) fetches the JSON every STATE_REFRESH_S seconds and redraws
the figures.

**Verdict.** Whether the device answers is the collector's verdict (collectors/
reachability.py), the latest "reachability" observation: reachable, down (no answer to SNMP
nor ping), SNMP-unresponsive, credentials rejected, answers unusable; with since when (the
observation's time: when its facts became true), the reason and the hint (what to check) as
the collector wrote them. A device with no verdict yet shows its raw poll status
(device_poll_status) or "not polled yet". When the device does not answer, its ports'
statuses are as last seen (docs/service-state.md), and the page says so.

**Health.** The latest `cpu_pct`, `mem_pct`, `temperature_c`, `fan_failed_count`,
`psu_failed_count` and `snmp_response_ms` samples (collectors/health.py), and per port the
latest optics (`optical_rx_dbm`, `optical_tx_dbm`) and rates, each no older than
LATEST_MAX_AGE_S (three health intervals of 300 s: an older figure is not "now" and the page
shows none); each figure carries its time. Charts of CPU, memory and temperature over 1 h to
30 d are drawn in the browser from /api/v1/samples, like the circuit page's.

**CLI.** For the operator's staff only, the device's side of CLI collection over SSH: its
status with reason and since when, its host keys, and for engineers the raw output of a
failed run and the form accepting a changed host key (portal/device_cli.py `cli_view`; the
"cli" field of the JSON, absent for anyone else).

**Ports.** Each inventory port with the interface it matched at the last poll (ifIndex and
how: by if_index, ifName, ifDescr...) or the problem in words and the collector's message
(store port_matches), its admin and oper status with since when (the latest observations),
optics, latest rates, and how many intervals of the last 24 hours had their rates withheld
(`if_rate_gap` samples). A port's row opens its traffic chart: in/out bit/s from
/api/v1/samples, and every withheld interval of the range from `/devices/<id>/ports/
<port>/gaps` (raw samples: their values are reason codes, collectors/counters.py SkipCode,
named here in words), drawn as a marker whose tooltip names the reason, the lines broken
there rather than drawn across.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Blueprint, abort, current_app, g, jsonify, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext, lazy_gettext
from markupsafe import Markup, escape

from collectors.counters import SkipCode
from collectors.port_names import (
    AMBIGUOUS,
    DUPLICATE,
    IF_INDEX_NAME_MISMATCH,
    IF_INDEX_STALE,
    MISSING,
)
from portal.alarms_views import alarm_time
from portal.app import format_bps
from portal.customer import STATE_REFRESH_S, chart_ranges
from portal.device_cli import cli_view
from portal.params import time_arg
from portal.security import current_viewer, login_required
from store.collection import dropped_ranges
from store.observations import StoredObservation
from store.queries import (
    DeviceDetail,
    PortRow,
    device_detail,
    devices_for,
    ports_for_device,
    sample_values,
)

blueprint = Blueprint("devices", __name__, url_prefix="/devices")

# The latest reading shown as "now" is at most this old (three health intervals).
LATEST_MAX_AGE_S = 900
# Withheld intervals are counted over this span in the ports table.
GAP_COUNT_SPAN = timedelta(hours=24)
# At most this many withheld intervals are sent for one chart (the newest).
MAX_GAPS = 2000
MAX_GAP_RANGE = timedelta(days=400)

GAP_METRIC = "if_rate_gap"
RATE_METRICS = ("if_in_bps", "if_out_bps")
OPTICS_METRICS = ("optical_rx_dbm", "optical_tx_dbm")
STATE_KINDS = ("reachability", "oper_status", "admin_status")

# The device's health figures: metric -> (label, unit).
HEALTH = {
    "cpu_pct": (lazy_gettext("CPU"), "%"),
    "mem_pct": (lazy_gettext("Memory"), "%"),
    "temperature_c": (lazy_gettext("Temperature"), "°C"),
    "fan_failed_count": (lazy_gettext("Fans failed"), ""),
    "psu_failed_count": (lazy_gettext("Power supplies failed"), ""),
    "snmp_response_ms": (lazy_gettext("SNMP poll time"), "ms"),
}

# The health charts: id -> (title, unit, metric).
HEALTH_CHARTS = {
    "cpu": (lazy_gettext("CPU"), "%", "cpu_pct"),
    "memory": (lazy_gettext("Memory"), "%", "mem_pct"),
    "temperature": (lazy_gettext("Temperature"), "°C", "temperature_c"),
}

# The collector's verdicts (collectors/reachability.py) -> (label, badge status).
VERDICTS = {
    "reachable": (lazy_gettext("reachable"), "up"),
    "unreachable": (lazy_gettext("down (no answer to SNMP nor ping)"), "down"),
    "snmp-unresponsive": (lazy_gettext("SNMP-unresponsive (answers ping)"), "degraded"),
    "auth-failed": (lazy_gettext("SNMP credentials rejected"), "degraded"),
    "error": (lazy_gettext("SNMP answers unusable"), "degraded"),
    "not polled": (lazy_gettext("not polled yet"), "unknown"),
}

# Verdicts of a device whose ports' statuses are old news.
SILENT_VERDICTS = frozenset({"unreachable", "snmp-unresponsive", "auth-failed", "error"})

# What to check when the collector gave no hint of its own.
DEFAULT_HINTS = {
    "unreachable": lazy_gettext(
        "Check the device's power, its uplink and the route from the collector to its "
        "management address."),
    "snmp-unresponsive": lazy_gettext(
        "Check the SNMP community or credential, ACLs and SNMP views on the device, the SNMP "
        "version and that the agent runs."),
    "auth-failed": lazy_gettext(
        "Check the SNMPv3 user, its authentication and privacy protocols and keys."),
    "error": lazy_gettext("Check the agent's software and its SNMP views."),
}

# ifOperStatus / ifAdminStatus by name (collectors/observations.py).
PORT_STATUS = {
    "up": (lazy_gettext("up"), "up"),
    "down": (lazy_gettext("down"), "down"),
    "testing": (lazy_gettext("testing"), "degraded"),
    "unknown": (lazy_gettext("unknown"), "unknown"),
    "dormant": (lazy_gettext("dormant"), "degraded"),
    "notPresent": (lazy_gettext("not present"), "down"),
    "lowerLayerDown": (lazy_gettext("lower layer down"), "down"),
}

# How a port matched its interface (store port_matches.matched_by).
MATCHED_BY = {
    "if_index": lazy_gettext("by if_index"),
    "ifName": lazy_gettext("by ifName"),
    "ifName (normalized)": lazy_gettext("by ifName (normalized)"),
    "ifDescr": lazy_gettext("by ifDescr"),
    "ifDescr (normalized)": lazy_gettext("by ifDescr (normalized)"),
}

# Why a port did not match, or matched against the inventory (collectors/port_names.py).
MATCH_PROBLEMS = {
    MISSING: lazy_gettext("no interface of this name on the device"),
    AMBIGUOUS: lazy_gettext("the name matches several interfaces"),
    IF_INDEX_NAME_MISMATCH: lazy_gettext(
        "the inventory's if_index is an interface of another name"),
    IF_INDEX_STALE: lazy_gettext("the inventory's if_index is no interface of the device"),
    DUPLICATE: lazy_gettext("the same interface as another port"),
}

# Why an interval's rates were withheld (collectors/counters.py SkipCode).
GAP_REASONS = {
    SkipCode.NO_PREVIOUS_READING: lazy_gettext("no previous reading"),
    SkipCode.OTHER_INTERFACE: lazy_gettext(
        "the previous reading was of another interface (ifIndex renumbered)"),
    SkipCode.NON_POSITIVE_INTERVAL: lazy_gettext("no time passed between the two readings"),
    SkipCode.AGENT_RESTARTED: lazy_gettext("the SNMP agent restarted"),
    SkipCode.CLOCKS_DISAGREE: lazy_gettext("the device's clock and the poller's disagree"),
    SkipCode.DISCONTINUITY_TIME_CHANGED: lazy_gettext(
        "the counters were reset (discontinuity time changed)"),
    SkipCode.COUNTER64_WENT_BACKWARDS: lazy_gettext("a 64-bit counter went backwards"),
    SkipCode.COUNTER32_INTERVAL_TOO_LONG: lazy_gettext(
        "too long an interval for a 32-bit counter (it may have wrapped twice)"),
    SkipCode.COUNTER32_RESET: lazy_gettext("a 32-bit counter was reset"),
    SkipCode.IMPLAUSIBLE_RATE: lazy_gettext("implausible rate (above the interface speed)"),
}


def gap_reason(code: float) -> str:
    """A withheld interval's reason code in words, in the viewer's language."""
    number = int(code)
    if number in GAP_REASONS:
        return str(GAP_REASONS[SkipCode(number)])
    return gettext("reason code %(code)s", code=number)


def _database() -> Any:
    return current_app.extensions["keyline.database"]


def _number(value: float, unit: str) -> str:
    if unit in ("", "count"):
        return f"{value:.0f}"
    if unit == "dBm":
        return f"{value:.2f} dBm"
    if unit == "bit/s":
        return format_bps(value)
    if unit == "ms":
        return f"{value:.0f} ms"
    return f"{value:.1f} {unit}"


def _reading(latest: Mapping[str, tuple[datetime, float]], metric: str,
             unit: str) -> dict[str, Any] | None:
    """A latest sample as the page shows it: value, text, time (None: no recent reading)."""
    found = latest.get(metric)
    if found is None:
        return None
    time, value = found
    return {"value": value, "text": _number(value, unit), "at": alarm_time(time),
            "time": time.isoformat()}


def _verdict(detail: DeviceDetail) -> dict[str, Any]:
    device = detail.device
    observed: StoredObservation | None = detail.states.get((device.id, "reachability"))
    if observed is not None:
        state, time = observed.new, observed.time
        reason = observed.detail.get("reason")
        hint = observed.detail.get("hint")
    elif detail.poll is not None:  # polled, never judged: the raw poll status
        state, time, reason, hint = (detail.poll.status, detail.poll.changed_at,
                                     detail.poll.reason, None)
    else:
        state, time, reason, hint = "not polled", None, None, None
    label, status = VERDICTS.get(state, (state, "unknown"))
    if hint is None and state in DEFAULT_HINTS:
        hint = str(DEFAULT_HINTS[state])
    since = alarm_time(time) if time is not None else None
    return {
        "state": state, "status": status, "label": str(label), "since": since,
        "since_text": gettext("since %(time)s", time=since) if since else None,
        "time": time.isoformat() if time is not None else None,
        "reason": reason, "hint": hint,
        "last_poll": alarm_time(detail.poll.last_poll_at) if detail.poll else None,
    }


def _port_status(observed: StoredObservation | None) -> dict[str, Any] | None:
    if observed is None:
        return None
    label, status = PORT_STATUS.get(observed.new, (observed.new, "unknown"))
    return {"value": observed.new, "label": str(label), "status": status,
            "since": alarm_time(observed.time)}


def _match(detail: DeviceDetail, port: PortRow) -> dict[str, Any]:
    row = detail.matches.get(port.id)
    if row is None:
        return {"if_index": None, "matched_by": None, "how": None, "problem": None,
                "problem_label": None, "message": None, "seen_at": None,
                "text": gettext("not matched yet (no poll)")}
    how = str(MATCHED_BY.get(row.matched_by, row.matched_by)) if row.matched_by else None
    text = (gettext("ifIndex %(index)s, %(how)s", index=row.if_index, how=how)
            if row.if_index is not None else gettext("no interface matched"))
    problem = (str(MATCH_PROBLEMS.get(row.problem, row.problem))
               if row.problem is not None else None)
    return {"if_index": row.if_index, "matched_by": row.matched_by, "how": how,
            "problem": row.problem, "problem_label": problem, "message": row.message,
            "seen_at": alarm_time(row.seen_at), "text": text}


def _port(detail: DeviceDetail, port: PortRow) -> dict[str, Any]:
    latest = detail.latest.get(port.id, {})
    return {
        "id": port.id, "key": port.key, "name": port.name, "description": port.description,
        "speed": _number(port.speed_bps, "bit/s") if port.speed_bps else None,
        "match": _match(detail, port),
        "admin": _port_status(detail.states.get((port.id, "admin_status"))),
        "oper": _port_status(detail.states.get((port.id, "oper_status"))),
        "rx_dbm": _reading(latest, "optical_rx_dbm", "dBm"),
        "tx_dbm": _reading(latest, "optical_tx_dbm", "dBm"),
        "in_bps": _reading(latest, "if_in_bps", "bit/s"),
        "out_bps": _reading(latest, "if_out_bps", "bit/s"),
        "gaps_24h": detail.counts.get(port.id, 0),
        "gaps_url": url_for("devices.port_gaps", device_id=detail.device.id, port_id=port.id),
    }


def device_state(device_id: int) -> dict[str, Any] | None:
    """Everything the device page shows, for the request's viewer: None if the viewer may
    not see the device (or there is none)."""
    viewer = current_viewer()
    with _database().pool.connection() as conn:
        detail = device_detail(
            conn, viewer, device_id, state_kinds=STATE_KINDS,
            device_metrics=list(HEALTH), port_metrics=[*OPTICS_METRICS, *RATE_METRICS],
            max_age_s=LATEST_MAX_AGE_S, count_metric=GAP_METRIC,
            count_since=datetime.now(UTC) - GAP_COUNT_SPAN)
        # the CLI side, for the operator's staff only (portal/device_cli.py)
        cli = cli_view(conn, viewer, device_id) if detail is not None else None
    if detail is None:
        return None
    device = detail.device
    latest = detail.latest.get(device.id, {})
    verdict = _verdict(detail)
    return {
        **({"cli": cli} if cli is not None else {}),
        "id": device.id, "key": device.key, "role": device.role, "platform": device.platform,
        "site": device.site_key, "customer": device.customer_key,
        "management_address": device.management_address,
        "verdict": verdict,
        # a device that does not answer says nothing new about its ports
        "ports_stale": verdict["state"] in SILENT_VERDICTS,
        "health": {metric: {"label": str(label), "reading": _reading(latest, metric, unit)}
                   for metric, (label, unit) in HEALTH.items()},
        "ports": [_port(detail, port) for port in detail.ports],
    }


def _page_config(state: Mapping[str, Any]) -> dict[str, Any]:
    """What the page's script reads from its JSON block: addresses, words, reasons."""
    return {
        "device_id": state["id"],
        "state_url": url_for("devices.device_status", device_id=state["id"]),
        "samples_url": url_for("api.samples"),
        "refresh_s": STATE_REFRESH_S,
        "labels": {
            "in": gettext("in"), "out": gettext("out"),
            "withheld": gettext("rates withheld"),
            "since": gettext("since %(time)s", time="@TIME@"),
            "no_data": gettext("No samples in this range."),
            "failed": gettext("Could not load the samples."),
            "no_gaps": gettext("No withheld intervals in this range."),
            "truncated": gettext("Only the newest %(count)d withheld intervals are shown.",
                                 count=MAX_GAPS),
        },
        "reasons": {str(int(code)): str(label) for code, label in GAP_REASONS.items()},
    }


@blueprint.get("/<int:device_id>")
@login_required
def device(device_id: int) -> str:
    state = device_state(device_id)
    if state is None:
        abort(404)
    return render_template("devices/device.html", device=state, ranges=chart_ranges(),
                           charts=HEALTH_CHARTS, config=_page_config(state))


@blueprint.get("/<int:device_id>/status")
@login_required
def device_status(device_id: int) -> ResponseReturnValue:
    """The device page's state as JSON, for its script (see the module docstring)."""
    state = device_state(device_id)
    if state is None:
        abort(404)
    return jsonify(state)


def _time_arg(name: str, default: datetime) -> datetime:
    return time_arg(request.args, name) or default


@blueprint.get("/<int:device_id>/ports/<int:port_id>/gaps")
@login_required
def port_gaps(device_id: int, port_id: int) -> ResponseReturnValue:
    """The withheld intervals of one port of the device in [start, end) (ISO 8601; the last
    24 hours by default), oldest first, each with its reason code and the reason in words;
    the newest MAX_GAPS when there are more (`truncated`)."""
    end = _time_arg("end", datetime.now(UTC))
    try:
        start = _time_arg("start", end - GAP_COUNT_SPAN)
        if start >= end or end - start > MAX_GAP_RANGE:
            abort(400)
    except OverflowError:  # a time at the edge of the calendar
        abort(400)
    viewer = current_viewer()
    with _database().pool.connection() as conn:
        ports = ports_for_device(conn, viewer, device_id)
        if ports is None or port_id not in {port.id for port in ports}:
            abort(404)
        found = sample_values(conn, viewer, port_id, GAP_METRIC, start, end, MAX_GAPS + 1)
        # data a full spool dropped: the start and the end of each range, as gaps of
        # their own (code 0), so the chart breaks there and says why
        dropped = dropped_ranges(conn, port_id, start, end)
    if found is None:
        abort(404)
    truncated = len(found) > MAX_GAPS
    gaps = [{"time": time.isoformat(), "at": alarm_time(time), "code": int(code),
             "reason": gap_reason(code)}
            for time, code in (found[1:] if truncated else found)]
    for first, last, rows in ((d.first_time, d.last_time, d.rows) for d in dropped):
        reason = gettext("data dropped: the collector's spool was full while the store was "
                         "away (%(rows)s values of this device); counted as unknown time",
                         rows=rows)
        gaps += [{"time": at.isoformat(), "at": alarm_time(at), "code": 0, "reason": reason}
                 for at in sorted({max(first, start), min(last, end)})]
    gaps.sort(key=lambda gap: gap["time"])
    return jsonify(device_id=device_id, port_id=port_id, start=start.isoformat(),
                   end=end.isoformat(), truncated=truncated, gaps=gaps)


# --- links from other pages ----------------------------------------------------------------


def _visible_devices() -> dict[str, int]:
    """Key -> id of the devices the request's viewer may open (read once per request)."""
    if "visible_devices" not in g:
        viewer = g.get("viewer")
        if viewer is None:
            g.visible_devices = {}
        else:
            with _database().pool.connection() as conn:
                g.visible_devices = {row.key: row.id for row in devices_for(conn, viewer)}
    return g.visible_devices


@blueprint.app_template_filter("device_end_link")
def device_end_link(end: str) -> Markup:
    """A circuit end as the pages write it ("device:port") with the device linked to its
    page when the viewer may open it; else the text as it is."""
    key, colon, port = end.partition(":")
    device_id = _visible_devices().get(key) if colon else None
    if device_id is None:
        return escape(end)
    return Markup('<a href="{}">{}</a>:{}').format(
        url_for("devices.device", device_id=device_id), key, port)
