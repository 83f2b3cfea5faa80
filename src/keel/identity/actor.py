"""The authenticated caller every service function receives."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class Actor:
    user_id: str
    tenant_id: str | None  # None: a provider (platform) user
    roles: frozenset[str]
    auth: str = "token"  # "session", "token" or "system"
    # When the credential this request came with expires: a token cannot mint one that outlives it.
    expires_at: datetime | None = None

    @property
    def is_provider(self) -> bool:
        return self.tenant_id is None


SYSTEM = Actor(user_id="system", tenant_id=None, roles=frozenset(), auth="system")
