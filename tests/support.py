"""Test helpers: a seeded world with one API token per persona, driven through the real API."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from urllib.parse import unquote

import sqlalchemy as sa
from fastapi.testclient import TestClient

from keel.accounts import auth
from keel.accounts import service as accounts
from keel.api.app import create_app
from keel.bootstrap import Keel, build
from keel.identity.actor import SYSTEM, Actor
from keel.identity.personas import Persona
from keel.kernel.clock import set_clock
from keel.kernel.settings import Settings
from keel.platform import service as platform
from keel.rbac import service as rbac
from keel.store.tables import metadata, users
from keel.tenants import service as tenancy

PROVIDER = [p for p in Persona if p.is_provider]
TENANT = [p for p in Persona if not p.is_provider]


def make_user(
    keel,
    persona: Persona,
    tenant_id: str | None = None,
    slug: str = "",
    *,
    also: tuple[Persona, ...] = (),
    mailbox: str = "",
) -> Actor:
    """An ACTIVE user without a password: it signs in with API tokens only (argon2 is slow by design).

    ``also`` gives the same user further personas (to test separation of duties across roles);
    ``mailbox`` names the address (before the @) of a second user with the same personas.
    """
    domain = f"{slug}.test" if tenant_id else "provider.test"
    roles = [persona.value, *(p.value for p in also)]
    with keel.uow() as uow:
        user_id = accounts.insert_user(
            uow.conn,
            email=f"{mailbox or '+'.join(r.lower() for r in roles)}@{domain}",
            display_name=persona.title,
            tenant_id=tenant_id,
            roles=roles,
        )
        uow.conn.execute(users.update().where(users.c.id == user_id).values(status="ACTIVE"))
        uow.record(
            "identity.user.created",
            actor_id=SYSTEM.user_id,
            tenant_id=tenant_id,
            user_id=user_id,
            roles=sorted(roles),
        )
        uow.commit()
    return Actor(user_id=user_id, tenant_id=tenant_id, roles=frozenset(roles))


@dataclass
class World:
    keel: object
    client: object
    actors: dict[str, Actor] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)
    tenants: dict[str, str] = field(default_factory=dict)  # slug -> tenant id

    @classmethod
    def build(
        cls,
        keel,
        client,
        *,
        deploy: bool = True,
        baseline: bool = True,
        tenant_slugs: tuple[str, ...] = ("acme", "globex"),
    ) -> World:
        world = cls(keel, client)
        for persona in PROVIDER:
            world.add(persona.value, make_user(keel, persona))
        if deploy:
            dep = platform.request_deployment(keel, world.actors["PA"])
            platform.approve_deployment(keel, world.actors["PO"], dep["deployment_id"])
            platform.execute_deployment(keel, world.actors["PA"], dep["deployment_id"])
            platform.validate_deployment(keel, world.actors["SA"], dep["deployment_id"])
        if baseline:
            bundle = rbac.define_bundle(keel, world.actors["SA"])
            rbac.apply_bundle(keel, world.actors["PA"], bundle["bundle_id"])
            rbac.review_bundle(keel, world.actors["CO"], bundle["bundle_id"], approve=True)
        if deploy:
            for slug in tenant_slugs:
                world.add_tenant(slug)
        return world

    def add(self, key: str, actor: Actor) -> Actor:
        """``actor`` under ``key``, with an API token of its own; returns ``actor``."""
        self.actors[key] = actor
        self.tokens[key] = auth.create_token(self.keel, actor, name=f"test-{key}")["token"]
        return actor

    def add_tenant(self, slug: str) -> str:
        tenant = tenancy.provision_tenant(
            self.keel,
            self.actors["PA"],
            slug=slug,
            name=slug.title(),
            admin_email=f"invited-admin@{slug}.test",
        )
        tenancy.validate_tenant(self.keel, self.actors["SA"], tenant["tenant_id"])
        self.tenants[slug] = tenant["tenant_id"]
        for persona in TENANT:
            self.add(f"{slug}:{persona.value}", make_user(self.keel, persona, tenant["tenant_id"], slug))
        return tenant["tenant_id"]

    def headers(self, who: str) -> dict[str, str]:
        """``who`` is a provider persona code ("PA") or "<slug>:<tenant persona>" ("acme:TA")."""
        return {"Authorization": f"Bearer {self.tokens[who]}"}

    def get(self, who: str, path: str, **kw):
        return self.client.get(path, headers=self.headers(who), **kw)

    def post(self, who: str, path: str, json: dict | None = None, **kw):
        headers = {**self.headers(who), **kw.pop("headers", {})}
        return self.client.post(path, json=json if json is not None else {}, headers=headers, **kw)

    def put(self, who: str, path: str, json: dict, **kw):
        return self.client.put(path, json=json, headers=self.headers(who), **kw)

    def delete(self, who: str, path: str, **kw):
        return self.client.delete(path, headers=self.headers(who), **kw)

    def events(self, event_type: str | None = None) -> list[dict]:
        """Ledger events straight from the store (test oracle, not the API under test)."""
        with self.keel.engine.connect() as conn:
            entries = self.keel.ledger.entries(conn, event_type=event_type, limit=100_000)
        return [e["event"] for e in entries]

    def scalar(self, query: sa.Select):
        with self.keel.engine.connect() as conn:
            return conn.execute(query).scalar()

    def rows(self, query: sa.Select) -> list:
        with self.keel.engine.connect() as conn:
            return list(conn.execute(query))

    def sign_in(self, email: str, password: str) -> TestClient:
        """A separate browser signed in as ``email``: its own cookie jar holds the session cookie."""
        browser = TestClient(self.client.app)
        answer = browser.post("/api/v1/auth/sign-in", json={"email": email, "password": password})
        assert answer.status_code == 200, answer.text
        return browser


@contextmanager
def running_keel(settings: Settings) -> Iterator[Keel]:
    """A Keel built on ``settings``; closed afterwards, with the wall clock back."""
    keel = build(settings)
    try:
        yield keel
    finally:
        keel.close()
        set_clock(None)


@contextmanager
def served_world(settings: Settings, **options) -> Iterator[World]:
    """``World.build(**options)`` on a Keel of its own behind the real app's TestClient."""
    with running_keel(settings) as keel, TestClient(create_app(keel)) as client:
        yield World.build(keel, client, **options)


def store_snapshot(keel, **instead: sa.Select | None) -> dict:
    """Every row of every table (the ledger included) and every file under KEEL_HOME, to compare
    before and after a step that must write nothing.

    ``instead`` gives a table's rows by another query (to leave out what the step may
    legitimately add), or leaves the table out (``None``).
    """
    queries = {table.name: sa.select(table) for table in metadata.sorted_tables} | instead
    state = {}
    with keel.engine.connect() as conn:
        for name, query in queries.items():
            if query is not None:
                state[name] = sorted(repr(tuple(row)) for row in conn.execute(query))
    home = keel.settings.home
    state["files"] = sorted(str(p.relative_to(home)) for p in home.rglob("*") if "keel.db" not in p.name)
    return state


def errors_are_problem_json(response) -> None:
    """Response hook for a TestClient: every error answer is RFC 9457 problem+json about its request."""
    if response.status_code < 400:
        return
    response.read()
    assert response.headers["content-type"] == "application/problem+json", response.text
    body = response.json()
    assert {"type", "title", "status", "detail", "instance"} <= body.keys(), body
    assert body["status"] == response.status_code
    assert unquote(body["instance"]) == response.request.url.path


def killed_when_paused(argv: list[str], marker, what: str) -> None:
    """Run ``argv`` as a child process, wait until it writes ``marker`` (it pauses there), then
    SIGKILL it: a crash at exactly that point. Fails when it never gets there."""
    import signal
    import subprocess
    import time

    child = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not marker.exists() and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        if not marker.exists():
            child.kill()
            raise AssertionError(f"the child did not pause {what}: {child.communicate()[1]}")
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert child.returncode == -signal.SIGKILL
