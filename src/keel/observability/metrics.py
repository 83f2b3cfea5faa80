"""Metric samples in the control-plane store, exposed in Prometheus text format.

Samples are stored (not only kept in process memory) because the CLI, the server
and workers are separate processes; rates such as ``deployment_success_rate``
are derived from outcome samples when read.
"""

from __future__ import annotations

from collections.abc import Iterable

import sqlalchemy as sa
from prometheus_client.core import GaugeMetricFamily
from sqlalchemy.engine import Connection

from keel.kernel.clock import utcnow
from keel.store.tables import metric_samples

# Rates derived from outcome samples: metric name -> outcome series it is computed from.
RATES = {
    "deployment_success_rate": "deployment_outcome",
    "provisioning_success_rate": "provisioning_outcome",
    "tenant_infra_success_rate": "tenant_infra_outcome",
    "decommissioning_success_rate": "decommissioning_outcome",
    "policy_application_success_rate": "policy_application_outcome",
    "validation_success_rate": "validation_outcome",
    "onboarding_success_rate": "onboarding_outcome",
    "handshake_success_rate": "handshake_outcome",
    "schema_validation_pass_rate": "schema_validation_outcome",
    "connector_uptime": "connector_health_outcome",  # share of health checks that passed
    "template_validation_success_rate": "template_validation_outcome",
    "gdp_validation_rate": "gdp_validation_outcome",
    "kpi_schema_validation_rate": "kpi_schema_validation_outcome",
    "change_success_rate": "change_outcome",
    "coverage_of_notified_assets": "notified_asset_outcome",  # impacted assets whose people were reached
    # -- issue 5: pipeline
    # -- issue 5: quality
    "rule_pass_rate": "rule_pass_outcome",  # rules applied to a build that no row failed
    "rule_block_rate": "rule_block_outcome",  # rules applied to a build that blocked it
    "false_positive_rate": "false_positive_outcome",  # quarantine decisions that were false positives
    # -- issue 5: guardrails
    # -- issue 5: housekeeping
    # -- issue 5: lineage
    "lineage_link_rate": "lineage_link_outcome",  # runs captured with column lineage
    # -- issue 5: kpis
    "kpi_publish_success_rate": "kpi_publish_outcome",  # publish attempts that published (06)
    "kpi_consumption_rate": "kpi_consumption_outcome",  # KPI reads served, of all asked for (06)
}
COUNTERS = (
    "rollback_count",
    "permission_violation_count",
    "validation_failure_count",
    "incident_count",
    "connector_failure_count",
    "ingested_records",
    "schema_usage_count",
    "gdp_usage_count",
    "kpi_usage_count",
    "drift_detection_count",
    "extension_count",  # tenant extensions deployed (03e)
    "extension_rollback_count",  # tenant extensions whose build failed and was undone (03e)
    # -- issue 5: pipeline
    # -- issue 5: quality
    # -- issue 5: guardrails
    # -- issue 5: housekeeping
    # -- issue 5: lineage
    # -- issue 5: kpis
    "kpi_view_count",  # KPI views: lists, details, drill-throughs (07)
    "export_count",  # KPI snapshots exported (07)
)
GAUGES = (
    "provisioning_time",
    "connection_test_latency",
    "post_change_incident_rate",
    "rollback_time_seconds",
    "error_rate_during_rollout",
    # -- issue 5: pipeline
    # -- issue 5: quality
    # -- issue 5: guardrails
    "storage_footprint_gb",  # a tenant's data plane, measured when its spend is computed
    "compute_hours",  # a tenant's pipeline and ingestion run time today
    "spend_to_budget_ratio",  # today's spend over the tightest enabled spend cap
    # -- issue 5: housekeeping
    # -- issue 5: lineage
    "evidence_completeness_rate",  # a tenant's recent pipeline runs with their evidence in the ledger
    # -- issue 5: kpis
)
MEANS = ("mean_time_to_recover",)  # seconds, averaged over every recorded recovery


def record(
    conn: Connection, name: str, value: float | bool, tenant_id: str | None = None, **labels: str
) -> None:
    conn.execute(
        metric_samples.insert().values(
            name=name, tenant_id=tenant_id, value=value, labels=labels, recorded_at=utcnow()
        )
    )


def outcome(conn: Connection, rate_name: str, success: bool, tenant_id: str | None = None) -> None:
    record(conn, RATES[rate_name], success, tenant_id)


MONITORED = "tenant_monitoring_enabled"


def enable_tenant_monitoring(conn: Connection, tenant_id: str) -> None:
    """Register the tenant's series, so its signals are collected from now on (story 01b step 3)."""
    record(conn, MONITORED, 1, tenant_id)


def tenant_monitored(conn: Connection, tenant_id: str) -> bool:
    return (
        conn.execute(
            sa.select(metric_samples.c.id)
            .where(metric_samples.c.name == MONITORED, metric_samples.c.tenant_id == tenant_id)
            .limit(1)
        ).first()
        is not None
    )


def snapshot(conn: Connection) -> dict[str, float | None]:
    """Current value of every metric: rates in [0, 1], counters as totals, gauges as last value."""
    result: dict[str, float | None] = {}
    for rate, series in RATES.items():
        values = [bool(v) for v in _values(conn, series)]
        result[rate] = (sum(values) / len(values)) if values else None
    for counter in COUNTERS:
        result[counter] = float(sum(float(v) for v in _values(conn, counter)))
    for gauge in GAUGES:
        values = list(_values(conn, gauge))
        result[gauge] = float(values[-1]) if values else None
    for mean in MEANS:
        values = [float(v) for v in _values(conn, mean)]
        result[mean] = sum(values) / len(values) if values else None
    return result


def _values(conn: Connection, name: str) -> Iterable:
    return conn.execute(
        sa.select(metric_samples.c.value).where(metric_samples.c.name == name).order_by(metric_samples.c.id)
    ).scalars()


class StoreCollector:
    """prometheus-client collector reading ``snapshot`` on each scrape."""

    def __init__(self, connect) -> None:
        self._connect = connect

    def collect(self):
        with self._connect() as conn:
            values = snapshot(conn)
        for name, value in values.items():
            if value is not None:
                yield GaugeMetricFamily(f"keel_{name}", f"Keel {name} (see STORIES.md)", value=value)
