"""The words the alarm pipeline writes for people, kept as a code and its parameters.

An alarm's summary ("port oper status down") and the notes the pipeline adds to its timeline
("symptom of ...", "in maintenance window 4") are read by people in their own language, long
after the pipeline wrote them. So the pipeline does not store only the finished English
sentence: beside it (`Alarm.summary`, `TimelineEntry.comment`, kept for the command line,
the logs and the API) it stores the sentence as data, ``{"code": ..., "params": {...}}``,
under the key `TEXT` of the alarm's or the entry's `detail`. The portal renders that per
viewer: it translates the *template* of the code and then fills in the parameters
(portal/alarms_views.py `alarm_text`), never the finished string, so "port oper status down"
and "port oper status lowerLayerDown" are one message for the translators.

`TEMPLATES` is the one list of these sentences, marked with `N_` so that Babel's extraction
finds them (portal/i18n.py says how the catalog is refreshed; tests/test_portal_i18n.py fails
when one has no Chinese translation). A parameter may itself be a text (a dict with "code"),
rendered the same way. Parameters are the pipeline's facts (a port's IF-MIB status, an alarm
key, window numbers, a circuit's cause as alarms.service_state words it), not translated.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

TEXT = "text"  # the key, in an alarm's or a timeline entry's detail, of its words as data


def N_(message: str) -> str:
    """gettext's usual name for "mark for translation, translate later": the message."""
    return message


TEMPLATES: dict[str, str] = {
    "device_unreachable": N_("device down: no SNMP and no ICMP answer"),
    "snmp_unresponsive": N_("SNMP does not answer, the device does: not proven down"),
    "snmp_auth_failed": N_("the SNMP agent rejects the credential"),
    "snmp_unusable": N_("the SNMP agent answers unusably"),
    "port_oper": N_("port oper status %(oper)s"),
    "agent_restart": N_("SNMP agent restarted"),
    "flapping": N_("port changed state %(changes)s times in %(window_s)s s"),
    "condition_gone": N_("condition gone"),
    "symptom_of": N_("symptom of %(root)s"),
    "no_longer_symptom": N_("no longer a symptom"),
    "in_maintenance": N_("in maintenance window %(windows)s"),
    "maintenance_over": N_("maintenance over"),
    "service_down": N_("circuit out of service: %(cause)s"),
    "circuit_now": N_("circuit %(state)s"),
    "circuit_now_because": N_("circuit %(state)s: %(cause)s"),
    "circuit_gone": N_("circuit gone: retired"),
    "impact": N_("%(circuits)s circuits, %(customers)s customers"),
}


def text(code: str, **params: Any) -> dict[str, Any]:
    """A sentence as data (see the module docstring); KeyError for an unknown code."""
    if code not in TEMPLATES:  # fail where the text is written, not where it is read
        raise KeyError(f"no alarm text {code!r} in alarms.texts.TEMPLATES")
    return {"code": code, "params": params}


def render(words: Mapping[str, Any], translate: Callable[[str], str] = lambda t: t) -> str:
    """The sentence in words: `translate` (gettext) applied to its template and to the
    templates of texts among its parameters; English without it."""
    params = {name: render(value, translate) if isinstance(value, Mapping) and "code" in value
              else value for name, value in dict(words.get("params") or {}).items()}
    template = translate(TEMPLATES[words["code"]])
    return template % params if params else template


def english(words: Mapping[str, Any]) -> str:
    return render(words)
