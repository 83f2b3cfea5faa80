"""Metrics named exactly as STORIES.md names them, persisted so every process sees them."""
