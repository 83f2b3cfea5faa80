"""Tenant lifecycle: provisioning (01, 01b), validation, offboarding and decommissioning (01c)."""
