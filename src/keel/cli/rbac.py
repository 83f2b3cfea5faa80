"""``keel rbac`` and ``keel breakglass``: story 00d bundles, and time-boxed elevation."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from keel.cli import render
from keel.cli.client import state_of
from keel.cli.inputs import read_document

app = typer.Typer(help="Define, apply and review RBAC bundles (story 00d).", no_args_is_help=True)
breakglass_app = typer.Typer(help="Break-glass elevation: request, approve.", no_args_is_help=True)

BUNDLES = "/api/v1/rbac/bundles"
BundleId = Annotated[str, typer.Argument(help="Bundle id (RBAC-...).")]
COLUMNS = ["bundle_id", "name", "status", "created_at"]


@app.command()
def define(
    ctx: typer.Context,
    bundle: Annotated[
        Path | None,
        typer.Option("--bundle", help="Bundle document (JSON or TOML); the matrix baseline if absent."),
    ] = None,
) -> None:
    """Define a bundle of roles and permissions (Security Admin)."""
    state = state_of(ctx)
    body = {"bundle": read_document(bundle, "bundle")} if bundle else {}
    render.show(state, state.api().post(BUNDLES, json=body), title="Bundle defined")


@app.command()
def apply(ctx: typer.Context, bundle_id: BundleId) -> None:
    """Apply a defined bundle (Platform Admin); the Compliance Officer reviews it next."""
    state = state_of(ctx)
    render.show(state, state.api().post(f"{BUNDLES}/{bundle_id}/apply"), title="Bundle applied")


@app.command()
def review(
    ctx: typer.Context,
    bundle_id: BundleId,
    approve: Annotated[bool, typer.Option("--approve/--reject", help="The review's verdict.")],
    finding: Annotated[
        list[str] | None, typer.Option("--finding", help="A finding (excess permission, ...); repeatable.")
    ] = None,
) -> None:
    """Review an applied bundle (Compliance Officer); rejecting restores the previous policies."""
    state = state_of(ctx)
    body = {"approve": approve, "findings": [{"detail": text} for text in finding or []]}
    render.show(state, state.api().post(f"{BUNDLES}/{bundle_id}/review", json=body), title="Bundle reviewed")


@app.command("list")
def list_(ctx: typer.Context) -> None:
    """Every bundle and its status."""
    state = state_of(ctx)
    render.show(state, state.api().get_all(BUNDLES), columns=COLUMNS, title="RBAC bundles")


@app.command()
def policy(ctx: typer.Context) -> None:
    """The Cedar policies in force."""
    state = state_of(ctx)
    active = state.api().get("/api/v1/rbac/policy")
    if state.json:
        render.print_json(active)
        return
    render.message(state, f"# active bundle: {active.get('bundle_id') or '(built-in baseline)'}")
    typer.echo(active.get("policies", ""))


@breakglass_app.command("request")
def request(
    ctx: typer.Context,
    tenant: Annotated[str, typer.Option("--tenant", help="Tenant id the elevation is for.")],
    action: Annotated[list[str], typer.Option("--action", help="Action to elevate, e.g. workflow:Execute.")],
    minutes: Annotated[int, typer.Option("--minutes", help="How long, at most 120.")],
    justification: Annotated[str, typer.Option("--justification", help="The incident it is for.")],
) -> None:
    """Request a time-boxed elevation; it opens only once approved."""
    state = state_of(ctx)
    body = {"tenant_id": tenant, "actions": action, "minutes": minutes, "justification": justification}
    render.show(state, state.api().post("/api/v1/rbac/break-glass", json=body), title="Break-glass requested")


@breakglass_app.command("approve")
def approve_ticket(ctx: typer.Context, ticket_id: Annotated[str, typer.Argument(help="Ticket id.")]) -> None:
    """Approve a break-glass ticket (Platform Owner); the window closes by itself."""
    state = state_of(ctx)
    render.show(state, state.api().post(f"/api/v1/rbac/break-glass/{ticket_id}/approve"), title="Break-glass")
