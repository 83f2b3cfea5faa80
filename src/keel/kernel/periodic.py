"""A daemon thread that calls a function every ``interval`` seconds until stopped."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


class PeriodicThread:
    """Calls ``round()`` every ``interval`` seconds on a daemon thread named ``name`` until ``stop``;
    a round that raises is logged and the next one runs all the same."""

    def __init__(self, round: Callable[[], object], interval: float, name: str) -> None:
        self.interval = interval
        self._round = round
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self):
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join(timeout=self.interval + 5)

    def _run(self) -> None:
        while not self._stopped.wait(self.interval):
            try:
                self._round()
            except Exception:  # the thread must outlive any one bad round
                log.exception("%s: a round failed", self._thread.name)
