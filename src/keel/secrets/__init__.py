"""Secrets: envelope encryption with a master key and per-tenant data keys."""
