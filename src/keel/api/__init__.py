"""REST API under /api/v1: a thin adapter turning requests into service calls."""
