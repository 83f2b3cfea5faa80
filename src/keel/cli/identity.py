"""Signing in (``keel login``/``logout``/``whoami``), users and API tokens."""

from __future__ import annotations

import socket
from typing import Annotated

import typer

from keel.cli import credentials, render
from keel.cli.client import CliError, connect, state_of
from keel.cli.inputs import read_password

users_app = typer.Typer(help="Provider and tenant users.", no_args_is_help=True)
tokens_app = typer.Typer(help="Your API tokens.", no_args_is_help=True)

USER_COLUMNS = ["id", "email", "display_name", "roles", "status"]
TOKEN_COLUMNS = ["id", "name", "roles", "expires_at", "revoked"]


def login(
    ctx: typer.Context,
    email: Annotated[str, typer.Option("--email", help="Your e-mail.")],
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from stdin instead of a prompt.")
    ] = False,
) -> None:
    """Sign in and save an API token for this Keel in $KEEL_HOME/credentials.json (mode 0600)."""
    state = state_of(ctx)
    password = read_password(password_stdin)
    settings = state.settings()
    api = connect(settings, token=None)
    try:
        token = api.sign_in_for_token(email, password, f"keel-cli@{socket.gethostname()}")
    finally:
        api.close()
    path = credentials.save(
        settings,
        {
            "token": token["token"],
            "token_id": token["id"],
            "email": email,
            "roles": token["roles"],
            "tenant_id": token["tenant_id"],
            "expires_at": token["expires_at"],
        },
    )
    summary = {k: token[k] for k in ("id", "roles", "tenant_id", "expires_at")}
    if state.json:
        render.print_json({"email": email, "token": summary, "credentials_file": str(path)})
        return
    render.message(
        state,
        f"signed in as {email} ({', '.join(token['roles'])}); token {token['id']} "
        f"saved to {path}, expires {token['expires_at']}",
    )


def logout(ctx: typer.Context) -> None:
    """Revoke the saved token and forget it."""
    state = state_of(ctx)
    settings = state.settings()
    saved = credentials.load(settings)
    if saved is None:
        render.message(state, "not signed in: no saved token for this Keel")
        return
    api = connect(settings, saved["token"])
    try:
        api.delete(f"/api/v1/tokens/{saved['token_id']}")
    except CliError as exc:
        if exc.exit_code != 3:  # an expired or revoked token is as good as gone
            raise
    finally:
        api.close()
    credentials.forget(settings)
    render.message(
        state, f"signed out: token {saved['token_id']} revoked and removed from {credentials.path(settings)}"
    )


def whoami(ctx: typer.Context) -> None:
    """Who the CLI acts as."""
    state = state_of(ctx)
    render.show(state, state.api().get("/api/v1/me"), title="Signed in as")


@users_app.command("create")
def create_user(
    ctx: typer.Context,
    email: Annotated[str, typer.Option("--email")],
    name: Annotated[str, typer.Option("--name", help="Display name.")],
    role: Annotated[list[str], typer.Option("--role", help="Persona code (PA, SA, TA, ...); repeatable.")],
    tenant: Annotated[str | None, typer.Option("--tenant", help="Tenant id for a tenant user.")] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Set the user's password from stdin.")
    ] = False,
) -> None:
    """Create a provider user (Security Admin) or a tenant member (Tenant Admin)."""
    state = state_of(ctx)
    body = {"email": email, "display_name": name, "roles": role}
    if password_stdin:
        body["password"] = read_password(True)
    path = f"/api/v1/tenants/{tenant}/users" if tenant else "/api/v1/users"
    render.show(state, state.api().post(path, json=body), title="User created")


@users_app.command("list")
def list_users(
    ctx: typer.Context,
    tenant: Annotated[str | None, typer.Option("--tenant", help="List this tenant's members.")] = None,
) -> None:
    """Provider users, or a tenant's members."""
    state = state_of(ctx)
    path = f"/api/v1/tenants/{tenant}/users" if tenant else "/api/v1/users"
    render.show(state, state.api().get_all(path), columns=USER_COLUMNS, title="Users")


@users_app.command("reinvite")
def reinvite(
    ctx: typer.Context, user_id: Annotated[str, typer.Argument(help="The invited user's id.")]
) -> None:
    """Issue a new one-time invitation for a user who never accepted one (the old one stops working)."""
    state = state_of(ctx)
    render.show(
        state, state.api().post(f"/api/v1/users/{user_id}/invitation"), title="Invitation (shown once)"
    )


@users_app.command("accept-invitation")
def accept_invitation(
    ctx: typer.Context,
    invitation: Annotated[str, typer.Option("--invitation", help="The one-time invitation token.")],
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the new password from stdin instead of a prompt.")
    ] = False,
) -> None:
    """Accept an invitation by choosing a password; then `keel login`."""
    state = state_of(ctx)
    password = read_password(password_stdin)
    api = connect(state.settings(), token=None)
    try:
        user = api.post("/api/v1/auth/invitations/accept", json={"token": invitation, "password": password})
    finally:
        api.close()
    render.show(state, user, title="Invitation accepted")


@tokens_app.command("create")
def create_token(
    ctx: typer.Context,
    name: Annotated[str, typer.Option("--name", help="What the token is for.")],
    role: Annotated[
        list[str] | None, typer.Option("--role", help="Narrow to these roles; repeatable.")
    ] = None,
    ttl_days: Annotated[int | None, typer.Option("--ttl-days", help="Lifetime in days.")] = None,
) -> None:
    """Create an API token. Its secret is shown this once and never again."""
    state = state_of(ctx)
    body = {"name": name, "roles": role or None, "ttl_days": ttl_days}
    token = state.api().post("/api/v1/me/tokens", json=body)
    if state.json:
        render.print_json(token)
        return
    render.out().print(render.record({k: v for k, v in token.items() if k != "token"}, title="Token created"))
    typer.echo(f"token (shown once, store it now): {token['token']}")


@tokens_app.command("list")
def list_tokens(ctx: typer.Context) -> None:
    """Your API tokens (never their secrets)."""
    state = state_of(ctx)
    render.show(state, state.api().get_all("/api/v1/me/tokens"), columns=TOKEN_COLUMNS, title="Tokens")


@tokens_app.command("revoke")
def revoke_token(
    ctx: typer.Context, token_id: Annotated[str, typer.Argument(help="Token id (TOK-...).")]
) -> None:
    """Revoke a token at once."""
    state = state_of(ctx)
    render.show(state, state.api().delete(f"/api/v1/tokens/{token_id}"), title="Token revoked")
