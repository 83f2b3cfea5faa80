"""The one enforcement point: every service call passes through ``Authorizer.enforce``.

The policy set in force is the newest applied RBAC bundle (story 00d); before any
bundle is applied it is the baseline generated from the STORIES.md matrix.
"""

from __future__ import annotations

import threading

import sqlalchemy as sa

from keel.authz.actions import ACTIONS
from keel.authz.baseline import baseline_policies
from keel.authz.engine import PolicyEngine, Principal, Resource
from keel.identity.actor import Actor
from keel.kernel.clock import utcnow
from keel.kernel.errors import PermissionDenied
from keel.store.tables import break_glass_grants, rbac_bundles

ACTIVE_STATUSES = ("APPLIED", "REVIEWED")


class Authorizer:
    def __init__(self) -> None:
        self._engines: dict[str, PolicyEngine] = {}
        self._lock = threading.Lock()

    def active_policies(self, conn) -> tuple[str, str]:
        """``(bundle id or "baseline", Cedar text)`` of the policy set in force."""
        row = conn.execute(
            sa.select(rbac_bundles.c.id, rbac_bundles.c.policies)
            .where(rbac_bundles.c.status.in_(ACTIVE_STATUSES))
            .order_by(rbac_bundles.c.applied_at.desc())
            .limit(1)
        ).first()
        return (row.id, row.policies) if row else ("baseline", baseline_policies())

    def engine(self, conn) -> PolicyEngine:
        bundle_id, text = self.active_policies(conn)
        engine = self._engines.get(bundle_id)
        if engine is None:
            with self._lock:
                engine = self._engines.setdefault(bundle_id, PolicyEngine(text))
        return engine

    def enforce(
        self, uow, actor: Actor, action: str, resource: Resource, *, dual_signed: bool = False
    ) -> None:
        if actor.auth == "system":
            return
        break_glass = self._break_glass_active(uow.conn, actor, action, resource)
        decision = self.engine(uow.conn).check(
            Principal(actor.user_id, actor.tenant_id or "", frozenset(actor.roles)),
            action,
            resource,
            dual_signed=dual_signed,
            break_glass=break_glass,
        )
        if not decision.allowed:
            denied = PermissionDenied(
                f"{action} is not permitted", reason=decision.reason, action=action, rule=decision.rule
            )
            denied.actor = actor  # type: ignore[attr-defined]
            denied.resource_type = resource.type  # type: ignore[attr-defined]
            raise denied
        if break_glass:
            uow.record(
                "breakglass.used",
                actor_id=actor.user_id,
                tenant_id=resource.tenant or None,
                action=action,
                resource_type=resource.type,
            )

    @staticmethod
    def _break_glass_active(conn, actor: Actor, action: str, resource: Resource) -> bool:
        spec = ACTIONS.get(action)
        if spec is None or not spec.break_glass or not resource.tenant:
            return False
        now = utcnow()
        rows = conn.execute(
            sa.select(break_glass_grants.c.actions).where(
                break_glass_grants.c.user_id == actor.user_id,
                break_glass_grants.c.tenant_id == resource.tenant,
                break_glass_grants.c.starts_at <= now,
                break_glass_grants.c.expires_at > now,
                break_glass_grants.c.revoked_at.is_(None),
            )
        )
        return any(action in row.actions for row in rows)
