"""The one enforcement point: every service call passes through ``Authorizer.enforce``.

The policy set in force is the newest applied RBAC bundle (story 00d); before any
bundle is applied it is the baseline generated from the STORIES.md matrix.

Break-glass: a request the caller's roles do not allow is decided again with the
``break_glass`` context when an approved, unexpired grant covers this user, action
and tenant. Only then is the elevation used, and the use is recorded as
``breakglass.used`` in the caller's unit of work, so it lands with the change it
authorized (a command that rolls back did nothing under the elevation).
"""

from __future__ import annotations

import threading

import sqlalchemy as sa

from keel.authz.actions import ACTIONS
from keel.authz.baseline import baseline_policies
from keel.authz.engine import NOT_PERMITTED, PolicyEngine, Principal, Resource
from keel.identity.actor import Actor
from keel.kernel.clock import utcnow
from keel.kernel.errors import PermissionDenied
from keel.store.tables import break_glass_grants, rbac_bundles, tenants

ACTIVE_STATUSES = ("APPLIED", "REVIEWED")
BASELINE = "baseline"


class Authorizer:
    def __init__(self) -> None:
        self._engines: dict[str, PolicyEngine] = {}
        self._lock = threading.Lock()

    def active_bundle_id(self, conn) -> str:
        """The id of the bundle in force, or ``"baseline"`` before any is applied."""
        bundle_id = conn.execute(
            sa.select(rbac_bundles.c.id)
            .where(rbac_bundles.c.status.in_(ACTIVE_STATUSES))
            .order_by(rbac_bundles.c.applied_at.desc())
            .limit(1)
        ).scalar()
        return bundle_id or BASELINE

    def active_policies(self, conn) -> tuple[str, str]:
        """``(bundle id or "baseline", Cedar text)`` of the policy set in force."""
        bundle_id = self.active_bundle_id(conn)
        return bundle_id, self._policies_of(conn, bundle_id)

    def engine(self, conn) -> PolicyEngine:
        bundle_id = self.active_bundle_id(conn)
        engine = self._engines.get(bundle_id)
        if engine is None:
            text = self._policies_of(conn, bundle_id)  # bundles are immutable: compiled once per id
            with self._lock:
                engine = self._engines.setdefault(bundle_id, PolicyEngine(text))
        return engine

    @staticmethod
    def _policies_of(conn, bundle_id: str) -> str:
        if bundle_id == BASELINE:
            return baseline_policies()
        return conn.execute(
            sa.select(rbac_bundles.c.policies).where(rbac_bundles.c.id == bundle_id)
        ).scalar_one()

    def enforce(
        self, uow, actor: Actor, action: str, resource: Resource, *, dual_signed: bool = False
    ) -> None:
        if actor.auth == "system":
            return
        engine = self.engine(uow.conn)
        principal = Principal(actor.user_id, actor.tenant_id or "", frozenset(actor.roles))
        decision = engine.check(principal, action, resource, dual_signed=dual_signed)
        elevated = False
        if decision.reason == NOT_PERMITTED and self._break_glass_active(uow.conn, actor, action, resource):
            decision = engine.check(principal, action, resource, dual_signed=dual_signed, break_glass=True)
            elevated = decision.allowed
        if not decision.allowed:
            denied = PermissionDenied(
                decision.detail, reason=decision.reason, action=action, rule=decision.rule
            )
            denied.actor = actor  # type: ignore[attr-defined]
            denied.resource_type = resource.type  # type: ignore[attr-defined]
            raise denied
        if elevated:
            uow.record(
                "breakglass.used",
                actor_id=actor.user_id,
                tenant_id=resource.tenant or None,
                action=action,
                resource_type=resource.type,
                resource_id=resource.id,
            )

    @staticmethod
    def _break_glass_active(conn, actor: Actor, action: str, resource: Resource) -> bool:
        spec = ACTIONS.get(action)
        if spec is None or not spec.break_glass or not resource.tenant:
            return False
        now = utcnow()
        rows = conn.execute(
            sa.select(break_glass_grants.c.actions)
            # An elevation dies with its tenant's active life (blocked, decommissioned).
            .join(tenants, tenants.c.id == break_glass_grants.c.tenant_id)
            .where(
                tenants.c.status == "ACTIVE",
                break_glass_grants.c.user_id == actor.user_id,
                break_glass_grants.c.tenant_id == resource.tenant,
                break_glass_grants.c.starts_at <= now,
                break_glass_grants.c.expires_at > now,
                break_glass_grants.c.revoked_at.is_(None),
            )
        )
        return any(action in row.actions for row in rows)
