"""Story 03g: contract consumers — who reads which contracts, whom to tell, and their webhooks.

* A **consumer** (dashboard, KPI view, workflow, report, export) says which contracts it
  reads and whom to tell. A tenant's consumers are registered by its Tenant Admin or Data
  Engineer (``consumer:Register``), platform-wide ones by the Platform Admin
  (``consumer:RegisterPlatform``). A contract id it names need not exist yet: until it does,
  every analysis reports the gap.
* **Webhooks are a consumer setting.** A consumer may name one webhook URL; it is the second
  channel (after e-mail) for that consumer's people: a recipient's webhook is the one of the
  first consumer, by id, that lists them and has one. The URL is kept sealed (AES-GCM under a
  key derived from the master key; webhook paths often embed a token) and shown by its
  origin only. ``notices`` unseals them (``_webhooks``) when it resolves recipients.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterable
from urllib.parse import urlsplit

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from keel.authz.engine import Resource
from keel.contracts.impact import CONSUMER_KINDS
from keel.contracts.model import CONTRACT_ID
from keel.identity.actor import Actor
from keel.kernel.clock import as_utc, utcnow
from keel.kernel.errors import IntegrityError, InvalidInput
from keel.kernel.ids import new_id
from keel.secrets import envelope
from keel.store.tables import contract_consumers, users
from keel.tenants.service import load_tenant

log = logging.getLogger(__name__)

WEBHOOK_PURPOSE = "consumer-webhook"
MAX_DEPENDS, MAX_RECIPIENTS = 50, 100


def register_consumer(
    keel,
    actor: Actor,
    *,
    kind: str,
    name: str,
    depends_on: Iterable[str],
    recipients: Iterable[str] = (),
    webhook_url: str | None = None,
    tenant_id: str | None = None,
) -> dict:
    """A tenant's consumer (TA, DE of that tenant) or, without a tenant, a platform one (PA)."""
    tenant_id = tenant_id or actor.tenant_id
    with keel.uow() as uow:
        if tenant_id:
            keel.authorize(
                uow, actor, "consumer:Register", Resource("contract_consumer", "new", tenant=tenant_id)
            )
            load_tenant(uow.conn, tenant_id)
        else:
            keel.authorize(
                uow, actor, "consumer:RegisterPlatform", Resource("contract_consumer", "new", tenant="")
            )
        if kind not in CONSUMER_KINDS:
            raise InvalidInput("kind", f"'{kind}' is not one of {', '.join(CONSUMER_KINDS)}")
        name = name.strip()
        if not 1 <= len(name) <= 200:
            raise InvalidInput("name", "must be 1 to 200 characters")
        depends = _contract_ids(depends_on)
        people = _members(uow.conn, recipients, tenant_id)
        consumer_id = new_id("CNS")
        entries: list = list(people)
        if webhook_url is not None:
            entries.append(
                {
                    "webhook": _seal(keel, consumer_id, _webhook(webhook_url, keel.settings)),
                    "origin": _origin(webhook_url),
                }
            )
        uow.conn.execute(
            contract_consumers.insert().values(
                id=consumer_id,
                tenant_id=tenant_id,
                kind=kind,
                name=name,
                depends_on=depends,
                recipients=entries,
                created_by=actor.user_id,
                created_at=utcnow(),
            )
        )
        uow.record(
            "contract.consumer.registered",
            actor_id=actor.user_id,
            tenant_id=tenant_id,
            consumer_id=consumer_id,
            kind=kind,
            depends_on=depends,
            recipients=len(people),
            webhook=webhook_url is not None,
        )
        uow.commit()
        return _consumer_view(_consumer_row(uow.conn, consumer_id))


def list_consumers(
    keel,
    actor: Actor,
    *,
    tenant_id: str | None = None,
    contract_id: str | None = None,
    after: str | None = None,
    limit: int = 50,
) -> list[dict]:
    """A tenant user sees its tenant's consumers; a provider all of them (or one tenant's)."""
    scope = tenant_id or actor.tenant_id
    with keel.uow() as uow:
        keel.authorize(uow, actor, "impact:Read", Resource("contract_consumer", "*", tenant=scope or ""))
        where = [contract_consumers.c.tenant_id == scope] if scope else []
        found: list[dict] = []
        while len(found) < limit:  # the depends_on filter runs here: JSON containment is not portable
            query = sa.select(contract_consumers).where(*where).order_by(contract_consumers.c.id).limit(limit)
            rows = list(uow.conn.execute(query.where(contract_consumers.c.id > after) if after else query))
            found += [_consumer_view(r) for r in rows if contract_id is None or contract_id in r.depends_on]
            if len(rows) < limit:
                break
            after = rows[-1].id
        return found[:limit]


# -- helpers --------------------------------------------------------------------------------------


def _contract_ids(values: Iterable[str]) -> list[str]:
    ids = list(dict.fromkeys(values))
    if not 1 <= len(ids) <= MAX_DEPENDS:
        raise InvalidInput("depends_on", f"name 1 to {MAX_DEPENDS} contract ids")
    for value in ids:
        if not isinstance(value, str) or not CONTRACT_ID.match(value):
            raise InvalidInput("depends_on", f"'{value}' is not a contract id")
    return ids


def _members(conn: Connection, values: Iterable[str], tenant_id: str | None) -> list[str]:
    """Recipient user ids: people of the consumer's tenant or of the provider (a platform consumer:
    the provider's only). Whether someone exists elsewhere is never told."""
    ids = list(dict.fromkeys(values))
    if len(ids) > MAX_RECIPIENTS:
        raise InvalidInput("recipients", f"name at most {MAX_RECIPIENTS} people")
    query = sa.select(users.c.id, users.c.tenant_id, users.c.status).where(users.c.id.in_(ids))
    found = {r.id: r for r in conn.execute(query)} if ids else {}
    for user_id in ids:
        row = found.get(user_id)
        if row is None or row.status == "DISABLED" or row.tenant_id not in (None, tenant_id):
            where = "this tenant or the platform" if tenant_id else "the platform"
            raise InvalidInput("recipients", f"'{user_id}' is not a user of {where}")
    return ids


def _people(entries) -> list[str]:
    return [e for e in entries or () if isinstance(e, str)]


def _webhook(url: str, settings) -> str:
    url = url.strip()
    try:
        parts = urlsplit(url)
        _ = parts.port  # a port that is not a number raises here
        ok = parts.scheme in ("http", "https") and bool(parts.hostname) and len(url) <= 2000
    except ValueError:
        ok = False
    if not ok or any(c.isspace() for c in url):
        raise InvalidInput("webhook_url", "must be an http(s) URL of at most 2000 characters")
    if not settings.webhook_allow_private_networks and _internal(parts.hostname):
        raise InvalidInput(
            "webhook_url",
            "points at a loopback, private or link-local address (KEEL_WEBHOOK_ALLOW_PRIVATE_NETWORKS)",
        )
    return url


def _internal(host: str) -> bool:
    """Whether ``host`` is, or resolves to, an address of Keel's own networks."""
    import ipaddress
    import socket

    try:
        addresses = {ipaddress.ip_address(host)}
    except ValueError:
        try:
            addresses = {ipaddress.ip_address(info[4][0]) for info in socket.getaddrinfo(host, None)}
        except (OSError, ValueError):
            return False  # unresolvable now: delivery fails later and is recorded as failed
    return any(
        a.is_loopback or a.is_private or a.is_link_local or a.is_reserved or a.is_unspecified
        for a in addresses
    )


def _origin(url: str) -> str:
    parts = urlsplit(url.strip())
    return f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")


def _seal(keel, consumer_id: str, url: str) -> str:
    key = keel.keyring.derived_key(WEBHOOK_PURPOSE)
    return base64.b64encode(envelope.encrypt(key, url.encode(), f"{WEBHOOK_PURPOSE}:{consumer_id}")).decode()


def _webhooks(keel, conn: Connection) -> dict[str, str]:
    """Each recipient's webhook: that of the first consumer (by id) listing them that has one and
    belongs to the recipient's own side (a tenant's consumer serves that tenant's people only, a
    platform consumer the provider's), so nobody can redirect another party's notices."""
    key = keel.keyring.derived_key(WEBHOOK_PURPOSE)
    found: dict[str, str] = {}
    home = dict(conn.execute(sa.select(users.c.id, users.c.tenant_id)).all())
    for row in conn.execute(sa.select(contract_consumers).order_by(contract_consumers.c.id)):
        sealed = next(
            (e["webhook"] for e in row.recipients or () if isinstance(e, dict) and "webhook" in e), None
        )
        if sealed is None:
            continue
        try:
            url = envelope.decrypt(key, base64.b64decode(sealed), f"{WEBHOOK_PURPOSE}:{row.id}").decode()
        except (IntegrityError, ValueError):
            log.warning("consumer %s: its webhook does not unseal (another master key?); skipped", row.id)
            continue
        for user_id in _people(row.recipients):
            if user_id in home and home[user_id] == row.tenant_id:
                found.setdefault(user_id, url)
    return found


def _consumer_row(conn: Connection, consumer_id: str):
    return conn.execute(sa.select(contract_consumers).where(contract_consumers.c.id == consumer_id)).one()


def _consumer_view(row) -> dict:
    hook = next((e for e in row.recipients or () if isinstance(e, dict) and "webhook" in e), None)
    return {
        "consumer_id": row.id,
        "tenant_id": row.tenant_id,
        "kind": row.kind,
        "name": row.name,
        "depends_on": list(row.depends_on),
        "recipients": _people(row.recipients),
        "webhook": hook.get("origin") if hook else None,
        "created_by": row.created_by,
        "created_at": as_utc(row.created_at).isoformat(),
    }
