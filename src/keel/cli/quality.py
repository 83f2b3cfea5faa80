"""``keel rule``: data-quality rules and quarantines (04)."""

from __future__ import annotations

import typer

app = typer.Typer(help="Data-quality rules and their quarantines (04).", no_args_is_help=True)

# Command groups this module adds to ``keel`` (name -> Typer app); main.py registers them all.
APPS: dict[str, typer.Typer] = {"rule": app}
