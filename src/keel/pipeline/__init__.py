"""The data-plane pipeline: contract plans built into versioned GDP and KPI tables behind an
atomic pointer, over an engine seam (DuckDB now; the SQL is SQLGlot's, so others can follow).

``materialize.py`` builds, ``builds.py`` records what each build read,
``activation.py`` moves the pointer and rolls back,
``signals.py`` judges a run, ``checks.py`` and ``conform.py`` are the set-based SQL a
build adds to the mapping, ``naming.py`` keeps every name safe, ``engine.py`` is the seam.
"""

from keel.pipeline.activation import activate, active, deactivate, previous, rollback
from keel.pipeline.builds import builds
from keel.pipeline.engine import DuckDBEngine, Engine
from keel.pipeline.errors import DataPlaneBusy, EngineError, MaterializationFailed
from keel.pipeline.materialize import kpi_values, materialize_gdp, materialize_kpi
from keel.pipeline.model import RunResult
from keel.pipeline.signals import signals

__all__ = [
    "DataPlaneBusy",
    "DuckDBEngine",
    "Engine",
    "EngineError",
    "MaterializationFailed",
    "RunResult",
    "activate",
    "active",
    "builds",
    "deactivate",
    "kpi_values",
    "materialize_gdp",
    "materialize_kpi",
    "previous",
    "rollback",
    "signals",
]
