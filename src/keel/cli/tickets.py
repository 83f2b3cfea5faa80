"""``keel ticket``: the review tickets drift detection (03a) and impact analysis (03g) open."""

from __future__ import annotations

from typing import Annotated

import typer

from keel.cli import render
from keel.cli.client import state_of

app = typer.Typer(
    help="Review tickets from drift detection and impact analysis (03a, 03g).", no_args_is_help=True
)

TICKETS = "/api/v1/review-tickets"
COLUMNS = ["ticket_id", "kind", "status", "tenant_id", "subject", "opened_at"]
TicketId = Annotated[str, typer.Argument(help="Review ticket id (RVT-...).")]


@app.command("list")
def list_tickets(
    ctx: typer.Context,
    kind: Annotated[
        str | None,
        typer.Option(
            "--kind", help="drift, impact_graph, post_change_incident, dq_over_blocking or dq_coverage_gap."
        ),
    ] = None,
    status: Annotated[str | None, typer.Option("--status", help="OPEN or RESOLVED.")] = None,
    tenant: Annotated[str | None, typer.Option("--tenant", help="One tenant's tickets (providers).")] = None,
) -> None:
    """Review tickets: your tenant's, or every tenant's for providers."""
    state = state_of(ctx)
    items = state.api().get_all(TICKETS, {"kind": kind, "status": status, "tenant_id": tenant})
    render.show(state, items, title="Review tickets", columns=COLUMNS)


@app.command("show")
def show(ctx: typer.Context, ticket_id: TicketId) -> None:
    """One ticket with what was found and, once resolved, how."""
    state = state_of(ctx)
    render.show(state, state.api().get(f"{TICKETS}/{ticket_id}"), title="Review ticket")


@app.command("resolve")
def resolve(
    ctx: typer.Context,
    ticket_id: TicketId,
    note: Annotated[str, typer.Option("--note", help="How it was resolved (kept in the ticket).")],
) -> None:
    """Resolve an open ticket (Schema Steward, Observability Engineer)."""
    state = state_of(ctx)
    result = state.api().post(f"{TICKETS}/{ticket_id}/resolution", json={"note": note})
    render.show(state, result, title="Review ticket")
