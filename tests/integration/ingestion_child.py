"""Run in a child process by ``test_ingestion_crash.py``: a sync that stops, to be killed, mid-run.

``python ingestion_child.py <tenant.duckdb> <sqlite url> <marker file> <n>`` syncs the
sample ERP's invoices in batches of 10. After batch n is committed and batch n+1
has been read (but not committed: its checkpoint has not come yet), it writes
the marker file and sleeps until it is killed.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from keel.connectors import Message, RecordBatch, StateCheckpoint
from keel.connectors.sql import SqlConnector
from keel.ingestion.raw import RawStore
from keel.ingestion.runner import sync_stream


class PausingSql(SqlConnector):
    def __init__(self, after: int, marker: Path) -> None:
        self.after = after
        self.marker = marker

    def read(
        self,
        config: Mapping[str, Any],
        stream: str,
        state: Mapping[str, Any] | None,
        *,
        batch_size: int = 1000,
    ) -> Iterator[Message]:
        batches = 0
        for message in super().read(config, stream, state, batch_size=batch_size):
            if isinstance(message, StateCheckpoint) and batches == self.after + 1:
                self.marker.write_text(f"{self.after} batches committed, one more read\n")
                time.sleep(600)  # the parent kills us here
            batches += isinstance(message, RecordBatch)
            yield message


def main(database: str, url: str, marker: str, after: str) -> None:
    sync_stream(
        PausingSql(int(after), Path(marker)), {"url": url, "cursor_fields": {"invoices": "updated_at"}},
        "invoices", RawStore(database), source_id="SRC-20261127-ERP00001", source_key="erp",
        run_id="RUN-KILLED", batch_size=10,
    )  # fmt: skip
    sys.exit("the sync finished before it was killed")


if __name__ == "__main__":
    main(*sys.argv[1:])
