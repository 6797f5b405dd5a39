"""The REST API (/api/v1): tokens, scoping, the samples endpoint, errors, the OpenAPI
document; and the /vendor route that serves front-end packages from node_modules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from portal.vendor import NODE_MODULES
from store.timeseries import SampleWriter, refresh_rollups
from store.users import create_api_token, list_api_tokens, revoke_api_token
from tests.test_portal_access import (  # noqa: F401
    USER_A,
    USER_B,
    Portal,
    logged_in,
    operator_ports,
    portal,
)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_token_acts_as_its_user(portal: Portal):  # noqa: F811
    with portal.database.pool.connection() as conn:
        token = create_api_token(conn, USER_A, "monitoring script")
        tokens = list_api_tokens(conn, USER_A)
        stored = conn.execute("SELECT token_hash FROM api_tokens").fetchone()[0]
    assert token not in stored and token.startswith(tokens[0].prefix)
    client = portal.app.test_client()
    circuits = client.get("/api/v1/circuits", headers=bearer(token)).get_json()["circuits"]
    assert circuits and {c["customer_key"] for c in circuits} == {"hsbank"}
    customers = client.get("/api/v1/customers", headers=bearer(token)).get_json()["customers"]
    assert [c["key"] for c in customers] == ["hsbank"]
    devices = client.get("/api/v1/devices", headers=bearer(token)).get_json()["devices"]
    assert devices and {d["customer_key"] for d in devices} == {"hsbank"}

    with portal.database.pool.connection() as conn:
        revoke_api_token(conn, tokens[0].id)
    refused = client.get("/api/v1/circuits", headers=bearer(token))
    assert refused.status_code == 401
    assert refused.get_json() == {"error": "invalid, expired or revoked API token",
                                  "field": None}
    assert client.get("/api/v1/circuits", headers=bearer("kl_made-up")).status_code == 401


def test_staff_token_sees_everything(portal: Portal):  # noqa: F811
    with portal.database.pool.connection() as conn:
        token = create_api_token(conn, "noc.wang", "wallboard")
    client = portal.app.test_client()
    circuits = client.get("/api/v1/circuits", headers=bearer(token)).get_json()["circuits"]
    assert {c["customer_key"] for c in circuits} == {"hsbank", "jinlu", "xinhe"}
    some = circuits[0]
    one = client.get(f"/api/v1/circuits/{some['id']}", headers=bearer(token)).get_json()
    assert one == some
    narrowed = client.get("/api/v1/circuits", headers=bearer(token),
                          query_string={"customer_id": portal.b.customer_id}).get_json()
    assert {c["customer_key"] for c in narrowed["circuits"]} == {"jinlu"}
    device_id = min(portal.shared_device_ids)
    ports = client.get(f"/api/v1/devices/{device_id}/ports", headers=bearer(token)).get_json()
    assert ports["device"]["id"] == device_id and ports["ports"]


def test_samples_are_downsampled(portal: Portal):  # noqa: F811
    port_id = min(portal.a.ids["port"] - operator_ports(portal))  # a port of A's own router
    start = (datetime.now(UTC) - timedelta(days=2)).replace(minute=0, second=0, microsecond=0)
    with SampleWriter(portal.database.pool) as writer:
        for minute in range(120):
            writer.add(start + timedelta(minutes=minute), port_id, "rtt_ms", float(minute))
    refresh_rollups(portal.database.pool, datetime.now(UTC))  # the late batch's buckets
    client = logged_in(portal.app, USER_A)
    query = {"object_id": port_id, "metric": "rtt_ms",
             "start": start.isoformat().replace("+00:00", "Z"),
             "end": (start + timedelta(hours=2)).isoformat(), "points": 12}
    body = client.get("/api/v1/samples", query_string=query).get_json()
    points = body["points"]
    assert body["resolution_s"] == 300  # 24 five-minute buckets give the 12 points
    assert len(points) == 12
    assert points[0]["time"].startswith(f"{start:%Y-%m-%dT%H}:00:00")
    assert points[0]["value"] == pytest.approx(4.5)  # minutes 0..9
    assert (points[0]["min"], points[0]["max"]) == (0, 9)
    assert points[-1]["time"].startswith(f"{start + timedelta(minutes=110):%Y-%m-%dT%H:%M}:00")
    every = client.get("/api/v1/samples", query_string={**query, "points": 1000}).get_json()
    assert every["resolution_s"] == 0  # raw samples: nothing coarser gives 1000 points
    assert len(every["points"]) == 120


@pytest.mark.parametrize(("query", "field"), [
    ({"metric": "rtt_ms"}, "object_id"),
    ({"object_id": "x", "metric": "rtt_ms"}, "object_id"),
    ({"object_id": 1}, "metric"),
    ({"object_id": 1, "metric": "no_such_metric"}, "metric"),
    ({"object_id": 1, "metric": "rtt_ms", "points": 0}, "points"),
    ({"object_id": 1, "metric": "rtt_ms", "start": "yesterday"}, "start"),
    ({"object_id": 1, "metric": "rtt_ms", "start": "2026-01-02", "end": "2026-01-01"}, "start"),
])
def test_bad_parameters_name_the_field(portal: Portal, query, field):  # noqa: F811
    client = logged_in(portal.app, "noc.wang")
    response = client.get("/api/v1/samples", query_string=query)
    assert response.status_code == 400
    body = response.get_json()
    assert body["field"] == field and body["error"]


def test_unknown_api_path_is_json_404(portal: Portal):  # noqa: F811
    client = logged_in(portal.app, "noc.wang")
    response = client.get("/api/v1/nothing/here")
    assert response.status_code == 404
    assert response.get_json()["error"]
    assert client.get("/api/v1/circuits/999999999").get_json() == {
        "error": "no such circuit", "field": "circuit_id"}


def test_openapi_document_is_valid_and_complete(portal: Portal):  # noqa: F811
    from openapi_spec_validator import validate

    document = portal.app.test_client().get("/api/v1/openapi.json").get_json()
    validate(document)
    described = set(document["paths"])
    for rule in portal.app.url_map.iter_rules():
        if rule.endpoint.startswith("api.") and rule.endpoint not in ("api.openapi",
                                                                     "api.unknown"):
            path = rule.rule.removeprefix("/api/v1").replace("<int:", "{").replace(">", "}")
            assert path in described, f"{rule.rule} is not in the OpenAPI document"


def test_token_commands(portal: Portal, tmp_path: Path):  # noqa: F811
    from keyline.cli import _State
    from keyline.portal_cli import revoke_token_command, token_command, tokens_command

    state = _State(None, False, {"database_url": portal.database.url,
                                 "data_dir": tmp_path / "cli"})
    runner = CliRunner()
    created = runner.invoke(token_command, [USER_B, "--label", "erp sync"], obj=state)
    assert created.exit_code == 0, created.output
    token = created.stdout.splitlines()[0]
    listing = runner.invoke(tokens_command, [USER_B], obj=state)
    assert "erp sync" in listing.stdout and token not in listing.stdout
    circuits = portal.app.test_client().get("/api/v1/circuits", headers=bearer(token))
    assert {c["customer_key"] for c in circuits.get_json()["circuits"]} == {"jinlu"}
    token_id = listing.stdout.split()[0]
    assert runner.invoke(revoke_token_command, [token_id], obj=state).exit_code == 0
    again = runner.invoke(revoke_token_command, [token_id], obj=state)
    assert again.exit_code == 2
    unknown = runner.invoke(token_command, ["nobody.here", "--label", "x"], obj=state)
    assert unknown.exit_code == 2


# --- /vendor -------------------------------------------------------------------------------


@pytest.mark.skipif(not (NODE_MODULES / "socket.io-client").is_dir(),
                    reason="node_modules not installed: run `python3 dev.py` (npm ci)")
def test_vendor_serves_socketio_client(portal: Portal):  # noqa: F811
    client = portal.app.test_client()
    response = client.get("/vendor/socket.io-client/dist/socket.io.min.js")
    assert response.status_code == 200
    assert "javascript" in response.headers["Content-Type"]
    assert b"Socket.IO" in response.data[:300] or b"socket.io" in response.data[:300]
    for path in ("/vendor/socket.io-client/package.json",
                 "/vendor/socket.io-client/dist/../package.json",
                 "/vendor/engine.io-client/build/cjs/index.js",
                 "/vendor/..%2Fpackage.json/x"):
        assert client.get(path).status_code == 404, path


def test_vendor_is_404_without_node_modules(portal: Portal, tmp_path: Path):  # noqa: F811
    portal.app.config["KEYLINE_NODE_MODULES"] = str(tmp_path)
    client = portal.app.test_client()
    assert client.get("/vendor/socket.io-client/dist/socket.io.min.js").status_code == 404


def test_health_is_for_operators(portal: Portal):  # noqa: F811
    from datetime import UTC, datetime

    from store.collection import record_heartbeat

    with portal.database.pool.connection() as conn:
        record_heartbeat(conn, "collector", datetime.now(UTC),
                         {"devices": 18, "polls": {"reachable": 36}})
        noc = create_api_token(conn, "noc.wang", "wallboard")
        customer = create_api_token(conn, USER_A, "script")
    client = portal.app.test_client()
    health = client.get("/api/v1/health", headers=bearer(noc))
    assert health.status_code == 200
    body = health.get_json()
    assert body["healthy"] is True and body["services"]["collector"]["devices"] == 18
    assert body["services"]["collector"]["running"] is True
    refused = client.get("/api/v1/health", headers=bearer(customer))
    assert refused.status_code == 403 and refused.get_json()["field"] is None
