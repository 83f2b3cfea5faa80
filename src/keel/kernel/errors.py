"""One error hierarchy for the whole of Keel.

Domain errors carry structured fields (what, where, why) and know nothing of
HTTP or the CLI; each edge (``api/errors.py``, ``cli/``) renders them once.
"""

from __future__ import annotations

from typing import Any


class KeelError(Exception):
    """Base of every error Keel raises on purpose.

    ``code`` is a stable machine-readable identifier (``snake_case``), ``detail``
    a sentence for humans, ``fields`` extra structured facts for the caller.
    """

    code = "keel_error"
    title = "Keel error"

    def __init__(self, detail: str, **fields: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.fields = fields

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "title": self.title, "detail": self.detail, **self.fields}


class InvalidInput(KeelError):
    """Input failed validation; ``field`` names the offending input."""

    code = "invalid_input"
    title = "Invalid input"

    def __init__(self, field: str, detail: str, **fields: Any) -> None:
        super().__init__(f"{field}: {detail}", field=field, **fields)


class NotFound(KeelError):
    code = "not_found"
    title = "Not found"

    def __init__(self, kind: str, ident: str) -> None:
        super().__init__(f"{kind} '{ident}' not found", kind=kind, id=ident)


class Conflict(KeelError):
    """The request clashes with the current state (duplicate, wrong state, ...)."""

    code = "conflict"
    title = "Conflict"


class Blocked(KeelError):
    """A governance precondition is not met (missing approval, missing evidence, ...)."""

    code = "blocked"
    title = "Blocked by a precondition"


class QuotaExceeded(Blocked):
    code = "quota_exceeded"
    title = "Quota exceeded"


class Unauthenticated(KeelError):
    code = "unauthenticated"
    title = "Authentication required"


class PermissionDenied(KeelError):
    """Authorization refused. ``reason`` is machine-readable, ``rule`` names the policy."""

    code = "permission_denied"
    title = "Permission denied"

    def __init__(self, detail: str, *, reason: str, action: str, rule: str | None = None) -> None:
        super().__init__(detail, reason=reason, action=action, rule=rule)


class IntegrityError(KeelError):
    """Stored evidence does not verify."""

    code = "integrity_error"
    title = "Integrity check failed"
