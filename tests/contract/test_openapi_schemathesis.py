"""Property-based contract test: requests generated from /openapi.json never make the API fail (no 5xx).

Schemathesis reads the API description of the real application and, for every
operation, sends a bounded number of generated requests through the ASGI app in
process, authenticated as the Platform Admin (most routes then get past
authentication to validation and the services). Any 5xx fails the test: whatever a
client sends, Keel answers a 2xx, a clean 4xx or a 3xx. The number of examples is
small on purpose (``MAX_EXAMPLES`` per operation) so the suite stays fast.
"""

from __future__ import annotations

import uuid

import pytest
import schemathesis
import sqlalchemy as sa
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, given, settings
from tests.conftest import PG_URL
from tests.support import World

from keel.api.app import create_app
from keel.bootstrap import build
from keel.kernel.clock import set_clock
from keel.kernel.settings import Settings

MAX_EXAMPLES = 15


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    overrides: dict = {"home": tmp_path_factory.mktemp("contract") / "keel-home", "seed_demo": False}
    schema = None
    if PG_URL:  # its own PostgreSQL schema, as conftest's ``settings`` gives each test
        schema = f"keel_t_{uuid.uuid4().hex[:12]}"
        with sa.create_engine(PG_URL).begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        overrides |= {"database_url": PG_URL, "database_schema": schema}
    keel = build(Settings(**overrides))
    try:
        with TestClient(create_app(keel)) as client:
            yield World.build(keel, client)
    finally:
        keel.close()
        set_clock(None)
        if schema:
            engine = sa.create_engine(PG_URL)
            with engine.begin() as conn:
                conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
            engine.dispose()


def test_no_generated_request_makes_the_api_fail(world):
    api = schemathesis.openapi.from_asgi("/openapi.json", world.client.app)
    headers = world.headers("PA")
    failures: dict[str, str] = {}
    tried = 0

    for result in api.get_all_operations():
        operation = result.ok()

        @settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            database=None,
            derandomize=True,  # the same examples every run: a failure here reproduces
            phases=[Phase.explicit, Phase.generate],  # no shrinking: the budget stays bounded
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy())
        def send(case):
            response = case.call(headers=headers)
            assert response.status_code < 500, f"{case.method} {case.formatted_path}: {response.text}"
            if response.status_code >= 400:
                (content_type,) = response.headers["content-type"]  # schemathesis lists each header's values
                assert content_type == "application/problem+json", f"{case.method} {case.formatted_path}"

        tried += 1
        try:
            send()
        except Exception as failed:  # a 5xx, or the server error itself (the test client re-raises it)
            failures[operation.label] = f"{type(failed).__name__}: {str(failed).splitlines()[0][:300]}"

    assert tried >= 40
    assert failures == {}
