"""``keel platform``: story 00a, the platform deployment (request, approve, execute, validate)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from keel.cli import render
from keel.cli.client import CliError, state_of
from keel.cli.inputs import read_document

app = typer.Typer(help="Deploy and inspect the platform (story 00a).", no_args_is_help=True)

DEPLOYMENT = "/api/v1/platform/deployments"
DepId = Annotated[str, typer.Argument(help="Deployment id (DEP-...).")]


@app.command()
def deploy(
    ctx: typer.Context,
    template: Annotated[
        Path | None, typer.Option("--template", help="Deployment template (JSON or TOML); default if absent.")
    ] = None,
    execute: Annotated[
        str | None, typer.Option("--execute", metavar="DEP", help="Execute this approved deployment instead.")
    ] = None,
) -> None:
    """Request a deployment (Platform Admin); the Platform Owner approves it before it runs."""
    state = state_of(ctx)
    if execute:
        render.show(state, state.api().post(f"{DEPLOYMENT}/{execute}/execute"), title="Deployment")
        return
    body = {"template": read_document(template, "template")} if template else {}
    dep = state.api().post(DEPLOYMENT, json=body)
    render.show(state, dep, title="Deployment requested")
    render.message(state, f"next: the Platform Owner runs `keel platform approve {dep['deployment_id']}`")


@app.command()
def approve(ctx: typer.Context, dep_id: DepId) -> None:
    """Approve a requested deployment (Platform Owner)."""
    state = state_of(ctx)
    render.show(state, state.api().post(f"{DEPLOYMENT}/{dep_id}/approve"), title="Deployment")


@app.command("execute")
def execute_(ctx: typer.Context, dep_id: DepId) -> None:
    """Provision the control plane, data plane and shared services of an approved deployment."""
    state = state_of(ctx)
    render.show(state, state.api().post(f"{DEPLOYMENT}/{dep_id}/execute"), title="Deployment")


@app.command()
def validate(ctx: typer.Context, dep_id: DepId) -> None:
    """Validate IAM and network of an executed deployment (Security Admin); failure rolls back."""
    state = state_of(ctx)
    render.show(state, state.api().post(f"{DEPLOYMENT}/{dep_id}/validate"), title="Deployment")


@app.command()
def reject(
    ctx: typer.Context,
    dep_id: DepId,
    reason: Annotated[str, typer.Option("--reason", help="Why the deployment is rejected.")],
) -> None:
    """Reject a deployment; whatever it created is rolled back."""
    state = state_of(ctx)
    render.show(state, state.api().post(f"{DEPLOYMENT}/{dep_id}/reject", json={"reason": reason}))


@app.command()
def status(ctx: typer.Context) -> None:
    """Component health, and the deployments when signed in."""
    state = state_of(ctx)
    api = state.api()
    health = _health(api)
    deployments = api.get_all(DEPLOYMENT) if api.token else None
    if state.json:
        render.print_json({"health": health, "deployments": deployments})
        return
    components = [{"component": k, **v} for k, v in health.get("components", {}).items()]
    render.out().print(
        render.rows(
            components, ["component", "status"], title=f"Keel {health.get('version')}: {health['status']}"
        )
    )
    if deployments is None:
        render.message(state, "sign in (keel login) to list deployments")
        return
    columns = ["deployment_id", "status", "updated_at"]
    render.out().print(render.rows(deployments, columns, title="Deployments"))


def _health(api) -> dict:
    try:
        return api.get("/healthz", auth=False)
    except CliError as exc:  # 503 still carries the component report
        if isinstance(exc.problem, dict) and "components" in exc.problem:
            return exc.problem
        raise
