"""Story 03a step 5, "Watch drift (OE)": each ingestion run compares what a source delivers with
its Raw contract before anything of a stream is written.

A source is linked to a Raw contract (``raw_contract`` in its request, or
``link_raw_contract`` later). The contract must be a raw one, global or the tenant's own,
with a published version; the version checked is the one the tenant runs
(``lifecycle.active_version``), looked up at every run, so a rollout moves the check with
it. A stream's dataset is the one whose name (the ODCS ``physicalName``) is the stream's
Raw table ``<source key>__<stream>``, else the one named after the stream; a stream the
contract has no dataset for is not watched.

The watch is the runner's gate (``ingestion.runner.Admission``): it sees the stream as
the connector discovered it, in the contract vocabulary (``schema_check.column_type``;
``date-time`` is ``timestamp``), and ``keel.contracts.drift.detect`` says what was added,
removed, renamed or changed type. Drift is evidenced in one unit of work before anything
is read: a review ticket (kind ``drift``; one per source, stream, contract version and
drift while it is open, so running again with the same drift opens none), an incident
with its ``alert.fired`` for the Observability Engineer when the ticket is new, the event
``schema.drift.detected`` (ids, the drift in column names and types, the decision; never a
record value) and one ``drift_detection_count``. Then the contract's ``drift_policy``
decides (``drift.decide``): ``alert`` lets the run land as usual; ``quarantine`` lands
its batches in ``raw."<table>__quarantine"`` (the run is QUARANTINED, its checkpoint moves:
the rows are kept and can be released later); ``stop`` reads nothing of the stream and
fails its run (failure ``drift``) with the checkpoint where it was, so a run after the
contract or the source is fixed resumes from there.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from keel.connectors.protocol import Stream
from keel.contracts import lifecycle, records
from keel.contracts.drift import Decision, DriftReport, decide, detect
from keel.contracts.model import Contract, Dataset, Layer
from keel.contracts.tickets import open_ticket
from keel.identity.actor import Actor
from keel.ingestion.raw import quarantine_table, table_name
from keel.ingestion.runner import LAND, Admission, Gate
from keel.kernel.errors import InvalidInput
from keel.observability import metrics
from keel.observability.incidents import open_incident
from keel.onboarding.schema_check import ContractColumns, observed_type
from keel.store.tables import sources

AUDIENCE = "SRE"  # the Observability Engineer watches drift (03a step 5)
SEVERITY: dict[Decision, str] = {"continue": "SEV3", "quarantine": "SEV3", "stop": "SEV2"}


@dataclass(frozen=True)
class Link:
    """The Raw contract version a source's streams are checked against."""

    contract_id: str
    version: str
    contract: Contract

    @property
    def key(self) -> str:
        return f"{self.contract_id}@{self.version}"

    def dataset(self, source_key: str, stream: str) -> Dataset | None:
        """The stream's dataset: named after its Raw table, else after the stream."""
        return self.contract.dataset(table_name(source_key, stream)) or self.contract.dataset(stream)


def resolve(conn: Connection, tenant_id: str, contract_id: str, *, field: str = "raw_contract") -> Link:
    """The version of Raw contract ``contract_id`` that ``tenant_id`` runs; ``InvalidInput`` naming
    ``field`` when it is no Raw contract the tenant may use or has no published version.

    Another tenant's contract reads exactly as one that does not exist.
    """
    rows = [r for r in records.versions_of(conn, contract_id) if not r.tenant_id or r.tenant_id == tenant_id]
    if not rows:
        raise InvalidInput(
            field,
            f"'{contract_id}' is not a Raw contract of this tenant or a global one",
            contract=contract_id,
        )
    if rows[0].layer != Layer.RAW:
        raise InvalidInput(
            field,
            f"'{contract_id}' is a {rows[0].layer} contract; a source is checked against a raw contract",
            contract=contract_id,
        )
    version = lifecycle.active_version(conn, tenant_id, contract_id)
    if version is None:
        raise InvalidInput(
            field,
            f"'{contract_id}' has no published version to check the source against yet",
            contract=contract_id,
        )
    return Link(contract_id, version, records.contract_of(records.load(conn, contract_id, version)))


def check_link(
    conn: Connection, tenant_id: str, contract_id: str, source_key: str, streams: list[str], *, field: str
) -> Link:
    """``resolve``, and the contract has a dataset for at least one of the source's streams."""
    link = resolve(conn, tenant_id, contract_id, field=field)
    if not any(link.dataset(source_key, stream) for stream in streams):
        names = ", ".join(f"'{table_name(source_key, s)}' or '{s}'" for s in streams[:3])
        raise InvalidInput(
            field,
            f"{link.key} has no dataset for any of the source's streams (expected a dataset named {names})",
            contract=contract_id,
        )
    return link


def expected_schemas(link: Link, source_key: str, streams: list[str]) -> dict[str, ContractColumns]:
    """The columns the contract declares per stream, for the handshake's schema check (02b)."""
    expected = {}
    for stream in streams:
        dataset = link.dataset(source_key, stream)
        if dataset is not None:
            expected[stream] = ContractColumns({f.name: f.type for f in dataset.fields})
    return expected


def observed_columns(stream: Stream) -> dict[str, str]:
    """The columns of a discovered stream, name → type in the contract vocabulary."""
    properties = stream.json_schema.get("properties", {})
    return {
        name: observed_type(schema if isinstance(schema, dict) else {}) for name, schema in properties.items()
    }


def report_view(report: DriftReport) -> dict[str, Any]:
    """The drift as evidence: column names and types only."""
    return {
        "dataset": report.dataset,
        "added": list(report.added),
        "removed": list(report.removed),
        "renamed": [{"from": old, "to": new} for old, new in report.renamed],
        "type_changed": [
            {"column": column, "expected": expected, "found": found}
            for column, expected, found in report.type_changed
        ],
        "summary": report.summary(),
    }


def signature(report: DriftReport) -> str:
    """The same drift gives the same signature, whichever run sees it."""
    view = {k: v for k, v in report_view(report).items() if k != "summary"}
    return hashlib.sha256(json.dumps(view, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class Finding:
    """What the watch found for one stream of a run, and what it decided."""

    report: DriftReport
    decision: Decision
    link: Link
    ticket_id: str
    incident_id: str | None
    table: str  # where the stream's batches land: its Raw table or its quarantine table

    def error(self, rows: int = 0) -> dict[str, Any]:
        """The run's error (stop) or note (quarantine)."""
        if self.decision == "quarantine":
            outcome = f"{rows} record(s) quarantined in {self.table}"
        else:
            outcome = "nothing of the stream was read; the checkpoint is unchanged"
        return {
            "failure": "drift",
            "message": (
                f"schema drift against Raw contract {self.link.key} "
                f"(drift policy {self.link.contract.drift_policy}): {self.report.summary()}; {outcome}"
            ),
            "drift": report_view(self.report),
            "schema_id": self.link.contract_id,
            "version": self.link.version,
            "ticket_id": self.ticket_id,
            **({"quarantine_table": self.table} if self.decision == "quarantine" else {}),
        }


@dataclass
class Watch:
    """The drift watch of one ingestion run of a linked source; ``findings`` by stream."""

    keel: Any
    actor: Actor
    tenant_id: str
    source_id: str
    source_key: str
    contract_id: str
    link: Link | None
    problem: str | None = None  # why the link cannot be checked now (no published version ...)
    findings: dict[str, Finding] = field(default_factory=dict)

    def gate(self, stream_name: str, run_id: str) -> Gate:
        """The runner's gate for one stream's run."""

        def admit(stream: Stream) -> Admission:
            if self.link is None:
                return Admission("refuse", "contract", self.problem or "the Raw contract cannot be used")
            dataset = self.link.dataset(self.source_key, stream_name)
            if dataset is None:
                return LAND
            report = detect(observed_columns(stream), dataset)
            if not report.drifted:
                return LAND
            decision = decide(report, self.link.contract.drift_policy)
            finding = self._evidence(stream_name, run_id, report, decision)
            self.findings[stream_name] = finding
            if decision == "stop":
                return Admission("refuse", "drift", finding.error()["message"])
            return Admission("quarantine") if decision == "quarantine" else LAND

        return admit

    def _evidence(self, stream: str, run_id: str, report: DriftReport, decision: Decision) -> Finding:
        """Ticket (once per drift), alert (with a new ticket), event and metric, in one unit of work."""
        assert self.link is not None
        link, view = self.link, report_view(report)
        raw_table = table_name(self.source_key, stream)
        table = quarantine_table(self.source_key, stream) if decision == "quarantine" else raw_table
        with self.keel.uow() as uow:
            ticket_id, new = _ticket(uow, self.actor, self, stream, run_id, report, decision)
            incident_id = None
            if new:
                incident_id = open_incident(
                    uow,
                    self.actor,
                    kind="schema_drift",
                    severity=SEVERITY[decision],
                    summary=(
                        f"source {self.source_id} stream {stream} drifted from Raw contract {link.key}: "
                        f"{report.summary()}; drift policy {link.contract.drift_policy} → {decision}"
                    ),
                    details={
                        "audience": AUDIENCE,
                        "source_id": self.source_id,
                        "stream": stream,
                        "schema_id": link.contract_id,
                        "version": link.version,
                        "ticket_id": ticket_id,
                        "decision": decision,
                        "drift": view,
                    },
                    tenant_id=self.tenant_id,
                )
            uow.record(
                "schema.drift.detected",
                actor_id=self.actor.user_id,
                tenant_id=self.tenant_id,
                source_id=self.source_id,
                stream=stream,
                run_id=run_id,
                table=f"raw.{raw_table}",
                schema_id=link.contract_id,
                version=link.version,
                drift=view,
                policy=link.contract.drift_policy,
                decision=decision,
                ticket_id=ticket_id,
                new_ticket=new,
                incident_id=incident_id,
            )
            metrics.record(uow.conn, "drift_detection_count", 1, self.tenant_id, schema_id=link.contract_id)
            uow.commit()
        return Finding(report, decision, link, ticket_id, incident_id, f"raw.{table}")


def watch_for(keel, actor: Actor, tenant_id: str, source_id: str, source_key: str) -> Watch | None:
    """The run's watch when the source is linked to a Raw contract (None otherwise)."""
    with keel.engine.connect() as conn:
        contract_id = conn.execute(
            sa.select(sources.c.raw_contract_id).where(
                sources.c.id == source_id, sources.c.tenant_id == tenant_id
            )
        ).scalar()
        if not contract_id:
            return None
        try:
            link, problem = resolve(conn, tenant_id, contract_id), None
        except InvalidInput as exc:  # retired or withdrawn since it was linked: nothing to check against
            link, problem = None, f"the source's Raw contract cannot be checked: {exc.detail}"
    return Watch(keel, actor, tenant_id, source_id, source_key, contract_id, link, problem)


def _ticket(uow, actor: Actor, watch: Watch, stream: str, run_id: str, report: DriftReport, decision):
    """The open drift ticket of this source, stream, contract version and drift, else a new one;
    (its id, whether it is new)."""
    assert watch.link is not None
    link = watch.link
    drift = signature(report)
    key = hashlib.sha256(
        json.dumps([watch.source_id, stream, link.contract_id, link.version, drift]).encode()
    ).hexdigest()
    subject = f"{watch.source_id}/{stream[:80]} vs {link.contract_id[:80]}@{link.version} #{key[:16]}"
    details = {
        "source_id": watch.source_id,
        "stream": stream,
        "schema_id": link.contract_id,
        "version": link.version,
        "signature": drift,
        "policy": link.contract.drift_policy,
        "decision": decision,
        "first_run_id": run_id,
        "drift": report_view(report),
    }
    return open_ticket(uow, actor, kind="drift", subject=subject, tenant_id=watch.tenant_id, details=details)
