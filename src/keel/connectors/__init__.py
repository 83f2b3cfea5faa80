"""Connectors: the Airbyte-style protocol, the registry, and the built-in connectors."""

from keel.connectors.errors import ConnectorError, ConnectorUnavailable
from keel.connectors.protocol import (
    Catalog,
    CheckResult,
    Connector,
    Message,
    RecordBatch,
    StateCheckpoint,
    Stream,
    redact,
    validate_config,
)
from keel.connectors.registry import ConnectorRegistry

__all__ = [
    "Catalog",
    "CheckResult",
    "Connector",
    "ConnectorError",
    "ConnectorRegistry",
    "ConnectorUnavailable",
    "Message",
    "RecordBatch",
    "StateCheckpoint",
    "Stream",
    "redact",
    "validate_config",
]
