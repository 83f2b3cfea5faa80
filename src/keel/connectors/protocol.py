"""The connector interface: the Airbyte protocol verbs spec, check, discover, read.

A connector is a class registered under the ``keel.connectors`` entry-point
group. It is stateless: configuration and state are passed to each call, and
``read`` yields record batches each followed by the state checkpoint that
covers it, so a caller that commits a batch and its checkpoint together gets
exactly-once delivery across crashes and re-runs.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import re
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, ClassVar, Literal

import pyarrow as pa
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from keel.kernel.errors import InvalidInput, NotFound

SyncMode = Literal["full_refresh", "incremental"]
Failure = Literal["unreachable", "auth", "config", "permission"]
SECRET_MARKERS = ("airbyte_secret", "x-secret")
REDACTED = "***"
_SEMVER = re.compile(r"^\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$")


@dataclass(frozen=True)
class CheckResult:
    """Outcome of ``check``: ``failure`` says which kind when ``ok`` is false."""

    ok: bool
    message: str
    latency_ms: float
    failure: Failure | None = None


@dataclass(frozen=True)
class Stream:
    """One stream a source offers; ``json_schema`` describes one record."""

    name: str
    json_schema: dict[str, Any]
    supported_sync_modes: frozenset[SyncMode] = frozenset({"full_refresh"})
    cursor_field: str | None = None
    primary_key: tuple[str, ...] = ()


@dataclass(frozen=True)
class Catalog:
    """The streams ``discover`` found."""

    streams: tuple[Stream, ...] = field(default_factory=tuple)

    def stream(self, name: str) -> Stream:
        for stream in self.streams:
            if stream.name == name:
                return stream
        raise NotFound("stream", name)


class RecordBatch:
    """Records of one stream; the next ``StateCheckpoint`` of the stream covers them.

    A connector that reads columns may hand them over as an Arrow table instead
    (``arrow``): each row is a record, its values what ``jsonable`` makes of the
    row's Python values (``records_of``). Raw lands such a batch without making a
    dict per record; ``records`` converts it on first use, so a consumer that
    wants dicts gets the same records either way.
    """

    __slots__ = ("_records", "arrow", "stream")

    def __init__(
        self, stream: str, records: list[dict[str, Any]] | None = None, *, arrow: pa.Table | None = None
    ) -> None:
        if (records is None) == (arrow is None):
            raise TypeError("a RecordBatch holds either records or an Arrow table")
        self.stream = stream
        self.arrow = arrow
        self._records = records

    @property
    def records(self) -> list[dict[str, Any]]:
        if self._records is None:
            assert self.arrow is not None
            self._records = records_of(self.arrow)
        return self._records

    @property
    def size(self) -> int:
        """The number of records, without making them."""
        return self.arrow.num_rows if self.arrow is not None else len(self.records)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RecordBatch):
            return NotImplemented
        return self.stream == other.stream and self.records == other.records

    __hash__ = None  # type: ignore[assignment]  # unhashable, as its list of records always made it

    def __repr__(self) -> str:
        return f"RecordBatch(stream={self.stream!r}, records={self.records!r})"


@dataclass(frozen=True)
class StateCheckpoint:
    """State to resume ``read`` from once every batch yielded before it is committed."""

    stream: str
    state: dict[str, Any]


Message = RecordBatch | StateCheckpoint


class Connector(ABC):
    """A source of records. Subclasses set ``name`` and ``version`` (semver).

    ``repeats_boundary_records``: an incremental read may deliver again records an
    earlier read delivered (the source filters its cursor with ``>=``), so whoever
    lands them de-duplicates them.
    """

    name: ClassVar[str]
    version: ClassVar[str]
    repeats_boundary_records: ClassVar[bool] = False

    @abstractmethod
    def spec(self) -> dict[str, Any]:
        """JSON Schema (draft 2020-12) of the configuration; secrets carry ``airbyte_secret``."""

    def check(self, config: Mapping[str, Any]) -> CheckResult:
        """Test the configuration, connectivity and credentials without reading data.

        The same for every connector: a configuration that does not validate is a
        ``config`` failure; otherwise ``probe`` asks the source. The latency covers both.
        """
        started = time.perf_counter()
        try:
            ok, message, failure = self.probe(self.configure(config))
        except InvalidInput as exc:
            ok, message, failure = False, exc.detail, "config"
        return CheckResult(ok, message, (time.perf_counter() - started) * 1000, failure)

    def configure(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """The validated configuration with defaults filled in; connectors add their own checks."""
        return validate_config(self, config)

    @abstractmethod
    def probe(self, cfg: dict[str, Any]) -> tuple[bool, str, Failure | None]:
        """``(ok, message, failure)`` of asking the source, for a validated configuration."""

    @abstractmethod
    def discover(self, config: Mapping[str, Any]) -> Catalog:
        """List the streams the source offers, with a JSON Schema of their records."""

    @abstractmethod
    def read(
        self,
        config: Mapping[str, Any],
        stream: str,
        state: Mapping[str, Any] | None,
        *,
        batch_size: int = 1000,
    ) -> Iterator[Message]:
        """Yield batches of ``stream`` after ``state``, each followed by its checkpoint."""

    def window_state(
        self, config: Mapping[str, Any], stream: str, start: Any, end: Any = None
    ) -> dict[str, Any]:
        """A state from which ``read`` delivers the records whose cursor is ``>= start``, for a replay
        or backfill of a window. ``end`` (exclusive) lets a connector stop early; the caller still
        drops records at or after it. Connectors that cannot do this raise ``InvalidInput``.
        """
        raise InvalidInput("window", f"the {self.name} connector cannot read a window of a stream")


def is_semver(version: str) -> bool:
    return bool(_SEMVER.match(version))


def is_secret(schema: Mapping[str, Any]) -> bool:
    return any(schema.get(marker) is True for marker in SECRET_MARKERS)


def validate_config(connector: Connector, config: Mapping[str, Any]) -> dict[str, Any]:
    """Check ``config`` against the connector's spec and return it with defaults filled in.

    Raises ``InvalidInput`` whose ``field`` is the JSON path of the first error
    (``config.csv.delimiter``); a secret's value never appears in the message.
    """
    spec = connector.spec()
    if not isinstance(config, Mapping):
        raise InvalidInput("config", "must be an object")
    errors = sorted(
        Draft202012Validator(spec).iter_errors(config),
        key=lambda e: ([str(p) for p in e.absolute_path], e.message),
    )
    if errors:
        field_path, detail = _describe(errors[0], spec)
        raise InvalidInput(field_path, detail)
    return _with_defaults(spec, copy.deepcopy(dict(config)))


def _describe(error: ValidationError, spec: Mapping[str, Any]) -> tuple[str, str]:
    path = "config" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
    if error.validator == "required" and isinstance(error.instance, Mapping):
        missing = [name for name in error.validator_value if name not in error.instance]
        if missing:
            return f"{path}.{missing[0]}", "is required"
    if error.validator == "additionalProperties" and isinstance(error.instance, Mapping):
        known = set(error.schema.get("properties", {}))
        extra = sorted(name for name in error.instance if name not in known)
        if extra:
            return f"{path}.{extra[0]}", "is not a known setting"
    if is_secret(error.schema) or _secret_at(spec, list(error.absolute_path)):
        return path, f"is invalid ({error.validator})"
    return path, error.message


def _secret_at(schema: Mapping[str, Any], path: list[Any]) -> bool:
    node: Mapping[str, Any] = schema
    for part in path:
        node = node.get("items", {}) if isinstance(part, int) else node.get("properties", {}).get(part, {})
        if is_secret(node):
            return True
    return False


def _with_defaults(schema: Mapping[str, Any], value: Any) -> Any:
    if isinstance(value, dict):
        for name, sub in schema.get("properties", {}).items():
            if name not in value and "default" in sub:
                value[name] = copy.deepcopy(sub["default"])
            if name in value:
                value[name] = _with_defaults(sub, value[name])
    elif isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        return [_with_defaults(schema["items"], item) for item in value]
    return value


def redact(spec: Mapping[str, Any], config: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``config`` with every secret field (per ``spec``) replaced by ``"***"``.

    Looks through nested objects, arrays and ``oneOf``/``anyOf``/``allOf``
    variants: a field secret in any variant is hidden.
    """
    return _redact(spec, copy.deepcopy(dict(config)))


def properties_of(schema: Mapping[str, Any]) -> dict[str, list[Mapping[str, Any]]]:
    """Each property a JSON Schema object may hold, with every subschema (across oneOf/anyOf/allOf)."""
    found: dict[str, list[Mapping[str, Any]]] = {}
    for name, sub in schema.get("properties", {}).items():
        found.setdefault(name, []).append(sub)
    for keyword in ("oneOf", "anyOf", "allOf"):
        for variant in schema.get(keyword, []):
            for name, subs in properties_of(variant).items():
                found.setdefault(name, []).extend(subs)
    return found


def _redact(schema: Mapping[str, Any], value: Any) -> Any:
    if isinstance(value, dict):
        for name, subs in properties_of(schema).items():
            if name not in value:
                continue
            if any(is_secret(sub) for sub in subs):
                value[name] = REDACTED
            else:
                for sub in subs:
                    value[name] = _redact(sub, value[name])
    elif isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        return [_redact(schema["items"], item) for item in value]
    return value


def jsonable(value: Any) -> Any:
    """Source values as JSON values, the same for every connector.

    Temporal values become ISO 8601, decimals exact strings, bytes base64.
    """
    # Called for every value a connector reads: the common exact types are looked up first.
    kind = type(value)
    if kind in JSON_SCALARS:
        return value
    if kind in _ISO_TYPES:
        return value.isoformat()
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, list):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    return value


def jsonable_column(values: list[Any]) -> list[Any]:
    """``jsonable`` of each value of one column, fast when the column holds one type (the usual case)."""
    kinds = set(map(type, values))
    kinds.discard(type(None))
    if kinds <= JSON_SCALARS:
        return values
    if len(kinds) == 1:
        convert = _CONVERTERS.get(kinds.pop())
        if convert is not None:
            return [None if v is None else convert(v) for v in values]
    return [jsonable(v) for v in values]


JSON_SCALARS = frozenset({str, int, float, bool, type(None)})
_ISO_TYPES = frozenset({dt.datetime, dt.date, dt.time})
_CONVERTERS: dict[type, Any] = {
    dt.datetime: dt.datetime.isoformat,
    dt.date: dt.date.isoformat,
    dt.time: dt.time.isoformat,
    Decimal: str,
}


def records_of(table: pa.Table) -> list[dict[str, Any]]:
    """The records an Arrow table holds: ``jsonable`` of each row's Python values."""
    if not table.num_columns:
        return [{} for _ in range(table.num_rows)]
    # Column by column: converting row by row costs several times as much.
    columns = [jsonable_column(column.to_pylist()) for column in table.columns]
    return [dict(zip(table.column_names, values, strict=True)) for values in zip(*columns, strict=True)]
