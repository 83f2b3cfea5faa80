"""The registry of periodic jobs: a name, an interval and a function ``fn(keel, now)``.

Built-in jobs register the way a third-party package would: a module calls ``register`` when it
is imported. ``load()`` imports the built-in modules (``BUILTIN``) and every module named by an
entry point of the group ``keel.scheduler_jobs``, so ``tick`` sees the whole set. To add a job
(e.g. a pipeline schedule)::

    from datetime import timedelta
    from keel.scheduling import registry

    def refresh(keel, now):            # runs as the system; return a small JSON-able summary
        ...

    registry.register("pipeline.refresh", timedelta(hours=1), refresh,
                      description="Refresh every tenant's incremental builds.")

and add the module to ``BUILTIN`` (or declare the entry point). ``every`` is a ``timedelta``,
seconds, or a function of the settings returning a ``timedelta`` (an interval taken from a
setting). A job's interval and enabled flag can be changed at run time (``keel scheduler set``),
which the store keeps over the registered default.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from importlib.metadata import entry_points
from typing import Any

log = logging.getLogger(__name__)
BUILTIN = ("keel.housekeeping.jobs", "keel.contracts.scheduled", "keel.evidence.completeness")
ENTRY_POINTS = "keel.scheduler_jobs"
Every = timedelta | float | int | Callable[[Any], timedelta]


@dataclass(frozen=True)
class Job:
    """One periodic job. ``attempts``: tries per due time; ``scheduled_event``: the audit event
    recorded when the job is put on the schedule or its schedule changes."""

    name: str
    every: Every
    fn: Callable[[Any, datetime], Any]
    description: str = ""
    attempts: int = 3
    scheduled_event: str = "scheduler.job.scheduled"

    def interval(self, settings) -> timedelta:
        every = self.every
        if callable(every) and not isinstance(every, timedelta):
            every = every(settings)
        if isinstance(every, int | float) and not isinstance(every, bool):
            every = timedelta(seconds=every)
        if not isinstance(every, timedelta) or every.total_seconds() < 1:
            raise ValueError(f"job {self.name}: the interval must be at least one second")
        return every


_JOBS: dict[str, Job] = {}
_loaded = False


def register(
    name: str,
    every: Every,
    fn: Callable[[Any, datetime], Any],
    *,
    description: str = "",
    attempts: int = 3,
    scheduled_event: str = "scheduler.job.scheduled",
) -> Job:
    """Add (or replace, under the same name) a periodic job."""
    if not name or len(name) > 80 or not all(c.isalnum() or c in "._-" for c in name):
        raise ValueError(f"job name {name!r}: use 1-80 letters, digits, '.', '_' or '-'")
    if attempts < 1:
        raise ValueError(f"job {name}: attempts must be at least 1")
    job = Job(name, every, fn, description, attempts, scheduled_event)
    _JOBS[name] = job
    return job


def unregister(name: str) -> None:
    _JOBS.pop(name, None)


def load() -> None:
    """Import the built-in job modules and the entry points, once."""
    global _loaded
    if _loaded:
        return
    for module in BUILTIN:
        importlib.import_module(module)
    for point in entry_points(group=ENTRY_POINTS):
        try:
            point.load()
        except Exception:  # a broken plug-in must not stop the built-in jobs
            log.exception("scheduler jobs of entry point %s could not be loaded", point.name)
    _loaded = True


def jobs() -> list[Job]:
    load()
    return [_JOBS[name] for name in sorted(_JOBS)]


def get(name: str) -> Job | None:
    load()
    return _JOBS.get(name)
