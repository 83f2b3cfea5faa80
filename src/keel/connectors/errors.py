"""Errors raised by connectors and the connector registry."""

from __future__ import annotations

from typing import Any

from keel.kernel.errors import KeelError


class ConnectorError(KeelError):
    """A source could not be read: malformed data, a changed file, a broken source.

    ``stream`` names the stream, ``file`` and ``row`` (1-based record number
    within the file) locate the bad input when the connector knows them, and
    ``reason`` is machine-readable (``malformed``, ``changed``, ``no_files``, ...).
    """

    code = "connector_error"
    title = "Connector error"

    def __init__(
        self,
        detail: str,
        *,
        stream: str | None = None,
        file: str | None = None,
        row: int | None = None,
        reason: str = "source",
        **fields: Any,
    ) -> None:
        where = ", ".join(
            part
            for part in (
                f"stream '{stream}'" if stream else "",
                f"file '{file}'" if file else "",
                f"row {row}" if row is not None else "",
            )
            if part
        )
        super().__init__(
            f"{where}: {detail}" if where else detail,
            stream=stream,
            file=file,
            row=row,
            reason=reason,
            **fields,
        )


class ConnectorUnavailable(KeelError):
    """A connector is registered but its plugin could not be loaded."""

    code = "connector_unavailable"
    title = "Connector unavailable"

    def __init__(self, name: str, detail: str) -> None:
        super().__init__(f"connector '{name}' could not be loaded: {detail}", connector=name)
