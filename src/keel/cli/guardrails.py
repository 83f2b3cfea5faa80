"""``keel guardrail``: guardrails and cost controls (04, 05b)."""

from __future__ import annotations

import typer

app = typer.Typer(
    help="Guardrails: quotas, residency, export limits, spend caps (04, 05b).", no_args_is_help=True
)

# Command groups this module adds to ``keel`` (name -> Typer app); main.py registers them all.
APPS: dict[str, typer.Typer] = {"guardrail": app}
