"""The OpenAPI 3.1 document of the REST API (portal/api.py), written by hand.

It is plain data so that a reader sees the whole contract in one place; a test validates it
with openapi-spec-validator and checks that every /api/v1 route of the app appears in it
(tests/test_portal_api.py), so an endpoint cannot be added without being described.
"""

from __future__ import annotations

from typing import Any

from keyline import __version__


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _ok(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_ERRORS = {
    "401": {"$ref": "#/components/responses/Unauthorized"},
}
_NOT_FOUND = {"$ref": "#/components/responses/NotFound"}
_BAD = {"$ref": "#/components/responses/BadRequest"}


def _id_param(name: str, description: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "description": description,
            "schema": {"type": "integer", "format": "int64", "minimum": 0}}


def _list_of(key: str, item: str) -> dict[str, Any]:
    return {"type": "object", "required": [key],
            "properties": {key: {"type": "array", "items": _ref(item)}}}


# A topology view (topology.views): Cytoscape.js elements plus the circuits drawn.
_TOPOLOGY_VIEW: dict[str, Any] = {
    "type": "object", "required": ["view", "title", "elements", "circuits", "event_id"],
    "properties": {
        "view": {"type": "string", "enum": ["global", "customer", "vpn", "circuit"]},
        "title": {"type": "string"},
        "event_id": {"type": "integer", "description": (
            "the last event the statuses include: join the Socket.IO room with it as "
            "\"after\" to receive what changed since")},
        "elements": {"type": "object", "properties": {
            "nodes": {"type": "array", "items": {"type": "object", "properties": {
                "data": {"type": "object", "description": (
                    "id (\"device:12\", \"site:3\"), kind, object_id, label, role, "
                    "customer, parent (the site), status (up, down, degraded, unknown), "
                    "utilization_pct, alarms")},
                "position": {"type": "object", "description": (
                    "x, y in px: a deterministic layout, the same in every view")}}}},
            "edges": {"type": "array", "items": {"type": "object", "properties": {
                "data": {"type": "object", "description": (
                    "id (\"link:40\"), source, target, link_id, a_port, z_port, "
                    "capacity_bps, cost, known_from, status, utilization_pct, alarms, "
                    "circuit_count")}}}}}},
        "circuits": {"type": "array", "items": {"type": "object", "description": (
            "id, object_id, key, customer, service_type, bandwidth_bps, status, alarms, "
            "declared, valid, problems, hops")}},
    },
}


def _topology_paths() -> dict[str, Any]:
    def view(summary: str, operation: str, param: tuple[str, str] | None) -> dict[str, Any]:
        spec: dict[str, Any] = {
            "summary": summary, "operationId": operation,
            "responses": {"200": _ok(_ref("TopologyView"), "the view"), "404": _NOT_FOUND,
                          **_ERRORS}}
        if param is not None:
            spec["parameters"] = [_id_param(*param)]
        return {"get": spec}

    return {
        "/topology/global": view("The whole network (staff only; others get 404)",
                                 "getGlobalTopology", None),
        "/topology/customers/{customer_id}": view(
            "One customer's sites, CE routers and circuits' paths", "getCustomerTopology",
            ("customer_id", "the customer's id")),
        "/topology/vpns/{vpn_id}": view("One VPN's sites and circuits' paths",
                                        "getVpnTopology", ("vpn_id", "the VPN's id")),
        "/topology/circuits/{circuit_id}": view("One circuit's route, hop by hop",
                                                "getCircuitTopology",
                                                ("circuit_id", "the circuit's id")),
    }


# --- alarms and maintenance windows (portal/alarms_api.py) ---------------------------------

_FORBIDDEN = {"$ref": "#/components/responses/Forbidden"}
_CONFLICT = {"$ref": "#/components/responses/Conflict"}


def _query(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "description": description,
            "schema": schema}


def _json_body(schema: dict[str, Any], *, required: bool) -> dict[str, Any]:
    return {"required": required, "content": {"application/json": {"schema": schema}}}


def _alarm_action(summary: str, operation: str, body: dict[str, Any],
                  required: bool) -> dict[str, Any]:
    return {"post": {
        "summary": summary, "operationId": operation,
        "parameters": [_id_param("alarm_id", "the alarm's id")],
        "requestBody": _json_body(body, required=required),
        "responses": {"200": _ok(_ref("AlarmDetail"), "the alarm, changed"), "400": _BAD,
                      "403": _FORBIDDEN, "404": _NOT_FOUND, "409": _CONFLICT, **_ERRORS},
    }}


def _alarm_paths() -> dict[str, Any]:
    customer_note = {"type": "string", "maxLength": 2000, "description": (
        "optional: what the customers hit may read (the only free text they are shown)")}
    comment = {"type": "object", "properties": {
        "note": {"type": "string", "maxLength": 2000,
                 "description": "internal note, staff only (optional)"},
        "comment": {"type": "string", "maxLength": 2000, "deprecated": True,
                    "description": "the former name of note"},
        "customer_note": customer_note}}
    reason = {"type": "object", "anyOf": [{"required": ["note"]}, {"required": ["reason"]}],
              "properties": {
                  "note": {"type": "string", "minLength": 1, "maxLength": 2000,
                           "description": "why it is cleared by hand: internal note, "
                                          "staff only"},
                  "reason": {"type": "string", "minLength": 1, "maxLength": 2000,
                             "deprecated": True, "description": "the former name of note"},
                  "customer_note": customer_note}}
    return {
        "/alarms": {"get": {
            "summary": "Alarms the caller may see (a customer: those hitting it), newest first",
            "operationId": "listAlarms",
            "parameters": [
                _query("state", "active (default), cleared or all",
                       {"type": "string", "enum": ["active", "cleared", "all"]}),
                _query("severity", "only this severity", {"type": "string", "enum": [
                    "critical", "major", "minor", "warning"]}),
                _query("customer_id", "only alarms hitting this customer",
                       {"type": "integer", "format": "int64", "minimum": 0}),
                _query("acknowledged", "only acknowledged (true) or unacknowledged (false)",
                       {"type": "boolean"}),
                _query("limit", "at most this many (1-1000, default 200)",
                       {"type": "integer", "minimum": 1, "maximum": 1000}),
            ],
            "responses": {"200": _ok(_list_of("alarms", "Alarm"), "alarms"), "400": _BAD,
                          **_ERRORS},
        }},
        "/alarms/{alarm_id}": {"get": {
            "summary": "One alarm with its timeline and its symptoms' ids",
            "operationId": "getAlarm",
            "parameters": [_id_param("alarm_id", "the alarm's id")],
            "responses": {"200": _ok(_ref("AlarmDetail"), "the alarm"), "404": _NOT_FOUND,
                          **_ERRORS},
        }},
        "/alarm-texts": {"get": {
            "summary": "The templates of alarms' texts (AlarmText) in the caller's language "
                       "(Accept-Language); a customer gets those of summaries only",
            "operationId": "getAlarmTexts",
            "responses": {"200": _ok({"type": "object", "properties": {
                "templates": {"type": "object", "additionalProperties": {"type": "string"},
                              "description": "code -> template with %(name)s placeholders"},
                "separator": {"type": "string", "description": "joins a list parameter"},
                "separators": {"type": "object", "additionalProperties": {"type": "string"},
                               "description": "code -> the separator of its lists"}}},
                "the templates"), **_ERRORS},
        }},
        "/alarms/{alarm_id}/acknowledge": _alarm_action(
            "Acknowledge an active alarm (roles engineer, noc, admin)", "acknowledgeAlarm",
            comment, False),
        "/alarms/{alarm_id}/unacknowledge": _alarm_action(
            "Take an acknowledgement back (roles engineer, noc, admin)", "unacknowledgeAlarm",
            comment, False),
        "/alarms/{alarm_id}/clear": _alarm_action(
            "Clear an active alarm by hand, with a reason (roles engineer, noc, admin)",
            "clearAlarm", reason, True),
        "/maintenance-windows": {
            "get": {
                "summary": "Maintenance windows the caller may see (a customer: those "
                           "covering its objects, narrowed to them)",
                "operationId": "listMaintenanceWindows",
                "parameters": [_query("status", "only active, future or past windows",
                                      {"type": "string",
                                       "enum": ["active", "future", "past"]})],
                "responses": {"200": _ok(_list_of("windows", "MaintenanceWindow"),
                                         "windows"), "400": _BAD, **_ERRORS},
            },
            "post": {
                "summary": "Declare a maintenance window (roles engineer, noc, admin)",
                "operationId": "createMaintenanceWindow",
                "requestBody": _json_body({
                    "type": "object", "required": ["scope", "starts_at", "ends_at"],
                    "anyOf": [{"required": ["note"]}, {"required": ["reason"]}],
                    "properties": {
                        "scope": {"type": "array", "minItems": 1, "maxItems": 50,
                                  "items": {"type": "string"}, "description": (
                                      "device:KEY, port:DEVICE:PORT, circuit:KEY or "
                                      "customer:KEY")},
                        "starts_at": {"type": "string", "format": "date-time",
                                      "description": "not in the past, at most the setting"
                                                     " alarms.maintenance_max_ahead_days"
                                                     " (365) ahead"},
                        "ends_at": {"type": "string", "format": "date-time",
                                    "description": "after starts_at, at most the setting"
                                                   " alarms.maintenance_max_days (31)"
                                                   " after it; a 400 names the field"},
                        "note": {"type": "string", "minLength": 1, "maxLength": 2000,
                                 "description": "why: internal note, staff only"},
                        "reason": {"type": "string", "minLength": 1, "maxLength": 2000,
                                   "deprecated": True, "description": "the former name of note"},
                        "customer_note": customer_note}},
                    required=True),
                "responses": {"201": _ok(_ref("MaintenanceWindow"), "the window declared"),
                              "400": _BAD, "403": _FORBIDDEN, **_ERRORS},
            },
        },
        "/maintenance-windows/{window_id}/end": {"post": {
            "summary": "End a running window now, or cancel one not yet begun (past windows "
                       "are immutable: 409)",
            "operationId": "endMaintenanceWindow",
            "parameters": [_id_param("window_id", "the window's id")],
            "responses": {"200": _ok(_ref("MaintenanceWindow"),
                                     "the window as ended (status cancelled if it had not "
                                     "begun)"),
                          "403": _FORBIDDEN, "404": _NOT_FOUND, "409": _CONFLICT, **_ERRORS},
        }},
    }


def _alarm_schemas() -> dict[str, Any]:
    nullable_text = {"type": ["string", "null"]}
    nullable_time = {"type": ["string", "null"], "format": "date-time"}
    ids = {"type": "array", "items": {"type": "integer"}}
    alarm = {"type": "object", "required": ["id", "severity", "state", "type"], "properties": {
        "id": {"type": "integer"},
        "object_kind": {"type": "string", "enum": ["device", "port", "link", "circuit"]},
        "object_id": {"type": ["integer", "null"], "description": (
            "null for a customer when the object is another customer's")},
        "type": {"type": "string", "description": (
            "device_unreachable, device_isolated, poll_failed, link_down, flapping, "
            "threshold, trap_event, service_down")},
        "qualifier": nullable_text,
        "severity": {"type": "string", "enum": ["critical", "major", "minor", "warning"]},
        "state": {"type": "string", "enum": ["active", "cleared"]},
        "summary": {"type": ["string", "null"], "description": (
            "null for a customer when the object is another customer's")},
        "text": {"oneOf": [{"$ref": "#/components/schemas/AlarmText"}, {"type": "null"}],
                 "description": "the summary as data, to show it in the reader's language; "
                                "null where the summary is a person's words or hidden"},
        "first_seen": {"type": "string", "format": "date-time"},
        "last_seen": {"type": "string", "format": "date-time"},
        "count": {"type": "integer"}, "cleared_at": nullable_time,
        "root_cause_id": {"type": ["integer", "null"], "description": (
            "the alarm this one is a symptom of; null when the caller may not see that "
            "alarm")},
        "impacted_circuits": {**ids, "description": "circuit ids (the caller's only)"},
        "impacted_customers": {**ids, "description": "customer ids (the caller's only)"},
        "suppressed": {"type": "boolean", "description": "inside a maintenance window"},
        "acknowledged": {"type": "boolean"},
        "acknowledged_by": {"type": ["string", "null"],
                            "description": "staff only: null for a customer"},
        "acknowledged_at": nullable_time,
        "ack_comment": {"type": ["string", "null"],
                        "description": "the internal note, staff only: null for a customer"},
        "ack_customer_note": {"type": ["string", "null"],
                              "description": "the note for the customers"}}}
    return {
        "Alarm": alarm,
        "AlarmDetail": {"allOf": [alarm, {"type": "object", "properties": {
            "symptoms": {**ids, "description": "ids of the alarms this one causes"},
            "timeline": {"type": "array", "items": {"type": "object", "properties": {
                "time": {"type": "string", "format": "date-time"},
                "action": {"type": "string", "description": (
                    "raised, repeated, rooted, unrooted, impact, suppressed, unsuppressed, "
                    "acknowledged, unacknowledged, cleared")},
                "actor": {"type": "string", "description": (
                    "a user, or \"pipeline\"; \"operator\" for any person, to a customer")},
                "comment": {"type": ["string", "null"], "description": (
                    "the internal note (or the pipeline's), staff only: null for a "
                    "customer")},
                "customer_note": nullable_text,
                "text": {"oneOf": [{"$ref": "#/components/schemas/AlarmText"},
                                   {"type": "null"}],
                         "description": "the pipeline's comment as data, staff only"},
                "config_change": {"type": "object", "description": (
                    "only in an entry of action config_changed (\"what changed?\": a "
                    "configuration change on a device of the alarm's impact path in the "
                    "hour before it was raised; roles engineer, noc, admin only, whose "
                    "actor is the device): device_id, device, version, previous_version, "
                    "changed_after (the previous version's last sighting), fetched_at, "
                    "diff_url (the page), api_url")}}}}}}]},
        "AlarmText": {"type": "object", "required": ["code", "params"], "description": (
            "A sentence as data (alarms/texts.py): `code` names its template (GET "
            "/api/v1/alarm-texts gives the templates in the caller's language), `params` "
            "fill its %(name)s placeholders. A parameter is a value as it is, an AlarmText "
            "(render it the same way), or a list of those (join them with \"; \", with "
            "\", \" in code comma_list)."), "properties": {
            "code": {"type": "string"},
            "params": {"type": "object", "additionalProperties": True}}},
        "MaintenanceWindow": {"type": "object", "properties": {
            "id": {"type": "integer"},
            "scope": {"type": "array", "items": {"type": "object", "properties": {
                "kind": {"type": "string", "enum": ["device", "port", "circuit", "customer"]},
                "key": {"type": "string"}, "object_id": {"type": "integer"}}}},
            "starts_at": {"type": "string", "format": "date-time"},
            "ends_at": {"type": "string", "format": "date-time"},
            "reason": {"type": ["string", "null"],
                       "description": "the internal note, staff only: null for a customer"},
            "declared_by": {"type": ["string", "null"],
                            "description": "staff only: null for a customer"},
            "customer_note": nullable_text,
            "declared_at": nullable_time, "ended_by": nullable_text,
            "status": {"type": "string", "enum": ["active", "future", "past", "cancelled"]}}},
    }


# --- trouble tickets (portal/tickets_api.py) -----------------------------------------------

_TICKET_STATES = ["open", "acknowledged", "in_progress", "pending_customer", "resolved",
                  "closed"]
_TICKET_KINDS = ["fault", "complaint", "incident", "monitoring_gap"]
_PRIORITIES = ["P1", "P2", "P3", "P4"]


def _ticket_action(summary: str, operation: str, body: dict[str, Any], required: bool,
                   created: bool = False) -> dict[str, Any]:
    return {"post": {
        "summary": summary, "operationId": operation,
        "parameters": [_id_param("ticket_id", "the ticket's id")],
        "requestBody": _json_body(body, required=required),
        "responses": {("201" if created else "200"): _ok(_ref("TicketDetail"),
                                                         "the ticket, changed"),
                      "400": _BAD, "403": _FORBIDDEN, "404": _NOT_FOUND, "409": _CONFLICT,
                      **_ERRORS},
    }}


def _ticket_paths() -> dict[str, Any]:
    def comment(required: bool, *, internal: bool = False,
                description: str = "optional") -> dict[str, Any]:
        body: dict[str, Any] = {"type": "object", "properties": {
            "comment": {"type": "string", "minLength": 1 if required else 0,
                        "maxLength": 2000, "description": description}}}
        if required:
            body["required"] = ["comment"]
        if internal:
            body["properties"]["internal"] = {
                "type": "boolean", "default": False,
                "description": "staff only: the comment is not shown to the customer"}
        return body

    shared = "shown to the customer"
    return {
        "/tickets": {
            "get": {
                "summary": "Tickets the caller may see (a customer: its own fault and "
                           "complaint tickets), active ones by time to breach, then the "
                           "others newest first",
                "operationId": "listTickets",
                "parameters": [
                    {**_query("state", "only these states (repeat it or separate by "
                                       "commas); \"active\" (the default) is open, "
                                       "acknowledged, in_progress and pending_customer, "
                                       "\"all\" every state",
                              {"type": "array", "items": {
                                  "type": "string",
                                  "enum": ["active", "all", *_TICKET_STATES]}}),
                     "style": "form", "explode": True},
                    {**_query("kind", "only these kinds (repeatable)",
                              {"type": "array", "items": {"type": "string",
                                                          "enum": _TICKET_KINDS}}),
                     "style": "form", "explode": True},
                    _query("customer_id", "only this customer's tickets (a customer: its "
                                          "own, any other gives none)",
                           {"type": "integer", "format": "int64", "minimum": 0}),
                    _query("limit", "at most this many (1-1000, default 200)",
                           {"type": "integer", "minimum": 1, "maximum": 1000}),
                    _query("before", "only tickets with a smaller id (the next page of "
                                     "resolved and closed tickets: the last id seen)",
                           {"type": "integer", "format": "int64", "minimum": 1}),
                ],
                "responses": {"200": _ok(_ref("TicketList"), "tickets"), "400": _BAD,
                              **_ERRORS},
            },
            "post": {
                "summary": "Open a ticket on one circuit: a customer reports a fault or a "
                           "complaint on its own circuit; staff (roles engineer, noc, admin) "
                           "for any customer, with a priority if they name one",
                "operationId": "openTicket",
                "requestBody": _json_body({
                    "type": "object", "required": ["circuit_id", "title"],
                    "properties": {
                        "circuit_id": {"type": "integer", "format": "int64", "minimum": 1},
                        "title": {"type": "string", "minLength": 1, "maxLength": 200},
                        "description": {"type": "string", "maxLength": 2000},
                        "kind": {"type": "string", "enum": ["fault", "complaint"],
                                 "default": "fault"},
                        "priority": {"type": "string", "enum": _PRIORITIES, "description": (
                            "staff only (a customer gets 403); default: the sla.priority_rules"
                            " rule for a reported fault or a complaint")}}},
                    required=True),
                "responses": {"201": _ok(_ref("TicketDetail"), "the ticket opened"),
                              "400": _BAD, "403": _FORBIDDEN, "404": _NOT_FOUND, **_ERRORS},
            },
        },
        "/tickets/{ticket_id}": {"get": {
            "summary": "One ticket with its circuits, clocks and timeline",
            "operationId": "getTicket",
            "parameters": [_id_param("ticket_id", "the ticket's id")],
            "responses": {"200": _ok(_ref("TicketDetail"), "the ticket"), "404": _NOT_FOUND,
                          **_ERRORS},
        }},
        "/tickets/{ticket_id}/acknowledge": _ticket_action(
            "Acknowledge: meets the response clock (staff)", "acknowledgeTicket",
            comment(False, internal=True), False),
        "/tickets/{ticket_id}/start": _ticket_action(
            "Start work (acknowledges too if nobody had; staff)", "startTicket",
            comment(False, internal=True), False),
        "/tickets/{ticket_id}/pause": _ticket_action(
            "Pending the customer: both clocks pause (staff)", "pauseTicket",
            comment(True, description=f"what the customer is asked for, {shared}"), True),
        "/tickets/{ticket_id}/resume": _ticket_action(
            "Resume a ticket pending the customer (staff)", "resumeTicket",
            comment(False), False),
        "/tickets/{ticket_id}/resolve": _ticket_action(
            "Resolve: stops the resolution clock (staff)", "resolveTicket",
            comment(True, description=f"what was done, {shared}"), True),
        "/tickets/{ticket_id}/close": _ticket_action(
            "Close a resolved ticket (staff; a customer confirms its resolution)",
            "closeTicket", comment(False), False),
        "/tickets/{ticket_id}/reopen": _ticket_action(
            "Reopen a resolved or closed ticket within sla.reopen_window_h of its "
            "resolution: the resolution clock resumes (staff; a customer rejects the "
            "resolution)", "reopenTicket", comment(True, description="why"), True),
        "/tickets/{ticket_id}/comments": _ticket_action(
            "Comment (text only; staff may keep it internal)", "commentTicket",
            {"type": "object", "required": ["text"], "properties": {
                "text": {"type": "string", "minLength": 1, "maxLength": 2000},
                "internal": {"type": "boolean", "default": False, "description": (
                    "staff only: not shown to the customer (a customer gets 400)")}}},
            True, created=True),
        "/tickets/{ticket_id}/priority": _ticket_action(
            "Change the priority, with a reason: the clocks keep the time used and take "
            "the new priority's targets (staff)", "setTicketPriority",
            {"type": "object", "required": ["priority", "reason"], "properties": {
                "priority": {"type": "string", "enum": _PRIORITIES},
                "reason": {"type": "string", "minLength": 1, "maxLength": 2000}}}, True),
    }


def _ticket_schemas() -> dict[str, Any]:
    nullable_text = {"type": ["string", "null"]}
    nullable_time = {"type": ["string", "null"], "format": "date-time"}
    staff_only = "staff only: absent for a customer"
    clock = {"type": "object", "required": [
        "target_s", "used_s", "remaining_s", "due_at", "running", "paused", "paused_s",
        "met_at", "breached"], "properties": {
        "target_s": {"type": "integer", "description": "business seconds promised"},
        "used_s": {"type": "number", "description": "business seconds used at server_time"},
        "remaining_s": {"type": "number", "description": (
            "business seconds left at server_time; negative once over the target")},
        "due_at": {**nullable_time, "description": (
            "when the running clock reaches its target, on the contract's calendar; null "
            "while it is paused or met")},
        "running": {"type": "boolean"}, "paused": {"type": "boolean"},
        "paused_s": {"type": "number", "description": "wall seconds spent paused"},
        "met_at": {**nullable_time, "description": "when it was met (acknowledged, "
                                                   "resolved)"},
        "breached": {"type": "boolean"}}}
    circuit = {"type": "object", "required": ["id", "key"], "properties": {
        "id": {"type": "integer"}, "key": {"type": "string"}}}
    ticket = {"type": "object", "required": [
        "id", "kind", "origin", "priority", "state", "title", "opened_at", "clocks",
        "circuits"], "properties": {
        "id": {"type": "integer"},
        "kind": {"type": "string", "enum": _TICKET_KINDS},
        "origin": {"type": "string", "enum": ["alarm", "customer", "noc"]},
        "priority": {"type": "string", "enum": _PRIORITIES},
        "impact": {"type": "string", "description": (
            "all_down, partial_down, redundancy_lost, degraded, monitoring_gap, reported, "
            "complaint")},
        "state": {"type": "string", "enum": _TICKET_STATES},
        "title": {"type": "string"},
        "customer_id": {"type": ["integer", "null"], "description": (
            "null for the NOC's incident and monitoring-gap tickets")},
        "customer_key": nullable_text, "customer_name": nullable_text,
        "contract_key": nullable_text,
        "opened_at": {"type": "string", "format": "date-time"},
        "opened_by": {**nullable_text, "description": (
            "a user, or \"keyline\" for the ticket service; \"operator\" for the NOC's "
            "people, to a customer")},
        "acknowledged_at": nullable_time,
        "acknowledged_by": {**nullable_text, "description": "staff only: null for a customer"},
        "resolved_at": nullable_time, "closed_at": nullable_time,
        "updated_at": {"type": "string", "format": "date-time"},
        "clocks": {"type": "object", "required": ["response", "resolution"], "properties": {
            "response": {**clock, "description": "met by the first acknowledgement"},
            "resolution": {**clock, "description": "met by the resolution"}}},
        "circuits": {"type": "array", "items": circuit},
        "master_id": {"type": ["integer", "null"], "description": (
            f"the NOC's incident ticket this one belongs to; {staff_only}")},
        "incident_key": {**nullable_text, "description": staff_only}}}
    entry = {"type": "object", "required": ["id", "time", "actor", "action"], "properties": {
        "id": {"type": "integer"},
        "time": {"type": "string", "format": "date-time"},
        "actor": {"type": "string", "description": (
            "a user, or \"keyline\" for the ticket service; \"operator\" for the NOC's "
            "people, to a customer")},
        "actor_kind": {"type": "string", "enum": ["system", "staff", "customer"]},
        "action": {"type": "string", "description": (
            "opened, acknowledged, in_progress, paused, resumed, resolved, closed, "
            "reopened, commented, priority, circuit_added, escalated, breached")},
        "from_state": nullable_text, "to_state": nullable_text,
        "comment": nullable_text,
        "internal": {"type": "boolean", "description": (
            "an internal note (staff only: a customer never gets one)")},
        "alarm_id": {"type": ["integer", "null"],
                     "description": "the alarm behind it; null for a customer"},
        "detail": {"type": "object", "additionalProperties": True, "description": (
            "the facts of the change (circuits, priority from/to, clock, level_pct, "
            "due_at...); a customer gets no alarm or incident ids")}}}
    return {
        "TicketClock": clock,
        "Ticket": ticket,
        "TicketList": {"type": "object", "required": ["tickets", "server_time"], "properties": {
            "tickets": {"type": "array", "items": _ref("Ticket")},
            "server_time": {"type": "string", "format": "date-time", "description": (
                "the database's now, at which the clocks' figures hold: count down from it")}}},
        "TicketDetail": {"allOf": [ticket, {"type": "object", "required": [
            "description", "timeline", "server_time"], "properties": {
            "description": {"type": "string"},
            "circuits": {"type": "array", "items": {"type": "object", "properties": {
                "id": {"type": "integer"}, "key": {"type": "string"},
                "state": {"type": "string", "description": (
                    "the state that brought it in (down, degraded, unknown, reported)")},
                "added_at": {"type": "string", "format": "date-time"},
                "restored_at": {**nullable_time, "description": "when it was back"},
                "alarm_id": {"type": ["integer", "null"], "description": staff_only}}}},
            "timeline": {"type": "array", "items": entry},
            "children": {"type": "array", "items": {"type": "integer"}, "description": (
                f"an incident's customer tickets; {staff_only}")},
            "server_time": {"type": "string", "format": "date-time"}}}]},
    }


# --- SLA figures, reports and customer-caused marks (portal/sla_api.py) -------------------

_MONTH = {"type": "string", "pattern": "^[0-9]{4}-(0[1-9]|1[0-2])$",
          "description": "YYYY-MM, 1970-01 to 2199-12, not after the current month"}


def _sla_paths() -> dict[str, Any]:
    month = _query("month", "the month, YYYY-MM (default: the current month, to date); a "
                            "bad or future one is 400 naming `month`", _MONTH)
    customer = _query("customer", "one customer's key (it must be the caller's: another is "
                                  "404)", {"type": "string", "minLength": 1})
    report_id = _id_param("report_id", "the issued report's id")
    unavailable = _ok(_ref("Error"), "the PDF cannot be made on this server (renderer or "
                                     "CJK font missing)")
    mark_answer = {"400": _BAD, "403": _FORBIDDEN, "404": _NOT_FOUND, **_ERRORS}
    return {
        "/sla/figures": {"get": {
            "summary": "The SLA figures of the caller's circuits for a month (a customer: its "
                       "own; an account manager: their customers'; operators: every "
                       "customer's): per circuit, per customer and all together",
            "operationId": "getSlaFigures",
            "parameters": [month, customer],
            "responses": {"200": _ok(_ref("SlaFigures"), "the figures"), "400": _BAD,
                          "404": _NOT_FOUND, **_ERRORS},
        }},
        "/sla/statement": {"get": {
            "summary": "One customer's month built now (not issued), as a statement with every "
                       "input: `keyline sla compute FILE` recomputes each figure from it",
            "operationId": "getSlaStatement",
            "parameters": [{**customer, "description": (
                "the customer's key: required for staff; a customer may leave it out (its "
                "own) and any other is 404")}, month],
            "responses": {"200": _ok(_ref("SlaStatement"), "the statement"), "400": _BAD,
                          "404": _NOT_FOUND, **_ERRORS},
        }},
        "/sla/reports": {"get": {
            "summary": "Issued monthly SLA reports the caller may read, newest month first, "
                       "every version",
            "operationId": "listSlaReports",
            "parameters": [_query("month", "only this month's", _MONTH)],
            "responses": {"200": _ok(_ref("SlaReportList"), "the reports"), "400": _BAD,
                          **_ERRORS},
        }},
        "/sla/reports/{report_id}": {"get": {
            "summary": "One issued report version with its whole statement and its difference "
                       "from the version before",
            "operationId": "getSlaReport",
            "parameters": [report_id],
            "responses": {"200": _ok(_ref("SlaReportDetail"), "the report"),
                          "404": _NOT_FOUND, **_ERRORS},
        }},
        "/sla/reports/{report_id}.json": {"get": {
            "summary": "The issued report's statement as a file (the input of `keyline sla "
                       "compute`)",
            "operationId": "downloadSlaReportStatement",
            "parameters": [report_id],
            "responses": {"200": _ok(_ref("SlaStatement"), "the statement"),
                          "404": _NOT_FOUND, **_ERRORS},
        }},
        "/sla/reports/{report_id}.csv": {"get": {
            "summary": "The issued report as CSV",
            "operationId": "downloadSlaReportCsv",
            "parameters": [report_id],
            "responses": {"200": {"description": "the CSV", "content": {
                "text/csv": {"schema": {"type": "string"}}}},
                "404": _NOT_FOUND, **_ERRORS},
        }},
        "/sla/reports/{report_id}.pdf": {"get": {
            "summary": "The issued report as PDF, printed from the report page's template",
            "operationId": "downloadSlaReportPdf",
            "parameters": [report_id, _query(
                "language", "en or zh_CN (default: the caller's language)",
                {"type": "string", "enum": ["en", "zh_CN"]})],
            "responses": {"200": {"description": "the PDF", "content": {
                "application/pdf": {"schema": {"type": "string", "format": "binary"}}}},
                "400": _BAD, "404": _NOT_FOUND, "503": unavailable, **_ERRORS},
        }},
        "/sla/marks": {
            "get": {
                "summary": "A circuit's customer-caused marks over a month, withdrawn ones "
                           "included (the audit trail); a customer reads its own circuits'",
                "operationId": "listSlaMarks",
                "parameters": [{**_query("circuit", "the circuit's key",
                                         {"type": "string", "minLength": 1}),
                                "required": True}, month],
                "responses": {"200": _ok(_ref("SlaMarkList"), "the marks"), "400": _BAD,
                              "404": _NOT_FOUND, **_ERRORS},
            },
            "post": {
                "summary": "Mark a circuit's time customer-caused, with a reason (account "
                           "managers on their customers' circuits, noc, engineer, admin; a "
                           "customer gets 403): excluded from the figures like maintenance; "
                           "issued reports of the months it touches are issued again",
                "operationId": "markSlaCustomerCaused",
                "requestBody": _json_body({
                    "type": "object", "required": ["circuit", "start", "end", "reason"],
                    "properties": {
                        "circuit": {"type": "string", "minLength": 1,
                                    "description": "the circuit's key"},
                        "start": {"type": "string", "format": "date-time"},
                        "end": {"type": "string", "format": "date-time", "description": (
                            "after start, not in the future, at most 62 days after start")},
                        "reason": {"type": "string", "minLength": 1, "maxLength": 2000,
                                   "description": "printed in the customer's report"}}},
                    required=True),
                "responses": {"201": _ok(_ref("SlaMark"), "the mark"), **mark_answer},
            },
        },
        "/sla/marks/{mark_id}/withdraw": {"post": {
            "summary": "Withdraw a mark, with a reason: its time counts again (it stays in "
                       "the audit trail)",
            "operationId": "withdrawSlaMark",
            "parameters": [_id_param("mark_id", "the mark's id")],
            "requestBody": _json_body({"type": "object", "required": ["reason"], "properties": {
                "reason": {"type": "string", "minLength": 1, "maxLength": 2000}}},
                required=True),
            "responses": {"200": _ok(_ref("SlaMark"), "the mark, withdrawn"),
                          "409": _CONFLICT, **mark_answer},
        }},
    }


def _sla_schemas() -> dict[str, Any]:
    nullable_text = {"type": ["string", "null"]}
    time = {"type": "string", "format": "date-time"}
    report = {"type": "object", "required": [
        "id", "kind", "subject", "month", "version", "issued_at", "reason"], "properties": {
        "id": {"type": "integer"},
        "kind": {"type": "string", "enum": ["customer", "account_manager"]},
        "subject": {"type": "string", "description": (
            "the customer's key, or the account manager's login")},
        "subject_name": nullable_text,
        "month": {"type": "string"}, "version": {"type": "integer", "minimum": 1},
        "issued_at": time,
        "reason": {**nullable_text, "description": "why this version (null for version 1)"},
        "issued_by": {"type": "string", "description": "staff only"}}}
    statement = {"type": "object", "required": ["format", "format_version", "month",
                                                "circuits", "figures"],
                 "additionalProperties": True, "description": (
                     "the statement format of docs/sla-statement.md: subject, period, as_of, "
                     "contracts, circuits (states, maintenance, customer_caused, "
                     "measurements), tickets, figures")}
    return {
        "SlaStatement": statement,
        "SlaFigures": {"type": "object", "required": ["month", "as_of", "subject", "figures"],
                       "properties": {
                           "month": {"type": "string"}, "as_of": time,
                           "subject": {"type": "object", "additionalProperties": True},
                           "figures": {"type": "object", "required": [
                               "total", "customers", "circuits"],
                               "additionalProperties": True, "description": (
                                   "the statement's figures: total, tickets, customers (by "
                                   "key), circuits (by key: availability_pct, target_pct, "
                                   "down_s, error_budget_left_s, credit, outages...)")}}},
        "SlaReport": report,
        "SlaReportList": {"type": "object", "required": ["reports"], "properties": {
            "reports": {"type": "array", "items": _ref("SlaReport")}}},
        "SlaReportDetail": {"allOf": [report, {"type": "object", "required": [
            "statement", "difference"], "properties": {
            "statement": statement,
            "difference": {"type": ["object", "null"], "description": (
                "the change from the version before: summary (totals before and after) and "
                "changes (one line per figure); null for version 1")}}}]},
        "SlaMark": {"type": "object", "required": [
            "id", "circuit", "start", "end", "reason", "withdrawn"], "properties": {
            "id": {"type": "integer"}, "circuit": {"type": "string"},
            "start": time, "end": time, "reason": {"type": "string"},
            "marked_by": {"type": "string", "description": "\"operator\" to a customer"},
            "marked_at": time, "withdrawn": {"type": "boolean"},
            "withdrawn_at": {"type": ["string", "null"], "format": "date-time"},
            "withdrawn_by": nullable_text, "withdraw_reason": nullable_text,
            "reissued": {"type": "array", "items": {"type": "integer"}, "description": (
                "the reports issued again because of this change (their ids)")}}},
        "SlaMarkList": {"type": "object", "required": ["circuit", "month", "marks"],
                        "properties": {"circuit": {"type": "string"},
                                       "month": {"type": "string"},
                                       "marks": {"type": "array", "items": _ref("SlaMark")}}},
    }


def _config_paths() -> dict[str, Any]:
    device = _id_param("device_id", "the device's id")
    return {
        "/devices/{device_id}/configs": {"get": {
            "summary": "A device's configuration versions, newest first, and its last fetch "
                       "(roles engineer, noc, admin; any other gets 404)",
            "operationId": "listConfigVersions",
            "parameters": [device, _query("at", "also say which version was in force then",
                                          {"type": "string", "format": "date-time"})],
            "responses": {"200": _ok(_ref("ConfigVersions"), "the versions"), "400": _BAD,
                          "404": _NOT_FOUND, **_ERRORS},
        }},
        "/devices/{device_id}/configs/{version}": {"get": {
            "summary": "One configuration version (secrets masked) and its unified diff "
                       "against the version before it (roles engineer, noc, admin; any "
                       "other gets 404)",
            "operationId": "getConfigVersion",
            "parameters": [device, {**_id_param("version", "the version's number")},
                           _query("against", "diff against this version instead",
                                  {"type": "integer", "minimum": 1})],
            "responses": {"200": _ok(_ref("ConfigVersionText"), "the version"), "400": _BAD,
                          "404": _NOT_FOUND, **_ERRORS},
        }},
    }


def _config_schemas() -> dict[str, Any]:
    version = {"type": "object", "required": ["device_id", "version", "fetched_at"],
               "properties": {
                   "device_id": {"type": "integer"}, "device": {"type": "string"},
                   "version": {"type": "integer", "minimum": 1},
                   "fetched_at": {"type": "string", "format": "date-time",
                                  "description": "when this text was first fetched"},
                   "last_seen_at": {"type": "string", "format": "date-time",
                                    "description": "the last fetch that found it unchanged"},
                   "fetched_by": {"type": "string",
                                  "description": "\"schedule\" or the login that asked"},
                   "sha256": {"type": "string"}, "size_bytes": {"type": "integer"},
                   "diff_url": {"type": "string", "description": "the portal's page"}}}
    return {
        "ConfigVersion": version,
        "ConfigVersions": {"type": "object", "required": ["device", "versions"], "properties": {
            "device": {"type": "object", "properties": {
                "id": {"type": "integer"}, "key": {"type": "string"},
                "platform": {"type": "string"}}},
            "versions": {"type": "array", "items": _ref("ConfigVersion")},
            "last_fetch": {"type": ["object", "null"], "description": (
                "the last attempt: attempted_at, status (ok or the CLI status that stopped "
                "it), reason, version")},
            "at": {"type": "string", "format": "date-time"},
            "in_force": {"type": ["integer", "null"],
                         "description": "the version in force at `at` (with `at` only)"}}},
        "ConfigVersionText": {"allOf": [version, {"type": "object", "properties": {
            "text": {"type": "string", "description": "the configuration, secrets masked"},
            "against": {"type": ["integer", "null"],
                        "description": "the version diffed against; null: nothing"},
            "diff": {"type": "array", "items": {"type": "string"},
                     "description": "unified diff lines, without line ends"}}}]},
    }


def _device_cli_paths() -> dict[str, Any]:
    device = _id_param("device_id", "the device's id")
    return {
        "/devices/{device_id}/cli": {"get": {
            "summary": "A device's CLI status over SSH and its host keys (roles engineer, "
                       "noc, admin; any other gets 404); the raw output of a failed run for "
                       "engineer and admin",
            "operationId": "getDeviceCli",
            "parameters": [device],
            "responses": {"200": _ok(_ref("DeviceCli"), "the device's CLI side"),
                          "404": _NOT_FOUND, **_ERRORS},
        }},
        "/devices/{device_id}/cli/accept-host-key": {"post": {
            "summary": "Accept the host key the device offers now, named by the fingerprint "
                       "the caller checked (roles engineer, admin; noc gets 403, any other "
                       "404; 409 when the device does not offer that key)",
            "operationId": "acceptDeviceHostKey",
            "parameters": [device],
            "requestBody": _json_body({
                "type": "object", "required": ["fingerprint"], "properties": {
                    "fingerprint": {"type": "string", "maxLength": 200, "description": (
                        "the offered key's fingerprint as shown: SHA256:...")}}},
                required=True),
            "responses": {"200": _ok(_ref("DeviceCli"), "the device's CLI side after"),
                          "400": _BAD, "403": _FORBIDDEN, "404": _NOT_FOUND,
                          "409": _CONFLICT, **_ERRORS},
        }},
    }


def _device_cli_schemas() -> dict[str, Any]:
    time = {"type": "string", "format": "date-time"}
    nullable_time = {"type": ["string", "null"], "format": "date-time"}
    key = {"type": "object", "required": ["key_type", "fingerprint", "state"], "properties": {
        "key_type": {"type": "string"}, "fingerprint": {"type": "string"},
        "state": {"type": "string", "enum": ["trusted", "offered", "retired"]},
        "first_seen_at": time, "first_seen": {"type": "string"},
        "last_seen_at": time, "last_seen": {"type": "string"},
        "trusted_by": {"type": ["string", "null"], "description": (
            "\"first-use\" or the user who accepted it")},
        "trusted_on_first_use": {"type": "boolean"},
        "trusted_at": nullable_time, "trusted": {"type": ["string", "null"]}}}
    return {
        "HostKey": key,
        "DeviceCli": {"type": "object", "required": ["device_id", "status", "trusted_key",
                                                     "offered_keys"], "properties": {
            "device_id": {"type": "integer"},
            "status": {"type": ["object", "null"], "description": (
                "the last CLI run: status (ok, auth-failed, timeout, host-key-changed, "
                "unexpected-prompt, unparseable-output, privilege-too-low, unreachable, "
                "error, no-profile), label, reason, since_at (when it began), last_run_at; "
                "null: never polled over the CLI"), "properties": {
                    "status": {"type": "string"}, "label": {"type": "string"},
                    "badge": {"type": "string"}, "reason": {"type": ["string", "null"]},
                    "since_at": time, "since": {"type": "string"},
                    "last_run_at": time, "last_run": {"type": "string"}}},
            "trusted_key": {"oneOf": [_ref("HostKey"), {"type": "null"}]},
            "offered_keys": {"type": "array", "items": _ref("HostKey"), "description": (
                "keys the device offered instead, refused until accepted")},
            "accepted_since_last_run": {"type": "boolean"},
            "raw_output": {"type": ["string", "null"], "description": (
                "the failed run's raw output, bounded and secrets masked (engineer and "
                "admin only; null otherwise)")},
            "may_accept": {"type": "boolean"},
            "accept_url": {"type": "string", "description": "the portal's form action"}}},
    }


def openapi_document() -> dict[str, Any]:
    nullable_text = {"type": ["string", "null"]}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Keyline API",
            "version": __version__,
            "description": (
                "The inventory and measurements of a telecom operator's key accounts. "
                "A customer's token sees only that customer's objects; any other id is 404."
            ),
        },
        "servers": [{"url": "/api/v1"}],
        "security": [{"bearerToken": []}, {"sessionCookie": []}],
        "paths": {
            "/customers": {"get": {
                "summary": "Customers the caller may see",
                "operationId": "listCustomers",
                "responses": {"200": _ok(_list_of("customers", "Customer"), "customers"),
                              **_ERRORS},
            }},
            "/circuits": {"get": {
                "summary": "Circuits the caller may see",
                "operationId": "listCircuits",
                "parameters": [{"name": "customer_id", "in": "query", "required": False,
                                "description": "only this customer's circuits",
                                "schema": {"type": "integer", "format": "int64"}}],
                "responses": {"200": _ok(_list_of("circuits", "Circuit"), "circuits"),
                              "400": _BAD, **_ERRORS},
            }},
            "/circuits/{circuit_id}": {"get": {
                "summary": "One circuit",
                "operationId": "getCircuit",
                "parameters": [_id_param("circuit_id", "the circuit's id")],
                "responses": {"200": _ok(_ref("Circuit"), "the circuit"), "404": _NOT_FOUND,
                              **_ERRORS},
            }},
            "/devices": {"get": {
                "summary": "Devices the caller may see (a customer: those at its sites)",
                "operationId": "listDevices",
                "responses": {"200": _ok(_list_of("devices", "Device"), "devices"), **_ERRORS},
            }},
            "/devices/{device_id}/ports": {"get": {
                "summary": "A device and its ports",
                "operationId": "listDevicePorts",
                "parameters": [_id_param("device_id", "the device's id")],
                "responses": {
                    "200": _ok({"type": "object", "required": ["device", "ports"],
                                "properties": {"device": _ref("Device"),
                                               "ports": {"type": "array",
                                                         "items": _ref("Port")}}},
                               "the device and its ports"),
                    "404": _NOT_FOUND, **_ERRORS},
            }},
            "/health": {"get": {
                "summary": "How collection is doing: the running services' last reports "
                           "(spool, polls, traps, events processed) and the drops recorded "
                           "(operators only)",
                "operationId": "getHealth",
                "responses": {
                    "200": _ok({"type": "object",
                                "required": ["healthy", "services", "drops", "events"],
                                "properties": {"healthy": {"type": "boolean"},
                                               "time": {"type": "string"},
                                               "services": {"type": "object"},
                                               "drops": {"type": "object"},
                                               "events": {"type": "object"}}},
                               "the collection's health"),
                    "403": _FORBIDDEN, **_ERRORS},
            }},
            "/samples": {"get": {
                "summary": "One object's metric over time, averaged into at most `points` "
                           "equal time buckets",
                "operationId": "getSamples",
                "parameters": [
                    {"name": "object_id", "in": "query", "required": True,
                     "description": "a circuit, port or device id",
                     "schema": {"type": "integer", "format": "int64"}},
                    {"name": "metric", "in": "query", "required": True,
                     "description": "metric name, e.g. if_in_bps, if_out_bps, rtt_ms",
                     "schema": {"type": "string"}},
                    {"name": "start", "in": "query", "required": False,
                     "description": "ISO 8601 time (default: an hour before end)",
                     "schema": {"type": "string", "format": "date-time"}},
                    {"name": "end", "in": "query", "required": False,
                     "description": "ISO 8601 time (default: now)",
                     "schema": {"type": "string", "format": "date-time"}},
                    {"name": "points", "in": "query", "required": False,
                     "description": "at most this many points (1-5000, default 300)",
                     "schema": {"type": "integer", "minimum": 1, "maximum": 5000}},
                ],
                "responses": {"200": _ok(_ref("Series"), "the series"), "400": _BAD,
                              "404": _NOT_FOUND, **_ERRORS},
            }},
            **_topology_paths(),
            **_alarm_paths(),
            **_ticket_paths(),
            **_sla_paths(),
            **_config_paths(),
            **_device_cli_paths(),
        },
        "components": {
            "securitySchemes": {
                "bearerToken": {"type": "http", "scheme": "bearer",
                                "description": "a token from `keyline user token NAME`;"
                                " it expires (`--expires-days`, default the"
                                " accounts.token_expiry_days setting), and a password"
                                " change revokes it unless made with `--service`"},
                "sessionCookie": {"type": "apiKey", "in": "cookie", "name": "keyline_session"},
            },
            "responses": {
                "BadRequest": _ok(_ref("Error"), "a parameter is missing or wrong"),
                "Unauthorized": _ok(_ref("Error"), "no valid token or session: none sent, or"
                                    " an unknown, expired or revoked token (error \"invalid,"
                                    " expired or revoked API token\"), or an ended session"),
                "NotFound": _ok(_ref("Error"), "no such object, or not the caller's"),
                "Forbidden": _ok(_ref("Error"), "the caller's role may not do this"),
                "Conflict": _ok(_ref("Error"), "the object's state forbids this change"),
            },
            "schemas": {
                "Error": {"type": "object", "required": ["error", "field"], "properties": {
                    "error": {"type": "string"}, "field": nullable_text}},
                "Customer": {"type": "object", "properties": {
                    "id": {"type": "integer"}, "key": {"type": "string"},
                    "name": {"type": "string"}, "account_manager": nullable_text,
                    "circuit_count": {"type": "integer"}}},
                "Circuit": {"type": "object", "properties": {
                    "id": {"type": "integer"}, "key": {"type": "string"},
                    "customer_key": {"type": "string"}, "customer_name": {"type": "string"},
                    "service_type": {"type": "string", "enum": [
                        "leased_line", "mpls_l3vpn", "e_line", "internet_access"]},
                    "bandwidth_bps": {"type": "integer"},
                    "a_end": {"type": "string", "description": "device:port"},
                    "z_end": {"type": "string", "description": "device:port"},
                    "a_port_id": {"type": "integer"}, "z_port_id": {"type": "integer"},
                    "sla_contract": nullable_text, "hop_count": {"type": "integer"},
                    "description": nullable_text}},
                "Device": {"type": "object", "properties": {
                    "id": {"type": "integer"}, "key": {"type": "string"},
                    "role": {"type": "string"}, "platform": {"type": "string"},
                    "site_key": nullable_text, "customer_key": nullable_text,
                    "management_address": {"type": "string"},
                    "poll_status": {"type": "string"}}},
                "Port": {"type": "object", "properties": {
                    "id": {"type": "integer"}, "key": {"type": "string"},
                    "device_key": {"type": "string"}, "name": {"type": "string"},
                    "if_index": {"type": ["integer", "null"]},
                    "speed_bps": {"type": ["integer", "null"]},
                    "description": nullable_text}},
                "TopologyView": _TOPOLOGY_VIEW,
                **_alarm_schemas(),
                **_ticket_schemas(),
                **_sla_schemas(),
                **_config_schemas(),
                **_device_cli_schemas(),
                "Series": {"type": "object", "properties": {
                    "object_id": {"type": "integer"}, "metric": {"type": "string"},
                    "start": {"type": "string", "format": "date-time"},
                    "end": {"type": "string", "format": "date-time"},
                    "resolution_s": {"type": "integer", "description":
                                     "the buckets the points were computed from: 0 raw "
                                     "samples, 300, 3600 or 86400 the 5-minute, hourly or "
                                     "daily rollup (the coarsest that gives the points asked "
                                     "for and still holds the range's start)"},
                    "unknown": {"type": "array", "description":
                                "time ranges whose samples the collector could not keep (its "
                                "spool was full while the store was away): unknown time, "
                                "not zero traffic",
                                "items": {"type": "object", "properties": {
                                    "start": {"type": "string", "format": "date-time"},
                                    "end": {"type": "string", "format": "date-time"}}}},
                    "points": {"type": "array", "items": {"type": "object", "properties": {
                        "time": {"type": "string", "format": "date-time",
                                 "description": "start of the bucket"},
                        "value": {"type": "number", "description": "mean"},
                        "min": {"type": "number"}, "max": {"type": "number"}}}}}},
            },
        },
    }
