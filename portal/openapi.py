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
                         "description": "the pipeline's comment as data, staff only"}}}}}}]},
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
                "Series": {"type": "object", "properties": {
                    "object_id": {"type": "integer"}, "metric": {"type": "string"},
                    "start": {"type": "string", "format": "date-time"},
                    "end": {"type": "string", "format": "date-time"},
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
