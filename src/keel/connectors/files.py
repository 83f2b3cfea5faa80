"""The files connector: CSV, JSON lines and Parquet files matching a glob in a directory.

Incremental pick-up of new files. State is::

    {"files": {name: {"size": int, "mtime_ns": int, "sha256": str}, ...},
     "in_progress": {"file": name, "offset": rows_done, "size": int, "mtime_ns": int}}

``files`` lists the files read completely; ``in_progress`` (absent between
files) lets a crash in the middle of a file resume without duplicates. Sources
are append-only: a file that changes after being read (size or mtime differ
and so does its SHA-256) is an error, unless ``on_change`` is ``"reread"``, in
which case it is read again in full (downstream de-duplicates by record hash).

CSV and Parquet files are read by Arrow and their batches handed over as Arrow
tables (``RecordBatch.arrow``): a batch's rows are slices of the files' tables,
never Python dicts (a batch spanning files of different columns is the exception).
JSON lines are read as records.

A malformed file is parsed completely before any of its rows are yielded, so
none of them are: the rows of earlier files still buffered are yielded with
their checkpoint first, then ``ConnectorError`` names the file and the row, and
a resume starts again at that file.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.json as pa_json
import pyarrow.parquet as pa_parquet

from keel.connectors.errors import ConnectorError
from keel.connectors.protocol import (
    Catalog,
    Connector,
    Failure,
    Message,
    RecordBatch,
    StateCheckpoint,
    Stream,
    records_of,
    validate_config,
)
from keel.kernel.errors import InvalidInput, NotFound

FORMATS = ("csv", "jsonl", "parquet")

SPEC: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "Files",
    "type": "object",
    "required": ["path", "pattern", "format"],
    "additionalProperties": False,
    "properties": {
        "path": {"type": "string", "minLength": 1, "description": "Directory holding the files."},
        "pattern": {
            "type": "string",
            "minLength": 1,
            "description": "Glob relative to path, e.g. 'invoices/*.csv' ('**' recurses).",
        },
        "format": {"enum": list(FORMATS), "description": "File format."},
        "stream": {
            "type": "string",
            "pattern": "^[A-Za-z_][A-Za-z0-9_]*$",
            "description": "Stream name; default: derived from the pattern ('invoices/*.csv' → invoices).",
        },
        "csv": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "delimiter": {"type": "string", "minLength": 1, "maxLength": 1, "default": ","},
                "header": {
                    "type": "boolean",
                    "default": True,
                    "description": "First line holds column names; without it columns are f0, f1, ...",
                },
            },
            "default": {},
        },
        "on_change": {
            "enum": ["error", "reread"],
            "default": "error",
            "description": "What to do with a file that changed after it was read.",
        },
    },
}


class FilesConnector(Connector):
    """Reads one stream from the files of a directory matching a glob."""

    name = "files"
    version = "1.0.0"

    def spec(self) -> dict[str, Any]:
        return SPEC

    def probe(self, cfg: dict[str, Any]) -> tuple[bool, str, Failure | None]:
        root = Path(cfg["path"])
        if not root.exists():
            return False, f"directory '{root}' does not exist", "unreachable"
        if not root.is_dir():
            return False, f"'{root}' is not a directory", "config"
        if not os.access(root, os.R_OK | os.X_OK):
            return False, f"directory '{root}' is not readable", "permission"
        try:
            count = len(_matching(root, cfg["pattern"]))
        except PermissionError as exc:
            return False, f"cannot list '{exc.filename}'", "permission"
        return True, f"directory '{root}' is readable; {count} file(s) match '{cfg['pattern']}'", None

    def discover(self, config: Mapping[str, Any]) -> Catalog:
        cfg = self.configure(config)
        root = Path(cfg["path"])
        files = _matching(root, cfg["pattern"])
        if not files:
            raise ConnectorError(
                f"no file matches '{cfg['pattern']}' in '{root}'", stream=cfg["stream"], reason="no_files"
            )
        schema: dict[str, Any] = {"type": "object", "properties": {}}
        for path in files:
            arrow_schema = _arrow_schema(path, cfg, _relative(root, path))
            for arrow_field in arrow_schema:
                column = json_schema_of(arrow_field.type)
                known = schema["properties"].get(arrow_field.name)
                schema["properties"][arrow_field.name] = column if known is None else merge(known, column)
        stream = Stream(
            name=cfg["stream"],
            json_schema=schema,
            supported_sync_modes=frozenset({"full_refresh", "incremental"}),
        )
        return Catalog(streams=(stream,))

    def read(
        self,
        config: Mapping[str, Any],
        stream: str,
        state: Mapping[str, Any] | None,
        *,
        batch_size: int = 1000,
    ) -> Iterator[Message]:
        cfg = self.configure(config)
        if stream != cfg["stream"]:
            raise NotFound("stream", stream)
        if batch_size < 1:
            raise InvalidInput("batch_size", "must be at least 1")
        return _Reader(cfg, state or {}, batch_size).messages()

    def configure(self, config: Mapping[str, Any]) -> dict[str, Any]:
        cfg = validate_config(self, config)
        pattern = PurePosixPath(cfg["pattern"])
        if pattern.is_absolute() or ".." in pattern.parts:
            raise InvalidInput("config.pattern", "must be relative to path and stay inside it")
        cfg.setdefault("stream", stream_name(cfg["pattern"]))
        return cfg


def stream_name(pattern: str) -> str:
    """Default stream name of a glob: 'invoices/*.csv' → invoices, 'sales-*.jsonl' → sales."""
    for part in reversed(PurePosixPath(pattern).parts):
        stem = part.split(".")[0] if not part.startswith(".") else part
        name = re.sub(r"[^A-Za-z0-9_]+", "_", re.sub(r"[*?\[\]]", "", stem)).strip("_").lower()
        if name:
            return name if not name[0].isdigit() else f"_{name}"
    return "files"


def _matching(root: Path, pattern: str) -> list[Path]:
    return [p for p in root.glob(pattern) if p.is_file()]


def _relative(root: Path, path: Path) -> str:
    return path.relative_to(root).as_posix()


def _fingerprint(path: Path) -> dict[str, int]:
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# --- parsing -----------------------------------------------------------------


def _csv_options(cfg: Mapping[str, Any]) -> tuple[pa_csv.ReadOptions, pa_csv.ParseOptions]:
    csv_cfg = {"delimiter": ",", "header": True, **cfg.get("csv", {})}
    read = pa_csv.ReadOptions(autogenerate_column_names=not csv_cfg["header"])
    return read, pa_csv.ParseOptions(delimiter=csv_cfg["delimiter"])


def _arrow_schema(path: Path, cfg: Mapping[str, Any], name: str) -> pa.Schema:
    fmt = cfg["format"]
    if fmt == "parquet":
        try:
            return pa_parquet.read_schema(path)
        except (pa.ArrowException, OSError) as exc:
            raise _malformed(cfg, name, None, exc) from exc
    if path.stat().st_size == 0:
        return pa.schema([])
    if fmt == "csv":
        read_options, parse_options = _csv_options(cfg)
        try:
            with pa_csv.open_csv(path, read_options=read_options, parse_options=parse_options) as reader:
                return reader.schema
        except pa.ArrowInvalid:
            _parse_csv(path, cfg, name)  # raises naming the row
            raise
    return _parse_jsonl_arrow(path, cfg, name).schema


def _parse_csv(data: pa.Buffer | Path, cfg: Mapping[str, Any], name: str) -> pa.Table:
    read_options, parse_options = _csv_options(cfg)
    source = pa.BufferReader(data) if isinstance(data, pa.Buffer) else data
    try:
        return pa_csv.read_csv(source, read_options=read_options, parse_options=parse_options)
    except pa.ArrowInvalid as first:
        # Parse again single-threaded to learn the line of the first bad row.
        bad: list[int] = []

        def handler(row: Any) -> str:
            if row.number is not None and row.number >= 0:
                bad.append(row.number)
            return "error"

        read_options.use_threads = False
        parse_options.invalid_row_handler = handler
        source = pa.BufferReader(data) if isinstance(data, pa.Buffer) else data
        with contextlib.suppress(pa.ArrowInvalid):
            pa_csv.read_csv(source, read_options=read_options, parse_options=parse_options)
        header = 1 if cfg.get("csv", {}).get("header", True) else 0
        row = bad[0] - header if bad else None
        raise _malformed(cfg, name, row, first) from first


def _parse_jsonl_arrow(path: Path, cfg: Mapping[str, Any], name: str) -> pa.Table:
    try:
        return pa_json.read_json(path)
    except pa.ArrowInvalid as exc:
        _jsonl_records(path.read_bytes(), cfg, name)  # raises naming the bad line
        raise _malformed(cfg, name, None, exc) from exc


def _jsonl_records(data: bytes, cfg: Mapping[str, Any], name: str) -> list[dict[str, Any]]:
    """Records of a JSON-lines file; blank lines are ignored, ``row`` in errors is the line number."""
    records = []
    for line_no, line in enumerate(data.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as exc:
            raise _malformed(cfg, name, line_no, exc) from exc
        if not isinstance(record, dict):
            raise _malformed(cfg, name, line_no, ValueError("a line must hold a JSON object"))
        records.append(record)
    return records


def _malformed(cfg: Mapping[str, Any], name: str, row: int | None, exc: BaseException) -> ConnectorError:
    return ConnectorError(
        f"malformed {cfg['format']}: {exc}", stream=cfg["stream"], file=name, row=row, reason="malformed"
    )


def _file_rows(data: bytes, cfg: Mapping[str, Any], name: str) -> pa.Table | list[dict[str, Any]]:
    """Every record of a file's bytes, in file order: an Arrow table, or records for JSON lines.

    A malformed file raises ``ConnectorError``.
    """
    fmt = cfg["format"]
    if fmt == "jsonl":
        return _jsonl_records(data, cfg, name)
    if not data:
        return []
    if fmt == "csv":
        return _parse_csv(pa.py_buffer(data), cfg, name)
    try:
        return pa_parquet.read_table(pa.BufferReader(data))
    except (pa.ArrowException, OSError) as exc:
        raise _malformed(cfg, name, None, exc) from exc


# --- schema mapping ----------------------------------------------------------


def json_schema_of(arrow_type: pa.DataType) -> dict[str, Any]:
    """JSON Schema of a nullable value of an Arrow type."""
    t = pa.types
    if t.is_dictionary(arrow_type):
        return json_schema_of(arrow_type.value_type)
    if t.is_null(arrow_type):
        return {"type": ["null"]}
    if t.is_boolean(arrow_type):
        return {"type": ["boolean", "null"]}
    if t.is_integer(arrow_type):
        return {"type": ["integer", "null"]}
    if t.is_floating(arrow_type):
        return {"type": ["number", "null"]}
    if t.is_decimal(arrow_type):
        return {"type": ["string", "null"], "format": "decimal"}
    if t.is_timestamp(arrow_type):
        return {"type": ["string", "null"], "format": "date-time"}
    if t.is_date(arrow_type):
        return {"type": ["string", "null"], "format": "date"}
    if t.is_time(arrow_type):
        return {"type": ["string", "null"], "format": "time"}
    if t.is_duration(arrow_type):
        return {"type": ["number", "null"]}
    if t.is_binary(arrow_type) or t.is_large_binary(arrow_type) or t.is_fixed_size_binary(arrow_type):
        return {"type": ["string", "null"], "contentEncoding": "base64"}
    if t.is_list(arrow_type) or t.is_large_list(arrow_type) or t.is_fixed_size_list(arrow_type):
        return {"type": ["array", "null"], "items": json_schema_of(arrow_type.value_type)}
    if t.is_struct(arrow_type):
        fields = [arrow_type.field(i) for i in range(arrow_type.num_fields)]
        props = {f.name: json_schema_of(f.type) for f in fields}
        return {"type": ["object", "null"], "properties": props}
    return {"type": ["string", "null"]}


_TYPE_ORDER = ("boolean", "integer", "number", "string", "array", "object", "null")


def merge(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
    """One column's schema across two files: the union of types ('integer' widens to 'number')."""
    types = set(a["type"]) | set(b["type"])
    if "number" in types:
        types.discard("integer")
    merged: dict[str, Any] = {"type": [name for name in _TYPE_ORDER if name in types]}
    for key in ("format", "contentEncoding"):
        if a.get(key) is not None and a.get(key) == b.get(key):
            merged[key] = a[key]
    if "items" in a or "items" in b:
        merged["items"] = merge(a.get("items", {"type": []}), b.get("items", {"type": []}))
    if "properties" in a or "properties" in b:
        props = dict(a.get("properties", {}))
        for key, sub in b.get("properties", {}).items():
            props[key] = merge(props[key], sub) if key in props else sub
        merged["properties"] = props
    return merged


# --- reading -----------------------------------------------------------------


class _BeingWritten(Exception):
    """A file changed while its bytes were read: it is still being written."""


class _Reader:
    """One ``read`` call: walks the files after ``state`` and emits batches + checkpoints."""

    def __init__(self, cfg: dict[str, Any], state: Mapping[str, Any], batch_size: int) -> None:
        self.cfg = cfg
        self.stream = cfg["stream"]
        self.root = Path(cfg["path"])
        self.batch_size = batch_size
        self.done: dict[str, dict[str, Any]] = {k: dict(v) for k, v in state.get("files", {}).items()}
        # The file a previous read stopped in stays in the state until it is handled.
        resume = state.get("in_progress")
        self.in_progress: dict[str, Any] | None = dict(resume) if resume else None
        self.buffer: list[pa.Table | list[dict[str, Any]]] = []  # slices of files' rows
        self.buffered = 0  # rows in the buffer
        self.emitted_state: dict[str, Any] = self.state()

    def state(self) -> dict[str, Any]:
        state: dict[str, Any] = {"files": {k: dict(v) for k, v in self.done.items()}}
        if self.in_progress is not None:
            state["in_progress"] = dict(self.in_progress)
        return state

    def flush(self) -> Iterator[Message]:
        if self.buffered:
            yield _batch(self.stream, self.buffer)
        self.buffer, self.buffered = [], 0
        state = self.state()
        if state != self.emitted_state:
            self.emitted_state = state
            yield StateCheckpoint(self.stream, state)

    def messages(self) -> Iterator[Message]:
        if not self.root.is_dir():
            raise ConnectorError(
                f"directory '{self.root}' is not readable", stream=self.stream, reason="unreachable"
            )
        found = [
            (p.stat().st_mtime_ns, _relative(self.root, p), p)
            for p in _matching(self.root, self.cfg["pattern"])
        ]
        files = [(name, path) for _, name, path in sorted(found)]
        try:
            if self.in_progress is not None:
                # Finish the interrupted file first, whatever files appeared since.
                name = self.in_progress["file"]
                path = next((p for n, p in files if n == name), None)
                files = [(n, p) for n, p in files if n != name]
                if path is None:
                    self.changed(name, "disappeared while being read")
                    self.in_progress = None
                else:
                    yield from self.read_file(name, path)
            for name, path in files:
                yield from self.read_file(name, path)
        except _BeingWritten:
            pass  # stop here; the next read starts with that file
        except ConnectorError:
            yield from self.flush()  # commit what was read before the bad file
            raise
        yield from self.flush()

    def read_file(self, name: str, path: Path) -> Iterator[Message]:
        before = _fingerprint(path)
        offset = 0
        resume, self.in_progress = self.in_progress, None
        if name in self.done:
            seen = self.done[name]
            if {"size": seen.get("size"), "mtime_ns": seen.get("mtime_ns")} == before:
                return
            sha = _sha256(path)
            if sha == seen.get("sha256"):  # touched or copied, same content
                self.done[name] = {**before, "sha256": sha}
                return
            self.changed(name, "changed after it was read")
            del self.done[name]
        if resume is not None:
            if {"size": resume.get("size"), "mtime_ns": resume.get("mtime_ns")} == before:
                offset = int(resume["offset"])
            else:
                self.in_progress = resume  # keep the resume point in the state if this raises
                self.changed(name, "changed while being read")
                self.in_progress = None
        data = path.read_bytes()
        if _fingerprint(path) != before or len(data) != before["size"]:
            self.in_progress = resume
            raise _BeingWritten(name)
        rows = _file_rows(data, self.cfg, name)
        count = len(rows)
        self.in_progress = {"file": name, "offset": offset, **before}
        while offset < count:
            take = min(self.batch_size - self.buffered, count - offset)
            self.buffer.append(
                rows.slice(offset, take) if isinstance(rows, pa.Table) else rows[offset : offset + take]
            )
            self.buffered += take
            offset += take
            self.in_progress["offset"] = offset
            if self.buffered >= self.batch_size:
                yield from self.flush()
        self.in_progress = None
        self.done[name] = {**before, "sha256": hashlib.sha256(data).hexdigest()}

    def changed(self, name: str, what: str) -> None:
        if self.cfg["on_change"] != "reread":
            raise ConnectorError(
                f"file {what} (sources are append-only; set on_change to 'reread' to read it again)",
                stream=self.stream,
                file=name,
                reason="changed",
            )


def _batch(stream: str, parts: list[pa.Table | list[dict[str, Any]]]) -> RecordBatch:
    """One batch of the buffered slices: an Arrow table when they are tables of one schema."""
    first = parts[0]
    if isinstance(first, pa.Table) and all(
        isinstance(part, pa.Table) and part.schema.equals(first.schema) for part in parts
    ):
        return RecordBatch(stream, arrow=pa.concat_tables(parts) if len(parts) > 1 else first)
    records: list[dict[str, Any]] = []
    for part in parts:
        records.extend(records_of(part) if isinstance(part, pa.Table) else part)
    return RecordBatch(stream, records)
