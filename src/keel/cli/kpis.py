"""``keel kpi``: KPI publishing (06) and consumption (07)."""

from __future__ import annotations

import typer

app = typer.Typer(
    help="Publish KPIs and read them: values, thresholds, drill-through, snapshots (06, 07).",
    no_args_is_help=True,
)

# Command groups this module adds to ``keel`` (name -> Typer app); main.py registers them all.
APPS: dict[str, typer.Typer] = {"kpi": app}
