"""The background scheduler ``keel serve`` starts when ``KEEL_SCHEDULER_ENABLED`` is true."""

from __future__ import annotations

import logging
import threading

from keel.scheduling.service import tick

log = logging.getLogger(__name__)


class SchedulerThread:
    """Calls ``tick`` every ``interval`` seconds on a daemon thread until ``stop``."""

    def __init__(self, keel, interval: float) -> None:
        self.keel = keel
        self.interval = interval
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="keel-scheduler", daemon=True)

    def start(self) -> SchedulerThread:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join(timeout=self.interval + 5)

    def _run(self) -> None:
        while not self._stopped.wait(self.interval):
            try:
                tick(self.keel)
            except Exception:  # the scheduler must outlive any one bad round
                log.exception("scheduler tick failed")
