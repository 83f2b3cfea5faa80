"""Guardrail definitions: the story artifacts validate; a bad one names its field."""

from __future__ import annotations

import pytest

from keel.guardrails.model import validate
from keel.kernel.errors import InvalidInput

ACT_QUOTA_01 = {
    "policy_id": "ACT-QUOTA-01",
    "description": "Limit high-risk actions per tenant per day",
    "scope": "tenant",
    "quota_per_day": 5,
    "enforcement": "block",
}
COST_CAP_DAILY = {
    "guardrail_id": "COST-CAP-DAILY",
    "tenant_scope": "global",
    "daily_spend_cap_usd": 500,
    "on_breach": "block_non_essential_actions",
}


def test_the_story_artifacts_validate_and_their_kind_is_inferred():
    quota = validate(ACT_QUOTA_01)
    assert (quota.guardrail_id, quota.kind, quota.tenant_id) == ("ACT-QUOTA-01", "action_quota", None)
    assert quota.spec == {"quota_per_day": 5, "enforcement": "block"}
    cap = validate(COST_CAP_DAILY)
    assert (cap.kind, cap.tenant_id, cap.spec["daily_spend_cap_usd"]) == ("spend_cap", None, 500.0)
    assert validate({**COST_CAP_DAILY, "tenant_scope": "TEN-1"}).tenant_id == "TEN-1"
    residency = validate({"guardrail_id": "RES-01", "allowed_regions": ["eu-west-1", "local", "local"]})
    assert residency.kind == "residency" and residency.spec["allowed_regions"] == ["eu-west-1", "local"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"policy_id": "act quota"}, "guardrail_id"),
        ({"quota_per_day": 0}, "quota_per_day"),
        ({"quota_per_day": True}, "quota_per_day"),
        ({"enforcement": "maybe"}, "enforcement"),
        ({"scope": "planet"}, "scope"),
        ({"kind": "vibes"}, "kind"),
        ({"actions": ["not an action"]}, "actions"),
        ({"daily_spend_cap_usd": 5}, "daily_spend_cap_usd"),  # not a field of a quota
    ],
)
def test_a_bad_quota_names_the_field(change, field):
    with pytest.raises(InvalidInput) as caught:
        validate({**ACT_QUOTA_01, **change})
    assert caught.value.fields["field"] == field


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({**COST_CAP_DAILY, "daily_spend_cap_usd": 0}, "daily_spend_cap_usd"),
        ({**COST_CAP_DAILY, "on_breach": "shrug"}, "on_breach"),
        ({**COST_CAP_DAILY, "tenant_scope": ""}, "tenant_scope"),
        ({"guardrail_id": "RES-01", "kind": "residency", "allowed_regions": []}, "allowed_regions"),
        ({"guardrail_id": "EXP-01", "kind": "export_limit"}, "max_rows_per_export"),
        ({"guardrail_id": "EXP-01", "kind": "export_limit", "max_bytes_per_day": -1}, "max_bytes_per_day"),
        ({"guardrail_id": "X-01"}, "kind"),
    ],
)
def test_other_bad_definitions_name_the_field(spec, field):
    with pytest.raises(InvalidInput) as caught:
        validate(spec)
    assert caught.value.fields["field"] == field
