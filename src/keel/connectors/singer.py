"""The Singer connector: any installed Singer tap, run as a subprocess.

A Singer tap is an executable (``tap-postgres``, ``tap-github``, ...) that
takes ``--config`` (its settings as a JSON file), ``--discover`` (print the
catalog of its streams) or ``--catalog`` (the streams to sync) and ``--state``
(where to resume), and prints one JSON message per line: ``SCHEMA``,
``RECORD`` and ``STATE``. Each Keel stream is one run of the tap with only that
stream selected.

Only executables named ``tap-*`` found on the connector's search path (the
PATH of the Keel process unless given) can be run: the operator decides which
taps are installed, a source's configuration only picks one of them. Keel's
own environment variables (``KEEL_*``, which may hold keys) are not passed to
the tap. ``tap_secrets`` is merged into the tap's config file, which lives in a
private temporary directory (mode 0700, file 0600) removed after the run; its
values are scrubbed from every message this module produces, including the
tap's stderr quoted in errors.

State is ``{"singer_state": value}``, ``value`` being the tap's last ``STATE``
message, handed back to it with ``--state``. Records are yielded in batches as
they arrive, and each ``STATE`` message becomes a ``StateCheckpoint`` covering
every batch before it. A tap that exits non-zero or prints something that is
not a Singer message raises ``ConnectorError`` (reason ``tap_failed`` or
``malformed``): the records after its last ``STATE`` may have been yielded, but
no checkpoint follows them, so a caller that commits only at checkpoints
commits none of them and the next read resumes from the last committed state:
nothing is lost and nothing is delivered twice (taps that filter with ``>=``
on their replication key send the boundary records again; Raw de-duplicates
them by primary key). A tap that exits 0 has finished: its last state covers
the records after it, and a final checkpoint says so.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

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
    validate_config,
)
from keel.kernel.errors import InvalidInput, NotFound

TAP_NAME = r"^tap-[A-Za-z0-9][A-Za-z0-9_.-]*$"
STDERR_TAIL_LINES = 5
# Messages a tap may print that carry nothing Keel needs: the schema is the
# catalog's, and table versions are a target's concern.
IGNORED_MESSAGES = ("SCHEMA", "ACTIVATE_VERSION")
# What a failed tap's stderr says about the kind of failure; anything else is "unreachable".
FAILURE_HINTS: tuple[tuple[Failure, re.Pattern[str]], ...] = (
    ("config", re.compile(r"config(uration)? validation|invalid config", re.I)),
    (
        "auth",
        re.compile(r"authentication failed|unauthori[sz]ed|invalid (api )?(key|token|credential)", re.I),
    ),
    ("permission", re.compile(r"permission denied|forbidden|\b403\b", re.I)),
)

SPEC: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "Singer tap",
    "type": "object",
    "required": ["tap"],
    "additionalProperties": False,
    "properties": {
        "tap": {
            "type": "string",
            "pattern": TAP_NAME,
            "description": "Name of an installed tap executable, e.g. tap-postgres.",
        },
        "tap_config": {
            "type": "object",
            "default": {},
            "description": "The tap's settings, handed to it as its --config file.",
        },
        "tap_secrets": {
            "type": "object",
            "default": {},
            "airbyte_secret": True,
            "x-secret": True,
            "description": "The tap's secret settings (passwords, tokens), merged over tap_config.",
        },
        "metadata": {
            "type": "object",
            "additionalProperties": {"type": "object"},
            "default": {},
            "description": "Catalog metadata set per stream id, e.g. "
            '{"public-orders": {"replication-method": "INCREMENTAL", "replication-key": "updated_at"}}.',
        },
        "catalog_option": {
            "enum": ["catalog", "properties"],
            "default": "catalog",
            "description": "How the tap takes its catalog: --catalog, or --properties (older taps).",
        },
        "timeout_s": {
            "type": "number",
            "exclusiveMinimum": 0,
            "default": 60,
            "description": "Seconds the tap's --discover run may take.",
        },
    },
}


class SingerConnector(Connector):
    """Runs Singer taps found in the directories of ``search_path`` (default: PATH)."""

    name = "singer"
    version = "1.0.0"

    def __init__(self, *, search_path: Sequence[str | Path] | None = None) -> None:
        self.search_path = None if search_path is None else os.pathsep.join(map(str, search_path))

    def spec(self) -> dict[str, Any]:
        return SPEC

    def probe(self, cfg: dict[str, Any]) -> tuple[bool, str, Failure | None]:
        try:
            entries = self._discover(cfg)
        except ConnectorError as exc:
            reason = exc.fields.get("reason")
            if reason == "tap_failed":
                return False, exc.detail, _failure_hinted(exc.detail)
            return False, exc.detail, "unreachable" if reason == "timeout" else "config"
        return True, f"tap '{cfg['tap']}' offers {len(entries)} stream(s)", None

    def discover(self, config: Mapping[str, Any]) -> Catalog:
        cfg = self.configure(config)
        entries = self._discover(cfg)
        return Catalog(streams=tuple(_stream(entry, cfg["metadata"]) for entry in entries))

    def read(
        self,
        config: Mapping[str, Any],
        stream: str,
        state: Mapping[str, Any] | None,
        *,
        batch_size: int = 1000,
    ) -> Iterator[Message]:
        cfg = self.configure(config)
        if batch_size < 1:
            raise InvalidInput("batch_size", "must be at least 1")
        singer_state = (state or {}).get("singer_state")
        if singer_state is not None and not isinstance(singer_state, dict):
            raise InvalidInput("state.singer_state", "must be an object")
        entries = self._discover(cfg)
        if stream not in {entry["tap_stream_id"] for entry in entries}:
            raise NotFound("stream", stream)
        catalog = {"streams": [_selected(e, stream, cfg) for e in entries]}
        return _sync(cfg, catalog, stream, singer_state, batch_size)

    def configure(self, config: Mapping[str, Any]) -> dict[str, Any]:
        cfg = validate_config(self, config)
        cfg["executable"] = self._executable(cfg["tap"])
        return cfg

    def _executable(self, tap: str) -> str:
        found = shutil.which(tap, path=self.search_path)  # None: the PATH of this process
        if found is None:
            raise InvalidInput("config.tap", f"tap '{tap}' is not installed (no such executable on the path)")
        return found

    def _discover(self, cfg: dict[str, Any]) -> list[dict[str, Any]]:
        """The catalog entries ``--discover`` prints, checked against ``metadata``."""
        tap = cfg["tap"]
        with _workspace(cfg) as workspace:
            output = workspace / "catalog.json"
            with output.open("wb") as stdout:
                process = _start(cfg, workspace, ["--discover"], stdout)
            try:
                code = process.wait(timeout=cfg["timeout_s"])
            except subprocess.TimeoutExpired:
                raise ConnectorError(
                    f"tap '{tap}' --discover did not finish within {cfg['timeout_s']} s",
                    tap=tap,
                    reason="timeout",
                ) from None
            finally:
                _stop(process)
            if code != 0:
                raise _tap_failed(cfg, workspace, "--discover", code, None)
            try:
                catalog = json.loads(output.read_bytes())
            except ValueError:
                raise ConnectorError(
                    f"tap '{tap}' --discover printed no JSON catalog", tap=tap, reason="malformed"
                ) from None
        entries = _entries(catalog, tap)
        known = {entry["tap_stream_id"] for entry in entries}
        for name in cfg["metadata"]:
            if name not in known:
                offered = ", ".join(sorted(known)) or "none"
                raise InvalidInput(
                    f"config.metadata.{name}", f"the tap offers no such stream (offered: {offered})"
                )
        return entries


# --- syncing ---------------------------------------------------------------------


def _sync(
    cfg: dict[str, Any],
    catalog: dict[str, Any],
    stream: str,
    singer_state: dict[str, Any] | None,
    batch_size: int,
) -> Iterator[Message]:
    """Run the tap on ``catalog``; its messages become batches and checkpoints of ``stream``."""
    entry = next(e for e in catalog["streams"] if e["tap_stream_id"] == stream)
    # RECORD messages name the stream by its id or, in some taps, by its "stream" name.
    names = {stream, entry.get("stream", stream)}
    with _workspace(cfg) as workspace:
        args = [f"--{cfg['catalog_option']}", _write(workspace / "catalog.json", catalog)]
        if singer_state is not None:
            args += ["--state", _write(workspace / "state.json", singer_state)]
        process = _start(cfg, workspace, args, subprocess.PIPE)
        assert process.stdout is not None
        batch: list[dict[str, Any]] = []
        uncovered = False  # records yielded or buffered that no checkpoint covers yet
        checkpointed = False
        try:
            for number, line in enumerate(process.stdout, start=1):
                message = _message(line, number, stream, cfg)
                if message is None:
                    continue
                kind = message["type"]
                if kind == "RECORD" and message.get("stream") in names:
                    record = message.get("record")
                    if not isinstance(record, dict):
                        raise _malformed(cfg, stream, number, "a RECORD message without a record object")
                    batch.append(record)
                    uncovered = True
                    if len(batch) >= batch_size:
                        yield RecordBatch(stream, batch)
                        batch = []
                elif kind == "STATE":
                    value = message.get("value")
                    if not isinstance(value, dict):
                        raise _malformed(cfg, stream, number, "a STATE message without a value object")
                    if uncovered or value != singer_state:
                        if batch:
                            yield RecordBatch(stream, batch)
                            batch = []
                        singer_state, uncovered, checkpointed = value, False, True
                        yield StateCheckpoint(stream, {"singer_state": value})
                elif kind == "BATCH":
                    raise _malformed(
                        cfg, stream, number, "BATCH messages are not supported (turn batching off)"
                    )
                elif kind != "RECORD" and kind not in IGNORED_MESSAGES:
                    raise _malformed(cfg, stream, number, f"unknown message type {kind!r}")
            code = process.wait()
            if code != 0:
                raise _tap_failed(cfg, workspace, "sync", code, stream)
            if batch:
                yield RecordBatch(stream, batch)
            if uncovered or not checkpointed:
                # The tap finished: its last state (or the one it started from) covers the rest.
                yield StateCheckpoint(stream, {} if singer_state is None else {"singer_state": singer_state})
        finally:
            _stop(process)
            process.stdout.close()


# --- the catalog ---------------------------------------------------------------


def _entries(catalog: Any, tap: str) -> list[dict[str, Any]]:
    """The streams of a Singer catalog, each with a ``tap_stream_id`` and a ``schema``."""
    streams = catalog.get("streams") if isinstance(catalog, dict) else None
    if not isinstance(streams, list):
        raise ConnectorError(
            f"tap '{tap}' printed a catalog without a list of streams", tap=tap, reason="malformed"
        )
    seen: set[str] = set()
    for index, entry in enumerate(streams):
        problem = _entry_problem(entry)
        if problem:
            raise ConnectorError(
                f"tap '{tap}' printed a catalog whose stream {index} {problem}", tap=tap, reason="malformed"
            )
        if entry["tap_stream_id"] in seen:
            raise ConnectorError(
                f"tap '{tap}' printed a catalog with stream '{entry['tap_stream_id']}' twice",
                tap=tap,
                reason="malformed",
            )
        seen.add(entry["tap_stream_id"])
    return streams


def _entry_problem(entry: Any) -> str | None:
    if not isinstance(entry, dict) or not isinstance(entry.get("tap_stream_id"), str):
        return "has no tap_stream_id"
    if not isinstance(entry.get("schema"), dict):
        return "has no schema object"
    metadata = entry.get("metadata", [])
    if not isinstance(metadata, list) or not all(
        isinstance(m, dict) and isinstance(m.get("metadata", {}), dict) for m in metadata
    ):
        return "has metadata that is not a list of {breadcrumb, metadata} objects"
    return None


def _stream_metadata(entry: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """The stream-level metadata (breadcrumb ``[]``) with the configured overrides applied."""
    found = next(
        (m.get("metadata", {}) for m in entry.get("metadata", []) if m.get("breadcrumb") == []),
        {},
    )
    return {**found, **overrides.get(entry["tap_stream_id"], {})}


def _replication(entry: Mapping[str, Any], overrides: Mapping[str, Any]) -> tuple[str, str | None]:
    """``(method, replication key)``: INCREMENTAL, FULL_TABLE or LOG_BASED, as the tap will sync."""
    meta = _stream_metadata(entry, overrides)
    valid_keys = meta.get("valid-replication-keys") or []
    key = (
        meta.get("replication-key") or entry.get("replication_key") or (valid_keys[0] if valid_keys else None)
    )
    method = (
        meta.get("forced-replication-method")
        or meta.get("replication-method")
        or entry.get("replication_method")
        or ("INCREMENTAL" if key else "FULL_TABLE")
    )
    return method, key if method == "INCREMENTAL" else None


def _stream(entry: Mapping[str, Any], overrides: Mapping[str, Any]) -> Stream:
    method, key = _replication(entry, overrides)
    primary_key = (
        entry.get("key_properties") or _stream_metadata(entry, overrides).get("table-key-properties") or []
    )
    return Stream(
        name=entry["tap_stream_id"],
        json_schema=entry["schema"],
        # LOG_BASED taps resume from their state as incremental ones do.
        supported_sync_modes=frozenset(
            {"full_refresh", "incremental"} if method != "FULL_TABLE" else {"full_refresh"}
        ),
        cursor_field=key,
        primary_key=tuple(primary_key),
    )


def _selected(entry: Mapping[str, Any], stream: str, cfg: Mapping[str, Any]) -> dict[str, Any]:
    """A catalog entry selected (with all its fields) when it is ``stream``, deselected otherwise."""
    entry = copy.deepcopy(dict(entry))
    chosen = entry["tap_stream_id"] == stream
    metadata = entry.get("metadata", [])
    top = next((m for m in metadata if m.get("breadcrumb") == []), None)
    if top is None:
        top = {"breadcrumb": [], "metadata": {}}
        metadata.append(top)
    top["metadata"] = {**top.get("metadata", {}), "selected": chosen}
    if chosen:
        method, key = _replication(entry, cfg["metadata"])
        top["metadata"].update(cfg["metadata"].get(stream, {}))
        top["metadata"].setdefault("replication-method", method)
        if key:
            top["metadata"].setdefault("replication-key", key)
        for item in metadata:
            meta = item.setdefault("metadata", {})
            if item is not top and meta.get("inclusion") != "unsupported":
                meta["selected"] = True
    entry["metadata"] = metadata
    if cfg["catalog_option"] == "properties":
        entry["schema"]["selected"] = chosen  # older taps read selection from the schema
    return entry


# --- running the tap -------------------------------------------------------------


@contextlib.contextmanager
def _workspace(cfg: Mapping[str, Any]) -> Iterator[Path]:
    """A private directory holding the tap's config file (with its secrets); removed afterwards."""
    directory = Path(tempfile.mkdtemp(prefix="keel-singer-"))  # mode 0700
    try:
        _write(directory / "config.json", _merged(cfg["tap_config"], cfg["tap_secrets"]))
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _write(path: Path, value: Any) -> str:
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as fh:
        json.dump(value, fh)
    return str(path)


def _merged(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in over.items():
        known = merged.get(key)
        merged[key] = _merged(known, value) if isinstance(known, dict) and isinstance(value, dict) else value
    return merged


def _start(
    cfg: Mapping[str, Any], workspace: Path, args: list[str], stdout: IO[bytes] | int
) -> subprocess.Popen[bytes]:
    # stderr goes to a file: a tap logging a lot can never block on a full pipe.
    with (workspace / "stderr.log").open("wb") as stderr:
        try:
            return subprocess.Popen(
                [cfg["executable"], "--config", str(workspace / "config.json"), *args],
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=stderr,
                env={k: v for k, v in os.environ.items() if not k.startswith("KEEL_")},
                start_new_session=True,  # its own process group, so _stop ends the tap's children too
            )
        except OSError as exc:
            raise ConnectorError(
                f"tap '{cfg['tap']}' could not be started: {exc.strerror}", tap=cfg["tap"], reason="config"
            ) from None


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Kill the tap's process group if it is still running (a read closed early, a timeout)."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def _message(line: bytes, number: int, stream: str, cfg: Mapping[str, Any]) -> dict[str, Any] | None:
    """One line of the tap's output as a Singer message (``None`` for a blank line)."""
    try:
        text = line.decode("utf-8").strip()
        if not text:
            return None
        message = json.loads(text)
    except ValueError:  # UnicodeDecodeError is one
        excerpt = line[:80].decode("utf-8", "replace").strip()
        raise _malformed(cfg, stream, number, f"not a JSON message: {excerpt!r}") from None
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        raise _malformed(cfg, stream, number, "a JSON value without a message type")
    return message


def _malformed(cfg: Mapping[str, Any], stream: str, number: int, what: str) -> ConnectorError:
    detail = _scrub(f"line {number} of tap '{cfg['tap']}' output is {what}", cfg)
    return ConnectorError(detail, stream=stream, row=number, tap=cfg["tap"], reason="malformed")


def _tap_failed(
    cfg: Mapping[str, Any], workspace: Path, run: str, code: int, stream: str | None
) -> ConnectorError:
    ended = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
    tail = _stderr_tail(workspace / "stderr.log")
    detail = f"tap '{cfg['tap']}' ({run}) {ended}" + (f": {tail}" if tail else " and wrote nothing to stderr")
    return ConnectorError(
        _scrub(detail, cfg), stream=stream, tap=cfg["tap"], exit_code=code, reason="tap_failed"
    )


def _stderr_tail(path: Path) -> str:
    """The last lines the tap wrote to stderr (a traceback ends with the error itself)."""
    with path.open("rb") as fh:
        fh.seek(max(0, path.stat().st_size - 4096))
        text = fh.read().decode("utf-8", "replace")
    # Lines of only ^ and ~ underline code in Python tracebacks: nothing to read without the code.
    lines = [line.strip() for line in text.splitlines() if line.strip(" \t^~")]
    return " | ".join(lines[-STDERR_TAIL_LINES:])


def _failure_hinted(detail: str) -> Failure:
    return next((failure for failure, pattern in FAILURE_HINTS if pattern.search(detail)), "unreachable")


def _scrub(text: str, cfg: Mapping[str, Any]) -> str:
    """``text`` with every secret value of the configuration replaced by ``***``."""
    for secret in sorted(_leaves(cfg["tap_secrets"]), key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return text


def _leaves(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for item in value.values():
            yield from _leaves(item)
    elif isinstance(value, list):
        for item in value:
            yield from _leaves(item)
    elif value is not None and not isinstance(value, bool) and str(value):
        yield str(value)
