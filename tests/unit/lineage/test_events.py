"""OpenLineage run events of a pipeline run (05): the shape the OpenLineage spec asks for."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from keel.lineage.events import column_edges, run_events
from keel.pipeline.model import RunResult

AT = datetime(2026, 12, 7, 6, 0, tzinfo=UTC)
LINEAGE = {"amount_gross": (("raw.erp__invoices", "amount_net"), ("raw.erp__invoices", "amount_tax"))}


def _run(error: str | None = None) -> RunResult:
    return RunResult("gdp", "invoice", "1.0.0", "gdp.invoice__v1_0_0", "GDP-INVOICE@1.0.0",
                     ("raw.erp__invoices",), 3, 0, 0, AT, AT, 0.1, error=error)  # fmt: skip


def test_a_run_yields_start_and_complete_with_column_lineage():
    start, end = run_events("TEN-1", _run(), LINEAGE)
    assert (start["eventType"], end["eventType"]) == ("START", "COMPLETE")
    assert start["run"]["runId"] == end["run"]["runId"]
    uuid.UUID(start["run"]["runId"])
    for event in (start, end):
        assert {"eventTime", "producer", "schemaURL", "run", "job", "inputs", "outputs"} <= set(event)
        assert event["job"] == {"namespace": "keel://TEN-1", "name": "gdp.invoice", "facets": {}}
        datetime.fromisoformat(event["eventTime"])
    facet = end["outputs"][0]["facets"]["columnLineage"]
    assert facet["_schemaURL"].endswith("ColumnLineageDatasetFacet")
    assert [f["field"] for f in facet["fields"]["amount_gross"]["inputFields"]] == [
        "amount_net",
        "amount_tax",
    ]
    assert [i["name"] for i in end["inputs"]] == ["raw.erp__invoices"]
    assert column_edges(end) == [
        {"from": "raw.erp__invoices.amount_net", "to": "gdp.invoice.amount_gross"},
        {"from": "raw.erp__invoices.amount_tax", "to": "gdp.invoice.amount_gross"},
    ]


def test_a_failed_run_ends_in_fail_with_its_error():
    _, end = run_events("TEN-1", _run(error="boom"), LINEAGE)
    assert end["eventType"] == "FAIL"
    assert end["run"]["facets"]["errorMessage"]["message"] == "boom"


def test_a_run_without_lineage_has_no_column_facet():
    _, end = run_events("TEN-1", _run(), {})
    assert "columnLineage" not in end["outputs"][0]["facets"]
