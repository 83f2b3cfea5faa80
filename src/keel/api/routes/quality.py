"""Routes of data-quality rules and quarantines (04)."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field

from keel.api.deps import Page, current_actor, get_keel
from keel.quality import service

router = APIRouter(tags=["quality"])
RULES = "/quality-rules"
QUARANTINE = "/tenants/{tenant_id}/quarantine/{dataset}"


class RuleSpec(BaseModel):
    """One version of a data-quality rule (each change of a rule is a new version)."""

    model_config = ConfigDict(extra="forbid")
    rule_id: str = Field(max_length=80, examples=["GDP-INVOICE-AMT-NOT-NULL"])
    layer: str = Field(max_length=8, examples=["gdp"])
    dataset: str = Field(max_length=80, examples=["invoice"])
    field: str = Field(max_length=80, examples=["amount_net"])
    check: str = Field(
        max_length=40,
        description="not_null, unique, accepted_values, range, regex, custom_sql, referential_integrity; "
        "table-level (block or alert only): freshness, row_count, volume_change",
    )
    params: dict[str, Any] = Field(
        default_factory=dict,
        description="values; min, max; pattern; predicate; dataset, field (referential_integrity); "
        "max_age_hours (freshness); min, max (row_count); max_percent (volume_change)",
    )
    on_fail: Literal["block", "quarantine", "alert"]
    tenant_id: str | None = Field(None, max_length=40, description="None: a global rule")


class Release(BaseModel):
    model_config = ConfigDict(extra="forbid")
    quarantine_ids: list[str] = Field(min_length=1, max_length=1000)
    fixes: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="quarantine id -> field -> value"
    )
    false_positive: bool = False
    layer: Literal["gdp", "raw", "kpi"] = Field(
        "gdp",
        description="gdp: the active build's; raw: a Raw table's; kpi: the active KPI's (false positives).",
    )


@router.post(RULES, status_code=201)
def define_rule(body: RuleSpec, actor=Depends(current_actor), keel=Depends(get_keel)):
    """Define a rule or a new version of it (Schema Steward); a new version starts disabled."""
    return service.define(keel, actor, body.model_dump())


@router.get(RULES)
def list_rules(
    page: Page = Depends(),
    tenant_id: str | None = Query(None, max_length=40, description="Global rules and one tenant's."),
    dataset: str | None = Query(None, max_length=80),
    actor=Depends(current_actor),
    keel=Depends(get_keel),
):
    items = service.list_rules(
        keel, actor, tenant_id=tenant_id, dataset=dataset, after=page.after, limit=page.limit + 1
    )
    return page.render(items, "rule_id")


@router.post(RULES + "/{rule_id}/enable")
def enable_rule(rule_id: str, actor=Depends(current_actor), keel=Depends(get_keel)):
    """Enforce a rule's newest version (Platform Admin); a contradicting rule is a conflict."""
    return service.enable(keel, actor, rule_id)


@router.get(QUARANTINE)
def list_quarantine(
    tenant_id: str,
    dataset: str,
    page: Page = Depends(),
    layer: Literal["gdp", "raw", "kpi"] = Query(
        "gdp", description="gdp: the active build's; raw: a Raw table's; kpi: the active KPI's."
    ),
    actor=Depends(current_actor),
    keel=Depends(get_keel),
):
    items = service.list_quarantine(
        keel, actor, tenant_id, dataset, layer=layer, after=page.after, limit=page.limit + 1
    )
    return page.render(items, "quarantine_id")


@router.post(QUARANTINE + "/release")
def release(
    tenant_id: str, dataset: str, body: Release, actor=Depends(current_actor), keel=Depends(get_keel)
):
    """Release quarantined rows back into the table, fixed or as false positives (DE, TA)."""
    return service.release(
        keel,
        actor,
        tenant_id,
        dataset,
        quarantine_ids=body.quarantine_ids,
        fixes=body.fixes,
        false_positive=body.false_positive,
        layer=body.layer,
    )
