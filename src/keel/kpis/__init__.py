"""KPI consumption (story 07): values, thresholds, filters, drill-through and snapshots."""
