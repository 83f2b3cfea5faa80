"""``keel sample``: write the sample ERP to a database, serve the sample CRM over HTTP.

These commands need no Keel at all: they make the outside systems Keel's
connectors are demonstrated and tested against.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Annotated

import sqlalchemy as sa
import typer

from keel.cli import render
from keel.cli.client import EXIT_BLOCKED, EXIT_INPUT, CliError, state_of
from keel.kernel.errors import Conflict, InvalidInput
from keel.samples import crm, erp

app = typer.Typer(help="Sample sources for demos and tests.", no_args_is_help=True)


@app.command("erp")
def erp_command(
    ctx: typer.Context,
    out: Annotated[
        Path | None, typer.Option("--out", help="SQLite file to write (created if missing).")
    ] = None,
    url: Annotated[
        str | None, typer.Option("--url", help="SQLAlchemy URL instead, e.g. postgresql+psycopg://…")
    ] = None,
    schema: Annotated[
        str | None, typer.Option("--schema", help="PostgreSQL schema to write into (created if missing).")
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Same seed, same rows.")] = 42,
    months: Annotated[int, typer.Option("--months", help="Months of invoice history.")] = 6,
    dirty_share: Annotated[
        float, typer.Option("--dirty-share", help="Share of invoices that are dirty (0-1).")
    ] = 0.05,
    replace: Annotated[
        bool, typer.Option("--replace", help="Overwrite tables that already hold rows.")
    ] = False,
) -> None:
    """Write the seeded sample ERP (customers, vendors, invoices, payments) and count its dirty rows."""
    state = state_of(ctx)
    if (out is None) == (url is None):
        raise CliError("give exactly one of --out FILE.db or --url URL", EXIT_INPUT, field="out")
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        url = f"sqlite:///{out}"
    assert url is not None
    try:
        spec = erp.ErpSpec(seed=seed, months=months, dirty_share=dirty_share)
        counts = erp.write(spec, url, schema, replace=replace)
    except InvalidInput as error:
        raise CliError(error.detail, EXIT_INPUT, field=error.fields.get("field")) from None
    except Conflict as error:
        raise CliError(error.detail, EXIT_BLOCKED, hint="add --replace to overwrite it") from None
    except (sa.exc.ArgumentError, sa.exc.OperationalError) as error:
        raise CliError(f"cannot write to the database: {error}", EXIT_INPUT, field="url") from None
    dirty = spec.dirty_counts()
    target = sa.make_url(url).render_as_string(hide_password=True)
    if state.json:
        render.print_json({"target": target, "schema": schema, "seed": seed, "rows": counts, "dirty": dirty})
        return
    render.line(f"Sample ERP (seed {seed}) written to {target}" + (f", schema {schema}" if schema else ""))
    render.out().print(
        render.rows([{"table": name, "rows": n} for name, n in counts.items()], ["table", "rows"])
    )
    render.out().print(
        render.rows(
            [{"kind": kind, "rows": n} for kind, n in dirty.items()],
            ["kind", "rows"],
            title=f"Dirty invoices ({dirty_share:.0%} of {spec.months * spec.invoices_per_month})",
        )
    )


@app.command("serve-crm")
def serve_crm_command(
    ctx: typer.Context,
    host: Annotated[str, typer.Option("--host", help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to listen on (0: any free port).")] = 8765,
    seed: Annotated[int, typer.Option("--seed", help="Same seed, same records.")] = 7,
    api_key: Annotated[str, typer.Option("--api-key", help="Bearer key clients must send.")] = "crm-demo-key",
    rate_limit: Annotated[
        int | None, typer.Option("--rate-limit", help="Answer every Nth request with 429.")
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", help="Log every request on stderr.")] = False,
) -> None:
    """Serve the sample CRM's JSON API until Ctrl-C."""
    state = state_of(ctx)
    try:
        server = crm.serve_crm(host, port, seed=seed, api_key=api_key, rate_limit=rate_limit, verbose=verbose)
    except (OSError, ValueError) as error:
        raise CliError(f"cannot serve the sample CRM: {error}", EXIT_INPUT) from None
    info = {"url": server.url, "api_key": api_key, "endpoints": ["/accounts", "/contacts", "/opportunities"]}
    if state.json:
        render.print_json(info)
    else:
        render.line(f"Sample CRM at {server.url}  (Authorization: Bearer {api_key}); Ctrl-C stops it")
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
