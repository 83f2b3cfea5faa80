"""Story 00b: a Platform Admin deploys a connector from a template for a tenant, the tenant's
Data Engineer supplies endpoint and credentials, the Security Admin validates secret storage
and scope, and preflight (``onboarding.preflight``) proves the connection.

Lifecycle::

    DEPLOYED --configure (DE, TA)--> CONFIGURED
    CONFIGURED --SA validation passed + preflight passed (either order)--> ACTIVE
    CONFIGURED --SA rejects / preflight fails--> FAILED --configure again--> CONFIGURED
    ACTIVE --configure or upgrade (a new config version, ``connector.updated``)--> CONFIGURED
    ACTIVE --retries exhausted (13)--> FAILED --recover (PA)--> ACTIVE

Both checks are tied to the configuration version they saw: changing the
configuration needs them again, so a connector is never ACTIVE on credentials
nobody validated.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from keel.authz.engine import Resource
from keel.connectors.protocol import REDACTED, Connector
from keel.evidence import receipts
from keel.guardrails import service as guardrails
from keel.identity.actor import Actor
from keel.kernel.clock import as_utc, utcnow
from keel.kernel.errors import Conflict, InvalidInput, NotFound
from keel.kernel.ids import new_id
from keel.observability import metrics
from keel.onboarding import config as cfg
from keel.onboarding import templates
from keel.onboarding.breaker import CLOSED_BREAKER
from keel.onboarding.paging import keyset
from keel.store.tables import connector_versions, connectors
from keel.tenants.service import REGION, load_tenant

NAME_MAX = 80  # connector and source names


def require_active_tenant(conn: Connection, tenant_id: str) -> None:
    """Connectors are set up and run only for an ACTIVE tenant (not blocked, offboarding or gone)."""
    status = load_tenant(conn, tenant_id).status
    if status != "ACTIVE":
        raise Conflict(f"the tenant is {status}: its connectors and sources are on hold", tenant_id=tenant_id)


def resource(tenant_id: str, connector_id: str) -> Resource:
    return Resource("connector", connector_id, tenant=tenant_id)


def deploy(
    keel, actor: Actor, tenant_id: str, *, template: str, name: str, region: str | None = None
) -> dict:
    """Deploy ``template`` as ``name`` for the tenant, running in ``region`` (default: the
    tenant's own). An enabled residency guardrail refuses a region the tenant's data may not
    flow to: the refusal is evidenced (``policy.enforced``) and nothing is deployed."""
    with keel.uow() as uow:
        keel.authorize(uow, actor, "connector:Deploy", resource(tenant_id, "new"))
        require_active_tenant(uow.conn, tenant_id)
        _check_name(name)
        if region is not None and not REGION.match(region):
            raise InvalidInput("region", "must be 1-40 lower-case letters, digits or '-'")
        tpl = templates.resolve(uow.conn, template)
        keel.connector_registry.get(tpl.connector)  # the plugin must load before anything is stored
        if _by_name(uow.conn, tenant_id, name) is not None:
            raise Conflict(f"tenant already has a connector named '{name}'", name=name)
        region = region or load_tenant(uow.conn, tenant_id).region
        decision = guardrails.evaluate(
            keel, uow, actor, tenant_id, "connector:Deploy", essential=True, region=region
        )
        if not decision.allowed:
            uow.commit()  # the refusal's evidence, nothing else was written
            decision.raise_if_refused()
        connector_id = new_id("CON")
        now = utcnow()
        uow.conn.execute(
            connectors.insert().values(
                id=connector_id,
                tenant_id=tenant_id,
                name=name,
                template_id=tpl.id,
                connector=tpl.connector,
                region=region,
                status="DEPLOYED",
                config_version=0,
                config={},
                secret_refs={},
                breaker=dict(CLOSED_BREAKER),
                deployed_by=actor.user_id,
                created_at=now,
                updated_at=now,
            )
        )
        uow.record(
            "connector.deployed",
            actor_id=actor.user_id,
            tenant_id=tenant_id,
            connector_id=connector_id,
            name=name,
            template=f"{tpl.name}@{tpl.version}",
            region=region,
        )
        uow.commit()
        return view(load(uow.conn, tenant_id, connector_id))


def configure(keel, actor: Actor, tenant_id: str, connector_id: str, config: dict, reason: str = "") -> dict:
    """Store a new configuration version (credentials into the keyring); checks are needed again."""
    with keel.uow() as uow:
        keel.authorize(uow, actor, "connector:Configure", resource(tenant_id, connector_id))
        keel.authorize(uow, actor, "connector:SetCredentials", resource(tenant_id, connector_id))
        row = load(uow.conn, tenant_id, connector_id, lock=True)
        require_active_tenant(uow.conn, tenant_id)
        tpl = templates.load(uow.conn, row.template_id)
        _store_config(keel, uow, actor, row, {**tpl.defaults, **config}, reason or "configured", tpl=tpl)
        uow.commit()
        return view(load(uow.conn, tenant_id, connector_id))


def upgrade(keel, actor: Actor, tenant_id: str, connector_id: str, *, template: str) -> dict:
    """Move a connector to another version of its template (00b step 5); config re-validated."""
    with keel.uow() as uow:
        keel.authorize(uow, actor, "connector:Deploy", resource(tenant_id, connector_id))
        row = load(uow.conn, tenant_id, connector_id, lock=True)
        require_active_tenant(uow.conn, tenant_id)
        current = templates.load(uow.conn, row.template_id)
        tpl = templates.resolve(uow.conn, template)
        if tpl.name != current.name:
            raise InvalidInput("template", f"is '{tpl.name}'; connector '{row.name}' runs '{current.name}'")
        if tpl.id == current.id:
            raise Conflict(f"connector '{row.name}' runs {tpl.name}@{tpl.version} already")
        if row.status == "DEPLOYED":
            uow.conn.execute(connectors.update().where(connectors.c.id == row.id).values(template_id=tpl.id))
            uow.record(
                "connector.updated",
                actor_id=actor.user_id,
                tenant_id=tenant_id,
                connector_id=row.id,
                template=f"{tpl.name}@{tpl.version}",
                config_version=0,
            )
        else:
            merged = {**row.config, **tpl.defaults}  # the new preset wins where it speaks
            _store_config(keel, uow, actor, row, merged, f"upgraded to {tpl.name}@{tpl.version}", tpl=tpl)
        uow.commit()
        return view(load(uow.conn, tenant_id, connector_id))


def _store_config(keel, uow, actor: Actor, row, config: dict, reason: str, *, tpl) -> None:
    connector = keel.connector_registry.get(tpl.connector)()
    if not isinstance(config, dict):
        raise InvalidInput("config", "must be an object")
    connector.configure(config)  # names the first bad field; secrets may still be '***'
    stored, kept, fresh = cfg.split_secrets(connector, config, row.secret_refs)
    refs = dict(kept)
    for path, value in fresh.items():
        name = cfg.secret_name(row.id, path)
        keel.keyring.put_secret(uow.conn, row.tenant_id, name, value, actor.user_id)
        refs[path] = name
    version = row.config_version + 1
    now = utcnow()
    uow.conn.execute(
        connectors.update()
        .where(connectors.c.id == row.id)
        .values(
            template_id=tpl.id,
            config=stored,
            secret_refs=refs,
            config_version=version,
            status="CONFIGURED",
            secrets_validated_by=None,
            validated_by=None,
            validated_at=None,
            preflight=None,
            last_error=None,
            configured_by=actor.user_id,
            updated_at=now,
        )
    )
    uow.conn.execute(
        connector_versions.insert().values(
            connector_id=row.id,
            version=version,
            config=stored,
            secret_refs=refs,
            changed_by=actor.user_id,
            reason=reason,
            created_at=now,
        )
    )
    event = "connector.configured" if row.config_version == 0 else "connector.updated"
    uow.record(
        event,
        actor_id=actor.user_id,
        tenant_id=row.tenant_id,
        connector_id=row.id,
        config_version=version,
        template=f"{tpl.name}@{tpl.version}",
        credentials_changed=sorted(fresh),
        reason=reason,
    )


def validate_secrets(keel, actor: Actor, tenant_id: str, connector_id: str) -> dict:
    """SA: every credential is in the tenant's encrypted store, scoped to this connector, and
    appears nowhere in the stored configuration (00b step 3)."""
    with keel.uow() as uow:
        keel.authorize(uow, actor, "connector:Validate", resource(tenant_id, connector_id))
        row = load(uow.conn, tenant_id, connector_id, lock=True)
        require_active_tenant(uow.conn, tenant_id)
        require_checkable(row)
        if row.status == "DEPLOYED":
            raise Conflict(f"connector '{row.name}' has no configuration to validate yet")
        problems = secret_problems(keel, uow.conn, row)
        passed = not problems
        metrics.outcome(uow.conn, "validation_success_rate", passed, tenant_id)
        now = utcnow()
        if passed:
            uow.conn.execute(
                connectors.update()
                .where(connectors.c.id == row.id)
                .values(secrets_validated_by=actor.user_id, updated_at=now)
            )
            uow.record(
                "connector.validated",
                actor_id=actor.user_id,
                tenant_id=tenant_id,
                connector_id=row.id,
                check="secrets",
                config_version=row.config_version,
                passed=True,
            )
            activate_if_ready(uow, load(uow.conn, tenant_id, connector_id))
        else:
            message = "; ".join(problems)
            error = {"failure": "secrets", "message": message, "at": now.isoformat(), "stage": "checks"}
            uow.conn.execute(
                connectors.update()
                .where(connectors.c.id == row.id)
                .values(status="FAILED", last_error=error, updated_at=now)
            )
            uow.record(
                "connector.validation.failed",
                actor_id=actor.user_id,
                tenant_id=tenant_id,
                connector_id=row.id,
                check="secrets",
                problems=len(problems),
            )
        uow.commit()
        return {
            **view(load(uow.conn, tenant_id, connector_id)),
            "secret_check": {"passed": passed, "problems": problems},
        }


def secret_problems(keel, conn: Connection, row) -> list[str]:
    problems = []
    values = []
    for path, name in sorted(row.secret_refs.items()):
        if name != cfg.secret_name(row.id, path):
            problems.append(f"credential '{path}' is stored outside this connector's scope")
            continue
        try:
            values.append(keel.keyring.get_secret(conn, row.tenant_id, name))
        except NotFound:
            problems.append(f"credential '{path}' is missing from the tenant's secrets store")
        except Exception:  # a tag that does not verify: tampered or foreign ciphertext
            problems.append(f"credential '{path}' does not decrypt with the tenant's key")
    flat = repr(row.config)
    if any(v and v != REDACTED and v in flat for v in values):
        problems.append("a credential's value appears in the stored configuration")
    return problems


def failed_at(row) -> str | None:
    """Which step left a FAILED connector so: ``checks`` (SA validation, preflight) or ``ingestion``."""
    return (row.last_error or {}).get("stage") if row.status == "FAILED" else None


def require_checkable(row) -> None:
    """A connector that failed while ingesting leaves FAILED only through the PA's recovery (13)."""
    if failed_at(row) == "ingestion":
        raise Conflict(
            f"connector '{row.name}' failed while ingesting: a Platform Admin recovers it, "
            "or its Data Engineer configures it anew",
            connector_id=row.id,
        )


def activate_if_ready(uow, row) -> bool:
    """ACTIVE once the SA validation and a passed preflight both cover the current config."""
    preflight = row.preflight or {}
    ready = (
        (row.status == "CONFIGURED" or (row.status == "FAILED" and failed_at(row) == "checks"))
        and row.secrets_validated_by is not None
        and preflight.get("passed") is True
        and preflight.get("config_version") == row.config_version
    )
    if not ready:
        return False
    now = utcnow()
    uow.conn.execute(
        connectors.update()
        .where(connectors.c.id == row.id)
        .values(
            status="ACTIVE",
            validated_by=row.secrets_validated_by,
            validated_at=now,
            last_error=None,
            updated_at=now,
        )
    )
    body = {
        "connector": row.name,
        "connector_id": row.id,
        "status": "ACTIVE",
        "validated": True,
        "validated_by": row.secrets_validated_by,
        "preflight_by": preflight.get("run_by"),
        "config_version": row.config_version,
        "timestamp": now.isoformat(),
    }
    receipts.issue(
        uow.conn, "connector.activation", subject_id=row.id, tenant_id=row.tenant_id, body=body, at=now
    )
    uow.record(
        "connector.activated",
        actor_id=preflight.get("run_by"),
        tenant_id=row.tenant_id,
        connector_id=row.id,
        config_version=row.config_version,
    )
    return True


def get(keel, actor: Actor, tenant_id: str, connector_id: str) -> dict:
    with keel.uow() as uow:
        keel.authorize(uow, actor, "connector:Read", resource(tenant_id, connector_id))
        row = load(uow.conn, tenant_id, connector_id)
        return view(row)


def list_for_tenant(keel, actor: Actor, tenant_id: str, *, after: str | None, limit: int) -> list[dict]:
    with keel.uow() as uow:
        keel.authorize(uow, actor, "connector:Read", resource(tenant_id, "*"))
        load_tenant(uow.conn, tenant_id)
        query = keyset(connectors, connectors.c.tenant_id == tenant_id, after=after, limit=limit)
        return [view(r) for r in uow.conn.execute(query)]


def versions(keel, actor: Actor, tenant_id: str, connector_id: str) -> list[dict]:
    with keel.uow() as uow:
        keel.authorize(uow, actor, "connector:Read", resource(tenant_id, connector_id))
        load(uow.conn, tenant_id, connector_id)
        rows = uow.conn.execute(
            sa.select(connector_versions)
            .where(connector_versions.c.connector_id == connector_id)
            .order_by(connector_versions.c.version)
        )
        return [
            {
                "version": r.version,
                "config": r.config,
                "credentials": sorted(r.secret_refs),
                "changed_by": r.changed_by,
                "reason": r.reason,
                "created_at": as_utc(r.created_at).isoformat(),
            }
            for r in rows
        ]


def load(conn: Connection, tenant_id: str, connector_id: str, *, lock: bool = False):
    """The connector of ``tenant_id``; another tenant's connector is 'not found', never 'forbidden'."""
    query = sa.select(connectors).where(connectors.c.id == connector_id, connectors.c.tenant_id == tenant_id)
    row = conn.execute(query.with_for_update() if lock else query).first()
    if row is None:
        raise NotFound("connector", connector_id)
    return row


def instance(keel, row) -> Connector:
    return keel.connector_registry.get(row.connector)()


def runtime_config(keel, conn: Connection, row) -> dict:
    """The configuration with its credentials; a credential that cannot be read is a clear conflict."""
    try:
        return cfg.effective_config(conn, keel.keyring, row.tenant_id, row.config, row.secret_refs)
    except Exception:  # missing, or a ciphertext that no longer verifies: never a 500, never the name
        raise Conflict(
            f"a credential of connector '{row.name}' cannot be read: its Security Admin validates it again",
            connector_id=row.id,
        ) from None


def view(row) -> dict:
    return {
        "connector_id": row.id,
        "tenant_id": row.tenant_id,
        "name": row.name,
        "connector": row.connector,
        "region": row.region,
        "template_id": row.template_id,
        "status": row.status,
        "config_version": row.config_version,
        "config": row.config,
        "credentials": sorted(row.secret_refs),
        "secrets_validated_by": row.secrets_validated_by,
        "validated": row.status == "ACTIVE" and row.validated_by is not None,
        "validated_by": row.validated_by,
        "validated_at": as_utc(row.validated_at).isoformat() if row.validated_at else None,
        "preflight": row.preflight,
        "last_error": row.last_error,
        "breaker": row.breaker,
        "deployed_by": row.deployed_by,
        "configured_by": row.configured_by,
        "created_at": as_utc(row.created_at).isoformat(),
        "updated_at": as_utc(row.updated_at).isoformat(),
    }


def _by_name(conn: Connection, tenant_id: str, name: str):
    return conn.execute(
        sa.select(connectors.c.id).where(connectors.c.tenant_id == tenant_id, connectors.c.name == name)
    ).first()


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not name.strip() or len(name) > NAME_MAX:
        raise InvalidInput("name", f"must be 1 to {NAME_MAX} characters")
