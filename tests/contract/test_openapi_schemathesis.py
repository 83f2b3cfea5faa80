"""Property-based contract test: requests generated from /openapi.json never make the API fail (no 5xx).

Schemathesis reads the API description of the real application and, for every
operation, sends a bounded number of generated requests through the ASGI app in
process, authenticated as the Platform Admin (most routes then get past
authentication to validation and the services). Any 5xx fails the test: whatever a
client sends, Keel answers a 2xx, a clean 4xx or a 3xx. The number of examples is
small on purpose (``MAX_EXAMPLES`` per operation) so the suite stays fast.
"""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, Phase, given, settings

MAX_EXAMPLES = 15


def test_no_generated_request_makes_the_api_fail(module_world):
    api = schemathesis.openapi.from_asgi("/openapi.json", module_world.client.app)
    headers = module_world.headers("PA")
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
