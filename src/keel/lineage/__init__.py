"""Lineage of pipeline runs (05): OpenLineage run events with column lineage, stored and sent."""
