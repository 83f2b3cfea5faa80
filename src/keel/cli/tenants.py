"""``keel tenant``: stories 01, 01b and 01c, provisioning, validation, offboarding, decommissioning."""

from __future__ import annotations

from typing import Annotated

import typer

from keel.cli import render
from keel.cli.client import state_of

app = typer.Typer(
    help="Provision, validate, offboard and decommission tenants (01, 01b, 01c).", no_args_is_help=True
)

TENANTS = "/api/v1/tenants"
TenantId = Annotated[str, typer.Argument(help="Tenant id (TEN-...).")]
COLUMNS = ["tenant_id", "slug", "name", "status", "region"]


@app.command()
def provision(
    ctx: typer.Context,
    slug: Annotated[str, typer.Option("--slug", help="Short unique name, e.g. acme.")],
    name: Annotated[str, typer.Option("--name", help="Display name.")],
    admin_email: Annotated[str, typer.Option("--admin-email", help="E-mail of the Tenant Admin to invite.")],
    admin_name: Annotated[str, typer.Option("--admin-name")] = "Tenant Admin",
    region: Annotated[str, typer.Option("--region", help="Data residency region.")] = "local",
    quota_mb: Annotated[int | None, typer.Option("--quota-mb", help="Storage quota in MiB.")] = None,
) -> None:
    """Provision a tenant (Platform Admin): identity, its own data plane and key, quotas."""
    state = state_of(ctx)
    body = {
        "slug": slug,
        "name": name,
        "admin_email": admin_email,
        "admin_name": admin_name,
        "region": region,
        "storage_quota_mb": quota_mb,
    }
    tenant = state.api().post(TENANTS, json=body)
    render.show(state, tenant, title="Tenant provisioned")
    render.message(state, f"next: the Security Admin runs `keel tenant validate {tenant['tenant_id']}`")


@app.command()
def validate(
    ctx: typer.Context,
    tenant_id: TenantId,
    show_invitation: Annotated[
        bool, typer.Option("--show-invitation", help="Print the one-time invitation token for the admin.")
    ] = False,
) -> None:
    """Validate a tenant's isolation (Security Admin); on success the Tenant Admin is invited."""
    state = state_of(ctx)
    tenant = state.api().post(f"{TENANTS}/{tenant_id}/validate")
    invitation = tenant.get("invitation")
    if invitation and not show_invitation:
        # The invitation sets the admin's password: print it only when asked to hand it over.
        tenant["invitation"] = {
            **invitation,
            "token": "(hidden: issued once, pass --show-invitation to print it)",
        }
    render.show(state, tenant, title="Tenant validated")


@app.command("list")
def list_(ctx: typer.Context) -> None:
    """Tenants the caller may see."""
    state = state_of(ctx)
    render.show(state, state.api().get_all(TENANTS), columns=COLUMNS, title="Tenants")


@app.command()
def show(ctx: typer.Context, tenant_id: TenantId) -> None:
    """One tenant, with its receipts."""
    state = state_of(ctx)
    render.show(state, state.api().get(f"{TENANTS}/{tenant_id}"), title="Tenant")


@app.command()
def offboard(
    ctx: typer.Context,
    tenant_id: TenantId,
    reason: Annotated[str, typer.Option("--reason", help="Why the tenant leaves.")],
) -> None:
    """Request offboarding (Platform Admin); the Platform Owner decides."""
    state = state_of(ctx)
    request = state.api().post(f"{TENANTS}/{tenant_id}/offboarding-requests", json={"reason": reason})
    render.show(state, request, title="Offboarding requested")


@app.command("approve-offboarding")
def approve_offboarding(
    ctx: typer.Context,
    request_id: Annotated[str, typer.Argument(help="Offboarding request id.")],
    reject: Annotated[bool, typer.Option("--reject", help="Reject instead of approving.")] = False,
    reason: Annotated[str, typer.Option("--reason")] = "",
) -> None:
    """Approve (or reject) an offboarding request (Platform Owner)."""
    state = state_of(ctx)
    body = {"approve": not reject, "reason": reason}
    render.show(state, state.api().post(f"{TENANTS}/offboarding-requests/{request_id}/decision", json=body))


@app.command("archive-evidence")
def archive_evidence(ctx: typer.Context, tenant_id: TenantId) -> None:
    """Archive the tenant's evidence with the archive's hash (Compliance Officer)."""
    state = state_of(ctx)
    render.show(
        state, state.api().post(f"{TENANTS}/{tenant_id}/evidence-archives"), title="Evidence archived"
    )


@app.command()
def decommission(
    ctx: typer.Context,
    tenant_id: TenantId,
    request: Annotated[str, typer.Option("--request", help="The approved offboarding request id.")],
) -> None:
    """Decommission a tenant (Platform Admin): revoke access, delete its data plane, shred its key."""
    state = state_of(ctx)
    body = {"request_id": request}
    render.show(state, state.api().post(f"{TENANTS}/{tenant_id}/decommission", json=body), title="Tenant")


@app.command("confirm-wipe")
def confirm_wipe(ctx: typer.Context, tenant_id: TenantId) -> None:
    """Confirm that the tenant's storage and key are gone (Security Admin)."""
    state = state_of(ctx)
    render.show(state, state.api().post(f"{TENANTS}/{tenant_id}/wipe-validation"), title="Wipe confirmed")


@app.command("review-compliance")
def review_compliance(
    ctx: typer.Context,
    tenant_id: TenantId,
    reject: Annotated[bool, typer.Option("--reject", help="Fail the review: the tenant is blocked.")] = False,
    finding: Annotated[list[str] | None, typer.Option("--finding", help="A finding; repeatable.")] = None,
) -> None:
    """Review the tenant's provisioning receipts (Compliance Officer); a failed review blocks the tenant."""
    state = state_of(ctx)
    body = {"approve": not reject, "findings": finding or []}
    render.show(state, state.api().post(f"{TENANTS}/{tenant_id}/compliance-review", json=body))


@app.command("audit-decommission")
def audit_decommission(ctx: typer.Context, tenant_id: TenantId) -> None:
    """Check a decommissioning's policy adherence (Auditor); a retention breach opens an incident."""
    state = state_of(ctx)
    render.show(
        state, state.api().post(f"{TENANTS}/{tenant_id}/decommission-audit"), title="Decommissioning audit"
    )
