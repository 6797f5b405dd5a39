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
        },
        "components": {
            "securitySchemes": {
                "bearerToken": {"type": "http", "scheme": "bearer",
                                "description": "a token from `keyline user token NAME`"},
                "sessionCookie": {"type": "apiKey", "in": "cookie", "name": "keyline_session"},
            },
            "responses": {
                "BadRequest": _ok(_ref("Error"), "a parameter is missing or wrong"),
                "Unauthorized": _ok(_ref("Error"), "no valid token or session"),
                "NotFound": _ok(_ref("Error"), "no such object, or not the caller's"),
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
                "Series": {"type": "object", "properties": {
                    "object_id": {"type": "integer"}, "metric": {"type": "string"},
                    "start": {"type": "string", "format": "date-time"},
                    "end": {"type": "string", "format": "date-time"},
                    "points": {"type": "array", "items": {"type": "object", "properties": {
                        "time": {"type": "string", "format": "date-time",
                                 "description": "start of the bucket"},
                        "value": {"type": "number", "description": "mean"},
                        "min": {"type": "number"}, "max": {"type": "number"}}}}}},
            },
        },
    }
