"""``keel contract``: stories 00c, 03a, 03b, 03c — the contract registry and each version's lifecycle.

``keel contract lint FILE`` runs offline (no server, no store) with exactly the
registry's rules, so a data team's own CI can check its contracts; it exits 0 when
the file passes and 1 when it has problems, listing each with its place.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from keel.cli import render
from keel.cli.client import EXIT_FAILURE, EXIT_INPUT, CliError, state_of

app = typer.Typer(
    help="Raw, GDP and KPI contracts: lint, draft, register, validate, publish.", no_args_is_help=True
)

BASE = "/api/v1/contracts"
COLUMNS = ["schema_id", "version", "layer", "status", "name", "tenant_id", "compliance_check"]
SchemaId = Annotated[str, typer.Argument(help="Contract id, e.g. GDP-INVOICE.")]
Version = Annotated[str, typer.Argument(help="Semantic version, e.g. 1.0.0.")]
Layer = Annotated[str | None, typer.Option("--layer", help="raw or gdp for an ODCS file without keelLayer.")]


def _text(path: Path, field: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CliError(f"{field}: cannot read {path}: {exc}", EXIT_INPUT, field=field) from None


@app.command("lint")
def lint(
    ctx: typer.Context,
    file: Annotated[
        Path, typer.Argument(help="The contract file (ODCS YAML/JSON, or a keel/v1 KpiContract).")
    ],
    based_on: Annotated[
        list[Path] | None, typer.Option("--with", help="A contract this one is based on (repeatable).")
    ] = None,
    layer: Layer = None,
) -> None:
    """Check a contract file offline with the registry's rules (exit 1 when it has problems)."""
    from keel.contracts.lint import lint as run_lint

    state = state_of(ctx)
    result = run_lint(
        _text(file, "file"), based_on=[_text(p, "with") for p in based_on or []], layer=layer
    ).as_dict()
    if state.json:
        render.print_json(result)
    elif result["passed"]:
        render.line(f"{file}: {result['schema_id']}@{result['version']} passes every registry rule", "green")
    else:
        render.show(state, result["problems"], title=f"{file}: problems", columns=["rule", "where", "detail"])
    if not result["passed"]:
        raise typer.Exit(EXIT_FAILURE)


@app.command("list")
def list_contracts(
    ctx: typer.Context,
    layer: Annotated[str | None, typer.Option("--layer", help="raw, gdp or kpi.")] = None,
    status: Annotated[str | None, typer.Option("--status", help="e.g. published.")] = None,
) -> None:
    """Contract versions you can see."""
    state = state_of(ctx)
    params = {k: v for k, v in {"layer": layer, "status": status}.items() if v}
    render.show(state, state.api().get_all(BASE, params), title="Contracts", columns=COLUMNS)


@app.command("show")
def show(ctx: typer.Context, schema_id: SchemaId, version: Annotated[str | None, typer.Argument()] = None):
    """One version (default: the newest published) with its lineage and usage."""
    state = state_of(ctx)
    path = f"{BASE}/{schema_id}/versions/{version}" if version else f"{BASE}/{schema_id}"
    render.show(state, state.api().get(path), title="Contract")


@app.command("versions")
def versions(ctx: typer.Context, schema_id: SchemaId) -> None:
    """Every version of a contract."""
    state = state_of(ctx)
    render.show(
        state, state.api().get(f"{BASE}/{schema_id}/versions")["items"], title="Versions", columns=COLUMNS
    )


@app.command("export")
def export(
    ctx: typer.Context,
    schema_id: SchemaId,
    version: Version,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Write the YAML here.")] = None,
) -> None:
    """The document as registered, as YAML (ODCS loads in any ODCS tool)."""
    from keel.contracts.documents import dump

    state = state_of(ctx)
    document = state.api().get(f"{BASE}/{schema_id}/versions/{version}/document")["document"]
    if output:
        output.write_text(dump(document), encoding="utf-8")
        render.message(state, f"wrote {output}")
    elif state.json:
        render.print_json(document)
    else:
        typer.echo(dump(document), nl=False)


@app.command("draft")
def draft(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="The contract file.")],
    layer: Layer = None,
    tenant: Annotated[str | None, typer.Option("--tenant", help="A tenant's own contract.")] = None,
) -> None:
    """Submit a new contract version as a draft (Schema Steward; a Data Engineer for its tenant's Raw)."""
    state = state_of(ctx)
    body = {"document": _text(file, "file"), "layer": layer, "tenant_id": tenant}
    row = state.api().post(BASE, json={k: v for k, v in body.items() if v is not None})
    render.show(state, row, title="Contract drafted")
    render.message(
        state, f"next: a Platform Admin runs `keel contract register {row['schema_id']} {row['version']}`"
    )


@app.command("load-templates")
def load_templates(ctx: typer.Context) -> None:
    """Load the contract templates that ship with Keel (Platform Admin, 00c)."""
    state = state_of(ctx)
    render.show(state, state.api().post("/api/v1/contract-templates/load"), title="Templates")


def _step(name: str, help_text: str):
    def command(ctx: typer.Context, schema_id: SchemaId, version: Version) -> None:
        state = state_of(ctx)
        row = state.api().post(f"{BASE}/{schema_id}/versions/{version}/{name}")
        render.show(state, row, title=f"{schema_id}@{version}")
        if row["status"] == "rejected":
            raise typer.Exit(EXIT_FAILURE)

    command.__doc__ = help_text
    app.command(name)(command)


_step("register", "Register a draft (Platform Admin).")
_step(
    "validate", "Check structure, metadata, mappings and compatibility (Schema Steward); exit 1 if rejected."
)
_step("publish", "Publish an approved version (Platform Admin; needs two sign-offs).")


@app.command("review")
def review(
    ctx: typer.Context,
    schema_id: SchemaId,
    version: Version,
    approve: Annotated[bool, typer.Option("--approve/--reject", help="Your decision.")],
    findings: Annotated[str, typer.Option("--findings", help="What is missing (required to reject).")] = "",
) -> None:
    """Compliance review of the regulatory content (Compliance Officer); exit 1 if rejected."""
    state = state_of(ctx)
    row = state.api().post(
        f"{BASE}/{schema_id}/versions/{version}/compliance-review",
        json={"approve": approve, "findings": findings},
    )
    render.show(state, row, title=f"{schema_id}@{version}")
    if row["status"] == "rejected":
        raise typer.Exit(EXIT_FAILURE)


def _retreat(name: str, help_text: str):
    def command(
        ctx: typer.Context,
        schema_id: SchemaId,
        version: Version,
        reason: Annotated[str, typer.Option("--reason", help="Why.")],
    ) -> None:
        state = state_of(ctx)
        row = state.api().post(f"{BASE}/{schema_id}/versions/{version}/{name}", json={"reason": reason})
        render.show(state, row, title=f"{schema_id}@{version}")

    command.__doc__ = help_text
    app.command(name)(command)


_retreat("deprecate", "Deprecate a published version (Schema Steward).")
_retreat("retire", "Retire a deprecated version nothing depends on (Schema Steward).")
