"""``keel pipeline``: pipeline runs: full and incremental, scheduled, recorded."""

from __future__ import annotations

import typer

app = typer.Typer(
    help="Run a tenant's pipeline: Raw -> GDP -> KPI, full or incremental.", no_args_is_help=True
)

# Command groups this module adds to ``keel`` (name -> Typer app); main.py registers them all.
APPS: dict[str, typer.Typer] = {"pipeline": app}
