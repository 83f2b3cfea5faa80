"""Ingestion: connector reads landed in a tenant's Raw layer exactly once, with retries and replay.

``raw.RawStore`` owns the Raw tables and their bookkeeping in the tenant's DuckDB
file; ``runner.sync_stream`` drives one connector read into it, batch by
checkpoint, retrying transient failures (the circuit breaker around whole runs is
the control plane's: ``keel.onboarding.breaker``).
"""
