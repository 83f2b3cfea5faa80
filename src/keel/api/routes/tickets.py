"""Review tickets (03a drift, 03g impact): list, read, resolve."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query

from keel.api.deps import Page, current_actor, get_keel
from keel.api.models import TicketResolution
from keel.contracts import tickets

router = APIRouter(tags=["contracts"])
TICKET = "/review-tickets/{review_ticket_id}"


@router.get("/review-tickets")
def list_tickets(
    page: Page = Depends(),
    kind: str | None = Query(
        None,
        max_length=30,
        description="drift, impact_graph, post_change_incident, dq_over_blocking or dq_coverage_gap.",
    ),
    status: str | None = Query(None, max_length=20, description="OPEN or RESOLVED."),
    tenant_id: str | None = Query(None, max_length=40, description="One tenant's (providers)."),
    actor=Depends(current_actor),
    keel=Depends(get_keel),
):
    """A tenant user sees its tenant's tickets; a provider all of them."""
    items = tickets.list_tickets(
        keel, actor, kind=kind, status=status, tenant_id=tenant_id, after=page.after, limit=page.limit + 1
    )
    return page.render(items, "ticket_id")


@router.get(TICKET)
def get_ticket(review_ticket_id: str, actor=Depends(current_actor), keel=Depends(get_keel)):
    return tickets.get_ticket(keel, actor, review_ticket_id)


@router.post(TICKET + "/resolution")
def resolve(
    review_ticket_id: str, body: TicketResolution, actor=Depends(current_actor), keel=Depends(get_keel)
):
    """Resolve an OPEN ticket (Schema Steward, Observability Engineer); once only."""
    return tickets.resolve(keel, actor, review_ticket_id, body.note)
