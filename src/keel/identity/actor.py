"""The authenticated caller every service function receives."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Actor:
    user_id: str
    tenant_id: str | None  # None: a provider (platform) user
    roles: frozenset[str]
    auth: str = "token"  # "session", "token" or "system"

    @property
    def is_provider(self) -> bool:
        return self.tenant_id is None


SYSTEM = Actor(user_id="system", tenant_id=None, roles=frozenset(), auth="system")
