"""OpenLineage run events of one pipeline run (pure).

A run is one OpenLineage job run: job ``<layer>.<name>`` (``gdp.invoice``, ``kpi.kpi_dso``) in the
namespace ``keel://<tenant_id>``; its inputs are the tables it read, its output the view it builds,
with a ``columnLineage`` facet mapping each output field to the input fields it is computed from.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
from openlineage.client.facet_v2 import column_lineage_dataset as cl
from openlineage.client.facet_v2 import error_message_run
from openlineage.client.serde import Serde
from openlineage.client.uuid import generate_new_uuid

from keel.pipeline.model import RunResult

PRODUCER = "https://keel.dev/keel"

# Column lineage: output field -> the (table, column) pairs it is computed from.
Lineage = Mapping[str, Sequence[tuple[str, str]]]


def namespace(tenant_id: str) -> str:
    return f"keel://{tenant_id}"


def job_name(run: RunResult) -> str:
    return f"{run.layer}.{run.name}"


def new_run_id() -> str:
    return str(generate_new_uuid())


def _time(at: datetime) -> str:
    return at.isoformat()


def _inputs(ns: str, run: RunResult, lineage: Lineage) -> list[InputDataset]:
    names = sorted(set(run.inputs) | {table for sources in lineage.values() for table, _ in sources})
    return [InputDataset(namespace=ns, name=name) for name in names]


def _output(ns: str, run: RunResult, lineage: Lineage) -> OutputDataset:
    fields = {
        field: cl.Fields(
            inputFields=[
                cl.InputField(namespace=ns, name=table, field=column) for table, column in sorted(sources)
            ],
        )
        for field, sources in sorted(lineage.items())
        if sources
    }
    facets = (
        {"columnLineage": cl.ColumnLineageDatasetFacet(fields=fields, producer=PRODUCER)} if fields else {}
    )
    return OutputDataset(namespace=ns, name=job_name(run), facets=facets)


def _event(state: RunState, at: datetime, tenant_id: str, run_id: str, run: RunResult, lineage: Lineage,
           run_facets: dict | None = None) -> dict:  # fmt: skip
    ns = namespace(tenant_id)
    event = RunEvent(
        eventType=state,
        eventTime=_time(at),
        producer=PRODUCER,
        run=Run(runId=run_id, facets=run_facets or {}),
        job=Job(namespace=ns, name=job_name(run)),
        inputs=_inputs(ns, run, lineage),
        outputs=[_output(ns, run, lineage)],
    )
    return Serde.to_dict(event)


def run_events(tenant_id: str, run: RunResult, lineage: Lineage, run_id: str | None = None) -> list[dict]:
    """The START event and the COMPLETE (or, for a run with ``error``, FAIL) event of ``run``, as
    OpenLineage JSON objects (dicts)."""
    run_id = run_id or new_run_id()
    start = _event(RunState.START, run.started_at, tenant_id, run_id, run, lineage)
    if run.ok:
        end = _event(RunState.COMPLETE, run.finished_at, tenant_id, run_id, run, lineage)
    else:
        facet = error_message_run.ErrorMessageRunFacet(
            message=run.error or "failed", programmingLanguage="SQL", producer=PRODUCER
        )
        end = _event(RunState.FAIL, run.finished_at, tenant_id, run_id, run, lineage, {"errorMessage": facet})
    return [start, end]


def column_edges(event: Mapping) -> list[dict]:
    """The column edges of an event: ``{"from": "table.column", "to": "dataset.field"}``."""
    edges = []
    for output in event.get("outputs") or []:
        facet = (output.get("facets") or {}).get("columnLineage") or {}
        for field, spec in (facet.get("fields") or {}).items():
            for source in spec.get("inputFields") or []:
                edges.append(
                    {"from": f"{source['name']}.{source['field']}", "to": f"{output['name']}.{field}"}
                )
    return edges


def lineage_columns(lineage: Lineage) -> int:
    """How many output fields have column lineage."""
    return sum(1 for sources in lineage.values() if sources)
