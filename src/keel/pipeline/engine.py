"""The data-plane engine seam: what the materializer asks of a SQL engine, and DuckDB's answer.

The materializer builds its statements as SQLGlot trees and renders them in the
engine's ``dialect``; an engine only runs text. DuckDB is the embedded default,
one database file per tenant; a Spark engine for tenants that outgrow one machine
implements the same protocol later.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import duckdb
from sqlglot import exp

from keel.kernel.errors import NotFound
from keel.pipeline.errors import DataPlaneBusy, EngineError
from keel.pipeline.statements import render


class Engine(Protocol):
    """One tenant's data plane. ``transaction()`` blocks nest into the outermost one."""

    dialect: str

    def execute(self, sql: str) -> None: ...

    def rows(self, sql: str) -> list[tuple[Any, ...]]: ...

    def dicts(self, sql: str) -> list[dict[str, Any]]: ...

    def describe(self, sql: str) -> list[tuple[str, str]]:
        """The (name, engine type) of each column a query returns, without running it."""
        ...

    def transaction(self) -> contextlib.AbstractContextManager[None]: ...

    def table_exists(self, schema: str, name: str) -> bool:
        """True for a table or view one can read."""
        ...

    def columns(self, schema: str, name: str) -> list[tuple[str, str]]:
        """The (name, engine type) of a table's or view's columns, in order."""
        ...


class DuckDBEngine:
    """A tenant's DuckDB file (``TenantDataPlanes.database_path``).

    Each call opens the file and closes it again, as the Raw store does (DuckDB lets
    one process at a time write a file); ``session()`` and ``transaction()`` keep one
    connection for their block. Not for sharing between threads.
    """

    dialect = "duckdb"

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._con: duckdb.DuckDBPyConnection | None = None
        self._in_transaction = False

    @contextlib.contextmanager
    def session(self) -> Iterator[DuckDBEngine]:
        """Keep one connection open until the block ends (opening costs ~25 ms)."""
        with self._connection():
            yield self

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """Run the block in one DuckDB transaction: committed at its end, rolled back on any error."""
        with self._connection() as con:
            if self._in_transaction:
                yield
                return
            with _translated():
                con.begin()
            self._in_transaction = True
            try:
                yield
                with _translated():
                    con.commit()
            except BaseException:
                with contextlib.suppress(duckdb.Error):  # a failed COMMIT has rolled back already
                    con.rollback()
                raise
            finally:
                self._in_transaction = False

    def execute(self, sql: str) -> None:
        with self._connection() as con, _translated():
            con.execute(sql)

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        with self._connection() as con, _translated():
            return con.execute(sql).fetchall()

    def dicts(self, sql: str) -> list[dict[str, Any]]:
        with self._connection() as con, _translated():
            cursor = con.execute(sql)
            names = [d[0] for d in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def describe(self, sql: str) -> list[tuple[str, str]]:
        return [(row[0], row[1]) for row in self.rows(f"DESCRIBE {sql}")]

    def table_exists(self, schema: str, name: str) -> bool:
        return bool(self.rows(render(_catalog("tables", schema, name, "table_name"), self.dialect)))

    def columns(self, schema: str, name: str) -> list[tuple[str, str]]:
        query = _catalog("columns", schema, name, "column_name", "data_type").order_by("ordinal_position")
        return [(n, t) for n, t in self.rows(render(query, self.dialect))]

    @contextlib.contextmanager
    def _connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        if self._con is not None:
            yield self._con
            return
        if not self.path.is_file():
            raise NotFound("data plane", self.path.parent.name)
        try:
            with _translated():
                con = duckdb.connect(str(self.path))
        except EngineError as exc:
            if "lock" in exc.detail.lower():
                raise DataPlaneBusy(
                    "the tenant's data plane is open in another process; try again shortly",
                    tenant_id=self.path.parent.name,
                ) from None
            raise
        self._con = con
        try:
            con.execute("SET TimeZone = 'UTC'")
            yield con
        finally:
            self._con = None
            con.close()


def _catalog(view: str, schema: str, name: str, *columns: str) -> exp.Select:
    """``SELECT columns FROM information_schema.<view> WHERE table_schema = schema AND table_name = name``."""
    return (
        exp.select(*columns)
        .from_(exp.table_(view, db="information_schema"))
        .where(exp.column("table_schema").eq(exp.Literal.string(schema)))
        .where(exp.column("table_name").eq(exp.Literal.string(name)))
    )


@contextlib.contextmanager
def _translated() -> Iterator[None]:
    """DuckDB's errors as ``EngineError`` (its first line: the rest repeats the statement)."""
    try:
        yield
    except duckdb.Error as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise EngineError(message, engine="duckdb", cause=type(exc).__name__) from exc
