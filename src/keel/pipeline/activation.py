"""The atomic pointer: which built version of a GDP table or KPI its readers see.

``gdp."order"`` is a view over one versioned table (``gdp."order__v1_0_0"``);
activating a version replaces the view and records the move in
``main.keel_active`` (layer, name, version, previous_version, activated_at) in one
transaction, so readers see the old version or the new one, never a mix. Versioned
tables are never dropped here: rolling back is activating the previous version
again, whose rows were never touched, so its data and KPI values come back exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlglot
from sqlglot import exp

from keel.kernel.clock import utcnow
from keel.kernel.errors import Conflict, NotFound
from keel.pipeline.engine import Engine
from keel.pipeline.naming import canonical_version, layer_name, safe_name, versioned
from keel.pipeline.statements import create_view, render, table

BOOKKEEPING = table("main", "keel_active")
_BOOKKEEPING_DDL = sqlglot.parse_one(
    "CREATE TABLE IF NOT EXISTS main.keel_active (layer VARCHAR NOT NULL, name VARCHAR NOT NULL, "
    "version VARCHAR NOT NULL, previous_version VARCHAR, activated_at TIMESTAMPTZ NOT NULL)",
    read="duckdb",
)
BOOKKEEPING_PREFIX = "_keel_"  # columns of a build its readers do not see


@dataclass(frozen=True)
class Pointer:
    version: str
    previous_version: str | None


def activate(engine: Engine, layer: str, name: str, version: str) -> None:
    """Point ``layer.name`` at its built ``version``; the version active until now becomes previous.

    Activating the active version again changes nothing. A version never built raises ``NotFound``.
    """
    layer, name, version = layer_name(layer), safe_name(name), canonical_version(version)
    built = versioned(name, version)
    with engine.transaction():
        if not engine.table_exists(layer, built):
            raise NotFound("materialization", f"{layer}.{built}")
        engine.execute(render(_BOOKKEEPING_DDL, engine.dialect))
        current = _pointer(engine, layer, name)
        if current is not None and current.version == version:
            return
        columns = [c for c, _ in engine.columns(layer, built) if not c.startswith(BOOKKEEPING_PREFIX)]
        engine.execute(render(create_view(table(layer, name), table(layer, built), columns), engine.dialect))
        engine.execute(render(exp.delete(BOOKKEEPING.copy(), where=_key(layer, name)), engine.dialect))
        row = exp.tuple_(
            *(exp.Literal.string(v) for v in (layer, name, version)),
            exp.Literal.string(current.version) if current else exp.null(),
            exp.cast(exp.Literal.string(utcnow().isoformat()), exp.DataType.build("TIMESTAMPTZ")),
        )
        engine.execute(render(exp.insert(exp.values([row]), BOOKKEEPING.copy()), engine.dialect))


def rollback(engine: Engine, layer: str, name: str) -> str:
    """Activate the version that was active before the current one; that version.

    One step back: the rolled-back version becomes ``previous``, its tables stay for forensics.
    """
    layer, name = layer_name(layer), safe_name(name)
    with engine.transaction():
        earlier = previous(engine, layer, name)
        if earlier is None:
            raise Conflict(f"{layer}.{name} has no previous version to roll back to", layer=layer, name=name)
        activate(engine, layer, name, earlier)
    return earlier


def deactivate(engine: Engine, layer: str, name: str) -> None:
    """Withdraw ``layer.name`` from its readers (a view a rollback must not leave behind); its
    versioned tables stay. Nothing active: nothing to do."""
    layer, name = layer_name(layer), safe_name(name)
    with engine.transaction():
        if _pointer(engine, layer, name) is None:
            return
        drop = exp.Drop(tables=[table(layer, name)], kind="VIEW", exists=True)
        engine.execute(render(drop, engine.dialect))
        engine.execute(render(exp.delete(BOOKKEEPING.copy(), where=_key(layer, name)), engine.dialect))


def active(engine: Engine, layer: str, name: str) -> str | None:
    """The version ``layer.name`` reads now; None before its first activation."""
    pointer = _pointer(engine, layer_name(layer), safe_name(name))
    return pointer.version if pointer else None


def previous(engine: Engine, layer: str, name: str) -> str | None:
    """The version that was active before the current one; None if there was none."""
    pointer = _pointer(engine, layer_name(layer), safe_name(name))
    return pointer.previous_version if pointer else None


def _pointer(engine: Engine, layer: str, name: str) -> Pointer | None:
    with engine.transaction():  # one connection, one snapshot
        if not engine.table_exists("main", "keel_active"):
            return None
        query = exp.select("version", "previous_version").from_(BOOKKEEPING.copy()).where(_key(layer, name))
        rows = engine.rows(render(query, engine.dialect))
    return Pointer(*rows[0]) if rows else None


def _key(layer: str, name: str) -> exp.Expr:
    return exp.and_(
        exp.column("layer").eq(exp.Literal.string(layer)),
        exp.column("name").eq(exp.Literal.string(name)),
    )
