"""The ``keel`` command: global options, command groups, and the one place errors become exit codes."""

from __future__ import annotations

from typing import Annotated

import typer
from typer.core import TyperGroup

from keel import __version__
from keel.cli import (
    changes,
    connectors,
    contracts,
    demo,
    evidence,
    extensions,
    guardrails,
    housekeeping,
    identity,
    impact,
    kpis,
    lineage,
    pipeline,
    platform,
    quality,
    rbac,
    render,
    samples,
    tenants,
    tickets,
)
from keel.cli.client import CliError, State, read_settings, state_of


class KeelGroup(TyperGroup):
    """Renders every ``CliError`` raised by any command as ``error: ...`` plus its exit code."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except CliError as error:
            state = ctx.obj if isinstance(ctx.obj, State) else State()
            render.error(error, as_json=state.json)
            raise typer.Exit(error.exit_code) from None


app = typer.Typer(
    name="keel",
    cls=KeelGroup,
    help="Keel: governed KPIs and governed actions, with evidence a regulator can verify offline.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,  # locals may hold tokens and passwords
)


@app.callback()
def main(
    ctx: typer.Context,
    token: Annotated[
        str | None, typer.Option("--token", help="API token (overrides KEEL_TOKEN and the saved login).")
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Machine-readable JSON output.")] = False,
) -> None:
    """Works on the embedded Keel in KEEL_HOME, or on a remote one when KEEL_URL is set."""
    state = State(token_option=token, json=json_output)
    ctx.obj = state
    ctx.call_on_close(state.close)


app.command("login")(identity.login)
app.command("logout")(identity.logout)
app.command("whoami")(identity.whoami)
app.add_typer(platform.app, name="platform")
app.add_typer(tenants.app, name="tenant")
app.add_typer(identity.users_app, name="user")
app.add_typer(identity.tokens_app, name="token")
app.add_typer(rbac.app, name="rbac")
app.add_typer(rbac.breakglass_app, name="breakglass")
app.add_typer(evidence.app, name="evidence")
app.add_typer(samples.app, name="sample")
app.add_typer(connectors.connector_app, name="connector")
app.add_typer(connectors.source_app, name="source")
app.add_typer(contracts.app, name="contract")
app.add_typer(changes.change_app, name="change")
app.add_typer(changes.rollout_app, name="rollout")
app.command("build")(changes.build)
app.add_typer(extensions.app, name="extension")
app.add_typer(impact.app, name="impact")
app.add_typer(tickets.app, name="ticket")
for _module in (pipeline, quality, guardrails, housekeeping, lineage, kpis):
    for _name, _group in _module.APPS.items():
        app.add_typer(_group, name=_name)
app.command("demo")(demo.command)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option("--host", help="Interface to bind (KEEL_HOST).")] = None,
    port: Annotated[int | None, typer.Option("--port", help="Port to listen on (KEEL_PORT).")] = None,
) -> None:
    """Start Keel over HTTP; the first start seeds the demo platform and prints how to sign in."""
    from keel.server import main as serve_main

    serve_main(host, port, settings=read_settings())


@app.command()
def version(ctx: typer.Context) -> None:
    """Keel's version."""
    if state_of(ctx).json:
        render.print_json({"version": __version__})
    else:
        typer.echo(f"keel {__version__}")


@app.command()
def config(ctx: typer.Context) -> None:
    """The effective settings (environment, keel.toml, defaults), secrets masked."""
    from sqlalchemy.engine import make_url

    state = state_of(ctx)
    settings = state.settings()
    values = settings.model_dump(mode="json")
    for name in ("master_key", "token"):
        if values.get(name):
            values[name] = "********"
    if settings.database_url:
        values["database_url"] = make_url(settings.database_url).render_as_string(hide_password=True)
    values["effective_database_url"] = make_url(settings.effective_database_url).render_as_string(
        hide_password=True
    )
    render.show(state, values, title="Keel settings")


if __name__ == "__main__":
    app()
