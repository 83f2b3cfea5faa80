"""Story 04 "quarantined rows can be reviewed, fixed and released", for the Raw layer.

A Raw rule quarantines the sample ERP's invoices without an amount as they are ingested. The
tenant's Data Engineer lists them (``layer=raw``) and releases them: fixed, or as false
positives. Released rows land in the Raw table as a batch of their own, so the next incremental
pipeline run folds them into GDP like any new batch; the stream's checkpoint does not move.
"""

from __future__ import annotations

import duckdb
import pytest
import sqlalchemy as sa
from tests.support_contracts import gdp_contract, publish_contract, raw_contract
from tests.support_onboarding import (
    api,
    erp_ready,
)

from keel.samples.erp import CURRENCIES
from keel.store.tables import metric_samples

API = "/api/v1"
RULE = {
    "rule_id": "RAW-INVOICE-AMT-SET",
    "layer": "raw",
    "dataset": "erp__invoices",
    "field": "amount_net",
    "check": "not_null",
    "on_fail": "quarantine",
}
CURRENCY = RULE | {  # the sample holds one invoice without an amount and one without a currency
    "rule_id": "RAW-INVOICE-CURRENCY",
    "field": "currency",
    "check": "accepted_values",
    "params": {"values": sorted(CURRENCIES)},
}


def _ok(answer, status: int = 200) -> dict:
    assert answer.status_code == status, answer.text
    return answer.json()


@pytest.fixture
def quarantined(world, tmp_path):
    _, counts, source = erp_ready(world, "acme", tmp_path)
    for rule in (RULE, CURRENCY):
        _ok(world.post("SS", f"{API}/quality-rules", rule), 201)
        _ok(world.post("PA", f"{API}/quality-rules/{rule['rule_id']}/enable"))
    tenant = world.tenants["acme"]
    _ok(world.post("acme:IO", f"{api(tenant)}/sources/{source['source_id']}/runs", {}), 201)
    return world, tenant, counts["invoices"]


def _raw(world, tenant, sql: str):
    with duckdb.connect(str(world.keel.dataplanes.database_path(tenant)), read_only=True) as con:
        return con.execute(sql).fetchall()


def _quarantine(world, tenant) -> list[dict]:
    return _ok(world.get("acme:DE", f"{API}/tenants/{tenant}/quarantine/erp__invoices?layer=raw"))["items"]


def test_raw_rows_held_back_at_ingestion_are_reviewed_fixed_and_released_as_a_batch(quarantined):
    world, tenant, total = quarantined
    release = f"{API}/tenants/{tenant}/quarantine/erp__invoices/release"
    held = _quarantine(world, tenant)
    by_rule = {i["rule_id"]: i for i in held}
    assert len(held) == 2 and set(by_rule) == {"RAW-INVOICE-AMT-SET", "RAW-INVOICE-CURRENCY"}
    first, second = by_rule["RAW-INVOICE-AMT-SET"], by_rule["RAW-INVOICE-CURRENCY"]
    assert first["row"]["amount_net"] is None and second["row"]["currency"] == ""
    landed = total - len(held)

    unfixed = world.post("acme:DE", release, {"layer": "raw", "quarantine_ids": [first["quarantine_id"]]})
    assert unfixed.status_code == 422 and "still fail" in unfixed.json()["detail"]
    own = {first["quarantine_id"]: {"_keel_batch_id": "BAT-MINE"}}
    keel_column = world.post(
        "acme:DE", release, {"layer": "raw", "quarantine_ids": [first["quarantine_id"]], "fixes": own}
    )
    assert keel_column.status_code == 422 and "_keel_batch_id" in keel_column.json()["detail"]
    assert (
        world.post(
            "acme:AN", release, {"layer": "raw", "quarantine_ids": [first["quarantine_id"]]}
        ).status_code
        == 403
    )

    fix = {first["quarantine_id"]: {"amount_net": 12.5}}
    fixed = _ok(
        world.post(
            "acme:DE", release, {"layer": "raw", "quarantine_ids": [first["quarantine_id"]], "fixes": fix}
        )
    )
    assert (fixed["layer"], fixed["table"], fixed["released"], fixed["fixed"]) == (
        "raw",
        "raw.erp__invoices",
        1,
        1,
    )
    kept = _ok(
        world.post(
            "acme:DE",
            release,
            {"layer": "raw", "quarantine_ids": [second["quarantine_id"]], "false_positive": True},
        )
    )
    assert kept["batch_id"] != fixed["batch_id"]

    # Both rows are back in Raw, each in its release batch; the rest are still held.
    assert _raw(world, tenant, 'SELECT count(*) FROM raw."erp__invoices"') == [(landed + 2,)]
    back = _raw(
        world,
        tenant,
        'SELECT invoice_id, CAST(amount_net AS DOUBLE), _keel_batch_id FROM raw."erp__invoices" '
        f"WHERE invoice_id IN ('{first['row']['invoice_id']}', '{second['row']['invoice_id']}') ORDER BY 3",
    )
    assert sorted(back, key=lambda r: r[0] != first["row"]["invoice_id"]) == [
        (first["row"]["invoice_id"], 12.5, fixed["batch_id"]),
        (second["row"]["invoice_id"], float(second["row"]["amount_net"]), kept["batch_id"]),  # unchanged
    ]
    batches = _raw(
        world, tenant, "SELECT batch_id, kind, rows FROM raw._keel_batches WHERE kind = 'release' ORDER BY 1"
    )
    assert batches == sorted([(fixed["batch_id"], "release", 1), (kept["batch_id"], "release", 1)])
    assert _quarantine(world, tenant) == []

    events = [e["payload"] for e in world.events("quarantine.released")]
    assert [(e["layer"], e["batch_id"], e["false_positive"]) for e in events] == [
        ("raw", fixed["batch_id"], False),
        ("raw", kept["batch_id"], True),
    ]
    # false_positive_rate is computed from one outcome sample per released row
    name = metric_samples.c.name == "false_positive_outcome"
    outcomes = world.rows(sa.select(metric_samples.c.value).where(name).order_by(metric_samples.c.id))
    assert [bool(o.value) for o in outcomes] == [False, True]


def test_an_incremental_run_folds_released_raw_rows_into_gdp(quarantined):
    world, tenant, total = quarantined
    fields = {"invoice_id": "string", "amount_net": "decimal"}
    publish_contract(world, raw_contract("RAW-ERP", table="erp__invoices", fields=fields))
    publish_contract(
        world,
        gdp_contract(
            "GDP-INVOICE",
            based_on="RAW-ERP@1.0.0",
            table="invoice",
            fields=fields,
            mapping="SELECT invoice_id, amount_net FROM raw.erp__invoices",
        ),
    )
    runs = f"{API}/tenants/{tenant}/pipeline-runs"
    _ok(world.post("acme:DE", runs, {"schema_id": "GDP-INVOICE", "mode": "full"}), 201)
    held = _quarantine(world, tenant)
    gdp_rows = total - len(held)
    (missing,) = [i for i in held if i["rule_id"] == "RAW-INVOICE-AMT-SET"]
    one = missing["quarantine_id"]
    release = f"{API}/tenants/{tenant}/quarantine/erp__invoices/release"
    fix = {"layer": "raw", "quarantine_ids": [one], "fixes": {one: {"amount_net": 3}}}
    _ok(world.post("acme:DE", release, fix))

    run = _ok(world.post("acme:DE", runs, {"schema_id": "GDP-INVOICE", "mode": "incremental"}), 201)

    (gdp,) = [r for r in run["runs"] if r["layer"] == "gdp"]
    assert (gdp["mode"], gdp["delta_rows"], gdp["rows"]) == ("incremental", 1, gdp_rows + 1), gdp
    value = _raw(
        world,
        tenant,
        "SELECT CAST(amount_net AS DOUBLE) FROM gdp.invoice WHERE invoice_id = "
        f"'{missing['row']['invoice_id']}'",
    )
    assert value == [(3.0,)]
