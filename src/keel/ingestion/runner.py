"""One stream of a source read into the Raw layer: batches commit with their checkpoints, failures retried.

``sync_stream`` starts from the stream's last committed state, reads, and buffers
the records of each ``RecordBatch`` until the ``StateCheckpoint`` that covers
them; then it commits them and that state in one ``RawStore.commit_batch``.
Records after the last checkpoint when a read ends or fails are not committed:
no state covers them, and the next read delivers them again. So a crash, a kill
or a retry at any point neither loses nor duplicates a record.

A batch may come as an Arrow table (``RecordBatch.arrow``); the batches up to a
checkpoint are then handed to Raw as one table (windows filtered in Arrow), and
as records only when they do not share one schema or a window's cursor column
has a type Arrow cannot compare as the records would.

Memory: the records between two checkpoints are held until they commit. Every
built-in connector checkpoints at least every ``batch_size`` records, except the
SQL connector on a table without a primary key, which checkpoints once at the
end: such a table is held whole.

Transient failures (``failures.py`` decides which) are retried with exponential
backoff and full jitter, at most ``RetryPolicy.max_attempts`` attempts in all,
each attempt resuming from the last committed state. Anything else ends the run
at once. Either way the result says what happened; batches committed before a
failure stay.

Records a connector delivers again are landed again, unless ``dedupe`` (the
default for connectors that ``repeats_boundary_records`` and for windows): so a
full-refresh stream lands a complete copy with every sync, as in Airbyte's
"full refresh | append", and with ``dedupe`` only the records Raw lacks.

A replay or backfill reads a ``Window`` of the cursor: from a state the connector
makes for the window's start (``Connector.window_state``), keeping records with
``start <= cursor < end``, committed with ``dedupe`` (rows Raw holds already are
not added again) and without moving the stream's regular checkpoint.

A ``gate`` (the drift watch of story 03a) sees the stream as discovered before
anything is read, once per run, and says what the run may do with it
(``Admission``): land as usual, ``quarantine`` (every batch lands in the
stream's quarantine table ``raw."<table>__quarantine"`` instead, with the same
columns and bookkeeping and committed with its checkpoint like any batch, so it
is kept exactly once and can be released later), or ``refuse`` (nothing is
read, the run fails, the checkpoint stays where it was).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import random
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import pyarrow as pa
import pyarrow.compute as pc

from keel.connectors.protocol import (
    REDACTED,
    Connector,
    Message,
    RecordBatch,
    StateCheckpoint,
    Stream,
    redact,
)
from keel.ingestion.failures import classify
from keel.ingestion.raw import KINDS, Kind, RawStore, quarantine_table
from keel.kernel.errors import InvalidInput

DEFAULT_BATCH_SIZE = 5000
EventSink = Callable[[str, dict[str, Any]], None]


@dataclass(frozen=True)
class Admission:
    """What a ``gate`` lets a run do with the stream it discovered: ``land`` its batches in Raw,
    ``quarantine`` them, or ``refuse`` to read it (the run fails with ``failure`` and ``reason``)."""

    action: Literal["land", "quarantine", "refuse"] = "land"
    failure: str = "refused"
    reason: str = ""


LAND = Admission()
Gate = Callable[[Stream], Admission]


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded retries: at most ``max_attempts`` attempts; delays capped at ``max_delay`` seconds."""

    max_attempts: int = 3
    base_delay: float = 1.0
    max_delay: float = 30.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise InvalidInput("retry.max_attempts", "must be at least 1")
        if self.base_delay < 0 or self.max_delay < 0:
            raise InvalidInput("retry", "delays must not be negative")

    def delay(self, failures: int, rand: Callable[[], float] = random.random) -> float:
        """Seconds to wait after the ``failures``-th failed attempt: full jitter, uniform in [0, cap]."""
        cap = min(self.max_delay, self.base_delay * 2 ** min(failures - 1, 62))
        return rand() * cap


@dataclass(frozen=True)
class Window:
    """Cursor values ``start <= cursor < end`` (ISO 8601 for dates and date-times)."""

    cursor_field: str
    start: Any
    end: Any


@dataclass(frozen=True)
class SyncResult:
    """What a run did. ``error`` is None on success; otherwise ``failure`` is its kind, ``transient``
    whether retries ran out (rather than the failure being one no retry can fix), and the batches
    committed before it stay. ``state`` is where the next sync resumes; ``first_failure`` the kind
    of the first failed attempt (None when the first attempt succeeded)."""

    rows: int
    batches: int
    skipped: int
    attempts: int
    state: dict[str, Any] | None
    error: str | None = None
    failure: str | None = None
    transient: bool = False
    first_failure: str | None = None
    batch_ids: tuple[str, ...] = ()
    quarantined: bool = False  # the batches landed in the quarantine table, not in Raw
    # Raw-layer data-quality rules (04): outcome per rule id over the run's batches, the rows
    # they quarantined, and the outcome of the batch a block rule stopped (None: none did).
    rule_results: dict = field(default_factory=dict)
    rule_quarantined: int = 0
    rule_blocked: dict | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def sync_stream(
    connector: Connector,
    config: Mapping[str, Any],
    stream_name: str,
    raw: RawStore,
    *,
    source_id: str,
    source_key: str,
    run_id: str | None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    kind: Kind = "sync",
    window: Window | None = None,
    retry: RetryPolicy = RetryPolicy(),
    sleep: Callable[[float], None] = time.sleep,
    on_event: EventSink | None = None,
    stream: Stream | None = None,
    dedupe: bool | None = None,
    gate: Gate | None = None,
    rules: Sequence = (),
) -> SyncResult:
    """Read ``stream_name`` into ``raw`` (see the module docstring); never raises for a failed read.

    ``stream`` is the stream as discovered (its schema types the Raw columns);
    without it the connector's ``discover`` is asked. ``dedupe`` (default: for
    windows, and for connectors that ``repeats_boundary_records``) skips records
    whose hash Raw holds already. ``on_event(kind, details)`` hears ``batch``
    (each commit) and ``retry`` (before each wait). Bad arguments (kind, a window
    the connector or the stream cannot read) raise ``InvalidInput`` before reading.
    ``gate(stream)`` is asked once, after discovery and before the first read, what
    the run may do (``Admission``); an exception it raises fails the attempt.
    ``rules`` (the Raw table's enabled data-quality rules) are applied to each batch as it
    commits (``RawStore.commit_batch``): a failing ``block`` rule fails the run, no retry,
    with that batch not landed (``SyncResult.rule_blocked``).
    """
    if kind not in KINDS:
        raise InvalidInput("kind", f"must be one of {', '.join(KINDS)}")
    if (window is None) != (kind == "sync"):
        raise InvalidInput("window", f"a {kind} {'takes no' if kind == 'sync' else 'needs a'} window")
    if batch_size < 1:
        raise InvalidInput("batch_size", "must be at least 1")
    run = _Run(
        connector=connector,
        config=config,
        name=stream_name,
        raw=raw,
        source_id=source_id,
        source_key=source_key,
        run_id=run_id,
        batch_size=batch_size,
        kind=kind,
        window=window,
        stream=stream,
        dedupe=_dedupe(connector, window, dedupe),
        emit=on_event if on_event is not None else (lambda _kind, _details: None),
        gate=gate,
        rules=tuple(rules),
    )
    if window is not None:
        run.resume = connector.window_state(config, stream_name, window.start, window.end)
        if run.stream is None:
            with contextlib.suppress(Exception):  # a source down now is retried by the attempts
                run.stream = connector.discover(config).stream(stream_name)
        if run.stream is not None:
            _window_filter(run.stream, window)  # a window the stream cannot have is refused now
    secrets = _secret_values(connector, config)
    attempts = 0
    while True:
        attempts += 1
        try:
            run.attempt(attempts)
            return run.result(attempts)
        except Exception as exc:
            failure = classify(exc)
            message = _scrub(failure.message, secrets)
            run.first_failure = run.first_failure or failure.kind
            if not failure.transient or attempts >= retry.max_attempts:
                return run.result(attempts, error=message, failure=failure.kind, transient=failure.transient)
            delay = retry.delay(attempts)
            run.emit(
                "retry",
                {
                    "attempt": attempts,
                    "failure": failure.kind,
                    "error": message,
                    "delay_s": delay,
                    "batches": len(run.batch_ids),
                },
            )
            sleep(delay)


def _dedupe(connector: Connector, window: Window | None, dedupe: bool | None) -> bool:
    if dedupe is not None:
        return dedupe
    return window is not None or bool(getattr(connector, "repeats_boundary_records", False))


@dataclass
class _Run:
    """The state of one ``sync_stream`` across its attempts."""

    connector: Connector
    config: Mapping[str, Any]
    name: str
    raw: RawStore
    source_id: str
    source_key: str
    run_id: str | None
    batch_size: int
    kind: Kind
    window: Window | None
    stream: Stream | None
    dedupe: bool
    emit: EventSink
    gate: Gate | None = None
    rules: tuple = ()
    admission: Admission | None = None  # the gate's answer, asked once per run
    resume: dict[str, Any] | None = None  # windows: where the next attempt reads from
    rows: int = 0
    skipped: int = 0
    batch_ids: list[str] = field(default_factory=list)
    first_failure: str | None = None
    state: dict[str, Any] | None = None
    rule_results: dict = field(default_factory=dict)
    rule_quarantined: int = 0
    rule_blocked: dict | None = None

    def attempt(self, number: int) -> None:
        with self.raw.session() as store:
            if self.stream is None:
                self.stream = self.connector.discover(self.config).stream(self.name)
            keep = _window_filter(self.stream, self.window) if self.window else None
            if self.admission is None:
                self.admission = self.gate(self.stream) if self.gate is not None else LAND
            self.state = store.last_state(self.source_id, self.name)
            if self.admission.action == "refuse":
                return  # nothing is read; ``result`` reports the refusal
            state = self.resume if self.window else self.state
            messages = self.connector.read(self.config, self.name, state, batch_size=self.batch_size)
            try:
                self._land(store, messages, state, keep, number)
            finally:
                close = getattr(messages, "close", None)
                if close is not None:
                    close()  # ends the source session before a retry waits

    def _land(
        self,
        store: RawStore,
        messages: Iterator[Message],
        state: dict[str, Any] | None,
        keep: _Keep | None,
        attempt: int,
    ) -> None:
        pending: list[RecordBatch] = []
        for message in messages:
            if message.stream != self.name:
                continue
            if isinstance(message, RecordBatch):
                pending.append(message)
                continue
            if not isinstance(message, StateCheckpoint):
                continue
            batch = _combine(pending, keep)
            if len(batch) or (keep is None and message.state != state):
                self._commit(store, batch, message.state, attempt)
            state = message.state
            if keep is not None:
                self.resume = state
            else:
                self.state = state
            pending = []

    def _commit(
        self,
        store: RawStore,
        records: list[Mapping[str, Any]] | pa.Table,
        state: dict[str, Any],
        attempt: int,
    ) -> None:
        assert self.stream is not None
        quarantined = self.admission is not None and self.admission.action == "quarantine"
        try:
            batch = store.commit_batch(
                self.source_id,
                self.source_key,
                self.stream,
                run_id=self.run_id,
                records=records,
                state=state,
                kind=self.kind,
                dedupe=self.dedupe,
                advance_state=self.window is None,
                table=quarantine_table(self.source_key, self.stream.name) if quarantined else None,
                rules=() if quarantined else self.rules,
            )
        except Exception as exc:
            blocked = getattr(exc, "outcome", None)  # a block rule stopped the batch (RuleBlocked)
            if isinstance(blocked, dict):
                self.rule_blocked = blocked
            raise
        for rule_id, result in batch.rule_results.items():
            self._count(rule_id, result)
        self.rule_quarantined += batch.quarantined
        self.rows += batch.rows
        self.skipped += batch.skipped
        self.batch_ids.append(batch.batch_id)
        self.emit(
            "batch",
            {"batch_id": batch.batch_id, "rows": batch.rows, "skipped": batch.skipped, "attempt": attempt},
        )

    def _count(self, rule_id: str, result: Mapping[str, Any]) -> None:
        """Add one batch's outcome of a rule to the run's (table-level: failed in any batch)."""
        held = self.rule_results.get(rule_id)
        if held is None:
            self.rule_results[rule_id] = dict(result)
            return
        for key in ("checked", "failed", "passed"):
            held[key] += result[key]
        if "observed" in result:
            held["observed"] = result["observed"]

    def result(self, attempts: int, **failure: Any) -> SyncResult:
        admission = self.admission or LAND
        if admission.action == "refuse" and not failure:
            failure = {"error": admission.reason, "failure": admission.failure}
        return SyncResult(
            rows=self.rows,
            batches=len(self.batch_ids),
            skipped=self.skipped,
            attempts=attempts,
            state=self.state,
            first_failure=self.first_failure,
            batch_ids=tuple(self.batch_ids),
            quarantined=admission.action == "quarantine",
            rule_results=self.rule_results,
            rule_quarantined=self.rule_quarantined,
            rule_blocked=self.rule_blocked,
            **failure,
        )


# --- batches and windows ------------------------------------------------------------------------


def _combine(batches: Sequence[RecordBatch], keep: _Keep | None) -> list[Mapping[str, Any]] | pa.Table:
    """The batches' records in the window (all without one): one Arrow table when they all are
    tables of one schema (and Arrow can filter the window), else the records."""
    tables = [batch.arrow for batch in batches]
    first = tables[0] if tables else None
    if first is not None and all(t is not None and t.schema.equals(first.schema) for t in tables):
        table = pa.concat_tables(tables) if len(tables) > 1 else first
        kept = table if keep is None else keep.table(table)
        if kept is not None:
            return kept
    records = [record for batch in batches for record in batch.records]
    return records if keep is None else [record for record in records if keep(record)]


@dataclass(frozen=True)
class _Keep:
    """Keeps the records whose cursor lies in the window, compared as the schema types the cursor."""

    field: str
    key: Callable[[Any], Any]
    kind: str  # number, instant or string: how the values compare
    start: Any
    end: Any

    def __call__(self, record: Mapping[str, Any]) -> bool:
        value = self.key(record.get(self.field))
        return value is not None and self.start <= value < self.end

    def table(self, table: pa.Table) -> pa.Table | None:
        """The rows of an Arrow table to keep, computed in Arrow; None when only its records can say
        (a cursor column of another type, or bounds Arrow would compare inexactly)."""
        found = table.schema.get_all_field_indices(self.field)
        if len(found) != 1:
            return table.slice(0, 0) if not found else None  # no record holds the cursor
        column = table.column(found[0])
        typed = _arrow_bounds(self.kind, column.type, self.start, self.end)
        if typed is None:
            return None
        kind, start, end = typed
        values = column.cast(kind)
        return table.filter(pc.and_(pc.greater_equal(values, start), pc.less(values, end)))


_UTC_MICROS = pa.timestamp("us", "UTC")


def _arrow_bounds(
    kind: str, arrow_type: pa.DataType, start: Any, end: Any
) -> tuple[pa.DataType, Any, Any] | None:
    """(type to compare in, start, end) of a window over a column of ``arrow_type``; None: no exact way."""
    t = pa.types
    if kind == "number" and t.is_integer(arrow_type):
        exact = all(type(b) is int and -(2**63) <= b < 2**63 for b in (start, end))
        return (pa.int64(), pa.scalar(start, pa.int64()), pa.scalar(end, pa.int64())) if exact else None
    if kind == "number" and t.is_floating(arrow_type):
        exact = all(type(b) is float or (type(b) is int and abs(b) <= 2**53) for b in (start, end))
        return (pa.float64(), pa.scalar(float(start)), pa.scalar(float(end))) if exact else None
    # A naive date-time (and a date, at its midnight) is UTC, as ``_instant`` reads the records' text.
    if kind == "instant" and (
        t.is_date32(arrow_type) or (t.is_timestamp(arrow_type) and arrow_type.unit != "ns")
    ):
        return _UTC_MICROS, pa.scalar(start, _UTC_MICROS), pa.scalar(end, _UTC_MICROS)
    if kind == "string" and (t.is_string(arrow_type) or t.is_large_string(arrow_type)):
        return pa.string(), pa.scalar(start, pa.string()), pa.scalar(end, pa.string())
    return None


def _window_filter(stream: Stream, window: Window) -> _Keep:
    """What keeps the records whose cursor lies in the window, compared as the schema types it."""
    name = window.cursor_field
    schema = stream.json_schema.get("properties", {}).get(name)
    if schema is None:
        raise InvalidInput("window.cursor_field", f"stream '{stream.name}' has no field '{name}'")
    if stream.cursor_field and stream.cursor_field != name:
        raise InvalidInput(
            "window.cursor_field", f"stream '{stream.name}' is read incrementally by '{stream.cursor_field}'"
        )
    key, what, kind = _cursor_key(schema)
    start, end = key(window.start), key(window.end)
    for bound, value in (("start", start), ("end", end)):
        if value is None:
            raise InvalidInput(f"window.{bound}", f"must be {what}")
    if not start < end:
        raise InvalidInput("window.end", "must be after window.start")
    return _Keep(name, key, kind, start, end)


def _cursor_key(schema: Mapping[str, Any]) -> tuple[Callable[[Any], Any], str, str]:
    declared = schema.get("type")
    types = {declared} if isinstance(declared, str) else set(declared or ())
    types.discard("null")
    if types and types <= {"integer", "number"}:
        return _number, "a number", "number"
    if types == {"string"} and schema.get("format") in ("date-time", "date"):
        return _instant, "an ISO 8601 date or date-time", "instant"
    return (lambda v: v if isinstance(v, str) else None), "a string", "string"


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return value
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _instant(value: Any) -> dt.datetime | None:
    """An ISO date or date-time as an aware datetime (no offset: UTC; a date: its midnight UTC)."""
    if not isinstance(value, str):
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


# --- secrets ----------------------------------------------------------------------------------


def _secret_values(connector: Connector, config: Mapping[str, Any]) -> list[str]:
    """The configuration's secret values (per the spec), to keep them out of every message."""
    try:
        hidden = redact(connector.spec(), config)
    except Exception:  # a broken spec must not break the run; nothing to scrub then
        return []
    found: list[str] = []

    def walk(value: Any, shown: Any) -> None:
        if isinstance(value, Mapping) and isinstance(shown, Mapping):
            for key, item in value.items():
                walk(item, shown.get(key))
        elif isinstance(value, list) and isinstance(shown, list):
            for item, item_shown in zip(value, shown, strict=False):
                walk(item, item_shown)
        elif isinstance(value, str) and shown == REDACTED and len(value) >= 3:
            found.append(value)

    walk(config, hidden)
    return sorted(found, key=len, reverse=True)


def _scrub(message: str, secrets: list[str]) -> str:
    for secret in secrets:
        message = message.replace(secret, REDACTED)
    return message
