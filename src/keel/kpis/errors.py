"""Errors of KPI publishing (06)."""

from __future__ import annotations

from keel.kernel.errors import Blocked


class PublicationBlocked(Blocked):
    """Publishing was refused because evidence is missing; nothing was published."""

    code = "publication_blocked"
    title = "Publication blocked: evidence missing"

    def __init__(self, kpi_id: str, version: str, missing: list[dict], incident_id: str) -> None:
        names = "; ".join(m["detail"] for m in missing)
        super().__init__(
            f"{kpi_id}@{version} was not published: {names}",
            kpi_id=kpi_id,
            version=version,
            missing=missing,
            incident_id=incident_id,
        )
