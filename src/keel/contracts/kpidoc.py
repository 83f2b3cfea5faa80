"""KPI contracts: Keel's own document (``apiVersion: keel/v1``, ``kind: KpiContract``).

ODCS describes datasets, not metrics, so a KPI contract says what a metric computes::

    apiVersion: keel/v1
    kind: KpiContract
    id: KPI-DSO
    name: Days sales outstanding
    version: 1.0.0
    owner: finance-kpis@keel.local
    domain: finance
    regulatoryTags: [SOX]
    retention: 7y
    basedOn: [{contract: GDP-INVOICE, version: 1.0.0}]
    kpi:
      formula: SUM(amount_open) / NULLIF(SUM(amount_gross), 0) * 30
      grain: month
      timeField: issued_at
      dimensions: [currency]
      filters: ["status <> 'cancelled'"]
      unit: days
      thresholds: [{name: dso-high, op: ">", limit: 60, severity: critical}]
      targets: {default: 45}
      visibleTo: [BO, AN, TA]

The document is checked by a strict model (an unknown key is an error naming it);
whether the formula fits the GDP fields is the registry's check (``kpi_sql``).
"""

from __future__ import annotations

from typing import Any, Literal

import pydantic
from pydantic import BaseModel, ConfigDict
from pydantic import Field as PydField

from keel.contracts.model import Contract, KpiSpec, Layer, Threshold
from keel.contracts.odcs import path_of, refs
from keel.kernel.errors import InvalidInput

API_VERSION = "keel/v1"
KIND = "KpiContract"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class _Threshold(_Strict):
    name: str = PydField(min_length=1, max_length=80)
    op: Literal[">", ">=", "<", "<=", "==", "!="]
    limit: float
    severity: Literal["info", "warning", "critical"] = "warning"


class _Kpi(_Strict):
    formula: str = PydField(min_length=1, max_length=4000)
    grain: Literal["day", "week", "month", "quarter", "year"]
    time_field: str = PydField(alias="timeField", min_length=1)
    unit: str = PydField(min_length=1, max_length=40)
    dimensions: list[str] = []
    filters: list[str] = []
    thresholds: list[_Threshold] = []
    targets: dict[str, float] = {}
    visible_to: list[str] = PydField([], alias="visibleTo")


class _KpiDocument(_Strict):
    api_version: Literal["keel/v1"] = PydField(alias="apiVersion")
    kind: Literal["KpiContract"]
    id: str = PydField(min_length=1, max_length=128)
    name: str = PydField(min_length=1, max_length=200)
    version: str
    owner: str | None = None
    domain: str | None = None
    description: str | None = None
    regulatory_tags: list[str] = PydField([], alias="regulatoryTags")
    retention: str | None = None
    compatibility: str = "BACKWARD"
    based_on: list[Any] = PydField([], alias="basedOn")
    kpi: _Kpi
    custom_properties: list[dict[str, Any]] = PydField([], alias="customProperties")


def is_kpi(document: dict[str, Any]) -> bool:
    return document.get("kind") == KIND


def to_contract(document: dict[str, Any]) -> Contract:
    """The Keel view of a KPI document; ``InvalidInput`` naming the first bad key."""
    try:
        parsed = _KpiDocument.model_validate(document)
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        where = path_of(first["loc"]) or "document"
        raise InvalidInput(where, first["msg"]) from exc
    spec = parsed.kpi
    return Contract(
        id=parsed.id,
        name=parsed.name,
        version=parsed.version,
        layer=Layer.KPI,
        owner=parsed.owner,
        domain=parsed.domain,
        retention=parsed.retention,
        regulatory_tags=tuple(parsed.regulatory_tags),
        based_on=tuple(refs(parsed.based_on, "basedOn")),
        compatibility=parsed.compatibility.upper(),
        kpi=KpiSpec(
            formula=spec.formula,
            grain=spec.grain,
            time_field=spec.time_field,
            unit=spec.unit,
            dimensions=tuple(spec.dimensions),
            filters=tuple(spec.filters),
            thresholds=tuple(Threshold(t.name, t.op, t.limit, t.severity) for t in spec.thresholds),
            targets=tuple(sorted(spec.targets.items())),
            visible_to=tuple(spec.visible_to),
        ),
    )
