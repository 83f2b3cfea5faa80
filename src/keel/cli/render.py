"""Output: Rich tables for people, plain JSON for machines (``--json``), errors on stderr."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from typing import Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn
from rich.table import Table
from rich.text import Text

from keel.cli.client import CliError, State

TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}")


def out() -> Console:
    # Built per call so the console writes to whatever sys.stdout is now (tests swap it).
    return Console(highlight=False)


def err() -> Console:
    return Console(stderr=True, highlight=False)


def print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, default=str))


def cell(value: Any) -> Text:
    if isinstance(value, str) and TIMESTAMP.match(value):
        return Text(value[:19].replace("T", " "))  # seconds are enough on screen; --json has it all
    if value is None:
        return Text("-", style="dim")
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return Text(", ".join(value))
    if isinstance(value, (dict, list)):
        return Text(json.dumps(value, separators=(", ", ": "), default=str))
    if isinstance(value, bool):
        return Text("yes" if value else "no")
    return Text(str(value))


def record(data: dict, title: str | None = None, skip: Iterable[str] = ()) -> Table:
    """A key/value table of one object."""
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column("field", style="bold", no_wrap=True)
    table.add_column("value", overflow="fold")
    for key, value in data.items():
        if key not in skip:
            table.add_row(key, cell(value))
    return table


def rows(items: Sequence[dict], columns: Sequence[str], title: str | None = None) -> Table:
    """A table of objects, one row each, showing ``columns``."""
    table = Table(title=title, title_justify="left")
    for column in columns:
        # Identifiers are copied and pasted: never break them (nor states and times) across lines.
        keep = column.endswith(("id", "status", "_at"))
        table.add_column(column, no_wrap=keep, overflow="ellipsis" if keep else "fold")
    for item in items:
        table.add_row(*(cell(item.get(column)) for column in columns))
    return table


def show(state: State, data: Any, *, title: str | None = None, columns: Sequence[str] | None = None) -> None:
    """Print an API result: JSON under ``--json``, otherwise a table."""
    if state.json:
        print_json(data)
    elif isinstance(data, list):
        out().print(rows(data, columns or _columns(data), title))
        if not data:
            out().print(Text("(none)", style="dim"))
    elif isinstance(data, dict):
        out().print(record(data, title))
    else:
        out().print(Text(str(data)))


def _columns(items: Sequence[dict]) -> list[str]:
    return list(items[0].keys()) if items else ["id"]


def line(text: str, style: str | None = None) -> None:
    """One result line on stdout, never wrapped (people copy it, scripts grep it)."""
    out().print(Text(text, style=style or ""), soft_wrap=True)


def message(state: State, text: str) -> None:
    """A sentence for people (on stderr under ``--json``, so stdout stays machine-readable)."""
    (err() if state.json else out()).print(Text(text), soft_wrap=True)


def error(error: CliError, *, as_json: bool = False) -> None:
    console = err()
    console.print(Text(f"error: {error.detail}", style="bold red"), soft_wrap=True)
    for label, value in (("field", error.field), ("rule", error.rule), ("reason", error.reason)):
        if value:
            console.print(Text(f"  {label}: {value}"), soft_wrap=True)
    if error.hint:
        console.print(Text(f"  hint: {error.hint}", style="dim"), soft_wrap=True)
    if as_json:
        print_json(error.problem or {"detail": error.detail, "exit_code": error.exit_code})


def progress() -> Progress:
    """A progress bar for long work, drawn on stderr."""
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=err(),
        transient=False,
    )
