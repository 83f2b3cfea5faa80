"""Retention policies: defined by a Platform Admin, in effect only once a Compliance Officer approves."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime

SCOPES = {"gdp": {"tier_to_cold", "delete"}, "raw": {"delete"}}
_POLICY_ID = re.compile(r"^[A-Z][A-Z0-9-]{1,63}$")
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
ALL = "*"  # a Raw policy's table: every Raw table of the tenant


class PolicyError(ValueError):
    """A policy, approval or hold that breaks a rule; ``field`` names the field, the message the rule."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass
class RetentionPolicy:
    policy_id: str
    scope: str
    retention_months: int
    action_on_expiry: str
    table: str
    time_column: str
    defined_by: str
    approved_by: str | None = None

    def __post_init__(self) -> None:
        if not _POLICY_ID.match(self.policy_id):
            raise PolicyError(
                "policy_id", f"policy_id {self.policy_id!r} must look like RET-12M (upper case, digits, '-')"
            )
        if self.scope not in SCOPES:
            raise PolicyError("scope", f"scope {self.scope!r} must be one of {sorted(SCOPES)}")
        if self.action_on_expiry not in SCOPES[self.scope]:
            allowed = sorted(SCOPES[self.scope])
            raise PolicyError(
                "action_on_expiry",
                f"action_on_expiry {self.action_on_expiry!r} not allowed for scope {self.scope!r}: {allowed}",
            )
        if not isinstance(self.retention_months, int) or not 1 <= self.retention_months <= 1200:
            raise PolicyError("retention_months", "retention_months must be an integer from 1 to 1200")
        if self.table == ALL and self.scope != "raw":
            raise PolicyError("table", "table '*' (every table of the layer) is for scope 'raw' only")
        for what, value in (("table", self.table), ("time_column", self.time_column)):
            if not isinstance(value, str) or not (_IDENT.match(value) or (what == "table" and value == ALL)):
                raise PolicyError(what, f"{what} {value!r} is not a plain identifier")

    def approve(self, approver: str) -> None:
        if approver == self.defined_by:
            raise PolicyError("approved_by", "a policy's author cannot approve it; a Compliance Officer must")
        self.approved_by = approver

    @property
    def in_effect(self) -> bool:
        return self.approved_by is not None

    def cutoff(self, now: datetime) -> datetime:
        """``now`` minus ``retention_months`` calendar months (day clamped to the month's end)."""
        month = now.month - 1 - self.retention_months
        year, month = now.year + month // 12, month % 12 + 1
        days = [
            31,
            29 if year % 4 == 0 and (year % 100 or year % 400 == 0) else 28,
            31,
            30,
            31,
            30,
            31,
            31,
            30,
            31,
            30,
            31,
        ]
        return now.replace(year=year, month=month, day=min(now.day, days[month - 1]))


@dataclass
class LegalHold:
    hold_id: str
    tenant_id: str
    placed_by: str
    layer: str | None = None
    table: str | None = None
    released: bool = False
    reason: str = field(default="")

    def covers(self, tenant_id: str, layer: str, table: str) -> bool:
        """True when the hold is in force on ``layer.table`` of the tenant. A hold on ``invoice``
        covers its versioned tables (``invoice__v1_0_0``) and side tables (``…__quarantine``) too."""
        return (
            not self.released
            and self.tenant_id == tenant_id
            and self.layer in (None, layer)
            and (self.table is None or table == self.table or table.startswith(self.table + "__"))
        )
