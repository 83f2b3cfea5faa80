"""Data plane: per-tenant analytical storage. DuckDB is the embedded default engine."""
