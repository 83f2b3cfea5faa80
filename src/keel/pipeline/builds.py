"""What each versioned table was built from, kept next to the data in ``main.keel_builds``.

A build's row commits in the build's own transaction, so the record and the table
cannot disagree. It holds the contract that drove the build, the tables it read
(versioned where Keel built them), its row count and when it was built; a rebuild
replaces the row of that version only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlglot
from sqlglot import exp

from keel.kernel.clock import utcnow
from keel.pipeline.engine import Engine
from keel.pipeline.statements import render, table

BUILDS = table("main", "keel_builds")
_DDL = sqlglot.parse_one(
    "CREATE TABLE IF NOT EXISTS main.keel_builds (layer VARCHAR NOT NULL, name VARCHAR NOT NULL, "
    "version VARCHAR NOT NULL, table_name VARCHAR NOT NULL, contract VARCHAR NOT NULL, "
    "inputs VARCHAR NOT NULL, rows BIGINT NOT NULL, built_at TIMESTAMPTZ NOT NULL)",
    read="duckdb",
)
_COLUMNS = ("layer", "name", "version", "table_name", "contract", "inputs", "rows", "built_at")


def record(
    engine: Engine,
    layer: str,
    name: str,
    version: str,
    built: str,
    contract: str,
    inputs: Sequence[str],
    rows: int,
) -> None:
    """Record (or replace) the build of ``layer.name`` at ``version``; call inside its transaction."""
    engine.execute(render(_DDL, engine.dialect))
    engine.execute(render(exp.delete(BUILDS.copy(), where=_key(layer, name, version)), engine.dialect))
    values = exp.tuple_(
        *(exp.Literal.string(v) for v in (layer, name, version, built, contract, ",".join(inputs))),
        exp.Literal.number(rows),
        exp.cast(exp.Literal.string(utcnow().isoformat()), exp.DataType.build("TIMESTAMPTZ")),
    )
    engine.execute(render(exp.insert(exp.values([values]), BUILDS.copy()), engine.dialect))


def build_of(engine: Engine, layer: str, name: str, version: str) -> dict[str, Any] | None:
    """The record of one version's build; None if it was never built."""
    found = _read(engine, _key(layer, name, version))
    return found[0] if found else None


def builds(engine: Engine, layer: str, name: str) -> list[dict[str, Any]]:
    """Every version of ``layer.name`` built so far, oldest build first."""
    return _read(engine, _key(layer, name))


def _read(engine: Engine, where: exp.Expr) -> list[dict[str, Any]]:
    with engine.transaction():  # one connection, one snapshot
        if not engine.table_exists("main", "keel_builds"):
            return []
        query = exp.select(*_COLUMNS).from_(BUILDS.copy()).where(where).order_by("built_at", "version")
        found = engine.dicts(render(query, engine.dialect))
    return [row | {"inputs": tuple(row["inputs"].split(",")) if row["inputs"] else ()} for row in found]


def _key(layer: str, name: str, version: str | None = None) -> exp.Expr:
    parts = [("layer", layer), ("name", name)] + ([("version", version)] if version is not None else [])
    return exp.and_(*(exp.column(column).eq(exp.Literal.string(value)) for column, value in parts))
