"""First-start seeding: provider users, platform deployment, RBAC baseline, demo tenant ``acme``.

Every step goes through the same service functions the API uses, acted by the
persona the story names, so the demo's evidence ledger reads like a real start.
Seeding is idempotent: a second start finds the work done and changes nothing.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass, field

import sqlalchemy as sa

from keel.accounts import service as accounts
from keel.identity.actor import SYSTEM, Actor
from keel.identity.personas import Persona
from keel.onboarding import deployment, ingest, preflight, sources
from keel.platform import service as platform
from keel.rbac import service as rbac
from keel.samples import erp
from keel.store.tables import tenants, users
from keel.tenants import service as tenancy

PROVIDER_DOMAIN = "keel.local"


@dataclass
class SeedResult:
    created: bool
    credentials: dict[str, str] = field(default_factory=dict)  # e-mail -> password
    steps: list[str] = field(default_factory=list)
    tenant_id: str | None = None


def email_for(persona: Persona, tenant_slug: str | None = None) -> str:
    domain = f"{tenant_slug}.example" if tenant_slug else PROVIDER_DOMAIN
    return f"{persona.value.lower()}@{domain}"


def _password() -> str:
    return secrets.token_urlsafe(12)


def actor_for(keel, email: str) -> Actor:
    with keel.engine.connect() as conn:
        row = conn.execute(sa.select(users.c.id, users.c.tenant_id).where(users.c.email == email)).one()
        roles = frozenset(accounts.user_view(conn, row.id)["roles"])
    return Actor(user_id=row.id, tenant_id=row.tenant_id, roles=roles, auth="seed")


def seed_provider_users(keel, result: SeedResult) -> None:
    """One user per provider persona, created by the system at first start."""
    with keel.uow() as uow:
        for persona in Persona:
            if not persona.is_provider:
                continue
            password = _password()
            user_id = accounts.insert_user(
                uow.conn,
                email=email_for(persona),
                display_name=persona.title,
                tenant_id=None,
                roles=[persona.value],
                password=password,
            )
            uow.record(
                "identity.user.created",
                actor_id=SYSTEM.user_id,
                tenant_id=None,
                user_id=user_id,
                roles=[persona.value],
                bootstrap=True,
            )
            result.credentials[email_for(persona)] = password
        uow.commit()
    result.steps.append("provider users created (one per provider persona)")


def deploy_platform(keel, result: SeedResult) -> None:
    pa, po, sa_ = (actor_for(keel, email_for(p)) for p in (Persona.PA, Persona.PO, Persona.SA))
    dep = platform.request_deployment(keel, pa)
    platform.approve_deployment(keel, po, dep["deployment_id"])
    platform.execute_deployment(keel, pa, dep["deployment_id"])
    platform.validate_deployment(keel, sa_, dep["deployment_id"])
    result.steps.append(f"platform deployed and validated ({dep['deployment_id']})")


def apply_rbac_baseline(keel, result: SeedResult) -> None:
    sa_, pa, co = (actor_for(keel, email_for(p)) for p in (Persona.SA, Persona.PA, Persona.CO))
    bundle = rbac.define_bundle(keel, sa_)
    rbac.apply_bundle(keel, pa, bundle["bundle_id"])
    rbac.review_bundle(keel, co, bundle["bundle_id"], approve=True)
    result.steps.append(f"RBAC baseline defined, applied and reviewed ({bundle['bundle_id']})")


def publish_contract_templates(keel, result: SeedResult) -> None:
    """00c: PA loads the shipped templates, SS validates, CO reviews, PA publishes each one."""
    from keel.contracts import lifecycle, registry

    pa, ss, co = (actor_for(keel, email_for(p)) for p in (Persona.PA, Persona.SS, Persona.CO))
    loaded = registry.load_templates(keel, pa)["loaded"]
    for key in loaded:
        schema_id, _, version = key.partition("@")
        lifecycle.validate(keel, ss, schema_id, version)
        lifecycle.review_compliance(keel, co, schema_id, version, approve=True)
        lifecycle.publish(keel, pa, schema_id, version)
    result.steps.append(f"{len(loaded)} contract templates loaded, validated, reviewed and published (00c)")


def provision_demo_tenant(keel, result: SeedResult, slug: str = "acme", name: str = "Acme Corp") -> str:
    pa, sa_ = actor_for(keel, email_for(Persona.PA)), actor_for(keel, email_for(Persona.SA))
    tenant = tenancy.provision_tenant(keel, pa, slug=slug, name=name, admin_email=email_for(Persona.TA, slug))
    validated = tenancy.validate_tenant(keel, sa_, tenant["tenant_id"])
    password = _password()
    accounts.accept_invitation(keel, validated["invitation"]["token"], password)
    result.credentials[email_for(Persona.TA, slug)] = password
    ta = actor_for(keel, email_for(Persona.TA, slug))
    for persona in Persona:
        if persona.is_provider or persona is Persona.TA:
            continue
        password = _password()
        accounts.create_user(
            keel,
            ta,
            email=email_for(persona, slug),
            display_name=persona.title,
            roles=[persona.value],
            tenant_id=tenant["tenant_id"],
            password=password,
        )
        result.credentials[email_for(persona, slug)] = password
    result.steps.append(
        f"tenant '{slug}' provisioned, validated, one user per tenant persona ({tenant['tenant_id']})"
    )
    return tenant["tenant_id"]


def seed(keel, *, crm=None) -> SeedResult:
    """Run the first-start chain unless it has run already; ``crm``: a running sample CRM to onboard."""
    with keel.engine.connect() as conn:
        if conn.execute(sa.select(users.c.id).limit(1)).first() is not None:
            acme = conn.execute(sa.select(tenants.c.id).where(tenants.c.slug == "acme")).scalar()
            return SeedResult(created=False, tenant_id=acme)
    result = SeedResult(created=True)
    seed_provider_users(keel, result)
    deploy_platform(keel, result)
    apply_rbac_baseline(keel, result)
    publish_contract_templates(keel, result)
    result.tenant_id = provision_demo_tenant(keel, result)
    onboard_sample_sources(keel, result, result.tenant_id, crm=crm)
    build_demo_pipeline(keel, result, result.tenant_id)
    write_credentials(keel, result.credentials)
    return result


# The GDP contracts the demo tenant builds, in dependency order (receivables read invoices, payments).
DEMO_GDP = ("GDP-CUSTOMER", "GDP-VENDOR", "GDP-INVOICE", "GDP-PAYMENT", "GDP-RECEIVABLE")


# The demo's quality rules (04): dirty invoices of the sample ERP are quarantined, not published.
DEMO_RULES = (
    {"rule_id": "GDP-INVOICE-AMT-NOT-NULL", "layer": "gdp", "dataset": "invoice", "field": "amount_net",
     "check": "not_null", "on_fail": "quarantine"},
    {"rule_id": "GDP-INVOICE-CURRENCY", "layer": "gdp", "dataset": "invoice", "field": "currency",
     "check": "accepted_values", "params": {"values": ["CHF", "EUR", "GBP", "USD"]}, "on_fail": "quarantine"},
)  # fmt: skip


def build_demo_pipeline(keel, result: SeedResult, tenant_id: str, slug: str = "acme") -> None:
    """Raw -> GDP -> KPI for the demo tenant: SS defines and PA enables the quality rules, its Data
    Engineer builds every GDP contract it runs (each with the published KPIs based on it), PA
    publishes each KPI to the tenant on that build's evidence (06), its Business Owner reads each
    KPI and exports a signed snapshot of it."""
    from keel.contracts.builds import build_tenant
    from keel.kpis import publishing
    from keel.kpis import service as kpis
    from keel.quality import service as quality

    ss, pa = actor_for(keel, email_for(Persona.SS)), actor_for(keel, email_for(Persona.PA))
    for rule in DEMO_RULES:
        quality.define(keel, ss, rule)
        quality.enable(keel, pa, rule["rule_id"])
    de, bo = actor_for(keel, email_for(Persona.DE, slug)), actor_for(keel, email_for(Persona.BO, slug))
    runs = [run for schema_id in DEMO_GDP for run in build_tenant(keel, de, tenant_id, schema_id)["runs"]]
    gdp = sum(r["rows"] for r in runs if r["layer"] == "gdp")
    quarantined = _quarantined(keel, tenant_id)
    result.steps.append(
        f"GDP built from Raw ({gdp} rows in {len(DEMO_GDP)} entities; {quarantined} dirty invoices "
        f"quarantined by {len(DEMO_RULES)} quality rules (04))"
    )
    for kpi_id in sorted({r["contract"].partition("@")[0] for r in runs if r["layer"] == "kpi"}):
        publishing.publish(keel, pa, tenant_id, kpi_id)
        kpi = kpis.get_kpi(keel, bo, tenant_id, kpi_id)
        snapshot = kpis.export(keel, bo, tenant_id, kpi_id, "csv", {})
        readings = ", ".join(_reading(c) for c in kpi["current"])
        result.steps.append(
            f"KPI {kpi_id} published; {kpi['period']}: {readings or 'no data'} ({kpi['unit']}); snapshot "
            f"{snapshot['path']} ({snapshot['receipt_id']})"
        )


def _quarantined(keel, tenant_id: str) -> int:
    from keel.pipeline import DuckDBEngine

    engine = DuckDBEngine(keel.dataplanes.database_path(tenant_id))
    with engine.session():
        names = [n for (n,) in engine.rows(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = 'gdp' AND table_name LIKE 'invoice%quarantine'"
        )]  # fmt: skip
        return sum(engine.rows(f'SELECT COUNT(*) FROM gdp."{n}"')[0][0] for n in names)


def _reading(current: dict) -> str:
    """``EUR 41.20 ok``: a KPI's current value in one dimension slice, with its threshold status."""
    where = "/".join(str(v) for v in current["dimensions"].values()) or "all"
    value = "-" if current["value"] is None else f"{current['value']:,.2f}"
    return f"{where} {value} {current['status']}"


def credentials_file(keel):
    return keel.settings.home / "demo-credentials.json"


def write_credentials(keel, credentials: dict[str, str]) -> None:
    path = credentials_file(keel)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(credentials, handle, indent=2, sort_keys=True)


# -- sample sources for the demo tenant (issue 3) -----------------------------------------------


def onboard_sample_sources(keel, result: SeedResult, tenant_id: str, slug: str = "acme", *, crm=None) -> None:
    """The sample ERP (a SQLite file under KEEL_HOME) and, when it runs, the sample CRM, each taken
    through 00b → 02 → 02b by its personas and ingested once into the tenant's Raw layer."""
    directory = keel.settings.home / "samples"
    directory.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{directory / 'erp.db'}"
    erp.write(erp.ErpSpec(), url, replace=True)
    # Each source is watched against its shipped Raw contract (03a drift), which the handshake checks.
    sources = [("ERP", "erp-sql", {"url": url}, "RAW-ERP")]
    if crm is not None:
        auth = {"type": "bearer", "token": crm.api_key}
        sources.append(("CRM", "crm-http", {"base_url": crm.url, "auth": auth}, "RAW-CRM"))
    for name, template, config, contract in sources:
        runs = onboard_source(
            keel,
            tenant_id,
            slug,
            name=name,
            template=template,
            config=config,
            expected={},
            raw_contract=contract,
        )
        rows = sum(r["rows"] for r in runs)
        result.steps.append(
            f"source {name} onboarded to READY (00b, 02, 02b), {rows} records ingested into Raw "
            f"({runs[0]['source_id']})"
        )


def onboard_source(
    keel,
    tenant_id: str,
    slug: str,
    *,
    name: str,
    template: str,
    config: dict,
    expected: dict,
    raw_contract: str | None = None,
):
    pa, sa_ = actor_for(keel, email_for(Persona.PA)), actor_for(keel, email_for(Persona.SA))
    de, io = actor_for(keel, email_for(Persona.DE, slug)), actor_for(keel, email_for(Persona.IO, slug))
    connector = deployment.deploy(keel, pa, tenant_id, template=template, name=name)
    cid = connector["connector_id"]
    deployment.configure(keel, de, tenant_id, cid, config, "demo sample source")
    deployment.validate_secrets(keel, sa_, tenant_id, cid)
    preflight.run(keel, pa, tenant_id, cid)
    streams = [s.name for s in deployment_streams(keel, tenant_id, cid)]
    source = sources.request(
        keel,
        de,
        tenant_id,
        name=name,
        streams=streams,
        connector_id=cid,
        justification="demo: the finance KPIs need it",
        expected_schemas=expected,
        raw_contract=raw_contract,
    )
    sid = source["source_id"]
    sources.register(keel, pa, tenant_id, sid)
    sources.validate(keel, sa_, tenant_id, sid)
    sources.run_preflight(keel, pa, tenant_id, sid)
    sources.handshake(keel, pa, tenant_id, sid)
    return ingest.start(keel, io, tenant_id, sid)


def deployment_streams(keel, tenant_id: str, connector_id: str):
    """The streams the connector's source offers (asked once, at onboarding)."""
    with keel.engine.connect() as conn:
        row = deployment.load(conn, tenant_id, connector_id)
        config = deployment.runtime_config(keel, conn, row)
    return deployment.instance(keel, row).discover(config).streams
