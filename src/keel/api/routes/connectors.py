"""Stories 00b, 02, 02b, 13: connector templates and deployments, sources, ingestion runs, recovery."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from keel.api.deps import Page, current_actor, get_keel
from keel.api.idempotency import idempotent
from keel.api.models import (
    ConnectorConfigure,
    ConnectorDeploy,
    ConnectorUpgrade,
    IngestionStart,
    SourceRawContract,
    SourceRegister,
    SourceRequest,
    SourceValidation,
    TemplatePublish,
)
from keel.onboarding import deployment, health, ingest, notify, preflight, recovery, sources, templates

router = APIRouter(tags=["connectors"])
T = "/tenants/{tenant_id}"


# -- template catalog ---------------------------------------------------------------------------
@router.get("/connector-templates")
def list_templates(page: Page = Depends(), actor=Depends(current_actor), keel=Depends(get_keel)):
    return page.render(
        templates.list_templates(keel, actor, after=page.after, limit=page.limit + 1), "template_id"
    )


@router.get("/connector-templates/{template_id}")
def get_template(template_id: str, actor=Depends(current_actor), keel=Depends(get_keel)):
    return templates.get_template(keel, actor, template_id)


@router.post("/connector-templates", status_code=201)
async def publish_template(
    body: TemplatePublish, request: Request, actor=Depends(current_actor), keel=Depends(get_keel)
):
    return await idempotent(
        request, actor, lambda: templates.publish_template(keel, actor, **body.model_dump())
    )


# -- deployed connectors ------------------------------------------------------------------------
@router.post(T + "/connectors", status_code=201)
async def deploy(
    tenant_id: str,
    body: ConnectorDeploy,
    request: Request,
    actor=Depends(current_actor),
    keel=Depends(get_keel),
):
    return await idempotent(
        request,
        actor,
        lambda: deployment.deploy(
            keel, actor, tenant_id, template=body.template, name=body.name, region=body.region
        ),
    )


@router.get(T + "/connectors")
def list_connectors(
    tenant_id: str, page: Page = Depends(), actor=Depends(current_actor), keel=Depends(get_keel)
):
    items = deployment.list_for_tenant(keel, actor, tenant_id, after=page.after, limit=page.limit + 1)
    return page.render(items, "connector_id")


@router.get(T + "/connectors/{connector_id}")
def get_connector(tenant_id: str, connector_id: str, actor=Depends(current_actor), keel=Depends(get_keel)):
    return deployment.get(keel, actor, tenant_id, connector_id)


@router.put(T + "/connectors/{connector_id}/configuration")
def configure(
    tenant_id: str,
    connector_id: str,
    body: ConnectorConfigure,
    actor=Depends(current_actor),
    keel=Depends(get_keel),
):
    return deployment.configure(keel, actor, tenant_id, connector_id, body.config, body.reason)


@router.get(T + "/connectors/{connector_id}/versions")
def versions(tenant_id: str, connector_id: str, actor=Depends(current_actor), keel=Depends(get_keel)):
    return {"items": deployment.versions(keel, actor, tenant_id, connector_id)}


@router.post(T + "/connectors/{connector_id}/upgrade")
def upgrade(
    tenant_id: str,
    connector_id: str,
    body: ConnectorUpgrade,
    actor=Depends(current_actor),
    keel=Depends(get_keel),
):
    return deployment.upgrade(keel, actor, tenant_id, connector_id, template=body.template)


@router.post(T + "/connectors/{connector_id}/secret-validation")
def validate_secrets(tenant_id: str, connector_id: str, actor=Depends(current_actor), keel=Depends(get_keel)):
    return deployment.validate_secrets(keel, actor, tenant_id, connector_id)


@router.post(T + "/connectors/{connector_id}/preflight")
def run_preflight(tenant_id: str, connector_id: str, actor=Depends(current_actor), keel=Depends(get_keel)):
    return preflight.run(keel, actor, tenant_id, connector_id)


@router.post(T + "/connectors/{connector_id}/health-checks")
def health_check(tenant_id: str, connector_id: str, actor=Depends(current_actor), keel=Depends(get_keel)):
    return health.check(keel, actor, tenant_id, connector_id)


@router.post(T + "/connectors/{connector_id}/recovery")
def recover(tenant_id: str, connector_id: str, actor=Depends(current_actor), keel=Depends(get_keel)):
    return recovery.recover(keel, actor, tenant_id, connector_id)


# -- sources ------------------------------------------------------------------------------------
@router.post(T + "/sources", status_code=201)
async def request_source(
    tenant_id: str,
    body: SourceRequest,
    request: Request,
    actor=Depends(current_actor),
    keel=Depends(get_keel),
):
    return await idempotent(
        request, actor, lambda: sources.request(keel, actor, tenant_id, **body.model_dump())
    )


@router.get(T + "/sources")
def list_sources(
    tenant_id: str, page: Page = Depends(), actor=Depends(current_actor), keel=Depends(get_keel)
):
    return page.render(
        sources.list_for_tenant(keel, actor, tenant_id, after=page.after, limit=page.limit + 1), "source_id"
    )


@router.get(T + "/sources/{source_id}")
def get_source(tenant_id: str, source_id: str, actor=Depends(current_actor), keel=Depends(get_keel)):
    return sources.get(keel, actor, tenant_id, source_id)


@router.put(T + "/sources/{source_id}/raw-contract")
def link_raw_contract(
    tenant_id: str,
    source_id: str,
    body: SourceRawContract,
    actor=Depends(current_actor),
    keel=Depends(get_keel),
):
    return sources.link_raw_contract(keel, actor, tenant_id, source_id, body.raw_contract)


@router.post(T + "/sources/{source_id}/registration")
def register_source(
    tenant_id: str, source_id: str, body: SourceRegister, actor=Depends(current_actor), keel=Depends(get_keel)
):
    return sources.register(keel, actor, tenant_id, source_id, connector_id=body.connector_id)


@router.post(T + "/sources/{source_id}/validation")
def validate_source(
    tenant_id: str,
    source_id: str,
    body: SourceValidation,
    actor=Depends(current_actor),
    keel=Depends(get_keel),
):
    return sources.validate(keel, actor, tenant_id, source_id, compliant=body.compliant, reason=body.reason)


@router.post(T + "/sources/{source_id}/preflight")
def source_preflight(tenant_id: str, source_id: str, actor=Depends(current_actor), keel=Depends(get_keel)):
    return sources.run_preflight(keel, actor, tenant_id, source_id)


@router.post(T + "/sources/{source_id}/handshake")
def source_handshake(tenant_id: str, source_id: str, actor=Depends(current_actor), keel=Depends(get_keel)):
    return sources.handshake(keel, actor, tenant_id, source_id)


# -- ingestion ----------------------------------------------------------------------------------
@router.post(T + "/sources/{source_id}/runs", status_code=201)
async def start_run(
    tenant_id: str,
    source_id: str,
    body: IngestionStart,
    request: Request,
    actor=Depends(current_actor),
    keel=Depends(get_keel),
):
    window = body.window.model_dump() if body.window else None

    def run() -> dict:
        runs = ingest.start(
            keel,
            actor,
            tenant_id,
            source_id,
            kind=body.kind,
            stream=body.stream,
            window=window,
            rerun_of=body.rerun_of,
        )
        return {"items": runs}

    return await idempotent(request, actor, run)


@router.get(T + "/sources/{source_id}/raw")
def raw_status(tenant_id: str, source_id: str, actor=Depends(current_actor), keel=Depends(get_keel)):
    return ingest.raw_status(keel, actor, tenant_id, source_id)


@router.get(T + "/ingestion-runs")
def list_runs(
    tenant_id: str,
    source_id: str | None = None,
    page: Page = Depends(),
    actor=Depends(current_actor),
    keel=Depends(get_keel),
):
    items = ingest.list_runs(
        keel, actor, tenant_id, source_id=source_id, after=page.after, limit=page.limit + 1
    )
    return page.render(items, "run_id")


@router.get(T + "/ingestion-runs/{run_id}")
def get_run(tenant_id: str, run_id: str, actor=Depends(current_actor), keel=Depends(get_keel)):
    return ingest.get_run(keel, actor, tenant_id, run_id)


@router.get(T + "/notifications")
def list_notifications(
    tenant_id: str, page: Page = Depends(), actor=Depends(current_actor), keel=Depends(get_keel)
):
    items = notify.list_for_user(keel, actor, tenant_id, after=page.after, limit=page.limit + 1)
    return page.render(items, "notification_id")
