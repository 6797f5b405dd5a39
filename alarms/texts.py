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
rendered the same way, and so may a list of texts (a circuit's cause: its reasons, joined by
"; "). The other parameters are the pipeline's facts (a port's IF-MIB status, an alarm key,
window numbers, device and port names), not translated.
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
    # a circuit's service state cause (alarms.service_state), a list of these: the reasons
    "cause_device_down": N_("device %(device)s down at the %(side)s end (%(role)s %(device)s)"),
    "cause_port_shut": N_("port %(port)s shut down (admin down) at the %(side)s end "
                          "(%(role)s %(device)s)"),
    "cause_port_down": N_("port %(port)s %(oper)s at the %(side)s end (%(role)s %(device)s)"),
    "cause_path_broken": N_("path broken: %(elements)s"),
    "cause_no_route_via": N_("no route: %(elements)s"),
    "cause_no_route": N_("no route between the circuit's ends"),
    "cause_path_device_down": N_("device %(device)s down"),
    "cause_path_link_down": N_("link %(link)s down"),
    "cause_unpolled": N_("device %(device)s not polled yet at the %(side)s end "
                         "(%(role)s %(device)s)"),
    "cause_silent": N_("device %(device)s at the %(side)s end (%(role)s %(device)s) does not "
                       "answer SNMP usably (%(verdict)s); not proven down"),
    "cause_port_unseen": N_("port %(port)s at the %(side)s end (%(role)s %(device)s) not seen "
                            "on the device"),
    "cause_path_invalid": N_("declared path invalid: %(problems)s"),
    "cause_path_unfit": N_("it does not fit the inventory"),
    "cause_on_port": N_("%(what)s on port %(port)s"),
    "cause_in_service": N_("in service"),
    "cause_maintenance": N_("in maintenance window %(windows)s (%(state)s: %(cause)s)"),
    # a whole cause as one text, as store.circuit_states keeps it: its reasons, joined by "; "
    "cause_reasons": N_("%(reasons)s"),
    "comma_list": N_("%(items)s"),  # a path's down devices and links, joined by ", "
    # a circuit's service state (alarms.service_state.ServiceState) as a parameter: `state`
    "state_up": N_("up"),
    "state_down": N_("down"),
    "state_degraded": N_("degraded"),
    "state_unknown": N_("unknown"),
    "state_maintenance": N_("maintenance"),
}

# The codes only the timeline's notes use, never a summary: staff read them (a customer's
# timeline carries no pipeline note, portal.alarm_access), so the customers' pages and API
# need not carry their templates ("6 circuits, 2 customers" is staff-only, even as a form).
NOTE_CODES = frozenset({"condition_gone", "symptom_of", "no_longer_symptom", "in_maintenance",
                        "maintenance_over", "circuit_now", "circuit_now_because",
                        "circuit_gone", "impact"})

# A list parameter (a cause's several reasons) reads as its items joined by "; ", or by the
# separator of the code whose parameter it is.
LIST_SEPARATOR = "; "
LIST_SEPARATORS = {"comma_list": ", "}


def text(code: str, **params: Any) -> dict[str, Any]:
    """A sentence as data (see the module docstring); KeyError for an unknown code."""
    if code not in TEMPLATES:  # fail where the text is written, not where it is read
        raise KeyError(f"no alarm text {code!r} in alarms.texts.TEMPLATES")
    return {"code": code, "params": params}


def state_words(name: str) -> dict[str, Any]:
    """A circuit's service state ("up", "down"...) as a text, to be a parameter."""
    return text(f"state_{name}")


def render(words: Mapping[str, Any], translate: Callable[[str], str] = lambda t: t) -> str:
    """The sentence in words: `translate` (gettext) applied to its template and to the
    templates of texts among its parameters (a list parameter: each item, joined by
    `LIST_SEPARATOR`); English without it. portal/static/alarm_texts.js renders the same
    way in the browser."""
    separator = LIST_SEPARATORS.get(words["code"], LIST_SEPARATOR)
    params = {name: render_value(value, translate, separator)
              for name, value in dict(words.get("params") or {}).items()}
    template = translate(TEMPLATES[words["code"]])
    return template % params if params else template


def render_value(value: Any, translate: Callable[[str], str] = lambda t: t,
                 separator: str = LIST_SEPARATOR) -> Any:
    """A parameter as `render` fills it in: a text rendered, a list's items joined by
    `separator`, anything else as it is."""
    if isinstance(value, Mapping) and "code" in value:
        return render(value, translate)
    if isinstance(value, list | tuple):
        return separator.join(str(render_value(item, translate)) for item in value)
    return value


def english(words: Mapping[str, Any]) -> str:
    return render(words)
