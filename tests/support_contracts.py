"""Contract documents for tests, and the walk of a version through its lifecycle by the real API."""

from __future__ import annotations

import copy

from keel.identity.personas import Persona
from tests.support import make_user

BASE = "/api/v1/contracts"


def raw_contract(
    schema_id: str = "RAW-SHOP",
    version: str = "1.0.0",
    *,
    table: str = "shop__orders",
    fields: dict[str, str] | None = None,
    domain: str = "finance",
    tags: tuple[str, ...] = ("SOX", "GDPR"),
    drift_policy: str = "alert",
    retention: bool = True,
) -> dict:
    """An ODCS Raw contract that passes every rule (unless told otherwise)."""
    fields = fields or {
        "order_id": "string",
        "customer_email": "string",
        "amount": "decimal",
        "placed_at": "date",
    }
    return _odcs(
        schema_id,
        version,
        "raw",
        table,
        fields,
        domain=domain,
        tags=tags,
        retention=retention,
        extra=[{"property": "driftPolicy", "value": drift_policy}, {"property": "source", "value": "shop"}],
    )


def gdp_contract(
    schema_id: str = "GDP-ORDER",
    version: str = "1.0.0",
    *,
    based_on: str = "RAW-SHOP@1.0.0",
    table: str = "order",
    fields: dict[str, str] | None = None,
    mapping: str | None = None,
    tags: tuple[str, ...] = ("SOX", "GDPR"),
) -> dict:
    fields = fields or {"order_id": "string", "amount": "decimal", "placed_at": "date"}
    mapping = mapping or "SELECT order_id, amount, placed_at FROM raw.shop__orders"
    contract_id, _, ref_version = based_on.partition("@")
    document = _odcs(
        schema_id,
        version,
        "gdp",
        table,
        fields,
        tags=tags,
        extra=[{"property": "basedOn", "value": [{"contract": contract_id, "version": ref_version}]}],
    )
    document["schema"][0]["customProperties"] = [{"property": "mapping", "value": mapping}]
    return document


def kpi_contract(
    schema_id: str = "KPI-ORDER-VALUE",
    version: str = "1.0.0",
    *,
    based_on: str = "GDP-ORDER@1.0.0",
    formula: str = "SUM(amount)",
    time_field: str = "placed_at",
    tags: tuple[str, ...] = ("SOX",),
) -> dict:
    contract_id, _, ref_version = based_on.partition("@")
    return {
        "apiVersion": "keel/v1",
        "kind": "KpiContract",
        "id": schema_id,
        "name": f"{schema_id} metric",
        "version": version,
        "owner": "kpis@keel.test",
        "domain": "finance",
        "regulatoryTags": list(tags),
        "retention": "7y",
        "basedOn": [{"contract": contract_id, "version": ref_version}],
        "kpi": {
            "formula": formula,
            "grain": "month",
            "timeField": time_field,
            "unit": "EUR",
            "thresholds": [{"name": "low", "op": "<", "limit": 100, "severity": "warning"}],
            "targets": {"default": 1000},
            "visibleTo": ["BO", "AN"],
        },
    }


def _odcs(schema_id, version, layer, table, fields, *, domain="finance", tags=(), retention=True, extra=()):
    properties = []
    for name, kind in fields.items():
        logical, physical = ("number", "decimal(38,9)") if kind == "decimal" else (kind, None)
        prop = {
            "name": name,
            "logicalType": logical,
            "classification": "confidential" if "email" in name else "internal",
            "customProperties": [{"property": "pii", "value": "email" in name}],
        }
        if physical:
            prop["physicalType"] = physical
        properties.append(prop)
    document = {
        "apiVersion": "v3.1.0",
        "kind": "DataContract",
        "id": schema_id,
        "name": schema_id.lower(),
        "version": version,
        "status": "active",
        "domain": domain,
        "schema": [{"name": table.split("__")[-1], "physicalName": table, "properties": properties}],
        "customProperties": [
            {"property": "keelLayer", "value": layer},
            {"property": "owner", "value": "data-team@keel.test"},
            {"property": "regulatoryTags", "value": list(tags)},
            *extra,
        ],
    }
    if retention:
        document["slaProperties"] = [{"property": "retention", "value": 7, "unit": "y"}]
    return document


def with_field(document: dict, name: str, kind: str, *, required: bool = False) -> dict:
    """A copy of ``document`` with one more field in its first dataset."""
    changed = copy.deepcopy(document)
    prop = {
        "name": name,
        "logicalType": kind,
        "classification": "internal",
        "required": required,
        "customProperties": [{"property": "pii", "value": False}],
    }
    changed["schema"][0]["properties"].append(prop)
    return changed


def second_steward(world) -> str:
    """A second Schema Steward ("SS2"): the author's work is validated by someone else."""
    if "SS2" not in world.tokens:
        world.add("SS2", make_user(world.keel, Persona.SS, mailbox="steward-two"))
    return "SS2"


def path(schema_id: str, version: str, step: str = "") -> str:
    return f"{BASE}/{schema_id}/versions/{version}" + (f"/{step}" if step else "")


def step(world, who: str, schema_id: str, version: str, name: str, json: dict | None = None) -> dict:
    answer = world.post(who, path(schema_id, version, name), json)
    assert answer.status_code == 200, answer.text
    return answer.json()


def publish_contract(world, document: dict, *, author: str = "SS", tenant_id: str | None = None) -> dict:
    """Draft (author) → register (PA) → validate (SS2) → compliance review (CO) → publish (PA)."""
    validator = second_steward(world) if author == "SS" else "SS"
    body = {"document": document} | ({"tenant_id": tenant_id} if tenant_id else {})
    drafted = world.post(author, BASE, body)
    assert drafted.status_code == 201, drafted.text
    schema_id, version = drafted.json()["schema_id"], drafted.json()["version"]
    step(world, "PA", schema_id, version, "register")
    validated = step(world, validator, schema_id, version, "validate")
    assert validated["status"] == "validated", validated["validation"]
    step(world, "CO", schema_id, version, "compliance-review", {"approve": True})
    return step(world, "PA", schema_id, version, "publish")


def write_raw(world, slug: str, table: str, columns: str, rows) -> None:
    """Rows straight into a tenant's Raw table: stands in for an ingestion run in tests that are
    about what happens after ingestion."""
    import duckdb

    path = world.keel.dataplanes.database_path(world.tenants[slug])
    with duckdb.connect(str(path)) as con:
        con.execute(f"CREATE TABLE IF NOT EXISTS raw.{table} ({columns})")
        placeholders = ", ".join("?" for _ in rows[0])
        con.executemany(f"INSERT INTO raw.{table} VALUES ({placeholders})", rows)


def publish_kpi(world, slug: str, kpi_id: str, version: str | None = None, who: str = "PA") -> dict:
    """Publish a built KPI to a tenant's people (06) through the real API."""
    body = {"version": version} if version else {}
    answer = world.post(who, f"/api/v1/tenants/{world.tenants[slug]}/kpis/{kpi_id}/publication", body)
    assert answer.status_code == 201, answer.text
    return answer.json()
