"""Errors of the tenant lifecycle, on top of the kernel hierarchy."""

from __future__ import annotations

from keel.kernel.errors import Blocked


class AllocationFailed(Blocked):
    """A tenant's dedicated resources could not be allocated; nothing was kept."""

    code = "allocation_failed"
    title = "Resource allocation failed"
