"""Housekeeping (05b): retention policies, cold tiering, deletion, compaction, legal holds."""
