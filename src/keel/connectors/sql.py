"""The SQL database connector: the tables and views of one schema of PostgreSQL, MySQL/MariaDB or SQLite.

Every session is read-only where the database allows it (PostgreSQL and MySQL:
``SET SESSION ... TRANSACTION READ ONLY``; SQLite: the file is opened with the
``mode=ro`` URI and ``PRAGMA query_only``), so reading can never write. Sessions
also run in UTC, so timestamps come out the same whatever the server's zone.

The password is kept out of the URL in the configuration (``password``, a
secret), put into the connection URL with ``URL.set`` only when connecting, and
scrubbed from every message this module produces.

Rows are streamed with server-side cursors, ``batch_size`` at a time. On
PostgreSQL, a table whose every column has a type Arrow reads exactly from text
(booleans, integers, floats, numerics, text, dates, date-times) is instead read
with one ``COPY (<the same query>) TO STDOUT (FORMAT csv)`` and parsed by Arrow:
the batches are Arrow tables (``RecordBatch.arrow``) holding the same records as
the cursor would give, so they land with the same record hashes. State::

    {"mode": "full_refresh", "last_pk": [...]}            # after each batch
    {"mode": "full_refresh", "last_pk": [...], "done": true}   # at the end
    {"mode": "incremental", "cursor": value, "last_pk": [...]}
    {"mode": "incremental", "cursor": start, "last_pk": null, "inclusive": true, "until": end}

Full refresh reads in primary-key order with keyset pagination (``WHERE pk >
last_pk``), so a crash mid-table resumes after the last committed key; a state
marked ``done`` starts a new full refresh. A table (or view) without a primary
key cannot be resumed: its batches are followed by one checkpoint only, at the
end, so the caller commits all or nothing. Incremental mode (a column named in
``cursor_fields``; tables with a primary key only) reads ``WHERE cursor >
last_cursor OR (cursor = last_cursor AND pk > last_pk) ORDER BY cursor, pk``;
rows whose cursor is NULL are never read incrementally. ``window_state`` makes
the last form, for a replay or backfill: ``cursor >= start`` (``inclusive``), and
``cursor < until`` on every read that carries ``until`` (its checkpoints keep it).
Values in records and
state are JSON-safe exactly as in the files connector (temporal → ISO 8601,
decimal → exact string, bytes → base64).
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator, Mapping, Sequence
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.pool import NullPool

from keel.connectors.errors import ConnectorError
from keel.connectors.protocol import (
    REDACTED,
    Catalog,
    Connector,
    Failure,
    Message,
    RecordBatch,
    StateCheckpoint,
    Stream,
    jsonable,  # one conversion for every connector
    jsonable_column,
    validate_config,
)
from keel.kernel.errors import InvalidInput, NotFound

SUGGESTED_CURSOR = "updated_at"
APPLICATION_NAME = "keel-connector-sql"

SPEC: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "SQL database",
    "type": "object",
    "required": ["url"],
    "additionalProperties": False,
    "properties": {
        "url": {
            "type": "string",
            "minLength": 1,
            "description": "SQLAlchemy URL without the password, e.g. "
            "'postgresql+psycopg://reader@db:5432/erp', 'mysql+pymysql://reader@db:3306/erp', "
            "'sqlite:////data/erp.db'.",
        },
        "password": {
            "type": "string",
            "airbyte_secret": True,
            "x-secret": True,
            "description": "Password of the URL's user.",
        },
        "schema": {
            "type": "string",
            "minLength": 1,
            "description": "Schema to read; default: the connection's default schema.",
        },
        "tables": {
            "type": "array",
            "items": {"type": "string", "minLength": 1},
            "uniqueItems": True,
            "description": "Tables and views to offer as streams; default: all of the schema.",
        },
        "cursor_fields": {
            "type": "object",
            "additionalProperties": {"type": "string", "minLength": 1},
            "description": "Table → column read incrementally (e.g. updated_at); other tables are "
            "read in full.",
        },
        "batch_size": {
            "type": "integer",
            "minimum": 1,
            "description": "Rows per batch and checkpoint; overrides the caller's batch size.",
        },
        "connect_timeout": {
            "type": "integer",
            "minimum": 1,
            "maximum": 300,
            "default": 5,
            "description": "Seconds to wait for the server to answer a connection.",
        },
    },
}


class SqlConnector(Connector):
    """Reads the tables and views of a SQL database schema, one stream per table."""

    name = "sql"
    version = "1.0.0"

    def spec(self) -> dict[str, Any]:
        return SPEC

    def probe(self, cfg: dict[str, Any]) -> tuple[bool, str, Failure | None]:
        try:
            with read_only_connection(cfg) as conn:
                conn.execute(sa.text("SELECT 1")).scalar_one()
                read_only = _is_read_only(conn)
                inspector = sa.inspect(conn)
                schema = cfg.get("schema")
                if schema is not None and not inspector.has_schema(schema):
                    return False, f"schema '{schema}' does not exist", "config"
                names = set(_relations(inspector, schema))
                missing = [t for t in cfg.get("tables", []) if t not in names]
                if missing:
                    return False, f"table(s) not found: {', '.join(missing)}", "config"
        except sa.exc.DBAPIError as exc:
            failure, message = describe(exc, cfg.get("password"))
            return False, message, failure
        session = "the session is read-only" if read_only else "the session is NOT read-only"
        return True, f"{_display(cfg)} answers SELECT 1; {session}", None

    def discover(self, config: Mapping[str, Any]) -> Catalog:
        cfg = self.configure(config)
        schema = cfg.get("schema")
        with _errors(cfg, None), read_only_connection(cfg) as conn:
            inspector = sa.inspect(conn)
            names = _relations(inspector, schema)
            wanted = cfg.get("tables") or names
            streams = []
            for name in wanted:
                if name not in names:
                    raise NotFound("stream", name)
                table = _reflect(conn, name, schema)
                streams.append(_stream(table, cfg.get("cursor_fields", {}).get(name)))
        return Catalog(streams=tuple(streams))

    def read(
        self,
        config: Mapping[str, Any],
        stream: str,
        state: Mapping[str, Any] | None,
        *,
        batch_size: int = 1000,
    ) -> Iterator[Message]:
        cfg = self.configure(config)
        if cfg.get("tables") and stream not in cfg["tables"]:
            raise NotFound("stream", stream)
        size = cfg.get("batch_size", batch_size)
        if size < 1:
            raise InvalidInput("batch_size", "must be at least 1")
        return _read(cfg, stream, dict(state or {}), size)

    def window_state(
        self, config: Mapping[str, Any], stream: str, start: Any, end: Any = None
    ) -> dict[str, Any]:
        cfg = self.configure(config)
        if stream not in cfg.get("cursor_fields", {}):
            raise InvalidInput(
                "window",
                f"stream '{stream}' is read in full; set config.cursor_fields.{stream} to read windows",
            )
        if start is None:
            raise InvalidInput("window.start", "is required")
        state = {"mode": "incremental", "cursor": start, "last_pk": None, "inclusive": True}
        return state if end is None else {**state, "until": end}

    def configure(self, config: Mapping[str, Any]) -> dict[str, Any]:
        cfg = validate_config(self, config)
        try:
            url = sa.make_url(cfg["url"])
        except sa.exc.ArgumentError:
            raise InvalidInput(
                "config.url", "is not a SQLAlchemy URL (dialect+driver://user@host/db)"
            ) from None
        if url.password is not None:
            raise InvalidInput("config.url", "must not hold a password; put it in config.password")
        return cfg


# --- connections ------------------------------------------------------------------------------


def connection_url(cfg: Mapping[str, Any]) -> URL:
    """The URL to connect with: the password injected; SQLite files opened read-only."""
    url = sa.make_url(cfg["url"])
    if url.get_backend_name() == "sqlite":
        database = url.database or ""
        if database and database != ":memory:" and not database.startswith("file:"):
            url = url.set(database=f"file:{quote(database, safe='/')}")
        if url.database and url.database.startswith("file:"):
            url = url.update_query_dict({"mode": "ro", "uri": "true"})
        return url
    if cfg.get("password") is not None:
        url = url.set(password=cfg["password"])
    return url


def engine_for(cfg: Mapping[str, Any]) -> Engine:
    """An engine whose every connection is read-only (where the database allows it) and in UTC."""
    url = connection_url(cfg)
    backend = url.get_backend_name()
    timeout = int(cfg.get("connect_timeout", 5))
    connect_args: dict[str, Any] = {}
    if backend == "postgresql":
        connect_args = {"connect_timeout": timeout, "application_name": APPLICATION_NAME}
    elif backend in ("mysql", "mariadb"):
        connect_args = {"connect_timeout": timeout}
    try:
        engine = sa.create_engine(url, poolclass=NullPool, connect_args=connect_args)
    except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError) as exc:
        raise InvalidInput("config.url", f"cannot be used: {_scrub(str(exc), cfg.get('password'))}") from None

    @sa.event.listens_for(engine, "connect")
    def _read_only_session(dbapi_connection: Any, _record: Any) -> None:
        if backend == "sqlite":
            dbapi_connection.execute("PRAGMA query_only = ON")
            return
        statements = {
            "postgresql": ("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY", "SET TIME ZONE 'UTC'"),
            "mysql": ("SET SESSION TRANSACTION READ ONLY", "SET time_zone = '+00:00'"),
            "mariadb": ("SET SESSION TRANSACTION READ ONLY", "SET time_zone = '+00:00'"),
        }.get(backend, ())
        if statements:
            cursor = dbapi_connection.cursor()
            for statement in statements:
                cursor.execute(statement)
            cursor.close()
            dbapi_connection.commit()

    return engine


@contextlib.contextmanager
def read_only_connection(cfg: Mapping[str, Any]) -> Iterator[Connection]:
    """A connection to the configured database whose session cannot write (where the database allows it)."""
    engine = engine_for(cfg)
    try:
        with engine.connect() as conn:
            yield conn
    finally:
        engine.dispose()


def _is_read_only(conn: Connection) -> bool:
    backend = conn.dialect.name
    with contextlib.suppress(sa.exc.DBAPIError):
        if backend == "postgresql":
            return conn.exec_driver_sql("SHOW transaction_read_only").scalar_one() == "on"
        if backend == "sqlite":
            return conn.exec_driver_sql("PRAGMA query_only").scalar_one() == 1
        if backend in ("mysql", "mariadb"):
            for variable in ("@@session.transaction_read_only", "@@session.tx_read_only"):
                with contextlib.suppress(sa.exc.DBAPIError):
                    return int(conn.exec_driver_sql(f"SELECT {variable}").scalar_one()) == 1
                conn.rollback()
    return False


def _display(cfg: Mapping[str, Any]) -> str:
    url = sa.make_url(cfg["url"])
    if url.get_backend_name() == "sqlite":
        return f"sqlite database '{url.database or ':memory:'}'"
    where = url.set(password=None).render_as_string(hide_password=True)
    return f"{where} (schema '{cfg['schema']}')" if cfg.get("schema") else where


# --- failures ---------------------------------------------------------------------------------

# SQLSTATE (PostgreSQL) and error numbers (MySQL/MariaDB) → kind of failure.
_PG_STATES: dict[str, Failure] = {
    "28P01": "auth",  # invalid_password
    "28000": "auth",  # invalid_authorization_specification (unknown role, pg_hba reject)
    "3D000": "config",  # invalid_catalog_name: unknown database
    "3F000": "config",  # invalid_schema_name
    "42P01": "config",  # undefined_table
    "42501": "permission",  # insufficient_privilege
    "57P01": "unreachable",  # admin_shutdown / terminated
    "57P02": "unreachable",
    "57P03": "unreachable",
    "08000": "unreachable",
    "08003": "unreachable",
    "08006": "unreachable",
}
_MYSQL_CODES: dict[int, Failure] = {
    1045: "auth",  # access denied for user (bad password)
    1049: "config",  # unknown database
    1146: "config",  # table doesn't exist
    1044: "permission",  # access denied to database
    1142: "permission",  # command denied on table
    1143: "permission",  # column access denied
    2002: "unreachable",
    2003: "unreachable",  # can't connect (refused, unknown host, timeout)
    2005: "unreachable",  # unknown host
    2006: "unreachable",  # server has gone away
    2013: "unreachable",  # lost connection during query
    1927: "unreachable",  # connection was killed (MariaDB)
    1053: "unreachable",  # server shutdown in progress
}
_UNREACHABLE_WORDS = (
    "connection refused",
    "could not translate host name",
    "name or service not known",
    "temporary failure in name resolution",
    "timeout expired",
    "timed out",
    "server closed the connection",
    "terminating connection",
    "connection is closed",
    "connection already closed",
    "consuming input failed",
    "no route to host",
)


def describe(exc: sa.exc.DBAPIError, password: str | None = None) -> tuple[Failure | None, str]:
    """The kind of failure of a driver error and a one-line message that never holds the password."""
    orig = exc.orig
    text = (str(orig) if orig is not None else str(exc)).strip().splitlines()
    message = _scrub(text[0] if text else type(exc).__name__, password)
    low = message.lower()
    failure: Failure | None = None
    state = getattr(orig, "sqlstate", None) or getattr(getattr(orig, "diag", None), "sqlstate", None)
    if state in _PG_STATES:
        failure = _PG_STATES[state]
    elif orig is not None and getattr(orig, "args", None) and isinstance(orig.args[0], int):
        failure = _MYSQL_CODES.get(orig.args[0])
    if failure is None:
        if "password authentication failed" in low or "no password supplied" in low or _unknown_role(low):
            failure = "auth"
        elif any(word in low for word in _UNREACHABLE_WORDS) or exc.connection_invalidated:
            failure = "unreachable"
        elif "does not exist" in low or "unable to open database file" in low or "not a database" in low:
            failure = "config"
        elif "permission denied" in low or "access denied" in low:
            failure = "permission"
    return failure, message


def _unknown_role(low: str) -> bool:
    # PostgreSQL refuses an unknown user before any SQLSTATE reaches the client: that is bad credentials.
    return low.find('role "') != -1 and "does not exist" in low


def _scrub(text: str, password: str | None) -> str:
    if password:
        text = text.replace(password, REDACTED)
    return text


@contextlib.contextmanager
def _errors(cfg: Mapping[str, Any], stream: str | None) -> Iterator[None]:
    """Driver errors as ``ConnectorError`` with ``reason`` = the kind of failure (or ``source``)."""
    try:
        yield
    except sa.exc.DBAPIError as exc:
        failure, message = describe(exc, cfg.get("password"))
        raise ConnectorError(message, stream=stream, reason=failure or "source") from None


# --- schema -----------------------------------------------------------------------------------


def _relations(inspector: sa.Inspector, schema: str | None) -> list[str]:
    """Tables then views of ``schema``, each sorted by name."""
    return sorted(inspector.get_table_names(schema=schema)) + sorted(inspector.get_view_names(schema=schema))


def _reflect(conn: Connection, name: str, schema: str | None) -> sa.Table:
    try:
        return sa.Table(name, sa.MetaData(), schema=schema, autoload_with=conn)
    except sa.exc.NoSuchTableError:
        raise NotFound("stream", name) from None


def _stream(table: sa.Table, cursor: str | None) -> Stream:
    pk = tuple(c.name for c in table.primary_key.columns)
    if cursor is not None and cursor not in table.columns:
        raise InvalidInput(
            f"config.cursor_fields.{table.name}", f"table '{table.name}' has no column '{cursor}'"
        )
    if cursor is None and pk and SUGGESTED_CURSOR in table.columns:
        cursor = SUGGESTED_CURSOR
    modes = {"full_refresh", "incremental"} if cursor and pk else {"full_refresh"}
    return Stream(
        name=table.name,
        json_schema={
            "type": "object",
            "properties": {c.name: json_schema_of(c.type, nullable=bool(c.nullable)) for c in table.columns},
        },
        supported_sync_modes=frozenset(modes),  # type: ignore[arg-type]
        cursor_field=cursor if pk else None,
        primary_key=pk,
    )


def _is_flag(sql_type: sa.types.TypeEngine) -> bool:
    """MySQL's BOOL is TINYINT(1); it reflects as an integer but holds booleans."""
    return type(sql_type).__name__ == "TINYINT" and getattr(sql_type, "display_width", None) == 1


def json_schema_of(sql_type: sa.types.TypeEngine, *, nullable: bool = True) -> dict[str, Any]:
    """JSON Schema of a column's values, typed as the files connector types Arrow columns."""
    schema: dict[str, Any]
    if isinstance(sql_type, sa.Boolean) or _is_flag(sql_type):
        schema = {"type": ["boolean"]}
    elif isinstance(sql_type, sa.Integer):
        schema = {"type": ["integer"]}
    elif isinstance(sql_type, sa.Float):
        schema = {"type": ["number"]}
    elif isinstance(sql_type, sa.Numeric):
        schema = {"type": ["string"], "format": "decimal"}
    elif isinstance(sql_type, sa.DateTime):
        schema = {"type": ["string"], "format": "date-time"}
    elif isinstance(sql_type, sa.Date):
        schema = {"type": ["string"], "format": "date"}
    elif isinstance(sql_type, sa.Time):
        schema = {"type": ["string"], "format": "time"}
    elif isinstance(sql_type, sa.Interval):
        schema = {"type": ["number"]}
    elif isinstance(sql_type, sa.LargeBinary | sa.types._Binary):
        schema = {"type": ["string"], "contentEncoding": "base64"}
    elif isinstance(sql_type, sa.JSON):
        schema = {"type": ["array", "boolean", "number", "object", "string"]}
    else:
        schema = {"type": ["string"]}
    if nullable:
        schema["type"] = [*schema["type"], "null"]
    return schema


# --- reading ----------------------------------------------------------------------------------


def _read(cfg: dict[str, Any], stream: str, state: dict[str, Any], batch_size: int) -> Iterator[Message]:
    schema = cfg.get("schema")
    cursor_name = cfg.get("cursor_fields", {}).get(stream)
    last: dict[str, Any] | None = None
    with _errors(cfg, stream), read_only_connection(cfg) as conn:
        table = _reflect(conn, stream, schema)
        plan = _Plan(table, cursor_name, state)
        for batch in _copy_batches(conn, plan, batch_size) or _cursor_batches(conn, plan, batch_size):
            yield RecordBatch(stream, batch) if isinstance(batch, list) else RecordBatch(stream, arrow=batch)
            if plan.pk:
                last = plan.state_after(_last_row(batch))
                yield StateCheckpoint(stream, last)
    # The last checkpoint only once the session has ended: a session that fails to end (the server
    # went away after sending every row, which COPY makes likely) must not leave the next read a
    # finished full refresh, which would start over and deliver every row again.
    if plan.cursor is None:
        done = {"mode": "full_refresh", **({"last_pk": last["last_pk"]} if last else {}), "done": True}
        yield StateCheckpoint(stream, done)
    elif last is None:  # nothing new: the state stays as it was
        yield StateCheckpoint(stream, plan.start_state())


def _cursor_batches(conn: Connection, plan: _Plan, batch_size: int) -> Iterator[list[dict[str, Any]]]:
    """The query's records through a server-side cursor, ``batch_size`` at a time."""
    result = conn.execution_options(stream_results=True, yield_per=batch_size).execute(plan.query())
    for rows in result.partitions(batch_size):
        yield plan.records(rows)


def _last_row(batch: list[dict[str, Any]] | pa.Table) -> Mapping[str, Any]:
    if isinstance(batch, list):
        return batch[-1]
    return {name: batch.column(name)[-1].as_py() for name in batch.column_names}


# --- PostgreSQL: COPY into Arrow ----------------------------------------------------------------

# Each column's Arrow type when COPY's text of it parses to the value psycopg would
# make of the same text (a numeric stays text: its exact digits are the JSON value).
_COPY_TYPES: tuple[tuple[type[sa.types.TypeEngine], pa.DataType], ...] = (
    (sa.Boolean, pa.bool_()),
    (sa.Integer, pa.int64()),
    (sa.Float, pa.float64()),  # float4 too: psycopg reads its text as a Python float
    (sa.Numeric, pa.string()),
    (sa.Date, pa.date32()),
    (sa.String, pa.string()),  # text, varchar, char, enums, citext
)
_NOT_PLAIN_DECIMAL = r"^-?0\.0{6}"  # str(Decimal) writes these as 1E-7, 0E-9, ...


def _copy_types(conn: Connection, table: sa.Table) -> dict[str, pa.DataType] | None:
    """The Arrow type of each column to parse COPY's CSV into; None unless PostgreSQL and every
    column has such a type (otherwise the cursor reads the table)."""
    if conn.dialect.name != "postgresql" or conn.connection.dbapi_connection.info.encoding != "utf-8":
        return None
    types: dict[str, pa.DataType] = {}
    for column in table.columns:
        kind = column.type
        if isinstance(kind, sa.DateTime):
            types[column.name] = pa.timestamp("us", "UTC" if kind.timezone else None)  # sessions are UTC
            continue
        found = next((arrow for sql, arrow in _COPY_TYPES if isinstance(kind, sql)), None)
        if found is None:
            return None
        types[column.name] = found
    return types


def _copy_batches(conn: Connection, plan: _Plan, batch_size: int) -> Iterator[pa.Table] | None:
    """The query's rows as Arrow tables of ``batch_size`` rows, read with ``COPY ... TO STDOUT``;
    None where the cursor has to read them (see ``_copy_types``)."""
    types = _copy_types(conn, plan.table)
    if types is None:
        return None
    numerics = [c.name for c in plan.table.columns if _is_numeric(c.type)]
    return _CopyReader(plan.table.name, types, numerics).batches(conn, plan.query(), batch_size)


def _is_numeric(kind: sa.types.TypeEngine) -> bool:
    return isinstance(kind, sa.Numeric) and not isinstance(kind, sa.Float)


class _CopyReader:
    """Reads a query with ``COPY ... TO STDOUT (FORMAT csv)`` into Arrow tables."""

    def __init__(self, stream: str, types: dict[str, pa.DataType], numerics: list[str]) -> None:
        self.stream = stream
        self.numerics = numerics
        self.read_options = pa_csv.ReadOptions(column_names=list(types), use_threads=False)
        self.parse_options = pa_csv.ParseOptions(newlines_in_values=True)
        self.convert_options = pa_csv.ConvertOptions(
            column_types=types,
            null_values=[""],  # COPY writes NULL unquoted and empty text quoted
            strings_can_be_null=True,
            quoted_strings_can_be_null=False,
            true_values=["t"],
            false_values=["f"],
        )

    def batches(self, conn: Connection, query: sa.Select, batch_size: int) -> Iterator[pa.Table]:
        compiled = query.compile(dialect=conn.dialect)
        statement = f"COPY ({compiled}) TO STDOUT (FORMAT csv)"
        if not compiled.params:  # psycopg leaves the text alone: undo the pyformat escaping of %
            statement = statement.replace("%%", "%")
        dbapi = conn.connection.dbapi_connection
        try:
            with dbapi.cursor() as cursor:
                cursor.execute("SET LOCAL DateStyle = 'ISO'")  # psycopg reads any style; Arrow reads ISO
                yield from self._rows(cursor, statement, compiled.params, batch_size)
        except conn.dialect.loaded_dbapi.Error as exc:
            base = conn.dialect.loaded_dbapi.Error
            raise sa.exc.DBAPIError.instance(statement, None, exc, base) from None

    def _rows(
        self, cursor: Any, statement: str, params: dict[str, Any], batch_size: int
    ) -> Iterator[pa.Table]:
        with cursor.copy(statement, params or None) as copy:
            rows: list[Any] = []
            for row in copy:  # PostgreSQL sends each row of a COPY TO in a message of its own
                rows.append(row)
                if len(rows) == batch_size:
                    yield self.parse(rows)
                    rows = []
            if rows:
                yield self.parse(rows)

    def parse(self, rows: list[Any]) -> pa.Table:
        """One batch of COPY's CSV rows as an Arrow table; numerics as ``str(Decimal)`` writes them."""
        try:
            table = pa_csv.read_csv(
                pa.py_buffer(b"".join(rows)), self.read_options, self.parse_options, self.convert_options
            )
        except pa.ArrowInvalid as exc:  # a value psycopg cannot read either: infinity, a year BC
            raise ConnectorError(f"cannot read a value: {exc}", stream=self.stream, reason="source") from None
        if table.num_rows != len(rows):
            raise ConnectorError("COPY rows did not parse one by one", stream=self.stream, reason="source")
        for name in self.numerics:
            index = table.schema.get_field_index(name)
            table = table.set_column(index, name, _decimal_text(table.column(index)))
        return table


def _decimal_text(column: pa.ChunkedArray) -> pa.ChunkedArray | pa.Array:
    """PostgreSQL's text of numerics as ``str(Decimal)`` writes it: the same but for values below
    1e-6 (and zeros with more than six decimals), which Python writes with an exponent."""
    odd = pc.match_substring_regex(column, _NOT_PLAIN_DECIMAL)
    if not pc.any(odd).as_py():
        return column
    return pa.array([None if v is None else str(Decimal(v)) for v in column.to_pylist()], pa.string())


class _Plan:
    """The query of one read and the state after each row."""

    def __init__(self, table: sa.Table, cursor_name: str | None, state: Mapping[str, Any]) -> None:
        self.table = table
        self.pk = list(table.primary_key.columns)
        self.cursor: sa.Column | None = None
        self.flags = {c.name for c in table.columns if _is_flag(c.type)}
        self.names = [c.name for c in table.columns]  # the query selects them in this order
        if cursor_name is not None:
            if cursor_name not in table.columns:
                raise InvalidInput(
                    f"config.cursor_fields.{table.name}",
                    f"table '{table.name}' has no column '{cursor_name}'",
                )
            if not self.pk:
                raise InvalidInput(
                    f"config.cursor_fields.{table.name}",
                    f"table '{table.name}' has no primary key: it can only be read in full",
                )
            self.cursor = table.columns[cursor_name]
        mode = "incremental" if self.cursor is not None else "full_refresh"
        if state and state.get("mode") != mode:
            raise InvalidInput(
                "state.mode", f"is {state.get('mode')!r} but stream '{table.name}' reads {mode}"
            )
        self.last_pk: list[Any] | None = None
        self.last_cursor: Any = None
        self.until: Any = None
        if state and not state.get("done"):
            if state.get("last_pk") is not None:
                if not self.pk or len(state["last_pk"]) != len(self.pk):
                    raise InvalidInput("state.last_pk", f"does not match the primary key of '{table.name}'")
                self.last_pk = [
                    _from_json(v, c, "state.last_pk") for v, c in zip(state["last_pk"], self.pk, strict=True)
                ]
            if self.cursor is not None and state.get("cursor") is not None:
                self.last_cursor = _from_json(state["cursor"], self.cursor, "state.cursor")
            if self.cursor is not None and state.get("until") is not None:
                self.until = _from_json(state["until"], self.cursor, "state.until")
        self.inclusive = bool(state.get("inclusive")) and self.last_pk is None
        self.state = dict(state)

    def query(self) -> sa.Select:
        query = sa.select(*self.table.columns)
        if self.cursor is not None:
            query = query.where(self.cursor.is_not(None))
            if self.until is not None:
                query = query.where(self.cursor < self.until)
            if self.last_cursor is not None:
                later = self.cursor >= self.last_cursor if self.inclusive else self.cursor > self.last_cursor
                if self.last_pk is not None:
                    later = sa.or_(
                        later, sa.and_(self.cursor == self.last_cursor, _after(self.pk, self.last_pk))
                    )
                query = query.where(later)
            return query.order_by(self.cursor, *self.pk)
        if self.last_pk is not None:
            query = query.where(_after(self.pk, self.last_pk))
        return query.order_by(*self.pk)

    def records(self, rows: Sequence[sa.Row]) -> list[dict[str, Any]]:
        """The rows as JSON records; converted column by column, the hot path of a read."""
        columns = [list(values) for values in zip(*rows, strict=True)]
        for index, name in enumerate(self.names):
            if name in self.flags:
                columns[index] = [None if v is None else bool(v) for v in columns[index]]
            else:
                columns[index] = jsonable_column(columns[index])
        return [dict(zip(self.names, values, strict=True)) for values in zip(*columns, strict=True)]

    def state_after(self, values: Mapping[str, Any]) -> dict[str, Any]:
        last_pk = [jsonable(values[c.name]) for c in self.pk]
        if self.cursor is None:
            return {"mode": "full_refresh", "last_pk": last_pk}
        state = {"mode": "incremental", "cursor": jsonable(values[self.cursor.name]), "last_pk": last_pk}
        return state if self.until is None else {**state, "until": self.state["until"]}

    def start_state(self) -> dict[str, Any]:
        return self.state if self.state else {"mode": "incremental", "cursor": None, "last_pk": None}


def _after(columns: Sequence[sa.Column], values: Sequence[Any]) -> sa.ColumnElement[bool]:
    """Keyset condition ``(c1, c2, ...) > (v1, v2, ...)``, spelled out so every database can use it."""
    first, value = columns[0], values[0]
    if len(columns) == 1:
        return first > value
    return sa.or_(first > value, sa.and_(first == value, _after(columns[1:], values[1:])))


def _from_json(value: Any, column: sa.Column, field: str) -> Any:
    """A state value (JSON) back as the Python value the column binds; ``field`` names it in errors.

    A date-time gets the column's kind: an offset is dropped (after conversion to
    UTC) for a column without zone, and UTC is assumed for a column with one.
    """
    if value is None:
        return None
    try:
        python_type = column.type.python_type
    except NotImplementedError:
        return value
    try:
        if python_type is dt.datetime:
            instant = dt.datetime.fromisoformat(str(value))
            if getattr(column.type, "timezone", False):
                return instant if instant.tzinfo else instant.replace(tzinfo=dt.UTC)
            return instant.astimezone(dt.UTC).replace(tzinfo=None) if instant.tzinfo else instant
        if python_type is dt.date:
            return dt.datetime.fromisoformat(str(value)).date()  # a date-time names its day
        if python_type is dt.time:
            return dt.time.fromisoformat(str(value))
        if python_type is Decimal:
            return Decimal(str(value))
        if python_type is int and not isinstance(value, bool):
            return int(value)
    except (ValueError, ArithmeticError):
        raise InvalidInput(
            field, f"{value!r} is not a valid {python_type.__name__} for column '{column.name}'"
        ) from None
    return value
