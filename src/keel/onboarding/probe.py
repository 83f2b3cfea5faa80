"""Ask a source whether it can be used: connectivity and authentication (``check``), its
streams (``discover``), a schema comparison and a few test records — never committed.

One function serves the connector preflight (00b), the source preflight with test
records (02) and the handshake with its schema check (02b). It runs outside any
store transaction: a slow source must not hold the control plane's write lock.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from keel.connectors.protocol import Catalog, Connector, RecordBatch
from keel.kernel.errors import KeelError
from keel.onboarding.schema_check import compare

log = logging.getLogger("keel.onboarding")


@dataclass
class ProbeReport:
    passed: bool = False
    failure: str | None = None  # unreachable, auth, config, permission, stream, schema, read
    message: str = ""
    latency_ms: float = 0.0
    streams: list[str] = field(default_factory=list)
    schema: dict[str, dict] = field(default_factory=dict)
    test_records: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "failure": self.failure,
            "message": self.message,
            "connection_test_latency_ms": round(self.latency_ms, 3),
            "streams": self.streams,
            "schema_check": self.schema_status,
            "schema": self.schema,
            "test_records": self.test_records,
        }

    @property
    def schema_status(self) -> str:
        if not self.schema:
            return "SKIPPED"
        return "PASS" if all(r["passed"] for r in self.schema.values()) else "FAIL"


def probe(
    connector: Connector,
    config: Mapping[str, Any],
    *,
    streams: Sequence[str] = (),
    expected: Mapping[str, Mapping[str, str]] | None = None,
    test_records: int = 0,
) -> ProbeReport:
    report = ProbeReport()
    try:
        return _probe(report, connector, config, streams, expected, test_records)
    except Exception as exc:  # a connector's own bug must read as a failed check, never a 500
        log.exception("connector %s raised during preflight", connector.name)
        return _fail(report, "connector_error", f"the connector failed unexpectedly ({type(exc).__name__})")


def _probe(report, connector, config, streams, expected, test_records) -> ProbeReport:
    checked = connector.check(config)
    report.latency_ms = checked.latency_ms
    if not checked.ok:
        return _fail(report, checked.failure or "unreachable", checked.message)
    try:
        catalog = connector.discover(config)
    except KeelError as exc:
        return _fail(report, "discover", exc.detail)
    report.streams = [s.name for s in catalog.streams]
    missing = [s for s in streams if s not in report.streams]
    if missing:
        return _fail(report, "stream", f"the source offers no stream {', '.join(map(repr, missing))}")
    for name, columns in (expected or {}).items():
        if name in report.streams:
            report.schema[name] = compare(catalog.stream(name).json_schema, columns)
    if report.schema_status == "FAIL":
        return _fail(report, "schema", _schema_message(report.schema))
    if test_records:
        for name in streams:
            try:
                report.test_records[name] = _sample(connector, config, catalog, name, test_records)
            except KeelError as exc:
                return _fail(report, "read", f"stream '{name}': {exc.detail}")
    report.passed = True
    report.message = "all checks passed"
    return report


def _sample(
    connector: Connector, config: Mapping[str, Any], catalog: Catalog, stream: str, limit: int
) -> int:
    """Read up to ``limit`` records of ``stream`` from the start; nothing is kept."""
    catalog.stream(stream)
    messages = connector.read(config, stream, None, batch_size=limit)
    try:
        batches = (m for m in messages if isinstance(m, RecordBatch))
        return sum(len(b.records) for b in itertools.islice(batches, 1))
    finally:
        close = getattr(messages, "close", None)
        if close is not None:
            close()


def _fail(report: ProbeReport, failure: str, message: str) -> ProbeReport:
    report.passed = False
    report.failure = failure
    report.message = message
    log.warning("preflight failed (%s): %s", failure, message)
    return report


def _schema_message(results: Mapping[str, dict]) -> str:
    parts = []
    for stream, result in results.items():
        if result["missing"]:
            parts.append(f"stream '{stream}' lacks column(s) {', '.join(result['missing'])}")
        for m in result["type_mismatches"]:
            parts.append(
                f"stream '{stream}' column '{m['column']}' is {m['found']}, expected {m['expected']}"
            )
    return "; ".join(parts)
