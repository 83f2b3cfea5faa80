"""Data-quality rules (04): versioned rules, compiled into one set-based query per GDP table.

``model`` (pure) validates a rule, ``compile`` (pure) turns a table's enabled rules into
SQLGlot trees the materializer runs, ``service`` keeps the registry, the conflict checks,
the quarantine review and the outcome events and metrics.
"""
