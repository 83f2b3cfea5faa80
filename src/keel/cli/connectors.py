"""``keel connector`` and ``keel source``: stories 00b, 02, 02b and 13.

Connectors: the template catalog, deployment (PA), configuration with credentials
(DE; secret values come from environment variables, never from the command line),
secret validation (SA), preflight, health checks and recovery (PA). Sources: the
onboarding request (DE), registration (PA), validation (SA), preflight, handshake,
and ingestion runs (sync, replay, backfill, rerun).

``--tenant`` defaults to the caller's own tenant; provider personas name it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from keel.cli import render
from keel.cli.client import EXIT_INPUT, CliError, state_of
from keel.cli.inputs import read_document

connector_app = typer.Typer(
    help="Deploy, configure, check and recover connectors (00b, 02b, 13).", no_args_is_help=True
)
source_app = typer.Typer(help="Onboard sources and ingest them into Raw (02, 02b).", no_args_is_help=True)

TEMPLATES = "/api/v1/connector-templates"
CONNECTOR_COLUMNS = ["connector_id", "name", "connector", "status", "config_version", "validated_by"]
SOURCE_COLUMNS = ["source_id", "name", "status", "connector_id", "streams"]
RUN_COLUMNS = ["run_id", "stream", "kind", "status", "rows", "batches", "skipped_duplicates", "attempts"]
Tenant = Annotated[
    str | None, typer.Option("--tenant", help="Tenant id (TEN-...); default: your own tenant.")
]
ConnectorId = Annotated[str, typer.Argument(help="Connector id (CON-...).")]
SourceId = Annotated[str, typer.Argument(help="Source id (SRC-...).")]


def tenant_path(state, tenant: str | None) -> str:
    if tenant is None:
        tenant = state.api().get("/api/v1/me").get("tenant_id")
        if not tenant:
            raise CliError(
                "--tenant: required for provider accounts (they belong to no tenant)",
                EXIT_INPUT,
                field="tenant",
            )
    return f"/api/v1/tenants/{tenant}"


# -- templates ---------------------------------------------------------------------------------
@connector_app.command("templates")
def templates(ctx: typer.Context) -> None:
    """The connector template catalog."""
    state = state_of(ctx)
    render.show(
        state,
        state.api().get_all(TEMPLATES),
        title="Connector templates",
        columns=["template_id", "name", "version", "connector", "description"],
    )


@connector_app.command("template")
def template(ctx: typer.Context, template_id: Annotated[str, typer.Argument(help="Template id (CTP-...).")]):
    """One template with the JSON Schema of its configuration."""
    state = state_of(ctx)
    render.show(state, state.api().get(f"{TEMPLATES}/{template_id}"), title="Connector template")


@connector_app.command("publish-template")
def publish_template(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="JSON/TOML: name, version, connector, description, defaults.")],
) -> None:
    """Publish a new template version (Platform Admin)."""
    state = state_of(ctx)
    render.show(state, state.api().post(TEMPLATES, json=read_document(file, "template")), title="Template")


# -- deployed connectors -----------------------------------------------------------------------
@connector_app.command("deploy")
def deploy(
    ctx: typer.Context,
    template: Annotated[str, typer.Option("--template", help="Template: id, name@version or name.")],
    name: Annotated[str, typer.Option("--name", help="Connector name within the tenant, e.g. ERP.")],
    region: Annotated[
        str | None, typer.Option("--region", help="Region it runs in (default: the tenant's).")
    ] = None,
    tenant: Tenant = None,
) -> None:
    """Deploy a connector from a template for a tenant (Platform Admin)."""
    state = state_of(ctx)
    base = tenant_path(state, tenant)
    body = {"template": template, "name": name} | ({"region": region} if region else {})
    connector = state.api().post(f"{base}/connectors", json=body)
    render.show(state, connector, title="Connector deployed")
    render.message(
        state, f"next: the tenant's Data Engineer runs `keel connector configure {connector['connector_id']}`"
    )


@connector_app.command("list")
def list_connectors(ctx: typer.Context, tenant: Tenant = None) -> None:
    """The tenant's connectors."""
    state = state_of(ctx)
    render.show(
        state,
        state.api().get_all(f"{tenant_path(state, tenant)}/connectors"),
        title="Connectors",
        columns=CONNECTOR_COLUMNS,
    )


@connector_app.command("show")
def show(ctx: typer.Context, connector_id: ConnectorId, tenant: Tenant = None) -> None:
    """One connector: status, configuration (credentials as ***), checks, breaker."""
    state = state_of(ctx)
    render.show(
        state, state.api().get(f"{tenant_path(state, tenant)}/connectors/{connector_id}"), title="Connector"
    )


@connector_app.command("configure")
def configure(
    ctx: typer.Context,
    connector_id: ConnectorId,
    config: Annotated[
        Path, typer.Option("--config", help="JSON/TOML configuration without its credentials.")
    ],
    secret: Annotated[
        list[str] | None,
        typer.Option(
            "--secret", metavar="PATH=ENV", help="Credential at PATH (e.g. auth.token) from env var ENV."
        ),
    ] = None,
    reason: Annotated[str, typer.Option("--reason", help="Why the configuration changes.")] = "",
    tenant: Tenant = None,
) -> None:
    """Supply endpoint configuration and credentials (Data Engineer); checks are needed again."""
    state = state_of(ctx)
    document = read_document(config, "config")
    for item in secret or []:
        path, sep, env = item.partition("=")
        if not sep or not path or not env:
            raise CliError(f"--secret: '{item}' is not PATH=ENV", EXIT_INPUT, field="secret")
        if env not in os.environ:
            raise CliError(f"--secret: environment variable {env} is not set", EXIT_INPUT, field="secret")
        _set(document, path, os.environ[env])
    body = {"config": document, "reason": reason}
    render.show(
        state,
        state.api().put(f"{tenant_path(state, tenant)}/connectors/{connector_id}/configuration", json=body),
        title="Connector configured",
    )


def _set(document: dict, path: str, value: str) -> None:
    *head, last = path.split(".")
    node = document
    for part in head:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise CliError(f"--secret: '{path}' does not name an object field", EXIT_INPUT, field="secret")
    node[last] = value


def _post(ctx: typer.Context, tenant: str | None, path: str, title: str, json: dict | None = None) -> dict:
    state = state_of(ctx)
    result = state.api().post(f"{tenant_path(state, tenant)}{path}", json=json)
    render.show(state, result, title=title)
    return result


@connector_app.command("versions")
def versions(ctx: typer.Context, connector_id: ConnectorId, tenant: Tenant = None) -> None:
    """Every configuration version of a connector, with who changed it and why."""
    state = state_of(ctx)
    items = state.api().get(f"{tenant_path(state, tenant)}/connectors/{connector_id}/versions")["items"]
    render.show(state, items, title="Configuration versions")


@connector_app.command("upgrade")
def upgrade(
    ctx: typer.Context,
    connector_id: ConnectorId,
    template: Annotated[str, typer.Option("--template", help="The new template version, name@version.")],
    tenant: Tenant = None,
) -> None:
    """Move a connector to another version of its template (Platform Admin)."""
    _post(ctx, tenant, f"/connectors/{connector_id}/upgrade", "Connector", {"template": template})


@connector_app.command("validate-secrets")
def validate_secrets(ctx: typer.Context, connector_id: ConnectorId, tenant: Tenant = None) -> None:
    """Check the connector's credentials are stored encrypted and in its scope (Security Admin)."""
    _post(ctx, tenant, f"/connectors/{connector_id}/secret-validation", "Secret validation")


@connector_app.command("preflight")
def preflight(ctx: typer.Context, connector_id: ConnectorId, tenant: Tenant = None) -> None:
    """Connectivity, credentials and discovery (Platform Admin); ACTIVE once validated too."""
    _post(ctx, tenant, f"/connectors/{connector_id}/preflight", "Preflight")


@connector_app.command("health")
def health(ctx: typer.Context, connector_id: ConnectorId, tenant: Tenant = None) -> None:
    """Run a health check now (SRE, Platform Admin)."""
    _post(ctx, tenant, f"/connectors/{connector_id}/health-checks", "Health check")


@connector_app.command("recover")
def recover(ctx: typer.Context, connector_id: ConnectorId, tenant: Tenant = None) -> None:
    """Recover a FAILED connector and resume its sources from their checkpoints (Platform Admin)."""
    _post(ctx, tenant, f"/connectors/{connector_id}/recovery", "Recovery")


@connector_app.command("notifications")
def notifications(ctx: typer.Context, tenant: Tenant = None) -> None:
    """Your notifications in the tenant (connector failures, recoveries)."""
    state = state_of(ctx)
    render.show(
        state,
        state.api().get_all(f"{tenant_path(state, tenant)}/notifications"),
        title="Notifications",
        columns=["notification_id", "subject", "created_at"],
    )


# -- sources -----------------------------------------------------------------------------------
@source_app.command("request")
def request(
    ctx: typer.Context,
    name: Annotated[str, typer.Option("--name", help="Source name, e.g. ERP.")],
    stream: Annotated[list[str], typer.Option("--stream", help="A stream to ingest (repeat).")],
    justification: Annotated[str, typer.Option("--justification", help="Why the tenant needs the source.")],
    connector: Annotated[
        str | None, typer.Option("--connector", help="Connector id to read it with.")
    ] = None,
    expect: Annotated[
        Path | None,
        typer.Option("--expect", help="JSON/TOML: stream → {column: type}, for streams no contract covers."),
    ] = None,
    raw_contract: Annotated[
        str | None, typer.Option("--raw-contract", help="Raw contract id to check its streams against.")
    ] = None,
    tenant: Tenant = None,
) -> None:
    """Ask for a source to be onboarded (Data Engineer)."""
    body = {"name": name, "streams": stream, "justification": justification, "connector_id": connector}
    if expect is not None:
        body["expected_schemas"] = read_document(expect, "expect")
    if raw_contract is not None:
        body["raw_contract"] = raw_contract
    _post(ctx, tenant, "/sources", "Source requested", body)


@source_app.command("raw-contract")
def link_raw_contract(
    ctx: typer.Context,
    source_id: SourceId,
    contract: Annotated[str, typer.Argument(help="Raw contract id, e.g. RAW-ERP.")],
    tenant: Tenant = None,
) -> None:
    """Check the source's streams against a Raw contract from now on (Data Engineer, Tenant Admin)."""
    state = state_of(ctx)
    result = state.api().put(
        f"{tenant_path(state, tenant)}/sources/{source_id}/raw-contract", json={"raw_contract": contract}
    )
    render.show(state, result, title="Source")


@source_app.command("list")
def list_sources(ctx: typer.Context, tenant: Tenant = None) -> None:
    """The tenant's sources."""
    state = state_of(ctx)
    render.show(
        state,
        state.api().get_all(f"{tenant_path(state, tenant)}/sources"),
        title="Sources",
        columns=SOURCE_COLUMNS,
    )


@source_app.command("show")
def show_source(ctx: typer.Context, source_id: SourceId, tenant: Tenant = None) -> None:
    """One source with its last preflight or handshake report."""
    state = state_of(ctx)
    render.show(state, state.api().get(f"{tenant_path(state, tenant)}/sources/{source_id}"), title="Source")


@source_app.command("register")
def register(
    ctx: typer.Context,
    source_id: SourceId,
    connector: Annotated[
        str | None, typer.Option("--connector", help="Connector id, if the request names none.")
    ] = None,
    tenant: Tenant = None,
) -> None:
    """Register a requested source on a connector (Platform Admin)."""
    _post(ctx, tenant, f"/sources/{source_id}/registration", "Source", {"connector_id": connector})


@source_app.command("validate")
def validate(
    ctx: typer.Context,
    source_id: SourceId,
    block: Annotated[bool, typer.Option("--block", help="Refuse the source for compliance.")] = False,
    reason: Annotated[str, typer.Option("--reason", help="Why it is blocked.")] = "",
    tenant: Tenant = None,
) -> None:
    """Check the source's credentials and scope, or block it (Security Admin)."""
    _post(
        ctx, tenant, f"/sources/{source_id}/validation", "Source", {"compliant": not block, "reason": reason}
    )


@source_app.command("preflight")
def source_preflight(ctx: typer.Context, source_id: SourceId, tenant: Tenant = None) -> None:
    """Preflight with test records (Platform Admin): ACTIVE when it passes."""
    _post(ctx, tenant, f"/sources/{source_id}/preflight", "Source")


@source_app.command("handshake")
def handshake(ctx: typer.Context, source_id: SourceId, tenant: Tenant = None) -> None:
    """Connection, credential use and schema against the Raw contract (Platform Admin): READY."""
    _post(ctx, tenant, f"/sources/{source_id}/handshake", "Source")


@source_app.command("ingest")
def ingest(
    ctx: typer.Context,
    source_id: SourceId,
    stream: Annotated[str | None, typer.Option("--stream", help="Only this stream.")] = None,
    kind: Annotated[str, typer.Option("--kind", help="sync, replay or backfill.")] = "sync",
    cursor_field: Annotated[
        str | None, typer.Option("--cursor-field", help="Window column (replay/backfill).")
    ] = None,
    start: Annotated[str | None, typer.Option("--start", help="Window start, ISO 8601, inclusive.")] = None,
    end: Annotated[str | None, typer.Option("--end", help="Window end, ISO 8601, exclusive.")] = None,
    rerun: Annotated[
        str | None, typer.Option("--rerun", metavar="RUN", help="Run a failed run again.")
    ] = None,
    tenant: Tenant = None,
) -> None:
    """Ingest a READY source into Raw (DE, Integration Operator); replay/backfill a window."""
    body: dict = {"kind": "rerun" if rerun else kind, "stream": stream, "rerun_of": rerun}
    if any(v is not None for v in (cursor_field, start, end)):
        body["window"] = {"cursor_field": cursor_field, "start": start, "end": end}
    state = state_of(ctx)
    runs = state.api().post(f"{tenant_path(state, tenant)}/sources/{source_id}/runs", json=body)["items"]
    render.show(state, runs, title="Ingestion runs", columns=RUN_COLUMNS)


@source_app.command("raw")
def raw(ctx: typer.Context, source_id: SourceId, tenant: Tenant = None) -> None:
    """The source in Raw: tables and row counts, checkpoints, recent batches."""
    state = state_of(ctx)
    render.show(state, state.api().get(f"{tenant_path(state, tenant)}/sources/{source_id}/raw"), title="Raw")


@source_app.command("runs")
def runs(
    ctx: typer.Context,
    source: Annotated[str | None, typer.Option("--source", help="Only this source's runs.")] = None,
    tenant: Tenant = None,
) -> None:
    """Ingestion runs of the tenant."""
    state = state_of(ctx)
    items = state.api().get_all(f"{tenant_path(state, tenant)}/ingestion-runs", params={"source_id": source})
    render.show(state, items, title="Ingestion runs", columns=RUN_COLUMNS)
