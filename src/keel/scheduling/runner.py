"""The background scheduler ``keel serve`` starts when ``KEEL_SCHEDULER_ENABLED`` is true."""

from __future__ import annotations

from keel.kernel.periodic import PeriodicThread
from keel.scheduling.service import tick


class SchedulerThread(PeriodicThread):
    """Calls ``tick`` every ``interval`` seconds on a daemon thread until ``stop``."""

    def __init__(self, keel, interval: float) -> None:
        super().__init__(lambda: tick(keel), interval, "keel-scheduler")
        self.keel = keel
