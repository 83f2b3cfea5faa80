"""``keel rule``: data-quality rules and quarantines (04)."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from keel.cli import render
from keel.cli.client import state_of

app = typer.Typer(help="Data-quality rules and their quarantines (04).", no_args_is_help=True)

# Command groups this module adds to ``keel`` (name -> Typer app); main.py registers them all.
APPS: dict[str, typer.Typer] = {"rule": app}

RULES = "/api/v1/quality-rules"
COLUMNS = ["rule_id", "version", "layer", "dataset", "field", "check", "on_fail", "enabled", "tenant_id"]


@app.command("define")
def define(
    ctx: typer.Context,
    rule_id: Annotated[str, typer.Argument(help="e.g. GDP-INVOICE-AMT-NOT-NULL.")],
    dataset: Annotated[str, typer.Option("--dataset", help="GDP table name, e.g. invoice.")],
    field: Annotated[str, typer.Option("--field", help="The field checked.")],
    check: Annotated[
        str,
        typer.Option(
            "--check",
            help="not_null, unique, accepted_values, range, regex, custom_sql, referential_integrity, "
            "freshness, row_count, volume_change.",
        ),
    ],
    on_fail: Annotated[str, typer.Option("--on-fail", help="block, quarantine or alert.")] = "alert",
    layer: Annotated[str, typer.Option("--layer", help="raw, gdp or kpi.")] = "gdp",
    params: Annotated[
        str | None, typer.Option("--params", help='JSON, e.g. \'{"values": ["EUR"]}\' or \'{"min": 0}\'.')
    ] = None,
    tenant: Annotated[
        str | None, typer.Option("--tenant", help="A tenant's own rule (default: global).")
    ] = None,
) -> None:
    """Define a rule, or a new version of it (Schema Steward)."""
    try:
        parsed = json.loads(params) if params else {}
    except json.JSONDecodeError as exc:
        raise typer.BadParameter(f"--params is not JSON: {exc}") from None
    body = {
        "rule_id": rule_id,
        "layer": layer,
        "dataset": dataset,
        "field": field,
        "check": check,
        "params": parsed,
        "on_fail": on_fail,
        "tenant_id": tenant,
    }
    state = state_of(ctx)
    render.show(state, state.api().post(RULES, json=body), title="Quality rule")


@app.command("list")
def list_rules(
    ctx: typer.Context,
    dataset: Annotated[str | None, typer.Option("--dataset", help="One dataset's rules.")] = None,
    tenant: Annotated[str | None, typer.Option("--tenant", help="Global rules and one tenant's.")] = None,
) -> None:
    """The newest version of every rule."""
    state = state_of(ctx)
    items = state.api().get_all(RULES, {"dataset": dataset, "tenant_id": tenant})
    render.show(state, items, title="Quality rules", columns=COLUMNS)


@app.command("enable")
def enable(ctx: typer.Context, rule_id: Annotated[str, typer.Argument(help="The rule to enforce.")]) -> None:
    """Enforce a rule's newest version (Platform Admin); refused when it conflicts with another."""
    state = state_of(ctx)
    render.show(state, state.api().post(f"{RULES}/{rule_id}/enable"), title="Quality rule")


Tenant = Annotated[str, typer.Option("--tenant", help="The tenant id (TEN-...).")]
Dataset = Annotated[str, typer.Argument(help="GDP table, Raw table (<source_key>__<stream>) or KPI name.")]
Layer = Annotated[str, typer.Option("--layer", help="gdp, raw or kpi.")]


@app.command("quarantine")
def quarantine(ctx: typer.Context, dataset: Dataset, tenant: Tenant, layer: Layer = "gdp") -> None:
    """The rows a rule quarantined in a tenant's table, with the rule and reason (Data Engineer)."""
    state = state_of(ctx)
    items = state.api().get_all(f"/api/v1/tenants/{tenant}/quarantine/{dataset}", {"layer": layer})
    render.show(
        state, items, title=f"Quarantine of {layer}.{dataset}", columns=["quarantine_id", "rule_id", "reason"]
    )


@app.command("release")
def release(
    ctx: typer.Context,
    dataset: Dataset,
    tenant: Tenant,
    ids: Annotated[list[str], typer.Option("--id", help="A quarantine id to release (repeatable).")],
    fixes: Annotated[
        str | None,
        typer.Option(
            "--fixes", help='JSON: quarantine id -> field -> value, e.g. \'{"Q-1": {"amount": 5}}\'.'
        ),
    ] = None,
    false_positive: Annotated[
        bool, typer.Option("--false-positive", help="Release unchanged: the rule was wrong about them.")
    ] = False,
    layer: Layer = "gdp",
) -> None:
    """Release quarantined rows back into their table, fixed or as false positives (evidenced)."""
    try:
        parsed = json.loads(fixes) if fixes else {}
    except json.JSONDecodeError as exc:
        raise typer.BadParameter(f"--fixes is not JSON: {exc}") from None
    body = {"quarantine_ids": ids, "fixes": parsed, "false_positive": false_positive, "layer": layer}
    state = state_of(ctx)
    reply = state.api().post(f"/api/v1/tenants/{tenant}/quarantine/{dataset}/release", json=body)
    render.show(state, reply, title="Released")
