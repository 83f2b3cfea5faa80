"""Sample sources for the demo and the tests: a seeded ERP database and a small CRM HTTP API.

Both are deterministic: the same seed always gives the same rows, so tests can
assert exact counts and the demo looks the same on every machine.
"""

from keel.samples.crm import CrmServer, crm_data, serve_crm
from keel.samples.erp import DIRTY_KINDS, DIRTY_MIX, ErpSpec, dirty_rows, generate, write

__all__ = [
    "DIRTY_KINDS",
    "DIRTY_MIX",
    "CrmServer",
    "ErpSpec",
    "crm_data",
    "dirty_rows",
    "generate",
    "serve_crm",
    "write",
]
