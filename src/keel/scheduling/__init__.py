"""The scheduler: named periodic jobs, run when due, retried and logged (05b; generic).

``registry.register(name, every, fn)`` adds a job; ``service.tick(keel, now)`` runs the due ones;
``runner.SchedulerThread`` ticks on a background thread of ``keel serve`` when
``KEEL_SCHEDULER_ENABLED`` is true. See docs/housekeeping.md, "The scheduler".
"""
