"""``keel extension``: story 03e — a tenant's namespaced fields on a published contract.

``propose`` (Tenant Admin) reads a JSON or TOML file with ``schema_id``, ``version``,
``namespace``, ``fields`` (``name``, ``type``, ``expression``, ``classification``,
``pii``, ``description``), ``business_case`` and optionally ``dataset``; ``check``
(Schema Steward) exits 1 when the extension is rejected or blocked; ``deploy``
(Platform Admin) builds it for the tenant only. ``effective`` shows a contract as the
tenant sees it.

``--tenant`` defaults to the caller's own tenant; provider personas name it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from keel.cli import render
from keel.cli.client import EXIT_FAILURE, state_of
from keel.cli.connectors import Tenant, tenant_path
from keel.cli.inputs import read_document

app = typer.Typer(
    help="Tenant extensions of published contracts: propose, check, deploy (03e).", no_args_is_help=True
)

COLUMNS = ["extension_id", "base_schema", "base_version", "namespace", "extension", "status"]
ExtensionId = Annotated[str, typer.Argument(help="Extension id (EXT-...).")]


@app.command("propose")
def propose(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="JSON/TOML: schema_id, version, namespace, fields, ...")],
    tenant: Tenant = None,
) -> None:
    """Propose namespaced fields for a published contract, with a business case (Tenant Admin)."""
    state = state_of(ctx)
    row = state.api().post(f"{tenant_path(state, tenant)}/extensions", json=read_document(file, "file"))
    render.show(state, row, title="Extension proposed")
    render.message(state, f"next: a Schema Steward runs `keel extension check {row['extension_id']}`")


@app.command("list")
def list_extensions(
    ctx: typer.Context,
    tenant: Tenant = None,
    schema_id: Annotated[str | None, typer.Option("--schema", help="Only this contract's.")] = None,
    status: Annotated[str | None, typer.Option("--status", help="e.g. deployed.")] = None,
) -> None:
    """The tenant's extensions."""
    state = state_of(ctx)
    params = {k: v for k, v in {"schema_id": schema_id, "status": status}.items() if v}
    items = state.api().get(f"{tenant_path(state, tenant)}/extensions", params=params)["items"]
    render.show(state, items, title="Extensions", columns=COLUMNS)


@app.command("show")
def show(ctx: typer.Context, extension_id: ExtensionId, tenant: Tenant = None) -> None:
    """One extension with its fields and the problems its check found."""
    state = state_of(ctx)
    render.show(
        state, state.api().get(f"{tenant_path(state, tenant)}/extensions/{extension_id}"), title="Extension"
    )


@app.command("check")
def check(ctx: typer.Context, extension_id: ExtensionId, tenant: Tenant = None) -> None:
    """Check fields, namespace and constraints (Schema Steward); exit 1 if rejected or blocked."""
    state = state_of(ctx)
    row = state.api().post(f"{tenant_path(state, tenant)}/extensions/{extension_id}/check")
    render.show(state, row, title=f"Extension {extension_id}")
    if row["status"] != "approved":
        if not state.json:
            render.show(state, row["problems"], title="Problems", columns=["rule", "where", "detail"])
        raise typer.Exit(EXIT_FAILURE)


@app.command("deploy")
def deploy(ctx: typer.Context, extension_id: ExtensionId, tenant: Tenant = None) -> None:
    """Deploy an approved extension to its tenant only (Platform Admin); a failed build rolls back."""
    state = state_of(ctx)
    row = state.api().post(f"{tenant_path(state, tenant)}/extensions/{extension_id}/deploy")
    render.show(state, row, title=f"Extension {extension_id}")


@app.command("effective")
def effective(
    ctx: typer.Context,
    schema_id: Annotated[str, typer.Argument(help="Contract id, e.g. GDP-INVOICE.")],
    tenant: Tenant = None,
    version: Annotated[
        str | None, typer.Option("--version", help="Default: the one the tenant runs.")
    ] = None,
) -> None:
    """A contract as the tenant sees it: base fields plus its deployed extensions."""
    state = state_of(ctx)
    params = {"version": version} if version else {}
    row = state.api().get(f"{tenant_path(state, tenant)}/contracts/{schema_id}/effective", params=params)
    if state.json:
        render.print_json(row)
        return
    for dataset in row["datasets"]:
        title = f"{row['schema_id']}@{row['version']} {dataset['name']} ({dataset['table']}, {row['scope']})"
        render.show(
            state,
            dataset["fields"],
            title=title,
            columns=["name", "type", "classification", "pii", "extension"],
        )
