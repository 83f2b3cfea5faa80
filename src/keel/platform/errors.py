"""Why a deployment stops. Each is a ``KeelError`` with structured fields, so one escaping
the service is still rendered cleanly; the service catches them to record the rollback,
the failed job or the alert first, then re-raises them."""

from __future__ import annotations

from keel.kernel.errors import Blocked, InvalidInput


class TemplateMismatch(InvalidInput):
    """The template parses but does not describe this installation: the job fails."""


class DependencyMissing(Blocked):
    """Something the deployment needs is absent; nothing was created and an alert fired."""

    code = "dependency_missing"
    title = "Deployment dependency missing"

    def __init__(self, dependency: str, detail: str) -> None:
        super().__init__(f"dependency {dependency} is missing: {detail}", dependency=dependency)
        self.dependency = dependency


class IamInvalid(Blocked):
    """IAM validation failed; everything the deployment created is rolled back."""

    code = "iam_invalid"
    title = "IAM validation failed"

    def __init__(self, reason: str, **fields) -> None:
        super().__init__(f"IAM validation failed, deployment rolled back: {reason}", **fields)
        self.reason = reason
