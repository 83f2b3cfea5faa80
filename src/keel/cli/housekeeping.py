"""``keel housekeeping``: housekeeping: retention, tiering, compaction, legal holds, scheduler (05b)."""

from __future__ import annotations

import typer

app = typer.Typer(help="Retention, tiering, compaction, vacuum and legal holds (05b).", no_args_is_help=True)

# Command groups this module adds to ``keel`` (name -> Typer app); main.py registers them all.
APPS: dict[str, typer.Typer] = {"housekeeping": app}
