"""Dual control (pure): a publish needs two independent sign-offs.

Services compute ``dual_signed`` from the change's author and approvals and pass it to
``keel.authorize(..., dual_signed=...)``; the Cedar guard ``dual-control-publish``
denies every ``DualControl`` action (``schema:Publish``, ``kpi:Publish``,
``workflow:Publish``) without it.
"""

from __future__ import annotations

from collections.abc import Iterable


def dual_signed(author: str | None, approvers: Iterable[str | None]) -> bool:
    """True when two distinct people approved and neither is the author.

    An approval by the author taints the set (it is a self-approval, which separation
    of duties forbids), so it is refused outright rather than merely not counted.
    Empty ids are ignored.
    """
    distinct = {approver for approver in approvers if approver}
    if author and author in distinct:
        return False
    return len(distinct) >= 2
