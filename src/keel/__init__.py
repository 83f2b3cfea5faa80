"""Keel: governed KPIs and governed actions with verifiable evidence."""

__version__ = "0.1.0"
