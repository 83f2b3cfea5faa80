"""A contract version's lifecycle after registration, each step by the persona its story names::

    registered --validate (SS)--> validated --compliance review (CO)--> approved --publish (PA)--> published
    published --deprecate (SS)--> deprecated --retire (SS)--> retired
    registered --rules fail--> rejected          validated --regulatory gap / CO rejects--> rejected

Validation runs the structural rules (``rules.STRUCTURE``), the compatibility check
against every version published before (a breaking change needs a major version),
and a cycle check over the GDP table graph; it stores the version's column lineage.
The Compliance Officer's review runs ``rules.COMPLIANCE``: a gap rejects the version
whatever the reviewer says. Publishing needs both sign-offs from two people other
than the author (dual control) and every contract it is based on published.

Publishing a new version of a contract that tenants already run pins them to the
version they run: a new version reaches tenants only through a rollout (03f).
"""

from __future__ import annotations

import hashlib

import sqlalchemy as sa

from keel.contracts import compatibility, records, rules
from keel.contracts.model import Contract, Layer, Status
from keel.contracts.registry import record_usage
from keel.evidence import receipts
from keel.identity.actor import Actor
from keel.kernel.clock import utcnow
from keel.kernel.errors import Blocked, Conflict, InvalidInput
from keel.observability import metrics
from keel.rbac.dual_control import dual_signed
from keel.store.tables import contract_lineage, contract_versions, tenant_contracts, tenants

EVER_PUBLISHED = (Status.PUBLISHED, Status.DEPRECATED, Status.RETIRED)
VALIDATION_RATE = {
    Layer.RAW: "schema_validation_pass_rate",
    Layer.GDP: "gdp_validation_rate",
    Layer.KPI: "kpi_schema_validation_rate",
}


def validate(keel, actor: Actor, contract_id: str, version: str) -> dict:
    """SS checks structure, metadata, mappings and compatibility; a failure rejects the version."""
    with keel.uow() as uow:
        row = records.load(uow.conn, contract_id, version, lock=True, actor=actor)
        keel.authorize(uow, actor, "schema:Validate", records.resource(row))
        _require(row, Status.REGISTERED, "validated")
        contract = records.with_resolved_refs(records.contract_of(row), row.based_on)
        context = records.context_for(uow.conn, row)
        problems = rules.run(rules.STRUCTURE, contract, context)
        report = _compatibility(uow.conn, contract, problems)
        edges = lineage_edges(contract, context) if not problems else []
        cycle = _cycle(uow.conn, contract, edges)
        if cycle:
            problems.append(rules.Problem("cycle", "mapping", f"circular mapping: {' -> '.join(cycle)}"))
        passed = not problems
        result = {"passed": passed, "problems": [p.as_dict() for p in problems], "compatibility": report}
        if passed:
            records.update(
                uow.conn, row, status=Status.VALIDATED, validated_by=actor.user_id, validation=result
            )
            records.save_lineage(uow.conn, contract_id, version, edges)
        else:
            records.update(
                uow.conn,
                row,
                status=Status.REJECTED,
                validated_by=actor.user_id,
                validation=result,
                reason="validation failed",
            )
        event = f"schema.{row.layer}.validated" if passed else f"schema.{row.layer}.rejected"
        uow.record(
            event,
            actor_id=actor.user_id,
            tenant_id=row.tenant_id,
            schema_id=contract_id,
            version=version,
            passed=passed,
            problems=result["problems"],
            lineage_edges=len(edges),
        )
        if row.template and passed:
            uow.record(
                "schema.validated",
                actor_id=actor.user_id,
                tenant_id=None,
                schema_id=contract_id,
                version=version,
            )
        if row.template:
            metrics.outcome(uow.conn, "template_validation_success_rate", passed)
        metrics.outcome(uow.conn, VALIDATION_RATE[Layer(row.layer)], passed, row.tenant_id)
        uow.commit()
        return records.view(records.load(uow.conn, contract_id, version))


def review_compliance(
    keel, actor: Actor, contract_id: str, version: str, *, approve: bool, findings: str = ""
) -> dict:
    """CO confirms the regulatory content; a gap the rules find rejects the version regardless."""
    with keel.uow() as uow:
        row = records.load(uow.conn, contract_id, version, lock=True, actor=actor)
        keel.authorize(uow, actor, "schema:ReviewCompliance", records.resource(row))
        _require(row, Status.VALIDATED, "reviewed for compliance")
        if not approve and not findings.strip():
            raise InvalidInput("findings", "a rejection says what is missing")
        gaps = rules.run(rules.COMPLIANCE, records.contract_of(row))
        passed = approve and not gaps
        result = {
            "passed": passed,
            "problems": [p.as_dict() for p in gaps],
            "reviewer_approved": approve,
            # People's words enter the ledger only as a hash (the reviewer keeps the text).
            "findings_sha256": hashlib.sha256(findings.encode()).hexdigest() if findings else None,
        }
        status = Status.APPROVED if passed else Status.REJECTED
        records.update(
            uow.conn,
            row,
            status=status,
            compliance_by=actor.user_id,
            compliance=result,
            reason=None if passed else "compliance review failed",
        )
        uow.record(
            "schema.compliance.reviewed",
            actor_id=actor.user_id,
            tenant_id=row.tenant_id,
            schema_id=contract_id,
            version=version,
            compliance_check="PASS" if passed else "FAIL",
            gaps=result["problems"],
            findings_sha256=result["findings_sha256"],
        )
        if not passed:
            uow.record(
                f"schema.{row.layer}.rejected",
                actor_id=actor.user_id,
                tenant_id=row.tenant_id,
                schema_id=contract_id,
                version=version,
                problems=result["problems"],
            )
        uow.commit()
        return records.view(records.load(uow.conn, contract_id, version))


def publish(keel, actor: Actor, contract_id: str, version: str) -> dict:
    """PA publishes an approved version: dual-signed, its bases published, its number new."""
    with keel.uow() as uow:
        row = records.load(uow.conn, contract_id, version, lock=True, actor=actor)
        signed = dual_signed(row.drafted_by, (row.validated_by, row.compliance_by))
        keel.authorize(uow, actor, "schema:Publish", records.resource(row), dual_signed=signed)
        if row.status == Status.PUBLISHED:
            raise Conflict(
                f"{contract_id}@{version} is published already (version clash)", reason="version_clash"
            )
        if row.status != Status.APPROVED:
            raise Blocked(
                f"{contract_id}@{version} is {row.status}: publishing needs the Schema Steward's validation "
                "and a passed compliance review",
                status=row.status,
            )
        for key in row.based_on:
            base = records.load(uow.conn, *key.split("@", 1))
            if base.status not in (Status.PUBLISHED, Status.DEPRECATED):
                raise Blocked(
                    f"{contract_id}@{version} is based on {key}, which is {base.status}, not published"
                )
        contract = records.contract_of(row)
        earlier = _published_contracts(uow.conn, contract_id)
        if earlier:
            compatibility.check_version(contract, earlier, contract.compatibility)  # nothing newer since
            _pin_tenants(uow.conn, contract_id, str(earlier[-1].version), row.tenant_id)
        now = utcnow()
        records.update(uow.conn, row, status=Status.PUBLISHED, published_by=actor.user_id, published_at=now)
        body = {
            "schema_id": contract_id,
            "status": "published",
            "version": f"v{version}",
            "layer": row.layer,
            "validated_by": row.validated_by,
            "compliance_check": "PASS",
            "compliance_by": row.compliance_by,
            "published_by": actor.user_id,
            "based_on": list(row.based_on),
            "document_sha256": row.document_sha256,
        }
        receipt_id = receipts.issue(
            uow.conn,
            "schema.version",
            subject_id=f"{contract_id}@{version}",
            tenant_id=row.tenant_id,
            body=body,
            at=now,
        )
        for event in (f"schema.{row.layer}.versioned", "schema.published"):
            uow.record(
                event,
                actor_id=actor.user_id,
                tenant_id=row.tenant_id,
                schema_id=contract_id,
                version=version,
                receipt_id=receipt_id,
                based_on=list(row.based_on),
            )
        for key in row.based_on:
            base_id = key.partition("@")[0]
            record_usage(
                uow.conn,
                base_id,
                records.load(uow.conn, *key.split("@", 1)).layer,
                row.tenant_id,
                f"based_on:{contract_id}",
            )
        uow.commit()
        out = records.view(records.load(uow.conn, contract_id, version))
        out["receipt_id"] = receipt_id
        return out


def deprecate(keel, actor: Actor, contract_id: str, version: str, *, reason: str) -> dict:
    return _retreat(
        keel, actor, contract_id, version, "schema:Deprecate", Status.PUBLISHED, Status.DEPRECATED, reason
    )


def retire(keel, actor: Actor, contract_id: str, version: str, *, reason: str) -> dict:
    return _retreat(
        keel, actor, contract_id, version, "schema:Retire", Status.DEPRECATED, Status.RETIRED, reason
    )


def _retreat(keel, actor, contract_id, version, action, source: Status, target: Status, reason: str) -> dict:
    if not reason.strip():
        raise InvalidInput("reason", f"say why {contract_id}@{version} is {target}")
    with keel.uow() as uow:
        row = records.load(uow.conn, contract_id, version, lock=True, actor=actor)
        keel.authorize(uow, actor, action, records.resource(row))
        _require(row, source, str(target))
        if target == Status.RETIRED:
            _require_unused(uow.conn, row)
        records.update(uow.conn, row, status=target, reason=reason[:2000])
        uow.record(
            f"schema.{row.layer}.{target}",
            actor_id=actor.user_id,
            tenant_id=row.tenant_id,
            schema_id=contract_id,
            version=version,
            reason_sha256=hashlib.sha256(reason.encode()).hexdigest(),
        )
        uow.commit()
        return records.view(records.load(uow.conn, contract_id, version))


# -- helpers -----------------------------------------------------------------------------------


def lineage_edges(contract: Contract, context: rules.Context) -> list[tuple[str, str]]:
    """Column lineage ``(target, source)`` of a version, from its parsed mapping or formula."""
    edges: list[tuple[str, str]] = []
    if contract.layer is Layer.GDP:
        from keel.contracts.mapping import validate_mapping

        sources = rules.source_tables(contract, context)
        for dataset in contract.datasets:
            plan = validate_mapping(dataset.mapping_sql or "", dataset, sources)
            for target, origins in plan.lineage.items():
                edges += [(f"gdp.{dataset.name}.{target}", f"{table}.{column}") for table, column in origins]
    elif contract.layer is Layer.KPI and contract.kpi is not None:
        from keel.contracts.kpi_sql import validate_kpi

        plan = validate_kpi(contract.kpi, rules.gdp_tables(contract, context))
        edges += [(f"kpi.{contract.id}.value", f"{table}.{column}") for table, column in plan.lineage]
    return sorted(set(edges))


def _compatibility(conn, contract: Contract, problems: list[rules.Problem]) -> dict | None:
    earlier = _published_contracts(conn, contract.id)
    if not earlier or any(p.rule in ("identity", "compatibility") for p in problems):
        return None
    report = compatibility.check(contract, earlier, contract.compatibility)
    try:
        compatibility.check_version(contract, earlier, contract.compatibility)
    except InvalidInput as exc:
        problems.append(rules.Problem("compatibility", "version", exc.detail))
    return {
        "mode": str(report.mode),
        "compatible": report.compatible,
        "against": [str(c.version) for c in earlier],
        "changes": [change.detail for change in report.changes],
    }


def _cycle(conn, contract: Contract, edges: list[tuple[str, str]]) -> list[str] | None:
    """A cycle in the table graph of published GDP lineage plus this version's, or None."""
    if contract.layer is not Layer.GDP:
        return None
    from keel.contracts.graph import find_cycle

    graph: dict[str, set[str]] = {}
    published = sa.select(contract_versions.c.contract_id, contract_versions.c.version).where(
        contract_versions.c.layer == Layer.GDP.value,
        contract_versions.c.status == Status.PUBLISHED.value,
        contract_versions.c.contract_id != contract.id,
    )
    rows = conn.execute(
        sa.select(contract_lineage.c.target, contract_lineage.c.source).where(
            sa.tuple_(contract_lineage.c.contract_id, contract_lineage.c.version).in_(published)
        )
    )
    for target, source in [*rows, *edges]:
        graph.setdefault(_table(target), set()).add(_table(source))
    return find_cycle(graph)


def _table(column_path: str) -> str:
    return column_path.rsplit(".", 1)[0]


def _published_contracts(conn, contract_id: str) -> list[Contract]:
    return [
        records.contract_of(r) for r in records.versions_of(conn, contract_id) if r.status in EVER_PUBLISHED
    ]


def _pin_tenants(conn, contract_id: str, current: str, owner: str | None) -> None:
    """Every active tenant not yet pinned (the owner alone, for a tenant's own contract) keeps
    running ``current`` until a rollout moves it."""
    pinned = set(
        conn.execute(
            sa.select(tenant_contracts.c.tenant_id).where(tenant_contracts.c.contract_id == contract_id)
        ).scalars()
    )
    now = utcnow()
    active = sa.select(tenants.c.id).where(tenants.c.status == "ACTIVE")
    if owner:
        active = active.where(tenants.c.id == owner)
    for tenant_id in conn.execute(active).scalars():
        if tenant_id not in pinned:
            conn.execute(
                tenant_contracts.insert().values(
                    tenant_id=tenant_id, contract_id=contract_id, version=current, updated_at=now
                )
            )


def _require_unused(conn, row) -> None:
    key = f"{row.contract_id}@{row.version}"
    dependents = [
        f"{r.contract_id}@{r.version}"
        for r in conn.execute(
            sa.select(
                contract_versions.c.contract_id, contract_versions.c.version, contract_versions.c.based_on
            ).where(contract_versions.c.status.in_((Status.PUBLISHED, Status.APPROVED, Status.VALIDATED)))
        )
        if key in r.based_on
    ]
    running = list(
        conn.execute(
            sa.select(tenant_contracts.c.tenant_id).where(
                tenant_contracts.c.contract_id == row.contract_id, tenant_contracts.c.version == row.version
            )
        ).scalars()
    )
    if dependents or running:
        raise Blocked(
            f"{key} is still in use ({', '.join(dependents + [f'tenant {t}' for t in running])}); "
            "retire it once nothing depends on it",
            dependents=dependents,
            tenants=running,
        )


def _require(row, status: Status, what: str) -> None:
    if row.status != status:
        raise Conflict(f"{row.contract_id}@{row.version} is {row.status}; only a {status} version is {what}")


def active_version(conn, tenant_id: str, contract_id: str) -> str | None:
    """The version ``tenant_id`` runs: its pin, else the newest published version. None for a
    contract of another tenant: a tenant's own contracts run for that tenant alone."""
    row = records.newest(conn, contract_id, statuses=(Status.PUBLISHED, Status.DEPRECATED))
    if row is not None and row.tenant_id and row.tenant_id != tenant_id:
        return None
    pinned = conn.execute(
        sa.select(tenant_contracts.c.version).where(
            tenant_contracts.c.tenant_id == tenant_id, tenant_contracts.c.contract_id == contract_id
        )
    ).scalar()
    if pinned:
        return pinned
    row = records.newest(conn, contract_id)
    return row.version if row else None
