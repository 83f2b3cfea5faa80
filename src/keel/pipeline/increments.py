"""Which Raw batches each GDP build holds, kept next to the data in ``main.keel_increments``.

A build's row is written in the build's own transaction, reading the Raw bookkeeping
(``raw._keel_batches``, ``raw._keel_tables``, written by ingestion in the same
transaction as the rows) in the same snapshot as the data it builds from: the batch
ids recorded are exactly the batches the table was computed from. An incremental
refresh adds the batches it folds in; the fingerprint of the data-quality rules applied
tells a refresh whether rows built earlier were judged by the same rules.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import sqlglot
from sqlglot import exp

from keel.kernel.clock import utcnow
from keel.pipeline.engine import Engine
from keel.pipeline.statements import render, table

INCREMENTS = table("main", "keel_increments")
_DDL = sqlglot.parse_one(
    "CREATE TABLE IF NOT EXISTS main.keel_increments (name VARCHAR NOT NULL, version VARCHAR NOT NULL, "
    "rules VARCHAR NOT NULL, batches VARCHAR NOT NULL, built_at TIMESTAMPTZ NOT NULL)",
    read="duckdb",
)
_RAW_TABLES = ("_keel_tables", "_keel_batches")

Batches = dict[str, list[str] | None]  # input -> batch ids (None: the input has no batch bookkeeping)


def rules_fingerprint(rules: Iterable[Any], engine: Engine | None = None) -> str:
    """What identifies the rules a build applied: their ``ID@version`` keys, sorted, and (with the
    ``engine``) the build each ``referential_integrity`` rule read its keys from, hashed. A rule
    whose referenced table was rebuilt or refreshed since could now judge earlier rows otherwise."""
    rules = list(rules)
    keys: list[Any] = sorted(rule.key for rule in rules)
    if engine is not None and any(r.check == "referential_integrity" for r in rules):
        keys.append(_references(engine, rules))
    return hashlib.sha256(json.dumps(keys).encode()).hexdigest()


def _references(engine: Engine, rules: Sequence[Any]) -> dict[str, str | None]:
    """``gdp.<table>`` -> ``<active version>@<when that build was recorded>`` for every table a
    ``referential_integrity`` rule looks its keys up in (None: not built)."""
    from keel.pipeline.activation import active
    from keel.pipeline.builds import build_of

    found: dict[str, str | None] = {}
    for ref in sorted({r.params["dataset"] for r in rules if r.check == "referential_integrity"}):
        version = active(engine, "gdp", ref)
        built = build_of(engine, "gdp", ref, version) if version else None
        found[f"gdp.{ref}"] = f"{version}@{built['built_at']}" if built else None
    return found


def raw_batches(engine: Engine, inputs: Sequence[str]) -> Batches:
    """The batch ids each input holds now; None for an input that is not an ingested Raw table."""
    found: Batches = {}
    bookkept = all(engine.table_exists("raw", name) for name in _RAW_TABLES)
    for qualified in inputs:
        schema, _, name = qualified.rpartition(".")
        if schema != "raw" or not bookkept:
            found[qualified] = None
            continue
        tables, batches = table("raw", "_keel_tables"), table("raw", "_keel_batches")
        registered = (
            exp.select("1").from_(tables).where(exp.column("table_name").eq(exp.Literal.string(name)))
        )
        if not engine.rows(render(registered, engine.dialect)):
            found[qualified] = None
            continue
        query = (
            exp.select(exp.column("batch_id", table="b"))
            .from_(batches.as_("b"))
            .join(
                table("raw", "_keel_tables").as_("t"),
                on="b.source_id = t.source_id AND b.stream = t.stream",
            )
            .where(exp.column("table_name", table="t").eq(exp.Literal.string(name)))
        )
        found[qualified] = sorted({row[0] for row in engine.rows(render(query, engine.dialect))})
    return found


def record(
    engine: Engine, name: str, version: str, rules: str, batches: Mapping[str, Sequence[str] | None]
) -> None:
    """Record (or replace) which batches the build of ``gdp.name`` at ``version`` holds; call inside
    the build's transaction."""
    engine.execute(render(_DDL, engine.dialect))
    engine.execute(render(exp.delete(INCREMENTS.copy(), where=_key(name, version)), engine.dialect))
    state = json.dumps(
        {k: (sorted(v) if v is not None else None) for k, v in batches.items()}, sort_keys=True
    )
    values = exp.tuple_(
        *(exp.Literal.string(v) for v in (name, version, rules, state)),
        exp.cast(exp.Literal.string(utcnow().isoformat()), exp.DataType.build("TIMESTAMPTZ")),
    )
    engine.execute(render(exp.insert(exp.values([values]), INCREMENTS.copy()), engine.dialect))


def state_of(engine: Engine, name: str, version: str) -> tuple[str, Batches] | None:
    """The rules fingerprint and batches of the build of ``gdp.name`` at ``version``, if recorded."""
    if not engine.table_exists("main", "keel_increments"):
        return None
    query = exp.select("rules", "batches").from_(INCREMENTS.copy()).where(_key(name, version))
    rows = engine.rows(render(query, engine.dialect))
    if not rows:
        return None
    rules, batches = rows[0]
    return rules, json.loads(batches)


def _key(name: str, version: str) -> exp.Expr:
    return exp.and_(
        exp.column("name").eq(exp.Literal.string(name)),
        exp.column("version").eq(exp.Literal.string(version)),
    )
