"""Property-based testing of the REST API against its own OpenAPI document, with
schemathesis: every operation of /api/v1/openapi.json is called in-process (the Flask app as
a WSGI application, no server) with requests generated from the document, valid ones and
invalid ones, as an admin's token and as a customer's, and must never answer with a 5xx.

The database holds the example inventory and a live incident (tests/test_portal_alarms.py's
`seed_alarms`: alarms, symptoms, a maintenance window), so small generated ids hit real
alarms and the write endpoints really write. The number of examples per operation is kept
small (`MAX_EXAMPLES`) so the test runs in well under a minute; raise it locally to search
harder.
"""

from __future__ import annotations

import pytest

from store.users import create_api_token
from tests.test_portal_access import Portal, portal  # noqa: F401
from tests.test_portal_alarms import USER_A, seed_alarms

schemathesis = pytest.importorskip("schemathesis", reason="schemathesis is not installed")
hypothesis = pytest.importorskip("hypothesis")

MAX_EXAMPLES = 12

pytestmark = pytest.mark.slow


def test_no_operation_answers_5xx(portal: Portal):  # noqa: F811
    from hypothesis import HealthCheck, given, settings
    from schemathesis import GenerationMode

    seed_alarms(portal)
    with portal.database.pool.connection() as conn:
        tokens = {"admin": create_api_token(conn, "admin", "schemathesis"),
                  "customer": create_api_token(conn, USER_A, "schemathesis")}
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", portal.app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 15
    failures: list[str] = []
    calls = [0]

    def explore(operation, who: str, token: str, mode) -> None:
        @settings(max_examples=MAX_EXAMPLES, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck), derandomize=True)
        @given(case=operation.as_strategy(generation_mode=mode))
        def run(case) -> None:
            calls[0] += 1
            response = case.call(headers={"Authorization": f"Bearer {token}"})
            if response.status_code >= 500:
                failures.append(f"{who}: {case.method} {case.formatted_path} "
                                f"query={case.query} body={case.body!r} -> "
                                f"{response.status_code}")

        run()

    for operation in operations:
        for who, token in tokens.items():
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                explore(operation, who, token, mode)
    assert calls[0] > len(operations) * 4
    assert not failures, "\n".join(failures[:20])
