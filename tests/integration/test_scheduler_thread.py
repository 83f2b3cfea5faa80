"""The background scheduler ``keel serve`` starts under KEEL_SCHEDULER_ENABLED ticks on its own."""

from __future__ import annotations

import threading
from datetime import timedelta

import sqlalchemy as sa

from keel.kernel.settings import Settings
from keel.scheduling import registry
from keel.scheduling.runner import SchedulerThread
from keel.store.tables import scheduler_jobs


def test_the_scheduler_is_off_unless_enabled():
    field = Settings.model_fields["scheduler_enabled"]
    assert field.default is False


def test_the_background_thread_runs_a_due_job_once_and_stops(keel):
    ran = threading.Event()
    calls = []

    def job(keel_, now):
        calls.append(now)
        ran.set()

    registry.register("test.background", timedelta(hours=1), job)
    thread = SchedulerThread(keel, 0.05).start()
    try:
        assert ran.wait(10), "the background scheduler never ran the due job"
        threading.Event().wait(0.3)  # a few more ticks: the job is not due again for an hour
    finally:
        thread.stop()
        registry.unregister("test.background")
    assert len(calls) == 1
    with keel.engine.connect() as conn:
        row = conn.execute(sa.select(scheduler_jobs).where(scheduler_jobs.c.name == "test.background")).one()
    assert (row.last_status, row.runs, row.every_seconds) == ("SUCCEEDED", 1, 3600)


def test_ticks_racing_for_one_due_job_run_it_once(keel):
    from keel.kernel.clock import utcnow
    from keel.scheduling.service import tick

    calls = []
    registry.register("test.raced", timedelta(hours=1), lambda keel_, now: calls.append(now))
    now = utcnow()
    start = threading.Barrier(4)
    errors = []

    def racer():
        start.wait()
        try:
            tick(keel, now, only="test.raced")
        except Exception as exc:  # a racer must not fail either
            errors.append(exc)

    racers = [threading.Thread(target=racer) for _ in range(4)]
    try:
        for r in racers:
            r.start()
        for r in racers:
            r.join(30)
    finally:
        registry.unregister("test.raced")
    assert errors == [] and len(calls) == 1
