"""``keel lineage``: lineage (OpenLineage) and evidence export templates (05)."""

from __future__ import annotations

import typer

app = typer.Typer(help="Lineage records and evidence export templates (05).", no_args_is_help=True)

# Command groups this module adds to ``keel`` (name -> Typer app); main.py registers them all.
APPS: dict[str, typer.Typer] = {"lineage": app}
